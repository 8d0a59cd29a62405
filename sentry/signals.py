"""Signal generation and delivery.

Theory of operation
-------------------
A signal is *generated* for a thread (tkill, tgkill, a CPU fault) or for a
whole process (kill, SIGCHLD). It is kept in the thread's or the process's
pending list until a thread that does not block it returns to the guest; then
it is *delivered*: ignored, acted on by default (terminate, dump core, stop,
continue), or handed to the guest's handler.

Delivery to a handler builds a real x86-64 ``rt_sigframe`` on the guest stack
(or the alternate stack with SA_ONSTACK): the return address (sa_restorer),
a ``ucontext`` whose ``sigcontext`` holds every general register, the signal
mask to restore, a ``siginfo``, and the SSE state in the fxsave layout. The
handler runs with RDI = signo, RSI = &info, RDX = &uc. Its return lands in the
restorer, which calls rt_sigreturn, which reads the frame back, so a handler
may change the saved registers (as a SIGSEGV handler that skips an insn does).

Deliveries happen at three points: after a syscall completes (inside the
syscall hook, where RIP moves take the +2 into account), before a task that
was parked or preempted runs again, and right after a synchronous CPU fault.
A parked syscall interrupted by a handled signal fails with EINTR, or runs
again after the handler when the action has SA_RESTART.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import attrs
from unicorn.x86_const import (
    UC_X86_REG_FP0,
    UC_X86_REG_FPCW,
    UC_X86_REG_FPSW,
    UC_X86_REG_FPTAG,
    UC_X86_REG_MXCSR,
    UC_X86_REG_RAX,
    UC_X86_REG_RDI,
    UC_X86_REG_RDX,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
    UC_X86_REG_XMM0,
)

from sentry import abi
from sentry.cpu import GP_REGS
from sentry.errors import SyscallError
from vfs import signalfd

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Process, Task

SIG_DFL = 0
SIG_IGN = 1
SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
SS_ONSTACK = 1
SS_DISABLE = 2

SI_USER = 0
SI_KERNEL = 0x80
SI_QUEUE = -1
SI_TKILL = -6
SEGV_MAPERR = 1
SEGV_ACCERR = 2
CLD_EXITED = 1
CLD_KILLED = 2
CLD_DUMPED = 3

UNBLOCKABLE = (1 << (abi.SIGKILL - 1)) | (1 << (abi.SIGSTOP - 1))
DEFAULT_IGNORE = frozenset({abi.SIGCHLD, abi.SIGURG, abi.SIGWINCH, abi.SIGCONT})
DEFAULT_STOP = frozenset({abi.SIGSTOP, abi.SIGTSTP, abi.SIGTTIN, abi.SIGTTOU})
DEFAULT_CORE = frozenset({
    abi.SIGQUIT, abi.SIGILL, abi.SIGTRAP, abi.SIGABRT, abi.SIGBUS, abi.SIGFPE,
    abi.SIGSEGV, abi.SIGXCPU, abi.SIGXFSZ, abi.SIGSYS,
})

# struct sigcontext stores r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp,
# rip, eflags (see _SIGCONTEXT_ORDER at the end of this module).
FXSAVE_SIZE = 512
UCONTEXT_SIZE = 8 + 8 + 24 + 256 + 8
SIGINFO_SIZE = 128


def bit(signo: int) -> int:
    return 1 << (signo - 1)


@attrs.define
class SigInfo:
    signo: int
    code: int = SI_USER
    pid: int = 0
    uid: int = 0
    addr: int = 0
    status: int = 0
    # The whole siginfo as rt_sigqueueinfo's caller wrote it (si_value ...).
    raw: bytes | None = None
    # Sent from outside the sandbox (the host, see sentry.hostsig): the first
    # process is not spared the default action.
    outside: bool = False

    def pack(self) -> bytes:
        if self.raw is not None:
            return struct.pack("<i", self.signo) + self.raw[4:SIGINFO_SIZE]
        head = struct.pack("<iii4x", self.signo, 0, self.code)
        if self.signo in (abi.SIGSEGV, abi.SIGBUS, abi.SIGILL, abi.SIGFPE) and (
            self.code > 0
        ):
            body = struct.pack("<Q", self.addr)
        elif self.signo == abi.SIGCHLD:
            body = struct.pack("<iIi4xqq", self.pid, self.uid, self.status, 0, 0)
        else:
            body = struct.pack("<iI", self.pid, self.uid)
        return (head + body).ljust(SIGINFO_SIZE, b"\0")


def default_action(signo: int) -> str:
    if signo in DEFAULT_IGNORE:
        return "ignore"
    if signo in DEFAULT_STOP:
        return "stop"
    if signo in DEFAULT_CORE:
        return "core"
    return "term"


# --- generation -----------------------------------------------------------------


def _ignored(proc: Process, signo: int, outside: bool = False) -> bool:
    handler = proc.sigactions[signo].handler
    if handler == SIG_DFL and _unkillable(proc) and not outside:
        return True
    return handler == SIG_IGN or (handler == SIG_DFL and signo in DEFAULT_IGNORE)


def _unkillable(proc: Process) -> bool:
    """The first process is the init of the sandbox's pid namespace.

    Linux discards the signals sent to a namespace's init from inside the
    namespace when init left them at their default action, SIGKILL included
    ("the only signals that can be sent to process ID 1, the init process,
    are those for which init has explicitly installed signal handlers"
    - kill(2)). Every sender is inside the sandbox's namespace. CPU faults
    are not sent: they still kill it (see Kernel._run_slice).
    """
    return proc.pid == 1


def send_to_task(kernel: Kernel, task: Task, info: SigInfo) -> None:
    """Generate a signal for one thread."""
    from sentry import jobctl

    if task.exited:
        return
    jobctl.prepare_signal(kernel, task.process, info.signo)
    if _ignored(task.process, info.signo, info.outside) and not (
        task.sigmask & bit(info.signo)
    ):
        return
    if info.signo < abi.SIGRTMIN and any(p.signo == info.signo for p in task.pending):
        return
    task.pending.append(info)
    kernel.signals_pending = True
    signalfd.signal_generated(task.process)
    _wake(kernel, task, info.signo)


def send_to_process(kernel: Kernel, proc: Process, info: SigInfo) -> None:
    """Generate a signal for a process; one of its threads will take it."""
    from sentry import jobctl

    if proc.zombie:
        return
    jobctl.prepare_signal(kernel, proc, info.signo)
    blocked_everywhere = all(t.sigmask & bit(info.signo) for t in proc.threads)
    if _ignored(proc, info.signo, info.outside) and not blocked_everywhere:
        return
    if info.signo < abi.SIGRTMIN and any(p.signo == info.signo
                                         for p in proc.shared_pending):
        return
    proc.shared_pending.append(info)
    kernel.signals_pending = True
    signalfd.signal_generated(proc)
    for task in proc.threads:
        if not task.exited and not task.sigmask & bit(info.signo):
            _wake(kernel, task, info.signo)
            break


def broken_pipe(task: Task) -> None:
    """A write found no reader: SIGPIPE for the writer's process."""
    proc = task.process
    info = SigInfo(abi.SIGPIPE, SI_USER, proc.pid, proc.creds.uid)
    send_to_process(proc.kernel, proc, info)


def _wake(kernel: Kernel, task: Task, signo: int) -> None:
    blocked = task.sigmask & bit(signo) and signo not in (abi.SIGKILL, abi.SIGSTOP)
    if blocked and not task.waiting_for_signals & bit(signo):
        return
    if task.process.stopped and signo != abi.SIGKILL:
        return  # taken once the group continues
    if kernel.sched.interrupt(task):
        task.interrupted = True


# --- delivery ---------------------------------------------------------------------


def next_signal(task: Task) -> SigInfo | None:
    """Take the lowest-numbered deliverable pending signal, if any."""
    best: tuple[list[SigInfo], SigInfo] | None = None
    for queue in (task.pending, task.process.shared_pending):
        for info in queue:
            if task.sigmask & bit(info.signo):
                continue
            if best is None or info.signo < best[1].signo:
                best = (queue, info)
    if best is None:
        return None
    best[0].remove(best[1])
    return best[1]


def has_deliverable(task: Task) -> bool:
    mask = task.sigmask
    return any(not mask & bit(i.signo) for i in task.pending) or any(
        not mask & bit(i.signo) for i in task.process.shared_pending
    )


def deliver(kernel: Kernel, task: Task, in_syscall_rip: int | None,
            syscall_result: int | None, restartable: bool) -> bool:
    """Deliver pending signals to ``task``, whose registers are on its CPU.

    ``in_syscall_rip`` is the address of the syscall instruction when called
    from inside the syscall hook (RIP writes there take Unicorn's +2 into
    account), else None. ``syscall_result`` is what the interrupted syscall
    returns (already in RAX unless None); ``restartable`` says the syscall was
    parked and can run again (RIP is on its instruction, RAX its number).
    Returns True when the task was ended or stopped.
    """
    from sentry import jobctl, lifecycle

    # Like Linux, take every deliverable signal now: each handler's frame goes
    # on top of the previous one, so the last signal taken runs first.
    while True:
        info = next_signal(task)
        if info is None:
            return False
        action = task.process.sigactions[info.signo]
        if action.handler == SIG_IGN and info.signo != abi.SIGKILL:
            continue
        if action.handler == SIG_DFL or info.signo == abi.SIGKILL:
            kind = default_action(info.signo)
            if kind == "ignore" or (_unkillable(task.process) and not info.outside):
                # A signal init blocked when it arrived ends here too.
                continue
            if kind == "stop":
                if jobctl.discards_stop(kernel, task, info.signo):
                    continue
                # The rest stays pending until the group continues.
                jobctl.stop_group(kernel, task, info.signo)
                if in_syscall_rip is not None:
                    task.mm.cpu.stop()
                return True
            status = info.signo | (0x80 if kind == "core" else 0)
            lifecycle.exit_group(kernel, task, status)
            return True
        if not _enter_handler(kernel, task, info, action, in_syscall_rip,
                              syscall_result, restartable):
            return True
        # What the syscall returns is in the first frame now.
        syscall_result, restartable = None, False


def _enter_handler(kernel: Kernel, task: Task, info: SigInfo, action: object,
                   in_syscall_rip: int | None, syscall_result: int | None,
                   restartable: bool) -> bool:
    """Build the frame and point the CPU at the handler; False if the task
    was killed instead (no room for the frame)."""
    cpu = task.mm.cpu
    regs = cpu.save_gp()
    names = dict(zip(GP_REGS, range(len(GP_REGS)), strict=True))
    rip_i, rax_i = names[UC_X86_REG_RIP], names[UC_X86_REG_RAX]

    # Where the interrupted code goes on after the handler returns: inside the
    # syscall hook Unicorn adds 2 to RIP when the hook returns (RIP is on the
    # syscall instruction, or where rt_sigreturn or an earlier frame put it).
    if in_syscall_rip is not None:
        regs[rip_i] += 2
        if syscall_result is not None:
            regs[rax_i] = syscall_result & 0xFFFFFFFFFFFFFFFF
    if restartable:
        if task.io_done:
            # A write that moved data returns how much, restart or not.
            regs[rip_i] += 2
            regs[rax_i] = task.io_done
            task.io_done = 0
        elif action.flags & SA_RESTART:  # type: ignore[attr-defined]
            pass  # RIP and RAX still name the syscall: it runs again.
        else:
            regs[rip_i] += 2
            regs[rax_i] = -abi.EINTR & 0xFFFFFFFFFFFFFFFF

    # Choose the stack: the alternate one for SA_ONSTACK unless already on it.
    rsp = regs[names[UC_X86_REG_RSP]]
    ss_sp, ss_flags, ss_size = task.altstack
    on_alt = ss_size and ss_sp < rsp <= ss_sp + ss_size
    if action.flags & SA_ONSTACK and not ss_flags & SS_DISABLE and not on_alt:  # type: ignore[attr-defined]
        sp = ss_sp + ss_size
    else:
        sp = rsp - 128  # the red zone stays untouched
    fp_addr = (sp - FXSAVE_SIZE) & ~63
    frame = (fp_addr - (8 + UCONTEXT_SIZE + SIGINFO_SIZE)) & ~15
    frame -= 8  # as if a call pushed the return address
    uc_addr = frame + 8
    info_addr = uc_addr + UCONTEXT_SIZE

    # The mask to restore: the one rt_sigsuspend replaced, if it did.
    old_mask = task.sigmask if task.saved_sigmask is None else task.saved_sigmask
    task.saved_sigmask = None

    # Write the frame: restorer, ucontext, siginfo, FP state.
    mm = task.mm
    try:
        mm.write(fp_addr, _fxsave(cpu))
        sc = struct.pack(
            "<18Q4H4QQ8Q",
            *[regs[names[r]] for r in _SIGCONTEXT_ORDER],
            0x33, 0, 0, 0x2B,  # cs, gs, fs, ss
            0, 0, old_mask, info.addr,  # err, trapno, oldmask, cr2
            fp_addr, *([0] * 8),
        )
        ucontext = struct.pack("<QQQiiQ", 0, 0, ss_sp, ss_flags | (SS_ONSTACK if on_alt else 0), 0,
                               ss_size) + sc + struct.pack("<Q", old_mask)
        restorer = action.restorer  # type: ignore[attr-defined]
        mm.write(frame, struct.pack("<Q", restorer) + ucontext + info.pack())
    except SyscallError:
        # No room for the frame: Linux kills with SIGSEGV.
        from sentry import lifecycle

        lifecycle.exit_group(kernel, task, abi.SIGSEGV | 0x80)
        return False

    # Block what the action says, then enter the handler.
    if not action.flags & SA_NODEFER:  # type: ignore[attr-defined]
        task.sigmask |= bit(info.signo)
    task.sigmask = (task.sigmask | action.mask) & ~UNBLOCKABLE  # type: ignore[attr-defined]
    if action.flags & SA_RESETHAND:  # type: ignore[attr-defined]
        from sentry.task import SigAction

        task.process.sigactions[info.signo] = SigAction()
    cpu.write_reg(UC_X86_REG_RSP, frame)
    cpu.write_reg(UC_X86_REG_RDI, info.signo)
    cpu.write_reg(UC_X86_REG_RSI, info_addr)
    cpu.write_reg(UC_X86_REG_RDX, uc_addr)
    cpu.write_reg(UC_X86_REG_RAX, 0)
    handler = action.handler  # type: ignore[attr-defined]
    if in_syscall_rip is not None:
        cpu.set_rip_in_syscall(handler)
    else:
        cpu.write_reg(UC_X86_REG_RIP, handler)
        task.resume_rip = handler
    return True


def sigreturn(kernel: Kernel, task: Task) -> int:
    """rt_sigreturn(2): restore what the frame at RSP-8 saved; returns RAX."""
    cpu = task.mm.cpu
    mm = task.mm
    rsp = cpu.read_reg(UC_X86_REG_RSP)
    uc_addr = rsp  # the handler's ret popped the return address
    raw = mm.read(uc_addr, UCONTEXT_SIZE)
    values = struct.unpack_from("<18Q", raw, 40)
    fp_addr = struct.unpack_from("<Q", raw, 40 + 144 + 8 + 32)[0]
    mask = struct.unpack_from("<Q", raw, 40 + 256)[0]
    regs = cpu.save_gp()
    names = dict(zip(GP_REGS, range(len(GP_REGS)), strict=True))
    for reg, value in zip(_SIGCONTEXT_ORDER, values, strict=True):
        regs[names[reg]] = value
    rip = regs[names[UC_X86_REG_RIP]]
    rax = regs[names[UC_X86_REG_RAX]]
    cpu.restore_gp(regs)
    if fp_addr:
        _fxrstor(cpu, mm.read(fp_addr, FXSAVE_SIZE))
    task.sigmask = mask & ~UNBLOCKABLE
    cpu.set_rip_in_syscall(rip)
    return rax


def _fxsave(cpu: object) -> bytes:
    """The fxsave image of the CPU's x87 and SSE state.

    The x87 registers go in stack order (ST0 first), each as its 80-bit
    value in a 16-byte slot; the tag byte has one bit per physical register,
    set when the register is not empty (tag 11 in the full tag word).
    """
    uc = cpu.uc  # type: ignore[attr-defined]
    fsw = int(uc.reg_read(UC_X86_REG_FPSW))
    full_tags = int(uc.reg_read(UC_X86_REG_FPTAG))
    tags = sum(1 << i for i in range(8) if (full_tags >> (2 * i)) & 3 != 3)
    head = struct.pack("<HHBxHQQII", int(uc.reg_read(UC_X86_REG_FPCW)), fsw, tags, 0,
                       0, 0, int(uc.reg_read(UC_X86_REG_MXCSR)), 0xFFFF)
    top = (fsw >> 11) & 7
    st = b"".join(
        struct.pack("<QH6x", *uc.reg_read(UC_X86_REG_FP0 + ((top + i) & 7)))
        for i in range(8)
    )
    xmm = b"".join(
        int(uc.reg_read(UC_X86_REG_XMM0 + i)).to_bytes(16, "little") for i in range(16)
    )
    return (head + st + xmm).ljust(FXSAVE_SIZE, b"\0")


def _fxrstor(cpu: object, image: bytes) -> None:
    uc = cpu.uc  # type: ignore[attr-defined]
    fcw, fsw, tags = struct.unpack_from("<HHB", image, 0)
    mxcsr = struct.unpack_from("<I", image, 24)[0]
    uc.reg_write(UC_X86_REG_FPCW, fcw)
    uc.reg_write(UC_X86_REG_FPSW, fsw)
    uc.reg_write(UC_X86_REG_FPTAG, sum(
        (0 if tags >> i & 1 else 3) << (2 * i) for i in range(8)
    ))
    top = (fsw >> 11) & 7
    for i in range(8):
        mantissa, exponent = struct.unpack_from("<QH", image, 32 + 16 * i)
        uc.reg_write(UC_X86_REG_FP0 + ((top + i) & 7), (mantissa, exponent))
    # Linux refuses a frame whose MXCSR sets reserved bits; they are dropped.
    uc.reg_write(UC_X86_REG_MXCSR, mxcsr & 0xFFFF)
    for i in range(16):
        off = 160 + 16 * i
        uc.reg_write(UC_X86_REG_XMM0 + i, int.from_bytes(image[off : off + 16], "little"))


def _order() -> tuple[int, ...]:
    from unicorn import x86_const as x

    return (
        x.UC_X86_REG_R8, x.UC_X86_REG_R9, x.UC_X86_REG_R10, x.UC_X86_REG_R11,
        x.UC_X86_REG_R12, x.UC_X86_REG_R13, x.UC_X86_REG_R14, x.UC_X86_REG_R15,
        x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RBP, x.UC_X86_REG_RBX,
        x.UC_X86_REG_RDX, x.UC_X86_REG_RAX, x.UC_X86_REG_RCX, x.UC_X86_REG_RSP,
        x.UC_X86_REG_RIP, x.UC_X86_REG_EFLAGS,
    )


_SIGCONTEXT_ORDER = _order()

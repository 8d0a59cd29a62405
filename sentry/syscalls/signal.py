"""Signal syscalls: actions, masks, the alternate stack, sending and waiting.

Generation and delivery live in :mod:`sentry.signals`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn.x86_const import UC_X86_REG_RSP

from sentry import abi, signals
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.table import syscall
from sentry.syscalls.time import read_timespec
from sentry.task import SigAction
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.task import Task

SIG_BLOCK = 0
SIG_UNBLOCK = 1
SIG_SETMASK = 2
SS_ONSTACK = 1
SS_DISABLE = 2
MINSIGSTKSZ = 2048
_UNBLOCKABLE = (1 << (abi.SIGKILL - 1)) | (1 << (abi.SIGSTOP - 1))
_sigaction = struct.Struct("<QQQQ")  # handler, flags, restorer, mask


def rt_sigaction(t: Task, signo: int, act: int, oldact: int, size: int, *_: int) -> int:
    """rt_sigaction(2)."""
    signo = s32(signo)
    if size != 8:
        raise SyscallError(abi.EINVAL)
    if not 1 <= signo <= abi.NSIG:
        raise SyscallError(abi.EINVAL)
    slot = t.process.sigactions[signo]
    new = None
    if act:
        handler, flags, restorer, mask = _sigaction.unpack(t.mm.read(act, 32))
        if signo in (abi.SIGKILL, abi.SIGSTOP):
            raise SyscallError(abi.EINVAL)
        new = SigAction(handler, flags, restorer, mask & ~_UNBLOCKABLE)
    if oldact:
        t.mm.write(oldact, _sigaction.pack(slot.handler, slot.flags, slot.restorer,
                                           slot.mask))
    if new is not None:
        t.process.sigactions[signo] = new
    return 0


def rt_sigprocmask(t: Task, how: int, set_: int, oldset: int, size: int, *_: int) -> int:
    """rt_sigprocmask(2)."""
    if size != 8:
        raise SyscallError(abi.EINVAL)
    old = t.sigmask
    if set_:
        mask = t.mm.read_u64(set_)
        how = s32(how)
        if how == SIG_BLOCK:
            new = old | mask
        elif how == SIG_UNBLOCK:
            new = old & ~mask
        elif how == SIG_SETMASK:
            new = mask
        else:
            raise SyscallError(abi.EINVAL)
        t.sigmask = new & ~_UNBLOCKABLE
    if oldset:
        t.mm.write_u64(oldset, old)
    return 0


def rt_sigpending(t: Task, addr: int, size: int, *_: int) -> int:
    """rt_sigpending(2): pending and blocked, for this thread or its process."""
    if size > 8:
        raise SyscallError(abi.EINVAL)
    pending = 0
    for info in [*t.pending, *t.process.shared_pending]:
        pending |= signals.bit(info.signo)
    t.mm.write(addr, (pending & t.sigmask).to_bytes(8, "little")[:size])
    return 0


def rt_sigsuspend(t: Task, mask: int, size: int, *_: int) -> int:
    """rt_sigsuspend(2): wait with a temporary mask; always EINTR."""
    if size != 8:
        raise SyscallError(abi.EINVAL)
    if t.saved_sigmask is None:
        t.saved_sigmask = t.sigmask
        t.sigmask = t.mm.read_u64(mask) & ~_UNBLOCKABLE
    if signals.has_deliverable(t):
        # The handler runs with the temporary mask; the old one comes back
        # with rt_sigreturn because the frame saves it.
        raise SyscallError(abi.EINTR)
    # Never restarted, SA_RESTART or not: the call ends with EINTR.
    raise WouldBlock(None, restart=False)


def start_temporary_mask(t: Task, addr: int, size: int) -> bool:
    """ppoll, pselect6, epoll_pwait: put the mask at ``addr`` in force while
    the call waits; False when there is none (``addr`` is NULL).

    The caller's mask is kept in ``saved_sigmask``, as rt_sigsuspend keeps
    it: a handler that interrupts the call runs with the temporary mask and
    its frame restores the caller's. A call that runs again after a wakeup
    finds the temporary mask in force already.
    """
    if not addr:
        return False
    if size != 8:
        raise SyscallError(abi.EINVAL)
    if t.saved_sigmask is None:
        mask = t.mm.read_u64(addr)
        t.saved_sigmask = t.sigmask
        t.sigmask = mask & ~_UNBLOCKABLE
    return True


def end_temporary_mask(t: Task) -> None:
    """The call ends without a handler: the caller's mask comes back now."""
    if t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None


def pause(t: Task, *_: int) -> int:
    """pause(2): returns EINTR once a handler ran, even under SA_RESTART."""
    if signals.has_deliverable(t):
        raise SyscallError(abi.EINTR)
    raise WouldBlock(None, restart=False)


def rt_sigtimedwait(t: Task, set_: int, info: int, timeout: int, size: int,
                    *_: int) -> int:
    """rt_sigtimedwait(2): take a pending signal from ``set`` without a handler."""
    if size != 8:
        raise SyscallError(abi.EINVAL)
    wanted = t.mm.read_u64(set_) & ~_UNBLOCKABLE
    kernel = t.process.kernel
    for queue in (t.pending, t.process.shared_pending):
        for item in queue:
            if wanted & signals.bit(item.signo):
                queue.remove(item)
                if info:
                    t.mm.write(info, item.pack())
                t.wait_deadline_ns = None
                return item.signo
    now = kernel.clock.monotonic_ns()
    if timeout:
        if t.wait_deadline_ns is None:
            t.wait_deadline_ns = now + read_timespec(t, timeout)
        if now >= t.wait_deadline_ns:
            t.wait_deadline_ns = None
            raise SyscallError(abi.EAGAIN)
    # Signals in the set wake us though they are blocked; a handler for
    # another one ends the wait with EINTR, SA_RESTART or not (as Linux).
    t.waiting_for_signals = wanted
    raise WouldBlock(None, deadline_ns=t.wait_deadline_ns, restart=False)


def sigaltstack(t: Task, ss: int, old: int, *_: int) -> int:
    """sigaltstack(2)."""
    sp, flags, size = t.altstack

    # SS_ONSTACK is not a setting but a report: the thread runs on the stack.
    rsp = t.mm.cpu.read_reg(UC_X86_REG_RSP)
    on_stack = size and sp < rsp <= sp + size
    if on_stack:
        flags |= SS_ONSTACK
    new = None
    if ss:
        # "EPERM: An attempt was made to change the alternate signal stack
        # while it was active" - sigaltstack(2).
        if on_stack:
            raise SyscallError(abi.EPERM)
        nsp, nflags, _pad, nsize = struct.unpack("<QiiQ", t.mm.read(ss, 24))
        if nflags & ~(SS_DISABLE | (1 << 31)):
            raise SyscallError(abi.EINVAL)
        if not nflags & SS_DISABLE and nsize < MINSIGSTKSZ:
            raise SyscallError(abi.ENOMEM)
        new = (nsp, nflags, nsize) if not nflags & SS_DISABLE else (0, SS_DISABLE, 0)
    if old:
        t.mm.write(old, struct.pack("<QiiQ", sp, flags, 0, size))
    if new is not None:
        t.altstack = new
    return 0


def _info(t: Task, signo: int, code: int = signals.SI_USER) -> signals.SigInfo:
    return signals.SigInfo(signo, code, t.process.pid, t.process.creds.uid)


def _check_signo(signo: int) -> None:
    if not 0 <= signo <= abi.NSIG:
        raise SyscallError(abi.EINVAL)


def kill(t: Task, pid: int, signo: int, *_: int) -> int:
    """kill(2)."""
    pid, signo = s32(pid), s32(signo)
    _check_signo(signo)
    kernel = t.process.kernel
    if pid > 0:
        targets = [p for p in [kernel.find_process(pid)] if p is not None]
    elif pid == 0:
        targets = [p for p in kernel.processes() if p.pgid == t.process.pgid]
    elif pid == -1:
        # Everyone but init and the caller (Linux leaves the caller out).
        targets = [p for p in kernel.processes() if p.pid > 1 and p is not t.process]
    else:
        targets = [p for p in kernel.processes() if p.pgid == -pid]
    targets = [p for p in targets if not p.zombie] or (
        [p for p in targets if p.zombie] and [None]  # type: ignore[list-item]
    )
    if not targets:
        raise SyscallError(abi.ESRCH)
    for proc in targets:
        if proc is not None and signo:
            signals.send_to_process(kernel, proc, _info(t, signo))
    return 0


def _thread(t: Task, tid: int, tgid: int | None) -> Task:
    for proc in t.process.kernel.processes():
        if tgid is not None and proc.pid != tgid:
            continue
        for task in proc.threads:
            if task.tid == tid and not task.exited:
                return task
    raise SyscallError(abi.ESRCH)


def tgkill(t: Task, tgid: int, tid: int, signo: int, *_: int) -> int:
    """tgkill(2)."""
    tgid, tid, signo = s32(tgid), s32(tid), s32(signo)
    if tgid <= 0 or tid <= 0:
        raise SyscallError(abi.EINVAL)
    _check_signo(signo)
    target = _thread(t, tid, tgid)
    if signo:
        signals.send_to_task(t.process.kernel, target, _info(t, signo, signals.SI_TKILL))
    return 0


def tkill(t: Task, tid: int, signo: int, *_: int) -> int:
    """tkill(2)."""
    tid, signo = s32(tid), s32(signo)
    if tid <= 0:
        raise SyscallError(abi.EINVAL)
    _check_signo(signo)
    target = _thread(t, tid, None)
    if signo:
        signals.send_to_task(t.process.kernel, target, _info(t, signo, signals.SI_TKILL))
    return 0


def queued_info(t: Task, signo: int, info: int, pid: int) -> signals.SigInfo:
    """The siginfo a sigqueue caller supplies, as rt_sigqueueinfo checks it."""
    raw = t.mm.read(info, signals.SIGINFO_SIZE)
    code = struct.unpack_from("<i", raw, 8)[0]

    # "the caller cannot pretend to be the kernel or kill(2)" unless it signals
    # itself: si_code must be negative (SI_QUEUE ...) - rt_sigqueueinfo(2).
    if (code >= 0 or code == signals.SI_TKILL) and pid != t.process.pid:
        raise SyscallError(abi.EPERM)
    return signals.SigInfo(signo, code, raw=raw)


def rt_sigqueueinfo(t: Task, pid: int, signo: int, info: int, *_: int) -> int:
    """rt_sigqueueinfo(2)."""
    pid, signo = s32(pid), s32(signo)
    _check_signo(signo)
    queued = queued_info(t, signo, info, pid)
    proc = t.process.kernel.find_process(pid)
    if proc is None or proc.zombie:
        raise SyscallError(abi.ESRCH)
    if signo:
        signals.send_to_process(t.process.kernel, proc, queued)
    return 0


def rt_tgsigqueueinfo(t: Task, tgid: int, tid: int, signo: int, info: int,
                      *_: int) -> int:
    """rt_tgsigqueueinfo(2)."""
    tgid, tid, signo = s32(tgid), s32(tid), s32(signo)
    if tgid <= 0 or tid <= 0:
        raise SyscallError(abi.EINVAL)
    _check_signo(signo)
    queued = queued_info(t, signo, info, tgid)
    target = _thread(t, tid, tgid)
    if signo:
        signals.send_to_task(t.process.kernel, target, queued)
    return 0


def rt_sigreturn(t: Task, *_: int) -> int:
    """rt_sigreturn(2): back from a handler to what it interrupted."""
    return signals.sigreturn(t.process.kernel, t)


SYSCALLS = [
    syscall("rt_sigaction", rt_sigaction),
    syscall("rt_sigprocmask", rt_sigprocmask),
    syscall("rt_sigpending", rt_sigpending),
    syscall("sigaltstack", sigaltstack),
    syscall("rt_sigreturn", rt_sigreturn, "x87 registers are not saved in the frame",
            partial=True),
    syscall("rt_sigsuspend", rt_sigsuspend),
    syscall("pause", pause),
    syscall("rt_sigtimedwait", rt_sigtimedwait),
    syscall("rt_sigqueueinfo", rt_sigqueueinfo),
    syscall("rt_tgsigqueueinfo", rt_tgsigqueueinfo),
    syscall("kill", kill, "stop and continue signals are ignored until job control",
            partial=True),
    syscall("tkill", tkill),
    syscall("tgkill", tgkill),
]

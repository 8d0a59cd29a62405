"""Signal state: actions, masks, the alternate stack.

Actions and masks are kept exactly as Linux keeps them so programs that set
them up at start-up work; delivery to handlers comes with processes.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.table import missing, syscall
from sentry.task import SigAction

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
    """rt_sigpending(2): nothing is pending until signals can be sent."""
    if size > 8:
        raise SyscallError(abi.EINVAL)
    t.mm.write(addr, bytes(size))
    return 0


def sigaltstack(t: Task, ss: int, old: int, *_: int) -> int:
    """sigaltstack(2)."""
    sp, flags, size = t.altstack
    new = None
    if ss:
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


# Signals whose default action is to ignore, stop or continue (signal(7)).
_DEFAULT_IGNORE = {abi.SIGCHLD, abi.SIGURG, abi.SIGWINCH, abi.SIGCONT}
_DEFAULT_STOP = {abi.SIGSTOP, abi.SIGTSTP, abi.SIGTTIN, abi.SIGTTOU}
_CORE = {abi.SIGQUIT, abi.SIGILL, abi.SIGTRAP, abi.SIGABRT, abi.SIGBUS, abi.SIGFPE,
         abi.SIGSEGV, abi.SIGXCPU, abi.SIGXFSZ, abi.SIGSYS}
SIG_DFL = 0
SIG_IGN = 1


def _send_to_self(t: Task, signo: int) -> int:
    """Act on a signal a task sends to its own process, as far as we can yet."""
    if signo == 0:
        return 0
    if not 1 <= signo <= abi.NSIG:
        raise SyscallError(abi.EINVAL)
    action = t.process.sigactions[signo]
    blocked = t.sigmask & (1 << (signo - 1)) and signo not in (abi.SIGKILL, abi.SIGSTOP)
    if action.handler == SIG_IGN or blocked:
        # TODO: a blocked signal should stay pending until it is unblocked.
        return 0
    if action.handler == SIG_DFL:
        if signo in _DEFAULT_IGNORE or signo in _DEFAULT_STOP:
            return 0
        core = 0x80 if signo in _CORE else 0
        t.process.kernel.exit_group(t, signo | core)
        return 0
    # TODO: running a guest handler needs signal frames (processes issue).
    raise SyscallError(abi.ENOSYS)


def kill(t: Task, pid: int, signo: int, *_: int) -> int:
    """kill(2): only the sandbox's own process can be named yet."""
    pid = s32(pid)
    if pid in (t.process.pid, 0, -1, -t.process.pgid):
        return _send_to_self(t, s32(signo))
    raise SyscallError(abi.ESRCH)


def tgkill(t: Task, tgid: int, tid: int, signo: int, *_: int) -> int:
    """tgkill(2)."""
    if s32(tgid) <= 0 or s32(tid) <= 0:
        raise SyscallError(abi.EINVAL)
    if s32(tgid) != t.process.pid or s32(tid) not in [x.tid for x in t.process.threads]:
        raise SyscallError(abi.ESRCH)
    return _send_to_self(t, s32(signo))


def tkill(t: Task, tid: int, signo: int, *_: int) -> int:
    """tkill(2)."""
    if s32(tid) <= 0:
        raise SyscallError(abi.EINVAL)
    if s32(tid) not in [x.tid for x in t.process.threads]:
        raise SyscallError(abi.ESRCH)
    return _send_to_self(t, s32(signo))


SYSCALLS = [
    syscall("rt_sigaction", rt_sigaction, "actions are stored; delivery not yet",
            partial=True),
    syscall("rt_sigprocmask", rt_sigprocmask),
    syscall("rt_sigpending", rt_sigpending, "no signal is ever pending yet", partial=True),
    syscall("sigaltstack", sigaltstack),
    missing("rt_sigreturn", "signal delivery is not implemented yet"),
    missing("rt_sigsuspend", "signal delivery is not implemented yet"),
    missing("rt_sigtimedwait", "signal delivery is not implemented yet"),
    missing("rt_sigqueueinfo", "signal delivery is not implemented yet"),
    syscall("kill", kill, "own process only; default actions and SIG_IGN only",
            partial=True),
    syscall("tkill", tkill, "own threads only; default actions and SIG_IGN only",
            partial=True),
    syscall("tgkill", tgkill, "own threads only; default actions and SIG_IGN only",
            partial=True),
]

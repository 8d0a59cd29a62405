"""Event descriptors: epoll, timerfd, signalfd and pidfd.

The objects live in vfs (:mod:`vfs.epoll`, :mod:`vfs.timerfd`,
:mod:`vfs.signalfd`, :mod:`vfs.pidfd`); these handlers decode the guest's
structures, check arguments in the order Linux checks them, and wait the way
poll does (:func:`sentry.syscalls.fd.readiness_wait`): parked on the
instance's queue and host descriptor, until a deadline, never restarted after
a signal handler.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sentry import abi, signals
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.fd import readiness_wait, wait_deadline, with_temporary_mask
from sentry.syscalls.table import syscall
from vfs import epoll, pidfd, signalfd, timerfd
from vfs.core import OpenFile

if TYPE_CHECKING:
    from sentry.task import Process, Task

_timespec = struct.Struct("<qq")
_UNBLOCKABLE = signals.bit(abi.SIGKILL) | signals.bit(abi.SIGSTOP)


def _file(t: Task, fd: int) -> OpenFile:
    file = t.process.fds.get(s32(fd))
    # O_PATH descriptors are not files to these calls (fdget refuses them).
    if file.flags & abi.O_PATH:
        raise SyscallError(abi.EBADF)
    return file


# --- epoll -------------------------------------------------------------------


def epoll_create1(t: Task, flags: int, *_: int) -> int:
    """epoll_create1(2)."""
    flags = s32(flags)
    if flags & ~epoll.EPOLL_CLOEXEC:
        raise SyscallError(abi.EINVAL)
    ep = epoll.EventPoll(0)
    return t.process.fds.install(ep, bool(flags & epoll.EPOLL_CLOEXEC))


def epoll_create(t: Task, size: int, *_: int) -> int:
    """epoll_create(2): ``size`` only has to be positive."""
    if s32(size) <= 0:
        raise SyscallError(abi.EINVAL)
    return epoll_create1(t, 0)


def epoll_ctl(t: Task, epfd: int, op: int, fd: int, event: int, *_: int) -> int:
    """epoll_ctl(2)."""
    op = s32(op)

    # Every operation but EPOLL_CTL_DEL reads the event first.
    events = data = 0
    if op != epoll.EPOLL_CTL_DEL:
        events, data = epoll.epoll_event.unpack(t.mm.read(event, 12))

    # Both descriptors, then what the target must be.
    ep = _file(t, epfd)
    target = _file(t, fd)
    if not epoll.can_poll(target):
        raise SyscallError(abi.EPERM)
    if target is ep or not isinstance(ep, epoll.EventPoll):
        raise SyscallError(abi.EINVAL)

    # "EPOLLEXCLUSIVE was specified in event and fd refers to an epoll
    # instance", or with flags it does not go with, or with EPOLL_CTL_MOD, is
    # EINVAL - epoll_ctl(2).
    if op != epoll.EPOLL_CTL_DEL and events & epoll.EPOLLEXCLUSIVE:
        if op == epoll.EPOLL_CTL_MOD:
            raise SyscallError(abi.EINVAL)
        if op == epoll.EPOLL_CTL_ADD and (
            isinstance(target, epoll.EventPoll)
            or events & ~epoll.EPOLLEXCLUSIVE_OK_BITS
        ):
            raise SyscallError(abi.EINVAL)

    # Instances watching each other: no cycles, no deep chains.
    if op == epoll.EPOLL_CTL_ADD and isinstance(target, epoll.EventPoll):
        epoll.check_nesting(ep, target)

    # Act on the interest keyed by (description, number).
    ep.prune()
    item = ep.find(target, s32(fd))
    if op == epoll.EPOLL_CTL_ADD:
        if item is not None:
            raise SyscallError(abi.EEXIST)
        ep.add(target, s32(fd), events, data)
    elif op == epoll.EPOLL_CTL_DEL:
        if item is None:
            raise SyscallError(abi.ENOENT)
        ep.remove(item)
    elif op == epoll.EPOLL_CTL_MOD:
        if item is None:
            raise SyscallError(abi.ENOENT)
        if item.events & epoll.EPOLLEXCLUSIVE:
            raise SyscallError(abi.EINVAL)
        ep.modify(item, events, data)
    else:
        raise SyscallError(abi.EINVAL)
    return 0


def _epoll_wait(t: Task, epfd: int, events: int, maxevents: int,
                timeout_ns: int | None) -> int:
    """What epoll_wait, epoll_pwait and epoll_pwait2 share."""
    # The buffer must hold maxevents events.
    maxevents = s32(maxevents)
    if maxevents <= 0 or maxevents > epoll.EP_MAX_EVENTS:
        raise SyscallError(abi.EINVAL)
    t.mm.check_writable(events, 12 * maxevents)

    # The descriptor must be an epoll instance.
    ep = _file(t, epfd)
    if not isinstance(ep, epoll.EventPoll):
        raise SyscallError(abi.EINVAL)

    # Take what is ready; wait unless there is something or time is up.
    got = ep.take(maxevents)
    if not got and timeout_ns != 0:
        deadline = wait_deadline(t, timeout_ns)
        if deadline is not None:
            forever = timeout_ns is None
            raise readiness_wait(t, [(ep, epoll.EPOLLIN)], None if forever else deadline)
    t.wait_deadline_ns = None
    if got:
        t.mm.write(events, b"".join(epoll.epoll_event.pack(e, d) for e, d in got))
    return len(got)


def _ms(timeout: int) -> int | None:
    ms = s32(timeout)
    return None if ms < 0 else ms * 10**6


def epoll_wait(t: Task, epfd: int, events: int, maxevents: int, timeout: int,
               *_: int) -> int:
    """epoll_wait(2)."""
    return _epoll_wait(t, epfd, events, maxevents, _ms(timeout))


def epoll_pwait(t: Task, epfd: int, events: int, maxevents: int, timeout: int,
                sigmask: int, size: int) -> int:
    """epoll_pwait(2): waits with a temporary signal mask."""
    return with_temporary_mask(
        t, sigmask, size, lambda: _epoll_wait(t, epfd, events, maxevents, _ms(timeout))
    )


def epoll_pwait2(t: Task, epfd: int, events: int, maxevents: int, timeout: int,
                 sigmask: int, size: int) -> int:
    """epoll_pwait2(2): the timeout is a timespec (NULL waits for ever)."""
    timeout_ns = None
    if timeout:
        sec, nsec = _timespec.unpack(t.mm.read(timeout, 16))
        if sec < 0 or not 0 <= nsec < 10**9:
            raise SyscallError(abi.EINVAL)
        timeout_ns = sec * 10**9 + nsec
    return with_temporary_mask(
        t, sigmask, size, lambda: _epoll_wait(t, epfd, events, maxevents, timeout_ns)
    )


# --- timerfd -----------------------------------------------------------------

_itimerspec = struct.Struct("<qqqq")  # interval sec, nsec; value sec, nsec


def _timerfd(t: Task, fd: int) -> timerfd.TimerFd:
    file = _file(t, fd)
    if not isinstance(file, timerfd.TimerFd):
        raise SyscallError(abi.EINVAL)
    return file


def _pack_itimerspec(value_ns: int, interval_ns: int) -> bytes:
    return _itimerspec.pack(interval_ns // 10**9, interval_ns % 10**9,
                            value_ns // 10**9, value_ns % 10**9)


def timerfd_create(t: Task, clockid: int, flags: int, *_: int) -> int:
    """timerfd_create(2)."""
    clockid, flags = s32(clockid), s32(flags)
    if clockid not in timerfd.CLOCKS:
        raise SyscallError(abi.EINVAL)
    if flags & ~(timerfd.TFD_CLOEXEC | timerfd.TFD_NONBLOCK):
        raise SyscallError(abi.EINVAL)

    # The alarm clocks wake a suspended machine: CAP_WAKE_ALARM only.
    alarm = clockid in (timerfd.CLOCK_REALTIME_ALARM, timerfd.CLOCK_BOOTTIME_ALARM)
    if alarm and t.process.creds.euid != 0:
        raise SyscallError(abi.EPERM)
    file = timerfd.TimerFd(t.process.kernel, clockid, flags)
    return t.process.fds.install(file, bool(flags & timerfd.TFD_CLOEXEC))


def timerfd_settime(t: Task, fd: int, flags: int, new: int, old: int, *_: int) -> int:
    """timerfd_settime(2)."""
    # Read the new setting, then check flags and values.
    isec, insec, vsec, vnsec = _itimerspec.unpack(t.mm.read(new, 32))
    flags = s32(flags)
    if flags & ~(timerfd.TFD_TIMER_ABSTIME | timerfd.TFD_TIMER_CANCEL_ON_SET):
        raise SyscallError(abi.EINVAL)
    for sec, nsec in ((isec, insec), (vsec, vnsec)):
        if sec < 0 or not 0 <= nsec < 10**9:
            raise SyscallError(abi.EINVAL)

    # Arm or disarm; report the old setting.
    file = _timerfd(t, fd)
    old_value = file.set(flags, vsec * 10**9 + vnsec, isec * 10**9 + insec)
    if old:
        t.mm.write(old, _pack_itimerspec(*old_value))
    return 0


def timerfd_gettime(t: Task, fd: int, cur: int, *_: int) -> int:
    """timerfd_gettime(2)."""
    file = _timerfd(t, fd)
    t.mm.write(cur, _pack_itimerspec(*file.get()))
    return 0


# --- signalfd ----------------------------------------------------------------


def signalfd4(t: Task, fd: int, mask: int, size: int, flags: int, *_: int) -> int:
    """signalfd4(2): a new signalfd (fd -1) or a new mask for one."""
    # The mask must be a whole sigset; SIGKILL and SIGSTOP are never read.
    if size != 8:
        raise SyscallError(abi.EINVAL)
    sigmask = t.mm.read_u64(mask) & ~_UNBLOCKABLE
    flags = s32(flags)
    if flags & ~(signalfd.SFD_CLOEXEC | signalfd.SFD_NONBLOCK):
        raise SyscallError(abi.EINVAL)

    # fd -1 makes one; any other descriptor must be a signalfd.
    fd = s32(fd)
    if fd == -1:
        file = signalfd.SignalFd(t.process.kernel, sigmask, flags)
        return t.process.fds.install(file, bool(flags & signalfd.SFD_CLOEXEC))
    existing = _file(t, fd)
    if not isinstance(existing, signalfd.SignalFd):
        raise SyscallError(abi.EINVAL)
    existing.set_mask(sigmask)
    return fd


def signalfd_(t: Task, fd: int, mask: int, size: int, *_: int) -> int:
    """signalfd(2)."""
    return signalfd4(t, fd, mask, size, 0)


# --- pidfd -------------------------------------------------------------------


def pidfd_open(t: Task, pid: int, flags: int, *_: int) -> int:
    """pidfd_open(2): the descriptor is always close-on-exec."""
    pid, flags = s32(pid), s32(flags)
    if flags & ~(pidfd.PIDFD_NONBLOCK | pidfd.PIDFD_THREAD) or pid <= 0:
        raise SyscallError(abi.EINVAL)

    # With PIDFD_THREAD any live thread; else the pid must name a process:
    # another thread of one is ENOENT (Linux 6.9 on; EINVAL before).
    kernel = t.process.kernel
    thread = next((task for task in kernel.all_tasks() if task.tid == pid), None)
    if flags & pidfd.PIDFD_THREAD:
        if thread is None:
            raise SyscallError(abi.ESRCH)
        file = pidfd.PidFd(kernel, thread.process, flags, thread)
        return t.process.fds.install(file, True)
    proc = kernel.find_process(pid)
    if proc is None:
        raise SyscallError(abi.ENOENT if thread is not None else abi.ESRCH)
    file = pidfd.PidFd(kernel, proc, flags)
    return t.process.fds.install(file, True)


def pidfd_process(t: Task, fd: int) -> tuple[pidfd.PidFd, Process]:
    """The pidfd at ``fd`` and its process; EBADF for any other descriptor."""
    file = t.process.fds.get(s32(fd))
    if not isinstance(file, pidfd.PidFd):
        raise SyscallError(abi.EBADF)
    return file, file.process


PIDFD_SIGNAL_THREAD = 1 << 0
PIDFD_SIGNAL_THREAD_GROUP = 1 << 1
PIDFD_SIGNAL_PROCESS_GROUP = 1 << 2
_PIDFD_SIGNAL_SCOPES = (
    PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP
)


def pidfd_send_signal(t: Task, fd: int, signo: int, info: int, flags: int,
                      *_: int) -> int:
    """pidfd_send_signal(2)."""
    from sentry.syscalls.signal import queued_info

    signo, flags = s32(signo), s32(flags)

    # At most one scope: the thread, the thread group or the process group.
    if flags & ~_PIDFD_SIGNAL_SCOPES or bin(flags).count("1") > 1:
        raise SyscallError(abi.EINVAL)
    file, proc = pidfd_process(t, fd)
    if not 0 <= signo <= abi.NSIG:
        raise SyscallError(abi.EINVAL)

    # The siginfo, if given, must name the same signal.
    if info:
        sent = queued_info(t, signo, info, proc.pid)
        if sent.pack()[:4] != t.mm.read(info, 4):
            raise SyscallError(abi.EINVAL)
    else:
        sent = signals.SigInfo(signo, signals.SI_USER, t.process.pid, t.process.creds.uid)

    # A reaped process is gone; a zombie takes the signal and ignores it.
    if file.reaped:
        raise SyscallError(abi.ESRCH)
    # A thread's descriptor signals the thread unless told otherwise.
    kernel = t.process.kernel
    if file.thread is not None and not flags:
        flags = PIDFD_SIGNAL_THREAD
    if file.names_a_follower and file.thread is not None and file.thread.exited:
        raise SyscallError(abi.ESRCH)
    if not signo or proc.zombie:
        return 0
    if flags & PIDFD_SIGNAL_THREAD:
        target = file.thread
        if target is None:
            target = next((task for task in proc.threads if task.tid == proc.pid),
                          None)
        if target is None or target.exited:
            raise SyscallError(abi.ESRCH)
        signals.send_to_task(kernel, target, sent)
    elif flags & PIDFD_SIGNAL_PROCESS_GROUP:
        for member in kernel.processes():
            if member.pgid == proc.pgid and not member.zombie:
                signals.send_to_process(kernel, member, sent)
    else:
        signals.send_to_process(kernel, proc, sent)
    return 0


SYSCALLS = [
    syscall("epoll_create", epoll_create),
    syscall("epoll_create1", epoll_create1),
    syscall("epoll_ctl", epoll_ctl),
    syscall("epoll_wait", epoll_wait),
    syscall("epoll_pwait", epoll_pwait),
    syscall("epoll_pwait2", epoll_pwait2),
    syscall("timerfd_create", timerfd_create),
    syscall("timerfd_settime", timerfd_settime, "TFD_TIMER_CANCEL_ON_SET never "
            "cancels: the sandbox's clocks are never set", partial=True),
    syscall("timerfd_gettime", timerfd_gettime),
    syscall("signalfd", signalfd_),
    syscall("signalfd4", signalfd4),
    syscall("pidfd_open", pidfd_open),
    syscall("pidfd_send_signal", pidfd_send_signal),
]

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

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.fd import readiness_wait, wait_deadline, with_temporary_mask
from sentry.syscalls.table import syscall
from vfs import epoll
from vfs.core import OpenFile

if TYPE_CHECKING:
    from sentry.task import Task

_timespec = struct.Struct("<qq")


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


SYSCALLS = [
    syscall("epoll_create", epoll_create),
    syscall("epoll_create1", epoll_create1),
    syscall("epoll_ctl", epoll_ctl, "EPOLLEXCLUSIVE wakes every waiter",
            partial=True),
    syscall("epoll_wait", epoll_wait),
    syscall("epoll_pwait", epoll_pwait),
    syscall("epoll_pwait2", epoll_pwait2),
]

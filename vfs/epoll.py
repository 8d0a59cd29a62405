"""epoll instances: interest lists, ready lists, level and edge triggering.

Theory of operation
-------------------
An :class:`EventPoll` is the open file epoll_create makes. Its interest list
holds one :class:`Interest` per (open file description, descriptor number)
pair added with EPOLL_CTL_ADD, as Linux keys its epitems: the same
description added under two numbers is two interests, and an interest lives
as long as its description, not its number.

Each interest registers a callback on the watched file's ``poll_queue()``,
filtered by the events it wants (plus EPOLLERR and EPOLLHUP, always wanted).
When the file's queue is notified with a matching key, the callback puts the
interest on the *ready list* (once; the list keeps the order in which
interests became ready) and notifies the instance's own queue, which wakes
epoll_wait and whoever polls the epoll file itself (nesting). Files whose
readiness comes from a host descriptor (``poll_host_fd()``) are watched by a
host epoll instance owned by this one, edge-triggered: the scheduler watches
its descriptor, and every look at the instance first takes the host's edges
and marks their interests ready the same way.

epoll_wait takes interests from the head of the ready list and asks each
file's ``poll()`` what is ready now. An interest that reports nothing is
dropped from the list (the event went away). One that reports something is
returned; then

* level-triggered, it goes back on the tail of the list, so the next wait
  looks at it again, and ready descriptors are served round-robin;
* edge-triggered (EPOLLET), it stays off until its file notifies again;
* EPOLLONESHOT, its events are cleared until EPOLL_CTL_MOD arms it again.

EPOLL_CTL_ADD and EPOLL_CTL_MOD look at the file once, so a file already
ready is reported (once, for EPOLLET) without waiting for a change.

Closing: an interest whose description has no descriptor left (``refs`` is
0) is dropped the next time the instance looks at it, which no observer can
tell from Linux dropping it at the close. Closing the epoll file drops every
interest.

An EPOLLEXCLUSIVE interest listens as an exclusive waiter: when its file
notifies, the exclusive interests of several instances are tried in turn and
the first whose instance has a waiter takes the event alone, as Linux wakes
one of them ("one or more" - epoll(7)). An instance nobody waits on queues
the event and lets the next one try.
"""

from __future__ import annotations

import select
import struct
from typing import TYPE_CHECKING

from sentry import abi
from vfs.core import OpenFile, fail
from vfs.devfs import DeviceFile, makedev
from vfs.pipe import anon_inode
from vfs.wait import WaitQueue

if TYPE_CHECKING:
    from collections.abc import Callable

EPOLLIN = 0x001
EPOLLPRI = 0x002
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010
EPOLLRDNORM = 0x040
EPOLLRDBAND = 0x080
EPOLLWRNORM = 0x100
EPOLLWRBAND = 0x200
EPOLLMSG = 0x400
EPOLLRDHUP = 0x2000
EPOLLEXCLUSIVE = 1 << 28
EPOLLWAKEUP = 1 << 29
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
# "EPOLLEXCLUSIVE [...] may be used only with EPOLLIN, EPOLLOUT, EPOLLWAKEUP
# and EPOLLET" besides the always-reported EPOLLERR and EPOLLHUP.
EPOLLEXCLUSIVE_OK_BITS = (
    EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE
)
EPOLL_CTL_ADD = 1
EPOLL_CTL_DEL = 2
EPOLL_CTL_MOD = 3
EPOLL_CLOEXEC = abi.O_CLOEXEC
# The most epoll instances in a chain of instances watching each other.
EP_MAX_NESTS = 4
# INT_MAX / sizeof(struct epoll_event)
EP_MAX_EVENTS = 0x7FFFFFFF // 12

epoll_event = struct.Struct("<IQ")  # packed on x86-64: events, data

# What the host epoll watches for on a host descriptor.
_HOST_EVENTS = EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP


class Interest:
    """One entry of an interest list (Linux's epitem)."""

    def __init__(self, ep: EventPoll, file: OpenFile, fd: int, events: int,
                 data: int) -> None:
        self.ep = ep
        self.file = file
        self.fd = fd
        self.events = events
        self.data = data
        self.queue = file.poll_queue()
        self.host_fd = file.poll_host_fd()
        self.callback: Callable[[], bool] = self._notified

    @property
    def armed(self) -> bool:
        """False for a EPOLLONESHOT interest that fired and was not re-armed."""
        return bool(self.events & ~EP_PRIVATE_BITS)

    @property
    def stale(self) -> bool:
        """The watched description has no descriptor left."""
        return self.file.refs <= 0

    def _notified(self) -> bool:
        """The file notified: queue this interest; for an exclusive one,
        whether a task waits on the instance to take the event."""
        if not self.armed:
            return False
        waited_on = len(self.ep.queue) > 0
        self.ep.mark_ready(self)
        return waited_on

    def listen(self) -> None:
        """Hear the file's notifications that concern our events."""
        if self.queue is not None:
            self.queue.remove(self.callback)
            exclusive = bool(self.events & EPOLLEXCLUSIVE)
            self.queue.add(self.callback, self.events & ~EP_PRIVATE_BITS, exclusive)

    def stop_listening(self) -> None:
        if self.queue is not None:
            self.queue.remove(self.callback)


class EventPoll(OpenFile):
    """An epoll instance (epoll_create1(2))."""

    seekable = False

    def __init__(self, flags: int) -> None:
        super().__init__(anon_inode(), abi.O_RDWR | flags, "anon_inode:[eventpoll]")
        self.interests: dict[tuple[OpenFile, int], Interest] = {}
        self.ready: dict[Interest, None] = {}  # an ordered set
        self.queue = WaitQueue()
        # Epoll instances with an interest in this one (for loop checks).
        self.watched_by: dict[EventPoll, int] = {}
        self._host: select.epoll | None = None
        self._host_interests: dict[int, list[Interest]] = {}

    # --- the interest list -------------------------------------------------

    def find(self, file: OpenFile, fd: int) -> Interest | None:
        return self.interests.get((file, fd))

    def add(self, file: OpenFile, fd: int, events: int, data: int) -> None:
        """EPOLL_CTL_ADD of a new (file, fd)."""
        self.prune()
        item = Interest(self, file, fd, events | EPOLLERR | EPOLLHUP, data)
        self.interests[(file, fd)] = item
        item.listen()
        self._host_add(item)
        if isinstance(file, EventPoll):
            file.watched_by[self] = file.watched_by.get(self, 0) + 1
        self._look(item)

    def modify(self, item: Interest, events: int, data: int) -> None:
        """EPOLL_CTL_MOD: new events and data, and a fresh look at the file."""
        item.events = events | EPOLLERR | EPOLLHUP
        item.data = data
        item.listen()
        self._host_update(item.host_fd)
        self._look(item)

    def remove(self, item: Interest) -> None:
        """EPOLL_CTL_DEL, or the watched description went away."""
        self.interests.pop((item.file, item.fd), None)
        self.ready.pop(item, None)
        item.stop_listening()
        if item.host_fd is not None:
            users = self._host_interests.get(item.host_fd, [])
            if item in users:
                users.remove(item)
            self._host_update(item.host_fd)
        if isinstance(item.file, EventPoll):
            count = item.file.watched_by.get(self, 0) - 1
            if count > 0:
                item.file.watched_by[self] = count
            else:
                item.file.watched_by.pop(self, None)

    def prune(self) -> None:
        """Drop the interests whose description was closed for good."""
        for item in [i for i in self.interests.values() if i.stale]:
            self.remove(item)

    def _look(self, item: Interest) -> None:
        if item.file.poll() & item.events:
            self.mark_ready(item)

    def mark_ready(self, item: Interest) -> None:
        """The interest's file may have what it wants: queue it, wake waiters."""
        if item not in self.ready:
            self.ready[item] = None
        self.queue.notify(EPOLLIN | EPOLLRDNORM)

    # --- nesting -------------------------------------------------------------

    def reaches(self, other: EventPoll, depth: int = 0) -> bool:
        """Whether ``other`` is this instance or watched by it, at any depth."""
        if other is self:
            return True
        if depth > EP_MAX_NESTS:
            return False
        return any(
            isinstance(i.file, EventPoll) and i.file.reaches(other, depth + 1)
            for i in list(self.interests.values())
        )

    def depth_below(self, depth: int = 0) -> int:
        """How many levels of epoll instances this one watches."""
        if depth > EP_MAX_NESTS:
            return depth
        below = [i.file.depth_below(depth + 1) for i in list(self.interests.values())
                 if isinstance(i.file, EventPoll)]
        return max(below, default=0) + (1 if below else 0)

    def depth_above(self, depth: int = 0) -> int:
        """How many levels of epoll instances watch this one."""
        if depth > EP_MAX_NESTS:
            return depth
        above = [ep.depth_above(depth + 1) for ep in list(self.watched_by)]
        return max(above, default=0) + (1 if above else 0)

    # --- host descriptors ----------------------------------------------------

    def _host_add(self, item: Interest) -> None:
        if item.host_fd is None:
            return
        self._host_interests.setdefault(item.host_fd, []).append(item)
        self._host_update(item.host_fd)

    def _host_update(self, fd: int | None) -> None:
        """Make the host epoll watch ``fd`` for what its interests want."""
        if fd is None:
            return
        users = self._host_interests.get(fd, [])
        mask = 0
        for item in users:
            mask |= item.events & _HOST_EVENTS
        if self._host is None:
            if not users:
                return
            self._host = select.epoll()
        try:
            if not users:
                del self._host_interests[fd]
                self._host.unregister(fd)
            else:
                try:
                    self._host.modify(fd, mask | EPOLLET)
                except FileNotFoundError:
                    self._host.register(fd, mask | EPOLLET)
        except OSError:
            # Descriptors the host cannot watch (/dev/null) are always ready;
            # one already closed has nothing more to say.
            pass

    def _harvest_host(self) -> None:
        """Take the host's edges: their interests become ready."""
        if self._host is None or not self._host_interests:
            return
        try:
            edges = self._host.poll(0)
        except OSError:
            return
        for fd, events in edges:
            for item in list(self._host_interests.get(fd, [])):
                if item.armed and events & (item.events | EPOLLERR | EPOLLHUP):
                    self.mark_ready(item)

    # --- waiting -------------------------------------------------------------

    def take(self, maxevents: int) -> list[tuple[int, int]]:
        """epoll_wait's harvest: up to ``maxevents`` (events, data) pairs."""
        self._harvest_host()
        out: list[tuple[int, int]] = []
        again: list[Interest] = []
        for item in list(self.ready):
            if len(out) >= maxevents:
                break
            del self.ready[item]
            if item.stale:
                self.remove(item)
                continue
            revents = item.file.poll() & item.events
            if not revents:
                continue
            out.append((revents, item.data))
            if item.events & EPOLLONESHOT:
                item.events &= EP_PRIVATE_BITS
            elif not item.events & EPOLLET:
                again.append(item)
        for item in again:
            self.ready[item] = None
        return out

    # --- the file ------------------------------------------------------------

    def seek(self, offset: int, whence: int) -> int:
        # noop_llseek, as Linux gives these files: success, nothing moves.
        return self.offset

    def poll(self) -> int:
        """EPOLLIN while some interest is really ready (ep_eventpoll_poll)."""
        self._harvest_host()
        for item in list(self.ready):
            if item.stale:
                self.remove(item)
            elif item.file.poll() & item.events:
                return EPOLLIN | EPOLLRDNORM
            else:
                del self.ready[item]
        return 0

    def poll_queue(self) -> WaitQueue:
        return self.queue

    def poll_host_fd(self) -> int | None:
        if self._host is None or not self._host_interests:
            return None
        return self._host.fileno()

    def fdinfo_lines(self) -> str:
        """The lines /proc/PID/fdinfo/N adds for an epoll instance."""
        self.prune()
        return "".join(
            f"tfd: {i.fd:8d} events: {i.events:8x} data: {i.data:16x}"
            f"  pos:0 ino:{i.file.stat().ino:x} sdev:0\n"
            for i in self.interests.values()
        )

    def release(self) -> None:
        for item in list(self.interests.values()):
            self.remove(item)
        for ep in list(self.watched_by):
            for item in [i for i in ep.interests.values() if i.file is self]:
                ep.remove(item)
        if self._host is not None:
            self._host.close()
            self._host = None


def can_poll(file: OpenFile) -> bool:
    """Whether epoll may watch ``file`` (EPERM if not): only files whose
    Linux driver has a poll operation. Regular files, directories and the
    memory devices but /dev/random have none; a host descriptor is asked of
    the host."""
    mode = file.stat().mode & abi.S_IFMT
    if mode in (abi.S_IFREG, abi.S_IFDIR):
        return False
    if isinstance(file, DeviceFile):
        return file.stat().rdev == makedev(1, 8)
    host_fd = file.poll_host_fd()
    return host_fd is None or _host_can_poll(host_fd)


def _host_can_poll(fd: int) -> bool:
    probe = select.epoll()
    try:
        probe.register(fd, EPOLLIN)
    except PermissionError:
        return False
    except OSError:
        return True
    finally:
        probe.close()
    return True


def check_nesting(ep: EventPoll, target: EventPoll) -> None:
    """EPOLL_CTL_ADD of ``target`` into ``ep``: ELOOP for a cycle or a chain
    of instances deeper than Linux allows."""
    if target.reaches(ep):
        raise fail(abi.ELOOP)
    if ep.depth_above() + 1 + target.depth_below() > EP_MAX_NESTS:
        raise fail(abi.ELOOP)

"""Waiting for files: wait queues and the exception that asks a task to wait.

Theory of operation
-------------------
An open file that cannot make progress now (a read on an empty pipe that
still has writers, a write to a full one) does not block the host thread.
In blocking mode it raises :class:`WouldBlock`, naming what to wait for; in
non-blocking mode (``O_NONBLOCK``) it raises ``SyscallError(EAGAIN)``
instead. The scheduler catches :class:`WouldBlock`, parks the task on the
queue (or on the host descriptor), and runs the system call again from the
start once it is woken.

A :class:`WaitQueue` is a list of callbacks. Whatever changes the state of an
object (data written, an end closed) calls :meth:`WaitQueue.notify`, which
calls every callback registered at that moment. Callbacks stay registered
until their owner removes them, so a task waiting on several queues (poll)
removes itself from all of them when it wakes; wakeups may be spurious and
the re-run system call decides whether it can proceed.

A waiter may be registered as *exclusive* (EPOLLEXCLUSIVE interests): a
notification calls every other waiter, but exclusive ones only until one of
them returns True (it woke a task), as Linux wakes one exclusive waiter.

A waiter may be registered with an event mask, and :meth:`WaitQueue.notify`
may name the poll(2) events the change concerns (its *key*, as Linux's
wake-ups carry one): a keyed notification skips the waiters whose mask has
none of its events. A notification without a key, or a waiter without a mask,
always wakes. Objects notify with a key where they can (a pipe read frees
room, POLLOUT; a write brings data, POLLIN), which keeps edge-triggered epoll
from reporting edges nobody made.

A task may wait for many things at once (poll, select, epoll_wait): the
:class:`WouldBlock` it raises then lists several queues, each with its mask,
and several host descriptors with the events that matter on each. Every file
says where its readiness comes from through ``OpenFile.poll_queue()`` (a queue
notified whenever ``poll()`` may change) and ``OpenFile.poll_host_fd()`` (a
host descriptor whose readiness matters); a file with neither is always
ready.

A wait also says what a signal handler does to it: most calls run again after
the handler when its action has SA_RESTART, but Linux never restarts poll,
select, epoll_wait, nanosleep and their relatives once a handler ran; those
set ``restart=False`` and fail with EINTR. ``on_interrupt`` is then called
first (nanosleep writes the time left, select the timeout left).

A system call that moved part of its data before it had to wait reports this
in :attr:`WouldBlock.done`: the kernel re-runs it with the rest of the data
and adds ``done`` to its result. When the wait is interrupted by a signal, or
the re-run fails (EPIPE: the last reader left), a call that made progress
returns the bytes it moved instead of the error; a blocking write of more
than PIPE_BUF bytes to a pipe behaves this way on Linux.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Waiter = Callable[[], object]


class WaitQueue:
    """Callbacks to run when an object's readiness may have changed."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        # (callback, mask, exclusive): a mask of 0 hears every notification.
        self._waiters: list[tuple[Waiter, int, bool]] = []

    def __len__(self) -> int:
        return len(self._waiters)

    def add(self, waiter: Waiter, events: int = 0, exclusive: bool = False) -> None:
        """Call ``waiter`` on notifications whose key shares bits with
        ``events`` (every notification when ``events`` is 0); an
        ``exclusive`` waiter returns whether it woke a task."""
        self._waiters.append((waiter, events, exclusive))

    def remove(self, waiter: Waiter) -> None:
        """Forget ``waiter``; removing one that is not registered is harmless."""
        for i, (registered, _mask, _exclusive) in enumerate(self._waiters):
            if registered is waiter:
                del self._waiters[i]
                return

    def notify(self, events: int = 0) -> None:
        """Run every waiter registered now whose mask matches ``events``, and
        exclusive ones until one reports that it woke a task.

        ``events`` is the key: the poll events the change concerns, 0 when
        it may concern any. A waiter may remove itself.
        """
        woke_exclusive = False
        for waiter, mask, exclusive in list(self._waiters):
            if events and mask and not events & mask:
                continue
            if not exclusive:
                waiter()
            elif not woke_exclusive:
                woke_exclusive = bool(waiter())


class WouldBlock(Exception):
    """The operation must wait; re-run it when what it names wakes it.

    The single-queue form names ``queue`` (woken by every notification)
    and/or one ``host_fd``; ``events`` are the poll(2) events that would let
    it proceed (POLLIN for a read, POLLOUT for a write), which also chooses
    how the host descriptor is watched. ``queues`` adds (queue, mask) pairs
    and ``host_fds`` (descriptor, events) pairs for a wait on many objects.
    ``done`` is the number of bytes already moved by this call (see the module
    docstring); ``deadline_ns`` a time of the kernel's monotonic clock to
    wake up at, at the latest. ``restart`` and ``on_interrupt`` say what a
    signal handler does to the wait (see the module docstring).
    """

    def __init__(
        self,
        queue: WaitQueue | None = None,
        events: int = 0,
        host_fd: int | None = None,
        done: int = 0,
        deadline_ns: int | None = None,
        *,
        queues: Sequence[tuple[WaitQueue, int]] = (),
        host_fds: Sequence[tuple[int, int]] = (),
        restart: bool = True,
        on_interrupt: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(queue, events, host_fd, done)
        self.queue = queue
        self.events = events
        self.host_fd = host_fd
        self.done = done
        self.deadline_ns = deadline_ns
        self.queues = queues
        self.host_fds = host_fds
        self.restart = restart
        self.on_interrupt = on_interrupt

    def all_queues(self) -> list[tuple[WaitQueue, int]]:
        """Every queue to wait on, with its mask (0: every notification)."""
        found = [(self.queue, 0)] if self.queue is not None else []
        found.extend(self.queues)
        return found

    def all_host_fds(self) -> list[tuple[int, int]]:
        """Every host descriptor to watch, with the poll events that matter."""
        found = [(self.host_fd, self.events)] if self.host_fd is not None else []
        found.extend(self.host_fds)
        return found

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

A system call that moved part of its data before it had to wait reports this
in :attr:`WouldBlock.done`: the kernel re-runs it with the rest of the data
and adds ``done`` to its result. When the wait is interrupted by a signal, or
the re-run fails (EPIPE: the last reader left), a call that made progress
returns the bytes it moved instead of the error; a blocking write of more
than PIPE_BUF bytes to a pipe behaves this way on Linux.
"""

from __future__ import annotations

from collections.abc import Callable

Waiter = Callable[[], None]


class WaitQueue:
    """Callbacks to run when an object's readiness may have changed."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []

    def __len__(self) -> int:
        return len(self._waiters)

    def add(self, waiter: Waiter) -> None:
        self._waiters.append(waiter)

    def remove(self, waiter: Waiter) -> None:
        """Forget ``waiter``; removing one that is not registered is harmless."""
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def notify(self) -> None:
        """Run every waiter registered now (a waiter may remove itself)."""
        for waiter in list(self._waiters):
            waiter()


class WouldBlock(Exception):
    """The operation must wait; re-run it when ``queue`` (or ``host_fd``) wakes.

    ``events`` are the poll(2) events that would let it proceed (POLLIN for a
    read, POLLOUT for a write). ``host_fd`` is set instead of, or besides,
    ``queue`` when readiness comes from a host descriptor, which the scheduler
    can watch with select/poll. ``done`` is the number of bytes already moved
    by this call (see the module docstring).
    """

    def __init__(
        self,
        queue: WaitQueue | None,
        events: int = 0,
        host_fd: int | None = None,
        done: int = 0,
        deadline_ns: int | None = None,
    ) -> None:
        super().__init__(queue, events, host_fd, done)
        self.queue = queue
        self.events = events
        self.host_fd = host_fd
        self.done = done
        # Wake up at this time of the kernel's monotonic clock at the latest.
        self.deadline_ns = deadline_ns

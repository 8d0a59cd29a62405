"""pidfd: a descriptor that names a process for as long as it is open.

Theory of operation
-------------------
A :class:`PidFd` refers to a :class:`~sentry.task.Process` object, not to a
pid number, so it keeps naming the same process after the number is reused.
It is readable (POLLIN) once the whole process has exited, and also hung up
(POLLHUP) once its parent reaped it, as pidfd_poll reports. The kernel calls
:func:`process_changed` when a thread or the process ends and when the
process is reaped, which notifies the process's queue (:func:`queue_of`),
where pollers wait.

A pidfd opened with PIDFD_THREAD names one thread: it is readable and hung
up as soon as that thread has exited, unless the thread leads its group,
which Linux keeps until the whole group has ended.

read(2) on a pidfd is EINVAL, as on Linux; pidfd_send_signal and waitid's
P_PIDFD use :attr:`PidFd.process`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from sentry import abi
from vfs.core import OpenFile
from vfs.pipe import anon_inode
from vfs.wait import WaitQueue

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Process, Task

PIDFD_NONBLOCK = abi.O_NONBLOCK
PIDFD_THREAD = abi.O_EXCL

_queues: weakref.WeakKeyDictionary[Process, WaitQueue] = weakref.WeakKeyDictionary()


def queue_of(proc: Process) -> WaitQueue:
    """The queue notified when ``proc`` exits or is reaped."""
    queue = _queues.get(proc)
    if queue is None:
        queue = _queues[proc] = WaitQueue()
    return queue


def process_changed(proc: Process) -> None:
    """``proc`` ended or was reaped: its pidfds' readiness changed."""
    queue = _queues.get(proc)
    if queue is not None:
        queue.notify()


class PidFd(OpenFile):
    """pidfd_open(2)."""

    seekable = False

    def __init__(self, kernel: Kernel, proc: Process, flags: int,
                 thread: Task | None = None) -> None:
        super().__init__(anon_inode(), abi.O_RDWR | (flags & abi.O_NONBLOCK),
                         "anon_inode:[pidfd]")
        self.kernel = kernel
        self.process = proc
        # The thread a PIDFD_THREAD descriptor names, else None.
        self.thread = thread

    @property
    def pid(self) -> int:
        """The pid (or for a thread, the tid) the descriptor stands for."""
        return self.process.pid if self.thread is None else self.thread.tid

    @property
    def names_a_follower(self) -> bool:
        """A PIDFD_THREAD descriptor of a thread that does not lead its group."""
        return self.thread is not None and self.thread.tid != self.process.pid

    @property
    def reaped(self) -> bool:
        return self.kernel.find_process(self.process.pid) is not self.process

    def poll(self) -> int:
        if self.names_a_follower:
            assert self.thread is not None
            gone = abi.POLLIN | abi.POLLRDNORM | abi.POLLHUP
            return gone if self.thread.exited else 0
        if self.reaped:
            return abi.POLLIN | abi.POLLRDNORM | abi.POLLHUP
        if self.process.zombie:
            return abi.POLLIN | abi.POLLRDNORM
        return 0

    def poll_queue(self) -> WaitQueue:
        return queue_of(self.process)

    def fdinfo_lines(self) -> str:
        """The lines /proc/PID/fdinfo/N adds for a pidfd."""
        gone = self.thread.exited if self.names_a_follower else self.reaped
        pid = -1 if gone else self.pid
        return f"Pid:\t{pid}\nNSpid:\t{pid}\n"

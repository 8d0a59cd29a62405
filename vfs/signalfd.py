"""signalfd: pending signals read as records instead of handled.

Theory of operation
-------------------
A :class:`SignalFd` holds a signal mask and nothing else. Reading it takes
pending signals in the mask from the *reading* thread, its own pending list
first and then its process's, lowest number first, as dequeue_signal does,
and returns one 128-byte ``struct signalfd_siginfo`` for each. Like Linux,
it looks at whoever reads or polls it (``kernel.current``), not at whoever
made it: a signalfd inherited across fork reads the child's signals. The
signals must be blocked to stay pending long enough to be read; that is the
program's business, as on Linux.

Every process has a queue (:func:`queue_of`) that :mod:`sentry.signals`
notifies whenever a signal is generated for the process or one of its
threads (Linux's ``sighand->signalfd_wqh``). Blocking reads, poll and epoll
wait on it.
"""

from __future__ import annotations

import struct
import weakref
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import OpenFile, fail
from vfs.pipe import anon_inode
from vfs.wait import WaitQueue, WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Process, Task

SFD_CLOEXEC = abi.O_CLOEXEC
SFD_NONBLOCK = abi.O_NONBLOCK
SIGNALFD_SIGINFO_SIZE = 128
SI_TIMER = -2
_POLL_READ = abi.POLLIN | abi.POLLRDNORM
_FAULTS = (abi.SIGSEGV, abi.SIGBUS, abi.SIGILL, abi.SIGFPE, abi.SIGTRAP)

_queues: weakref.WeakKeyDictionary[Process, WaitQueue] = weakref.WeakKeyDictionary()


def queue_of(proc: Process) -> WaitQueue:
    """The queue notified when a signal is generated in ``proc``."""
    queue = _queues.get(proc)
    if queue is None:
        queue = _queues[proc] = WaitQueue()
    return queue


def signal_generated(proc: Process) -> None:
    """Called by sentry.signals for every signal queued in ``proc``."""
    queue = _queues.get(proc)
    if queue is not None:
        queue.notify(_POLL_READ)


def pack_record(raw: bytes) -> bytes:
    """A ``struct signalfd_siginfo`` from a kernel siginfo, field by field as
    signalfd_copyinfo takes them for each siginfo layout."""
    signo, errno, code = struct.unpack_from("<iii", raw, 0)
    pid = uid = status = ival = tid = overrun = 0
    ptr = utime = stime = addr = 0
    if 0 < code < 0x80 and signo in _FAULTS:
        (addr,) = struct.unpack_from("<Q", raw, 16)
    elif 0 < code < 0x80 and signo == abi.SIGCHLD:
        pid, uid, status = struct.unpack_from("<IIi", raw, 16)
        utime, stime = struct.unpack_from("<QQ", raw, 32)
    elif code == SI_TIMER:
        tid, overrun = struct.unpack_from("<II", raw, 16)
        (ptr,) = struct.unpack_from("<Q", raw, 24)
        ival = struct.unpack_from("<i", raw, 24)[0]
    elif code < 0:
        pid, uid = struct.unpack_from("<II", raw, 16)
        (ptr,) = struct.unpack_from("<Q", raw, 24)
        ival = struct.unpack_from("<i", raw, 24)[0]
    else:
        pid, uid = struct.unpack_from("<II", raw, 16)
    record = struct.pack(
        "<IiiIIiIIIIiiQQQQHHiQI",
        signo, errno, code, pid, uid, 0, tid, 0, overrun, 0, status, ival,
        ptr, utime, stime, addr, 0, 0, 0, 0, 0,
    )
    return record.ljust(SIGNALFD_SIGINFO_SIZE, b"\0")


class SignalFd(OpenFile):
    """signalfd4(2)."""

    seekable = False

    def __init__(self, kernel: Kernel, mask: int, flags: int) -> None:
        super().__init__(anon_inode(), abi.O_RDWR | (flags & abi.O_NONBLOCK),
                         "anon_inode:[signalfd]")
        self.kernel = kernel
        self.mask = mask

    def _task(self) -> Task | None:
        return self.kernel.current

    def _take(self, task: Task) -> bytes | None:
        """Dequeue the next pending signal in the mask, as a record."""
        from sentry import signals

        for queue in (task.pending, task.process.shared_pending):
            wanted = [i for i in queue if self.mask & signals.bit(i.signo)]
            if wanted:
                info = min(wanted, key=lambda i: i.signo)
                queue.remove(info)
                return pack_record(info.pack())
        return None

    def read(self, count: int) -> bytes:
        # The buffer must hold one record.
        if count < SIGNALFD_SIGINFO_SIZE:
            raise fail(abi.EINVAL)
        task = self._task()
        if task is None:
            raise fail(abi.EAGAIN)

        # Take as many records as fit; wait only for the first.
        out: list[bytes] = []
        while len(out) < count // SIGNALFD_SIGINFO_SIZE:
            record = self._take(task)
            if record is None:
                break
            out.append(record)
        if out:
            return b"".join(out)
        if self.flags & abi.O_NONBLOCK:
            raise SyscallError(abi.EAGAIN)
        raise WouldBlock(queue_of(task.process), _POLL_READ)

    def seek(self, offset: int, whence: int) -> int:
        # noop_llseek, as Linux gives these files: success, nothing moves.
        return self.offset

    def poll(self) -> int:
        from sentry import signals

        task = self._task()
        if task is None:
            return 0
        for info in (*task.pending, *task.process.shared_pending):
            if self.mask & signals.bit(info.signo):
                return _POLL_READ
        return 0

    def poll_queue(self) -> WaitQueue | None:
        task = self._task()
        return None if task is None else queue_of(task.process)

    def set_mask(self, mask: int) -> None:
        """signalfd(2) on an existing descriptor: a new mask, and waiters
        look again."""
        self.mask = mask
        task = self._task()
        if task is not None:
            queue_of(task.process).notify()

    def fdinfo_lines(self) -> str:
        """The line /proc/PID/fdinfo/N adds for a signalfd."""
        return f"sigmask:\t{self.mask:016x}\n"

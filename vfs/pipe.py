"""Pipes and eventfds: in-sentry objects that tasks wait on.

Theory of operation
-------------------
A :class:`Pipe` is a byte buffer of ``capacity`` bytes (64 KiB, changed by
F_SETPIPE_SZ) plus the number of open file descriptions that read from it and
that write to it. Every :class:`PipeFile` counts once as a reader, a writer
or both (a FIFO opened O_RDWR) from creation until :meth:`PipeFile.release`.
Any change of the buffer or of the counts notifies ``pipe.queue``, which is
what blocked readers, blocked writers and pollers wait on.

Linux semantics kept here (pipe(7)):

* read returns what is available (at most ``count``), end of file (``b""``)
  when the buffer is empty and no writer is left, and waits otherwise;
* write with no reader left fails with EPIPE (the kernel adds SIGPIPE);
* a write of at most PIPE_BUF bytes is atomic: all of it goes in at once or
  the writer waits; a larger one goes in piece by piece (see
  :class:`vfs.wait.WouldBlock` for how a partial write is reported);
* with O_NONBLOCK, EAGAIN replaces every wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import Inode, OpenFile, Stat, fail, new_ino, now_ns
from vfs.wait import WaitQueue, WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Task

PIPE_BUF = 4096
PIPE_DEF_SIZE = 65536
PIPE_MAX_SIZE = 1048576  # /proc/sys/fs/pipe-max-size
PIPEFS_DEV = 0x0F
ANON_INODE_DEV = 0x10
EVENTFD_MAX = 0xFFFF_FFFF_FFFF_FFFE

# What poll(2) reports for each kind of readiness.
_POLL_READ = abi.POLLIN | abi.POLLRDNORM
_POLL_WRITE = abi.POLLOUT | abi.POLLWRNORM


def round_pipe_size(size: int) -> int:
    """The capacity F_SETPIPE_SZ makes of ``size``: whole pages, a power of two.

    Returns 0 for sizes Linux rejects with EINVAL (above 2 GiB).
    """
    if size > 1 << 31:
        return 0
    if size < abi.PAGE_SIZE:
        return abi.PAGE_SIZE
    return 1 << (size - 1).bit_length()


class Pipe:
    """The buffer and bookkeeping shared by both ends of one pipe."""

    def __init__(self, uid: int = 0, gid: int = 0) -> None:
        self.buffer = bytearray()
        self.capacity = PIPE_DEF_SIZE
        self.readers = 0
        self.writers = 0
        self.queue = WaitQueue()
        self.inode = PipeInode(self, uid, gid)

    @property
    def space(self) -> int:
        return max(0, self.capacity - len(self.buffer))

    def resize(self, size: int, privileged: bool = False) -> int:
        """F_SETPIPE_SZ: set the capacity, return the new one."""
        # Round the size up the way Linux does; absurd sizes are EINVAL.
        new = round_pipe_size(size)
        if new == 0:
            raise fail(abi.EINVAL)

        # Growing beyond pipe-max-size needs CAP_SYS_RESOURCE.
        if new > self.capacity and new > PIPE_MAX_SIZE and not privileged:
            raise fail(abi.EPERM)

        # "Attempting to reduce the pipe capacity below the amount of data
        # currently in the pipe" is EBUSY - fcntl(2).
        if new < -(-len(self.buffer) // abi.PAGE_SIZE) * abi.PAGE_SIZE:
            raise fail(abi.EBUSY)
        self.capacity = new
        self.queue.notify()
        return new


class PipeInode(Inode):
    """The pipefs inode behind both ends; what fstat and /proc/PID/fd see."""

    def __init__(self, pipe: Pipe, uid: int, gid: int) -> None:
        self.pipe = pipe
        self.mode = abi.S_IFIFO | 0o600
        self.fs_dev = PIPEFS_DEV
        self.uid = uid
        self.gid = gid
        self._ino = new_ino()
        self.time_ns = now_ns()

    @property
    def ino(self) -> int:
        return self._ino

    def stat(self) -> Stat:
        t = self.time_ns
        return Stat(
            dev=self.fs_dev,
            ino=self._ino,
            mode=self.mode,
            nlink=1,
            uid=self.uid,
            gid=self.gid,
            rdev=0,
            size=0,
            blksize=abi.PAGE_SIZE,
            blocks=0,
            atime_ns=t,
            mtime_ns=t,
            ctime_ns=t,
        )

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        """Open the pipe again (through /proc/PID/fd/N), as a new reader or writer."""
        return PipeFile(self.pipe, flags, f"pipe:[{self._ino}]")


class PipeFile(OpenFile):
    """One open end of a pipe: a reader, a writer, or both (O_RDWR)."""

    seekable = False

    def __init__(self, pipe: Pipe, flags: int, path: str = "") -> None:
        super().__init__(pipe.inode, flags, path or f"pipe:[{pipe.inode.ino}]")
        self.pipe = pipe
        self.wait_queue = pipe.queue
        self._is_reader = self.readable
        self._is_writer = self.writable
        self._released = False
        if self._is_reader:
            pipe.readers += 1
        if self._is_writer:
            pipe.writers += 1
        pipe.queue.notify()

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & abi.O_NONBLOCK)

    def _wait(self, events: int, done: int = 0) -> SyscallError | WouldBlock:
        if self.nonblocking:
            return SyscallError(abi.EAGAIN)
        return WouldBlock(self.pipe.queue, events, done=done)

    def read(self, count: int) -> bytes:
        pipe = self.pipe

        # A zero-length read returns at once, whatever the state.
        if count <= 0:
            return b""

        # Take what is there.
        if pipe.buffer:
            data = bytes(pipe.buffer[:count])
            del pipe.buffer[:count]
            pipe.queue.notify(_POLL_WRITE)
            return data

        # Empty: end of file once every writer is gone, else wait.
        if pipe.writers == 0:
            return b""
        raise self._wait(_POLL_READ)

    def write(self, data: bytes) -> int:
        pipe = self.pipe

        # "Null write succeeds" even without readers (fs/pipe.c).
        if not data:
            return 0

        # Nobody can ever read this.
        if pipe.readers == 0:
            raise fail(abi.EPIPE)

        # Up to PIPE_BUF bytes go in whole or not at all.
        space = pipe.space
        if len(data) <= PIPE_BUF and space < len(data):
            raise self._wait(_POLL_WRITE)

        # Larger writes take what fits and wait for the rest.
        n = min(space, len(data))
        if n == 0:
            raise self._wait(_POLL_WRITE)
        pipe.buffer += data[:n]
        pipe.queue.notify(_POLL_READ)
        if n < len(data) and not self.nonblocking:
            raise WouldBlock(pipe.queue, _POLL_WRITE, done=n)
        return n

    def ioctl(self, request: int, arg: int, task: Task) -> int:
        if request == abi.FIONREAD:
            task.mm.write(arg, len(self.pipe.buffer).to_bytes(4, "little"))
            return 0
        raise fail(abi.ENOTTY)

    def poll(self) -> int:
        pipe = self.pipe
        events = 0
        if self._is_reader:
            if pipe.buffer:
                events |= _POLL_READ
            if pipe.writers == 0:
                events |= abi.POLLHUP
        if self._is_writer:
            # Linux reports POLLOUT while a page slot is free, i.e. while a
            # PIPE_BUF write would go in whole.
            if pipe.space >= PIPE_BUF:
                events |= _POLL_WRITE
            if pipe.readers == 0:
                events |= abi.POLLERR
        return events

    def poll_queue(self) -> WaitQueue:
        return self.pipe.queue

    def pipe_size(self) -> int:
        """F_GETPIPE_SZ."""
        return self.pipe.capacity

    def set_pipe_size(self, size: int, privileged: bool = False) -> int:
        """F_SETPIPE_SZ; ``privileged`` is CAP_SYS_RESOURCE."""
        return self.pipe.resize(size, privileged)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._is_reader:
            self.pipe.readers -= 1
        if self._is_writer:
            self.pipe.writers -= 1
        self.pipe.queue.notify()


class PipeReader(PipeFile):
    """The read end made by pipe(2)."""

    def __init__(self, pipe: Pipe, flags: int = 0) -> None:
        super().__init__(pipe, abi.O_RDONLY | (flags & abi.O_NONBLOCK))


class PipeWriter(PipeFile):
    """The write end made by pipe(2)."""

    def __init__(self, pipe: Pipe, flags: int = 0) -> None:
        super().__init__(pipe, abi.O_WRONLY | (flags & abi.O_NONBLOCK))


def new_pipe(
    flags: int = 0, uid: int = 0, gid: int = 0
) -> tuple[PipeReader, PipeWriter]:
    """pipe2(2): both ends of a fresh pipe; only O_NONBLOCK of ``flags`` is kept.

    O_CLOEXEC belongs to the descriptors, which the caller makes.
    """
    # TODO: O_DIRECT (packet mode) is accepted but the pipe stays a byte stream.
    pipe = Pipe(uid, gid)
    return PipeReader(pipe, flags), PipeWriter(pipe, flags)


class Fifo:
    """The pipe behind a named FIFO, shared by everything that opens it.

    As in fs/pipe.c, every open counts as a reader or writer at once, and
    ``readers_seen`` / ``writers_seen`` count every open of each end ever
    made. A blocking open of one end waits until the other end's count moves
    (it may have closed again since), keeping its description in ``pending``
    by task id while the open syscall waits to run again.

    XXX: an open that a signal ends with EINTR keeps its pending description,
    and so its end stays counted, until that task opens the FIFO again.
    """

    def __init__(self, uid: int, gid: int) -> None:
        self.pipe = Pipe(uid, gid)
        self.readers_seen = 0
        self.writers_seen = 0
        self.pending: dict[int, tuple[PipeFile, int]] = {}

    def open(self, inode: Inode, flags: int, path: str, task: Task | None) -> OpenFile:
        """open(2) of the FIFO, as fifo(7) describes it."""
        pipe = self.pipe
        acc = flags & abi.O_ACCMODE
        tid = task.tid if task is not None else 0

        # A blocking open running again: has the other end been opened since?
        waiting = self.pending.get(tid)
        if waiting is not None:
            file, seen = waiting
            if self._seen(file.readable) == seen:
                raise WouldBlock(pipe.queue, abi.POLLIN)
            del self.pending[tid]
            return file

        # "A process can open a FIFO in nonblocking mode. In this case,
        # opening for read-only succeeds even if no one has opened on the write
        # side yet and opening for write-only fails with ENXIO" - fifo(7)
        if acc == abi.O_WRONLY and flags & abi.O_NONBLOCK and pipe.readers == 0:
            raise fail(abi.ENXIO)

        # Count the new end, and let waiters at the other end know.
        file = PipeFile(pipe, flags, path)
        file.inode = inode
        if file.readable:
            self.readers_seen += 1
        if file.writable:
            self.writers_seen += 1
        pipe.queue.notify()

        # A lone reader or writer waits for the other end, unless O_NONBLOCK
        # or O_RDWR (which is both ends) says not to.
        others = pipe.writers if acc == abi.O_RDONLY else pipe.readers
        if acc != abi.O_RDWR and not flags & abi.O_NONBLOCK and others == 0:
            self.pending[tid] = (file, self._seen(file.readable))
            raise WouldBlock(pipe.queue, abi.POLLIN)
        return file

    def _seen(self, reading: bool) -> int:
        """How many opens of the other end there have been."""
        return self.writers_seen if reading else self.readers_seen


class AnonInode(Inode):
    """The shared anonymous inode of eventfds and similar objects."""

    def __init__(self) -> None:
        # Linux gives these no file type bits: stat shows mode 0600.
        self.mode = 0o600
        self.fs_dev = ANON_INODE_DEV
        self._ino = new_ino()
        self.time_ns = now_ns()

    @property
    def ino(self) -> int:
        return self._ino

    def stat(self) -> Stat:
        t = self.time_ns
        return Stat(
            dev=self.fs_dev,
            ino=self._ino,
            mode=self.mode,
            nlink=1,
            uid=0,
            gid=0,
            rdev=0,
            size=0,
            blksize=abi.PAGE_SIZE,
            blocks=0,
            atime_ns=t,
            mtime_ns=t,
            ctime_ns=t,
        )

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        # Reopening an anonymous inode through /proc/PID/fd is refused on Linux.
        raise fail(abi.ENXIO)


_anon_inode: AnonInode | None = None


def anon_inode() -> AnonInode:
    """The one anonymous inode every eventfd shares, as on Linux."""
    global _anon_inode
    if _anon_inode is None:
        _anon_inode = AnonInode()
    return _anon_inode


class EventFd(OpenFile):
    """eventfd2(2): a 64-bit counter read and written in 8-byte units."""

    seekable = False

    def __init__(self, initval: int, flags: int) -> None:
        super().__init__(
            anon_inode(), abi.O_RDWR | (flags & abi.O_NONBLOCK), "anon_inode:[eventfd]"
        )
        self.count = initval
        self.semaphore = bool(flags & abi.EFD_SEMAPHORE)
        self.wait_queue = WaitQueue()

    def _wait(self, events: int) -> SyscallError | WouldBlock:
        if self.flags & abi.O_NONBLOCK:
            return SyscallError(abi.EAGAIN)
        return WouldBlock(self.wait_queue, events)

    def read(self, count: int) -> bytes:
        # "If the size of the supplied buffer is less than 8 bytes, read(2)
        # fails with the error EINVAL" - eventfd(2).
        if count < 8:
            raise fail(abi.EINVAL)

        # Wait for a nonzero counter.
        if self.count == 0:
            raise self._wait(_POLL_READ)

        # A semaphore hands out 1 at a time; otherwise the counter is drained.
        value = 1 if self.semaphore else self.count
        self.count -= value
        self.wait_queue.notify(_POLL_WRITE)
        return value.to_bytes(8, "little")

    def write(self, data: bytes) -> int:
        # The buffer must hold a whole counter, and 2**64-1 is not a value.
        if len(data) < 8:
            raise fail(abi.EINVAL)
        value = int.from_bytes(data[:8], "little")
        if value == 0xFFFF_FFFF_FFFF_FFFF:
            raise fail(abi.EINVAL)

        # Wait while adding would pass the largest counter value.
        if self.count + value > EVENTFD_MAX:
            raise self._wait(_POLL_WRITE)
        self.count += value
        self.wait_queue.notify(_POLL_READ)
        return 8

    def seek(self, offset: int, whence: int) -> int:
        # eventfd's llseek is noop_llseek: it succeeds and moves nothing.
        return self.offset

    def poll(self) -> int:
        events = 0
        if self.count > 0:
            events |= _POLL_READ
        if self.count < EVENTFD_MAX:
            events |= _POLL_WRITE
        return events

    def poll_queue(self) -> WaitQueue:
        return self.wait_queue

    def fdinfo_lines(self) -> str:
        """The lines /proc/PID/fdinfo/N adds for an eventfd."""
        return (
            f"eventfd-count: {self.count:16x}\n"
            f"eventfd-semaphore: {int(self.semaphore)}\n"
        )

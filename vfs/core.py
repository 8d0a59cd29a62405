"""The objects every file system shares: inodes, stat data, open files.

An :class:`Inode` is a file system object (a directory, a regular file, a
symlink, a device, a pipe). File systems subclass it and implement the
operations that make sense for their objects; the defaults raise the errno
Linux gives when the operation does not apply (ENOTDIR on a non-directory,
EINVAL on readlink of a non-symlink, EPERM for what the file system forbids).

An :class:`OpenFile` is an open file description: what open(2) creates and
dup(2) shares. It holds the offset and the status flags; descriptors in a
task's table point at it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from sentry import abi
from sentry.errors import SyscallError

if TYPE_CHECKING:
    from sentry.task import Task
    from vfs.mount import Location
    from vfs.wait import WaitQueue

_ino_counter = itertools.count(1000)


def new_ino() -> int:
    """Inode numbers for objects that live only in the sentry."""
    return next(_ino_counter)


def now_ns() -> int:
    return time.time_ns()


def fail(errno: int) -> SyscallError:
    return SyscallError(errno)


def dtype_of(mode: int) -> int:
    return {
        abi.S_IFREG: abi.DT_REG,
        abi.S_IFDIR: abi.DT_DIR,
        abi.S_IFLNK: abi.DT_LNK,
        abi.S_IFCHR: abi.DT_CHR,
        abi.S_IFBLK: abi.DT_BLK,
        abi.S_IFIFO: abi.DT_FIFO,
        abi.S_IFSOCK: abi.DT_SOCK,
    }.get(mode & abi.S_IFMT, abi.DT_UNKNOWN)


@attrs.define
class Stat:
    """What stat(2) reports, independent of the struct layout."""

    dev: int
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime_ns: int = 0


@attrs.define
class DirEntry:
    name: str
    ino: int
    dtype: int


class Inode:
    """A file system object. Subclasses override what applies to them."""

    # Filled in by subclasses: S_IFMT type bits plus permissions.
    mode: int = 0
    fs_dev: int = 0

    @property
    def ino(self) -> int:
        raise NotImplementedError

    @property
    def is_dir(self) -> bool:
        return self.mode & abi.S_IFMT == abi.S_IFDIR

    @property
    def is_symlink(self) -> bool:
        return self.mode & abi.S_IFMT == abi.S_IFLNK

    @property
    def is_reg(self) -> bool:
        return self.mode & abi.S_IFMT == abi.S_IFREG

    @property
    def read_only(self) -> bool:
        """True when the file system refuses changes (EROFS)."""
        return False

    def stat(self) -> Stat:
        raise NotImplementedError

    # --- directories ---------------------------------------------------------

    def lookup(self, name: str) -> Inode | None:
        raise fail(abi.ENOTDIR)

    def entries(self) -> Iterator[DirEntry]:
        raise fail(abi.ENOTDIR)

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def link(self, name: str, inode: Inode) -> None:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def unlink(self, name: str) -> None:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def rmdir(self, name: str) -> None:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    def rename(self, name: str, new_dir: Inode, new_name: str, flags: int) -> None:
        raise fail(abi.ENOTDIR if not self.is_dir else abi.EPERM)

    # --- symlinks ------------------------------------------------------------

    def readlink(self) -> str:
        raise fail(abi.EINVAL)

    def magic_target(self) -> Location | None:
        """Where following this symlink leads without reading it as a path.

        Links like /proc/PID/fd/N lead to the open file itself, not to the
        name their target spells (which may be "pipe:[N]" or a file since
        deleted); every other symlink returns None.
        """
        return None

    # --- data ----------------------------------------------------------------

    def read_at(self, offset: int, count: int) -> bytes:
        raise fail(abi.EISDIR if self.is_dir else abi.EINVAL)

    def write_at(self, offset: int, data: bytes) -> int:
        raise fail(abi.EISDIR if self.is_dir else abi.EINVAL)

    def truncate(self, size: int) -> None:
        raise fail(abi.EISDIR if self.is_dir else abi.EINVAL)

    def size(self) -> int:
        return self.stat().size

    # --- attributes ----------------------------------------------------------

    def chmod(self, mode: int) -> None:
        raise fail(abi.EPERM)

    def chown(self, uid: int, gid: int) -> None:
        raise fail(abi.EPERM)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        raise fail(abi.EPERM)

    def attr_flags(self) -> int:
        """The FS_*_FL attribute flags lsattr(1) shows (FS_IOC_GETFLAGS)."""
        raise fail(abi.ENOTTY)

    def sync(self) -> None:
        """fsync(2): data of memory and host files is always where it belongs."""

    # --- opening -------------------------------------------------------------

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        """Make the open file description for this inode (devices override)."""
        if self.is_dir:
            return DirectoryFile(self, flags, path)
        return RegularFile(self, flags, path)


def seek_position(current: int, offset: int, whence: int, size: int) -> int:
    """Where lseek(2) moves a file of ``size`` bytes with no holes."""
    if whence == abi.SEEK_SET:
        new = offset
    elif whence == abi.SEEK_CUR:
        new = current + offset
    elif whence == abi.SEEK_END:
        new = size + offset
    elif whence in (abi.SEEK_DATA, abi.SEEK_HOLE):
        if offset < 0 or offset >= size:
            raise fail(abi.ENXIO)
        new = offset if whence == abi.SEEK_DATA else size
    else:
        raise fail(abi.EINVAL)
    if new < 0:
        raise fail(abi.EINVAL)
    return new


class OpenFile:
    """An open file description; shared by dup(2) and fork."""

    # Set by subclasses that never block and always report ready.
    seekable = True

    def __init__(self, inode: Inode | None, flags: int, path: str) -> None:
        self.inode = inode
        self.flags = flags
        self.path = path
        self.offset = 0
        self.refs = 0
        # Where the file was opened, for *at() calls and /proc/PID/fd.
        self.location: Location | None = None

    @property
    def readable(self) -> bool:
        return (self.flags & abi.O_ACCMODE) in (abi.O_RDONLY, abi.O_RDWR) and not (
            self.flags & abi.O_PATH
        )

    @property
    def writable(self) -> bool:
        return (self.flags & abi.O_ACCMODE) in (abi.O_WRONLY, abi.O_RDWR) and not (
            self.flags & abi.O_PATH
        )

    def read(self, count: int) -> bytes:
        raise fail(abi.EINVAL)

    def write(self, data: bytes) -> int:
        raise fail(abi.EINVAL)

    def pread(self, count: int, offset: int) -> bytes:
        raise fail(abi.ESPIPE)

    def pwrite(self, data: bytes, offset: int) -> int:
        raise fail(abi.ESPIPE)

    def seek(self, offset: int, whence: int) -> int:
        raise fail(abi.ESPIPE)

    def entries(self) -> list[DirEntry]:
        raise fail(abi.ENOTDIR)

    def ioctl(self, request: int, arg: int, task: Task) -> int:
        raise fail(abi.ENOTTY)

    def poll(self) -> int:
        """The poll(2) events that are ready now."""
        return abi.POLLIN | abi.POLLOUT

    # Readiness: where a change of poll() comes from. poll, select and epoll
    # wait on these; a file that has neither is always ready (a regular file).

    def poll_queue(self) -> WaitQueue | None:
        """A queue notified (with the events concerned as key, or 0) whenever
        what :meth:`poll` returns may change; None if it never changes."""
        return None

    def poll_host_fd(self) -> int | None:
        """A host descriptor whose readiness makes :meth:`poll` change; the
        scheduler watches it while a task waits on this file."""
        return None

    def stat(self) -> Stat:
        assert self.inode is not None
        return self.inode.stat()

    def is_tty(self) -> bool:
        return False

    def reopen(self, flags: int, task: Task | None) -> OpenFile:
        """A new description of this object, opened through /proc/PID/fd/N.

        Files with an inode are opened again through it; this is for those
        without one, which Linux refuses like an anonymous inode.
        """
        raise fail(abi.ENXIO)

    def truncate(self, size: int) -> None:
        """Change the size of the object behind a description without an inode."""
        raise fail(abi.EINVAL)

    def release(self) -> None:
        """The last descriptor referring to this description was closed."""


class OpenFileInode(Inode):
    """The object behind an open file that has no inode of its own (a host
    stream): what fstatat(fd, "", AT_EMPTY_PATH) and /proc/PID/fd/N reach."""

    def __init__(self, file: OpenFile) -> None:
        self.file = file
        self.mode = file.stat().mode

    @property
    def ino(self) -> int:
        return self.file.stat().ino

    def stat(self) -> Stat:
        return self.file.stat()

    def truncate(self, size: int) -> None:
        self.file.truncate(size)

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        return self.file.reopen(flags, task)


class RegularFile(OpenFile):
    """Data files of any file system that offers read_at/write_at."""

    def __init__(self, inode: Inode, flags: int, path: str) -> None:
        super().__init__(inode, flags, path)
        self.inode: Inode = inode

    def read(self, count: int) -> bytes:
        data = self.inode.read_at(self.offset, count)
        self.offset += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self.flags & abi.O_APPEND:
            self.offset = self.inode.size()
        n = self.inode.write_at(self.offset, data)
        self.offset += n
        return n

    def pread(self, count: int, offset: int) -> bytes:
        return self.inode.read_at(offset, count)

    def pwrite(self, data: bytes, offset: int) -> int:
        # "If the file is opened with O_APPEND, pwrite() appends data to the end
        # of the file, regardless of the value of offset." - pwrite(2)
        if self.flags & abi.O_APPEND:
            offset = self.inode.size()
        return self.inode.write_at(offset, data)

    def seek(self, offset: int, whence: int) -> int:
        self.offset = seek_position(self.offset, offset, whence, self.inode.size())
        return self.offset


class DirectoryFile(OpenFile):
    """An open directory: getdents64 walks a snapshot taken at offset 0."""

    def __init__(self, inode: Inode, flags: int, path: str) -> None:
        super().__init__(inode, flags, path)
        self.inode: Inode = inode
        self._snapshot: list[DirEntry] | None = None

    def entries(self) -> list[DirEntry]:
        if self._snapshot is None or self.offset == 0:
            self._snapshot = list(self.inode.entries())
        return self._snapshot

    def read(self, count: int) -> bytes:
        raise fail(abi.EISDIR)

    def write(self, data: bytes) -> int:
        raise fail(abi.EISDIR)

    def pread(self, count: int, offset: int) -> bytes:
        raise fail(abi.EISDIR)

    def pwrite(self, data: bytes, offset: int) -> int:
        raise fail(abi.EISDIR)

    def seek(self, offset: int, whence: int) -> int:
        if whence == abi.SEEK_SET and offset >= 0:
            self.offset = offset
            if offset == 0:
                self._snapshot = None
            return offset
        if whence == abi.SEEK_CUR and self.offset + offset >= 0:
            self.offset += offset
            return self.offset
        raise fail(abi.EINVAL)

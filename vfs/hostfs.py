"""A confined window onto a host directory.

Theory of operation
-------------------
A :class:`HostFs` exposes the host directory ``root``. Each :class:`HostInode`
names a path *relative* to that root, built one component at a time by the
sentry's own path walk: every component was checked with ``lstat`` and is
never ``.``, ``..`` or empty. Host symlinks are returned to the walk as
symlink inodes whose target the walk interprets in the guest's namespace, so
the host never follows a symlink for us, and the final ``open`` carries
``O_NOFOLLOW``. The guest therefore cannot name a host file outside ``root``.

XXX: a host process that swaps a checked directory for a symlink between our
lstat and our open can still redirect one intermediate component; the guest
cannot do this itself, because it sees the host only through this module.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import stat as pystat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import DirEntry, Inode, OpenFile, Stat, dtype_of, fail, seek_position

if TYPE_CHECKING:
    from sentry.task import Task

T = TypeVar("T")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def host_errno(exc: OSError) -> SyscallError:
    return SyscallError(exc.errno or abi.EIO)


def host_call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a host ``os`` function; its OSError becomes the guest's errno."""
    try:
        return func(*args, **kwargs)
    except OSError as exc:
        raise host_errno(exc) from None


def stat_from_host(st: os.stat_result) -> Stat:
    return Stat(
        dev=st.st_dev, ino=st.st_ino, mode=st.st_mode, nlink=st.st_nlink,
        uid=st.st_uid, gid=st.st_gid, rdev=st.st_rdev, size=st.st_size,
        blksize=st.st_blksize, blocks=st.st_blocks, atime_ns=st.st_atime_ns,
        mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
    )


class HostFs:
    """A host directory tree; read-only unless ``writable``."""

    def __init__(self, root: str, writable: bool) -> None:
        self.root = os.path.realpath(root)
        self.writable = writable
        st = os.stat(self.root)
        if not pystat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(root)
        self.root_inode = HostInode(self, "", st)

    def host_path(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root


class HostInode(Inode):
    """A host file, named relative to its file system's root."""

    def __init__(self, fs: HostFs, rel: str, st: os.stat_result) -> None:
        self.fs = fs
        self.rel = rel
        self.mode = st.st_mode
        self.fs_dev = st.st_dev
        self._ino = st.st_ino

    @property
    def ino(self) -> int:
        return self._ino

    @property
    def host_path(self) -> str:
        return self.fs.host_path(self.rel)

    @property
    def read_only(self) -> bool:
        return not self.fs.writable

    def _writable(self) -> None:
        if not self.fs.writable:
            raise fail(abi.EROFS)

    def _child_rel(self, name: str) -> str:
        if not name or name in (".", "..") or "/" in name:
            raise fail(abi.EINVAL)
        return f"{self.rel}/{name}" if self.rel else name

    def stat(self) -> Stat:
        try:
            st = os.lstat(self.host_path)
        except OSError as exc:
            raise host_errno(exc) from None
        self.mode = st.st_mode
        return stat_from_host(st)

    def size(self) -> int:
        return self.stat().size

    # --- directories ---------------------------------------------------------

    def lookup(self, name: str) -> Inode | None:
        if not self.is_dir:
            raise fail(abi.ENOTDIR)
        rel = self._child_rel(name)
        try:
            st = os.lstat(self.fs.host_path(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise host_errno(exc) from None
        return HostInode(self.fs, rel, st)

    def entries(self) -> Iterator[DirEntry]:
        if not self.is_dir:
            raise fail(abi.ENOTDIR)
        try:
            scan = list(os.scandir(self.host_path))
        except OSError as exc:
            raise host_errno(exc) from None
        yield DirEntry(".", self._ino, abi.DT_DIR)
        yield DirEntry("..", self._ino, abi.DT_DIR)
        for entry in scan:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield DirEntry(entry.name, st.st_ino, dtype_of(st.st_mode))

    def _new_child(self, rel: str) -> HostInode:
        st = host_call(os.lstat, self.fs.host_path(rel))
        return HostInode(self.fs, rel, st)

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        self._writable()
        rel = self._child_rel(name)
        fd = host_call(
            os.open, self.fs.host_path(rel),
            os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, mode & 0o7777,
        )
        os.close(fd)
        return self._new_child(rel)

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        self._writable()
        rel = self._child_rel(name)
        host_call(os.mkdir, self.fs.host_path(rel), mode & 0o7777)
        return self._new_child(rel)

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        self._writable()
        rel = self._child_rel(name)
        # Device nodes would reach the host's devices; sockets and FIFOs are
        # only names on the host (the sandbox serves them itself).
        if mode & abi.S_IFMT not in (abi.S_IFREG, abi.S_IFIFO, abi.S_IFSOCK, 0):
            raise fail(abi.EPERM)
        host_call(os.mknod, self.fs.host_path(rel), mode)
        return self._new_child(rel)

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        self._writable()
        rel = self._child_rel(name)
        host_call(os.symlink, target, self.fs.host_path(rel))
        return self._new_child(rel)

    def link(self, name: str, inode: Inode) -> None:
        self._writable()
        if not isinstance(inode, HostInode) or inode.fs is not self.fs:
            raise fail(abi.EXDEV)
        rel = self._child_rel(name)
        host_call(os.link, inode.host_path, self.fs.host_path(rel), follow_symlinks=False)

    def unlink(self, name: str) -> None:
        self._writable()
        path = self.fs.host_path(self._child_rel(name))
        st = host_call(os.lstat, path)
        if pystat.S_ISDIR(st.st_mode):
            raise fail(abi.EISDIR)
        host_call(os.unlink, path)

    def rmdir(self, name: str) -> None:
        self._writable()
        host_call(os.rmdir, self.fs.host_path(self._child_rel(name)))

    def rename(self, name: str, new_dir: Inode, new_name: str, flags: int) -> None:
        self._writable()
        if not isinstance(new_dir, HostInode) or new_dir.fs is not self.fs:
            raise fail(abi.EXDEV)
        src = self.fs.host_path(self._child_rel(name)).encode("utf-8", "surrogateescape")
        dst = self.fs.host_path(new_dir._child_rel(new_name)).encode(
            "utf-8", "surrogateescape"
        )
        if _libc.renameat2(abi.AT_FDCWD, src, abi.AT_FDCWD, dst, flags) != 0:
            raise SyscallError(ctypes.get_errno())

    # --- symlinks and data ---------------------------------------------------

    def readlink(self) -> str:
        if not self.is_symlink:
            raise fail(abi.EINVAL)
        return str(host_call(os.readlink, self.host_path))

    def read_at(self, offset: int, count: int) -> bytes:
        if self.is_dir:
            raise fail(abi.EISDIR)
        fd = host_call(os.open, self.host_path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            return bytes(host_call(os.pread, fd, count, offset))
        finally:
            os.close(fd)

    def write_at(self, offset: int, data: bytes) -> int:
        self._writable()
        fd = host_call(os.open, self.host_path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            return int(host_call(os.pwrite, fd, data, offset))
        finally:
            os.close(fd)

    def truncate(self, size: int) -> None:
        self._writable()
        if self.is_dir:
            raise fail(abi.EISDIR)
        host_call(os.truncate, self.host_path, size)

    def read_all(self) -> bytes:
        fd = host_call(os.open, self.host_path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            chunks: list[bytes] = []
            while True:
                chunk = host_call(os.read, fd, 1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)

    # --- attributes ----------------------------------------------------------

    def attr_flags(self) -> int:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = host_call(os.open, self.host_path, flags)
        try:
            out = host_call(fcntl.ioctl, fd, abi.FS_IOC_GETFLAGS, bytes(4))
        finally:
            os.close(fd)
        return int.from_bytes(out, "little")

    def chmod(self, mode: int) -> None:
        self._writable()
        if self.is_symlink:
            raise fail(abi.EOPNOTSUPP)
        host_call(os.chmod, self.host_path, mode & 0o7777)

    def chown(self, uid: int, gid: int) -> None:
        self._writable()
        host_call(os.lchown, self.host_path, uid, gid)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        self._writable()
        st = self.stat()
        times = (
            atime_ns if atime_ns is not None else st.atime_ns,
            mtime_ns if mtime_ns is not None else st.mtime_ns,
        )
        host_call(os.utime, self.host_path, ns=times, follow_symlinks=False)

    # --- opening -------------------------------------------------------------

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        if self.is_dir or flags & abi.O_PATH:
            return super().open(flags, path, task)
        if self.mode & abi.S_IFMT != abi.S_IFREG:
            # Host devices, fifos and sockets are not passed through.
            raise fail(abi.EACCES)
        acc = flags & abi.O_ACCMODE
        if acc != abi.O_RDONLY:
            self._writable()
        host_flags = {abi.O_RDONLY: os.O_RDONLY, abi.O_WRONLY: os.O_WRONLY}.get(
            acc, os.O_RDWR
        )
        fd = host_call(os.open, self.host_path, host_flags | os.O_NOFOLLOW | os.O_CLOEXEC)
        return HostFile(self, flags, path, fd)


class HostFile(OpenFile):
    """An open host regular file; the sentry keeps the host descriptor."""

    def __init__(self, inode: HostInode, flags: int, path: str, fd: int) -> None:
        super().__init__(inode, flags, path)
        self.inode: HostInode = inode
        self.fd = fd

    def read(self, count: int) -> bytes:
        data = bytes(host_call(os.pread, self.fd, count, self.offset))
        self.offset += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self.flags & abi.O_APPEND:
            self.offset = os.fstat(self.fd).st_size
        n = int(host_call(os.pwrite, self.fd, data, self.offset))
        self.offset += n
        return n

    def pread(self, count: int, offset: int) -> bytes:
        return bytes(host_call(os.pread, self.fd, count, offset))

    def pwrite(self, data: bytes, offset: int) -> int:
        if self.flags & abi.O_APPEND:
            offset = os.fstat(self.fd).st_size
        return int(host_call(os.pwrite, self.fd, data, offset))

    def seek(self, offset: int, whence: int) -> int:
        if whence in (abi.SEEK_DATA, abi.SEEK_HOLE):
            # The host knows where its holes are.
            self.offset = int(host_call(os.lseek, self.fd, offset, whence))
        else:
            size = os.fstat(self.fd).st_size
            self.offset = seek_position(self.offset, offset, whence, size)
        return self.offset

    def release(self) -> None:
        os.close(self.fd)
        self.fd = -1

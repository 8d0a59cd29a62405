"""tmpfs: a file system that lives entirely in the sentry's memory.

It is the upper layer of the root overlay and what ``--tmpfs`` mounts.
Directories map names to inodes; a hard link is the same inode under two
names (``nlink`` counts them).

File data is one contiguous buffer, not a sparse one, so a file cannot grow
past :data:`MAX_FILE_SIZE`: a write beyond it fails with ENOSPC (as a full
tmpfs does) and a truncate or fallocate with EFBIG. Linux's tmpfs would keep
a sparse file of any size up to 2**63-1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sentry import abi
from vfs.core import DirEntry, Inode, OpenFile, Stat, dtype_of, fail, new_ino, now_ns
from vfs.pipe import Fifo

if TYPE_CHECKING:
    from sentry.task import Task

TMPFS_DEV = 0x2D
# The largest in-memory file (see the module docstring).
MAX_FILE_SIZE = 4 << 30


class MemInode(Inode):
    """An inode of tmpfs."""

    def __init__(self, mode: int, uid: int = 0, gid: int = 0, rdev: int = 0,
                 dev: int = TMPFS_DEV) -> None:
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.fs_dev = dev
        self._ino = new_ino()
        self.nlink = 2 if mode & abi.S_IFMT == abi.S_IFDIR else 1
        t = now_ns()
        self.atime = self.mtime = self.ctime = self.btime = t
        self.data = bytearray()
        self.children: dict[str, MemInode] = {}
        self.target = ""
        self.fifo: Fifo | None = None

    @property
    def ino(self) -> int:
        return self._ino

    def stat(self) -> Stat:
        size = len(self.data)
        if self.is_symlink:
            size = len(self.target.encode("utf-8", "surrogateescape"))
        elif self.is_dir:
            size = 20 * (len(self.children) + 2)  # BOGO_DIRENT_SIZE
        # Data lives in whole pages, counted in 512-byte blocks; directories
        # and symlinks take none.
        pages = (len(self.data) + abi.PAGE_SIZE - 1) // abi.PAGE_SIZE
        blocks = pages * (abi.PAGE_SIZE // 512)
        return Stat(
            dev=self.fs_dev, ino=self._ino, mode=self.mode, nlink=self.nlink,
            uid=self.uid, gid=self.gid, rdev=self.rdev, size=size, blksize=4096,
            blocks=blocks, atime_ns=self.atime, mtime_ns=self.mtime,
            ctime_ns=self.ctime, btime_ns=self.btime,
        )

    def size(self) -> int:
        return len(self.data)

    def _touch(self) -> None:
        self.mtime = self.ctime = now_ns()

    # --- directories ---------------------------------------------------------

    def _dir(self) -> dict[str, MemInode]:
        if not self.is_dir:
            raise fail(abi.ENOTDIR)
        return self.children

    def lookup(self, name: str) -> Inode | None:
        return self._dir().get(name)

    def entries(self) -> Iterator[DirEntry]:
        children = self._dir()
        yield DirEntry(".", self._ino, abi.DT_DIR)
        yield DirEntry("..", self._ino, abi.DT_DIR)
        for name, child in list(children.items()):
            yield DirEntry(name, child._ino, dtype_of(child.mode))

    def _add(self, name: str, child: MemInode) -> MemInode:
        children = self._dir()
        if name in children:
            raise fail(abi.EEXIST)
        children[name] = child
        if child.is_dir:
            self.nlink += 1
        self._touch()
        return child

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        return self._add(name, MemInode(abi.S_IFREG | (mode & 0o7777), uid, gid))

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        return self._add(name, MemInode(abi.S_IFDIR | (mode & 0o7777), uid, gid))

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        return self._add(name, MemInode(mode, uid, gid, rdev))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        node = MemInode(abi.S_IFLNK | 0o777, uid, gid)
        node.target = target
        return self._add(name, node)

    def link(self, name: str, inode: Inode) -> None:
        if not isinstance(inode, MemInode) or inode.fs_dev != self.fs_dev:
            raise fail(abi.EXDEV)
        self._add(name, inode)
        inode.nlink += 1
        inode.ctime = now_ns()

    def unlink(self, name: str) -> None:
        children = self._dir()
        child = children.get(name)
        if child is None:
            raise fail(abi.ENOENT)
        if child.is_dir:
            raise fail(abi.EISDIR)
        del children[name]
        child.nlink -= 1
        child.ctime = now_ns()
        self._touch()

    def rmdir(self, name: str) -> None:
        children = self._dir()
        child = children.get(name)
        if child is None:
            raise fail(abi.ENOENT)
        if not child.is_dir:
            raise fail(abi.ENOTDIR)
        if child.children:
            raise fail(abi.ENOTEMPTY)
        del children[name]
        child.nlink = 0
        self.nlink -= 1
        self._touch()

    def rename(self, name: str, new_dir: Inode, new_name: str, flags: int) -> None:
        if not isinstance(new_dir, MemInode) or new_dir.fs_dev != self.fs_dev:
            raise fail(abi.EXDEV)
        src = self._dir().get(name)
        if src is None:
            raise fail(abi.ENOENT)
        dst_children = new_dir._dir()
        dst = dst_children.get(new_name)
        if src is dst:
            return
        if flags & abi.RENAME_EXCHANGE:
            if dst is None:
                raise fail(abi.ENOENT)
            self.children[name], dst_children[new_name] = dst, src
            if src.is_dir != dst.is_dir and self is not new_dir:
                delta = 1 if dst.is_dir else -1
                self.nlink += delta
                new_dir.nlink -= delta
            self._touch()
            new_dir._touch()
            return
        if dst is not None:
            if flags & abi.RENAME_NOREPLACE:
                raise fail(abi.EEXIST)
            if src.is_dir and not dst.is_dir:
                raise fail(abi.ENOTDIR)
            if dst.is_dir and not src.is_dir:
                raise fail(abi.EISDIR)
            if dst.is_dir and dst.children:
                raise fail(abi.ENOTEMPTY)
            if dst.is_dir:
                new_dir.nlink -= 1
            dst.nlink -= 1 if not dst.is_dir else dst.nlink
        del self.children[name]
        dst_children[new_name] = src
        if src.is_dir and self is not new_dir:
            self.nlink -= 1
            new_dir.nlink += 1
        src.ctime = now_ns()
        self._touch()
        new_dir._touch()

    def is_ancestor_of(self, other: MemInode) -> bool:
        if self is other:
            return True
        return any(
            c.is_dir and c.is_ancestor_of(other) for c in self.children.values()
        )

    # --- opening -------------------------------------------------------------

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        """FIFOs open their pipe and device nodes their driver; O_PATH neither."""
        kind = self.mode & abi.S_IFMT
        if flags & abi.O_PATH or kind not in (abi.S_IFIFO, abi.S_IFCHR, abi.S_IFBLK):
            return super().open(flags, path, task)
        if kind == abi.S_IFIFO:
            if self.fifo is None:
                self.fifo = Fifo(self.uid, self.gid)
            return self.fifo.open(self, flags, path, task)
        from vfs.devfs import open_device

        return open_device(self, flags, path, task)

    # --- symlinks and data ---------------------------------------------------

    def readlink(self) -> str:
        if not self.is_symlink:
            raise fail(abi.EINVAL)
        return self.target

    def read_at(self, offset: int, count: int) -> bytes:
        if self.is_dir:
            raise fail(abi.EISDIR)
        return bytes(self.data[offset : offset + count])

    def write_at(self, offset: int, data: bytes) -> int:
        if self.is_dir:
            raise fail(abi.EISDIR)
        end = offset + len(data)
        if end > MAX_FILE_SIZE:
            raise fail(abi.ENOSPC)
        if offset > len(self.data):
            self.data.extend(bytes(offset - len(self.data)))
        self.data[offset:end] = data
        self._touch()
        return len(data)

    def truncate(self, size: int) -> None:
        if self.is_dir:
            raise fail(abi.EISDIR)
        if size > MAX_FILE_SIZE:
            raise fail(abi.EFBIG)
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data.extend(bytes(size - len(self.data)))
        self._touch()

    # --- attributes ----------------------------------------------------------

    def attr_flags(self) -> int:
        # TODO: chattr's FS_IOC_SETFLAGS, and honouring immutable and append-only.
        return 0

    def chmod(self, mode: int) -> None:
        self.mode = (self.mode & abi.S_IFMT) | (mode & 0o7777)
        self.ctime = now_ns()

    def chown(self, uid: int, gid: int) -> None:
        if uid != -1:
            self.uid = uid
        if gid != -1:
            self.gid = gid
        self.ctime = now_ns()

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        if atime_ns is not None:
            self.atime = atime_ns
        if mtime_ns is not None:
            self.mtime = mtime_ns
        self.ctime = now_ns()


def new_tmpfs(mode: int = 0o1777, uid: int = 0, gid: int = 0) -> MemInode:
    """The root directory of a fresh tmpfs."""
    return MemInode(abi.S_IFDIR | mode, uid, gid)

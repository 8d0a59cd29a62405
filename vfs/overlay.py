"""The root overlay: a read-only lower layer with a memory layer on top.

Theory of operation
-------------------
An :class:`OverlayInode` pairs an optional *upper* inode (tmpfs, writable) with
an optional *lower* inode (usually a read-only host file). Reads go to the upper
inode when there is one, else to the lower. Any change first *copies up*: the
parent chain is recreated in the upper layer, then the object itself (a
directory is created empty, a file gets its data and attributes, a symlink its
target). Removing a name that exists below leaves a *whiteout* in the parent
overlay directory, and a directory created over a whiteout, or renamed, is
*opaque*: the lower directory of the same name is no longer merged into it.

Overlay inodes are cached in their parent by name, so one path always gives
the same object (and the same inode number, which is the lower object's number
while there is one, kept across copy-up). The lower layer is never written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sentry import abi
from vfs.core import DirEntry, Inode, OpenFile, RegularFile, Stat, fail
from vfs.hostfs import HostInode
from vfs.tmpfs import MemInode, new_tmpfs

if TYPE_CHECKING:
    from sentry.task import Task

OVERLAY_DEV = 0x2E


class OverlayInode(Inode):
    def __init__(
        self,
        parent: OverlayInode | None,
        name: str,
        upper: MemInode | None,
        lower: Inode | None,
    ) -> None:
        self.parent = parent
        self.name = name
        self.upper = upper
        self.lower = lower
        self.opaque = False
        # Set once the name is gone (unlink, rmdir, replaced by a rename).
        self.removed = False
        self.whiteouts: set[str] = set()
        self.cache: dict[str, OverlayInode] = {}
        top = upper if upper is not None else lower
        assert top is not None
        self.mode = top.mode
        if lower is not None:
            st = lower.stat()
            self._ino, self.fs_dev = st.ino, st.dev
        else:
            assert upper is not None
            self._ino, self.fs_dev = upper.ino, OVERLAY_DEV

    @property
    def ino(self) -> int:
        return self._ino

    @property
    def top(self) -> Inode:
        return self.upper if self.upper is not None else self.lower  # type: ignore[return-value]

    def stat(self) -> Stat:
        st = self.top.stat()
        self.mode = st.mode
        st.ino = self._ino
        st.dev = self.fs_dev
        if self.removed and self.upper is None:
            # Still open after its name went; the host's links do not count.
            st.nlink = 0
        elif self.is_dir and self.upper is not None and self._merged:
            # A merged directory keeps the host's size and block count (the
            # memory layer holds only what changed), and counts as links the
            # subdirectories of the merged view.
            assert self.lower is not None
            below = self.lower.stat()
            st.size, st.blocks, st.blksize = below.size, below.blocks, below.blksize
            st.nlink = below.nlink + self._subdir_delta()
        return st

    @property
    def _merged(self) -> bool:
        return self.lower is not None and not self.opaque

    def _subdir_delta(self) -> int:
        """Subdirectories in the merged view minus those of the lower directory."""
        assert self.upper is not None and self.lower is not None
        delta = 0
        for name in set(self.upper.children) | self.whiteouts:
            upper = self.upper.children.get(name)
            lower = self.lower.lookup(name)
            delta += (upper is not None and upper.is_dir) - (
                lower is not None and lower.is_dir
            )
        return delta

    def size(self) -> int:
        return self.top.size()

    # --- copy-up -------------------------------------------------------------

    def copy_up(self) -> MemInode:
        """Make sure this object exists in the upper layer; return the upper inode."""
        if self.upper is not None:
            return self.upper
        assert self.parent is not None and self.lower is not None
        parent_upper = self.parent.copy_up()
        lower = self.lower
        st = lower.stat()
        kind = st.mode & abi.S_IFMT
        if kind == abi.S_IFDIR:
            upper = parent_upper.mkdir(self.name, st.mode, st.uid, st.gid)
        elif kind == abi.S_IFLNK:
            upper = parent_upper.symlink(self.name, lower.readlink(), st.uid, st.gid)
        elif kind == abi.S_IFREG:
            upper = parent_upper.create(self.name, st.mode, st.uid, st.gid)
            data = lower.read_all() if isinstance(lower, HostInode) else (
                lower.read_at(0, st.size)
            )
            assert isinstance(upper, MemInode)
            upper.data[:] = data
        else:
            upper = parent_upper.mknod(self.name, st.mode, st.rdev, st.uid, st.gid)
        assert isinstance(upper, MemInode)
        upper.atime, upper.mtime, upper.ctime = st.atime_ns, st.mtime_ns, st.ctime_ns
        self.upper = upper
        return upper

    def copy_up_tree(self) -> MemInode:
        """Copy up a directory and everything below it (before a rename)."""
        upper = self.copy_up()
        if self.is_dir and self.lower is not None and not self.opaque:
            for entry in list(self.entries()):
                if entry.name in (".", ".."):
                    continue
                child = self.lookup(entry.name)
                if isinstance(child, OverlayInode):
                    child.copy_up_tree()
            self.opaque = True
            self.lower = None
        return upper

    # --- directories ---------------------------------------------------------

    def lookup(self, name: str) -> Inode | None:
        if not self.is_dir:
            raise fail(abi.ENOTDIR)
        cached = self.cache.get(name)
        if cached is not None:
            return cached
        upper = self.upper.lookup(name) if self.upper is not None else None
        lower = None
        if self.lower is not None and not self.opaque and name not in self.whiteouts:
            lower = self.lower.lookup(name)
        if upper is not None and lower is not None and not (upper.is_dir and lower.is_dir):
            lower = None
        if upper is None and lower is None:
            return None
        assert upper is None or isinstance(upper, MemInode)
        child = OverlayInode(self, name, upper, lower)
        self.cache[name] = child
        return child

    def entries(self) -> Iterator[DirEntry]:
        if not self.is_dir:
            raise fail(abi.ENOTDIR)
        yield DirEntry(".", self._ino, abi.DT_DIR)
        yield DirEntry("..", self.parent._ino if self.parent else self._ino, abi.DT_DIR)
        seen = {".", ".."}
        if self.upper is not None:
            for entry in self.upper.entries():
                if entry.name not in seen:
                    seen.add(entry.name)
                    child = self.lookup(entry.name)
                    ino = child.ino if child is not None else entry.ino
                    yield DirEntry(entry.name, ino, entry.dtype)
        if self.lower is not None and not self.opaque:
            for entry in self.lower.entries():
                if entry.name not in seen and entry.name not in self.whiteouts:
                    seen.add(entry.name)
                    yield entry

    def _prepare_new(self, name: str) -> MemInode:
        upper = self.copy_up()
        if self.lookup(name) is not None:
            raise fail(abi.EEXIST)
        return upper

    def _adopt(self, name: str, upper: Inode) -> OverlayInode:
        assert isinstance(upper, MemInode)
        child = OverlayInode(self, name, upper, None)
        if name in self.whiteouts:
            self.whiteouts.discard(name)
            child.opaque = True
        self.cache[name] = child
        return child

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        upper = self._prepare_new(name)
        return self._adopt(name, upper.create(name, mode, uid, gid))

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        upper = self._prepare_new(name)
        return self._adopt(name, upper.mkdir(name, mode, uid, gid))

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        upper = self._prepare_new(name)
        return self._adopt(name, upper.mknod(name, mode, rdev, uid, gid))

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        upper = self._prepare_new(name)
        return self._adopt(name, upper.symlink(name, target, uid, gid))

    def link(self, name: str, inode: Inode) -> None:
        if not isinstance(inode, OverlayInode):
            raise fail(abi.EXDEV)
        upper = self._prepare_new(name)
        target = inode.copy_up()
        upper.link(name, target)
        child = self._adopt(name, target)
        child._ino, child.fs_dev = inode._ino, inode.fs_dev

    def _remove_name(self, name: str, child: OverlayInode) -> None:
        upper = self.copy_up()
        if child.upper is not None:
            if child.is_dir:
                # Whiteouts inside a merged directory live on the overlay inode,
                # so the upper directory may still hold names we must clear.
                for sub in list(child.upper.children):
                    child.upper.children.pop(sub)
                upper.rmdir(name)
            else:
                upper.unlink(name)
        if child.lower is not None:
            self.whiteouts.add(name)
        self.cache.pop(name, None)
        child.removed = True

    def unlink(self, name: str) -> None:
        child = self.lookup(name)
        if child is None:
            raise fail(abi.ENOENT)
        if child.is_dir:
            raise fail(abi.EISDIR)
        assert isinstance(child, OverlayInode)
        self._remove_name(name, child)

    def _is_empty(self) -> bool:
        return all(e.name in (".", "..") for e in self.entries())

    def rmdir(self, name: str) -> None:
        child = self.lookup(name)
        if child is None:
            raise fail(abi.ENOENT)
        if not child.is_dir:
            raise fail(abi.ENOTDIR)
        assert isinstance(child, OverlayInode)
        if not child._is_empty():
            raise fail(abi.ENOTEMPTY)
        self._remove_name(name, child)

    def rename(self, name: str, new_dir: Inode, new_name: str, flags: int) -> None:
        if not isinstance(new_dir, OverlayInode):
            raise fail(abi.EXDEV)
        src = self.lookup(name)
        if src is None:
            raise fail(abi.ENOENT)
        assert isinstance(src, OverlayInode)
        dst = new_dir.lookup(new_name)
        assert dst is None or isinstance(dst, OverlayInode)
        if src is dst:
            return

        # Check the replacement rules on the merged view, before changing anything.
        if flags & abi.RENAME_EXCHANGE:
            if dst is None:
                raise fail(abi.ENOENT)
        elif dst is not None:
            if flags & abi.RENAME_NOREPLACE:
                raise fail(abi.EEXIST)
            if src.is_dir and not dst.is_dir:
                raise fail(abi.ENOTDIR)
            if dst.is_dir and not src.is_dir:
                raise fail(abi.EISDIR)
            if dst.is_dir and not dst._is_empty():
                raise fail(abi.ENOTEMPTY)

        # Bring both sides fully into the upper layer, then rename there.
        src.copy_up_tree()
        self_upper = self.copy_up()
        new_upper = new_dir.copy_up()
        dst_had_lower = dst is not None and dst.lower is not None
        if dst is not None:
            if flags & abi.RENAME_EXCHANGE:
                dst.copy_up_tree()
            elif dst.upper is None:
                new_dir.whiteouts.discard(new_name)
        src_had_lower = name in self.whiteouts or (
            self.lower is not None and not self.opaque and self.lower.lookup(name) is not None
        )
        self_upper.rename(name, new_upper, new_name, flags)

        # Fix the caches, the whiteouts and the opacity.
        self.cache.pop(name, None)
        new_dir.cache.pop(new_name, None)
        src.parent, src.name = new_dir, new_name
        new_dir.cache[new_name] = src
        if dst_had_lower or src.is_dir:
            src.opaque = True
            src.lower = None if src.is_dir else src.lower
        if flags & abi.RENAME_EXCHANGE:
            assert dst is not None
            dst.parent, dst.name = self, name
            self.cache[name] = dst
            dst.opaque = True
        else:
            if dst is not None:
                dst.removed = True
            if src_had_lower:
                self.whiteouts.add(name)
        if dst_had_lower and not flags & abi.RENAME_EXCHANGE:
            new_dir.whiteouts.discard(new_name)

    # --- symlinks and data ---------------------------------------------------

    def readlink(self) -> str:
        return self.top.readlink()

    def read_at(self, offset: int, count: int) -> bytes:
        return self.top.read_at(offset, count)

    def write_at(self, offset: int, data: bytes) -> int:
        return self.copy_up().write_at(offset, data)

    def truncate(self, size: int) -> None:
        self.copy_up().truncate(size)

    def read_all(self) -> bytes:
        top = self.top
        if isinstance(top, HostInode):
            return top.read_all()
        return top.read_at(0, top.size())

    # --- attributes ----------------------------------------------------------

    def attr_flags(self) -> int:
        return self.top.attr_flags()

    def chmod(self, mode: int) -> None:
        self.copy_up().chmod(mode)

    def chown(self, uid: int, gid: int) -> None:
        self.copy_up().chown(uid, gid)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        self.copy_up().set_times(atime_ns, mtime_ns)

    # --- opening -------------------------------------------------------------

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        writing = flags & abi.O_ACCMODE != abi.O_RDONLY or flags & abi.O_TRUNC
        if self.is_dir or flags & abi.O_PATH:
            return super().open(flags, path, task)
        if writing and not flags & abi.O_PATH:
            self.copy_up()
        top = self.top
        if isinstance(top, MemInode):
            if top.is_reg:
                return RegularFile(self, flags, path)
            return top.open(flags, path, task)
        opened = top.open(flags, path, task)
        opened.inode = self
        return opened


def new_overlay(lower_root: Inode) -> OverlayInode:
    """An overlay whose lower layer is ``lower_root`` and upper a fresh tmpfs."""
    upper = new_tmpfs(lower_root.stat().mode & 0o7777)
    st = lower_root.stat()
    upper.uid, upper.gid = st.uid, st.gid
    upper.atime, upper.mtime, upper.ctime = st.atime_ns, st.mtime_ns, st.ctime_ns
    root = OverlayInode(None, "", upper, lower_root)
    return root

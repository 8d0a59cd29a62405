"""The mount table and path resolution.

Theory of operation
-------------------
A :class:`Location` is where a walk ended: the canonical absolute path (no
``.``, ``..`` or symlinks in it), the inode, and the mount it lies in. The
mount table maps canonical mount point paths to file system roots; after
each step of a walk the new path is looked up in it, so a mounted root hides
the directory below it.

Resolution is done here, one component at a time, for every file system:

* ``..`` goes to the parent of the canonical path, re-walked from the root,
  and never above ``/``: the guest's root is the top of everything it sees;
* a symlink's target is read and walked in the guest's namespace (an absolute
  target restarts at the guest's root), at most 40 symlinks per walk (ELOOP);
* a trailing slash requires the last component to be a directory and makes it
  be followed even when it is a symlink.
"""

from __future__ import annotations

import attrs

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import Inode, OpenFile, OpenFileInode

MAX_SYMLINKS = 40
PATH_MAX = 4096
NAME_MAX = 255


@attrs.define(eq=False)
class Mount:
    path: str
    root: Inode
    fstype: str
    source: str
    read_only: bool = False


@attrs.define(eq=False)
class Location:
    path: str
    inode: Inode
    mount: Mount


def file_location(file: OpenFile) -> Location:
    """Where an open file is: the place it was opened, or for a file opened
    without a path (a pipe, an eventfd, a host stream) the object itself on a
    mount of its own."""
    if file.location is not None:
        return file.location
    inode = file.inode if file.inode is not None else OpenFileInode(file)
    return Location(file.path, inode, Mount(file.path, inode, "", ""))


def _join(base: str, name: str) -> str:
    return "/" + name if base == "/" else base + "/" + name


def parent_path(path: str) -> str:
    if path == "/":
        return "/"
    head = path.rsplit("/", 1)[0]
    return head or "/"


class MountTable:
    """All mounts of one sandbox; the guest's ``/`` is ``mounts['/']``."""

    def __init__(self, root: Inode, fstype: str, source: str) -> None:
        self.mounts: dict[str, Mount] = {"/": Mount("/", root, fstype, source)}

    @property
    def root(self) -> Location:
        m = self.mounts["/"]
        return Location("/", m.root, m)

    def mount(self, path: str, root: Inode, fstype: str, source: str,
              read_only: bool = False) -> None:
        self.mounts[path] = Mount(path, root, fstype, source, read_only)

    def ordered(self) -> list[Mount]:
        return sorted(self.mounts.values(), key=lambda m: (m.path.count("/"), m.path))

    # --- resolution ----------------------------------------------------------

    def _step(self, cur: Location, name: str) -> Location | None:
        """One component down from ``cur`` (a directory); None if absent."""
        child = cur.inode.lookup(name)
        if child is None:
            return None
        path = _join(cur.path, name)
        m = self.mounts.get(path)
        if m is not None:
            return Location(path, m.root, m)
        return Location(path, child, cur.mount)

    def _walk_canonical(self, path: str) -> Location:
        """Walk a canonical path (no symlinks) from the root."""
        cur = self.root
        for name in path.split("/"):
            if name:
                nxt = self._step(cur, name)
                if nxt is None:
                    raise SyscallError(abi.ENOENT)
                cur = nxt
        return cur

    def resolve(
        self,
        start: Location,
        path: str,
        follow: bool = True,
        must_exist: bool = True,
    ) -> Location:
        """Resolve ``path`` relative to ``start`` (ignored if path is absolute)."""
        loc, name, trailing = self.resolve_parent(start, path)
        if name is None:
            return loc
        follow = follow or trailing
        found = self._lookup_last(loc, name, follow, trailing, [0])
        return found

    def _lookup_last(
        self, parent: Location, name: str, follow: bool, trailing: bool, count: list[int]
    ) -> Location:
        while True:
            if name == "..":
                return self._walk_canonical(parent_path(parent.path))
            if name == ".":
                return parent
            nxt = self._step(parent, name)
            if nxt is None:
                raise SyscallError(abi.ENOENT)
            if nxt.inode.is_symlink and follow:
                count[0] += 1
                if count[0] > MAX_SYMLINKS:
                    raise SyscallError(abi.ELOOP)
                magic = nxt.inode.magic_target()
                if magic is not None:
                    if trailing and not magic.inode.is_dir:
                        raise SyscallError(abi.ENOTDIR)
                    return magic
                target = nxt.inode.readlink()
                parent, last, t2 = self._resolve_parent(parent, target, count)
                if last is None:
                    nxt = parent
                else:
                    name = last
                    trailing = trailing or t2
                    continue
            if trailing and not nxt.inode.is_dir:
                raise SyscallError(abi.ENOTDIR)
            return nxt

    def resolve_parent(
        self, start: Location, path: str
    ) -> tuple[Location, str | None, bool]:
        """Walk all but the last component.

        Returns (directory, last name, trailing slash). The last name may be
        "." or ".."; it is None when the path is "/" (or only slashes).
        """
        return self._resolve_parent(start, path, [0])

    def _resolve_parent(
        self, start: Location, path: str, count: list[int]
    ) -> tuple[Location, str | None, bool]:
        if not path:
            raise SyscallError(abi.ENOENT)
        if len(path) >= PATH_MAX:
            raise SyscallError(abi.ENAMETOOLONG)
        cur = self.root if path.startswith("/") else start
        trailing = path.endswith("/")
        names = [n for n in path.split("/") if n]
        if not names:
            return cur, None, trailing
        for name in names:
            if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
                raise SyscallError(abi.ENAMETOOLONG)
        last = names.pop()
        for name in names:
            if not cur.inode.is_dir:
                raise SyscallError(abi.ENOTDIR)
            cur = self._lookup_last(cur, name, True, True, count)
        if not cur.inode.is_dir:
            raise SyscallError(abi.ENOTDIR)
        return cur, last, trailing

    def lookup_child(self, parent: Location, name: str) -> Location | None:
        """The entry ``name`` in ``parent`` without following a final symlink."""
        return self._step(parent, name)

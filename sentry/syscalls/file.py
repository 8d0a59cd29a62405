"""Path syscalls: open, stat, directories, links, attributes, working directory."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import dirfd_location, encode, path_arg, s32
from sentry.syscalls.table import syscall
from vfs.core import Inode, OpenFile, OpenFileInode, Stat, now_ns
from vfs.mount import MAX_SYMLINKS, Location, file_location

if TYPE_CHECKING:
    from sentry.task import Task

_stat = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
_OPEN_FLAGS = (
    abi.O_ACCMODE | abi.O_CREAT | abi.O_EXCL | abi.O_NOCTTY | abi.O_TRUNC | abi.O_APPEND
    | abi.O_NONBLOCK | abi.O_DSYNC | abi.O_ASYNC | abi.O_DIRECT | abi.O_LARGEFILE
    | abi.O_DIRECTORY | abi.O_NOFOLLOW | abi.O_NOATIME | abi.O_CLOEXEC | abi.O_SYNC
    | abi.O_PATH | abi.O_TMPFILE
)


# --- shared helpers ----------------------------------------------------------


def _mounts(t: Task):  # type: ignore[no-untyped-def]
    return t.process.kernel.mounts


def lookup(t: Task, dirfd: int, path: str, follow: bool = True) -> Location:
    """Resolve a path argument of an *at() call."""
    return _mounts(t).resolve(dirfd_location(t, dirfd, path), path, follow=follow)


def lookup_at(t: Task, dirfd: int, addr: int, flags: int, follow_flag: bool) -> Location:
    """Resolve (dirfd, path) honouring AT_EMPTY_PATH and the follow flag."""
    path = path_arg(t, addr)
    if not path:
        if not flags & abi.AT_EMPTY_PATH:
            raise SyscallError(abi.ENOENT)
        if s32(dirfd) == abi.AT_FDCWD:
            return t.process.fs.cwd
        return file_location(t.process.fds.get(s32(dirfd)))
    return lookup(t, dirfd, path, follow=follow_flag)


def _parent_for_change(
    t: Task, dirfd: int, addr: int, dot: int = abi.EEXIST, dotdot: int = abi.EEXIST,
    root: int = abi.EEXIST,
) -> tuple[Location, str, bool]:
    """The directory a create/remove acts in, and the final name.

    A final "." or ".." or a bare "/" names no entry that can be created or
    removed; each call fails with its own errno then (``dot``, ``dotdot``,
    ``root``), as the kernel's LAST_DOT / LAST_DOTDOT / LAST_ROOT cases do.
    """
    path = path_arg(t, addr)
    parent, name, trailing = _mounts(t).resolve_parent(
        dirfd_location(t, dirfd, path), path
    )
    if name is None:
        raise SyscallError(root)
    if name == ".":
        raise SyscallError(dot)
    if name == "..":
        raise SyscallError(dotdot)
    return parent, name, trailing


def check_writable(loc: Location) -> None:
    """EROFS when the object lies on a read-only mount or file system."""
    if loc.mount.read_only or loc.inode.read_only:
        raise SyscallError(abi.EROFS)


def may_access(t: Task, st: Stat, mask: int, real: bool = False) -> bool:
    """Permission bits check as generic_permission() does it."""
    creds = t.process.creds
    uid = creds.uid if real else creds.fsuid
    gid = creds.gid if real else creds.fsgid
    if uid == 0:
        # Root may do anything but execute a file with no execute bit at all.
        if mask & abi.X_OK and st.mode & abi.S_IFMT != abi.S_IFDIR:
            return bool(st.mode & 0o111)
        return True
    if st.uid == uid:
        bits = (st.mode >> 6) & 7
    elif st.gid == gid or st.gid in creds.groups:
        bits = (st.mode >> 3) & 7
    else:
        bits = st.mode & 7
    return bits & mask == mask


def require_access(t: Task, inode: Inode, mask: int) -> None:
    if not may_access(t, inode.stat(), mask):
        raise SyscallError(abi.EACCES)


def pack_stat(st: Stat) -> bytes:
    return _stat.pack(
        st.dev, st.ino, st.nlink, st.mode, st.uid, st.gid, 0, st.rdev, st.size,
        st.blksize, st.blocks,
        st.atime_ns // 10**9, st.atime_ns % 10**9,
        st.mtime_ns // 10**9, st.mtime_ns % 10**9,
        st.ctime_ns // 10**9, st.ctime_ns % 10**9,
    )


def dev_major(dev: int) -> int:
    return ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)


def dev_minor(dev: int) -> int:
    return (dev & 0xFF) | ((dev >> 12) & ~0xFF)


# --- open --------------------------------------------------------------------


def _link_target(parent: Location, link: Location) -> str:
    """A symlink's target as a path usable from ``parent``."""
    return link.inode.readlink()


def open_location(
    t: Task, dirfd: int, path: str, flags: int, mode: int, depth: int = 0,
    start: Location | None = None,
) -> OpenFile:
    """The shared body of open, openat, openat2 and creat."""
    mounts = _mounts(t)
    if start is None or path.startswith("/"):
        start = dirfd_location(t, dirfd, path)
    acc = flags & abi.O_ACCMODE
    writing = acc in (abi.O_WRONLY, abi.O_RDWR)

    # Check the flag combinations Linux rejects up front.
    if flags & abi.O_TMPFILE == abi.O_TMPFILE:
        raise SyscallError(abi.EOPNOTSUPP)
    if acc == 3 and not flags & abi.O_PATH:
        raise SyscallError(abi.EINVAL)

    # Find the parent directory and the entry.
    parent, name, trailing = mounts.resolve_parent(start, path)
    if name in (".", ".."):
        parent = mounts.resolve(parent, name)
        name = None
    if name is None:
        loc = parent
        if flags & abi.O_CREAT and not flags & abi.O_PATH:
            raise SyscallError(abi.EISDIR)
    else:
        loc = mounts.lookup_child(parent, name)
        if loc is not None and flags & abi.O_CREAT and flags & abi.O_EXCL:
            raise SyscallError(abi.EEXIST)
        if loc is not None and loc.inode.is_symlink:
            if flags & abi.O_NOFOLLOW and not trailing:
                if not flags & abi.O_PATH:
                    raise SyscallError(abi.ELOOP)
            elif loc.inode.magic_target() is not None:
                # /proc/PID/fd/N leads to an open file, which O_CREAT leaves be.
                loc = mounts.resolve(parent, name + "/" * trailing, follow=True)
            elif flags & abi.O_CREAT and depth < MAX_SYMLINKS:
                # O_CREAT through a dangling symlink creates its target.
                return open_location(t, dirfd, _link_target(parent, loc), flags, mode,
                                     depth + 1, parent)
            else:
                loc = mounts.resolve(parent, name + ("/" if trailing else ""), follow=True)
        if loc is None:
            if not flags & abi.O_CREAT:
                raise SyscallError(abi.ENOENT)
            if trailing:
                raise SyscallError(abi.EISDIR)

            # Create a regular file: needs a writable parent.
            check_writable(parent)
            require_access(t, parent.inode, abi.W_OK | abi.X_OK)
            creds = t.process.creds
            inode = parent.inode.create(
                name, mode & 0o7777 & ~t.process.fs.umask, creds.fsuid, creds.fsgid
            )
            loc = mounts.lookup_child(parent, name)
            assert loc is not None and loc.inode.ino == inode.ino
        elif trailing and not loc.inode.is_dir:
            raise SyscallError(abi.ENOTDIR)

    inode = loc.inode

    # An O_PATH descriptor only names the object.
    if flags & abi.O_PATH:
        if flags & abi.O_DIRECTORY and not inode.is_dir:
            raise SyscallError(abi.ENOTDIR)
        file = OpenFile(inode, flags & (abi.O_PATH | abi.O_DIRECTORY | abi.O_NOFOLLOW
                                         | abi.O_CLOEXEC), loc.path)
        file.location = loc
        return file

    # Check the object against the access wanted.
    if flags & abi.O_DIRECTORY and not inode.is_dir:
        raise SyscallError(abi.ENOTDIR)
    if inode.is_dir and (writing or flags & abi.O_TRUNC and acc != abi.O_RDONLY):
        raise SyscallError(abi.EISDIR)
    if writing or flags & abi.O_TRUNC:
        if inode.is_reg:
            check_writable(loc)
    mask = (abi.R_OK if acc in (abi.O_RDONLY, abi.O_RDWR) else 0) | (
        abi.W_OK if writing else 0
    )
    if mask:
        require_access(t, inode, mask)

    # "ENXIO: The file is a UNIX domain socket" - open(2).
    if not inode.is_reg and not inode.is_dir and inode.stat().mode & abi.S_IFMT == (
        abi.S_IFSOCK
    ):
        raise SyscallError(abi.ENXIO)

    # Open, then truncate a regular file opened for writing with O_TRUNC.
    file = inode.open(flags & ~(abi.O_CREAT | abi.O_EXCL | abi.O_NOCTTY), loc.path, t)
    if not isinstance(inode, OpenFileInode):
        file.location = loc
    if flags & abi.O_TRUNC and writing and inode.is_reg:
        inode.truncate(0)
    return file


def openat(t: Task, dirfd: int, addr: int, flags: int, mode: int, *_: int) -> int:
    """openat(2)."""
    flags = s32(flags) & 0xFFFFFFFF
    if flags & ~_OPEN_FLAGS:
        flags &= _OPEN_FLAGS  # unknown flags are ignored by open(2)
    file = open_location(t, dirfd, path_arg(t, addr), flags, mode & 0xFFFF)
    return t.process.fds.install(file, bool(flags & abi.O_CLOEXEC))


def open(t: Task, addr: int, flags: int, mode: int, *_: int) -> int:
    """open(2)."""
    return openat(t, abi.AT_FDCWD & 0xFFFFFFFF, addr, flags, mode)


def creat(t: Task, addr: int, mode: int, *_: int) -> int:
    """creat(2)."""
    return open(t, addr, abi.O_CREAT | abi.O_WRONLY | abi.O_TRUNC, mode)


def openat2(t: Task, dirfd: int, addr: int, how: int, size: int, *_: int) -> int:
    """openat2(2): flags and mode honoured; RESOLVE_* flags are not."""
    if size < 24:
        raise SyscallError(abi.EINVAL)
    flags, mode, resolve = struct.unpack("<QQQ", t.mm.read(how, 24))
    if resolve:
        raise SyscallError(abi.EINVAL)
    if flags & ~_OPEN_FLAGS or mode & ~0o7777:
        raise SyscallError(abi.EINVAL)
    file = open_location(t, dirfd, path_arg(t, addr), flags, mode)
    return t.process.fds.install(file, bool(flags & abi.O_CLOEXEC))


# --- stat --------------------------------------------------------------------


def newfstatat(t: Task, dirfd: int, addr: int, buf: int, flags: int, *_: int) -> int:
    """newfstatat(2)."""
    flags = s32(flags)
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH | abi.AT_NO_AUTOMOUNT):
        raise SyscallError(abi.EINVAL)
    loc = lookup_at(t, dirfd, addr, flags, not flags & abi.AT_SYMLINK_NOFOLLOW)
    t.mm.write(buf, pack_stat(loc.inode.stat()))
    return 0


def stat(t: Task, addr: int, buf: int, *_: int) -> int:
    """stat(2)."""
    return newfstatat(t, abi.AT_FDCWD, addr, buf, 0)


def lstat(t: Task, addr: int, buf: int, *_: int) -> int:
    """lstat(2)."""
    return newfstatat(t, abi.AT_FDCWD, addr, buf, abi.AT_SYMLINK_NOFOLLOW)


def fstat(t: Task, fd: int, buf: int, *_: int) -> int:
    """fstat(2)."""
    file = t.process.fds.get(s32(fd))
    t.mm.write(buf, pack_stat(file.stat()))
    return 0


def statx(t: Task, dirfd: int, addr: int, flags: int, mask: int, buf: int, *_: int) -> int:
    """statx(2)."""
    flags = s32(flags)
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH | abi.AT_NO_AUTOMOUNT
                 | abi.AT_STATX_SYNC_TYPE):
        raise SyscallError(abi.EINVAL)
    if flags & abi.AT_STATX_SYNC_TYPE == abi.AT_STATX_SYNC_TYPE:
        raise SyscallError(abi.EINVAL)
    if mask & abi.STATX__RESERVED:
        raise SyscallError(abi.EINVAL)
    loc = lookup_at(t, dirfd, addr, flags, not flags & abi.AT_SYMLINK_NOFOLLOW)
    st = loc.inode.stat()
    got = abi.STATX_BASIC_STATS | (abi.STATX_BTIME if st.btime_ns else 0)

    def ts(ns: int) -> bytes:
        return struct.pack("<qIi", ns // 10**9, ns % 10**9, 0)

    blob = struct.pack(
        "<IIQIIIHHQQQQ", got, st.blksize, 0, st.nlink, st.uid, st.gid, st.mode & 0xFFFF,
        0, st.ino, st.size, st.blocks, 0,
    ) + ts(st.atime_ns) + ts(st.btime_ns) + ts(st.ctime_ns) + ts(st.mtime_ns) + (
        struct.pack("<IIII", dev_major(st.rdev), dev_minor(st.rdev), dev_major(st.dev),
                    dev_minor(st.dev))
    )
    t.mm.write(buf, blob.ljust(256, b"\0"))
    return 0


# --- directories and names ---------------------------------------------------


def mkdirat(t: Task, dirfd: int, addr: int, mode: int, *_: int) -> int:
    """mkdirat(2)."""
    parent, name, _trailing = _parent_for_change(t, dirfd, addr)
    if _mounts(t).lookup_child(parent, name) is not None:
        raise SyscallError(abi.EEXIST)
    check_writable(parent)
    require_access(t, parent.inode, abi.W_OK | abi.X_OK)
    creds = t.process.creds
    parent.inode.mkdir(name, mode & 0o7777 & ~t.process.fs.umask, creds.fsuid, creds.fsgid)
    return 0


def mkdir(t: Task, addr: int, mode: int, *_: int) -> int:
    """mkdir(2)."""
    return mkdirat(t, abi.AT_FDCWD, addr, mode)


def mknodat(t: Task, dirfd: int, addr: int, mode: int, dev: int, *_: int) -> int:
    """mknodat(2): device nodes open through the driver /dev has for them."""
    parent, name, _trailing = _parent_for_change(t, dirfd, addr)
    kind = mode & abi.S_IFMT
    if kind == 0:
        mode |= abi.S_IFREG
        kind = abi.S_IFREG
    if kind not in (abi.S_IFREG, abi.S_IFIFO, abi.S_IFSOCK, abi.S_IFCHR, abi.S_IFBLK):
        raise SyscallError(abi.EINVAL)
    # "EPERM: [...] the caller is not privileged (Linux: does not have the
    # CAP_MKNOD capability)" to make a device node - mknod(2).
    if kind in (abi.S_IFCHR, abi.S_IFBLK) and t.process.creds.euid != 0:
        raise SyscallError(abi.EPERM)
    if _mounts(t).lookup_child(parent, name) is not None:
        raise SyscallError(abi.EEXIST)
    check_writable(parent)
    creds = t.process.creds
    perm = mode & 0o7777 & ~t.process.fs.umask
    parent.inode.mknod(name, kind | perm, dev, creds.fsuid, creds.fsgid)
    return 0


def mknod(t: Task, addr: int, mode: int, dev: int, *_: int) -> int:
    """mknod(2)."""
    return mknodat(t, abi.AT_FDCWD, addr, mode, dev)


def _remove(t: Task, dirfd: int, addr: int, directory: bool) -> int:
    if directory:
        parent, name, trailing = _parent_for_change(
            t, dirfd, addr, abi.EINVAL, abi.ENOTEMPTY, abi.EBUSY
        )
    else:
        parent, name, trailing = _parent_for_change(
            t, dirfd, addr, abi.EISDIR, abi.EISDIR, abi.EISDIR
        )
    child = _mounts(t).lookup_child(parent, name)
    if child is None:
        raise SyscallError(abi.ENOENT)
    if directory:
        if not child.inode.is_dir:
            raise SyscallError(abi.ENOTDIR)
        if child.path in _mounts(t).mounts:
            raise SyscallError(abi.EBUSY)
    elif trailing and not child.inode.is_dir:
        raise SyscallError(abi.ENOTDIR)
    elif child.inode.is_dir:
        raise SyscallError(abi.EISDIR)
    check_writable(parent)
    require_access(t, parent.inode, abi.W_OK | abi.X_OK)
    if directory:
        parent.inode.rmdir(name)
    else:
        parent.inode.unlink(name)
    return 0


def unlinkat(t: Task, dirfd: int, addr: int, flags: int, *_: int) -> int:
    """unlinkat(2)."""
    flags = s32(flags)
    if flags & ~abi.AT_REMOVEDIR:
        raise SyscallError(abi.EINVAL)
    return _remove(t, dirfd, addr, bool(flags & abi.AT_REMOVEDIR))


def unlink(t: Task, addr: int, *_: int) -> int:
    """unlink(2)."""
    return _remove(t, abi.AT_FDCWD, addr, False)


def rmdir(t: Task, addr: int, *_: int) -> int:
    """rmdir(2)."""
    return _remove(t, abi.AT_FDCWD, addr, True)


def renameat2(t: Task, olddirfd: int, oldaddr: int, newdirfd: int, newaddr: int,
              flags: int, *_: int) -> int:
    """renameat2(2)."""
    flags = s32(flags)
    if flags & ~(abi.RENAME_NOREPLACE | abi.RENAME_EXCHANGE | abi.RENAME_WHITEOUT):
        raise SyscallError(abi.EINVAL)
    if flags & abi.RENAME_EXCHANGE and flags & (abi.RENAME_NOREPLACE | abi.RENAME_WHITEOUT):
        raise SyscallError(abi.EINVAL)
    if flags & abi.RENAME_WHITEOUT:
        raise SyscallError(abi.EPERM)
    mounts = _mounts(t)
    busy = (abi.EBUSY, abi.EBUSY, abi.EBUSY)
    old_parent, old_name, old_slash = _parent_for_change(t, olddirfd, oldaddr, *busy)
    new_parent, new_name, new_slash = _parent_for_change(t, newdirfd, newaddr, *busy)
    src = mounts.lookup_child(old_parent, old_name)
    if src is None:
        raise SyscallError(abi.ENOENT)
    if (old_slash or new_slash) and not src.inode.is_dir:
        raise SyscallError(abi.ENOTDIR)
    if old_parent.mount is not new_parent.mount:
        raise SyscallError(abi.EXDEV)
    dst = mounts.lookup_child(new_parent, new_name)
    if src.inode.is_dir and (new_parent.path + "/").startswith(src.path + "/"):
        raise SyscallError(abi.EINVAL)
    if dst is not None and dst.inode.is_dir and (
        (old_parent.path + "/").startswith(dst.path + "/")
    ) and not flags & abi.RENAME_EXCHANGE:
        raise SyscallError(abi.ENOTEMPTY)
    check_writable(old_parent)
    check_writable(new_parent)
    old_parent.inode.rename(old_name, new_parent.inode, new_name, flags)
    return 0


def renameat(t: Task, olddirfd: int, oldaddr: int, newdirfd: int, newaddr: int,
             *_: int) -> int:
    """renameat(2)."""
    return renameat2(t, olddirfd, oldaddr, newdirfd, newaddr, 0)


def rename(t: Task, oldaddr: int, newaddr: int, *_: int) -> int:
    """rename(2)."""
    return renameat2(t, abi.AT_FDCWD, oldaddr, abi.AT_FDCWD, newaddr, 0)


def linkat(t: Task, olddirfd: int, oldaddr: int, newdirfd: int, newaddr: int,
           flags: int, *_: int) -> int:
    """linkat(2)."""
    flags = s32(flags)
    if flags & ~(abi.AT_SYMLINK_FOLLOW | abi.AT_EMPTY_PATH):
        raise SyscallError(abi.EINVAL)
    src = lookup_at(t, olddirfd, oldaddr, flags, bool(flags & abi.AT_SYMLINK_FOLLOW))
    if src.inode.is_dir:
        raise SyscallError(abi.EPERM)
    parent, name, _slash = _parent_for_change(t, newdirfd, newaddr)
    if _mounts(t).lookup_child(parent, name) is not None:
        raise SyscallError(abi.EEXIST)
    if src.mount is not parent.mount:
        raise SyscallError(abi.EXDEV)
    check_writable(parent)
    parent.inode.link(name, src.inode)
    return 0


def link(t: Task, oldaddr: int, newaddr: int, *_: int) -> int:
    """link(2)."""
    return linkat(t, abi.AT_FDCWD, oldaddr, abi.AT_FDCWD, newaddr, 0)


def symlinkat(t: Task, target_addr: int, dirfd: int, addr: int, *_: int) -> int:
    """symlinkat(2)."""
    target = path_arg(t, target_addr)
    parent, name, _slash = _parent_for_change(t, dirfd, addr)
    if _mounts(t).lookup_child(parent, name) is not None:
        raise SyscallError(abi.EEXIST)
    check_writable(parent)
    creds = t.process.creds
    parent.inode.symlink(name, target, creds.fsuid, creds.fsgid)
    return 0


def symlink(t: Task, target_addr: int, addr: int, *_: int) -> int:
    """symlink(2)."""
    return symlinkat(t, target_addr, abi.AT_FDCWD, addr)


def readlinkat(t: Task, dirfd: int, addr: int, buf: int, size: int, *_: int) -> int:
    """readlinkat(2)."""
    size = s32(size)
    if size <= 0:
        raise SyscallError(abi.EINVAL)
    loc = lookup_at(t, dirfd, addr, abi.AT_EMPTY_PATH, False)
    data = encode(loc.inode.readlink())[:size]
    t.mm.write(buf, data)
    return len(data)


def readlink(t: Task, addr: int, buf: int, size: int, *_: int) -> int:
    """readlink(2)."""
    path = path_arg(t, addr)
    if not path:
        raise SyscallError(abi.ENOENT)
    return readlinkat(t, abi.AT_FDCWD, addr, buf, size)


# --- attributes --------------------------------------------------------------


def _chmod(t: Task, loc: Location, mode: int) -> int:
    check_writable(loc)
    st = loc.inode.stat()
    if t.process.creds.fsuid not in (0, st.uid):
        raise SyscallError(abi.EPERM)
    loc.inode.chmod(mode & 0o7777)
    return 0


def fchmodat(t: Task, dirfd: int, addr: int, mode: int, *_: int) -> int:
    """fchmodat(2)."""
    return _chmod(t, lookup_at(t, dirfd, addr, 0, True), mode)


def chmod(t: Task, addr: int, mode: int, *_: int) -> int:
    """chmod(2)."""
    return fchmodat(t, abi.AT_FDCWD, addr, mode)


def fchmod(t: Task, fd: int, mode: int, *_: int) -> int:
    """fchmod(2)."""
    file = t.process.fds.get(s32(fd))
    if file.flags & abi.O_PATH:
        raise SyscallError(abi.EBADF)
    if file.location is None:
        return 0
    return _chmod(t, file.location, mode)


def _id_arg(value: int) -> int:
    """A uid_t/gid_t argument: 32 bits, where (uid_t)-1 means "leave it"."""
    value &= 0xFFFFFFFF
    return -1 if value == 0xFFFFFFFF else value


def _chown(t: Task, loc: Location, uid: int, gid: int) -> int:
    uid, gid = _id_arg(uid), _id_arg(gid)
    check_writable(loc)
    st = loc.inode.stat()
    creds = t.process.creds
    if creds.fsuid != 0:
        if uid != -1 and uid != st.uid:
            raise SyscallError(abi.EPERM)
        if gid != -1 and creds.fsuid != st.uid:
            raise SyscallError(abi.EPERM)
        if gid != -1 and gid != creds.fsgid and gid not in creds.groups:
            raise SyscallError(abi.EPERM)
    loc.inode.chown(uid, gid)
    return 0


def fchownat(t: Task, dirfd: int, addr: int, uid: int, gid: int, flags: int,
             *_: int) -> int:
    """fchownat(2)."""
    flags = s32(flags)
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        raise SyscallError(abi.EINVAL)
    loc = lookup_at(t, dirfd, addr, flags, not flags & abi.AT_SYMLINK_NOFOLLOW)
    return _chown(t, loc, uid, gid)


def chown(t: Task, addr: int, uid: int, gid: int, *_: int) -> int:
    """chown(2)."""
    return fchownat(t, abi.AT_FDCWD, addr, uid, gid, 0)


def lchown(t: Task, addr: int, uid: int, gid: int, *_: int) -> int:
    """lchown(2)."""
    return fchownat(t, abi.AT_FDCWD, addr, uid, gid, abi.AT_SYMLINK_NOFOLLOW)


def fchown(t: Task, fd: int, uid: int, gid: int, *_: int) -> int:
    """fchown(2)."""
    file = t.process.fds.get(s32(fd))
    if file.location is None:
        raise SyscallError(abi.EINVAL)
    return _chown(t, file.location, uid, gid)


def utimensat(t: Task, dirfd: int, addr: int, times: int, flags: int, *_: int) -> int:
    """utimensat(2)."""
    flags = s32(flags)
    if flags & ~(abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        raise SyscallError(abi.EINVAL)
    if addr == 0:
        # utimensat(fd, NULL, ...) is futimens(fd).
        file = t.process.fds.get(s32(dirfd))
        if file.location is None:
            raise SyscallError(abi.EBADF)
        loc = file.location
    else:
        loc = lookup_at(t, dirfd, addr, flags, not flags & abi.AT_SYMLINK_NOFOLLOW)
    now = now_ns()
    if times == 0:
        atime: int | None = now
        mtime: int | None = now
    else:
        a_sec, a_nsec, m_sec, m_nsec = struct.unpack("<qqqq", t.mm.read(times, 32))
        values: list[int | None] = []
        for sec, nsec in ((a_sec, a_nsec), (m_sec, m_nsec)):
            if nsec == abi.UTIME_NOW:
                values.append(now)
            elif nsec == abi.UTIME_OMIT:
                values.append(None)
            elif not 0 <= nsec < 10**9:
                raise SyscallError(abi.EINVAL)
            else:
                values.append(sec * 10**9 + nsec)
        atime, mtime = values
        if atime is None and mtime is None:
            return 0
    check_writable(loc)
    loc.inode.set_times(atime, mtime)
    return 0


def _utimes_common(t: Task, addr: int, atime: int | None, mtime: int | None) -> int:
    loc = lookup(t, abi.AT_FDCWD, path_arg(t, addr))
    check_writable(loc)
    loc.inode.set_times(atime, mtime)
    return 0


def utime(t: Task, addr: int, times: int, *_: int) -> int:
    """utime(2)."""
    if times:
        a, m = struct.unpack("<qq", t.mm.read(times, 16))
        return _utimes_common(t, addr, a * 10**9, m * 10**9)
    now = now_ns()
    return _utimes_common(t, addr, now, now)


def utimes(t: Task, addr: int, times: int, *_: int) -> int:
    """utimes(2)."""
    if times:
        a, au, m, mu = struct.unpack("<qqqq", t.mm.read(times, 32))
        return _utimes_common(t, addr, a * 10**9 + au * 1000, m * 10**9 + mu * 1000)
    now = now_ns()
    return _utimes_common(t, addr, now, now)


def faccessat2(t: Task, dirfd: int, addr: int, mode: int, flags: int, *_: int) -> int:
    """faccessat2(2)."""
    mode, flags = s32(mode), s32(flags)
    if mode & ~(abi.R_OK | abi.W_OK | abi.X_OK):
        raise SyscallError(abi.EINVAL)
    if flags & ~(abi.AT_EACCESS | abi.AT_SYMLINK_NOFOLLOW | abi.AT_EMPTY_PATH):
        raise SyscallError(abi.EINVAL)
    loc = lookup_at(t, dirfd, addr, flags, not flags & abi.AT_SYMLINK_NOFOLLOW)
    if mode & abi.W_OK and (loc.mount.read_only or loc.inode.read_only):
        # Devices, FIFOs and sockets stay writable on a read-only file system.
        if loc.inode.mode & abi.S_IFMT not in (abi.S_IFCHR, abi.S_IFBLK, abi.S_IFIFO,
                                               abi.S_IFSOCK):
            raise SyscallError(abi.EROFS)
    if not may_access(t, loc.inode.stat(), mode, real=not flags & abi.AT_EACCESS):
        raise SyscallError(abi.EACCES)
    return 0


def faccessat(t: Task, dirfd: int, addr: int, mode: int, *_: int) -> int:
    """faccessat(2)."""
    return faccessat2(t, dirfd, addr, mode, 0)


def access(t: Task, addr: int, mode: int, *_: int) -> int:
    """access(2)."""
    return faccessat2(t, abi.AT_FDCWD, addr, mode, 0)


def truncate(t: Task, addr: int, length: int, *_: int) -> int:
    """truncate(2)."""
    loc = lookup(t, abi.AT_FDCWD, path_arg(t, addr))
    length = length - (1 << 64) if length >> 63 else length
    if length < 0:
        raise SyscallError(abi.EINVAL)
    if loc.inode.is_dir:
        raise SyscallError(abi.EISDIR)
    check_writable(loc)
    require_access(t, loc.inode, abi.W_OK)
    loc.inode.truncate(length)
    return 0


# --- working directory and file systems --------------------------------------


def chdir(t: Task, addr: int, *_: int) -> int:
    """chdir(2)."""
    loc = lookup(t, abi.AT_FDCWD, path_arg(t, addr))
    if not loc.inode.is_dir:
        raise SyscallError(abi.ENOTDIR)
    require_access(t, loc.inode, abi.X_OK)
    t.process.fs.cwd = loc
    return 0


def fchdir(t: Task, fd: int, *_: int) -> int:
    """fchdir(2)."""
    file = t.process.fds.get(s32(fd))
    if file.location is None or not file.location.inode.is_dir:
        raise SyscallError(abi.ENOTDIR)
    t.process.fs.cwd = file.location
    return 0


def getcwd(t: Task, buf: int, size: int, *_: int) -> int:
    """getcwd(2): returns the length including the NUL."""
    data = encode(t.process.fs.cwd.path) + b"\0"
    if size < len(data):
        raise SyscallError(abi.ERANGE)
    t.mm.write(buf, data)
    return len(data)


_statfs = struct.Struct("<qqQQQQQiiqqq4q")
_FS_MAGIC = {"tmpfs": 0x01021994, "overlay": 0x794C7630, "proc": 0x9FA0, "devtmpfs":
             0x01021994, "hostfs": 0xEF53}


def _statfs_blob(loc: Location) -> bytes:
    magic = _FS_MAGIC.get(loc.mount.fstype, 0xEF53)
    flags = 1 if loc.mount.read_only or loc.inode.read_only else 0  # ST_RDONLY
    blocks = 1 << 24
    return _statfs.pack(magic, 4096, blocks, blocks // 2, blocks // 2, 1 << 20, 1 << 19,
                        0, 0, 255, 4096, flags | 0x20, 0, 0, 0, 0)


def statfs(t: Task, addr: int, buf: int, *_: int) -> int:
    """statfs(2)."""
    loc = lookup(t, abi.AT_FDCWD, path_arg(t, addr))
    t.mm.write(buf, _statfs_blob(loc))
    return 0


def fstatfs(t: Task, fd: int, buf: int, *_: int) -> int:
    """fstatfs(2)."""
    file = t.process.fds.get(s32(fd))
    if file.location is None:
        raise SyscallError(abi.EINVAL)
    t.mm.write(buf, _statfs_blob(file.location))
    return 0


SYSCALLS = [
    syscall("open", open),
    syscall("openat", openat),
    syscall("openat2", openat2, "RESOLVE_* flags are EINVAL", partial=True),
    syscall("creat", creat),
    syscall("stat", stat),
    syscall("lstat", lstat),
    syscall("fstat", fstat),
    syscall("newfstatat", newfstatat),
    syscall("statx", statx),
    syscall("mkdir", mkdir),
    syscall("mkdirat", mkdirat),
    syscall("mknod", mknod, "devices open only if /dev has their driver",
            partial=True),
    syscall("mknodat", mknodat, "devices open only if /dev has their driver",
            partial=True),
    syscall("unlink", unlink),
    syscall("unlinkat", unlinkat),
    syscall("rmdir", rmdir),
    syscall("rename", rename),
    syscall("renameat", renameat),
    syscall("renameat2", renameat2, "RENAME_WHITEOUT is EPERM", partial=True),
    syscall("link", link),
    syscall("linkat", linkat),
    syscall("symlink", symlink),
    syscall("symlinkat", symlinkat),
    syscall("readlink", readlink),
    syscall("readlinkat", readlinkat),
    syscall("chmod", chmod),
    syscall("fchmod", fchmod),
    syscall("fchmodat", fchmodat),
    syscall("chown", chown),
    syscall("lchown", lchown),
    syscall("fchown", fchown),
    syscall("fchownat", fchownat),
    syscall("utimensat", utimensat),
    syscall("utime", utime),
    syscall("utimes", utimes),
    syscall("access", access),
    syscall("faccessat", faccessat),
    syscall("faccessat2", faccessat2),
    syscall("truncate", truncate),
    syscall("chdir", chdir),
    syscall("fchdir", fchdir),
    syscall("getcwd", getcwd),
    syscall("statfs", statfs, "synthetic block counts", partial=True),
    syscall("fstatfs", fstatfs, "synthetic block counts", partial=True),
]


def lookup_exec(t: Task, dirfd: int, path: str, flags: int) -> tuple[Location, bytes]:
    """The file execve(2) runs, and its contents; EACCES unless it may be run."""
    if not path:
        if not flags & abi.AT_EMPTY_PATH:
            raise SyscallError(abi.ENOENT)
        file = t.process.fds.get(s32(dirfd))
        if file.location is None:
            raise SyscallError(abi.EACCES)
        loc = file.location
    else:
        loc = lookup(t, dirfd, path, follow=not flags & abi.AT_SYMLINK_NOFOLLOW)
    inode = loc.inode
    if inode.is_symlink:
        raise SyscallError(abi.ELOOP)
    # "EACCES: The file or a script interpreter is not a regular file" and
    # "execute permission is denied" - execve(2).
    if not inode.is_reg or not may_access(t, inode.stat(), abi.X_OK):
        raise SyscallError(abi.EACCES)
    read_all = getattr(inode, "read_all", None)
    data = bytes(read_all()) if read_all is not None else inode.read_at(0, inode.size())
    return loc, data

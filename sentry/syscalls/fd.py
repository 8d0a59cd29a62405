"""Descriptor syscalls: I/O, duplication, fcntl, ioctl, pipes, polling."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from sentry import abi, jobctl, signals
from sentry.errors import SyscallError
from sentry.syscalls.args import s32, s64
from sentry.syscalls.table import syscall
from vfs.core import OpenFile
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.task import Task

MAX_RW = 0x7FFFF000  # MAX_RW_COUNT: the most one read or write moves
IOV_MAX = 1024
_iovec = struct.Struct("<QQ")
_dirent_head = struct.Struct("<QqHB")


def _fd(t: Task, fd: int) -> OpenFile:
    return t.process.fds.get(s32(fd))


def _readable(file: OpenFile) -> None:
    if not file.readable:
        raise SyscallError(abi.EBADF)


def _writable(file: OpenFile) -> None:
    if not file.writable:
        raise SyscallError(abi.EBADF)


# --- read and write ----------------------------------------------------------


def _before(t: Task, file: OpenFile) -> None:
    """Reconcile shared file mappings before the file is used."""
    maps = t.process.kernel.shared_maps
    if maps.active:
        maps.before_io(file.inode)


def _after_write(t: Task, file: OpenFile) -> None:
    maps = t.process.kernel.shared_maps
    if maps.active:
        maps.after_write(file.inode)


def _write_out(t: Task, file: OpenFile, data: bytes) -> int:
    """Write ``data`` for write(2) and writev(2): the part not yet written.

    A blocking write to a pipe may move part of the data and then wait; the
    call runs again from the start when the task is woken, and
    ``t.io_done`` carries how much went out before (see vfs.wait). A write
    that fails after some progress reports the progress instead. EPIPE also
    raises SIGPIPE, progress or not, as fs/pipe.c does.
    """
    done = t.io_done
    try:
        n = file.write(data[done:])
    except WouldBlock as wait:
        t.io_done = done + wait.done
        raise
    except SyscallError as err:
        t.io_done = 0
        if err.errno == abi.EPIPE:
            signals.broken_pipe(t)
        if done:
            return done
        raise
    t.io_done = 0
    return done + n


def read(t: Task, fd: int, buf: int, count: int, *_: int) -> int:
    """read(2)."""
    file = _fd(t, fd)
    _readable(file)
    if file.is_tty():
        jobctl.background_access(t, abi.SIGTTIN)
    count = min(count, MAX_RW)

    # A bad buffer fails before any data is consumed.
    t.mm.check_writable(buf, count)
    _before(t, file)
    data = file.read(count)
    t.mm.write(buf, data)
    return len(data)


def write(t: Task, fd: int, buf: int, count: int, *_: int) -> int:
    """write(2)."""
    file = _fd(t, fd)
    _writable(file)
    data = t.mm.read(buf, min(count, MAX_RW))
    _before(t, file)
    n = _write_out(t, file, data)
    _after_write(t, file)
    return n


def _iovecs(t: Task, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    iovcnt = s32(iovcnt)
    if iovcnt < 0 or iovcnt > IOV_MAX:
        raise SyscallError(abi.EINVAL)
    raw = t.mm.read(iov, 16 * iovcnt)
    out = []
    total = 0
    for i in range(iovcnt):
        base, length = _iovec.unpack_from(raw, 16 * i)
        if length >> 63:
            raise SyscallError(abi.EINVAL)
        total += length
        out.append((base, length))
    if total > (1 << 63) - 1:
        raise SyscallError(abi.EINVAL)
    return out


def _scatter(t: Task, vecs: list[tuple[int, int]], data: bytes) -> None:
    pos = 0
    for base, length in vecs:
        if pos >= len(data):
            break
        piece = data[pos : pos + length]
        t.mm.write(base, piece)
        pos += len(piece)


def _gather(t: Task, vecs: list[tuple[int, int]]) -> bytes:
    return b"".join(t.mm.read(base, length) for base, length in vecs)


def readv(t: Task, fd: int, iov: int, iovcnt: int, *_: int) -> int:
    """readv(2)."""
    file = _fd(t, fd)
    _readable(file)
    if file.is_tty():
        jobctl.background_access(t, abi.SIGTTIN)
    vecs = _iovecs(t, iov, iovcnt)
    for base, length in vecs:
        t.mm.check_writable(base, length)
    _before(t, file)
    data = file.read(min(sum(n for _b, n in vecs), MAX_RW))
    _scatter(t, vecs, data)
    return len(data)


def writev(t: Task, fd: int, iov: int, iovcnt: int, *_: int) -> int:
    """writev(2)."""
    file = _fd(t, fd)
    _writable(file)
    data = _gather(t, _iovecs(t, iov, iovcnt))
    _before(t, file)
    n = _write_out(t, file, data[:MAX_RW])
    _after_write(t, file)
    return n


def _offset(off: int) -> int:
    off = s64(off)
    if off < 0:
        raise SyscallError(abi.EINVAL)
    return off


def pread64(t: Task, fd: int, buf: int, count: int, off: int, *_: int) -> int:
    """pread64(2)."""
    file = _fd(t, fd)
    _readable(file)
    count = min(count, MAX_RW)
    off = _offset(off)
    t.mm.check_writable(buf, count)
    _before(t, file)
    data = file.pread(count, off)
    t.mm.write(buf, data)
    return len(data)


def pwrite64(t: Task, fd: int, buf: int, count: int, off: int, *_: int) -> int:
    """pwrite64(2)."""
    file = _fd(t, fd)
    _writable(file)
    off = _offset(off)
    data = t.mm.read(buf, min(count, MAX_RW))
    _before(t, file)
    n = file.pwrite(data, off)
    _after_write(t, file)
    return n


def preadv(t: Task, fd: int, iov: int, iovcnt: int, off: int, *_: int) -> int:
    """preadv(2)."""
    file = _fd(t, fd)
    _readable(file)
    vecs = _iovecs(t, iov, iovcnt)
    data = file.pread(min(sum(n for _b, n in vecs), MAX_RW), _offset(off))
    _scatter(t, vecs, data)
    return len(data)


def pwritev(t: Task, fd: int, iov: int, iovcnt: int, off: int, *_: int) -> int:
    """pwritev(2)."""
    file = _fd(t, fd)
    _writable(file)
    vecs = _iovecs(t, iov, iovcnt)
    return file.pwrite(_gather(t, vecs)[:MAX_RW], _offset(off))


def preadv2(t: Task, fd: int, iov: int, iovcnt: int, off: int, _h: int, flags: int
            ) -> int:
    """preadv2(2): offset -1 means the file offset."""
    if s64(off) == -1:
        return readv(t, fd, iov, iovcnt)
    return preadv(t, fd, iov, iovcnt, off)


def pwritev2(t: Task, fd: int, iov: int, iovcnt: int, off: int, _h: int, flags: int
             ) -> int:
    """pwritev2(2): offset -1 means the file offset."""
    if s64(off) == -1:
        return writev(t, fd, iov, iovcnt)
    return pwritev(t, fd, iov, iovcnt, off)


def lseek(t: Task, fd: int, offset: int, whence: int, *_: int) -> int:
    """lseek(2)."""
    file = _fd(t, fd)
    return file.seek(s64(offset), s32(whence))


def getdents64(t: Task, fd: int, buf: int, count: int, *_: int) -> int:
    """getdents64(2): d_off is the index of the next entry."""
    file = _fd(t, fd)
    entries = file.entries()
    out = bytearray()
    index = file.offset
    while index < len(entries):
        entry = entries[index]
        name = entry.name.encode("utf-8", "surrogateescape") + b"\0"
        reclen = (_dirent_head.size + len(name) + 7) & ~7
        if len(out) + reclen > count:
            if not out:
                raise SyscallError(abi.EINVAL)
            break
        rec = _dirent_head.pack(entry.ino, index + 1, reclen, entry.dtype) + name
        out += rec.ljust(reclen, b"\0")
        index += 1
    t.mm.write(buf, bytes(out))
    file.offset = index
    return len(out)


# --- descriptors -------------------------------------------------------------


def close(t: Task, fd: int, *_: int) -> int:
    """close(2): also drops the process's POSIX locks on the file."""
    file = t.process.fds.close(s32(fd))
    if file.inode is not None and not file.flags & abi.O_PATH:
        try:
            st = file.stat()
        except SyscallError:
            return 0
        t.process.kernel.locks.release(("posix", t.process.pid), (st.dev, st.ino))
    if file.refs == 0:
        t.process.kernel.locks.release(("ofd", id(file)))
    return 0


def close_range(t: Task, first: int, last: int, flags: int, *_: int) -> int:
    """close_range(2)."""
    first, last, flags = first & 0xFFFFFFFF, last & 0xFFFFFFFF, s32(flags)
    if flags & ~(abi.CLOSE_RANGE_UNSHARE | abi.CLOSE_RANGE_CLOEXEC) or first > last:
        raise SyscallError(abi.EINVAL)
    fds = t.process.fds
    for fd, _file in list(fds.items()):
        if first <= fd <= last:
            if flags & abi.CLOSE_RANGE_CLOEXEC:
                fds.entry(fd).cloexec = True
            else:
                fds.close(fd)
    return 0


def dup(t: Task, fd: int, *_: int) -> int:
    """dup(2)."""
    file = _fd(t, fd)
    return t.process.fds.install(file)


def dup3(t: Task, old: int, new: int, flags: int, *_: int) -> int:
    """dup3(2)."""
    old, new, flags = s32(old), s32(new), s32(flags)
    if flags & ~abi.O_CLOEXEC or old == new:
        raise SyscallError(abi.EINVAL)
    fds = t.process.fds
    file = fds.get(old)
    if not 0 <= new < fds.limit:
        raise SyscallError(abi.EBADF)
    fds.put(new, file, bool(flags & abi.O_CLOEXEC))
    return new


def dup2(t: Task, old: int, new: int, *_: int) -> int:
    """dup2(2)."""
    if s32(old) == s32(new):
        _fd(t, old)
        return s32(new)
    return dup3(t, old, new, 0)


def fcntl(t: Task, fd: int, cmd: int, arg: int, *_: int) -> int:
    """fcntl(2)."""
    fds = t.process.fds
    fd, cmd = s32(fd), s32(cmd)
    entry = fds.entry(fd)
    file = entry.file
    if cmd in (abi.F_DUPFD, abi.F_DUPFD_CLOEXEC):
        start = s32(arg)
        if start < 0 or start >= fds.limit:
            raise SyscallError(abi.EINVAL)
        return fds.install(file, cmd == abi.F_DUPFD_CLOEXEC, start)
    if cmd == abi.F_GETFD:
        return abi.FD_CLOEXEC if entry.cloexec else 0
    if cmd == abi.F_SETFD:
        entry.cloexec = bool(arg & abi.FD_CLOEXEC)
        return 0
    if cmd == abi.F_GETFL:
        return file.flags & (abi.O_ACCMODE | abi.O_STATUS_FLAGS | abi.O_PATH
                             | abi.O_LARGEFILE | abi.O_DIRECTORY | abi.O_NOFOLLOW)
    if cmd == abi.F_SETFL:
        if file.flags & abi.O_PATH:
            raise SyscallError(abi.EBADF)
        file.flags = (file.flags & ~abi.O_SETFL_MASK) | (arg & abi.O_SETFL_MASK)
        return 0
    if cmd in (abi.F_GETLK, abi.F_SETLK, abi.F_SETLKW, abi.F_OFD_GETLK, abi.F_OFD_SETLK,
               abi.F_OFD_SETLKW):
        return _lock(t, file, cmd, arg)
    if cmd in (abi.F_GETOWN, abi.F_SETOWN, abi.F_GETSIG, abi.F_SETSIG):
        if cmd in (abi.F_SETOWN, abi.F_SETSIG):
            setattr(file, "_owner" if cmd == abi.F_SETOWN else "_sig", s32(arg))
            return 0
        return int(getattr(file, "_owner" if cmd == abi.F_GETOWN else "_sig", 0))
    if cmd in (abi.F_GETPIPE_SZ, abi.F_SETPIPE_SZ):
        method = getattr(file, "pipe_size" if cmd == abi.F_GETPIPE_SZ else
                         "set_pipe_size", None)
        if method is None:
            raise SyscallError(abi.EBADF)
        return int(method() if cmd == abi.F_GETPIPE_SZ else method(s32(arg)))
    if cmd == abi.F_GET_SEALS:
        raise SyscallError(abi.EINVAL)
    raise SyscallError(abi.EINVAL)


_flock = struct.Struct("<hh4xqqi4x")
_OFD = (abi.F_OFD_GETLK, abi.F_OFD_SETLK, abi.F_OFD_SETLKW)


def _lock(t: Task, file: OpenFile, cmd: int, arg: int) -> int:
    """Record locks (POSIX per process, OFD per open file description)."""
    ltype, whence, start, length, pid = _flock.unpack(t.mm.read(arg, _flock.size))

    # Decode the range the way flock_to_posix_lock() does.
    if ltype not in (abi.F_RDLCK, abi.F_WRLCK, abi.F_UNLCK):
        raise SyscallError(abi.EINVAL)
    if whence == abi.SEEK_CUR:
        start += file.offset
    elif whence == abi.SEEK_END:
        start += file.stat().size
    elif whence != abi.SEEK_SET:
        raise SyscallError(abi.EINVAL)
    if length < 0:
        start, length = start + length, -length
    if start < 0:
        raise SyscallError(abi.EINVAL)
    end = start + length if length else None
    if file.inode is None:
        raise SyscallError(abi.EBADF)
    ofd = cmd in _OFD
    if ofd and pid != 0:
        raise SyscallError(abi.EINVAL)
    st = file.stat()
    key = (st.dev, st.ino)
    owner = ("ofd", id(file)) if ofd else ("posix", t.process.pid)
    table = t.process.kernel.locks

    # F_GETLK reports the first conflicting lock, or F_UNLCK.
    if cmd in (abi.F_GETLK, abi.F_OFD_GETLK):
        if ltype == abi.F_UNLCK:
            raise SyscallError(abi.EINVAL)
        other = table.conflict(key, owner, ltype, start, end)
        if other is None:
            t.mm.write(arg, struct.pack("<h", abi.F_UNLCK))
        else:
            olen = 0 if other.end is None else other.end - other.start
            t.mm.write(arg, _flock.pack(other.kind, abi.SEEK_SET, other.start, olen,
                                        other.pid))
        return 0

    # Setting needs the matching access; a conflict fails or would wait.
    if ltype == abi.F_RDLCK and not file.readable:
        raise SyscallError(abi.EBADF)
    if ltype == abi.F_WRLCK and not file.writable:
        raise SyscallError(abi.EBADF)
    if ltype != abi.F_UNLCK and table.conflict(key, owner, ltype, start, end):
        # TODO: F_SETLKW should wait for the holder once there are several tasks.
        raise SyscallError(abi.EAGAIN if cmd in (abi.F_SETLK, abi.F_OFD_SETLK)
                           else abi.EDEADLK)
    table.set(key, owner, ltype, start, end, -1 if ofd else t.process.pid)
    return 0


def flock(t: Task, fd: int, op: int, *_: int) -> int:
    """flock(2): one process never conflicts with itself."""
    _fd(t, fd)
    if s32(op) & ~(1 | 2 | 4 | 8) or not s32(op) & (1 | 2 | 8):
        raise SyscallError(abi.EINVAL)
    return 0


def ioctl(t: Task, fd: int, request: int, arg: int, *_: int) -> int:
    """ioctl(2): FIOCLEX/FIONCLEX/FIONBIO here; the rest is the file's business."""
    fds = t.process.fds
    request &= 0xFFFFFFFF
    entry = fds.entry(s32(fd))
    if request == abi.FIOCLEX:
        entry.cloexec = True
        return 0
    if request == abi.FIONCLEX:
        entry.cloexec = False
        return 0
    if request == abi.FIONBIO:
        on = t.mm.read_u32(arg)
        f = entry.file
        f.flags = (f.flags | abi.O_NONBLOCK) if on else (f.flags & ~abi.O_NONBLOCK)
        return 0
    if request == abi.FIONREAD and entry.file.inode is not None and entry.file.inode.is_reg:
        file = entry.file
        t.mm.write_u32(arg, max(file.stat().size - file.offset, 0))
        return 0
    inode = entry.file.inode
    if request == abi.FS_IOC_GETFLAGS and inode is not None and (
        inode.is_reg or inode.is_dir
    ):
        # The flags travel as an int, whatever the request's size says.
        t.mm.write_u32(arg, inode.attr_flags())
        return 0
    return entry.file.ioctl(request, arg, t)


def fsync(t: Task, fd: int, *_: int) -> int:
    """fsync(2)."""
    file = _fd(t, fd)
    if file.inode is not None:
        file.inode.sync()
    return 0


def fdatasync(t: Task, fd: int, *_: int) -> int:
    """fdatasync(2)."""
    return fsync(t, fd)


def ftruncate(t: Task, fd: int, length: int, *_: int) -> int:
    """ftruncate(2)."""
    file = _fd(t, fd)
    length = s64(length)
    if length < 0:
        raise SyscallError(abi.EINVAL)
    if file.inode is None or not file.inode.is_reg or not file.writable:
        raise SyscallError(abi.EINVAL if file.writable or file.inode is None else abi.EINVAL)
    file.inode.truncate(length)
    return 0


def fallocate(t: Task, fd: int, mode: int, offset: int, length: int, *_: int) -> int:
    """fallocate(2): default mode and KEEP_SIZE; holes are zero bytes."""
    file = _fd(t, fd)
    mode, offset, length = s32(mode), s64(offset), s64(length)
    if offset < 0 or length <= 0:
        raise SyscallError(abi.EINVAL)
    if not file.writable:
        raise SyscallError(abi.EBADF)
    if file.inode is None or file.inode.is_dir:
        raise SyscallError(abi.EISDIR if file.inode is not None else abi.ENODEV)
    if not file.inode.is_reg:
        raise SyscallError(abi.ENODEV)
    if mode & ~(abi.FALLOC_FL_KEEP_SIZE | abi.FALLOC_FL_PUNCH_HOLE):
        raise SyscallError(abi.EOPNOTSUPP)
    if mode & abi.FALLOC_FL_PUNCH_HOLE:
        # "The FALLOC_FL_PUNCH_HOLE flag must be ORed with FALLOC_FL_KEEP_SIZE"
        # - fallocate(2). The hole reads as zeros; the size does not change.
        if not mode & abi.FALLOC_FL_KEEP_SIZE:
            raise SyscallError(abi.EOPNOTSUPP)
        end = min(offset + length, file.inode.size())
        if end > offset:
            file.inode.write_at(offset, bytes(end - offset))
        return 0
    if not mode & abi.FALLOC_FL_KEEP_SIZE and file.inode.size() < offset + length:
        file.inode.truncate(offset + length)
    return 0


# --- copying between files ---------------------------------------------------


def sendfile(t: Task, out_fd: int, in_fd: int, off_ptr: int, count: int, *_: int) -> int:
    """sendfile(2)."""
    src, dst = _fd(t, in_fd), _fd(t, out_fd)
    _readable(src)
    _writable(dst)
    if dst.flags & abi.O_APPEND:
        raise SyscallError(abi.EINVAL)
    count = min(count, MAX_RW)
    if off_ptr:
        off = t.mm.read_i64(off_ptr)
        if off < 0:
            raise SyscallError(abi.EINVAL)
        data = src.pread(count, off)
    else:
        data = src.read(count)

    # Into a full pipe: what did not fit goes back to the source, and the
    # call waits only when nothing fit.
    try:
        n = dst.write(data) if data else 0
    except WouldBlock as wait:
        n = wait.done
        if not n:
            if not off_ptr:
                src.seek(-len(data), abi.SEEK_CUR)
            raise
    except SyscallError as err:
        if not off_ptr:
            src.seek(-len(data), abi.SEEK_CUR)
        if err.errno == abi.EPIPE:
            signals.broken_pipe(t)
        raise
    if off_ptr:
        t.mm.write_u64(off_ptr, off + n)
    elif n < len(data):
        src.seek(n - len(data), abi.SEEK_CUR)
    return n


def copy_file_range(t: Task, in_fd: int, in_off: int, out_fd: int, out_off: int,
                    count: int, flags: int) -> int:
    """copy_file_range(2)."""
    if flags:
        raise SyscallError(abi.EINVAL)
    src, dst = _fd(t, in_fd), _fd(t, out_fd)
    _readable(src)
    _writable(dst)
    if dst.flags & abi.O_APPEND:
        raise SyscallError(abi.EBADF)
    for f in (src, dst):
        if f.inode is None or f.inode.is_dir:
            raise SyscallError(abi.EISDIR if f.inode is not None else abi.EINVAL)
        if not f.inode.is_reg:
            raise SyscallError(abi.EINVAL)
    count = min(count, MAX_RW)
    src_off = t.mm.read_i64(in_off) if in_off else src.offset
    dst_off = t.mm.read_i64(out_off) if out_off else dst.offset
    if src_off < 0 or dst_off < 0:
        raise SyscallError(abi.EINVAL)
    # "EINVAL: fd_in and fd_out refer to the same file and the source and target
    # ranges overlap." - copy_file_range(2)
    if src.stat().ino == dst.stat().ino and src.stat().dev == dst.stat().dev:
        if src_off < dst_off + count and dst_off < src_off + count:
            raise SyscallError(abi.EINVAL)
    data = src.pread(count, src_off)
    n = dst.pwrite(data, dst_off) if data else 0
    if in_off:
        t.mm.write_u64(in_off, src_off + n)
    else:
        src.offset = src_off + n
    if out_off:
        t.mm.write_u64(out_off, dst_off + n)
    else:
        dst.offset = dst_off + n
    return n


# --- pipes and event counters ------------------------------------------------


def pipe2(t: Task, addr: int, flags: int, *_: int) -> int:
    """pipe2(2)."""
    from vfs.pipe import new_pipe

    flags = s32(flags)
    if flags & ~(abi.O_CLOEXEC | abi.O_NONBLOCK | abi.O_DIRECT):
        raise SyscallError(abi.EINVAL)
    reader, writer = new_pipe(flags & (abi.O_NONBLOCK | abi.O_DIRECT))
    fds = t.process.fds
    cloexec = bool(flags & abi.O_CLOEXEC)
    rfd = fds.install(reader, cloexec)
    try:
        wfd = fds.install(writer, cloexec)
    except SyscallError:
        fds.close(rfd)
        raise
    try:
        t.mm.write(addr, struct.pack("<ii", rfd, wfd))
    except SyscallError:
        fds.close(rfd)
        fds.close(wfd)
        raise
    return 0


def pipe(t: Task, addr: int, *_: int) -> int:
    """pipe(2)."""
    return pipe2(t, addr, 0)


def eventfd2(t: Task, initval: int, flags: int, *_: int) -> int:
    """eventfd2(2)."""
    from vfs.pipe import EventFd

    flags = s32(flags)
    if flags & ~(abi.EFD_CLOEXEC | abi.EFD_NONBLOCK | abi.EFD_SEMAPHORE):
        raise SyscallError(abi.EINVAL)
    file = EventFd(initval & 0xFFFFFFFF, flags)
    return t.process.fds.install(file, bool(flags & abi.EFD_CLOEXEC))


def eventfd(t: Task, initval: int, *_: int) -> int:
    """eventfd(2)."""
    return eventfd2(t, initval, 0)


# --- polling -----------------------------------------------------------------
#
# poll, select and their variants look at every file once; when nothing is
# ready they park the task on the union of what the files' readiness comes
# from (OpenFile.poll_queue and poll_host_fd, see vfs.wait) until one of them
# fires, the timeout passes or a signal arrives, then look again. Linux never
# restarts them after a handler ran: they fail with EINTR (and select and
# pselect6 report the time left). ppoll and pselect6 wait with the caller's
# temporary signal mask, as rt_sigsuspend does.

_pollfd = struct.Struct("<ihh")
_FOREVER = 1 << 62
# The poll events select(2) counts for each of its three sets (fs/select.c).
_SELECT_IN = abi.POLLIN | abi.POLLRDNORM | abi.POLLRDBAND | abi.POLLHUP | abi.POLLERR
_SELECT_OUT = abi.POLLOUT | abi.POLLWRNORM | abi.POLLWRBAND | abi.POLLERR
_SELECT_EX = abi.POLLPRI
# Events a poller always hears about, asked for or not.
_ALWAYS_REPORTED = abi.POLLERR | abi.POLLHUP


def readiness_wait(
    t: Task,
    watched: list[tuple[OpenFile, int]],
    deadline_ns: int | None,
    on_interrupt: Callable[[], None] | None = None,
) -> WouldBlock:
    """The wait of a task that wants any of ``watched`` (file, events) to be
    ready: every file's queue with the events as key, and its host descriptor.

    Fails with EINTR instead when a signal can be delivered now (a temporary
    mask may have unblocked one). Shared by poll, select and epoll_wait.
    """
    if signals.has_deliverable(t):
        t.wait_deadline_ns = None
        raise SyscallError(abi.EINTR)
    queues = []
    host_fds = []
    for file, events in watched:
        queue = file.poll_queue()
        if queue is not None:
            queues.append((queue, events | _ALWAYS_REPORTED))
        host_fd = file.poll_host_fd()
        if host_fd is not None:
            host_fds.append((host_fd, events))
    return WouldBlock(queues=queues, host_fds=host_fds, deadline_ns=deadline_ns,
                      restart=False, on_interrupt=on_interrupt)


def wait_deadline(t: Task, timeout_ns: int | None) -> int | None:
    """The deadline of a timed wait, fixed by the call's first run (a re-run
    after a wakeup keeps it); None once it has passed. ``timeout_ns`` None
    waits for ever."""
    now = t.process.kernel.clock.monotonic_ns()
    if t.wait_deadline_ns is None:
        t.wait_deadline_ns = _FOREVER if timeout_ns is None else now + timeout_ns
    if now >= t.wait_deadline_ns:
        t.wait_deadline_ns = None
        return None
    return t.wait_deadline_ns


def time_left(t: Task, deadline_ns: int) -> int:
    """Nanoseconds from now to ``deadline_ns``, never negative."""
    return max(0, deadline_ns - t.process.kernel.clock.monotonic_ns())


def _poll_once(t: Task, entries: list[tuple[int, int]]
               ) -> tuple[list[int], list[tuple[OpenFile, int]]]:
    """The revents of every pollfd now, and the files with their events."""
    fds = t.process.fds
    out = []
    watched = []
    for fd, events in entries:
        if fd < 0:
            out.append(0)
            continue
        if fd not in fds:
            out.append(abi.POLLNVAL)
            continue
        file = fds.get(fd)
        out.append(file.poll() & (events | _ALWAYS_REPORTED))
        watched.append((file, events))
    return out, watched


def _settle(t: Task, count: int, timeout_ns: int | None,
            watched: list[tuple[OpenFile, int]],
            report: Callable[[int], None] | None) -> int | None:
    """After a look that found ``count`` ready: wait (raise) if the call
    must, else end the wait; returns the time left of the timeout."""
    if not count and timeout_ns != 0:
        deadline = wait_deadline(t, timeout_ns)
        if deadline is not None:
            on_interrupt = None
            if report is not None:
                def on_interrupt() -> None:
                    report(time_left(t, deadline))
            raise readiness_wait(
                t, watched, None if deadline == _FOREVER else deadline, on_interrupt
            )
        left = 0
    elif t.wait_deadline_ns not in (None, _FOREVER):
        left = time_left(t, t.wait_deadline_ns)  # type: ignore[arg-type]
    else:
        left = timeout_ns or 0
    t.wait_deadline_ns = None
    return None if timeout_ns is None else left


def _do_poll(t: Task, fds_addr: int, nfds: int, timeout_ns: int | None,
             report: Callable[[int], None] | None = None) -> tuple[int, int | None]:
    """poll and ppoll: (ready count, time left)."""
    # "The nfds value exceeds the RLIMIT_NOFILE value" is EINVAL - poll(2).
    if nfds > t.process.fds.limit:
        raise SyscallError(abi.EINVAL)
    raw = t.mm.read(fds_addr, 8 * nfds)
    entries = []
    for i in range(nfds):
        fd, events, _revents = _pollfd.unpack_from(raw, 8 * i)
        entries.append((fd, events & 0xFFFF))

    # Look at every descriptor; wait unless something is ready or time is up.
    revents, watched = _poll_once(t, entries)
    count = sum(1 for r in revents if r)
    left = _settle(t, count, timeout_ns, watched, report)

    # Write back the revents.
    out = bytearray(raw)
    for i, r in enumerate(revents):
        struct.pack_into("<H", out, 8 * i + 6, r)
    t.mm.write(fds_addr, bytes(out))
    return count, left


def poll(t: Task, fds_addr: int, nfds: int, timeout: int, *_: int) -> int:
    """poll(2)."""
    ms = s32(timeout)
    return _do_poll(t, fds_addr, nfds, None if ms < 0 else ms * 10**6)[0]


def _read_timeout(t: Task, addr: int, usec: bool) -> int | None:
    if not addr:
        return None
    sec, frac = struct.unpack("<qq", t.mm.read(addr, 16))
    limit = 10**6 if usec else 10**9
    if sec < 0 or not 0 <= frac < limit:
        raise SyscallError(abi.EINVAL)
    return sec * 10**9 + frac * (1000 if usec else 1)


def _timeout_writer(t: Task, addr: int, usec: bool) -> Callable[[int], None] | None:
    """What reports the time left in the caller's timeout, as Linux does for
    select, pselect6 and ppoll (poll_select_finish); None without one."""
    if not addr:
        return None

    def write(left_ns: int) -> None:
        sec, ns = divmod(left_ns, 10**9)
        t.mm.write(addr, struct.pack("<qq", sec, ns // 1000 if usec else ns))

    return write


def with_temporary_mask(t: Task, mask_addr: int, size: int,
                         call: Callable[[], int]) -> int:
    """Run ``call`` with the signal mask at ``mask_addr`` in force (none: the
    mask stays as it is).

    The mask stays while the call waits and when it fails with EINTR (the
    handler runs with it, and its frame restores the caller's); any other
    outcome restores the caller's mask at once.
    """
    from sentry.syscalls.signal import end_temporary_mask, start_temporary_mask

    if not start_temporary_mask(t, mask_addr, size):
        return call()
    try:
        result = call()
    except SyscallError as err:
        if err.errno != abi.EINTR:
            end_temporary_mask(t)
        raise
    end_temporary_mask(t)
    return result


def ppoll(t: Task, fds_addr: int, nfds: int, tsp: int, sigmask: int, size: int,
          *_: int) -> int:
    """ppoll(2)."""
    timeout_ns = _read_timeout(t, tsp, False)
    report = _timeout_writer(t, tsp, False)

    def call() -> int:
        count, left = _do_poll(t, fds_addr, nfds, timeout_ns, report)
        if report is not None and left is not None:
            report(left)
        return count

    return with_temporary_mask(t, sigmask, size, call)


def _do_select(t: Task, nfds: int, rset: int, wset: int, eset: int,
               timeout_ns: int | None, report: Callable[[int], None] | None) -> int:
    """select and pselect6."""
    nfds = s32(nfds)
    if nfds < 0:
        raise SyscallError(abi.EINVAL)
    # Linux looks no further than the descriptor table reaches.
    nfds = min(nfds, t.process.fds.limit)
    nbytes = ((nfds + 63) // 64) * 8
    sets = [int.from_bytes(t.mm.read(a, nbytes), "little") if a else 0
            for a in (rset, wset, eset)]
    wanted = sets[0] | sets[1] | sets[2]
    fds = t.process.fds
    files = {}
    for fd in range(nfds):
        if wanted >> fd & 1:
            if fd not in fds:
                raise SyscallError(abi.EBADF)
            files[fd] = fds.get(fd)

    # Look at every descriptor asked about.
    out = [0, 0, 0]
    count = 0
    watched = []
    for fd, file in files.items():
        ready = file.poll()
        events = 0
        for i, (kind, mask) in enumerate(
            ((sets[0], _SELECT_IN), (sets[1], _SELECT_OUT), (sets[2], _SELECT_EX))
        ):
            if not kind >> fd & 1:
                continue
            events |= mask
            if ready & mask:
                out[i] |= 1 << fd
                count += 1
        watched.append((file, events))

    # Wait unless something is ready or time is up; then report.
    left = _settle(t, count, timeout_ns, watched, report)
    for addr, value in zip((rset, wset, eset), out, strict=True):
        if addr:
            t.mm.write(addr, value.to_bytes(nbytes, "little"))
    if report is not None and left is not None:
        report(left)
    return count


def select(t: Task, nfds: int, rset: int, wset: int, eset: int, tv: int, *_: int) -> int:
    """select(2)."""
    timeout_ns = _read_timeout(t, tv, True)
    return _do_select(t, nfds, rset, wset, eset, timeout_ns,
                      _timeout_writer(t, tv, True))


def pselect6(t: Task, nfds: int, rset: int, wset: int, eset: int, ts: int,
             sig: int) -> int:
    """pselect6(2): the sixth argument points at {sigset pointer, size}."""
    timeout_ns = _read_timeout(t, ts, False)
    mask_addr = size = 0
    if sig:
        mask_addr, size = struct.unpack("<QQ", t.mm.read(sig, 16))

    def call() -> int:
        return _do_select(t, nfds, rset, wset, eset, timeout_ns,
                          _timeout_writer(t, ts, False))

    return with_temporary_mask(t, mask_addr, size, call)


SYSCALLS = [
    syscall("read", read),
    syscall("write", write),
    syscall("readv", readv),
    syscall("writev", writev),
    syscall("pread64", pread64),
    syscall("pwrite64", pwrite64),
    syscall("preadv", preadv),
    syscall("pwritev", pwritev),
    syscall("preadv2", preadv2, "RWF_* flags are ignored", partial=True),
    syscall("pwritev2", pwritev2, "RWF_* flags are ignored", partial=True),
    syscall("lseek", lseek),
    syscall("getdents64", getdents64),
    syscall("close", close),
    syscall("close_range", close_range, "CLOSE_RANGE_UNSHARE has nothing to unshare",
            partial=True),
    syscall("dup", dup),
    syscall("dup2", dup2),
    syscall("dup3", dup3),
    syscall("fcntl", fcntl, "F_SETLKW does not wait yet; no F_ADD_SEALS", partial=True),
    syscall("flock", flock, "never conflicts within one process", partial=True),
    syscall("ioctl", ioctl, "terminal queries, FIONREAD, FIOCLEX/FIONCLEX, FIONBIO",
            partial=True),
    syscall("fsync", fsync),
    syscall("fdatasync", fdatasync),
    syscall("ftruncate", ftruncate),
    syscall("fallocate", fallocate, "default mode, KEEP_SIZE and PUNCH_HOLE only",
            partial=True),
    syscall("sendfile", sendfile),
    syscall("copy_file_range", copy_file_range),
    syscall("pipe", pipe),
    syscall("pipe2", pipe2),
    syscall("eventfd", eventfd),
    syscall("eventfd2", eventfd2),
    syscall("poll", poll),
    syscall("ppoll", ppoll),
    syscall("select", select),
    syscall("pselect6", pselect6),
]

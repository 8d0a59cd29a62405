"""Socket syscalls: making, naming, connecting, sending and receiving.

The handlers decode guest memory (socket addresses, msghdr, iovecs, control
messages) and call the socket objects of :mod:`sentry.net`, which know
nothing of guest memory. Two things are done here because they need the
calling task: installing descriptors received with SCM_RIGHTS into its
table, and SIGPIPE for a send that fails with EPIPE without MSG_NOSIGNAL.

A blocking send of a stream that moved part of its data and must wait keeps
the count in ``task.io_done`` and runs again with the rest, as write(2) does
(see :mod:`vfs.wait`). SO_RCVTIMEO and SO_SNDTIMEO put a deadline on the wait
of the socket calls (``task.wait_deadline_ns``); when it passes the call
fails with EAGAIN.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sentry import abi, signals
from sentry.errors import SyscallError
from sentry.net.base import (
    POLL_READ,
    Ancillary,
    Received,
    Socket,
    Ucred,
    timeout_ns,
)
from sentry.syscalls.args import s32, u32
from sentry.syscalls.fd import IOV_MAX, MAX_RW, _gather, _iovecs, _scatter
from sentry.syscalls.table import syscall
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.task import Task

T = TypeVar("T")

SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
OPTVAL_MAX = 256
UIO_MAXIOV = 1024
_msghdr = struct.Struct("<QI4xQQQQi4x")
_cmsghdr = struct.Struct("<Qii")
_int = struct.Struct("<i")
_u32 = struct.Struct("<I")
MMSGHDR_SIZE = _msghdr.size + 8


# --- shared helpers ----------------------------------------------------------


def _sock(t: Task, fd: int) -> Socket:
    file = t.process.fds.get(s32(fd))
    if not isinstance(file, Socket):
        raise SyscallError(abi.ENOTSOCK)
    return file


def _read_addr(t: Task, addr: int, addrlen: int) -> bytes:
    """A socket address argument of ``addrlen`` bytes."""
    length = s32(addrlen)
    if length < 0 or length > SOCKADDR_MAX:
        raise SyscallError(abi.EINVAL)
    return t.mm.read(addr, length) if length else b""


def _write_addr(t: Task, raw: bytes | None, addr: int, len_ptr: int) -> None:
    """Copy an address out: at most the buffer's length, the full length
    into ``*len_ptr`` (so the caller can see it was truncated)."""
    if not addr or not len_ptr:
        return
    room = _int.unpack(t.mm.read(len_ptr, 4))[0]
    if room < 0:
        raise SyscallError(abi.EINVAL)
    raw = raw or b""
    if raw:
        t.mm.write(addr, raw[:room])
    t.mm.write(len_ptr, _int.pack(len(raw)))


def _check_addr_room(t: Task, addr: int, len_ptr: int) -> None:
    """Validate an address buffer before the call changes anything."""
    if addr and len_ptr:
        room = _int.unpack(t.mm.read(len_ptr, 4))[0]
        if room < 0:
            raise SyscallError(abi.EINVAL)


def _timed(t: Task, sock: Socket, which: int, call: Callable[[], T]) -> T:
    """Run ``call``; a wait it asks for ends at the socket's timeout."""
    try:
        result = call()
    except WouldBlock as wait:
        _limit_wait(t, sock, which, wait)
        raise
    t.wait_deadline_ns = None
    return result


def _limit_wait(t: Task, sock: Socket, which: int, wait: WouldBlock) -> None:
    """Give ``wait`` the deadline of SO_RCVTIMEO / SO_SNDTIMEO (set at the
    first wait of the call); EAGAIN once it has passed."""
    limit = timeout_ns(sock, which)
    if limit is None:
        return
    now = t.process.kernel.clock.monotonic_ns()
    if t.wait_deadline_ns is None:
        t.wait_deadline_ns = now + limit
    elif now >= t.wait_deadline_ns:
        t.wait_deadline_ns = None
        t.io_done = 0
        raise SyscallError(abi.EAGAIN)
    wait.deadline_ns = t.wait_deadline_ns


def _recv_all(t: Task, sock: Socket, buf: int, count: int, flags: int) -> int:
    """recv(MSG_WAITALL) on a blocking stream: wait until ``count`` bytes came,
    the stream ended, or a signal or error stops the call (which then returns
    what it took). Progress is kept in ``task.io_done`` across waits, as a
    partial write's is."""
    done = t.io_done
    while done < count:
        try:
            got = sock.recvmsg(count - done, flags | abi.MSG_DONTWAIT)
        except SyscallError as err:
            if err.errno == abi.EAGAIN:
                wait = sock.wait(POLL_READ)
                if isinstance(wait, WouldBlock):
                    t.io_done = done
                    try:
                        _limit_wait(t, sock, abi.SO_RCVTIMEO, wait)
                    except SyscallError:
                        if done:
                            return done
                        raise
                raise wait from None
            t.io_done = 0
            t.wait_deadline_ns = None
            if done:
                return done
            raise
        if got.anc is not None:
            got.anc.drop()
        if not got.data:
            break
        t.mm.write(buf + done, got.data)
        done += len(got.data)
    t.io_done = 0
    t.wait_deadline_ns = None
    return done


def _send(t: Task, sock: Socket, data: bytes, raw: bytes | None,
          anc: Ancillary | None, flags: int) -> int:
    """Send for every send call: partial progress, EPIPE and SIGPIPE."""
    done = t.io_done
    try:
        n = _timed(t, sock, abi.SO_SNDTIMEO, lambda: sock.sendmsg(
            data[done:], raw, anc if done == 0 else None, flags))
    except WouldBlock as wait:
        t.io_done = done + wait.done
        raise
    except SyscallError as err:
        t.io_done = 0
        if err.errno == abi.EPIPE and not flags & abi.MSG_NOSIGNAL:
            signals.broken_pipe(t)
        if done:
            return done
        raise
    t.io_done = 0
    return done + n


def _recv(t: Task, sock: Socket, count: int, flags: int) -> Received:
    return _timed(t, sock, abi.SO_RCVTIMEO, lambda: sock.recvmsg(count, flags))


# --- making sockets ----------------------------------------------------------


def _type_flags(sotype: int) -> tuple[int, int]:
    kind = sotype & abi.SOCK_TYPE_MASK
    flags = sotype & ~abi.SOCK_TYPE_MASK
    if flags & ~(abi.SOCK_NONBLOCK | abi.SOCK_CLOEXEC):
        raise SyscallError(abi.EINVAL)
    return kind, flags


def socket(t: Task, domain: int, sotype: int, protocol: int, *_: int) -> int:
    """socket(2)."""
    kind, flags = _type_flags(s32(sotype))
    kernel = t.process.kernel
    sock = kernel.net.socket(kernel, s32(domain), kind, s32(protocol), flags)
    try:
        return t.process.fds.install(sock, bool(flags & abi.SOCK_CLOEXEC))
    except SyscallError:
        sock.release()
        raise


def socketpair(t: Task, domain: int, sotype: int, protocol: int, sv: int, *_: int
               ) -> int:
    """socketpair(2)."""
    kind, flags = _type_flags(s32(sotype))
    kernel = t.process.kernel
    t.mm.check_writable(sv, 8)
    a, b = kernel.net.socketpair(kernel, s32(domain), kind, s32(protocol), flags)
    fds = t.process.fds
    cloexec = bool(flags & abi.SOCK_CLOEXEC)
    try:
        fa = fds.install(a, cloexec)
    except SyscallError:
        a.release()
        b.release()
        raise
    try:
        fb = fds.install(b, cloexec)
    except SyscallError:
        fds.close(fa)
        b.release()
        raise
    t.mm.write(sv, struct.pack("<ii", fa, fb))
    return 0


# --- naming and connecting ---------------------------------------------------


def bind(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """bind(2)."""
    sock = _sock(t, fd)
    sock.bind(_read_addr(t, addr, addrlen))
    return 0


def listen(t: Task, fd: int, backlog: int, *_: int) -> int:
    """listen(2): a backlog beyond SOMAXCONN (or negative) is SOMAXCONN."""
    sock = _sock(t, fd)
    sock.listen(min(u32(backlog), abi.SOMAXCONN))
    return 0


def accept4(t: Task, fd: int, addr: int, len_ptr: int, flags: int, *_: int) -> int:
    """accept4(2)."""
    sock = _sock(t, fd)
    flags = s32(flags)
    if flags & ~(abi.SOCK_NONBLOCK | abi.SOCK_CLOEXEC):
        raise SyscallError(abi.EINVAL)
    _check_addr_room(t, addr, len_ptr)
    child = _timed(t, sock, abi.SO_RCVTIMEO, lambda: sock.accept(flags))
    fds = t.process.fds
    try:
        newfd = fds.install(child, bool(flags & abi.SOCK_CLOEXEC))
    except SyscallError:
        child.release()
        raise
    try:
        _write_addr(t, child.peername() if addr else None, addr, len_ptr)
    except SyscallError:
        fds.close(newfd)
        raise
    return newfd


def accept(t: Task, fd: int, addr: int, len_ptr: int, *_: int) -> int:
    """accept(2)."""
    return accept4(t, fd, addr, len_ptr, 0)


def connect(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """connect(2)."""
    sock = _sock(t, fd)
    raw = _read_addr(t, addr, addrlen)
    _timed(t, sock, abi.SO_SNDTIMEO, lambda: sock.connect(raw))
    return 0


def shutdown(t: Task, fd: int, how: int, *_: int) -> int:
    """shutdown(2)."""
    sock = _sock(t, fd)
    sock.shutdown(s32(how))
    return 0


def getsockname(t: Task, fd: int, addr: int, len_ptr: int, *_: int) -> int:
    """getsockname(2)."""
    sock = _sock(t, fd)
    _check_addr_room(t, addr, len_ptr)
    _write_addr(t, sock.sockname(), addr, len_ptr)
    return 0


def getpeername(t: Task, fd: int, addr: int, len_ptr: int, *_: int) -> int:
    """getpeername(2)."""
    sock = _sock(t, fd)
    _check_addr_room(t, addr, len_ptr)
    _write_addr(t, sock.peername(), addr, len_ptr)
    return 0


# --- options -----------------------------------------------------------------


def getsockopt(t: Task, fd: int, level: int, name: int, optval: int, len_ptr: int,
               *_: int) -> int:
    """getsockopt(2)."""
    sock = _sock(t, fd)
    room = _int.unpack(t.mm.read(len_ptr, 4))[0]
    if room < 0:
        raise SyscallError(abi.EINVAL)
    value = sock.getsockopt(s32(level), s32(name))
    value = value[:room]
    if value:
        t.mm.write(optval, value)
    t.mm.write(len_ptr, _int.pack(len(value)))
    return 0


def setsockopt(t: Task, fd: int, level: int, name: int, optval: int, optlen: int,
               *_: int) -> int:
    """setsockopt(2)."""
    sock = _sock(t, fd)
    length = s32(optlen)
    if length < 0:
        raise SyscallError(abi.EINVAL)
    value = t.mm.read(optval, min(length, OPTVAL_MAX)) if length else b""
    sock.setsockopt(s32(level), s32(name), value)
    return 0


# --- sending and receiving ---------------------------------------------------


def sendto(t: Task, fd: int, buf: int, length: int, flags: int, addr: int,
           addrlen: int) -> int:
    """sendto(2) and send(2)."""
    sock = _sock(t, fd)
    flags = s32(flags)
    data = t.mm.read(buf, min(length, MAX_RW))
    raw = _read_addr(t, addr, addrlen) if addr else None
    return _send(t, sock, data, raw, None, flags)


def recvfrom(t: Task, fd: int, buf: int, length: int, flags: int, addr: int,
             len_ptr: int) -> int:
    """recvfrom(2) and recv(2)."""
    sock = _sock(t, fd)
    flags = s32(flags)
    count = min(length, MAX_RW)
    t.mm.check_writable(buf, count)
    _check_addr_room(t, addr, len_ptr)
    # A blocking stream with MSG_WAITALL gathers across waits.
    if (flags & abi.MSG_WAITALL and sock.sotype == abi.SOCK_STREAM
            and not flags & (abi.MSG_PEEK | abi.MSG_DONTWAIT) and not sock.nonblocking):
        n = _recv_all(t, sock, buf, count, flags & ~abi.MSG_WAITALL)
        _write_addr(t, None, addr, len_ptr)
        return n
    got = _recv(t, sock, count, flags)
    if got.anc is not None:
        got.anc.drop()
    t.mm.write(buf, got.data)
    _write_addr(t, got.addr, addr, len_ptr)
    return got.length if flags & abi.MSG_TRUNC and got.length >= 0 else len(got.data)


def _control_in(t: Task, sock: Socket, control: int, size: int) -> Ancillary | None:
    """The control messages of a sendmsg: SCM_RIGHTS and SCM_CREDENTIALS."""
    if not control or size == 0:
        return None
    if size > 0x7FFFFFFF:
        raise SyscallError(abi.ENOBUFS)
    raw = t.mm.read(control, size)
    anc = Ancillary()
    pos = 0
    while pos + _cmsghdr.size <= len(raw):
        length, level, kind = _cmsghdr.unpack_from(raw, pos)
        if length < _cmsghdr.size or pos + length > len(raw):
            raise SyscallError(abi.EINVAL)
        body = raw[pos + _cmsghdr.size: pos + length]
        if sock.family != abi.AF_UNIX:
            # XXX: IP-level control messages (IP_TTL, IP_PKTINFO ...) are not
            # acted on; SOL_SOCKET ones other families do not take either.
            if level == abi.SOL_SOCKET:
                raise SyscallError(abi.EINVAL)
        elif level != abi.SOL_SOCKET:
            raise SyscallError(abi.EINVAL)
        elif kind == abi.SCM_RIGHTS:
            _rights_in(t, anc, body)
        elif kind == abi.SCM_CREDENTIALS:
            anc.creds = _creds_in(t, body)
        else:
            raise SyscallError(abi.EINVAL)
        pos += (length + 7) & ~7
    return anc


def _rights_in(t: Task, anc: Ancillary, body: bytes) -> None:
    count = len(body) // 4
    if len(anc.rights) + count > abi.SCM_MAX_FD:
        raise SyscallError(abi.EINVAL)
    for (fd,) in struct.iter_unpack("<i", body[: count * 4]):
        anc.rights.append(t.process.fds.get(fd))


def _creds_in(t: Task, body: bytes) -> Ucred:
    """SCM_CREDENTIALS: only your own ids, unless privileged - unix(7)."""
    if len(body) < 12:
        raise SyscallError(abi.EINVAL)
    pid, uid, gid = struct.unpack_from("<iII", body)
    creds = t.process.creds
    root = creds.euid == 0
    if not root and (pid != t.process.pid
                     or uid not in (creds.uid, creds.euid, creds.suid)
                     or gid not in (creds.gid, creds.egid, creds.sgid)):
        raise SyscallError(abi.EPERM)
    return Ucred(pid, uid, gid)


def _control_out(t: Task, anc: Ancillary | None, control: int, room: int,
                 flags: int) -> tuple[int, int]:
    """Write the control messages of a receive; returns (length used,
    MSG_CTRUNC or 0). Descriptors that do not fit are closed."""
    if anc is None:
        return 0, 0
    out = bytearray()
    truncated = 0
    if anc.creds is not None:
        body = anc.creds.pack()
        if room - len(out) >= _cmsghdr.size + len(body):
            out += _cmsghdr.pack(_cmsghdr.size + len(body), abi.SOL_SOCKET,
                                 abi.SCM_CREDENTIALS) + body
            out += bytes(-len(out) % 8)
        else:
            truncated = abi.MSG_CTRUNC
    if anc.rights:
        fit = max(0, (room - len(out) - _cmsghdr.size) // 4) if control else 0
        fds = t.process.fds
        cloexec = bool(flags & abi.MSG_CMSG_CLOEXEC)
        installed: list[int] = []
        for file in anc.rights[:fit]:
            try:
                installed.append(fds.install(file, cloexec))
            except SyscallError:
                break
        # The descriptor tables hold the installed files now; the rest close.
        for file in anc.rights[: len(installed)]:
            file.refs -= 1
        anc.rights = anc.rights[len(installed):]
        if anc.rights:
            truncated = abi.MSG_CTRUNC
            anc.drop()
        if installed:
            body = b"".join(_int.pack(fd) for fd in installed)
            out += _cmsghdr.pack(_cmsghdr.size + len(body), abi.SOL_SOCKET,
                                 abi.SCM_RIGHTS) + body
            # msg_controllen counts the padding too, as far as the buffer goes.
            out += bytes(-len(out) % 8)
    if out and control:
        t.mm.write(control, bytes(out[:room]))
    return min(len(out), room), truncated


def _read_msghdr(t: Task, msg: int) -> tuple[int, int, int, int, int, int]:
    name, namelen, iov, iovlen, control, controllen, _flags = _msghdr.unpack(
        t.mm.read(msg, _msghdr.size))
    if iovlen > IOV_MAX:
        raise SyscallError(abi.EMSGSIZE)
    return name, namelen, iov, iovlen, control, controllen


def _sendmsg_one(t: Task, sock: Socket, msg: int, flags: int) -> int:
    name, namelen, iov, iovlen, control, controllen = _read_msghdr(t, msg)
    data = _gather(t, _iovecs(t, iov, iovlen))[:MAX_RW]
    raw = _read_addr(t, name, namelen) if name and namelen else None
    anc = _control_in(t, sock, control, controllen) if t.io_done == 0 else None
    return _send(t, sock, data, raw, anc, flags)


def sendmsg(t: Task, fd: int, msg: int, flags: int, *_: int) -> int:
    """sendmsg(2)."""
    sock = _sock(t, fd)
    return _sendmsg_one(t, sock, msg, s32(flags))


def _recvmsg_one(t: Task, sock: Socket, msg: int, flags: int) -> int:
    name, namelen, iov, iovlen, control, controllen = _read_msghdr(t, msg)
    vecs = _iovecs(t, iov, iovlen)
    for base, length in vecs:
        t.mm.check_writable(base, length)
    if s32(namelen) < 0:
        raise SyscallError(abi.EINVAL)
    got = _recv(t, sock, min(sum(n for _b, n in vecs), MAX_RW), flags)
    _scatter(t, vecs, got.data)

    # The sender's address, the control data, and the flags of the message.
    addr = got.addr or b""
    if name and addr:
        t.mm.write(name, addr[: u32(namelen)])
    used, ctrunc = _control_out(t, got.anc, control, min(controllen, 1 << 20), flags)
    head = bytearray(t.mm.read(msg, _msghdr.size))
    struct.pack_into("<I", head, 8, len(addr) if name else 0)
    struct.pack_into("<Q", head, 40, used)
    struct.pack_into("<i", head, 48, got.flags | ctrunc)
    t.mm.write(msg, bytes(head))
    if flags & abi.MSG_TRUNC and got.length >= 0:
        return got.length
    return len(got.data)


def recvmsg(t: Task, fd: int, msg: int, flags: int, *_: int) -> int:
    """recvmsg(2)."""
    sock = _sock(t, fd)
    return _recvmsg_one(t, sock, msg, s32(flags))


def sendmmsg(t: Task, fd: int, vec: int, vlen: int, flags: int, *_: int) -> int:
    """sendmmsg(2): stops at the first message that cannot go now."""
    sock = _sock(t, fd)
    flags = s32(flags)
    count = min(u32(vlen), UIO_MAXIOV)
    sent = 0
    for i in range(count):
        entry = vec + i * MMSGHDR_SIZE
        try:
            n = _sendmsg_one(t, sock, entry, flags)
        except (WouldBlock, SyscallError):
            if sent:
                t.io_done = 0
                return sent
            raise
        t.mm.write(entry + _msghdr.size, _u32.pack(n))
        sent += 1
    return sent


def recvmmsg(t: Task, fd: int, vec: int, vlen: int, flags: int, timeout: int,
             *_: int) -> int:
    """recvmmsg(2): after the first message, only the messages queued already.

    XXX: Linux waits for ``vlen`` messages unless MSG_WAITFORONE is given; a
    wait here would run the call again from the start and lose what it took.
    """
    sock = _sock(t, fd)
    flags = s32(flags)
    count = min(u32(vlen), UIO_MAXIOV)
    got = 0
    for i in range(count):
        entry = vec + i * MMSGHDR_SIZE
        try:
            n = _recvmsg_one(t, sock, entry, flags)
        except (WouldBlock, SyscallError):
            if got:
                return got
            raise
        t.mm.write(entry + _msghdr.size, _u32.pack(n))
        got += 1
        flags |= abi.MSG_DONTWAIT
    return got


SYSCALLS = [
    syscall("socket", socket, "AF_UNIX in the kernel; AF_INET/AF_INET6 on the "
            "sandbox's loopback, or host sockets with --net host", partial=True),
    syscall("socketpair", socketpair),
    syscall("bind", bind),
    syscall("listen", listen),
    syscall("accept", accept),
    syscall("accept4", accept4),
    syscall("connect", connect),
    syscall("shutdown", shutdown),
    syscall("getsockname", getsockname),
    syscall("getpeername", getpeername),
    syscall("getsockopt", getsockopt, "common SOL_SOCKET, IP, IPv6 and TCP options",
            partial=True),
    syscall("setsockopt", setsockopt, "common SOL_SOCKET, IP, IPv6 and TCP options; "
            "IP options are kept, not acted on", partial=True),
    syscall("sendto", sendto),
    syscall("recvfrom", recvfrom),
    syscall("sendmsg", sendmsg, "IP-level control messages are ignored",
            partial=True),
    syscall("recvmsg", recvmsg),
    syscall("sendmmsg", sendmmsg),
    syscall("recvmmsg", recvmmsg, "after the first message takes only those "
            "already queued; the timeout is ignored", partial=True),
]

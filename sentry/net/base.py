"""What every socket shares: the sockfs inode, options, ancillary data.

Theory of operation
-------------------
A :class:`Socket` is an open file description whose inode is a
:class:`SocketInode` on the sandbox's sockfs: fstat shows S_IFSOCK and
/proc/PID/fd shows ``socket:[INODE]``. Subclasses implement the operations
the socket system calls name (bind, listen, accept, connect, shutdown,
sendmsg, recvmsg ...); the defaults here fail the way Linux does for a
socket type that has no such operation (EOPNOTSUPP).

Options every family understands (SOL_SOCKET, and the plain integer options
of IP, IPv6 and TCP that programs set and read back) are kept here; a family
adds its own (SO_PEERCRED ...) by overriding :meth:`Socket.family_getsockopt`
and :meth:`Socket.family_setsockopt`.

Data carried beside the bytes of a message (SCM_RIGHTS descriptors and
SCM_CREDENTIALS) travels as an :class:`Ancillary`. Open files in flight hold a
reference of their own (``refs``), so closing every descriptor of a file
whose descriptor is in flight does not release it; the receiver's descriptor
table takes over that reference, and a message dropped unread gives it back.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import attrs

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import Inode, OpenFile, Stat, fail, new_ino, now_ns
from vfs.wait import WaitQueue, WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Task

SOCKFS_DEV = 0x08
SIOCOUTQ = abi.TIOCOUTQ  # the same number, for sockets: bytes the peer has not read
SOCK_MIN_RCVBUF = 2304
SOCK_MIN_SNDBUF = 4608

# What poll(2) reports for each kind of readiness.
POLL_READ = abi.POLLIN | abi.POLLRDNORM
POLL_WRITE = abi.POLLOUT | abi.POLLWRNORM

# shutdown state bits, as sk_shutdown keeps them.
RCV_SHUTDOWN = 1
SEND_SHUTDOWN = 2
SHUTDOWN_MASK = 3

_int = struct.Struct("<i")
_linger = struct.Struct("<ii")
_timeval = struct.Struct("<qq")


def _host_sysctl(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


# The limits SO_RCVBUF and SO_SNDBUF clamp to (net.core.rmem_max, wmem_max);
# the host's values, so a program reads back what it would read natively.
RMEM_MAX = _host_sysctl("/proc/sys/net/core/rmem_max", 212992)
WMEM_MAX = _host_sysctl("/proc/sys/net/core/wmem_max", 212992)


@attrs.frozen
class Ucred:
    """struct ucred: who sent a message or made a connection."""

    pid: int
    uid: int
    gid: int

    def pack(self) -> bytes:
        return struct.pack("<iII", self.pid, self.uid, self.gid)

    @classmethod
    def of(cls, task: Task | None) -> Ucred:
        if task is None:
            return cls(0, 0, 0)
        creds = task.process.creds
        return cls(task.process.pid, creds.euid, creds.egid)


@attrs.define(eq=False)
class Ancillary:
    """Control data of one message: descriptors passed, credentials."""

    rights: list[OpenFile] = attrs.Factory(list)
    creds: Ucred | None = None

    # XXX: a socket sent over itself (or in a cycle of sockets) keeps itself
    # open until the sandbox ends; Linux's garbage collector of in-flight
    # descriptors is not modelled.

    def copy_held(self) -> Ancillary:
        """What a peek hands over: the same files, each with a reference of
        the copy's own (Linux installs peeked descriptors as new ones)."""
        copy = Ancillary(list(self.rights), self.creds)
        copy.hold()
        return copy

    def hold(self) -> None:
        """The files are in flight: keep them open until delivered."""
        for file in self.rights:
            file.refs += 1

    def drop(self) -> None:
        """The message is gone unread: let go of the files it carried."""
        for file in self.rights:
            file.refs -= 1
            if file.refs == 0:
                file.release()
        self.rights = []


@attrs.define(eq=False)
class Received:
    """What one receive took: data, sender address, control data, flags."""

    data: bytes
    addr: bytes | None = None
    anc: Ancillary | None = None
    flags: int = 0  # msg_flags: MSG_TRUNC, MSG_CTRUNC, MSG_EOR
    length: int = -1  # the full datagram length, for MSG_TRUNC in flags


class SocketInode(Inode):
    """The sockfs inode behind a socket: what fstat and /proc/PID/fd see."""

    def __init__(self, uid: int, gid: int) -> None:
        self.mode = abi.S_IFSOCK | 0o777
        self.fs_dev = SOCKFS_DEV
        self.uid = uid
        self.gid = gid
        self._ino = new_ino()
        self.time_ns = now_ns()

    @property
    def ino(self) -> int:
        return self._ino

    def stat(self) -> Stat:
        t = self.time_ns
        return Stat(dev=self.fs_dev, ino=self._ino, mode=self.mode, nlink=1,
                    uid=self.uid, gid=self.gid, rdev=0, size=0,
                    blksize=abi.PAGE_SIZE, blocks=0, atime_ns=t, mtime_ns=t,
                    ctime_ns=t)

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        # Opening a socket through /proc/PID/fd/N is ENXIO, as on Linux.
        raise fail(abi.ENXIO)


def int_value(value: bytes) -> int:
    """An int option value; shorter than an int is EINVAL - socket(7)."""
    if len(value) < 4:
        raise fail(abi.EINVAL)
    return _int.unpack_from(value)[0]


def pack_int(v: int) -> bytes:
    return _int.pack(v)


class Socket(OpenFile):
    """A socket of any family; subclasses provide the operations."""

    seekable = False
    # Defaults of SO_RCVBUF / SO_SNDBUF for this kind of socket.
    default_rcvbuf = 212992
    default_sndbuf = 212992

    def __init__(self, kernel: Kernel, family: int, sotype: int, protocol: int,
                 flags: int) -> None:
        task = kernel.current
        creds = task.process.creds if task is not None else None
        uid = creds.euid if creds is not None else 0
        gid = creds.egid if creds is not None else 0
        inode = SocketInode(uid, gid)
        super().__init__(inode, abi.O_RDWR | (flags & abi.O_NONBLOCK),
                         f"socket:[{inode.ino}]")
        self.kernel = kernel
        self.family = family
        self.sotype = sotype
        self.protocol = protocol
        self.queue = WaitQueue()
        self.wait_queue = self.queue
        self.error = 0  # SO_ERROR: reported and cleared by the next call
        self.shut = 0  # RCV_SHUTDOWN | SEND_SHUTDOWN
        self.rcvbuf = self.default_rcvbuf
        self.sndbuf = self.default_sndbuf
        self.linger = (0, 0)
        self.timeouts = {abi.SO_RCVTIMEO: (0, 0), abi.SO_SNDTIMEO: (0, 0)}
        # Plain integer options read back as set: (level, name) -> value.
        self.options: dict[tuple[int, int], int] = {}
        self.released = False

    # --- helpers -------------------------------------------------------------

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & abi.O_NONBLOCK)

    def current(self) -> Task | None:
        return self.kernel.current

    def wait(self, events: int, msg_flags: int = 0, done: int = 0
             ) -> SyscallError | WouldBlock:
        """What to raise when the operation cannot proceed now."""
        if self.nonblocking or msg_flags & abi.MSG_DONTWAIT:
            return SyscallError(abi.EAGAIN)
        return WouldBlock(self.queue, events, done=done)

    def opt(self, level: int, name: int, default: int = 0) -> int:
        return self.options.get((level, name), default)

    def take_error(self) -> int:
        err, self.error = self.error, 0
        return err

    def notify(self, events: int = 0) -> None:
        """Wake whoever waits on this socket; ``events`` are the poll events
        the change concerns (0: any), the key of :meth:`WaitQueue.notify`."""
        self.queue.notify(events)

    # --- readiness -----------------------------------------------------------

    def poll(self) -> int:
        return 0

    def poll_queue(self) -> WaitQueue | None:
        return self.queue

    def poll_host_fd(self) -> int | None:
        return None

    # --- plain file operations -----------------------------------------------

    def read(self, count: int) -> bytes:
        got = self.recvmsg(count, 0)
        # Descriptors sent along are closed when read(2) takes the data.
        if got.anc is not None:
            got.anc.drop()
        return got.data

    def write(self, data: bytes) -> int:
        return self.sendmsg(data, None, None, 0)

    def ioctl(self, request: int, arg: int, task: Task) -> int:
        if request == abi.FIONREAD:
            task.mm.write(arg, pack_int(self.readable_bytes()))
            return 0
        if request == SIOCOUTQ:
            task.mm.write(arg, pack_int(self.unsent_bytes()))
            return 0
        raise fail(abi.ENOTTY)

    def readable_bytes(self) -> int:
        """FIONREAD / SIOCINQ: bytes waiting to be received."""
        return 0

    def unsent_bytes(self) -> int:
        """SIOCOUTQ: bytes sent that the other end has not taken yet."""
        return 0

    # --- socket operations (EOPNOTSUPP unless the type has them) --------------

    def bind(self, raw: bytes) -> None:
        raise fail(abi.EOPNOTSUPP)

    def listen(self, backlog: int) -> None:
        raise fail(abi.EOPNOTSUPP)

    def accept(self, flags: int) -> Socket:
        raise fail(abi.EOPNOTSUPP)

    def connect(self, raw: bytes) -> None:
        raise fail(abi.EOPNOTSUPP)

    def shutdown(self, how: int) -> None:
        raise fail(abi.EOPNOTSUPP)

    def sockname(self) -> bytes:
        raise fail(abi.EOPNOTSUPP)

    def peername(self) -> bytes:
        raise fail(abi.ENOTCONN)

    def sendmsg(self, data: bytes, raw_addr: bytes | None, anc: Ancillary | None,
                flags: int) -> int:
        raise fail(abi.EOPNOTSUPP)

    def recvmsg(self, count: int, flags: int) -> Received:
        raise fail(abi.EOPNOTSUPP)

    def accepting(self) -> bool:
        """SO_ACCEPTCONN: the socket is listening."""
        return False

    # --- options -------------------------------------------------------------

    def getsockopt(self, level: int, name: int) -> bytes:
        """The option's value, as the bytes getsockopt(2) copies out."""
        if level == abi.SOL_SOCKET:
            value = self._socket_option(name)
            if value is not None:
                return value
        return self.family_getsockopt(level, name)

    def _socket_option(self, name: int) -> bytes | None:
        simple = {
            abi.SO_TYPE: self.sotype,
            abi.SO_PROTOCOL: self.protocol,
            abi.SO_DOMAIN: self.family,
            abi.SO_RCVBUF: self.rcvbuf,
            abi.SO_SNDBUF: self.sndbuf,
            abi.SO_ACCEPTCONN: int(self.accepting()),
        }
        if name in simple:
            return pack_int(simple[name])
        if name == abi.SO_ERROR:
            return pack_int(self.take_error())
        if name == abi.SO_LINGER:
            return _linger.pack(*self.linger)
        if name in self.timeouts:
            return _timeval.pack(*self.timeouts[name])
        if name in _SOCKET_INT_OPTIONS:
            return pack_int(self.opt(abi.SOL_SOCKET, name, _SOCKET_INT_OPTIONS[name]))
        return None

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        if level == abi.SOL_SOCKET and self._set_socket_option(name, value):
            return
        self.family_setsockopt(level, name, value)

    def _set_socket_option(self, name: int, value: bytes) -> bool:
        if name in (abi.SO_RCVBUF, abi.SO_RCVBUFFORCE):
            # "The kernel doubles this value" - socket(7); the limit is rmem_max.
            v = max(int_value(value), 0)
            self.rcvbuf = max(min(v, RMEM_MAX) * 2, SOCK_MIN_RCVBUF)
            self.buffers_changed()
            return True
        if name in (abi.SO_SNDBUF, abi.SO_SNDBUFFORCE):
            v = max(int_value(value), 0)
            self.sndbuf = max(min(v, WMEM_MAX) * 2, SOCK_MIN_SNDBUF)
            self.buffers_changed()
            return True
        if name == abi.SO_LINGER:
            if len(value) < _linger.size:
                raise fail(abi.EINVAL)
            onoff, secs = _linger.unpack_from(value)
            self.linger = (1 if onoff else 0, secs)
            return True
        if name in self.timeouts:
            if len(value) < _timeval.size:
                raise fail(abi.EINVAL)
            sec, usec = _timeval.unpack_from(value)
            if not 0 <= usec < 1_000_000:
                raise fail(abi.EDOM)
            self.timeouts[name] = (max(sec, 0), usec if sec >= 0 else 0)
            return True
        if name in _SOCKET_INT_OPTIONS:
            v = int_value(value)
            if name in _BOOLEAN_SOCKET_OPTIONS:
                v = int(v != 0)
            if name == abi.SO_RCVLOWAT:
                v = max(v, 1)
            self.options[(abi.SOL_SOCKET, name)] = v
            self.notify()
            return True
        if name in (abi.SO_ERROR, abi.SO_TYPE, abi.SO_PROTOCOL, abi.SO_DOMAIN,
                    abi.SO_ACCEPTCONN, abi.SO_PEERCRED):
            raise fail(abi.ENOPROTOOPT)
        return False

    def buffers_changed(self) -> None:
        """SO_RCVBUF or SO_SNDBUF changed: room to write may have appeared."""
        self.notify()

    def family_getsockopt(self, level: int, name: int) -> bytes:
        raise fail(abi.ENOPROTOOPT)

    def family_setsockopt(self, level: int, name: int, value: bytes) -> None:
        raise fail(abi.ENOPROTOOPT)

    # --- lifetime ------------------------------------------------------------

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.closed()
        self.notify()

    def closed(self) -> None:
        """The last descriptor is gone: disconnect, unbind, drop buffers."""


# SOL_SOCKET options kept as plain integers, with their defaults.
_SOCKET_INT_OPTIONS = {
    abi.SO_DEBUG: 0, abi.SO_REUSEADDR: 0, abi.SO_DONTROUTE: 0, abi.SO_BROADCAST: 0,
    abi.SO_KEEPALIVE: 0, abi.SO_OOBINLINE: 0, abi.SO_NO_CHECK: 0, abi.SO_PRIORITY: 0,
    abi.SO_REUSEPORT: 0, abi.SO_PASSCRED: 0, abi.SO_RCVLOWAT: 1, abi.SO_SNDLOWAT: 1,
}
_BOOLEAN_SOCKET_OPTIONS = {
    abi.SO_DEBUG, abi.SO_REUSEADDR, abi.SO_DONTROUTE, abi.SO_BROADCAST,
    abi.SO_KEEPALIVE, abi.SO_OOBINLINE, abi.SO_NO_CHECK, abi.SO_REUSEPORT,
    abi.SO_PASSCRED,
}


def timeout_ns(sock: Socket, name: int) -> int | None:
    """SO_RCVTIMEO / SO_SNDTIMEO in nanoseconds; None when unset (wait forever)."""
    sec, usec = sock.timeouts[name]
    if sec == 0 and usec == 0:
        return None
    return sec * 10**9 + usec * 1000

"""AF_UNIX sockets, entirely inside the kernel.

Theory of operation
-------------------
An address is kept as the bytes of ``sun_path`` that name it: ``b""`` for an
unnamed socket, a leading NUL for an abstract name (all of its bytes count),
else a path (up to its first NUL). unix(7) describes the three kinds.

* A path name is a socket inode made in the guest's VFS by bind (mknod of
  S_IFSOCK in the directory, so stat shows it and a second bind there is
  EADDRINUSE). The kernel's :class:`UnixNames` maps the inode's (st_dev,
  st_ino) to the bound socket; connect resolves the path like open does,
  checks that it is a socket the caller may write to, and looks the inode
  up. Closing the socket forgets the mapping but leaves the file, so a later
  connect finds the inode and gets ECONNREFUSED, as on Linux.
* An abstract name lives only in :class:`UnixNames` and goes away with the
  socket.
* Autobind (bind with only the family, or SO_PASSCRED on an unnamed socket
  that sends or connects) picks the next free abstract name of five hex
  digits.

Stream and seqpacket sockets are :class:`sentry.net.stream.StreamSocket`,
datagram ones :class:`sentry.net.dgram.DgramSocket`; this module supplies the
naming. SO_PEERCRED reports the credentials taken at connect, listen or
socketpair time.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sentry import abi
from sentry.net.base import Socket, Ucred, pack_int
from sentry.net.dgram import DgramSocket
from sentry.net.stream import CONNECTED, LISTENING, StreamSocket
from vfs.core import fail

if TYPE_CHECKING:
    from sentry.kernel import Kernel

SUN_PATH_MAX = 108
SOCKADDR_UN_SIZE = 2 + SUN_PATH_MAX
# What SO_PEERCRED reports when there is no peer: pid 0 and the overflow ids.
NO_CREDS = Ucred(0, 65534, 65534)


class UnixNames:
    """The names Unix sockets hold: abstract ones, and bound socket inodes."""

    def __init__(self) -> None:
        self.abstract: dict[bytes, Socket] = {}
        self.inodes: dict[tuple[int, int], Socket] = {}
        self._next_auto = 0

    def autobind_name(self) -> bytes:
        """The next free abstract name of five hex digits (as Linux forms them)."""
        for _ in range(0x100000):
            name = b"\0" + b"%05x" % self._next_auto
            self._next_auto = (self._next_auto + 1) & 0xFFFFF
            if name not in self.abstract:
                return name
        raise fail(abi.ENOSPC)


def parse_unix(raw: bytes) -> bytes:
    """The name a sockaddr_un of ``len(raw)`` bytes gives (see the docstring)."""
    if len(raw) < 2 or len(raw) > SOCKADDR_UN_SIZE:
        raise fail(abi.EINVAL)
    if struct.unpack_from("<H", raw)[0] != abi.AF_UNIX:
        raise fail(abi.EINVAL)
    path = raw[2:]
    if path[:1] == b"\0":
        return path
    return path.split(b"\0", 1)[0]


def pack_unix(name: bytes | None) -> bytes:
    raw = struct.pack("<H", abi.AF_UNIX) + (name or b"")
    if name and name[:1] != b"\0":
        raw += b"\0"
    return raw


class UnixNaming:
    """Naming shared by the three Unix socket types (mixed into each)."""

    kernel: Kernel
    local: bytes | None
    sotype: int
    released: bool

    def names(self) -> UnixNames:
        return self.kernel.net.unix

    def parse_addr(self, raw: bytes) -> bytes:
        return parse_unix(raw)

    def pack_addr(self, addr: bytes | None) -> bytes:
        return pack_unix(addr)

    def bind(self, raw: bytes) -> None:
        addr = parse_unix(raw)
        # A path is created before the socket's own name is looked at, so an
        # existing file wins over "already bound" (net/unix/af_unix.c).
        if addr and addr[:1] != b"\0" and self._path_exists(addr):
            raise fail(abi.EADDRINUSE)
        if self.local is not None:
            raise fail(abi.EINVAL)
        self.bind_addr(addr)

    def _path_exists(self, addr: bytes) -> bool:
        from sentry.syscalls.args import dirfd_location

        task = self.kernel.current
        assert task is not None
        path = addr.decode("utf-8", "surrogateescape")
        mounts = self.kernel.mounts
        parent, name, _trailing = mounts.resolve_parent(
            dirfd_location(task, abi.AT_FDCWD, path), path)
        return name in (None, ".", "..") or mounts.lookup_child(parent, name) is not None

    def bind_addr(self, addr: bytes) -> None:
        if not addr:
            addr = self.names().autobind_name()
        if addr[:1] == b"\0":
            table = self.names().abstract
            if addr in table:
                raise fail(abi.EADDRINUSE)
            table[addr] = self  # type: ignore[assignment]
        else:
            self._bind_path(addr)
        self.local = addr

    def _bind_path(self, addr: bytes) -> None:
        from sentry.syscalls.args import dirfd_location
        from sentry.syscalls.file import check_writable, require_access

        task = self.kernel.current
        assert task is not None
        path = addr.decode("utf-8", "surrogateescape")
        mounts = self.kernel.mounts
        parent, name, _trailing = mounts.resolve_parent(
            dirfd_location(task, abi.AT_FDCWD, path), path)

        # "EADDRINUSE: The given address is already in use" - a file there.
        if name in (None, ".", "..") or mounts.lookup_child(parent, name) is not None:
            raise fail(abi.EADDRINUSE)
        check_writable(parent)
        require_access(task, parent.inode, abi.W_OK | abi.X_OK)
        creds = task.process.creds
        mode = abi.S_IFSOCK | (0o777 & ~task.process.fs.umask)
        inode = parent.inode.mknod(name, mode, 0, creds.fsuid, creds.fsgid)
        st = inode.stat()
        self.names().inodes[(st.dev, st.ino)] = self  # type: ignore[assignment]
        self._inode_key = (st.dev, st.ino)

    def autobind(self, for_listen: bool) -> None:
        if self.local is None and (not for_listen) and self.passes_creds():
            self.bind_addr(b"")

    def passes_creds(self) -> bool:
        return bool(self.opt(abi.SOL_SOCKET, abi.SO_PASSCRED))  # type: ignore[attr-defined]

    def unbind(self) -> None:
        names = self.names()
        if self.local and self.local[:1] == b"\0":
            if names.abstract.get(self.local) is self:
                del names.abstract[self.local]
        key = getattr(self, "_inode_key", None)
        if key is not None and names.inodes.get(key) is self:
            del names.inodes[key]

    def lookup(self, addr: bytes) -> Socket:
        """The socket bound at ``addr``; errors as connect(2) gives them."""
        if not addr:
            raise fail(abi.EINVAL)
        if addr[:1] == b"\0":
            found = self.names().abstract.get(addr)
        else:
            found = self._lookup_path(addr)
        if found is None or found.released:
            raise fail(abi.ECONNREFUSED)
        if found.sotype != self.sotype:
            raise fail(abi.EPROTOTYPE)
        return found

    def _lookup_path(self, addr: bytes) -> Socket | None:
        from sentry.syscalls.args import dirfd_location
        from sentry.syscalls.file import require_access

        task = self.kernel.current
        assert task is not None
        path = addr.decode("utf-8", "surrogateescape")
        loc = self.kernel.mounts.resolve(dirfd_location(task, abi.AT_FDCWD, path), path)
        st = loc.inode.stat()
        if st.mode & abi.S_IFMT != abi.S_IFSOCK:
            raise fail(abi.ECONNREFUSED)
        require_access(task, loc.inode, abi.W_OK)
        return self.names().inodes.get((st.dev, st.ino))


class UnixStream(UnixNaming, StreamSocket):
    """SOCK_STREAM."""

    def listen(self, backlog: int) -> None:
        # "No listens on an unbound socket" (net/unix/af_unix.c).
        if self.local is None:
            raise fail(abi.EINVAL)
        super().listen(backlog)

    def find_listener(self, addr: bytes) -> StreamSocket:
        found = self.lookup(addr)
        assert isinstance(found, StreamSocket)
        if found.state != LISTENING:
            raise fail(abi.ECONNREFUSED)
        return found

    def make_child(self, listener: StreamSocket, addr: bytes) -> StreamSocket:
        child = type(self)(self.kernel, self.family, self.sotype, self.protocol, 0)
        child.local = listener.local
        child.options = dict(listener.options)
        return child

    def family_getsockopt(self, level: int, name: int) -> bytes:
        if level == abi.SOL_SOCKET and name == abi.SO_PEERCRED:
            if self.state == LISTENING and self.listen_creds is not None:
                return self.listen_creds.pack()
            creds = self.peer_creds if self.state == CONNECTED else None
            return (creds or NO_CREDS).pack()
        return super().family_getsockopt(level, name)


class UnixSeqpacket(UnixStream):
    """SOCK_SEQPACKET: a connection that keeps record boundaries."""

    records = True


class UnixDgram(UnixNaming, DgramSocket):
    """SOCK_DGRAM."""

    unix_like = True
    unconnected_send_errno = abi.ENOTCONN

    def __init__(self, kernel: Kernel, family: int, sotype: int, protocol: int,
                 flags: int) -> None:
        super().__init__(kernel, family, sotype, protocol, flags)
        self.pair_creds: Ucred | None = None

    def find_receiver(self, addr: bytes) -> DgramSocket | None:
        found = self.lookup(addr)
        assert isinstance(found, DgramSocket)
        return found

    def family_getsockopt(self, level: int, name: int) -> bytes:
        if level == abi.SOL_SOCKET and name == abi.SO_PEERCRED:
            return (self.pair_creds or NO_CREDS).pack()
        return super().family_getsockopt(level, name)


def new_unix(kernel: Kernel, sotype: int, protocol: int, flags: int) -> Socket:
    """socket(AF_UNIX, ...)."""
    if protocol not in (0, abi.AF_UNIX):
        raise fail(abi.EPROTONOSUPPORT)
    cls = {abi.SOCK_STREAM: UnixStream, abi.SOCK_SEQPACKET: UnixSeqpacket,
           abi.SOCK_DGRAM: UnixDgram}.get(sotype)
    if cls is None:
        raise fail(abi.ESOCKTNOSUPPORT)
    return cls(kernel, abi.AF_UNIX, sotype, 0, flags)


def unix_pair(kernel: Kernel, sotype: int, protocol: int, flags: int
              ) -> tuple[Socket, Socket]:
    """socketpair(AF_UNIX, ...): two sockets connected to each other."""
    a = new_unix(kernel, sotype, protocol, flags)
    b = new_unix(kernel, sotype, protocol, flags)
    if isinstance(a, StreamSocket) and isinstance(b, StreamSocket):
        a.connect_pair(b)
    else:
        assert isinstance(a, UnixDgram) and isinstance(b, UnixDgram)
        a.peer, b.peer = b, a
        a.peer_addr = b.peer_addr = b""
        creds = Ucred.of(kernel.current)
        a.pair_creds = b.pair_creds = creds
    return a, b


__all__ = ["new_unix", "unix_pair", "UnixNames", "pack_int"]

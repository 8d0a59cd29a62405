"""AF_INET and AF_INET6 sockets backed by host sockets (``--net host``).

Theory of operation
-------------------
Each guest socket owns one host socket, always in non-blocking mode: the
sentry runs every task on one host thread and must never block in the host.
An operation the host answers with EAGAIN fails with EAGAIN when the guest
asked not to block, and otherwise raises :class:`vfs.wait.WouldBlock` with
``host_fd`` set, so the scheduler parks the task until the host descriptor is
ready and the call runs again. A blocking connect is a non-blocking host
connect followed by a wait for writability; running it again asks the host
(a second connect of a connected socket is EISCONN, which then means done).

Guest addresses are decoded by :mod:`sentry.net.inet` and handed to the host
as Python address tuples. Before an address reaches the host the policy is
asked (:class:`sentry.net.policy.NetPolicy`): refused connects and sends are
ECONNREFUSED, refused binds and listens EACCES. SIGPIPE is the sentry's to
raise, so every host send has MSG_NOSIGNAL.

Options are passed to the host socket, which reads back what Linux would
(doubled buffer sizes ...), for the levels of sockets, IP, IPv6, TCP and UDP.
"""

from __future__ import annotations

import ctypes
import errno as host_errno
import fcntl
import ipaddress
import select
import socket
import struct
from typing import TYPE_CHECKING, Any

from sentry import abi
from sentry.errors import SyscallError
from sentry.net.base import SIOCOUTQ, Ancillary, Received, Socket
from sentry.net.inet import is_v4, pack_inet, parse_inet, text_of
from vfs.core import fail
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.net.policy import NetPolicy

HOST_RECV_MAX = 1 << 20
# MSG_* flags passed on to the host; the rest are the sentry's business.
_HOST_SEND_FLAGS = abi.MSG_OOB | abi.MSG_DONTROUTE | abi.MSG_EOR | abi.MSG_MORE
_HOST_RECV_FLAGS = abi.MSG_OOB | abi.MSG_PEEK | abi.MSG_TRUNC | abi.MSG_WAITALL
_PASSED_LEVELS = (abi.SOL_SOCKET, abi.SOL_IP, abi.SOL_IPV6, abi.SOL_TCP, abi.SOL_UDP)
# SOL_SOCKET options that act on the host beyond this socket: refused.
_REFUSED_OPTIONS = {25, 36}  # SO_BINDTODEVICE, SO_MARK


def _oserror(exc: OSError) -> SyscallError:
    return fail(exc.errno or abi.EIO)


class HostSocket(Socket):
    """A guest socket whose other half is a host socket."""

    def __init__(self, kernel: Kernel, policy: NetPolicy, family: int, sotype: int,
                 protocol: int, flags: int, sock: socket.socket | None = None) -> None:
        super().__init__(kernel, family, sotype, protocol, flags)
        self.policy = policy
        if sock is None:
            try:
                sock = socket.socket(family, sotype | socket.SOCK_CLOEXEC, protocol)
            except OSError as exc:
                raise _oserror(exc) from None
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.protocol = sock.proto
        self.connecting = False

    # --- helpers -------------------------------------------------------------

    def poll_host_fd(self) -> int | None:
        return self.fd

    def wait(self, events: int, msg_flags: int = 0, done: int = 0
             ) -> SyscallError | WouldBlock:
        if self.nonblocking or msg_flags & abi.MSG_DONTWAIT:
            return SyscallError(abi.EAGAIN)
        return WouldBlock(None, events, host_fd=self.fd, done=done)

    def _host_addr(self, raw: bytes, for_bind: bool) -> tuple[Any, ...]:
        v6only = False
        if self.family == abi.AF_INET6:
            v6only = bool(self.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
        ip, port = parse_inet(raw, self.family, v6only, for_bind)
        if self.family == abi.AF_INET:
            return (text_of(ip), port)
        # The flow label is 20 bits; Linux ignores the rest (and Python's
        # socket module would refuse it).
        flow = struct.unpack_from(">I", raw, 4)[0] & 0xFFFFF
        scope = struct.unpack_from("<I", raw, 24)[0] if len(raw) >= 28 else 0
        return (str(ipaddress.IPv6Address(ip)), port, flow, scope)

    def _pack(self, addr: Any) -> bytes:
        if not addr:
            return pack_inet(None, self.family)
        ip = ipaddress.ip_address(addr[0].split("%", 1)[0])
        packed = ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed
        return pack_inet((packed, addr[1]), self.family)

    def _check_connect(self, addr: tuple[Any, ...]) -> None:
        host = addr[0]
        if not self.policy.may_connect(host, addr[1]):
            raise fail(abi.ECONNREFUSED)

    # --- naming --------------------------------------------------------------

    def bind(self, raw: bytes) -> None:
        addr = self._host_addr(raw, True)
        if not self.policy.may_bind(addr[1]):
            raise fail(abi.EACCES)
        try:
            self.sock.bind(addr)
        except OSError as exc:
            raise _oserror(exc) from None

    def sockname(self) -> bytes:
        try:
            return self._pack(self.sock.getsockname())
        except OSError as exc:
            raise _oserror(exc) from None

    def peername(self) -> bytes:
        try:
            return self._pack(self.sock.getpeername())
        except OSError as exc:
            raise _oserror(exc) from None

    # --- connections ---------------------------------------------------------

    def listen(self, backlog: int) -> None:
        try:
            port = self.sock.getsockname()[1]
        except OSError:
            port = 0
        if not self.policy.may_bind(port, listening=True):
            raise fail(abi.EACCES)
        try:
            self.sock.listen(max(0, min(backlog, abi.SOMAXCONN)))
        except OSError as exc:
            raise _oserror(exc) from None
        if port == 0 and not self.policy.may_bind(self.sock.getsockname()[1], True):
            raise fail(abi.EACCES)

    def accepting(self) -> bool:
        return bool(self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))

    def accept(self, flags: int) -> Socket:
        try:
            conn, _addr = self.sock.accept()
        except BlockingIOError:
            raise self.wait(abi.POLLIN) from None
        except OSError as exc:
            raise _oserror(exc) from None
        return HostSocket(self.kernel, self.policy, self.family, self.sotype,
                          self.protocol, flags & abi.O_NONBLOCK, conn)

    def connect(self, raw: bytes) -> None:
        if len(raw) >= 2 and struct.unpack_from("<H", raw)[0] == abi.AF_UNSPEC:
            self._disconnect()
            return
        addr = self._host_addr(raw, False)
        self._check_connect(addr)
        err = self.sock.connect_ex(addr)
        if err == 0 or (err == host_errno.EISCONN and self.connecting):
            self.connecting = False
            return
        if err in (host_errno.EINPROGRESS, host_errno.EALREADY, host_errno.EAGAIN):
            first = not self.connecting
            self.connecting = True
            if self.nonblocking:
                raise fail(abi.EINPROGRESS if first else abi.EALREADY)
            raise WouldBlock(None, abi.POLLOUT, host_fd=self.fd)
        self.connecting = False
        raise fail(err)

    def _disconnect(self) -> None:
        """connect(AF_UNSPEC): dissolve the association (Python's socket
        module cannot say AF_UNSPEC, so libc's connect is called directly)."""
        libc = ctypes.CDLL(None, use_errno=True)
        unspec = ctypes.create_string_buffer(16)
        if libc.connect(self.fd, unspec, ctypes.c_uint(16)) < 0:
            raise fail(ctypes.get_errno() or abi.EINVAL)
        self.connecting = False

    def shutdown(self, how: int) -> None:
        try:
            self.sock.shutdown(how)
        except OSError as exc:
            raise _oserror(exc) from None

    # --- data ------------------------------------------------------------------

    def sendmsg(self, data: bytes, raw_addr: bytes | None, anc: Ancillary | None,
                flags: int) -> int:
        if anc is not None and (anc.rights or anc.creds is not None):
            raise fail(abi.EINVAL)
        host_flags = (flags & _HOST_SEND_FLAGS) | socket.MSG_NOSIGNAL
        try:
            if raw_addr is not None and self.sotype == abi.SOCK_DGRAM:
                addr = self._host_addr(raw_addr, False)
                self._check_connect(addr)
                n = self.sock.sendto(data, host_flags, addr)
            else:
                n = self.sock.send(data, host_flags)
        except BlockingIOError:
            raise self.wait(abi.POLLOUT, flags) from None
        except OSError as exc:
            raise _oserror(exc) from None
        if n < len(data) and self.sotype == abi.SOCK_STREAM and not (
                self.nonblocking or flags & abi.MSG_DONTWAIT):
            raise WouldBlock(None, abi.POLLOUT, host_fd=self.fd, done=n)
        return n

    def recvmsg(self, count: int, flags: int) -> Received:
        host_flags = flags & _HOST_RECV_FLAGS & ~abi.MSG_WAITALL
        # One call moves at most HOST_RECV_MAX bytes (a stream may return
        # less than asked; no datagram is larger).
        buf = bytearray(min(max(count, 0), HOST_RECV_MAX))
        try:
            n, _anc, msg_flags, addr = self.sock.recvmsg_into([buf], 0, host_flags)
        except BlockingIOError:
            raise self.wait(abi.POLLIN, flags) from None
        except OSError as exc:
            raise _oserror(exc) from None
        packed = self._pack(addr) if addr else None
        # With MSG_TRUNC the host counts the whole datagram, beyond the buffer.
        return Received(bytes(buf[: min(n, len(buf))]), packed, None, msg_flags, n)

    def readable_bytes(self) -> int:
        return self._host_count(abi.FIONREAD)

    def unsent_bytes(self) -> int:
        return self._host_count(SIOCOUTQ)

    def _host_count(self, request: int) -> int:
        buf = bytearray(4)
        try:
            fcntl.ioctl(self.fd, request, buf)
        except OSError:
            return 0
        return int.from_bytes(buf, "little", signed=True)

    # --- readiness and options -----------------------------------------------

    def poll(self) -> int:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLOUT | select.POLLPRI
                        | select.POLLRDHUP)
        try:
            ready = poller.poll(0)
        except OSError:
            return abi.POLLERR
        return ready[0][1] if ready else 0

    def getsockopt(self, level: int, name: int) -> bytes:
        if level not in _PASSED_LEVELS or (level == abi.SOL_SOCKET
                                           and name in _REFUSED_OPTIONS):
            raise fail(abi.ENOPROTOOPT)
        if level == abi.SOL_SOCKET and name in (abi.SO_RCVTIMEO, abi.SO_SNDTIMEO):
            return super().getsockopt(level, name)
        try:
            return self.sock.getsockopt(level, name, 256)
        except OSError as exc:
            raise _oserror(exc) from None

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        if level not in _PASSED_LEVELS or (level == abi.SOL_SOCKET
                                           and name in _REFUSED_OPTIONS):
            raise fail(abi.ENOPROTOOPT)
        # Timeouts belong to the sentry's waits, never to the host socket.
        if level == abi.SOL_SOCKET and name in (abi.SO_RCVTIMEO, abi.SO_SNDTIMEO):
            super().setsockopt(level, name, value)
            return
        try:
            self.sock.setsockopt(level, name, value)
        except OSError as exc:
            raise _oserror(exc) from None

    def closed(self) -> None:
        self.sock.close()


def new_host_socket(kernel: Kernel, policy: NetPolicy, family: int, sotype: int,
                    protocol: int, flags: int) -> Socket:
    """socket(AF_INET or AF_INET6, ...) under ``--net host``."""
    if sotype not in (abi.SOCK_STREAM, abi.SOCK_DGRAM):
        raise fail(abi.EPERM if sotype == abi.SOCK_RAW else abi.ESOCKTNOSUPPORT)
    return HostSocket(kernel, policy, family, sotype, protocol, flags)


__all__ = ["HostSocket", "new_host_socket", "is_v4"]

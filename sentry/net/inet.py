"""AF_INET and AF_INET6 inside the sandbox: its own loopback network.

Theory of operation
-------------------
With ``--net none`` the sandbox has one interface, a loopback holding
127.0.0.0/8 and ::1. TCP sockets are :class:`sentry.net.stream.StreamSocket`
and UDP sockets :class:`sentry.net.dgram.DgramSocket`; this module gives them
addresses, ports and routing, and no data ever leaves the kernel.

An address is kept as ``(ip, port)`` with ``ip`` 16 bytes: IPv6 as is, IPv4
as its IPv4-mapped form (::ffff:a.b.c.d), so the two families share one
table of ports per protocol (:class:`Ports`) as they do on Linux; a socket
packs addresses back in its own family.

Rules kept from Linux:

* bind accepts the wildcard and the loopback addresses only (anything else
  is EADDRNOTAVAIL); ports below ip_unprivileged_port_start need root
  (EACCES); port 0, and an unbound socket that connects, sends or listens,
  take the next free ephemeral port of 32768-60999;
* two sockets whose addresses overlap (equal, or one a wildcard that covers
  the other's family) may not hold the same port (EADDRINUSE), unless both
  set SO_REUSEPORT, or both set SO_REUSEADDR and, for TCP, neither listens;
  an IPv6 wildcard covers IPv4 unless IPV6_V6ONLY is set;
* a destination outside the loopback is ENETUNREACH; 0.0.0.0 and :: mean
  the local host; the source address of a connection is 127.0.0.1 (or ::1,
  or ::ffff:127.0.0.1 for an IPv6 socket talking to IPv4);
* a connect finds the listener bound to the exact address before one bound
  to a wildcard; nobody listening is ECONNREFUSED.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING, Any

from sentry import abi
from sentry.net.base import (
    RMEM_MAX,
    Socket,
    _host_sysctl,
    int_value,
    pack_int,
)
from sentry.net.dgram import DgramSocket
from sentry.net.stream import CONNECTED, LISTENING, StreamSocket
from vfs.core import fail

if TYPE_CHECKING:
    from sentry.kernel import Kernel

Addr = tuple[bytes, int]

MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"
ANY4 = MAPPED_PREFIX + b"\0\0\0\0"
ANY6 = b"\0" * 16
LOOP4 = MAPPED_PREFIX + b"\x7f\0\0\x01"
LOOP6 = b"\0" * 15 + b"\x01"
EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999
UNPRIVILEGED_PORT_START = _host_sysctl(
    "/proc/sys/net/ipv4/ip_unprivileged_port_start", 1024)
# The MSS of a loopback connection (MTU 65536 less headers and timestamps),
# and of a socket not yet connected.
LOOPBACK_MSS = 65483
DEFAULT_MSS = 536
_sin = struct.Struct("<H")


def is_v4(ip: bytes) -> bool:
    return ip[:12] == MAPPED_PREFIX


def is_wildcard(ip: bytes) -> bool:
    return ip in (ANY4, ANY6)


def is_loopback(ip: bytes) -> bool:
    if is_v4(ip):
        return ip[12] == 127
    return ip == LOOP6


def parse_inet(raw: bytes, family: int, v6only: bool, for_bind: bool) -> Addr:
    """Decode a sockaddr_in / sockaddr_in6 for a socket of ``family``."""
    if family == abi.AF_INET:
        if len(raw) < 16:
            raise fail(abi.EINVAL)
        fam = _sin.unpack_from(raw)[0]
        port = struct.unpack_from(">H", raw, 2)[0]
        ip = MAPPED_PREFIX + raw[4:8]
        # bind(2) takes AF_UNSPEC for INADDR_ANY, for old programs' sake.
        if fam != abi.AF_INET and not (for_bind and fam == abi.AF_UNSPEC
                                       and ip == ANY4):
            raise fail(abi.EAFNOSUPPORT)
        return ip, port
    if len(raw) < 24:
        raise fail(abi.EINVAL)
    if _sin.unpack_from(raw)[0] != abi.AF_INET6:
        raise fail(abi.EAFNOSUPPORT)
    port = struct.unpack_from(">H", raw, 2)[0]
    ip = raw[8:24]
    if v6only and is_v4(ip):
        raise fail(abi.EINVAL if for_bind else abi.ENETUNREACH)
    return ip, port


def pack_inet(addr: Addr | None, family: int) -> bytes:
    ip, port = addr if addr is not None else (ANY4 if family == abi.AF_INET
                                              else ANY6, 0)
    if family == abi.AF_INET:
        v4 = ip[12:] if is_v4(ip) else b"\0\0\0\0"
        return _sin.pack(abi.AF_INET) + struct.pack(">H", port) + v4 + b"\0" * 8
    return (_sin.pack(abi.AF_INET6) + struct.pack(">HI", port, 0) + ip
            + b"\0\0\0\0")


def text_of(ip: bytes) -> str:
    if is_v4(ip):
        return str(ipaddress.IPv4Address(ip[12:]))
    return str(ipaddress.IPv6Address(ip))


class Ports:
    """The sockets holding ports of one protocol (tcp or udp)."""

    def __init__(self) -> None:
        self.by_port: dict[int, list[Socket]] = {}
        self._next = EPHEMERAL_LOW

    def holders(self, port: int) -> list[Socket]:
        return [s for s in self.by_port.get(port, []) if not s.released]

    def add(self, sock: Socket, port: int) -> None:
        self.by_port.setdefault(port, []).append(sock)

    def remove(self, sock: Socket, port: int) -> None:
        held = self.by_port.get(port, [])
        if sock in held:
            held.remove(sock)
        if not held:
            self.by_port.pop(port, None)

    def ephemeral(self) -> int:
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        for _ in range(span):
            port = self._next
            self._next = EPHEMERAL_LOW + (self._next + 1 - EPHEMERAL_LOW) % span
            if not self.holders(port):
                return port
        raise fail(abi.EADDRINUSE)


class InetNaming:
    """Addressing shared by loopback TCP and UDP sockets (mixed into each)."""

    kernel: Kernel
    family: int
    local: Addr | None
    released: bool
    proto_name = "tcp"

    def ports(self) -> Ports:
        return self.kernel.net.ports[self.proto_name]

    def v6only(self) -> bool:
        return bool(self.opt(abi.IPPROTO_IPV6, abi.IPV6_V6ONLY))  # type: ignore[attr-defined]

    def parse_addr(self, raw: bytes) -> Addr:
        return parse_inet(raw, self.family, self.v6only(), False)

    def pack_addr(self, addr: Addr | None) -> bytes:
        return pack_inet(addr, self.family)

    def bind(self, raw: bytes) -> None:
        addr = parse_inet(raw, self.family, self.v6only(), True)
        if self.local is not None:
            raise fail(abi.EINVAL)
        self.bind_addr(addr)

    def bind_addr(self, addr: Addr) -> None:
        ip, port = addr
        if not (is_wildcard(ip) or is_loopback(ip)):
            raise fail(abi.EADDRNOTAVAIL)
        task = self.kernel.current
        if 0 < port < UNPRIVILEGED_PORT_START and task is not None and (
                task.process.creds.euid != 0):
            raise fail(abi.EACCES)
        ports = self.ports()
        if port == 0:
            port = ports.ephemeral()
        elif any(self.conflicts(other, ip) for other in ports.holders(port)):
            raise fail(abi.EADDRINUSE)
        self.local = (ip, port)
        ports.add(self, port)  # type: ignore[arg-type]

    def covers(self, ip: bytes, other_ip: bytes, other_v6only: bool) -> bool:
        """Do our address ``ip`` and another socket's address overlap?"""
        if ip == other_ip:
            return True
        if ip == ANY6:
            return not (self.v6only() and is_v4(other_ip))
        if other_ip == ANY6:
            return not (other_v6only and is_v4(ip))
        if ip == ANY4:
            return is_v4(other_ip)
        if other_ip == ANY4:
            return is_v4(ip)
        return False

    def conflicts(self, other: Any, ip: bytes) -> bool:
        if other is self or other.local is None:
            return False
        if not self.covers(ip, other.local[0], other.v6only()):
            return False
        mine, theirs = self.opt, other.opt  # type: ignore[attr-defined]
        if mine(abi.SOL_SOCKET, abi.SO_REUSEPORT) and theirs(abi.SOL_SOCKET,
                                                            abi.SO_REUSEPORT):
            return False
        if mine(abi.SOL_SOCKET, abi.SO_REUSEADDR) and theirs(abi.SOL_SOCKET,
                                                            abi.SO_REUSEADDR):
            return self.proto_name == "tcp" and (
                getattr(other, "state", None) == LISTENING)
        return True

    def autobind(self, for_listen: bool) -> None:
        if self.local is None:
            any_ip = ANY4 if self.family == abi.AF_INET else ANY6
            self.bind_addr((any_ip, 0))

    def unbind(self) -> None:
        if self.local is not None:
            self.ports().remove(self, self.local[1])  # type: ignore[arg-type]

    def route(self, addr: Addr) -> Addr:
        """The destination on the sandbox's loopback, or ENETUNREACH."""
        ip, port = addr
        if ip == ANY4:
            ip = LOOP4
        elif ip == ANY6:
            ip = LOOP6
        if not is_loopback(ip):
            raise fail(abi.ENETUNREACH)
        return ip, port

    def source_for(self, dest_ip: bytes) -> bytes:
        """The address a packet to ``dest_ip`` leaves from."""
        assert self.local is not None
        if not is_wildcard(self.local[0]):
            return self.local[0]
        return LOOP4 if is_v4(dest_ip) else LOOP6

    def accepts(self, sock: Any, ip: bytes) -> int:
        """How well a socket bound to ``sock.local`` matches destination ``ip``:
        2 for the exact address, 1 for a wildcard that covers it, else 0."""
        own = sock.local[0]
        if own == ip:
            return 2
        if own == ANY6 and not (sock.v6only() and is_v4(ip)):
            return 1
        if own == ANY4 and is_v4(ip):
            return 1
        return 0

    # --- options of the IP, IPv6 and TCP levels -------------------------------

    def inet_getsockopt(self, level: int, name: int) -> bytes | None:
        if level == abi.SOL_IP and self.family in (abi.AF_INET, abi.AF_INET6):
            if name in (abi.IP_TOS, abi.IP_TTL):
                default = 64 if name == abi.IP_TTL else 0
                return pack_int(self.opt(level, name, default))  # type: ignore[attr-defined]
        if level == abi.SOL_IPV6 and self.family == abi.AF_INET6:
            if name == abi.IPV6_V6ONLY:
                return pack_int(self.opt(level, name, 0))  # type: ignore[attr-defined]
            if name == abi.IPV6_UNICAST_HOPS:
                return pack_int(self.opt(level, name, 64))  # type: ignore[attr-defined]
        return None

    def inet_getsockopt_or_fail(self, level: int, name: int) -> bytes:
        value = self.inet_getsockopt(level, name)
        if value is not None:
            return value
        # ip_getsockopt answers EOPNOTSUPP for a level it does not know.
        known = [abi.SOL_SOCKET, abi.SOL_IP, abi.SOL_TCP, abi.SOL_UDP]
        if self.family == abi.AF_INET6:
            known.append(abi.SOL_IPV6)
        raise fail(abi.ENOPROTOOPT if level in known else abi.EOPNOTSUPP)

    def inet_setsockopt(self, level: int, name: int, value: bytes) -> bool:
        options: dict[tuple[int, int], int] = self.options  # type: ignore[attr-defined]
        if level == abi.SOL_IP and name in (abi.IP_TOS, abi.IP_TTL):
            v = int_value(value)
            if name == abi.IP_TTL and not (v == -1 or 1 <= v <= 255):
                raise fail(abi.EINVAL)
            options[(level, name)] = 64 if v == -1 else v
            return True
        if level == abi.SOL_IPV6 and self.family == abi.AF_INET6:
            if name == abi.IPV6_V6ONLY:
                # Only before the socket has an address - ipv6(7).
                if self.local is not None:
                    raise fail(abi.EINVAL)
                options[(level, name)] = int(int_value(value) != 0)
                return True
            if name == abi.IPV6_UNICAST_HOPS:
                v = int_value(value)
                if not -1 <= v <= 255:
                    raise fail(abi.EINVAL)
                options[(level, name)] = 64 if v == -1 else v
                return True
        return False


# TCP options kept as integers, with their defaults (tcp(7)).
_TCP_INT_OPTIONS = {abi.TCP_NODELAY: 0, abi.TCP_CORK: 0, abi.TCP_KEEPIDLE: 7200,
                    abi.TCP_KEEPINTVL: 75, abi.TCP_KEEPCNT: 9, abi.TCP_QUICKACK: 1}
_TCP_BOOLEAN = {abi.TCP_NODELAY, abi.TCP_CORK, abi.TCP_QUICKACK}


class LoopTcp(InetNaming, StreamSocket):
    """A TCP socket on the sandbox's loopback."""

    tcp_like = True
    proto_name = "tcp"
    unconnected_recv_errno = abi.ENOTCONN
    unconnected_send_errno = abi.EPIPE
    default_rcvbuf = min(131072, RMEM_MAX * 2)
    default_sndbuf = 16384

    def listen(self, backlog: int) -> None:
        # Two listeners on one port need SO_REUSEPORT on both.
        if self.local is not None and self.state != LISTENING:
            for other in self.ports().holders(self.local[1]):
                if (isinstance(other, LoopTcp) and other is not self
                        and other.state == LISTENING and other.local is not None
                        and self.covers(self.local[0], other.local[0], other.v6only())
                        and not (self.opt(abi.SOL_SOCKET, abi.SO_REUSEPORT)
                                 and other.opt(abi.SOL_SOCKET, abi.SO_REUSEPORT))):
                    raise fail(abi.EADDRINUSE)
        super().listen(backlog)

    def find_listener(self, addr: Addr) -> StreamSocket:
        ip, port = self.route(addr)
        best: LoopTcp | None = None
        best_score = 0
        for sock in self.ports().holders(port):
            if not isinstance(sock, LoopTcp) or sock.state != LISTENING:
                continue
            score = self.accepts(sock, ip)
            if score > best_score:
                best, best_score = sock, score
        if best is None:
            raise fail(abi.ECONNREFUSED)
        return best

    def make_child(self, listener: StreamSocket, addr: Addr) -> StreamSocket:
        ip, port = self.route(addr)
        child = LoopTcp(self.kernel, listener.family, self.sotype, self.protocol, 0)
        if listener.family == abi.AF_INET:
            ip = ip if is_v4(ip) else LOOP4
        child.local = (ip, port)
        child.options = dict(listener.options)
        child.rcvbuf, child.sndbuf = listener.rcvbuf, listener.sndbuf
        self.ports().add(child, port)
        # The client's source address is the loopback of the destination's family.
        assert self.local is not None
        if is_wildcard(self.local[0]):
            self.unbind()
            self.local = (self.source_for(ip), self.local[1])
            self.ports().add(self, self.local[1])
        return child

    def family_getsockopt(self, level: int, name: int) -> bytes:
        if level == abi.SOL_TCP:
            if name == abi.TCP_MAXSEG:
                return pack_int(LOOPBACK_MSS if self.state == CONNECTED
                                else DEFAULT_MSS)
            if name in _TCP_INT_OPTIONS:
                return pack_int(self.opt(level, name, _TCP_INT_OPTIONS[name]))
        if level == abi.SOL_SOCKET and name == abi.SO_PEERCRED:
            return struct.pack("<iII", 0, 65534, 65534)
        return self.inet_getsockopt_or_fail(level, name)

    def family_setsockopt(self, level: int, name: int, value: bytes) -> None:
        if level == abi.SOL_TCP:
            if name in _TCP_INT_OPTIONS:
                v = int_value(value)
                if name in _TCP_BOOLEAN:
                    v = int(v != 0)
                elif v < 1:
                    raise fail(abi.EINVAL)
                self.options[(level, name)] = v
                return
            if name == abi.TCP_MAXSEG:
                int_value(value)
                return
        if not self.inet_setsockopt(level, name, value):
            raise fail(abi.ENOPROTOOPT)


class LoopUdp(InetNaming, DgramSocket):
    """A UDP socket on the sandbox's loopback."""

    unix_like = False
    proto_name = "udp"
    unconnected_send_errno = abi.EDESTADDRREQ

    def __init__(self, kernel: Kernel, family: int, sotype: int, protocol: int,
                 flags: int) -> None:
        super().__init__(kernel, family, sotype, protocol, flags)
        self.max_payload = 65507 if family == abi.AF_INET else 65527

    def find_receiver(self, addr: Addr) -> DgramSocket | None:
        ip, port = self.route(addr)
        best: LoopUdp | None = None
        best_score = 0
        src = (self.source_for(ip), self.local[1]) if self.local else None
        for sock in self.ports().holders(port):
            if not isinstance(sock, LoopUdp):
                continue
            # A connected socket hears only from its peer.
            if sock.peer_addr is not None and src is not None and (
                    sock.peer_addr != src):
                continue
            score = self.accepts(sock, ip)
            if score > best_score:
                best, best_score = sock, score
        return best

    def connect(self, raw: bytes) -> None:
        if self.is_unspec(raw):
            super().connect(raw)
            return
        dest = self.route(self.parse_addr(raw))
        self.autobind(False)
        assert self.local is not None
        # The source address is fixed by the route now, as getsockname shows.
        if is_wildcard(self.local[0]):
            self.ports().remove(self, self.local[1])
            self.local = (self.source_for(dest[0]), self.local[1])
            self.ports().add(self, self.local[1])
        self.peer_addr = dest
        self.notify()

    def sendmsg(self, data: bytes, raw_addr: bytes | None, anc: Any,
                flags: int) -> int:
        if raw_addr is not None:
            self.route(self.parse_addr(raw_addr))
        return super().sendmsg(data, raw_addr, anc, flags)

    def _send_udp(self, dest: Addr, data: bytes) -> int:
        dest = self.route(dest)
        target = self.find_receiver(dest)
        if target is None:
            if self.peer_addr is not None:
                self.error = abi.ECONNREFUSED
                self.notify()
            return len(data)
        assert self.local is not None
        src = (self.source_for(dest[0]), self.local[1])
        if not target.full(len(data)):
            target.enqueue(data, src, None, self._creds(None))
        return len(data)

    def family_getsockopt(self, level: int, name: int) -> bytes:
        if level == abi.SOL_SOCKET and name == abi.SO_PEERCRED:
            return struct.pack("<iII", 0, 65534, 65534)
        return self.inet_getsockopt_or_fail(level, name)

    def family_setsockopt(self, level: int, name: int, value: bytes) -> None:
        if not self.inet_setsockopt(level, name, value):
            raise fail(abi.ENOPROTOOPT)


def new_loopback(kernel: Kernel, family: int, sotype: int, protocol: int,
                 flags: int) -> Socket:
    """socket(AF_INET or AF_INET6, ...) with the sandbox's own network."""
    if sotype == abi.SOCK_STREAM and protocol in (0, abi.IPPROTO_TCP):
        return LoopTcp(kernel, family, sotype, abi.IPPROTO_TCP, flags)
    if sotype == abi.SOCK_DGRAM and protocol in (0, abi.IPPROTO_UDP):
        return LoopUdp(kernel, family, sotype, abi.IPPROTO_UDP, flags)
    if sotype in (abi.SOCK_STREAM, abi.SOCK_DGRAM):
        raise fail(abi.EPROTONOSUPPORT)
    if sotype == abi.SOCK_RAW:
        raise fail(abi.EPERM)
    raise fail(abi.ESOCKTNOSUPPORT)


__all__ = ["new_loopback", "Ports", "text_of"]

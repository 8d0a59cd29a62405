"""How far the guest's network reaches: ``--net``, ``--allow-connect``,
``--allow-bind``, and the kernel's table of socket names.

Theory of operation
-------------------
The policy is fixed when the sandbox starts and kept in :class:`NetPolicy`.
:class:`NetStack` is the one place the socket syscalls get sockets from, so
it is where the policy takes effect:

* ``none`` (the default): AF_INET and AF_INET6 sockets are the kernel's own
  loopback sockets (:mod:`sentry.net.inet`). The host socket module is not
  even imported; no host socket is ever made for the guest.
* ``host``: AF_INET and AF_INET6 sockets are host sockets
  (:mod:`sentry.net.host`). When ``--allow-connect`` lists are given, a
  connect (or a datagram sent) to an address and port not listed fails with
  ECONNREFUSED, what a client shows as "connection refused", and nothing
  reaches the host network; when ``--allow-bind`` lists ports, binding or
  listening on another port fails with EACCES, as binding a privileged port
  does. Ephemeral ports (bind to port 0 by a client, the implicit bind of a
  connect or a send) are always allowed; listening on one is not, when a
  list is given.

AF_UNIX sockets stay in the kernel in every mode. Other families (netlink,
packet ...) are EAFNOSUPPORT.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import attrs

from sentry import abi
from sentry.net.inet import Ports
from sentry.net.unix import UnixNames, new_unix, unix_pair
from vfs.core import fail

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.net.base import Socket

NET_MODES = ("none", "host")


@attrs.frozen
class NetPolicy:
    """The network the guest gets (see the module docstring)."""

    mode: str = "none"
    # (address text, port) pairs; the address is a literal IP.
    allow_connect: tuple[tuple[str, int], ...] = ()
    allow_bind: tuple[int, ...] = ()

    def may_connect(self, ip: str, port: int) -> bool:
        if not self.allow_connect:
            return True
        ip = _canonical_ip(ip)
        return any(_canonical_ip(a) == ip and p == port for a, p in self.allow_connect)

    def may_bind(self, port: int, listening: bool = False) -> bool:
        if not self.allow_bind:
            return True
        if port == 0 and not listening:
            return True
        return port in self.allow_bind


def _canonical_ip(text: str) -> str:
    """One spelling per address; IPv4-mapped IPv6 counts as the IPv4 one."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_allow_connect(text: str) -> list[tuple[str, int]]:
    """HOST:PORT or [V6]:PORT; a host name stands for every address it has now.

    Raises ValueError with a one-line message for the command line.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"not a port: {port_text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {port_text!r}")
    try:
        return [(str(ipaddress.ip_address(host)), port)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise ValueError(f"cannot resolve {host!r}") from None
    return sorted({(str(info[4][0]), port) for info in infos})


def parse_allow_bind(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"not a port: {text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {text!r}")
    return port


class NetStack:
    """The kernel's sockets: where each new socket comes from, and the names
    in-kernel sockets hold."""

    def __init__(self, policy: NetPolicy | None = None) -> None:
        self.policy = policy or NetPolicy()
        self.unix = UnixNames()
        self.ports = {"tcp": Ports(), "udp": Ports()}

    def socket(self, kernel: Kernel, family: int, sotype: int, protocol: int,
               flags: int) -> Socket:
        """socket(2) for ``family``; ``sotype`` without the flag bits."""
        if family == abi.AF_UNIX:
            return new_unix(kernel, sotype, protocol, flags)
        if family in (abi.AF_INET, abi.AF_INET6):
            if self.policy.mode == "host":
                from sentry.net.host import new_host_socket

                return new_host_socket(kernel, self.policy, family, sotype,
                                       protocol, flags)
            from sentry.net.inet import new_loopback

            return new_loopback(kernel, family, sotype, protocol, flags)
        raise fail(abi.EAFNOSUPPORT)

    def socketpair(self, kernel: Kernel, family: int, sotype: int, protocol: int,
                   flags: int) -> tuple[Socket, Socket]:
        if family == abi.AF_UNIX:
            return unix_pair(kernel, sotype, protocol, flags)
        if family in (abi.AF_INET, abi.AF_INET6):
            raise fail(abi.EOPNOTSUPP)
        raise fail(abi.EAFNOSUPPORT)

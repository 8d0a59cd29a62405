"""Datagram sockets inside the kernel: Unix datagram and loopback UDP.

Theory of operation
-------------------
A :class:`DgramSocket` keeps the datagrams sent to it in ``rx``, each with
the sender's address and control data. A send finds the receiving socket for
the destination address (the family subclass does the lookup) and appends to
its queue. connect only records a default destination, and for Unix sockets
a filter: a socket connected to another receives only from that one.

The families differ where Linux's do:

* Unix: a full receive queue makes the sender wait (or EAGAIN); sending to a
  name nobody holds is ECONNREFUSED; a connected sender whose peer closed
  gets ECONNREFUSED once and is disconnected.
* UDP: a full queue drops the datagram; nobody listening drops it too, and a
  connected sender learns of it as ECONNREFUSED on its next call (what the
  ICMP "port unreachable" of the loopback does on Linux).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from sentry import abi
from sentry.net.base import (
    POLL_READ,
    POLL_WRITE,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUTDOWN_MASK,
    Ancillary,
    Received,
    Socket,
    Ucred,
)
from vfs.core import fail
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Kernel

# net.unix.max_dgram_qlen: datagrams a Unix socket queues before senders wait.
UNIX_MAX_DGRAM_QLEN = 10


class Datagram:
    __slots__ = ("data", "src", "anc", "creds", "sender")

    def __init__(self, data: bytes, src: Any, anc: Ancillary | None,
                 creds: Ucred, sender: Socket | None = None) -> None:
        self.data = data
        self.src = src
        self.anc = anc
        self.creds = creds
        # The sending socket, told when its datagram leaves a full queue.
        self.sender = sender


class DgramSocket(Socket):
    """A datagram socket of the kernel's own families."""

    unix_like = True  # Unix semantics (see the module docstring), else UDP
    unconnected_send_errno = abi.ENOTCONN
    max_payload = 1 << 30

    def __init__(self, kernel: Kernel, family: int, sotype: int, protocol: int,
                 flags: int) -> None:
        super().__init__(kernel, family, sotype, protocol, flags)
        self.local: Any = None
        self.peer_addr: Any = None
        self.peer: DgramSocket | None = None  # Unix: the socket connected to
        self.rx: deque[Datagram] = deque()
        self.rx_bytes = 0

    # --- what the family provides ---------------------------------------------

    def parse_addr(self, raw: bytes) -> Any:
        raise NotImplementedError

    def pack_addr(self, addr: Any) -> bytes:
        raise NotImplementedError

    def bind_addr(self, addr: Any) -> None:
        raise NotImplementedError

    def autobind(self, for_listen: bool) -> None:
        """Give an unbound socket a name before it sends (when the family does)."""

    def unbind(self) -> None:
        raise NotImplementedError

    def find_receiver(self, addr: Any) -> DgramSocket | None:
        raise NotImplementedError

    def is_unspec(self, raw: bytes) -> bool:
        return len(raw) >= 2 and int.from_bytes(raw[:2], "little") == abi.AF_UNSPEC

    # --- naming and connecting ------------------------------------------------

    def bind(self, raw: bytes) -> None:
        addr = self.parse_addr(raw)
        if self.local is not None:
            raise fail(abi.EINVAL)
        self.bind_addr(addr)

    def sockname(self) -> bytes:
        return self.pack_addr(self.local)

    def peername(self) -> bytes:
        if self.peer_addr is None:
            raise fail(abi.ENOTCONN)
        return self.pack_addr(self.peer_addr)

    def connect(self, raw: bytes) -> None:
        # AF_UNSPEC dissolves the association - connect(2).
        if self.is_unspec(raw):
            self.peer_addr = None
            self.peer = None
            self.notify()
            return
        addr = self.parse_addr(raw)
        target = self.find_receiver(addr)
        if self.unix_like and target is None:
            raise fail(abi.ECONNREFUSED)
        # A socket connected to a third one would refuse what we send.
        if target is not None and self.unix_like and target.peer not in (None, self):
            raise fail(abi.EPERM)
        self.autobind(False)
        self.peer_addr = addr if target is None else self._canonical(target, addr)
        self.peer = target if self.unix_like else None
        self.notify()

    def _canonical(self, target: DgramSocket, addr: Any) -> Any:
        return target.local if self.unix_like else addr

    def shutdown(self, how: int) -> None:
        if how not in (abi.SHUT_RD, abi.SHUT_WR, abi.SHUT_RDWR):
            raise fail(abi.EINVAL)
        if self.peer_addr is None and not self.unix_like:
            raise fail(abi.ENOTCONN)
        self.shut |= {abi.SHUT_RD: RCV_SHUTDOWN, abi.SHUT_WR: SEND_SHUTDOWN,
                      abi.SHUT_RDWR: SHUTDOWN_MASK}[how]
        self.notify()

    # --- sending --------------------------------------------------------------

    def sendmsg(self, data: bytes, raw_addr: bytes | None, anc: Ancillary | None,
                flags: int) -> int:
        # Where to: the address given, else the connected peer.
        if raw_addr is not None:
            dest = self.parse_addr(raw_addr)
        elif self.peer_addr is not None:
            dest = self.peer_addr
        else:
            raise fail(self.unconnected_send_errno)
        if len(data) > self.max_payload or (self.unix_like and len(data) > self.sndbuf):
            raise fail(abi.EMSGSIZE)
        err = self.take_error()
        if err:
            raise fail(err)
        if self.shut & SEND_SHUTDOWN:
            raise fail(abi.EPIPE)
        self.autobind(False)
        if self.unix_like:
            return self._send_unix(dest, raw_addr is not None, data, anc, flags)
        return self._send_udp(dest, data)

    def _send_unix(self, dest: Any, explicit: bool, data: bytes,
                   anc: Ancillary | None, flags: int) -> int:
        # A connected peer that went away: ECONNREFUSED once, then ENOTCONN.
        if not explicit and self.peer is not None and self.peer.released:
            self.peer = None
            self.peer_addr = None
            raise fail(abi.ECONNREFUSED)
        target = self.peer if not explicit and self.peer is not None else (
            self.find_receiver(dest))
        if target is None or target.released:
            raise fail(abi.ECONNREFUSED)

        # A socket connected elsewhere takes nothing from us - unix(7).
        if target.peer is not None and target.peer is not self:
            raise fail(abi.EPERM)
        if target.shut & RCV_SHUTDOWN:
            raise fail(abi.EPIPE)
        if target.full(len(data)):
            if self.nonblocking or flags & abi.MSG_DONTWAIT:
                raise fail(abi.EAGAIN)
            raise WouldBlock(target.queue, POLL_WRITE)
        target.enqueue(data, self.local, anc, self._creds(anc), self)
        return len(data)

    def _send_udp(self, dest: Any, data: bytes) -> int:
        target = self.find_receiver(dest)
        if target is None:
            # Port unreachable: a connected socket hears of it on its next call.
            if self.peer_addr is not None:
                self.error = abi.ECONNREFUSED
                self.notify()
            return len(data)
        if not target.full(len(data)):
            target.enqueue(data, self.local, None, self._creds(None))
        return len(data)

    def _creds(self, anc: Ancillary | None) -> Ucred:
        if anc is not None and anc.creds is not None:
            return anc.creds
        return Ucred.of(self.current())

    def full(self, size: int) -> bool:
        if self.unix_like and len(self.rx) > UNIX_MAX_DGRAM_QLEN:
            return True
        return bool(self.rx) and self.rx_bytes + size > self.rcvbuf

    def enqueue(self, data: bytes, src: Any, anc: Ancillary | None, creds: Ucred,
                sender: Socket | None = None) -> None:
        if anc is not None:
            anc.hold()
        self.rx.append(Datagram(bytes(data), src, anc, creds, sender))
        self.rx_bytes += len(data)
        self.notify(POLL_READ)

    # --- receiving ------------------------------------------------------------

    def readable_bytes(self) -> int:
        return len(self.rx[0].data) if self.rx else 0

    def recvmsg(self, count: int, flags: int) -> Received:
        if not self.rx:
            err = self.take_error()
            if err:
                raise fail(err)
            if self.shut & RCV_SHUTDOWN:
                return Received(b"")
            raise self.wait(POLL_READ, flags)
        gram = self.rx[0]
        # An unnamed sender has no address to report (length 0).
        src = self.pack_addr(gram.src) if gram.src else None
        out = Received(gram.data[:count], src, None, 0, len(gram.data))
        if len(gram.data) > count:
            out.flags |= abi.MSG_TRUNC
        passcred = self.opt(abi.SOL_SOCKET, abi.SO_PASSCRED)
        if gram.anc is not None or passcred:
            if gram.anc is None:
                out.anc = Ancillary()
            elif flags & abi.MSG_PEEK:
                out.anc = gram.anc.copy_held()
            else:
                out.anc = Ancillary(list(gram.anc.rights))
            out.anc.creds = gram.creds if passcred else None
        if not flags & abi.MSG_PEEK:
            self.rx.popleft()
            self.rx_bytes -= len(gram.data)
            if gram.anc is not None:
                gram.anc.rights = []
            # Room for senders waiting on a full queue, and for a connected
            # sender's POLLOUT (it polls our queue's room).
            self.notify(POLL_WRITE)
            if gram.sender is not None and not gram.sender.released:
                gram.sender.notify(POLL_WRITE)
        return out

    # --- readiness and close ----------------------------------------------------

    def poll(self) -> int:
        mask = 0
        if self.error:
            mask |= abi.POLLERR
        if self.shut & RCV_SHUTDOWN:
            mask |= abi.POLLRDHUP | POLL_READ
        if self.shut == SHUTDOWN_MASK:
            mask |= abi.POLLHUP
        if self.rx:
            mask |= POLL_READ
        peer = self.peer
        if peer is None or peer.released or not peer.full(1):
            mask |= POLL_WRITE
        return mask

    def closed(self) -> None:
        for gram in self.rx:
            if gram.anc is not None:
                gram.anc.drop()
        self.rx.clear()
        self.rx_bytes = 0
        if self.local is not None:
            self.unbind()

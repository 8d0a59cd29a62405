"""Connection-oriented sockets inside the kernel: Unix stream and seqpacket,
loopback TCP.

Theory of operation
-------------------
A :class:`StreamSocket` is unconnected, listening or connected. A connect
finds the listening socket the address names (the family subclass does the
lookup), makes the server's end of the new connection at once and puts it on
the listener's accept queue; both ends are connected from then on, so the
client may write before the server accepts, as on Linux. accept only takes
the next end off the queue.

Each end keeps what was sent to it in ``rx``, a queue of :class:`Segment`
(bytes plus the control data sent with them). A writer puts bytes into its
peer's queue while it is below the peer's receive buffer size and waits on
its own queue otherwise; a reader that takes bytes out notifies the peer's
queue, and every change notifies the queue of the end whose readiness it
changes. A stream read joins segments but never across one that carries
control data; a seqpacket read takes one segment (record) and truncates it.

Shutdown is kept per end as Linux's ``sk_shutdown`` bits. What a peer sees
differs a little between the families, and the subclass says which through a
few class attributes: a Unix end closing or shutting down marks its peer at
once (writes there fail with EPIPE), while a TCP end only sends "FIN": the
peer reads end of file, and its first write after the other end closed still
succeeds (the data is lost; Linux answers it with a reset), the next one
fails with EPIPE. Closing an end with unread data resets the connection: the
peer's next read fails with ECONNRESET.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from sentry import abi
from sentry.errors import SyscallError
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

UNCONNECTED = "unconnected"
LISTENING = "listening"
CONNECTED = "connected"


class Segment:
    """Bytes sent by one call, with the control data that came with them."""

    __slots__ = ("data", "off", "anc", "creds")

    def __init__(self, data: bytes, anc: Ancillary | None, creds: Ucred | None
                 ) -> None:
        self.data = data
        self.off = 0  # how much a stream read took already
        self.anc = anc
        self.creds = creds


class StreamSocket(Socket):
    """One end of an in-kernel connection, or a listener."""

    # Set by the family subclasses (see the module docstring).
    records = False  # SOCK_SEQPACKET: reads take one record each
    tcp_like = False  # TCP's view of shutdown, close and connect
    unconnected_recv_errno = abi.EINVAL
    unconnected_send_errno = abi.ENOTCONN

    def __init__(self, kernel: Kernel, family: int, sotype: int, protocol: int,
                 flags: int) -> None:
        super().__init__(kernel, family, sotype, protocol, flags)
        self.state = UNCONNECTED
        self.local: Any = None  # the family's address, None while unbound
        self.peer: StreamSocket | None = None
        self.peer_addr: Any = None
        self.peer_creds: Ucred | None = None
        self.peer_closed = False  # TCP: the other end is gone (FIN received)
        self.in_progress = False  # TCP: a non-blocking connect said EINPROGRESS
        self.failed = False  # TCP: ... and was refused
        self.rx: deque[Segment] = deque()
        self.rx_bytes = 0
        self.backlog: deque[StreamSocket] = deque()
        self.backlog_max = 0
        self.listen_creds: Ucred | None = None

    # --- what the family provides ---------------------------------------------

    def parse_addr(self, raw: bytes) -> Any:
        raise NotImplementedError

    def pack_addr(self, addr: Any) -> bytes:
        raise NotImplementedError

    def bind_addr(self, addr: Any) -> None:
        raise NotImplementedError

    def autobind(self, for_listen: bool) -> None:
        """Give an unbound socket a name before it listens or connects."""

    def unbind(self) -> None:
        raise NotImplementedError

    def find_listener(self, addr: Any) -> StreamSocket:
        raise NotImplementedError

    def make_child(self, listener: StreamSocket, addr: Any) -> StreamSocket:
        """The server's end of a new connection to ``listener`` via ``addr``."""
        raise NotImplementedError

    # --- naming -------------------------------------------------------------

    def bind(self, raw: bytes) -> None:
        addr = self.parse_addr(raw)
        if self.local is not None:
            raise fail(abi.EINVAL)
        self.bind_addr(addr)

    def sockname(self) -> bytes:
        return self.pack_addr(self.local)

    def peername(self) -> bytes:
        # A non-blocking connect that said EINPROGRESS is connected already.
        if self.state != CONNECTED:
            raise fail(abi.ENOTCONN)
        return self.pack_addr(self.peer_addr)

    # --- listening and accepting ----------------------------------------------

    def listen(self, backlog: int) -> None:
        if self.state == CONNECTED:
            raise fail(abi.EINVAL)
        self.autobind(True)
        # "If the backlog argument is greater than the value in
        # /proc/sys/net/core/somaxconn, then it is silently capped" - listen(2)
        self.backlog_max = max(0, min(backlog, abi.SOMAXCONN))
        if self.state != LISTENING:
            self.listen_creds = Ucred.of(self.current())
        self.state = LISTENING
        self.notify()

    def accepting(self) -> bool:
        return self.state == LISTENING

    def accept(self, flags: int) -> Socket:
        if self.state != LISTENING:
            raise fail(abi.EINVAL)
        if not self.backlog:
            raise self.wait(POLL_READ)
        child = self.backlog.popleft()
        child.flags = (child.flags & ~abi.O_NONBLOCK) | (flags & abi.O_NONBLOCK)
        # Room in the queue for a connect that waits.
        self.notify(abi.POLLOUT)
        return child

    # --- connecting -----------------------------------------------------------

    def connect(self, raw: bytes) -> None:
        # TCP takes AF_UNSPEC as "disconnect": the connection is reset.
        if self.tcp_like and raw[:2] == abi.AF_UNSPEC.to_bytes(2, "little"):
            self._disconnect()
            return

        # A connect that completed in the background reports success once.
        if self.state == CONNECTED:
            if self.in_progress:
                self.in_progress = False
                return
            raise fail(abi.EISCONN)
        if self.state == LISTENING:
            raise fail(abi.EISCONN if self.tcp_like else abi.EINVAL)
        # A connect that failed in the background: its error (if SO_ERROR
        # did not take it), else ECONNABORTED; then the socket starts afresh.
        if self.failed:
            self.failed = False
            self.shut = 0
            raise fail(self.take_error() or abi.ECONNABORTED)
        err = self.take_error()
        if err:
            raise fail(err)
        addr = self.parse_addr(raw)

        # Find who listens there; TCP reports a refusal of a non-blocking
        # connect later, through SO_ERROR, after EINPROGRESS.
        try:
            listener = self.find_listener(addr)
        except SyscallError as exc:
            if self.tcp_like and self.nonblocking and exc.errno == abi.ECONNREFUSED:
                self.error = abi.ECONNREFUSED
                self.failed = True
                self.shut = SHUTDOWN_MASK
                self.notify()
                raise fail(abi.EINPROGRESS) from None
            raise
        if listener.sotype != self.sotype:
            raise fail(abi.EPROTOTYPE)

        # A full accept queue makes the connect wait.
        if len(listener.backlog) > listener.backlog_max:
            if self.nonblocking:
                raise fail(abi.EINPROGRESS if self.tcp_like else abi.EAGAIN)
            raise WouldBlock(listener.queue, abi.POLLOUT)

        # Make the server's end and queue it; both ends are connected now.
        self.autobind(False)
        child = self.make_child(listener, addr)
        child.peer, self.peer = self, child
        child.peer_addr, self.peer_addr = self.local, child.local
        child.peer_creds = Ucred.of(self.current())
        self.peer_creds = listener.listen_creds
        child.state = self.state = CONNECTED
        listener.backlog.append(child)
        listener.notify(POLL_READ)
        self.notify(POLL_WRITE)
        if self.tcp_like and self.nonblocking:
            self.in_progress = True
            raise fail(abi.EINPROGRESS)

    def connect_pair(self, other: StreamSocket) -> None:
        """socketpair(2): connect two fresh sockets to each other."""
        creds = Ucred.of(self.current())
        self.peer, other.peer = other, self
        self.peer_creds = other.peer_creds = creds
        self.state = other.state = CONNECTED
        self.peer_addr, other.peer_addr = other.local, self.local

    # --- sending --------------------------------------------------------------

    def sendmsg(self, data: bytes, raw_addr: bytes | None, anc: Ancillary | None,
                flags: int) -> int:
        # An address is refused on a Unix stream, ignored by TCP.
        if raw_addr is not None and not self.tcp_like:
            raise fail(abi.EISCONN if self.state == CONNECTED else abi.EOPNOTSUPP)
        err = self.take_error()
        if err:
            raise fail(err)
        if self.shut & SEND_SHUTDOWN:
            raise fail(abi.EPIPE)
        if self.state != CONNECTED:
            raise fail(self.unconnected_send_errno)
        peer = self.peer
        assert peer is not None

        # The other end is gone: Unix says EPIPE; TCP loses this write and
        # fails the next one (the peer's reset).
        if peer.released or (peer.shut & RCV_SHUTDOWN and not self.tcp_like):
            if not self.tcp_like:
                raise fail(abi.EPIPE)
            self.shut |= SEND_SHUTDOWN
            self.notify()
            return len(data)
        if self.records:
            return self._send_record(peer, data, anc, flags)
        return self._send_bytes(peer, data, anc, flags)

    def _space(self, peer: StreamSocket) -> int:
        return max(0, peer.rcvbuf - peer.rx_bytes)

    def _send_record(self, peer: StreamSocket, data: bytes, anc: Ancillary | None,
                     flags: int) -> int:
        # A record goes whole or waits; one that can never fit is EMSGSIZE.
        if len(data) > max(self.sndbuf, peer.rcvbuf):
            raise fail(abi.EMSGSIZE)
        if self._space(peer) < len(data) and peer.rx:
            raise self.wait(POLL_WRITE, flags)
        self._deliver(peer, data, anc)
        return len(data)

    def _send_bytes(self, peer: StreamSocket, data: bytes, anc: Ancillary | None,
                    flags: int) -> int:
        if not data and anc is None:
            return 0
        space = self._space(peer)
        if space == 0:
            raise self.wait(POLL_WRITE, flags)
        n = min(space, len(data))
        self._deliver(peer, data[:n], anc)
        if n < len(data) and not (self.nonblocking or flags & abi.MSG_DONTWAIT):
            raise WouldBlock(self.queue, POLL_WRITE, done=n)
        return n

    def _deliver(self, peer: StreamSocket, data: bytes, anc: Ancillary | None) -> None:
        creds = anc.creds if anc is not None and anc.creds is not None else None
        if creds is None:
            creds = Ucred.of(self.current())
        if anc is not None:
            anc.hold()
        peer.rx.append(Segment(bytes(data), anc, creds))
        peer.rx_bytes += len(data)
        peer.notify(POLL_READ)

    # --- receiving ------------------------------------------------------------

    def readable_bytes(self) -> int:
        if self.records:
            return len(self.rx[0].data) if self.rx else 0
        return self.rx_bytes

    def unsent_bytes(self) -> int:
        peer = self.peer
        return peer.rx_bytes if peer is not None and not peer.released else 0

    def recvmsg(self, count: int, flags: int) -> Received:
        if self.state != CONNECTED:
            raise fail(self.unconnected_recv_errno)
        if not self.rx:
            return self._recv_empty(count, flags)

        # MSG_WAITALL waits for the whole count, unless that can never come.
        if (flags & abi.MSG_WAITALL and not self.records and self.rx_bytes < count
                and not self.shut & RCV_SHUTDOWN and count <= self.rcvbuf
                and not flags & abi.MSG_PEEK):
            raise self.wait(POLL_READ, flags)
        got = self._take_record(count, flags) if self.records else (
            self._take_bytes(count, flags))
        # Room for the writer at the other end.
        if not flags & abi.MSG_PEEK and self.peer is not None:
            self.peer.notify(POLL_WRITE)
        return got

    def _recv_empty(self, count: int, flags: int) -> Received:
        err = self.take_error()
        if err:
            raise fail(err)
        if self.shut & RCV_SHUTDOWN or (count == 0 and not self.records):
            return Received(b"")
        raise self.wait(POLL_READ, flags)

    def _take_record(self, count: int, flags: int) -> Received:
        seg = self.rx[0]
        src = self.pack_addr(self.peer_addr) if self.peer_addr else None
        out = Received(seg.data[:count], src,
                       self._control(seg, flags), 0, len(seg.data))
        if len(seg.data) > count:
            out.flags |= abi.MSG_TRUNC
        if not flags & abi.MSG_PEEK:
            self.rx.popleft()
            self.rx_bytes -= len(seg.data)
        return out

    def _take_bytes(self, count: int, flags: int) -> Received:
        peek = bool(flags & abi.MSG_PEEK)
        parts: list[bytes] = []
        anc: Ancillary | None = None
        creds: Ucred | None = None
        passcred = self.opt(abi.SOL_SOCKET, abi.SO_PASSCRED)
        want = count
        index = 0
        while want > 0 and index < len(self.rx):
            seg = self.rx[index]
            # Control data starts a new read; so does another sender when
            # credentials are passed.
            if parts and (seg.anc is not None or (passcred and seg.creds != creds)):
                break
            if not parts:
                anc = self._control(seg, flags)
                creds = seg.creds
            piece = seg.data[seg.off: seg.off + want]
            parts.append(piece)
            want -= len(piece)
            if peek:
                index += 1
                continue
            seg.off += len(piece)
            if seg.off == len(seg.data):
                self.rx.popleft()
            self.rx_bytes -= len(piece)
        # A Unix stream names a sender that has a name; TCP names nobody.
        src = None
        if not self.tcp_like and self.peer_addr:
            src = self.pack_addr(self.peer_addr)
        return Received(b"".join(parts), src, anc, 0, count - want)

    def _control(self, seg: Segment, flags: int) -> Ancillary | None:
        """The control data a read of ``seg`` hands over (once, unless peeking)."""
        passcred = self.opt(abi.SOL_SOCKET, abi.SO_PASSCRED)
        anc = seg.anc
        if not flags & abi.MSG_PEEK:
            seg.anc = None
        if anc is None and not passcred:
            return None
        if anc is None:
            out = Ancillary()
        elif flags & abi.MSG_PEEK:
            out = anc.copy_held()
        else:
            out = Ancillary(list(anc.rights))
        out.creds = None
        if passcred:
            out.creds = seg.creds
        return out

    # --- readiness ------------------------------------------------------------

    def poll(self) -> int:
        if self.state == LISTENING:
            return POLL_READ if self.backlog else 0
        mask = 0
        if self.error:
            mask |= abi.POLLERR
        if self.shut == SHUTDOWN_MASK:
            mask |= abi.POLLHUP
        if self.shut & RCV_SHUTDOWN:
            mask |= abi.POLLRDHUP | POLL_READ
        if self.rx:
            mask |= POLL_READ
        if self.state == UNCONNECTED:
            # Never connected (or connect failed): hung up, and writable.
            return mask | abi.POLLHUP | POLL_WRITE
        peer = self.peer
        if peer is None or peer.released or self._space(peer) > 0 or (
                self.shut & SEND_SHUTDOWN):
            mask |= POLL_WRITE
        return mask

    # --- shutdown and close ---------------------------------------------------

    def _disconnect(self) -> None:
        """Drop the connection (TCP's reset) and be an unconnected socket."""
        if self.state == LISTENING:
            while self.backlog:
                self.backlog.popleft().release()
        peer = self.peer
        if peer is not None and not peer.released:
            peer.error = abi.ECONNRESET
            peer.shut = SHUTDOWN_MASK
            peer.notify()
        self.peer = None
        self.peer_addr = None
        self.state = UNCONNECTED
        self.in_progress = self.failed = False
        self.shut = 0
        for seg in self.rx:
            if seg.anc is not None:
                seg.anc.drop()
        self.rx.clear()
        self.rx_bytes = 0
        self.notify()

    def shutdown(self, how: int) -> None:
        if how not in (abi.SHUT_RD, abi.SHUT_WR, abi.SHUT_RDWR):
            raise fail(abi.EINVAL)
        if self.state != CONNECTED and self.tcp_like:
            raise fail(abi.ENOTCONN)
        mask = {abi.SHUT_RD: RCV_SHUTDOWN, abi.SHUT_WR: SEND_SHUTDOWN,
                abi.SHUT_RDWR: SHUTDOWN_MASK}[how]
        self.shut |= mask
        peer = self.peer
        if peer is not None and not peer.released:
            if mask & SEND_SHUTDOWN:
                peer.shut |= RCV_SHUTDOWN
            if mask & RCV_SHUTDOWN and not self.tcp_like:
                peer.shut |= SEND_SHUTDOWN
            peer.notify()
        self.notify()

    def closed(self) -> None:
        # Unaccepted connections die with their listener.
        while self.backlog:
            child = self.backlog.popleft()
            child.release()
        peer = self.peer
        if peer is not None and not peer.released:
            reset = bool(self.rx) or (self.tcp_like and self.linger == (1, 0))
            if reset:
                peer.error = abi.ECONNRESET
            if self.tcp_like and not reset:
                peer.shut |= RCV_SHUTDOWN
                peer.peer_closed = True
            else:
                peer.shut = SHUTDOWN_MASK
            peer.notify()
        for seg in self.rx:
            if seg.anc is not None:
                seg.anc.drop()
        self.rx.clear()
        self.rx_bytes = 0
        if self.local is not None:
            self.unbind()

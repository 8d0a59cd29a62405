"""The control socket: requests from outside, served on the kernel's thread.

Theory of operation
-------------------
``pysentry run --control unix:PATH`` (or ``tcp:127.0.0.1:PORT``) opens a
listening socket; clients send one JSON request per line and get one JSON
answer per line (the meaning of requests is :mod:`jshooks.control`).

Everything here runs on the kernel's one thread, because that is the only
thread allowed to touch the kernel and the hook engine (QuickJS is not
thread-safe, and the CPU glue holds the GIL while guest code runs, so a
second thread would mostly wait anyway). The sockets are non-blocking and
looked at in two places:

* between time slices, through :attr:`Kernel.safe_point`: at most every
  :data:`POLL_INTERVAL_NS`, a ``poll`` that does not wait. While the server
  is open the scheduler limits every slice (it watches the server's
  descriptors, see :meth:`Scheduler.watch_host_fd`), so a guest that spins
  without syscalls still comes back to the kernel every few milliseconds;
* while every task waits on the host, the scheduler's wait on the host includes
  the listening socket and every connection, and calls :meth:`serve` when
  one is readable.

A connection reads into a buffer and answers every complete line. A line
longer than :data:`MAX_REQUEST` gets an error answer and the connection is
closed once the client stops sending (the rest of its data is read and
dropped, so the answer is not lost to a reset). A client that goes away in
the middle of a line is forgotten. Answers a client does not read pile up to
:data:`MAX_PENDING_OUTPUT`, then the connection is dropped. Nothing a client
does raises out of this module: the guest never notices.

``detach`` ends the server: after its answer is sent the sockets close, the
kernel forgets the safe point and the scheduler stops limiting slices.

The module also holds what both sockets share: addresses
(:func:`parse_address`), listening (:func:`listen`, unix sockets mode 0600)
and connecting (:func:`connect`).
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import stat
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from jshooks.control import Requests
    from sentry.kernel import Kernel
    from sentry.task import Task

# The longest request line, in bytes (a script sent with change-state).
MAX_REQUEST = 1 << 20
# Answers waiting for a client that does not read them, in bytes.
MAX_PENDING_OUTPUT = 4 << 20
# Clients connected at once.
MAX_CLIENTS = 16
# How often the safe point looks at the sockets while the guest runs.
POLL_INTERVAL_NS = 2_000_000
# How long the last answers (detach, the end of the run) may take to leave.
FLUSH_TIMEOUT_S = 1.0


class ControlError(Exception):
    """A socket cannot be set up; the message is one line."""


# --- addresses ---------------------------------------------------------------


@attrs.frozen
class Address:
    """``unix:PATH`` or ``tcp:HOST:PORT``."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.kind == "unix":
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """``unix:PATH``, ``tcp:HOST:PORT``, or the config file's forms: a path
    (it has a ``/``) or ``HOST:PORT``. ValueError names the problem."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError(f"no path in {text!r}")
        return Address("unix", path=path)
    rest = text[4:] if text.startswith("tcp:") else text
    if not text.startswith("tcp:") and "/" in text:
        return Address("unix", path=text)
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected unix:PATH or tcp:HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Address("tcp", host=host, port=int(port_text))


def listen(address: Address) -> socket.socket:
    """A non-blocking listening socket at ``address``; a unix socket gets
    mode 0600 and replaces a stale socket file (one nobody listens on)."""
    try:
        if address.kind == "unix":
            return _listen_unix(address.path)
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address.host, address.port))
            sock.listen(16)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ControlError(
            f"cannot listen on {address}: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


def _listen_unix(path: str) -> socket.socket:
    if len(os.fsencode(path)) > 107:
        raise OSError(0, "the path is longer than a unix socket address holds")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(0, "a file that is not a socket is in the way")
        if _someone_listens(path):
            raise OSError(0, "another server listens there")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bind under a umask that leaves the socket to its owner from the start.
    old = os.umask(0o177)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


def _someone_listens(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def connect(address: Address, timeout: float | None = 5.0) -> socket.socket:
    """A blocking connection to ``address``; OSError if nobody listens."""
    if address.kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = address.path
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (address.host, address.port)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def bound_address(sock: socket.socket, address: Address) -> Address:
    """``address`` with the port the system chose for port 0."""
    if address.kind == "tcp":
        return attrs.evolve(address, port=sock.getsockname()[1])
    return address


# --- counting syscalls for status -----------------------------------------------


class CountingTracer:
    """Counts finished syscalls by number and passes every event on to the
    tracer it wraps (strace, the log stream), if any."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.counts: dict[int, int] = {}

    def enter(self, task: Task, regs: Sequence[int]) -> None:
        if self.inner is not None:
            self.inner.enter(task, regs)

    def exit(self, task: Task, regs: Sequence[int], result: int | None) -> None:
        nr = regs[0]
        self.counts[nr] = self.counts.get(nr, 0) + 1
        if self.inner is not None:
            self.inner.exit(task, regs, result)

    def forget(self, task: Task) -> None:
        if self.inner is not None:
            self.inner.forget(task)

    def killed(self, task: Task, signo: int) -> None:
        if self.inner is not None:
            self.inner.killed(task, signo)


# --- the server ------------------------------------------------------------------


@attrs.define(eq=False)
class _Client:
    sock: socket.socket
    inbuf: bytearray = attrs.Factory(bytearray)
    outbuf: bytearray = attrs.Factory(bytearray)
    # Told it sent too much: its input is read and dropped until it closes.
    draining: bool = False


class ControlServer:
    """The listening socket and its clients, served at the kernel's safe
    points (see the module docstring)."""

    def __init__(
        self, kernel: Kernel, requests: Requests, sock: socket.socket, address: Address
    ) -> None:
        self.kernel = kernel
        self.requests = requests
        self.address = address
        self._sock = sock
        self._clients: dict[int, _Client] = {}
        self._last_poll = 0
        self._detaching = False
        self.closed = False

    @classmethod
    def open(
        cls, kernel: Kernel, address: Address, requests: Requests
    ) -> ControlServer:
        """Listen at ``address`` (ControlError if that cannot be done)."""
        if not address.is_loopback:
            raise ControlError(
                f"the control socket listens on loopback addresses only, not {address}"
            )
        sock = listen(address)
        return cls(kernel, requests, sock, bound_address(sock, address))

    def start(self) -> None:
        """Serve from now on: at safe points, and while every task waits."""
        self.kernel.safe_point = self.poll
        self.kernel.sched.watch_host_fd(self._sock.fileno(), self.serve)

    # --- serving ------------------------------------------------------------------

    def poll(self) -> None:
        """The kernel's safe point: serve if the last look is old enough."""
        now = time.monotonic_ns()
        if now - self._last_poll >= POLL_INTERVAL_NS:
            self._last_poll = now
            self.serve()

    def serve(self) -> None:
        """Accept, read and answer whatever is ready now, without waiting."""
        if self.closed:
            return
        # poll, not select: the sandbox may hold descriptors past 1024.
        poller = select.poll()
        listener = self._sock.fileno()
        poller.register(listener, select.POLLIN)
        for fd, client in self._clients.items():
            poller.register(
                fd, select.POLLIN | (select.POLLOUT if client.outbuf else 0)
            )
        ready = poller.poll(0)
        for fd, events in ready:
            client = self._clients.get(fd)
            if client is None:
                continue
            if events & select.POLLOUT:
                self._flush(client)
            # A hang-up or an error shows when reading: recv says so.
            if events & ~select.POLLOUT and self._clients.get(fd) is client:
                self._read(client)
        # New clients last, once those that left have made room.
        if any(fd == listener for fd, _ in ready):
            self._accept()
        if self._detaching:
            self.close()

    def _accept(self) -> None:
        try:
            sock, _ = self._sock.accept()
        except OSError:
            return
        sock.setblocking(False)
        client = _Client(sock)
        if len(self._clients) >= MAX_CLIENTS:
            client.outbuf += self.requests_error(
                f"too many clients (at most {MAX_CLIENTS})"
            )
            self._flush(client)
            sock.close()
            return
        self._clients[sock.fileno()] = client
        self.kernel.sched.watch_host_fd(sock.fileno(), self.serve)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        if not data:
            # The client left, perhaps in the middle of a request: forget it.
            self._drop(client)
            return
        if client.draining:
            return
        client.inbuf += data
        while not self._detaching:
            end = client.inbuf.find(b"\n")
            if end < 0 or end > MAX_REQUEST:
                break
            line = bytes(client.inbuf[:end])
            del client.inbuf[: end + 1]
            if line.strip():
                client.outbuf += self.requests.answer(line)
                self._detaching = self.requests.detached
        if len(client.inbuf) > MAX_REQUEST and not self._detaching:
            client.outbuf += self.requests_error(
                f"request longer than {MAX_REQUEST} bytes; closing the connection"
            )
            client.inbuf.clear()
            client.draining = True
            self._flush(client)
            try:
                client.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        """Send what the socket takes now; drop a client that reads nothing."""
        while client.outbuf:
            try:
                sent = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(client)
                return
            del client.outbuf[:sent]
        if len(client.outbuf) > MAX_PENDING_OUTPUT:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if self._clients.get(fd) is client:
            del self._clients[fd]
            self.kernel.sched.watch_host_fd(fd, None)
        client.sock.close()

    @staticmethod
    def requests_error(message: str) -> bytes:
        from jshooks.control import encode

        return encode({"type": "error", "message": message})

    # --- the end ----------------------------------------------------------------

    def close(self) -> None:
        """Send the answers still waiting (briefly), then close everything."""
        if self.closed:
            return
        self.closed = True
        if self.kernel.safe_point == self.poll:
            self.kernel.safe_point = None
        self.kernel.sched.watch_host_fd(self._sock.fileno(), None)
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        for client in list(self._clients.values()):
            self._send_rest(client, deadline)
            self._drop(client)
        self._sock.close()
        if self.address.kind == "unix":
            try:
                os.unlink(self.address.path)
            except OSError:
                pass

    def _send_rest(self, client: _Client, deadline: float) -> None:
        try:
            client.sock.setblocking(True)
            while client.outbuf:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                client.sock.settimeout(left)
                sent = client.sock.send(client.outbuf)
                del client.outbuf[:sent]
        except OSError:
            return


def announce(server: ControlServer, token: str | None, generated: bool) -> None:
    """Tell the user where the control socket is (and a generated token)."""
    tail = f" (token {token})" if generated and token else ""
    sys.stderr.write(f"pysentry: control socket at {server.address}{tail}\n")
    sys.stderr.flush()

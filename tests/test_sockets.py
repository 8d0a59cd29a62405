"""Sockets: Unix sockets, the sandbox's loopback, and the host network.

The C programs in testdata/ (sock_unix, sock_inet) run natively and under
the sandbox and must print the same: the sandbox's own loopback answers as
the host's does. The network policy is checked against servers this module
starts on the host: with ``--net none`` (the default) they are out of reach;
with ``--net host`` a guest client talks to them, within what
``--allow-connect`` and ``--allow-bind`` allow. Busybox's nc and wget run as
real clients (and nc as a server) the same way.
"""

from __future__ import annotations

import http.server
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_same, run_sandbox, skip_unless_exists, tail

BUSYBOX = "/bin/busybox"


# --- servers on the host -----------------------------------------------------


class _Upper(socketserver.StreamRequestHandler):
    """Read until end of file, answer with the same bytes in upper case."""

    def handle(self) -> None:
        data = self.rfile.read()
        self.wfile.write(data.upper())


class _UpperUdp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data.upper(), self.client_address)


def _serve(server: socketserver.BaseServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tcp_server() -> Iterator[int]:
    """An upper-casing TCP server on the host's 127.0.0.1; yields its port."""
    socketserver.TCPServer.allow_reuse_address = True
    yield from _serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Upper))


@pytest.fixture
def udp_server() -> Iterator[int]:
    yield from _serve(socketserver.UDPServer(("127.0.0.1", 0), _UpperUdp))


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[int]:
    """A static HTTP server on the host's loopback serving ``tmp_path``."""
    (tmp_path / "hello.txt").write_text("hello over http\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(tmp_path), **kw)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_address() -> str:
    """A non-loopback address of this host (a documentation one if none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
        except OSError:
            address = "0.0.0.0"
    return address if not address.startswith(("127.", "0.")) else "192.0.2.1"


# --- differential programs ---------------------------------------------------


@pytest.mark.parametrize("flavour", ["static", "musl"])
def test_unix_sockets_match_native(build, flavour):
    assert_same(build("sock_unix", flavour))


def test_unix_socket_names_in_a_bound_host_directory(build, tmp_path):
    """Path names bound in a --bind directory are socket nodes on the host
    too; the sockets behind them stay the sandbox's own."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    assert_same(build("sock_unix"), [], ["--bind", f"{tmp_path}:{tmp_path}"], env=env)


@pytest.mark.parametrize("flavour", ["static", "musl"])
def test_loopback_tcp_and_udp_match_native(build, flavour):
    assert_same(build("sock_inet", flavour))


# --- --net none ----------------------------------------------------------------


def test_net_none_cannot_reach_a_host_service(build, tcp_server):
    # The host's service listens on every address; the guest reaches neither
    # the host's addresses (no route) nor its loopback (the sandbox has its own).
    host = _host_address()
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        done = run_sandbox(build("sock_client"), [host, str(port), "hi"])
    assert "connect(fd, (struct sockaddr *)&ss, len): -1 ENETUNREACH" in done.stdout, done
    done = run_sandbox(build("sock_client"), ["127.0.0.1", str(tcp_server), "hi"])
    assert "connect(fd, (struct sockaddr *)&ss, len): -1 ECONNREFUSED" in done.stdout, done
    assert "reply" not in done.stdout


def test_net_none_udp_to_the_outside_is_enetunreach(build):
    done = run_sandbox(build("sock_client"), ["-u", "192.0.2.1", "53", "q"])
    assert "-1 ENETUNREACH" in done.stdout, done


def test_allow_lists_need_net_host(build):
    done = run_sandbox(build("sock_client"), ["-b", "1"],
                       ["--allow-connect", "127.0.0.1:80"])
    assert done.returncode == 2
    assert "need --net host" in done.stderr


# --- --net host ----------------------------------------------------------------


def test_net_host_client_talks_to_a_host_server(build, tcp_server):
    done = run_sandbox(build("sock_client"), ["127.0.0.1", str(tcp_server), "hello"],
                       ["--net", "host"])
    assert "reply: HELLO" in done.stdout, tail(done.stderr)
    assert done.returncode == 0


def test_net_host_udp_round_trip(build, udp_server):
    done = run_sandbox(build("sock_client"), ["-u", "127.0.0.1", str(udp_server),
                                              "ping"], ["--net", "host"])
    assert "reply: PING" in done.stdout, tail(done.stderr)


def test_allow_connect_refuses_what_is_not_listed(build, tcp_server):
    program = build("sock_client")
    listed = ["--net", "host", "--allow-connect", f"127.0.0.1:{tcp_server}"]
    done = run_sandbox(program, ["127.0.0.1", str(tcp_server), "ok"], listed)
    assert "reply: OK" in done.stdout, tail(done.stderr)
    other = ["--net", "host", "--allow-connect", f"127.0.0.1:{_free_port()}"]
    done = run_sandbox(program, ["127.0.0.1", str(tcp_server), "no"], other)
    assert "connect(fd, (struct sockaddr *)&ss, len): -1 ECONNREFUSED" in done.stdout
    assert "reply" not in done.stdout


def test_allow_bind_refuses_other_ports(build):
    program = build("sock_client")
    allowed, other = _free_port(), _free_port()
    opts = ["--net", "host", "--allow-bind", str(allowed)]
    done = run_sandbox(program, ["-b", str(other)], opts)
    assert "bind(fd, (struct sockaddr *)&a, sizeof(a)): -1 EACCES" in done.stdout
    done = run_sandbox(program, ["-b", str(allowed)], opts)
    assert "listen(fd, 1): 0" in done.stdout, done


# --- busybox -------------------------------------------------------------------


@skip_unless_exists(BUSYBOX)
def test_busybox_nc_client_and_server_inside_the_sandbox():
    # nc listens and nc connects, both guests, over the sandbox's loopback.
    script = (
        f"{BUSYBOX} nc -l -p 7777 > /tmp/got & "
        f"while ! echo 'through nc' | {BUSYBOX} nc 127.0.0.1 7777; do "
        f"{BUSYBOX} usleep 20000; done; wait; {BUSYBOX} cat /tmp/got"
    )
    done = run_sandbox(BUSYBOX, ["sh", "-c", script], timeout=60)
    assert done.stdout == "through nc\n", tail(done.stderr)


@skip_unless_exists(BUSYBOX)
def test_busybox_nc_reaches_a_host_server_with_net_host(tcp_server):
    done = run_sandbox(BUSYBOX, ["nc", "127.0.0.1", str(tcp_server)],
                       ["--net", "host"], input="from nc\n", stdin=None)
    assert done.stdout == "FROM NC\n", tail(done.stderr)


@skip_unless_exists(BUSYBOX)
def test_busybox_wget_fetches_from_a_host_http_server(http_server):
    url = f"http://127.0.0.1:{http_server}/hello.txt"
    done = run_sandbox(BUSYBOX, ["wget", "-q", "-O", "-", url], ["--net", "host"])
    assert done.stdout == "hello over http\n", tail(done.stderr)
    assert done.returncode == 0


@skip_unless_exists(BUSYBOX)
def test_busybox_wget_cannot_reach_the_host_with_net_none(http_server):
    url = f"http://127.0.0.1:{http_server}/hello.txt"
    done = run_sandbox(BUSYBOX, ["wget", "-q", "-O", "-", url])
    assert done.returncode != 0
    assert done.stdout == ""


# --- strace --------------------------------------------------------------------


def test_strace_decodes_socket_calls(build, tmp_path):
    trace = tmp_path / "trace"
    done = run_sandbox(build("sock_unix"), [], [f"--strace={trace}"])
    assert done.returncode == 0, tail(done.stderr)
    text = trace.read_text()
    assert "socketpair(AF_UNIX, SOCK_STREAM, 0, [3, 4]) = 0" in text
    assert "cmsg_type=SCM_RIGHTS, cmsg_data=[" in text
    assert "cmsg_type=SCM_CREDENTIALS, cmsg_data={pid=1, uid=" in text
    assert "SOL_SOCKET, SO_PEERCRED, {pid=" in text
    assert 'bind(4<socket:[' in text and 'sun_path="/tmp/pysentry-sock-' in text
    assert "connect(" in text and "= -1 ECONNREFUSED (Connection refused)" in text


def test_net_host_matches_native_on_the_host_loopback(build):
    # The same program against the host's own loopback through host sockets.
    assert_same(build("sock_inet"), [], ["--net", "host"])


# --- hook examples against real servers ----------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hooks"


@skip_unless_exists(BUSYBOX)
def test_hook_rewrites_a_request_between_wget_and_httpd(tmp_path):
    # wget asks httpd (both guests) for index.html; the hook rewrites the
    # request line on its way out, so the rewritten page comes back.
    (tmp_path / "index.html").write_text("the index\n")
    (tmp_path / "rewritten.html").write_text("the rewritten page\n")
    script = (
        f"{BUSYBOX} httpd -f -p 127.0.0.1:8080 -h {tmp_path} & "
        f"until {BUSYBOX} wget -q -O - http://127.0.0.1:8080/index.html 2>/dev/null; "
        f"do {BUSYBOX} usleep 20000; done; kill %1"
    )
    done = run_sandbox(BUSYBOX, ["sh", "-c", script],
                       ["--hooks", str(EXAMPLES / "rewrite_request.js")], timeout=60)
    assert done.stdout == "the rewritten page\n", tail(done.stderr)


@skip_unless_exists(BUSYBOX)
def test_hook_fails_the_bind_of_a_real_server():
    done = run_sandbox(BUSYBOX, ["nc", "-l", "-p", "7777"],
                       ["--hooks", str(EXAMPLES / "bind_eaddrinuse.js")])
    assert done.returncode != 0
    assert "Address already in use" in done.stderr


# --- no Python exception escapes ------------------------------------------------

_SOCKET_CALLS = ["socket", "socketpair", "bind", "listen", "accept", "accept4",
                 "connect", "shutdown", "getsockname", "getpeername", "getsockopt",
                 "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
                 "sendmmsg", "recvmmsg", "read", "write", "close", "ioctl"]


def _socket_fuzz_kernel(exe: str, workdir: str, net: str):  # type: ignore[no-untyped-def]
    """A kernel whose task holds sockets of every kind in descriptors 3-9 and
    socket addresses, a msghdr and option values in a scratch page."""
    import struct

    from sentry import abi
    from sentry.boot import start
    from sentry.kernel import Options
    from sentry.net.policy import NetPolicy

    options = Options(cwd=workdir, net=NetPolicy(net))
    kernel, task, _entry, _sp = start(options, exe, [], [])
    kernel.current = task
    base = 0x10000000
    task.mm.map(base, 0x2000, abi.PROT_READ | abi.PROT_WRITE,
                abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, fixed=True)
    unix_path = struct.pack("<H", abi.AF_UNIX) + f"{workdir}/s".encode() + b"\0"
    inet = struct.pack("<H", abi.AF_INET) + struct.pack(">H", 5555) + bytes(
        [127, 0, 0, 1]) + bytes(8)
    msghdr = struct.pack("<QI4xQQQQi4x", base, 16, base + 0x100, 1, base + 0x200,
                         24, 0)
    iov = struct.pack("<QQ", base + 0x300, 16)
    cmsg = struct.pack("<Qii", 20, abi.SOL_SOCKET, abi.SCM_RIGHTS) + struct.pack(
        "<i", 3)
    task.mm.write(base, inet)
    task.mm.write(base + 0x40, unix_path)
    task.mm.write(base + 0xC0, struct.pack("<ii", 16, 1))
    task.mm.write(base + 0x100, iov)
    task.mm.write(base + 0x200, cmsg)
    task.mm.write(base + 0x400, msghdr)
    net = kernel.net
    fds = task.process.fds
    a, b = net.socketpair(kernel, abi.AF_UNIX, abi.SOCK_STREAM, 0, abi.O_NONBLOCK)
    c, d = net.socketpair(kernel, abi.AF_UNIX, abi.SOCK_DGRAM, 0, abi.O_NONBLOCK)
    for sock in (a, b, c, d):
        fds.install(sock)
    for family, kind in ((abi.AF_INET, abi.SOCK_STREAM), (abi.AF_INET6, abi.SOCK_DGRAM),
                         (abi.AF_UNIX, abi.SOCK_SEQPACKET)):
        fds.install(net.socket(kernel, family, kind, 0, abi.O_NONBLOCK))
    return kernel, base


@pytest.mark.parametrize("net", ["none", "host"])
def test_random_socket_calls_raise_no_python_exception(build, tmp_path, net):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from sentry.sysno import SYSCALL_NUMBERS

    exe = str(build("sock_client"))
    state = {"kernel": None}

    def kernel():  # type: ignore[no-untyped-def]
        k = state["kernel"]
        if k is None or k[0].current is None or k[0].current.exited:
            k = _socket_fuzz_kernel(exe, str(tmp_path), net)
            state["kernel"] = k
        k[0].kernel_bug = None
        return k

    pointers = st.sampled_from([0x10000000 + off for off in
                                (0, 0x40, 0xC0, 0xC4, 0x100, 0x400, 0x1FFC)])
    arg = st.one_of(st.integers(0, 12), pointers, st.sampled_from([
        0, 1, 2, 16, 24, 110, 128, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 1 << 31, 0x800,
        0x80800, 0x4000]))

    @settings(max_examples=600, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(name=st.sampled_from(_SOCKET_CALLS), args=st.lists(arg, min_size=6,
                                                              max_size=6))
    def check(name, args):  # type: ignore[no-untyped-def]
        k, _base = kernel()
        k._dispatch([SYSCALL_NUMBERS[name], *args, 0x401000])
        assert k.kernel_bug is None, repr(k.kernel_bug.__cause__)
        # A parked task is woken at once: the next call runs on a live task.
        if k.sched.is_waiting(k.current):
            state["kernel"] = None

    check()


def test_timeouts_signals_and_file_calls_on_sockets_match_native(build):
    assert_same(build("sock_misc"))


@pytest.mark.parametrize("flavour", ["static", "musl"])
def test_localhost_resolves_through_etc_hosts(build, flavour):
    # The libc's resolver reads /etc/hosts through the VFS.
    assert_same(build("sock_misc", flavour), ["names"])


# --- name resolution over DNS ---------------------------------------------------


class _Dns(socketserver.BaseRequestHandler):
    """Answer every A query with 10.9.8.7 (one question, one answer)."""

    def handle(self) -> None:
        import struct

        query, sock = self.request
        ident, _flags, qdcount = struct.unpack_from(">HHH", query)
        end = 12
        while query[end]:
            end += query[end] + 1
        question = query[12: end + 5]
        qtype = struct.unpack_from(">H", query, end + 1)[0]
        answers = 1 if qtype == 1 else 0
        head = struct.pack(">HHHHHH", ident, 0x8180, qdcount, answers, 0, 0)
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 9, 8, 7])
        sock.sendto(head + question + (answer if answers else b""), self.client_address)


@pytest.fixture
def dns_etc(tmp_path: Path) -> Iterator[Path]:
    """A DNS server on the host's 127.0.0.1:53 and an /etc that points to it."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    try:
        server = socketserver.UDPServer(("127.0.0.1", 53), _Dns)
    except OSError:
        pytest.skip("cannot serve DNS on 127.0.0.1:53 here")
    for _port in _serve(server):
        yield etc


def test_dns_over_udp_when_the_policy_lets_it_out(build, dns_etc):
    program = build("sock_client", "musl")
    etc = ["--bind", f"{dns_etc}:/etc:ro"]
    done = run_sandbox(program, ["-r", "example.test"], [*etc, "--net", "host"])
    assert done.stdout == "getaddrinfo: OK\naddress: 10.9.8.7\n", tail(done.stderr)
    listed = [*etc, "--net", "host", "--allow-connect", "127.0.0.1:53"]
    done = run_sandbox(program, ["-r", "example.test"], listed)
    assert "address: 10.9.8.7" in done.stdout
    # Not listed, or --net none: the query never leaves and the name is unknown.
    other = [*etc, "--net", "host", "--allow-connect", "127.0.0.1:80"]
    for opts in (other, etc):
        done = run_sandbox(program, ["-r", "example.test"], opts)
        assert done.stdout.startswith("getaddrinfo: ") and "OK" not in done.stdout

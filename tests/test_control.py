"""The control socket: steering a running guest from outside.

Each test starts testdata/control_loop.c under ``pysentry run --control``,
talks to the socket (raw JSON lines, or the ``pysentry hooks`` client) while
the guest runs, and reads what the guest prints. ``tick`` mode prints
getppid's answer every 10 ms, so a hook on getppid shows in its output within
a few lines; the guest stops when the test creates its stop file.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Builder, sandbox_env

WAIT = 30.0  # seconds any one expected event may take


@pytest.fixture(scope="module")
def loop(build: Builder) -> Path:
    return build("control_loop")


class Guest:
    """A sandbox running in the background, its output read line by line."""

    def __init__(self, command: list[str], stdin: Any = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=sandbox_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        self._err_lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.lines), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(self.proc.stderr, self._err_lines), daemon=True
        ).start()

    @staticmethod
    def _pump(stream: Any, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    def wait_line(self, pred: Callable[[str], bool], what: str) -> str:
        """The next stdout line for which ``pred`` holds."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if pred(line):
                return line
        pytest.fail(
            f"no line {what}; last lines: {self.seen[-5:]}; "
            f"stderr: {self.stderr_lines()}"
        )

    def stderr_line(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self._err_lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.errors.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        pytest.fail(f"no stderr line like {pattern!r}: {self.errors}")

    def stderr_lines(self) -> list[str]:
        while not self._err_lines.empty():
            self.errors.append(self._err_lines.get())
        return self.errors

    def finish(self) -> int:
        try:
            status = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("the guest did not finish")
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        self.stderr_lines()
        return status


def ticks(guest: Guest, ppid: int, count: int = 3) -> None:
    """Wait for ``count`` consecutive tick lines showing ``ppid``."""
    for _ in range(count):
        guest.wait_line(
            lambda line: line.startswith("tick ") and line.split()[2] == str(ppid),
            f"tick ... {ppid}",
        )


@contextmanager
def running(
    loop: Path,
    tmp_path: Path,
    args: Sequence[str] | None = None,
    opts: Sequence[str] = (),
    control: str | None = None,
    stdin: Any = subprocess.DEVNULL,
) -> Iterator[tuple[Guest, str]]:
    """Run control_loop (``tick STOPFILE`` by default) with a control socket;
    yields the guest and the socket's address; stops it at the end."""
    stop = tmp_path / "stop"
    address = control or f"unix:{tmp_path / 'control.sock'}"
    argv = ["tick", str(stop)] if args is None else list(args)
    command = [
        sys.executable,
        "-m",
        "sentry",
        "run",
        "--control",
        address,
        *opts,
        str(loop),
        *argv,
    ]
    guest = Guest(command, stdin)
    try:
        m = guest.stderr_line(r"control socket at (\S+)")
        yield guest, m.group(1)
    finally:
        stop.touch()
        if guest.proc.poll() is None:
            try:
                guest.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                guest.proc.kill()


def unix_path(address: str) -> str:
    assert address.startswith("unix:")
    return address[5:]


def connect(address: str) -> socket.socket:
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address[5:])
    else:
        host, port = address[4:].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    sock.settimeout(WAIT)
    return sock


def read_line(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        assert chunk, "the server closed the connection"
        data += chunk
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


def request(address: str, req: dict[str, Any]) -> dict[str, Any]:
    with connect(address) as sock:
        sock.sendall(json.dumps(req).encode() + b"\n")
        return read_line(sock)


def client(
    address: str, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``pysentry hooks ARGS`` against ``address``."""
    env = sandbox_env()
    env["PYSENTRY_CONTROL"] = address
    if token is not None:
        env["PYSENTRY_CONTROL_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sentry", "hooks", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
    )


GETPPID_4242 = 'hooks.after("getppid", () => ({ ret: 4242, errno: 0 }));\n'


# --- steering the guest -------------------------------------------------------------


def test_hooks_loaded_through_the_socket_change_the_guest_and_removing_them_restores_it(
    loop: Path, tmp_path: Path
) -> None:
    script = tmp_path / "ppid.js"
    script.write_text(GETPPID_4242)
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0)

        loaded = client(address, "load", str(script))
        assert loaded.returncode == 0, loaded.stderr
        assert "1 callbacks registered" in loaded.stdout
        ticks(guest, 4242)

        listed = client(address, "list")
        assert listed.returncode == 0
        assert re.search(r"^\d+\s+after\s+getppid\s+", listed.stdout, re.M), (
            listed.stdout
        )

        removed = client(address, "remove", "getppid", "after")
        assert removed.returncode == 0
        assert "1 callbacks removed" in removed.stdout
        ticks(guest, 0)
        assert client(address, "list").stdout.strip() == "no callbacks"
    assert guest.finish() == 0


def test_hooks_loaded_at_start_are_listed_and_removed_with_all(
    loop: Path, tmp_path: Path
) -> None:
    start = tmp_path / "start.js"
    start.write_text(GETPPID_4242 + 'hooks.before("access", function probe() {});\n')
    with running(loop, tmp_path, opts=["--hooks", str(start)]) as (guest, address):
        ticks(guest, 4242)
        listed = json.loads(client(address, "list", "--json").stdout)
        assert listed["type"] == "ok"
        hooks = {(h["syscall"], h["type"]): h for h in listed["payload"]}
        assert set(hooks) == {("getppid", "after"), ("access", "before")}
        assert hooks[("getppid", "after")]["sysno"] == 110
        assert "4242" in hooks[("getppid", "after")]["source"]
        assert hooks[("access", "before")]["name"] == "probe"
        assert hooks[("access", "before")]["where"] == f"{start}:2"

        removed = json.loads(client(address, "remove", "--all", "--json").stdout)
        assert removed["payload"] == {"removed": 2}
        ticks(guest, 0)
    assert guest.finish() == 0


def test_change_state_can_replace_a_hook_and_remove_by_number(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0)
        first = request(address, {"type": "change-state", "source": GETPPID_4242})
        assert first["type"] == "ok", first
        ticks(guest, 4242)
        # A second script stacks after the first; its result wins.
        second = request(
            address,
            {
                "type": "change-state",
                "source": "hooks.AddCbAfter(110, () => ({ret: 7, errno: 0}));",
            },
        )
        assert second["type"] == "ok"
        assert second["payload"][0]["name"] == "anonymous"
        ticks(guest, 7)
        answer = request(
            address,
            {
                "type": "unregister-hooks",
                "options": "list",
                "list": [{"sysno": 110, "type": "after"}],
            },
        )
        assert answer == {
            "type": "ok",
            "message": "2 callbacks removed",
            "payload": {"removed": 2},
        }
        ticks(guest, 0)
    assert guest.finish() == 0


def test_a_hook_on_several_syscalls_stops_watching_only_the_one_removed(
    loop: Path, tmp_path: Path
) -> None:
    source = 'hooks.after(["getppid", "getpid"], () => ({ ret: 4242, errno: 0 }));'
    with running(loop, tmp_path) as (guest, address):
        assert (
            request(address, {"type": "change-state", "source": source})["type"] == "ok"
        )
        ticks(guest, 4242)
        answer = request(
            address,
            {
                "type": "unregister-callbacks",
                "options": "list",
                "list": [{"sysno": "getppid", "type": "after"}],
            },
        )
        assert answer["payload"] == {"removed": 1}
        ticks(guest, 0)
        left = request(address, {"type": "current-hooks"})["payload"]
        assert [(h["syscall"], h["sysno"]) for h in left] == [("getpid", 39)]
    assert guest.finish() == 0


def test_detach_drops_the_hooks_and_the_program_runs_on_untouched(
    loop: Path, tmp_path: Path
) -> None:
    script = GETPPID_4242 + 'hooks.onExit(() => print("ONEXIT RAN"));\n'
    start = tmp_path / "start.js"
    start.write_text(script)
    with running(loop, tmp_path, opts=["--hooks", str(start)]) as (guest, address):
        ticks(guest, 4242)
        detached = client(address, "detach")
        assert detached.returncode == 0, detached.stderr
        assert "detached" in detached.stdout
        ticks(guest, 0)
        # The server is gone: its socket file too.
        assert not Path(unix_path(address)).exists()
    assert guest.finish() == 0
    assert "ONEXIT RAN" not in "\n".join(guest.errors)


def test_status_reports_tasks_syscall_counts_and_uptime(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0, 5)
        answer = request(address, {"type": "status", "id": 17})
        assert answer["type"] == "ok" and answer["id"] == 17
        status = answer["payload"]
        # Asleep in nanosleep, or just back from it.
        assert status["tasks"][0]["state"] in ("S", "R")
        assert status["tasks"] == [
            {
                "pid": 1,
                "tid": 1,
                "ppid": 0,
                "name": "control_loop",
                "state": status["tasks"][0]["state"],
            }
        ]
        assert status["syscalls"]["by_name"]["getppid"] >= 5
        assert status["syscalls"]["total"] >= sum(
            status["syscalls"]["by_name"][n] for n in ("getppid", "write")
        )
        assert status["uptime_s"] > 0
        text = client(address, "status").stdout
        assert re.search(r"^\s+1\s+1\s+0 [SR] control_loop$", text, re.M), text
        assert re.search(r"^\s+\d+ getppid$", text, re.M)
    assert guest.finish() == 0


def test_hooks_info_describes_every_function_scripts_see(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path) as (guest, address):
        info = request(address, {"type": "accessors-info"})
        assert info["type"] == "ok"
        names = {fn["name"] for fn in info["payload"]}
        for fn in info["payload"]:
            assert fn["description"] and fn["returns"]
            assert all(a["name"] and a["description"] for a in fn["arguments"])
        shown = request(
            address,
            {
                "type": "change-state",
                "source": 'print("KEYS " + JSON.stringify(Object.keys(hooks).sort()));',
            },
        )
        assert shown["type"] == "ok", shown
        keys = json.loads(guest.stderr_line(r"KEYS (.*)").group(1))
        assert names == set(keys)
        text = client(address, "info").stdout
        assert "hooks.readString(addr, maxlen) -> a string" in text
    assert guest.finish() == 0


# --- requests the server refuses ------------------------------------------------------


def test_bad_requests_get_errors_and_the_guest_goes_on(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0)
        with connect(address) as sock:
            # Many requests on one connection, each answered on its own line.
            for line, message in [
                (b"{not json", "not valid JSON"),
                (b"[1, 2]", "a request is a JSON object"),
                (b'{"type": 5}', 'needs a "type" string'),
                (b'{"type": "reboot"}', "unknown request 'reboot'"),
                (b'{"type": "change-state"}', 'needs a "source" string'),
                (
                    b'{"type": "unregister-callbacks", "options": "some"}',
                    '"all" or "list"',
                ),
                (
                    b'{"type": "unregister-callbacks", "options": "list", '
                    b'"list": [{"sysno": "nosuchcall", "type": "after"}]}',
                    "no syscall named",
                ),
                (
                    b'{"type": "change-state", "source": "this is not JS"}',
                    "SyntaxError",
                ),
                (b'{"type": "status", "id": NaN}', "not valid JSON"),
            ]:
                sock.sendall(line + b"\n")
                answer = read_line(sock)
                assert answer["type"] == "error", line
                assert set(answer) == {"type", "message"}
                assert message in answer["message"], answer
            sock.sendall(b'{"type": "status"}\n')
            assert read_line(sock)["type"] == "ok"
        ticks(guest, 0)
    assert guest.finish() == 0
    numbers = [int(line.split()[1]) for line in guest.seen if line.startswith("tick ")]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_answers_stay_valid_json_whatever_the_message_holds(
    loop: Path, tmp_path: Path
) -> None:
    # The script's name is quoted in the error as it was given.
    name = 'evil "name"\n\u2028\x1b\x00\ud800 }{'
    req = {"type": "change-state", "source": 'throw new Error("boom");', "name": name}
    with running(loop, tmp_path) as (guest, address):
        with connect(address) as sock:
            sock.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                data += sock.recv(65536)
        assert data.count(b"\n") == 1
        assert all(32 <= b < 127 for b in data[:-1])
        answer = json.loads(data)
        assert answer["type"] == "error"
        assert answer["message"].startswith(name)
        assert "Error: boom" in answer["message"]
    assert guest.finish() == 0


def test_an_oversized_request_is_refused_and_the_connection_closed(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0)
        with connect(address) as sock:
            blob = b'{"type": "change-state", "source": "' + b"x" * (2 << 20)
            sock.sendall(blob)
            answer = read_line(sock)
            assert answer["type"] == "error"
            assert "longer than 1048576 bytes" in answer["message"]
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(10) == b""
        assert request(address, {"type": "status"})["type"] == "ok"
        ticks(guest, 0)
    assert guest.finish() == 0


def test_a_client_leaving_mid_request_does_not_disturb_the_guest(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0)
        for _ in range(5):
            with connect(address) as sock:
                sock.sendall(b'{"type": "change-state", "source": "hooks.af')
        with connect(address) as sock:
            sock.sendall(b'{"type": "status"}\n')
            sock.close()
        assert request(address, {"type": "current-callbacks"})["payload"] == []
        ticks(guest, 0)
    assert guest.finish() == 0


def test_tcp_needs_the_generated_token_on_every_request(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path, control="tcp:127.0.0.1:0") as (guest, address):
        token = re.search(r"\(token ([0-9a-f]{32})\)", guest.errors[-1]).group(1)
        assert address.startswith("tcp:127.0.0.1:") and not address.endswith(":0")
        assert request(address, {"type": "status"}) == {
            "type": "error",
            "message": "missing or wrong token",
        }
        assert (
            request(address, {"type": "status", "token": "0" * 32})["type"] == "error"
        )
        assert request(address, {"type": "status", "token": 42})["type"] == "error"
        assert request(address, {"type": "status", "token": token})["type"] == "ok"
        refused = client(address, "status")
        assert refused.returncode == 1
        assert "missing or wrong token" in refused.stdout
        assert client(address, "status", token=token).returncode == 0
        assert client(address, "status", "--token", token).returncode == 0
    assert guest.finish() == 0


def test_a_given_token_is_required_and_not_printed(loop: Path, tmp_path: Path) -> None:
    opts = ["--control-token", "s3cret-token"]
    with running(loop, tmp_path, opts=opts) as (guest, address):
        assert "s3cret-token" not in "\n".join(guest.errors)
        assert request(address, {"type": "status"})["type"] == "error"
        assert (
            request(address, {"type": "status", "token": "s3cret-token"})["type"]
            == "ok"
        )
    assert guest.finish() == 0


def test_the_unix_socket_is_private_to_its_owner(loop: Path, tmp_path: Path) -> None:
    with running(loop, tmp_path) as (guest, address):
        st = os.stat(unix_path(address))
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
    assert guest.finish() == 0
    assert not Path(unix_path(address)).exists()


@pytest.mark.parametrize("address", ["tcp:0.0.0.0:0", "tcp:8.8.8.8:9"])
def test_tcp_listens_on_loopback_only(loop: Path, tmp_path: Path, address: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentry",
            "run",
            "--control",
            address,
            str(loop),
            "calls",
            "1",
        ],
        capture_output=True,
        text=True,
        env=sandbox_env(),
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "listens on loopback addresses only" in done.stderr


def test_a_socket_path_in_use_is_not_taken_over(loop: Path, tmp_path: Path) -> None:
    path = tmp_path / "taken.sock"
    path.write_text("not a socket")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentry",
            "run",
            "--control",
            f"unix:{path}",
            str(loop),
            "calls",
            "1",
        ],
        capture_output=True,
        text=True,
        env=sandbox_env(),
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert "cannot listen on" in done.stderr and "not a socket" in done.stderr
    assert path.read_text() == "not a socket"


def test_the_config_runtime_socket_is_served(loop: Path, tmp_path: Path) -> None:
    config = tmp_path / "conf.json"
    sock = tmp_path / "runtime.sock"
    config.write_text(json.dumps({"runtime-socket": str(sock), "callbacks": []}))
    stop = tmp_path / "stop"
    guest = Guest(
        [
            sys.executable,
            "-m",
            "sentry",
            "run",
            "--config",
            str(config),
            str(loop),
            "tick",
            str(stop),
        ]
    )
    try:
        guest.stderr_line(r"control socket at unix:" + re.escape(str(sock)))
        assert request(f"unix:{sock}", {"type": "status"})["type"] == "ok"
    finally:
        stop.touch()
    assert guest.finish() == 0


# --- serving whatever the guest does ------------------------------------------------


def test_a_guest_spinning_without_syscalls_is_still_served(
    loop: Path, tmp_path: Path
) -> None:
    with running(loop, tmp_path, ["spin", str(tmp_path / "stop")]) as (guest, address):
        guest.wait_line(lambda line: line == "spinning", "spinning")
        for _ in range(3):
            started = time.monotonic()
            answer = request(address, {"type": "status"})
            assert answer["type"] == "ok"
            assert answer["payload"]["tasks"][0]["state"] == "R"
            assert time.monotonic() - started < 5
    assert guest.finish() == 0
    assert guest.seen[-1] == "spun yes"


def test_a_guest_waiting_on_the_host_is_served_and_hooks_apply_after(
    loop: Path, tmp_path: Path
) -> None:
    source = (
        'hooks.before("write", function (fd, buf, n) {'
        " if (fd === 1) hooks.writeBytes(buf, [71, 79, 84]); });"
    )
    with running(loop, tmp_path, ["read"], stdin=subprocess.PIPE) as (guest, address):
        assert guest.proc.stdin is not None
        guest.proc.stdin.write("one\n")
        guest.proc.stdin.flush()
        guest.wait_line(lambda line: line == "got one", "got one")
        # The guest now waits in read(0) on the host pipe.
        status = request(address, {"type": "status"})
        assert status["payload"]["tasks"][0]["state"] == "S"
        assert (
            request(address, {"type": "change-state", "source": source})["type"] == "ok"
        )
        guest.proc.stdin.write("two\n")
        guest.proc.stdin.flush()
        guest.wait_line(lambda line: line == "GOT two", "GOT two")
        guest.proc.stdin.close()
    assert guest.finish() == 0


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="/bin/busybox is absent")
def test_a_token_from_the_environment_is_used_and_hidden_from_the_guest(
    tmp_path: Path,
) -> None:
    env = sandbox_env()
    env["PYSENTRY_CONTROL_TOKEN"] = "from-the-env"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentry",
            "run",
            "--control",
            "tcp:127.0.0.1:0",
            "/bin/busybox",
            "sh",
            "-c",
            'echo "token=$PYSENTRY_CONTROL_TOKEN"',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "token=\n"
    assert "control socket at tcp:127.0.0.1:" in done.stderr
    assert "token" not in done.stderr


def test_a_run_without_hooks_gets_an_engine_from_its_first_script(
    loop: Path, tmp_path: Path
) -> None:
    source = GETPPID_4242 + 'hooks.onExit(() => print("ONEXIT " + 1));\n'
    with running(loop, tmp_path) as (guest, address):
        ticks(guest, 0)
        assert request(address, {"type": "current-callbacks"})["payload"] == []
        loaded = request(address, {"type": "change-state", "source": source})
        assert [h["type"] for h in loaded["payload"]] == ["after", "exit"]
        ticks(guest, 4242)
    assert guest.finish() == 0
    assert "ONEXIT 1" in guest.errors


def test_detach_stops_the_log_stream(loop: Path, tmp_path: Path) -> None:
    log = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    log.bind(str(tmp_path / "log.sock"))
    log.listen(1)
    received = bytearray()

    def collect() -> None:
        conn, _ = log.accept()
        while chunk := conn.recv(65536):
            received.extend(chunk)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    opts = ["--log-socket", f"unix:{tmp_path / 'log.sock'}"]
    with running(loop, tmp_path, opts=opts) as (guest, address):
        ticks(guest, 0)
        assert request(address, {"type": "detach"})["type"] == "ok"
        ticks(guest, 0, 10)
    assert guest.finish() == 0
    reader.join(WAIT)
    records = [json.loads(line) for line in received.splitlines()]
    writes = [
        r
        for r in records
        if r["msg"]["LogType"] == "X" and r["msg"]["Syscallname"] == "write"
    ]
    printed = [line for line in guest.seen if line.startswith("tick ")]
    assert 0 < len(writes) <= len(printed) - 10
    assert not [r for r in records if r["msg"]["LogType"] == "T"]


def test_the_client_says_what_is_wrong_with_its_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in sandbox_env().items() if k != "PYSENTRY_CONTROL"}
    hooks = [sys.executable, "-m", "sentry", "hooks"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*hooks, *args], capture_output=True, text=True, env=env, timeout=WAIT
        )

    nowhere = f"unix:{tmp_path / 'nobody.sock'}"
    assert "pass --control ADDR or set $PYSENTRY_CONTROL" in run("status").stderr
    assert "needs --all or SYSNO TYPE" in run("remove", "--control", nowhere).stderr
    assert "needs a TYPE" in run("remove", "openat", "--control", nowhere).stderr
    missing = run("load", str(tmp_path / "none.js"), "--control", nowhere)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unreachable = run("status", "--control", nowhere)
    assert unreachable.returncode == 2
    assert f"cannot reach the sandbox at {nowhere}" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_a_script_can_replace_a_hook_by_its_handle(loop: Path, tmp_path: Path) -> None:
    with running(loop, tmp_path) as (guest, address):
        first = request(address, {"type": "change-state", "source": GETPPID_4242})
        handle = first["payload"][0]["handle"]
        ticks(guest, 4242)
        replace = (
            f"hooks.remove({handle});"
            ' hooks.after("getppid", () => ({ ret: 99, errno: 0 }));'
        )
        second = request(address, {"type": "change-state", "source": replace})
        assert second["type"] == "ok", second
        ticks(guest, 99)
        listed = request(address, {"type": "current-callbacks"})["payload"]
        assert [h["handle"] for h in listed] == [second["payload"][0]["handle"]]
    assert guest.finish() == 0


def test_removing_star_and_exit_callbacks(loop: Path, tmp_path: Path) -> None:
    source = 'hooks.before("*", function every() {}); hooks.onExit(function end() {});'
    with running(loop, tmp_path) as (guest, address):
        loaded = request(address, {"type": "change-state", "source": source})
        kinds = [(h["sysno"], h["type"]) for h in loaded["payload"]]
        assert kinds == [("*", "before"), (None, "exit")]
        # A number does not take a callback off "*".
        by_number = [{"sysno": 110, "type": "before"}]
        answer = request(
            address,
            {"type": "unregister-callbacks", "options": "list", "list": by_number},
        )
        assert answer["payload"] == {"removed": 0}
        both = [{"sysno": "*", "type": "before"}, {"type": "exit"}]
        answer = request(
            address, {"type": "unregister-callbacks", "options": "list", "list": both}
        )
        assert answer["payload"] == {"removed": 2}
        assert request(address, {"type": "current-callbacks"})["payload"] == []
    assert guest.finish() == 0


def test_clients_past_the_limit_are_turned_away(loop: Path, tmp_path: Path) -> None:
    with running(loop, tmp_path) as (guest, address):
        held = [connect(address) for _ in range(16)]
        try:
            # Each of the sixteen is served.
            for sock in held:
                sock.sendall(b'{"type": "status"}\n')
                assert read_line(sock)["type"] == "ok"
            with connect(address) as extra:
                answer = read_line(extra)
                assert answer == {
                    "type": "error",
                    "message": "too many clients (at most 16)",
                }
        finally:
            for sock in held:
                sock.close()
        assert request(address, {"type": "status"})["type"] == "ok"
        ticks(guest, 0)
    assert guest.finish() == 0

"""The log stream: syscall records as JSON lines on a socket.

A test listens on a socket, runs testdata/control_loop.c under ``pysentry
run --log-socket``, and reads the records of known syscalls: ``files PATH``
opens, reads and writes PATH, then fails to open PATH.missing.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Builder, run_sandbox, sandbox_env

WAIT = 60.0


@pytest.fixture(scope="module")
def loop(build: Builder) -> Path:
    return build("control_loop")


class Listener:
    """A socket that collects everything one sandbox streams to it."""

    def __init__(self, tmp_path: Path, family: int = socket.AF_UNIX) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            path = tmp_path / "log.sock"
            self.sock.bind(str(path))
            self.address = f"unix:{path}"
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"tcp:127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.listen(4)
        self.data = b""
        self._thread: threading.Thread | None = None

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()
        return self

    def _collect(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while chunk := conn.recv(1 << 16):
                self.data += chunk

    def records(self) -> list[dict[str, Any]]:
        if self._thread is None:
            self._collect()
        else:
            self._thread.join(WAIT)
        self.sock.close()
        lines = self.data.split(b"\n")
        assert lines[-1] == b"", "the stream ends with a whole line"
        return [json.loads(line) for line in lines[:-1]]


def files_run(
    loop: Path, tmp_path: Path, listener: Listener, opts: list[str] = ()
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], Path]:
    data = tmp_path / "data.txt"
    data.write_text("hello stream\n")
    result = run_sandbox(
        loop, ["files", str(data)], ["--log-socket", listener.address, *opts]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello stream\nmissing: ENOENT\n"
    return result, listener.records(), data


def msgs(
    records: list[dict[str, Any]], kind: str, name: str | None = None
) -> list[dict[str, Any]]:
    return [
        r["msg"]
        for r in records
        if r["msg"]["LogType"] == kind
        and (name is None or r["msg"]["Syscallname"] == name)
    ]


def test_every_record_has_gwisords_fields(loop: Path, tmp_path: Path) -> None:
    _, records, _ = files_run(loop, tmp_path, Listener(tmp_path).start())
    assert records
    for record in records:
        assert set(record) == {"msg", "level", "time"}
        assert record["level"] == "info"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["time"])
        datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        msg = record["msg"]
        assert {
            "LogType",
            "Taskname",
            "Syscallname",
            "Output",
            "Rval",
            "LogPrefix",
        } <= set(msg)
        assert msg["LogPrefix"] == "[1:1]"
        assert msg["Taskname"] == "control_loop"


def test_each_syscall_has_an_entry_then_an_exit(loop: Path, tmp_path: Path) -> None:
    _, records, _ = files_run(loop, tmp_path, Listener(tmp_path).start())
    calls = [r["msg"] for r in records if r["msg"]["LogType"] in "EX"]
    entries, exits = calls[0::2], calls[1::2]
    assert [m["LogType"] for m in entries] == ["E"] * len(entries)
    assert [m["LogType"] for m in exits] == ["X"] * len(exits)
    assert [m["Syscallname"] for m in entries] == [m["Syscallname"] for m in exits]
    for entry in entries:
        assert entry["Rval"] is None
    for done in exits:
        assert set(done["Rval"]) == {"Retval", "Err", "Errno", "Elapsed"}
        assert done["Rval"]["Elapsed"] >= 0
    assert exits[-1]["Syscallname"] == "exit_group"
    assert exits[-1]["Rval"]["Retval"] is None
    assert msgs(records, "T") and msgs(records, "T")[0]["Output"] == ["exited with 0"]


def test_records_of_known_syscalls(loop: Path, tmp_path: Path) -> None:
    _, records, data = files_run(loop, tmp_path, Listener(tmp_path).start())

    opened, missing = msgs(records, "X", "openat")[-2:]
    assert opened["Output"] == ["AT_FDCWD", f'"{data}"', "O_RDONLY"]
    assert opened["Rval"]["Retval"] == 3
    assert (opened["Rval"]["Err"], opened["Rval"]["Errno"]) == ("", 0)
    assert missing["Output"][1] == f'"{data}.missing"'
    assert missing["Rval"] == {
        **missing["Rval"],
        "Retval": -2,
        "Errno": 2,
        "Err": "ENOENT (No such file or directory)",
    }

    # read(2) fills its buffer: an address at entry, the bytes at exit.
    entry = msgs(records, "E", "read")[0]
    done = msgs(records, "X", "read")[0]
    assert entry["Output"][0] == "3" and entry["Output"][1].startswith("0x")
    assert done["Output"] == ["3", '"hello stream\\n"', "512"]
    assert done["Rval"]["Retval"] == 13

    write = msgs(records, "X", "write")[0]
    assert write["Output"] == ["1", '"hello stream\\n"', "13"]
    assert write["Sysno"] == 1 and write["Rval"]["Retval"] == 13


def test_log_json_records_come_from_hooks(loop: Path, tmp_path: Path) -> None:
    script = tmp_path / "log.js"
    script.write_text(
        'hooks.after("openat", function (d, p, f, m, a4, a5, ctx) {'
        " hooks.logJson({path: ctx.path(1), ret: ctx.ret, big: 2n ** 60n});"
        " });"
    )
    result, records, data = files_run(
        loop, tmp_path, Listener(tmp_path).start(), ["--hooks", str(script)]
    )
    logged = msgs(records, "J")
    assert [m["Output"] for m in logged][-2:] == [
        {"path": str(data), "ret": 3, "big": str(2**60)},
        {"path": f"{data}.missing", "ret": -1, "big": str(2**60)},
    ]
    assert logged[-1]["Syscallname"] == "openat" and logged[-1]["LogPrefix"] == "[1:1]"
    # With a stream, logJson goes there instead of stderr.
    assert "missing" not in result.stderr


def test_the_stream_goes_over_tcp_too(loop: Path, tmp_path: Path) -> None:
    listener = Listener(tmp_path, socket.AF_INET).start()
    _, records, _ = files_run(loop, tmp_path, listener)
    assert msgs(records, "X", "openat")


def test_strace_and_the_stream_together(loop: Path, tmp_path: Path) -> None:
    result, records, data = files_run(
        loop, tmp_path, Listener(tmp_path).start(), ["--strace"]
    )
    traced = rf'openat\(AT_FDCWD[^,]*, "{re.escape(str(data))}.missing", O_RDONLY\) *= -1 ENOENT'
    assert re.search(traced, result.stderr), result.stderr
    assert len(msgs(records, "X", "openat")) == result.stderr.count("openat(")


def test_the_config_log_socket_is_used(loop: Path, tmp_path: Path) -> None:
    listener = Listener(tmp_path).start()
    config = tmp_path / "conf.json"
    config.write_text(json.dumps({"log-socket": listener.address[5:], "callbacks": []}))
    _, records, _ = files_run(loop, tmp_path, listener, ["--config", str(config)])
    assert msgs(records, "X", "openat")


def test_nobody_listening_fails_the_run_at_start(loop: Path, tmp_path: Path) -> None:
    result = run_sandbox(
        loop, ["calls", "1"], ["--log-socket", f"unix:{tmp_path / 'nobody.sock'}"]
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "cannot connect to the log socket" in result.stderr
    assert "--log-optional" in result.stderr


def test_log_optional_runs_on_without_a_listener(loop: Path, tmp_path: Path) -> None:
    result = run_sandbox(
        loop,
        ["calls", "1"],
        ["--log-socket", f"unix:{tmp_path / 'nobody.sock'}", "--log-optional"],
    )
    assert result.returncode == 0
    assert result.stdout == "done 1\n"
    assert "no log stream" in result.stderr


def test_a_reader_that_stalls_does_not_block_the_guest_and_drops_are_reported(
    loop: Path, tmp_path: Path
) -> None:
    listener = Listener(tmp_path)  # accepts nothing and reads nothing for now
    stop = tmp_path / "stop"
    guest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentry",
            "run",
            "--log-socket",
            listener.address,
            str(loop),
            "burst",
            "40000",
            str(stop),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sandbox_env(),
    )
    try:
        # 80000 records do not fit in the queue: the guest goes on regardless.
        assert guest.stdout is not None
        assert guest.stdout.readline() == "done 40000\n"
        assert guest.stdout.readline() == "burst done\n"
        # The reader catches up while the guest still makes syscalls: the
        # records dropped meanwhile are announced in the stream.
        listener.start()
        time.sleep(1.0)
    finally:
        stop.touch()
    _, err = guest.communicate(timeout=WAIT)
    assert guest.returncode == 0, err
    m = re.search(r"log stream to \S+: (\d+) records dropped \((\d+) sent\)", err)
    assert m, err
    dropped = int(m.group(1))
    records = listener.records()
    notices = [r for r in records if r["msg"]["LogType"] == "D"]
    assert notices and all(r["level"] == "warning" for r in notices)
    assert sum(r["msg"]["Dropped"] for r in notices) == dropped
    calls = [r for r in records if r["msg"]["LogType"] in "EX"]
    assert len(calls) + dropped >= 80000


def test_a_reader_that_goes_away_ends_the_stream_not_the_guest(
    loop: Path, tmp_path: Path
) -> None:
    listener = Listener(tmp_path)

    def leave_early() -> None:
        conn, _ = listener.sock.accept()
        conn.recv(100)
        conn.close()

    threading.Thread(target=leave_early, daemon=True).start()
    result = run_sandbox(loop, ["calls", "20000"], ["--log-socket", listener.address])
    assert result.returncode == 0
    assert result.stdout == "done 20000\n"
    assert "ended: the reader went away" in result.stderr


# --- pysentry logs ---------------------------------------------------------------------


def logs_viewer(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    address = f"unix:{tmp_path / 'viewer.sock'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentry", "logs", address, "--once", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sandbox_env(),
    )
    assert proc.stderr is not None
    assert "listening for log streams" in proc.stderr.readline()
    return proc, address


def view(loop: Path, tmp_path: Path, *args: str) -> tuple[list[str], Path]:
    proc, address = logs_viewer(tmp_path, *args)
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    result = run_sandbox(loop, ["files", str(data)], ["--log-socket", address])
    assert result.returncode == 0
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    return out.splitlines(), data


def test_logs_prints_one_line_per_call(loop: Path, tmp_path: Path) -> None:
    lines, data = view(loop, tmp_path)
    assert f'[1:1] control_loop openat(AT_FDCWD, "{data}", O_RDONLY) = 3' in "\n".join(
        lines
    )
    assert any(
        re.fullmatch(
            r'\[1:1\] control_loop write\(1, "hello\\n", 6\) = 6 '
            r"<[\d.]+ us>",
            line,
        )
        for line in lines
    ), lines
    assert lines[-1] == "[1:1] control_loop +++ exited with 0 +++"
    assert not any(line.endswith(" ...") for line in lines)


def test_logs_filters_by_syscall_name(loop: Path, tmp_path: Path) -> None:
    lines, _ = view(loop, tmp_path, "--syscall", "openat,close", "--entries")
    names = {re.match(r"\[1:1\] control_loop (\w+)\(", line).group(1) for line in lines}
    assert names == {"openat", "close"}
    assert sum(line.endswith(" ...") for line in lines) == len(lines) // 2


def test_logs_shows_only_failed_calls_with_errors(loop: Path, tmp_path: Path) -> None:
    lines, data = view(loop, tmp_path, "--errors")
    assert lines
    assert all(" = -1 " in line for line in lines)
    assert any(f'"{data}.missing"' in line and "ENOENT" in line for line in lines)


def test_logs_filters_by_pid(loop: Path, tmp_path: Path) -> None:
    assert view(loop, tmp_path, "--pid", "1")[0]
    assert view(loop, tmp_path, "--pid", "2")[0] == []


def wait_until_asleep(control: Path) -> None:
    """Ask the control socket until the guest's task waits in a syscall."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(control))
                sock.sendall(b'{"type": "status"}\n')
                answer = json.loads(sock.makefile().readline())
            if answer["payload"]["tasks"][0]["state"] == "S":
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail("the guest never waited")


def test_a_call_that_waits_has_one_entry_record(loop: Path, tmp_path: Path) -> None:
    listener = Listener(tmp_path).start()
    control = tmp_path / "control.sock"
    guest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentry",
            "run",
            "--log-socket",
            listener.address,
            "--control",
            f"unix:{control}",
            str(loop),
            "read",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=sandbox_env(),
    )
    assert guest.stdin is not None
    wait_until_asleep(control)  # in its first read, on the empty pipe
    time.sleep(0.5)
    guest.stdin.write("late\n")
    guest.stdin.flush()
    time.sleep(0.5)
    out, err = guest.communicate("", timeout=WAIT)
    assert guest.returncode == 0, err
    assert out == "got late\n"
    records = listener.records()
    entries = msgs(records, "E", "read")
    exits = msgs(records, "X", "read")
    assert len(entries) == len(exits) == 2
    assert exits[0]["Output"][1] == '"late\\n"'
    assert exits[0]["Rval"]["Elapsed"] >= 500_000_000


def test_log_json_from_on_exit_reaches_the_stream(loop: Path, tmp_path: Path) -> None:
    script = tmp_path / "exit.js"
    script.write_text(
        "let n = 0;"
        ' hooks.after("openat", () => { n++; });'
        " hooks.onExit((end) => hooks.logJson({opens: n, code: end.code}));"
    )
    _, records, _ = files_run(
        loop, tmp_path, Listener(tmp_path).start(), ["--hooks", str(script)]
    )
    last = records[-1]["msg"]
    assert last["LogType"] == "J"
    assert last["Output"] == {"opens": len(msgs(records, "X", "openat")), "code": 0}
    assert last["LogPrefix"] == "" and last["Syscallname"] == ""


def test_logs_json_passes_records_through(loop: Path, tmp_path: Path) -> None:
    lines, _ = view(loop, tmp_path, "--json", "--syscall", "write")
    records = [json.loads(line) for line in lines]
    assert records and {r["msg"]["Syscallname"] for r in records} == {"write"}
    assert {r["msg"]["LogType"] for r in records} == {"X"}

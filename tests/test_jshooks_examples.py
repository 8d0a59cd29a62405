"""Every script in examples/hooks/ does what its header says, on busybox and
the hook_probe test program."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Builder, run_native, run_sandbox
from test_jshooks import BUSYBOX, EXAMPLES, needs_busybox, printed

from sentry.syscalls.table import MISSING, default_table
from sentry.sysno import SYSCALL_NUMBERS


@pytest.fixture(scope="module")
def probe(build: Builder) -> Path:
    return build("hook_probe")


def example(name: str) -> list[str]:
    path = EXAMPLES / name
    flag = "--config" if name.endswith(".json") else "--hooks"
    return [flag, str(path)]


def sockets_exist() -> bool:
    return default_table()[SYSCALL_NUMBERS["socket"]].level != MISSING


@needs_busybox
def test_rewrite_request_rewrites_the_request_line() -> None:
    request = "GET /index.html HTTP/1.0\r\nHost: example.com\r\n\r\n"
    result = run_sandbox(
        BUSYBOX,
        ["printf", request.replace("\r", "\\r").replace("\n", "\\n")],
        example("rewrite_request.js"),
        text=False,
    )
    assert result.returncode == 0
    assert result.stdout == request.replace("/index.html", "/rewritten.html").encode()


@needs_busybox
def test_rewrite_request_leaves_other_output_alone() -> None:
    result = run_sandbox(BUSYBOX, ["echo", "GET /other"], example("rewrite_request.js"))
    assert result.stdout == "GET /other\n"


def test_bind_eaddrinuse_fails_every_bind(probe: Path, tmp_path: Path) -> None:
    # The hook answers bind whatever the descriptor is, so this holds even
    # while the sentry has no sockets (socket() is ENOSYS, bind still runs).
    result = run_sandbox(
        probe, ["bind", str(tmp_path / "s.sock")], example("bind_eaddrinuse.js")
    )
    assert result.returncode == 0
    assert "bind: Address already in use\n" in result.stdout
    assert printed(result, "bind(") != []


@pytest.mark.skipif(
    not sockets_exist(),
    reason="the sentry has no socket syscalls yet: bind on a real AF_UNIX socket "
    "cannot succeed without the hook, so the hook's effect cannot be told apart",
)
def test_bind_eaddrinuse_fails_a_bind_that_would_succeed(
    probe: Path, tmp_path: Path
) -> None:
    plain = run_sandbox(probe, ["bind", str(tmp_path / "a.sock")])
    assert plain.stdout == "socket: OK\nbind: OK\n"
    hooked = run_sandbox(
        probe, ["bind", str(tmp_path / "b.sock")], example("bind_eaddrinuse.js")
    )
    assert hooked.stdout == "socket: OK\nbind: Address already in use\n"


@needs_busybox
def test_log_opens_logs_each_path_and_result() -> None:
    result = run_sandbox(
        BUSYBOX, ["cat", "/etc/hostname", "/no/such"], example("log_opens.js")
    )
    assert printed(result, "[pid 1] ") == [
        'openat("/etc/hostname", O_RDONLY) = 3',
        'openat("/no/such", O_RDONLY) = -1 ENOENT',
    ]


@needs_busybox
def test_deny_writes_outside_tmp_refuses_etc() -> None:
    result = run_sandbox(
        BUSYBOX, ["sh", "-c", "echo x > /etc/x"], example("deny_writes_outside_tmp.js")
    )
    assert result.returncode != 0
    assert "can't create /etc/x: Permission denied" in result.stderr
    assert "deny_writes_outside_tmp: openat /etc/x: EACCES" in result.stderr


@needs_busybox
def test_deny_writes_outside_tmp_allows_tmp_and_reads() -> None:
    script = (
        "echo y > /tmp/hook-y && cat /tmp/hook-y && rm /tmp/hook-y && cat /etc/hostname"
    )
    result = run_sandbox(
        BUSYBOX, ["sh", "-c", script], example("deny_writes_outside_tmp.js")
    )
    assert result.returncode == 0
    assert result.stdout.startswith("y\n")
    assert "deny_writes_outside_tmp" not in result.stderr


@needs_busybox
def test_deny_writes_outside_tmp_sees_through_dot_dot_and_relative_paths() -> None:
    script = (
        "cd /tmp && mkdir ../var/hook-d; rm -f ../etc/passwd; "
        "mkdir ./hook-ok && rmdir hook-ok && echo fine"
    )
    result = run_sandbox(
        BUSYBOX, ["sh", "-c", script], example("deny_writes_outside_tmp.js")
    )
    assert "mkdir /var/hook-d: EACCES" in result.stderr
    assert "unlink /etc/passwd: EACCES" in result.stderr
    assert result.stdout == "fine\n"


@needs_busybox
def test_fake_uname_changes_uname_and_hostname(probe: Path) -> None:
    result = run_sandbox(BUSYBOX, ["uname", "-snr"], example("fake_uname.js"))
    assert result.stdout == "Linux sandbox 6.1.0-pysentry\n"
    result = run_sandbox(BUSYBOX, ["hostname"], example("fake_uname.js"))
    assert result.stdout == "sandbox\n"
    result = run_sandbox(probe, ["uname"], example("fake_uname.js"))
    assert "nodename sandbox\n" in result.stdout
    assert "hostname sandbox\n" in result.stdout
    assert "machine x86_64\n" in result.stdout


def test_eintr_reads_interrupts_reads_reproducibly(probe: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(bytes(range(256)) * 28)  # 7168 bytes: 1025 reads of 7
    native = run_native(probe, ["read", str(data)])
    counts = []
    for _ in range(2):
        result = run_sandbox(probe, ["read", str(data)], example("eintr_reads.js"))
        m = re.fullmatch(r"(bytes \d+ sum \w+) eintr (\d+)\n", result.stdout)
        assert m, result.stdout
        # The program retried every interrupted read and read the same bytes.
        assert m.group(1) == native.stdout.split(" eintr")[0]
        injected = printed(result, "eintr_reads: injected EINTR into ")
        # 1024 reads of 7 bytes, one at the end of the file, and the retries.
        assert injected == [f"{m.group(2)} of {1025 + int(m.group(2))} reads"]
        counts.append(int(m.group(2)))
    assert counts[0] == counts[1] and 0 < counts[0] < 40


def test_eintr_reads_takes_its_seed_from_the_environment(
    probe: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.write_bytes(bytes(7000))
    runs = {
        seed: run_sandbox(
            probe,
            ["read", str(data)],
            ["--env", f"EINTR_SEED={seed}", *example("eintr_reads.js")],
        ).stdout
        for seed in ("1", "7")
    }
    assert runs["1"] != runs["7"]


@needs_busybox
def test_count_syscalls_prints_a_table_at_exit() -> None:
    result = run_sandbox(BUSYBOX, ["echo", "hi"], example("count_syscalls.js"))
    assert result.stdout == "hi\n"
    rows = {}
    for line in result.stderr.splitlines():
        m = re.fullmatch(r"(\w+) +(\d+) +(\d+)", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    assert rows["write"] == (1, 0)
    assert rows["exit_group"] == (1, 0)
    assert rows["total"][0] == sum(
        calls for name, (calls, _) in rows.items() if name != "total"
    )
    header = [line for line in result.stderr.splitlines() if line.startswith("syscall")]
    assert header and header[0].split() == ["syscall", "calls", "errors"]


@needs_busybox
def test_conf_json_example_loads_in_gwisord_format(probe: Path) -> None:
    result = run_sandbox(
        BUSYBOX, ["sh", "-c", f"{probe} getppid"], example("conf.json")
    )
    assert result.stdout == "getppid 1\n"
    assert printed(result, "execve ") == [str(probe)]

"""The syscall tracer: ``--strace`` text as strace prints it, ``--strace-json`` lines.

testdata/strace_calls.c makes a fixed series of syscalls; its trace is read
line by line. Where the host has strace, the two traces are compared. The
tracer's own rules (never raising into the kernel, the task prefix, the end
of a task) are checked directly on a tracer fed by small fakes.
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest
from conftest import Builder, run_sandbox, skip_unless_exists

from sentry import abi
from sentry.errors import SyscallError
from sentry.strace import SIGNATURES, Tracer
from sentry.strace_args import c_hex, map_flags, octal, open_flags, quote
from sentry.strace_structs import sigset_text, wait_status
from sentry.syscalls.table import MISSING, default_table
from sentry.sysno import SYSCALL_NUMBERS

BUSYBOX = "/bin/busybox"
needs_busybox = skip_unless_exists(BUSYBOX)

# Where strace_calls writes its file in the sandbox (a memory file system).
SCRATCH = "/scratch"
FILE = f"{SCRATCH}/f"

# The fields every syscall record of --strace-json carries.
RECORD_FIELDS = {
    "event", "pid", "tid", "nr", "name", "args", "decoded", "ret", "errno", "time_ns",
}


class Trace(NamedTuple):
    returncode: int
    stdout: str
    lines: list[str]  # without the descriptor paths
    records: list[dict[str, Any]]
    raw_lines: list[str]


@pytest.fixture(scope="module")
def traced(build: Builder, tmp_path_factory: pytest.TempPathFactory) -> Trace:
    """strace_calls run once with both the text and the JSON trace on."""
    out = tmp_path_factory.mktemp("strace")
    text, records = out / "trace.txt", out / "trace.jsonl"
    program = build("strace_calls")
    opts = ["--tmpfs", SCRATCH, f"--strace={text}", f"--strace-json={records}"]
    result = run_sandbox(program, [FILE, "unknown"], opts)
    return Trace(
        result.returncode,
        result.stdout,
        [without_fd_paths(line) for line in text.read_text().splitlines()],
        [json.loads(line) for line in records.read_text().splitlines()],
        text.read_text().splitlines(),
    )


def without_fd_paths(line: str) -> str:
    """A trace line with the ``<path>`` after each descriptor taken out, so
    checks do not depend on what the test runner's own streams are."""
    return re.sub(r"\b(\d+|AT_FDCWD)<[^<>]*>", r"\1", line)


def test_descriptors_show_the_path_they_refer_to(
    build: Builder, tmp_path: Path
) -> None:
    log = tmp_path / "trace.txt"
    target = tmp_path / "named.txt"
    target.write_text("x")
    if not Path(BUSYBOX).exists():
        pytest.skip(f"{BUSYBOX} is absent")
    run_sandbox(BUSYBOX, ["cat", str(target)], [f"--strace={log}"])
    assert f"close(3<{target}>)" in log.read_text()


def call_line(trace: Trace, call: str) -> str:
    """The line for ``call`` (everything before `` = ``), padding removed."""
    for line in trace.lines:
        head, sep, result = line.partition(" = ")
        if sep and head.rstrip() == call:
            return f"{call} = {result}"
    raise AssertionError(f"no line for {call}; trace:\n" + "\n".join(trace.lines))


def record_of(trace: Trace, name: str, decoded_arg: str) -> dict[str, Any]:
    for record in trace.records:
        if record.get("name") == name and decoded_arg in record["decoded"]:
            return record
    raise AssertionError(f"no {name} record with {decoded_arg}")


# --- the text trace -----------------------------------------------------------


def test_tracing_leaves_the_guest_alone(traced: Trace) -> None:
    assert traced.returncode == 3
    assert traced.stdout.startswith("hello\n0123456789")


def test_write_shows_the_bytes_written(traced: Trace) -> None:
    assert call_line(traced, 'write(1, "hello\\n", 6)') == 'write(1, "hello\\n", 6) = 6'


def test_results_line_up_at_column_40(traced: Trace) -> None:
    line = next(x for x in traced.raw_lines if x.startswith("pipe2("))
    assert line.index(" = ") == 39


def test_long_strings_are_cut_after_32_bytes(traced: Trace) -> None:
    call = 'write(1, "0123456789abcdefghijklmnopqrstuv"..., 37)'
    assert call_line(traced, call) == f"{call} = 37"


def test_unprintable_bytes_are_escaped_as_in_c(traced: Trace) -> None:
    call = r'write(1, "t\t\"\\\1\0007\n", 8)'
    assert call_line(traced, call) == f"{call} = 8"


def test_iovec_arrays_show_each_buffer(traced: Trace) -> None:
    iov = '[{iov_base="ab", iov_len=2}, {iov_base="cd\\n", iov_len=3}]'
    call = f"writev(1, {iov}, 2)"
    assert call_line(traced, call) == f"{call} = 5"


def test_open_flags_and_mode_are_named(traced: Trace) -> None:
    call = f'openat(AT_FDCWD, "{FILE}", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0640)'
    assert call_line(traced, call) == f"{call} = 3"


def test_open_without_o_creat_shows_no_mode(traced: Trace) -> None:
    call = f'openat(AT_FDCWD, "{FILE}", O_RDONLY)'
    assert call_line(traced, call) == f"{call} = 3"


def test_a_failed_call_shows_errno_name_and_message(traced: Trace) -> None:
    call = 'openat(AT_FDCWD, "/nonexistent/strace", O_RDONLY)'
    expected = f"{call} = -1 ENOENT (No such file or directory)"
    assert call_line(traced, call) == expected


def test_a_bad_pointer_shows_as_its_address(traced: Trace) -> None:
    call = "openat(AT_FDCWD, 0x8, O_RDONLY)"
    assert call_line(traced, call) == f"{call} = -1 EFAULT (Bad address)"


def test_an_unknown_syscall_shows_its_number_and_raw_arguments(traced: Trace) -> None:
    call = "syscall_335(0x1, 0x2, 0x3, 0, 0, 0)"
    assert call_line(traced, call) == f"{call} = -1 ENOSYS (Function not implemented)"


def test_a_read_buffer_is_shown_as_the_kernel_filled_it(traced: Trace) -> None:
    assert call_line(traced, 'read(3, "data", 64)') == 'read(3, "data", 64) = 4'


def test_stat_is_shown_compactly(traced: Trace) -> None:
    call = "fstat(3, {st_mode=S_IFREG|0640, st_size=4, ...})"
    assert call_line(traced, call) == f"{call} = 0"


def test_pipe_descriptors_are_shown_once_filled(traced: Trace) -> None:
    call = "pipe2([3, 4], O_CLOEXEC)"
    assert call_line(traced, call) == f"{call} = 0"


def test_poll_shows_events_asked_and_events_returned(traced: Trace) -> None:
    call = "poll([{fd=4, events=POLLOUT}], 1, 0)"
    assert call_line(traced, call) == f"{call} = 1 ([{{fd=4, revents=POLLOUT}}])"


def test_mmap_names_its_flags_and_returns_hex(traced: Trace) -> None:
    call = "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    assert re.fullmatch(re.escape(call) + r" = 0x[0-9a-f]+", call_line(traced, call))


def test_timespecs_are_shown_in_and_out(traced: Trace) -> None:
    call = "nanosleep({tv_sec=0, tv_nsec=1000}, NULL)"
    assert call_line(traced, call) == f"{call} = 0"
    clock = r"clock_gettime\(CLOCK_MONOTONIC, \{tv_sec=\d+, tv_nsec=\d+\}\)\s+= 0"
    assert any(re.fullmatch(clock, line) for line in traced.lines)


def test_uname_shows_the_system_name(traced: Trace) -> None:
    pattern = r'uname\(\{sysname="Linux", nodename="[^"]*", \.\.\.\}\)\s+= 0'
    assert any(re.fullmatch(pattern, line) for line in traced.lines)


def test_exit_group_has_no_result_and_the_exit_follows(traced: Trace) -> None:
    assert traced.lines[-2:] == [f"{'exit_group(3)':<39} = ?", "+++ exited with 3 +++"]


def test_a_single_task_gets_no_pid_prefix(traced: Trace) -> None:
    assert not any(line.startswith("[pid") for line in traced.lines)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is absent")
def test_the_trace_reads_as_the_host_strace_prints_it(
    build: Builder, tmp_path: Path
) -> None:
    # Both runs write the same host path: natively to the disk, in the
    # sandbox to the memory layer of the root overlay.
    program = build("strace_calls")
    path = str(tmp_path / "f")
    native_log, sandbox_log = tmp_path / "native.txt", tmp_path / "sandbox.txt"
    native = subprocess.run(
        ["strace", "-y", "-o", str(native_log), str(program), path],
        capture_output=True, timeout=120,
    )
    if native.returncode != 3 or not native_log.exists():
        pytest.skip(f"host strace does not work here: {native.stderr!r}")
    run_sandbox(program, [path], [f"--strace={sandbox_log}"])

    def normalized(log: Path) -> list[str]:
        lines = log.read_text().splitlines()
        start = next(i for i, x in enumerate(lines)
                     if re.match(r'write\(1(<[^>]*>)?, "hello', x))
        text = "\n".join(lines[start:])
        text = re.sub(r"0x[0-9a-f]{6,}", "ADDR", text)
        text = re.sub(r"tv_sec=\d+, tv_nsec=\d+}\) ", "TIME}) ", text)
        text = re.sub(r'nodename="[^"]*"', "NODE", text)
        text = re.sub(r"(pipe|socket):\[\d+\]", r"\1:[N]", text)
        # strace -y names the new ends inside pipe2's and socketpair's
        # arrays; we do not.
        text = re.sub(r"\[(\d+)<(pipe|socket):\[N\]>, (\d+)<(pipe|socket):\[N\]>\]",
                      r"[\1, \3]", text)
        text = re.sub(r"\) +=", ") =", text)
        text = re.sub(r"fd=(\d+)<[^<>]*(<[^<>]*>)?[^<>]*>", r"fd=\1", text)
        return text.splitlines()

    assert normalized(sandbox_log) == normalized(native_log)


# --- the JSON trace -----------------------------------------------------------


def test_json_records_carry_the_documented_fields(traced: Trace) -> None:
    syscalls = [r for r in traced.records if r["event"] == "syscall"]
    assert syscalls
    for record in syscalls:
        assert RECORD_FIELDS <= record.keys()
        assert len(record["args"]) == len(record["decoded"])


def test_json_decodes_arguments_as_the_text_does(traced: Trace) -> None:
    record = record_of(traced, "openat", f'"{FILE}"')
    flags = "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
    assert record["decoded"] == ["AT_FDCWD", f'"{FILE}"', flags, "0640"]
    assert record["nr"] == SYSCALL_NUMBERS["openat"]
    assert record["ret"] == 3 and record["errno"] is None


def test_json_names_the_errno_of_a_failed_call(traced: Trace) -> None:
    record = record_of(traced, "openat", '"/nonexistent/strace"')
    assert record["ret"] == -abi.ENOENT
    assert record["errno"] == "ENOENT"


def test_json_gives_the_path_behind_a_descriptor(traced: Trace) -> None:
    assert record_of(traced, "read", '"data"')["fd_path"] == FILE


def test_json_resolves_the_descriptor_before_close_forgets_it(traced: Trace) -> None:
    closes = [r for r in traced.records if r.get("name") == "close"]
    assert [r["fd_path"] for r in closes] == [FILE, FILE]


def test_json_leaves_out_fd_path_without_a_descriptor(traced: Trace) -> None:
    assert "fd_path" not in record_of(traced, "openat", '"/nonexistent/strace"')


def test_json_times_never_go_backwards(traced: Trace) -> None:
    times = [r["time_ns"] for r in traced.records]
    assert times == sorted(times)


def test_json_ends_with_the_exit_of_the_task(traced: Trace) -> None:
    last = traced.records[-1]
    assert (last["event"], last["status"], last["pid"]) == ("exited", 3, 1)
    assert traced.records[-2]["name"] == "exit_group"
    assert traced.records[-2]["ret"] is None


# --- busybox ------------------------------------------------------------------


@needs_busybox
def test_busybox_opening_a_file_is_traced(tmp_path: Path) -> None:
    known = tmp_path / "known.txt"
    known.write_text("known contents\n")
    result = run_sandbox(BUSYBOX, ["cat", str(known)], ["--strace=-"])
    assert result.stdout == "known contents\n"
    assert re.search(
        rf'^openat\(AT_FDCWD, "{re.escape(str(known))}", O_RDONLY\)\s+= 3$',
        without_fd_paths(result.stderr), re.M,
    )


@needs_busybox
def test_busybox_missing_file_is_traced_as_enoent(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    result = run_sandbox(BUSYBOX, ["cat", str(missing)], ["--strace=-"])
    assert result.returncode == 1
    expected = (rf'^openat\(AT_FDCWD, "{re.escape(str(missing))}", O_RDONLY\)\s+'
                r"= -1 ENOENT \(No such file or directory\)$")
    assert re.search(expected, without_fd_paths(result.stderr), re.M)
    assert result.stderr.endswith("+++ exited with 1 +++\n")


@needs_busybox
def test_busybox_echo_write_is_traced_on_stderr() -> None:
    result = run_sandbox(BUSYBOX, ["echo", "hi"], ["--strace=-"])
    assert result.stdout == "hi\n"
    assert re.search(r'^write\(1(<[^>]*>)?, "hi\\n", 3\)\s+= 3$', result.stderr,
                     re.M)


def test_an_unopenable_trace_file_is_a_usage_error(
    build: Builder, tmp_path: Path
) -> None:
    trace = tmp_path / "no" / "such" / "dir" / "trace"
    result = run_sandbox(build("strace_calls"), [FILE], [f"--strace={trace}"])
    assert result.returncode == 2
    assert "cannot open trace output" in result.stderr


# --- how values are spelled ---------------------------------------------------


def test_quote_escapes_like_c() -> None:
    assert quote(b'a\tb\n"c"\\') == r'"a\tb\n\"c\"\\"'


def test_quote_uses_three_octal_digits_only_before_a_digit() -> None:
    assert quote(b"\x00a\x001\x7f") == r'"\0a\0001\177"'


def test_quote_marks_a_cut_string() -> None:
    assert quote(b"abcdef", 4) == '"abcd"...'
    assert quote(b"abcd", 4) == '"abcd"'


def test_modes_are_written_as_c_writes_them_with_percent_03o() -> None:
    assert octal(0o644) == "0644"
    assert octal(0o22) == "022"
    assert octal(0) == "000"


def test_hex_values_are_written_as_c_writes_them_with_percent_x() -> None:
    assert (c_hex(0x1F), c_hex(0)) == ("0x1f", "0")


def test_open_flags_always_show_the_access_mode() -> None:
    assert open_flags(0) == "O_RDONLY"
    assert open_flags(abi.O_RDWR | abi.O_APPEND) == "O_RDWR|O_APPEND"
    assert open_flags(abi.O_WRONLY | 0x40000000) == "O_WRONLY|0x40000000"


def test_open_flags_spell_multi_bit_flags_whole() -> None:
    assert open_flags(abi.O_SYNC) == "O_RDONLY|O_SYNC"
    assert open_flags(abi.O_RDWR | abi.O_TMPFILE) == "O_RDWR|O_TMPFILE"


def test_map_flags_show_the_mapping_type_first() -> None:
    value = abi.MAP_ANONYMOUS | abi.MAP_SHARED | abi.MAP_FIXED
    assert map_flags(value) == "MAP_SHARED|MAP_FIXED|MAP_ANONYMOUS"


def test_wait_status_reads_like_the_macros() -> None:
    assert wait_status(3 << 8) == "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]"
    assert wait_status(abi.SIGKILL) == "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]"


def test_signal_sets_name_members_or_the_complement() -> None:
    assert sigset_text(1 << (abi.SIGINT - 1) | 1 << (abi.SIGTERM - 1)) == "[INT TERM]"
    assert sigset_text(~(1 << (abi.SIGKILL - 1))) == "~[KILL]"
    assert sigset_text(0) == "[]"


def test_every_served_syscall_has_a_signature() -> None:
    served = {row.name for row in default_table() if row.level != MISSING}
    assert served - SIGNATURES.keys() == set()


def test_the_table_names_only_real_syscalls() -> None:
    assert SIGNATURES.keys() - SYSCALL_NUMBERS.keys() == set()


# --- the tracer's own rules, on fakes -----------------------------------------


class FakeMM:
    """Guest memory: one page at BASE; ``broken`` makes reads fail oddly."""

    BASE = 0x10000

    def __init__(self) -> None:
        self.page = bytearray(4096)
        self.broken = False

    def read(self, addr: int, n: int) -> bytes:
        if self.broken:
            raise RuntimeError("decoder bug")
        if addr < self.BASE or addr + n > self.BASE + len(self.page):
            raise SyscallError(abi.EFAULT)
        return bytes(self.page[addr - self.BASE : addr - self.BASE + n])

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        data = self.read(addr, min(limit + 1, self.BASE + 4096 - addr))
        return data.split(b"\0", 1)[0]

    def read_pointer_array(self, addr: int, limit: int = 1 << 17) -> list[int]:
        out = []
        while (pointer := int.from_bytes(self.read(addr, 8), "little")) != 0:
            out.append(pointer)
            addr += 8
        return out

    def poke(self, addr: int, data: bytes) -> None:
        self.page[addr - self.BASE : addr - self.BASE + len(data)] = data


class FakeFds:
    def get(self, fd: int) -> Any:
        raise SyscallError(abi.EBADF)


@attrs.define(eq=False)
class FakeProcess:
    pid: int
    mm: FakeMM = attrs.Factory(FakeMM)
    fds: FakeFds = attrs.Factory(FakeFds)
    threads: list[Any] = attrs.Factory(list)
    exit_status: int | None = None


@attrs.define(eq=False)
class FakeTask:
    tid: int
    process: FakeProcess
    exited: bool = False

    @property
    def mm(self) -> FakeMM:
        return self.process.mm


class FakeClock:
    def monotonic_ns(self) -> int:
        return 42


@attrs.define(eq=False)
class FakeKernel:
    procs: list[FakeProcess] = attrs.Factory(list)
    clock: FakeClock = attrs.Factory(FakeClock)

    def processes(self) -> list[FakeProcess]:
        return self.procs

    def task(self, pid: int) -> FakeTask:
        proc = FakeProcess(pid)
        task = FakeTask(pid, proc)
        proc.threads.append(task)
        self.procs.append(proc)
        return task


def traced_call(tracer: Tracer, task: FakeTask, name: str, args: list[int],
                result: int | None) -> None:
    regs = [SYSCALL_NUMBERS[name], *args, *[0] * (6 - len(args)), 0x401000]
    tracer.enter(task, regs)  # type: ignore[arg-type]
    tracer.exit(task, regs, result)  # type: ignore[arg-type]


def fake_tracer() -> tuple[Tracer, FakeKernel, io.StringIO]:
    kernel = FakeKernel()
    out = io.StringIO()
    return Tracer(kernel, out, None), kernel, out  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_every_decoder_copes_with_any_memory(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Arguments point into random bytes, or are odd numbers; results range
    # over success, failure and a task that did not come back.
    rng = random.Random(name)
    tracer, kernel, out = fake_tracer()
    task = kernel.task(1)
    for _ in range(20):
        task.mm.poke(FakeMM.BASE, rng.randbytes(4096))
        args = [rng.choice([FakeMM.BASE + rng.randrange(4096), 0, 1, 2, 0x40,
                            rng.getrandbits(64)]) for _ in range(6)]
        result = rng.choice([0, 1, 3, 64, 4096, -abi.EFAULT, None])
        traced_call(tracer, task, name, args, result)
    assert [r.getMessage() for r in caplog.records] == []
    assert out.getvalue().count(f"{name}(") == 20


def test_a_decoder_failure_shows_the_raw_value_and_does_not_raise() -> None:
    tracer, kernel, out = fake_tracer()
    task = kernel.task(1)
    task.mm.broken = True
    traced_call(tracer, task, "write", [1, FakeMM.BASE, 5], 5)
    assert out.getvalue().startswith("write(1, 0x10000, 5)")


def test_a_string_in_memory_is_read_at_entry() -> None:
    tracer, kernel, out = fake_tracer()
    task = kernel.task(1)
    task.mm.poke(FakeMM.BASE, b"/etc/passwd\0")
    regs = [SYSCALL_NUMBERS["unlink"], FakeMM.BASE, 0, 0, 0, 0, 0, 0]
    tracer.enter(task, regs)  # type: ignore[arg-type]
    task.mm.poke(FakeMM.BASE, b"/changed\0")
    tracer.exit(task, regs, 0)  # type: ignore[arg-type]
    assert out.getvalue().startswith('unlink("/etc/passwd")')


def test_several_tasks_get_a_pid_prefix() -> None:
    tracer, kernel, out = fake_tracer()
    first = kernel.task(1)
    kernel.task(2)
    traced_call(tracer, first, "getpid", [], 1)
    assert out.getvalue().startswith("[pid     1] getpid()")


def test_death_by_signal_is_reported() -> None:
    tracer, kernel, out = fake_tracer()
    task = kernel.task(1)
    tracer.killed(task, abi.SIGSEGV)  # type: ignore[arg-type]
    assert out.getvalue() == "+++ killed by SIGSEGV +++\n"


def test_a_call_that_never_returned_is_marked_unfinished_at_close() -> None:
    tracer, kernel, out = fake_tracer()
    task = kernel.task(1)
    regs = [SYSCALL_NUMBERS["read"], 0, FakeMM.BASE, 10, 0, 0, 0, 0]
    tracer.enter(task, regs)  # type: ignore[arg-type]
    tracer.close()
    assert out.getvalue() == "read(0, <unfinished ...>)\n"


def test_an_output_that_fails_is_switched_off_quietly() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("reader went away")

    kernel = FakeKernel()
    tracer = Tracer(kernel, Broken(), None)  # type: ignore[arg-type]
    task = kernel.task(1)
    traced_call(tracer, task, "getpid", [], 1)
    traced_call(tracer, task, "getpid", [], 1)
    assert tracer.text is None

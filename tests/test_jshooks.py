"""JavaScript syscall hooks: the API and its return conventions, against real
guest programs (testdata/hook_probe.c and busybox).

Each test writes a small script, runs a program under ``pysentry run
--hooks``, and reads what the program printed (stdout) and what the script
printed (stderr, through ``print``). The helpers here are shared by the other
test_jshooks_* modules.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import Builder, Result, run_sandbox, skip_unless_exists

BUSYBOX = "/bin/busybox"
needs_busybox = skip_unless_exists(BUSYBOX)
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "hooks"


def run_hooks(
    program: str | Path,
    args: Sequence[str],
    script: str | None,
    tmp_path: Path,
    opts: Sequence[str] = (),
    **kw: Any,
) -> Result:
    """Run ``program`` with ``script`` as its --hooks file (None: no script)."""
    extra = list(opts)
    if script is not None:
        path = tmp_path / "hooks.js"
        path.write_text(script)
        extra = ["--hooks", str(path), *extra]
    result = run_sandbox(program, args, extra, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def printed(result: Result, prefix: str) -> list[str]:
    """The lines a script printed that start with ``prefix`` (prefix removed)."""
    return [
        line[len(prefix) :].strip()
        for line in result.stderr.splitlines()
        if line.startswith(prefix)
    ]


@pytest.fixture(scope="module")
def probe(build: Builder) -> Path:
    return build("hook_probe")


# --- changing arguments, results and memory -----------------------------------


def test_rewriting_the_write_buffer_and_length_changes_the_output(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("write", function (fd, buf, count) {
      if (fd !== 1 || hooks.readString(buf, count) !== "hello") return;
      const mem = hooks.anonMmap(64);
      hooks.writeString(mem, "goodbye, world");
      return { 1: mem, 2: 14 };
    });
    """
    result = run_hooks(probe, ["write", "hello"], script, tmp_path)
    assert result.stdout == "goodbye, world\nwrite returned 14\n"
    assert result.returncode == 0


def test_an_after_hook_changes_getppid_result(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.after("getppid", function () { return { ret: 4242, errno: 0 }; });
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert result.stdout == "getppid 4242\n"


def test_a_before_hook_with_ret_and_errno_skips_the_syscall(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("openat", function () { return { ret: 0, errno: 13 }; });
    """
    result = run_hooks(probe, ["open", "/etc/passwd"], script, tmp_path)
    assert result.stdout == "open /etc/passwd: EACCES\n"


def test_errno_zero_hands_the_guest_ret(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("getppid", function () { return { ret: 77, errno: 0 }; });
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert result.stdout == "getppid 77\n"


def test_read_string_reads_openat_path(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("openat", function (dirfd, path) {
      print("path", hooks.readString(path, 4096));
      print("short", hooks.readString(path, 4));
    });
    """
    result = run_hooks(probe, ["open", "/etc/hostname"], script, tmp_path)
    assert printed(result, "path ") == ["/etc/hostname"]
    assert printed(result, "short ") == ["/etc"]


def test_arguments_arrive_as_exact_signed_64_bit_values(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.AddCbBefore(110, function (a0, a1, a2, a3, a4, a5) {
      print("args", [a0, a1, a2, a3, a4, a5].map((v) => typeof v + ":" + v).join(" "));
    });
    """
    result = run_hooks(probe, ["signed"], script, tmp_path)
    assert printed(result, "args ") == [
        "number:-1 number:-100 number:1099511627776 bigint:-9223372036854775808 "
        "bigint:9223372036854775807 bigint:9007199254740993",
        "number:0 number:1 number:2 number:3 number:4 number:5",
    ]


def test_at_fdcwd_arrives_as_minus_100(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("openat", function (dirfd) { print("dirfd", dirfd); });
    """
    result = run_hooks(probe, ["open", "/etc/hostname"], script, tmp_path)
    assert printed(result, "dirfd ") == ["-100"]


def test_big_values_can_be_returned_as_bigint(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("getppid", function () { return { ret: 2n ** 40n, errno: 0 }; });
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert result.stdout == f"getppid {2**40}\n"


def test_null_changes_nothing(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("getppid", () => null);
    hooks.after("getppid", () => null);
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert result.stdout == "getppid 0\n"
    assert result.stderr == ""


# --- several hooks, removal, wildcards ----------------------------------------


def test_scripts_and_config_stack_each_in_its_own_scope(
    probe: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first.js"
    second = tmp_path / "second.js"
    config = tmp_path / "conf.json"
    first.write_text("function cb() { print('first'); }\nhooks.before(110, cb);\n")
    second.write_text("function cb() { print('second'); }\nhooks.before(110, cb);\n")
    config.write_text(
        '{"callbacks": [{"sysno": 110, "type": "before", "entry-point": "cb",'
        ' "source": "function cb() { print(\'config\'); }"}]}'
    )
    opts = ["--hooks", str(first), "--config", str(config), "--hooks", str(second)]
    result = run_sandbox(probe, ["getppid"], opts)
    assert result.stderr.splitlines() == ["first", "second", "config"]


def test_stacked_hooks_run_in_order_each_seeing_the_previous_change(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("getppid", function (a0) { print("first", a0); return { 0: 11 }; });
    hooks.before("getppid", function (a0) { print("second", a0); return { 0: a0 + 1 }; });
    hooks.after("getppid", function (a0, a1, a2, a3, a4, a5, ctx) {
      print("after", a0, ctx.args[0]);
    });
    """
    result = run_hooks(probe, ["signed"], script, tmp_path)
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.split()[0] in ("first", "second", "after")
    ]
    assert lines[:3] == ["first -1", "second 11", "after 12 12"]


def test_a_removed_hook_no_longer_runs(probe: Path, tmp_path: Path) -> None:
    script = """
    let calls = 0;
    const handle = hooks.before("getppid", function () {
      calls++;
      print("call", calls);
      print("removed", hooks.remove(handle), hooks.remove(handle));
    });
    """
    result = run_hooks(probe, ["getppid", "3"], script, tmp_path)
    assert printed(result, "call ") == ["1"]
    assert printed(result, "removed ") == ["true false"]


def test_names_lists_and_star_select_syscalls(probe: Path, tmp_path: Path) -> None:
    script = """
    const seen = [];
    hooks.before(["getppid", "openat"], (a0, a1, a2, a3, a4, a5, ctx) => {
      seen.push(ctx.name);
    });
    let all = 0;
    hooks.before("*", () => { all++; });
    hooks.onExit(() => print("seen", seen.join(","), all > 5));
    """
    result = run_hooks(probe, ["open", "/etc/hostname"], script, tmp_path)
    assert printed(result, "seen ") == ["openat true"]


# --- the context object --------------------------------------------------------


def test_context_describes_the_call(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("openat", function (a0, a1, a2, a3, a4, a5, ctx) {
      print("before", ctx.nr, ctx.name, ctx.phase, ctx.pid, ctx.tid, ctx.args[0],
            ctx.path(1), ctx.ret, ctx.errno);
      ctx.state.opened = ctx.path(1);
    });
    hooks.after("openat", function (a0, a1, a2, a3, a4, a5, ctx) {
      const info = ctx.ret >= 0 ? hooks.getFdInfo(ctx.ret) : null;
      print("after", ctx.phase, ctx.ret, ctx.errno, ctx.skipped, ctx.state.opened,
            info && info.path);
    });
    """
    result = run_hooks(probe, ["open", "/etc/hostname"], script, tmp_path)
    assert printed(result, "before ") == [
        "257 openat before 1 1 -100 /etc/hostname null null"
    ]
    assert printed(result, "after ") == ["after 3 0 false /etc/hostname /etc/hostname"]


def test_context_fd_describes_a_descriptor_argument(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("write", function (a0, a1, a2, a3, a4, a5, ctx) {
      const info = ctx.fd(0);
      print("fd", info.fd, info.writable, typeof info.path);
    });
    """
    result = run_hooks(probe, ["write", "x"], script, tmp_path)
    assert printed(result, "fd ")[0] == "1 true string"


def test_after_hooks_see_a_failure_as_ret_minus_one_and_errno(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.after("openat", function (a0, a1, a2, a3, a4, a5, ctx) {
      print("result", ctx.ret, ctx.errno, args.ret, args.errno);
    });
    """
    result = run_hooks(probe, ["open", "/no/such/file"], script, tmp_path)
    assert printed(result, "result ") == ["-1 2 -1 2"]


def test_skipped_calls_reach_after_hooks_marked_skipped(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("getppid", () => ({ ret: -1, errno: 1 }));
    hooks.after("getppid", (a0, a1, a2, a3, a4, a5, ctx) => {
      print("after", ctx.skipped, ctx.ret, ctx.errno);
    });
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert printed(result, "after ") == ["true -1 1"]
    assert result.stdout == "getppid -1\n"


def test_the_args_global_follows_gwisord(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.AddHookBefore(110, function () {
      print("before", Object.keys(args).join(","), args.arg0, args.arg1);
    });
    accessors.AddHookAfter(110, function () {
      print("after", Object.keys(args).join(","), args.ret, args.errno);
    });
    print("outside", typeof args);
    """
    result = run_hooks(probe, ["signed"], script, tmp_path)
    assert printed(result, "outside ") == ["undefined"]
    assert printed(result, "before ")[0] == "arg0,arg1,arg2,arg3,arg4,arg5 -1 -100"
    assert printed(result, "after ")[0] == "arg0,arg1,arg2,arg3,arg4,arg5,ret,errno 0 0"


# --- storage -------------------------------------------------------------------


def test_persistence_counts_across_calls(probe: Path, tmp_path: Path) -> None:
    script = """
    persistence.glb.calls = 0;
    hooks.before("getppid", function () {
      persistence.local.calls = (persistence.local.calls || 0) + 1;
      persistence.global.calls++;
    });
    hooks.onExit(() => print("calls", persistence.glb.calls));
    hooks.after("exit_group", () => {});
    hooks.before("exit_group", () => print("local", persistence.local.calls));
    """
    result = run_hooks(probe, ["getppid", "5"], script, tmp_path)
    assert printed(result, "calls ") == ["5"]
    assert printed(result, "local ") == ["5"]


def test_persistence_local_is_per_process_by_default(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before(["read", "write"], function (fd, a1, a2, a3, a4, a5, ctx) {
      if (fd > 2) {
        persistence.local.n = (persistence.local.n || 0) + 1;
        print("io", ctx.name, persistence.local.n);
      }
    });
    """
    result = run_hooks(probe, ["pipe"], script, tmp_path)
    assert result.stdout == "read 5\n"
    assert sorted(printed(result, "io ")) == ["read 1", "write 1"]


@pytest.mark.parametrize(
    "mode, own",
    [("per-thread", ["true", "true"]), ("per-process", ["false", "true"])],
)
def test_hook_local_per_thread_gives_each_thread_its_own(
    probe: Path, tmp_path: Path, mode: str, own: list[str]
) -> None:
    script = """
    hooks.before("gettid", function (a0, a1, a2, a3, a4, a5, ctx) {
      if (persistence.local.tid === undefined) persistence.local.tid = ctx.tid;
      print("own", persistence.local.tid === ctx.tid);
    });
    """
    result = run_hooks(probe, ["threads"], script, tmp_path, ["--hook-local", mode])
    assert result.stdout == "threads done\n"
    assert sorted(printed(result, "own ")) == own


# --- the process ----------------------------------------------------------------


@pytest.fixture(scope="module")
def inspected(probe: Path, tmp_path_factory: pytest.TempPathFactory) -> Result:
    """hook_probe signal, with one hook printing what every getter returns."""
    tmp = tmp_path_factory.mktemp("inspect")
    script = """
    function show(label, value) { print(label, JSON.stringify(value, (k, v) =>
      typeof v === "bigint" ? String(v) : v)); }
    hooks.before("getppid", function (a0, a1, a2, a3, a4, a5, ctx) {
      show("argv", hooks.getArgv());
      show("env", hooks.getEnvs().filter((e) => e.startsWith("HOOKTEST=")));
      show("cwd", hooks.getCwd());
      show("fd1", hooks.getFdInfo(1));
      show("fd99", hooks.getFdInfo(99));
      show("fds", hooks.getFdsInfo().map((f) => f.fd));
      show("maps", hooks.getMmaps().split("\\n").some((l) => l.endsWith("[stack]")));
      show("pid", hooks.getPidInfo());
      show("signals", hooks.getSignalInfo());
      show("thread", hooks.getThreadInfo());
      show("thread1", hooks.getThreadInfo(ctx.tid));
      show("names", [hooks.nameToSignal("SIGTERM"), hooks.nameToSignal("usr1"),
                     hooks.nameToSignal("SIGRTMIN+2")]);
      show("mask", hooks.signalMaskToNames((1 << 1) | (1 << 9)));
      show("mask63", hooks.signalMaskToNames(1n << 63n));
      const m = hooks.anonMmap(100);
      show("mmap", [m % 4096, hooks.getMmaps().includes(m.toString(16) + "-")]);
      show("bytes", [hooks.writeBytes(m, new Uint8Array([104, 105, 0, 7])),
                     Array.from(hooks.readBytes(m, 4))]);
      show("string", [hooks.writeString(m, "héllo"), hooks.readString(m, 64)]);
      show("munmap", hooks.munmap(m, 100));
      try { hooks.readBytes(m, 1); } catch (e) { show("unmapped", String(e)); }
      hooks.logJson({ event: "probe", big: 2n ** 64n, list: [1, 2] });
      show("stop", [hooks.stopThreads(), hooks.resumeThreads()]);
    });
    """
    return run_hooks(
        probe, ["signal"], script, tmp, env={**os.environ, "HOOKTEST": "yes"}
    )


def shown(result: Result, label: str) -> Any:
    values = printed(result, label + " ")
    assert len(values) == 1, result.stderr
    return json.loads(values[0])


def test_get_argv_and_get_envs_describe_the_program(
    inspected: Result, probe: Path
) -> None:
    assert shown(inspected, "argv") == [str(probe), "signal"]
    assert shown(inspected, "env") == ["HOOKTEST=yes"]


def test_get_cwd_is_the_working_directory(inspected: Result) -> None:
    assert shown(inspected, "cwd") == os.getcwd()


def test_get_fd_info_describes_an_open_descriptor(inspected: Result) -> None:
    info = shown(inspected, "fd1")
    assert set(info) == {
        "fd",
        "path",
        "type",
        "mode",
        "flags",
        "nlinks",
        "readable",
        "writable",
    }
    assert info["fd"] == 1 and info["writable"] is True
    assert re.fullmatch(r"[r-][w-][x-]" * 3, info["mode"])
    assert shown(inspected, "fd99") is None


def test_get_fds_info_lists_every_descriptor(inspected: Result) -> None:
    assert shown(inspected, "fds") == [0, 1, 2]


def test_get_mmaps_is_the_maps_text(inspected: Result) -> None:
    assert shown(inspected, "maps") is True


def test_get_pid_info_names_the_ids_and_session(inspected: Result) -> None:
    info = shown(inspected, "pid")
    assert info["PID"] == 1 and info["TID"] == 1
    assert info["UID"] == os.getuid() and info["GID"] == os.getgid()
    assert info["session"] == {
        "sessionID": 1,
        "PGID": 1,
        "foregroundID": 1,
        "otherPGIDs": [],
    }


def test_get_signal_info_shows_masks_and_actions(inspected: Result) -> None:
    info = shown(inspected, "signals")
    assert info["blockedNames"] == [] and info["pendingNames"] == []
    [usr1] = info["actions"]
    assert usr1["name"] == "SIGUSR1" and usr1["signo"] == 10
    assert usr1["handler"].startswith("0x")


def test_get_thread_info_lists_the_thread_group(inspected: Result) -> None:
    expected = {
        "TID": 1,
        "TGID": 1,
        "TIDsInTg": [1],
        "name": "hook_probe",
        "stopped": False,
    }
    assert shown(inspected, "thread") == expected
    assert shown(inspected, "thread1") == expected


def test_signal_names_and_masks_convert(inspected: Result) -> None:
    assert shown(inspected, "names") == [15, 10, 34]
    assert shown(inspected, "mask") == ["SIGINT", "SIGUSR1"]
    assert shown(inspected, "mask63") == ["SIGRTMAX"]


def test_memory_functions_map_write_read_and_unmap(inspected: Result) -> None:
    assert shown(inspected, "mmap") == [0, True]
    assert shown(inspected, "bytes") == [4, [104, 105, 0, 7]]
    assert shown(inspected, "string") == [7, "héllo"]
    assert shown(inspected, "munmap") == 0
    assert "EFAULT" in shown(inspected, "unmapped")


def test_log_json_prints_one_json_line(inspected: Result) -> None:
    lines = [
        json.loads(line)
        for line in inspected.stderr.splitlines()
        if line.startswith("{")
    ]
    assert lines == [{"event": "probe", "big": "18446744073709551616", "list": [1, 2]}]


def test_stop_threads_with_no_other_thread_stops_none(inspected: Result) -> None:
    assert shown(inspected, "stop") == [0, 0]


def test_bad_arguments_raise_inside_the_hook(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("getppid", function () {
      for (const f of [() => hooks.readBytes(0, 4), () => hooks.readBytes(1),
                       () => hooks.readString("x", 4), () => hooks.writeString(0, 5),
                       () => hooks.nameToSignal("SIGNOPE"), () => hooks.sendSignal(999, 9),
                       () => hooks.munmap(4097, 1), () => hooks.getThreadInfo(999),
                       () => hooks.anonMmap(-1), () => hooks.before("nosuch", () => {})]) {
        try { f(); print("no error"); } catch (e) { print("error", e.name); }
      }
    });
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert printed(result, "no error") == []
    assert printed(result, "error ") == [
        "Error",
        "TypeError",
        "TypeError",
        "TypeError",
        "RangeError",
        "RangeError",
        "RangeError",
        "RangeError",
        "RangeError",
        "TypeError",
    ]
    assert result.stdout == "getppid 0\n"


# --- signals and threads -------------------------------------------------------


def test_send_signal_runs_the_guest_handler_after_the_call(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("getppid", function (a0, a1, a2, a3, a4, a5, ctx) {
      hooks.sendSignal(ctx.tid, "SIGUSR1");
    });
    """
    result = run_hooks(probe, ["signal"], script, tmp_path)
    assert result.stdout == "handler ran: yes\n"


def test_stop_threads_holds_the_others_until_the_call_ends(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("gettid", function (a0, a1, a2, a3, a4, a5, ctx) {
      const other = hooks.getThreadInfo().TIDsInTg.find((t) => t !== ctx.tid);
      print("stopped", hooks.stopThreads(), hooks.getThreadInfo(other).stopped);
      ctx.state.other = other;
    });
    hooks.after("gettid", function (a0, a1, a2, a3, a4, a5, ctx) {
      print("during after", hooks.getThreadInfo(ctx.state.other).stopped);
    });
    """
    result = run_hooks(probe, ["threads"], script, tmp_path)
    assert result.stdout == "threads done\n"
    # Both threads call gettid; each time the other one is stopped.
    assert printed(result, "stopped ") == ["1 true", "1 true"]
    assert printed(result, "during after ") == ["true", "true"]


def test_resume_threads_resumes_early(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.before("gettid", function (a0, a1, a2, a3, a4, a5, ctx) {
      hooks.stopThreads();
      print("resumed", hooks.resumeThreads(), hooks.resumeThreads());
    });
    """
    result = run_hooks(probe, ["threads"], script, tmp_path)
    assert printed(result, "resumed ") == ["1 0", "1 0"]


def test_a_call_that_waits_runs_its_before_hooks_once(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    let befores = 0;
    hooks.before("read", function (fd, a1, a2, a3, a4, a5, ctx) {
      befores++;
      ctx.state.n = befores;
    });
    hooks.after("read", function (fd, a1, a2, a3, a4, a5, ctx) {
      print("read", ctx.ret, ctx.state.n, befores);
    });
    """
    result = run_hooks(probe, ["pipe"], script, tmp_path)
    assert result.stdout == "read 5\n"
    assert printed(result, "read ") == ["5 1 1"]


# --- hooks and the tracer ------------------------------------------------------


def test_strace_shows_the_arguments_and_result_hooks_chose(
    probe: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.txt"
    script = """
    hooks.before("getppid", () => ({ 0: 5, ret: 0, errno: 1 }));
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path, [f"--strace={trace}"])
    assert result.stdout == "getppid -1\n"
    assert re.search(r"^getppid\(\) +=  ?-1 EPERM", trace.read_text(), re.M)


@needs_busybox
def test_hooks_follow_children_and_exec(tmp_path: Path) -> None:
    script = """
    const pids = new Set();
    hooks.before("execve", function (path, a1, a2, a3, a4, a5, ctx) {
      pids.add(ctx.pid);
      print("exec", hooks.readString(path, 4096));
    });
    hooks.after("getpid", (a0, a1, a2, a3, a4, a5, ctx) => { pids.add(ctx.pid); });
    hooks.onExit(() => print("pids", pids.size));
    """
    result = run_hooks(
        BUSYBOX, ["sh", "-c", f"{BUSYBOX} true; {BUSYBOX} true"], script, tmp_path
    )
    assert result.returncode == 0
    # The first program is loaded by the sentry, not by an execve.
    assert printed(result, "exec ") == [BUSYBOX, BUSYBOX]
    assert printed(result, "pids ") == ["2"]

"""Processes, threads and signals behave as on Linux.

The programs in testdata/ (procs, signals, threads, exec) are made of named
scenarios; each scenario runs in a child process of its own and prints a
section of output that starts with ``== NAME`` and ends with ``-- NAME: <how
the child ended>``. One native run and one sandboxed run per program and build
flavour are shared by the tests below, each of which compares one section.

The sandbox's first program is pid 1 of its own pid namespace, so where that
matters (orphans are re-parented to pid 1) the native run happens as the first
process of a new pid namespace too, with ``unshare --pid --fork``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import pid_one_prefix, run_native, run_sandbox, tail

# Seconds one whole program may take; a hang shows as missing sections.
RUN_TIMEOUT = 90

_SECTION = re.compile(r"^== (\S+)\n(.*?^-- \1: .*?\n)", re.M | re.S)


class Runs(NamedTuple):
    native: dict[str, str]
    sandboxed: dict[str, str]
    pid_namespace: bool  # the native run was pid 1 of a pid namespace
    sandbox_stderr: str


def sections(stdout: str) -> dict[str, str]:
    """The output of each scenario, by name (only the complete ones)."""
    return {m.group(1): m.group(2) for m in _SECTION.finditer(stdout)}


def _output(run, *args, **kw) -> tuple[str, str]:
    """stdout and stderr of a run; a run that hangs keeps what it printed."""
    try:
        result = run(*args, timeout=RUN_TIMEOUT, **kw)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        return text, f"timed out after {RUN_TIMEOUT}s"
    return result.stdout, result.stderr


@pytest.fixture(scope="session")
def scenario_runs(build, tmp_path_factory):
    """``scenario_runs(program, flavour)``: the sections of both runs, cached."""
    cache: dict[tuple[str, str], Runs] = {}
    prefix = pid_one_prefix()
    workdir = tmp_path_factory.mktemp("scenarios")

    def get(program: str, flavour: str) -> Runs:
        if (program, flavour) not in cache:
            binary = build(program, flavour)
            args: list[str] = []
            if program == "exec":
                args = [str(workdir / f"exec-{flavour}")]
            command = [*(prefix or []), str(binary)]
            native, _ = _output(run_native, command[0], [*command[1:], *args])
            if args:
                shutil.rmtree(args[0], ignore_errors=True)
            sandboxed, stderr = _output(run_sandbox, binary, args)
            cache[(program, flavour)] = Runs(
                sections(native), sections(sandboxed), prefix is not None, stderr
            )
        return cache[(program, flavour)]

    return get


def same_section(runs: Runs, name: str) -> str:
    """Assert the sandboxed scenario printed what the native one printed."""
    assert name in runs.native, f"the native run did not complete {name}"
    assert runs.sandboxed.get(name) == runs.native[name], (
        f"sandbox stderr:\n{tail(runs.sandbox_stderr)}"
    )
    return runs.native[name]


# -- processes ---------------------------------------------------------------


def test_fork_pipe_and_wait_report_exit_codes(scenario_runs, flavour):
    out = same_section(scenario_runs("procs", flavour), "fork_pipe_wait")
    assert "child: exited 12" in out


def test_child_killed_by_a_signal_is_reported_as_signaled(scenario_runs, flavour):
    out = same_section(scenario_runs("procs", flavour), "killed_by_signal")
    assert "killed SIGPIPE" in out


def test_fork_shares_map_shared_and_copies_map_private(scenario_runs, flavour):
    same_section(scenario_runs("procs", flavour), "mmap_across_fork")


def test_wait4_wnohang_returns_zero_then_the_child(scenario_runs, flavour):
    same_section(scenario_runs("procs", flavour), "wnohang")


def test_vfork_parent_waits_for_exit_or_exec(scenario_runs, flavour):
    same_section(scenario_runs("procs", flavour), "vfork_exit")


def test_sigchld_handler_runs_when_a_child_ends(scenario_runs, flavour):
    same_section(scenario_runs("procs", flavour), "sigchld_handler")


def test_orphans_are_reparented_to_pid_one(scenario_runs, flavour):
    runs = scenario_runs("procs", flavour)
    if not runs.pid_namespace:
        pytest.skip("needs root and unshare to run natively as pid 1")
    out = same_section(runs, "orphan")
    assert "orphan's parent: 1\n" in out


def test_pipe_write_larger_than_the_pipe_waits_for_the_reader(scenario_runs, flavour):
    same_section(scenario_runs("procs", flavour), "big_pipe_write")


def test_first_process_survives_signals_it_does_not_handle(build, flavour):
    """As the init of a pid namespace: default-action signals are dropped."""
    prefix = pid_one_prefix()
    if prefix is None:
        pytest.skip("needs root and unshare to run natively as pid 1")
    binary = build("init", flavour)
    native = run_native(prefix[0], [*prefix[1:], str(binary)])
    sandboxed = run_sandbox(binary)
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert sandboxed.returncode == native.returncode == 3


# -- signals -----------------------------------------------------------------


def test_sa_siginfo_handler_sees_sender_and_code(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "siginfo")


def test_blocked_signal_stays_pending_until_unblocked(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "pending")


def test_sigsegv_handler_recovers_with_siglongjmp(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "segv_longjmp")


def test_blocking_read_gets_eintr_or_restarts_with_sa_restart(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "eintr_restart")


def test_alarm_and_interval_timers_deliver_sigalrm(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "timers")


def test_sa_onstack_handler_runs_on_the_alternate_stack(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "sigaltstack_onstack")


def test_x87_and_sse_state_survive_a_handler_that_clobbers_them(scenario_runs, flavour):
    out = same_section(scenario_runs("signals", flavour), "fpu_state_survives_a_handler")
    assert "x87 ST0: 3.14159" in out


def test_sa_nodefer_and_sa_resethand(scenario_runs, flavour):
    same_section(scenario_runs("signals", flavour), "handler_flags")


# -- threads -----------------------------------------------------------------


def test_threads_count_exactly_under_a_mutex_with_tls(scenario_runs, flavour):
    out = same_section(scenario_runs("threads", flavour), "mutex_tls")
    assert "shared counter 80000 (expected 80000)" in out


def test_condition_variable_queue_hands_over_every_item(scenario_runs, flavour):
    same_section(scenario_runs("threads", flavour), "condvar")


def test_threads_have_distinct_ids(scenario_runs, flavour):
    same_section(scenario_runs("threads", flavour), "ids")


def test_spinning_thread_does_not_starve_the_others(scenario_runs, flavour):
    same_section(scenario_runs("threads", flavour), "spinner")


def test_signals_reach_the_thread_that_does_not_block_them(scenario_runs, flavour):
    same_section(scenario_runs("threads", flavour), "thread_signals")


def test_exit_from_any_thread_ends_the_process(scenario_runs, flavour):
    same_section(scenario_runs("threads", flavour), "thread_exit")


# -- execve ------------------------------------------------------------------


def test_execve_runs_shebang_scripts_with_their_interpreter(scenario_runs, flavour):
    out = same_section(scenario_runs("exec", flavour), "shebang")
    assert "argv[1] 'argv  and more'" in out


def test_execve_errors_enoent_eacces_enoexec(scenario_runs, flavour):
    out = same_section(scenario_runs("exec", flavour), "errors")
    for errno in ("ENOENT", "EACCES", "ENOEXEC"):
        assert f": {errno}\n" in out


def test_execve_keeps_pid_fds_mask_and_resets_handlers(scenario_runs, flavour):
    same_section(scenario_runs("exec", flavour), "inherited")


# -- job control ---------------------------------------------------------------


def test_sigstop_and_sigcont_are_reported_to_wuntraced_and_wcontinued(
        scenario_runs, flavour):
    out = same_section(scenario_runs("jobctl", flavour), "stop_and_continue")
    assert "state while stopped: T" in out
    same_section(scenario_runs("jobctl", flavour), "stop_not_reported_without_wuntraced")


def test_signals_to_a_stopped_process_wait_for_sigcont_except_sigkill(
        scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "signals_wait_while_stopped")


def test_parent_hears_cld_stopped_and_cld_continued(scenario_runs, flavour):
    out = same_section(scenario_runs("jobctl", flavour), "sigchld_codes")
    assert "CLD_STOPPED status SIGSTOP" in out
    same_section(scenario_runs("jobctl", flavour), "sa_nocldstop")


def test_waitid_reports_stops_and_continues(scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "waitid_reports")


def test_a_process_stops_itself_and_resumes_where_it_was(scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "child_stops_itself")
    same_section(scenario_runs("jobctl", flavour), "sigcont_handler_runs")


def test_terminal_stops_are_discarded_for_an_orphaned_group(scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "orphaned_group_ignores_tstp")


def test_stop_and_continue_signals_cancel_each_other_while_pending(
        scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "pending_stop_and_continue_cancel")


def test_a_stop_freezes_every_thread_of_the_process(scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "every_thread_stops")


def test_setpgid_and_setsid_follow_the_session_rules(scenario_runs, flavour):
    same_section(scenario_runs("jobctl", flavour), "groups_and_sessions")


# -- robust futexes --------------------------------------------------------------


def test_a_robust_mutex_of_a_dead_thread_or_process_gives_eownerdead(
        scenario_runs, flavour):
    out = same_section(scenario_runs("robust", flavour), "thread_dies_holding")
    assert "lock: EOWNERDEAD" in out
    same_section(scenario_runs("robust", flavour), "process_dies_holding")


def test_a_waiter_on_a_robust_mutex_wakes_when_its_owner_dies(scenario_runs, flavour):
    same_section(scenario_runs("robust", flavour), "waiter_is_woken")


def test_every_scenario_program_covers_all_its_scenarios():
    """Guard against a scenario added to a program but to no test."""
    names = set(re.findall(r'same_section\(.*?"(\w+)"\)', _this_source()))
    for program in ("procs", "signals", "threads", "exec", "jobctl", "robust"):
        source = Path(__file__).parent.parent / "testdata" / f"{program}.c"
        listed = re.findall(r'\{ "(\w+)", \w+ \}', source.read_text())
        assert listed and set(listed) <= names, program


def _this_source() -> str:
    return Path(__file__).read_text()

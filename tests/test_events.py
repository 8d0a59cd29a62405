"""Readiness and event descriptors behave as on Linux.

The programs testdata/pollwait.c, epoll.c, timerfd.c, signalfd.c and pidfd.c
are made of named scenarios (see testdata/scenario.h): each runs in a child
process of its own and prints a section that starts with ``== NAME`` and ends
with ``-- NAME: <how the child ended>``. One native run and one sandboxed run
per program and build flavour are shared by the tests below, each of which
compares one section.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
from conftest import run_native, run_sandbox, sandbox_env, tail

# Seconds one whole program may take; a hang shows as missing sections.
RUN_TIMEOUT = 120

_SECTION = re.compile(r"^== (\S+)\n(.*?^-- \1: .*?\n)", re.M | re.S)


def _sections(stdout: str) -> dict[str, str]:
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
def event_runs(build):
    """``event_runs(program, flavour)``: (native, sandboxed, stderr), cached."""
    cache: dict[tuple[str, str], tuple[dict[str, str], dict[str, str], str]] = {}

    def get(program: str, flavour: str):
        if (program, flavour) not in cache:
            binary = build(program, flavour)
            native, _ = _output(run_native, binary)
            sandboxed, stderr = _output(run_sandbox, binary)
            cache[(program, flavour)] = (_sections(native), _sections(sandboxed), stderr)
        return cache[(program, flavour)]

    return get


def same(event_runs, program: str, flavour: str, name: str) -> str:
    """Assert the sandboxed scenario printed what the native one printed."""
    native, sandboxed, stderr = event_runs(program, flavour)
    assert name in native, f"the native run did not complete {name}"
    assert sandboxed.get(name) == native[name], f"sandbox stderr:\n{tail(stderr)}"
    return native[name]


# -- poll, select and sleeping ------------------------------------------------


@pytest.mark.parametrize("name", [
    "poll_wakes_on_pipe_write",
    "poll_reports_hangup_and_nval",
    "poll_times_out",
    "poll_wakes_when_last_writer_closes",
    "poll_on_eventfd_written_by_child",
    "select_wakes_and_reports_sets",
    "select_timeout_is_written_back",
])
def test_poll_and_select_wait_for_readiness(event_runs, flavour, name):
    same(event_runs, "pollwait", flavour, name)


@pytest.mark.parametrize("name", [
    "poll_interrupted_by_signal_even_with_sa_restart",
    "select_interrupted_reports_time_left",
])
def test_poll_and_select_fail_with_eintr_after_a_handler(event_runs, flavour, name):
    out = same(event_runs, "pollwait", flavour, name)
    assert "-1 EINTR" in out


def test_sigtimedwait_is_not_restarted_after_a_handler(event_runs, flavour):
    same(event_runs, "pollwait", flavour, "sigtimedwait_interrupted_by_a_handler")


@pytest.mark.parametrize("name", [
    "ppoll_temporary_mask_lets_a_blocked_signal_in",
    "ppoll_ready_keeps_the_signal_pending",
    "pselect_mask_blocks_a_signal_while_waiting",
])
def test_ppoll_and_pselect_wait_with_a_temporary_mask(event_runs, flavour, name):
    same(event_runs, "pollwait", flavour, name)


def test_nanosleep_reports_the_time_left_on_eintr(event_runs, flavour):
    out = same(event_runs, "pollwait", flavour, "nanosleep_reports_time_left")
    assert "rem.tv_sec >= 3 && rem.tv_sec < 5: yes" in out


def test_sched_yield_runs_the_other_process(event_runs, flavour):
    out = same(event_runs, "pollwait", flavour, "sched_yield_lets_the_other_process_run")
    assert "child ran: 1" in out


# -- epoll --------------------------------------------------------------------


def test_epoll_ctl_checks_arguments_as_linux(event_runs, flavour):
    out = same(event_runs, "epoll", flavour, "create_and_ctl_errors")
    assert "add(ep, file, EPOLLIN, 3): -1 EPERM" in out


def test_epoll_refuses_files_without_a_poll_operation(event_runs, flavour):
    out = same(event_runs, "epoll", flavour, "devices_without_poll_are_refused")
    assert "/dev/random: 0" in out


def test_epoll_level_triggered_reports_until_drained(event_runs, flavour):
    same(event_runs, "epoll", flavour, "level_triggered_reports_until_drained")


def test_epoll_edge_triggered_reports_each_change_once(event_runs, flavour):
    out = same(event_runs, "epoll", flavour, "edge_triggered_reports_each_change_once")
    assert "no new edge: 0" in out


def test_epoll_oneshot_fires_once_until_rearmed(event_runs, flavour):
    same(event_runs, "epoll", flavour, "oneshot_fires_once_until_rearmed")


def test_epoll_interest_goes_with_the_last_reference(event_runs, flavour):
    same(event_runs, "epoll", flavour, "close_removes_interest_with_last_reference")


def test_epoll_nested_instances_and_loops(event_runs, flavour):
    out = same(event_runs, "epoll", flavour, "nested_epoll_is_pollable")
    assert "ELOOP" in out


@pytest.mark.parametrize("name", [
    "wait_wakes_when_a_child_writes",
    "wait_times_out",
    "wait_interrupted_by_signal",
    "pwait_mask_applies_while_waiting",
    "exclusive_wakes_one_waiter",
])
def test_epoll_wait_blocks_times_out_and_is_interrupted(event_runs, flavour, name):
    same(event_runs, "epoll", flavour, name)


# -- timerfd ------------------------------------------------------------------


def test_timerfd_checks_arguments_as_linux(event_runs, flavour):
    same(event_runs, "timerfd", flavour, "create_errors")


@pytest.mark.parametrize("name", [
    "one_shot_counts_one_expiry",
    "periodic_counts_missed_intervals",
    "absolute_time_on_each_clock",
    "settime_resets_the_count",
    "fork_shares_the_timer",
])
def test_timerfd_counts_expirations(event_runs, flavour, name):
    same(event_runs, "timerfd", flavour, name)


def test_timerfd_is_pollable(event_runs, flavour):
    out = same(event_runs, "timerfd", flavour, "readiness_through_poll_and_epoll")
    assert "event: 5 0x1" in out


# -- signalfd -----------------------------------------------------------------


def test_signalfd_checks_arguments_as_linux(event_runs, flavour):
    same(event_runs, "signalfd", flavour, "create_errors")


@pytest.mark.parametrize("name", [
    "reads_pending_signals_as_records",
    "realtime_signals_queue_each_value",
    "blocking_read_waits_for_a_child_signal",
    "mask_update_on_existing_fd",
])
def test_signalfd_reads_blocked_signals(event_runs, flavour, name):
    same(event_runs, "signalfd", flavour, name)


def test_signalfd_is_pollable(event_runs, flavour):
    out = same(event_runs, "signalfd", flavour, "readiness_through_poll_and_epoll")
    assert "event: 4 0x1" in out


# -- pidfd --------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "open_errors",
    "poll_reports_exit_then_reap",
    "epoll_wakes_when_child_exits",
    "send_signal_with_siginfo",
    "waitid_by_pidfd",
    "thread_pidfd",
])
def test_pidfd_names_a_process(event_runs, flavour, name):
    same(event_runs, "pidfd", flavour, name)


# -- waiting on the host ------------------------------------------------------


def _stepwise(command: list[str]) -> str:
    """Run ``command`` with a pipe as stdin, written in steps: "one" after
    the program printed "ready", "two" after the next "next", then closed
    after the one after. Returns everything it printed."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=sandbox_env())
    assert proc.stdin is not None and proc.stdout is not None
    # A program that hangs is killed, which ends the reads below.
    watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
    watchdog.start()
    out = []
    try:
        for marker, data in (("ready", "one"), ("next", "two"), ("next", None)):
            while True:
                line = proc.stdout.readline()
                out.append(line)
                if line in (f"{marker}\n", ""):
                    break
            if data is None:
                proc.stdin.close()
            else:
                proc.stdin.write(data)
                proc.stdin.flush()
        rest = proc.stdout.read()
        proc.wait(timeout=RUN_TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return "".join(out) + rest


def test_waits_on_a_host_pipe_sleep_until_it_is_ready(build):
    binary = str(build("hostwait"))
    native = _stepwise([binary])
    sandboxed = _stepwise([sys.executable, "-m", "sentry", "run", binary])
    assert sandboxed == native
    assert 'read: 3 "two"' in native

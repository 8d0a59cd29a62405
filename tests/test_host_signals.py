"""Signals sent to pysentry from the host reach the guest as they would reach
the program run natively: same output, same ending."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
from conftest import sandbox_env

# Seconds to wait for the program to say it is ready.
READY_TIMEOUT = 60


def _start(command: list[str], ignore_hup: bool = False) -> subprocess.Popen:
    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if ignore_hup:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=sandbox_env(), preexec_fn=preexec,
    )


def _session(command: list[str], signos: list[int], ignore_hup: bool = False
             ) -> tuple[str, int]:
    """Start ``command``, wait for "ready", send ``signos`` one by one (each
    after the previous one was reported, when the program reports them), and
    return the output and how it ended (-N: killed by N, as Popen says)."""
    proc = _start(command, ignore_hup)
    assert proc.stdout is not None
    lines = [proc.stdout.readline(), proc.stdout.readline()]
    assert lines[-1] == "ready\n", lines
    for signo in signos:
        proc.send_signal(signo)
        if command[-1] == "catch":
            lines.append(proc.stdout.readline())
    # Read the rest through the same buffered reader as the lines above
    # (communicate() would skip what readline() already buffered); a
    # program that does not end is killed, which ends the read.
    watchdog = threading.Timer(READY_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        rest = proc.stdout.read()
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
    if proc.returncode == -signal.SIGKILL and signal.SIGKILL not in signos:
        pytest.fail(f"{command} did not end after {signos}")
    return "".join(lines) + rest, proc.returncode


def _as_exit_status(returncode: int) -> int:
    """What a shell reports for a Popen return code."""
    return 128 - returncode if returncode < 0 else returncode


@pytest.fixture(scope="module")
def program(build):
    return str(build("hostsig", "static"))


def _both(program: str, args: list[str], signos: list[int], ignore_hup: bool = False):
    native = _session([program, *args], signos, ignore_hup)
    sandboxed = _session([sys.executable, "-m", "sentry", "run", program, *args],
                         signos, ignore_hup)
    assert sandboxed[0] == native[0]
    assert sandboxed[1] == _as_exit_status(native[1])
    return native


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_the_program_does_not_catch_ends_it(program, signo):
    out, status = _both(program, [], [signo])
    assert status == -signo


def test_caught_signals_run_the_handlers(program):
    out, status = _both(program, ["catch"],
                        [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
    assert out.endswith("caught 2\ncaught 15\ncaught 10\ndone\n")
    assert status == 0


def test_a_signal_ignored_at_start_stays_ignored_in_the_guest(program):
    out, status = _both(program, [], [signal.SIGHUP, signal.SIGTERM], ignore_hup=True)
    assert out.startswith("SIGHUP ignored: yes\n")
    assert status == -signal.SIGTERM

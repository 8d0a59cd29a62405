"""Job control on a terminal, against native runs.

The program gets a pty as its stdin and controlling terminal, and is the
leader of a session of its own, natively and under pysentry alike (the
sandbox's first process leads its session; pysentry itself is started as
the leader of one, with the pty as its terminal).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import sandbox_env

BASH = "/bin/bash-static"

TIMEOUT = 60


def _on_terminal(command: list[str], typed: bytes, env: dict[str, str]
                 ) -> tuple[str, str, int]:
    """Run ``command`` with a fresh pty as stdin and controlling terminal,
    ``typed`` waiting on it; stdout and stderr are pipes."""
    master, slave = pty.openpty()
    try:
        os.write(master, typed)

        def take_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            command, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=take_terminal, text=True, env=env,
        )
        os.close(slave)
        slave = -1
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{command} timed out; stderr:\n{err[-2000:]}")
        return out, err, proc.returncode
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def _sandboxed(command: list[str]) -> list[str]:
    return [sys.executable, "-m", "sentry", "run", *command]


def test_background_reader_stops_and_runs_once_given_the_terminal(build):
    program = str(build("tty_jobs", "static"))
    env = sandbox_env()
    native = _on_terminal([program], b"hello\n", env)
    sandboxed = _on_terminal(_sandboxed([program]), b"hello\n", env)
    assert sandboxed == native
    assert "background reader: stopped SIGTTIN\n" in native[0]
    assert "child read: hello\n" in native[0]
    assert "background read ignoring SIGTTIN: EIO\n" in native[0]


def _comparable(text: str) -> str:
    """Job reports name pids ("[1] 4242"), which differ between the runs;
    whether bash reports a killed job before it exits is a race natively."""
    text = re.sub(r"^(\[\d+\]) \d+$", r"\1 PID", text, flags=re.M)
    return re.sub(r"^\[\d+\]\+ +Terminated .*\n", "", text, flags=re.M)


def test_interactive_bash_stops_continues_and_kills_a_job(applets, tmp_path):
    if not Path(BASH).exists():
        pytest.skip(f"{BASH} is absent")
    env = sandbox_env({"PATH": str(applets), "PS1": "$ ", "HOME": str(tmp_path),
                       "TERM": "dumb", "LC_ALL": "C"})
    typed = (
        b"sleep 0.2 &\nwait\necho status $?\n"
        # A foreground sleep lets bash collect the job's state change.
        b"sleep 30 &\nkill -STOP %1\nsleep 0.3\njobs\nkill -CONT %1\nsleep 0.3\njobs\n"
        b"kill %1\nwait\necho after $?\nexit 3\n"
    )
    command = [BASH, "--norc", "--noprofile", "-i"]
    native = _on_terminal(command, typed, env)
    sandboxed = _on_terminal(_sandboxed(command), typed, env)
    assert sandboxed[0] == native[0]
    assert _comparable(sandboxed[1]) == _comparable(native[1])
    assert sandboxed[2] == native[2] == 3
    assert "Stopped" in native[0] + native[1]

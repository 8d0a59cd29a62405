"""The contract of ``python -m sentry run`` as a command.

Exit status 127 when the program is not found, 126 when it cannot be
executed, 2 for a usage error; the guest inherits the host's working
directory, environment and standard streams.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import (
    REPO,
    run_native,
    run_sandbox,
    sandbox_env,
    skip_unless_exists,
    tail,
)

BUSYBOX = "/bin/busybox"


def sentry(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sentry", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=sandbox_env(), timeout=120
    )


# -- exit statuses of the command itself -----------------------------------


def test_missing_program_exits_127(tmp_path):
    result = run_sandbox(tmp_path / "no-such-program")
    assert result.returncode == 127, tail(result.stderr)


def test_file_without_execute_permission_exits_126(build, tmp_path):
    program = tmp_path / "not-executable"
    shutil.copy(build("exit_code"), program)
    program.chmod(0o644)
    result = run_sandbox(program, ["0"])
    assert result.returncode == 126, tail(result.stderr)


def test_directory_as_program_exits_126(tmp_path):
    result = run_sandbox(tmp_path)
    assert result.returncode == 126, tail(result.stderr)


def test_executable_that_is_not_elf_exits_126(tmp_path):
    program = tmp_path / "garbage"
    program.write_bytes(bytes(range(256)) * 4)
    program.chmod(0o755)
    result = run_sandbox(program)
    assert result.returncode == 126, tail(result.stderr)


def test_run_without_a_program_is_a_usage_error():
    assert sentry("run").returncode == 2


def test_unknown_option_is_a_usage_error(build):
    assert sentry("run", "--no-such-option", str(build("exit_code"))).returncode == 2


@pytest.mark.parametrize("spec", ["no-colon", ":/mnt/x", "/tmp:"])
def test_malformed_bind_is_a_usage_error(build, spec):
    result = sentry("run", "--bind", spec, str(build("exit_code")), "0")
    assert result.returncode == 2, result.stderr


def test_malformed_env_is_a_usage_error(build):
    result = sentry("run", "--env", "NO_EQUALS_SIGN", str(build("exit_code")), "0")
    assert result.returncode == 2, result.stderr


# -- what the guest inherits -----------------------------------------------


def test_guest_inherits_the_host_working_directory(build, tmp_path):
    (tmp_path / "here.txt").write_text("in the host cwd")
    result = run_sandbox(build("catpath"), ["here.txt"], cwd=tmp_path)
    assert result.stdout == "here.txt: in the host cwd\n", tail(result.stderr)


def test_cwd_option_sets_the_guest_working_directory(build, tmp_path):
    (tmp_path / "there.txt").write_text("in the --cwd directory")
    opts = ["--cwd", str(tmp_path)]
    result = run_sandbox(build("catpath"), ["there.txt"], opts, cwd=REPO)
    assert result.stdout == "there.txt: in the --cwd directory\n", tail(result.stderr)


def test_relative_program_path_is_found_from_the_host_cwd(build, tmp_path):
    shutil.copy(build("exit_code"), tmp_path / "prog")
    result = run_sandbox("./prog", ["5"], cwd=tmp_path)
    assert result.returncode == 5, tail(result.stderr)


@skip_unless_exists(BUSYBOX)
def test_guest_reads_the_host_stdin_pipe():
    text = "through a pipe\n" * 1000
    result = run_sandbox(BUSYBOX, ["cat"], stdin=None, input=text)
    assert result.stdout == text, tail(result.stderr)


@skip_unless_exists(BUSYBOX)
def test_guest_writes_to_the_host_stderr():
    native = run_native(BUSYBOX, ["cat", "/no/such/file"])
    sandboxed = run_sandbox(BUSYBOX, ["cat", "/no/such/file"])
    assert native.stderr.strip() in sandboxed.stderr.splitlines()
    assert sandboxed.stdout == ""


def test_host_environment_is_not_changed_by_the_env_option(build):
    before = dict(os.environ)
    run_sandbox(build("args_env"), [], ["--env", "PYSENTRY_ONLY_GUEST=1"])
    assert dict(os.environ) == before

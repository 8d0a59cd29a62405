"""The guest sees what a program sees on real Linux.

Every program in testdata/ is built in each flavour (glibc static, glibc
static-pie, musl static) and run natively and under the sandbox; standard
output and exit status must match. Faults must kill the guest with the right
signal, reported as exit status 128 + signo and one line on stderr.
"""

from __future__ import annotations

import signal

import pytest
from conftest import assert_same, run_native, run_sandbox, tail

# -- syscall families ------------------------------------------------------


def family_matches_native(build, name: str, flavour: str) -> None:
    native = assert_same(build(name, flavour))
    assert native.returncode == 0, "the program itself failed to set up"


def test_floating_point_state_at_start_matches_native(build, flavour):
    """x87 control word 0x37f and MXCSR 0x1f80, as Linux starts a program."""
    family_matches_native(build, "fpu", flavour)


def test_files_family_matches_native(build, flavour):
    """open flags, read/write and vectors, lseek and holes, truncate, fallocate."""
    family_matches_native(build, "files", flavour)


def test_stat_family_matches_native(build, flavour):
    """stat/fstat/lstat/newfstatat/statx agree with each other and with Linux."""
    family_matches_native(build, "stat", flavour)


def test_dirs_family_matches_native(build, flavour):
    """mkdir/rmdir/unlink/rename(2)/getdents64/chdir/getcwd and the *at forms."""
    family_matches_native(build, "dirs", flavour)


def test_links_family_matches_native(build, flavour):
    """Hard and symbolic links, ELOOP, dangling links, trailing slashes."""
    family_matches_native(build, "links", flavour)


def test_attrs_family_matches_native(build, flavour):
    """chmod family, umask, access/faccessat, utimensat/futimens."""
    family_matches_native(build, "attrs", flavour)


def test_fds_family_matches_native(build, flavour):
    """dup family, fcntl, record locks, close_range, sendfile, /dev devices."""
    family_matches_native(build, "fds", flavour)


def test_pipes_family_matches_native(build, flavour):
    """pipe/pipe2, FIONREAD, poll/ppoll/select/pselect6, eventfd."""
    family_matches_native(build, "pipes", flavour)


def test_memory_family_matches_native(build, flavour):
    """brk, mmap (anonymous, file, fixed), munmap, mprotect, mremap, madvise."""
    family_matches_native(build, "memory", flavour)


def test_identity_family_matches_native(build, flavour):
    """ids, uname, rlimits, clocks, sleeping, getrandom, sysinfo, prctl, umask."""
    family_matches_native(build, "identity", flavour)


def test_futex_family_matches_native(build, flavour):
    """futex checks, timeouts, WAKE_OP, PI locks, and a wake from another thread."""
    family_matches_native(build, "futex", flavour)


def test_fd_links_lead_to_the_open_file(build, flavour):
    """/proc/self/fd/N reopens pipes, deleted files and directories, not names."""
    family_matches_native(build, "fdlinks", flavour)


def test_host_directories_keep_their_host_attributes(build, flavour, tmp_path):
    """Size, blocks and subdirectory links of directories below the memory layer."""
    (tmp_path / "pre").mkdir()
    (tmp_path / "file").write_text("host data")
    native = assert_same(build("hostdirs", flavour), [str(tmp_path)])
    assert native.returncode == 0, "the program itself failed to set up"


def test_fifos_and_device_nodes_open_what_they_name(build, flavour):
    """mkfifo/mknod nodes open a pipe or a driver, not a file of bytes."""
    family_matches_native(build, "nodes", flavour)


# -- faults ----------------------------------------------------------------


def assert_killed_by(prog, args, signo: signal.Signals) -> None:
    native = run_native(prog, args)
    assert native.returncode == -signo, "the program does not fault natively"

    sandboxed = run_sandbox(prog, args)
    assert sandboxed.returncode == 128 + signo, tail(sandboxed.stderr)
    assert sandboxed.stdout == native.stdout
    naming = [line for line in sandboxed.stderr.splitlines() if signo.name in line]
    assert len(naming) == 1, (
        f"stderr should name {signo.name} once:\n{tail(sandboxed.stderr)}"
    )


def test_store_through_null_is_killed_by_sigsegv(build, flavour):
    assert_killed_by(build("fault_segv", flavour), [], signal.SIGSEGV)


def test_undefined_instruction_is_killed_by_sigill(build, flavour):
    assert_killed_by(build("fault_ill", flavour), [], signal.SIGILL)


def test_store_to_string_literal_is_killed_by_sigsegv(build, flavour):
    assert_killed_by(build("fault_ro", flavour), ["literal"], signal.SIGSEGV)


def test_store_to_read_only_mapping_is_killed_by_sigsegv(build, flavour):
    assert_killed_by(build("fault_ro", flavour), ["mmap"], signal.SIGSEGV)


# -- exit status -----------------------------------------------------------


@pytest.mark.parametrize("code", ["0", "1", "42", "255", "256", "-1"])
def test_exit_status_is_the_code_given_to_exit(build, flavour, code):
    native = assert_same(build("exit_code", flavour), [code])
    assert native.returncode == int(code) & 0xFF


@pytest.mark.parametrize("how", ["exit", "_exit", "return"])
def test_every_way_of_leaving_main_gives_the_same_status(build, how):
    """exit flushes stdio, _exit does not, return from main is exit."""
    native = assert_same(build("exit_code"), ["7", how])
    assert native.returncode == 7


# -- arguments and environment ---------------------------------------------

ARGS = ["plain", "two words", "", "ünïcödé", "--flag", "--", "*", "$HOME", "a\tb"]


def test_arguments_reach_the_guest_verbatim(build, flavour):
    native = assert_same(build("args_env", flavour), ARGS)
    assert native.stdout.startswith(f"argc {len(ARGS) + 1}\n")


def test_guest_inherits_the_host_environment(build, flavour, monkeypatch):
    monkeypatch.setenv("PYSENTRY_ONE", "1")
    monkeypatch.setenv("PYSENTRY_SPACES", "with  spaces = and equals")
    monkeypatch.delenv("PYSENTRY_UNSET", raising=False)
    names = ["PYSENTRY_ONE", "PYSENTRY_SPACES", "PYSENTRY_UNSET", "PATH"]
    native = assert_same(build("args_env", flavour), [f"env:{n}" for n in names])
    assert "PYSENTRY_ONE=1\n" in native.stdout


def test_guest_sees_the_whole_host_environment(build, monkeypatch):
    monkeypatch.setenv("PYSENTRY_MARK", "present")
    native = assert_same(build("args_env"), ["env:*"])
    assert "env 'PYSENTRY_MARK=present'\n" in native.stdout


def test_env_option_sets_a_guest_variable(build, monkeypatch):
    monkeypatch.delenv("PYSENTRY_OPT", raising=False)
    prog = build("args_env")
    args = ["env:PYSENTRY_OPT"]
    sandboxed = run_sandbox(prog, args, ["--env", "PYSENTRY_OPT=from option"])
    native = run_native(prog, args, env={"PYSENTRY_OPT": "from option"})
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert sandboxed.returncode == 0


def test_clear_env_leaves_only_the_env_options(build, monkeypatch):
    monkeypatch.setenv("PYSENTRY_HIDDEN", "should not be seen")
    prog = build("args_env")
    opts = ["--clear-env", "--env", "ONLY=this", "--env", "EMPTY="]
    sandboxed = run_sandbox(prog, ["env:*"], opts)
    native = run_native(prog, ["env:*"], env={"ONLY": "this", "EMPTY": ""})
    assert "environ has 2 entries" in native.stdout
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert sandboxed.returncode == native.returncode

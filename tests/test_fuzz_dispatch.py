"""Random syscalls never make a Python exception escape the dispatcher.

The kernel is built around a real program, then hypothesis feeds it syscall
numbers and arguments directly: a mix of small integers, special values and
pointers into a scratch page that holds a path. Every call must end in a
result or an errno; a kernel bug is a failure.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentry import abi
from sentry.boot import start
from sentry.kernel import Options
from sentry.syscalls.file import open_location
from sentry.sysno import SYSCALL_NUMBERS

# Calls that end the task or wait on the host's clock are exercised elsewhere.
_EXCLUDED = {
    SYSCALL_NUMBERS[name]
    for name in (
        "exit",
        "exit_group",
        "kill",
        "tkill",
        "tgkill",
        "nanosleep",
        "clock_nanosleep",
        "poll",
        "ppoll",
        "select",
        "pselect6",
        "pause",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "epoll_wait",
        "epoll_pwait",
        "epoll_pwait2",
        "wait4",
        "waitid",
        "futex",
        "alarm",
        "vfork",
        "fork",
        "clone",
        "clone3",
        "execve",
        "execveat",
    )
}
_NUMBERS = [nr for nr in range(0, 460) if nr not in _EXCLUDED]
SCRATCH = 0x10000000


class Sandbox:
    """A kernel with one loaded task, rebuilt when a call legitimately ends it
    (a read on its own empty pipe can never be woken, so the kernel ends it)."""

    def __init__(self, exe: str, workdir: str) -> None:
        self.exe = exe
        self.workdir = workdir
        self.kernel, self.task = _boot(exe, workdir)

    def fresh(self):  # type: ignore[no-untyped-def]
        if self.task.exited and self.kernel.kernel_bug is None:
            self.kernel, self.task = _boot(self.exe, self.workdir)
        self.kernel.kernel_bug = None
        _reset_scratch(self.task)
        return self.kernel, self.task


def _boot(exe: str, workdir: str):  # type: ignore[no-untyped-def]
    kernel, task, _entry, _sp = start(
        Options(cwd=workdir), exe, [], [b"PATH=/bin"]
    )
    kernel.current = task
    task.mm.map(
        SCRATCH,
        0x2000,
        abi.PROT_READ | abi.PROT_WRITE,
        abi.MAP_PRIVATE | abi.MAP_ANONYMOUS,
        fixed=True,
    )
    # Keep the guest away from the test runner's own terminal.
    for fd in (0, 1, 2):
        null = open_location(task, abi.AT_FDCWD, "/dev/null", abi.O_RDWR, 0)
        task.process.fds.put(fd, null, False)
    return kernel, task


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the guest")
    src = tmp_path_factory.mktemp("fuzz") / "idle.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = src.with_suffix("")
    subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    return Sandbox(str(exe), str(tmp_path_factory.mktemp("fuzzroot")))


def _reset_scratch(task) -> None:  # type: ignore[no-untyped-def]
    """Map the scratch pages afresh (the guest may have unmapped or protected
    them) and put a path and a small struct there."""
    task.mm.map(SCRATCH, 0x2000, abi.PROT_READ | abi.PROT_WRITE,
                abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, fixed=True)
    task.mm.write(SCRATCH, b"/tmp/fuzz-entry\0" + struct.pack("<QQ", 1, 0))


_special = st.sampled_from(
    [
        0,
        1,
        2,
        3,
        0xFFFFFFFFFFFFFFFF,
        0xFFFFFF9C,
        0xFFFFFFFFFFFFFF9C,
        4096,
        1 << 31,
        1 << 63,
        SCRATCH,
        SCRATCH + 8,
        SCRATCH + 0xFF0,
        SCRATCH + 0x1FFF,
        0x7FFFFFFFF000,
    ]
)
_arg = st.one_of(_special, st.integers(0, 64), st.integers(0, (1 << 64) - 1))


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    nr=st.integers(0, 459).filter(lambda n: n not in _EXCLUDED),
    args=st.lists(_arg, min_size=6, max_size=6),
)
def test_random_syscalls_raise_no_python_exception(sandbox, nr, args):  # type: ignore[no-untyped-def]
    kernel, _task = sandbox.fresh()
    kernel._dispatch([nr, *args, 0x401000])
    assert kernel.kernel_bug is None, repr(kernel.kernel_bug.__cause__)


_SWEEP = [
    [0] * 6,
    [1] * 6,
    [0xFFFFFFFFFFFFFFFF] * 6,
    [0xFFFFFF9C, SCRATCH, SCRATCH + 0x100, 0, 0, 0],
    [3, SCRATCH, 16, 0, 0, 0],
    [SCRATCH, SCRATCH + 0x800, SCRATCH + 0x1000, 64, 0, 0],
    [1 << 63, 1 << 40, 7, 0x1FF, 0xFFFFFFFF, 1 << 62],
]


@pytest.mark.parametrize("args", _SWEEP, ids=[f"args{i}" for i in range(len(_SWEEP))])
def test_every_syscall_handles_typical_arguments(sandbox, args):  # type: ignore[no-untyped-def]
    for nr in _NUMBERS:
        kernel, _task = sandbox.fresh()
        kernel._dispatch([nr, *args, 0x401000])
        assert kernel.kernel_bug is None, (nr, repr(kernel.kernel_bug.__cause__))


def test_unknown_syscall_numbers_are_enosys(sandbox):  # type: ignore[no-untyped-def]
    kernel, _task = sandbox.fresh()
    for nr in (335, 511, 512, 1 << 20, (1 << 64) - 1):
        assert kernel._dispatch([nr, 0, 0, 0, 0, 0, 0, 0]) == -abi.ENOSYS


def test_workdir_untouched_on_host(sandbox, tmp_path):  # type: ignore[no-untyped-def]
    assert os.listdir(sandbox.workdir) == []

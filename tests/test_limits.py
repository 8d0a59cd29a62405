"""The limits a user sets: --max-tasks and --memory-limit.

Linux has no direct counterpart to compare with (the test runner may be
root, whom RLIMIT_NPROC does not stop), so these check the errors Linux
gives when such a limit is reached, and that the sandbox works on normally
once the guest gives the resources back.
"""

from __future__ import annotations

import re

from conftest import run_sandbox, tail


def test_fork_bomb_gets_eagain_and_the_kernel_stays_healthy(build):
    limits = build("limits", "static")
    result = run_sandbox(limits, ["forkbomb"], ["--max-tasks", "40"])
    assert result.returncode == 0, tail(result.stderr)
    # The first process is one of the 40 tasks.
    assert "fork failed with EAGAIN after 39 children\n" in result.stdout
    assert "fork after reaping: child exited 42\n" in result.stdout


def test_allocation_loop_gets_enomem_and_memory_comes_back(build):
    limits = build("limits", "static")
    result = run_sandbox(limits, ["allocate"], ["--memory-limit", "64M"])
    assert result.returncode == 0, tail(result.stderr)
    out = result.stdout
    mapped = re.search(r"mmap failed with ENOMEM after (\d+) MiB", out)
    assert mapped and 32 <= int(mapped.group(1)) < 64, out
    assert "mmap after munmap: ok\n" in out
    grown = re.search(r"sbrk failed with ENOMEM after (\d+) MiB", out)
    assert grown and 32 <= int(grown.group(1)) < 64, out
    assert "malloc of 64 MiB: NULL\n" in out


def test_memory_limit_is_shared_by_every_process_of_the_sandbox(build):
    limits = build("limits", "static")
    result = run_sandbox(limits, ["shared", "32"], ["--memory-limit", "96M"])
    assert result.returncode == 0, tail(result.stderr)
    # A fork copies the parent's private memory, so it counts.
    assert result.stdout == (
        "parent maps 32 MiB: ok\n"
        "child maps 32 MiB more: ENOMEM\n"
        "parent maps 32 MiB more: ok\n"
        "fork copying all that: ENOMEM\n"
        "after the parent unmapped, the child maps 32 MiB: ok\n"
    )


def test_without_limits_the_same_programs_run_freely(build):
    limits = build("limits", "static")
    result = run_sandbox(limits, ["shared", "32"])
    assert result.returncode == 0, tail(result.stderr)
    assert "child maps 32 MiB more: ok\n" in result.stdout
    assert "fork copying all that: ok\n" in result.stdout

"""Process lifetime and ids: exit, exit_group, getpid and relatives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.table import missing, syscall

if TYPE_CHECKING:
    from sentry.task import Task


def exit_group(t: Task, code: int, *_: int) -> int:
    """exit_group(2)."""
    t.process.kernel.exit_group(t, (code & 0xFF) << 8)
    return 0


def exit(t: Task, code: int, *_: int) -> int:
    """exit(2): ends the thread; the last thread ends the process."""
    # TODO: with threads, only this task ends and CLONE_CHILD_CLEARTID is honoured.
    t.process.kernel.exit_group(t, (code & 0xFF) << 8)
    return 0


def getpid(t: Task, *_: int) -> int:
    """getpid(2)."""
    return t.process.pid


def gettid(t: Task, *_: int) -> int:
    """gettid(2)."""
    return t.tid


def getppid(t: Task, *_: int) -> int:
    """getppid(2)."""
    return t.process.ppid


def getpgid(t: Task, pid: int, *_: int) -> int:
    """getpgid(2)."""
    pid = s32(pid)
    proc = t.process if pid == 0 else t.process.kernel.find_process(pid)
    if proc is None:
        raise SyscallError(abi.ESRCH)
    return proc.pgid


def getpgrp(t: Task, *_: int) -> int:
    """getpgrp(2)."""
    return t.process.pgid


def getsid(t: Task, pid: int, *_: int) -> int:
    """getsid(2)."""
    pid = s32(pid)
    proc = t.process if pid == 0 else t.process.kernel.find_process(pid)
    if proc is None:
        raise SyscallError(abi.ESRCH)
    return proc.sid


def setpgid(t: Task, pid: int, pgid: int, *_: int) -> int:
    """setpgid(2)."""
    pid, pgid = s32(pid), s32(pgid)
    if pgid < 0:
        raise SyscallError(abi.EINVAL)
    proc = t.process if pid in (0, t.process.pid) else t.process.kernel.find_process(pid)
    if proc is None:
        raise SyscallError(abi.ESRCH)
    if proc.pid == proc.sid:
        raise SyscallError(abi.EPERM)
    proc.pgid = pgid or proc.pid
    return 0


def setsid(t: Task, *_: int) -> int:
    """setsid(2)."""
    proc = t.process
    if proc.pgid == proc.pid:
        raise SyscallError(abi.EPERM)
    proc.sid = proc.pgid = proc.pid
    return proc.pid


def set_tid_address(t: Task, addr: int, *_: int) -> int:
    """set_tid_address(2)."""
    t.clear_child_tid = addr
    return t.tid


def set_robust_list(t: Task, head: int, length: int, *_: int) -> int:
    """set_robust_list(2): remembered for thread exit."""
    if length != 24:
        raise SyscallError(abi.EINVAL)
    t.robust_list, t.robust_len = head, length
    return 0


def get_robust_list(t: Task, pid: int, head_ptr: int, len_ptr: int, *_: int) -> int:
    """get_robust_list(2)."""
    if s32(pid) not in (0, t.tid):
        raise SyscallError(abi.ESRCH)
    t.mm.write_u64(head_ptr, t.robust_list)
    t.mm.write_u64(len_ptr, t.robust_len)
    return 0


SYSCALLS = [
    syscall("exit", exit, "ends the whole process until threads exist", partial=True),
    syscall("exit_group", exit_group),
    syscall("getpid", getpid),
    syscall("gettid", gettid),
    syscall("getppid", getppid),
    syscall("getpgid", getpgid),
    syscall("getpgrp", getpgrp),
    syscall("getsid", getsid),
    syscall("setpgid", setpgid),
    syscall("setsid", setsid),
    syscall("set_tid_address", set_tid_address),
    syscall("set_robust_list", set_robust_list),
    syscall("get_robust_list", get_robust_list),
    missing("fork", "processes are not implemented yet"),
    missing("vfork", "processes are not implemented yet"),
    missing("clone", "processes are not implemented yet"),
    missing("clone3", "processes are not implemented yet"),
    missing("execve", "processes are not implemented yet"),
    missing("execveat", "processes are not implemented yet"),
    missing("wait4", "processes are not implemented yet"),
    missing("waitid", "processes are not implemented yet"),
]

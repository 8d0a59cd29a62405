"""Tasks, processes and what they hold: descriptors, file system context, ids.

A :class:`Process` is a thread group: one address space, one descriptor table,
one set of signal actions. A :class:`Task` is one thread in it, with its own
registers (saved while it does not run), signal mask and tid. Fork, clone and
threads build on these shapes; nothing here assumes a single task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import OpenFile
from vfs.mount import Location
from vfs.wait import WaitQueue

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.mm import AddressSpace

DEFAULT_NOFILE = 1024
NOFILE_MAX = 1 << 20


@attrs.define
class Credentials:
    uid: int
    euid: int
    suid: int
    fsuid: int
    gid: int
    egid: int
    sgid: int
    fsgid: int
    groups: list[int] = attrs.Factory(list)

    @classmethod
    def of(cls, uid: int, gid: int, groups: list[int]) -> Credentials:
        return cls(uid, uid, uid, uid, gid, gid, gid, gid, list(groups))


@attrs.define(eq=False)
class FsContext:
    """What CLONE_FS shares: root, working directory and umask."""

    root: Location
    cwd: Location
    umask: int = 0o022


@attrs.define(eq=False)
class FdEntry:
    file: OpenFile
    cloexec: bool


class FdTable:
    """A descriptor table: small integers to open file descriptions."""

    def __init__(self) -> None:
        self._fds: dict[int, FdEntry] = {}
        self.limit = DEFAULT_NOFILE
        # How many processes use this table (CLONE_FILES shares it).
        self.users = 1

    def items(self) -> Iterator[tuple[int, OpenFile]]:
        for fd in sorted(self._fds):
            yield fd, self._fds[fd].file

    def get(self, fd: int) -> OpenFile:
        entry = self._fds.get(fd)
        if entry is None:
            raise SyscallError(abi.EBADF)
        return entry.file

    def entry(self, fd: int) -> FdEntry:
        entry = self._fds.get(fd)
        if entry is None:
            raise SyscallError(abi.EBADF)
        return entry

    def lowest_free(self, start: int = 0) -> int:
        fd = start
        while fd in self._fds:
            fd += 1
        if fd >= self.limit:
            raise SyscallError(abi.EMFILE)
        return fd

    def install(self, file: OpenFile, cloexec: bool = False, start: int = 0) -> int:
        fd = self.lowest_free(start)
        self.put(fd, file, cloexec)
        return fd

    def put(self, fd: int, file: OpenFile, cloexec: bool) -> None:
        """Make ``fd`` refer to ``file``, closing what it referred to before."""
        file.refs += 1
        old = self._fds.get(fd)
        self._fds[fd] = FdEntry(file, cloexec)
        if old is not None:
            _drop(old.file)

    def close(self, fd: int) -> OpenFile:
        entry = self._fds.pop(fd, None)
        if entry is None:
            raise SyscallError(abi.EBADF)
        _drop(entry.file)
        return entry.file

    def close_all(self) -> None:
        for fd in list(self._fds):
            self.close(fd)

    def close_on_exec(self) -> None:
        for fd, entry in list(self._fds.items()):
            if entry.cloexec:
                self.close(fd)

    def fork(self) -> FdTable:
        new = FdTable()
        new.limit = self.limit
        for fd, entry in self._fds.items():
            new.put(fd, entry.file, entry.cloexec)
        return new

    def __contains__(self, fd: int) -> bool:
        return fd in self._fds

    def __len__(self) -> int:
        return len(self._fds)


def _drop(file: OpenFile) -> None:
    file.refs -= 1
    if file.refs == 0:
        file.release()


@attrs.define(eq=False)
class SigAction:
    handler: int = 0  # SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0


@attrs.define(eq=False)
class Process:
    """A thread group."""

    pid: int
    ppid: int
    mm: AddressSpace
    fds: FdTable
    fs: FsContext
    creds: Credentials
    argv: list[bytes]
    envp: list[bytes]
    exe_path: str
    comm: str
    pgid: int = 0
    sid: int = 0
    start_time_ns: int = 0
    threads: list[Task] = attrs.Factory(list)
    sigactions: list[SigAction] = attrs.Factory(
        lambda: [SigAction() for _ in range(abi.NSIG + 1)]
    )
    rlimits: dict[int, tuple[int, int]] = attrs.Factory(dict)
    exit_status: int | None = None  # wait status once the group has exited
    dumpable: int = 1
    no_new_privs: bool = False
    pdeathsig: int = 0
    kernel: Kernel = None  # type: ignore[assignment]
    exit_signal: int = abi.SIGCHLD  # sent to the parent when this process ends
    zombie: bool = False
    child_waiters: WaitQueue = attrs.Factory(WaitQueue)  # wait4 sleeps here
    vfork_parent: Task | None = None  # blocked in vfork until we exec or exit
    vfork_done: WaitQueue | None = None  # notified when we exec or exit
    rusage_children_ns: int = 0
    # Process-directed signals not yet taken by a thread (SigInfo).
    shared_pending: list[Any] = attrs.Factory(list)
    # ITIMER_REAL (alarm, setitimer) while armed: a sentry.timers.ITimer.
    itimer_real: Any = None
    # Job control (sentry.jobctl): stopped by a stop signal; the reports
    # wait4(WUNTRACED) and wait4(WCONTINUED) have not collected yet; the
    # queue the threads of a stopped group sleep on.
    stopped: bool = False
    stop_report: int = 0
    cont_report: bool = False
    resume_queue: WaitQueue = attrs.Factory(WaitQueue)
    # Ran execve since fork (setpgid on it fails with EACCES).
    did_exec: bool = False

    def fds_shared(self) -> bool:
        return self.fds.users > 1

    def fds_release(self) -> None:
        """This process stops using its descriptor table."""
        self.fds.users -= 1
        if self.fds.users == 0:
            self.fds.close_all()


@attrs.define(eq=False)
class Task:
    """One thread."""

    tid: int
    process: Process
    sigmask: int = 0
    clear_child_tid: int = 0
    robust_list: int = 0
    robust_len: int = 0
    altstack: tuple[int, int, int] = (0, 2, 0)  # sp, flags (SS_DISABLE), size
    name: str = ""
    exited: bool = False
    # The CPU state while the task is not on its CPU (a Unicorn context).
    context: Any = None
    # Where the task starts next when it is not resuming a syscall (execve).
    resume_rip: int | None = None
    # State of a blocking syscall that is re-executed when the task wakes:
    # the futex waiter it queued, or the deadline of a sleep or timed wait.
    futex_waiter: Any = None
    wait_deadline_ns: int | None = None
    # Bytes a blocking write moved before it had to wait (see vfs.wait).
    io_done: int = 0
    # Signals generated for this thread and not yet delivered (SigInfo).
    pending: list[Any] = attrs.Factory(list)
    # Woken from a parked syscall by a signal: deliver before it runs again.
    interrupted: bool = False
    # The mask rt_sigsuspend / ppoll replaced, restored after the handler.
    saved_sigmask: int | None = None
    # Signals rt_sigtimedwait takes though they are blocked.
    waiting_for_signals: int = 0

    @property
    def mm(self) -> AddressSpace:
        return self.process.mm

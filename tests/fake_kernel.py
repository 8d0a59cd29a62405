"""A tiny stand-in for the kernel, with just what /dev, /proc and pipes use.

The names mirror sentry.kernel and sentry.task (Process, Task, FdTable ...),
so the device tests exercise the same attributes the real kernel offers.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import OpenFile
from vfs.devfs import new_devfs
from vfs.mount import Location, MountTable
from vfs.procfs import new_procfs
from vfs.tmpfs import new_tmpfs


class FakeMM:
    """Guest memory: one page at BASE."""

    BASE = 0x10000

    def __init__(self) -> None:
        self.page = bytearray(4096)

    def _span(self, addr: int, n: int) -> slice:
        if addr < self.BASE or addr + n > self.BASE + len(self.page):
            raise SyscallError(abi.EFAULT)
        return slice(addr - self.BASE, addr - self.BASE + n)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.page[self._span(addr, n)])

    def write(self, addr: int, data: bytes) -> None:
        self.page[self._span(addr, len(data))] = data

    def mapped_bytes(self) -> int:
        return 3 * 4096

    def maps_text(self) -> str:
        return "00400000-00401000 r-xp 00000000 00:00 0 /bin/prog\n"


@attrs.define
class Creds:
    uid: int = 0
    euid: int = 0
    suid: int = 0
    fsuid: int = 0
    gid: int = 0
    egid: int = 0
    sgid: int = 0
    fsgid: int = 0
    groups: list[int] = attrs.Factory(list)


@attrs.define
class Entry:
    file: OpenFile
    cloexec: bool


class FakeFds:
    def __init__(self) -> None:
        self.table: dict[int, Entry] = {}

    def items(self) -> list[tuple[int, OpenFile]]:
        return [(fd, e.file) for fd, e in sorted(self.table.items())]

    def entry(self, fd: int) -> Entry:
        if fd not in self.table:
            raise SyscallError(abi.EBADF)
        return self.table[fd]


@attrs.define
class Action:
    handler: int = 0


@attrs.define(eq=False)
class Proc:
    pid: int
    ppid: int = 1
    pgid: int = 0
    sid: int = 0
    argv: list[bytes] = attrs.Factory(lambda: [b"prog", b"-v"])
    envp: list[bytes] = attrs.Factory(lambda: [b"HOME=/root"])
    exe_path: str = "/bin/prog"
    comm: str = "prog"
    fs: object = None
    mm: FakeMM = attrs.Factory(FakeMM)
    fds: FakeFds = attrs.Factory(FakeFds)
    creds: Creds = attrs.Factory(Creds)
    threads: list[Task] = attrs.Factory(list)
    start_time_ns: int = 5 * 10**9
    sigactions: list[Action] = attrs.Factory(lambda: [Action() for _ in range(65)])


@attrs.define(eq=False)
class Task:
    tid: int
    process: Proc
    name: str = ""
    sigmask: int = 0

    @property
    def mm(self) -> FakeMM:
        return self.process.mm


class FakeClock:
    def monotonic_ns(self) -> int:
        return 1234_560_000_000

    def realtime_ns(self) -> int:
        return 1_700_000_000 * 10**9

    def boot_time_s(self) -> int:
        return 1_699_998_765


class FakeKernel:
    def __init__(self) -> None:
        self.mounts = MountTable(new_tmpfs(0o755), "tmpfs", "none")
        self.clock = FakeClock()
        self.procs: dict[int, Proc] = {}
        self.current: Task | None = None
        self.random_calls: list[int] = []

    def add_process(self, pid: int, tids: tuple[int, ...] = ()) -> Proc:
        root = self.mounts.root
        proc = Proc(pid, pgid=pid, sid=pid)
        proc.fs = attrs.make_class("Fs", ["cwd", "root", "umask"])(root, root, 0o22)
        proc.threads = [Task(t, proc) for t in (pid, *tids)]
        self.procs[pid] = proc
        return proc

    def processes(self) -> list[Proc]:
        return list(self.procs.values())

    def find_process(self, pid: int) -> Proc | None:
        return self.procs.get(pid)

    def random_bytes(self, n: int) -> bytes:
        self.random_calls.append(n)
        return bytes(range(n % 256))[:n].ljust(n, b"\x07")

    def uname(self) -> dict[str, str]:
        return {
            "sysname": "Linux",
            "nodename": "sandbox",
            "release": "6.1.0",
            "version": "#1 SMP",
            "machine": "x86_64",
            "domainname": "(none)",
        }

    def task_state(self, proc: Proc, task: object) -> str:
        return "R"

    def ncpus(self) -> int:
        return 2

    def memory_limit_bytes(self) -> int:
        return 1 << 30


def make_kernel() -> FakeKernel:
    k = FakeKernel()
    k.mounts.root.inode.mkdir("proc", 0o555, 0, 0)
    k.mounts.root.inode.mkdir("dev", 0o755, 0, 0)
    k.mounts.mount("/proc", new_procfs(k), "proc", "proc")
    k.mounts.mount("/dev", new_devfs(k, tty_fds=()), "devtmpfs", "udev")
    proc = k.add_process(7, tids=(9,))
    k.current = proc.threads[0]
    return k


def resolve(k: FakeKernel, path: str, follow: bool = True) -> Location:
    return k.mounts.resolve(k.mounts.root, path, follow=follow)


def read_all(k: FakeKernel, path: str) -> bytes:
    loc = resolve(k, path)
    return loc.inode.open(abi.O_RDONLY, path, k.current).read(1 << 20)


def errno_of(func: Callable[..., object], *args: object) -> int:
    with pytest.raises(SyscallError) as info:
        func(*args)
    return info.value.errno

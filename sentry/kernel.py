"""The kernel: services, the task table, the run loop and syscall dispatch.

Theory of operation
-------------------
One :class:`Kernel` runs every task of one sandbox on one host thread. The
run loop picks a runnable task, loads its registers into its address space's
CPU and lets Unicorn run until a syscall handler stops the CPU (the task
exited, blocked or yielded) or the CPU faults.

Every ``syscall`` instruction lands in :meth:`Kernel._dispatch` with the number
and the six arguments already read in one batched call. The dispatcher is the
only place that turns :class:`SyscallError` into ``-errno``; any other
exception is a sentry bug: it is reported with its traceback, the sandbox
stops, and the guest is never handed a made-up result.

Time, randomness and ids come from the services on the kernel (``clock``,
``random_bytes``, ``alloc_pid``) so a deterministic mode can replace them.
"""

from __future__ import annotations

import os
import select
import sys
import time
import traceback
from collections.abc import Callable, Iterable

import attrs

from sentry import abi
from sentry.errors import GuestFault, KernelBug, SyscallError
from sentry.mm import AddressSpace
from sentry.syscalls.mm import SharedFileMaps
from sentry.syscalls.table import Syscall, default_table
from sentry.task import Credentials, FdTable, FsContext, Process, Task
from vfs.locks import LockTable
from vfs.mount import MountTable
from vfs.wait import WouldBlock


class Clock:
    """Wall and monotonic time as the guest sees them."""

    def __init__(self) -> None:
        self._boot_mono = time.monotonic_ns()
        self._boot_real = time.time_ns()

    def realtime_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        # Uptime of the sandbox's kernel, plus a day so it never looks fresh.
        return time.monotonic_ns() - self._boot_mono + 86400 * 10**9

    def boot_time_s(self) -> int:
        return (self._boot_real - 86400 * 10**9) // 10**9

    def cputime_ns(self) -> int:
        return time.process_time_ns()


@attrs.define
class Options:
    """How the sandbox is set up (the CLI fills this in)."""

    root: str = "/"
    binds: list[tuple[str, str, bool]] = attrs.Factory(list)  # src, dst, read_only
    tmpfs: list[str] = attrs.Factory(list)
    cwd: str | None = None
    memory_limit: int | None = None
    max_tasks: int = 4096
    hostname: str | None = None


class Kernel:
    def __init__(self, options: Options, mounts: MountTable) -> None:
        self.options = options
        self.mounts = mounts
        self.clock = Clock()
        self.table: list[Syscall] = default_table()
        self._processes: dict[int, Process] = {}
        self._tasks: dict[int, Task] = {}
        self._next_pid = 1
        self.current: Task | None = None
        self.exit_status: int | None = None
        self.kernel_bug: BaseException | None = None
        self.hostname = options.hostname or os.uname().nodename
        self.domainname = "(none)"
        self.tracer: object = None
        self.shared_maps = SharedFileMaps()
        self.locks = LockTable()

    # --- services ------------------------------------------------------------

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def alloc_pid(self) -> int:
        if len(self._tasks) >= self.options.max_tasks:
            raise SyscallError(abi.EAGAIN)
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def uname(self) -> dict[str, str]:
        host = os.uname()
        return {
            "sysname": "Linux",
            "nodename": self.hostname,
            "release": host.release,
            "version": host.version,
            "machine": "x86_64",
            "domainname": self.domainname,
        }

    def ncpus(self) -> int:
        return os.cpu_count() or 1

    def memory_limit_bytes(self) -> int:
        if self.options.memory_limit is not None:
            return self.options.memory_limit
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    # --- the task table ------------------------------------------------------

    def processes(self) -> Iterable[Process]:
        return list(self._processes.values())

    def find_process(self, pid: int) -> Process | None:
        return self._processes.get(pid)

    def new_process(
        self,
        mm: AddressSpace,
        fds: FdTable,
        fs: FsContext,
        creds: Credentials,
        argv: list[bytes],
        envp: list[bytes],
        exe_path: str,
        ppid: int = 0,
    ) -> Task:
        pid = self.alloc_pid()
        comm = os.path.basename(exe_path)[:15]
        proc = Process(
            pid=pid, ppid=ppid, mm=mm, fds=fds, fs=fs, creds=creds, argv=argv,
            envp=envp, exe_path=exe_path, comm=comm, pgid=pid, sid=pid,
            start_time_ns=self.clock.monotonic_ns(), kernel=self,
        )
        task = Task(tid=pid, process=proc, name=comm)
        proc.threads.append(task)
        self._processes[pid] = proc
        self._tasks[pid] = task
        mm.cpu.on_syscall(self._dispatch if self.tracer is None else self._dispatch_traced)
        return task

    def set_tracer(self, tracer: object) -> None:
        """Trace every syscall from now on (strace, JSON)."""
        self.tracer = tracer
        for proc in self._processes.values():
            proc.mm.cpu.syscall_handler = self._dispatch_traced

    # --- ending tasks --------------------------------------------------------

    def exit_group(self, task: Task, wait_status: int) -> None:
        """End every thread of ``task``'s process with ``wait_status``."""
        proc = task.process
        if proc.exit_status is None:
            proc.exit_status = wait_status
        for t in proc.threads:
            t.exited = True
            self._tasks.pop(t.tid, None)
        proc.fds.close_all()
        proc.mm.cpu.stop()
        if proc.pid == 1:
            self.exit_status = wait_status

    # --- dispatch ------------------------------------------------------------

    def _dispatch(self, regs: list[int]) -> int | None:
        """Run one syscall; return its result (None if the task is gone)."""
        nr = regs[0]
        task = self.current
        assert task is not None
        row = self.table[nr] if nr < 512 else None
        try:
            if row is None:
                raise SyscallError(abi.ENOSYS)
            result = row.handler(task, regs[1], regs[2], regs[3], regs[4], regs[5], regs[6])
        except SyscallError as err:
            result = -err.errno
        except WouldBlock as wait:
            result = self._wait(task, row, regs, wait)
        except Exception as exc:  # noqa: BLE001 - every other exception is our bug
            self._report_bug(row, exc)
            return None
        if task.exited:
            return None
        task.mm.cpu.set_result(result)
        return result

    def _wait(self, task: Task, row: Syscall | None, regs: list[int],
              wait: WouldBlock) -> int:
        """A handler must wait: sleep on the host descriptor and run it again.

        TODO: park the task in the scheduler once there are several tasks;
        until then only a host descriptor can change while the one task waits,
        and a wait on anything else can never end.
        """
        assert row is not None
        while True:
            if wait.host_fd is None:
                sys.stderr.write(
                    f"pysentry: {task.process.comm}[{task.process.pid}] blocks in "
                    f"{row.name}() and nothing can wake it; ending the sandbox\n"
                )
                self.exit_group(task, abi.SIGKILL)
                return -abi.EINTR
            writing = wait.events & abi.POLLOUT
            select.select([] if writing else [wait.host_fd],
                          [wait.host_fd] if writing else [], [])
            try:
                return int(row.handler(task, *regs[1:7])) + wait.done
            except SyscallError as err:
                return wait.done if wait.done else -err.errno
            except WouldBlock as again:
                again.done += wait.done
                wait = again

    def _dispatch_traced(self, regs: list[int]) -> None:
        tracer = self.tracer
        task = self.current
        assert task is not None and tracer is not None
        tracer.enter(task, regs)  # type: ignore[attr-defined]
        result = self._dispatch(regs)
        tracer.exit(task, regs, result)  # type: ignore[attr-defined]

    def _report_bug(self, row: Syscall | None, exc: BaseException) -> None:
        name = row.name if row is not None else "?"
        self.kernel_bug = KernelBug(f"kernel bug in {name}(2): {exc!r}")
        self.kernel_bug.__cause__ = exc
        task = self.current
        if task is not None:
            task.mm.cpu.stop()
            for t in task.process.threads:
                t.exited = True
                self._tasks.pop(t.tid, None)

    # --- the run loop --------------------------------------------------------

    def run(self, first: Task, entry: int, stack_pointer: int,
            on_fault: Callable[[Task, GuestFault], None]) -> int:
        """Run until the first process exits; return its wait status."""
        from unicorn.x86_const import UC_X86_REG_RSP

        cpu = first.mm.cpu
        cpu.write_reg(UC_X86_REG_RSP, stack_pointer)
        rip = entry
        self.current = first
        while not first.exited:
            try:
                cpu.run(rip)
            except GuestFault as fault:
                vma = first.mm.find(fault.address)
                if vma is not None and vma.beyond_eof:
                    fault.signo = abi.SIGBUS
                    fault.reason = "access beyond the end of a mapped file"
                on_fault(first, fault)
                if self.tracer is not None:
                    self.tracer.killed(first, fault.signo)  # type: ignore[attr-defined]
                self.exit_group(first, fault.signo | 0x80)
                break
            if self.kernel_bug is not None:
                raise self.kernel_bug
            if not first.exited:
                raise KernelBug("CPU stopped without a reason")
        assert self.exit_status is not None or first.process.exit_status is not None
        status = first.process.exit_status
        return status if status is not None else 0


def print_bug(exc: BaseException) -> None:
    sys.stderr.write(f"pysentry: {exc}\n")
    cause = exc.__cause__
    if cause is not None:
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)

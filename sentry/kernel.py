"""The kernel: services, the task table, the run loop and syscall dispatch.

Theory of operation
-------------------
One :class:`Kernel` runs every task of one sandbox on one host thread. The
run loop asks the scheduler (:mod:`sentry.sched`) for a runnable task, puts its
registers on its address space's CPU (threads of one process take turns on one
Unicorn engine; a context switch saves and restores a Unicorn context) and lets
Unicorn run until a syscall handler stops the CPU (the task exited, was parked
on something to wait for, or yielded), the time slice ends because others are
runnable, or the CPU faults. Pending signals are delivered when a syscall
returns and before a parked or preempted task runs again.

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
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
from unicorn.x86_const import UC_X86_REG_RIP, UC_X86_REG_RSP

from sentry import abi, jobctl, signals
from sentry.errors import GuestFault, KernelBug, SyscallError
from sentry.futex import FutexTable
from sentry.mm import AddressSpace
from sentry.net.policy import NetPolicy, NetStack
from sentry.sched import Scheduler
from sentry.syscalls.mm import SharedFileMaps
from sentry.syscalls.table import Syscall, default_table
from sentry.task import Credentials, FdTable, FsContext, Process, Task
from vfs import pidfd
from vfs.locks import LockTable
from vfs.mount import MountTable
from vfs.wait import WaitQueue, WouldBlock

if TYPE_CHECKING:
    from jshooks.engine import HookEngine
    from sentry.hostsig import HostSignals


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
    net: NetPolicy = attrs.Factory(NetPolicy)  # --net, --allow-connect/-bind


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
        self.hooks: HookEngine | None = None
        self.shared_maps = SharedFileMaps()
        self.locks = LockTable()
        self.sched = Scheduler(self.clock.monotonic_ns)
        self.sched.on_change = self._limit_current_slice
        self.futexes = FutexTable()
        self.net = NetStack(options.net)
        # Set when some signal may be waiting for delivery; cleared lazily.
        self.signals_pending = False
        # The host terminal as the guest's first session sees it.
        self.terminal = jobctl.Terminal()
        # The host's signals waiting to be passed on (sentry.hostsig).
        self.host_signals: HostSignals | None = None
        # Called between time slices, with no task on a CPU: the moment the
        # control socket's requests run (see sentry/control.py).
        self.safe_point: Callable[[], None] | None = None

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

    def memory_in_use(self) -> int:
        """What the live processes map, each address space counted once."""
        spaces = {id(p.mm): p.mm for p in self._processes.values() if not p.zombie}
        return sum(mm.mapped_bytes() for mm in spaces.values())

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
        """The first process of the sandbox (later ones come from clone)."""
        pid = self.alloc_pid()
        comm = os.path.basename(exe_path)[:15]
        proc = Process(
            pid=pid, ppid=ppid, mm=mm, fds=fds, fs=fs, creds=creds, argv=argv,
            envp=envp, exe_path=exe_path, comm=comm, pgid=pid, sid=pid,
            start_time_ns=self.clock.monotonic_ns(), kernel=self,
        )
        task = Task(tid=pid, process=proc, name=comm)
        proc.threads.append(task)
        if self.terminal.sid == 0 and pid == 1:
            self.terminal = jobctl.Terminal(sid=pid, fg_pgrp=pid)
        self.add_process(proc)
        self.add_task(task)
        mm.cpu.resident = task
        return task

    def add_process(self, proc: Process) -> None:
        self._processes[proc.pid] = proc
        self.attach_cpu(proc.mm)

    def attach_cpu(self, mm: AddressSpace) -> None:
        """Route the syscalls of ``mm``'s CPU to this kernel."""
        if mm.cpu.syscall_handler is None:
            mm.cpu.on_syscall(self._syscall_entry())

    def add_task(self, task: Task) -> None:
        self._tasks[task.tid] = task
        self.sched.make_runnable(task)

    def drop_task(self, task: Task) -> None:
        """``task`` has exited: it never runs again."""
        self._tasks.pop(task.tid, None)
        self.sched.forget(task)
        pidfd.process_changed(task.process)
        if task is self.current:
            task.mm.cpu.stop()

    def task_state(self, proc: Process, task: Task | None) -> str:
        """The state letter /proc shows: R runs or may run, S waits, T stopped,
        Z zombie.

        For a process (``task`` None) it is the state of its first thread, as
        Linux shows its group leader's.
        """
        if proc.zombie:
            return "Z"
        if task is None:
            live = [t for t in proc.threads if not t.exited]
            task = live[0] if live else None
        if task is None or task.exited:
            return "Z"
        if proc.stopped:
            return "T"
        return "S" if self.sched.is_waiting(task) else "R"

    def children_of(self, pid: int) -> list[Process]:
        return [p for p in self._processes.values() if p.ppid == pid and p.pid != pid]

    def reap(self, proc: Process) -> None:
        """Forget a zombie for good (its parent waited for it)."""
        self._processes.pop(proc.pid, None)
        pidfd.process_changed(proc)

    def process_ended(self, proc: Process) -> None:
        pidfd.process_changed(proc)
        if proc.pid == 1:
            self.exit_status = proc.exit_status
        # The memory goes when no process uses the address space any more.
        if not any(p.mm is proc.mm and not p.zombie for p in self._processes.values()):
            proc.mm.cpu.stop()

    def block_for_vfork(self, parent: Task, child: Task) -> None:
        """vfork: ``parent`` sleeps (its syscall done) until ``child`` lets go."""
        queue = WaitQueue()
        child.process.vfork_done = queue
        self.sched.park(parent, WouldBlock(queue))
        parent.mm.cpu.stop()

    def release_vfork_parent(self, proc: Process) -> None:
        """``proc`` exec'd or exited: a parent blocked in vfork goes on."""
        queue = proc.vfork_done
        if queue is not None:
            proc.vfork_done = None
            queue.notify()

    def send_signal(self, proc: Process, signo: int, child: Process | None = None
                    ) -> None:
        """Send ``signo`` to a process from the kernel (SIGCHLD for ``child``)."""
        info = signals.SigInfo(signo, signals.SI_KERNEL)
        if child is not None:
            status = child.exit_status or 0
            if status & 0x7F:
                code = signals.CLD_DUMPED if status & 0x80 else signals.CLD_KILLED
                value = status & 0x7F
            else:
                code, value = signals.CLD_EXITED, (status >> 8) & 0xFF
            info = signals.SigInfo(signo, code, child.pid, child.creds.uid, 0, value)
        signals.send_to_process(self, proc, info)

    def signals_after_syscall(self, task: Task, regs: list[int], result: int) -> None:
        """Deliver what became deliverable during the syscall that just ended."""
        if self.host_signals is not None and self.host_signals.arrived:
            self.host_signals.take()
        if signals.has_deliverable(task):
            signals.deliver(self, task, regs[7], result, False)
        if task.saved_sigmask is not None and not task.exited:
            task.sigmask, task.saved_sigmask = task.saved_sigmask, None
        self.signals_pending = any(
            t.pending or t.process.shared_pending for t in self._tasks.values()
        )

    def futex_wake(self, mm: AddressSpace, addr: int, count: int) -> int:
        return self.futexes.wake(mm, addr, count)

    def all_tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def set_tracer(self, tracer: object) -> None:
        """Trace every syscall from now on (strace, JSON)."""
        self.tracer = tracer
        entry = self._syscall_entry()
        for proc in self._processes.values():
            proc.mm.cpu.syscall_handler = entry

    def set_hooks(self, hooks: HookEngine | None) -> None:
        """Run the JS hooks of ``hooks`` around the syscalls they watch.

        Without hooks the CPUs keep the plain dispatcher, so a sandbox with no
        hooks pays nothing; with hooks, an unwatched syscall pays one lookup.
        """
        self.hooks = hooks
        entry = self._syscall_entry()
        for proc in self._processes.values():
            proc.mm.cpu.syscall_handler = entry

    def _syscall_entry(self) -> Callable[[list[int]], int | None]:
        """The dispatcher the CPUs call, given what is attached."""
        if self.hooks is None:
            return self._dispatch if self.tracer is None else self._dispatch_traced
        if self.tracer is None:
            return self._dispatch_hooked
        return self._dispatch_traced_hooked

    # --- ending tasks --------------------------------------------------------

    def exit_group(self, task: Task, wait_status: int) -> None:
        """End every thread of ``task``'s process with ``wait_status``."""
        from sentry import lifecycle

        lifecycle.exit_group(self, task, wait_status)

    # --- dispatch ------------------------------------------------------------

    def _dispatch(self, regs: list[int], *, deliver: bool = True) -> int | None:
        """Run one syscall; return the value for rax (None: leave rax alone).

        The CPU glue writes the value: see :meth:`Cpu.on_syscall`. Signals that
        became deliverable during the call are delivered after it, unless
        ``deliver`` is false (the tracer reports the call first).
        """
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
            # A call that waited before and fails now leaves no deadline.
            task.wait_deadline_ns = None
        except WouldBlock as wait:
            self._park(task, regs, wait)
            return None
        except Exception as exc:  # noqa: BLE001 - every other exception is our bug
            self._report_bug(row, exc)
            return None
        if task.exited:
            return None
        if self.signals_pending and deliver:
            self._signals_after_call(task, regs, result)
            return None
        return result

    def _signals_after_call(self, task: Task, regs: list[int], result: int) -> None:
        """Deliver what became deliverable during the call that just ended.

        A signal frame saves RAX and a handler starts with RAX = 0, so the
        result goes into RAX before delivery and nothing is written after it.
        """
        task.mm.cpu.set_result(result)
        self.signals_after_syscall(task, regs, result)

    def _park(self, task: Task, regs: list[int], wait: WouldBlock) -> None:
        """The syscall must wait: leave RIP on the ``syscall`` instruction so it
        runs again from the start when the task is woken, and switch away."""
        cpu = task.mm.cpu
        cpu.set_rip_in_syscall(regs[7])
        self.sched.park(task, wait)
        cpu.stop()

    def _dispatch_traced(self, regs: list[int]) -> int | None:
        tracer = self.tracer
        task = self.current
        assert task is not None and tracer is not None
        tracer.enter(task, regs)  # type: ignore[attr-defined]
        result = self._dispatch(regs, deliver=False)
        if self.sched.is_waiting(task) and result is None:
            # Parked: the call runs again when woken and is reported then.
            tracer.forget(task)  # type: ignore[attr-defined]
            return None
        if result is not None and self.signals_pending:
            self._signals_after_call(task, regs, result)
            # A call after which a signal ended the task has no result to show.
            tracer.exit(task, regs, None if task.exited else result)  # type: ignore[attr-defined]
            return None
        tracer.exit(task, regs, result)  # type: ignore[attr-defined]
        return result

    def _dispatch_hooked(self, regs: list[int]) -> int | None:
        """:meth:`_dispatch` with the JS hooks that watch ``regs[0]`` around it."""
        if regs[0] in self.hooks.watched:  # type: ignore[union-attr]
            return self._hooked_call(regs, None)
        return self._dispatch(regs)

    def _dispatch_traced_hooked(self, regs: list[int]) -> int | None:
        if regs[0] in self.hooks.watched:  # type: ignore[union-attr]
            return self._hooked_call(regs, self.tracer)
        return self._dispatch_traced(regs)

    def _hooked_call(self, regs: list[int], tracer: Any) -> int | None:
        """One watched syscall: before-hooks, the handler (with the arguments
        they chose, or not at all when they chose the result), after-hooks,
        then signals, so a signal frame saves the result the guest gets."""
        hooks = self.hooks
        task = self.current
        assert task is not None and hooks is not None
        try:
            args = hooks.before(task, regs)
            if tracer is not None:
                tracer.enter(task, args)
            result = hooks.skipped
            if result is None:
                result = self._dispatch(args, deliver=False)
                if result is None:
                    if self.sched.is_waiting(task):
                        hooks.parked(task, regs, args)
                        if tracer is not None:
                            tracer.forget(task)
                    else:
                        hooks.abandoned(task)
                        if tracer is not None:
                            tracer.exit(task, args, None)
                    return None
            result = hooks.after(task, args, result)
        except Exception as exc:  # noqa: BLE001 - the engine failing is our bug
            self._report_bug(self.table[regs[0]], exc)
            return None
        if self.signals_pending:
            self._signals_after_call(task, regs, result)
            if tracer is not None:
                tracer.exit(task, args, None if task.exited else result)
            return None
        if tracer is not None:
            tracer.exit(task, args, result)
        return result

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
                self.sched.forget(t)

    # --- the run loop --------------------------------------------------------

    def run(self, first: Task, entry: int, stack_pointer: int,
            on_fault: Callable[[Task, GuestFault], None]) -> int:
        """Run every task until the first process exits; return its wait status."""
        cpu = first.mm.cpu
        cpu.write_reg(UC_X86_REG_RSP, stack_pointer)
        first.resume_rip = entry
        init = first.process
        while init.exit_status is None:
            task = self.sched.next()
            if self.host_signals is not None and self.host_signals.arrived:
                self.host_signals.take()
            if task is None:
                self._deadlock(init)
                break
            self._run_slice(task, on_fault)
            if self.kernel_bug is not None:
                raise self.kernel_bug
            if self.safe_point is not None:
                self.safe_point()
        status = init.exit_status
        return status if status is not None else 0

    def _run_slice(self, task: Task, on_fault: Callable[[Task, GuestFault], None]
                   ) -> None:
        """Put ``task`` on its CPU and run it until it stops, blocks or is preempted."""
        cpu = task.mm.cpu

        # Switch the CPU's register state to this task if another thread was on it.
        if cpu.resident is not task:
            resident = cpu.resident
            if resident is not None and not resident.exited:
                resident.context = cpu.uc.context_save()
            if task.context is not None:
                cpu.uc.context_restore(task.context)
                task.context = None
            cpu.resident = task
        # The task's group is stopped: it sleeps until SIGCONT (or SIGKILL).
        if jobctl.hold_if_stopped(self, task):
            return
        # A signal woke the task from a parked syscall, or waits for it.
        if task.interrupted or (self.signals_pending and signals.has_deliverable(task)):
            restartable = task.interrupted
            task.interrupted = False
            if restartable:
                self._abandon_wait(task)
                restartable = self._may_restart(task)
            if signals.deliver(self, task, None, None, restartable):
                return
        rip = task.resume_rip
        if rip is None:
            rip = cpu.read_reg(UC_X86_REG_RIP)
        task.resume_rip = None
        self.current = task
        timeout = self.sched.slice_us()
        try:
            cpu.run(rip, timeout)
        except GuestFault as fault:
            vma = task.mm.find(fault.address)
            if vma is not None and vma.beyond_eof:
                fault.signo = abi.SIGBUS
                fault.reason = "access beyond the end of a mapped file"
            if self._fault_to_handler(task, fault):
                return
            on_fault(task, fault)
            if self.tracer is not None:
                self.tracer.killed(task, fault.signo)  # type: ignore[attr-defined]
            self.exit_group(task, fault.signo | 0x80)
        finally:
            self.current = None

        # Preempted or yielding: back to the end of the run queue.
        if not task.exited and not self.sched.is_waiting(task):
            self.sched.make_runnable(task)

    def _limit_current_slice(self) -> None:
        """A task became runnable or a timer was set while another runs: the
        running one gets a time slice if it had none."""
        task = self.current
        if task is not None:
            timeout = self.sched.slice_us()
            if timeout:
                task.mm.cpu.limit_run(timeout)

    def _abandon_wait(self, task: Task) -> None:
        """A parked syscall is interrupted: forget what it was waiting for."""
        if task.futex_waiter is not None:
            self.futexes.cancel(task.futex_waiter)
            task.futex_waiter = None
        task.wait_deadline_ns = None
        task.waiting_for_signals = 0

    def _may_restart(self, task: Task) -> bool:
        """A signal woke ``task`` from a parked call: may the call run again?

        Calls whose wait says ``restart=False`` (poll, select, epoll_wait,
        nanosleep ...) fail with EINTR when a handler is about to run, even
        under SA_RESTART, as Linux's -ERESTARTNOHAND and restart blocks do;
        the call is finished here, before the handler's frame saves RAX.
        """
        wait = self.sched.take_interrupted(task)
        if wait is None or wait.restart:
            return True
        if not _handler_due(task):
            # No handler runs (a stop, or a signal sigtimedwait takes): the
            # call goes on towards the deadline it had, as restart blocks do.
            task.wait_deadline_ns = wait.deadline_ns
            return True
        cpu = task.mm.cpu
        cpu.write_reg(UC_X86_REG_RIP, cpu.read_reg(UC_X86_REG_RIP) + 2)
        result = -abi.EINTR
        if wait.on_interrupt is not None:
            try:
                wait.on_interrupt()
            except SyscallError as err:
                result = -err.errno
        cpu.set_result(result)
        return False

    def _fault_to_handler(self, task: Task, fault: GuestFault) -> bool:
        """Deliver a CPU fault to the guest's handler if it has one."""
        action = task.process.sigactions[fault.signo]
        blocked = task.sigmask & signals.bit(fault.signo)
        if action.handler in (signals.SIG_DFL, signals.SIG_IGN) or blocked:
            return False
        vma = task.mm.find(fault.address)
        code = signals.SEGV_ACCERR if vma is not None else signals.SEGV_MAPERR
        task.pending.insert(0, signals.SigInfo(fault.signo, code, addr=fault.address))
        task.mm.cpu.fault = None
        self.sched.make_runnable(task)
        signals.deliver(self, task, None, None, False)
        return True

    def _deadlock(self, init: Process) -> None:
        """Every task waits for something no one can do: end the sandbox."""
        sys.stderr.write(
            "pysentry: every task is blocked and nothing can wake one; "
            "ending the sandbox\n"
        )
        for task in self.all_tasks():
            self.exit_group(task, abi.SIGKILL)
        if init.exit_status is None:
            init.exit_status = abi.SIGKILL


def _handler_due(task: Task) -> bool:
    """Whether a deliverable pending signal of ``task`` has a handler."""
    actions = task.process.sigactions
    for info in (*task.pending, *task.process.shared_pending):
        if task.sigmask & signals.bit(info.signo):
            continue
        if actions[info.signo].handler not in (signals.SIG_DFL, signals.SIG_IGN):
            return True
    return False


def print_bug(exc: BaseException) -> None:
    sys.stderr.write(f"pysentry: {exc}\n")
    cause = exc.__cause__
    if cause is not None:
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)

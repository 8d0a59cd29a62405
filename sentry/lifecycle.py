"""How tasks begin and end: clone, exit, reaping and execve.

Theory of operation
-------------------
``clone`` makes a task that shares with its parent exactly what the flags
say: the address space (CLONE_VM), the descriptor table (CLONE_FILES), the
file system context (CLONE_FS), the signal actions (CLONE_SIGHAND) and the
thread group (CLONE_THREAD). What is not shared is copied: a fork gets a new
:class:`~sentry.mm.AddressSpace` (its own Unicorn engine) in which private
pages are copied and MAP_SHARED pages are the very same host buffers.

The child starts from the parent's CPU state captured inside the syscall hook,
with RIP moved past the ``syscall`` instruction, RAX = 0, and the stack and TLS
the flags ask for. It runs when the scheduler picks it.

A process that exits becomes a zombie: its wait status is kept until the
parent reaps it with wait4/waitid; its children go to the first process. The
parent's ``child_waiters`` queue is notified, and it receives its exit signal.

``execve`` builds a fresh address space, loads the program into it and makes it
the process's; the old one is dropped when nothing shares it any more.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import attrs
from unicorn.x86_const import (
    UC_X86_REG_FS_BASE,
    UC_X86_REG_RAX,
    UC_X86_REG_RIP,
    UC_X86_REG_RSP,
)

from sentry import abi, signals, timers
from sentry.errors import LoadError, SyscallError
from sentry.mm import AddressSpace, HostBuffer, copy_touched
from sentry.task import FsContext, Process, SigAction, Task

if TYPE_CHECKING:
    from sentry.kernel import Kernel

CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_DETACHED = 0x00400000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_IO = 0x80000000
CSIGNAL = 0xFF

_NAMESPACES = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
               | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)


def fork_address_space(parent: AddressSpace) -> AddressSpace:
    """A copy of ``parent`` for a forked child: private pages copied, shared
    pages shared. Under --memory-limit the copy counts like new mappings:
    a fork that would go past it fails with ENOMEM."""
    budget = parent.memory_limit
    if budget is not None and budget.in_use() + parent.mapped_bytes() > budget.limit:
        raise SyscallError(abi.ENOMEM)
    child = AddressSpace(parent.memory_limit)
    copies: dict[int, HostBuffer] = {}
    for vma in parent.vmas():
        buf = vma.buf
        if not vma.flags & abi.MAP_SHARED:
            new = copies.get(id(buf))
            if new is None:
                new = copies[id(buf)] = HostBuffer(buf.size)
            copy_touched(buf, new, vma.offset, vma.end - vma.start)
            buf = new
        child.adopt(attrs.evolve(vma, buf=buf))
    child.inherit_brk(parent, copies)
    child.stack_top = parent.stack_top
    return child


def clone_task(
    kernel: Kernel,
    parent: Task,
    flags: int,
    stack: int,
    parent_tid: int,
    child_tid: int,
    tls: int,
    syscall_rip: int,
) -> Task:
    """The body of clone/clone3/fork/vfork; returns the new task."""

    # Check the combinations Linux refuses.
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
        raise SyscallError(abi.EINVAL)
    if flags & CLONE_SIGHAND and not flags & CLONE_VM:
        raise SyscallError(abi.EINVAL)
    if flags & CLONE_FS and flags & CLONE_NEWNS:
        raise SyscallError(abi.EINVAL)
    if flags & _NAMESPACES:
        # TODO: namespaces inside the sandbox are not offered yet.
        raise SyscallError(abi.EPERM)
    tid = kernel.alloc_pid()
    proc = parent.process

    # Share or copy each part of the parent, as the flags say.
    if flags & CLONE_THREAD:
        child_proc = proc
    else:
        mm = proc.mm if flags & CLONE_VM else fork_address_space(proc.mm)
        fds = proc.fds if flags & CLONE_FILES else proc.fds.fork()
        fs = proc.fs if flags & CLONE_FS else FsContext(
            proc.fs.root, proc.fs.cwd, proc.fs.umask
        )
        sigactions = proc.sigactions if flags & CLONE_SIGHAND else [
            attrs.evolve(a) for a in proc.sigactions
        ]
        ppid = proc.ppid if flags & CLONE_PARENT else proc.pid
        child_proc = Process(
            pid=tid, ppid=ppid, mm=mm, fds=fds, fs=fs, creds=attrs.evolve(proc.creds),
            argv=proc.argv, envp=proc.envp, exe_path=proc.exe_path, comm=proc.comm,
            pgid=proc.pgid, sid=proc.sid, start_time_ns=kernel.clock.monotonic_ns(),
            sigactions=sigactions, rlimits=dict(proc.rlimits), kernel=kernel,
            exit_signal=flags & CSIGNAL,
        )
        if flags & CLONE_FILES:
            fds.users += 1
        kernel.add_process(child_proc)
    child = Task(tid=tid, process=child_proc, sigmask=parent.sigmask, name=parent.name)
    child_proc.threads.append(child)

    # The child's registers: the parent's, returning 0 after the syscall.
    cpu = proc.mm.cpu
    context = cpu.uc.context_save()
    context.reg_write(UC_X86_REG_RIP, syscall_rip + 2)
    context.reg_write(UC_X86_REG_RAX, 0)
    if stack:
        context.reg_write(UC_X86_REG_RSP, stack)
    if flags & CLONE_SETTLS:
        context.reg_write(UC_X86_REG_FS_BASE, tls)
    child.context = context

    # The tid words the flags ask for.
    if flags & CLONE_PARENT_SETTID:
        parent.mm.write_u32(parent_tid, tid)
    if flags & CLONE_CHILD_SETTID:
        child_proc.mm.write_u32(child_tid, tid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    kernel.add_task(child)
    return child


# --- ending --------------------------------------------------------------------


def wait_status_exited(code: int) -> int:
    return (code & 0xFF) << 8


def exit_thread(kernel: Kernel, task: Task, wait_status: int) -> None:
    """One thread ends; the last thread of a process ends the process."""
    proc = task.process
    if task.exited:
        return
    task.exited = True
    kernel.drop_task(task)
    release_robust_futexes(kernel, task)

    # CLONE_CHILD_CLEARTID: clear the word and wake a futex waiter on it.
    if task.clear_child_tid:
        try:
            proc.mm.write_u32(task.clear_child_tid, 0)
            kernel.futex_wake(proc.mm, task.clear_child_tid, 1)
        except SyscallError:
            pass
    live = [t for t in proc.threads if not t.exited]
    if not live:
        _end_process(kernel, proc, wait_status)


# The robust futex list (set_robust_list): the lock words of the robust
# mutexes a thread holds, which the kernel marks when the thread dies.
FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048


def release_robust_futexes(kernel: Kernel, task: Task) -> None:
    """``task`` dies: every robust lock word it still owns gets
    FUTEX_OWNER_DIED (keeping FUTEX_WAITERS) and one waiter is woken, so the
    next locker sees EOWNERDEAD instead of waiting for ever.

    The list is ``struct robust_list_head {next, futex_offset,
    list_op_pending}``; each entry is a ``next`` pointer (bit 0 marks a PI
    lock), its lock word ``futex_offset`` bytes away. ``list_op_pending`` is
    a lock being taken or released when the thread died. A guest that
    corrupted the list only loses the marking, as on Linux.
    """
    head = task.robust_list
    if not head:
        return
    mm = task.mm
    try:
        entry, offset, pending = struct.unpack("<QqQ", mm.read(head, 24))
        walked = 0
        while entry != head and walked < ROBUST_LIST_LIMIT:
            following = mm.read_u64(entry & ~1)
            if entry != pending:
                _owner_died(kernel, task, (entry & ~1) + offset, False)
            entry = following
            walked += 1
        if pending:
            _owner_died(kernel, task, (pending & ~1) + offset, True)
    except SyscallError:
        pass


def _owner_died(kernel: Kernel, task: Task, addr: int, pending: bool) -> None:
    if addr % 4:
        return
    mm = task.mm
    word = mm.read_u32(addr)
    if pending and word == 0:
        # Released just before the death: a waiter may not have been woken.
        kernel.futex_wake(mm, addr, 1)
        return
    if word & FUTEX_TID_MASK != task.tid:
        return
    mm.write_u32(addr, (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
    if word & FUTEX_WAITERS:
        kernel.futex_wake(mm, addr, 1)


def exit_group(kernel: Kernel, task: Task, wait_status: int) -> None:
    """Every thread of the process ends with ``wait_status``."""
    proc = task.process
    if proc.exit_status is None:
        proc.exit_status = wait_status
    for t in list(proc.threads):
        exit_thread(kernel, t, proc.exit_status)


def _end_process(kernel: Kernel, proc: Process, wait_status: int) -> None:
    if proc.exit_status is None:
        proc.exit_status = wait_status
    proc.zombie = True
    proc.fds_release()
    kernel.release_vfork_parent(proc)
    timers.process_ended(kernel, proc)

    # Orphans go to the first process, which hears of those already dead.
    init = kernel.find_process(1)
    for child in kernel.children_of(proc.pid):
        child.ppid = 1
        child.exit_signal = abi.SIGCHLD
        if child.zombie and init is not None and init is not proc:
            _notify_parent(kernel, child, init)
    parent = kernel.find_process(proc.ppid)
    if parent is None or parent is proc:
        kernel.reap(proc)
    else:
        _notify_parent(kernel, proc, parent)
    kernel.process_ended(proc)


def _notify_parent(kernel: Kernel, child: Process, parent: Process) -> None:
    """Tell ``parent`` that ``child`` is a zombie; reap it if nobody will wait.

    A parent that ignores SIGCHLD, or set SA_NOCLDWAIT, leaves no zombies
    behind: "the children [...] will not be transformed into zombies"
    - sigaction(2). SA_NOCLDWAIT alone still sends the signal.
    """
    signo = child.exit_signal
    action = parent.sigactions[abi.SIGCHLD]
    autoreap = signo == abi.SIGCHLD and (
        action.handler == signals.SIG_IGN or bool(action.flags & signals.SA_NOCLDWAIT)
    )
    if autoreap and action.handler == signals.SIG_IGN:
        signo = 0
    if signo:
        kernel.send_signal(parent, signo, child=child)
    if autoreap:
        kernel.reap(child)
    parent.child_waiters.notify()


# --- execve --------------------------------------------------------------------


def exec_image(
    kernel: Kernel, task: Task, data: bytes, name: str, path: str,
    argv: list[bytes], envp: list[bytes], execfn: bytes, dev: int, ino: int,
) -> None:
    """Replace ``task``'s process image with the program in ``data``."""
    from loader.elf import load

    proc = task.process
    mm = AddressSpace(proc.mm.memory_limit)
    creds = proc.creds
    try:
        loaded = load(
            mm, data, name, argv, envp, execfn, kernel.random_bytes(16),
            (creds.uid, creds.euid, creds.gid, creds.egid), dev, ino,
        )
    except LoadError as exc:
        raise SyscallError(exc.errno) from None

    # Past the point of no return: other threads die, the image is replaced.
    for other in list(proc.threads):
        if other is not task:
            exit_thread(kernel, other, 0)
            proc.threads.remove(other)
    old = proc.mm
    old.cpu.stop()
    proc.mm = mm
    kernel.attach_cpu(mm)
    mm.cpu.resident = task
    task.context = None
    mm.cpu.write_reg(UC_X86_REG_RSP, loaded.stack_pointer)
    mm.cpu.write_reg(UC_X86_REG_RIP, loaded.entry)
    task.resume_rip = loaded.entry

    # What execve resets: close-on-exec descriptors, caught signals, the name.
    if proc.fds_shared():
        proc.fds = proc.fds.fork()
    proc.fds.close_on_exec()
    proc.sigactions = [
        SigAction(1) if a.handler == 1 else SigAction() for a in proc.sigactions
    ]
    task.altstack = (0, 2, 0)
    # The robust list pointed into the old image.
    task.robust_list = task.robust_len = 0
    proc.argv, proc.envp, proc.exe_path = list(argv), list(envp), path
    proc.comm = task.name = path.rsplit("/", 1)[-1][:15]
    proc.did_exec = True
    kernel.release_vfork_parent(proc)

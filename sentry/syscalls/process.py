"""Process lifetime and ids: clone, execve, wait, exit, getpid and relatives."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn.x86_const import UC_X86_REG_RIP

from sentry import abi, jobctl, lifecycle
from sentry.errors import SyscallError
from sentry.syscalls.args import encode, path_arg, s32
from sentry.syscalls.table import syscall
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.task import Process, Task

WNOHANG = 1
WUNTRACED = 2
WSTOPPED = 2
WEXITED = 4
WCONTINUED = 8
WNOWAIT = 0x01000000
__WNOTHREAD = 0x20000000
__WALL = 0x40000000
__WCLONE = 0x80000000
P_ALL = 0
P_PID = 1
P_PGID = 2
P_PIDFD = 3
CLD_EXITED = 1
CLD_KILLED = 2
CLD_DUMPED = 3
MAX_SHEBANG_DEPTH = 4
BINPRM_BUF_SIZE = 256


# --- exit ----------------------------------------------------------------------


def exit_group(t: Task, code: int, *_: int) -> int:
    """exit_group(2)."""
    lifecycle.exit_group(t.process.kernel, t, lifecycle.wait_status_exited(code))
    return 0


def exit(t: Task, code: int, *_: int) -> int:
    """exit(2): ends this thread; the last thread ends the process."""
    lifecycle.exit_thread(t.process.kernel, t, lifecycle.wait_status_exited(code))
    return 0


# --- clone ---------------------------------------------------------------------


def _clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    rip = t.mm.cpu.read_reg(UC_X86_REG_RIP)
    kernel = t.process.kernel
    child = lifecycle.clone_task(kernel, t, flags, stack, ptid, ctid, tls, rip)
    if flags & lifecycle.CLONE_VFORK:
        # The parent sleeps until the child execs or exits.
        child.process.vfork_parent = t
        kernel.block_for_vfork(t, child)
    return child.tid


def clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int,
          *_: int) -> int:
    """clone(2): x86-64 argument order (flags, stack, parent_tid, child_tid, tls)."""
    return _clone(t, flags & 0xFFFFFFFF, stack, ptid, ctid, tls)


def clone3(t: Task, args: int, size: int, *_: int) -> int:
    """clone3(2)."""
    if size < 64 or size > 4096:
        raise SyscallError(abi.EINVAL)
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls
     ) = struct.unpack("<8Q", t.mm.read(args, 64))
    if flags & lifecycle.CLONE_PIDFD or flags >> 32:
        raise SyscallError(abi.EINVAL)
    if size > 64 and any(t.mm.read(args + 64, size - 64)):
        # set_tid and cgroup are not offered.
        raise SyscallError(abi.EINVAL)
    if exit_signal > abi.NSIG:
        raise SyscallError(abi.EINVAL)
    top = stack + stack_size if stack else 0
    return _clone(t, flags | exit_signal, top, parent_tid, child_tid, tls)


def fork(t: Task, *_: int) -> int:
    """fork(2)."""
    return _clone(t, abi.SIGCHLD, 0, 0, 0, 0)


def vfork(t: Task, *_: int) -> int:
    """vfork(2)."""
    return _clone(t, lifecycle.CLONE_VM | lifecycle.CLONE_VFORK | abi.SIGCHLD, 0, 0,
                  0, 0)


# --- wait ----------------------------------------------------------------------


def _matches(t: Task, child: Process, idtype: int, ident: int, options: int) -> bool:
    if idtype == P_PID and child.pid != ident:
        return False
    if idtype == P_PGID and child.pgid != ident:
        return False
    # __WCLONE picks children that report with another signal than SIGCHLD.
    if options & __WALL:
        return True
    clone_child = child.exit_signal != abi.SIGCHLD
    return clone_child == bool(options & __WCLONE)


# What a child has to report: it ended, stopped, or continued.
EXITED, STOPPED, CONTINUED = "exited", "stopped", "continued"


def _report_of(child: Process, options: int) -> str | None:
    if child.zombie:
        return EXITED if options & WEXITED else None
    if child.stop_report and options & WSTOPPED:
        return STOPPED
    if child.cont_report and options & WCONTINUED:
        return CONTINUED
    return None


def _wait_common(t: Task, idtype: int, ident: int, options: int
                 ) -> tuple[Process, str] | None:
    """The child to report and what happened to it, None for WNOHANG with
    nothing yet; may block. ``options`` says which events count (WEXITED ...)."""
    kernel = t.process.kernel
    any_child = False
    for child in kernel.children_of(t.process.pid):
        if not _matches(t, child, idtype, ident, options):
            continue
        any_child = True
        kind = _report_of(child, options)
        if kind is not None:
            return child, kind
    if not any_child:
        raise SyscallError(abi.ECHILD)
    if options & WNOHANG:
        return None
    raise WouldBlock(t.process.child_waiters)


def _consume(t: Task, child: Process, kind: str) -> None:
    """The report was collected (not WNOWAIT): a zombie goes, a stop or
    continue is reported once."""
    if kind == EXITED:
        t.process.kernel.reap(child)
    elif kind == STOPPED:
        child.stop_report = 0
    else:
        child.cont_report = False


def _wait_status(child: Process, kind: str) -> int:
    if kind == STOPPED:
        return child.stop_report
    if kind == CONTINUED:
        return jobctl.WAIT_CONTINUED
    assert child.exit_status is not None
    return child.exit_status


def wait4(t: Task, pid: int, status: int, options: int, rusage: int, *_: int) -> int:
    """wait4(2)."""
    pid, options = s32(pid), options & 0xFFFFFFFF
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE):
        raise SyscallError(abi.EINVAL)
    if pid < -1:
        idtype, ident = P_PGID, -pid
    elif pid == -1:
        idtype, ident = P_ALL, 0
    elif pid == 0:
        idtype, ident = P_PGID, t.process.pgid
    else:
        idtype, ident = P_PID, pid
    found = _wait_common(t, idtype, ident, options | WEXITED)
    if found is None:
        return 0
    child, kind = found
    if status:
        t.mm.write_u32(status, _wait_status(child, kind))
    if rusage:
        t.mm.write(rusage, bytes(144))
    _consume(t, child, kind)
    return child.pid


def waitid(t: Task, idtype: int, ident: int, info: int, options: int, rusage: int,
           *_: int) -> int:
    """waitid(2)."""
    idtype, ident, options = s32(idtype), s32(ident), options & 0xFFFFFFFF
    if options & ~(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | __WNOTHREAD
                   | __WALL | __WCLONE):
        raise SyscallError(abi.EINVAL)
    if not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise SyscallError(abi.EINVAL)
    nonblocking_pidfd = False
    if idtype == P_PIDFD:
        # A pidfd names the child; one opened PIDFD_NONBLOCK never waits.
        from sentry.syscalls.events import pidfd_process

        if ident < 0:
            raise SyscallError(abi.EINVAL)
        file, child_proc = pidfd_process(t, ident)
        if file.reaped:
            raise SyscallError(abi.ECHILD)
        idtype, ident = P_PID, file.pid
        nonblocking_pidfd = bool(file.flags & abi.O_NONBLOCK) and not options & WNOHANG
        if nonblocking_pidfd:
            options |= WNOHANG
    if idtype not in (P_ALL, P_PID, P_PGID):
        raise SyscallError(abi.EINVAL)
    if idtype == P_PGID and ident == 0:
        ident = t.process.pgid
    found = _wait_common(t, idtype, ident, options)
    if found is None and nonblocking_pidfd:
        raise SyscallError(abi.EAGAIN)
    if info:
        if found is None:
            t.mm.write(info, bytes(128))
        else:
            child, kind = found
            if kind == STOPPED:
                code, value = jobctl.CLD_STOPPED, child.stop_report >> 8
            elif kind == CONTINUED:
                code, value = jobctl.CLD_CONTINUED, abi.SIGCONT
            else:
                st = child.exit_status or 0
                if st & 0x7F:
                    code = CLD_DUMPED if st & 0x80 else CLD_KILLED
                    value = st & 0x7F
                else:
                    code, value = CLD_EXITED, (st >> 8) & 0xFF
            blob = struct.pack("<iii4xiIi4xqq", abi.SIGCHLD, 0, code, child.pid,
                               child.creds.uid, value, 0, 0)
            t.mm.write(info, blob.ljust(128, b"\0"))
    if found is not None and not options & WNOWAIT:
        _consume(t, *found)
    return 0


# --- execve --------------------------------------------------------------------


def _read_strings(t: Task, addr: int) -> list[bytes]:
    if not addr:
        return []
    return [t.mm.read_cstring(p, 131072) for p in t.mm.read_pointer_array(addr)]


def _execve(t: Task, dirfd: int, path: str, argv: list[bytes], envp: list[bytes],
            flags: int) -> int:
    from sentry.syscalls.file import lookup_exec

    # Follow #! interpreters, at most MAX_SHEBANG_DEPTH deep.
    execfn = encode(path)
    for _depth in range(MAX_SHEBANG_DEPTH + 1):
        loc, data = lookup_exec(t, dirfd, path, flags)
        if not data.startswith(b"#!"):
            st = loc.inode.stat()
            lifecycle.exec_image(t.process.kernel, t, data, path, loc.path, argv, envp,
                                 execfn, st.dev, st.ino)
            return 0
        line = data[2:BINPRM_BUF_SIZE].split(b"\n", 1)[0].strip(b" \t")
        if not line:
            raise SyscallError(abi.ENOEXEC)
        interp, _, arg = line.replace(b"\t", b" ").partition(b" ")
        arg = arg.strip(b" ")
        argv = [interp, *([arg] if arg else []), encode(path), *argv[1:]]
        path, dirfd, flags = interp.decode("utf-8", "surrogateescape"), abi.AT_FDCWD, 0
    raise SyscallError(abi.ELOOP)


def execve(t: Task, path: int, argv: int, envp: int, *_: int) -> int:
    """execve(2)."""
    name = path_arg(t, path)
    return _execve(t, abi.AT_FDCWD, name, _read_strings(t, argv),
                   _read_strings(t, envp), 0)


def execveat(t: Task, dirfd: int, path: int, argv: int, envp: int, flags: int,
             *_: int) -> int:
    """execveat(2)."""
    flags = s32(flags)
    if flags & ~(abi.AT_EMPTY_PATH | abi.AT_SYMLINK_NOFOLLOW):
        raise SyscallError(abi.EINVAL)
    name = t.mm.read_cstring(path, 4095).decode("utf-8", "surrogateescape")
    return _execve(t, s32(dirfd), name, _read_strings(t, argv),
                   _read_strings(t, envp), flags)


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
    """setpgid(2): the caller or one of its children joins or starts a group
    of the caller's session."""
    pid, pgid = s32(pid), s32(pgid)
    if pgid < 0:
        raise SyscallError(abi.EINVAL)
    me = t.process
    kernel = me.kernel
    proc = me if pid in (0, me.pid) else kernel.find_process(pid)
    if proc is None or proc.zombie or (proc is not me and proc.ppid != me.pid):
        raise SyscallError(abi.ESRCH)
    if proc is not me:
        if proc.sid != me.sid:
            raise SyscallError(abi.EPERM)
        if proc.did_exec:
            raise SyscallError(abi.EACCES)
    if proc.pid == proc.sid:
        raise SyscallError(abi.EPERM)
    pgid = pgid or proc.pid
    if pgid != proc.pid and not any(
        p.pgid == pgid and p.sid == me.sid and not p.zombie for p in kernel.processes()
    ):
        raise SyscallError(abi.EPERM)
    proc.pgid = pgid
    return 0


def setsid(t: Task, *_: int) -> int:
    """setsid(2): a new session without a controlling terminal."""
    proc = t.process
    if any(p.pgid == proc.pid for p in proc.kernel.processes()):
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
    syscall("exit", exit),
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
    syscall("fork", fork),
    syscall("vfork", vfork),
    syscall("clone", clone, "no namespaces (EPERM); CLONE_SYSVSEM ignored",
            partial=True),
    syscall("clone3", clone3, "no set_tid, cgroup or pidfd", partial=True),
    syscall("execve", execve),
    syscall("execveat", execveat),
    syscall("wait4", wait4, "reports exits; stops and continues come with job control",
            partial=True),
    syscall("waitid", waitid, "reports exits; stops and continues come with job "
            "control", partial=True),
]

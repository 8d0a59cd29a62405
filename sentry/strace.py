"""Syscall tracing: strace-style text and JSON lines, driven by one table.

Theory of operation
-------------------
The kernel hands every syscall to :meth:`Tracer.enter` before running it and
to :meth:`Tracer.exit` afterwards (the untraced dispatcher never calls us, so
tracing off costs nothing). :data:`SIGNATURES` says, for each syscall, the
kind of every argument and how the result reads; the kinds themselves live in
:mod:`sentry.strace_args` (numbers, flags, names) and
:mod:`sentry.strace_structs` (what pointers point to).

An argument the guest passes in is decoded at entry, while memory still holds
what the guest meant (execve replaces it, close forgets the descriptor); an
argument the kernel fills in is decoded at exit, and only if the call
succeeded. Nothing is printed at entry: each call becomes one whole line when
it returns, so lines never interleave with the guest's own output.

The tracer must never disturb the guest. A bad guest pointer shows as its
address in hex, as strace shows it; any other failure while decoding is a
tracer bug, logged once on ``pysentry.strace``, and the line goes out with raw
values. Output errors (a closed pipe, a full disk) switch that output off.

JSON lines
----------
Each finished syscall is one object: ``event`` ("syscall"), ``pid``, ``tid``,
``nr``, ``name``, ``args`` (the raw registers of the arguments the call
takes), ``decoded`` (the same arguments as the text shows them), ``ret`` (the
result as a signed number, null if the task did not come back), ``errno``
(its name, or null), ``time_ns`` (the guest's monotonic clock at entry) and,
when an argument is a descriptor, ``fd_path``: the path of the first one at
entry, null if it was not open. The end of a task is ``{"event": "exited",
"pid", "tid", "status", "time_ns"}`` or ``"killed"`` with ``signal`` and
``signo`` in place of ``status``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from sentry import abi
from sentry.errors import SyscallError
from sentry.strace_args import (
    ACCESS_AT_FLAGS,
    ACCESS_MODE,
    ADDRESS_FAMILY,
    ARCH_PRCTL_CODE,
    AT_FLAGS,
    CLOCK,
    CLONE,
    CLOSE_RANGE_FLAGS,
    DEV,
    DIRFD,
    EFD_FLAGS,
    EPOLL_CREATE_FLAGS,
    EPOLL_OP,
    FALLOC_MODE,
    FCNTL_CMD,
    FD,
    FD_FLAGS_OPEN,
    FILE_MODE,
    FLOCK_OP,
    FUTEX_OP,
    GRND_FLAGS,
    HEX,
    ID,
    ID_TYPE,
    INT,
    INTERNAL_ERRNOS,
    IOCTL_REQUEST,
    ITIMERSPEC,
    ITIMERSPEC_OUT,
    LONG,
    MADVICE,
    MAP,
    MFD_FLAGS,
    MODE,
    MREMAP_FLAGS,
    MSG,
    MSYNC_FLAGS,
    OPEN,
    PRCTL_OPTION,
    PRIO_WHICH_KIND,
    PROT,
    PTR,
    RENAME_FLAGS,
    RET,
    RLIMIT_RESOURCE,
    RUSAGE_WHO,
    RWF_FLAGS,
    SCHED_POLICY,
    SHUTDOWN,
    SIGNAL,
    SIGPROCMASK_HOW,
    SOCK_FLAGS,
    SOCKET_LEVEL,
    SOCKET_OPTION,
    SOCKET_PROTOCOL,
    SOCKET_TYPE,
    STATX_MASK,
    TFD_SETTIME_FLAGS,
    TIMER_FLAGS,
    UINT,
    ULONG,
    UNLINK_FLAGS,
    WAIT_OPTIONS,
    WHENCE,
    Call,
    Kind,
    c_hex,
    errno_of,
    fcntl_arg_count,
    flag_names,
    futex_arg_count,
    hex_or_null,
    octal,
    open_arg_count,
    open_flags,
    prctl_arg_count,
    signal_name,
)
from sentry.strace_structs import (
    FCNTL_ARG,
    FUTEX_ARG4,
    OUT_PATH,
    PATH,
    PRCTL_ARG,
    PRCTL_ARG2,
    STRING,
    clone_args,
    cpu_mask,
    dirents,
    env_array,
    epoll_event,
    epoll_events_out,
    fd_set,
    id_array,
    in_buffer,
    in_struct,
    int_array,
    int_ref,
    iovec_array,
    loff_ref,
    open_how,
    out_buffer,
    out_struct,
    poll_revents,
    pollfds,
    rlimit,
    rusage,
    sigaction,
    siginfo,
    sigset,
    sockaddr_in,
    sockaddr_out,
    mmsghdrs_received,
    mmsghdrs_sent,
    msghdr_in,
    msghdr_out,
    sockopt_out,
    sockopt_value,
    stack_t,
    stat_struct,
    statfs,
    statx_struct,
    string_array,
    sysinfo,
    timespec,
    timespec_pair,
    timeval,
    timeval_pair,
    tms,
    uint_ref,
    utimbuf,
    utsname,
    wait_status_ref,
)
from sentry.syscalls.args import s32, s64
from sentry.sysno import SYSCALL_NAMES, SYSCALL_NUMBERS

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Task

log = logging.getLogger("pysentry.strace")

# How many bytes of a string or buffer a line shows (strace -s).
STRING_LIMIT = 32

# strace lines up results at this column when the call is short enough.
RESULT_COLUMN = 39

# --- results ------------------------------------------------------------------

ShowResult = Callable[[Call, int], str]


def _decimal(call: Call, value: int) -> str:
    return str(s64(value))


def _hex(call: Call, value: int) -> str:
    return c_hex(value & 0xFFFFFFFFFFFFFFFF)


def _octal(call: Call, value: int) -> str:
    return octal(value)


def _poll_result(call: Call, value: int) -> str:
    if value == 0:
        return "0 (Timeout)"
    return f"{value} ({poll_revents(call)})"


def _fcntl_result(call: Call, value: int) -> str:
    cmd = s32(call.args[1])
    if cmd == abi.F_GETFD and value:
        return f"{c_hex(value)} (flags {flag_names(value, {'FD_CLOEXEC': 1})})"
    if cmd == abi.F_GETFL:
        return f"{c_hex(value)} (flags {open_flags(value)})"
    return str(s64(value))


# --- the table ----------------------------------------------------------------


@attrs.frozen
class Signature:
    """How one syscall reads: its argument kinds and how its result shows.

    ``count``, when set, says from the raw arguments how many of them the call
    really takes (open's mode exists only with O_CREAT).
    """

    args: tuple[Kind, ...]
    result: ShowResult = _decimal
    count: Callable[[Sequence[int]], int] | None = None


def sig(*args: Kind, result: ShowResult = _decimal,
        count: Callable[[Sequence[int]], int] | None = None) -> Signature:
    return Signature(args, result, count)


# Kinds made from structs, named once because many syscalls share them.
STAT = out_struct(stat_struct)
TIMESPEC = in_struct(timespec)
TIMESPEC_OUT = out_struct(timespec)
TIMEVAL = in_struct(timeval)
TIMEVAL_OUT = out_struct(timeval)
RLIMIT = in_struct(rlimit)
RLIMIT_OUT = out_struct(rlimit)
SIGSET_OUT_8 = out_struct(sigset())
FD_SET = in_struct(fd_set)
POLLFDS = in_struct(pollfds)
ARGV = in_struct(string_array)
ENVP = in_struct(env_array)
INT_OUT = out_struct(int_ref)
UINT_OUT = out_struct(uint_ref)
LOFF = in_struct(loff_ref)
PIPE_FDS = out_struct(int_array(2))
SOCKADDR_OUT = out_struct(sockaddr_out(2))
EPOLL_EVENTS_OUT = out_struct(epoll_events_out)
READ_BUF = out_buffer(RET)
XATTR_NAME = STRING
NONE = sig()

SIGNATURES: dict[str, Signature] = {
    # Files and descriptors.
    "read": sig(FD, READ_BUF, ULONG),
    "write": sig(FD, in_buffer(2), ULONG),
    "pread64": sig(FD, READ_BUF, ULONG, LONG),
    "pwrite64": sig(FD, in_buffer(2), ULONG, LONG),
    "readv": sig(FD, out_struct(iovec_array(2, RET)), INT),
    "writev": sig(FD, in_struct(iovec_array(2, None)), INT),
    "preadv": sig(FD, out_struct(iovec_array(2, RET)), INT, LONG, HEX),
    "pwritev": sig(FD, in_struct(iovec_array(2, None)), INT, LONG, HEX),
    "preadv2": sig(FD, out_struct(iovec_array(2, RET)), INT, LONG, HEX, RWF_FLAGS),
    "pwritev2": sig(FD, in_struct(iovec_array(2, None)), INT, LONG, HEX, RWF_FLAGS),
    "open": sig(PATH, OPEN, MODE, count=open_arg_count(1)),
    "openat": sig(DIRFD, PATH, OPEN, MODE, count=open_arg_count(2)),
    "openat2": sig(DIRFD, PATH, in_struct(open_how), ULONG),
    "creat": sig(PATH, MODE),
    "close": sig(FD),
    "close_range": sig(UINT, UINT, CLOSE_RANGE_FLAGS),
    "lseek": sig(FD, LONG, WHENCE),
    "dup": sig(FD),
    "dup2": sig(FD, FD),
    "dup3": sig(FD, FD, FD_FLAGS_OPEN),
    "fcntl": sig(FD, FCNTL_CMD, FCNTL_ARG, result=_fcntl_result, count=fcntl_arg_count),
    "flock": sig(FD, FLOCK_OP),
    "ioctl": sig(FD, IOCTL_REQUEST, HEX),
    "fsync": sig(FD),
    "fdatasync": sig(FD),
    "syncfs": sig(FD),
    "sync": NONE,
    "truncate": sig(PATH, LONG),
    "ftruncate": sig(FD, LONG),
    "fallocate": sig(FD, FALLOC_MODE, LONG, LONG),
    "fadvise64": sig(FD, LONG, LONG, INT),
    "readahead": sig(FD, LONG, ULONG),
    "sendfile": sig(FD, FD, LOFF, ULONG),
    "copy_file_range": sig(FD, LOFF, FD, LOFF, ULONG, UINT),
    "splice": sig(FD, LOFF, FD, LOFF, ULONG, HEX),
    "getdents": sig(FD, out_struct(dirents), UINT),
    "getdents64": sig(FD, out_struct(dirents), UINT),
    "pipe": sig(PIPE_FDS),
    "pipe2": sig(PIPE_FDS, FD_FLAGS_OPEN),
    "eventfd": sig(UINT),
    "eventfd2": sig(UINT, EFD_FLAGS),
    "memfd_create": sig(PATH, MFD_FLAGS),
    "poll": sig(POLLFDS, UINT, INT, result=_poll_result),
    "ppoll": sig(POLLFDS, UINT, TIMESPEC, in_struct(sigset(4)), ULONG,
                 result=_poll_result),
    "select": sig(INT, FD_SET, FD_SET, FD_SET, TIMEVAL),
    "pselect6": sig(INT, FD_SET, FD_SET, FD_SET, TIMESPEC, PTR),
    "epoll_create": sig(INT),
    "epoll_create1": sig(EPOLL_CREATE_FLAGS),
    "epoll_ctl": sig(FD, EPOLL_OP, FD, in_struct(epoll_event)),
    "epoll_wait": sig(FD, EPOLL_EVENTS_OUT, INT, INT),
    "epoll_pwait": sig(FD, EPOLL_EVENTS_OUT, INT, INT, in_struct(sigset(5)), ULONG),
    "epoll_pwait2": sig(FD, EPOLL_EVENTS_OUT, INT, TIMESPEC, in_struct(sigset(5)),
                        ULONG),
    "inotify_init": NONE,
    "inotify_init1": sig(FD_FLAGS_OPEN),
    "inotify_add_watch": sig(FD, PATH, HEX),
    "inotify_rm_watch": sig(FD, INT),
    # Paths and file metadata.
    "stat": sig(PATH, STAT),
    "lstat": sig(PATH, STAT),
    "fstat": sig(FD, STAT),
    "newfstatat": sig(DIRFD, PATH, STAT, AT_FLAGS),
    "statx": sig(DIRFD, PATH, AT_FLAGS, STATX_MASK, out_struct(statx_struct)),
    "statfs": sig(PATH, out_struct(statfs)),
    "fstatfs": sig(FD, out_struct(statfs)),
    "access": sig(PATH, ACCESS_MODE),
    "faccessat": sig(DIRFD, PATH, ACCESS_MODE),
    "faccessat2": sig(DIRFD, PATH, ACCESS_MODE, ACCESS_AT_FLAGS),
    "getcwd": sig(OUT_PATH, ULONG),
    "chdir": sig(PATH),
    "fchdir": sig(FD),
    "chroot": sig(PATH),
    "pivot_root": sig(PATH, PATH),
    "mkdir": sig(PATH, MODE),
    "mkdirat": sig(DIRFD, PATH, MODE),
    "rmdir": sig(PATH),
    "unlink": sig(PATH),
    "unlinkat": sig(DIRFD, PATH, UNLINK_FLAGS),
    "rename": sig(PATH, PATH),
    "renameat": sig(DIRFD, PATH, DIRFD, PATH),
    "renameat2": sig(DIRFD, PATH, DIRFD, PATH, RENAME_FLAGS),
    "link": sig(PATH, PATH),
    "linkat": sig(DIRFD, PATH, DIRFD, PATH, AT_FLAGS),
    "symlink": sig(PATH, PATH),
    "symlinkat": sig(PATH, DIRFD, PATH),
    "readlink": sig(PATH, READ_BUF, ULONG),
    "readlinkat": sig(DIRFD, PATH, READ_BUF, ULONG),
    "chmod": sig(PATH, MODE),
    "fchmod": sig(FD, MODE),
    "fchmodat": sig(DIRFD, PATH, MODE),
    "chown": sig(PATH, ID, ID),
    "lchown": sig(PATH, ID, ID),
    "fchown": sig(FD, ID, ID),
    "fchownat": sig(DIRFD, PATH, ID, ID, AT_FLAGS),
    "mknod": sig(PATH, FILE_MODE, DEV),
    "mknodat": sig(DIRFD, PATH, FILE_MODE, DEV),
    "umask": sig(MODE, result=_octal),
    "utime": sig(PATH, in_struct(utimbuf)),
    "utimes": sig(PATH, in_struct(timeval_pair)),
    "utimensat": sig(DIRFD, PATH, in_struct(timespec_pair), AT_FLAGS),
    "mount": sig(STRING, PATH, STRING, HEX, PTR),
    "umount2": sig(PATH, HEX),
    "setxattr": sig(PATH, XATTR_NAME, in_buffer(3), ULONG, HEX),
    "lsetxattr": sig(PATH, XATTR_NAME, in_buffer(3), ULONG, HEX),
    "fsetxattr": sig(FD, XATTR_NAME, in_buffer(3), ULONG, HEX),
    "getxattr": sig(PATH, XATTR_NAME, READ_BUF, ULONG),
    "lgetxattr": sig(PATH, XATTR_NAME, READ_BUF, ULONG),
    "fgetxattr": sig(FD, XATTR_NAME, READ_BUF, ULONG),
    "listxattr": sig(PATH, PTR, ULONG),
    "llistxattr": sig(PATH, PTR, ULONG),
    "flistxattr": sig(FD, PTR, ULONG),
    "removexattr": sig(PATH, XATTR_NAME),
    "lremovexattr": sig(PATH, XATTR_NAME),
    "fremovexattr": sig(FD, XATTR_NAME),
    # Memory.
    "mmap": sig(PTR, ULONG, PROT, MAP, FD, HEX, result=_hex),
    "munmap": sig(PTR, ULONG),
    "mprotect": sig(PTR, ULONG, PROT),
    "mremap": sig(PTR, ULONG, ULONG, MREMAP_FLAGS, PTR, result=_hex),
    "brk": sig(PTR, result=_hex),
    "msync": sig(PTR, ULONG, MSYNC_FLAGS),
    "mincore": sig(PTR, ULONG, PTR),
    "madvise": sig(PTR, ULONG, MADVICE),
    "mlock": sig(PTR, ULONG),
    "munlock": sig(PTR, ULONG),
    "mlock2": sig(PTR, ULONG, HEX),
    "mlockall": sig(HEX),
    "munlockall": NONE,
    "membarrier": sig(INT, UINT, INT),
    # Processes, threads and ids.
    "clone": sig(CLONE, PTR, PTR, PTR, HEX),
    "clone3": sig(in_struct(clone_args), ULONG),
    "fork": NONE,
    "vfork": NONE,
    "execve": sig(PATH, ARGV, ENVP),
    "execveat": sig(DIRFD, PATH, ARGV, ENVP, AT_FLAGS),
    "exit": sig(INT),
    "exit_group": sig(INT),
    "wait4": sig(INT, out_struct(wait_status_ref), WAIT_OPTIONS, PTR),
    "waitid": sig(ID_TYPE, INT, out_struct(siginfo), WAIT_OPTIONS, PTR),
    "unshare": sig(CLONE),
    "setns": sig(FD, CLONE),
    "getpid": NONE,
    "getppid": NONE,
    "gettid": NONE,
    "getpgrp": NONE,
    "getpgid": sig(INT),
    "setpgid": sig(INT, INT),
    "getsid": sig(INT),
    "setsid": NONE,
    "set_tid_address": sig(PTR),
    "set_robust_list": sig(PTR, ULONG),
    "get_robust_list": sig(INT, PTR, PTR),
    "futex": sig(PTR, FUTEX_OP, UINT, FUTEX_ARG4, PTR, UINT, count=futex_arg_count),
    "rseq": sig(PTR, HEX, INT, HEX),
    "pidfd_open": sig(INT, UINT),
    "pidfd_send_signal": sig(FD, SIGNAL, PTR, UINT),
    "getuid": NONE,
    "geteuid": NONE,
    "getgid": NONE,
    "getegid": NONE,
    "setuid": sig(ID),
    "setgid": sig(ID),
    "setreuid": sig(ID, ID),
    "setregid": sig(ID, ID),
    "setresuid": sig(ID, ID, ID),
    "setresgid": sig(ID, ID, ID),
    "getresuid": sig(UINT_OUT, UINT_OUT, UINT_OUT),
    "getresgid": sig(UINT_OUT, UINT_OUT, UINT_OUT),
    "setfsuid": sig(ID),
    "setfsgid": sig(ID),
    "getgroups": sig(INT, out_struct(id_array(RET))),
    "setgroups": sig(INT, in_struct(id_array(0))),
    "capget": sig(PTR, PTR),
    "capset": sig(PTR, PTR),
    "prctl": sig(PRCTL_OPTION, PRCTL_ARG2, PRCTL_ARG, PRCTL_ARG, PRCTL_ARG,
                 count=prctl_arg_count),
    "arch_prctl": sig(ARCH_PRCTL_CODE, HEX),
    "personality": sig(HEX, result=_hex),
    "seccomp": sig(UINT, HEX, PTR),
    # Limits, scheduling and system information.
    "uname": sig(out_struct(utsname)),
    "sethostname": sig(in_buffer(1), INT),
    "setdomainname": sig(in_buffer(1), INT),
    "sysinfo": sig(out_struct(sysinfo)),
    "getrlimit": sig(RLIMIT_RESOURCE, RLIMIT_OUT),
    "setrlimit": sig(RLIMIT_RESOURCE, RLIMIT),
    "prlimit64": sig(INT, RLIMIT_RESOURCE, RLIMIT, RLIMIT_OUT),
    "getrusage": sig(RUSAGE_WHO, out_struct(rusage)),
    "times": sig(out_struct(tms)),
    "getpriority": sig(PRIO_WHICH_KIND, INT),
    "setpriority": sig(PRIO_WHICH_KIND, INT, INT),
    "ioprio_get": sig(INT, INT),
    "ioprio_set": sig(INT, INT, HEX),
    "sched_yield": NONE,
    "sched_getaffinity": sig(INT, UINT, out_struct(cpu_mask)),
    "sched_setaffinity": sig(INT, UINT, in_struct(cpu_mask)),
    "sched_getparam": sig(INT, INT_OUT),
    "sched_setparam": sig(INT, in_struct(int_ref)),
    "sched_getscheduler": sig(INT),
    "sched_setscheduler": sig(INT, SCHED_POLICY, in_struct(int_ref)),
    "sched_get_priority_max": sig(SCHED_POLICY),
    "sched_get_priority_min": sig(SCHED_POLICY),
    "sched_rr_get_interval": sig(INT, TIMESPEC_OUT),
    "getcpu": sig(UINT_OUT, UINT_OUT, PTR),
    "getrandom": sig(READ_BUF, ULONG, GRND_FLAGS),
    "syslog": sig(INT, PTR, INT),
    # Time.
    "clock_gettime": sig(CLOCK, TIMESPEC_OUT),
    "clock_getres": sig(CLOCK, TIMESPEC_OUT),
    "clock_settime": sig(CLOCK, TIMESPEC),
    "clock_nanosleep": sig(CLOCK, TIMER_FLAGS, TIMESPEC, PTR),
    "nanosleep": sig(TIMESPEC, PTR),
    "gettimeofday": sig(TIMEVAL_OUT, PTR),
    "settimeofday": sig(TIMEVAL, PTR),
    "time": sig(PTR),
    "alarm": sig(UINT),
    "getitimer": sig(INT, PTR),
    "setitimer": sig(INT, PTR, PTR),
    "timer_create": sig(CLOCK, PTR, PTR),
    "timer_settime": sig(INT, TIMER_FLAGS, PTR, PTR),
    "timer_gettime": sig(INT, PTR),
    "timer_getoverrun": sig(INT),
    "timer_delete": sig(INT),
    "timerfd_create": sig(CLOCK, FD_FLAGS_OPEN),
    "timerfd_settime": sig(FD, TFD_SETTIME_FLAGS, ITIMERSPEC, ITIMERSPEC_OUT),
    "timerfd_gettime": sig(FD, ITIMERSPEC_OUT),
    # Signals.
    "rt_sigaction": sig(SIGNAL, in_struct(sigaction), out_struct(sigaction), ULONG),
    "rt_sigprocmask": sig(SIGPROCMASK_HOW, in_struct(sigset(3)), out_struct(sigset(3)),
                          ULONG),
    "rt_sigpending": sig(out_struct(sigset(1)), ULONG),
    "rt_sigsuspend": sig(in_struct(sigset(1)), ULONG),
    "rt_sigtimedwait": sig(in_struct(sigset(3)), out_struct(siginfo), TIMESPEC, ULONG),
    "rt_sigqueueinfo": sig(INT, SIGNAL, in_struct(siginfo)),
    "rt_tgsigqueueinfo": sig(INT, INT, SIGNAL, in_struct(siginfo)),
    "rt_sigreturn": NONE,
    "sigaltstack": sig(in_struct(stack_t), out_struct(stack_t)),
    "signalfd": sig(FD, in_struct(sigset(2)), ULONG),
    "signalfd4": sig(FD, in_struct(sigset(2)), ULONG, FD_FLAGS_OPEN),
    "kill": sig(INT, SIGNAL),
    "tkill": sig(INT, SIGNAL),
    "tgkill": sig(INT, INT, SIGNAL),
    "pause": NONE,
    "restart_syscall": NONE,
    # Sockets.
    "socket": sig(ADDRESS_FAMILY, SOCKET_TYPE, SOCKET_PROTOCOL),
    "socketpair": sig(ADDRESS_FAMILY, SOCKET_TYPE, SOCKET_PROTOCOL, PIPE_FDS),
    "bind": sig(FD, in_struct(sockaddr_in(2)), UINT),
    "connect": sig(FD, in_struct(sockaddr_in(2)), UINT),
    "listen": sig(FD, INT),
    "accept": sig(FD, SOCKADDR_OUT, INT_OUT),
    "accept4": sig(FD, SOCKADDR_OUT, INT_OUT, SOCK_FLAGS),
    "getsockname": sig(FD, SOCKADDR_OUT, INT_OUT),
    "getpeername": sig(FD, SOCKADDR_OUT, INT_OUT),
    "shutdown": sig(FD, SHUTDOWN),
    "sendto": sig(FD, in_buffer(2), ULONG, MSG, in_struct(sockaddr_in(5)), UINT),
    "recvfrom": sig(FD, READ_BUF, ULONG, MSG, out_struct(sockaddr_out(5)), INT_OUT),
    "sendmsg": sig(FD, in_struct(msghdr_in), MSG),
    "recvmsg": sig(FD, out_struct(msghdr_out), MSG),
    "sendmmsg": sig(FD, out_struct(mmsghdrs_sent), UINT, MSG),
    "recvmmsg": sig(FD, out_struct(mmsghdrs_received), UINT, MSG, TIMESPEC),
    "setsockopt": sig(FD, SOCKET_LEVEL, SOCKET_OPTION, in_struct(sockopt_value), UINT),
    "getsockopt": sig(FD, SOCKET_LEVEL, SOCKET_OPTION, out_struct(sockopt_out),
                      INT_OUT),
}

# The same table, indexed by number for the hot path.
_BY_NUMBER: dict[int, Signature] = {
    SYSCALL_NUMBERS[name]: signature for name, signature in SIGNATURES.items()
}

# What a syscall we know nothing about shows: all six registers in hex.
_UNKNOWN = Signature((HEX,) * 6)


def signature_of(nr: int) -> Signature:
    return _BY_NUMBER.get(nr, _UNKNOWN)


def syscall_name(nr: int) -> str:
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")


def result_text(call: Call, signature: Signature) -> str:
    """``3``, ``0x7f...``, ``?`` or ``-1 ENOENT (No such file or directory)``."""
    result = call.result
    if result is None:
        return "?"
    errno = errno_of(result)
    if errno is None:
        return signature.result(call, result)
    name, text = errno_text(errno)
    return f"-1 {name} ({text})"


def errno_text(errno: int) -> tuple[str, str]:
    """The name of an errno and its message."""
    if errno in INTERNAL_ERRNOS:
        return INTERNAL_ERRNOS[errno]
    return abi.ERRNO_NAMES.get(errno, f"errno {errno}"), os.strerror(errno)


# --- the tracer ---------------------------------------------------------------


@attrs.define(eq=False)
class _Pending:
    """A call between enter and exit: what was decoded on the way in."""

    nr: int
    name: str
    signature: Signature
    call: Call
    shown: int
    texts: list[str | None]
    fd_path: str | None
    has_fd: bool
    time_ns: int
    # Paths of the descriptor arguments, by position, for the text line.
    fd_paths: dict[int, str] = attrs.Factory(dict)


class Tracer:
    """Reports every syscall as strace text, JSON lines, or both.

    ``text`` gets strace's default format; ``json_out`` gets one object per
    line. Either may be None. Streams passed in ``owned`` are closed by
    :meth:`close`.
    """

    def __init__(
        self,
        kernel: Kernel,
        text: TextIO | None,
        json_out: TextIO | None,
        owned: Sequence[TextIO] = (),
        string_limit: int = STRING_LIMIT,
        fd_paths: bool = True,
    ) -> None:
        self.kernel = kernel
        self.text = text
        self.json_out = json_out
        self.string_limit = string_limit
        self.fd_paths = fd_paths
        self._owned = list(owned)
        self._pending: dict[int, _Pending] = {}
        self._ended: set[int] = set()
        self._warned: set[str] = set()

    @classmethod
    def open(cls, kernel: Kernel, strace_target: str | None,
             json_path: str | None) -> Tracer:
        """A tracer writing text to stderr (``"-"``) or a file, JSON to a file.

        Raises OSError if an output cannot be opened.
        """
        owned: list[TextIO] = []
        text: TextIO | None = None
        json_out: TextIO | None = None
        try:
            if strace_target == "-":
                text = sys.stderr
            elif strace_target is not None:
                text = _open_output(strace_target)
                owned.append(text)
            if json_path is not None:
                json_out = _open_output(json_path)
                owned.append(json_out)
        except OSError:
            for stream in owned:
                stream.close()
            raise
        return cls(kernel, text, json_out, owned)

    # --- the kernel's side ---------------------------------------------------

    def enter(self, task: Task, regs: Sequence[int]) -> None:
        """A syscall is about to run; decode what the guest passes in."""
        try:
            self._pending[task.tid] = self._begin(task, regs)
        except Exception:  # noqa: BLE001 - the tracer never stops the guest
            self._warn_once("enter", "tracing a syscall entry failed")

    def exit(self, task: Task, regs: Sequence[int], result: int | None) -> None:
        """A syscall returned ``result`` (None: the task is gone); report it."""
        try:
            pending = self._pending.pop(task.tid, None)
            if pending is None or pending.nr != regs[0]:
                pending = self._begin(task, regs)
            self._finish(task, pending, result)
            if result is None and task.exited:
                self._report_end(task, pending)
        except Exception:  # noqa: BLE001 - the tracer never stops the guest
            self._warn_once("exit", "tracing a syscall exit failed")

    def forget(self, task: Task) -> None:
        """``task``'s call was parked; it is traced again when it runs again."""
        self._pending.pop(task.tid, None)

    def killed(self, task: Task, signo: int) -> None:
        """``task`` was ended by signal ``signo`` (a fault, a fatal signal)."""
        try:
            pending = self._pending.pop(task.tid, None)
            if pending is not None:
                self._finish(task, pending, None)
            self._write_end(task, f"killed by {signal_name(signo)}",
                            {"event": "killed", "signal": signal_name(signo),
                             "signo": signo})
        except Exception:  # noqa: BLE001 - the tracer never stops the guest
            self._warn_once("killed", "tracing a fatal signal failed")

    def close(self) -> None:
        """Report calls that never returned, then flush and close the outputs."""
        for tid, pending in list(self._pending.items()):
            # As at entry: the arguments up to the first one the kernel fills in.
            shown = []
            for text in pending.texts:
                if text is None:
                    break
                shown.append(text)
            shown.append("<unfinished ...>")
            self._write_text(f"{self._prefix(tid)}{pending.name}({', '.join(shown)})")
        self._pending.clear()
        for stream in (self.text, self.json_out):
            if stream is not None:
                try:
                    stream.flush()
                except (OSError, ValueError) as exc:
                    log.warning("trace output incomplete: %s", exc)
        for stream in self._owned:
            try:
                stream.close()
            except OSError as exc:
                log.warning("trace output incomplete: %s", exc)
        self._owned.clear()

    # --- decoding ------------------------------------------------------------

    def _begin(self, task: Task, regs: Sequence[int]) -> _Pending:
        nr = regs[0]
        args = list(regs[1:7])
        signature = signature_of(nr)
        call = Call(task, args, self.string_limit)
        kinds = signature.args
        shown = signature.count(args) if signature.count else len(kinds)
        texts: list[str | None] = []
        fd_path: str | None = None
        has_fd = False
        fd_paths: dict[int, str] = {}
        for i in range(shown):
            kind = kinds[i]
            texts.append(None if kind.at_exit else self._show(call, kind, i))
            if kind.fd and s32(args[i]) >= 0:
                path = _fd_path(task, s32(args[i]))
                if not has_fd:
                    has_fd, fd_path = True, path
                if path is not None:
                    fd_paths[i] = path
            elif kind.fd and s32(args[i]) == abi.AT_FDCWD:
                fd_paths[i] = task.process.fs.cwd.path
        return _Pending(nr, syscall_name(nr), signature, call, shown, texts,
                        fd_path, has_fd, self._now(), fd_paths)

    def _show(self, call: Call, kind: Kind, index: int) -> str:
        raw = call.args[index]
        try:
            return kind.show(call, raw)
        except SyscallError:
            # A bad guest pointer: show the address, as strace does.
            return hex_or_null(raw)
        except Exception:  # noqa: BLE001 - a decoder bug must not stop the guest
            self._warn_once(f"decode:{kind.show!r}", "cannot decode an argument")
            return hex_or_null(raw)

    def _finish(self, task: Task, pending: _Pending, result: int | None) -> None:
        call = pending.call
        call.result = result
        succeeded = call.succeeded
        texts = pending.texts
        for i, text in enumerate(texts):
            if text is None:
                kind = pending.signature.args[i]
                texts[i] = self._show(call, kind, i) if succeeded else _raw(call, i)
        try:
            ret = result_text(call, pending.signature)
        except SyscallError:
            # What the result points at is gone (poll's array): the number alone.
            ret = _decimal(call, result or 0)
        except Exception:  # noqa: BLE001 - a decoder bug must not stop the guest
            self._warn_once(f"result:{pending.name}", "cannot decode a result")
            ret = _decimal(call, result or 0)
        if self.text is not None and self.fd_paths and _returns_fd(pending, result):
            path = _fd_path(task, result or 0)
            if path is not None:
                ret = f"{ret}<{path}>"
        if self.text is not None:
            shown = list(texts)
            if self.fd_paths:
                # Descriptors carry the path they refer to, like strace -y.
                for i, path in pending.fd_paths.items():
                    shown[i] = f"{shown[i]}<{path}>"
            head = f"{pending.name}({', '.join(t or '' for t in shown)})"
            self._write_text(f"{self._prefix(task.tid)}{head:<{RESULT_COLUMN}} = {ret}")
        if self.json_out is not None:
            self._write_json(self._record(task, pending, result))

    def _record(self, task: Task, pending: _Pending,
                result: int | None) -> dict[str, Any]:
        errno = errno_of(result) if result is not None else None
        record: dict[str, Any] = {
            "event": "syscall",
            "pid": task.process.pid,
            "tid": task.tid,
            "nr": pending.nr,
            "name": pending.name,
            "args": pending.call.args[: pending.shown],
            "decoded": pending.texts,
            "ret": s64(result) if result is not None else None,
            "errno": errno_text(errno)[0] if errno is not None else None,
            "time_ns": pending.time_ns,
        }
        if pending.has_fd:
            record["fd_path"] = pending.fd_path
        return record

    # --- ends of tasks -------------------------------------------------------

    def _report_end(self, task: Task, pending: _Pending) -> None:
        status = task.process.exit_status
        if status is None:
            if pending.name not in ("exit", "exit_group"):
                return  # the sandbox stopped the task (a sentry bug), not the guest
            status = (pending.call.args[0] & 0xFF) << 8
        signo = status & 0x7F
        if signo:
            self._write_end(task, f"killed by {signal_name(signo)}",
                            {"event": "killed", "signal": signal_name(signo),
                             "signo": signo})
        else:
            code = status >> 8 & 0xFF
            self._write_end(task, f"exited with {code}",
                            {"event": "exited", "status": code})

    def _write_end(self, task: Task, text: str, record: dict[str, Any]) -> None:
        if task.tid in self._ended:
            return
        self._ended.add(task.tid)
        self._write_text(f"{self._prefix(task.tid)}+++ {text} +++")
        if self.json_out is not None:
            head = {"event": record.pop("event"), "pid": task.process.pid,
                    "tid": task.tid}
            self._write_json({**head, **record, "time_ns": self._now()})

    # --- output --------------------------------------------------------------

    def _prefix(self, tid: int) -> str:
        tasks = sum(len(p.threads) for p in self.kernel.processes())
        return f"[pid {tid:>5}] " if tasks > 1 else ""

    def _now(self) -> int:
        return self.kernel.clock.monotonic_ns()

    def _write_text(self, line: str) -> None:
        if self.text is None:
            return
        try:
            self.text.write(line + "\n")
        except (OSError, ValueError) as exc:
            self.text = None
            log.warning("strace output stopped: %s", exc)

    def _write_json(self, record: dict[str, Any]) -> None:
        if self.json_out is None:
            return
        try:
            self.json_out.write(json.dumps(record) + "\n")
        except (OSError, ValueError) as exc:
            self.json_out = None
            log.warning("JSON trace output stopped: %s", exc)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (sentry bug; reported once)", message, exc_info=True)


def _open_output(path: str) -> TextIO:
    # Line-buffered, so a trace being followed with tail -f stays current.
    return open(path, "w", buffering=1, encoding="utf-8", errors="backslashreplace")


# Calls whose result is a new descriptor (fcntl only for F_DUPFD*).
_NEW_FD_CALLS = frozenset({
    "open", "openat", "openat2", "creat", "dup", "dup2", "dup3", "eventfd",
    "eventfd2", "epoll_create", "epoll_create1", "socket", "accept", "accept4",
    "memfd_create", "timerfd_create", "signalfd", "signalfd4", "pidfd_open",
    "inotify_init", "inotify_init1", "fanotify_init", "userfaultfd",
})


def _returns_fd(pending: _Pending, result: int | None) -> bool:
    if result is None or result < 0:
        return False
    if pending.name == "fcntl":
        return s32(pending.call.args[1]) in (abi.F_DUPFD, abi.F_DUPFD_CLOEXEC)
    return pending.name in _NEW_FD_CALLS


def _fd_path(task: Task, fd: int) -> str | None:
    try:
        return task.process.fds.get(fd).path
    except SyscallError:
        return None


def _raw(call: Call, index: int) -> str:
    return hex_or_null(call.args[index])

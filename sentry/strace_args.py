"""How the tracer shows one syscall argument: argument kinds and their spelling.

Theory of operation
-------------------
A :class:`Kind` turns one raw 64-bit register value into the text strace would
print for it: a number, a flag set, a quoted string, a struct read from guest
memory. The syscall table in :mod:`sentry.strace` says which kind each
argument has; nothing else in the kernel formats arguments. This module holds
the scalar kinds and the names of flags and constants; the kinds that read
what a pointer points to are in :mod:`sentry.strace_structs`.

A kind is shown either when the syscall is entered (what the guest passes in:
paths, write buffers, flags) or when it returns (what the kernel fills in: read
buffers, stat structs, pipe descriptors). An "exit" kind of a call that failed
shows the bare address, as the memory holds nothing meaningful.

Every decoder may raise :class:`~sentry.errors.SyscallError` when a guest
pointer is bad; the tracer then prints the raw value in hex. Decoders read
guest memory but never write it and never change kernel state.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import s32, s64

if TYPE_CHECKING:
    from sentry.task import Task

# The value that stands for "the result" where a length comes from.
RET = -1

# --- ABI names that sentry.abi does not carry yet -----------------------------
# TODO: move these to sentry.abi once the families that use them (net, futex,
# process) arrive; the tracer needs them before the handlers do.
SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SS_ONSTACK, SS_DISABLE = 1, 2
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
WNOHANG, WUNTRACED, WEXITED, WCONTINUED = 1, 2, 4, 8
WNOWAIT = 0x01000000
AT_STATX_FORCE_SYNC, AT_STATX_DONT_SYNC = 0x2000, 0x4000
RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND = 1, 2, 4, 8, 16
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB = 1, 2, 4

CLONE_FLAGS = {
    "CLONE_VM": 0x100, "CLONE_FS": 0x200, "CLONE_FILES": 0x400,
    "CLONE_SIGHAND": 0x800, "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000,
    "CLONE_VFORK": 0x4000, "CLONE_PARENT": 0x8000, "CLONE_THREAD": 0x10000,
    "CLONE_NEWNS": 0x20000, "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000,
    "CLONE_PARENT_SETTID": 0x100000, "CLONE_CHILD_CLEARTID": 0x200000,
    "CLONE_DETACHED": 0x400000, "CLONE_UNTRACED": 0x800000,
    "CLONE_CHILD_SETTID": 0x1000000, "CLONE_NEWCGROUP": 0x2000000,
    "CLONE_NEWUTS": 0x4000000, "CLONE_NEWIPC": 0x8000000,
    "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000, "CLONE_IO": 0x80000000,
}
FUTEX_OPS = {
    0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE",
    4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI",
    7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI", 9: "FUTEX_WAIT_BITSET",
    10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI", 12: "FUTEX_CMP_REQUEUE_PI",
    13: "FUTEX_LOCK_PI2",
}
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
ADDRESS_FAMILIES = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK",
    17: "AF_PACKET",
}
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCKET_TYPES = {
    1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
    5: "SOCK_SEQPACKET", 10: "SOCK_PACKET",
}
SOCK_NONBLOCK, SOCK_CLOEXEC = abi.O_NONBLOCK, abi.O_CLOEXEC
MSG_FLAGS = {
    "MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8,
    "MSG_TRUNC": 0x20, "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100,
    "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000, "MSG_CMSG_CLOEXEC": 0x40000000,
}
SOCKET_LEVELS = {0: "SOL_IP", 1: "SOL_SOCKET", 6: "SOL_TCP", 17: "SOL_UDP",
                 41: "SOL_IPV6"}
SOL_SOCKET = 1
SOCKET_OPTIONS = {
    1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 5: "SO_DONTROUTE",
    6: "SO_BROADCAST", 7: "SO_SNDBUF", 8: "SO_RCVBUF", 9: "SO_KEEPALIVE",
    10: "SO_OOBINLINE", 13: "SO_LINGER", 15: "SO_REUSEPORT", 16: "SO_PASSCRED",
    17: "SO_PEERCRED", 18: "SO_RCVLOWAT", 19: "SO_SNDLOWAT", 20: "SO_RCVTIMEO",
    21: "SO_SNDTIMEO", 12: "SO_PRIORITY", 30: "SO_ACCEPTCONN", 32: "SO_SNDBUFFORCE",
    33: "SO_RCVBUFFORCE", 38: "SO_PROTOCOL", 39: "SO_DOMAIN",
}
TCP_OPTIONS = {1: "TCP_NODELAY", 2: "TCP_MAXSEG", 3: "TCP_CORK", 4: "TCP_KEEPIDLE",
               5: "TCP_KEEPINTVL", 6: "TCP_KEEPCNT", 11: "TCP_INFO",
               12: "TCP_QUICKACK", 13: "TCP_CONGESTION"}
IP_OPTIONS = {1: "IP_TOS", 2: "IP_TTL", 8: "IP_PKTINFO", 11: "IP_RECVERR"}
IPV6_OPTIONS = {16: "IPV6_UNICAST_HOPS", 26: "IPV6_V6ONLY", 49: "IPV6_RECVPKTINFO"}
OPTIONS_BY_LEVEL = {1: SOCKET_OPTIONS, 6: TCP_OPTIONS, 0: IP_OPTIONS, 41: IPV6_OPTIONS}
SCM_TYPES = {1: "SCM_RIGHTS", 2: "SCM_CREDENTIALS"}
IP_PROTOCOLS = {0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 6: "IPPROTO_TCP",
                17: "IPPROTO_UDP", 58: "IPPROTO_ICMPV6"}
SHUTDOWN_HOW = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}
EPOLL_OPS = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
EPOLL_EVENTS = {
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8,
    "EPOLLHUP": 0x10, "EPOLLRDNORM": 0x40, "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100,
    "EPOLLWRBAND": 0x200, "EPOLLRDHUP": 0x2000, "EPOLLEXCLUSIVE": 1 << 28,
    "EPOLLWAKEUP": 1 << 29, "EPOLLONESHOT": 1 << 30, "EPOLLET": 1 << 31,
}
ID_TYPES = {0: "P_ALL", 1: "P_PID", 2: "P_PGID", 3: "P_PIDFD"}
PRIO_WHICH = {0: "PRIO_PROCESS", 1: "PRIO_PGRP", 2: "PRIO_USER"}
SCHED_POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH",
                  5: "SCHED_IDLE", 6: "SCHED_DEADLINE"}
SA_FLAGS = {
    "SA_NOCLDSTOP": SA_NOCLDSTOP, "SA_NOCLDWAIT": SA_NOCLDWAIT,
    "SA_SIGINFO": SA_SIGINFO,
    "SA_RESTORER": SA_RESTORER, "SA_ONSTACK": SA_ONSTACK, "SA_RESTART": SA_RESTART,
    "SA_NODEFER": SA_NODEFER, "SA_RESETHAND": SA_RESETHAND,
}
SS_FLAGS = {"SS_ONSTACK": SS_ONSTACK, "SS_DISABLE": SS_DISABLE}
# Codes the kernel uses inside itself that a tracer may still see.
INTERNAL_ERRNOS = {
    512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    513: ("ERESTARTNOINTR", "To be restarted"),
    514: ("ERESTARTNOHAND", "To be restarted if no handler"),
    515: ("ENOIOCTLCMD", "No ioctl command"),
    516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
}


def _from_abi(*names: str) -> dict[str, int]:
    return {name: getattr(abi, name) for name in names}


def _enum_from_abi(*names: str) -> dict[int, str]:
    table: dict[int, str] = {}
    for name in names:
        table.setdefault(getattr(abi, name), name)
    return table


# --- the call being decoded ---------------------------------------------------


class Call:
    """What a decoder may look at: the task, the six raw arguments, the result."""

    __slots__ = ("task", "args", "result", "limit")

    def __init__(self, task: Task, args: Sequence[int], limit: int) -> None:
        self.task = task
        self.args = args
        self.result: int | None = None
        self.limit = limit

    @property
    def succeeded(self) -> bool:
        return self.result is not None and errno_of(self.result) is None

    def read(self, addr: int, n: int) -> bytes:
        if addr == 0:
            raise SyscallError(abi.EFAULT)
        return self.task.mm.read(addr, n)

    def unpack(self, layout: struct.Struct, addr: int) -> tuple[int, ...]:
        return layout.unpack(self.read(addr, layout.size))


def errno_of(result: int) -> int | None:
    """The errno a raw result stands for, or None if it is a success value."""
    value = s64(result)
    if -abi.MAX_ERRNO <= value < 0:
        return -value
    return None


# --- text primitives ----------------------------------------------------------


def _quote_table() -> list[str | None]:
    table: list[str | None] = [None] * 256
    for b in range(0x20, 0x7F):
        table[b] = chr(b)
    for ch, text in (("\t", "\\t"), ("\n", "\\n"), ("\v", "\\v"), ("\f", "\\f"),
                     ("\r", "\\r"), ('"', '\\"'), ("\\", "\\\\")):
        table[ord(ch)] = text
    return table


_QUOTED = _quote_table()


def quote(data: bytes, limit: int | None = None) -> str:
    """``data`` as a C string literal; past ``limit`` bytes, cut and marked ``...``.

    Bytes with no short escape become octal escapes, three digits only where
    the next character is itself an octal digit (so the literal reads back).
    """
    cut = limit is not None and len(data) > limit
    if cut:
        data = data[:limit]
    parts = []
    last = len(data) - 1
    for i, b in enumerate(data):
        text = _QUOTED[b]
        if text is None:
            follows_digit = i < last and 0x30 <= data[i + 1] <= 0x37
            text = f"\\{b:03o}" if follows_digit else f"\\{b:o}"
        parts.append(text)
    return '"' + "".join(parts) + '"' + ("..." if cut else "")


def c_hex(value: int) -> str:
    """As C's ``%#x``: ``0x1f``, but plain ``0`` for zero."""
    return f"{value:#x}" if value else "0"


def octal(value: int) -> str:
    """As C's ``%#03o``, the way modes are written: ``0644``, ``022``, ``000``."""
    return (f"0{value:o}" if value else "0").rjust(3, "0")


def hex_or_null(value: int) -> str:
    return "NULL" if value == 0 else f"{value:#x}"


def flag_names(value: int, table: dict[str, int], zero: str = "0") -> str:
    """``A|B|0x40`` for the bits of ``value``; multi-bit names must come first."""
    if value == 0:
        return zero
    names = []
    for name, bits in table.items():
        if bits and value & bits == bits:
            names.append(name)
            value &= ~bits
    if value:
        names.append(f"{value:#x}")
    return "|".join(names)


def enum_name(value: int, table: dict[int, str]) -> str:
    return table.get(value, str(value))


def signal_name(signo: int) -> str:
    if signo == abi.SIGRTMIN:
        return "SIGRTMIN"
    if abi.SIGRTMIN < signo <= abi.SIGRTMAX:
        return f"SIGRT_{signo - abi.SIGRTMIN}"
    return abi.SIGNAL_NAMES.get(signo, str(signo))


def file_mode(mode: int, with_type: bool = True) -> str:
    """``S_IFREG|0644``: the file type by name, the permission bits in octal."""
    parts = []
    if with_type:
        kind = mode & abi.S_IFMT
        if kind:
            parts.append(_FILE_TYPES.get(kind, f"{kind:#o}"))
    for name in ("S_ISUID", "S_ISGID", "S_ISVTX"):
        if mode & getattr(abi, name):
            parts.append(name)
    parts.append(octal(mode & 0o777))
    return "|".join(parts)


_FILE_TYPES = {getattr(abi, n): n for n in (
    "S_IFSOCK", "S_IFLNK", "S_IFREG", "S_IFBLK", "S_IFDIR", "S_IFCHR", "S_IFIFO")}


def makedev(dev: int) -> str:
    major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
    minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
    return f"makedev({major:#x}, {minor:#x})"


# --- kinds ------------------------------------------------------------------

Show = Callable[[Call, int], str]


@attrs.frozen
class Kind:
    """One way of showing an argument.

    ``at_exit`` kinds are shown when the call returns, and only if it
    succeeded; ``fd`` marks a descriptor, whose path the JSON output carries.
    """

    show: Show
    at_exit: bool = False
    fd: bool = False


def _int(call: Call, v: int) -> str:
    return str(s32(v))


def _uint(call: Call, v: int) -> str:
    return str(v & 0xFFFFFFFF)


def _long(call: Call, v: int) -> str:
    return str(s64(v))


def _ulong(call: Call, v: int) -> str:
    return str(v)


def _hex(call: Call, v: int) -> str:
    return c_hex(v)


def _ptr(call: Call, v: int) -> str:
    return hex_or_null(v)


def _dirfd(call: Call, v: int) -> str:
    fd = s32(v)
    return "AT_FDCWD" if fd == abi.AT_FDCWD else str(fd)


def _mode(call: Call, v: int) -> str:
    return octal(v & 0o7777)


def _id(call: Call, v: int) -> str:
    # uid_t/gid_t: -1 means "leave unchanged".
    return "-1" if v & 0xFFFFFFFF == 0xFFFFFFFF else str(v & 0xFFFFFFFF)


INT = Kind(_int)
UINT = Kind(_uint)
LONG = Kind(_long)
ULONG = Kind(_ulong)
HEX = Kind(_hex)
PTR = Kind(_ptr)
FD = Kind(_int, fd=True)
DIRFD = Kind(_dirfd, fd=True)
MODE = Kind(_mode)
FILE_MODE = Kind(lambda call, v: file_mode(v & 0xFFFFFFFF))
ID = Kind(_id)
DEV = Kind(lambda call, v: makedev(v))
SIGNAL = Kind(lambda call, v: signal_name(s32(v)) if s32(v) else "0")


def flags(table: dict[str, int], zero: str = "0", bits: int = 32) -> Kind:
    mask = (1 << bits) - 1
    return Kind(lambda call, v: flag_names(v & mask, table, zero))


def enum(table: dict[int, str], signed: bool = True) -> Kind:
    if signed:
        return Kind(lambda call, v: enum_name(s32(v), table))
    return Kind(lambda call, v: table.get(v & 0xFFFFFFFF, c_hex(v & 0xFFFFFFFF)))


# --- flag and enum tables -----------------------------------------------------

OPEN_FLAGS = _from_abi(
    "O_TMPFILE", "O_SYNC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND",
    "O_NONBLOCK", "O_DSYNC", "O_ASYNC", "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY",
    "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC", "O_PATH",
)
_ACCESS_MODES = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}


def open_flags(value: int) -> str:
    """``O_RDONLY|O_CLOEXEC``: the access mode always, then the other flags."""
    value &= 0xFFFFFFFF
    access = _ACCESS_MODES[value & abi.O_ACCMODE]
    rest = value & ~abi.O_ACCMODE
    if value & abi.O_PATH:
        # O_PATH ignores the access mode, and strace leaves it out.
        return flag_names(rest, OPEN_FLAGS)
    return access if not rest else access + "|" + flag_names(rest, OPEN_FLAGS)


OPEN = Kind(lambda call, v: open_flags(v))
# Flags of calls that make descriptors without opening a file (pipe2, dup3).
FD_FLAGS_OPEN = flags(_from_abi("O_CLOEXEC", "O_NONBLOCK", "O_DIRECT"))
AT_FLAGS = flags(_from_abi(
    "AT_SYMLINK_NOFOLLOW", "AT_SYMLINK_FOLLOW", "AT_NO_AUTOMOUNT", "AT_EMPTY_PATH",
) | {"AT_STATX_FORCE_SYNC": AT_STATX_FORCE_SYNC,
     "AT_STATX_DONT_SYNC": AT_STATX_DONT_SYNC})
UNLINK_FLAGS = flags(_from_abi("AT_REMOVEDIR"))
ACCESS_AT_FLAGS = flags(_from_abi("AT_EACCESS", "AT_SYMLINK_NOFOLLOW", "AT_EMPTY_PATH"))
ACCESS_MODE = flags(_from_abi("R_OK", "W_OK", "X_OK"), zero="F_OK")
RENAME_FLAGS = flags(_from_abi("RENAME_NOREPLACE", "RENAME_EXCHANGE",
                                "RENAME_WHITEOUT"))
PROT = flags(_from_abi("PROT_READ", "PROT_WRITE", "PROT_EXEC", "PROT_GROWSDOWN",
                       "PROT_GROWSUP"), zero="PROT_NONE")
_MAP_TYPES = {abi.MAP_SHARED: "MAP_SHARED", abi.MAP_PRIVATE: "MAP_PRIVATE",
              abi.MAP_SHARED_VALIDATE: "MAP_SHARED_VALIDATE"}
_MAP_FLAGS = _from_abi(
    "MAP_FIXED", "MAP_ANONYMOUS", "MAP_32BIT", "MAP_GROWSDOWN", "MAP_DENYWRITE",
    "MAP_EXECUTABLE", "MAP_LOCKED", "MAP_NORESERVE", "MAP_POPULATE", "MAP_NONBLOCK",
    "MAP_STACK", "MAP_HUGETLB", "MAP_SYNC", "MAP_FIXED_NOREPLACE",
)


def map_flags(value: int) -> str:
    """``MAP_PRIVATE|MAP_ANONYMOUS``: the mapping type first, then the flags."""
    value &= 0xFFFFFFFF
    kind = value & abi.MAP_TYPE
    head = _MAP_TYPES.get(kind, f"{kind:#x}")
    rest = value & ~abi.MAP_TYPE
    return head if not rest else head + "|" + flag_names(rest, _MAP_FLAGS)


MAP = Kind(lambda call, v: map_flags(v))
MREMAP_FLAGS = flags(_from_abi("MREMAP_MAYMOVE", "MREMAP_FIXED", "MREMAP_DONTUNMAP"))
MSYNC_FLAGS = flags(_from_abi("MS_ASYNC", "MS_INVALIDATE", "MS_SYNC"))
MADVICE = enum(_enum_from_abi(
    "MADV_NORMAL", "MADV_RANDOM", "MADV_SEQUENTIAL", "MADV_WILLNEED", "MADV_DONTNEED",
    "MADV_FREE", "MADV_REMOVE", "MADV_DONTFORK", "MADV_DOFORK", "MADV_HUGEPAGE",
    "MADV_NOHUGEPAGE", "MADV_DONTDUMP", "MADV_DODUMP",
))
CLOCK = enum(_enum_from_abi(
    "CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID",
    "CLOCK_THREAD_CPUTIME_ID", "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE",
    "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME", "CLOCK_REALTIME_ALARM",
    "CLOCK_BOOTTIME_ALARM", "CLOCK_TAI",
))
TIMER_FLAGS = flags(_from_abi("TIMER_ABSTIME"))
TFD_SETTIME_FLAGS = flags({"TFD_TIMER_ABSTIME": 1, "TFD_TIMER_CANCEL_ON_SET": 2})
_itimerspec = struct.Struct("<qqqq")


def _show_itimerspec(call: Call, v: int) -> str:
    if not v:
        return "NULL"
    isec, insec, vsec, vnsec = call.unpack(_itimerspec, v)
    return (f"{{it_interval={{tv_sec={isec}, tv_nsec={insec}}}, "
            f"it_value={{tv_sec={vsec}, tv_nsec={vnsec}}}}}")


# struct itimerspec (timerfd_settime, timer_settime), in and out.
ITIMERSPEC = Kind(_show_itimerspec)
ITIMERSPEC_OUT = Kind(_show_itimerspec, at_exit=True)
WHENCE = enum(_enum_from_abi("SEEK_SET", "SEEK_CUR", "SEEK_END", "SEEK_DATA",
                             "SEEK_HOLE"))
FCNTL_COMMANDS = _enum_from_abi(
    "F_DUPFD", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "F_GETLK", "F_SETLK",
    "F_SETLKW", "F_SETOWN", "F_GETOWN", "F_SETSIG", "F_GETSIG", "F_OFD_GETLK",
    "F_OFD_SETLK", "F_OFD_SETLKW", "F_DUPFD_CLOEXEC", "F_SETPIPE_SZ",
    "F_GETPIPE_SZ", "F_ADD_SEALS", "F_GET_SEALS",
)
FCNTL_CMD = enum(FCNTL_COMMANDS)
IOCTL_REQUEST = enum(_enum_from_abi(
    "TCGETS", "TCSETS", "TCSETSW", "TCSETSF", "TIOCSCTTY", "TIOCGPGRP", "TIOCSPGRP",
    "TIOCOUTQ", "TIOCGWINSZ", "TIOCSWINSZ", "FIONREAD", "TIOCNOTTY", "TIOCGSID",
    "TIOCGPTN", "FIONBIO", "FIONCLEX", "FIOCLEX", "FIOASYNC",
), signed=False)
PRCTL_OPTIONS = _enum_from_abi(
    "PR_SET_PDEATHSIG", "PR_GET_PDEATHSIG", "PR_GET_DUMPABLE", "PR_SET_DUMPABLE",
    "PR_SET_NAME", "PR_GET_NAME", "PR_GET_SECCOMP", "PR_SET_SECCOMP",
    "PR_CAPBSET_READ", "PR_GET_TIMERSLACK", "PR_SET_TIMERSLACK",
    "PR_SET_NO_NEW_PRIVS", "PR_GET_NO_NEW_PRIVS", "PR_SET_VMA",
    "PR_SET_CHILD_SUBREAPER", "PR_GET_CHILD_SUBREAPER", "PR_SET_THP_DISABLE",
    "PR_GET_THP_DISABLE",
)
PRCTL_OPTION = enum(PRCTL_OPTIONS)
ARCH_PRCTL_CODE = enum(_enum_from_abi(
    "ARCH_SET_GS", "ARCH_SET_FS", "ARCH_GET_FS", "ARCH_GET_GS", "ARCH_GET_CPUID",
    "ARCH_SET_CPUID", "ARCH_CET_STATUS", "ARCH_SHSTK_ENABLE", "ARCH_SHSTK_STATUS",
))
RLIMIT_RESOURCE = enum(_enum_from_abi(
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
    "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
    "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
    "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
))
RUSAGE_WHO = enum(_enum_from_abi("RUSAGE_SELF", "RUSAGE_CHILDREN", "RUSAGE_THREAD"))
GRND_FLAGS = flags(_from_abi("GRND_NONBLOCK", "GRND_RANDOM", "GRND_INSECURE"))
EFD_FLAGS = flags(_from_abi("EFD_SEMAPHORE", "EFD_CLOEXEC", "EFD_NONBLOCK"))
CLOSE_RANGE_FLAGS = flags(_from_abi("CLOSE_RANGE_UNSHARE", "CLOSE_RANGE_CLOEXEC"))
FALLOC_MODE = flags(_from_abi("FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"))
STATX_MASK = flags(_from_abi("STATX_BASIC_STATS", "STATX_TYPE", "STATX_MODE",
                             "STATX_NLINK", "STATX_UID", "STATX_GID", "STATX_ATIME",
                             "STATX_MTIME", "STATX_CTIME", "STATX_INO", "STATX_SIZE",
                             "STATX_BLOCKS", "STATX_BTIME"))
FLOCK_OP = flags({"LOCK_SH": LOCK_SH, "LOCK_EX": LOCK_EX, "LOCK_NB": LOCK_NB,
                  "LOCK_UN": LOCK_UN})
SIGPROCMASK_HOW = enum({SIG_BLOCK: "SIG_BLOCK", SIG_UNBLOCK: "SIG_UNBLOCK",
                        SIG_SETMASK: "SIG_SETMASK"})
WAIT_OPTIONS = flags({"WNOHANG": WNOHANG, "WUNTRACED": WUNTRACED, "WEXITED": WEXITED,
                      "WCONTINUED": WCONTINUED, "WNOWAIT": WNOWAIT,
                      "__WNOTHREAD": 0x20000000, "__WALL": 0x40000000,
                      "__WCLONE": 0x80000000})
ID_TYPE = enum(ID_TYPES)
PRIO_WHICH_KIND = enum(PRIO_WHICH)
SCHED_POLICY = enum(SCHED_POLICIES)
RWF_FLAGS = flags({"RWF_HIPRI": RWF_HIPRI, "RWF_DSYNC": RWF_DSYNC, "RWF_SYNC": RWF_SYNC,
                   "RWF_NOWAIT": RWF_NOWAIT, "RWF_APPEND": RWF_APPEND})
MFD_FLAGS = flags({"MFD_CLOEXEC": MFD_CLOEXEC, "MFD_ALLOW_SEALING": MFD_ALLOW_SEALING,
                   "MFD_HUGETLB": MFD_HUGETLB})
ADDRESS_FAMILY = enum(ADDRESS_FAMILIES)
MSG = flags(MSG_FLAGS)
SHUTDOWN = enum(SHUTDOWN_HOW)
SOCKET_LEVEL = enum(SOCKET_LEVELS)
EPOLL_OP = enum(EPOLL_OPS)
EPOLL_CREATE_FLAGS = flags({"EPOLL_CLOEXEC": abi.O_CLOEXEC})
POLL_EVENTS = _from_abi("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP",
                        "POLLNVAL", "POLLRDNORM", "POLLRDBAND", "POLLWRNORM",
                        "POLLWRBAND", "POLLRDHUP")
SOCK_FLAGS = flags({"SOCK_NONBLOCK": SOCK_NONBLOCK, "SOCK_CLOEXEC": SOCK_CLOEXEC})


def _clone_flags(call: Call, v: int) -> str:
    signal = v & 0xFF
    text = flag_names(v & ~0xFF, CLONE_FLAGS, zero="")
    if signal:
        text = f"{text}|{signal_name(signal)}" if text else signal_name(signal)
    return text or "0"


CLONE = Kind(_clone_flags)


def _socket_type(call: Call, v: int) -> str:
    kind = v & 0xF
    head = SOCKET_TYPES.get(kind, str(kind))
    rest = v & 0xFFFFFFF0
    return head if not rest else head + "|" + flag_names(rest, {
        "SOCK_NONBLOCK": SOCK_NONBLOCK, "SOCK_CLOEXEC": SOCK_CLOEXEC})


SOCKET_TYPE = Kind(_socket_type)


def _socket_protocol(call: Call, v: int) -> str:
    if call.args[0] in (AF_INET, AF_INET6):
        return enum_name(s32(v), IP_PROTOCOLS)
    return str(s32(v))


SOCKET_PROTOCOL = Kind(_socket_protocol)


def _socket_option(call: Call, v: int) -> str:
    table = OPTIONS_BY_LEVEL.get(s32(call.args[1]))
    if table is not None:
        return enum_name(s32(v), table)
    return str(s32(v))


SOCKET_OPTION = Kind(_socket_option)


def _futex_op(call: Call, v: int) -> str:
    v = s32(v)
    name = FUTEX_OPS.get(v & 0x7F, str(v & 0x7F))
    if v & FUTEX_PRIVATE_FLAG:
        name += "_PRIVATE"
    if v & FUTEX_CLOCK_REALTIME:
        name += "|FUTEX_CLOCK_REALTIME"
    return name


FUTEX_OP = Kind(_futex_op)


def fcntl_arg_count(args: Sequence[int]) -> int:
    """fcntl(2) takes a third argument only for some commands."""
    no_arg = (abi.F_GETFD, abi.F_GETFL, abi.F_GETOWN, abi.F_GETSIG,
              abi.F_GETPIPE_SZ, abi.F_GET_SEALS)
    return 2 if s32(args[1]) in no_arg else 3


def open_arg_count(flags_arg: int) -> Callable[[Sequence[int]], int]:
    """open(2) and openat(2) take a mode only when they may create a file."""

    def count(args: Sequence[int]) -> int:
        value = args[flags_arg]
        creates = value & abi.O_CREAT or value & abi.O_TMPFILE == abi.O_TMPFILE
        return flags_arg + 2 if creates else flags_arg + 1

    return count


def prctl_arg_count(args: Sequence[int]) -> int:
    option = s32(args[0])
    if option in (abi.PR_SET_NAME, abi.PR_GET_NAME, abi.PR_SET_PDEATHSIG,
                  abi.PR_SET_DUMPABLE, abi.PR_SET_CHILD_SUBREAPER):
        return 2
    if option in (abi.PR_GET_DUMPABLE, abi.PR_GET_NO_NEW_PRIVS, abi.PR_GET_SECCOMP,
                  abi.PR_GET_TIMERSLACK, abi.PR_GET_THP_DISABLE):
        return 1
    return 5


def futex_arg_count(args: Sequence[int]) -> int:
    op = s32(args[1]) & 0x7F
    return {0: 4, 1: 3, 9: 6, 10: 6}.get(op, 6)

"""Credentials, system identity, limits and the odds and ends of start-up.

uid/gid family, uname, hostname, sysinfo, rlimits, getrusage, prctl,
arch_prctl, rseq, sched_*, getcpu, getrandom.
"""

from __future__ import annotations

import functools
import resource as host_resource
import struct
from typing import TYPE_CHECKING

from unicorn.x86_const import UC_X86_REG_FS_BASE, UC_X86_REG_GS_BASE

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import encode, s32
from sentry.syscalls.table import missing, syscall

if TYPE_CHECKING:
    from sentry.task import Process, Task

# --- credentials -------------------------------------------------------------


def getuid(t: Task, *_: int) -> int:
    """getuid(2)."""
    return t.process.creds.uid


def geteuid(t: Task, *_: int) -> int:
    """geteuid(2)."""
    return t.process.creds.euid


def getgid(t: Task, *_: int) -> int:
    """getgid(2)."""
    return t.process.creds.gid


def getegid(t: Task, *_: int) -> int:
    """getegid(2)."""
    return t.process.creds.egid


def getresuid(t: Task, ruid: int, euid: int, suid: int, *_: int) -> int:
    """getresuid(2)."""
    c = t.process.creds
    for addr, value in ((ruid, c.uid), (euid, c.euid), (suid, c.suid)):
        t.mm.write_u32(addr, value)
    return 0


def getresgid(t: Task, rgid: int, egid: int, sgid: int, *_: int) -> int:
    """getresgid(2)."""
    c = t.process.creds
    for addr, value in ((rgid, c.gid), (egid, c.egid), (sgid, c.sgid)):
        t.mm.write_u32(addr, value)
    return 0


def getgroups(t: Task, size: int, addr: int, *_: int) -> int:
    """getgroups(2)."""
    size = s32(size)
    groups = t.process.creds.groups
    if size < 0:
        raise SyscallError(abi.EINVAL)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise SyscallError(abi.EINVAL)
    t.mm.write(addr, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def _may_set_id(t: Task) -> bool:
    return t.process.creds.euid == 0


def setuid(t: Task, uid: int, *_: int) -> int:
    """setuid(2)."""
    uid = s32(uid)
    c = t.process.creds
    if uid < 0:
        raise SyscallError(abi.EINVAL)
    if _may_set_id(t):
        c.uid = c.euid = c.suid = c.fsuid = uid
    elif uid in (c.uid, c.suid):
        c.euid = c.fsuid = uid
    else:
        raise SyscallError(abi.EPERM)
    return 0


def setgid(t: Task, gid: int, *_: int) -> int:
    """setgid(2)."""
    gid = s32(gid)
    c = t.process.creds
    if gid < 0:
        raise SyscallError(abi.EINVAL)
    if _may_set_id(t):
        c.gid = c.egid = c.sgid = c.fsgid = gid
    elif gid in (c.gid, c.sgid):
        c.egid = c.fsgid = gid
    else:
        raise SyscallError(abi.EPERM)
    return 0


def _set_res(t: Task, current: list[int], wanted: list[int]) -> list[int]:
    allowed = set(current)
    out = []
    for cur, new in zip(current, wanted, strict=True):
        new = s32(new)
        if new == -1:
            out.append(cur)
            continue
        if not _may_set_id(t) and new not in allowed:
            raise SyscallError(abi.EPERM)
        out.append(new)
    return out


def setresuid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """setresuid(2)."""
    c = t.process.creds
    c.uid, c.euid, c.suid = _set_res(t, [c.uid, c.euid, c.suid], [r, e, s])
    c.fsuid = c.euid
    return 0


def setresgid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """setresgid(2)."""
    c = t.process.creds
    c.gid, c.egid, c.sgid = _set_res(t, [c.gid, c.egid, c.sgid], [r, e, s])
    c.fsgid = c.egid
    return 0


def setreuid(t: Task, r: int, e: int, *_: int) -> int:
    """setreuid(2)."""
    return setresuid(t, r, e, 0xFFFFFFFF)


def setregid(t: Task, r: int, e: int, *_: int) -> int:
    """setregid(2)."""
    return setresgid(t, r, e, 0xFFFFFFFF)


def setgroups(t: Task, size: int, addr: int, *_: int) -> int:
    """setgroups(2)."""
    size = s32(size)
    if size < 0 or size > 65536:
        raise SyscallError(abi.EINVAL)
    if not _may_set_id(t):
        raise SyscallError(abi.EPERM)
    t.process.creds.groups = list(struct.unpack(f"<{size}I", t.mm.read(addr, 4 * size)))
    return 0


def setfsuid(t: Task, uid: int, *_: int) -> int:
    """setfsuid(2): returns the previous fsuid."""
    c = t.process.creds
    old = c.fsuid
    uid = s32(uid)
    if uid != -1 and (_may_set_id(t) or uid in (c.uid, c.euid, c.suid)):
        c.fsuid = uid
    return old


def setfsgid(t: Task, gid: int, *_: int) -> int:
    """setfsgid(2): returns the previous fsgid."""
    c = t.process.creds
    old = c.fsgid
    gid = s32(gid)
    if gid != -1 and (_may_set_id(t) or gid in (c.gid, c.egid, c.sgid)):
        c.fsgid = gid
    return old


# --- system identity ---------------------------------------------------------


def uname(t: Task, addr: int, *_: int) -> int:
    """uname(2): struct utsname, six fields of 65 bytes."""
    u = t.process.kernel.uname()
    fields = ("sysname", "nodename", "release", "version", "machine", "domainname")
    blob = b"".join(encode(u[f])[:64].ljust(65, b"\0") for f in fields)
    t.mm.write(addr, blob)
    return 0


def sethostname(t: Task, addr: int, length: int, *_: int) -> int:
    """sethostname(2)."""
    if not _may_set_id(t):
        raise SyscallError(abi.EPERM)
    if length > 64:
        raise SyscallError(abi.EINVAL)
    t.process.kernel.hostname = t.mm.read(addr, length).decode("utf-8", "surrogateescape")
    return 0


def setdomainname(t: Task, addr: int, length: int, *_: int) -> int:
    """setdomainname(2)."""
    if not _may_set_id(t):
        raise SyscallError(abi.EPERM)
    if length > 64:
        raise SyscallError(abi.EINVAL)
    t.process.kernel.domainname = t.mm.read(addr, length).decode(
        "utf-8", "surrogateescape"
    )
    return 0


def sysinfo(t: Task, addr: int, *_: int) -> int:
    """sysinfo(2)."""
    k = t.process.kernel
    total = k.memory_limit_bytes()
    used = sum(p.mm.mapped_bytes() for p in k.processes())
    uptime = k.clock.monotonic_ns() // 10**9
    info = struct.pack(
        "<q3Q6QHH4xQQI",
        uptime, 0, 0, 0,  # uptime, loads[3]
        total, max(total - used, 0), 0, 0, 0, 0,  # ram, free, shared, buffer, swap
        len(list(k.processes())), 0,  # procs, pad
        0, 0, 1,  # totalhigh, freehigh, mem_unit
    )
    t.mm.write(addr, info.ljust(112, b"\0"))
    return 0


# --- limits and usage --------------------------------------------------------

@functools.cache
def host_limits() -> dict[int, tuple[int, int]]:
    """The limits the sentry runs under. The guest starts with them, as a
    program started from the same shell would."""
    limits = {}
    for res in range(abi.RLIM_NLIMITS):
        try:
            soft, hard = host_resource.getrlimit(res)
        except (ValueError, OSError):
            continue
        # Python spells RLIM_INFINITY as -1.
        limits[res] = (soft & abi.RLIM_INFINITY, hard & abi.RLIM_INFINITY)
    return limits


def process_limit(proc: Process, resource: int) -> tuple[int, int]:
    """The soft and hard limit ``proc`` has for ``resource``."""
    unlimited = (abi.RLIM_INFINITY, abi.RLIM_INFINITY)
    limits = proc.rlimits.get(resource, host_limits().get(resource, unlimited))
    if resource == abi.RLIMIT_NOFILE:
        return proc.fds.limit, limits[1]
    return limits


def _get_limit(t: Task, resource: int) -> tuple[int, int]:
    return process_limit(t.process, resource)


def _set_limit(t: Task, resource: int, soft: int, hard: int) -> None:
    if soft > hard:
        raise SyscallError(abi.EINVAL)
    _cur, old_hard = _get_limit(t, resource)
    if hard > old_hard and t.process.creds.euid != 0:
        raise SyscallError(abi.EPERM)
    if resource == abi.RLIMIT_NOFILE:
        if hard > 1 << 20:
            raise SyscallError(abi.EPERM)
        t.process.fds.limit = soft
    t.process.rlimits[resource] = (soft, hard)


def prlimit64(t: Task, pid: int, resource: int, new: int, old: int, *_: int) -> int:
    """prlimit64(2)."""
    resource = s32(resource)
    if s32(pid) not in (0, t.process.pid):
        if t.process.kernel.find_process(s32(pid)) is None:
            raise SyscallError(abi.ESRCH)
        raise SyscallError(abi.EPERM)
    if not 0 <= resource < abi.RLIM_NLIMITS:
        raise SyscallError(abi.EINVAL)
    soft, hard = _get_limit(t, resource)
    new_limits = struct.unpack("<QQ", t.mm.read(new, 16)) if new else None
    if old:
        t.mm.write(old, struct.pack("<QQ", soft, hard))
    if new_limits is not None:
        _set_limit(t, resource, *new_limits)
    return 0


def getrlimit(t: Task, resource: int, addr: int, *_: int) -> int:
    """getrlimit(2)."""
    return prlimit64(t, 0, resource, 0, addr)


def setrlimit(t: Task, resource: int, addr: int, *_: int) -> int:
    """setrlimit(2)."""
    return prlimit64(t, 0, resource, addr, 0)


def getrusage(t: Task, who: int, addr: int, *_: int) -> int:
    """getrusage(2): CPU time of the sandbox; the rest zero."""
    who = s32(who)
    if who not in (abi.RUSAGE_SELF, abi.RUSAGE_CHILDREN, abi.RUSAGE_THREAD):
        raise SyscallError(abi.EINVAL)
    ns = t.process.kernel.clock.cputime_ns() if who != abi.RUSAGE_CHILDREN else 0
    sec, usec = ns // 10**9, (ns % 10**9) // 1000
    maxrss = t.mm.mapped_bytes() // 1024 if who != abi.RUSAGE_CHILDREN else 0
    t.mm.write(addr, struct.pack("<4q14q", sec, usec, 0, 0, maxrss, *([0] * 13)))
    return 0


def umask(t: Task, mask: int, *_: int) -> int:
    """umask(2)."""
    old = t.process.fs.umask
    t.process.fs.umask = mask & 0o777
    return old


# --- prctl / arch_prctl ------------------------------------------------------


def prctl(t: Task, option: int, arg2: int, arg3: int, arg4: int, arg5: int, *_: int) -> int:
    """prctl(2): the options programs use at start-up."""
    option = s32(option)
    proc = t.process
    if option == abi.PR_SET_NAME:
        name = t.mm.read_cstring(arg2, 4096)[:15]
        t.name = name.decode("utf-8", "surrogateescape")
        if t.tid == proc.pid:
            proc.comm = t.name
        return 0
    if option == abi.PR_GET_NAME:
        t.mm.write(arg2, encode(t.name)[:15].ljust(16, b"\0"))
        return 0
    if option == abi.PR_GET_DUMPABLE:
        return proc.dumpable
    if option == abi.PR_SET_DUMPABLE:
        if arg2 not in (0, 1):
            raise SyscallError(abi.EINVAL)
        proc.dumpable = arg2
        return 0
    if option in (abi.PR_SET_NO_NEW_PRIVS,):
        if arg2 != 1 or arg3 or arg4 or arg5:
            raise SyscallError(abi.EINVAL)
        proc.no_new_privs = True
        return 0
    if option == abi.PR_GET_NO_NEW_PRIVS:
        return int(proc.no_new_privs)
    if option == abi.PR_SET_PDEATHSIG:
        if not 0 <= arg2 <= abi.NSIG:
            raise SyscallError(abi.EINVAL)
        proc.pdeathsig = arg2
        return 0
    if option == abi.PR_GET_PDEATHSIG:
        t.mm.write_u32(arg2, proc.pdeathsig)
        return 0
    if option == abi.PR_GET_SECCOMP:
        return 0
    if option == abi.PR_CAPBSET_READ:
        if not 0 <= arg2 <= 40:
            raise SyscallError(abi.EINVAL)
        return 1
    if option in (abi.PR_SET_VMA, abi.PR_SET_THP_DISABLE, abi.PR_SET_CHILD_SUBREAPER,
                  abi.PR_SET_TIMERSLACK):
        return 0
    if option in (abi.PR_GET_THP_DISABLE, abi.PR_GET_CHILD_SUBREAPER):
        if option == abi.PR_GET_CHILD_SUBREAPER:
            t.mm.write_u32(arg2, 0)
        return 0
    if option == abi.PR_GET_TIMERSLACK:
        return 50000
    raise SyscallError(abi.EINVAL)


def arch_prctl(t: Task, code: int, addr: int, *_: int) -> int:
    """arch_prctl(2): FS/GS bases; CET is absent, as on a kernel without it."""
    cpu = t.mm.cpu
    code = s32(code)
    if code == abi.ARCH_SET_FS:
        cpu.write_reg(UC_X86_REG_FS_BASE, addr)
        return 0
    if code == abi.ARCH_SET_GS:
        cpu.write_reg(UC_X86_REG_GS_BASE, addr)
        return 0
    if code == abi.ARCH_GET_FS:
        t.mm.write_u64(addr, cpu.read_reg(UC_X86_REG_FS_BASE))
        return 0
    if code == abi.ARCH_GET_GS:
        t.mm.write_u64(addr, cpu.read_reg(UC_X86_REG_GS_BASE))
        return 0
    if code == abi.ARCH_GET_CPUID:
        return 1
    # glibc probes CET and shadow stacks; a kernel without them says EINVAL.
    raise SyscallError(abi.EINVAL)


# --- scheduling and CPUs -----------------------------------------------------


def sched_getaffinity(t: Task, pid: int, size: int, addr: int, *_: int) -> int:
    """sched_getaffinity(2): returns the size of the kernel's mask."""
    n = t.process.kernel.ncpus()
    mask_bytes = max(8, ((n + 63) // 64) * 8)
    if size < mask_bytes or size & 7:
        raise SyscallError(abi.EINVAL)
    mask = (1 << n) - 1
    t.mm.write(addr, mask.to_bytes(mask_bytes, "little"))
    return mask_bytes


def sched_setaffinity(t: Task, pid: int, size: int, addr: int, *_: int) -> int:
    """sched_setaffinity(2): accepted; every task runs on the one host thread."""
    mask = int.from_bytes(t.mm.read(addr, min(size, 128)), "little")
    if mask & ((1 << t.process.kernel.ncpus()) - 1) == 0:
        raise SyscallError(abi.EINVAL)
    return 0


def sched_yield(t: Task, *_: int) -> int:
    """sched_yield(2): the other runnable tasks run before the caller again."""
    if t.process.kernel.sched.yield_cpu():
        t.mm.cpu.stop()
    return 0


def getcpu(t: Task, cpu: int, node: int, *_: int) -> int:
    """getcpu(2)."""
    if cpu:
        t.mm.write_u32(cpu, 0)
    if node:
        t.mm.write_u32(node, 0)
    return 0


def sched_getscheduler(t: Task, pid: int, *_: int) -> int:
    """sched_getscheduler(2): SCHED_OTHER."""
    return 0


def sched_getparam(t: Task, pid: int, addr: int, *_: int) -> int:
    """sched_getparam(2)."""
    t.mm.write_u32(addr, 0)
    return 0


def sched_get_priority_max(t: Task, policy: int, *_: int) -> int:
    """sched_get_priority_max(2)."""
    return 99 if s32(policy) in (1, 2) else 0


def getpriority(t: Task, which: int, who: int, *_: int) -> int:
    """getpriority(2): nice 0, reported as 20 - nice."""
    return 20


def setpriority(t: Task, which: int, who: int, prio: int, *_: int) -> int:
    """setpriority(2): accepted, without effect on our scheduler."""
    return 0


IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3
IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3
IOPRIO_CLASS_SHIFT = 13
IOPRIO_NR_LEVELS = 8


def _ioprio_targets(t: Task, which: int, who: int) -> None:
    """ESRCH unless ``who`` names something ``which`` can find; EINVAL for
    an unknown ``which``."""
    which, who = s32(which), s32(who)
    kernel = t.process.kernel
    if which == IOPRIO_WHO_PROCESS:
        found = who == 0 or any(
            task.tid == who for proc in kernel.processes() for task in proc.threads
        )
    elif which == IOPRIO_WHO_PGRP:
        pgid = who or t.process.pgid
        found = any(proc.pgid == pgid for proc in kernel.processes())
    elif which == IOPRIO_WHO_USER:
        uid = who or t.process.creds.uid
        found = any(proc.creds.uid == uid for proc in kernel.processes())
    else:
        raise SyscallError(abi.EINVAL)
    if not found:
        raise SyscallError(abi.ESRCH)


def ioprio_get(t: Task, which: int, who: int, *_: int) -> int:
    """ioprio_get(2): every task keeps the default, IOPRIO_CLASS_NONE."""
    _ioprio_targets(t, which, who)
    return IOPRIO_CLASS_NONE << IOPRIO_CLASS_SHIFT


def ioprio_set(t: Task, which: int, who: int, ioprio: int, *_: int) -> int:
    """ioprio_set(2): checked like Linux, then accepted without effect."""
    ioprio = s32(ioprio)
    klass, level = (ioprio >> IOPRIO_CLASS_SHIFT) & 7, ioprio & 0x1FFF

    # Check the class and level (block/ioprio.c ioprio_check_cap).
    if klass == IOPRIO_CLASS_RT and t.process.creds.euid != 0:
        raise SyscallError(abi.EPERM)
    if klass in (IOPRIO_CLASS_RT, IOPRIO_CLASS_BE) and level >= IOPRIO_NR_LEVELS:
        raise SyscallError(abi.EINVAL)
    if klass == IOPRIO_CLASS_NONE and level:
        raise SyscallError(abi.EINVAL)
    if klass > IOPRIO_CLASS_IDLE:
        raise SyscallError(abi.EINVAL)
    _ioprio_targets(t, which, who)
    return 0


# --- randomness --------------------------------------------------------------


def getrandom(t: Task, buf: int, count: int, flags: int, *_: int) -> int:
    """getrandom(2)."""
    flags = s32(flags)
    if flags & ~(abi.GRND_NONBLOCK | abi.GRND_RANDOM | abi.GRND_INSECURE):
        raise SyscallError(abi.EINVAL)
    if flags & abi.GRND_RANDOM and flags & abi.GRND_INSECURE:
        raise SyscallError(abi.EINVAL)
    count = min(count, 33554431)
    t.mm.write(buf, t.process.kernel.random_bytes(count))
    return count


SYSCALLS = [
    syscall("getuid", getuid),
    syscall("geteuid", geteuid),
    syscall("getgid", getgid),
    syscall("getegid", getegid),
    syscall("getresuid", getresuid),
    syscall("getresgid", getresgid),
    syscall("getgroups", getgroups),
    syscall("setuid", setuid),
    syscall("setgid", setgid),
    syscall("setreuid", setreuid),
    syscall("setregid", setregid),
    syscall("setresuid", setresuid),
    syscall("setresgid", setresgid),
    syscall("setgroups", setgroups),
    syscall("setfsuid", setfsuid),
    syscall("setfsgid", setfsgid),
    syscall("uname", uname),
    syscall("sethostname", sethostname),
    syscall("setdomainname", setdomainname),
    syscall("sysinfo", sysinfo),
    syscall("prlimit64", prlimit64, "limits are recorded; NOFILE is enforced",
            partial=True),
    syscall("getrlimit", getrlimit),
    syscall("setrlimit", setrlimit),
    syscall("getrusage", getrusage, "only CPU time and maxrss", partial=True),
    syscall("umask", umask),
    syscall("prctl", prctl, "start-up options only", partial=True),
    syscall("arch_prctl", arch_prctl, "no CET / shadow stack, like a kernel without",
            partial=True),
    syscall("sched_getaffinity", sched_getaffinity),
    syscall("sched_setaffinity", sched_setaffinity, "accepted, no effect", partial=True),
    syscall("sched_yield", sched_yield),
    syscall("sched_getscheduler", sched_getscheduler),
    syscall("sched_getparam", sched_getparam),
    syscall("sched_get_priority_max", sched_get_priority_max),
    syscall("getpriority", getpriority),
    syscall("setpriority", setpriority, "accepted, no effect", partial=True),
    syscall("ioprio_get", ioprio_get, "always IOPRIO_CLASS_NONE", partial=True),
    syscall("ioprio_set", ioprio_set, "checked and accepted, no effect", partial=True),
    syscall("getcpu", getcpu),
    syscall("getrandom", getrandom),
    missing("rseq", "restartable sequences are not offered; glibc falls back"),
]

"""The text of /proc files, rendered from kernel state in Linux's formats.

Every function returns the whole file as a string at the moment it is called;
:mod:`vfs.procfs` calls them when a file is opened. Formats follow
fs/proc/array.c, fs/proc/meminfo.c, fs/proc_namespace.c and friends; fields
the sentry has no notion of are given the value an idle Linux would show,
usually 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import OpenFile
from vfs.devfs import dev_major, dev_minor

if TYPE_CHECKING:
    from sentry.kernel import Kernel, Process, Task
    from vfs.mount import Mount

CLK_TCK = 100  # USER_HZ: the unit of the tick counts in stat files
RLIM_INFINITY = 0xFFFF_FFFF_FFFF_FFFF
CAP_FULL = (1 << 41) - 1  # capabilities 0..CAP_LAST_CAP (40)
SIGQUEUE_MAX = 63704
ROOT_MOUNT_ID = 22
SIG_DFL = 0
SIG_IGN = 1  # mountinfo ids of the mount table start here

# Mount ids of the kernel-internal mounts that hold pipes and anonymous inodes.
PIPEFS_MOUNT_ID = 14
ANON_MOUNT_ID = 15

# x86-64-v2 and below: what the emulated CPU offers (pni is SSE3).
CPU_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 "
    "clflush mmx fxsr sse sse2 syscall nx lm rep_good nopl cpuid pni ssse3 cx16 "
    "sse4_1 sse4_2 popcnt hypervisor lahf_lm"
)

# File systems /proc/filesystems lists; "nodev" ones need no block device.
FILESYSTEMS = (
    ("nodev", "sysfs"),
    ("nodev", "tmpfs"),
    ("nodev", "proc"),
    ("nodev", "devtmpfs"),
    ("nodev", "pipefs"),
    ("nodev", "anon_inodefs"),
    ("nodev", "devpts"),
    ("nodev", "overlay"),
    ("nodev", "mqueue"),
    ("", "ext4"),
)


def kb(nbytes: int) -> int:
    return nbytes // 1024


def thread_name(proc: Process, task: Task | None) -> str:
    """The comm of a thread (PR_SET_NAME names a thread) or of the process."""
    if task is not None and task.name:
        return task.name
    return proc.comm


def _leader(proc: Process) -> Task | None:
    for task in proc.threads:
        if task.tid == proc.pid:
            return task
    return proc.threads[0] if proc.threads else None


def signal_masks(proc: Process, task: Task | None) -> tuple[int, int, int, int, int]:
    """(pending, shared pending, blocked, ignored, caught) of a thread.

    ``task`` None means the process, shown through its leader thread. Signal
    n is bit n-1, as in the kernel's sigset_t.
    """
    if task is None:
        task = _leader(proc)
    blocked = task.sigmask if task is not None else 0
    ignored = caught = 0
    for signo, action in enumerate(proc.sigactions):
        if signo == 0 or signo > abi.NSIG:
            continue
        if action.handler == SIG_IGN:
            ignored |= 1 << (signo - 1)
        elif action.handler != SIG_DFL:
            caught |= 1 << (signo - 1)
    # TODO: pending masks, once the sentry queues signals instead of acting at once.
    return (0, 0, blocked, ignored, caught)


def cpu_mask(ncpus: int) -> str:
    """A cpumask as "%*pb" prints it: hex, in comma-separated 32-bit groups."""
    mask = (1 << ncpus) - 1
    groups = []
    while True:
        groups.append(mask & 0xFFFF_FFFF)
        mask >>= 32
        if not mask:
            break
    head, *rest = reversed(groups)
    return ",".join([f"{head:x}"] + [f"{g:08x}" for g in rest])


def cpu_list(ncpus: int) -> str:
    return "0" if ncpus == 1 else f"0-{ncpus - 1}"


# --- per process ---------------------------------------------------------------


def cmdline_bytes(args: list[bytes]) -> bytes:
    """cmdline and environ: every string followed by a NUL."""
    return b"".join(bytes(a) + b"\0" for a in args)


def stat_line(kernel: Kernel, proc: Process, task: Task | None) -> str:
    """/proc/PID/stat: the 52 fields of do_task_stat()."""
    pid = task.tid if task is not None else proc.pid
    vsize = proc.mm.mapped_bytes()
    pending, shared, blocked, ignored, caught = signal_masks(proc, task)
    start_ticks = proc.start_time_ns * CLK_TCK // 1_000_000_000
    fields: list[Any] = [
        pid,
        f"({thread_name(proc, task)})",
        kernel.task_state(proc, task),
        proc.ppid,
        proc.pgid,
        proc.sid,
        0,  # tty_nr
        -1,  # tpgid
        0,  # flags
        0,
        0,
        0,
        0,  # minflt cminflt majflt cmajflt
        0,
        0,
        0,
        0,  # utime stime cutime cstime
        20,
        0,  # priority nice
        len(proc.threads),
        0,  # itrealvalue
        start_ticks,
        vsize,
        vsize // abi.PAGE_SIZE,
        RLIM_INFINITY,
        0,
        0,
        0,
        0,
        0,  # startcode endcode startstack kstkesp kstkeip
        pending | shared,
        blocked,
        ignored,
        caught,
        0,
        0,
        0,  # wchan nswap cnswap
        abi.SIGCHLD,  # exit_signal
        0,
        0,
        0,
        0,
        0,
        0,  # processor rt_priority policy blkio guest cguest
        0,
        0,
        0,
        0,
        0,
        0,
        0,  # start_data ... env_end
        0,  # exit_code
    ]
    return " ".join(str(f) for f in fields) + "\n"


# The rows of /proc/PID/limits: name and unit of each resource, in order.
_LIMIT_ROWS = [
    ("Max cpu time", "seconds"), ("Max file size", "bytes"),
    ("Max data size", "bytes"), ("Max stack size", "bytes"),
    ("Max core file size", "bytes"), ("Max resident set", "bytes"),
    ("Max processes", "processes"), ("Max open files", "files"),
    ("Max locked memory", "bytes"), ("Max address space", "bytes"),
    ("Max file locks", "locks"), ("Max pending signals", "signals"),
    ("Max msgqueue size", "bytes"), ("Max nice priority", ""),
    ("Max realtime priority", ""), ("Max realtime timeout", "us"),
]


def limits_text(proc: Process) -> str:
    """/proc/PID/limits, laid out as fs/proc/base.c prints it."""
    from sentry.syscalls.identity import process_limit

    def value(v: int) -> str:
        return "unlimited" if v == abi.RLIM_INFINITY else str(v)

    lines = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}"]
    for resource, (name, unit) in enumerate(_LIMIT_ROWS):
        soft, hard = process_limit(proc, resource)
        row = f"{name:<25} {value(soft):<20} {value(hard):<20} "
        lines.append(row + (f"{unit:<10}" if unit else ""))
    return "\n".join(lines) + "\n"


def statm_line(proc: Process) -> str:
    """/proc/PID/statm: sizes in pages; the sentry knows only the total."""
    pages = proc.mm.mapped_bytes() // abi.PAGE_SIZE
    return f"{pages} {pages} 0 0 0 0 0\n"


def fd_table_size(fds: Iterable[int]) -> int:
    """FDSize: the fd table grows from 64 slots by powers of two."""
    size = 64
    top = max(fds, default=0)
    while size <= top:
        size *= 2
    return size


_STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "Z": "Z (zombie)"}


def status_text(kernel: Kernel, proc: Process, task: Task | None) -> str:
    """/proc/PID/status (proc_pid_status)."""
    c = proc.creds
    pid = task.tid if task is not None else proc.pid
    vm = kb(proc.mm.mapped_bytes())
    pending, shared, blocked, ignored, caught = signal_masks(proc, task)
    caps = CAP_FULL if c.euid == 0 else 0
    ncpus = kernel.ncpus()
    groups = "".join(f"{g} " for g in c.groups)
    mems = ",".join(["00000000"] * 31 + ["00000001"])
    lines = [
        ("Name", thread_name(proc, task)),
        ("Umask", f"{proc.fs.umask:04o}"),
        ("State", _STATE_NAMES[kernel.task_state(proc, task)]),
        ("Tgid", proc.pid),
        ("Ngid", 0),
        ("Pid", pid),
        ("PPid", proc.ppid),
        ("TracerPid", 0),
        ("Uid", f"{c.uid}\t{c.euid}\t{c.suid}\t{c.fsuid}"),
        ("Gid", f"{c.gid}\t{c.egid}\t{c.sgid}\t{c.fsgid}"),
        ("FDSize", fd_table_size(fd for fd, _ in proc.fds.items())),
        ("Groups", groups),
        ("NStgid", proc.pid),
        ("NSpid", pid),
        ("NSpgid", proc.pgid),
        ("NSsid", proc.sid),
        ("Kthread", 0),
    ]
    for name, value in (
        ("VmPeak", vm),
        ("VmSize", vm),
        ("VmLck", 0),
        ("VmPin", 0),
        ("VmHWM", vm),
        ("VmRSS", vm),
        ("RssAnon", vm),
        ("RssFile", 0),
        ("RssShmem", 0),
        ("VmData", 0),
        ("VmStk", 0),
        ("VmExe", 0),
        ("VmLib", 0),
        ("VmPTE", 0),
        ("VmSwap", 0),
        ("HugetlbPages", 0),
    ):
        lines.append((name, f"{value:8d} kB"))
    lines += [
        ("CoreDumping", 0),
        ("THP_enabled", 1),
        ("Threads", len(proc.threads)),
        ("SigQ", f"0/{SIGQUEUE_MAX}"),
        ("SigPnd", f"{pending:016x}"),
        ("ShdPnd", f"{shared:016x}"),
        ("SigBlk", f"{blocked:016x}"),
        ("SigIgn", f"{ignored:016x}"),
        ("SigCgt", f"{caught:016x}"),
        ("CapInh", f"{0:016x}"),
        ("CapPrm", f"{caps:016x}"),
        ("CapEff", f"{caps:016x}"),
        ("CapBnd", f"{CAP_FULL:016x}"),
        ("CapAmb", f"{0:016x}"),
        ("NoNewPrivs", 0),
        ("Seccomp", 0),
        ("Seccomp_filters", 0),
        ("Speculation_Store_Bypass", "thread vulnerable"),
        ("SpeculationIndirectBranch", "conditional enabled"),
        ("Cpus_allowed", cpu_mask(ncpus)),
        ("Cpus_allowed_list", cpu_list(ncpus)),
        ("Mems_allowed", mems),
        ("Mems_allowed_list", 0),
        ("voluntary_ctxt_switches", 0),
        ("nonvoluntary_ctxt_switches", 0),
    ]
    return "".join(f"{name}:\t{value}\n" for name, value in lines)


# --- mounts --------------------------------------------------------------------


def mangle(path: str) -> str:
    """Escape what would break the space-separated mount lines (mangle())."""
    out = []
    for ch in path:
        out.append(f"\\{ord(ch):03o}" if ch in " \t\n\\" else ch)
    return "".join(out)


def _mount_ids(mounts: list[Mount]) -> dict[int, tuple[int, int]]:
    """Give every mount an id and the id of the mount it sits on."""
    ids: dict[int, tuple[int, int]] = {}
    by_path: dict[str, int] = {}
    for i, m in enumerate(mounts):
        mid = ROOT_MOUNT_ID + i
        parent = 1
        if m.path != "/":
            head = m.path
            while head != "/":
                head = head.rsplit("/", 1)[0] or "/"
                if head in by_path:
                    parent = by_path[head]
                    break
        by_path[m.path] = mid
        ids[id(m)] = (mid, parent)
    return ids


def mount_id_of(kernel: Kernel, path: str) -> int:
    """The mountinfo id of the mount holding ``path`` (fdinfo's mnt_id)."""
    if path.startswith("pipe:"):
        return PIPEFS_MOUNT_ID
    if not path.startswith("/"):
        return ANON_MOUNT_ID
    best, best_id = "", ROOT_MOUNT_ID
    for i, m in enumerate(kernel.mounts.ordered()):
        prefix = m.path.rstrip("/") + "/"
        if (path == m.path or path.startswith(prefix)) and len(m.path) >= len(best):
            best, best_id = m.path, ROOT_MOUNT_ID + i
    return best_id


def _dev_of(m: Mount) -> tuple[int, int]:
    try:
        dev = m.root.stat().dev
    except SyscallError:  # a host root that vanished still has a line
        dev = 0
    return dev_major(dev), dev_minor(dev)


def _options(m: Mount) -> str:
    return ("ro" if m.read_only else "rw") + ",relatime"


def mounts_text(kernel: Kernel) -> str:
    """/proc/PID/mounts: "source target type options 0 0"."""
    return "".join(
        f"{mangle(m.source)} {mangle(m.path)} {m.fstype} {_options(m)} 0 0\n"
        for m in kernel.mounts.ordered()
    )


def mountinfo_text(kernel: Kernel) -> str:
    """/proc/PID/mountinfo (show_mountinfo)."""
    mounts = kernel.mounts.ordered()
    ids = _mount_ids(mounts)
    lines = []
    for m in mounts:
        mid, parent = ids[id(m)]
        major, minor = _dev_of(m)
        rw = "ro" if m.read_only else "rw"
        lines.append(
            f"{mid} {parent} {major}:{minor} / {mangle(m.path)} {_options(m)} - "
            f"{m.fstype} {mangle(m.source)} {rw}\n"
        )
    return "".join(lines)


def fdinfo_text(kernel: Kernel, file: OpenFile, cloexec: bool) -> str:
    """/proc/PID/fdinfo/N: position, flags in octal, mount id, inode.

    The flags are the description's status flags, plus O_CLOEXEC when the
    descriptor has it; files may add lines through ``fdinfo_lines()``.
    """
    # Flags that only mattered to open(2) are not kept in the description.
    flags = file.flags & ~(abi.O_CREAT | abi.O_EXCL | abi.O_NOCTTY | abi.O_TRUNC)
    if cloexec:
        flags |= abi.O_CLOEXEC
    try:
        ino = file.stat().ino
    except SyscallError:  # a host file that went away
        ino = 0
    text = (
        f"pos:\t{file.offset}\nflags:\t0{flags:o}\n"
        f"mnt_id:\t{mount_id_of(kernel, file.path)}\nino:\t{ino}\n"
    )
    extra = getattr(file, "fdinfo_lines", None)
    return text + (extra() if extra is not None else "")


# --- the whole system ----------------------------------------------------------


def _cpuinfo_line(label: str, value: object) -> str:
    # Labels are tab-aligned to column 16; an empty value leaves a bare colon.
    tabs = "\t\t" if len(label) < 8 else "\t" if len(label) < 16 else ""
    text = str(value)
    return f"{label}{tabs}:" + (f" {text}" if text else "") + "\n"


def cpuinfo_text(kernel: Kernel) -> str:
    """/proc/cpuinfo for the emulated CPU (the CPUID Unicorn offers), per CPU."""
    n = kernel.ncpus()
    blocks = []
    for cpu in range(n):
        fields = [
            ("processor", cpu),
            ("vendor_id", "GenuineIntel"),
            ("cpu family", 6),
            ("model", 60),
            ("model name", "Intel Core Processor (Haswell)"),
            ("stepping", 4),
            ("microcode", "0x1"),
            ("cpu MHz", "2400.000"),
            ("cache size", "16384 KB"),
            ("physical id", 0),
            ("siblings", n),
            ("core id", cpu),
            ("cpu cores", n),
            ("apicid", cpu),
            ("initial apicid", cpu),
            ("fpu", "yes"),
            ("fpu_exception", "yes"),
            ("cpuid level", 13),
            ("wp", "yes"),
            ("flags", CPU_FLAGS),
            ("bugs", ""),
            ("bogomips", "4800.00"),
            ("clflush size", 64),
            ("cache_alignment", 64),
            ("address sizes", "46 bits physical, 48 bits virtual"),
            ("power management", ""),
        ]
        blocks.append("".join(_cpuinfo_line(k, v) for k, v in fields) + "\n")
    return "".join(blocks)


def memory_used(kernel: Kernel) -> int:
    """Bytes mapped by all processes, each address space counted once."""
    seen: dict[int, int] = {}
    for proc in kernel.processes():
        seen[id(proc.mm)] = proc.mm.mapped_bytes()
    return sum(seen.values())


def meminfo_text(kernel: Kernel) -> str:
    """/proc/meminfo: the sandbox's memory limit and what its processes map."""
    total = kb(kernel.memory_limit_bytes())
    used = min(kb(memory_used(kernel)), total)
    free = total - used
    rows = [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", free),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("Active", used),
        ("Inactive", 0),
        ("Active(anon)", used),
        ("Inactive(anon)", 0),
        ("Active(file)", 0),
        ("Inactive(file)", 0),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", used),
        ("Mapped", 0),
        ("Shmem", 0),
        ("KReclaimable", 0),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
        ("KernelStack", 0),
        ("PageTables", 0),
        ("CommitLimit", total),
        ("Committed_AS", used),
        ("VmallocTotal", 34359738367),
        ("VmallocUsed", 0),
        ("VmallocChunk", 0),
        ("HugePages_Total", None),
        ("HugePages_Free", None),
        ("HugePages_Rsvd", None),
        ("HugePages_Surp", None),
        ("Hugepagesize", 2048),
    ]
    out = []
    for name, value in rows:
        label = f"{name}:"
        if value is None:
            out.append(f"{label:<16}{0:8d}\n")
        else:
            out.append(f"{label:<16}{value:8d} kB\n")
    return "".join(out)


def uptime_text(kernel: Kernel) -> str:
    """/proc/uptime: seconds since boot and idle seconds summed over CPUs."""
    ns = kernel.clock.monotonic_ns()
    centis = ns // 10_000_000
    return f"{centis // 100}.{centis % 100:02d} 0.00\n"


def version_text(kernel: Kernel) -> str:
    u = kernel.uname()
    return (
        f"{u['sysname']} version {u['release']} (pysentry@{u['nodename']}) "
        f"(gcc (GCC) 12.2.0, GNU ld (GNU Binutils) 2.40) {u['version']}\n"
    )


def loadavg_text(kernel: Kernel) -> str:
    """/proc/loadavg: averages, running/total tasks, the last pid handed out."""
    procs = list(kernel.processes())
    tasks = sum(len(p.threads) for p in procs)
    last = max((p.pid for p in procs), default=0)
    return f"0.00 0.00 0.00 1/{tasks} {last}\n"


def filesystems_text(kernel: Kernel) -> str:
    known = [name for _, name in FILESYSTEMS]
    rows = list(FILESYSTEMS)
    for m in kernel.mounts.ordered():
        if m.fstype not in known:
            known.append(m.fstype)
            rows.append(("nodev", m.fstype))
    return "".join(f"{nodev}\t{name}\n" for nodev, name in rows)


def stat_text(kernel: Kernel) -> str:
    """/proc/stat: CPU times in ticks, boot time, process counts."""
    n = kernel.ncpus()
    idle = kernel.clock.monotonic_ns() * CLK_TCK // 1_000_000_000
    zeros = " 0 0 0 0 0 0"
    procs = list(kernel.processes())
    lines = [f"cpu  0 0 0 {idle * n} 0{zeros}"]
    lines += [f"cpu{i} 0 0 0 {idle} 0{zeros}" for i in range(n)]
    lines += [
        "intr 0",
        "ctxt 0",
        f"btime {kernel.clock.boot_time_s()}",
        f"processes {len(procs)}",
        f"procs_running {min(1, len(procs))}",
        "procs_blocked 0",
        "softirq 0 0 0 0 0 0 0 0 0 0 0",
    ]
    return "\n".join(lines) + "\n"

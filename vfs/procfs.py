"""/proc: kernel state shown as files, generated on every lookup and open.

Theory of operation
-------------------
Nothing is stored: a directory computes its children when it is listed or
looked up, and a file renders its whole text when it is opened; reads and
seeks then walk that snapshot (:class:`SnapshotFile`), so a reader sees one
consistent text however small its reads. Per-process nodes hold only a pid
(and a tid for thread directories) and find the process again each time, so a
node of a process that has exited answers ENOENT.

Inode numbers come from :meth:`ProcFs.ino`, which hands out one number per
key such as ``("pid", 42, None, "stat")`` and remembers it, so a name keeps
its number for the life of the file system. The fixed Linux numbers are kept
for the root (1), ``self`` and ``thread-self``.

Permissions follow Linux: files are r--r--r-- (environ r--------, comm
rw-r--r--), directories dr-xr-xr-x (fd dr-x------), links lrwxrwxrwx.
Nothing here can be changed: opening for writing is EACCES for anyone but
root, and a write fails the way Linux fails it for a file without a write
operation (EINVAL for per-process files, EIO for the others).

What is shown comes from :class:`sentry.kernel.Kernel` (``current``,
``processes()``, ``find_process()``, ``mounts``, ``clock``, ``uname()``,
``ncpus()``, ``memory_limit_bytes()``, ``random_bytes()``) and from the
:class:`sentry.task.Process` and :class:`sentry.task.Task` objects it holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from vfs import proctext
from vfs.core import DirEntry, Inode, OpenFile, Stat, dtype_of, fail
from vfs.mount import Location, file_location
from vfs.pipe import PIPE_MAX_SIZE

if TYPE_CHECKING:
    from sentry.kernel import Kernel, Process, Task

PROCFS_DEV = 0x15
PROC_ROOT_INO = 1
PROC_SELF_INO = 0xF000_0000
PROC_THREAD_SELF_INO = 0xF000_0001

FILE = abi.S_IFREG | 0o444
PRIVATE_FILE = abi.S_IFREG | 0o400
OWNER_WRITABLE = abi.S_IFREG | 0o644
DIR = abi.S_IFDIR | 0o555
PRIVATE_DIR = abi.S_IFDIR | 0o500
LINK = abi.S_IFLNK | 0o777
# The audit login uid and session id of a process that never logged in.
AUDIT_UNSET = 0xFFFFFFFF

Render = Callable[[], "str | bytes"]


class ProcFs:
    """One mounted /proc: the kernel it shows and its inode numbers."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._inos: dict[tuple[object, ...], int] = {
            ("root",): PROC_ROOT_INO,
            ("self",): PROC_SELF_INO,
            ("thread-self",): PROC_THREAD_SELF_INO,
        }
        # Per-process entries get small numbers, system entries high ones.
        self._pid_inos = itertools.count(2)
        self._static_inos = itertools.count(PROC_THREAD_SELF_INO + 1)
        self._boot_id: str | None = None

    def ino(self, key: tuple[object, ...]) -> int:
        ino = self._inos.get(key)
        if ino is None:
            counter = self._pid_inos if key[0] == "pid" else self._static_inos
            ino = self._inos[key] = next(counter)
        return ino

    def process(self, pid: int) -> Process:
        proc = self.kernel.find_process(pid)
        if proc is None:
            raise fail(abi.ENOENT)
        return proc

    def thread(self, pid: int, tid: int | None) -> tuple[Process, Task | None]:
        """The process ``pid`` and its thread ``tid`` (None: the process)."""
        proc = self.process(pid)
        if tid is None:
            return proc, None
        for task in proc.threads:
            if task.tid == tid:
                return proc, task
        raise fail(abi.ENOENT)

    def now_ns(self) -> int:
        return int(self.kernel.clock.realtime_ns())

    def new_uuid(self) -> str:
        """A random (version 4) UUID in its text form."""
        b = bytearray(self.kernel.random_bytes(16))
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        h = b.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def boot_id(self) -> str:
        """One UUID for the life of this /proc (the sandbox's "boot")."""
        if self._boot_id is None:
            self._boot_id = self.new_uuid()
        return self._boot_id


# --- nodes ---------------------------------------------------------------------


class ProcNode(Inode):
    """Any /proc inode: fixed mode, owner, number; nothing can be changed."""

    fs_dev = PROCFS_DEV

    def __init__(
        self, fs: ProcFs, key: tuple[object, ...], mode: int, uid: int = 0, gid: int = 0
    ) -> None:
        self.fs = fs
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self._ino = fs.ino(key)
        self.time_ns = fs.now_ns()

    @property
    def ino(self) -> int:
        return self._ino

    def stat(self) -> Stat:
        t = self.time_ns
        return Stat(
            dev=PROCFS_DEV,
            ino=self._ino,
            mode=self.mode,
            nlink=self.nlink(),
            uid=self.uid,
            gid=self.gid,
            rdev=0,
            size=self.stat_size(),
            blksize=1024,
            blocks=0,
            atime_ns=t,
            mtime_ns=t,
            ctime_ns=t,
        )

    def nlink(self) -> int:
        return 1

    def stat_size(self) -> int:
        # Generated files have no size until read, as on Linux.
        return 0


class ProcFile(ProcNode):
    """A generated file; ``render`` makes its text when it is opened."""

    def __init__(
        self,
        fs: ProcFs,
        key: tuple[object, ...],
        render: Render,
        mode: int = FILE,
        uid: int = 0,
        gid: int = 0,
        write_errno: int = abi.EIO,
    ) -> None:
        super().__init__(fs, key, mode, uid, gid)
        self.render = render
        self.write_errno = write_errno

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        # Only root may open for writing (the mode bits say so for anyone
        # else), and even root cannot write.
        if flags & abi.O_PATH:
            return SnapshotFile(self, flags, path, b"", self.write_errno)
        if flags & abi.O_ACCMODE != abi.O_RDONLY:
            fsuid = task.process.creds.fsuid if task is not None else 0
            if fsuid != 0:
                raise fail(abi.EACCES)

        # Snapshot the text now.
        text = self.render()
        data = (
            text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        )
        return SnapshotFile(self, flags, path, data, self.write_errno)


class SnapshotFile(OpenFile):
    """An open /proc file: reads walk the text rendered at open time."""

    def __init__(
        self, inode: ProcFile, flags: int, path: str, data: bytes, write_errno: int
    ) -> None:
        super().__init__(inode, flags, path)
        self.data = data
        self.write_errno = write_errno

    def read(self, count: int) -> bytes:
        chunk = self.data[self.offset : self.offset + max(count, 0)]
        self.offset += len(chunk)
        return chunk

    def pread(self, count: int, offset: int) -> bytes:
        if offset < 0:
            raise fail(abi.EINVAL)
        return self.data[offset : offset + max(count, 0)]

    def write(self, data: bytes) -> int:
        raise fail(self.write_errno)

    def pwrite(self, data: bytes, offset: int) -> int:
        raise fail(self.write_errno)

    def seek(self, offset: int, whence: int) -> int:
        # seq_lseek knows SEEK_SET and SEEK_CUR only.
        if whence == abi.SEEK_SET:
            new = offset
        elif whence == abi.SEEK_CUR:
            new = self.offset + offset
        else:
            raise fail(abi.EINVAL)
        if new < 0:
            raise fail(abi.EINVAL)
        self.offset = new
        return new


class ProcLink(ProcNode):
    """A symlink whose target is computed when it is read."""

    def __init__(
        self,
        fs: ProcFs,
        key: tuple[object, ...],
        target: Callable[[], str],
        mode: int = LINK,
        uid: int = 0,
        gid: int = 0,
        size: int = 0,
    ) -> None:
        super().__init__(fs, key, mode, uid, gid)
        self.target = target
        self.size_hint = size

    def readlink(self) -> str:
        return self.target()

    def stat_size(self) -> int:
        return self.size_hint


def _fd_link_text(file: OpenFile) -> str:
    """The name of an open file; one removed since is marked as Linux marks it."""
    if file.location is not None and file.inode is not None:
        if file.inode.stat().nlink == 0:
            return file.path + " (deleted)"
    return file.path


class FdLink(ProcLink):
    """/proc/PID/fd/N: names the open file, and following it reaches that file
    itself, whatever its name says (pipe:[N], a deleted file)."""

    def __init__(
        self, fs: ProcFs, key: tuple[object, ...], file: OpenFile, uid: int, gid: int
    ) -> None:
        # The link's permission bits show how the file is open.
        mode = abi.S_IFLNK
        if file.readable:
            mode |= 0o500
        if file.writable:
            mode |= 0o300
        super().__init__(fs, key, lambda: _fd_link_text(file), mode, uid, gid, size=64)
        self.file = file

    def magic_target(self) -> Location:
        return file_location(self.file)


class ProcDir(ProcNode):
    """A directory; subclasses say which names exist and what they are."""

    def __init__(
        self,
        fs: ProcFs,
        key: tuple[object, ...],
        mode: int = DIR,
        uid: int = 0,
        gid: int = 0,
    ) -> None:
        super().__init__(fs, key, mode, uid, gid)

    def names(self) -> list[str]:
        raise NotImplementedError

    def child(self, name: str) -> Inode | None:
        raise NotImplementedError

    def lookup(self, name: str) -> Inode | None:
        try:
            return self.child(name)
        except SyscallError as exc:
            # A process that exits between the walk's steps is simply absent.
            if exc.errno == abi.ENOENT:
                return None
            raise

    def entries(self) -> Iterator[DirEntry]:
        yield DirEntry(".", self._ino, abi.DT_DIR)
        yield DirEntry("..", self._ino, abi.DT_DIR)
        for name in self.names():
            node = self.lookup(name)
            if node is not None:
                yield DirEntry(name, node.ino, dtype_of(node.mode))

    def nlink(self) -> int:
        return 2

    # Nothing can be added or removed: Linux answers ENOENT for a new name
    # (there is no create operation) and EPERM for removing one.

    def _refuse_new(self, name: str) -> SyscallError:
        return fail(abi.EEXIST if self.lookup(name) is not None else abi.ENOENT)

    def create(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        raise self._refuse_new(name)

    def mkdir(self, name: str, mode: int, uid: int, gid: int) -> Inode:
        raise self._refuse_new(name)

    def mknod(self, name: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        raise self._refuse_new(name)

    def symlink(self, name: str, target: str, uid: int, gid: int) -> Inode:
        raise self._refuse_new(name)

    def link(self, name: str, inode: Inode) -> None:
        raise self._refuse_new(name)

    def unlink(self, name: str) -> None:
        raise fail(abi.EPERM if self.lookup(name) is not None else abi.ENOENT)

    def rmdir(self, name: str) -> None:
        raise fail(abi.EPERM if self.lookup(name) is not None else abi.ENOENT)

    def rename(self, name: str, new_dir: Inode, new_name: str, flags: int) -> None:
        if self.lookup(name) is None:
            raise fail(abi.ENOENT)
        target = new_dir.lookup(new_name) if new_dir.is_dir else None
        raise fail(abi.EPERM if target is not None else abi.ENOENT)


class StaticDir(ProcDir):
    """A directory with a fixed set of children, made on demand."""

    def __init__(
        self,
        fs: ProcFs,
        key: tuple[object, ...],
        children: dict[str, Callable[[], Inode]],
        mode: int = DIR,
    ) -> None:
        super().__init__(fs, key, mode)
        self.children = children

    def names(self) -> list[str]:
        return list(self.children)

    def child(self, name: str) -> Inode | None:
        make = self.children.get(name)
        return make() if make is not None else None

    def nlink(self) -> int:
        return 2 + sum(1 for make in self.children.values() if make().is_dir)


# --- processes -----------------------------------------------------------------

ProcRender = Callable[["Process", "Task | None"], "str | bytes"]


def _parse_number(name: str) -> int | None:
    """A pid or fd as /proc spells it: decimal, no sign, no leading zero."""
    if not name.isdigit() or not name.isascii() or (len(name) > 1 and name[0] == "0"):
        return None
    return int(name)


def _identity_map(proc: Process, task: Task | None) -> str:
    """uid_map and gid_map of the initial user namespace."""
    return f"{0:>10} {0:>10} {0xFFFFFFFF:>10}\n"


class PidDir(ProcDir):
    """/proc/PID, /proc/PID/task/TID, or /proc/TID of a non-leader thread.

    ``tid`` None shows the process; a tid shows that thread (its stat and
    status name it). ``with_task`` adds the task/ directory.
    """

    def __init__(self, fs: ProcFs, pid: int, tid: int | None, with_task: bool) -> None:
        proc, _ = fs.thread(pid, tid)
        self.pid = pid
        self.tid = tid
        self.with_task = with_task
        super().__init__(fs, self._key(""), DIR, proc.creds.euid, proc.creds.egid)
        kernel = fs.kernel
        self._makers: dict[str, Callable[[], Inode]] = {
            "fd": lambda: FdDir(fs, pid, tid, info=False),
            "fdinfo": lambda: FdDir(fs, pid, tid, info=True),
            "environ": lambda: self._file(
                "environ", lambda p, t: proctext.cmdline_bytes(p.envp), PRIVATE_FILE
            ),
            "status": lambda: self._file(
                "status", lambda p, t: proctext.status_text(kernel, p, t)
            ),
            "comm": lambda: self._file(
                "comm", lambda p, t: proctext.thread_name(p, t) + "\n", OWNER_WRITABLE
            ),
            "cmdline": lambda: self._file(
                "cmdline", lambda p, t: proctext.cmdline_bytes(p.argv)
            ),
            "stat": lambda: self._file(
                "stat", lambda p, t: proctext.stat_line(kernel, p, t)
            ),
            "statm": lambda: self._file("statm", lambda p, t: proctext.statm_line(p)),
            "limits": lambda: self._file("limits", lambda p, t: proctext.limits_text(p)),
            "maps": lambda: self._file("maps", lambda p, t: p.mm.maps_text()),
            "cwd": lambda: self._link("cwd", lambda p: p.fs.cwd.path),
            "root": lambda: self._link("root", lambda p: p.fs.root.path),
            "exe": lambda: self._link("exe", lambda p: p.exe_path),
            "mounts": lambda: self._file(
                "mounts", lambda p, t: proctext.mounts_text(kernel)
            ),
            # No audit login happened in the sandbox: both ids are unset (-1),
            # and only audit control could change them.
            "loginuid": lambda: self._file(
                "loginuid", lambda p, t: str(AUDIT_UNSET), OWNER_WRITABLE,
                write_errno=abi.EPERM,
            ),
            "sessionid": lambda: self._file("sessionid", lambda p, t: str(AUDIT_UNSET)),
            # No user namespace: every id maps to itself, as in the initial one.
            "uid_map": lambda: self._file("uid_map", _identity_map, OWNER_WRITABLE),
            "gid_map": lambda: self._file("gid_map", _identity_map, OWNER_WRITABLE),
            "setgroups": lambda: self._file(
                "setgroups", lambda p, t: "allow\n", OWNER_WRITABLE
            ),
            # Settings the sentry keeps at Linux's defaults.
            "personality": lambda: self._file(
                "personality", lambda p, t: "00000000\n", PRIVATE_FILE
            ),
            "oom_score_adj": lambda: self._file(
                "oom_score_adj", lambda p, t: "0\n", OWNER_WRITABLE
            ),
            "coredump_filter": lambda: self._file(
                "coredump_filter", lambda p, t: "00000033\n", OWNER_WRITABLE
            ),
            "wchan": lambda: self._file("wchan", lambda p, t: "0"),
            "mountinfo": lambda: self._file(
                "mountinfo", lambda p, t: proctext.mountinfo_text(kernel)
            ),
        }
        if with_task:
            self._makers = {"task": lambda: TaskDir(fs, pid), **self._makers}

    def _key(self, name: str) -> tuple[object, ...]:
        return ("pid", self.pid, self.tid, name)

    def _file(self, name: str, render: ProcRender, mode: int = FILE,
              write_errno: int = abi.EINVAL) -> ProcFile:
        fs, pid, tid = self.fs, self.pid, self.tid

        def run() -> str | bytes:
            proc, task = fs.thread(pid, tid)
            return render(proc, task)

        # Writing a per-process file without a write operation is EINVAL.
        return ProcFile(
            fs, self._key(name), run, mode, self.uid, self.gid, write_errno=write_errno
        )

    def _link(self, name: str, target: Callable[[Process], str]) -> ProcLink:
        fs, pid = self.fs, self.pid

        def run() -> str:
            path = target(fs.process(pid))
            if not path:
                raise fail(abi.ENOENT)
            return path

        return ProcLink(fs, self._key(name), run, LINK, self.uid, self.gid)

    def names(self) -> list[str]:
        return list(self._makers)

    def child(self, name: str) -> Inode | None:
        make = self._makers.get(name)
        return make() if make is not None else None

    def nlink(self) -> int:
        return 4 + int(self.with_task)


class FdDir(ProcDir):
    """/proc/PID/fd (links to the open files) or /proc/PID/fdinfo (their state)."""

    def __init__(self, fs: ProcFs, pid: int, tid: int | None, info: bool) -> None:
        proc, _ = fs.thread(pid, tid)
        self.pid = pid
        self.tid = tid
        self.info = info
        self.kind = "fdinfo" if info else "fd"
        super().__init__(
            fs,
            ("pid", pid, tid, self.kind),
            DIR if info else PRIVATE_DIR,
            proc.creds.euid,
            proc.creds.egid,
        )

    def _files(self) -> dict[int, OpenFile]:
        return dict(self.fs.process(self.pid).fds.items())

    def names(self) -> list[str]:
        return [str(fd) for fd in sorted(self._files())]

    def child(self, name: str) -> Inode | None:
        fd = _parse_number(name)
        if fd is None:
            return None
        file = self._files().get(fd)
        if file is None:
            return None
        key = ("pid", self.pid, self.tid, self.kind, fd)
        if not self.info:
            return FdLink(self.fs, key, file, self.uid, self.gid)
        fs, pid = self.fs, self.pid

        def render() -> str:
            try:
                cloexec = fs.process(pid).fds.entry(fd).cloexec
            except SyscallError:  # closed since the lookup
                cloexec = False
            return proctext.fdinfo_text(fs.kernel, file, cloexec)

        return ProcFile(
            self.fs,
            key,
            render,
            FILE,
            self.uid,
            self.gid,
            write_errno=abi.EINVAL,
        )

    def stat_size(self) -> int:
        # Linux gives the fd directory the number of open descriptors as size.
        return 0 if self.info else len(self._files())


class TaskDir(ProcDir):
    """/proc/PID/task: one directory per thread."""

    def __init__(self, fs: ProcFs, pid: int) -> None:
        proc = fs.process(pid)
        self.pid = pid
        super().__init__(
            fs, ("pid", pid, None, "task"), DIR, proc.creds.euid, proc.creds.egid
        )

    def names(self) -> list[str]:
        return [str(t.tid) for t in self.fs.process(self.pid).threads]

    def child(self, name: str) -> Inode | None:
        tid = _parse_number(name)
        if tid is None:
            return None
        return PidDir(self.fs, self.pid, tid, with_task=False)

    def nlink(self) -> int:
        return 2 + len(self.names())


# --- the root ------------------------------------------------------------------


class RootDir(ProcDir):
    """/proc itself: system files, self, thread-self, and one entry per process."""

    def __init__(self, fs: ProcFs) -> None:
        super().__init__(fs, ("root",), DIR)
        self.static = _system_entries(fs)

    def _self_target(self) -> str:
        task = self.fs.kernel.current
        if task is None:
            raise fail(abi.ENOENT)
        return str(task.process.pid)

    def _thread_self_target(self) -> str:
        task = self.fs.kernel.current
        if task is None:
            raise fail(abi.ENOENT)
        return f"{task.process.pid}/task/{task.tid}"

    def names(self) -> list[str]:
        pids = sorted(p.pid for p in self.fs.kernel.processes())
        return list(self.static) + ["self", "thread-self"] + [str(p) for p in pids]

    def child(self, name: str) -> Inode | None:
        fs = self.fs
        make = self.static.get(name)
        if make is not None:
            return make()
        if name == "self":
            return ProcLink(fs, ("self",), self._self_target)
        if name == "thread-self":
            return ProcLink(fs, ("thread-self",), self._thread_self_target)

        # A process, or a thread that is not a group leader (not listed).
        pid = _parse_number(name)
        if pid is None:
            return None
        if fs.kernel.find_process(pid) is not None:
            return PidDir(fs, pid, None, with_task=True)
        for proc in fs.kernel.processes():
            if any(t.tid == pid for t in proc.threads):
                return PidDir(fs, proc.pid, pid, with_task=True)
        return None

    def nlink(self) -> int:
        return 2 + sum(1 for _ in self.fs.kernel.processes())


def _system_entries(fs: ProcFs) -> dict[str, Callable[[], Inode]]:
    kernel = fs.kernel

    def text(name: str, render: Callable[[Kernel], str]) -> Callable[[], Inode]:
        return lambda: ProcFile(fs, ("sys", name), lambda: render(kernel))

    def value(path: str, get: Callable[[], object], mode: int = FILE) -> ProcFile:
        # Sysctls: one value and a newline; changing them is not permitted.
        return ProcFile(
            fs, ("sysctl", path), lambda: f"{get()}\n", mode, write_errno=abi.EPERM
        )

    def tree(path: str, entries: dict[str, Callable[[], Inode]]) -> Callable[[], Inode]:
        return lambda: StaticDir(fs, ("sysdir", path), entries)

    def uname(field: str) -> Callable[[], object]:
        return lambda: kernel.uname()[field]

    sys_kernel: dict[str, Callable[[], Inode]] = {
        "hostname": lambda: value("kernel/hostname", uname("nodename"), OWNER_WRITABLE),
        "domainname": lambda: value(
            "kernel/domainname", uname("domainname"), OWNER_WRITABLE
        ),
        "osrelease": lambda: value("kernel/osrelease", uname("release")),
        "ostype": lambda: value("kernel/ostype", uname("sysname")),
        "version": lambda: value("kernel/version", uname("version")),
        "pid_max": lambda: value("kernel/pid_max", lambda: 32768, OWNER_WRITABLE),
        "cap_last_cap": lambda: value("kernel/cap_last_cap", lambda: 40),
        "ngroups_max": lambda: value("kernel/ngroups_max", lambda: 65536),
        "random": tree(
            "kernel/random",
            {
                "boot_id": lambda: value("kernel/random/boot_id", fs.boot_id),
                "uuid": lambda: value("kernel/random/uuid", fs.new_uuid),
            },
        ),
    }
    sys_fs: dict[str, Callable[[], Inode]] = {
        "pipe-max-size": lambda: value(
            "fs/pipe-max-size", lambda: PIPE_MAX_SIZE, OWNER_WRITABLE
        ),
        "nr_open": lambda: value("fs/nr_open", lambda: 1048576, OWNER_WRITABLE),
    }
    sys_vm: dict[str, Callable[[], Inode]] = {
        "overcommit_memory": lambda: value(
            "vm/overcommit_memory", lambda: 0, OWNER_WRITABLE
        ),
        "max_map_count": lambda: value(
            "vm/max_map_count", lambda: 65530, OWNER_WRITABLE
        ),
    }
    return {
        "cpuinfo": text("cpuinfo", proctext.cpuinfo_text),
        "filesystems": text("filesystems", proctext.filesystems_text),
        "loadavg": text("loadavg", proctext.loadavg_text),
        "meminfo": text("meminfo", proctext.meminfo_text),
        "mounts": lambda: ProcLink(fs, ("mounts",), lambda: "self/mounts", size=11),
        "stat": text("stat", proctext.stat_text),
        "sys": tree(
            "",
            {
                "fs": tree("fs", sys_fs),
                "kernel": tree("kernel", sys_kernel),
                "vm": tree("vm", sys_vm),
            },
        ),
        "uptime": text("uptime", proctext.uptime_text),
        "version": text("version", proctext.version_text),
    }


def new_procfs(kernel: Kernel) -> Inode:
    """The root of a /proc that shows ``kernel``."""
    return RootDir(ProcFs(kernel))

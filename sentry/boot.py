"""Building a sandbox: the mount table, the first process, its descriptors.

The file system the guest sees is assembled here from the options: an overlay
of the chosen root (host ``/`` by default, read-only) under a memory layer, then
``/dev`` and ``/proc`` synthesized by the kernel, ``--tmpfs`` mounts, and
``--bind`` mounts of host directories. Mount points that do not exist yet are
created in the overlay's memory layer, never on the host.
"""

from __future__ import annotations

import os
import shlex

from sentry import abi
from sentry.errors import LoadError, SyscallError
from sentry.kernel import Kernel, Options
from sentry.mm import AddressSpace, MemoryBudget
from sentry.syscalls.identity import host_limits
from sentry.task import NOFILE_MAX, Credentials, FdTable, FsContext, Task
from vfs.core import Inode
from vfs.hostfs import HostFs
from vfs.mount import Location, MountTable
from vfs.overlay import new_overlay
from vfs.tmpfs import new_tmpfs

# Exit statuses of the CLI for a program that cannot be started (like a shell).
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126


class StartError(Exception):
    """The program cannot be started; ``status`` is the exit status to use."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _mkdirs(mounts: MountTable, path: str) -> Location:
    """Walk ``path``, creating missing directories in the writable layer."""
    loc = mounts.root
    for name in [n for n in path.split("/") if n]:
        nxt = mounts.lookup_child(loc, name)
        if nxt is None:
            loc.inode.mkdir(name, 0o755, 0, 0)
            nxt = mounts.lookup_child(loc, name)
            assert nxt is not None
        elif nxt.inode.is_symlink:
            nxt = mounts.resolve(loc, name)
        if not nxt.inode.is_dir:
            raise StartError(f"mount point {path} is not a directory", 2)
        loc = nxt
    return loc


def build_mounts(options: Options, kernel_ref: list[Kernel]) -> MountTable:
    """The guest's file system tree."""
    try:
        lower = HostFs(options.root, writable=False)
    except OSError as exc:
        raise StartError(f"--root {options.root}: {exc.strerror}", 2) from None
    mounts = MountTable(new_overlay(lower.root_inode), "overlay", "overlay")

    def add(path: str, root: Inode, fstype: str, source: str, ro: bool = False) -> None:
        loc = _mkdirs(mounts, path)
        mounts.mount(loc.path, root, fstype, source, ro)

    from vfs.devfs import new_devfs
    from vfs.procfs import new_procfs

    add("/dev", new_devfs(kernel_ref[0]), "devtmpfs", "udev")
    add("/proc", new_procfs(kernel_ref[0]), "proc", "proc", True)
    for path in options.tmpfs:
        add(path, new_tmpfs(), "tmpfs", "tmpfs")
    for src, dst, ro in options.binds:
        try:
            fs = HostFs(src, writable=not ro)
        except OSError as exc:
            raise StartError(f"--bind {src}: {exc.strerror}", 2) from None
        add(dst, fs.root_inode, "hostfs", fs.root, ro)
    return mounts


def find_program(kernel: Kernel, cwd: Location, name: str, env: list[bytes]) -> Location:
    """Resolve the program like execvp: a name without '/' is searched in PATH."""
    mounts = kernel.mounts
    if "/" in name:
        candidates = [name]
    else:
        path_var = "/usr/local/bin:/usr/bin:/bin"
        for entry in env:
            if entry.startswith(b"PATH="):
                path_var = entry[5:].decode("utf-8", "surrogateescape")
        candidates = [(d or ".") + "/" + name for d in path_var.split(":")]
    denied = False
    for candidate in candidates:
        try:
            loc = mounts.resolve(cwd, candidate)
        except SyscallError:
            continue
        if loc.inode.is_dir or not loc.inode.stat().mode & 0o111:
            denied = True
            continue
        return loc
    if denied:
        raise StartError(f"{name}: permission denied", EXIT_CANNOT_EXECUTE)
    raise StartError(f"{name}: not found", EXIT_NOT_FOUND)


def _open_stdio(fds: FdTable) -> None:
    """The guest's descriptors 0, 1 and 2 are the host's, as they are open."""
    import fcntl

    from vfs.stdio import HostStream

    for fd in (0, 1, 2):
        try:
            acc = fcntl.fcntl(fd, fcntl.F_GETFL) & abi.O_ACCMODE
        except OSError:
            continue
        try:
            # What the host descriptor is (a tty, a pipe, a file), as Linux names it.
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = f"/dev/fd/{fd}"
        fds.put(fd, HostStream(fd, acc, name), False)


def start(
    options: Options, program: str, args: list[str], env: list[bytes]
) -> tuple[Kernel, Task, int, int]:
    """Build the sandbox and load ``program``; return (kernel, task, entry, rsp)."""
    from loader.elf import load

    kernel_ref: list[Kernel] = []
    mounts = MountTable.__new__(MountTable)
    kernel = Kernel(options, mounts)
    kernel_ref.append(kernel)
    built = build_mounts(options, kernel_ref)
    kernel.mounts = built
    root = built.root

    # The working directory: --cwd, else the host's if the guest can see it.
    cwd_path = options.cwd or os.getcwd()
    try:
        cwd = built.resolve(root, cwd_path)
    except SyscallError:
        if options.cwd:
            raise StartError(f"--cwd {options.cwd}: no such directory", 2) from None
        cwd = root
    if not cwd.inode.is_dir:
        raise StartError(f"--cwd {cwd_path}: not a directory", 2)

    # Find and read the program through the sandbox's own file system.
    loc = find_program(kernel, cwd, program, env)
    try:
        data = _read_whole(loc.inode)
    except SyscallError as err:
        raise StartError(f"{program}: cannot read ({err})", EXIT_CANNOT_EXECUTE) from None

    budget = None
    if options.memory_limit is not None:
        budget = MemoryBudget(options.memory_limit, kernel.memory_in_use)
    mm = AddressSpace(budget)
    creds = Credentials.of(os.getuid(), os.getgid(), list(os.getgroups()))
    fds = FdTable()
    fds.limit = min(host_limits()[abi.RLIMIT_NOFILE][0], NOFILE_MAX)
    _open_stdio(fds)
    fs = FsContext(root=root, cwd=cwd, umask=_host_umask())
    argv = [a.encode("utf-8", "surrogateescape") for a in [program, *args]]
    task = kernel.new_process(mm, fds, fs, creds, argv, list(env), loc.path)
    try:
        st = loc.inode.stat()
        loaded = load(
            mm, data, program, argv, env, program.encode("utf-8", "surrogateescape"),
            kernel.random_bytes(16), (creds.uid, creds.euid, creds.gid, creds.egid),
            st.dev, st.ino,
        )
    except LoadError as exc:
        raise StartError(str(exc), EXIT_CANNOT_EXECUTE) from None
    return kernel, task, loaded.entry, loaded.stack_pointer


def _read_whole(inode: Inode) -> bytes:
    read_all = getattr(inode, "read_all", None)
    if read_all is not None:
        return bytes(read_all())
    return inode.read_at(0, inode.size())


def _host_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)

"""/dev: the character devices a program expects, and the usual symlinks.

The tree is a tmpfs (:class:`vfs.tmpfs.MemInode`) whose device nodes open to
the sentry's own device files instead of their data. Nothing here reaches a
host device except /dev/tty, which is a duplicate of the sandbox's own
terminal descriptor when the user started it on one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sentry import abi
from vfs.core import Inode, OpenFile, fail
from vfs.stdio import HostStream
from vfs.tmpfs import TMPFS_DEV, MemInode

if TYPE_CHECKING:
    from sentry.kernel import Kernel, Task

DEVFS_DEV = 0x06

# ioctl of the random devices (include/uapi/linux/random.h).
RNDGETENTCNT = 0x80045200

_ALWAYS = abi.POLLIN | abi.POLLRDNORM | abi.POLLOUT | abi.POLLWRNORM


def makedev(major: int, minor: int) -> int:
    """A dev_t as stat(2) reports it (the glibc/Linux 64-bit encoding)."""
    return (
        (minor & 0xFF)
        | ((major & 0xFFF) << 8)
        | ((minor & ~0xFF) << 12)
        | ((major & ~0xFFF) << 32)
    )


def dev_major(dev: int) -> int:
    return ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)


def dev_minor(dev: int) -> int:
    return (dev & 0xFF) | ((dev >> 12) & ~0xFF)


class DeviceFile(OpenFile):
    """An open memory device: never blocks, always ready, seeks to 0.

    The offset is ignored, so pread and pwrite behave like read and write.
    """

    def read(self, count: int) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def pread(self, count: int, offset: int) -> bytes:
        return self.read(count)

    def pwrite(self, data: bytes, offset: int) -> int:
        return self.write(data)

    def seek(self, offset: int, whence: int) -> int:
        # null_lseek and friends: "the position is always 0".
        self.offset = 0
        return 0

    def poll(self) -> int:
        return _ALWAYS


class NullFile(DeviceFile):
    """/dev/null: reads end at once, writes vanish."""


class ZeroFile(DeviceFile):
    """/dev/zero: reads give zero bytes, writes vanish."""

    def read(self, count: int) -> bytes:
        return bytes(max(count, 0))


class FullFile(ZeroFile):
    """/dev/full: reads give zero bytes, every write fails with ENOSPC."""

    def write(self, data: bytes) -> int:
        raise fail(abi.ENOSPC)


class RandomFile(DeviceFile):
    """/dev/random and /dev/urandom: bytes from the kernel's random source.

    Reads never block (the pool is always ready); writes are accepted and
    ignored, as mixing them in would make deterministic mode depend on them.
    """

    def __init__(
        self, inode: Inode, flags: int, path: str, kernel: Kernel
    ) -> None:
        super().__init__(inode, flags, path)
        self.kernel = kernel

    def read(self, count: int) -> bytes:
        return bytes(self.kernel.random_bytes(max(count, 0)))

    def ioctl(self, request: int, arg: int, task: Task) -> int:
        if request == RNDGETENTCNT:
            task.mm.write(arg, (256).to_bytes(4, "little"))
            return 0
        # random_ioctl answers EINVAL, not ENOTTY, for what it does not know.
        raise fail(abi.EINVAL)


Opener = Callable[[Inode, int, str, "Task | None"], OpenFile]


class DeviceInode(MemInode):
    """A character device node of /dev; opening it calls ``opener``."""

    def __init__(self, major: int, minor: int, opener: Opener) -> None:
        super().__init__(abi.S_IFCHR | 0o666, rdev=makedev(major, minor), dev=DEVFS_DEV)
        self.opener = opener

    def open(self, flags: int, path: str, task: Task | None) -> OpenFile:
        # O_PATH descriptors never reach the driver.
        if flags & abi.O_PATH:
            return super().open(flags, path, task)
        return self.opener(self, flags, path, task)


def open_device(inode: Inode, flags: int, path: str, task: Task | None) -> OpenFile:
    """Open a device node made with mknod(2) anywhere: the driver of /dev's
    node with the same numbers does it. Numbers no driver has are ENXIO."""
    if task is not None and inode.mode & abi.S_IFMT == abi.S_IFCHR:
        rdev = inode.stat().rdev
        for mount in task.process.kernel.mounts.mounts.values():
            if mount.fstype != "devtmpfs" or not isinstance(mount.root, MemInode):
                continue
            for node in mount.root.children.values():
                if isinstance(node, DeviceInode) and node.rdev == rdev:
                    return node.opener(inode, flags, path, task)
    raise fail(abi.ENXIO)


def _simple(cls: type[DeviceFile]) -> Opener:
    def opener(
        inode: Inode, flags: int, path: str, task: Task | None
    ) -> OpenFile:
        return cls(inode, flags, path)

    return opener


def _random(kernel: Kernel) -> Opener:
    def opener(
        inode: Inode, flags: int, path: str, task: Task | None
    ) -> OpenFile:
        return RandomFile(inode, flags, path, kernel)

    return opener


def _tty(host_fds: Sequence[int]) -> Opener:
    def opener(
        inode: Inode, flags: int, path: str, task: Task | None
    ) -> OpenFile:
        # The controlling terminal is the terminal the sandbox runs on, if any.
        for fd in host_fds:
            try:
                if not os.isatty(fd):
                    continue
                dup = os.dup(fd)
            except OSError:
                continue
            return HostStream(dup, flags, path, owned=True, inode=inode)

        # "No such device or address": the process has no controlling terminal.
        raise fail(abi.ENXIO)

    return opener


def _attach(parent: MemInode, name: str, child: MemInode) -> MemInode:
    parent.children[name] = child
    if child.is_dir:
        parent.nlink += 1
    return child


def _symlink(target: str) -> MemInode:
    node = MemInode(abi.S_IFLNK | 0o777, dev=DEVFS_DEV)
    node.target = target
    return node


def new_devfs(kernel: Kernel, tty_fds: Sequence[int] = (0, 1, 2)) -> MemInode:
    """The root of a fresh /dev.

    ``tty_fds`` are the host descriptors that may be the sandbox's terminal;
    /dev/tty opens a duplicate of the first one that is a terminal.
    """
    root = MemInode(abi.S_IFDIR | 0o755, dev=DEVFS_DEV)

    # The memory devices and the terminal, with Linux's numbers (devices.txt).
    devices: list[tuple[str, int, int, Opener]] = [
        ("null", 1, 3, _simple(NullFile)),
        ("zero", 1, 5, _simple(ZeroFile)),
        ("full", 1, 7, _simple(FullFile)),
        ("random", 1, 8, _random(kernel)),
        ("urandom", 1, 9, _random(kernel)),
        ("tty", 5, 0, _tty(tuple(tty_fds))),
    ]
    for name, major, minor, opener in devices:
        _attach(root, name, DeviceInode(major, minor, opener))

    # The descriptor links udev and systemd create.
    _attach(root, "fd", _symlink("/proc/self/fd"))
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        _attach(root, name, _symlink(f"/proc/self/fd/{fd}"))

    # pts stays empty (no pseudo-terminals yet); shm is for shm_open(3).
    # TODO: /dev/ptmx and /dev/pts/N once the sentry has pseudo-terminals.
    _attach(root, "pts", MemInode(abi.S_IFDIR | 0o755, dev=DEVFS_DEV))
    _attach(root, "shm", MemInode(abi.S_IFDIR | 0o1777, dev=TMPFS_DEV))
    return root

"""Decoding raw register values into the C types syscalls take."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError

if TYPE_CHECKING:
    from sentry.task import Task
    from vfs.mount import Location


def s32(v: int) -> int:
    """An ``int`` argument: the low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def u32(v: int) -> int:
    return v & 0xFFFFFFFF


def s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


def path_arg(task: Task, addr: int) -> str:
    """A path argument: NUL-terminated, at most PATH_MAX, decoded losslessly."""
    if addr == 0:
        raise SyscallError(abi.EFAULT)
    raw = task.mm.read_cstring(addr, 4095)
    return raw.decode("utf-8", "surrogateescape")


def encode(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def dirfd_location(task: Task, dirfd: int, path: str = "") -> Location:
    """The directory an *at() call starts from (AT_FDCWD: the working directory).

    An absolute ``path`` ignores ``dirfd``, even an invalid one, as Linux does.
    """
    if path.startswith("/"):
        return task.process.fs.root
    dirfd = s32(dirfd)
    if dirfd == abi.AT_FDCWD:
        return task.process.fs.cwd
    file = task.process.fds.get(dirfd)
    loc = getattr(file, "location", None)
    if loc is None:
        raise SyscallError(abi.ENOTDIR)
    return loc

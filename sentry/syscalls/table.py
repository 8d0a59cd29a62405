"""The declarative syscall table.

Each family module lists its syscalls as :class:`Syscall` rows: name, handler,
support level and a note. :func:`build_table` joins them with the x86-64
numbers into a list indexed by number; every number without a handler gets a
row whose handler raises ENOSYS, so a missing syscall is counted and named,
never silently answered.

A handler is called as ``handler(task, a0, a1, a2, a3, a4, a5)`` with the raw
64-bit register values; it decodes what it needs, returns an int, or raises
:class:`~sentry.errors.SyscallError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from sentry import abi
from sentry.errors import SyscallError
from sentry.sysno import SYSCALL_NAMES, SYSCALL_NUMBERS

if TYPE_CHECKING:
    from sentry.task import Task

Handler = Callable[..., int]

SUPPORTED = "supported"
PARTIAL = "partial"
MISSING = "missing"

TABLE_SIZE = 512


@attrs.frozen
class Syscall:
    name: str
    handler: Handler
    level: str = SUPPORTED
    note: str = ""
    nr: int = -1


def syscall(name: str, handler: Handler, note: str = "", partial: bool = False) -> Syscall:
    """A table row; ``partial`` marks a syscall that does only part of Linux's job."""
    return Syscall(name, handler, PARTIAL if partial else SUPPORTED, note)


def _enosys(task: Task, *_: int) -> int:
    raise SyscallError(abi.ENOSYS)


def missing(name: str, note: str = "") -> Syscall:
    """A syscall we know about and deliberately answer with ENOSYS."""
    return Syscall(name, _enosys, MISSING, note)


def build_table(families: list[list[Syscall]]) -> list[Syscall]:
    rows: dict[int, Syscall] = {}
    for family in families:
        for row in family:
            nr = SYSCALL_NUMBERS.get(row.name)
            if nr is None:
                raise ValueError(f"unknown syscall name in table: {row.name}")
            if nr in rows:
                raise ValueError(f"syscall {row.name} listed twice")
            rows[nr] = attrs.evolve(row, nr=nr)
    table = []
    for nr in range(TABLE_SIZE):
        found = rows.get(nr)
        if found is None:
            name = SYSCALL_NAMES.get(nr, f"syscall_{nr}")
            found = Syscall(name, _enosys, MISSING, "not implemented", nr)
        table.append(found)
    return table


def default_table() -> list[Syscall]:
    from sentry.syscalls import (
        events,
        fd,
        file,
        futex,
        identity,
        mm,
        process,
        signal,
        socket,
        time,
        timers,
    )

    return build_table(
        [file.SYSCALLS, fd.SYSCALLS, mm.SYSCALLS, process.SYSCALLS, identity.SYSCALLS,
         time.SYSCALLS, signal.SYSCALLS, futex.SYSCALLS, timers.SYSCALLS,
         events.SYSCALLS, socket.SYSCALLS]
    )

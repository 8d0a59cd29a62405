"""Clocks and sleeping; all time comes from the kernel's clock service."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.table import syscall
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.task import Task

_timespec = struct.Struct("<qq")
_REALTIME_CLOCKS = (abi.CLOCK_REALTIME, abi.CLOCK_REALTIME_COARSE, abi.CLOCK_TAI,
                    abi.CLOCK_REALTIME_ALARM)
_MONOTONIC_CLOCKS = (abi.CLOCK_MONOTONIC, abi.CLOCK_MONOTONIC_RAW,
                     abi.CLOCK_MONOTONIC_COARSE, abi.CLOCK_BOOTTIME,
                     abi.CLOCK_BOOTTIME_ALARM)


def _now(t: Task, clock: int) -> int:
    c = t.process.kernel.clock
    if clock in _REALTIME_CLOCKS:
        return c.realtime_ns()
    if clock in _MONOTONIC_CLOCKS:
        return c.monotonic_ns()
    if clock in (abi.CLOCK_PROCESS_CPUTIME_ID, abi.CLOCK_THREAD_CPUTIME_ID):
        return c.cputime_ns()
    # Negative ids name per-process or per-thread CPU clocks (clock_getcpuclockid).
    if clock < 0:
        return c.cputime_ns()
    raise SyscallError(abi.EINVAL)


def read_timespec(t: Task, addr: int) -> int:
    """A struct timespec from the guest, in nanoseconds; EINVAL if malformed."""
    sec, nsec = _timespec.unpack(t.mm.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 10**9:
        raise SyscallError(abi.EINVAL)
    return sec * 10**9 + nsec


def write_timespec(t: Task, addr: int, ns: int) -> None:
    t.mm.write(addr, _timespec.pack(ns // 10**9, ns % 10**9))


def clock_gettime(t: Task, clock: int, addr: int, *_: int) -> int:
    """clock_gettime(2)."""
    write_timespec(t, addr, _now(t, s32(clock)))
    return 0


def clock_getres(t: Task, clock: int, addr: int, *_: int) -> int:
    """clock_getres(2)."""
    clock = s32(clock)
    _now(t, clock)
    if addr:
        coarse = clock in (abi.CLOCK_REALTIME_COARSE, abi.CLOCK_MONOTONIC_COARSE)
        write_timespec(t, addr, 4_000_000 if coarse else 1)
    return 0


def gettimeofday(t: Task, tv: int, tz: int, *_: int) -> int:
    """gettimeofday(2)."""
    ns = t.process.kernel.clock.realtime_ns()
    if tv:
        t.mm.write(tv, _timespec.pack(ns // 10**9, (ns % 10**9) // 1000))
    if tz:
        t.mm.write(tz, bytes(8))
    return 0


def time(t: Task, addr: int, *_: int) -> int:
    """time(2)."""
    sec = t.process.kernel.clock.realtime_ns() // 10**9
    if addr:
        t.mm.write_u64(addr, sec)
    return sec


def sleep_until(t: Task, deadline_ns: int, rem: int = 0) -> None:
    """Park the calling task until the monotonic clock reaches ``deadline_ns``.

    The syscall runs again when the task wakes; ``t.wait_deadline_ns`` carries
    the deadline from the first run to the next, so a re-run does not start
    the sleep over. A signal handler ends the sleep with EINTR, SA_RESTART or
    not, and the time left goes to ``rem`` when it is not NULL
    ("nanosleep() [...] writes the remaining time into the structure pointed
    to by rem" - nanosleep(2)).
    """
    if t.wait_deadline_ns is None:
        t.wait_deadline_ns = deadline_ns
    deadline = t.wait_deadline_ns
    if t.process.kernel.clock.monotonic_ns() >= deadline:
        t.wait_deadline_ns = None
        return
    on_interrupt = None
    if rem:
        def on_interrupt() -> None:
            left = deadline - t.process.kernel.clock.monotonic_ns()
            write_timespec(t, rem, max(left, 0))
    raise WouldBlock(None, deadline_ns=deadline, restart=False,
                     on_interrupt=on_interrupt)


def nanosleep(t: Task, req: int, rem: int, *_: int) -> int:
    """nanosleep(2)."""
    if t.wait_deadline_ns is None:
        deadline = _now(t, abi.CLOCK_MONOTONIC) + read_timespec(t, req)
    else:
        deadline = t.wait_deadline_ns
    sleep_until(t, deadline, rem)
    return 0


def clock_nanosleep(t: Task, clock: int, flags: int, req: int, rem: int, *_: int) -> int:
    """clock_nanosleep(2)."""
    clock = s32(clock)
    if clock in (abi.CLOCK_THREAD_CPUTIME_ID,):
        raise SyscallError(abi.EINVAL)
    absolute = bool(s32(flags) & abi.TIMER_ABSTIME)
    deadline = t.wait_deadline_ns
    if deadline is None:
        ns = read_timespec(t, req)
        now = _now(t, clock)
        left = ns - now if absolute else ns
        deadline = _now(t, abi.CLOCK_MONOTONIC) + left
    # An absolute sleep has nothing to report in rem.
    sleep_until(t, deadline, 0 if absolute else rem)
    return 0


def times(t: Task, addr: int, *_: int) -> int:
    """times(2): clock ticks (100 Hz) of CPU time; returns uptime in ticks."""
    k = t.process.kernel
    ticks = k.clock.cputime_ns() // 10**7
    if addr:
        t.mm.write(addr, struct.pack("<4q", ticks, 0, 0, 0))
    return k.clock.monotonic_ns() // 10**7


SYSCALLS = [
    syscall("clock_gettime", clock_gettime),
    syscall("clock_getres", clock_getres),
    syscall("gettimeofday", gettimeofday),
    syscall("time", time),
    syscall("nanosleep", nanosleep),
    syscall("clock_nanosleep", clock_nanosleep),
    syscall("times", times),
]

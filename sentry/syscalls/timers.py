"""Interval timers: alarm, setitimer and getitimer (ITIMER_REAL).

The timer itself lives in :mod:`sentry.timers`; these handlers convert
between the guest's ``struct itimerval`` (two ``struct timeval``) and
nanoseconds.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sentry import abi, timers
from sentry.errors import SyscallError
from sentry.syscalls.args import s32
from sentry.syscalls.table import syscall

if TYPE_CHECKING:
    from sentry.task import Task

ITIMER_REAL = 0
ITIMER_VIRTUAL = 1
ITIMER_PROF = 2
_itimerval = struct.Struct("<qqqq")  # interval sec, usec; value sec, usec
USEC = 1000
SEC = 10**9


def _timeval_ns(sec: int, usec: int) -> int:
    # "EINVAL [...] new_value had tv_usec outside 0..999999" - setitimer(2)
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise SyscallError(abi.EINVAL)
    return sec * SEC + usec * USEC


def _pack(value_ns: int, interval_ns: int) -> bytes:
    # Linux truncates to whole microseconds.
    return _itimerval.pack(
        interval_ns // SEC,
        interval_ns % SEC // USEC,
        value_ns // SEC,
        value_ns % SEC // USEC,
    )


def _which(which: int) -> None:
    which = s32(which)
    if which in (ITIMER_VIRTUAL, ITIMER_PROF):
        # TODO: CPU-time timers need the CPU time of the guest's threads.
        raise SyscallError(abi.EINVAL)
    if which != ITIMER_REAL:
        raise SyscallError(abi.EINVAL)


def getitimer(t: Task, which: int, value: int, *_: int) -> int:
    """getitimer(2)."""
    _which(which)
    left, interval = timers.remaining(t.process.kernel, t.process)
    t.mm.write(value, _pack(left, interval))
    return 0


def setitimer(t: Task, which: int, new: int, old: int, *_: int) -> int:
    """setitimer(2)."""
    _which(which)

    # Read and check the new setting before anything changes; no new value
    # disarms the timer, as Linux has always accepted.
    value_ns = interval_ns = 0
    if new:
        isec, iusec, vsec, vusec = _itimerval.unpack(t.mm.read(new, 32))
        interval_ns = _timeval_ns(isec, iusec)
        value_ns = _timeval_ns(vsec, vusec)

    # Report the old setting, then set the new one.
    kernel = t.process.kernel
    if old:
        t.mm.write(old, _pack(*timers.remaining(kernel, t.process)))
    timers.arm(kernel, t.process, value_ns, interval_ns)
    return 0


def alarm(t: Task, seconds: int, *_: int) -> int:
    """alarm(2): returns the seconds that were left, rounded to nearest."""
    kernel = t.process.kernel
    left, _interval = timers.remaining(kernel, t.process)
    timers.arm(kernel, t.process, (seconds & 0xFFFFFFFF) * SEC, 0)

    # "oldalarm++" when the microseconds reach a half second, or when less
    # than a second was left (kernel/time/itimer.c).
    whole, usec = divmod(left // USEC, 1_000_000)
    if (whole == 0 and usec) or usec >= 500_000:
        whole += 1
    return whole


SYSCALLS = [
    syscall("alarm", alarm),
    syscall(
        "getitimer",
        getitimer,
        "ITIMER_REAL only; the CPU-time timers are EINVAL",
        partial=True,
    ),
    syscall(
        "setitimer",
        setitimer,
        "ITIMER_REAL only; the CPU-time timers are EINVAL",
        partial=True,
    ),
]

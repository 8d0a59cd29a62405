"""timerfd: timers read as a count of expirations.

Theory of operation
-------------------
A :class:`TimerFd` measures time on one clock (CLOCK_REALTIME, MONOTONIC or
BOOTTIME) but is fired by the scheduler's timers, which run on the kernel's
monotonic clock: when it is armed, its expiry on its own clock is turned into
a deadline on the monotonic one and a scheduler timer is set under the
TimerFd itself as key. When that timer fires, :meth:`TimerFd.catch_up`
counts the expirations that have passed: one, or for a periodic timer every
interval elapsed since (a timer seen late counts what it missed, as Linux's
``hrtimer_forward`` does), moves the deadline past now and sets the next
scheduler timer. Reads, poll and timerfd_gettime catch up first as well, so
an expiry is never missed because the scheduler had not looked yet.

read(2) returns the count as an 8-byte integer and resets it; with the count
at zero it waits on the timer's queue (or fails with EAGAIN), which is
notified with POLLIN at each expiry. Setting the timer again resets the
count. Closing the last descriptor cancels the scheduler timer.

XXX: the realtime clock is taken to move with the monotonic one: a clock
change does not move a timer, so TFD_TIMER_CANCEL_ON_SET never cancels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import OpenFile, fail
from vfs.pipe import anon_inode
from vfs.wait import WaitQueue, WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Kernel

TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2
TFD_CLOEXEC = abi.O_CLOEXEC
TFD_NONBLOCK = abi.O_NONBLOCK
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_BOOTTIME = 7
CLOCK_REALTIME_ALARM = 8
CLOCK_BOOTTIME_ALARM = 9
CLOCKS = (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
          CLOCK_BOOTTIME_ALARM)
_REALTIME = (CLOCK_REALTIME, CLOCK_REALTIME_ALARM)

_POLL_READ = abi.POLLIN | abi.POLLRDNORM


class TimerFd(OpenFile):
    """timerfd_create(2)."""

    seekable = False

    def __init__(self, kernel: Kernel, clockid: int, flags: int) -> None:
        super().__init__(anon_inode(), abi.O_RDWR | (flags & abi.O_NONBLOCK),
                         "anon_inode:[timerfd]")
        self.kernel = kernel
        self.clockid = clockid
        self.queue = WaitQueue()
        # The next expiry on the kernel's monotonic clock, None when disarmed.
        self.deadline_ns: int | None = None
        self.interval_ns = 0
        self.ticks = 0

    # --- time ----------------------------------------------------------------

    def _clock_now(self) -> int:
        clock = self.kernel.clock
        if self.clockid in _REALTIME:
            return clock.realtime_ns()
        return clock.monotonic_ns()

    def _mono_now(self) -> int:
        return self.kernel.clock.monotonic_ns()

    def catch_up(self) -> None:
        """Count the expirations that have passed; set the next one."""
        deadline = self.deadline_ns
        if deadline is None:
            return
        now = self._mono_now()
        if now < deadline:
            return
        if self.interval_ns:
            missed = (now - deadline) // self.interval_ns + 1
            self.ticks += missed
            self.deadline_ns = deadline + missed * self.interval_ns
            self._schedule()
        else:
            self.ticks += 1
            self.deadline_ns = None
            self.kernel.sched.cancel_timer(self)
        self.queue.notify(_POLL_READ)

    def _schedule(self) -> None:
        assert self.deadline_ns is not None
        self.kernel.sched.add_timer(self, self.deadline_ns, lambda _now: self.catch_up())

    def get(self) -> tuple[int, int]:
        """timerfd_gettime: (time to the next expiry, interval) in ns."""
        self.catch_up()
        if self.deadline_ns is None:
            return 0, self.interval_ns
        return max(0, self.deadline_ns - self._mono_now()), self.interval_ns

    def set(self, flags: int, value_ns: int, interval_ns: int) -> tuple[int, int]:
        """timerfd_settime: arm (or with a zero value disarm); returns the old
        setting as :meth:`get` reports it."""
        old = self.get()
        self.kernel.sched.cancel_timer(self)
        self.ticks = 0
        self.interval_ns = interval_ns
        self.deadline_ns = None
        if value_ns:
            left = value_ns - self._clock_now() if flags & TFD_TIMER_ABSTIME else value_ns
            self.deadline_ns = self._mono_now() + left
            self._schedule()
            self.catch_up()
        return old

    # --- the file ------------------------------------------------------------

    def read(self, count: int) -> bytes:
        # The buffer must hold the 8-byte count.
        if count < 8:
            raise fail(abi.EINVAL)

        # Wait for an expiry, then hand over the count.
        self.catch_up()
        if self.ticks == 0:
            if self.flags & abi.O_NONBLOCK:
                raise SyscallError(abi.EAGAIN)
            raise WouldBlock(self.queue, _POLL_READ)
        ticks, self.ticks = self.ticks, 0
        return ticks.to_bytes(8, "little")

    def seek(self, offset: int, whence: int) -> int:
        # noop_llseek, as Linux gives these files: success, nothing moves.
        return self.offset

    def poll(self) -> int:
        self.catch_up()
        return _POLL_READ if self.ticks else 0

    def poll_queue(self) -> WaitQueue:
        return self.queue

    def fdinfo_lines(self) -> str:
        """The lines /proc/PID/fdinfo/N adds for a timerfd."""
        value, interval = self.get()
        return (
            f"clockid: {self.clockid}\n"
            f"ticks: {self.ticks}\n"
            f"settime flags: 00\n"
            f"it_value: ({value // 10**9}, {value % 10**9})\n"
            f"it_interval: ({interval // 10**9}, {interval % 10**9})\n"
        )

    def release(self) -> None:
        self.kernel.sched.cancel_timer(self)
        self.deadline_ns = None

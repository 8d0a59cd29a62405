"""Per-process interval timers: ITIMER_REAL, which alarm(2) also sets.

Theory of operation
-------------------
An armed ITIMER_REAL is an :class:`ITimer` on the process (its deadline on
the kernel's monotonic clock and its reload interval) and, under the same
key, a timer in the scheduler. The scheduler looks at its timers each time it
chooses a task, and a task that runs alone gets a time slice that ends at the
nearest deadline, so a timer is seen to expire at its deadline or at the end
of the slice running then: never early, and a loop without system calls is
interrupted as on Linux.

On expiry the process receives SIGALRM with si_code SI_KERNEL, as Linux's
``it_real_fn`` sends it. A periodic timer is then moved forward by whole
intervals until its deadline is in the future; expiries missed meanwhile are
dropped, since one pending SIGALRM stands for all of them anyway.

Timers fire in deadline order, and in arming order for equal deadlines, so
the same clock readings give the same events (deterministic mode replaces
the clock). fork does not pass a timer on; execve keeps it; it dies with the
process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from sentry import abi, signals

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Process


@attrs.define(eq=False)
class ITimer:
    deadline_ns: int
    interval_ns: int


def remaining(kernel: Kernel, proc: Process) -> tuple[int, int]:
    """(time left, interval) of ``proc``'s ITIMER_REAL in ns; (0, 0) if off."""
    timer = proc.itimer_real
    if timer is None:
        return 0, 0
    left = timer.deadline_ns - kernel.clock.monotonic_ns()
    # Expired but not yet seen by the scheduler: Linux, in the same race,
    # reports one microsecond left.
    return max(left, 1000), timer.interval_ns


def arm(kernel: Kernel, proc: Process, value_ns: int, interval_ns: int) -> None:
    """Set ``proc``'s ITIMER_REAL; a zero ``value_ns`` disarms it."""
    kernel.sched.cancel_timer(proc)
    proc.itimer_real = None
    if value_ns == 0:
        return
    timer = ITimer(kernel.clock.monotonic_ns() + value_ns, interval_ns)
    proc.itimer_real = timer
    kernel.sched.add_timer(proc, timer.deadline_ns, lambda now: _expire(kernel, proc))


def _expire(kernel: Kernel, proc: Process) -> None:
    timer = proc.itimer_real
    if timer is None or proc.zombie:
        return
    if timer.interval_ns:
        now = kernel.clock.monotonic_ns()
        missed = (now - timer.deadline_ns) // timer.interval_ns + 1
        timer.deadline_ns += max(missed, 1) * timer.interval_ns
        kernel.sched.add_timer(
            proc, timer.deadline_ns, lambda now: _expire(kernel, proc)
        )
    else:
        proc.itimer_real = None
    info = signals.SigInfo(abi.SIGALRM, signals.SI_KERNEL)
    signals.send_to_process(kernel, proc, info)


def process_ended(kernel: Kernel, proc: Process) -> None:
    """A process exited: its timer stops."""
    if proc.itimer_real is not None:
        kernel.sched.cancel_timer(proc)
        proc.itimer_real = None

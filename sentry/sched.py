"""The scheduler: which task runs next, and waiting without busy loops.

Theory of operation
-------------------
Every task is in exactly one of three places:

* the run queue (``_runq``), in the order it became runnable;
* ``_waiting``: parked by a syscall that raised :class:`~vfs.wait.WouldBlock`.
  The task is registered on the wait queues it named (a pipe, a futex, a child
  list ..., each with the events it cares about), on host descriptors, on a
  deadline, or on several of these (poll and epoll_wait wait on many files
  at once); the first that fires makes it runnable again and unregisters it
  from the rest;
* nowhere, while it is the one running on the CPU, or once it has exited.

A parked task re-executes its syscall from the start when it runs again: the
dispatcher left its RIP on the ``syscall`` instruction and its registers as
they were. A wakeup may be spurious; the syscall then simply waits again.
When a signal wakes it (:meth:`Scheduler.interrupt`), the wait it was in is
kept for the kernel, which decides whether the call fails with EINTR or runs
again (:meth:`Scheduler.take_interrupted`).

sched_yield gives the CPU to the other runnable tasks: the kernel ends the
caller's run when :meth:`Scheduler.yield_cpu` says someone else may run, and
the caller goes to the end of the run queue.

Besides parked tasks the scheduler keeps *timers*: callbacks due at a time
of the monotonic clock that belong to no task (ITIMER_REAL, see
:mod:`sentry.timers`). Every choice of the next task first runs the timers
and wakes the sleepers whose deadline has passed.

A task runs until it blocks or its time slice ends. The slice is limited
(see :meth:`Scheduler.slice_us` and :mod:`sentry.preempt`) whenever
something else could need the CPU: another runnable task, a deadline of a
sleeper or a timer (the slice then ends at that deadline), or a task waiting
on a host descriptor (polled without waiting between slices). A task alone
with nothing pending runs without a limit, which costs nothing; when one of
its system calls wakes another task or sets a timer, :attr:`on_change` lets
the kernel limit the slice under way.

When nothing is runnable the scheduler sleeps in the host's ``poll`` on the
host descriptors tasks wait for, until the nearest deadline. When nothing is
runnable and nothing can ever wake anybody, the sandbox is deadlocked and
:meth:`Scheduler.next` returns None.

The order is deterministic given the same sequence of events: a FIFO run
queue, wakeups in registration order, deadlines by time then by task id,
timers by time then by the order they were set.
"""

from __future__ import annotations

import math
import select
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from sentry import abi
from vfs.wait import WaitQueue, WouldBlock

if TYPE_CHECKING:
    from sentry.task import Task

# How long a task may run while others are runnable, in microseconds. Unicorn
# pays for a timer thread on each time-limited run, so slices are long.
TIME_SLICE_US = 20_000
# The shortest slice given to a task that runs until a nearby deadline.
MIN_SLICE_US = 1_000
# The longest the scheduler sleeps on the host in one go, in milliseconds.
MAX_HOST_SLEEP_MS = 86_400_000


@attrs.define(eq=False)
class _Parked:
    task: Task
    wait: WouldBlock
    queues: list[tuple[WaitQueue, int]]
    host_fds: list[tuple[int, int]]
    deadline_ns: int | None
    waker: Callable[[], None]

    def unregister(self) -> None:
        for queue, _mask in self.queues:
            queue.remove(self.waker)


@attrs.define(eq=False)
class _Timer:
    deadline_ns: int
    order: int
    fire: Callable[[int], None]


class Scheduler:
    def __init__(self, monotonic_ns: Callable[[], int]) -> None:
        self._runq: deque[Task] = deque()
        self._waiting: dict[int, _Parked] = {}  # by tid
        # The waits signals interrupted, until the kernel looks at them.
        self._interrupted: dict[int, WouldBlock] = {}
        self._timers: dict[object, _Timer] = {}
        self._timer_order = 0
        self._now = monotonic_ns
        # Called when a task becomes runnable or a timer is set: the task
        # running now may have to give up the CPU sooner than planned.
        self.on_change: Callable[[], None] | None = None
        # Host descriptors the kernel itself watches (the control socket),
        # each with what to call on the kernel thread when it is readable.
        # See :meth:`watch_host_fd`.
        self._kernel_fds: dict[int, Callable[[], None]] = {}
        self._quiet_fds: set[int] = set()

    # --- queues --------------------------------------------------------------

    def make_runnable(self, task: Task) -> None:
        """Put ``task`` at the end of the run queue (once)."""
        parked = self._waiting.pop(task.tid, None)
        if parked is not None:
            parked.unregister()
        if task not in self._runq and not task.exited:
            self._runq.append(task)
            if self.on_change is not None:
                self.on_change()

    def park(self, task: Task, wait: WouldBlock, deadline_ns: int | None = None) -> None:
        """Make ``task`` wait for what ``wait`` names, or until ``deadline_ns``."""
        def waker() -> None:
            self.make_runnable(task)

        if deadline_ns is None:
            deadline_ns = wait.deadline_ns
        queues = wait.all_queues()
        parked = _Parked(task, wait, queues, wait.all_host_fds(), deadline_ns, waker)
        self._waiting[task.tid] = parked
        for queue, mask in queues:
            queue.add(waker, mask)

    def sleep_until(self, task: Task, deadline_ns: int) -> None:
        """Park ``task`` on a deadline alone (nanosleep, timeouts)."""
        self.park(task, WouldBlock(None), deadline_ns)

    def forget(self, task: Task) -> None:
        """``task`` exited: take it out of every queue."""
        parked = self._waiting.pop(task.tid, None)
        if parked is not None:
            parked.unregister()
        self._interrupted.pop(task.tid, None)
        try:
            self._runq.remove(task)
        except ValueError:
            pass

    def is_waiting(self, task: Task) -> bool:
        return task.tid in self._waiting

    def interrupt(self, task: Task) -> bool:
        """Wake a parked task early (a signal arrived); True if it was parked."""
        parked = self._waiting.get(task.tid)
        if parked is None:
            return False
        self._interrupted[task.tid] = parked.wait
        self.make_runnable(task)
        return True

    def take_interrupted(self, task: Task) -> WouldBlock | None:
        """The wait a signal woke ``task`` from, once (None if there was none)."""
        return self._interrupted.pop(task.tid, None)

    def yield_cpu(self) -> bool:
        """sched_yield: whether another task is runnable and should run first
        (the caller then ends the current run, which puts its task last)."""
        return bool(self._runq)

    @property
    def others_runnable(self) -> bool:
        return bool(self._runq)

    # --- timers --------------------------------------------------------------

    def add_timer(self, key: object, deadline_ns: int,
                  fire: Callable[[int], None]) -> None:
        """Call ``fire(now)`` once the clock reaches ``deadline_ns``.

        Replaces the timer set earlier under the same ``key``.
        """
        self._timer_order += 1
        self._timers[key] = _Timer(deadline_ns, self._timer_order, fire)
        if self.on_change is not None:
            self.on_change()

    def cancel_timer(self, key: object) -> None:
        self._timers.pop(key, None)

    def slice_us(self) -> int:
        """How long the task about to run may run, in microseconds (0: no
        limit); see the module docstring."""
        if self._runq:
            return TIME_SLICE_US
        deadline = self._nearest_deadline()
        if deadline is not None:
            left_us = (deadline - self._now()) // 1000
            return min(max(left_us, MIN_SLICE_US), TIME_SLICE_US)
        if self._host_waiters():
            return TIME_SLICE_US
        if len(self._kernel_fds) > len(self._quiet_fds):
            return TIME_SLICE_US
        return 0

    def _host_waiters(self) -> bool:
        return any(p.host_fds for p in self._waiting.values())

    def _nearest_deadline(self) -> int | None:
        deadlines = [p.deadline_ns for p in self._waiting.values()
                     if p.deadline_ns is not None]
        deadlines.extend(t.deadline_ns for t in self._timers.values())
        return min(deadlines, default=None)

    # --- host descriptors of the kernel itself --------------------------------

    def watch_host_fd(self, fd: int, ready: Callable[[], None] | None,
                      quiet: bool = False) -> None:
        """Call ``ready()`` when host descriptor ``fd`` is readable while every
        task waits (None: stop watching ``fd``).

        These descriptors belong to no task, so they never count as something
        that can wake one (a deadlock is still a deadlock). While any is
        watched, slices are limited, so a task that spins without syscalls
        still lets the kernel look at them between slices. A ``quiet`` one
        (the host's signals, see sentry.hostsig) does not limit slices, and
        can wake a task: with one watched, tasks that all wait for nothing
        else are not a deadlock, they sleep as they would on Linux.
        """
        self._quiet_fds.discard(fd)
        if ready is None:
            self._kernel_fds.pop(fd, None)
        else:
            self._kernel_fds[fd] = ready
            if quiet:
                self._quiet_fds.add(fd)

    def _serve_kernel_fds(self, ready: list[int]) -> None:
        for fd in ready:
            callback = self._kernel_fds.get(fd)
            if callback is not None:
                callback()

    # --- choosing ------------------------------------------------------------

    def next(self) -> Task | None:
        """The next task to run; sleeps on the host while nothing is runnable."""
        while True:
            self._expire_deadlines()
            if self._runq:
                if self._host_waiters():
                    self._wait_on_host(poll_only=True)
                return self._runq.popleft()
            if not self._waiting and not self._timers:
                return None
            if not self._wait_on_host():
                return None

    def _expire_deadlines(self) -> None:
        now = self._now()
        if self._timers:
            timers = sorted(
                ((key, t) for key, t in self._timers.items() if t.deadline_ns <= now),
                key=lambda item: (item[1].deadline_ns, item[1].order),
            )
            for key, timer in timers:
                # Each fires once; it may set itself again for its next period.
                if self._timers.get(key) is timer:
                    del self._timers[key]
                timer.fire(now)
        due = sorted(
            (p for p in self._waiting.values()
             if p.deadline_ns is not None and p.deadline_ns <= now),
            key=lambda p: (p.deadline_ns, p.task.tid),
        )
        for parked in due:
            self.make_runnable(parked.task)

    def _wait_on_host(self, poll_only: bool = False) -> bool:
        """Sleep until a host descriptor is ready or a deadline passes; with
        ``poll_only``, only wake the tasks whose descriptors are ready now.

        Returns False when nothing at all can wake any task (a deadlock).
        """
        # Which tasks wait for which events on each host descriptor.
        watchers: dict[int, list[tuple[_Parked, int]]] = {}
        for parked in self._waiting.values():
            for fd, events in parked.host_fds:
                watchers.setdefault(fd, []).append((parked, _host_events(events)))
        deadline = self._nearest_deadline()
        if not watchers and deadline is None and not self._quiet_fds:
            return False

        # How long to sleep: not at all, until the deadline, or for ever.
        timeout_ms: float | None = None
        if poll_only:
            timeout_ms = 0.0
        elif deadline is not None:
            # A far deadline is slept towards a day at a time (the host's
            # poll and sleep take no more); the loop then looks again.
            left_ms = math.ceil(max(0, deadline - self._now()) / 1e6)
            timeout_ms = min(left_ms, MAX_HOST_SLEEP_MS)
        kernel_fds = [] if poll_only else list(self._kernel_fds)
        if not watchers and not kernel_fds:
            if timeout_ms:
                time.sleep(timeout_ms / 1e3)
            return True

        # Poll the descriptors; errors and hangups wake every watcher.
        poller = select.poll()
        masks: dict[int, int] = {fd: select.POLLIN for fd in kernel_fds}
        for fd, entries in watchers.items():
            for _parked, events in entries:
                masks[fd] = masks.get(fd, 0) | events
        for fd, mask in masks.items():
            poller.register(fd, mask)
        try:
            ready = poller.poll(timeout_ms)
        except OSError:
            ready = [(fd, select.POLLERR) for fd in watchers]
        if kernel_fds:
            self._serve_kernel_fds([fd for fd, _ev in ready if fd in self._kernel_fds])
        for fd, revents in ready:
            for parked, events in watchers.get(fd, []):
                if revents & (events | _HOST_TROUBLE):
                    self.make_runnable(parked.task)
        return True


# Host poll results that end every wait on the descriptor.
_HOST_TROUBLE = select.POLLERR | select.POLLHUP | select.POLLNVAL


def _host_events(events: int) -> int:
    """The host poll events to watch for a wait on ``events``; a wait that
    names none waits for input."""
    wanted = events & (abi.POLLIN | abi.POLLOUT | abi.POLLPRI | abi.POLLRDHUP)
    if events & abi.POLLRDNORM:
        wanted |= abi.POLLIN
    if events & abi.POLLWRNORM:
        wanted |= abi.POLLOUT
    return wanted or abi.POLLIN

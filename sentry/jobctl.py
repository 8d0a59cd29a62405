"""Job control: stopping and continuing processes, and the terminal's foreground.

Theory of operation
-------------------
A stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) left at its default action
stops the whole thread group when a thread takes it. :func:`stop_group` marks
the process stopped, remembers the report its parent collects with
``wait4(WUNTRACED)`` and tells the parent with SIGCHLD (CLD_STOPPED) unless the
parent asked for SA_NOCLDSTOP. The thread that took the signal is parked on
the process's ``resume_queue``; any other thread of the group is parked there
by the run loop when it is next chosen to run (:func:`hold_if_stopped`), so a
thread sleeping in a system call stays asleep and stops when it would return.

Continuing happens when SIGCONT is *generated*, whatever its disposition
(:func:`prepare_signal`, called by every sender): pending stop signals are
discarded, a stopped group is marked running, its parent hears CLD_CONTINUED
(``wait4(WCONTINUED)``), and the resume queue is notified. A stopped task
parked in a system call runs that call again from the start, which is what
Linux does for a call interrupted by a stop. Generating a stop signal in turn
discards a pending SIGCONT. Other signals sent to a stopped process stay
pending until it continues; SIGKILL wakes it and ends it.

SIGTSTP, SIGTTIN and SIGTTOU are discarded for a process group that is
orphaned (no member has a parent in another group of the same session):
nobody would be there to continue it. The sandbox's first process starts as
the leader of its own session, so its parent (outside) is in another session
and does not count.

The terminal
------------
The sandbox's first session owns the host terminal (when stdio is one) as its
controlling terminal. :class:`Terminal` keeps which session that is and which
of its process groups is in the foreground; TIOCGPGRP/TIOCSPGRP/TIOCSCTTY/
TIOCNOTTY read and change it. A process of a background group that reads the
terminal gets SIGTTIN (or EIO when it ignores or blocks SIGTTIN, or its group
is orphaned), as on Linux. The host's own process groups are not touched: the
foreground group is the guest's view only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from sentry import abi, signals
from sentry.errors import SyscallError
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Process, Task

CLD_TRAPPED = 4
CLD_STOPPED = 5
CLD_CONTINUED = 6

# A stopped child's wait status is (signo << 8) | 0x7f; a continued one's 0xffff.
WAIT_STOPPED = 0x7F
WAIT_CONTINUED = 0xFFFF

TTY_STOPS = frozenset({abi.SIGTSTP, abi.SIGTTIN, abi.SIGTTOU})


# --- generation ------------------------------------------------------------------


def prepare_signal(kernel: Kernel, proc: Process, signo: int) -> None:
    """The side effects of generating ``signo`` for ``proc``, which happen
    whether or not the signal is then ignored or blocked."""
    if signo in signals.DEFAULT_STOP:
        _discard_pending(proc, {abi.SIGCONT})
    elif signo == abi.SIGCONT:
        _discard_pending(proc, signals.DEFAULT_STOP)
        if proc.stopped:
            continue_group(kernel, proc)


def _discard_pending(proc: Process, signos: frozenset[int] | set[int]) -> None:
    proc.shared_pending[:] = [i for i in proc.shared_pending if i.signo not in signos]
    for task in proc.threads:
        task.pending[:] = [i for i in task.pending if i.signo not in signos]


# --- stopping and continuing -------------------------------------------------------


def stop_group(kernel: Kernel, task: Task, signo: int) -> None:
    """``task`` took a stop signal at its default action: stop its group."""
    proc = task.process
    if not proc.stopped:
        proc.stopped = True
        proc.stop_report = (signo << 8) | WAIT_STOPPED
        proc.cont_report = False
        _tell_parent(kernel, proc, CLD_STOPPED, signo)
    kernel.sched.park(task, WouldBlock(proc.resume_queue))


def continue_group(kernel: Kernel, proc: Process) -> None:
    proc.stopped = False
    proc.stop_report = 0
    proc.cont_report = True
    _tell_parent(kernel, proc, CLD_CONTINUED, abi.SIGCONT)
    proc.resume_queue.notify()


def hold_if_stopped(kernel: Kernel, task: Task) -> bool:
    """Park ``task`` instead of running it while its group is stopped.

    A pending SIGKILL lets it run: delivery ends it.
    """
    if not task.process.stopped or _kill_pending(task):
        return False
    kernel.sched.park(task, WouldBlock(task.process.resume_queue))
    return True


def _kill_pending(task: Task) -> bool:
    return any(i.signo == abi.SIGKILL
               for i in (*task.pending, *task.process.shared_pending))


def _tell_parent(kernel: Kernel, proc: Process, code: int, status: int) -> None:
    parent = kernel.find_process(proc.ppid)
    if parent is None or parent is proc:
        return
    action = parent.sigactions[abi.SIGCHLD]
    if not action.flags & signals.SA_NOCLDSTOP:
        info = signals.SigInfo(abi.SIGCHLD, code, proc.pid, proc.creds.uid, 0, status)
        signals.send_to_process(kernel, parent, info)
    parent.child_waiters.notify()


def orphaned_pgrp(kernel: Kernel, pgid: int) -> bool:
    """No member of group ``pgid`` has a parent in another group of its session."""
    for proc in kernel.processes():
        if proc.pgid != pgid or proc.zombie:
            continue
        parent = kernel.find_process(proc.ppid)
        if parent is None:
            # The first process: its parent is outside, in another session
            # when the first process leads its own (it does, from the start).
            if proc.sid != proc.pid:
                return False
            continue
        if parent.pgid != pgid and parent.sid == proc.sid:
            return False
    return True


def discards_stop(kernel: Kernel, task: Task, signo: int) -> bool:
    """Whether a terminal stop signal at its default action is dropped."""
    return signo in TTY_STOPS and orphaned_pgrp(kernel, task.process.pgid)


# --- the terminal -------------------------------------------------------------------


@attrs.define
class Terminal:
    """The controlling terminal of one session: the host's, as the guest sees it."""

    sid: int = 0  # the session it controls; 0 for none
    fg_pgrp: int = 0


def _controlling(task: Task) -> Terminal:
    """The terminal if it is the caller's controlling terminal, else ENOTTY."""
    term = task.process.kernel.terminal
    if term.sid == 0 or term.sid != task.process.sid:
        raise SyscallError(abi.ENOTTY)
    return term


def get_foreground(task: Task) -> int:
    """TIOCGPGRP."""
    return _controlling(task).fg_pgrp


def get_session(task: Task) -> int:
    """TIOCGSID."""
    return _controlling(task).sid


def set_foreground(task: Task, pgid: int) -> None:
    """TIOCSPGRP (tcsetpgrp)."""
    term = _controlling(task)
    kernel = task.process.kernel
    if pgid < 0:
        raise SyscallError(abi.EINVAL)
    if not any(p.pgid == pgid and not p.zombie for p in kernel.processes()):
        raise SyscallError(abi.ESRCH)
    if not any(p.pgid == pgid and p.sid == term.sid and not p.zombie
               for p in kernel.processes()):
        raise SyscallError(abi.EPERM)
    background_access(task, abi.SIGTTOU)
    term.fg_pgrp = pgid


def set_controlling(task: Task, steal: int) -> None:
    """TIOCSCTTY: a session leader without a terminal takes this one."""
    proc = task.process
    term = proc.kernel.terminal
    if term.sid == proc.sid:
        return
    if proc.sid != proc.pid:
        raise SyscallError(abi.EPERM)
    if term.sid != 0 and not (steal == 1 and proc.creds.euid == 0):
        raise SyscallError(abi.EPERM)
    term.sid = proc.sid
    term.fg_pgrp = proc.pgid


def drop_controlling(task: Task) -> None:
    """TIOCNOTTY: the caller's session lets go of its terminal; when the
    session leader does it, the foreground group gets SIGHUP and SIGCONT."""
    proc = task.process
    term = _controlling(task)
    kernel = proc.kernel
    if proc.sid == proc.pid:
        fg = term.fg_pgrp
        term.sid = term.fg_pgrp = 0
        for signo in (abi.SIGHUP, abi.SIGCONT):
            for member in kernel.processes():
                if member.pgid == fg and not member.zombie:
                    signals.send_to_process(
                        kernel, member, signals.SigInfo(signo, signals.SI_KERNEL))


def background_access(task: Task, signo: int) -> None:
    """A read (SIGTTIN) or terminal-changing request (SIGTTOU) on the
    controlling terminal from a background group stops that group.

    The call is parked to run again after the signal was taken; a caller
    that ignores or blocks the signal goes on (SIGTTOU) or gets EIO (SIGTTIN),
    and so does an orphaned group.
    """
    proc = task.process
    kernel = proc.kernel
    term = kernel.terminal
    if term.sid == 0 or term.sid != proc.sid or proc.pgid == term.fg_pgrp:
        return
    ignored = proc.sigactions[signo].handler == signals.SIG_IGN
    blocked = bool(task.sigmask & signals.bit(signo))
    if ignored or blocked:
        if signo == abi.SIGTTIN:
            raise SyscallError(abi.EIO)
        return
    if orphaned_pgrp(kernel, proc.pgid):
        raise SyscallError(abi.EIO)
    for member in kernel.processes():
        if member.pgid == proc.pgid and not member.zombie:
            signals.send_to_process(kernel, member, signals.SigInfo(signo, signals.SI_KERNEL))
    # Run the call again once the signal has been dealt with.
    raise WouldBlock(None, deadline_ns=kernel.clock.monotonic_ns())

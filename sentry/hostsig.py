"""Signals the host sends to pysentry reach the guest, as they would a program.

Theory of operation
-------------------
A program run natively gets SIGINT and SIGQUIT from its terminal (Ctrl-C,
Ctrl-\\), SIGWINCH when the terminal is resized, and SIGTERM, SIGHUP, SIGUSR1
or SIGUSR2 from whoever kills it. Under ``pysentry run`` the host sends them
to pysentry instead; :class:`HostSignals` passes them on:

* the terminal's signals (SIGINT, SIGQUIT, SIGWINCH) go to the guest's
  foreground process group, as a terminal would send them
  (:class:`sentry.jobctl.Terminal`);
* the others go to the guest's first process.

They come from outside the sandbox's pid namespace, so the first process is
not spared the default action (it is for signals sent from inside, see
:func:`sentry.signals._unkillable`): Ctrl-C ends a program that does not
catch SIGINT, and pysentry exits with 130 like the shell reports.

A Python signal handler runs between two bytecodes of whatever the kernel
is doing, so it only records the signal, raises the kernel's
``signals_pending`` flag and writes to the self-pipe (see below). The kernel turns recorded signals into guest
signals at its safe points: when a syscall ends and between time slices
(:meth:`take`). While every task sleeps, the scheduler watches a self-pipe
the handler writes to (``signal.set_wakeup_fd``), so a sleeping guest wakes
at once. A guest that computes without making syscalls takes the signal at
its next syscall or the end of its time slice.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

from sentry import abi, signals

if TYPE_CHECKING:
    from sentry.kernel import Kernel

# Signal -> whom it goes to: the foreground group or the first process.
FORWARDED = {
    abi.SIGINT: "foreground",
    abi.SIGQUIT: "foreground",
    abi.SIGWINCH: "foreground",
    abi.SIGTERM: "init",
    abi.SIGHUP: "init",
    abi.SIGUSR1: "init",
    abi.SIGUSR2: "init",
}


# Python ignores these itself when it starts, whatever pysentry inherited.
_SET_BY_PYTHON = frozenset({abi.SIGPIPE, abi.SIGXFSZ})


def inherit_ignored(proc: Any) -> None:
    """The first process starts with the signals pysentry was started with
    ignored (nohup, a background job of a shell) ignored too, as a program
    that execve keeps them for."""
    for signo in range(1, abi.NSIG + 1):
        if signo in (abi.SIGKILL, abi.SIGSTOP) or signo in _SET_BY_PYTHON:
            continue
        try:
            ignored = signal.getsignal(signo) == signal.SIG_IGN
        except ValueError:
            continue
        if ignored:
            proc.sigactions[signo].handler = signals.SIG_IGN


class HostSignals:
    """Forward the host's signals to one kernel's guest while it runs."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.arrived: list[int] = []
        self._old: dict[int, Any] = {}
        self._old_wakeup = -1
        self._pipe: tuple[int, int] | None = None

    def install(self) -> None:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe = (read_end, write_end)
        for signo in FORWARDED:
            # One the host ignores stays ignored, as the guest inherited it.
            if signal.getsignal(signo) != signal.SIG_IGN:
                self._old[signo] = signal.signal(signo, self._on_signal)
        self._old_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self.kernel.sched.watch_host_fd(read_end, self._drain, quiet=True)
        self.kernel.host_signals = self

    def uninstall(self) -> None:
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for signo, handler in self._old.items():
            signal.signal(signo, handler)
        self.kernel.sched.watch_host_fd(self._pipe[0], None)
        for fd in self._pipe:
            os.close(fd)
        self._pipe = None
        self.kernel.host_signals = None

    def _on_signal(self, signo: int, _frame: object) -> None:
        self.arrived.append(signo)
        self.kernel.signals_pending = True
        # Python runs this handler a little after the signal, maybe after the
        # scheduler already emptied the pipe and found nothing recorded: one
        # more byte makes sure a sleeping kernel looks again.
        if self._pipe is not None:
            try:
                os.write(self._pipe[1], b"\0")
            except OSError:
                pass  # the pipe is full: the kernel will look anyway

    def _drain(self) -> None:
        """The self-pipe woke the scheduler: empty it and pass the signals on."""
        assert self._pipe is not None
        try:
            while os.read(self._pipe[0], 512):
                pass
        except BlockingIOError:
            pass
        self.take()

    def take(self) -> None:
        """Generate the recorded signals in the guest (kernel context only)."""
        kernel = self.kernel
        while self.arrived:
            signo = self.arrived.pop(0)
            info = signals.SigInfo(signo, signals.SI_USER, outside=True)
            for proc in self._targets(signo):
                signals.send_to_process(kernel, proc, info)

    def _targets(self, signo: int) -> list[Any]:
        kernel = self.kernel
        live = [p for p in kernel.processes() if not p.zombie]
        if FORWARDED[signo] == "foreground" and kernel.terminal.sid:
            group = [p for p in live if p.pgid == kernel.terminal.fg_pgrp]
            if group:
                return group
        return [p for p in live if p.pid == 1]

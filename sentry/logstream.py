"""The log stream: every syscall as JSON lines on a socket, for live viewers.

Theory of operation
-------------------
``pysentry run --log-socket unix:PATH`` (or ``tcp:HOST:PORT``) connects to a
listener at start (``pysentry logs ADDR`` is one) and writes one JSON object
per line: one when a syscall starts, one when it returns, one per
``hooks.logJson`` call and one when a task ends. The record format is
gWisord's::

    {"msg": {"LogType": "X", "Taskname": "cat", "Syscallname": "openat",
             "Sysno": 257, "Output": ["AT_FDCWD", "\\"/etc/hostname\\"", "O_RDONLY"],
             "Rval": {"Retval": 3, "Err": "", "Errno": 0, "Elapsed": 41250},
             "LogPrefix": "[1:1]"},
     "level": "info", "time": "2026-12-03T17:25:01.123456Z"}

``LogType`` is ``E`` (entry: ``Output`` holds the arguments the guest passes
in; those the kernel fills in show as addresses; ``Rval`` is null), ``X``
(exit: every argument decoded, ``Rval`` the result: ``Retval`` the signed
return value or null when the task did not come back, ``Err`` the errno's
name and text or "", ``Errno`` its number or 0, ``Elapsed`` nanoseconds of
host time since the entry, waits included), ``J`` (``Output`` is the value a
hook passed to ``hooks.logJson``), ``T`` (``Output`` is ``["exited with 0"]``
or ``["killed by SIGKILL"]``) or ``D`` (``Dropped``: records lost since the
previous ``D``; ``level`` is ``warning``). A call that waits (a read on an
empty pipe) has one ``E`` however often it is woken and runs again.

Decoding is the tracer's (:class:`sentry.strace.Tracer`): :class:`LogTracer`
is a tracer that also writes the stream, so ``--strace`` and the stream
share one decoding of each call.

The guest never waits for the reader. Records are encoded on the kernel's
thread and handed to a writer thread through a queue bounded by
:data:`QUEUE_BYTES`; the writer sends them in batches, every
:data:`WRITE_INTERVAL_S` or once :data:`BATCH_BYTES` are waiting. A record that does not fit is dropped and counted, and
the next record that fits is preceded by a ``D`` record. The writer thread
only sends bytes (it needs the GIL for that, which the kernel thread lets go
between syscalls and while it waits). At the end of the run the writer gets
:data:`CLOSE_TIMEOUT_S` to send what is queued; the number of records
dropped in all is reported on stderr. A reader that goes away ends the
stream (reported once); the guest goes on.
"""

from __future__ import annotations

import collections
import json
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from sentry.control import Address, connect
from sentry.strace import Tracer, errno_text
from sentry.strace_args import errno_of, hex_or_null
from sentry.syscalls.args import s64

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.strace import _Pending
    from sentry.task import Task

# Bytes of encoded records waiting for the writer thread, at most.
QUEUE_BYTES = 8 << 20
# How long the end of the run waits for queued records to leave.
CLOSE_TIMEOUT_S = 5.0
# The writer sends what is queued at least this often, and at once when
# this many bytes are waiting (waking it for every record would cost the
# kernel thread more than the encoding does).
WRITE_INTERVAL_S = 0.05
BATCH_BYTES = 64 << 10


# The last second formatted, so most records format only their microseconds.
_second: list[Any] = [-1, ""]


def rfc3339_now() -> str:
    """The current UTC time as RFC 3339 with microseconds."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    if seconds != _second[0]:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{micros:06d}Z"


class LogStream:
    """A connected socket and the thread that writes records to it."""

    def __init__(
        self, sock: socket.socket, address: Address, queue_bytes: int = QUEUE_BYTES
    ) -> None:
        self.address = address
        self.sent = 0
        self.dropped = 0
        self.broken: str | None = None
        self._sock = sock
        self._limit = queue_bytes
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._unreported = 0
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._write_loop, name="pysentry-log-stream", daemon=True
        )
        self._thread.start()

    @classmethod
    def connect(cls, address: Address) -> LogStream:
        """Connect to a listener at ``address``; OSError if nobody listens."""
        sock = connect(address, timeout=5.0)
        sock.settimeout(None)
        return cls(sock, address)

    # --- the kernel's side -------------------------------------------------------

    def put(self, msg: dict[str, Any], level: str = "info") -> None:
        """Queue one record, or count it as dropped if the queue is full."""
        line = _line(msg, level)
        with self._cond:
            if self.broken is not None or self._closing:
                self.dropped += 1
                return
            if self._unreported and self._fits(256 + len(line)):
                notice = _line({"LogType": "D", "Dropped": self._unreported}, "warning")
                self._queue.append(notice)
                self._queued_bytes += len(notice)
                self._unreported = 0
            if not self._fits(len(line)):
                self.dropped += 1
                self._unreported += 1
                return
            self._queue.append(line)
            self._queued_bytes += len(line)
            if self._queued_bytes >= BATCH_BYTES:
                self._cond.notify()

    def _fits(self, size: int) -> bool:
        return self._queued_bytes + size <= self._limit

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Let the writer send what is queued (for ``timeout`` at most), close
        the socket, and report losses on stderr."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            # The reader is too slow even now: what is left is lost.
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._thread.join(1.0)
        with self._cond:
            self.dropped += len(self._queue)
            self._queue.clear()
        self._sock.close()
        if self.broken is not None:
            _note(f"log stream to {self.address} ended: {self.broken}")
        if self.dropped:
            _note(
                f"log stream to {self.address}: {self.dropped} records dropped "
                f"({self.sent} sent)"
            )

    # --- the writer thread ---------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                if not self._closing and self._queued_bytes < BATCH_BYTES:
                    self._cond.wait(WRITE_INTERVAL_S)
                if not self._queue:
                    if self._closing:
                        return
                    continue
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
            try:
                self._sock.sendall(b"".join(batch))
            except OSError as exc:
                with self._cond:
                    self.broken = f"the reader went away ({exc.strerror or exc})"
                    self.dropped += len(batch) + len(self._queue)
                    self._queue.clear()
                return
            with self._cond:
                self.sent += len(batch)


def _line(msg: dict[str, Any], level: str) -> bytes:
    record = {"msg": msg, "level": level, "time": rfc3339_now()}
    try:
        text = json.dumps(record)
    except (TypeError, ValueError):
        text = json.dumps(record, default=str)
    return (text + "\n").encode("ascii")


def _note(text: str) -> None:
    sys.stderr.write(f"pysentry: {text}\n")
    sys.stderr.flush()


class LogTracer(Tracer):
    """The syscall tracer that also writes every entry and exit to a
    :class:`LogStream` (and strace text or JSON when those are asked for)."""

    def __init__(
        self,
        kernel: Kernel,
        stream: LogStream,
        text: TextIO | None = None,
        json_out: TextIO | None = None,
        owned: Sequence[TextIO] = (),
    ) -> None:
        super().__init__(kernel, text, json_out, owned)
        self.stream = stream
        # tid -> (registers at entry, host time of entry): the call under way.
        self._entries: dict[int, tuple[tuple[int, ...], int]] = {}
        # Tasks whose call was parked: its entry record is out already.
        self._parked: set[int] = set()

    @classmethod
    def open_with(
        cls,
        kernel: Kernel,
        stream: LogStream,
        strace_target: str | None,
        json_path: str | None,
    ) -> LogTracer:
        """Like :meth:`Tracer.open`, with the stream (OSError on outputs)."""
        plain = Tracer.open(kernel, strace_target, json_path)
        return cls(kernel, stream, plain.text, plain.json_out, plain._owned)

    # --- the kernel's side ---------------------------------------------------

    def enter(self, task: Task, regs: Sequence[int]) -> None:
        super().enter(task, regs)
        try:
            key = tuple(regs[:7])
            entry = self._entries.get(task.tid)
            if task.tid in self._parked:
                self._parked.discard(task.tid)
                if entry is not None and entry[0] == key:
                    return  # the same call, woken: its entry record is out
            self._entries[task.tid] = (key, time.perf_counter_ns())
            pending = self._pending.get(task.tid)
            if pending is not None:
                output = [
                    t if t is not None else hex_or_null(pending.call.args[i])
                    for i, t in enumerate(pending.texts)
                ]
                self.stream.put(
                    self._msg(task, "E", pending.name, pending.nr, output, None)
                )
        except Exception:  # noqa: BLE001 - the stream never stops the guest
            self._warn_once("stream-enter", "streaming a syscall entry failed")

    def forget(self, task: Task) -> None:
        super().forget(task)
        self._parked.add(task.tid)

    def _finish(self, task: Task, pending: _Pending, result: int | None) -> None:
        super()._finish(task, pending, result)
        try:
            entry = self._entries.pop(task.tid, None)
            self._parked.discard(task.tid)
            started = entry[1] if entry is not None else time.perf_counter_ns()
            errno = errno_of(result) if result is not None else None
            rval = {
                "Retval": s64(result) if result is not None else None,
                "Err": "",
                "Errno": 0,
                "Elapsed": time.perf_counter_ns() - started,
            }
            if errno is not None:
                name, text = errno_text(errno)
                rval["Err"], rval["Errno"] = f"{name} ({text})", errno
            output = [t or "" for t in pending.texts]
            self.stream.put(
                self._msg(task, "X", pending.name, pending.nr, output, rval)
            )
        except Exception:  # noqa: BLE001 - the stream never stops the guest
            self._warn_once("stream-exit", "streaming a syscall exit failed")

    def _write_end(self, task: Task, text: str, record: dict[str, Any]) -> None:
        first = task.tid not in self._ended
        super()._write_end(task, text, record)
        if first:
            self.stream.put(self._msg(task, "T", "", -1, [text], None))

    def log_json(self, text: str) -> None:
        """A hook called ``hooks.logJson``: ``text`` is the value as JSON."""
        task = self.kernel.current
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        entry = self._entries.get(task.tid) if task is not None else None
        nr = entry[0][0] if entry is not None else -1
        name = self._name(nr) if nr >= 0 else ""
        if task is None:
            msg = {
                "LogType": "J",
                "Taskname": "",
                "Syscallname": name,
                "Sysno": nr,
                "Output": value,
                "Rval": None,
                "LogPrefix": "",
            }
            self.stream.put(msg)
            return
        self.stream.put(self._msg(task, "J", name, nr, value, None))

    # --- records -------------------------------------------------------------

    @staticmethod
    def _name(nr: int) -> str:
        from sentry.strace import syscall_name

        return syscall_name(nr)

    @staticmethod
    def _msg(
        task: Task,
        kind: str,
        name: str,
        nr: int,
        output: Any,
        rval: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "LogType": kind,
            "Taskname": task.name,
            "Syscallname": name,
            "Sysno": nr,
            "Output": output,
            "Rval": rval,
            "LogPrefix": f"[{task.process.pid}:{task.tid}]",
        }

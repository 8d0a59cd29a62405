"""The Python functions behind the ``hooks`` API that scripts call.

Each public method of :class:`Natives` is added to the QuickJS context as a
global ``__pysentry_<name>`` that jshooks/prelude.js picks up and hides. The
JavaScript wrappers check argument counts and types first; the methods here
check again, since a value from a script is never trusted.

What crosses back into JavaScript must be something the binding converts
without loss, and a native must never raise into the binding (it would turn
the exception into a confusing SystemError). So every method is wrapped by
:func:`_guarded`, and answers with:

* a small int (the binding turns Python ints into 32-bit JS numbers, so only
  values in the int32 range cross as ints);
* a string tagged by its first character: ``S`` text, ``J`` JSON, ``B`` bytes
  as latin-1 text, ``I`` an integer in decimal, or ``T``/``R``/``E`` followed
  by a message, which the prelude throws as a TypeError, RangeError or Error.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sentry import abi, signals
from sentry.errors import SyscallError
from sentry.mm import PAGE, page_up

if TYPE_CHECKING:
    from jshooks.engine import HookEngine
    from sentry.kernel import Kernel
    from sentry.task import Task
    from vfs.core import OpenFile

log = logging.getLogger("pysentry.jshooks")

# The most bytes one readBytes or writeBytes call moves, and the longest
# string readString returns.
MAX_TRANSFER = 16 << 20
# The largest mapping anonMmap makes.
MAX_MAP = 1 << 30

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_MASK64 = (1 << 64) - 1

_FILE_TYPES = {
    abi.S_IFREG: "file",
    abi.S_IFDIR: "directory",
    abi.S_IFLNK: "symlink",
    abi.S_IFCHR: "char-device",
    abi.S_IFBLK: "block-device",
    abi.S_IFIFO: "pipe",
    abi.S_IFSOCK: "socket",
}


class BadArgument(Exception):
    """A script passed something a native cannot use; thrown in JavaScript."""

    def __init__(self, message: str, kind: str = "R") -> None:
        super().__init__(message)
        self.kind = kind


def number(value: int) -> int | str:
    """``value`` in the form that crosses into JavaScript without loss."""
    if _INT32_MIN <= value <= _INT32_MAX:
        return value
    return f"I{value}"


def signal_name(signo: int) -> str:
    """The name of a signal as scripts see it (SIGRTMIN+n for real-time)."""
    if signo in abi.SIGNAL_NAMES:
        return abi.SIGNAL_NAMES[signo]
    if signo == abi.SIGRTMIN:
        return "SIGRTMIN"
    if signo == abi.SIGRTMAX:
        return "SIGRTMAX"
    return f"SIGRTMIN+{signo - abi.SIGRTMIN}"


def mode_string(mode: int) -> str:
    """Permission bits as ls shows them: ``rwxr-xr--``."""
    out = []
    for shift in (6, 3, 0):
        bits = mode >> shift
        out.append("r" if bits & 4 else "-")
        out.append("w" if bits & 2 else "-")
        out.append("x" if bits & 1 else "-")
    return "".join(out)


def _guarded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` as a callable that never raises into the binding."""

    @functools.wraps(method)
    def call(*args: Any) -> Any:
        try:
            return method(*args)
        except BadArgument as err:
            return f"{err.kind}{name}: {err}"
        except SyscallError as err:
            errname = abi.ERRNO_NAMES.get(err.errno, str(err.errno))
            return f"E{name}: failed with {errname}"
        except Exception:  # noqa: BLE001 - a bug of ours must not reach the guest
            log.warning(
                "hook function %s failed inside the sentry", name, exc_info=True
            )
            return f"E{name}: internal error in the sentry"

    return call


def _int(value: Any, what: str) -> int:
    """An integer argument: a JS integer Number, or the decimal of a BigInt."""
    if isinstance(value, bool):
        raise BadArgument(f"{what} must be an integer", "T")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError:
            pass
    raise BadArgument(f"{what} must be an integer", "T")


def _count(value: Any, what: str, limit: int) -> int:
    n = _int(value, what)
    if not 0 <= n <= limit:
        raise BadArgument(f"{what} must be between 0 and {limit}, got {n}")
    return n


class Natives:
    """The API functions, bound to one kernel and one engine."""

    def __init__(self, kernel: Kernel, engine: HookEngine) -> None:
        self.kernel = kernel
        self.engine = engine

    def table(self) -> dict[str, Callable[..., Any]]:
        """Every native by the name the prelude knows it by."""
        names = [
            "config",
            "internals",
            "register",
            "unregister",
            "context",
            "pid",
            "tid",
            "readBytes",
            "writeBytes",
            "readString",
            "writeString",
            "getArgv",
            "getEnvs",
            "getCwd",
            "getFdInfo",
            "getFdsInfo",
            "getMmaps",
            "getPidInfo",
            "getSignalInfo",
            "getThreadInfo",
            "anonMmap",
            "munmap",
            "sendSignal",
            "stopThreads",
            "resumeThreads",
            "print",
            "logJson",
        ]
        return {name: _guarded(name, getattr(self, name)) for name in names}

    def _task(self) -> Task:
        task = self.kernel.current
        if task is None:
            raise BadArgument("only works while a syscall callback runs", "E")
        return task

    # --- plumbing used by the prelude ----------------------------------------

    def config(self) -> str:
        return self.engine.prelude_config()

    def internals(self, *functions: Any) -> int:
        self.engine.set_internals(functions)
        return 0

    def register(
        self,
        handle: int,
        phase: str,
        which: str,
        argc: int,
        name: str,
        what: str,
        where: str,
        fn: Any,
    ) -> int:
        self.engine.register(handle, phase, which, argc, name, what, where, fn)
        return 0

    def unregister(self, handle: Any) -> int:
        return int(self.engine.unregister(_int(handle, "handle")))

    def context(self, name: str, index: int) -> Any:
        return self.engine.context(name, index)

    def pid(self) -> int | str:
        return number(self._task().process.pid)

    def tid(self) -> int | str:
        return number(self._task().tid)

    # --- memory --------------------------------------------------------------

    def readBytes(self, addr: Any, count: Any) -> str:  # noqa: N802 - API name
        address = _int(addr, "addr") & _MASK64
        n = _count(count, "count", MAX_TRANSFER)
        try:
            data = self._task().mm.read(address, n)
        except SyscallError:
            raise BadArgument(
                f"cannot read {n} bytes at {address:#x} (EFAULT)", "E"
            ) from None
        return "B" + bytes(data).decode("latin-1")

    def writeBytes(self, addr: Any, data: Any) -> int | str:  # noqa: N802
        address = _int(addr, "addr") & _MASK64
        if not isinstance(data, str):
            raise BadArgument("bytes must be a byte array", "T")
        if len(data) > 2 * MAX_TRANSFER:
            raise BadArgument(f"at most {MAX_TRANSFER} bytes at a time")
        try:
            raw = bytes.fromhex(data)
        except ValueError:
            raise BadArgument("bytes must be a byte array", "T") from None
        try:
            self._task().mm.write(address, raw)
        except SyscallError:
            raise BadArgument(
                f"cannot write {len(raw)} bytes at {address:#x} (EFAULT)", "E"
            ) from None
        return number(len(raw))

    def readString(self, addr: Any, maxlen: Any) -> str:  # noqa: N802
        address = _int(addr, "addr") & _MASK64
        limit = _count(maxlen, "maxlen", MAX_TRANSFER)
        mm = self._task().mm
        try:
            try:
                raw = mm.read_cstring(address, limit)
            except SyscallError as err:
                if err.errno != abi.ENAMETOOLONG:
                    raise
                # No NUL in the first maxlen bytes: those bytes are the string.
                raw = mm.read(address, limit)
        except SyscallError:
            raise BadArgument(
                f"cannot read a string at {address:#x} (EFAULT)", "E"
            ) from None
        return "S" + bytes(raw).decode("utf-8", "replace")

    def writeString(self, addr: Any, text: Any) -> int | str:  # noqa: N802
        address = _int(addr, "addr") & _MASK64
        if not isinstance(text, str):
            raise BadArgument("str must be a string", "T")
        raw = text.encode("utf-8", "replace") + b"\0"
        if len(raw) > MAX_TRANSFER:
            raise BadArgument(f"at most {MAX_TRANSFER} bytes at a time")
        try:
            self._task().mm.write(address, raw)
        except SyscallError:
            raise BadArgument(
                f"cannot write {len(raw)} bytes at {address:#x} (EFAULT)", "E"
            ) from None
        return number(len(raw))

    def anonMmap(self, length: Any) -> int | str:  # noqa: N802
        n = _int(length, "len")
        if not 0 < n <= MAX_MAP:
            raise BadArgument(f"len must be between 1 and {MAX_MAP}, got {n}")
        prot = abi.PROT_READ | abi.PROT_WRITE
        flags = abi.MAP_PRIVATE | abi.MAP_ANONYMOUS
        return number(self._task().mm.map(0, page_up(n), prot, flags))

    def munmap(self, addr: Any, length: Any) -> int:
        address = _int(addr, "addr")
        n = _int(length, "len")
        if address % PAGE or not 0 < address < 1 << 47:
            raise BadArgument(
                f"addr must be a page-aligned user address, got {address:#x}"
            )
        if not 0 < n <= 1 << 47:
            raise BadArgument(f"len must be positive, got {n}")
        self._task().mm.unmap(address, n)
        return 0

    # --- the process ---------------------------------------------------------

    def getArgv(self) -> str:
        args = self._task().process.argv
        return "J" + json.dumps([a.decode("utf-8", "replace") for a in args])

    def getEnvs(self) -> str:
        env = self._task().process.envp
        return "J" + json.dumps([e.decode("utf-8", "replace") for e in env])

    def getCwd(self) -> str:
        return "S" + self._task().process.fs.cwd.path

    def getMmaps(self) -> str:
        return "S" + self._task().mm.maps_text()

    def getFdInfo(self, fd: Any) -> str:  # noqa: N802
        n = _int(fd, "fd")
        fds = self._task().process.fds
        if n not in fds:
            return "Jnull"
        return "J" + json.dumps(_fd_info(n, fds.get(n)))

    def getFdsInfo(self) -> str:  # noqa: N802
        fds = self._task().process.fds
        return "J" + json.dumps([_fd_info(fd, f) for fd, f in fds.items()])

    def getPidInfo(self) -> str:  # noqa: N802
        task = self._task()
        proc = task.process
        creds = proc.creds
        others = sorted(
            {
                p.pgid
                for p in self.kernel.processes()
                if p.sid == proc.sid and p.pgid != proc.pgid and not p.zombie
            }
        )
        info = {
            "PID": proc.pid,
            "PPID": proc.ppid,
            "TID": task.tid,
            "UID": creds.uid,
            "GID": creds.gid,
            "EUID": creds.euid,
            "EGID": creds.egid,
            # XXX: the caller's group is the foreground one, as vfs/stdio.py
            # answers TIOCGPGRP: there is no job control yet.
            "session": {
                "sessionID": proc.sid,
                "PGID": proc.pgid,
                "foregroundID": proc.pgid,
                "otherPGIDs": others,
            },
        }
        return "J" + json.dumps(info)

    def getSignalInfo(self) -> str:  # noqa: N802
        task = self._task()
        pending = 0
        for info in [*task.pending, *task.process.shared_pending]:
            pending |= signals.bit(info.signo)
        actions = []
        for signo in range(1, abi.NSIG + 1):
            act = task.process.sigactions[signo]
            if act.handler == signals.SIG_DFL and not act.flags and not act.mask:
                continue
            handler = {signals.SIG_DFL: "SIG_DFL", signals.SIG_IGN: "SIG_IGN"}.get(
                act.handler, f"{act.handler:#x}"
            )
            actions.append(
                {
                    "signo": signo,
                    "name": signal_name(signo),
                    "handler": handler,
                    "flags": act.flags,
                    "mask": str(act.mask),
                }
            )
        info = {
            "blocked": str(task.sigmask),
            "pending": str(pending),
            "actions": actions,
        }
        return "J" + json.dumps(info)

    def getThreadInfo(self, tid: Any) -> str:  # noqa: N802
        n = _int(tid, "tid")
        task = self._task() if n == -1 else self._find_task(n)
        info = {
            "TID": task.tid,
            "TGID": task.process.pid,
            "TIDsInTg": [t.tid for t in task.process.threads if not t.exited],
            "name": task.name,
            "stopped": self.engine.is_stopped(task),
        }
        return "J" + json.dumps(info)

    def _find_task(self, tid: int) -> Task:
        for task in self.kernel.all_tasks():
            if task.tid == tid:
                return task
        raise BadArgument(f"no thread with tid {tid}")

    # --- signals and threads -------------------------------------------------

    def sendSignal(self, tid: Any, signo: Any) -> int:  # noqa: N802
        target = self._find_task(_int(tid, "tid"))
        n = _int(signo, "signo")
        if not 1 <= n <= abi.NSIG:
            raise BadArgument(f"no signal {n}")
        self._task()
        signals.send_to_task(self.kernel, target, signals.SigInfo(n, signals.SI_KERNEL))
        return 0

    def stopThreads(self) -> int:  # noqa: N802
        return self.engine.stop_threads(self._task())

    def resumeThreads(self) -> int:  # noqa: N802
        return self.engine.resume_threads()

    # --- output --------------------------------------------------------------

    def print(self, text: Any) -> int:
        self.engine.output(str(text))
        return 0

    def logJson(self, text: Any) -> int:  # noqa: N802
        (self.engine.log_sink or self.engine.output)(str(text))
        return 0


def _fd_info(fd: int, file: OpenFile) -> dict[str, Any]:
    try:
        st = file.stat()
        mode, nlink = st.mode, st.nlink
    except (SyscallError, AssertionError):
        mode, nlink = 0, 0
    return {
        "fd": fd,
        "path": file.path,
        "type": _FILE_TYPES.get(mode & abi.S_IFMT, "unknown"),
        "mode": mode_string(mode),
        "flags": file.flags,
        "nlinks": nlink,
        "readable": file.readable,
        "writable": file.writable,
    }


def write_line(text: str) -> None:
    """Where print and logJson go by default: the sandbox's stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()

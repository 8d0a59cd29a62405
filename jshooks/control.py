"""The control protocol: what the requests on the control socket do.

Theory of operation
-------------------
A running sandbox can be steered from outside through its control socket
(sentry/control.py owns the socket; this module owns the meaning). A request
is one JSON object on one line, ``{"type": NAME, ...}``; the answer is one
JSON object on one line, ``{"type": "ok", "message": TEXT, "payload": VALUE}``
or ``{"type": "error", "message": TEXT}``. A request that carries an ``id``
gets it back in its answer. The names are gWisord's, with the later names as
aliases:

=======================  ====================  =====================================
request                  alias                 does
=======================  ====================  =====================================
``hooks-info``           ``accessors-info``    describe every ``hooks`` function
``change-state``         (none)                run ``source`` in the live engine
``current-callbacks``    ``current-hooks``     list the registered callbacks
``unregister-callbacks`` ``unregister-hooks``  remove all callbacks, or some
``status``               (none)                tasks, syscall counts, uptime
``detach``               (none)                stop hooks and tracing for good
=======================  ====================  =====================================

:meth:`Requests.answer` turns one request line into one answer line and
never raises: bad JSON, a missing or wrong token, an unknown request or a
malformed field is an error answer, and the sandbox goes on. Answers are
encoded with ``json.dumps`` in ASCII, so whatever a message holds (a script's
stack, control characters, odd Unicode) the answer is one valid JSON line.

Requests run on the kernel's thread between time slices (the server calls
:meth:`Requests.answer` only there), so they see the kernel at rest: no task
is on a CPU and no callback is running. The hook engine is created on the
first ``change-state`` when the run started without hooks.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jshooks.engine import HookEngine, HookLoadError
from sentry.sysno import SYSCALL_NAMES

if TYPE_CHECKING:
    from sentry.kernel import Kernel

ALIASES = {
    "accessors-info": "hooks-info",
    "current-hooks": "current-callbacks",
    "unregister-hooks": "unregister-callbacks",
}

_NUMBERS = {name: nr for nr, name in SYSCALL_NAMES.items()}


class RequestError(Exception):
    """A request that cannot be done; the message goes back to the client."""


def _fn(
    name: str, args: list[tuple[str, str]], returns: str, text: str
) -> dict[str, Any]:
    return {
        "name": name,
        "description": text,
        "arguments": [{"name": a, "description": d} for a, d in args],
        "returns": returns,
    }


_SYSNO = ("sysno", "a syscall number or name")
_WHICH = ("which", 'a syscall name or number, a list of them, or "*" for every syscall')
_FN = ("fn", "the callback: fn(a0, a1, a2, a3, a4, a5, ctx)")
_TID = ("tid", "a thread id")

# Every function of the `hooks` object scripts see (jshooks/prelude.js).
HOOKS_API: list[dict[str, Any]] = [
    _fn(
        "AddCbBefore",
        [_SYSNO, _FN],
        "a handle for hooks.remove",
        "Run fn before the syscall; it may replace arguments or skip the call.",
    ),
    _fn(
        "AddCbAfter",
        [_SYSNO, _FN],
        "a handle for hooks.remove",
        "Run fn after the syscall; it may replace the result.",
    ),
    _fn("AddHookBefore", [_SYSNO, _FN], "a handle", "Another name of AddCbBefore."),
    _fn("AddHookAfter", [_SYSNO, _FN], "a handle", "Another name of AddCbAfter."),
    _fn(
        "before",
        [_WHICH, _FN],
        "a handle",
        "Run fn before each named syscall; callbacks on one syscall stack.",
    ),
    _fn(
        "after",
        [_WHICH, _FN],
        "a handle",
        "Run fn after each named syscall; callbacks on one syscall stack.",
    ),
    _fn(
        "remove",
        [("handle", "what a registration returned")],
        "true if a callback was removed",
        "Unregister one callback.",
    ),
    _fn(
        "onExit",
        [("fn", "fn({code, signal})")],
        "a handle",
        "Run fn once when the sandboxed program ends.",
    ),
    _fn(
        "readBytes",
        [("addr", "a guest address"), ("count", "bytes to read")],
        "a Uint8Array",
        "Read guest memory of the calling process.",
    ),
    _fn(
        "writeBytes",
        [
            ("addr", "a guest address"),
            ("bytes", "a Uint8Array, ArrayBuffer or array of byte values"),
        ],
        "the count written",
        "Write guest memory of the calling process.",
    ),
    _fn(
        "readString",
        [("addr", "a guest address"), ("maxlen", "most bytes to read")],
        "a string",
        "Read a string up to its NUL or maxlen bytes (UTF-8).",
    ),
    _fn(
        "writeString",
        [("addr", "a guest address"), ("str", "the text")],
        "the bytes written",
        "Write str as UTF-8 followed by a NUL.",
    ),
    _fn("getArgv", [], "an array of strings", "The process's arguments."),
    _fn("getEnvs", [], "an array of NAME=value strings", "The process's environment."),
    _fn("getCwd", [], "a path", "The process's working directory."),
    _fn(
        "getFdInfo",
        [("fd", "a descriptor")],
        "{fd, path, type, mode, flags, nlinks, readable, writable} or null",
        "What an open descriptor refers to.",
    ),
    _fn("getFdsInfo", [], "an array of getFdInfo objects", "Every open descriptor."),
    _fn("getMmaps", [], "text", "The process's /proc/self/maps."),
    _fn(
        "getPidInfo",
        [],
        "{PID, PPID, TID, UID, GID, EUID, EGID, session: {sessionID, PGID, "
        "foregroundID, otherPGIDs}}",
        "Ids of the calling process.",
    ),
    _fn(
        "getSignalInfo",
        [],
        "{blocked, pending, blockedNames, pendingNames, actions}",
        "Signal masks and the actions that are not the default.",
    ),
    _fn(
        "getThreadInfo",
        [("tid", "optional: a thread id (default: the caller)")],
        "{TID, TGID, TIDsInTg, name, stopped}",
        "About one thread.",
    ),
    _fn(
        "anonMmap",
        [("len", "bytes")],
        "the address",
        "Map private read-write memory in the calling process.",
    ),
    _fn(
        "munmap",
        [("addr", "an address"), ("len", "bytes")],
        "0",
        "Unmap memory of the calling process.",
    ),
    _fn(
        "sendSignal",
        [_TID, ("signo", "a signal number or name")],
        "0",
        "Send a signal to a thread; delivered when the syscall ends.",
    ),
    _fn(
        "nameToSignal",
        [("name", 'a signal name such as "SIGTERM" or "term"')],
        "the signal number",
        "Look a signal up by name.",
    ),
    _fn(
        "signalMaskToNames",
        [("mask", "a signal mask")],
        "an array of names",
        "The names of the signals set in a mask.",
    ),
    _fn(
        "stopThreads",
        [],
        "how many were stopped",
        "Stop the other threads of the process until the syscall ends.",
    ),
    _fn(
        "resumeThreads",
        [],
        "how many were resumed",
        "Resume the threads stopped by stopThreads.",
    ),
    _fn(
        "print",
        [("...msgs", "values, objects shown as JSON")],
        "undefined",
        "One line on the sandbox's stderr.",
    ),
    _fn(
        "logJson",
        [("msg", "any value with a JSON form")],
        "undefined",
        "One JSON record: on the log stream when there is one, else on stderr.",
    ),
]


class Requests:
    """Answers control requests for one kernel.

    ``make_engine`` creates a hook engine when the first script arrives in a
    run that has none; ``on_detach`` is called once, by ``detach``, after the
    kernel dropped its hooks; ``counts`` gives the syscalls finished so far,
    by number.
    """

    def __init__(
        self,
        kernel: Kernel,
        make_engine: Callable[[], HookEngine],
        token: str | None = None,
        counts: Callable[[], dict[int, int]] | None = None,
        on_detach: Callable[[], None] | None = None,
    ) -> None:
        self.kernel = kernel
        self.token = token
        self.detached = False
        self.engine: HookEngine | None = kernel.hooks
        self._make_engine = make_engine
        self._counts = counts or dict
        self._on_detach = on_detach
        self._started = time.monotonic()
        self._scripts = 0
        self._handlers: dict[str, Callable[[dict[str, Any]], tuple[str, Any]]] = {
            "hooks-info": self._hooks_info,
            "change-state": self._change_state,
            "current-callbacks": self._current_callbacks,
            "unregister-callbacks": self._unregister_callbacks,
            "status": self._status,
            "detach": self._detach,
        }

    # --- one request -----------------------------------------------------------

    def answer(self, line: bytes) -> bytes:
        """The answer line (with its newline) to one request line."""
        request: Any = None
        try:
            request = self._parse(line)
            kind = request["type"]
            name = ALIASES.get(kind, kind)
            handler = self._handlers.get(name)
            if handler is None:
                known = ", ".join(sorted([*self._handlers, *ALIASES]))
                raise RequestError(f"unknown request {kind!r} (known: {known})")
            message, payload = handler(request)
            reply: dict[str, Any] = {
                "type": "ok",
                "message": message,
                "payload": payload,
            }
        except RequestError as exc:
            reply = {"type": "error", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a request never stops the guest
            reply = {"type": "error", "message": f"internal error: {exc!r}"}
        if isinstance(request, dict) and "id" in request:
            reply["id"] = request["id"]
        return encode(reply)

    def _parse(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line, parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(f"not valid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise RequestError("a request is a JSON object")
        if self.token is not None:
            given = request.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(
                given.encode("utf-8", "replace"), self.token.encode()
            ):
                raise RequestError("missing or wrong token")
        if not isinstance(request.get("type"), str):
            raise RequestError('a request needs a "type" string')
        return request

    # --- the requests ------------------------------------------------------------

    def _hooks_info(self, request: dict[str, Any]) -> tuple[str, Any]:
        return f"{len(HOOKS_API)} functions on hooks (alias accessors)", HOOKS_API

    def _change_state(self, request: dict[str, Any]) -> tuple[str, Any]:
        source = request.get("source")
        if not isinstance(source, str):
            raise RequestError('change-state needs a "source" string of JavaScript')
        self._not_detached()
        self._scripts += 1
        name = request.get("name")
        if not isinstance(name, str) or not name:
            name = f"control#{self._scripts}"
        engine = self._live_engine()
        before = {h["handle"] for h in engine.describe_hooks()}
        try:
            engine.load_script(source, name)
        except HookLoadError as exc:
            raise RequestError(str(exc)) from None
        added = [h for h in engine.describe_hooks() if h["handle"] not in before]
        return f"{name} loaded: {len(added)} callbacks registered", added

    def _current_callbacks(self, request: dict[str, Any]) -> tuple[str, Any]:
        hooks = self.engine.describe_hooks() if self.engine is not None else []
        return f"{len(hooks)} callbacks", hooks

    def _unregister_callbacks(self, request: dict[str, Any]) -> tuple[str, Any]:
        options = request.get("options")
        engine = self.engine
        if options == "all":
            removed = engine.remove_all() if engine is not None else 0
            return f"{removed} callbacks removed", {"removed": removed}
        if options != "list":
            raise RequestError('"options" must be "all" or "list"')
        items = request.get("list")
        if not isinstance(items, list) or not items:
            raise RequestError('"list" must be a non-empty list of {sysno, type}')
        wanted = [_removal(i, item) for i, item in enumerate(items)]
        removed = 0
        if engine is not None:
            for which, phase in wanted:
                removed += engine.remove_hooks(which, phase)
        return f"{removed} callbacks removed", {"removed": removed}

    def _status(self, request: dict[str, Any]) -> tuple[str, Any]:
        kernel = self.kernel
        tasks = []
        for task in sorted(kernel.all_tasks(), key=lambda t: t.tid):
            proc = task.process
            tasks.append(
                {
                    "pid": proc.pid,
                    "tid": task.tid,
                    "ppid": proc.ppid,
                    "name": task.name,
                    "state": kernel.task_state(proc, task),
                }
            )
        counts = self._counts()
        by_name = {
            SYSCALL_NAMES.get(nr, f"syscall_{nr}"): n
            for nr, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        }
        hooks = len(self.engine.describe_hooks()) if self.engine is not None else 0
        total = sum(counts.values())
        payload = {
            "uptime_s": round(time.monotonic() - self._started, 3),
            "tasks": tasks,
            "syscalls": {"total": total, "by_name": by_name},
            "callbacks": hooks,
            "detached": self.detached,
        }
        return f"{len(tasks)} tasks, {total} syscalls", payload

    def _detach(self, request: dict[str, Any]) -> tuple[str, Any]:
        self._not_detached()
        self.detached = True
        self.kernel.set_hooks(None)
        if self._on_detach is not None:
            self._on_detach()
        return "detached: no more hooks or tracing; the program runs on", None

    # --- helpers -----------------------------------------------------------------

    def _not_detached(self) -> None:
        if self.detached:
            raise RequestError("the sandbox is detached")

    def _live_engine(self) -> HookEngine:
        """The engine attached to the kernel, created on first use."""
        if self.engine is None:
            self.engine = self._make_engine()
        if self.kernel.hooks is not self.engine:
            self.kernel.set_hooks(self.engine)
        return self.engine


def _removal(index: int, item: Any) -> tuple[int | str | None, str]:
    """(syscall number, "*" or None, phase) from one {sysno, type} item."""
    where = f"list[{index}]"
    if not isinstance(item, dict):
        raise RequestError(f"{where}: expected an object {{sysno, type}}")
    phase = item.get("type")
    if phase not in ("before", "after", "exit"):
        raise RequestError(f'{where}: "type" must be "before", "after" or "exit"')
    if phase == "exit":
        return None, phase
    sysno = item.get("sysno")
    if sysno == "*":
        return "*", phase
    if isinstance(sysno, str):
        nr = int(sysno) if sysno.isdigit() else _NUMBERS.get(sysno)
        if nr is None:
            raise RequestError(f"{where}: no syscall named {sysno!r}")
        sysno = nr
    if (
        isinstance(sysno, bool)
        or not isinstance(sysno, int)
        or sysno not in SYSCALL_NAMES
    ):
        raise RequestError(f'{where}: "sysno" must be a syscall number, name or "*"')
    return sysno, phase


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode(reply: dict[str, Any]) -> bytes:
    """One JSON line; values JSON cannot hold are shown as text."""
    return (json.dumps(reply, default=repr) + "\n").encode("ascii")

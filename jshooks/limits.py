"""The time limit on JavaScript calls, without a host syscall per call.

Theory of operation
-------------------
The binding's own ``Context.set_time_limit`` reads the process CPU clock
(``clock()``, a real system call costing ~1.5 us here) every time Python
enters JavaScript. Hooks enter JavaScript twice per syscall, so that clock
alone would cost more than the whole hook budget.

Instead the :class:`Watchdog` installs QuickJS's interrupt handler itself.
QuickJS calls the handler every few thousand bytecode operations; returning
1 raises an exception no script can catch. The engine bumps ``owner.calls``
each time it enters JavaScript. The handler notices the new value the first
time it runs during that entry and starts the clock there; from then on it
compares the monotonic clock with that start. A call that ends before the
handler ever runs costs nothing but the increment, and a runaway call is
stopped within one handler period (well under a millisecond) of its limit.

Finding the runtime needs the binding's object layout: the JSRuntime and
JSContext pointers right after the Python object header. The guess is
checked with ``JS_GetRuntime(context) == runtime`` before anything is
installed; if the symbols are missing or the check fails, the binding's own
time limit is used (correct, only slower).
"""

from __future__ import annotations

import ctypes
import logging
import time
from typing import Any, Protocol

import quickjs

log = logging.getLogger("pysentry.jshooks")

_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_HEADER = 2 * ctypes.sizeof(ctypes.c_void_p)  # ob_refcnt, ob_type


class _Counted(Protocol):
    calls: int


def _library() -> Any:
    try:
        import _quickjs

        lib = ctypes.CDLL(_quickjs.__file__)
        lib.JS_GetRuntime.restype = ctypes.c_void_p
        lib.JS_GetRuntime.argtypes = [ctypes.c_void_p]
        lib.JS_SetInterruptHandler.restype = None
        lib.JS_SetInterruptHandler.argtypes = [
            ctypes.c_void_p,
            _HANDLER,
            ctypes.c_void_p,
        ]
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def _runtime_of(lib: Any, context: quickjs.Context) -> int | None:
    """The JSRuntime pointer of ``context``, if the layout is the expected one."""
    base = id(context)
    runtime = ctypes.c_void_p.from_address(base + _HEADER).value
    js_context = ctypes.c_void_p.from_address(base + _HEADER + 8).value
    if not runtime or not js_context or lib.JS_GetRuntime(js_context) != runtime:
        return None
    return int(runtime)


class Watchdog:
    """Stops a JavaScript entry that runs longer than ``limit_s`` seconds."""

    def __init__(
        self, context: quickjs.Context, owner: _Counted, limit_s: float
    ) -> None:
        self._context = context
        self._owner = owner
        self._limit_ns = int(limit_s * 1e9)
        self._seen = -1
        self._since = 0
        # Set when the handler stopped a call; read and cleared by take_fired.
        self._fired = False
        self._lib = _library()
        self._runtime = _runtime_of(self._lib, context) if self._lib else None
        self._callback = _HANDLER(self._check)
        if self._runtime is not None:
            self._lib.JS_SetInterruptHandler(self._runtime, self._callback, None)
        else:
            log.info(
                "QuickJS interrupt handler not reachable; using the "
                "binding's time limit"
            )
            context.set_time_limit(limit_s)

    @property
    def native(self) -> bool:
        """True when our own handler is installed (the fast path)."""
        return self._runtime is not None

    def set_limit(self, limit_s: float) -> None:
        self._limit_ns = int(limit_s * 1e9)
        if self._runtime is None:
            self._context.set_time_limit(limit_s)

    def take_fired(self) -> bool:
        fired, self._fired = self._fired, False
        return fired

    def close(self) -> None:
        """Take the handler out of the runtime (before the callback goes)."""
        if self._runtime is not None:
            self._lib.JS_SetInterruptHandler(self._runtime, _HANDLER(), None)
            self._runtime = None

    def _check(self, _runtime: int, _opaque: int) -> int:
        now = time.monotonic_ns()
        calls = self._owner.calls
        if calls != self._seen:
            self._seen = calls
            self._since = now
            return 0
        if now - self._since > self._limit_ns:
            self._fired = True
            return 1
        return 0

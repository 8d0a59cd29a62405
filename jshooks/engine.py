"""The hook engine: one QuickJS context running users' syscall callbacks.

Theory of operation
-------------------
The kernel asks two things per syscall when hooks are on: is this number
watched (``nr in engine.watched``, a dict lookup), and if so, what do the
callbacks say before and after the handler (:meth:`HookEngine.before`,
:meth:`HookEngine.after`). The chains of callbacks per number are tuples of
:class:`Hook` here, in registration order; each callback is a JavaScript
function Python calls directly, with only as many arguments as it declares
(see ``arity`` in jshooks/prelude.js). A callback that returns undefined
costs one call into JavaScript; anything it returns is checked by the
prelude's ``check`` and applied here, so the next callback sees the change.

The seventh argument, the context, is one object for all calls whose fields
are read from this engine when a callback touches them (:meth:`context`):
``_regs``, ``_phase``, ``_result`` and ``_call_id`` describe the call in
progress. ``ctx.state`` lives in the prelude, keyed by the call id, and is
dropped when the call ends.

A call whose handler parks (it waits and runs again when woken) keeps its
effective registers and call id in ``_parked``; when the same task comes back
to the same syscall instruction with the same registers, the before-callbacks
do not run again: the handler gets what they chose the first time.

Safety: scripts see only what the natives offer (no std/os modules, no host
files or sockets). Each call into JavaScript is time-limited
(jshooks/limits.py); the context has a memory limit and a stack limit. A
callback that throws, runs out of time or memory, or returns something
malformed is reported once, on its first failure, with its name, where it
was registered and the JavaScript stack; the syscall goes on as if it had
returned nothing, or fails with EPERM when the engine is fail-closed. A
callback that ran out of time or memory is disabled from then on.

Stopped threads: ``hooks.stopThreads()`` stops the other threads of the
caller's process. The kernel never switches tasks inside a syscall, only when
one ends or parks; the engine resumes the threads it stopped at exactly those
points (:meth:`after`, :meth:`parked`, :meth:`abandoned`), so a stopped thread
is never scheduled and is running again once the syscall that stopped it is
over, skipped or not.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import quickjs

from jshooks.limits import Watchdog
from jshooks.natives import BadArgument, Natives, number, signal_name, write_line
from sentry import abi
from sentry.syscalls.table import TABLE_SIZE
from sentry.sysno import SYSCALL_NAMES

if TYPE_CHECKING:
    from sentry.kernel import Kernel
    from sentry.task import Task

PRELUDE = Path(__file__).with_name("prelude.js")
NATIVE_PREFIX = "__pysentry_"

# Each script is evaluated with its first line moved to a multiple of this,
# so a line number in a JavaScript stack names the script it belongs to.
SCRIPT_LINES = 10_000
_WRAPPER = "(function () {"

_MASK64 = (1 << 64) - 1
_INT32 = 0x80000000
_TWO63 = 1 << 63
_TWO64 = 1 << 64
_SAFE = 1 << 53
_HIGH32 = 0xFFFFFFFF00000000
_WHERE = re.compile(r"<input>:(\d+):(\d+)")
_ERROR_HEAD = re.compile(r"[A-Za-z]*Error\b")


class HookLoadError(Exception):
    """A script or config cannot be loaded; the message is one line."""


@attrs.define
class HookOptions:
    """How the engine runs callbacks (the CLI fills this in)."""

    timeout_ms: float = 100.0
    memory_limit: int = 64 << 20
    stack_size: int = 512 << 10
    per_thread_local: bool = False
    fail_closed: bool = False
    # A script's top level and the onExit callbacks may take longer.
    load_timeout_ms: float = 2000.0


@attrs.define(eq=False)
class Hook:
    """One registered callback."""

    handle: int
    phase: str  # "before", "after" or "exit"
    nrs: frozenset[int] | None  # None: every syscall
    fn: Any  # the JavaScript function
    argc: int  # how many of the seven arguments it declares
    name: str
    what: str  # "before openat", "after *", "onExit"
    where: str  # "file.js:12"
    failures: int = 0
    dead: bool = False


def int_arguments() -> list[tuple[tuple[int, bool], ...]]:
    """For each syscall number, its C ``int``-sized arguments and whether
    each is signed, from the tracer's argument table.

    The kernel reads only the low 32 bits of such an argument, and C callers
    often leave the upper half of the register clear: glibc passes AT_FDCWD
    as 0xffffff9c. Callbacks see the value the kernel uses (-100).
    """
    from sentry import strace, strace_args

    kinds = [
        (strace_args.FD, True),
        (strace_args.DIRFD, True),
        (strace_args.INT, True),
        (strace_args.SIGNAL, True),
        (strace_args.ID, True),
        (strace_args.UINT, False),
        (strace_args.MODE, False),
    ]
    table = []
    for nr in range(TABLE_SIZE):
        fixes = []
        for i, kind in enumerate(strace.signature_of(nr).args[:6]):
            for known, signed in kinds:
                if kind is known:
                    fixes.append((i, signed))
        table.append(tuple(fixes))
    return table


def to_js(value: int) -> int | float | str:
    """A 64-bit register value as a callback gets it: signed, exact.

    The binding turns Python ints into 32-bit JS numbers, so larger values
    cross as floats while exact and as decimal text (made a BigInt by the
    prelude) beyond that.
    """
    if value >= _TWO63:
        value -= _TWO64
    if -_INT32 <= value < _INT32:
        return value
    if -_SAFE <= value <= _SAFE:
        return float(value)
    return str(value)


class HookEngine:
    """Users' JavaScript callbacks around the syscalls of one kernel."""

    def __init__(
        self,
        kernel: Kernel,
        options: HookOptions | None = None,
        output: Callable[[str], None] = write_line,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.kernel = kernel
        self.options = options or HookOptions()
        self.output = output
        # Where hooks.logJson records go instead of ``output`` when set (the
        # log stream of sentry/logstream.py).
        self.log_sink: Callable[[str], None] | None = None
        self._report_line = report or _stderr_line
        # Numbers with callbacks: the kernel's only question on the fast path.
        self.watched: dict[int, int] = {}
        # The result chosen by before-callbacks that skip the syscall.
        self.skipped: int | None = None
        # Bumped on every entry into JavaScript (the watchdog watches it).
        self.calls = 0
        self._ints = int_arguments()
        self._before: list[tuple[Hook, ...] | None] = [None] * TABLE_SIZE
        self._after: list[tuple[Hook, ...] | None] = [None] * TABLE_SIZE
        self._hooks: dict[int, Hook] = {}  # by handle, in registration order
        # The call in progress, as the context shows it.
        self._regs: list[int] = []
        # The last registers converted for JavaScript, and the result.
        self._converted_regs: list[int] | None = None
        self._converted: tuple[list[Any], bool] = ([], False)
        self._phase = ""
        self._result = 0
        self._call_id = 0
        # Calls whose ctx.state exists (the prelude keeps them by call id).
        self._states: set[int] = set()
        self._parked: dict[int, tuple[list[int], list[int], int]] = {}
        self._stopped: list[Task] = []
        self._scripts: list[tuple[int, int, str]] = []  # first line, lines, name
        self._next_line = SCRIPT_LINES
        self._engine_failures = 0
        self._internals: list[Any] = []
        # The prelude's functions (see the end of jshooks/prelude.js).
        self._js_check: Any = None
        self._js_call_big: Any = None
        self._js_drop_state: Any = None
        self._js_run_exit: Any = None
        self._js_register: Any = None
        self._context: Any = None
        self._js_source: Any = None

        # The context, its limits, the natives and the prelude.
        # TODO: a deterministic mode must also seed Math.random and fix Date
        # for scripts; both come from the host today.
        self._ctx = quickjs.Context()
        self._ctx.set_memory_limit(self.options.memory_limit)
        self._ctx.set_max_stack_size(self.options.stack_size)
        self.watchdog = Watchdog(self._ctx, self, self.options.load_timeout_ms / 1000)
        for name, fn in Natives(kernel, self).table().items():
            self._ctx.add_callable(NATIVE_PREFIX + name, fn)
        self.calls += 1
        self._ctx.eval(PRELUDE.read_text())
        (
            self._js_check,
            self._js_call_big,
            self._js_drop_state,
            self._js_run_exit,
            self._js_register,
            self._context,
        ) = self._internals
        self.watchdog.set_limit(self.options.timeout_ms / 1000)

    # --- loading scripts -----------------------------------------------------

    def load_script(self, source: str, name: str) -> None:
        """Run a script's top level (it registers callbacks); HookLoadError if
        it does not compile or throws."""
        self._eval(f"{_WRAPPER}{source}\n}})();", source, name)

    def load_callback(
        self, source: str, entry_point: str, sysno: int | str, phase: str, name: str
    ) -> None:
        """Register ``entry_point`` defined by ``source`` (a config entry)."""
        code = (
            f"{_WRAPPER}{source}\n;return typeof {entry_point} === "
            f"'function' ? {entry_point} : null; }})()"
        )
        fn = self._eval(code, source, name)
        if fn is None:
            raise HookLoadError(f"{name}: defines no function named {entry_point!r}")
        api = "AddCbBefore" if phase == "before" else "AddCbAfter"
        try:
            self.calls += 1
            handle = self._js_register(api, phase, sysno, fn, entry_point)
        except quickjs.JSException as exc:
            raise HookLoadError(f"{name}: {_first_line(exc)}") from None
        self._hooks[handle].where = name

    def _eval(self, code: str, source: str, name: str) -> Any:
        first = self._next_line
        lines = source.count("\n") + 2
        self._scripts.append((first, lines, name))
        self._next_line += (lines // SCRIPT_LINES + 1) * SCRIPT_LINES
        self.watchdog.set_limit(self.options.load_timeout_ms / 1000)
        try:
            self.calls += 1
            return self._ctx.eval("\n" * (first - 1) + code)
        except quickjs.JSException as exc:
            kind = self._classify(exc, self.options.load_timeout_ms)[0]
            if kind != "threw":
                raise HookLoadError(f"{name}: {kind} while loading") from None
            text = self.source_text(str(exc))
            where = re.search(re.escape(name) + r":\d+:\d+", text)
            head = text.splitlines()[0] if text.strip() else "failed"
            if not _ERROR_HEAD.match(head):
                head = f"uncaught exception: {head}"
            raise HookLoadError(
                f"{where.group(0) if where else name}: {head}"
            ) from None
        finally:
            self.watchdog.set_limit(self.options.timeout_ms / 1000)

    def source_text(self, text: str) -> str:
        """``text`` with ``<input>:LINE:COL`` turned into script names, and
        the prelude's own frames left out."""

        def mapped(m: re.Match[str]) -> str:
            line, col = int(m.group(1)), int(m.group(2))
            for first, length, name in self._scripts:
                if first <= line < first + length:
                    if line == first:
                        col = max(1, col - len(_WRAPPER))
                    return f"{name}:{line - first + 1}:{col}"
            return "<pysentry>" if line < SCRIPT_LINES else m.group(0)

        text = _WHERE.sub(mapped, text)
        return "\n".join(
            line for line in text.split("\n") if not line.endswith("(<pysentry>)")
        )

    # --- what the prelude tells us --------------------------------------------

    def prelude_config(self) -> str:
        names = [SYSCALL_NAMES.get(nr, "") for nr in range(TABLE_SIZE)]
        sigs = [""] + [signal_name(s) for s in range(1, abi.NSIG + 1)]
        return json.dumps(
            {
                "names": names,
                "signals": sigs,
                "perThread": self.options.per_thread_local,
                "userLine": SCRIPT_LINES,
            }
        )

    def set_internals(self, functions: Sequence[Any]) -> None:
        self._internals = list(functions)

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
    ) -> None:
        """A script registered ``fn``; ``which`` is "*" or numbers "1,2"."""
        nrs = (
            None if which in ("*", "") else frozenset(int(n) for n in which.split(","))
        )
        place = self.source_text(where).rsplit(":", 1)[0] if where else ""
        self._hooks[handle] = Hook(handle, phase, nrs, fn, argc, name, what, place)
        if phase != "exit":
            self._rebuild(nrs)

    def unregister(self, handle: int) -> bool:
        hook = self._hooks.pop(handle, None)
        if hook is None:
            return False
        if hook.phase != "exit":
            self._rebuild(hook.nrs)
        return True

    # --- listing and removing (the control socket) -----------------------------

    def describe_hooks(self) -> list[dict[str, Any]]:
        """Every registered callback, in registration order, as plain data."""
        out = []
        for hook in self._hooks.values():
            if hook.phase == "exit":
                sysno: Any = None
                names = ""
            elif hook.nrs is None:
                sysno, names = "*", "*"
            else:
                nrs = sorted(hook.nrs)
                sysno = nrs[0] if len(nrs) == 1 else nrs
                names = ",".join(SYSCALL_NAMES.get(nr, str(nr)) for nr in nrs)
            out.append({
                "handle": hook.handle,
                "type": hook.phase,
                "sysno": sysno,
                "syscall": names,
                "name": hook.name,
                "where": hook.where,
                "source": self._function_source(hook.fn),
                "failures": hook.failures,
                "disabled": hook.dead,
            })
        return out

    def remove_hooks(self, which: int | str | None, phase: str) -> int:
        """Stop the ``phase`` callbacks watching ``which``; how many changed.

        ``which`` is a syscall number, or "*" for the callbacks registered on
        every syscall; it is ignored for "exit" (every onExit callback goes).
        A callback registered on several syscalls only stops watching
        ``which``, and goes once it watches nothing.
        """
        changed = 0
        for hook in list(self._hooks.values()):
            if hook.phase != phase:
                continue
            if phase == "exit" or (which == "*" and hook.nrs is None):
                self.unregister(hook.handle)
                changed += 1
            elif isinstance(which, int) and hook.nrs is not None and which in hook.nrs:
                rest = hook.nrs - {which}
                if not rest:
                    self.unregister(hook.handle)
                else:
                    hook.nrs = rest
                    names = ",".join(SYSCALL_NAMES.get(nr, str(nr)) for nr in sorted(rest))
                    hook.what = f"{phase} {names}"
                    self._rebuild(frozenset({which}))
                changed += 1
        return changed

    def remove_all(self) -> int:
        """Unregister every callback, onExit ones included; how many there were."""
        count = len(self._hooks)
        self._hooks.clear()
        self._rebuild(None)
        return count

    def _function_source(self, fn: Any) -> str:
        """The JavaScript text of ``fn`` ("" if it has none to show)."""
        if self._js_source is None:
            self._js_source = self._ctx.eval(
                "(f) => { try { return Function.prototype.toString.call(f); }"
                " catch (e) { return ''; } }"
            )
        try:
            self.calls += 1
            text = self._js_source(fn)
        except Exception:  # noqa: BLE001 - the text is only shown
            return ""
        return text if isinstance(text, str) else ""

    def _rebuild(self, nrs: frozenset[int] | None) -> None:
        """Recompute the chains of ``nrs`` (None: every number)."""
        live = [h for h in self._hooks.values() if h.phase != "exit"]
        for nr in range(TABLE_SIZE) if nrs is None else nrs:
            mine = [h for h in live if h.nrs is None or nr in h.nrs]
            before = tuple(h for h in mine if h.phase == "before")
            after = tuple(h for h in mine if h.phase == "after")
            self._before[nr] = before or None
            self._after[nr] = after or None
            if before or after:
                self.watched[nr] = 1
            else:
                self.watched.pop(nr, None)

    # --- the two phases of a watched syscall ----------------------------------

    def before(self, task: Task, regs: list[int]) -> list[int]:
        """Run the before-callbacks; the registers the handler should get.

        Sets :attr:`skipped` to the guest's result when the callbacks decided
        it (the handler must not run), else to None.
        """
        self.skipped = None
        self._call_id += 1
        if self._parked:
            again = self._again(task, regs)
            if again is not None:
                return again
        self._regs = regs
        chain = self._before[regs[0]]
        if chain is None:
            return regs
        self._phase = "before"
        failed = False
        for hook in chain:
            if hook.dead:
                failed = True
                continue
            self.calls += 1
            try:
                r = hook.fn() if hook.argc == 0 else self._call(hook, regs)
            except Exception as exc:  # noqa: BLE001 - JSException or an odd value
                self._failed(hook, exc, regs[0])
                failed = True
                continue
            if r is None:
                continue
            change = self._check(hook, r, True, regs[0])
            if change is None:
                failed = True
                continue
            args, outcome = change
            if args:
                regs = regs[:]
                for i, value in args:
                    regs[i + 1] = value & _MASK64
                self._regs = regs
            if outcome is not None:
                # The result is decided: the syscall is skipped, so is the rest.
                self.skipped = outcome
                break
        if failed and self.options.fail_closed:
            self.skipped = -abi.EPERM
        return regs

    def after(self, task: Task, regs: list[int], result: int) -> int:
        """Run the after-callbacks on ``result``; the result the guest gets."""
        chain = self._after[regs[0]]
        if chain is not None:
            self._regs = regs
            self._phase = "after"
            self._result = result
            failed = False
            for hook in chain:
                if hook.dead:
                    failed = True
                    continue
                self.calls += 1
                try:
                    r = hook.fn() if hook.argc == 0 else self._call(hook, regs)
                except Exception as exc:  # noqa: BLE001 - JSException or an odd value
                    self._failed(hook, exc, regs[0])
                    failed = True
                    continue
                if r is None:
                    continue
                change = self._check(hook, r, False, regs[0])
                if change is None:
                    failed = True
                elif change[1] is not None:
                    result = self._result = change[1]
            if failed and self.options.fail_closed:
                result = -abi.EPERM
        if self._stopped:
            self.resume_threads()
        if self._states:
            self._drop_state()
        return result

    def _call(self, hook: Hook, regs: list[int]) -> Any:
        """Call ``hook`` with the arguments it declares (and the context)."""
        n = hook.argc
        if regs is not self._converted_regs:
            _, a0, a1, a2, a3, a4, a5, _ = regs
            if (
                a0 < _INT32
                and a1 < _INT32
                and a2 < _INT32
                and a3 < _INT32
                and a4 < _INT32
                and a5 < _INT32
            ):
                # Every value fits in 31 bits: they cross as they are.
                if n == 7:
                    return hook.fn(a0, a1, a2, a3, a4, a5, self._context)
                if n == 6:
                    return hook.fn(a0, a1, a2, a3, a4, a5)
                return hook.fn(*regs[1 : n + 1])

            # Some value does not: convert them, once for both phases.
            self._converted = self._convert(regs)
            self._converted_regs = regs
        values, big = self._converted
        if big:
            # Beyond a Number's precision: decimal text, a BigInt in JS.
            return self._js_call_big(hook.fn, n, *values)
        if n == 7:
            return hook.fn(*values, self._context)
        if n == 6:
            return hook.fn(*values)
        return hook.fn(*values[:n])

    def _convert(self, regs: list[int]) -> tuple[list[Any], bool]:
        """The six arguments ready to cross, and whether some are BigInts."""
        raw = regs[1:7]
        for i, signed in self._ints[regs[0]]:
            v = raw[i] & 0xFFFFFFFF
            raw[i] = v | _HIGH32 if signed and v >= _INT32 else v
        if max(raw) <= _SAFE:
            return [v if v < _INT32 else float(v) for v in raw], False
        values = [to_js(v) for v in raw]
        return values, str in map(type, values)

    def seen(self, regs: list[int]) -> list[int]:
        """The six arguments as callbacks see them: signed, and ``int``
        arguments reduced to the 32 bits the kernel reads."""
        values = [v - _TWO64 if v >= _TWO63 else v for v in regs[1:7]]
        for i, signed in self._ints[regs[0]]:
            v = values[i] & 0xFFFFFFFF
            values[i] = v - 0x100000000 if signed and v >= _INT32 else v
        return values

    def _check(
        self, hook: Hook, r: Any, before: bool, nr: int
    ) -> tuple[list[tuple[int, int]], int | None] | None:
        """What a callback's result asks for, or None (reported) if malformed."""
        if isinstance(r, quickjs.Object):
            try:
                self.calls += 1
                text = self._js_check(r, before)
            except quickjs.JSException as exc:
                self._failed(hook, exc, nr)
                return None
        else:
            text = f"!{r!r} (a callback returns undefined, null or an object)"
        if text.startswith("!"):
            self.hook_failed(hook, "returned a malformed result", nr, text[1:])
            return None
        args = []
        outcome = None
        for item in text.split(",") if text else []:
            key, _, value = item.partition("=")
            if key == "r":
                outcome = int(value)
            else:
                args.append((int(key), int(value)))
        return args, outcome

    def parked(self, task: Task, regs: list[int], effective: list[int]) -> None:
        """The handler waits: keep the call for when it runs again."""
        self._parked[task.tid] = (regs, effective, self._call_id)
        if self._stopped:
            self.resume_threads()

    def abandoned(self, task: Task) -> None:
        """The call never returns (the task exited, or the sentry failed)."""
        self._parked.pop(task.tid, None)
        if self._stopped:
            self.resume_threads()
        if self._states:
            self._drop_state()

    def _again(self, task: Task, regs: list[int]) -> list[int] | None:
        """The effective registers if ``task`` re-runs the call it parked in."""
        saved = self._parked.pop(task.tid, None)
        if saved is None or saved[0] != regs:
            return None
        self._call_id = saved[2]
        self._regs = saved[1]
        return saved[1]

    def _drop_state(self) -> None:
        """The call in progress ended: forget its ctx.state, if it has one."""
        if self._call_id not in self._states:
            return
        self._states.discard(self._call_id)
        self.calls += 1
        try:
            self._js_drop_state(self._call_id)
        except quickjs.JSException as exc:
            self._engine_failed(exc)

    # --- the context (the seventh argument) -------------------------------------

    def context(self, name: str, index: int) -> Any:
        """A field of the call in progress, for the prelude's context object."""
        task = self.kernel.current
        regs = self._regs
        if name == "pid" or name == "tid":
            if task is None:
                return 0
            return number(task.process.pid if name == "pid" else task.tid)
        if task is None or not regs:
            if name == "gwargs":
                return "Jnull"
            raise BadArgument("only works while a syscall callback runs", "E")
        if name == "nr":
            return regs[0]
        if name == "phase":
            return "S" + self._phase
        if name == "args":
            return "J" + json.dumps([str(v) for v in self.seen(regs)])
        if name == "arg":
            return number(self.seen(regs)[index])
        if name == "call":
            return number(self._call_id)
        if name == "keep":
            self._states.add(self._call_id)
            return 0
        after = self._phase == "after"
        ret, errno = _ret_errno(self._result) if after else (None, None)
        if name == "ret":
            return "Jnull" if ret is None else number(ret)
        if name == "errno":
            return "Jnull" if errno is None else errno
        if name == "skipped":
            return after and self.skipped is not None
        if name == "gwargs":
            out = {f"arg{i}": str(v) for i, v in enumerate(self.seen(regs))}
            if after:
                out["ret"], out["errno"] = str(ret), str(errno)
            return "J" + json.dumps(out)
        raise ValueError(f"no context field {name!r}")

    # --- failures ---------------------------------------------------------------

    def _classify(
        self, exc: BaseException, limit_ms: float | None = None
    ) -> tuple[str, bool]:
        """How a call into JavaScript failed, and whether to disable it."""
        text = str(exc)
        if self.watchdog.take_fired() or text.startswith("InternalError: interrupted"):
            limit = self.options.timeout_ms if limit_ms is None else limit_ms
            return f"ran longer than {limit:g} ms", True
        if "out of memory" in text or text.strip() in ("", "null"):
            return "ran out of memory", True
        if isinstance(exc, quickjs.StackOverflow):
            return "overflowed the stack", False
        if not isinstance(exc, quickjs.JSException):
            # The binding could not convert the value (a BigInt, a symbol).
            return "returned a value that is not undefined, null or an object", False
        return "threw", False

    def _failed(
        self, hook: Hook, exc: BaseException, nr: int, limit_ms: float | None = None
    ) -> None:
        kind, disable = self._classify(exc, limit_ms)
        if disable:
            hook.dead = True
        self.hook_failed(hook, kind, nr, str(exc))

    def hook_failed(self, hook: Hook, kind: str, nr: int, text: str) -> None:
        """Report a callback's failure the first time; count the others."""
        hook.failures += 1
        if hook.failures > 1:
            return
        where = f", {hook.where}" if hook.where else ""
        during = f" on {SYSCALL_NAMES.get(nr, nr)}" if nr >= 0 else ""
        then = []
        if hook.dead:
            then.append("it is disabled")
        if self.options.fail_closed and nr >= 0:
            then.append("fail-closed: the syscall fails with EPERM")
        tail = f" ({'; '.join(then)})" if then else ""
        detail = _shorten(self.source_text(text).rstrip()) or "(no message)"
        self._report_line(
            f"hook {hook.name!r} ({hook.what}{where}) {kind}{during}{tail}: {detail}"
        )

    def _engine_failed(self, exc: BaseException) -> None:
        self._engine_failures += 1
        if self._engine_failures == 1:
            text = self.source_text(str(exc)).rstrip() or "out of memory"
            self._report_line(f"hooks: the JavaScript engine failed: {text}")

    # --- threads ----------------------------------------------------------------

    def stop_threads(self, task: Task) -> int:
        """Stop the other threads of ``task``'s process until the call ends."""
        count = 0
        for thread in task.process.threads:
            if thread is not task and not thread.exited and thread not in self._stopped:
                self._stopped.append(thread)
                count += 1
        return count

    def resume_threads(self) -> int:
        count = len(self._stopped)
        self._stopped.clear()
        return count

    def is_stopped(self, task: Task) -> bool:
        return task in self._stopped

    # --- the end ----------------------------------------------------------------

    def run_exit(self, wait_status: int) -> None:
        """Run the onExit callbacks, then summarise repeated failures."""
        code = (wait_status >> 8) & 0xFF
        signo = wait_status & 0x7F
        self._regs = []
        self.watchdog.set_limit(self.options.load_timeout_ms / 1000)
        for hook in [h for h in self._hooks.values() if h.phase == "exit"]:
            try:
                self.calls += 1
                self._js_run_exit(hook.fn, code, signo)
            except Exception as exc:  # noqa: BLE001 - JSException or an odd value
                self._failed(hook, exc, -1, self.options.load_timeout_ms)
        for hook in self._hooks.values():
            if hook.failures > 1:
                self._report_line(
                    f"hook {hook.name!r} ({hook.what}) failed "
                    f"{hook.failures} times in all"
                )

    def close(self) -> None:
        self.watchdog.close()


def to_signed(value: int) -> int:
    return value - _TWO64 if value >= _TWO63 else value


def _ret_errno(result: int) -> tuple[int, int]:
    """``ret`` and ``errno`` as after-callbacks see a raw result."""
    result = to_signed(result & _MASK64)
    if -4095 <= result < 0:
        return -1, -result
    return result, 0


def _shorten(text: str, frames: int = 8) -> str:
    """A report with at most ``frames`` stack lines (deep recursion)."""
    lines = text.split("\n")
    stack = [i for i, line in enumerate(lines) if line.lstrip().startswith("at ")]
    if len(stack) <= frames:
        return text
    cut = stack[frames]
    rest = len(stack) - frames
    return "\n".join([*lines[:cut], f"    ... {rest} more frames"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "failed"


def _stderr_line(text: str) -> None:
    sys.stderr.write(f"pysentry: {text}\n")
    sys.stderr.flush()

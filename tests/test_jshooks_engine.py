"""The hook engine inside one process: how it attaches to the kernel, what a
watched and an unwatched syscall cost it, how values cross into JavaScript,
and that nothing a script passes to the API can raise into the sentry.

A kernel is booted with testdata/hook_probe loaded but not run; syscalls are
dispatched by calling the kernel's dispatcher with a register list, as the
CPU trap does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import Builder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jshooks import HookEngine, HookLoadError, HookOptions
from jshooks.engine import to_js
from sentry import abi
from sentry.boot import start
from sentry.kernel import Kernel, Options
from sentry.syscalls.file import open_location
from sentry.sysno import SYSCALL_NUMBERS
from sentry.task import Task

GETPPID = SYSCALL_NUMBERS["getppid"]
OPENAT = SYSCALL_NUMBERS["openat"]
SCRATCH = 0x10000000
RIP = 0x401000


class Booted:
    def __init__(self, program: Path) -> None:
        self.kernel, self.task, _entry, _sp = start(
            Options(), str(program), ["hook_probe"], [b"PATH=/bin"]
        )
        self.kernel.current = self.task
        self.task.mm.map(
            SCRATCH,
            0x2000,
            abi.PROT_READ | abi.PROT_WRITE,
            abi.MAP_PRIVATE | abi.MAP_ANONYMOUS,
            fixed=True,
        )
        self.task.mm.write(SCRATCH, b"/etc/hostname\0")
        for fd in (0, 1, 2):
            null = open_location(self.task, abi.AT_FDCWD, "/dev/null", abi.O_RDWR, 0)
            self.task.process.fds.put(fd, null, False)
        self.reports: list[str] = []
        self.output: list[str] = []

    def engine(self, script: str = "", **options: Any) -> HookEngine:
        engine = HookEngine(
            self.kernel,
            HookOptions(**options),
            output=self.output.append,
            report=self.reports.append,
        )
        if script:
            engine.load_script(script, "test.js")
        self.kernel.set_hooks(engine)
        return engine

    def call(self, nr: int, *args: int) -> int | None:
        regs = [nr, *args, *[0] * (6 - len(args)), RIP]
        return self.dispatch(regs)

    def dispatch(self, regs: list[int]) -> int | None:
        handler = self.task.mm.cpu.syscall_handler
        assert handler is not None
        return handler(regs)


@pytest.fixture(scope="module")
def program(build: Builder) -> Path:
    return build("hook_probe")


@pytest.fixture
def booted(program: Path) -> Booted:
    return Booted(program)


# --- attaching -------------------------------------------------------------------


def handler_of(kernel: Kernel, task: Task) -> Any:
    return task.mm.cpu.syscall_handler


def test_without_hooks_the_cpu_keeps_the_plain_dispatcher(booted: Booted) -> None:
    assert handler_of(booted.kernel, booted.task) == booted.kernel._dispatch


def test_set_hooks_swaps_the_dispatcher_and_none_restores_it(booted: Booted) -> None:
    kernel = booted.kernel
    booted.engine("hooks.before('getppid', () => {});")
    assert handler_of(kernel, booted.task) == kernel._dispatch_hooked
    kernel.set_tracer(object())
    assert handler_of(kernel, booted.task) == kernel._dispatch_traced_hooked
    kernel.set_hooks(None)
    assert handler_of(kernel, booted.task) == kernel._dispatch_traced


def test_only_numbers_with_callbacks_are_watched(booted: Booted) -> None:
    engine = booted.engine(
        "globalThis.h = hooks.before('getppid', () => {});"
        "hooks.after(['read', 'write'], () => {});"
    )
    numbers = {SYSCALL_NUMBERS[n] for n in ("getppid", "read", "write")}
    assert set(engine.watched) == numbers
    engine._ctx.eval("hooks.remove(h)")
    assert set(engine.watched) == numbers - {GETPPID}


def test_star_watches_every_number(booted: Booted) -> None:
    engine = booted.engine("hooks.after('*', () => {});")
    assert len(engine.watched) == 512


def test_the_interrupt_handler_is_ours(booted: Booted) -> None:
    # The fast time limit: no clock() call per entry into JavaScript.
    assert booted.engine().watchdog.native


# --- a watched call ----------------------------------------------------------------


def test_an_unwatched_call_reaches_the_handler_unchanged(booted: Booted) -> None:
    booted.engine("hooks.before('getpid', () => ({ret: 5, errno: 0}));")
    assert booted.call(GETPPID) == booted.task.process.ppid


def test_a_skipped_call_never_reaches_the_handler(booted: Booted) -> None:
    booted.engine("hooks.before('openat', () => ({ret: 0, errno: 2}));")
    before = len(booted.task.process.fds)
    assert booted.call(OPENAT, 0xFFFFFF9C, SCRATCH, 0) == -abi.ENOENT
    assert len(booted.task.process.fds) == before


def test_changed_arguments_reach_the_handler(booted: Booted) -> None:
    booted.task.mm.write(SCRATCH + 0x100, b"/no/such/file\0")
    booted.engine(f"hooks.before('openat', () => ({{1: {SCRATCH}}}));")
    fd = booted.call(OPENAT, 0xFFFFFF9C, SCRATCH + 0x100, 0)
    assert fd is not None and fd >= 3
    assert booted.task.process.fds.get(fd).path == "/etc/hostname"


def test_int_arguments_are_seen_as_the_kernel_reads_them(booted: Booted) -> None:
    engine = booted.engine()
    regs = [OPENAT, 0xFFFFFF9C, SCRATCH, 0xFFFFFFFF00000001, 0, 0, 0, RIP]
    # dirfd is an int (sign-extended), flags stay as given, mode is 32 bits.
    assert engine.seen(regs)[:2] == [-100, SCRATCH]
    kill = SYSCALL_NUMBERS["kill"]
    assert engine.seen([kill, 0xFFFFFFFF, 0x1_0000_0009, 0, 0, 0, 0, RIP])[:2] == [
        -1,
        9,
    ]


@pytest.mark.parametrize(
    "value, crossing",
    [
        (0, 0),
        (0x7FFFFFFF, 0x7FFFFFFF),
        (0x80000000, float(0x80000000)),
        ((1 << 64) - 1, -1),
        ((1 << 64) - 100, -100),
        (1 << 53, float(1 << 53)),
        ((1 << 53) + 1, str((1 << 53) + 1)),
        (1 << 63, str(-(1 << 63))),
    ],
)
def test_register_values_cross_exactly(value: int, crossing: object) -> None:
    converted = to_js(value)
    assert converted == crossing and type(converted) is type(crossing)


# --- arity -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, argc",
    [
        ("function () {}", 0),
        ("function (fd, buf) {}", 2),
        ("(a0, a1, a2, a3, a4, a5, ctx) => {}", 7),
        ("fd => {}", 1),
        ("function (a, b, c, d, e, f, g, h) {}", 7),
        ("function () { return arguments[0]; }", 7),
        ("function (...all) {}", 7),
        ("function (a, b = 2) {}", 7),
        ("function ({a}) {}", 7),
        ("function (a /* ) */, b) {}", 7),
        ("(function (a, b) {}).bind(null)", 7),
        ("function () { return eval('arguments'); }", 7),
    ],
)
def test_callbacks_get_every_argument_they_can_observe(
    booted: Booted, source: str, argc: int
) -> None:
    engine = booted.engine(f"hooks.before('getppid', {source});")
    [hook] = engine._before[GETPPID] or ()
    assert hook.argc == argc


def test_a_callback_with_no_parameters_still_sees_arguments_object(
    booted: Booted,
) -> None:
    booted.engine(
        "hooks.before('getppid', function () { print(arguments.length, arguments[6].name); });"
    )
    booted.call(GETPPID)
    assert booted.output == ["7 getppid"]


# --- safety ----------------------------------------------------------------------


def test_dynamic_import_fails_even_when_jobs_run(booted: Booted) -> None:
    engine = booted.engine()
    ctx = engine._ctx
    ctx.eval(
        "globalThis.r = 'pending'; import('os').then(() => r = 'loaded', "
        "(e) => r = String(e));"
    )
    while ctx.execute_pending_job():
        pass
    assert ctx.eval("r") != "loaded"
    assert ctx.eval("r") != "pending"


def test_a_script_that_loads_badly_raises_one_line(booted: Booted) -> None:
    engine = booted.engine()
    with pytest.raises(HookLoadError) as info:
        engine.load_script("hooks.before('getppid', 5);", "bad.js")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("bad.js:1:")


API_CALLS = [
    "readBytes",
    "writeBytes",
    "readString",
    "writeString",
    "getFdInfo",
    "getThreadInfo",
    "anonMmap",
    "munmap",
    "sendSignal",
    "nameToSignal",
    "signalMaskToNames",
    "logJson",
    "print",
    "remove",
    "before",
    "after",
    "AddCbBefore",
    "getArgv",
    "getEnvs",
    "getCwd",
    "getFdsInfo",
    "getMmaps",
    "getPidInfo",
    "getSignalInfo",
    "stopThreads",
    "resumeThreads",
]

_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(1 << 70), 1 << 70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from([SCRATCH, SCRATCH + 8, 0x1FFF, -1, 0, 2**63, 4096]),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(API_CALLS),
    args=st.lists(_values, max_size=4),
    big=st.booleans(),
)
def test_no_argument_makes_the_api_raise_into_the_sentry(
    booted: Booted,
    caplog: pytest.LogCaptureFixture,
    name: str,
    args: list[Any],
    big: bool,
) -> None:
    engine = getattr(booted, "fuzz_engine", None)
    if engine is None:
        # Signals sent by the fuzzed calls are ignored, so the task lives on.
        for action in booted.task.process.sigactions:
            action.handler = 1  # SIG_IGN
        engine = booted.fuzz_engine = booted.engine(
            "globalThis.SELF = hooks.before('getppid', function () {"
            "  if (FUZZ.name === 'remove' && FUZZ.args[0] === SELF) return;"
            "  const fn = hooks[FUZZ.name];"
            "  try { fn(...FUZZ.args.map((v) => FUZZ.big && typeof v === 'number'"
            "        && Number.isInteger(v) ? BigInt(v) : v)); }"
            "  catch (e) { if (!(e instanceof Error)) throw e; }"
            "  print('ran');"
            "});"
        )
    booted.output.clear()
    engine._ctx.eval(
        "globalThis.FUZZ = " + json.dumps({"name": name, "args": args, "big": big})
    )
    booted.kernel.current = booted.task
    with caplog.at_level(logging.WARNING, logger="pysentry.jshooks"):
        result = booted.call(GETPPID)
    assert booted.kernel.kernel_bug is None
    assert result == booted.task.process.ppid
    assert booted.output[-1:] == ["ran"]
    assert not [r for r in caplog.records if r.name == "pysentry.jshooks"]
    assert not booted.reports, booted.reports


def test_call_state_is_dropped_when_the_call_ends(booted: Booted) -> None:
    engine = booted.engine(
        "hooks.before('getppid', (a0, a1, a2, a3, a4, a5, ctx) => { ctx.state.n = 1; });"
        "hooks.after('getppid', (a0, a1, a2, a3, a4, a5, ctx) => {"
        "  print('state', ctx.state.n); });"
    )
    booted.call(GETPPID)
    booted.call(GETPPID)
    assert booted.output == ["state 1", "state 1"]
    assert not engine._states
    assert engine._ctx.eval("1") == 1

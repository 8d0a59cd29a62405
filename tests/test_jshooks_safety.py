"""JavaScript hooks that fail, and scripts or configs that cannot load.

A callback that throws, runs too long, allocates without bound, recurses
without end or returns something malformed is reported once on stderr, with
its name, where it was registered and the JavaScript stack; the guest goes on
as if it had returned nothing (or gets EPERM when hooks fail closed). A
script or config that cannot load is one line and exit status 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Builder, run_sandbox
from test_jshooks import printed, run_hooks


@pytest.fixture(scope="module")
def probe(build: Builder) -> Path:
    return build("hook_probe")


# name, body, how the report describes the failure, stack shown
FAILURES = [
    ("thrower", 'throw new Error("boom");', "threw on getppid: Error: boom", True),
    ("spinner", "for (;;) {}", "ran longer than 100 ms on getppid", True),
    (
        "hog",
        "const a = []; for (;;) a.push(new Array(100000).fill(1));",
        "ran out of memory on getppid",
        False,
    ),
    (
        "deep",
        "return deep() + 1;",
        "overflowed the stack on getppid: RangeError",
        True,
    ),
    (
        "sixth",
        'return {"6": 1};',
        'returned a malformed result on getppid: unknown key "6"',
        False,
    ),
    (
        "bigErrno",
        "return {ret: -1, errno: 99999};",
        "returned a malformed result on getppid: errno 99999 is outside 1..4095",
        False,
    ),
    (
        "onlyRet",
        "return {ret: 5};",
        'returned a malformed result on getppid: "ret" and "errno" go together',
        False,
    ),
    (
        "number",
        "return 5;",
        "returned a malformed result on getppid: 5",
        False,
    ),
    (
        "bigint",
        "return 5n;",
        "returned a value that is not undefined, null or an object on getppid",
        False,
    ),
]


@pytest.mark.parametrize(
    "name, body, report, stack", FAILURES, ids=[f[0] for f in FAILURES]
)
def test_a_failing_hook_is_reported_once_and_the_guest_goes_on(
    probe: Path, tmp_path: Path, name: str, body: str, report: str, stack: bool
) -> None:
    script = f"hooks.before('getppid', function {name}() {{ {body} }});\n"
    result = run_hooks(probe, ["getppid", "3"], script, tmp_path)
    assert result.stdout == "getppid 0\n"
    assert result.returncode == 0
    reports = [line for line in result.stderr.splitlines() if f"'{name}'" in line]
    assert len(reports) >= 1
    first = reports[0]
    assert first.startswith(f"pysentry: hook '{name}' (before getppid, ")
    assert report in first, result.stderr
    assert "hooks.js:1)" in first
    if stack:
        assert f"    at {name} (" in result.stderr
    # Later failures are counted, not repeated.
    assert len([r for r in reports if report in r]) == 1


def test_a_hook_that_ran_out_of_time_is_disabled(probe: Path, tmp_path: Path) -> None:
    script = """
    let calls = 0;
    hooks.before("getppid", function spin() { calls++; for (;;) {} });
    hooks.onExit(() => print("calls", calls));
    """
    result = run_hooks(probe, ["getppid", "5"], script, tmp_path)
    assert result.stdout == "getppid 0\n"
    assert "(it is disabled)" in result.stderr
    assert printed(result, "calls ") == ["1"]


def test_hook_timeout_sets_the_limit(probe: Path, tmp_path: Path) -> None:
    script = "hooks.before('getppid', function spin() { for (;;) {} });\n"
    result = run_hooks(probe, ["getppid"], script, tmp_path, ["--hook-timeout", "20"])
    assert "ran longer than 20 ms" in result.stderr


def test_repeated_failures_are_counted_at_exit(probe: Path, tmp_path: Path) -> None:
    script = "hooks.after('getppid', function bad() { throw new Error('x'); });\n"
    result = run_hooks(probe, ["getppid", "4"], script, tmp_path)
    assert result.stderr.count("threw on getppid") == 1
    assert "hook 'bad' (after getppid) failed 4 times in all" in result.stderr


def test_fail_closed_turns_a_failing_hook_into_eperm(
    probe: Path, tmp_path: Path
) -> None:
    script = "hooks.before('getppid', function bad() { throw new Error('x'); });\n"
    result = run_hooks(probe, ["getppid"], script, tmp_path, ["--hooks-fail-closed"])
    assert result.stdout == "getppid -1\n"
    assert "fail-closed: the syscall fails with EPERM" in result.stderr


def test_fail_closed_keeps_failing_once_a_hook_is_disabled(
    probe: Path, tmp_path: Path
) -> None:
    script = """
    hooks.before("openat", function spin() { for (;;) {} });
    """
    result = run_hooks(
        probe, ["open", "/etc/hostname"], script, tmp_path, ["--hooks-fail-closed"]
    )
    assert result.stdout == "open /etc/hostname: EPERM\n"


def test_a_failing_hook_does_not_stop_the_next_one(probe: Path, tmp_path: Path) -> None:
    script = """
    hooks.after("getppid", function bad() { throw new Error("x"); });
    hooks.after("getppid", function good() { return { ret: 9, errno: 0 }; });
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert result.stdout == "getppid 9\n"


def test_after_hooks_cannot_change_arguments(probe: Path, tmp_path: Path) -> None:
    script = "hooks.after('getppid', function late() { return { 0: 1 }; });\n"
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert "an after-callback cannot change the arguments" in result.stderr
    assert result.stdout == "getppid 0\n"


def test_scripts_cannot_reach_the_host(probe: Path, tmp_path: Path) -> None:
    script = """
    print("globals", typeof std, typeof os, typeof require, typeof process,
          typeof fetch, typeof XMLHttpRequest, typeof WebAssembly);
    let imported = "no error";
    import("os").then(() => { imported = "loaded"; }, (e) => { imported = String(e); });
    hooks.before("getppid", () => print("import", imported));
    """
    result = run_hooks(probe, ["getppid"], script, tmp_path)
    assert printed(result, "globals ") == [
        "undefined undefined undefined undefined undefined undefined undefined"
    ]
    assert printed(result, "import ") != ["loaded"]


# --- scripts and configs that cannot load -------------------------------------


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "source, message",
    [
        ('hooks.before("getppid", function ( {\n', r"hooks\.js:\d+:\d+: SyntaxError"),
        (
            'let a = 1;\nhooks.before("nosuch", () => {});\n',
            r'hooks\.js:2:\d+: TypeError: hooks\.before: no syscall named "nosuch"',
        ),
        ("hooks.before(99999, () => {});\n", r"RangeError: hooks\.before: no syscall"),
        ('hooks.before("read", 5);\n', r"the callback must be a function"),
        ("throw 5;\n", r"hooks\.js: uncaught exception: 5"),
        ("for (;;) {}\n", r"hooks\.js: ran longer than 2000 ms while loading"),
    ],
    ids=["syntax", "unknown-name", "unknown-number", "not-a-function", "throw", "loop"],
)
def test_a_script_that_cannot_load_is_one_line_and_status_2(
    probe: Path, tmp_path: Path, source: str, message: str
) -> None:
    result = run_hooks(probe, ["getppid"], source, tmp_path)
    assert result.returncode == 2
    assert re.search(message, only_line(result.stderr))
    assert result.stdout == ""


def test_a_missing_script_is_one_line_and_status_2(probe: Path, tmp_path: Path) -> None:
    result = run_sandbox(probe, ["getppid"], ["--hooks", str(tmp_path / "no.js")])
    assert result.returncode == 2
    assert "cannot read hooks script" in only_line(result.stderr)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.json"
    path.write_text(text)
    return path


def test_config_callbacks_run(probe: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """{"callbacks": [
      {"sysno": 110, "type": "after", "entry-point": "cb",
       "source": "function cb(a0, a1, a2, a3, a4, a5) { return {ret: 31, errno: 0}; }"},
      {"sysno": 110, "type": "before", "entry-point": "cb",
       "source": "function cb() { hooks.print('before', typeof args.arg0); }"}
    ]}""",
    )
    result = run_sandbox(probe, ["getppid"], ["--config", str(config)])
    assert result.stdout == "getppid 31\n"
    assert printed(result, "before ") == ["number"]
    assert result.stderr.strip() == "before number"


def test_invalid_config_entries_are_reported_by_index_and_skipped(
    probe: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        """{"callbacks": [
      {"sysno": 110, "type": "sideways", "entry-point": "cb", "source": ""},
      {"type": "before", "entry-point": "cb", "source": "function cb() {}"},
      {"sysno": 110, "type": "before", "entry-point": "nope", "source": "function cb() {}"},
      {"sysno": 110, "type": "before", "entry-point": "cb", "source": "function cb( {"},
      {"sysno": 9999, "type": "before", "entry-point": "cb", "source": "function cb() {}"},
      {"sysno": 110, "type": "after", "entry-point": "cb",
       "source": "function cb() { return {ret: 5, errno: 0}; }"}
    ]}""",
    )
    result = run_sandbox(probe, ["getppid"], ["--config", str(config)])
    assert result.returncode == 0
    assert result.stdout == "getppid 5\n"
    skipped = [line for line in result.stderr.splitlines() if "(entry skipped)" in line]
    assert [re.search(r"callbacks\[(\d)\]", line).group(1) for line in skipped] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    assert '\'type\' must be "before" or "after"' in skipped[0]
    assert "missing 'sysno'" in skipped[1]
    assert "defines no function named 'nope'" in skipped[2]
    assert "SyntaxError" in skipped[3]
    assert "no syscall number 9999" in skipped[4]


def test_strict_hooks_fails_the_run_on_an_invalid_entry(
    probe: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, '{"callbacks": [{"sysno": 110, "type": "before", "source": ""}]}'
    )
    result = run_sandbox(
        probe, ["getppid"], ["--strict-hooks", "--config", str(config)]
    )
    assert result.returncode == 2
    assert "callbacks[0]: missing 'entry-point'" in only_line(result.stderr)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"callbacks": [', r"conf\.json:\d+:\d+: not valid JSON"),
        ("[1, 2]", r'expected a JSON object with a "callbacks" list'),
        ('{"callbacks": 5}', r'"callbacks" must be a list'),
    ],
    ids=["truncated", "not-an-object", "callbacks-not-a-list"],
)
def test_a_malformed_config_is_one_line_and_status_2(
    probe: Path, tmp_path: Path, text: str, message: str
) -> None:
    config = write_config(tmp_path, text)
    result = run_sandbox(probe, ["getppid"], ["--config", str(config)])
    assert result.returncode == 2
    assert re.search(message, only_line(result.stderr))


@pytest.mark.parametrize(
    "opts",
    [["--hook-timeout", "0"], ["--hook-timeout", "soon"], ["--hook-local", "global"]],
    ids=["zero-timeout", "word-timeout", "bad-local"],
)
def test_bad_hook_options_are_usage_errors(probe: Path, opts: list[str]) -> None:
    result = run_sandbox(probe, ["getppid"], opts)
    assert result.returncode == 2
    assert only_line(result.stderr).startswith("pysentry: argument")

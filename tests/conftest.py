"""Shared machinery of the differential suite.

The C programs in testdata/ are compiled at test time, once per session and
build flavour, into a temporary directory (no binary is ever committed). Each
program is then run twice: natively, and as the guest of
``python -m sentry run``. What the guest prints and its exit status must be
what the host kernel gave.

Test modules import the helpers below directly (``from conftest import ...``);
the ``build`` fixture hands out compiled programs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "testdata"

# Seconds one run of a program may take, native or sandboxed.
TIMEOUT = 120

# How each build flavour is compiled; the key is the test id suffix.
FLAVOURS: dict[str, list[str]] = {
    "static": ["gcc", "-O1", "-static"],
    "static-pie": ["gcc", "-O1", "-static-pie", "-fPIE"],
    "musl": ["musl-gcc", "-O1", "-static"],
}
WARNINGS = ["-Wall", "-Wextra"]


class Result(NamedTuple):
    """What one run produced; unpacks as (returncode, stdout, stderr)."""

    returncode: int
    stdout: Any
    stderr: Any


class Builder:
    """Compile testdata programs on demand and remember the results.

    A build is reused for the rest of the session unless its source (or a
    header next to it) changed since it was compiled.
    """

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.cache: dict[tuple[str, str], tuple[int, Path]] = {}

    def __call__(self, name: str, flavour: str = "static") -> Path:
        source = TESTDATA / f"{name}.c"
        compiler = FLAVOURS[flavour]
        if shutil.which(compiler[0]) is None:
            pytest.skip(f"{compiler[0]} is not installed")

        # Reuse a build whose inputs have not changed since.
        stamp = max(p.stat().st_mtime_ns for p in [source, *TESTDATA.glob("*.h")])
        cached = self.cache.get((name, flavour))
        if cached is not None and cached[0] == stamp:
            return cached[1]

        binary = self.outdir / flavour / name
        binary.parent.mkdir(parents=True, exist_ok=True)
        command = [*compiler, *WARNINGS, "-o", str(binary), str(source)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot build {name} ({flavour}):\n{done.stderr}")
        self.cache[(name, flavour)] = (stamp, binary)
        return binary


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """Session-wide builder: ``build("files", "musl")`` gives a program path."""
    return Builder(tmp_path_factory.mktemp("testdata-bin"))


@pytest.fixture(params=list(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    """Each build flavour in turn: static, static-pie and musl."""
    return request.param


def _run(command: list[str], kw: dict[str, Any]) -> Result:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("text", True)
    if kw["text"]:
        kw.setdefault("errors", "replace")
    done = subprocess.run(command, capture_output=True, **kw)
    return Result(done.returncode, done.stdout, done.stderr)


def sandbox_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host environment for a run, able to find the sentry package.

    When the package is not installed, PYTHONPATH points at the repository.
    The guest inherits this environment, so a comparison that looks at the
    environment must give the native run the same one.
    """
    result = dict(os.environ if env is None else env)
    parts = [p for p in result.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not _sentry_installed() and str(REPO) not in parts:
        result["PYTHONPATH"] = os.pathsep.join([str(REPO), *parts])
    return result


_installed: list[bool] = []


def _sentry_installed() -> bool:
    """Whether ``python -m sentry`` works from outside the repository."""
    if not _installed:
        probe = [sys.executable, "-c", "import sentry"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(probe, cwd="/", env=env, capture_output=True)
        _installed.append(done.returncode == 0)
    return _installed[0]


def run_native(path: str | Path, args: Sequence[str] = (), **kw: Any) -> Result:
    """Run a program on the host; keyword arguments go to subprocess.run."""
    return _run([str(path), *args], kw)


def run_sandbox(
    path: str | Path,
    args: Sequence[str] = (),
    extra_opts: Sequence[str] = (),
    **kw: Any,
) -> Result:
    """Run a program as the guest of ``python -m sentry run``.

    ``extra_opts`` are sentry options (--root, --bind, ...) placed before the
    program. Keyword arguments go to subprocess.run.
    """
    kw["env"] = sandbox_env(kw.get("env"))
    command = [sys.executable, "-m", "sentry", "run", *extra_opts, str(path)]
    return _run([*command, *args], kw)


def assert_same(
    prog: str | Path,
    args: Sequence[str] = (),
    extra_opts: Sequence[str] = (),
    **kw: Any,
) -> Result:
    """Assert the sandbox prints what the host prints and exits the same way.

    Both runs get the same environment, working directory and standard input
    (a file given as stdin is rewound between the runs). Returns the native
    result for further checks.
    """
    kw["env"] = sandbox_env(kw.get("env"))
    stdin = kw.get("stdin")
    start = stdin.tell() if hasattr(stdin, "seek") else None
    native = run_native(prog, args, **kw)
    if start is not None:
        stdin.seek(start)
    sandboxed = run_sandbox(prog, args, extra_opts, **kw)
    context = f"sandbox stderr:\n{tail(sandboxed.stderr)}"
    assert sandboxed.stdout == native.stdout, context
    assert sandboxed.returncode == native.returncode, context
    return native


def tail(text: Any, lines: int = 20) -> str:
    """The last lines of a stream, for failure messages."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(str(text).splitlines()[-lines:])


def skip_unless_exists(path: str) -> Callable[[Any], Any]:
    """Decorator skipping a test when a host program is missing."""
    return pytest.mark.skipif(not Path(path).exists(), reason=f"{path} is absent")


def snapshot(root: Path) -> dict[str, tuple]:
    """Names, types, modes, times and contents of everything below ``root``:
    everything a stray write could change."""
    seen: dict[str, tuple] = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        if path.is_symlink():
            what: object = os.readlink(path)
        elif path.is_file():
            what = path.read_bytes()
        else:
            what = sorted(p.name for p in path.iterdir())
        seen[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, what)
    return seen


_pid_one: list[list[str] | None] = []


def pid_one_prefix() -> list[str] | None:
    """The command prefix that runs a program natively as pid 1 of a new pid
    namespace, as the sandbox's first program is, with a /proc of that
    namespace; None where that needs privileges or support the host lacks."""
    if not _pid_one:
        unshare = shutil.which("unshare")
        prefix = None
        if unshare is not None and os.geteuid() == 0:
            probe = [unshare, "--pid", "--fork", "--mount-proc", "true"]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                prefix = [unshare, "--pid", "--fork", "--mount-proc"]
        _pid_one.append(prefix)
    return _pid_one[0]


# The busybox applets shell-script tests put on PATH (dynamically linked
# /usr/bin programs cannot run in the sandbox).
BUSYBOX = "/bin/busybox"
APPLETS = (
    "basename cat cut echo env expr false grep head kill ls mkdir printf rev rm "
    "sed seq sleep sort tail tee tr true uniq wc xargs yes"
).split()


@pytest.fixture(scope="session")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of busybox applet symlinks, the only entry of PATH."""
    if not Path(BUSYBOX).exists():
        pytest.skip(f"{BUSYBOX} is absent")
    bindir = tmp_path_factory.mktemp("applets")
    for name in APPLETS:
        (bindir / name).symlink_to(BUSYBOX)
    return bindir

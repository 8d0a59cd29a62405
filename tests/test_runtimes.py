"""The Go and Rust runtimes run under the sandbox as on Linux.

testdata/runtime.go and testdata/runtime.rs exercise what the runtimes ask of
a kernel: threads, futexes, epoll (Go's network poller and timers), signals
(Go's preemption and signal.Notify), child processes through fork/vfork and
exec with pipes, and file I/O; testdata/runtime_net.go adds sockets driven by
Go's edge-triggered network poller. Each is built statically at test time, once per
session (Go with CGO_ENABLED=0; Rust with the static glibc), run natively and
under the sandbox, and both runs must print the same and exit the same way.

A missing toolchain skips its test with the reason; .ci/run installs both
(Debian's golang-go and rustc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TESTDATA, assert_same

# Seconds a build may take (a cold Rust build of a small program takes ~15 s).
BUILD_TIMEOUT = 600


def _rustc() -> str | None:
    """Debian's rustc where installed (what CI installs), else any on PATH."""
    if Path("/usr/bin/rustc").exists():
        return "/usr/bin/rustc"
    return shutil.which("rustc")


class RuntimeBuilder:
    """Build testdata/NAME.{go,rs} once per session, again if changed."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.cache: dict[str, tuple[int, Path]] = {}

    def __call__(self, source_name: str) -> Path:
        source = TESTDATA / source_name
        stamp = source.stat().st_mtime_ns
        cached = self.cache.get(source_name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        binary = self.outdir / source_name.replace(".", "-")
        if source.suffix == ".go":
            self._go(source, binary)
        else:
            self._rust(source, binary)
        self.cache[source_name] = (stamp, binary)
        return binary

    def _go(self, source: Path, binary: Path) -> None:
        go = shutil.which("go")
        if go is None:
            pytest.skip("the Go toolchain (go) is not installed")
        env = dict(os.environ)
        env.update(
            CGO_ENABLED="0",
            GO111MODULE="off",
            GOCACHE=str(self.outdir / "gocache"),
            GOPATH=str(self.outdir / "gopath"),
        )
        self._run([go, "build", "-o", str(binary), str(source)], env)

    def _rust(self, source: Path, binary: Path) -> None:
        rustc = _rustc()
        if rustc is None:
            pytest.skip("the Rust compiler (rustc) is not installed")
        command = [rustc, "-O", "-C", "target-feature=+crt-static",
                   "-o", str(binary), str(source)]
        self._run(command, dict(os.environ))

    def _run(self, command: list[str], env: dict[str, str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              cwd=self.outdir, timeout=BUILD_TIMEOUT)
        if done.returncode != 0:
            pytest.fail(f"cannot build: {' '.join(command)}\n{done.stderr}")


@pytest.fixture(scope="session")
def runtime_build(tmp_path_factory: pytest.TempPathFactory) -> RuntimeBuilder:
    return RuntimeBuilder(tmp_path_factory.mktemp("runtime-bin"))


def test_go_program_runs_as_on_linux(runtime_build):
    native = assert_same(runtime_build("runtime.go"))
    assert native.returncode == 3
    assert "mutex count: 16000 atomic count: 16000" in native.stdout
    assert 'child output: "HELLO\\nWORLD\\n"' in native.stdout
    assert "got: hangup" in native.stdout


def test_rust_program_runs_as_on_linux(runtime_build):
    native = assert_same(runtime_build("runtime.rs"))
    assert native.returncode == 4
    assert "mutex count: 8000 atomic count: 8000" in native.stdout
    assert "child status: Some(6)" in native.stdout
    assert "removed: true" in native.stdout
    assert "refused: Some(ConnectionRefused)" in native.stdout


def test_go_network_program_runs_as_on_linux(runtime_build):
    native = assert_same(runtime_build("runtime_net.go"), timeout=60)
    assert native.returncode == 5
    assert "echoes: [HELLO 0 HELLO 1 HELLO 2 HELLO 3 HELLO 4]" in native.stdout
    assert "deadline expired: true" in native.stdout


def test_go_network_program_over_host_sockets(runtime_build):
    # With --net host the sockets are the host's, watched by the epoll
    # instance's own host epoll; the test stays on the host's loopback.
    native = assert_same(runtime_build("runtime_net.go"), extra_opts=["--net", "host"],
                         timeout=60)
    assert native.returncode == 5
    assert "http: 200 path=/x/y" in native.stdout

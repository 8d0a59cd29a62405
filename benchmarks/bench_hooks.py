"""What JavaScript hooks cost per syscall.

Two measurements, each in four set-ups (no hooks; hooks on another syscall
only, so getppid is not watched; a trivial before-callback and after-callback
on getppid, ``function () {}``; gWisord-style callbacks that take the six
arguments and return undefined):

* end to end: testdata/bench_getppid.c under ``pysentry run``, CPU time per
  getppid call, with start-up removed by timing two loop lengths and dividing
  the difference (the best of a few runs);
* the dispatcher alone: the kernel's syscall entry called in a loop from
  Python with getppid's registers, as the CPU trap calls it, without
  Unicorn; once with small argument values and once with pointers (which
  cross into JavaScript as doubles).

The last column of each row is the extra cost over no hooks. The machine
being busy inflates every figure; the dispatcher-alone figures vary least.

Usage: python benchmarks/bench_hooks.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
sys.path.insert(0, str(ROOT))

SETUPS = {
    "no hooks": None,
    "hooks on another syscall": """
        hooks.before("getpid", function () {});
        hooks.after("getpid", function () {});
    """,
    "trivial before+after": """
        hooks.before("getppid", function () {});
        hooks.after("getppid", function () {});
    """,
    "gWisord-style before+after": """
        hooks.AddCbBefore(110, function (a0, a1, a2, a3, a4, a5) { return undefined; });
        hooks.AddCbAfter(110, function (a0, a1, a2, a3, a4, a5) { return undefined; });
    """,
}


def build(out_dir: Path) -> Path:
    exe = out_dir / "bench_getppid"
    source = TESTDATA / "bench_getppid.c"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(exe), str(source)], check=True)
    return exe


def timed(cmd: list[str], repeat: int) -> float:
    """The least CPU time (user + system) of ``repeat`` runs, in seconds.

    CPU time rather than wall time: other work on the machine changes the
    wall time of a run far more than the cost measured here.
    """
    best = []
    for _ in range(repeat):
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise subprocess.CalledProcessError(child.returncode, cmd)
        best.append(usage.ru_utime + usage.ru_stime)
    return min(best)


def end_to_end(program: Path, scripts: dict[str, Path | None], quick: bool) -> None:
    small, large = (10_000, 100_000) if quick else (20_000, 400_000)
    repeat = 2 if quick else 5
    run = [sys.executable, "-m", "sentry", "run"]
    print(f"{'end to end, getppid()':<30}{'us/call':>10}{'extra us':>10}")
    base = None
    for label, script in scripts.items():
        prefix = run if script is None else [*run, "--hooks", str(script)]
        t_small = timed([*prefix, str(program), str(small)], repeat)
        t_large = timed([*prefix, str(program), str(large)], repeat)
        value = (t_large - t_small) / (large - small) * 1e6
        base = value if base is None else base
        print(f"{label:<30}{value:>10.2f}{value - base:>10.2f}")


def dispatcher_alone(
    program: Path, scripts: dict[str, Path | None], quick: bool
) -> None:
    from jshooks import HookEngine, load_script_file
    from sentry.boot import start
    from sentry.kernel import Options

    n = 50_000 if quick else 200_000
    pointer = 0x7FFFFFFFE3C8
    rows = [
        ("small arguments", [0, 1, 2, 3, 4, 5]),
        ("pointer arguments", [pointer] * 6),
    ]
    for what, args in rows:
        print(f"{'dispatcher alone, ' + what:<30}{'us/call':>10}{'extra us':>10}")
        base = None
        for label, script in scripts.items():
            kernel, task, _entry, _sp = start(Options(), str(program), ["b"], [])
            kernel.current = task
            if script is not None:
                engine = HookEngine(kernel)
                load_script_file(engine, str(script))
                kernel.set_hooks(engine)
            handler = task.mm.cpu.syscall_handler
            regs = [110, *args, 0x401000]
            best = float("inf")
            for _ in range(3 if quick else 5):
                start_time = time.process_time()
                for _ in range(n):
                    handler(regs[:])
                best = min(best, (time.process_time() - start_time) / n * 1e6)
            base = best if base is None else base
            print(f"{label:<30}{best:>10.2f}{best - base:>10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    ns = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        program = build(out)
        scripts: dict[str, Path | None] = {}
        for i, (label, text) in enumerate(SETUPS.items()):
            if text is None:
                scripts[label] = None
                continue
            scripts[label] = out / f"setup{i}.js"
            scripts[label].write_text(text)  # type: ignore[union-attr]
        end_to_end(program, scripts, ns.quick)
        print()
        dispatcher_alone(program, scripts, ns.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

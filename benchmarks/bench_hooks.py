"""What JavaScript hooks cost per syscall.

Times testdata/bench_getppid.c under ``pysentry run`` in four set-ups:

* no hooks at all (the plain dispatcher);
* a hook on another syscall only (getppid is not watched: one dict lookup);
* a trivial before-hook and a trivial after-hook on getppid
  (``function () {}``);
* gWisord-style callbacks that take the six arguments and return undefined.

Each figure is microseconds of CPU time per getppid call, with start-up
removed by timing two loop lengths and dividing the difference; the best of
a few runs is kept. The last column is the extra cost over no hooks.

Usage: python benchmarks/bench_hooks.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"

TRIVIAL = """
hooks.before("getppid", function () {});
hooks.after("getppid", function () {});
"""
ELSEWHERE = """
hooks.before("getpid", function () {});
hooks.after("getpid", function () {});
"""
GWISORD = """
hooks.AddCbBefore(110, function (a0, a1, a2, a3, a4, a5) { return undefined; });
hooks.AddCbAfter(110, function (a0, a1, a2, a3, a4, a5) { return undefined; });
"""


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


def per_call(
    prefix: list[str], program: Path, small: int, large: int, repeat: int
) -> float:
    t_small = timed([*prefix, str(program), str(small)], repeat)
    t_large = timed([*prefix, str(program), str(large)], repeat)
    return (t_large - t_small) / (large - small) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    ns = parser.parse_args()
    small, large = (10_000, 100_000) if ns.quick else (20_000, 400_000)
    repeat = 2 if ns.quick else 3

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        program = build(out)
        scripts = {}
        for name, text in [
            ("trivial", TRIVIAL),
            ("elsewhere", ELSEWHERE),
            ("gwisord", GWISORD),
        ]:
            scripts[name] = out / f"{name}.js"
            scripts[name].write_text(text)

        run = [sys.executable, "-m", "sentry", "run"]
        setups = [
            ("no hooks", run),
            ("hooks on another syscall", [*run, "--hooks", str(scripts["elsewhere"])]),
            ("trivial before+after", [*run, "--hooks", str(scripts["trivial"])]),
            ("gWisord-style before+after", [*run, "--hooks", str(scripts["gwisord"])]),
        ]
        base = None
        print(f"{'getppid() set-up':<30}{'us/call':>10}{'extra us':>10}")
        for label, prefix in setups:
            value = per_call(prefix, program, small, large, repeat)
            if base is None:
                base = value
            print(f"{label:<30}{value:>10.2f}{value - base:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

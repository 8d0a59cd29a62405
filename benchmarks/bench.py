"""Side-by-side speed of pysentry against native and qemu-x86_64.

Prints, for one run on this machine:

* microseconds per trapped syscall (a getppid loop), with start-up removed by
  timing two loop lengths and dividing the difference;
* a CPU-bound loop with no syscalls (start-up removed the same way);
* the start-up time of ``busybox true``;
* fork+exec+wait of ``busybox true`` per second (not for qemu-x86_64, whose
  user mode runs an exec'd program natively);
* round trips per second of one byte between two processes over two pipes.

The last two also remove start-up by timing two counts.

Times are the CPU time (user + system) of the program, not wall time: on a
busy machine a run also waits for a CPU, and the wait is not its cost. Pass
``--wall`` for wall-clock time.

Usage: python benchmarks/bench.py [--quick] [--wall]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"


def build(src: str, out_dir: Path) -> Path:
    exe = out_dir / Path(src).stem
    subprocess.run(
        ["gcc", "-O2", "-static", "-o", str(exe), str(TESTDATA / src)], check=True
    )
    return exe


def runners() -> dict[str, list[str]]:
    found = {"native": [], "pysentry": [sys.executable, "-m", "sentry", "run"]}
    qemu = shutil.which("qemu-x86_64")
    if qemu:
        found["qemu-x86_64"] = [qemu]
    return found


def timed(cmd: list[str], repeat: int, wall: bool) -> float:
    """The best CPU time (or wall time) of ``repeat`` runs, in seconds."""
    best = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best.append(elapsed if wall else cpu)
    return min(best)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--wall", action="store_true", help="wall-clock times")
    ns = parser.parse_args()
    small, large = (10_000, 100_000) if ns.quick else (20_000, 400_000)
    cpu_n = 20_000_000 if ns.quick else 100_000_000
    repeat = 2 if ns.quick else 5

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        getppid = build("bench_getppid.c", out)
        cpu = build("bench_cpu.c", out)
        busybox = shutil.which("busybox") or "/bin/busybox"

        clock = "(wall time)" if ns.wall else "(CPU time)"
        print(f"{clock:<28}" + "".join(f"{name:>14}" for name in runners()))

        row = []
        for prefix in runners().values():
            t_small = timed([*prefix, str(getppid), str(small)], repeat, ns.wall)
            t_large = timed([*prefix, str(getppid), str(large)], repeat, ns.wall)
            row.append((t_large - t_small) / (large - small) * 1e6)
        print(f"{'getppid() us/call':<28}" + "".join(f"{v:>14.2f}" for v in row))

        # The CPU loop, start-up removed the same way: 2N rounds minus N rounds.
        row = [
            timed([*prefix, str(cpu), str(2 * cpu_n)], repeat, ns.wall)
            - timed([*prefix, str(cpu), str(cpu_n)], repeat, ns.wall)
            for prefix in runners().values()
        ]
        print(f"{f'CPU loop, s per {cpu_n:.0e} rounds':<28}"
              + "".join(f"{v:>14.2f}" for v in row))

        if Path(busybox).exists():
            row = [statistics.median(
                timed([*prefix, busybox, "true"], 1, ns.wall) for _ in range(repeat + 2)
            ) for prefix in runners().values()]
            print(f"{'busybox true start-up s':<28}"
                  + "".join(f"{v:>14.3f}" for v in row))

        procs = build("bench_procs.c", out)
        if Path(busybox).exists():
            few, many = (5, 25) if ns.quick else (10, 60)
            cells = []
            for name, prefix in runners().items():
                if name == "qemu-x86_64":
                    cells.append(f"{'-':>14}")
                    continue
                spawn = [*prefix, str(procs), "spawn"]
                t_few = timed([*spawn, str(few), busybox], repeat, ns.wall)
                t_many = timed([*spawn, str(many), busybox], repeat, ns.wall)
                cells.append(f"{(many - few) / (t_many - t_few):>14.0f}")
            print(f"{'fork+exec+wait per s':<28}" + "".join(cells))

        few, many = (1_000, 5_000) if ns.quick else (2_000, 20_000)
        row = []
        for prefix in runners().values():
            t_few = timed([*prefix, str(procs), "pingpong", str(few)], repeat, ns.wall)
            t_many = timed([*prefix, str(procs), "pingpong", str(many)], repeat, ns.wall)
            row.append((many - few) / (t_many - t_few))
        print(f"{'pipe ping-pong round trips/s':<28}" + "".join(f"{v:>14.0f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

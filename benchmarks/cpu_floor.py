"""Where the time of a CPU-bound loop goes: qemu-x86_64, bare Unicorn, the sentry.

One tight loop (the inner loop of testdata/bench_cpu.c, in assembly so that the
only syscall is the final exit) runs three ways, interleaved, and the best CPU
time of each is printed:

* ``qemu-x86_64`` running the program (its start-up taken off with a
  one-round build of the same program);
* bare Unicorn: the code mapped with ``mem_map``, no hooks, the binding's
  ``emu_start`` up to the exit syscall;
* the sentry's CPU: the program loaded into an :class:`AddressSpace` by the
  loader, with its stack, a brk heap right after bss and every hook the kernel
  installs, run by :meth:`Cpu.run` until the exit syscall.

The first two differ by what Unicorn adds to qemu's translated code (a helper
call at the start of every translation block); the last two by what the
sentry adds to Unicorn.

Usage: python benchmarks/cpu_floor.py [--rounds N]
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import unicorn
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from unicorn import unicorn_const as ucc

from loader import elf
from sentry.mm import AddressSpace

ROUNDS = 100_000_000

LOOP_S = """
    .globl _start
    .text
_start:
    movabs $0x14650fb0739d0383, %rsi
    xor %ecx, %ecx
    movabs $0x100000001b3, %rdi
    mov $ROUNDS, %rax
    .p2align 4
1:  movzbl %cl, %edx
    add $1, %rcx
    xor %rsi, %rdx
    imul %rdi, %rdx
    mov %rdx, %rsi
    shr $29, %rsi
    xor %rdx, %rsi
    cmp %rax, %rcx
    jb 1b
    .globl exit_call
exit_call:
    mov $60, %eax
    xor %edi, %edi
    syscall
    .bss
    .space 4096
"""


def build(out_dir: Path, rounds: int) -> Path:
    src = out_dir / f"loop{rounds}.S"
    exe = out_dir / f"loop{rounds}"
    src.write_text(LOOP_S.replace("ROUNDS", str(rounds)))
    subprocess.run(
        ["gcc", "-nostdlib", "-static", "-o", str(exe), str(src)], check=True
    )
    return exe


def child_cpu(cmd: list[str]) -> float:
    """CPU seconds (user + system) that ``cmd`` used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def bare_unicorn(data: bytes) -> float:
    image = elf.parse(data, "loop")
    uc = unicorn.Uc(ucc.UC_ARCH_X86, ucc.UC_MODE_64)
    for vaddr, memsz, offset, filesz, _flags in image.segments:
        page = vaddr & ~0xFFF
        uc.mem_map(page, (vaddr + memsz - page + 0xFFF) & ~0xFFF, ucc.UC_PROT_ALL)
        uc.mem_write(vaddr, data[offset : offset + filesz])
    symbols = ELFFile(io.BytesIO(data)).get_section_by_name(".symtab")
    assert isinstance(symbols, SymbolTableSection)
    (exit_symbol,) = symbols.get_symbol_by_name("exit_call") or []
    exit_call = exit_symbol["st_value"]
    start = time.thread_time()
    uc.emu_start(image.entry, exit_call)
    return time.thread_time() - start


def sentry_cpu(data: bytes) -> float:
    mm = AddressSpace()
    image = elf.parse(data, "loop")
    _bias, highest = elf.map_image(mm, image, data, "loop")
    mm.set_brk_start(highest)
    mm.set_brk(mm.brk_start + 0x21000)
    elf.build_stack(mm, [b"loop"], [], [], b"loop", bytes(16))
    mm.cpu.on_syscall(lambda regs: mm.cpu.stop())
    start = time.thread_time()
    mm.cpu.run(image.entry)
    return time.thread_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    ns = parser.parse_args()
    qemu = shutil.which("qemu-x86_64")

    with tempfile.TemporaryDirectory() as tmp:
        loop = build(Path(tmp), ROUNDS)
        data = loop.read_bytes()
        ways: dict[str, Callable[[], float]] = {}
        if qemu:
            empty = build(Path(tmp), 1)
            ways["qemu-x86_64"] = lambda: (
                child_cpu([qemu, str(loop)]) - child_cpu([qemu, str(empty)])
            )
        ways["bare Unicorn"] = lambda: bare_unicorn(data)
        ways["sentry Cpu"] = lambda: sentry_cpu(data)

        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(ns.rounds):
            for name, way in ways.items():
                times[name].append(way())

    base = min(times["qemu-x86_64"]) if qemu else None
    print(f"{f'{ROUNDS:.0e} rounds, best CPU s':<28}{'s':>10}{'x qemu':>10}")
    for name, values in times.items():
        ratio = f"{min(values) / base:>10.2f}" if base else ""
        print(f"{name:<28}{min(values):>10.3f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

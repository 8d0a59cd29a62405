"""Loading x86-64 ELF executables into an address space.

The loader validates the file header itself so that every rejection is one
clear line (not ELF, truncated, 32-bit, wrong machine, no loadable segment),
then uses pyelftools to read the program headers. It maps PT_LOAD segments with
their own permissions, zeroes bss, and builds the initial stack the way
fs/binfmt_elf.c does: strings at the top, then the auxiliary vector, envp,
argv and argc, with rsp 16-byte aligned.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import attrs
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from sentry import abi
from sentry.errors import LoadError, SyscallError
from sentry.mm import STACK_SIZE, AddressSpace, page_down, page_up

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_X86_64 = 62
ET_EXEC = 2
ET_DYN = 3
PF_X = 1
PF_W = 2
PF_R = 4

# Where a position-independent executable goes when randomisation is off
# (ELF_ET_DYN_BASE on x86-64: two thirds of TASK_SIZE, page aligned).
PIE_BASE = 0x5555_5555_4000

# The CPU features the guest is told about: x86-64-v2 level, matching what the
# emulated CPU implements (fpu..sse2, plus sse3/ssse3/sse4.x/popcnt in hwcap2-less
# form glibc reads through CPUID anyway).
HWCAP = 0x178BFBFF
PLATFORM = b"x86_64"

_MACHINES = {3: "i386", 40: "ARM", 183: "AArch64", 243: "RISC-V", 8: "MIPS", 21: "PowerPC64"}


@attrs.define
class ElfImage:
    """What the loader learned from the headers."""

    entry: int
    phoff: int
    phentsize: int
    phnum: int
    is_pie: bool
    segments: list[tuple[int, int, int, int, int]]  # vaddr, memsz, offset, filesz, flags
    interp: str | None


@attrs.define
class LoadedProgram:
    entry: int
    stack_pointer: int
    phdr: int
    load_bias: int
    brk: int


def parse(data: bytes, name: str) -> ElfImage:
    """Validate ``data`` as an x86-64 executable and return its layout."""

    # Check the identification bytes first: each failure is one line.
    if len(data) < 4 or data[:4] != ELF_MAGIC:
        raise LoadError(f"{name}: not an ELF file")
    if len(data) < 64:
        raise LoadError(f"{name}: truncated ELF header ({len(data)} bytes)")
    if data[4] != ELFCLASS64:
        bits = "32-bit" if data[4] == 1 else f"ELF class {data[4]}"
        raise LoadError(f"{name}: {bits} ELF is not supported (x86-64 only)")
    if data[5] != ELFDATA2LSB:
        raise LoadError(f"{name}: big-endian ELF is not supported")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_machine != EM_X86_64:
        arch = _MACHINES.get(e_machine, f"machine {e_machine}")
        raise LoadError(f"{name}: ELF for {arch}, not x86-64")
    if e_type not in (ET_EXEC, ET_DYN):
        raise LoadError(f"{name}: not an executable (ELF type {e_type})")
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    if phentsize != 56 or phnum == 0:
        raise LoadError(f"{name}: no program headers")
    if phoff + phnum * phentsize > len(data):
        raise LoadError(f"{name}: truncated ELF file (program headers cut off)")

    # Read the program headers.
    try:
        elf = ELFFile(io.BytesIO(data))
        segments = []
        interp = None
        for seg in elf.iter_segments():
            ptype = seg["p_type"]
            if ptype == "PT_LOAD" and seg["p_memsz"] > 0:
                segments.append(
                    (seg["p_vaddr"], seg["p_memsz"], seg["p_offset"], seg["p_filesz"],
                     seg["p_flags"])
                )
                if seg["p_offset"] + seg["p_filesz"] > len(data):
                    raise LoadError(f"{name}: truncated ELF file (segment data cut off)")
                if seg["p_filesz"] > seg["p_memsz"]:
                    raise LoadError(f"{name}: malformed segment (file size > memory size)")
            elif ptype == "PT_INTERP":
                interp = seg.get_interp_name()  # type: ignore[attr-defined]
    except (ELFError, struct.error, ValueError) as exc:
        raise LoadError(f"{name}: malformed ELF file ({exc})") from None
    if not segments:
        raise LoadError(f"{name}: no loadable segments")
    return ElfImage(
        entry=elf.header["e_entry"],
        phoff=phoff,
        phentsize=phentsize,
        phnum=phnum,
        is_pie=e_type == ET_DYN,
        segments=sorted(segments),
        interp=interp,
    )


def _prot(flags: int) -> int:
    prot = 0
    if flags & PF_R:
        prot |= abi.PROT_READ
    if flags & PF_W:
        prot |= abi.PROT_WRITE
    if flags & PF_X:
        prot |= abi.PROT_EXEC
    return prot


def map_image(
    mm: AddressSpace, image: ElfImage, data: bytes, name: str, dev: int = 0, ino: int = 0
) -> tuple[int, int]:
    """Map the PT_LOAD segments; return (load bias, end of the highest segment)."""
    bias = 0
    if image.is_pie:
        bias = PIE_BASE - page_down(image.segments[0][0])
    highest = 0
    for vaddr, memsz, offset, filesz, flags in image.segments:
        start = page_down(bias + vaddr)
        end = page_up(bias + vaddr + memsz)
        prot = _prot(flags)

        # A page shared with the previous segment keeps its bytes; widen its rights.
        existing = mm.find(start)
        if existing is not None:
            shared_end = min(existing.end, end)
            mm.protect(start, shared_end - start, existing.prot | prot)
            start = shared_end
        if start < end:
            mm.map(start, end - start, prot, abi.MAP_PRIVATE, fixed=True, name=name,
                   file_offset=page_down(offset), dev=dev, ino=ino, file=name)

        # Copy the file bytes from the start of the page; the rest stays zero (bss).
        lead = (bias + vaddr) - page_down(bias + vaddr)
        chunk = data[offset - lead : offset + filesz] if offset >= lead else data[offset : offset + filesz]
        at = page_down(bias + vaddr) if offset >= lead else bias + vaddr
        mm.poke(at, chunk)
        highest = max(highest, bias + vaddr + memsz)
    return bias, highest


def build_stack(
    mm: AddressSpace,
    argv: Sequence[bytes],
    envp: Sequence[bytes],
    auxv: list[tuple[int, int]],
    execfn: bytes,
    random_bytes: bytes,
) -> int:
    """Map the stack, lay out strings, auxv, envp, argv, argc; return rsp."""
    top = mm.stack_top
    mm.map(top - STACK_SIZE, STACK_SIZE, abi.PROT_READ | abi.PROT_WRITE,
           abi.MAP_PRIVATE | abi.MAP_ANONYMOUS | abi.MAP_GROWSDOWN,
           fixed=True, name="[stack]")

    # Strings go at the very top, highest first: the file name, envp, argv.
    sp = top - 8
    def push_bytes(blob: bytes) -> int:
        nonlocal sp
        sp -= len(blob)
        mm.write(sp, blob)
        return sp

    execfn_addr = push_bytes(execfn + b"\0")
    env_addrs = [push_bytes(e + b"\0") for e in reversed(envp)][::-1]
    arg_addrs = [push_bytes(a + b"\0") for a in reversed(argv)][::-1]
    if top - sp > STACK_SIZE // 4:
        raise SyscallError(abi.E2BIG)
    sp &= ~0xF
    platform_addr = push_bytes(PLATFORM + b"\0")
    sp &= ~0xF
    random_addr = push_bytes(random_bytes[:16])
    sp &= ~0xF

    # The vectors: argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL.
    auxv = auxv + [
        (abi.AT_RANDOM, random_addr),
        (abi.AT_EXECFN, execfn_addr),
        (abi.AT_PLATFORM, platform_addr),
        (abi.AT_NULL, 0),
    ]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for key, value in auxv:
        words += [key, value]
    if len(words) % 2:
        sp -= 8
    sp -= 8 * len(words)
    mm.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp


def load(
    mm: AddressSpace,
    data: bytes,
    name: str,
    argv: Sequence[bytes],
    envp: Sequence[bytes],
    execfn: bytes,
    random_bytes: bytes,
    creds: tuple[int, int, int, int],
    dev: int = 0,
    ino: int = 0,
) -> LoadedProgram:
    """Load a static executable into an empty address space."""
    image = parse(data, name)
    if image.interp is not None:
        raise LoadError(
            f"{name}: dynamically linked (interpreter {image.interp}); "
            "only static programs are supported"
        )
    bias, highest = map_image(mm, image, data, name, dev, ino)
    mm.set_brk_start(highest)

    # AT_PHDR is where the program headers sit in memory: inside the first
    # segment that maps file offset phoff.
    phdr = 0
    for vaddr, _memsz, offset, filesz, _flags in image.segments:
        if offset <= image.phoff < offset + filesz:
            phdr = bias + vaddr + (image.phoff - offset)
            break
    uid, euid, gid, egid = creds
    auxv = [
        (abi.AT_HWCAP, HWCAP),
        (abi.AT_PAGESZ, abi.PAGE_SIZE),
        (abi.AT_CLKTCK, 100),
        (abi.AT_PHDR, phdr),
        (abi.AT_PHENT, image.phentsize),
        (abi.AT_PHNUM, image.phnum),
        (abi.AT_BASE, 0),
        (abi.AT_FLAGS, 0),
        (abi.AT_ENTRY, bias + image.entry),
        (abi.AT_UID, uid),
        (abi.AT_EUID, euid),
        (abi.AT_GID, gid),
        (abi.AT_EGID, egid),
        (abi.AT_SECURE, 0),
        (abi.AT_HWCAP2, 0),
    ]
    sp = build_stack(mm, argv, envp, auxv, execfn, random_bytes)
    return LoadedProgram(
        entry=bias + image.entry, stack_pointer=sp, phdr=phdr, load_bias=bias,
        brk=mm.brk,
    )

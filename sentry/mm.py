"""The memory manager: one address space, its VMAs, and guest memory access.

Theory of operation
-------------------
Guest memory lives in host buffers we own (``mmap.mmap`` objects, anonymous
and lazily zero-filled by the host). Each VMA is a window ``[start, end)`` on
one buffer at ``offset``; several VMAs may share a buffer (after mprotect
splits one, or for MAP_SHARED mappings). Unicorn's memory map mirrors the VMA
list exactly: every VMA is one Unicorn region created with ``mem_map_ptr``
over its window, so the guest and the kernel see the same bytes, and the
kernel reads and writes guest memory by slicing buffers.

Invariants:

* ``_vmas`` is sorted by start and never overlaps; ``_starts`` mirrors it.
* Every VMA in ``_vmas`` is mapped in Unicorn with permissions derived from
  its ``prot``, and nothing else is.
* Changing part of a VMA (munmap, mprotect, MAP_FIXED) first *carves* the range
  out: the VMA is unmapped from Unicorn, split into pieces that share its buffer,
  and the pieces outside the range are mapped again. Unicorn never has to split a
  region itself.
* Kernel access checks permissions as the MMU would: reading needs PROT_READ
  (implied by WRITE or EXEC on x86), writing needs PROT_WRITE. Anything else is
  EFAULT, never a Python exception.
"""

from __future__ import annotations

import array
import bisect
import ctypes
import mmap
import os
import struct
from collections.abc import Callable, Iterator

import attrs
from unicorn import unicorn_const as ucc

from sentry import abi
from sentry.cpu import Cpu
from sentry.errors import SyscallError

PAGE = abi.PAGE_SIZE
PAGE_MASK = ~(PAGE - 1)

# Where things go in a fresh address space (x86-64 with 47-bit user space).
TASK_SIZE = 0x7FFF_FFFF_F000
MMAP_TOP = 0x7FFF_F000_0000
STACK_TOP = 0x7FFF_FFFF_E000
STACK_SIZE = 8 << 20
HEAP_RESERVE = 1 << 32  # host address space reserved for brk; committed lazily
MMAP_MIN_ADDR = 0x10000

_u64 = struct.Struct("<Q")
_u32 = struct.Struct("<I")
_i64 = struct.Struct("<q")


def page_up(n: int) -> int:
    return (n + PAGE - 1) & PAGE_MASK


def page_down(n: int) -> int:
    return n & PAGE_MASK


class HostBuffer:
    """A block of host memory backing guest pages."""

    __slots__ = ("mem", "addr", "size", "view", "__weakref__")

    def __init__(self, size: int) -> None:
        self.size = size
        try:
            self.mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except (OSError, OverflowError, ValueError):
            # The host would not give us the memory: the guest sees ENOMEM.
            raise SyscallError(abi.ENOMEM) from None
        self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self.mem))
        self.view = memoryview(self.mem)


# /proc/self/pagemap: one 64-bit entry per page of ours; bit 63 says the page
# is in memory, bit 62 that it is swapped out. A page with neither was never
# touched, so an anonymous buffer still reads zeros there.
_TOUCHED = (1 << 63) | (1 << 62)
_pagemap_fd: int | None = None


def _pagemap() -> int | None:
    global _pagemap_fd
    if _pagemap_fd is None:
        try:
            _pagemap_fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            _pagemap_fd = -1
    return _pagemap_fd if _pagemap_fd >= 0 else None


def copy_touched(src: HostBuffer, dst: HostBuffer, offset: int, length: int) -> None:
    """Copy ``src[offset:offset+length]`` into the fresh (all zero) ``dst``,
    skipping the pages of ``src`` that were never touched: a fork copies what
    a process used, not the whole of a large reservation such as its stack."""
    fd = _pagemap()
    first = (src.addr + offset) // PAGE
    count = (length + PAGE - 1) // PAGE
    entries = None
    if fd is not None and (src.addr + offset) % PAGE == 0:
        try:
            raw = os.pread(fd, 8 * count, 8 * first)
        except OSError:
            raw = b""
        if len(raw) == 8 * count:
            entries = array.array("Q", raw)
    if entries is None:
        dst.mem[offset : offset + length] = src.mem[offset : offset + length]
        return
    i = 0
    while i < count:
        if not entries[i] & _TOUCHED:
            i += 1
            continue
        j = i + 1
        while j < count and entries[j] & _TOUCHED:
            j += 1
        lo = offset + i * PAGE
        hi = min(offset + j * PAGE, offset + length)
        dst.mem[lo:hi] = src.mem[lo:hi]
        i = j


@attrs.define(eq=False)
class Vma:
    """A virtual memory area: ``[start, end)`` over ``buf`` at ``offset``."""

    start: int
    end: int
    prot: int
    flags: int  # MAP_SHARED or MAP_PRIVATE, plus MAP_ANONYMOUS / MAP_GROWSDOWN
    buf: HostBuffer
    offset: int = 0
    name: str = ""  # path of the mapped file, or [heap], [stack]
    file: object = None  # the open file a file mapping came from
    file_offset: int = 0
    dev: int = 0
    ino: int = 0
    # False for a shared mapping of a file opened read-only: mprotect(2) may not
    # add PROT_WRITE to it.
    may_write: bool = True
    # Whole pages past the end of the mapped file: any access is SIGBUS.
    beyond_eof: bool = False

    def split(self, at: int) -> Vma:
        """Cut at ``at``; self keeps the lower part, the upper part is returned."""
        upper = attrs.evolve(
            self,
            start=at,
            offset=self.offset + (at - self.start),
            file_offset=self.file_offset + (at - self.start),
        )
        self.end = at
        return upper

    @property
    def readable(self) -> bool:
        if self.beyond_eof:
            return False
        return bool(self.prot & (abi.PROT_READ | abi.PROT_WRITE | abi.PROT_EXEC))

    @property
    def writable(self) -> bool:
        return bool(self.prot & abi.PROT_WRITE) and not self.beyond_eof


def _uc_perms(prot: int) -> int:
    perms = 0
    if prot & (abi.PROT_READ | abi.PROT_WRITE | abi.PROT_EXEC):
        perms |= ucc.UC_PROT_READ
    if prot & abi.PROT_WRITE:
        perms |= ucc.UC_PROT_WRITE
    if prot & abi.PROT_EXEC:
        perms |= ucc.UC_PROT_EXEC
    return perms


@attrs.define
class MemoryBudget:
    """``--memory-limit``: the most that every live address space of the
    sandbox may map together; ``in_use`` (set by the kernel) adds them up."""

    limit: int
    in_use: Callable[[], int] = lambda: 0


class AddressSpace:
    """The memory of one process: VMAs, brk, and the Unicorn CPU that sees it."""

    def __init__(self, memory_limit: MemoryBudget | None = None) -> None:
        self.cpu = Cpu()
        self._uc = self.cpu.uc
        self._vmas: list[Vma] = []
        self._starts: list[int] = []
        self.memory_limit = memory_limit
        self.brk_start = 0
        self.brk = 0
        self._heap: Vma | None = None
        self._heap_buf: HostBuffer | None = None
        self.stack_top = STACK_TOP

    # --- the VMA list --------------------------------------------------------

    def vmas(self) -> Iterator[Vma]:
        return iter(list(self._vmas))

    def find(self, addr: int) -> Vma | None:
        """The VMA containing ``addr``, or None."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            vma = self._vmas[i]
            if addr < vma.end:
                return vma
        return None

    def mapped_bytes(self) -> int:
        return sum(v.end - v.start for v in self._vmas)

    def _insert(self, vma: Vma) -> None:
        i = bisect.bisect_left(self._starts, vma.start)
        self._vmas.insert(i, vma)
        self._starts.insert(i, vma.start)
        perms = 0 if vma.beyond_eof else _uc_perms(vma.prot)
        self._uc.mem_map_ptr(
            vma.start, vma.end - vma.start, perms, vma.buf.addr + vma.offset
        )

    def _remove(self, vma: Vma) -> None:
        i = self._vmas.index(vma)
        del self._vmas[i]
        del self._starts[i]
        self._uc.mem_unmap(vma.start, vma.end - vma.start)

    def _carve(self, start: int, end: int) -> list[Vma]:
        """Take ``[start, end)`` out of the map; return the VMAs that covered it."""
        inside: list[Vma] = []
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        overlapping = [
            v for v in self._vmas[i:] if v.start < end and v.end > start
        ]
        for vma in overlapping:
            self._remove(vma)
            if vma.start < start:
                upper = vma.split(start)
                self._insert(vma)
                vma = upper
            if vma.end > end:
                upper = vma.split(end)
                self._insert(upper)
            inside.append(vma)
        return inside

    def _is_free(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end) - 1
        return i < 0 or self._vmas[i].end <= start

    def _find_gap(self, length: int, hint: int = 0) -> int:
        """A free, page-aligned range of ``length`` bytes, top-down like Linux."""
        if hint and hint >= MMAP_MIN_ADDR and hint + length <= TASK_SIZE:
            if self._is_free(hint, hint + length):
                return hint
        top = MMAP_TOP
        for vma in reversed(self._vmas):
            if vma.start >= top:
                continue
            if vma.end <= top - length:
                return top - length
            top = min(top, vma.start)
        if top - length >= MMAP_MIN_ADDR:
            return top - length
        raise SyscallError(abi.ENOMEM)

    def _check_limit(self, extra: int) -> None:
        budget = self.memory_limit
        if budget is not None and budget.in_use() + extra > budget.limit:
            raise SyscallError(abi.ENOMEM)

    # --- mapping operations --------------------------------------------------

    def map(
        self,
        addr: int,
        length: int,
        prot: int,
        flags: int,
        *,
        fixed: bool = False,
        noreplace: bool = False,
        buf: HostBuffer | None = None,
        offset: int = 0,
        name: str = "",
        file: object = None,
        file_offset: int = 0,
        dev: int = 0,
        ino: int = 0,
        may_write: bool = True,
        file_pages: int | None = None,
    ) -> int:
        """Create a mapping and return its address (page-aligned arguments)."""
        length = page_up(length)
        if length == 0 or length > TASK_SIZE:
            raise SyscallError(abi.ENOMEM)

        # Choose the place: the exact address for MAP_FIXED, else the hint if free.
        if fixed or noreplace:
            if addr + length > TASK_SIZE or addr < 0:
                raise SyscallError(abi.ENOMEM)
            if noreplace and not self._is_free(addr, addr + length):
                raise SyscallError(abi.EEXIST)
        else:
            addr = self._find_gap(length, page_down(addr))

        # Account for memory before anything is replaced.
        self._check_limit(length)
        if fixed:
            self._carve(addr, addr + length)

        if buf is None:
            buf = HostBuffer(length)
            offset = 0
        vma = Vma(addr, addr + length, prot, flags, buf, offset, name, file, file_offset,
                  dev, ino, may_write)
        if file_pages is not None and file_pages * PAGE < length:
            # Pages wholly past the end of the file fault with SIGBUS.
            tail = vma.split(addr + max(file_pages, 0) * PAGE) if file_pages > 0 else vma
            tail.beyond_eof = True
            if tail is not vma:
                self._insert(tail)
        self._insert(vma)
        return addr

    def unmap(self, addr: int, length: int) -> None:
        """munmap(2) semantics on page-aligned ``addr``; a hole is not an error."""
        end = page_up(addr + length)
        for vma in self._carve(addr, end):
            if vma is self._heap:
                self._heap = None

    def protect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2): ENOMEM if any page of the range is unmapped."""
        end = page_up(addr + length)
        covered = addr
        i = max(bisect.bisect_right(self._starts, addr) - 1, 0)
        for vma in self._vmas[i:]:
            if vma.end <= covered:
                continue
            if vma.start > covered or covered >= end:
                break
            covered = vma.end
        if covered < end:
            raise SyscallError(abi.ENOMEM)
        if prot & abi.PROT_WRITE:
            i = max(bisect.bisect_right(self._starts, addr) - 1, 0)
            if any(v.start < end and v.end > addr and not v.may_write
                   for v in self._vmas[i:]):
                raise SyscallError(abi.EACCES)
        for vma in self._carve(addr, end):
            vma.prot = prot
            self._insert(vma)

    def remap(self, old: int, old_len: int, new_len: int, flags: int, new_addr: int) -> int:
        """mremap(2)."""
        old_len = page_up(old_len)
        new_len = page_up(new_len)
        vma = self.find(old)
        if vma is None or (old_len and old + old_len > vma.end):
            raise SyscallError(abi.EFAULT)
        if old_len == 0:
            # A zero old size duplicates a shared mapping; private ones are EINVAL.
            if not vma.flags & abi.MAP_SHARED:
                raise SyscallError(abi.EINVAL)
            old_len = 0

        # Shrinking in place: drop the tail.
        if not flags & abi.MREMAP_FIXED and new_len <= old_len:
            if new_len < old_len:
                self.unmap(old + new_len, old_len - new_len)
            return old

        # Growing in place when the pages after it are free and the buffer allows.
        if not flags & abi.MREMAP_FIXED and old + old_len == vma.end:
            if self._is_free(vma.end, old + new_len) and (
                vma.offset + new_len - (old - vma.start) <= vma.buf.size
            ):
                self._check_limit(new_len - old_len)
                self._remove(vma)
                vma.end = old + new_len
                self._insert(vma)
                return old

        if not flags & abi.MREMAP_MAYMOVE:
            raise SyscallError(abi.ENOMEM)

        # Move: copy into a new buffer (a shared mapping keeps its buffer if big enough).
        self._check_limit(new_len - old_len)
        data = self.read_raw(old, min(old_len, new_len)) if old_len else b""
        if flags & abi.MREMAP_FIXED:
            target = new_addr
            self._carve(target, target + new_len)
        else:
            target = self._find_gap(new_len)
        buf = HostBuffer(new_len)
        buf.mem[: len(data)] = data
        moved = attrs.evolve(vma, start=target, end=target + new_len, buf=buf, offset=0)
        if old_len:
            self.unmap(old, old_len)
        self._insert(moved)
        return target

    def adopt(self, vma: Vma) -> None:
        """Add a VMA built elsewhere (fork copies them from the parent)."""
        self._insert(vma)

    def inherit_brk(self, parent: AddressSpace, copies: dict[int, HostBuffer]) -> None:
        """Take over ``parent``'s break; ``copies`` maps its buffers to ours."""
        self.brk_start, self.brk = parent.brk_start, parent.brk
        if parent._heap_buf is not None:
            self._heap_buf = copies.get(id(parent._heap_buf)) or HostBuffer(
                HEAP_RESERVE
            )
        if parent._heap is not None:
            self._heap = self.find(parent._heap.start)

    # --- brk -----------------------------------------------------------------

    def set_brk_start(self, addr: int) -> None:
        self.brk_start = self.brk = page_up(addr)

    def set_brk(self, new: int) -> int:
        """brk(2): move the break; on failure the old break is returned."""
        if new < self.brk_start:
            return self.brk
        old_end = page_up(self.brk)
        new_end = page_up(new)
        if new_end > self.brk_start + HEAP_RESERVE:
            return self.brk
        if new_end == old_end:
            self.brk = new
            return new
        if new_end > old_end:
            if not self._is_free(old_end, new_end):
                return self.brk
            try:
                self._check_limit(new_end - old_end)
            except SyscallError:
                return self.brk
        if self._heap_buf is None:
            self._heap_buf = HostBuffer(HEAP_RESERVE)
        heap = self._heap
        if heap is not None and heap.start == self.brk_start and heap in self._vmas:
            self._remove(heap)
        else:
            heap = None
        if new_end < old_end:
            # Pages given back read as zero when the break grows again.
            lo = new_end - self.brk_start
            hi = old_end - self.brk_start
            self._heap_buf.mem[lo:hi] = bytes(hi - lo)
        if new_end > self.brk_start:
            heap = Vma(
                self.brk_start, new_end, abi.PROT_READ | abi.PROT_WRITE,
                abi.MAP_PRIVATE | abi.MAP_ANONYMOUS, self._heap_buf, 0, "[heap]",
            )
            self._insert(heap)
        self._heap = heap
        self.brk = new
        return new

    # --- kernel access to guest memory ---------------------------------------

    def _span(self, addr: int, length: int, write: bool) -> Iterator[tuple[Vma, int, int]]:
        """Yield (vma, buffer offset, n) pieces covering ``[addr, addr+length)``."""
        while length > 0:
            vma = self.find(addr)
            if vma is None:
                raise SyscallError(abi.EFAULT)
            if write and not vma.writable:
                raise SyscallError(abi.EFAULT)
            if not write and not vma.readable:
                raise SyscallError(abi.EFAULT)
            n = min(length, vma.end - addr)
            yield vma, vma.offset + (addr - vma.start), n
            addr += n
            length -= n

    def read(self, addr: int, length: int) -> bytes:
        """Copy ``length`` bytes in from the guest; EFAULT if any is inaccessible."""
        if length <= 0:
            return b""
        vma = self.find(addr)
        if vma is not None and addr + length <= vma.end and vma.readable:
            off = vma.offset + (addr - vma.start)
            return vma.buf.mem[off : off + length]
        return b"".join(
            v.buf.mem[off : off + n] for v, off, n in self._span(addr, length, False)
        )

    read_raw = read

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` out to the guest; EFAULT if any byte is not writable."""
        length = len(data)
        if length == 0:
            return
        vma = self.find(addr)
        if vma is not None and addr + length <= vma.end and vma.writable:
            off = vma.offset + (addr - vma.start)
            vma.buf.mem[off : off + length] = data
            return
        pos = 0
        pieces = list(self._span(addr, length, True))
        for v, off, n in pieces:
            v.buf.mem[off : off + n] = data[pos : pos + n]
            pos += n

    def check_writable(self, addr: int, length: int) -> None:
        """EFAULT unless all of ``[addr, addr+length)`` may be written."""
        for _piece in self._span(addr, length, True):
            pass

    def poke(self, addr: int, data: bytes) -> None:
        """Write ignoring page protection (the loader filling read-only segments)."""
        pos = 0
        for v, off, n in self._span_any(addr, len(data)):
            v.buf.mem[off : off + n] = data[pos : pos + n]
            pos += n

    def _span_any(self, addr: int, length: int) -> Iterator[tuple[Vma, int, int]]:
        while length > 0:
            vma = self.find(addr)
            if vma is None:
                raise SyscallError(abi.EFAULT)
            n = min(length, vma.end - addr)
            yield vma, vma.offset + (addr - vma.start), n
            addr += n
            length -= n

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string; ENAMETOOLONG past ``limit``, EFAULT if bad."""
        out = bytearray()
        while True:
            vma = self.find(addr)
            if vma is None or not vma.readable:
                raise SyscallError(abi.EFAULT)
            off = vma.offset + (addr - vma.start)
            end = vma.offset + (vma.end - vma.start)
            stop = min(end, off + limit + 1 - len(out))
            nul = vma.buf.mem.find(b"\0", off, stop)
            if nul >= 0:
                out += vma.buf.mem[off:nul]
                if len(out) > limit:
                    raise SyscallError(abi.ENAMETOOLONG)
                return bytes(out)
            out += vma.buf.mem[off:stop]
            if len(out) > limit:
                raise SyscallError(abi.ENAMETOOLONG)
            addr += stop - off

    def read_u64(self, addr: int) -> int:
        return int(_u64.unpack(self.read(addr, 8))[0])

    def read_i64(self, addr: int) -> int:
        return int(_i64.unpack(self.read(addr, 8))[0])

    def read_u32(self, addr: int) -> int:
        return int(_u32.unpack(self.read(addr, 4))[0])

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, _u64.pack(value & 0xFFFFFFFFFFFFFFFF))

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, _u32.pack(value & 0xFFFFFFFF))

    def read_pointer_array(self, addr: int, limit: int = 1 << 17) -> list[int]:
        """A NULL-terminated array of pointers (argv, envp)."""
        out = []
        while True:
            p = self.read_u64(addr)
            if p == 0:
                return out
            out.append(p)
            if len(out) > limit:
                raise SyscallError(abi.E2BIG)
            addr += 8

    # --- /proc/PID/maps ------------------------------------------------------

    def maps_text(self) -> str:
        lines = []
        for v in self._vmas:
            perms = (
                ("r" if v.readable else "-")
                + ("w" if v.prot & abi.PROT_WRITE else "-")
                + ("x" if v.prot & abi.PROT_EXEC else "-")
                + ("s" if v.flags & abi.MAP_SHARED else "p")
            )
            dev = f"{(v.dev >> 8) & 0xFFF:02x}:{v.dev & 0xFF:02x}"
            head = (
                f"{v.start:08x}-{v.end:08x} {perms} {v.file_offset if v.file else 0:08x} "
                f"{dev} {v.ino if v.file else 0}"
            )
            lines.append(f"{head:<73}{v.name}".rstrip() if v.name else head)
        return "".join(line + "\n" for line in lines)

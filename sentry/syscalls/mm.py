"""Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise, msync."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.mm import PAGE, TASK_SIZE, AddressSpace, HostBuffer, Vma, page_up
from sentry.syscalls.args import s32
from sentry.syscalls.table import syscall

if TYPE_CHECKING:
    from sentry.task import Task
    from vfs.core import Inode

_KNOWN_MAP_FLAGS = (
    abi.MAP_TYPE | abi.MAP_FIXED | abi.MAP_ANONYMOUS | abi.MAP_32BIT | abi.MAP_GROWSDOWN
    | abi.MAP_DENYWRITE | abi.MAP_EXECUTABLE | abi.MAP_LOCKED | abi.MAP_NORESERVE
    | abi.MAP_POPULATE | abi.MAP_NONBLOCK | abi.MAP_STACK | abi.MAP_HUGETLB | abi.MAP_SYNC
    | abi.MAP_FIXED_NOREPLACE | (0x3F << 26)
)
_PROT_ALL = abi.PROT_READ | abi.PROT_WRITE | abi.PROT_EXEC


def brk(t: Task, addr: int, *_: int) -> int:
    """brk(2): returns the new break, or the old one when it cannot move."""
    if addr == 0:
        return t.mm.brk
    return t.mm.set_brk(addr)


def mmap(t: Task, addr: int, length: int, prot: int, flags: int, fd: int, off: int) -> int:
    """mmap(2)."""
    flags &= 0xFFFFFFFF
    prot &= 0xFFFFFFFF
    kind = flags & abi.MAP_TYPE

    # Check the arguments the way do_mmap() does.
    if length == 0 or page_up(length) > TASK_SIZE:
        raise SyscallError(abi.EINVAL if length == 0 else abi.ENOMEM)
    if kind not in (abi.MAP_SHARED, abi.MAP_PRIVATE, abi.MAP_SHARED_VALIDATE):
        raise SyscallError(abi.EINVAL)
    if kind == abi.MAP_SHARED_VALIDATE and flags & ~_KNOWN_MAP_FLAGS:
        raise SyscallError(abi.EOPNOTSUPP)
    if off & (PAGE - 1):
        raise SyscallError(abi.EINVAL)
    fixed = bool(flags & abi.MAP_FIXED)
    noreplace = bool(flags & abi.MAP_FIXED_NOREPLACE)
    if (fixed or noreplace) and addr & (PAGE - 1):
        raise SyscallError(abi.EINVAL)
    if prot & ~(_PROT_ALL | abi.PROT_GROWSDOWN | abi.PROT_GROWSUP):
        raise SyscallError(abi.EINVAL)
    prot &= _PROT_ALL
    shared = kind != abi.MAP_PRIVATE
    vm_flags = (abi.MAP_SHARED if shared else abi.MAP_PRIVATE) | (
        flags & (abi.MAP_ANONYMOUS | abi.MAP_GROWSDOWN)
    )

    # Anonymous memory is a fresh zeroed buffer.
    if flags & abi.MAP_ANONYMOUS:
        return t.mm.map(addr, length, prot, vm_flags, fixed=fixed, noreplace=noreplace)

    # A file mapping copies the file's pages into a buffer of its own.
    file = t.process.fds.get(s32(fd))
    if file.inode is None or not file.readable:
        raise SyscallError(abi.EACCES)
    if file.inode.is_dir or not hasattr(file, "pread"):
        raise SyscallError(abi.ENODEV)
    if shared and prot & abi.PROT_WRITE and not file.writable:
        raise SyscallError(abi.EACCES)
    size = page_up(length)
    buf = HostBuffer(size)
    try:
        data = file.pread(size, off)
    except SyscallError as err:
        raise SyscallError(abi.ENODEV if err.errno == abi.ESPIPE else err.errno) from None
    buf.mem[: len(data)] = data
    st = file.stat()
    file_pages = (page_up(st.size) - off) // PAGE if file.inode.is_reg else None
    addr = t.mm.map(
        addr, length, prot, vm_flags, fixed=fixed, noreplace=noreplace, buf=buf,
        name=file.path, file=file, file_offset=off, dev=st.dev, ino=st.ino,
        may_write=not shared or file.writable, file_pages=file_pages,
    )
    if shared:
        t.process.kernel.shared_maps.add(file.inode, t.mm, addr, page_up(length))
    return addr


def _write_back(t: Task, addr: int, length: int) -> None:
    """Copy MAP_SHARED file pages in ``[addr, addr+length)`` back to their file."""
    end = addr + length
    for vma in t.mm.vmas():
        if vma.end <= addr or vma.start >= end or not vma.flags & abi.MAP_SHARED:
            continue
        _flush_vma(vma, max(addr, vma.start), min(end, vma.end))


def _flush_vma(vma: Vma, lo: int, hi: int) -> None:
    inode = getattr(vma.file, "inode", None)
    if inode is None or not vma.may_write or vma.beyond_eof:
        return
    off = vma.offset + (lo - vma.start)
    data = vma.buf.mem[off : off + (hi - lo)]
    foff = vma.file_offset + (lo - vma.start)
    size = inode.size()
    if foff < size and data:
        inode.write_at(foff, data[: size - foff])


class SharedFileMaps:
    """Keeps MAP_SHARED file mappings and the file's data in step.

    The mapping's pages are a copy of the file, so at each syscall boundary
    where the file is read or written the two are reconciled: before the file
    is used its mapped pages are written back, and after it is written the
    pages are read again. The guest cannot tell the difference from one page
    cache, because it can only look at one of them between syscalls.
    """

    def __init__(self) -> None:
        self._spaces: dict[int, tuple[Inode, list[AddressSpace]]] = {}

    @property
    def active(self) -> bool:
        return bool(self._spaces)

    def add(self, inode: Inode, mm: AddressSpace, addr: int, length: int) -> None:
        _inode, spaces = self._spaces.setdefault(id(inode), (inode, []))
        if mm not in spaces:
            spaces.append(mm)

    def _vmas(self, inode: Inode) -> list[Vma]:
        entry = self._spaces.get(id(inode))
        if entry is None:
            return []
        found = [v for mm in entry[1] for v in mm.vmas()
                 if v.flags & abi.MAP_SHARED and getattr(v.file, "inode", None) is inode]
        if not found:
            del self._spaces[id(inode)]
        return found

    def before_io(self, inode: Inode | None) -> None:
        """Write the mapped pages back before the file is read or written."""
        if inode is not None:
            for vma in self._vmas(inode):
                _flush_vma(vma, vma.start, vma.end)

    def after_write(self, inode: Inode | None) -> None:
        """Read the mapped pages again after the file was written."""
        if inode is None:
            return
        for vma in self._vmas(inode):
            if vma.beyond_eof:
                continue
            n = vma.end - vma.start
            data = inode.read_at(vma.file_offset, n)
            vma.buf.mem[vma.offset : vma.offset + len(data)] = data


def munmap(t: Task, addr: int, length: int, *_: int) -> int:
    """munmap(2)."""
    if addr & (PAGE - 1) or length == 0 or addr + length > TASK_SIZE:
        raise SyscallError(abi.EINVAL)
    _write_back(t, addr, length)
    t.mm.unmap(addr, length)
    return 0


def mprotect(t: Task, addr: int, length: int, prot: int, *_: int) -> int:
    """mprotect(2)."""
    prot &= 0xFFFFFFFF
    if addr & (PAGE - 1) or prot & ~(_PROT_ALL | abi.PROT_GROWSDOWN | abi.PROT_GROWSUP):
        raise SyscallError(abi.EINVAL)
    if length == 0:
        return 0
    t.mm.protect(addr, page_up(length), prot & _PROT_ALL)
    return 0


def mremap(t: Task, old: int, old_len: int, new_len: int, flags: int, new_addr: int,
           *_: int) -> int:
    """mremap(2)."""
    flags &= 0xFFFFFFFF
    if flags & ~(abi.MREMAP_MAYMOVE | abi.MREMAP_FIXED | abi.MREMAP_DONTUNMAP):
        raise SyscallError(abi.EINVAL)
    if flags & abi.MREMAP_FIXED and not flags & abi.MREMAP_MAYMOVE:
        raise SyscallError(abi.EINVAL)
    if old & (PAGE - 1) or new_len == 0:
        raise SyscallError(abi.EINVAL)
    if flags & abi.MREMAP_DONTUNMAP:
        raise SyscallError(abi.EINVAL)
    return t.mm.remap(old, old_len, new_len, flags, new_addr)


def madvise(t: Task, addr: int, length: int, advice: int, *_: int) -> int:
    """madvise(2): DONTNEED zeroes private anonymous pages as Linux does."""
    advice = s32(advice)
    if addr & (PAGE - 1):
        raise SyscallError(abi.EINVAL)
    if advice in (abi.MADV_DONTNEED, abi.MADV_FREE, abi.MADV_REMOVE):
        end = page_up(addr + length)
        for vma in t.mm.vmas():
            lo, hi = max(addr, vma.start), min(end, vma.end)
            if lo >= hi:
                continue
            if vma.flags & abi.MAP_SHARED:
                continue
            off = vma.offset + (lo - vma.start)
            fresh = bytes(hi - lo)
            inode = getattr(vma.file, "inode", None)
            if inode is not None and not vma.beyond_eof:
                # Private file pages are read from the file again.
                data = inode.read_at(vma.file_offset + (lo - vma.start), hi - lo)
                fresh = data + fresh[len(data):]
            vma.buf.mem[off : off + (hi - lo)] = fresh
        return 0
    if advice in (
        abi.MADV_NORMAL, abi.MADV_RANDOM, abi.MADV_SEQUENTIAL, abi.MADV_WILLNEED,
        abi.MADV_DONTFORK, abi.MADV_DOFORK, abi.MADV_HUGEPAGE, abi.MADV_NOHUGEPAGE,
        abi.MADV_DONTDUMP, abi.MADV_DODUMP,
    ):
        return 0
    raise SyscallError(abi.EINVAL)


def msync(t: Task, addr: int, length: int, flags: int, *_: int) -> int:
    """msync(2): writes MAP_SHARED file pages back to the file."""
    flags = s32(flags)
    if addr & (PAGE - 1) or flags & ~(abi.MS_ASYNC | abi.MS_SYNC | abi.MS_INVALIDATE):
        raise SyscallError(abi.EINVAL)
    if flags & abi.MS_ASYNC and flags & abi.MS_SYNC:
        raise SyscallError(abi.EINVAL)
    end = page_up(addr + length)
    pos = addr
    while pos < end:
        vma = t.mm.find(pos)
        if vma is None:
            raise SyscallError(abi.ENOMEM)
        pos = vma.end
    _write_back(t, addr, end - addr)
    return 0


def mincore(t: Task, addr: int, length: int, vec: int, *_: int) -> int:
    """mincore(2): every mapped page is resident."""
    if addr & (PAGE - 1):
        raise SyscallError(abi.EINVAL)
    pages = page_up(length) // PAGE
    pos = addr
    for _i in range(pages):
        if t.mm.find(pos) is None:
            raise SyscallError(abi.ENOMEM)
        pos += PAGE
    t.mm.write(vec, b"\x01" * pages)
    return 0


SYSCALLS = [
    syscall("brk", brk),
    syscall("mmap", mmap, "MAP_SHARED file pages are written back on msync and munmap",
            partial=True),
    syscall("munmap", munmap),
    syscall("mprotect", mprotect),
    syscall("mremap", mremap, "MREMAP_DONTUNMAP is EINVAL", partial=True),
    syscall("madvise", madvise),
    syscall("msync", msync),
    syscall("mincore", mincore),
]

"""Time slices that end between instructions, never inside one.

Theory of operation
-------------------
Unicorn can limit a run by time (the ``timeout`` of ``uc_emu_start``): a
timer thread requests a stop at an arbitrary moment. Unicorn 2 looks for a
stop request after every guest memory access and, when it finds one, rewinds
the program counter to the start of the instruction that made the access.
When that access was the store of a read-modify-write instruction, the
instruction has already done its work and runs a second time when the task
resumes: ``add [mem], 1`` adds two, and a ``lock cmpxchg`` that took a mutex
fails when it runs again, so the mutex ends up held by nobody and every
thread that wants it waits forever. ``tests/test_processes.py`` catches this
with four threads sharing a mutex.

A stop requested at the start of a translation block is harmless: the first
memory access after it is the first access of some instruction, which is a
load (nothing has changed yet; every read-modify-write instruction loads
first) or a plain store, which writes the same bytes again when repeated.
So a slice is counted in blocks: a UC_HOOK_BLOCK callback decrements a
counter and calls ``uc_emu_stop`` when it reaches zero.

That callback runs at every block, so it cannot be Python. It is a few x86-64
instructions written into an executable page (:data:`_CODE`)::

    sub qword [rcx], 1     ; rcx: user_data, the counter
    jz stop
    ret
    stop: jmp uc_emu_stop  ; rdi still holds the engine

The kernel thinks in microseconds: a slice of T microseconds gets T times the
rate of blocks per microsecond measured on the slices that ran out. Counting
blocks instead of time also makes the place where a task is preempted
reproducible, as a deterministic mode needs.

The hook is added to a CPU the first time one of its slices is limited, so a
program that never shares the CPU never pays for it; adding it flushes the
CPU's translated code, since Unicorn adds block hooks when it translates.

Where the machine code cannot run (a host that is not x86-64, or no
executable memory), :func:`available` is false and the CPU falls back to
Unicorn's timeout, with the hazard above.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import platform
import struct
import time

from unicorn import unicorn_const as ucc
from unicorn.unicorn_py3 import unicorn as _ucmod

_log = logging.getLogger("pysentry.preempt")

_lib = ctypes.PyDLL(_ucmod.uclib._name)
_hook_add = _lib.uc_hook_add
_hook_add.restype = ctypes.c_int
_ctl = _lib.uc_ctl
_ctl.restype = ctypes.c_int

# uc_ctl(UC_CTL_WRITE(UC_CTL_TB_FLUSH, 0)): type in the low bits, I/O in 30-31.
_CTL_TB_FLUSH_WRITE = 10 | (1 << 30)

# Blocks per microsecond assumed before the first measurement, and the bounds
# of every slice in blocks.
_INITIAL_RATE = 20.0
_MIN_BLOCKS = 1_000
_MAX_BLOCKS = 1 << 40
# Slices shorter than this say little about the rate.
_MIN_SAMPLE_NS = 200_000

_callback: int | None = None
_callback_page: mmap.mmap | None = None
_tried = False


def _build_callback() -> int | None:
    """The address of the block callback, or None if it cannot run here."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    stop = ctypes.cast(_lib.uc_emu_stop, ctypes.c_void_p).value
    if stop is None:
        return None
    code = (
        bytes.fromhex("48 83 29 01")  # sub qword [rcx], 1
        + bytes.fromhex("74 01")  # jz +1
        + bytes.fromhex("c3")  # ret
        + bytes.fromhex("48 b8")  # mov rax, imm64
        + struct.pack("<Q", stop)
        + bytes.fromhex("ff e0")  # jmp rax
    )
    global _callback_page
    try:
        page = mmap.mmap(
            -1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
        )
    except OSError as exc:
        _log.warning("no executable memory for the preemption hook: %s", exc)
        return None
    page.write(code)
    _callback_page = page
    return ctypes.addressof(ctypes.c_char.from_buffer(page))


def available() -> bool:
    """Whether slices can be counted in blocks on this host."""
    global _callback, _tried
    if not _tried:
        _tried = True
        _callback = _build_callback()
        if _callback is None:
            _log.warning(
                "time slices fall back to Unicorn's timeout, which may "
                "run an interrupted instruction twice"
            )
    return _callback is not None


class BlockBudget:
    """The block counter of one Unicorn engine and what it has measured."""

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._handle = handle
        self._counter = ctypes.c_int64(0)
        self._installed = False
        self._rate = _INITIAL_RATE  # blocks per microsecond
        self._armed = 0
        self._started = 0

    @property
    def armed(self) -> bool:
        """Whether the run under way, or the next, has a limit."""
        return self._armed != 0

    def arm(self, slice_us: int) -> None:
        """Stop the next run after about ``slice_us`` microseconds of blocks."""
        if not self._installed:
            self._install()
        blocks = int(slice_us * self._rate)
        self._armed = min(max(blocks, _MIN_BLOCKS), _MAX_BLOCKS)
        self._counter.value = self._armed
        self._started = time.perf_counter_ns()

    def disarm(self) -> None:
        """Let the next run go on until something else stops it."""
        self._counter.value = _MAX_BLOCKS
        self._armed = 0

    def account(self) -> None:
        """After a limited run: learn the rate from a slice that ran out."""
        if not self._armed:
            return
        elapsed = time.perf_counter_ns() - self._started
        used = self._armed - self._counter.value
        if self._counter.value <= 0 and elapsed >= _MIN_SAMPLE_NS:
            sample = used / (elapsed / 1000)
            self._rate = max(0.7 * self._rate + 0.3 * sample, 0.1)
        self._counter.value = _MAX_BLOCKS
        self._armed = 0

    def _install(self) -> None:
        hh = ctypes.c_size_t()
        status = _hook_add(
            self._handle,
            ctypes.byref(hh),
            ctypes.c_int(ucc.UC_HOOK_BLOCK),
            ctypes.c_void_p(_callback),
            ctypes.byref(self._counter),
            ctypes.c_uint64(1),
            ctypes.c_uint64(0),
        )
        if status:
            raise RuntimeError(f"uc_hook_add(block) failed with {status}")
        # Blocks translated before the hook existed would not call it.
        _ctl(self._handle, ctypes.c_int(_CTL_TB_FLUSH_WRITE))
        self._installed = True

"""The Unicorn glue: one emulated CPU per address space.

Theory of operation
-------------------
The Unicorn Python binding spends microseconds per call on argument
conversion and on releasing and re-taking the GIL. The syscall trap is the
hottest path in the sentry, so this module talks to libunicorn directly:

* the library is opened a second time with ``ctypes.PyDLL``, whose calls keep
  the GIL. ``uc_emu_start`` is issued through it too, so when the ``syscall``
  hook calls back into Python the GIL is already ours;
* the syscall number, the six arguments and RIP come in with one
  ``uc_reg_read_batch`` into a preallocated ``c_uint64`` array, and one slice
  of it is the list handed to the handler;
* the handler's return value goes into rax with one ``uc_reg_write``;
* the hook is a raw ``CFUNCTYPE`` callback registered with ``uc_hook_add``.

Each ctypes call costs a few tenths of a microsecond, so the trap makes two
(the read and the write) and converts nothing it does not need.

Guest code between two syscalls runs inside Unicorn and nothing here is on its
path. Unicorn 2.1 calls a helper at the start of every translation block to
check for a stop request (qemu-user tests a flag inline), which makes a tight
loop 1.4 to 1.5 times slower than under qemu-x86_64; no Unicorn setting turns
it off, and the sentry's hooks and memory map add nothing measurable to it
(``benchmarks/cpu_floor.py`` runs one loop under qemu, bare Unicorn and a Cpu).

Inside the ``syscall`` hook RIP holds the address of the ``syscall``
instruction, and Unicorn adds 2 after the hook returns. Code that moves RIP from
inside a syscall (execve, rt_sigreturn, restarting a syscall) writes the target
minus 2: see :meth:`Cpu.set_rip_in_syscall`.

Faults are caught by a UC_HOOK_MEM_INVALID hook that records the address;
``uc_emu_start`` then returns an error code and :meth:`Cpu.run` turns both into
a :class:`~sentry.errors.GuestFault`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import unicorn
from unicorn import unicorn_const as ucc
from unicorn import x86_const as x86
from unicorn.unicorn_py3 import unicorn as _ucmod

from sentry import abi, preempt
from sentry.errors import GuestFault, KernelBug

_lib = ctypes.PyDLL(_ucmod.uclib._name)
_reg_read_batch = _lib.uc_reg_read_batch
_reg_read_batch.restype = ctypes.c_int
_reg_write = _lib.uc_reg_write
_reg_write.restype = ctypes.c_int
_reg_write_batch = _lib.uc_reg_write_batch
_reg_write_batch.restype = ctypes.c_int
_emu_start = _lib.uc_emu_start
_emu_start.restype = ctypes.c_int
_emu_stop = _lib.uc_emu_stop
_emu_stop.restype = ctypes.c_int
_hook_add = _lib.uc_hook_add
_hook_add.restype = ctypes.c_int

# Unicorn calls a syscall hook as hook(uc, user_data). The callback type
# declares no parameters: a C callee may ignore its arguments, and ctypes then
# has none to convert on every syscall.
_SYSCALL_CB = ctypes.CFUNCTYPE(None)

# rax, then the six syscall argument registers in ABI order.
SYSCALL_REGS = (
    x86.UC_X86_REG_RAX,
    x86.UC_X86_REG_RDI,
    x86.UC_X86_REG_RSI,
    x86.UC_X86_REG_RDX,
    x86.UC_X86_REG_R10,
    x86.UC_X86_REG_R8,
    x86.UC_X86_REG_R9,
    x86.UC_X86_REG_RIP,
)

# The general-purpose state saved in a context switch or a signal frame, in
# the order of struct sigcontext (arch/x86/include/uapi/asm/sigcontext.h).
GP_REGS = (
    x86.UC_X86_REG_R8,
    x86.UC_X86_REG_R9,
    x86.UC_X86_REG_R10,
    x86.UC_X86_REG_R11,
    x86.UC_X86_REG_R12,
    x86.UC_X86_REG_R13,
    x86.UC_X86_REG_R14,
    x86.UC_X86_REG_R15,
    x86.UC_X86_REG_RDI,
    x86.UC_X86_REG_RSI,
    x86.UC_X86_REG_RBP,
    x86.UC_X86_REG_RBX,
    x86.UC_X86_REG_RDX,
    x86.UC_X86_REG_RAX,
    x86.UC_X86_REG_RCX,
    x86.UC_X86_REG_RSP,
    x86.UC_X86_REG_RIP,
    x86.UC_X86_REG_EFLAGS,
    x86.UC_X86_REG_FS_BASE,
    x86.UC_X86_REG_GS_BASE,
)

_FAULT_SIGNALS = {
    ucc.UC_ERR_READ_UNMAPPED: (abi.SIGSEGV, "read of unmapped memory"),
    ucc.UC_ERR_WRITE_UNMAPPED: (abi.SIGSEGV, "write to unmapped memory"),
    ucc.UC_ERR_FETCH_UNMAPPED: (abi.SIGSEGV, "execution of unmapped memory"),
    ucc.UC_ERR_READ_PROT: (abi.SIGSEGV, "read of protected memory"),
    ucc.UC_ERR_WRITE_PROT: (abi.SIGSEGV, "write to read-only memory"),
    ucc.UC_ERR_FETCH_PROT: (abi.SIGSEGV, "execution of non-executable memory"),
    ucc.UC_ERR_READ_UNALIGNED: (abi.SIGBUS, "unaligned read"),
    ucc.UC_ERR_WRITE_UNALIGNED: (abi.SIGBUS, "unaligned write"),
    ucc.UC_ERR_FETCH_UNALIGNED: (abi.SIGBUS, "unaligned fetch"),
    ucc.UC_ERR_INSN_INVALID: (abi.SIGILL, "illegal instruction"),
    ucc.UC_ERR_EXCEPTION: (abi.SIGSEGV, "CPU exception"),
}

# Interrupt numbers Unicorn reports through UC_HOOK_INTR.
_INTR_SIGNALS = {
    0: (abi.SIGFPE, "divide error"),
    1: (abi.SIGTRAP, "debug trap"),
    3: (abi.SIGTRAP, "breakpoint"),
    4: (abi.SIGSEGV, "overflow"),
    5: (abi.SIGSEGV, "bound range exceeded"),
    6: (abi.SIGILL, "illegal instruction"),
    7: (abi.SIGFPE, "device not available"),
    13: (abi.SIGSEGV, "general protection fault"),
    14: (abi.SIGSEGV, "page fault"),
    16: (abi.SIGFPE, "floating point error"),
    17: (abi.SIGBUS, "alignment check"),
    19: (abi.SIGFPE, "SIMD floating point error"),
}


def _element_pointers(
    values: ctypes.Array[ctypes.c_uint64],
) -> ctypes.Array[ctypes.c_void_p]:
    """One pointer per element, as the ``uc_reg_*_batch`` calls want them."""
    base = ctypes.addressof(values)
    step = ctypes.sizeof(ctypes.c_uint64)
    addresses = [base + i * step for i in range(len(values))]
    return (ctypes.c_void_p * len(values))(*addresses)


FPU_CW_INIT = 0x37F
MXCSR_INIT = 0x1F80


class Cpu:
    """One Unicorn engine: the memory map of one address space and a CPU."""

    def __init__(self) -> None:
        self.uc = unicorn.Uc(ucc.UC_ARCH_X86, ucc.UC_MODE_64)
        # The floating-point state Linux starts a program with (FNINIT's
        # control word, every SSE exception masked); Unicorn starts at zero.
        self.uc.reg_write(x86.UC_X86_REG_FPCW, FPU_CW_INIT)
        self.uc.reg_write(x86.UC_X86_REG_MXCSR, MXCSR_INIT)
        self.uc.reg_write(x86.UC_X86_REG_FPTAG, 0xFFFF)  # every register empty
        self._handle = ctypes.c_void_p(self.uc._uch.value)
        self._regs = (ctypes.c_int * len(SYSCALL_REGS))(*SYSCALL_REGS)
        self._values = (ctypes.c_uint64 * len(SYSCALL_REGS))()
        self._value_ptrs = _element_pointers(self._values)
        self._gp_regs = (ctypes.c_int * len(GP_REGS))(*GP_REGS)
        self._gp_values = (ctypes.c_uint64 * len(GP_REGS))()
        self._gp_ptrs = _element_pointers(self._gp_values)
        self._out = ctypes.c_uint64()
        self._out_ref = ctypes.byref(self._out)
        self._syscall_cb: object = None
        self._budget: preempt.BlockBudget | None = None
        self.syscall_handler: Callable[[list[int]], int | None] | None = None
        # The task whose registers are in the CPU now (threads take turns).
        self.resident: object = None
        self.fault: tuple[int, int, str] | None = None
        self.uc.hook_add(ucc.UC_HOOK_MEM_INVALID, self._on_bad_memory)
        self.uc.hook_add(ucc.UC_HOOK_INTR, self._on_interrupt)

    # --- the syscall trap ----------------------------------------------------

    def on_syscall(self, handler: Callable[[list[int]], int | None]) -> None:
        """Call ``handler`` with [nr, a0..a5, rip] at every ``syscall`` insn.

        What it returns goes into rax (modulo 2**64); None leaves rax alone.
        """
        read = _reg_read_batch
        write = _reg_write
        handle = self._handle
        regs = self._regs
        values = self._values
        ptrs = self._value_ptrs
        count = len(SYSCALL_REGS)
        rax = x86.UC_X86_REG_RAX
        out = self._out
        out_ref = self._out_ref
        self.syscall_handler = handler

        def trap() -> None:
            read(handle, regs, ptrs, count)
            result = self.syscall_handler(values[:])  # type: ignore[misc]
            if result is not None:
                out.value = result & 0xFFFFFFFFFFFFFFFF
                write(handle, rax, out_ref)

        self._syscall_cb = _SYSCALL_CB(trap)
        hh = ctypes.c_size_t()
        status = _hook_add(
            handle,
            ctypes.byref(hh),
            ctypes.c_int(ucc.UC_HOOK_INSN),
            ctypes.cast(self._syscall_cb, ctypes.c_void_p),
            None,
            ctypes.c_uint64(1),
            ctypes.c_uint64(0),
            ctypes.c_int(x86.UC_X86_INS_SYSCALL),
        )
        if status:
            raise KernelBug(f"uc_hook_add(syscall) failed with {status}")

    def set_result(self, value: int) -> None:
        """Write the syscall return value into rax (value taken modulo 2**64)."""
        self._out.value = value & 0xFFFFFFFFFFFFFFFF
        _reg_write(self._handle, x86.UC_X86_REG_RAX, self._out_ref)

    def set_rip_in_syscall(self, rip: int) -> None:
        """From inside the syscall hook, make the guest resume at ``rip``."""
        self.write_reg(x86.UC_X86_REG_RIP, rip - 2)

    # --- registers -----------------------------------------------------------

    def write_reg(self, reg: int, value: int) -> None:
        self._out.value = value & 0xFFFFFFFFFFFFFFFF
        _reg_write(self._handle, reg, self._out_ref)

    def read_reg(self, reg: int) -> int:
        return int(self.uc.reg_read(reg))

    def save_gp(self) -> list[int]:
        """The general-purpose registers in :data:`GP_REGS` order."""
        _reg_read_batch(self._handle, self._gp_regs, self._gp_ptrs, len(GP_REGS))
        return self._gp_values[:]

    def restore_gp(self, values: list[int]) -> None:
        # Slice assignment checks the length, as a strict zip would.
        self._gp_values[:] = [value & 0xFFFFFFFFFFFFFFFF for value in values]
        _reg_write_batch(self._handle, self._gp_regs, self._gp_ptrs, len(GP_REGS))

    # --- running -------------------------------------------------------------

    def stop(self) -> None:
        _emu_stop(self._handle)

    def limit_run(self, timeout_us: int) -> None:
        """From inside a syscall hook: end the run under way after about
        ``timeout_us``, unless it has a limit already.

        Without a block budget yet (adding its hook flushes translated code,
        which must not happen under the running block) the run ends when the
        hook returns instead.
        """
        budget = self._budget
        if budget is None:
            self.stop()
        elif not budget.armed:
            budget.arm(timeout_us)

    def run(self, rip: int, timeout_us: int = 0) -> None:
        """Run from ``rip`` until stopped; raise GuestFault on a CPU fault.

        A ``timeout_us`` ends the run after about that long, between two
        instructions (see :mod:`sentry.preempt`).
        """
        self.fault = None
        budget = self._budget
        if timeout_us and preempt.available():
            if budget is None:
                budget = self._budget = preempt.BlockBudget(self._handle)
            budget.arm(timeout_us)
            timeout_us = 0
        elif budget is not None:
            budget.disarm()
        status = _emu_start(
            self._handle,
            ctypes.c_uint64(rip),
            ctypes.c_uint64(0),
            ctypes.c_uint64(timeout_us),
            ctypes.c_size_t(0),
        )
        if budget is not None:
            budget.account()
        if self.fault is not None:
            raise GuestFault(*self.fault)
        if status:
            signo, reason = _FAULT_SIGNALS.get(status, (abi.SIGSEGV, "CPU error"))
            address = self.read_reg(x86.UC_X86_REG_RIP)
            raise GuestFault(signo, address, f"{reason} ({unicorn.UcError(status)})")

    def _on_bad_memory(
        self, uc: unicorn.Uc, access: int, address: int, size: int, value: int, _u: object
    ) -> bool:
        kind = {
            ucc.UC_MEM_READ_UNMAPPED: "read of unmapped memory",
            ucc.UC_MEM_WRITE_UNMAPPED: "write to unmapped memory",
            ucc.UC_MEM_FETCH_UNMAPPED: "execution of unmapped memory",
            ucc.UC_MEM_READ_PROT: "read of protected memory",
            ucc.UC_MEM_WRITE_PROT: "write to read-only memory",
            ucc.UC_MEM_FETCH_PROT: "execution of non-executable memory",
        }.get(access, "bad memory access")
        self.fault = (abi.SIGSEGV, address, kind)
        return False

    def _on_interrupt(self, uc: unicorn.Uc, intno: int, _u: object) -> None:
        signo, reason = _INTR_SIGNALS.get(intno, (abi.SIGSEGV, f"interrupt {intno}"))
        rip = int(uc.reg_read(x86.UC_X86_REG_RIP))
        self.fault = (signo, rip, reason)
        uc.emu_stop()

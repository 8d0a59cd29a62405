"""futex(2) for a process with one thread.

Theory of operation
-------------------
A futex is a 32-bit word in guest memory that threads wait on and wake each
other through. While every process has exactly one thread, no task can ever be
waiting on a futex another task wakes, so the calls reduce to their checks:

* a wake finds nobody and returns 0 (after WAKE_OP has changed its second word);
* a wait compares the word first (EAGAIN when it changed) and then can only end
  by its timeout (ETIMEDOUT); without one it would wait for ever;
* a priority-inheritance lock is free (it takes it), already ours (EDEADLK), or
  held by a thread that does not exist (ESRCH).

Every error Linux checks for before it looks at waiters (alignment, a zero
bitset, bad timeouts, unknown operations) is reported the same way here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.syscalls.args import s32, u32
from sentry.syscalls.table import syscall
from sentry.syscalls.time import _sleep_until, read_timespec
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.task import Task

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET = 6, 7, 8, 9
FUTEX_WAKE_BITSET, FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI = 10, 11, 12
FUTEX_LOCK_PI2 = 13
FUTEX_CLOCK_REALTIME = 256
FUTEX_CMD_MASK = ~(128 | FUTEX_CLOCK_REALTIME)
FUTEX_TID_MASK, FUTEX_OWNER_DIED = 0x3FFFFFFF, 0x40000000
FUTEX_OP_SET, FUTEX_OP_ADD, FUTEX_OP_OR, FUTEX_OP_ANDN, FUTEX_OP_XOR = 0, 1, 2, 3, 4
FUTEX_OP_OPARG_SHIFT, FUTEX_OP_CMP_GE = 8, 5

_WAITS = (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI)
_REQUEUES = (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_CMP_REQUEUE_PI)
_PI_LOCKS = (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI)
# The operations that accept FUTEX_CLOCK_REALTIME; the others fail with ENOSYS.
_REALTIME_OK = (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI,
                FUTEX_LOCK_PI2)


def _sign12(v: int) -> int:
    """A 12-bit field of a FUTEX_WAKE_OP encoding, sign-extended."""
    return v - 0x1000 if v & 0x800 else v


def _wake_op(t: Task, uaddr2: int, encoded: int) -> None:
    """Apply FUTEX_WAKE_OP's operation to the word at ``uaddr2``."""
    op = (encoded >> 28) & 0xF
    cmp = (encoded >> 24) & 0xF
    oparg = _sign12((encoded >> 12) & 0xFFF)
    if op & FUTEX_OP_OPARG_SHIFT:
        oparg = 1 << (oparg & 31)
        op &= ~FUTEX_OP_OPARG_SHIFT

    # Change the word; an unknown operation changes nothing.
    old = t.mm.read_u32(uaddr2)
    if op == FUTEX_OP_SET:
        new = oparg
    elif op == FUTEX_OP_ADD:
        new = old + oparg
    elif op == FUTEX_OP_OR:
        new = old | oparg
    elif op == FUTEX_OP_ANDN:
        new = old & ~oparg
    elif op == FUTEX_OP_XOR:
        new = old ^ oparg
    else:
        raise SyscallError(abi.ENOSYS)
    t.mm.write_u32(uaddr2, new)

    # The comparison only decides whom to wake, but an unknown one is an error.
    if cmp > FUTEX_OP_CMP_GE:
        raise SyscallError(abi.ENOSYS)


def _wait(t: Task, cmd: int, realtime: bool, timeout: int) -> int:
    """Nothing can wake a single-threaded waiter: sleep out the timeout."""
    if not timeout:
        raise WouldBlock(None)
    ns = read_timespec(t, timeout)
    # "For FUTEX_WAIT, timeout is interpreted as a relative value. [...] for
    # FUTEX_WAIT_BITSET [...] timeout is interpreted as an absolute value
    # using the clock specified by FUTEX_CLOCK_REALTIME" - futex(2)
    clock = abi.CLOCK_REALTIME if realtime else abi.CLOCK_MONOTONIC
    if cmd == FUTEX_WAIT:
        clock = abi.CLOCK_MONOTONIC
        ns += t.process.kernel.clock.monotonic_ns()
    _sleep_until(t, clock, ns)
    raise SyscallError(abi.ETIMEDOUT)


def _pi_lock(t: Task, uaddr: int) -> int:
    word = t.mm.read_u32(uaddr)
    owner = word & FUTEX_TID_MASK
    if owner == 0:
        t.mm.write_u32(uaddr, t.tid | (word & FUTEX_OWNER_DIED))
        return 0
    if owner == t.tid:
        raise SyscallError(abi.EDEADLK)
    raise SyscallError(abi.ESRCH)


def futex(t: Task, uaddr: int, op: int, val: int, timeout: int, uaddr2: int,
          val3: int) -> int:
    """futex(2)."""
    cmd = s32(op) & FUTEX_CMD_MASK
    realtime = bool(op & FUTEX_CLOCK_REALTIME)
    val, val3 = u32(val), u32(val3)

    # Check the operation and its flags.
    if realtime and cmd not in _REALTIME_OK:
        raise SyscallError(abi.ENOSYS)
    if uaddr % 4:
        raise SyscallError(abi.EINVAL)
    if cmd in (FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET) and val3 == 0:
        raise SyscallError(abi.EINVAL)

    # Waits: the word must still hold the expected value.
    if cmd in _WAITS:
        if cmd == FUTEX_WAIT_REQUEUE_PI and uaddr == uaddr2:
            raise SyscallError(abi.EINVAL)
        if t.mm.read_u32(uaddr) != val:
            raise SyscallError(abi.EAGAIN)
        return _wait(t, cmd, realtime, timeout)

    # Wakes find no waiter.
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        return 0
    if cmd == FUTEX_WAKE_OP:
        _wake_op(t, uaddr2, val3)
        return 0
    if cmd in _REQUEUES:
        # The count of waiters to requeue travels in the timeout argument.
        if s32(val) < 0 or s32(timeout) < 0:
            raise SyscallError(abi.EINVAL)
        if cmd == FUTEX_CMP_REQUEUE_PI and (val != 1 or uaddr == uaddr2):
            raise SyscallError(abi.EINVAL)
        if cmd != FUTEX_REQUEUE and t.mm.read_u32(uaddr) != val3:
            raise SyscallError(abi.EAGAIN)
        return 0

    # Priority-inheritance locks have no other thread to contend with.
    if cmd in _PI_LOCKS:
        return _pi_lock(t, uaddr)
    if cmd == FUTEX_UNLOCK_PI:
        if t.mm.read_u32(uaddr) & FUTEX_TID_MASK != t.tid:
            raise SyscallError(abi.EPERM)
        t.mm.write_u32(uaddr, 0)
        return 0
    raise SyscallError(abi.ENOSYS)


SYSCALLS = [
    syscall("futex", futex, "one thread per process: nobody else waits or wakes",
            partial=True),
]

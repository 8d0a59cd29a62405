"""futex(2), the primitive under every mutex and condition variable.

Waiters live in the kernel's :class:`~sentry.futex.FutexTable`. A wait parks
the task; when it runs again the syscall re-executes and finds on the task how
the wait ended (woken, or past its deadline). Every error Linux checks before
it looks at waiters (alignment, a zero bitset, bad timeouts, operations that
refuse FUTEX_CLOCK_REALTIME, unknown operations) is reported the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from sentry.futex import FUTEX_BITSET_MATCH_ANY
from sentry.syscalls.args import s32, u32
from sentry.syscalls.table import syscall
from sentry.syscalls.time import read_timespec
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

_PI_LOCKS = (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI)
# The operations that accept FUTEX_CLOCK_REALTIME; the others fail with ENOSYS.
_REALTIME_OK = (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI, FUTEX_LOCK_PI2)


def _wait(t: Task, uaddr: int, val: int, timeout: int, bitset: int, absolute: bool,
          realtime: bool) -> int:
    kernel = t.process.kernel
    futexes = kernel.futexes

    # Re-executed after a wakeup: report how the wait ended.
    waiter = t.futex_waiter
    if waiter is not None:
        deadline = t.wait_deadline_ns
        if waiter.woken:
            t.futex_waiter = t.wait_deadline_ns = None
            return 0
        if deadline is not None and kernel.clock.monotonic_ns() >= deadline:
            futexes.cancel(waiter)
            t.futex_waiter = t.wait_deadline_ns = None
            raise SyscallError(abi.ETIMEDOUT)
        raise WouldBlock(waiter.queue, deadline_ns=deadline)

    # "For FUTEX_WAIT, timeout is interpreted as a relative value. [...] for
    # FUTEX_WAIT_BITSET [...] timeout is interpreted as an absolute value
    # using the clock specified by FUTEX_CLOCK_REALTIME" - futex(2)
    deadline = None
    if timeout:
        ns = read_timespec(t, timeout)
        now = kernel.clock.monotonic_ns()
        if not absolute:
            deadline = now + ns
        elif realtime:
            deadline = now + (ns - kernel.clock.realtime_ns())
        else:
            deadline = ns

    # A fresh wait happens only if the word still holds the expected value.
    if t.mm.read_u32(uaddr) != val:
        raise SyscallError(abi.EAGAIN)
    if deadline is not None and deadline <= kernel.clock.monotonic_ns():
        raise SyscallError(abi.ETIMEDOUT)
    t.futex_waiter = futexes.enqueue(t.mm, uaddr, t, bitset)
    t.wait_deadline_ns = deadline
    raise WouldBlock(t.futex_waiter.queue, deadline_ns=deadline)


def _sign12(v: int) -> int:
    """A 12-bit field of a FUTEX_WAKE_OP encoding, sign-extended."""
    return v - 0x1000 if v & 0x800 else v


def _wake_op(t: Task, uaddr: int, count: int, count2: int, uaddr2: int,
             encoded: int) -> int:
    """Change the word at ``uaddr2``, wake on ``uaddr``, and maybe on ``uaddr2``."""
    op = (encoded >> 28) & 0xF
    cmp = (encoded >> 24) & 0xF
    oparg = _sign12((encoded >> 12) & 0xFFF)
    cmparg = _sign12(encoded & 0xFFF)
    if op & FUTEX_OP_OPARG_SHIFT:
        oparg = 1 << (oparg & 31)
        op &= ~FUTEX_OP_OPARG_SHIFT

    # Change the word.
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
    if cmp > FUTEX_OP_CMP_GE:
        raise SyscallError(abi.ENOSYS)
    t.mm.write_u32(uaddr2, new)

    # Wake on the first word, and on the second if the old value compares.
    signed = old - (1 << 32) if old & 0x80000000 else old
    hit = (signed == cmparg, signed != cmparg, signed < cmparg, signed <= cmparg,
           signed > cmparg, signed >= cmparg)[cmp]
    futexes = t.process.kernel.futexes
    woken = futexes.wake(t.mm, uaddr, count)
    if hit:
        woken += futexes.wake(t.mm, uaddr2, count2)
    return woken


def _pi_lock(t: Task, uaddr: int) -> int:
    # TODO: contended priority-inheritance locks should wait for the owner.
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
    futexes = t.process.kernel.futexes

    # Check the operation and its flags.
    if realtime and cmd not in _REALTIME_OK:
        raise SyscallError(abi.ENOSYS)
    if uaddr % 4:
        raise SyscallError(abi.EINVAL)
    if cmd in (FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET) and val3 == 0:
        raise SyscallError(abi.EINVAL)

    if cmd == FUTEX_WAIT:
        return _wait(t, uaddr, val, timeout, FUTEX_BITSET_MATCH_ANY, False, realtime)
    if cmd == FUTEX_WAIT_BITSET:
        return _wait(t, uaddr, val, timeout, val3, True, realtime)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = val3 if cmd == FUTEX_WAKE_BITSET else FUTEX_BITSET_MATCH_ANY
        return futexes.wake(t.mm, uaddr, s32(val), bitset)
    if cmd == FUTEX_WAKE_OP:
        return _wake_op(t, uaddr, s32(val), s32(timeout), uaddr2, val3)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        # The count of waiters to requeue travels in the timeout argument.
        if s32(val) < 0 or s32(timeout) < 0:
            raise SyscallError(abi.EINVAL)
        if cmd == FUTEX_CMP_REQUEUE and t.mm.read_u32(uaddr) != val3:
            raise SyscallError(abi.EAGAIN)
        return futexes.requeue(t.mm, uaddr, s32(val), uaddr2, s32(timeout))

    # Priority-inheritance locks: uncontended cases only.
    if cmd in _PI_LOCKS:
        return _pi_lock(t, uaddr)
    if cmd == FUTEX_UNLOCK_PI:
        if t.mm.read_u32(uaddr) & FUTEX_TID_MASK != t.tid:
            raise SyscallError(abi.EPERM)
        t.mm.write_u32(uaddr, 0)
        return 0
    raise SyscallError(abi.ENOSYS)


SYSCALLS = [
    syscall("futex", futex, "PI locks only uncontended; no WAIT_REQUEUE_PI",
            partial=True),
]

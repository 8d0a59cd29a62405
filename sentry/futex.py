"""Futexes: wait queues keyed by a word of guest memory.

A futex is identified by its address space and address for private futexes
and for shared ones alike: shared memory between processes is the same host
buffer, so the key for a MAP_SHARED word is (buffer, offset) instead, which two
address spaces agree on. Each key has a FIFO of waiters, each with a bitset
(FUTEX_WAIT_BITSET); a wake takes waiters in order whose bitset matches.

A waiter is a task parked in the scheduler on its own one-shot WaitQueue; a
wake moves the waiter out of the table and notifies that queue. When the task
runs again its futex syscall re-executes and sees it was woken (the kernel
records the outcome on the task), so it returns 0 instead of waiting again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from sentry import abi
from vfs.wait import WaitQueue

if TYPE_CHECKING:
    from sentry.mm import AddressSpace
    from sentry.task import Task

FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF


@attrs.define(eq=False)
class Waiter:
    task: Task
    bitset: int
    queue: WaitQueue = attrs.Factory(WaitQueue)
    woken: bool = False


class FutexTable:
    def __init__(self) -> None:
        self._waiters: dict[tuple[int, int], list[Waiter]] = {}

    @staticmethod
    def key(mm: AddressSpace, addr: int) -> tuple[int, int]:
        vma = mm.find(addr)
        if vma is not None and vma.flags & abi.MAP_SHARED:
            return id(vma.buf), vma.offset + (addr - vma.start)
        return id(mm), addr

    def enqueue(self, mm: AddressSpace, addr: int, task: Task, bitset: int) -> Waiter:
        waiter = Waiter(task, bitset)
        self._waiters.setdefault(self.key(mm, addr), []).append(waiter)
        return waiter

    def cancel(self, waiter: Waiter) -> None:
        """A waiter gave up (timeout, signal): take it out of its list."""
        for key, waiters in list(self._waiters.items()):
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[key]
                return

    def wake(self, mm: AddressSpace, addr: int, count: int,
             bitset: int = FUTEX_BITSET_MATCH_ANY) -> int:
        """Wake up to ``count`` waiters on the word; return how many woke."""
        key = self.key(mm, addr)
        waiters = self._waiters.get(key, [])
        woken = 0
        for waiter in list(waiters):
            if woken >= count:
                break
            if waiter.bitset & bitset:
                waiters.remove(waiter)
                waiter.woken = True
                waiter.queue.notify()
                woken += 1
        if not waiters:
            self._waiters.pop(key, None)
        return woken

    def requeue(self, mm: AddressSpace, addr: int, count: int, addr2: int,
                limit: int) -> int:
        """Wake ``count`` waiters, move up to ``limit`` more to ``addr2``."""
        woken = self.wake(mm, addr, count)
        key = self.key(mm, addr)
        waiters = self._waiters.get(key, [])
        moved = waiters[:limit]
        if moved:
            del waiters[:limit]
            if not waiters:
                self._waiters.pop(key, None)
            self._waiters.setdefault(self.key(mm, addr2), []).extend(moved)
        return woken + len(moved)

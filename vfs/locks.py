"""Advisory record locks: fcntl(2) POSIX locks and open file description locks.

A lock belongs to an *owner*: a process for POSIX locks (F_SETLK), an open
file description for OFD locks (F_OFD_SETLK). Locks of one owner never
conflict with each other; setting a lock over a range the owner already holds
replaces that part, and unlocking may split a lock in two. Ranges are
half-open ``[start, end)``; ``end`` is None for "to the end of the file and
beyond".
"""

from __future__ import annotations

import attrs

from sentry import abi

Owner = tuple[str, int]


@attrs.define
class Lock:
    owner: Owner
    kind: int  # F_RDLCK or F_WRLCK
    start: int
    end: int | None
    pid: int  # what F_GETLK reports: the process, or -1 for OFD locks


def _overlaps(a_start: int, a_end: int | None, b_start: int, b_end: int | None) -> bool:
    return (a_end is None or b_start < a_end) and (b_end is None or a_start < b_end)


class LockTable:
    """Every record lock in the sandbox, by file identity (dev, ino)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, int], list[Lock]] = {}

    def conflict(self, key: tuple[int, int], owner: Owner, kind: int, start: int,
                 end: int | None) -> Lock | None:
        """The first lock of another owner that ``kind`` on the range conflicts with."""
        for lock in self._locks.get(key, []):
            if lock.owner == owner or not _overlaps(lock.start, lock.end, start, end):
                continue
            if kind == abi.F_WRLCK or lock.kind == abi.F_WRLCK:
                return lock
        return None

    def set(self, key: tuple[int, int], owner: Owner, kind: int, start: int,
            end: int | None, pid: int) -> None:
        """Lock or unlock (F_UNLCK) the range for ``owner``; conflicts checked before."""
        kept: list[Lock] = []
        for lock in self._locks.get(key, []):
            if lock.owner != owner or not _overlaps(lock.start, lock.end, start, end):
                kept.append(lock)
                continue
            # Keep the parts of our old lock outside the new range.
            if lock.start < start:
                kept.append(attrs.evolve(lock, end=start))
            if end is not None and (lock.end is None or lock.end > end):
                kept.append(attrs.evolve(lock, start=end))
        if kind != abi.F_UNLCK:
            kept.append(Lock(owner, kind, start, end, pid))
        if kept:
            self._locks[key] = kept
        else:
            self._locks.pop(key, None)

    def release(self, owner: Owner, key: tuple[int, int] | None = None) -> None:
        """Drop every lock of ``owner`` (on one file, or on all)."""
        for k in [key] if key is not None else list(self._locks):
            locks = [lock for lock in self._locks.get(k, []) if lock.owner != owner]
            if locks:
                self._locks[k] = locks
            else:
                self._locks.pop(k, None)

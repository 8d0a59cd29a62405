"""The kernel's error types.

Handlers raise :class:`SyscallError` with an errno; the dispatcher is the only
place that turns it into the negative value the guest sees. Anything else that
escapes a handler is a sentry bug and is reported as one.
"""

from __future__ import annotations

from sentry import abi


class SyscallError(Exception):
    """A system call failed with ``errno``; the guest sees ``-errno``."""

    __slots__ = ("errno",)

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno

    def __str__(self) -> str:
        return abi.ERRNO_NAMES.get(self.errno, str(self.errno))


class GuestFault(Exception):
    """The guest did something that ends it with a signal (bad memory, bad insn)."""

    def __init__(self, signo: int, address: int, reason: str) -> None:
        super().__init__(signo, address, reason)
        self.signo = signo
        self.address = address
        self.reason = reason


class LoadError(Exception):
    """A program cannot be loaded; the message is one line for the user."""

    def __init__(self, message: str, errno: int = abi.ENOEXEC) -> None:
        super().__init__(message)
        self.errno = errno


class KernelBug(Exception):
    """An internal inconsistency in the sentry itself, never the guest's fault."""

"""Host descriptors the user handed to the guest: its stdin, stdout and stderr.

Theory of operation
-------------------
A :class:`HostStream` is the one way guest data reaches a host descriptor
other than through the file system: the sandbox's own standard streams (and
/dev/tty, a duplicate of one of them when it is a terminal). The sentry runs
every task on one host thread, so a stream never lets the host block it when
the guest asked not to block, and asks the scheduler to wait instead of
blocking when data is not there yet:

* before a read (and a non-blocking write) the host descriptor is polled with
  a zero timeout; when it is not ready the call fails with EAGAIN under
  O_NONBLOCK and raises :class:`vfs.wait.WouldBlock` carrying ``host_fd``
  otherwise, so the scheduler can select on it together with its own queues;
* the host descriptor's own O_NONBLOCK flag is never changed (it is shared with
  whatever started the sandbox); if it is set anyway, a host EAGAIN is handled
  like the not-ready case above;
* regular files are always ready; seeking, pread and pwrite are passed to the
  host, which answers ESPIPE for pipes, terminals and sockets.

Terminal ioctls go to the host terminal, except the foreground process group:
host process groups mean nothing to the guest, whose ids are the sentry's.
"""

from __future__ import annotations

import fcntl
import os
import select
import stat as pystat
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import Inode, OpenFile, Stat, fail
from vfs.hostfs import host_errno, stat_from_host
from vfs.wait import WouldBlock

if TYPE_CHECKING:
    from sentry.kernel import Task

# Sizes of the kernel structures the terminal ioctls copy (asm-generic/termbits.h:
# struct termios is 4 flags, c_line and 19 control characters; struct winsize
# is four shorts).
TERMIOS_SIZE = 36
WINSIZE_SIZE = 8

_READY_IN = abi.POLLIN | abi.POLLHUP | abi.POLLERR
_READY_OUT = abi.POLLOUT | abi.POLLHUP | abi.POLLERR
_ALWAYS = abi.POLLIN | abi.POLLRDNORM | abi.POLLOUT | abi.POLLWRNORM
_STD_FDS = (0, 1, 2)


class HostStream(OpenFile):
    """An open host descriptor (a terminal, pipe, socket or file) the user allowed.

    ``owned`` streams close ``fd`` on release (a dup made for the guest); the
    host's own 0, 1 and 2 are never closed. ``inode``, when given, is what
    fstat reports (/dev/tty stats as the devfs node, like Linux).
    """

    def __init__(
        self,
        fd: int,
        flags: int,
        path: str,
        owned: bool = False,
        inode: Inode | None = None,
    ) -> None:
        super().__init__(inode, flags, path)
        self.fd = fd
        self.host_fd = fd
        self.wait_queue = None
        self.owned = owned and fd not in _STD_FDS
        mode = os.fstat(fd).st_mode
        self.regular = pystat.S_ISREG(mode)
        self.seekable = self.regular or pystat.S_ISBLK(mode)
        self._tty = os.isatty(fd)
        self._poller = select.poll()
        self._poller.register(fd, abi.POLLIN | abi.POLLPRI | abi.POLLOUT)

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & abi.O_NONBLOCK)

    def _host(self, func, *args):  # type: ignore[no-untyped-def]
        try:
            return func(*args)
        except BrokenPipeError:
            raise SyscallError(abi.EPIPE) from None
        except OSError as exc:
            raise host_errno(exc) from None

    def _ready(self, mask: int) -> bool:
        if self.regular:
            return True
        return any(revents & mask for _, revents in self._poller.poll(0))

    def _wait(self, events: int, done: int = 0) -> SyscallError | WouldBlock:
        if self.nonblocking and not done:
            return SyscallError(abi.EAGAIN)
        return WouldBlock(None, events, host_fd=self.fd, done=done)

    # --- data ----------------------------------------------------------------

    def read(self, count: int) -> bytes:
        # A zero-length read asks nothing of the host.
        if count <= 0:
            return b""

        # Wait (or fail with EAGAIN) until the host has data or a hangup.
        if not self._ready(_READY_IN):
            raise self._wait(abi.POLLIN)

        # Read what is there; a host descriptor in non-blocking mode may still
        # have lost the race.
        try:
            return bytes(os.read(self.fd, count))
        except BlockingIOError:
            raise self._wait(abi.POLLIN) from None
        except OSError as exc:
            raise host_errno(exc) from None

    def write(self, data: bytes) -> int:
        # Wait (or fail with EAGAIN) while a host pipe is full, rather than
        # stall every task of the sentry.
        if not self._ready(_READY_OUT):
            raise self._wait(abi.POLLOUT)

        # Write it all; a host EAGAIN part way reports the part that went out.
        done = 0
        view = memoryview(data)
        while True:
            try:
                done += self._host(os.write, self.fd, view[done:])
            except BlockingIOError:
                if self.nonblocking and done:
                    return done
                raise self._wait(abi.POLLOUT, done) from None
            if done >= len(data) or self.nonblocking:
                return done

    def pread(self, count: int, offset: int) -> bytes:
        if offset < 0:
            raise fail(abi.EINVAL)
        return bytes(self._host(os.pread, self.fd, count, offset))

    def pwrite(self, data: bytes, offset: int) -> int:
        if offset < 0:
            raise fail(abi.EINVAL)
        return int(self._host(os.pwrite, self.fd, data, offset))

    def seek(self, offset: int, whence: int) -> int:
        if whence not in (
            abi.SEEK_SET,
            abi.SEEK_CUR,
            abi.SEEK_END,
            abi.SEEK_DATA,
            abi.SEEK_HOLE,
        ):
            raise fail(abi.EINVAL)
        new = int(self._host(os.lseek, self.fd, offset, whence))
        self.offset = new
        return new

    # --- state ---------------------------------------------------------------

    def stat(self) -> Stat:
        if self.inode is not None:
            return self.inode.stat()
        return stat_from_host(self._host(os.fstat, self.fd))

    def is_tty(self) -> bool:
        return self._tty

    def reopen(self, flags: int, task: Task | None) -> OpenFile:
        """Open the host object again, as /proc/self/fd/N does on the host.

        The new host description has its own offset, and O_TRUNC and O_APPEND
        apply to it; the guest's O_NONBLOCK stays the sentry's business.
        """
        host_flags = flags & (abi.O_ACCMODE | abi.O_APPEND) | os.O_CLOEXEC | os.O_NOCTTY
        fd = self._host(os.open, f"/proc/self/fd/{self.fd}", host_flags)
        return HostStream(fd, flags & ~abi.O_TRUNC, self.path, owned=True)

    def truncate(self, size: int) -> None:
        self._host(os.truncate, f"/proc/self/fd/{self.fd}", size)

    def poll(self) -> int:
        if self.regular:
            return _ALWAYS
        events = 0
        for _, revents in self._poller.poll(0):
            events |= revents
        if events & abi.POLLIN:
            events |= abi.POLLRDNORM
        if events & abi.POLLOUT:
            events |= abi.POLLWRNORM
        return events

    def poll_host_fd(self) -> int | None:
        # A host regular file is always ready; anything else is watched.
        if self.regular or self.fd < 0:
            return None
        return self.fd

    def ioctl(self, request: int, arg: int, task: Task) -> int:
        # The number of bytes waiting works on pipes and files as well.
        if request == abi.FIONREAD:
            out = self._host(fcntl.ioctl, self.fd, abi.FIONREAD, bytes(4))
            task.mm.write(arg, out)
            return 0

        # Everything else is a terminal request.
        if not self._tty:
            raise fail(abi.ENOTTY)
        if request in (abi.TCGETS, abi.TIOCGWINSZ):
            size = TERMIOS_SIZE if request == abi.TCGETS else WINSIZE_SIZE
            out = self._host(fcntl.ioctl, self.fd, request, bytes(size))
            task.mm.write(arg, out)
            return 0
        if request in (abi.TCSETS, abi.TCSETSW, abi.TCSETSF, abi.TIOCSWINSZ):
            size = WINSIZE_SIZE if request == abi.TIOCSWINSZ else TERMIOS_SIZE
            if request != abi.TIOCSWINSZ:
                from sentry import jobctl

                jobctl.background_access(task, abi.SIGTTOU)
            self._host(fcntl.ioctl, self.fd, request, task.mm.read(arg, size))
            return 0

        # Job control: the foreground group is the guest's own view of the
        # terminal (sentry.jobctl); the host's process groups stay as they are.
        from sentry import jobctl

        if request == abi.TIOCGPGRP:
            fg = jobctl.get_foreground(task)
            task.mm.write(arg, fg.to_bytes(4, "little", signed=True))
            return 0
        if request == abi.TIOCSPGRP:
            pgid = int.from_bytes(task.mm.read(arg, 4), "little", signed=True)
            jobctl.set_foreground(task, pgid)
            return 0
        if request == abi.TIOCGSID:
            sid = jobctl.get_session(task)
            task.mm.write(arg, sid.to_bytes(4, "little", signed=True))
            return 0
        if request == abi.TIOCSCTTY:
            jobctl.set_controlling(task, arg)
            return 0
        if request == abi.TIOCNOTTY:
            jobctl.drop_controlling(task)
            return 0
        raise fail(abi.ENOTTY)

    def release(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

"""Pipes, eventfds, host streams and /dev, driven directly.

Where the host can show what Linux does (a real pipe, a real eventfd, its own
/dev), the test asks it and compares.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_kernel import FakeKernel, FakeMM, Proc, Task, errno_of, make_kernel, resolve

from sentry import abi
from sentry.errors import SyscallError
from vfs.core import OpenFile
from vfs.devfs import makedev, new_devfs
from vfs.pipe import EventFd, PipeFile, new_pipe
from vfs.stdio import HostStream
from vfs.wait import WaitQueue, WouldBlock


@pytest.fixture
def kernel() -> FakeKernel:
    return make_kernel()


# --- wait queues ---------------------------------------------------------------


def test_notify_runs_every_registered_waiter_until_removed() -> None:
    queue, calls = WaitQueue(), []
    waiter = lambda: calls.append(1)  # noqa: E731
    queue.add(waiter)
    queue.notify()
    queue.remove(waiter)
    queue.notify()
    assert calls == [1]


# --- pipes ---------------------------------------------------------------------


def test_pipe_read_returns_what_is_available() -> None:
    r, w = new_pipe()
    w.write(b"abc")
    assert r.read(100) == b"abc"


def test_pipe_read_on_empty_pipe_waits_on_the_pipe_queue() -> None:
    r, w = new_pipe()
    with pytest.raises(WouldBlock) as info:
        r.read(1)
    assert info.value.queue is r.pipe.queue
    assert info.value.events & abi.POLLIN


def test_pipe_nonblocking_read_on_empty_pipe_is_eagain() -> None:
    r, w = new_pipe(abi.O_NONBLOCK)
    assert errno_of(r.read, 1) == abi.EAGAIN


def test_pipe_read_is_eof_once_writers_are_gone_and_data_drained() -> None:
    r, w = new_pipe()
    w.write(b"x")
    w.release()
    assert (r.read(10), r.read(10)) == (b"x", b"")


def test_pipe_write_without_readers_is_epipe_but_empty_write_succeeds() -> None:
    r, w = new_pipe()
    r.release()
    assert w.write(b"") == 0
    assert errno_of(w.write, b"x") == abi.EPIPE


def test_pipe_holds_64k() -> None:
    r, w = new_pipe(abi.O_NONBLOCK)
    assert w.write(bytes(100000)) == 65536
    assert w.pipe_size() == 65536


def test_pipe_small_write_is_atomic() -> None:
    r, w = new_pipe()
    w.write(bytes(65536 - 100))
    with pytest.raises(WouldBlock) as info:
        w.write(bytes(200))
    assert info.value.done == 0 and len(r.pipe.buffer) == 65436


def test_pipe_nonblocking_small_write_without_room_is_eagain() -> None:
    r, w = new_pipe(abi.O_NONBLOCK)
    w.write(bytes(65536 - 100))
    assert errno_of(w.write, bytes(200)) == abi.EAGAIN


def test_pipe_blocking_large_write_reports_the_part_written() -> None:
    r, w = new_pipe()
    with pytest.raises(WouldBlock) as info:
        w.write(bytes(70000))
    assert info.value.done == 65536


def test_pipe_poll_matches_linux() -> None:
    def native() -> list[int]:
        rfd, wfd = os.pipe()
        p = select.poll()
        out = []
        p.register(rfd)
        out.append(dict(p.poll(0)).get(rfd, 0))
        os.write(wfd, b"x")
        out.append(dict(p.poll(0)).get(rfd, 0))
        os.close(wfd)
        out.append(dict(p.poll(0)).get(rfd, 0))
        rfd2, wfd2 = os.pipe()
        p.register(wfd2)
        out.append(dict(p.poll(0)).get(wfd2, 0))
        os.close(rfd2)
        out.append(dict(p.poll(0)).get(wfd2, 0))
        for fd in (rfd, wfd2):
            os.close(fd)
        return out

    mask = abi.POLLIN | abi.POLLOUT | abi.POLLERR | abi.POLLHUP
    r, w = new_pipe()
    ours = [r.poll()]
    w.write(b"x")
    ours.append(r.poll())
    w.release()
    ours.append(r.poll())
    r2, w2 = new_pipe()
    ours.append(w2.poll())
    r2.release()
    ours.append(w2.poll())
    assert [e & mask for e in ours] == [e & mask for e in native()]


def test_pipe_ends_stat_as_one_fifo() -> None:
    r, w = new_pipe()
    st_r, st_w = r.stat(), w.stat()
    assert st_r.mode == abi.S_IFIFO | 0o600 and st_r.ino == st_w.ino
    assert r.path == f"pipe:[{st_r.ino}]"


def test_pipe_cannot_seek() -> None:
    r, _ = new_pipe()
    assert errno_of(r.seek, 0, abi.SEEK_SET) == abi.ESPIPE


def test_set_pipe_size_rounds_like_linux() -> None:
    rfd, wfd = os.pipe()
    try:
        native = [fcntl.fcntl(wfd, abi.F_SETPIPE_SZ, n) for n in (0, 5000, 70000)]
    finally:
        os.close(rfd)
        os.close(wfd)
    _, w = new_pipe()
    assert [w.set_pipe_size(n) for n in (0, 5000, 70000)] == native


def test_set_pipe_size_limits() -> None:
    _, w = new_pipe()
    assert errno_of(w.set_pipe_size, 2 << 20) == abi.EPERM
    assert w.set_pipe_size(2 << 20, privileged=True) == 2 << 20
    assert errno_of(w.set_pipe_size, (1 << 31) + 1) == abi.EINVAL


def test_set_pipe_size_below_content_is_ebusy() -> None:
    _, w = new_pipe()
    w.write(bytes(10000))
    assert errno_of(w.set_pipe_size, 4096) == abi.EBUSY


def test_pipe_fionread_counts_waiting_bytes() -> None:
    r, w = new_pipe()
    w.write(b"12345")
    task = Task(1, Proc(1))
    r.ioctl(abi.FIONREAD, FakeMM.BASE, task)
    assert task.mm.read(FakeMM.BASE, 4) == struct.pack("<i", 5)


def test_pipe_release_wakes_waiters() -> None:
    r, w = new_pipe()
    woken = []
    r.pipe.queue.add(lambda: woken.append(True))
    w.release()
    assert woken and r.poll() & abi.POLLHUP


def test_reopened_pipe_inode_counts_as_another_reader() -> None:
    r, w = new_pipe()
    again = r.pipe.inode.open(abi.O_RDONLY, "", None)
    assert isinstance(again, PipeFile) and r.pipe.readers == 2


# --- eventfd -------------------------------------------------------------------


def test_eventfd_read_drains_the_counter() -> None:
    e = EventFd(3, 0)
    e.write(struct.pack("<Q", 4))
    assert e.read(8) == struct.pack("<Q", 7) and e.count == 0


def test_eventfd_semaphore_reads_one() -> None:
    e = EventFd(3, abi.EFD_SEMAPHORE)
    assert e.read(8) == struct.pack("<Q", 1) and e.count == 2


def test_eventfd_short_buffers_are_einval_like_linux() -> None:
    fd = os.eventfd(1)
    try:
        with pytest.raises(OSError) as info:
            os.read(fd, 4)
    finally:
        os.close(fd)
    e = EventFd(1, 0)
    assert errno_of(e.read, 4) == info.value.errno == abi.EINVAL
    assert errno_of(e.write, b"1234") == abi.EINVAL


def test_eventfd_empty_read_waits_or_eagain() -> None:
    with pytest.raises(WouldBlock):
        EventFd(0, 0).read(8)
    assert errno_of(EventFd(0, abi.EFD_NONBLOCK).read, 8) == abi.EAGAIN


def test_eventfd_counter_stops_below_all_ones() -> None:
    e = EventFd(0, abi.EFD_NONBLOCK)
    assert errno_of(e.write, b"\xff" * 8) == abi.EINVAL
    e.write(struct.pack("<Q", 0xFFFF_FFFF_FFFF_FFFE))
    assert errno_of(e.write, struct.pack("<Q", 1)) == abi.EAGAIN


def test_eventfd_poll_matches_linux() -> None:
    fd = os.eventfd(0)
    try:
        p = select.poll()
        p.register(fd)
        native = [dict(p.poll(0)).get(fd, 0)]
        os.eventfd_write(fd, 1)
        native.append(dict(p.poll(0)).get(fd, 0))
    finally:
        os.close(fd)
    e = EventFd(0, 0)
    ours = [e.poll()]
    e.write(struct.pack("<Q", 1))
    ours.append(e.poll())
    mask = abi.POLLIN | abi.POLLOUT
    assert [x & mask for x in ours] == [x & mask for x in native]


def test_eventfd_stats_as_anonymous_inode() -> None:
    e = EventFd(0, 0)
    assert e.stat().mode == 0o600 and e.path == "anon_inode:[eventfd]"


# --- /dev ----------------------------------------------------------------------


def open_dev(k: FakeKernel, name: str, flags: int = abi.O_RDWR) -> OpenFile:
    return resolve(k, "/dev/" + name).inode.open(flags, "/dev/" + name, k.current)


def test_dev_null_reads_eof_and_swallows_writes(kernel: FakeKernel) -> None:
    f = open_dev(kernel, "null")
    assert f.read(10) == b"" and f.write(b"abc") == 3


def test_dev_zero_reads_zeros(kernel: FakeKernel) -> None:
    assert open_dev(kernel, "zero").read(5) == bytes(5)


def test_dev_full_reads_zeros_and_rejects_writes(kernel: FakeKernel) -> None:
    f = open_dev(kernel, "full")
    assert f.read(3) == bytes(3)
    assert errno_of(f.write, b"") == abi.ENOSPC


def test_dev_urandom_reads_from_the_kernel_source(kernel: FakeKernel) -> None:
    data = open_dev(kernel, "urandom").read(16)
    assert kernel.random_calls == [16] and data == kernel.random_bytes(16)


def test_dev_memory_devices_seek_to_zero_like_linux(kernel: FakeKernel) -> None:
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        native = os.lseek(fd, 100, os.SEEK_SET)
    finally:
        os.close(fd)
    assert open_dev(kernel, "null").seek(100, abi.SEEK_SET) == native == 0


@pytest.mark.parametrize("name", ["null", "zero", "full", "random", "urandom", "tty"])
def test_dev_numbers_and_modes_match_linux(kernel: FakeKernel, name: str) -> None:
    host = os.stat("/dev/" + name)
    st = resolve(kernel, "/dev/" + name).inode.stat()
    assert st.rdev == host.st_rdev
    assert st.mode == abi.S_IFCHR | 0o666


def test_makedev_matches_os_makedev() -> None:
    for major, minor in ((1, 3), (5, 0), (136, 300), (4095, 1 << 19)):
        assert makedev(major, minor) == os.makedev(major, minor)


def test_dev_tty_without_terminal_is_enxio(kernel: FakeKernel) -> None:
    assert errno_of(open_dev, kernel, "tty") == abi.ENXIO


def test_dev_tty_opens_a_dup_of_the_sandbox_terminal() -> None:
    master, slave = os.openpty()
    try:
        k = FakeKernel()
        tty = new_devfs(k, tty_fds=(slave,)).lookup("tty")
        assert tty is not None
        f = tty.open(abi.O_RDWR, "/dev/tty", None)
        assert isinstance(f, HostStream) and f.fd != slave and f.is_tty()
        f.write(b"hi")
        assert os.read(master, 10) == b"hi"
        assert f.stat().rdev == makedev(5, 0)
        f.release()
        os.fstat(slave)  # still open
    finally:
        os.close(master)
        os.close(slave)


def test_dev_std_links_point_into_proc_self(kernel: FakeKernel) -> None:
    links = {
        n: resolve(kernel, "/dev/" + n, follow=False).inode.readlink()
        for n in ("stdin", "stdout", "stderr", "fd")
    }
    assert links == {
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "fd": "/proc/self/fd",
    }


def test_dev_shm_is_a_sticky_world_writable_directory(kernel: FakeKernel) -> None:
    shm = resolve(kernel, "/dev/shm").inode
    assert shm.stat().mode == abi.S_IFDIR | 0o1777
    shm.create("sem.x", 0o600, 0, 0)
    assert shm.lookup("sem.x") is not None


def test_dev_lists_its_entries(kernel: FakeKernel) -> None:
    names = {e.name for e in resolve(kernel, "/dev").inode.entries()}
    assert {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "pts",
        "shm",
        "fd",
        "stdin",
        "stdout",
        "stderr",
    } <= names


# --- host streams --------------------------------------------------------------


@pytest.fixture
def host_pipe() -> Iterator[tuple[int, int]]:
    rfd, wfd = os.pipe()
    yield rfd, wfd
    for fd in (rfd, wfd):
        try:
            os.close(fd)
        except OSError:
            pass


def test_host_stream_reads_host_data(host_pipe: tuple[int, int]) -> None:
    rfd, wfd = host_pipe
    os.write(wfd, b"data")
    assert HostStream(rfd, abi.O_RDONLY, "pipe").read(100) == b"data"


def test_host_stream_empty_read_waits_on_host_fd(host_pipe: tuple[int, int]) -> None:
    rfd, _ = host_pipe
    with pytest.raises(WouldBlock) as info:
        HostStream(rfd, abi.O_RDONLY, "pipe").read(1)
    assert info.value.host_fd == rfd and info.value.queue is None


def test_host_stream_nonblocking_empty_read_is_eagain(
    host_pipe: tuple[int, int],
) -> None:
    rfd, _ = host_pipe
    f = HostStream(rfd, abi.O_RDONLY | abi.O_NONBLOCK, "pipe")
    assert errno_of(f.read, 1) == abi.EAGAIN


def test_host_stream_write_to_closed_pipe_is_epipe(host_pipe: tuple[int, int]) -> None:
    rfd, wfd = host_pipe
    os.close(rfd)
    assert errno_of(HostStream(wfd, abi.O_WRONLY, "pipe").write, b"x") == abi.EPIPE


def test_host_stream_pipe_cannot_seek(host_pipe: tuple[int, int]) -> None:
    rfd, _ = host_pipe
    assert errno_of(HostStream(rfd, abi.O_RDONLY, "p").seek, 0, 0) == abi.ESPIPE


def test_host_stream_regular_file_seeks_and_preads(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    f = HostStream(fd, abi.O_RDONLY, str(path), owned=True)
    assert f.seek(4, abi.SEEK_SET) == 4 and f.read(2) == b"45"
    assert f.pread(3, 1) == b"123" and f.poll() & abi.POLLIN
    f.release()


def test_host_stream_stat_is_the_host_fstat(host_pipe: tuple[int, int]) -> None:
    rfd, _ = host_pipe
    st = HostStream(rfd, abi.O_RDONLY, "p").stat()
    assert st.mode & abi.S_IFMT == abi.S_IFIFO and st.ino == os.fstat(rfd).st_ino


def test_host_stream_terminal_ioctls_on_a_pipe_are_enotty(
    host_pipe: tuple[int, int],
) -> None:
    rfd, _ = host_pipe
    task = Task(1, Proc(1))
    f = HostStream(rfd, abi.O_RDONLY, "p")
    assert not f.is_tty()
    assert errno_of(f.ioctl, abi.TCGETS, FakeMM.BASE, task) == abi.ENOTTY


def test_host_stream_fionread_works_on_a_pipe(host_pipe: tuple[int, int]) -> None:
    rfd, wfd = host_pipe
    os.write(wfd, b"abc")
    task = Task(1, Proc(1))
    HostStream(rfd, abi.O_RDONLY, "p").ioctl(abi.FIONREAD, FakeMM.BASE, task)
    assert task.mm.read(FakeMM.BASE, 4) == struct.pack("<i", 3)


def test_host_stream_poll_sees_host_data(host_pipe: tuple[int, int]) -> None:
    rfd, wfd = host_pipe
    f = HostStream(rfd, abi.O_RDONLY, "p")
    before = f.poll()
    os.write(wfd, b"x")
    assert not before & abi.POLLIN and f.poll() & abi.POLLIN


def test_host_stream_tcgets_copies_the_host_termios() -> None:
    master, slave = os.openpty()
    try:
        task = Task(1, Proc(1))
        f = HostStream(slave, abi.O_RDWR, "/dev/pts/x")
        f.ioctl(abi.TCGETS, FakeMM.BASE, task)
        lflag = struct.unpack_from("<I", task.mm.read(FakeMM.BASE, 36), 12)[0]
        assert lflag == termios.tcgetattr(slave)[3]
    finally:
        os.close(master)
        os.close(slave)


def test_host_stream_window_size_round_trips() -> None:
    master, slave = os.openpty()
    try:
        task = Task(1, Proc(1))
        f = HostStream(slave, abi.O_RDWR, "/dev/pts/x")
        task.mm.write(FakeMM.BASE, struct.pack("<HHHH", 40, 100, 0, 0))
        f.ioctl(abi.TIOCSWINSZ, FakeMM.BASE, task)
        f.ioctl(abi.TIOCGWINSZ, FakeMM.BASE + 8, task)
        assert struct.unpack("<HHHH", task.mm.read(FakeMM.BASE + 8, 8))[:2] == (40, 100)
    finally:
        os.close(master)
        os.close(slave)


def test_host_stream_bad_guest_pointer_is_efault() -> None:
    master, slave = os.openpty()
    try:
        f = HostStream(slave, abi.O_RDWR, "/dev/pts/x")
        task = Task(1, Proc(1))
        assert errno_of(f.ioctl, abi.TCGETS, 0x10, task) == abi.EFAULT
    finally:
        os.close(master)
        os.close(slave)


def test_host_stream_release_closes_only_owned_dups(host_pipe: tuple[int, int]) -> None:
    rfd, _ = host_pipe
    dup = os.dup(rfd)
    HostStream(rfd, abi.O_RDONLY, "p").release()
    HostStream(dup, abi.O_RDONLY, "p", owned=True).release()
    os.fstat(rfd)
    assert errno_of(lambda: _fstat(dup)) == abi.EBADF


def _fstat(fd: int) -> None:
    try:
        os.fstat(fd)
    except OSError as exc:
        raise SyscallError(exc.errno or 0) from None


def test_host_stream_zero_length_read_returns_at_once(
    host_pipe: tuple[int, int],
) -> None:
    rfd, _ = host_pipe
    assert os.read(rfd, 0) == HostStream(rfd, abi.O_RDONLY, "p").read(0) == b""

"""/proc, driven directly, against a tiny kernel and the host's own /proc."""

from __future__ import annotations

import os
import re

import pytest
from fake_kernel import (
    Entry,
    FakeKernel,
    FakeMM,
    errno_of,
    make_kernel,
    read_all,
    resolve,
)

from sentry import abi
from vfs.pipe import EventFd, new_pipe
from vfs.procfs import PROCFS_DEV
from vfs.tmpfs import new_tmpfs


@pytest.fixture
def kernel() -> FakeKernel:
    return make_kernel()


# --- /proc ---------------------------------------------------------------------


def test_proc_self_names_the_calling_process(kernel: FakeKernel) -> None:
    assert resolve(kernel, "/proc/self", follow=False).inode.readlink() == "7"


def test_proc_thread_self_names_the_calling_thread(kernel: FakeKernel) -> None:
    kernel.current = kernel.procs[7].threads[1]
    link = resolve(kernel, "/proc/thread-self", follow=False).inode
    assert link.readlink() == "7/task/9"


def test_proc_self_resolves_through_the_mount_table(kernel: FakeKernel) -> None:
    assert resolve(kernel, "/proc/self/comm").path == "/proc/7/comm"


def test_proc_pid_stat_has_linux_layout(kernel: FakeKernel) -> None:
    native = open("/proc/self/stat").read().split()
    ours = read_all(kernel, "/proc/7/stat").decode().split()
    assert len(ours) == len(native) == 52
    assert ours[:6] == ["7", "(prog)", "R", "1", "7", "7"]
    assert ours[19] == "2"  # num_threads
    assert ours[21] == "500"  # starttime in ticks


def test_proc_status_fields_appear_in_linux_order(kernel: FakeKernel) -> None:
    def keys(text: str) -> list[str]:
        return [line.split(":", 1)[0] for line in text.splitlines()]

    native = keys(open("/proc/self/status").read())
    ours = keys(read_all(kernel, "/proc/7/status").decode())
    common = [k for k in native if k in ours]
    assert [k for k in ours if k in native] == common
    assert {
        "Name",
        "Umask",
        "Tgid",
        "Pid",
        "PPid",
        "Uid",
        "Gid",
        "VmRSS",
        "Threads",
        "SigBlk",
        "SigCgt",
        "Cpus_allowed",
    } <= set(ours)


def test_proc_status_values(kernel: FakeKernel) -> None:
    kernel.procs[7].sigactions[abi.SIGINT].handler = 1  # SIG_IGN
    kernel.procs[7].threads[0].sigmask = 1 << (abi.SIGUSR1 - 1)
    text = read_all(kernel, "/proc/7/status").decode()
    fields = dict(line.split(":\t", 1) for line in text.splitlines())
    assert fields["Name"] == "prog" and fields["Umask"] == "0022"
    assert fields["Uid"] == "0\t0\t0\t0" and fields["Threads"] == "2"
    assert fields["VmSize"] == "      12 kB"
    assert fields["SigIgn"] == "0000000000000002"
    assert fields["SigBlk"] == "0000000000000200"
    assert fields["Cpus_allowed"] == "3" and fields["Cpus_allowed_list"] == "0-1"


def test_proc_thread_status_names_the_thread(kernel: FakeKernel) -> None:
    kernel.procs[7].threads[1].name = "worker"
    text = read_all(kernel, "/proc/7/task/9/status").decode()
    assert "Name:\tworker\n" in text and "Pid:\t9\n" in text and "Tgid:\t7\n" in text


def test_proc_task_lists_threads(kernel: FakeKernel) -> None:
    names = [e.name for e in resolve(kernel, "/proc/7/task").inode.entries()]
    assert names == [".", "..", "7", "9"]


def test_proc_non_leader_thread_is_reachable_but_not_listed(kernel: FakeKernel) -> None:
    names = {e.name for e in resolve(kernel, "/proc").inode.entries()}
    assert "9" not in names and "7" in names
    assert read_all(kernel, "/proc/9/stat").startswith(b"9 (prog)")


def test_proc_cmdline_and_environ_are_nul_terminated(kernel: FakeKernel) -> None:
    assert read_all(kernel, "/proc/7/cmdline") == b"prog\0-v\0"
    assert read_all(kernel, "/proc/7/environ") == b"HOME=/root\0"


def test_proc_links_name_exe_cwd_root(kernel: FakeKernel) -> None:
    def link(name: str) -> str:
        return resolve(kernel, "/proc/7/" + name, follow=False).inode.readlink()

    assert (link("exe"), link("cwd"), link("root")) == ("/bin/prog", "/", "/")


def test_proc_fd_lists_links_to_open_files(kernel: FakeKernel) -> None:
    r, w = new_pipe()
    kernel.procs[7].fds.table.update({0: Entry(r, False), 4: Entry(w, True)})
    fd_dir = resolve(kernel, "/proc/7/fd").inode
    assert [e.name for e in fd_dir.entries()][2:] == ["0", "4"]
    link0 = fd_dir.lookup("0")
    assert link0 is not None and link0.readlink() == r.path
    assert link0.stat().mode == abi.S_IFLNK | 0o500
    assert fd_dir.lookup("4").stat().mode == abi.S_IFLNK | 0o300
    assert fd_dir.lookup("04") is None


def test_proc_fdinfo_format_matches_linux(kernel: FakeKernel) -> None:
    r, w = new_pipe()
    kernel.procs[7].fds.table[4] = Entry(w, True)
    ours = read_all(kernel, "/proc/7/fdinfo/4").decode()
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    try:
        native = open(f"/proc/self/fdinfo/{wfd}").read()
    finally:
        os.close(rfd)
        os.close(wfd)
    pattern = r"pos:\t\d+\nflags:\t0[0-7]+\nmnt_id:\t\d+\nino:\t\d+\n"
    assert re.fullmatch(pattern, native) and re.fullmatch(pattern, ours)
    assert "flags:\t02000001\n" in ours and "flags:\t02000001\n" in native
    assert f"ino:\t{w.stat().ino}\n" in ours


def test_proc_fdinfo_of_eventfd_shows_the_counter(kernel: FakeKernel) -> None:
    kernel.procs[7].fds.table[3] = Entry(EventFd(5, 0), False)
    assert (
        "eventfd-count:                5\n"
        in read_all(kernel, "/proc/7/fdinfo/3").decode()
    )


def test_proc_maps_come_from_the_address_space(kernel: FakeKernel) -> None:
    assert read_all(kernel, "/proc/self/maps") == FakeMM().maps_text().encode()


def test_proc_mounts_lists_the_mount_table(kernel: FakeKernel) -> None:
    lines = read_all(kernel, "/proc/mounts").decode().splitlines()
    assert lines == [
        "none / tmpfs rw,relatime 0 0",
        "udev /dev devtmpfs rw,relatime 0 0",
        "proc /proc proc rw,relatime 0 0",
    ]


def test_proc_mountinfo_format_matches_linux(kernel: FakeKernel) -> None:
    pattern = r"\d+ \d+ \d+:\d+ / \S+ r[ow],\S+ - \S+ \S+ \S+"
    native = open("/proc/self/mountinfo").readline().rstrip("\n")
    ours = read_all(kernel, "/proc/self/mountinfo").decode().splitlines()
    assert re.fullmatch(pattern + r".*", native)
    assert all(re.fullmatch(pattern, line) for line in ours)
    assert ours[1].split()[1] == ours[0].split()[0]  # /dev sits on /


def test_proc_mount_points_are_escaped(kernel: FakeKernel) -> None:
    kernel.mounts.mount("/a b", new_tmpfs(), "tmpfs", "tmpfs")
    assert "tmpfs /a\\040b tmpfs" in read_all(kernel, "/proc/mounts").decode()


def test_proc_cpuinfo_describes_each_cpu_at_x86_64_v2(kernel: FakeKernel) -> None:
    text = read_all(kernel, "/proc/cpuinfo").decode()
    assert text.count("processor\t: ") == 2
    flags = set(re.search(r"^flags\t\t: (.*)$", text, re.M).group(1).split())
    assert {"sse4_2", "popcnt", "cx16", "ssse3", "lahf_lm"} <= flags
    assert not flags & {"avx", "avx2", "bmi1", "bmi2", "fma", "movbe", "xsave"}


def test_proc_meminfo_reports_the_memory_limit(kernel: FakeKernel) -> None:
    lines = read_all(kernel, "/proc/meminfo").decode().splitlines()
    native = open("/proc/meminfo").readline().rstrip("\n")
    assert lines[0] == "MemTotal:        1048576 kB"
    assert lines[1] == "MemFree:         1048564 kB"
    assert re.fullmatch(r"MemTotal: +\d+ kB", native)


def test_proc_uptime_comes_from_the_monotonic_clock(kernel: FakeKernel) -> None:
    assert read_all(kernel, "/proc/uptime") == b"1234.56 0.00\n"


def test_proc_stat_carries_boot_time(kernel: FakeKernel) -> None:
    text = read_all(kernel, "/proc/stat").decode()
    assert "\nbtime 1699998765\n" in text and text.startswith("cpu  ")


def test_proc_version_and_sysctls_come_from_uname(kernel: FakeKernel) -> None:
    assert read_all(kernel, "/proc/version").startswith(b"Linux version 6.1.0 ")
    assert read_all(kernel, "/proc/sys/kernel/hostname") == b"sandbox\n"
    assert read_all(kernel, "/proc/sys/kernel/osrelease") == b"6.1.0\n"
    assert read_all(kernel, "/proc/sys/kernel/ostype") == b"Linux\n"
    assert read_all(kernel, "/proc/sys/fs/pipe-max-size") == b"1048576\n"
    assert read_all(kernel, "/proc/sys/vm/overcommit_memory") == b"0\n"


def test_proc_loadavg_format_matches_linux(kernel: FakeKernel) -> None:
    pattern = r"\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n"
    assert re.fullmatch(pattern, open("/proc/loadavg").read())
    assert read_all(kernel, "/proc/loadavg") == b"0.00 0.00 0.00 1/2 7\n"


def test_proc_mounts_link_points_at_self(kernel: FakeKernel) -> None:
    link = resolve(kernel, "/proc/mounts", follow=False).inode
    assert link.readlink() == os.readlink("/proc/mounts") == "self/mounts"


def test_proc_modes_match_linux(kernel: FakeKernel) -> None:
    for path in (
        "/proc/self/stat",
        "/proc/self/environ",
        "/proc/self/fd",
        "/proc/self/task",
        "/proc/uptime",
        "/proc/self/exe",
    ):
        host = os.lstat(path.replace("/proc/self", f"/proc/{os.getpid()}"))
        ours = resolve(kernel, path, follow=False).inode.stat()
        assert ours.mode == host.st_mode, path
        assert ours.dev == PROCFS_DEV


def test_proc_generated_files_have_size_zero(kernel: FakeKernel) -> None:
    assert resolve(kernel, "/proc/7/status").inode.stat().size == 0


def test_proc_inode_numbers_are_stable(kernel: FakeKernel) -> None:
    first = resolve(kernel, "/proc/7/stat").inode.ino
    assert resolve(kernel, "/proc/self/stat").inode.ino == first
    assert resolve(kernel, "/proc/7/status").inode.ino != first
    assert resolve(kernel, "/proc").inode.ino == 1


def test_proc_file_is_a_snapshot_taken_at_open(kernel: FakeKernel) -> None:
    loc = resolve(kernel, "/proc/7/comm")
    f = loc.inode.open(abi.O_RDONLY, loc.path, kernel.current)
    kernel.procs[7].comm = "renamed"
    assert f.read(2) + f.read(100) == b"prog\n"


def test_proc_files_seek_like_seq_files(kernel: FakeKernel) -> None:
    fd = os.open("/proc/uptime", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
    loc = resolve(kernel, "/proc/uptime")
    f = loc.inode.open(abi.O_RDONLY, loc.path, kernel.current)
    assert errno_of(f.seek, 0, abi.SEEK_END) == info.value.errno
    assert f.seek(5, abi.SEEK_SET) == 5 and f.read(2) == b"56"


def test_proc_write_after_root_open_fails_like_linux(kernel: FakeKernel) -> None:
    stat = resolve(kernel, "/proc/7/stat").inode.open(abi.O_WRONLY, "", kernel.current)
    uptime = resolve(kernel, "/proc/uptime").inode.open(abi.O_RDWR, "", kernel.current)
    assert errno_of(stat.write, b"x") == abi.EINVAL
    assert errno_of(uptime.write, b"x") == abi.EIO


def test_proc_open_for_writing_is_eacces_for_users(kernel: FakeKernel) -> None:
    kernel.procs[7].creds.fsuid = 1000
    inode = resolve(kernel, "/proc/7/stat").inode
    assert errno_of(inode.open, abi.O_WRONLY, "", kernel.current) == abi.EACCES


def test_proc_directories_refuse_changes_like_linux(kernel: FakeKernel) -> None:
    root = resolve(kernel, "/proc").inode
    assert errno_of(root.mkdir, "foo", 0o755, 0, 0) == abi.ENOENT
    assert errno_of(root.mkdir, "self", 0o755, 0, 0) == abi.EEXIST
    assert errno_of(root.create, "foo", 0o644, 0, 0) == abi.ENOENT
    assert errno_of(root.unlink, "uptime") == abi.EPERM
    assert errno_of(resolve(kernel, "/proc/7").inode.rmdir, "fd") == abi.EPERM


def test_proc_entries_of_an_exited_process_vanish(kernel: FakeKernel) -> None:
    status = resolve(kernel, "/proc/7/status").inode
    del kernel.procs[7]
    assert errno_of(status.open, abi.O_RDONLY, "", None) == abi.ENOENT
    assert resolve(kernel, "/proc").inode.lookup("7") is None


def test_proc_self_without_a_current_task_is_enoent(kernel: FakeKernel) -> None:
    kernel.current = None
    link = resolve(kernel, "/proc/self", follow=False).inode
    assert errno_of(link.readlink) == abi.ENOENT


def test_proc_random_uuid_is_version_4(kernel: FakeKernel) -> None:
    text = read_all(kernel, "/proc/sys/kernel/random/uuid").decode()
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
        r"[0-9a-f]{12}\n",
        text,
    )

"""What the guest may change and see on the host, and nothing more.

- Without --bind, the root is an overlay: the guest sees its own writes, the
  host tree stays exactly as it was.
- --bind SRC:DST passes writes through to SRC; with :ro they fail with EROFS.
- --tmpfs DST hides whatever the host has at DST behind an empty file system.
- --root DIR confines every path to DIR: no symlink (absolute, relative,
  chained), no '..' and no host absolute path reaches a file outside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import run_native, run_sandbox, snapshot, tail

MARKER = "HOST-ONLY-MARKER-5d1c"
BIND = "/mnt/pysentry-bind"


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory with files a guest will try to change."""
    (tmp_path / "keep.txt").write_text("original")
    (tmp_path / "victim.txt").write_text("victim")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.txt").write_text("inner")
    return tmp_path


def fsops(build, ops: list[str], extra_opts: list[str] = ()):
    """Run the fsops program sandboxed; fail loudly if it did not start."""
    result = run_sandbox(build("fsops"), ops, extra_opts)
    assert result.returncode != 100, "fsops did not understand its arguments"
    return result


def mutations(d: str) -> list[str]:
    """Every kind of change fsops can make, aimed at the directory d."""
    return [
        *["write", f"{d}/new.txt", "created"],
        *["write", f"{d}/keep.txt", "overwritten"],
        *["append", f"{d}/keep.txt", "+more"],
        *["rm", f"{d}/victim.txt"],
        *["mkdir", f"{d}/made"],
        *["mv", f"{d}/sub", f"{d}/moved"],
        *["chmod", "600", f"{d}/new.txt"],
        *["truncate", f"{d}/moved/inner.txt", "2"],
        *["symlink", "keep.txt", f"{d}/link"],
        *["link", f"{d}/keep.txt", f"{d}/hard"],
        *["mtime", f"{d}/new.txt", "1000000000"],
    ]


def readback(d: str) -> list[str]:
    return [
        *["cat", f"{d}/new.txt"],
        *["cat", f"{d}/keep.txt"],
        *["cat", f"{d}/victim.txt"],
        *["cat", f"{d}/moved/inner.txt"],
        *["cat", f"{d}/link"],
        *["ls", d],
    ]


# -- the default overlay root ----------------------------------------------


def test_guest_sees_its_own_overlay_writes_as_native_linux_would(build, host_dir):
    d = str(host_dir)
    ops = [*mutations(d), *readback(d)]
    sandboxed = fsops(build, ops)
    native = run_native(build("fsops"), ops)
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert sandboxed.returncode == native.returncode
    assert native.stdout.splitlines()[-6:] == [
        f"cat {d}/new.txt: 'created' ok",
        f"cat {d}/keep.txt: 'overwritten+more' ok",
        f"cat {d}/victim.txt: ENOENT",
        f"cat {d}/moved/inner.txt: 'in' ok",
        f"cat {d}/link: 'overwritten+more' ok",
        f"ls {d}: hard keep.txt link made moved new.txt ok",
    ]


def test_every_mutation_succeeds_in_the_overlay(build, host_dir):
    result = fsops(build, mutations(str(host_dir)))
    assert result.returncode == 0, result.stdout + tail(result.stderr)


def test_overlay_writes_never_reach_the_host(build, host_dir):
    before = snapshot(host_dir)
    fsops(build, [*mutations(str(host_dir)), *readback(str(host_dir))])
    assert snapshot(host_dir) == before


def test_overlay_writes_to_system_paths_never_reach_the_host(build):
    target = Path("/etc/pysentry-overlay-probe")
    assert not target.exists()
    result = fsops(build, ["write", str(target), "x", "cat", str(target)])
    assert result.returncode == 0, result.stdout + tail(result.stderr)
    assert not target.exists()


# -- --bind and --tmpfs ----------------------------------------------------


def test_bind_mount_shows_host_files(build, host_dir):
    result = fsops(build, ["cat", f"{BIND}/keep.txt"], ["--bind", f"{host_dir}:{BIND}"])
    assert result.stdout == f"cat {BIND}/keep.txt: 'original' ok\n", tail(result.stderr)


def test_bind_mount_writes_reach_the_host(build, host_dir):
    opts = ["--bind", f"{host_dir}:{BIND}"]
    result = fsops(build, mutations(BIND), opts)
    assert result.returncode == 0, result.stdout + tail(result.stderr)
    assert (host_dir / "new.txt").read_text() == "created"
    assert (host_dir / "new.txt").stat().st_mode & 0o777 == 0o600
    assert (host_dir / "keep.txt").read_text() == "overwritten+more"
    assert not (host_dir / "victim.txt").exists()
    assert (host_dir / "made").is_dir()
    assert (host_dir / "moved" / "inner.txt").read_text() == "in"
    assert os.readlink(host_dir / "link") == "keep.txt"


def test_read_only_bind_refuses_writes_with_erofs(build, host_dir):
    # Each change aims at a name that exists (or whose parent exists), so the
    # only reason left to fail is the read-only mount.
    ops = [
        *["write", f"{BIND}/new.txt", "created"],
        *["write", f"{BIND}/keep.txt", "overwritten"],
        *["append", f"{BIND}/keep.txt", "+more"],
        *["rm", f"{BIND}/victim.txt"],
        *["mkdir", f"{BIND}/made"],
        *["rmdir", f"{BIND}/sub"],
        *["mv", f"{BIND}/sub", f"{BIND}/moved"],
        *["chmod", "600", f"{BIND}/keep.txt"],
        *["truncate", f"{BIND}/sub/inner.txt", "2"],
        *["symlink", "keep.txt", f"{BIND}/link"],
    ]
    result = fsops(build, ops, ["--bind", f"{host_dir}:{BIND}:ro"])
    outcomes = [line.rsplit(": ", 1)[1] for line in result.stdout.splitlines()]
    assert outcomes == ["EROFS"] * 10, result.stdout + tail(result.stderr)


def test_read_only_bind_leaves_the_host_unchanged(build, host_dir):
    before = snapshot(host_dir)
    fsops(build, mutations(BIND), ["--bind", f"{host_dir}:{BIND}:ro"])
    assert snapshot(host_dir) == before


def test_read_only_bind_can_still_be_read(build, host_dir):
    opts = ["--bind", f"{host_dir}:{BIND}:ro"]
    result = fsops(build, ["cat", f"{BIND}/sub/inner.txt"], opts)
    assert result.stdout == f"cat {BIND}/sub/inner.txt: 'inner' ok\n", tail(
        result.stderr
    )


def test_tmpfs_hides_what_the_host_has_there(build, host_dir):
    d = str(host_dir)
    result = fsops(build, ["cat", f"{d}/keep.txt", "ls", d], ["--tmpfs", d])
    assert result.stdout == f"cat {d}/keep.txt: ENOENT\nls {d}: ok\n", tail(
        result.stderr
    )


def test_tmpfs_takes_writes_without_touching_the_host(build, host_dir):
    d = str(host_dir)
    before = snapshot(host_dir)
    ops = ["write", f"{d}/t.txt", "in tmpfs", "cat", f"{d}/t.txt"]
    result = fsops(build, ops, ["--tmpfs", d])
    assert result.stdout.splitlines()[-1] == f"cat {d}/t.txt: 'in tmpfs' ok"
    assert snapshot(host_dir) == before


# -- --root DIR --------------------------------------------------------------


@pytest.fixture(scope="module")
def jail(build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outer/marker.txt must stay unreachable from a guest rooted at outer/root.

    Inside the root: the catpath program, files of its own, and symlinks that
    try every way out.
    """
    outer = tmp_path_factory.mktemp("jail")
    (outer / "marker.txt").write_text(MARKER)
    shutil.copy(build("catpath"), outer / "catpath-outside")

    root = outer / "root"
    (root / "etc").mkdir(parents=True)
    (root / "sub").mkdir()
    shutil.copy(build("catpath"), root / "catpath")
    (root / "inside.txt").write_text("inside the root")
    (root / "etc" / "passwd").write_text("passwd inside the root")
    links = {
        "escape": "/etc/passwd",
        "up": "../../../..",
        "abs_marker": str(outer / "marker.txt"),
        "rel_marker": "../marker.txt",
        "outside_dir": str(outer),
        "chain1": "chain2",
        "chain2": "sub/chain3",
        "sub/chain3": "../../marker.txt",
        "sub/deep": "../../../../../../marker.txt",
        "sub/parent": "..",
        "loop": "loop",
        "prog_outside": str(outer / "catpath-outside"),
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    return root


def in_jail(jail: Path, *paths: str):
    opts = ["--root", str(jail), "--cwd", "/"]
    return run_sandbox("/catpath", list(paths), opts)


def outside(jail: Path) -> str:
    """The host path of the marker, outside the root."""
    return str(jail.parent / "marker.txt")


def test_root_option_runs_the_program_found_inside_dir(jail):
    result = in_jail(jail, "/inside.txt")
    assert result.stdout == "/inside.txt: inside the root\n", tail(result.stderr)
    assert result.returncode == 0


def test_absolute_symlink_resolves_inside_the_root(jail):
    result = in_jail(jail, "/escape", "/etc/passwd")
    assert result.stdout == (
        "/escape: passwd inside the root\n/etc/passwd: passwd inside the root\n"
    ), tail(result.stderr)


def test_dotdot_at_the_root_stays_at_the_root(jail):
    climb = "/../../../.." + outside(jail)
    result = in_jail(jail, "/../inside.txt", "../marker.txt", "/../marker.txt", climb)
    assert result.stdout == (
        "/../inside.txt: inside the root\n"
        "../marker.txt: ENOENT\n"
        "/../marker.txt: ENOENT\n"
        f"{climb}: ENOENT\n"
    ), tail(result.stderr)


def test_relative_symlinks_cannot_climb_out(jail):
    result = in_jail(
        jail, "/up/inside.txt", "/up/marker.txt", "/rel_marker", "/sub/deep"
    )
    assert result.stdout == (
        "/up/inside.txt: inside the root\n"
        "/up/marker.txt: ENOENT\n"
        "/rel_marker: ENOENT\n"
        "/sub/deep: ENOENT\n"
    ), tail(result.stderr)


def test_symlink_chains_cannot_climb_out(jail):
    result = in_jail(jail, "/chain1", "/sub/parent/sub/parent/inside.txt")
    assert result.stdout == (
        "/chain1: ENOENT\n/sub/parent/sub/parent/inside.txt: inside the root\n"
    ), tail(result.stderr)


def test_absolute_symlinks_to_host_paths_stay_inside(jail):
    result = in_jail(jail, "/abs_marker", "/outside_dir/marker.txt")
    assert result.stdout == (
        "/abs_marker: ENOENT\n/outside_dir/marker.txt: ENOENT\n"
    ), tail(result.stderr)


def test_host_absolute_path_is_not_visible(jail):
    result = in_jail(jail, outside(jail))
    assert result.stdout == f"{outside(jail)}: ENOENT\n", tail(result.stderr)


def test_symlink_loop_inside_the_root_gives_eloop(jail):
    result = in_jail(jail, "/loop")
    assert result.stdout == "/loop: ELOOP\n", tail(result.stderr)


def test_marker_outside_the_root_is_never_readable(jail):
    marker = outside(jail)
    probes = [
        marker,
        "/.." + marker,
        "/up" + marker,
        "/up/marker.txt",
        "/abs_marker",
        "/rel_marker",
        "/chain1",
        "/sub/deep",
        "/outside_dir/marker.txt",
        "/sub/parent/../../marker.txt",
        "/proc/self/root/../marker.txt",
        "/proc/self/root" + marker,
        "/proc/self/cwd/../marker.txt",
        "/proc/1/root/../marker.txt",
        "/dev/../../marker.txt",
    ]
    result = in_jail(jail, *probes)
    assert len(result.stdout.splitlines()) == len(probes), tail(result.stderr)
    assert MARKER not in result.stdout
    assert result.returncode == len(probes)


def test_program_symlinked_outside_the_root_is_not_found(jail):
    result = run_sandbox("/prog_outside", [], ["--root", str(jail), "--cwd", "/"])
    assert result.returncode == 127, tail(result.stderr)
    assert result.stdout == ""


def test_program_given_by_host_path_outside_the_root_is_not_found(jail):
    program = str(jail.parent / "catpath-outside")
    result = run_sandbox(program, [outside(jail)], ["--root", str(jail), "--cwd", "/"])
    assert result.returncode == 127, tail(result.stderr)
    assert MARKER not in result.stdout

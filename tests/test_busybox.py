"""Busybox applets and sash built-ins behave under the sandbox as on the host.

Debian's static busybox reads host files through the overlay root, so each
applet's output and exit status are compared with a native run. Applets run
one at a time: anything needing fork (pipelines, scripts calling external
commands) waits until the kernel has processes.

Applets that write (mkdir, rm, cp, mv, ln, touch) are checked the other way:
under the sandbox their writes land in the memory overlay, so the host tree
must be exactly as before, and the exit status must be the one a native run
gives.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from conftest import (
    assert_same,
    run_native,
    run_sandbox,
    sandbox_env,
    skip_unless_exists,
    snapshot,
    tail,
)

BUSYBOX = "/bin/busybox"
SASH = "/bin/sash"

WORDS = "banana\napple\ncherry\napple\n10\n9\n100\napple\n"
LINES = "".join(f"line {n}\n" for n in range(1, 21))
FILES = ["alpha.txt", "beta.txt", "gamma.log", "sub/delta.txt", "sub/deeper/eps.txt"]

needs_busybox = skip_unless_exists(BUSYBOX)
needs_sash = skip_unless_exists(SASH)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small tree of known names and contents, made fresh for each test."""
    (tmp_path / "words.txt").write_text(WORDS)
    (tmp_path / "lines.txt").write_text(LINES)
    for name in FILES:
        path = tmp_path / "dir" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
    os.utime(tmp_path / "words.txt", (1_000_000_000, 1_000_000_000))
    return tmp_path


def busybox_same(*args: str, **kw) -> str:
    """Run one applet natively and sandboxed; return the (common) stdout."""
    return assert_same(BUSYBOX, list(args), **kw).stdout


# -- applets that only read ------------------------------------------------


@needs_busybox
def test_echo_prints_its_arguments():
    assert busybox_same("echo", "hello", "two  words", "") == "hello two  words \n"


@needs_busybox
def test_echo_n_omits_the_newline():
    assert busybox_same("echo", "-n", "no newline") == "no newline"


@needs_busybox
def test_echo_e_interprets_escapes():
    assert busybox_same("echo", "-e", "a\\tb\\x41") == "a\tbA\n"


@needs_busybox
def test_cat_reads_a_file_the_test_made(tree):
    assert busybox_same("cat", str(tree / "words.txt")) == WORDS


@needs_busybox
def test_cat_reads_host_system_files():
    assert busybox_same("cat", "/etc/passwd", "/etc/hostname")


@needs_busybox
def test_cat_of_a_missing_file_fails(tree):
    assert assert_same(BUSYBOX, ["cat", str(tree / "missing")]).returncode == 1


@needs_busybox
def test_cat_copies_standard_input(tree):
    with open(tree / "lines.txt") as stdin:
        assert busybox_same("cat", stdin=stdin) == LINES


@needs_busybox
def test_ls_lists_names_sorted(tree):
    assert (
        busybox_same("ls", str(tree / "dir")) == "alpha.txt\nbeta.txt\ngamma.log\nsub\n"
    )


@needs_busybox
def test_ls_a_shows_dot_entries(tree):
    assert busybox_same("ls", "-1a", str(tree / "dir" / "sub")).startswith(".\n..\n")


@needs_busybox
def test_ls_F_classifies_entries(tree):
    assert "sub/\n" in busybox_same("ls", "-F", str(tree / "dir"))


@needs_busybox
def test_ls_l_shows_modes_sizes_and_times(tree):
    busybox_same("ls", "-ln", str(tree / "dir"), str(tree / "words.txt"))


@needs_busybox
def test_wc_counts_lines_words_bytes(tree):
    busybox_same("wc", str(tree / "words.txt"), str(tree / "lines.txt"))


@needs_busybox
def test_wc_c_counts_a_large_host_binary():
    size = os.path.getsize(BUSYBOX)
    assert busybox_same("wc", "-c", BUSYBOX) == f"{size} {BUSYBOX}\n"


@pytest.mark.parametrize("flags", [[], ["-n"], ["-u"], ["-r"], ["-n", "-r", "-u"]])
@needs_busybox
def test_sort_orders_lines(tree, flags):
    busybox_same("sort", *flags, str(tree / "words.txt"))


@needs_busybox
def test_sed_substitutes(tree):
    out = busybox_same("sed", "-e", "s/apple/APPLE/g", str(tree / "words.txt"))
    assert out == WORDS.replace("apple", "APPLE")


@needs_busybox
def test_sed_prints_a_range(tree):
    assert busybox_same("sed", "-n", "2,4p", str(tree / "lines.txt")) == (
        "line 2\nline 3\nline 4\n"
    )


@needs_busybox
def test_awk_numbers_records(tree):
    busybox_same("awk", '{ print NR ": " $0 }', str(tree / "words.txt"))


@needs_busybox
def test_awk_computes_in_begin():
    prog = (
        'BEGIN { for (i = 1; i <= 10; i++) s += i * i; printf "%d %.3f\\n", s, s / 7 }'
    )
    assert busybox_same("awk", prog) == "385 55.000\n"


@needs_busybox
def test_awk_splits_host_passwd_fields():
    assert "root\n" in busybox_same("awk", "-F:", "{ print $1 }", "/etc/passwd")


@needs_busybox
def test_grep_finds_numbered_matches(tree):
    assert busybox_same("grep", "-n", "apple", str(tree / "words.txt")) == (
        "2:apple\n4:apple\n8:apple\n"
    )


@needs_busybox
def test_grep_counts_matches(tree):
    assert busybox_same("grep", "-c", "an", str(tree / "words.txt")) == "1\n"


@needs_busybox
def test_grep_without_match_exits_1(tree):
    native = assert_same(BUSYBOX, ["grep", "durian", str(tree / "words.txt")])
    assert (native.returncode, native.stdout) == (1, "")


def find_same(*args: str) -> list[str]:
    """find prints in directory order, which is not part of the contract."""
    native = run_native(BUSYBOX, ["find", *args])
    sandboxed = run_sandbox(BUSYBOX, ["find", *args])
    assert sorted(sandboxed.stdout.splitlines()) == sorted(native.stdout.splitlines())
    assert sandboxed.returncode == native.returncode, tail(sandboxed.stderr)
    return sorted(native.stdout.splitlines())


@needs_busybox
def test_find_walks_the_whole_tree(tree):
    top = tree / "dir"
    assert len(find_same(str(top))) == len(FILES) + 3


@needs_busybox
def test_find_filters_by_name(tree):
    top = tree / "dir"
    assert find_same(str(top), "-name", "*.txt") == sorted(
        str(top / f) for f in FILES if f.endswith(".txt")
    )


@needs_busybox
def test_find_filters_by_type(tree):
    top = tree / "dir"
    assert find_same(str(top), "-type", "d") == sorted(
        [str(top), str(top / "sub"), str(top / "sub" / "deeper")]
    )


@needs_busybox
def test_stat_formats_size_type_and_mode(tree):
    out = busybox_same(
        "stat",
        "-c",
        "%s %F %a",
        str(tree / "words.txt"),
        str(tree / "dir"),
        "/dev/null",
    )
    assert out.startswith(f"{len(WORDS)} regular file 644\n")


@pytest.mark.parametrize("tool", ["sha256sum", "md5sum"])
@needs_busybox
def test_checksums_match_the_host(tree, tool):
    words = tree / "words.txt"
    digest = hashlib.new(tool[:-3], words.read_bytes()).hexdigest()
    assert busybox_same(tool, str(words)) == f"{digest}  {words}\n"


@needs_busybox
def test_sha256sum_of_a_large_host_binary():
    digest = hashlib.sha256(Path(BUSYBOX).read_bytes()).hexdigest()
    assert busybox_same("sha256sum", BUSYBOX).split()[0] == digest


@pytest.mark.parametrize(
    "args",
    [
        ["head", "-n", "3"],
        ["head", "-c", "5"],
        ["tail", "-n", "2"],
        ["tail", "-c", "8"],
    ],
)
@needs_busybox
def test_head_and_tail_cut_files(tree, args):
    busybox_same(*args, str(tree / "lines.txt"))


@pytest.mark.parametrize("args", [["a-z", "A-Z"], ["-d", "aeiou"], ["-s", "p"]])
@needs_busybox
def test_tr_translates_standard_input(tree, args):
    with open(tree / "words.txt") as stdin:
        busybox_same("tr", *args, stdin=stdin)


@needs_busybox
def test_cut_selects_fields_of_host_passwd():
    assert busybox_same("cut", "-d:", "-f1,3", "/etc/passwd").startswith("root:0\n")


@needs_busybox
def test_cut_selects_characters(tree):
    assert busybox_same("cut", "-c1-3", str(tree / "lines.txt")).startswith("lin\n")


@pytest.mark.parametrize("flags", [[], ["-c"], ["-d"]])
@needs_busybox
def test_uniq_collapses_repeats(tmp_path, flags):
    path = tmp_path / "repeats.txt"
    path.write_text("a\na\nb\nc\nc\nc\na\n")
    busybox_same("uniq", *flags, str(path))


@pytest.mark.parametrize("args", [["5"], ["5", "-2", "-5"], ["-s", ",", "1", "4"]])
@needs_busybox
def test_seq_counts(args):
    busybox_same("seq", *args)


@needs_busybox
def test_date_epoch_agrees_with_the_host_clock():
    sandboxed = run_sandbox(BUSYBOX, ["date", "+%s"])
    assert sandboxed.returncode == 0, tail(sandboxed.stderr)
    assert abs(int(sandboxed.stdout) - time.time()) <= 5


@needs_busybox
def test_date_formats_a_given_time():
    assert busybox_same("date", "-u", "-d", "@86400", "+%Y-%m-%d %H:%M") == (
        "1970-01-02 00:00\n"
    )


@needs_busybox
def test_gzip_output_decompresses_to_the_input(tree):
    words = tree / "words.txt"
    native = run_native(BUSYBOX, ["gzip", "-c", str(words)], text=False)
    sandboxed = run_sandbox(BUSYBOX, ["gzip", "-c", str(words)], text=False)
    assert sandboxed.returncode == native.returncode == 0, tail(sandboxed.stderr)
    assert gzip.decompress(sandboxed.stdout) == gzip.decompress(native.stdout)
    assert gzip.decompress(sandboxed.stdout) == WORDS.encode()


@needs_busybox
def test_gunzip_reads_a_python_made_archive(tree):
    packed = tree / "lines.txt.gz"
    packed.write_bytes(gzip.compress(LINES.encode()))
    assert busybox_same("gunzip", "-c", str(packed)) == LINES


@pytest.fixture
def archive(tree: Path) -> Path:
    path = tree / "archive.tar"
    with tarfile.open(path, "w") as tar:
        for name in FILES:
            tar.add(tree / "dir" / name, arcname=name)
        info = tarfile.TarInfo("made-in-memory.txt")
        data = b"from memory\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@needs_busybox
def test_tar_lists_a_python_made_archive(archive):
    out = busybox_same("tar", "tf", str(archive))
    assert out.splitlines() == [*FILES, "made-in-memory.txt"]


@needs_busybox
def test_tar_extracts_a_member_to_stdout(archive):
    assert busybox_same("tar", "xOf", str(archive), "made-in-memory.txt") == (
        "from memory\n"
    )


# -- a sweep of applets, each compared with a native run ---------------------


@pytest.fixture
def sample(tree: Path) -> Path:
    """``tree`` plus binary data, key/value and CSV text, compressed copies of
    lines.txt, a symlink, and an old file to compare times against."""
    (tree / "bin.dat").write_bytes(Path(BUSYBOX).read_bytes()[:3000])
    (tree / "kv.txt").write_text("b 2\na 1\nc 3\nb 9\n")
    (tree / "people.csv").write_text("name,age\nbob,30\nalice,25\ncarol,35\n")
    (tree / "lines.txt.gz").write_bytes(gzip.compress(LINES.encode()))
    (tree / "lines.txt.bz2").write_bytes(bz2.compress(LINES.encode()))
    (tree / "lines.txt.xz").write_bytes(lzma.compress(LINES.encode()))
    (tree / "dir" / "link").symlink_to("alpha.txt")
    os.utime(tree / "dir" / "alpha.txt", (978_307_200, 978_307_200))
    return tree


def applet_same(sample: Path, args: list[str], stdin: bytes | None = None) -> str:
    """Run an applet in ``sample`` natively and sandboxed; return stdout."""
    kw = {"cwd": sample, "text": False, "env": sandbox_env()}
    native = run_native(BUSYBOX, args, input=stdin, stdin=None, **kw)
    sandboxed = run_sandbox(BUSYBOX, args, input=stdin, stdin=None, **kw)
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert sandboxed.stderr == native.stderr
    assert sandboxed.returncode == native.returncode
    return native.stdout.decode(errors="replace")


DUMPS = {
    "od": ["od", "bin.dat"],
    "od_characters": ["od", "-c", "words.txt"],
    "od_hex_bytes": ["od", "-Ax", "-tx1", "-N", "64", "bin.dat"],
    "od_whole_host_binary": ["od", "-A", "d", "-t", "x8", BUSYBOX],
    "hexdump_canonical": ["hexdump", "-C", "bin.dat"],
    "hexdump_format": ["hexdump", "-e", '16/1 "%02x " "\\n"', "words.txt"],
    "xxd": ["xxd", "bin.dat"],
    "xxd_plain": ["xxd", "-p", "words.txt"],
    "xxd_grouped": ["xxd", "-l", "32", "-c", "8", "-g", "2", "bin.dat"],
    "base64": ["base64", "bin.dat"],
    "strings": ["strings", "-n", "6", "bin.dat"],
}


@pytest.mark.parametrize("args", DUMPS.values(), ids=DUMPS.keys())
@needs_busybox
def test_dumps_of_binary_data(sample, args):
    assert applet_same(sample, args)


@pytest.mark.parametrize(
    ("args", "stdin"),
    [(["xxd", "-r", "-p"], b"68656c6c6f0a"), (["base64", "-d"], b"aGVsbG8K\n")],
    ids=["xxd_reverse", "base64_decode"],
)
@needs_busybox
def test_decoders_read_standard_input(sample, args, stdin):
    assert applet_same(sample, args, stdin) == "hello\n"


DD = {
    "skip_and_count": ["if=bin.dat", "bs=100", "count=3", "skip=2"],
    "single_bytes": ["if=bin.dat", "bs=1", "count=10", "skip=100", "status=none"],
    "input_and_output_block_sizes": ["if=bin.dat", "ibs=64", "obs=100", "count=5"],
    "conversions": ["if=words.txt", "conv=ucase,swab"],
    "from_dev_zero": ["if=/dev/zero", "bs=1k", "count=4", "status=noxfer"],
    "skip_past_the_end": ["if=words.txt", "skip=100", "bs=1k"],
}


@pytest.mark.parametrize("args", DD.values(), ids=DD.keys())
@needs_busybox
def test_dd_copies_to_standard_output(sample, args):
    applet_same(sample, ["dd", *args])


@pytest.mark.parametrize(
    "args",
    [
        ["cmp", "words.txt", "words.txt"],
        ["cmp", "words.txt", "lines.txt"],
        ["cmp", "-l", "dir/alpha.txt", "dir/beta.txt"],
        ["cmp", "dir/alpha.txt", "dir/gamma.log"],
        ["diff", "words.txt", "lines.txt"],
        ["diff", "-u", "dir/alpha.txt", "dir/beta.txt"],
        ["diff", "-r", "dir", "dir"],
        ["diff", "dir", "dir/sub"],
    ],
    ids=["cmp_same", "cmp_differ", "cmp_list", "cmp_eof", "diff", "diff_unified",
         "diff_recursive", "diff_directories"],
)
@needs_busybox
def test_cmp_and_diff_compare_files(sample, args):
    applet_same(sample, args)


LISTINGS = {
    "ls_long": ["ls", "-l", "dir"],
    "ls_long_recursive": ["ls", "-lR", "dir"],
    "ls_long_all": ["ls", "-la", "dir"],
    "ls_dereferenced": ["ls", "-lL", "dir"],
    "ls_directories_themselves": ["ls", "-ld", "dir", "/", "/tmp", "dir/link/"],
    "ls_sizes": ["ls", "-s", "."],
    "ls_by_time": ["ls", "-lt", "dir"],
    "ls_by_size": ["ls", "-lS", "."],
    "ls_inodes": ["ls", "-i", "dir"],
    "ls_host_files": ["ls", "-ln", "/etc/passwd", "/usr/bin/env"],
    "du_summary": ["du", "-s", "dir"],
    "du_all": ["du", "-a", "dir"],
    "du_kilobytes": ["du", "-k", "words.txt"],
}


@pytest.mark.parametrize("args", LISTINGS.values(), ids=LISTINGS.keys())
@needs_busybox
def test_listings_of_a_tree(sample, args):
    assert applet_same(sample, args)


@needs_busybox
def test_df_succeeds_on_the_root(sample):
    """Block counts of the sandbox's root are its own; only the status is Linux's."""
    native = run_native(BUSYBOX, ["df", "/"])
    sandboxed = run_sandbox(BUSYBOX, ["df", "/"])
    assert sandboxed.returncode == native.returncode == 0, tail(sandboxed.stderr)


STAT_FORMAT = "%n|%i|%d|%h|%s|%b|%B|%o|%f|%a|%A|%u|%g|%U|%G|%F|%N|%X|%Y|%Z|%y"


@pytest.mark.parametrize(
    "args",
    [
        ["-c", STAT_FORMAT, "words.txt", "dir", "dir/link", "/etc/passwd", "/"],
        ["-c", "%n|%h|%s|%b|%f|%a|%A|%u|%g|%t|%T|%F", "/dev/null", "/dev/zero"],
        ["-L", "-c", "%n|%i|%s|%F", "dir/link"],
        ["words.txt", "dir"],
        ["-t", "words.txt"],
        ["missing"],
    ],
    ids=["formats", "devices", "dereferenced", "default", "terse", "missing"],
)
@needs_busybox
def test_stat_formats_host_files(sample, args):
    applet_same(sample, ["stat", *args])


IDENTITY = {
    "id": ["id"],
    "id_user": ["id", "-u"],
    "id_group_names": ["id", "-nG"],
    "uname": ["uname", "-s", "-m"],
    "env": ["env"],
    "env_replaced": ["env", "-i", "A=1", "B=2"],
    "env_unset": ["env", "-u", "PATH"],
    "whoami": ["whoami"],
    "groups": ["groups"],
    "nproc": ["nproc"],
    "pwd": ["pwd"],
}


@pytest.mark.parametrize("args", IDENTITY.values(), ids=IDENTITY.keys())
@needs_busybox
def test_identity_and_environment(sample, args):
    assert applet_same(sample, args)


WORDS_AND_NAMES = {
    "printf": ["printf", "%s-%d-%x-%5.2f|%-4s|\\n", "a", "42", "255", "3.14159", "b"],
    "printf_escapes": ["printf", "%b", "a\\tb\\n"],
    "expr_arithmetic": ["expr", "3", "+", "4", "*", "5"],
    "expr_match": ["expr", "abcdef", ":", "a\\(.*\\)e"],
    "expr_false": ["expr", "0", "+", "0"],
    "basename": ["basename", "/a/b/c.txt", ".txt"],
    "dirname": ["dirname", "/a/b/c.txt"],
    "realpath": ["realpath", "dir/link", "dir/sub/../beta.txt"],
    "readlink": ["readlink", "dir/link"],
    "readlink_canonical": ["readlink", "-f", "dir/link"],
    "readlink_of_a_file": ["readlink", "dir/alpha.txt"],
    "seq_equal_width": ["seq", "-w", "8", "11"],
    "factor": ["factor", "360", "97"],
}


@pytest.mark.parametrize("args", WORDS_AND_NAMES.values(), ids=WORDS_AND_NAMES.keys())
@needs_busybox
def test_words_numbers_and_names(sample, args):
    applet_same(sample, args)


TESTS = {
    "regular_file": ["test", "-f", "words.txt"],
    "not_a_directory": ["test", "-d", "words.txt"],
    "readable_and_writable": ["[", "-r", "words.txt", "-a", "-w", "words.txt", "]"],
    "not_executable": ["[", "-x", "words.txt", "]"],
    "executable": ["[", "-x", BUSYBOX, "]"],
    "symlink": ["[", "-L", "dir/link", "]"],
    "non_empty": ["[", "-s", "words.txt", "]"],
    "newer_than": ["[", "words.txt", "-nt", "dir/alpha.txt", "]"],
    "missing": ["[", "-e", "nope", "]"],
    "character_device": ["[", "-c", "/dev/null", "]"],
}


@pytest.mark.parametrize("args", TESTS.values(), ids=TESTS.keys())
@needs_busybox
def test_test_and_bracket_examine_files(sample, args):
    applet_same(sample, args)


TEXT = {
    "nl": ["nl", "words.txt"],
    "nl_all_lines": ["nl", "-ba", "-w3", "lines.txt"],
    "tac": ["tac", "words.txt"],
    "rev": ["rev", "words.txt"],
    "fold": ["fold", "-w", "3", "words.txt"],
    "paste": ["paste", "words.txt", "lines.txt"],
    "paste_serial": ["paste", "-s", "-d,", "words.txt"],
    "expand": ["expand", "kv.txt"],
    "sort_key": ["sort", "-k2", "-n", "kv.txt"],
    "sort_two_keys": ["sort", "-k1,1", "-k2,2nr", "kv.txt"],
    "sort_separator": ["sort", "-t,", "-k2", "-n", "people.csv"],
    "uniq_count": ["uniq", "-c", "kv.txt"],
    "wc_lines": ["wc", "-l", "words.txt", "lines.txt"],
    "wc_bytes": ["wc", "-c", "bin.dat"],
    "wc_words": ["wc", "-w", "words.txt"],
    "wc_longest": ["wc", "-L", "lines.txt"],
    "head_two_files": ["head", "-n2", "words.txt", "lines.txt"],
    "tail_from_line": ["tail", "-n", "+18", "lines.txt"],
    "cut_bytes": ["cut", "-b", "2-", "words.txt"],
}


@pytest.mark.parametrize("args", TEXT.values(), ids=TEXT.keys())
@needs_busybox
def test_text_tools(sample, args):
    assert applet_same(sample, args)


GREP = {
    "recursive": ["grep", "-r", "content", "dir"],
    "recursive_names": ["grep", "-rl", "delta", "dir"],
    "count": ["grep", "-c", "apple", "words.txt", "lines.txt"],
    "invert": ["grep", "-v", "apple", "words.txt"],
    "ignore_case": ["grep", "-i", "APPLE", "words.txt"],
    "extended": ["grep", "-E", "^(ap|ba)", "words.txt"],
    "only_matching": ["grep", "-o", "an", "words.txt"],
    "words": ["grep", "-w", "10", "words.txt"],
    "whole_lines": ["grep", "-x", "9", "words.txt"],
    "fixed": ["grep", "-F", "a.p", "words.txt"],
    "context": ["grep", "-A1", "-B1", "cherry", "words.txt"],
    "quiet": ["grep", "-q", "apple", "words.txt"],
    "missing_file": ["grep", "apple", "missing"],
    "silent_missing_file": ["grep", "-s", "apple", "missing"],
    "a_directory": ["grep", "x", "dir"],
}


@pytest.mark.parametrize("args", GREP.values(), ids=GREP.keys())
@needs_busybox
def test_grep_options(sample, args):
    applet_same(sample, args)


SED = {
    "several_expressions": ["sed", "-n", "-e", "2p", "-e", "5,7p", "-e", "$p",
                            "lines.txt"],
    "several_commands": ["sed", "-e", "s/line/L/;s/1/one/g", "-e", "/5/d",
                         "lines.txt"],
    "transliterate": ["sed", "y/abc/xyz/", "words.txt"],
    "hold_space": ["sed", "-n", "1!G;h;$p", "words.txt"],
    "append_and_insert": ["sed", "2a\\\nappended\n3i\\\ninserted", "words.txt"],
    "extended_groups": ["sed", "-r", "s/(a+)(p+)/<\\2\\1>/g", "words.txt"],
    "quit": ["sed", "3q", "lines.txt"],
    "line_numbers": ["sed", "=", "words.txt"],
    "list_unprintable": ["sed", "-n", "l", "bin.dat"],
    "missing_file": ["sed", "p", "missing"],
}


@pytest.mark.parametrize("args", SED.values(), ids=SED.keys())
@needs_busybox
def test_sed_scripts(sample, args):
    applet_same(sample, args)


AWK = {
    "begin_and_end": "BEGIN { n = 0 } { n += length($0) } END { print n, NR }",
    "printf": '{ printf "%-8s|%5d|%x|%c|%e\\n", $1, NR, NR * 17, 65 + NR, NR / 3 }',
    "split": 'BEGIN { n = split("a:b:c:d", a, ":"); for (i = n; i; i--) print a[i] }',
    "arrays": "{ seen[$0]++ } END { for (k in seen) n++; print n, seen[\"apple\"] }",
    "getline_from_a_file": 'BEGIN { while ((getline l < "lines.txt") > 0) n++;'
    " print n }",
    "getline_into_a_variable": '{ getline x < "lines.txt"; print $0, x }',
    "functions": 'function f(a, b) { return a * b } BEGIN { print f(3, 4),'
    ' substr("hello", 2, 3), index("hello", "l"), toupper("abc"), int(-3.7),'
    ' sqrt(16), sprintf("%05.1f", 3.14159) }',
    "substitution": '{ gsub(/a/, "A"); sub(/p+/, "P"); print }',
    "match": "{ if (match($0, /an+/)) print RSTART, RLENGTH }",
    "environment": 'BEGIN { print ENVIRON["PATH"] }',
    "seeded_random": "BEGIN { srand(1); print int(rand() * 1000) }",
    "exit_status": "BEGIN { exit 3 }",
    "syntax_error": "BEGIN { print ( }",
}


@pytest.mark.parametrize("program", AWK.values(), ids=AWK.keys())
@needs_busybox
def test_awk_programs(sample, program):
    applet_same(sample, ["awk", program, "words.txt"])


@needs_busybox
def test_awk_fields_with_a_separator_and_variables(sample):
    out = applet_same(
        sample, ["awk", "-F,", "-v", "t=total", "NR > 1 { s += $2 } END { print t, s }",
                 "people.csv"]
    )
    assert out == "total 90\n"


CHECKSUMS = {
    "sha1sum": ["sha1sum", "bin.dat", "words.txt"],
    "sha512sum": ["sha512sum", "bin.dat"],
    "sha3sum": ["sha3sum", "bin.dat"],
    "crc32": ["crc32", "bin.dat"],
    "md5sum_of_a_host_binary": ["md5sum", BUSYBOX],
}


@pytest.mark.parametrize("args", CHECKSUMS.values(), ids=CHECKSUMS.keys())
@needs_busybox
def test_checksums(sample, args):
    assert applet_same(sample, args)


DECOMPRESSORS = {
    "gunzip": ["gunzip", "-c", "lines.txt.gz"],
    "gunzip_test": ["gunzip", "-t", "lines.txt.gz"],
    "bzcat": ["bzcat", "lines.txt.bz2"],
    "bunzip2": ["bunzip2", "-c", "lines.txt.bz2"],
    "xzcat": ["xzcat", "lines.txt.xz"],
    "unxz": ["unxz", "-c", "lines.txt.xz"],
}


@pytest.mark.parametrize("args", DECOMPRESSORS.values(), ids=DECOMPRESSORS.keys())
@needs_busybox
def test_decompressors_read_python_made_files(sample, args):
    out = applet_same(sample, args)
    assert out in ("", LINES)


@needs_busybox
def test_bzip2_output_decompresses_to_the_input(sample):
    sandboxed = run_sandbox(BUSYBOX, ["bzip2", "-c", "lines.txt"], cwd=sample,
                            text=False)
    assert sandboxed.returncode == 0, tail(sandboxed.stderr)
    assert bz2.decompress(sandboxed.stdout) == LINES.encode()


FINDS = {
    "name": [".", "-name", "*.txt"],
    "size": [".", "-size", "+1k"],
    "newer": ["dir", "-newer", "dir/alpha.txt", "-type", "f"],
    "maxdepth": [".", "-maxdepth", "1", "-type", "f"],
    "mindepth": [".", "-mindepth", "3"],
    "symlinks": [".", "-type", "l"],
    "empty": [".", "-empty"],
    "perm": [".", "-perm", "644", "-name", "w*"],
    "follow": ["-L", "dir", "-type", "f"],
    "mtime": [".", "-mtime", "+100"],
}


@pytest.mark.parametrize("args", FINDS.values(), ids=FINDS.keys())
@needs_busybox
def test_find_predicates(sample, args):
    native = run_native(BUSYBOX, ["find", *args], cwd=sample)
    sandboxed = run_sandbox(BUSYBOX, ["find", *args], cwd=sample)
    assert sorted(sandboxed.stdout.splitlines()) == sorted(native.stdout.splitlines())
    assert sandboxed.returncode == native.returncode == 0, tail(sandboxed.stderr)


@needs_busybox
def test_sort_check_reports_the_first_disorder(sample):
    native = run_native(BUSYBOX, ["sort", "-c", "words.txt"], cwd=sample)
    sandboxed = run_sandbox(BUSYBOX, ["sort", "-c", "words.txt"], cwd=sample)
    assert (sandboxed.returncode, sandboxed.stderr) == (1, native.stderr)


@needs_busybox
def test_tar_verbose_listing_of_a_python_made_archive(archive):
    assert busybox_same("tar", "tvf", str(archive))


@needs_busybox
def test_cpio_writes_a_newc_archive_of_host_files(sample):
    names = b"words.txt\nlines.txt\ndir\ndir/alpha.txt\n"
    assert applet_same(sample, ["cpio", "-o", "-H", "newc"], names)


@needs_busybox
def test_cpio_lists_an_archive(sample):
    archive = run_native(BUSYBOX, ["cpio", "-o", "-H", "newc"], cwd=sample,
                         input=b"words.txt\ndir\n", stdin=None, text=False)
    assert applet_same(sample, ["cpio", "-tv"], archive.stdout)


@needs_busybox
def test_logname_finds_no_login_as_on_the_host():
    """getlogin reads /proc/self/loginuid, unset (-1) in both, and fails ENXIO."""
    native = run_native(BUSYBOX, ["logname"])
    sandboxed = run_sandbox(BUSYBOX, ["logname"])
    assert (sandboxed.returncode, sandboxed.stderr) == (1, native.stderr)
    assert "No such device or address" in native.stderr


@needs_busybox
def test_ionice_shows_the_default_io_class():
    assert busybox_same("ionice") == "none: prio 0\n"


@needs_busybox
def test_ionice_of_a_missing_process_fails():
    assert assert_same(BUSYBOX, ["ionice", "-p", "99999"]).returncode == 1


@pytest.mark.parametrize(
    "name",
    ["limits", "uid_map", "gid_map", "setgroups", "personality", "oom_score_adj",
     "coredump_filter", "wchan"],
)
@needs_busybox
def test_proc_self_files_read_as_on_linux(name):
    """limits shows the inherited limits; the rest are Linux's defaults."""
    assert busybox_same("cat", f"/proc/self/{name}")


@needs_busybox
def test_shell_ulimit_shows_the_inherited_limits():
    assert "open files" in busybox_same("sh", "-c", "ulimit -a")


# -- applets that write: the host never changes ----------------------------


def writes_stay_in_the_sandbox(tree: Path, args: list[str], cwd: Path | None = None):
    """Run an applet sandboxed (host unchanged), then natively; same status."""
    before = snapshot(tree)
    sandboxed = run_sandbox(BUSYBOX, args, cwd=cwd)
    assert snapshot(tree) == before, "a sandboxed write reached the host"
    native = run_native(BUSYBOX, args, cwd=cwd)
    assert sandboxed.returncode == native.returncode, tail(sandboxed.stderr)
    assert sandboxed.stdout == native.stdout
    return native


@needs_busybox
def test_mkdir_p_creates_nothing_on_the_host(tree):
    native = writes_stay_in_the_sandbox(tree, ["mkdir", "-p", str(tree / "a/b/c")])
    assert native.returncode == 0 and (tree / "a/b/c").is_dir()


@needs_busybox
def test_mkdir_of_an_existing_directory_fails(tree):
    native = writes_stay_in_the_sandbox(tree, ["mkdir", str(tree / "dir")])
    assert native.returncode == 1


@needs_busybox
def test_rm_r_removes_nothing_on_the_host(tree):
    native = writes_stay_in_the_sandbox(tree, ["rm", "-r", str(tree / "dir")])
    assert native.returncode == 0 and not (tree / "dir").exists()


@needs_busybox
def test_rm_of_a_missing_file_fails(tree):
    native = writes_stay_in_the_sandbox(tree, ["rm", str(tree / "missing")])
    assert native.returncode == 1


@needs_busybox
def test_cp_copies_nothing_onto_the_host(tree):
    args = ["cp", str(tree / "words.txt"), str(tree / "copy.txt")]
    writes_stay_in_the_sandbox(tree, args)
    assert (tree / "copy.txt").read_text() == WORDS


@needs_busybox
def test_cp_r_copies_no_tree_onto_the_host(tree):
    writes_stay_in_the_sandbox(tree, ["cp", "-r", str(tree / "dir"), str(tree / "c")])
    assert (tree / "c" / "sub" / "delta.txt").exists()


@needs_busybox
def test_mv_moves_nothing_on_the_host(tree):
    args = ["mv", str(tree / "words.txt"), str(tree / "dir" / "moved.txt")]
    writes_stay_in_the_sandbox(tree, args)
    assert (tree / "dir" / "moved.txt").read_text() == WORDS


@needs_busybox
def test_ln_s_links_nothing_on_the_host(tree):
    writes_stay_in_the_sandbox(tree, ["ln", "-s", "words.txt", "link"], cwd=tree)
    assert os.readlink(tree / "link") == "words.txt"


@needs_busybox
def test_touch_creates_nothing_on_the_host(tree):
    writes_stay_in_the_sandbox(tree, ["touch", str(tree / "new.txt")])
    assert (tree / "new.txt").exists()


@needs_busybox
def test_touch_leaves_host_times_alone(tree):
    writes_stay_in_the_sandbox(tree, ["touch", str(tree / "words.txt")])
    assert (tree / "words.txt").stat().st_mtime > 1_000_000_000


WRITERS = {
    "dd_to_a_file": ["dd", "if=bin.dat", "of=dd.out", "bs=512", "count=2", "seek=1"],
    "dd_without_truncating": ["dd", "if=words.txt", "of=lines.txt", "conv=notrunc",
                              "bs=1", "seek=5"],
    "truncate_shrinks": ["truncate", "-s", "10", "words.txt"],
    "truncate_creates": ["truncate", "-s", "10", "new"],
    "chmod": ["chmod", "600", "words.txt"],
    "chmod_recursive": ["chmod", "-R", "go-r", "dir"],
    "chmod_of_a_missing_file": ["chmod", "600", "missing"],
    "chown": ["chown", "1:1", "words.txt"],
    "chown_recursive": ["chown", "-R", "nobody", "dir"],
    "chgrp": ["chgrp", "users", "words.txt"],
    "touch_a_date": ["touch", "-d", "2000-01-01 12:00", "words.txt"],
    "touch_no_create": ["touch", "-c", "nofile"],
    "touch_reference": ["touch", "-r", "dir/alpha.txt", "words.txt"],
    "gzip_in_place": ["gzip", "kv.txt"],
    "gunzip_in_place": ["gunzip", "lines.txt.gz"],
    "bzip2_in_place": ["bzip2", "-f", "lines.txt"],
    "unxz_in_place": ["unxz", "lines.txt.xz"],
    "sed_in_place": ["sed", "-i", "s/apple/pear/", "words.txt"],
    "sed_in_place_with_backup": ["sed", "-i.bak", "s/apple/pear/", "words.txt"],
    "sed_in_place_two_files": ["sed", "-i", "-e", "1d", "words.txt", "lines.txt"],
    "sed_writes_a_file": ["sed", "-n", "w out", "words.txt"],
    "sort_to_a_file": ["sort", "-o", "out.txt", "words.txt"],
    "tar_create_verbose": ["tar", "cvf", "made.tar", "dir"],
    "tar_extract_verbose": ["tar", "xvf", "made-by-python.tar"],
    "cpio_extract": ["cpio", "-id", "-I", "made-by-python.cpio"],
    "cp_archive": ["cp", "-a", "dir", "dir2"],
    "cp_preserve": ["cp", "-p", "words.txt", "w2"],
    "mv_a_directory": ["mv", "dir", "dir3"],
    "ln_hard": ["ln", "words.txt", "hard"],
    "ln_symbolic_force": ["ln", "-sf", "words.txt", "dir/link"],
    "rmdir_parents": ["rmdir", "-p", "dir/sub/deeper"],
    "rmdir_not_empty": ["rmdir", "dir/sub"],
    "mkfifo": ["mkfifo", "fifo"],
    "mknod_character_device": ["mknod", "nul", "c", "1", "3"],
    "unlink": ["unlink", "words.txt"],
    "link": ["link", "words.txt", "w3"],
    "shred_and_remove": ["shred", "-u", "words.txt"],
    "fallocate": ["fallocate", "-l", "8192", "fa"],
    "dos2unix": ["dos2unix", "words.txt"],
    "mktemp_directory": ["mktemp", "-d", "-p", ".", "dirXXXXXX"],
}


@pytest.mark.parametrize("args", WRITERS.values(), ids=WRITERS.keys())
@needs_busybox
def test_writing_applets_leave_the_host_alone(sample, archive, args):
    cpio = run_native(BUSYBOX, ["cpio", "-o", "-H", "newc"], cwd=sample,
                      input=b"words.txt\ndir\ndir/alpha.txt\n", stdin=None,
                      text=False)
    (sample / "made-by-python.cpio").write_bytes(cpio.stdout)
    archive.rename(sample / "made-by-python.tar")
    if args[0] == "mktemp":
        # The name is random: compare the status and the shape of the name.
        before = snapshot(sample)
        sandboxed = run_sandbox(BUSYBOX, args, cwd=sample)
        assert snapshot(sample) == before, "a sandboxed write reached the host"
        assert sandboxed.returncode == 0 and sandboxed.stdout.startswith("./dir")
        return
    writes_stay_in_the_sandbox(sample, args, cwd=sample)


# -- sash built-ins (no fork needed) ---------------------------------------


def sash_same(command: str, **kw) -> str:
    return assert_same(SASH, ["-c", command], **kw).stdout


@pytest.mark.xfail(reason="sash runs echo as /bin/echo, which needs fork")
@needs_sash
def test_sash_echo():
    assert sash_same("echo hi") == "hi\n"


@needs_sash
def test_sash_builtin_echo_keeps_arguments():
    assert sash_same("-echo one two") == "one two\n"


@needs_sash
def test_sash_pwd_is_the_inherited_working_directory(tree):
    assert sash_same("-pwd", cwd=tree) == f"{tree}\n"


@needs_sash
def test_sash_ls_lists_files(tree):
    sash_same(f"-ls {tree / 'dir'}")


@needs_sash
def test_sash_grep_reads_files(tree):
    assert sash_same(f"-grep apple {tree / 'words.txt'}").count("apple") == 3


@needs_sash
def test_sash_sum_checksums_a_file(tree):
    sash_same(f"-sum {tree / 'words.txt'}")


@needs_sash
def test_sash_printenv_shows_the_inherited_environment(monkeypatch):
    monkeypatch.setenv("PYSENTRY_SASH", "visible")
    assert sash_same("-printenv PYSENTRY_SASH") == "visible\n"


SASH_READERS = {
    "ls_long": "-ls -l dir",
    "ls_inodes": "-ls -li dir words.txt",
    "ls_classified": "-ls -F dir",
    "ls_columns": "-ls -C /usr",
    "ls_directories": "-ls -ld dir / /tmp",
    "ls_missing": "-ls missing",
    "cmp_same": "-cmp words.txt words.txt",
    "cmp_differ": "-cmp words.txt lines.txt",
    "grep_ignoring_case_with_numbers": "-grep -in APPLE words.txt lines.txt",
    "sum": "-sum words.txt bin.dat",
    "file": "-file words.txt dir dir/link bin.dat /dev/null " + BUSYBOX,
    "find_directories": "-find dir -type d",
    "find_by_size": "-find . -size 1000",
    "where": "-where busybox",
    "echo_quoting": "-echo a  b 'c d' \"e f\"",
    "printenv": "-printenv PATH",
    "more": "-more words.txt",
    "dd": "-dd if=bin.dat of=/dev/stdout bs=100 count=2 skip=1",
    "lsattr": "-lsattr words.txt dir /etc/passwd",
    "umask": "umask",
}


@pytest.mark.parametrize("command", SASH_READERS.values(), ids=SASH_READERS.keys())
@needs_sash
def test_sash_builtins_that_read(sample, command):
    native = run_native(SASH, ["-c", command], cwd=sample)
    sandboxed = run_sandbox(SASH, ["-c", command], cwd=sample)
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert (sandboxed.returncode, sandboxed.stderr) == (
        native.returncode, native.stderr
    )


SASH_WRITERS = {
    "mkdir": "-mkdir newdir",
    "mkdir_existing": "-mkdir dir",
    "rm": "-rm words.txt",
    "rm_missing": "-rm nope",
    "rmdir": "-rmdir dir/sub/deeper",
    "cp": "-cp words.txt w2",
    "mv": "-mv words.txt w2",
    "ln": "-ln words.txt hard",
    "ln_symbolic": "-ln -s words.txt sym",
    "chmod": "-chmod 600 words.txt",
    "chown": "-chown 1 words.txt",
    "chgrp": "-chgrp 1 words.txt",
    "touch": "-touch words.txt newfile",
    "mknod_device": "-mknod nul c 1 3",
    "mknod_fifo": "-mknod fifo p 0 0",
    "gzip": "-gzip words.txt",
    "gunzip": "-gunzip lines.txt.gz -o out",
    "tar_create": "-tar cvf made.tar dir",
}


@pytest.mark.parametrize("command", SASH_WRITERS.values(), ids=SASH_WRITERS.keys())
@needs_sash
def test_sash_builtins_that_write_leave_the_host_alone(sample, command):
    before = snapshot(sample)
    sandboxed = run_sandbox(SASH, ["-c", command], cwd=sample)
    assert snapshot(sample) == before, "a sandboxed write reached the host"
    native = run_native(SASH, ["-c", command], cwd=sample)
    assert sandboxed.stdout == native.stdout, tail(sandboxed.stderr)
    assert (sandboxed.returncode, sandboxed.stderr) == (
        native.returncode, native.stderr
    )


def _native_as_pid_one(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run natively as the first process of a new pid namespace, which is what
    the sandbox's first program is."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a native pid namespace")
    res = subprocess.run([unshare, "--pid", "--fork", *args], capture_output=True,
                         text=True, timeout=60)
    if "unshare failed" in res.stderr:
        pytest.skip("pid namespaces are not available here")
    return res


@needs_sash
def test_sash_exit_as_pid_one_matches_linux():
    sandboxed = run_sandbox(SASH, ["-c", "exit 3"])
    native = _native_as_pid_one([SASH, "-c", "exit 3"])
    assert (sandboxed.returncode, sandboxed.stderr) == (native.returncode, native.stderr)

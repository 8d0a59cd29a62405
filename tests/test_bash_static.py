"""Debian's static bash behaves under the sandbox as on the host.

Every script here uses only builtins: no command substitution, pipelines,
subshells or external commands, so bash never forks. Each script runs once
natively and once sandboxed, with the same environment, working directory and
standard input; standard output, standard error and the exit status must
match. Scripts that write do so below pytest's temporary directory: natively
on the host, sandboxed in the memory overlay.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    Result,
    run_native,
    run_sandbox,
    sandbox_env,
    skip_unless_exists,
    tail,
)

BASH = "/bin/bash-static"

needs_bash = skip_unless_exists(BASH)


def bash_same(script: str, *args: str, **kw) -> Result:
    """Run ``bash -c script`` natively and sandboxed; return the native result."""
    argv = ["-c", script, "bash", *args]
    native = run_native(BASH, argv, **kw)
    if hasattr(kw.get("stdin"), "seek"):
        kw["stdin"].seek(0)
    sandboxed = run_sandbox(BASH, argv, **kw)
    context = f"sandbox stderr:\n{tail(sandboxed.stderr)}"
    assert sandboxed.stdout == native.stdout, context
    assert sandboxed.stderr == native.stderr, context
    assert sandboxed.returncode == native.returncode, context
    return native


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory with a file, a subdirectory and a symlink to it."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "file.txt").write_text("first line\nsecond line\n")
    (tmp_path / "empty").write_text("")
    (tmp_path / "link").symlink_to("sub")
    return tmp_path


# -- the language ----------------------------------------------------------


@needs_bash
def test_arithmetic_expansion_and_let():
    out = bash_same(
        "x=5; echo $((x * 3 + 2)) $((17 % 5)) $((2 ** 10)) $((-7 / 2)) $((7 >> 1));"
        "echo $((16#ff)) $((8#17)) $((2#101)) $((1 << 62)) $((-(1 << 63)));"
        'let "q = 5 ** 2" "r = q / 3"; echo $q $r; (( q > r )) && echo bigger;'
        "declare -i n=7; n+=3; echo $n; echo $((7 / 0))"
    ).stdout
    assert out.startswith("17 2 1024 -3 3\n255 15 5 ")


@needs_bash
def test_loops_and_case():
    out = bash_same(
        "for i in a b c; do printf '%s,' $i; done; echo;"
        "for ((i = 0; i < 3; i++)); do printf '%d ' $i; done; echo;"
        "i=0; while [ $i -lt 4 ]; do ((i++)); [ $i = 2 ] && continue; echo w$i; done;"
        "until ((i == 0)); do ((i--)); done; echo until $i;"
        "for f in x.txt y.sh z; do case $f in *.txt) echo text;; *.sh) echo shell;;"
        " *) echo other;; esac; done"
    ).stdout
    assert out == "a,b,c,\n0 1 2 \nw1\nw3\nw4\nuntil 0\ntext\nshell\nother\n"


@needs_bash
def test_functions_locals_and_return_status():
    out = bash_same(
        'f() { local a=$1; g=global; echo "f $a $# ${FUNCNAME[0]}"; return 3; };'
        'f one two; echo "status $? $g ${a-unset}";'
        "fact() { (( $1 <= 1 )) && { r=1; return; }; fact $(( $1 - 1 ));"
        " r=$(( r * $1 )); }; fact 10; echo $r"
    ).stdout
    assert out == "f one 2 f\nstatus 3 global unset\n3628800\n"


@needs_bash
def test_indexed_and_associative_arrays():
    out = bash_same(
        'a=(x y "z w"); a+=(v); echo "${#a[@]} ${a[2]} ${a[@]: -2} ${!a[@]}";'
        "unset 'a[1]'; echo ${a[@]};"
        "declare -A m=([k1]=v1 [k2]=v2); m[k3]=v3; echo ${#m[@]} ${m[k2]};"
        "for k in k1 k2 k3; do [[ -v m[$k] ]] && echo have $k; done;"
        'declare -p a'
    ).stdout
    assert out.startswith("4 z w z w v 0 1 2 3\nx z w v\n3 v2\n")


@needs_bash
def test_parameter_expansion_operators():
    out = bash_same(
        's="Hello, World"; p=/a/b/c.tar.gz;'
        'echo "${s,,} ${s^^} ${#s} ${s:7} ${s:0:5} ${s/World/There} ${s//l/L}";'
        'echo "${s#*, } ${s%,*} ${p##*/} ${p%%.*} ${p%/*}";'
        'echo "${unset:-default} ${unset2:=assigned} $unset2 ${s:+alt}";'
        "x=\"it's\"; echo \"${x@Q} ${x@U}\"; set -- a b c; echo \"$# $2 ${@:2}\""
    ).stdout
    assert "hello, world HELLO, WORLD 12 World Hello" in out


@needs_bash
def test_double_bracket_tests_and_regex_captures():
    out = bash_same(
        '[[ abc == a* ]] && echo glob; [[ abc < abd ]] && echo less;'
        '[[ "key=value" =~ ^([a-z]+)=(.*)$ ]] && echo "${BASH_REMATCH[1]}'
        ' ${BASH_REMATCH[2]}"; [[ 10 -lt 9 ]] || echo numeric;'
        "[[ -n x && ! -z x ]] && echo strings"
    ).stdout
    assert out == "glob\nless\nkey value\nnumeric\nstrings\n"


@needs_bash
def test_printf_formats_and_printf_v():
    out = bash_same(
        "printf '%s|%5.2f|%e|%g|%o|%X|%c|%%|%-5s|%5s|\\n' s 3.14159 12345.678 0.0001"
        " 8 255 Z ab cd; printf '%b\\n' 'a\\x41\\101\\u00e9'; printf '%q\\n' \"a b'c\";"
        "printf -v out '%05d' 42; echo $out; printf '%s\\n' one two"
    ).stdout
    assert out.startswith("s| 3.14|1.234568e+04|0.0001|10|FF|Z|%|ab   |   cd|\n")


@needs_bash
def test_printf_formats_times_with_tz():
    out = bash_same(
        "printf '%(%Y-%m-%d %H:%M:%S %Z)T\\n' 1000000000 86400",
        env={**os.environ, "TZ": "UTC"},
    ).stdout
    assert out == "2001-09-09 01:46:40 UTC\n1970-01-02 00:00:00 UTC\n"


@needs_bash
def test_getopts_eval_and_set():
    out = bash_same(
        'while getopts "ab:c" o -a -b val -c; do echo "$o ${OPTARG-}"; done;'
        "eval 'e=evaluated'; echo $e; set -f; set -- /*; echo \"$1\"; set +f"
    ).stdout
    assert out == "a \nb val\nc \nevaluated\n/*\n"


# -- reading input ---------------------------------------------------------


@needs_bash
def test_read_from_here_strings():
    out = bash_same(
        'read -r a b <<< "one two three"; echo "$a|$b";'
        'IFS=, read -r x y z <<< "1,2,3"; echo "$z$y$x";'
        'read -d ";" -r d <<< "abc;def"; echo $d; read -n 2 -r n <<< wxyz; echo $n;'
        'read -r -a arr <<< "p q r"; echo ${arr[1]}'
    ).stdout
    assert out == "one|two three\n321\nabc\nwx\nq\n"


@needs_bash
def test_read_from_here_documents():
    out = bash_same(
        "v=expanded; while read -r l; do echo \"<$l>\"; done <<EOF\n"
        "plain\n$v\nEOF\n"
        "while read -r l; do echo \"[$l]\"; done <<'EOF'\n$v\nEOF\n"
        "mapfile -t lines <<EOF\nx\ny\nEOF\necho ${#lines[@]} ${lines[1]}"
    ).stdout
    assert out == "<plain>\n<expanded>\n[$v]\n2 y\n"


@needs_bash
def test_here_document_larger_than_a_pipe(tmp_path):
    """Past the pipe's capacity bash writes the document to a temporary file."""
    rows = "".join(f"row {n} {'x' * 60}\n" for n in range(2000))
    script = tmp_path / "big.sh"
    loop = "n=0; while read -r l; do ((n++)); done"
    script.write_text(f"{loop} <<EOF\n{rows}EOF\necho $n\n")
    out = bash_same(f"source {script}").stdout
    assert out == "2000\n"


@needs_bash
def test_read_from_standard_input_and_dev_stdin(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("from stdin\nsecond\n")
    with open(source) as stdin:
        out = bash_same(
            "read -r a; read -r b < /dev/stdin; echo \"$a/$b\"", stdin=stdin
        ).stdout
    # /dev/stdin opens the file again, at its start.
    assert out == "from stdin/from stdin\n"


# -- files and descriptors -------------------------------------------------


@needs_bash
def test_redirections_create_append_and_read_files(work):
    out = bash_same(
        "echo one > out; echo two >> out; { echo three; echo four; } >> out;"
        "while read -r l; do echo \"got $l\"; done < out; read -r f < file.txt;"
        'echo "$f"; echo err 2> errfile >&2; read -r e < errfile; echo "err: $e"',
        cwd=work,
    ).stdout
    assert out == "got one\ngot two\ngot three\ngot four\nfirst line\nerr: err\n"


@needs_bash
def test_noclobber_refuses_to_overwrite(work):
    native = bash_same(
        "set -o noclobber; echo x > file.txt; echo status $?; echo y >| file.txt;"
        "read -r l < file.txt; echo $l",
        cwd=work,
    )
    assert native.stdout == "status 1\ny\n"


@needs_bash
def test_exec_opens_and_closes_numbered_descriptors(work):
    out = bash_same(
        "exec 3> fd3; echo via three >&3; exec 3>&-; read -r l < fd3; echo $l;"
        "exec 4< file.txt; read -r a <&4; read -r b <&4; exec 4<&-; echo $a / $b;"
        "exec 5<> rw; echo rw >&5; exec 5>&-; read -r c < rw; echo $c;"
        "exec {auto}> autofd; echo fd $auto; echo data >&$auto; exec {auto}>&-;"
        "read -r d < autofd; echo $d; echo bad >&7",
        cwd=work,
    ).stdout
    assert out == "via three\nfirst line / second line\nrw\nfd 10\ndata\n"


@needs_bash
def test_dev_stdout_dev_stderr_and_dev_fd_reach_the_streams():
    native = bash_same(
        "echo out > /dev/stdout; echo err > /dev/stderr; echo fd1 > /dev/fd/1;"
        "echo proc > /proc/self/fd/1; echo more >> /dev/stdout;"
        "[ -p /dev/stdout ] && echo stdout is a pipe"
    )
    assert native.stdout == "out\nfd1\nproc\nmore\nstdout is a pipe\n"
    assert native.stderr == "err\n"


@needs_bash
def test_dev_stdout_reopens_a_file_standard_output(work):
    """Opening /dev/stdout with > truncates the file standard output is."""
    argv = ["-c", "echo first; echo second > /dev/stdout; echo third"]
    sentry = [sys.executable, "-m", "sentry", "run"]
    written = []
    for name, prefix in (("native", []), ("sandboxed", sentry)):
        with open(work / name, "w") as stdout:
            done = subprocess.run(
                [*prefix, BASH, *argv], stdout=stdout, env=sandbox_env(), timeout=60
            )
        written.append((done.returncode, (work / name).read_bytes()))
    assert written[1] == written[0]
    assert written[0][1].endswith(b"third\n")


@needs_bash
def test_file_test_operators(work):
    out = bash_same(
        "t() { if test \"$@\"; then echo -n 1; else echo -n 0; fi; };"
        "t -f file.txt; t -f sub; t -d sub; t -d link; t -L link; t -h file.txt;"
        "t -e missing; t -s file.txt; t -s empty; t -r file.txt; t -w file.txt;"
        "t -x file.txt; t -x /bin/bash-static; t -c /dev/null; t -b /dev/null;"
        "t -p /dev/null; t -S /dev/null; t -k /tmp; t -u /bin/bash-static;"
        "t -O file.txt; t -G file.txt; t file.txt -ef file.txt; t sub -ef link;"
        "t -N file.txt; t /tmp -nt /; echo",
        cwd=work,
    ).stdout
    assert out == "1011100101101100010111111\n"


# -- the shell's own state -------------------------------------------------


@needs_bash
def test_cd_and_pwd_follow_logical_and_physical_paths(work):
    out = bash_same(
        "pwd; cd sub && pwd; cd .. && pwd; cd link && pwd && pwd -P; cd -P ../link;"
        "pwd; cd /nonexistent; echo status $?; cd - > /dev/null; pwd; echo $OLDPWD",
        cwd=work,
    ).stdout
    assert out.startswith(f"{work}\n{work}/sub\n{work}\n{work}/link\n{work}/sub\n")


@needs_bash
def test_directory_stack_and_cdpath(work):
    native = bash_same(
        "pushd /tmp > /dev/null; pushd /usr > /dev/null; dirs; popd > /dev/null;"
        "dirs; popd > /dev/null; CDPATH=/usr cd lib; pwd",
        cwd=work,
    )
    assert native.stdout.splitlines() == [
        f"/usr /tmp {work}", f"/tmp {work}", "/usr/lib", "/usr/lib"
    ]


@needs_bash
def test_umask_builtin_shows_and_sets_the_mask():
    native = bash_same("umask; umask 027; umask; umask -S; umask u=rwx,g=,o=; umask")
    assert native.stdout.splitlines()[1:] == ["0027", "u=rwx,g=rx,o=", "0077"]


@needs_bash
def test_ulimit_builtin_shows_and_lowers_limits():
    out = bash_same(
        "ulimit -a; ulimit -n; ulimit -S -n 64; ulimit -S -n; ulimit -s; ulimit -c"
    ).stdout
    assert "open files" in out and "\n64\n" in out


@needs_bash
def test_source_runs_a_file_with_arguments(work):
    (work / "lib.sh").write_text('LIBVAR=set; echo "args: $# ${1-}"; return 4\n')
    out = bash_same(
        'source ./lib.sh; echo "$LIBVAR $?"; . ./lib.sh one; echo "status $?"',
        cwd=work,
    ).stdout
    assert out == "args: 0 \nset 4\nargs: 1 one\nstatus 4\n"


@needs_bash
def test_type_command_and_hash_search_the_path():
    out = bash_same(
        "f() { :; }; type echo cd f; type -t printf; type -a true;"
        "type -P definitely-not-here; echo status $?; command -v cd; hash"
    ).stdout
    assert out.startswith("echo is a shell builtin\ncd is a shell builtin\n")


@needs_bash
def test_globbing_options(work):
    out = bash_same(
        "echo *; shopt -s nullglob; echo *.none; shopt -s dotglob;"
        "echo *; shopt -s globstar; echo **; echo {a,b}{1,2} {1..5} {a..e..2}",
        cwd=work,
    ).stdout
    assert out.startswith("empty file.txt link sub\n\n")


@needs_bash
def test_errexit_nounset_and_traps():
    native = bash_same(
        "trap 'echo exit trap' EXIT; trap 'echo err trap' ERR; false;"
        "trap - ERR;"
        "set -u; echo ${defined-ok}; set -e; false || echo or-list; false;"
        "echo not reached"
    )
    assert native.returncode == 1
    assert native.stdout == "err trap\nok\nor-list\nexit trap\n"


@needs_bash
def test_script_file_arguments_and_exit_status(work):
    script = work / "script.sh"
    script.write_text('echo "$0 $# $1 $2"; shift; echo "$@"; exit 7\n')
    argv = [str(script), "a", "b c"]
    native = run_native(BASH, argv, cwd=work)
    sandboxed = run_sandbox(BASH, argv, cwd=work)
    assert native.returncode == 7
    assert sandboxed == native

"""The syscall table and the pages generated from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sentry.cli import syscall_table_text
from sentry.syscalls.table import MISSING, SUPPORTED, default_table

ROOT = Path(__file__).resolve().parent.parent


def test_docs_syscall_page_is_generated_from_the_table() -> None:
    page = (ROOT / "docs" / "syscalls.md").read_text()
    assert page == syscall_table_text(markdown=True), (
        "docs/syscalls.md is stale: regenerate it with "
        "`pysentry syscalls --markdown > docs/syscalls.md`"
    )


def test_every_number_has_a_row_and_missing_rows_have_a_note() -> None:
    table = default_table()
    assert [row.nr for row in table] == list(range(len(table)))
    assert all(row.note for row in table if row.level == MISSING)


def test_the_start_up_syscalls_are_supported() -> None:
    by_name = {row.name: row for row in default_table()}
    for name in ("read", "write", "openat", "munmap", "brk", "exit_group", "newfstatat"):
        assert by_name[name].level == SUPPORTED


def test_syscalls_command_prints_the_table() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sentry", "syscalls"], capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout
    assert out.splitlines()[1].split()[:3] == ["0", "read", "supported"]
    assert "rseq" in out

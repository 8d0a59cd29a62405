"""Loading hook scripts (``--hooks FILE.js``) and config files (``--config``).

The config format is gWisord's: a JSON object whose ``callbacks`` list holds
entries ``{"sysno": 1, "type": "before", "entry-point": "cb", "source": "..."}``.
``source`` is JavaScript that defines the function named by ``entry-point``;
``type`` is ``before`` or ``after``; ``sysno`` is a syscall number (a name
is accepted too). ``runtime-socket`` (the control socket, ``HOST:PORT`` or
a path) and ``log-socket`` (where the log stream goes) are read by
:func:`config_sockets` and served by sentry/control.py and
sentry/logstream.py. An invalid entry is reported with its index and
skipped, unless loading is strict, where it fails the load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jshooks.engine import HookEngine, HookLoadError

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_ENTRY_KEYS = {"sysno", "entry-point", "source", "type"}
_TOP_KEYS = {"callbacks", "runtime-socket", "log-socket"}
_SOCKETS = ("runtime-socket", "log-socket")


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HookLoadError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise HookLoadError(f"{path}: {what} is not UTF-8 text") from None


def load_script_file(engine: HookEngine, path: str) -> None:
    """Run the hooks script at ``path``; HookLoadError names the problem."""
    engine.load_script(_read(path, "hooks script"), path)


def load_config(
    engine: HookEngine,
    path: str,
    strict: bool = False,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Register the callbacks of the config file at ``path``; returns how
    many were registered. Problems with single entries go to ``warn`` and the
    entry is skipped, or raise HookLoadError when ``strict``."""
    note = warn or (lambda text: None)
    text = _read(path, "hooks config")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HookLoadError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise HookLoadError(f'{path}: expected a JSON object with a "callbacks" list')

    def problem(message: str) -> None:
        if strict:
            raise HookLoadError(message)
        note(message)

    # The top level: the callbacks, and the sockets of the control channel.
    for key in sorted(set(doc) - _TOP_KEYS):
        problem(f"{path}: unknown key {key!r} (ignored)")
    for key in _SOCKETS:
        if key in doc and not isinstance(doc[key], str):
            problem(f"{path}: {key!r} must be an address string (ignored)")
    callbacks = doc.get("callbacks", [])
    if not isinstance(callbacks, list):
        raise HookLoadError(f'{path}: "callbacks" must be a list')

    # Each entry on its own: one bad entry does not stop the others.
    loaded = 0
    for index, entry in enumerate(callbacks):
        label = f"{path} callbacks[{index}]"
        try:
            sysno, phase, entry_point, source = _check_entry(entry, label, problem)
            engine.load_callback(source, entry_point, sysno, phase, label)
        except HookLoadError as exc:
            if strict:
                raise
            note(f"{exc} (entry skipped)")
            continue
        loaded += 1
    return loaded


def config_sockets(path: str) -> dict[str, str]:
    """The ``runtime-socket`` and ``log-socket`` addresses a config file
    names (only the string ones; :func:`load_config` reports the others)."""
    try:
        doc = json.loads(_read(path, "hooks config"))
    except (HookLoadError, json.JSONDecodeError):
        # load_config reports what is wrong with the file.
        return {}
    if not isinstance(doc, dict):
        return {}
    return {key: doc[key] for key in _SOCKETS if isinstance(doc.get(key), str)}


def _check_entry(
    entry: Any, label: str, problem: Callable[[str], None]
) -> tuple[int | str, str, str, str]:
    if not isinstance(entry, dict):
        raise HookLoadError(f"{label}: expected an object, got {type(entry).__name__}")
    for key in ("sysno", "type", "entry-point", "source"):
        if key not in entry:
            raise HookLoadError(f"{label}: missing {key!r}")
    for key in sorted(set(entry) - _ENTRY_KEYS):
        problem(f"{label}: unknown key {key!r} (ignored)")
    sysno = entry["sysno"]
    if isinstance(sysno, bool) or not isinstance(sysno, int | str):
        raise HookLoadError(f"{label}: 'sysno' must be a syscall number or name")
    phase = entry["type"]
    if phase not in ("before", "after"):
        raise HookLoadError(
            f'{label}: \'type\' must be "before" or "after", got {phase!r}'
        )
    entry_point = entry["entry-point"]
    if not isinstance(entry_point, str) or not _IDENTIFIER.match(entry_point):
        raise HookLoadError(
            f"{label}: 'entry-point' must be a function name, got {entry_point!r}"
        )
    source = entry["source"]
    if not isinstance(source, str):
        raise HookLoadError(f"{label}: 'source' must be JavaScript text")
    return sysno, phase, entry_point, source

"""``pysentry hooks ...`` and ``pysentry logs ADDR``: the other ends of the
control socket and of the log stream.

``pysentry hooks COMMAND`` sends one request to a running sandbox's control
socket (``--control ADDR`` or ``$PYSENTRY_CONTROL``; the token from
``--token`` or ``$PYSENTRY_CONTROL_TOKEN``) and prints the answer readably,
or as the raw JSON answer with ``--json``. Exit status: 0 for an ``ok``
answer, 1 for an ``error`` answer, 2 when the request cannot be made.

``pysentry logs ADDR`` listens at ADDR (a unix socket is created mode 0600),
takes any number of sandboxes streaming to it and prints their records one
line each, filtered by syscall name, pid or failed calls.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
from pathlib import Path
from typing import Any

from sentry.control import Address, ControlError, bound_address, connect, listen

CONTROL_ENV = "PYSENTRY_CONTROL"
TOKEN_ENV = "PYSENTRY_CONTROL_TOKEN"
EXIT_ERROR_ANSWER = 1
EXIT_USAGE = 2
# The longest answer line accepted from a server.
MAX_ANSWER = 64 << 20
# The longest record line accepted by pysentry logs.
MAX_RECORD = 16 << 20


def add_parsers(sub: Any) -> None:
    """Add the ``hooks`` and ``logs`` subcommands to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--control",
        metavar="ADDR",
        default=argparse.SUPPRESS,
        help=f"the sandbox's control socket (default: ${CONTROL_ENV})",
    )
    common.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help=f"the control token (default: ${TOKEN_ENV})",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the answer as JSON",
    )

    hooks = sub.add_parser(
        "hooks",
        parents=[common],
        help="inspect and change the hooks of a running sandbox",
    )
    verbs = hooks.add_subparsers(dest="verb", required=True, parser_class=type(hooks))
    verbs.add_parser("info", parents=[common], help="describe the hooks API")
    load = verbs.add_parser(
        "load", parents=[common], help="run a hooks script in the sandbox"
    )
    load.add_argument("file", metavar="FILE.js")
    verbs.add_parser("list", parents=[common], help="list the registered callbacks")
    remove = verbs.add_parser(
        "remove", parents=[common], help="remove callbacks: --all, or SYSNO TYPE"
    )
    remove.add_argument("--all", action="store_true", help="remove every callback")
    remove.add_argument(
        "sysno", nargs="?", metavar="SYSNO", help='a syscall number or name, or "*"'
    )
    remove.add_argument("type", nargs="?", metavar="TYPE", help="before, after or exit")
    verbs.add_parser(
        "status",
        parents=[common],
        help="tasks, syscall counts and uptime of the sandbox",
    )
    verbs.add_parser(
        "detach",
        parents=[common],
        help="drop every hook and stop tracing; the program runs on",
    )

    logs = sub.add_parser("logs", help="listen for a log stream and print it")
    logs.add_argument("address", metavar="ADDR", help="unix:PATH or tcp:HOST:PORT")
    logs.add_argument(
        "--syscall",
        action="append",
        default=[],
        metavar="NAME",
        help="only these syscalls (repeatable, or comma-separated)",
    )
    logs.add_argument(
        "--pid", type=int, metavar="PID", help="only this process or thread"
    )
    logs.add_argument("--errors", action="store_true", help="only calls that failed")
    logs.add_argument(
        "--entries",
        action="store_true",
        help="also print syscall entries (exits only by default)",
    )
    logs.add_argument(
        "--json",
        action="store_true",
        help="print the records that pass the filters as they came",
    )
    logs.add_argument(
        "--once", action="store_true", help="stop when the first sandbox's stream ends"
    )


def main(ns: argparse.Namespace) -> int:
    if ns.command == "logs":
        return cmd_logs(ns)
    return cmd_hooks(ns)


# --- pysentry hooks ------------------------------------------------------------------


def _fail(text: str, status: int = EXIT_USAGE) -> int:
    sys.stderr.write(f"pysentry: {text}\n")
    return status


def cmd_hooks(ns: argparse.Namespace) -> int:
    from sentry.control import parse_address

    target = getattr(ns, "control", None) or os.environ.get(CONTROL_ENV)
    if not target:
        return _fail(f"no control socket: pass --control ADDR or set ${CONTROL_ENV}")
    try:
        address = parse_address(target)
    except ValueError as exc:
        return _fail(f"bad control socket address: {exc}")
    try:
        request = _request(ns)
    except ValueError as exc:
        return _fail(str(exc))
    token = getattr(ns, "token", None) or os.environ.get(TOKEN_ENV)
    if token:
        request["token"] = token
    try:
        answer = ask(address, request)
    except (OSError, ControlError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return _fail(f"cannot reach the sandbox at {address}: {reason}")
    text = (
        json.dumps(answer) if getattr(ns, "json", False) else _readable(ns.verb, answer)
    )
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader went away (| head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if answer.get("type") == "ok" else EXIT_ERROR_ANSWER


def _request(ns: argparse.Namespace) -> dict[str, Any]:
    """The request object of a ``pysentry hooks`` command; ValueError if the
    command line is wrong."""
    verb = ns.verb
    if verb == "info":
        return {"type": "hooks-info"}
    if verb == "list":
        return {"type": "current-callbacks"}
    if verb in ("status", "detach"):
        return {"type": verb}
    if verb == "load":
        try:
            source = Path(ns.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {ns.file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{ns.file} is not UTF-8 text") from None
        return {"type": "change-state", "source": source, "name": ns.file}
    # remove
    if ns.all:
        if ns.sysno is not None:
            raise ValueError("remove takes --all or SYSNO TYPE, not both")
        return {"type": "unregister-callbacks", "options": "all"}
    if ns.sysno is None:
        raise ValueError("remove needs --all or SYSNO TYPE")
    if ns.type is None:
        if ns.sysno != "exit":
            raise ValueError("remove needs a TYPE (before, after or exit)")
        ns.sysno, ns.type = None, "exit"
    sysno: Any = ns.sysno
    if isinstance(sysno, str) and sysno.isdigit():
        sysno = int(sysno)
    item = {"sysno": sysno, "type": ns.type}
    return {"type": "unregister-callbacks", "options": "list", "list": [item]}


def ask(
    address: Address, request: dict[str, Any], timeout: float = 30.0
) -> dict[str, Any]:
    """Send one request, wait for its answer line and return it decoded."""
    with connect(address, timeout) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = bytearray()
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlError(
                    "the sandbox closed the connection without answering"
                )
            data += chunk
            if len(data) > MAX_ANSWER:
                raise ControlError("the answer is too long")
    line = bytes(data).split(b"\n", 1)[0]
    try:
        answer = json.loads(line)
    except ValueError:
        raise ControlError("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError("the answer is not a JSON object")
    return answer


def _readable(verb: str, answer: dict[str, Any]) -> str:
    """An answer as text for a person."""
    message = str(answer.get("message", ""))
    if answer.get("type") != "ok":
        return f"error: {message}"
    payload = answer.get("payload")
    if verb == "info" and isinstance(payload, list):
        return _info_text(payload)
    if verb == "list" and isinstance(payload, list):
        return _hooks_table(payload) if payload else "no callbacks"
    if verb == "load" and isinstance(payload, list):
        return message + ("\n" + _hooks_table(payload) if payload else "")
    if verb == "status" and isinstance(payload, dict):
        return _status_text(payload)
    return message


def _info_text(functions: list[dict[str, Any]]) -> str:
    lines = []
    for fn in functions:
        args = ", ".join(a.get("name", "?") for a in fn.get("arguments", []))
        lines.append(f"hooks.{fn.get('name')}({args}) -> {fn.get('returns')}")
        lines.append(f"    {fn.get('description')}")
        for arg in fn.get("arguments", []):
            lines.append(f"    {arg.get('name')}: {arg.get('description')}")
    return "\n".join(lines)


def _hooks_table(hooks: list[dict[str, Any]]) -> str:
    rows = [("HANDLE", "TYPE", "SYSCALL", "NAME", "WHERE")]
    for h in hooks:
        name = str(h.get("name", ""))
        if h.get("disabled"):
            name += " (disabled)"
        elif h.get("failures"):
            name += f" ({h['failures']} failures)"
        rows.append(
            (
                str(h.get("handle", "")),
                str(h.get("type", "")),
                str(h.get("syscall", "")) or "-",
                name,
                str(h.get("where", "")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ).rstrip()


def _status_text(status: dict[str, Any]) -> str:
    calls = status.get("syscalls", {})
    lines = [
        f"uptime {status.get('uptime_s', 0):.1f} s, "
        f"{calls.get('total', 0)} syscalls, {status.get('callbacks', 0)} callbacks"
        + (", detached" if status.get("detached") else ""),
        "",
        f"{'PID':>6} {'TID':>6} {'PPID':>6} S NAME",
    ]
    for t in status.get("tasks", []):
        lines.append(
            f"{t.get('pid', 0):>6} {t.get('tid', 0):>6} {t.get('ppid', 0):>6} "
            f"{t.get('state', '?')} {t.get('name', '')}"
        )
    by_name = calls.get("by_name", {})
    if by_name:
        lines += ["", f"{'CALLS':>10} SYSCALL"]
        for name, count in list(by_name.items())[:15]:
            lines.append(f"{count:>10} {name}")
    return "\n".join(lines)


# --- pysentry logs ---------------------------------------------------------------------


class _Filter:
    def __init__(self, ns: argparse.Namespace) -> None:
        names = {n.strip() for item in ns.syscall for n in item.split(",") if n.strip()}
        self.names = names or None
        self.pid = ns.pid
        self.errors = ns.errors
        self.entries = ns.entries

    def passes(self, record: dict[str, Any]) -> bool:
        msg = record.get("msg")
        if not isinstance(msg, dict):
            return False
        kind = msg.get("LogType")
        if kind == "D":
            return True
        if kind == "E" and not self.entries:
            return False
        if self.pid is not None and self.pid not in _ids(msg):
            return False
        if self.names is not None and msg.get("Syscallname") not in self.names:
            return False
        if self.errors:
            rval = msg.get("Rval")
            return kind == "X" and isinstance(rval, dict) and bool(rval.get("Errno"))
        return True


def _ids(msg: dict[str, Any]) -> tuple[int, ...]:
    """(pid, tid) from a LogPrefix "[pid:tid]"."""
    prefix = str(msg.get("LogPrefix", "")).strip("[]")
    try:
        return tuple(int(part) for part in prefix.split(":"))
    except ValueError:
        return ()


def format_record(record: dict[str, Any]) -> str:
    """One record as one line for a person."""
    msg = record.get("msg", {})
    kind = msg.get("LogType")
    if kind == "D":
        return (
            f"--- {msg.get('Dropped')} records dropped by the sandbox (slow reader) ---"
        )
    head = f"{msg.get('LogPrefix', '')} {msg.get('Taskname', '')}".strip()
    output = msg.get("Output")
    if kind == "J":
        during = f" (in {msg['Syscallname']})" if msg.get("Syscallname") else ""
        return f"{head} logJson{during}: {json.dumps(output)}"
    if kind == "T":
        text = output[0] if isinstance(output, list) and output else output
        return f"{head} +++ {text} +++"
    args = (
        ", ".join(str(a) for a in output) if isinstance(output, list) else str(output)
    )
    call = f"{msg.get('Syscallname')}({args})"
    if kind == "E":
        return f"{head} {call} ..."
    rval = msg.get("Rval") or {}
    ret = rval.get("Retval")
    if ret is None:
        result = "?"
    elif rval.get("Errno"):
        result = f"-1 {rval.get('Err')}"
    else:
        result = str(ret)
    elapsed = rval.get("Elapsed")
    took = f" <{elapsed / 1000:.1f} us>" if isinstance(elapsed, int) else ""
    return f"{head} {call} = {result}{took}"


def cmd_logs(ns: argparse.Namespace) -> int:
    from sentry.control import parse_address

    try:
        address = parse_address(ns.address)
        server = listen(address)
    except ValueError as exc:
        return _fail(f"bad address: {exc}")
    except ControlError as exc:
        return _fail(str(exc))
    address = bound_address(server, address)
    sys.stderr.write(f"pysentry: listening for log streams at {address}\n")
    sys.stderr.flush()
    try:
        _serve_logs(server, _Filter(ns), ns.json, ns.once)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The output went away (| head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        server.close()
        if address.kind == "unix":
            try:
                os.unlink(address.path)
            except OSError:
                pass
    return 0


def _serve_logs(server: socket.socket, keep: _Filter, raw: bool, once: bool) -> None:
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    conn, _addr = server.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                buffers[conn] = bytearray()
                selector.register(conn, selectors.EVENT_READ, "conn")
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            buf = buffers[conn]
            buf += data
            *lines, rest = bytes(buf).split(b"\n")
            buffers[conn] = bytearray(rest)
            for line in lines:
                _show(line, keep, raw)
            sys.stdout.flush()
            if len(rest) > MAX_RECORD:
                sys.stderr.write(
                    "pysentry: a record longer than 16 MiB: stream dropped\n"
                )
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                del buffers[conn]
                if once:
                    return


def _show(line: bytes, keep: _Filter, raw: bool) -> None:
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except ValueError:
        print(f"(not JSON) {line.decode(errors='replace')}")
        return
    if not isinstance(record, dict) or not keep.passes(record):
        return
    print(line.decode(errors="replace") if raw else format_record(record))

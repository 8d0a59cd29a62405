"""The ``pysentry`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sentry import abi
from sentry.errors import GuestFault, KernelBug
from sentry.kernel import Options, print_bug
from sentry.task import Task

if TYPE_CHECKING:
    from jshooks import HookEngine
    from sentry.kernel import Kernel
    from sentry.net.policy import NetPolicy

EXIT_USAGE = 2
EXIT_KERNEL_BUG = 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"pysentry: {message}\n")


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().rstrip("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


def _bind(text: str) -> tuple[str, str, bool]:
    parts = text.split(":")
    if len(parts) in (2, 3) and parts[0] and parts[1].startswith("/"):
        if len(parts) == 2:
            return parts[0], parts[1], False
        if parts[2] in ("ro", "rw"):
            return parts[0], parts[1], parts[2] == "ro"
    raise argparse.ArgumentTypeError(
        f"expected SRC:DST[:ro] with an absolute DST, got {text!r}"
    )


def _abs_path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"must be an absolute path: {text!r}")
    return text


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3_600_000:
        raise argparse.ArgumentTypeError(f"not a time in milliseconds: {text!r}")
    return value


def _env(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return text


def _allow_connect(text: str) -> list[tuple[str, int]]:
    from sentry.net.policy import parse_allow_connect

    try:
        return parse_allow_connect(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _allow_bind(text: str) -> int:
    from sentry.net.policy import parse_allow_bind

    try:
        return parse_allow_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _net_policy(ns: argparse.Namespace) -> NetPolicy | None:
    """The network policy the options ask for; None after a usage error."""
    from sentry.net.policy import NetPolicy

    if ns.net != "host" and (ns.allow_connect or ns.allow_bind):
        sys.stderr.write("pysentry: --allow-connect and --allow-bind need --net host\n")
        return None
    pairs = tuple(pair for group in ns.allow_connect for pair in group)
    return NetPolicy(ns.net, pairs, tuple(ns.allow_bind))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pysentry", description="Run Linux programs in a user-mode kernel.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a static x86-64 program in the sandbox")
    run.add_argument("--root", default="/", help="host directory seen as / (read-only)")
    run.add_argument("--bind", action="append", type=_bind, default=[],
                     metavar="SRC:DST[:ro]", help="expose a host directory at DST")
    run.add_argument("--tmpfs", action="append", type=_abs_path, default=[],
                     metavar="DST", help="mount an empty memory file system at DST")
    run.add_argument("--cwd", type=_abs_path, help="working directory of the program")
    run.add_argument("--env", action="append", type=_env, default=[],
                     metavar="NAME=VALUE", help="set an environment variable")
    run.add_argument("--clear-env", action="store_true",
                     help="start from an empty environment")
    run.add_argument("--strace", action="store_const", const="-",
                     help="trace syscalls like strace on stderr; --strace=FILE "
                          "writes the trace to FILE")
    run.add_argument("--strace-to", dest="strace", metavar="FILE",
                     help=argparse.SUPPRESS)
    run.add_argument("--strace-json", metavar="FILE",
                     help="write one JSON object per syscall to FILE")
    run.add_argument("--memory-limit", type=_size, metavar="SIZE",
                     help="most memory the guest may map (e.g. 512M)")
    run.add_argument("--max-tasks", type=int, default=4096, metavar="N",
                     help="most tasks the guest may have")
    net = run.add_argument_group("network")
    net.add_argument("--net", choices=["none", "host"], default="none",
                     help="none: a loopback of the sandbox's own (default); "
                          "host: AF_INET/AF_INET6 sockets are host sockets")
    net.add_argument("--allow-connect", action="append", type=_allow_connect,
                     default=[], metavar="HOST:PORT",
                     help="with --net host, connect only here (repeatable); "
                          "others get ECONNREFUSED")
    net.add_argument("--allow-bind", action="append", type=_allow_bind, default=[],
                     metavar="PORT", help="with --net host, bind and listen only "
                                          "on these ports (repeatable); others "
                                          "get EACCES")
    hooks = run.add_argument_group("JavaScript hooks")
    hooks.add_argument("--hooks", action="append", default=[], metavar="FILE.js",
                       help="run the syscall callbacks this script registers "
                            "(repeatable)")
    hooks.add_argument("--config", metavar="FILE.json",
                       help="callbacks listed in a gWisord-style config file")
    hooks.add_argument("--hook-timeout", type=_milliseconds, default=100.0,
                       metavar="MS", help="time limit of each callback (default 100)")
    hooks.add_argument("--hook-local", choices=["per-process", "per-thread"],
                       default="per-process",
                       help="what persistence.local is private to")
    hooks.add_argument("--hooks-fail-closed", action="store_true",
                       help="a failing callback makes its syscall fail with EPERM")
    hooks.add_argument("--strict-hooks", action="store_true",
                       help="an invalid config entry fails the run")
    live = run.add_argument_group("live control and log stream")
    live.add_argument("--control", metavar="ADDR",
                      help="serve control requests at unix:PATH (mode 0600) or "
                           "tcp:127.0.0.1:PORT (token required)")
    live.add_argument("--control-token", metavar="TOKEN",
                      help="the token control requests must carry (default: "
                           "$PYSENTRY_CONTROL_TOKEN, or generated for tcp)")
    live.add_argument("--log-socket", metavar="ADDR",
                      help="stream every syscall as JSON lines to a listener at "
                           "unix:PATH or tcp:HOST:PORT")
    live.add_argument("--log-optional", action="store_true",
                      help="run on without a log stream if nobody listens")
    run.add_argument("program", metavar="PROGRAM")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG")

    table = sub.add_parser("syscalls", help="print the syscall support table")
    table.add_argument("--markdown", action="store_true",
                       help="print the Markdown page kept in docs/syscalls.md")

    from sentry import remote

    remote.add_parsers(sub)
    return parser


def _environment(ns: argparse.Namespace) -> list[bytes]:
    env: dict[bytes, bytes] = {} if ns.clear_env else dict(os.environb)
    # The control token is the host's secret, not the guest's.
    env.pop(b"PYSENTRY_CONTROL_TOKEN", None)
    for item in ns.env:
        name, _, value = item.partition("=")
        env[os.fsencode(name)] = os.fsencode(value)
    return [k + b"=" + v for k, v in env.items()]


def _on_fault(task: Task, fault: GuestFault) -> None:
    name = abi.SIGNAL_NAMES.get(fault.signo, f"signal {fault.signo}")
    sys.stderr.write(
        f"pysentry: {task.process.comm}[{task.process.pid}] killed by {name}: "
        f"{fault.reason} at {fault.address:#x}\n"
    )


def cmd_run(ns: argparse.Namespace) -> int:
    from sentry.boot import StartError, start

    net = _net_policy(ns)
    if net is None:
        return EXIT_USAGE
    options = Options(
        root=ns.root, binds=ns.bind, tmpfs=ns.tmpfs, cwd=ns.cwd,
        memory_limit=ns.memory_limit, max_tasks=ns.max_tasks, net=net,
    )
    args = list(ns.args)
    if args[:1] == ["--"]:
        args = args[1:]
    try:
        kernel, task, entry, sp = start(options, ns.program, args, _environment(ns))
    except StartError as exc:
        sys.stderr.write(f"pysentry: {exc}\n")
        return exc.status

    engine = None
    if ns.hooks or ns.config:
        engine = _load_hooks(ns, kernel)
        if engine is None:
            return EXIT_USAGE
        kernel.set_hooks(engine)

    tracers = []
    if live_wanted(ns):
        from sentry.live import LiveError, start_live

        try:
            tracers.append(start_live(ns, kernel))
        except LiveError as exc:
            sys.stderr.write(f"pysentry: {exc}\n")
            if engine is not None:
                engine.close()
            return EXIT_USAGE
    elif ns.strace or ns.strace_json:
        from sentry.strace import Tracer

        try:
            tracer = Tracer.open(kernel, ns.strace, ns.strace_json)
        except OSError as exc:
            sys.stderr.write(f"pysentry: cannot open trace output: {exc.strerror}\n")
            return EXIT_USAGE
        tracers.append(tracer)
        kernel.set_tracer(tracer)
    from sentry.hostsig import HostSignals, inherit_ignored

    inherit_ignored(task.process)
    host_signals = HostSignals(kernel)
    host_signals.install()
    try:
        status = kernel.run(task, entry, sp, _on_fault)
        # The engine attached at the end (a control request may have
        # detached it, or attached one the run started without).
        if kernel.hooks is not None:
            kernel.hooks.run_exit(status)
    except KernelBug as bug:
        print_bug(bug)
        return EXIT_KERNEL_BUG
    finally:
        host_signals.uninstall()
        for tracer in tracers:
            tracer.close()
        if engine is not None:
            engine.close()
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF


def live_wanted(ns: argparse.Namespace) -> bool:
    """A control socket, a log stream, or a config file that may name them."""
    return bool(ns.control or ns.log_socket or ns.config)


def _note(text: str) -> None:
    sys.stderr.write(f"pysentry: {text}\n")


def _load_hooks(ns: argparse.Namespace, kernel: Kernel) -> HookEngine | None:
    """The hook engine with every --hooks script and --config loaded, or
    None after a one-line error."""
    from jshooks import (
        HookEngine,
        HookLoadError,
        HookOptions,
        load_config,
        load_script_file,
    )

    options = HookOptions(
        timeout_ms=ns.hook_timeout,
        per_thread_local=ns.hook_local == "per-thread",
        fail_closed=ns.hooks_fail_closed,
    )
    try:
        engine = HookEngine(kernel, options)
        for path in ns.hooks:
            load_script_file(engine, path)
        if ns.config:
            load_config(engine, ns.config, strict=ns.strict_hooks, warn=_note)
    except HookLoadError as exc:
        sys.stderr.write(f"pysentry: {exc}\n")
        return None
    return engine


def syscall_table_text(markdown: bool) -> str:
    """The support table as plain columns or as the Markdown docs page."""
    from sentry.syscalls.table import MISSING, default_table

    rows = [r for r in default_table()
            if not (r.level == MISSING and r.name.startswith("syscall_"))]
    if markdown:
        counts = {lvl: sum(1 for r in rows if r.level == lvl)
                  for lvl in ("supported", "partial", "missing")}
        lines = [
            "# System call support",
            "",
            "Generated by `pysentry syscalls --markdown` from the syscall table; "
            "do not edit by hand.",
            "",
            f"{counts['supported']} supported, {counts['partial']} partial, "
            f"{counts['missing']} missing (answered with ENOSYS).",
            "",
            "| nr | name | level | note |",
            "|---:|---|---|---|",
        ]
        lines += [f"| {r.nr} | {r.name} | {r.level} | {r.note} |" for r in rows]
        return "\n".join(lines) + "\n"
    lines = [f"{'NR':>4}  {'NAME':<24} {'LEVEL':<10} NOTE"]
    lines += [f"{r.nr:>4}  {r.name:<24} {r.level:<10} {r.note}".rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def cmd_syscalls(ns: argparse.Namespace) -> int:
    try:
        sys.stdout.write(syscall_table_text(ns.markdown))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (| head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


_VALUE_OPTIONS = {"--root", "--bind", "--tmpfs", "--cwd", "--env", "--strace-json",
                  "--strace-to", "--memory-limit", "--max-tasks", "--hooks",
                  "--config", "--hook-timeout", "--hook-local", "--control",
                  "--control-token", "--log-socket", "--net", "--allow-connect",
                  "--allow-bind"}


def _split_optional_values(argv: list[str]) -> list[str]:
    """Turn ``--strace=FILE`` into ``--strace-to FILE`` before the program name.

    ``--strace`` alone is a flag, so ``--strace PROGRAM`` never takes the
    program for a file name; only the ``=`` form carries a value. Arguments
    from the program name on belong to the guest and are left alone.
    """
    if argv[:1] != ["run"]:
        return argv
    out = ["run"]
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-"):
            return out + argv[i:]
        if arg.startswith("--strace="):
            out += ["--strace-to", arg.split("=", 1)[1]]
        elif arg in _VALUE_OPTIONS and i + 1 < len(argv):
            out += [arg, argv[i + 1]]
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    ns = parser.parse_args(_split_optional_values(args))
    if ns.command == "syscalls":
        return cmd_syscalls(ns)
    if ns.command in ("hooks", "logs"):
        from sentry import remote

        return remote.main(ns)
    return cmd_run(ns)


def entry_point() -> None:
    sys.exit(main())

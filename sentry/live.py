"""Setting up a run's live parts: the control socket, the log stream, tracing.

``pysentry run`` calls :func:`start_live` when the run has a control socket
or a log stream (from ``--control``, ``--log-socket`` or a config file's
``runtime-socket`` and ``log-socket``), and closes the :class:`Live` it gets
when the run ends. The order matters: the log stream connects first (a run
that cannot stream fails before the guest starts), then the tracer that
feeds it, then the control server, whose syscall counter wraps that tracer.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import TYPE_CHECKING, Any

from sentry.control import (
    Address,
    ControlError,
    ControlServer,
    CountingTracer,
    announce,
    parse_address,
)

if TYPE_CHECKING:
    from jshooks.engine import HookEngine
    from sentry.kernel import Kernel
    from sentry.logstream import LogStream

TOKEN_ENV = "PYSENTRY_CONTROL_TOKEN"


class LiveError(Exception):
    """The live parts cannot be set up; the message is one line."""


class Live:
    """What :func:`start_live` attached to a kernel; :meth:`close` ends it."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.tracer: Any = None
        self.stream: LogStream | None = None
        self.server: ControlServer | None = None
        self.created_engine: HookEngine | None = None

    def close(self) -> None:
        """Close the server, flush the traces and the stream (in that order)."""
        if self.server is not None:
            self.server.close()
        if self.tracer is not None:
            self.tracer.close()
        if self.stream is not None:
            self.stream.close()
        if self.created_engine is not None:
            self.created_engine.close()


def start_live(ns: argparse.Namespace, kernel: Kernel) -> Live:
    """Connect the log stream, attach the tracers and open the control
    socket the options ask for; LiveError names what went wrong."""
    from jshooks.config import config_sockets

    sockets = config_sockets(ns.config) if ns.config else {}
    control = _address(ns.control or sockets.get("runtime-socket"), "control socket")
    log = _address(ns.log_socket or sockets.get("log-socket"), "log socket")
    live = Live(kernel)
    try:
        if log is not None:
            live.stream = _connect_stream(log, ns.log_optional)
        live.tracer = _tracer(ns, kernel, live.stream)
        if live.stream is not None and kernel.hooks is not None:
            kernel.hooks.log_sink = live.tracer.log_json
        if control is not None:
            _open_control(ns, kernel, live, control)
        elif live.tracer is not None:
            kernel.set_tracer(live.tracer)
    except LiveError:
        live.close()
        raise
    return live


def _address(text: str | None, what: str) -> Address | None:
    if text is None:
        return None
    try:
        return parse_address(text)
    except ValueError as exc:
        raise LiveError(f"bad {what} address: {exc}") from None


def _connect_stream(address: Address, optional: bool) -> LogStream | None:
    from sentry.logstream import LogStream

    try:
        return LogStream.connect(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if optional:
            sys.stderr.write(
                f"pysentry: no log stream: cannot connect to {address}: {reason}\n"
            )
            return None
        raise LiveError(
            f"cannot connect to the log socket {address}: {reason} (start a "
            f"listener first, e.g. `pysentry logs {address}`, or pass --log-optional)"
        ) from None


def _tracer(ns: argparse.Namespace, kernel: Kernel, stream: LogStream | None) -> Any:
    """The tracer for --strace, --strace-json and the stream (None: none)."""
    from sentry.strace import Tracer

    try:
        if stream is not None:
            from sentry.logstream import LogTracer

            return LogTracer.open_with(kernel, stream, ns.strace, ns.strace_json)
        if ns.strace or ns.strace_json:
            return Tracer.open(kernel, ns.strace, ns.strace_json)
    except OSError as exc:
        raise LiveError(f"cannot open trace output: {exc.strerror}") from None
    return None


def _open_control(
    ns: argparse.Namespace, kernel: Kernel, live: Live, address: Address
) -> None:
    from jshooks.control import Requests

    token = ns.control_token or os.environ.get(TOKEN_ENV) or None
    generated = False
    if token is not None and (
        not token.isprintable() or any(c.isspace() for c in token)
    ):
        raise LiveError("the control token must be printable text without spaces")
    if token is None and address.kind == "tcp":
        token, generated = secrets.token_hex(16), True

    def make_engine() -> HookEngine:
        engine = _new_engine(ns, kernel)
        if live.stream is not None:
            engine.log_sink = live.tracer.log_json
        live.created_engine = engine
        return engine

    def on_detach() -> None:
        kernel.set_tracer(None)

    counting = CountingTracer(live.tracer)
    requests = Requests(kernel, make_engine, token, lambda: counting.counts, on_detach)
    try:
        live.server = ControlServer.open(kernel, address, requests)
    except ControlError as exc:
        raise LiveError(str(exc)) from None
    kernel.set_tracer(counting)
    live.server.start()
    announce(live.server, token, generated)


def _new_engine(ns: argparse.Namespace, kernel: Kernel) -> HookEngine:
    from jshooks import HookEngine, HookOptions

    options = HookOptions(
        timeout_ms=ns.hook_timeout,
        per_thread_local=ns.hook_local == "per-thread",
        fail_closed=ns.hooks_fail_closed,
    )
    return HookEngine(kernel, options)

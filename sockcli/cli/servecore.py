"""What ``sockcli serve`` does, and its options, without click.

A hub runs for days and keeps what it imported: click (and the inspect module it brings) was
1.5 MiB of an idle hub's 18.7 MiB resident memory, where the baseline relay holds 13.3 (issue
12: at rest, at most the baseline + 4 MiB). So an ordinary ``serve`` line is read by
:func:`parse_fast_serve` with the table here (:data:`SERVE_OPTIONS`, in the grammar of
:func:`~sockcli.cli.fastparse.parse_fast`), and everything else (help, completion, a bad value,
options that do not go together) goes through click, whose ``serve`` command
(:mod:`sockcli.cli.serve`) is built from the same table and makes the same
:class:`ServePlan`. Either way :func:`run_serve` runs the hub. The producer of ``--exec``
(subprocess, ctypes: 0.8 MiB) and the bridge (paho-mqtt) are imported only when asked for.
"""

from __future__ import annotations

import os
import signal

from sockcli import sdnotify
from sockcli.cli.errors import CliError, from_library, say
from sockcli.cli.fastparse import Plan, by_flag, parse_fast
from sockcli.cli.sendopts import CHOICE, FILE, FLAG, GLOBAL_OPTIONS, INT, TEXT, Option
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RESTART_POLICIES", "SERVE_OPTIONS", "SERVE_PLAN_OPTIONS", "ServePlan",
           "parse_fast_serve", "run_fast_serve", "run_serve", "usage_problem"]

#: ``--restart``'s choices: :data:`sockcli.hub.producer.RESTART_POLICIES`, which this module
#: must not import (tests/test_memory_serve.py checks that they are the same).
RESTART_POLICIES = ("never", "on-failure", "always")

#: ``serve``'s options, in the order of its help.
SERVE_OPTIONS = (
    Option("--tcp", dest="tcp", kind=FLAG, default=False,
           help="Listen on TCP instead of a Unix socket; without a token, the hub requires a "
                "secret of its own that your own clients find."),
    Option("--host", dest="host", kind=TEXT, metavar="ADDR",
           help="TCP address to bind (implies --tcp; default 127.0.0.1)."),
    Option("--port", dest="port", kind=INT, low=0, high=65535,
           help="TCP port (implies --tcp); 0, as the port setting: the first free port of "
                "port_range_start..port_range_end [default: the port setting]."),
    Option("--queue-size", dest="queue_size", kind=INT, low=0, high=1_000_000, metavar="N",
           help="Messages kept while no listener is connected (message_queue_size)."),
    Option("--max-connections", dest="max_connections", kind=INT, low=1, high=100_000,
           metavar="N", help="Clients accepted at once."),
    Option("--no-client-send", dest="no_client_send", kind=FLAG, default=False,
           help="Refuse messages from clients (allow_client_send = false)."),
    Option("--no-retain", dest="no_retain", kind=FLAG, default=False,
           help="Keep no last message per type for 'listen --last' (retain = false)."),
    Option("--no-fifo", dest="no_fifo", kind=FLAG, default=False,
           help="Make no named pipe {event}.fifo for shells to publish to ([unix] fifo = "
                "false); a TCP hub has none anyway."),
    Option("--token-file", dest="token_file", kind=FILE, metavar="FILE",
           help="Require TCP clients to prove they know the token in FILE (mode 0600; implies "
                "--tcp) [default: $SOCKCLI_TOKEN, else the token_file setting, else a per-hub "
                "secret]."),
    Option("--tls-cert", dest="tls_cert", kind=FILE, metavar="FILE",
           help="Serve TLS with this certificate chain (PEM; implies --tcp)."),
    Option("--tls-key", dest="tls_key", kind=FILE, metavar="FILE",
           help="The private key of --tls-cert (PEM), unless the certificate file holds it."),
    Option("--insecure", dest="insecure", kind=FLAG, default=False,
           help="Serve TCP without authentication: every local user, and anyone who can reach "
                "another address, may send and listen (implies --tcp)."),
    Option("--bridge", dest="bridge_url", kind=TEXT, metavar="URL",
           help="Share the event with the hubs of other machines through the MQTT broker at "
                "URL (mqtt://HOST[:PORT], mqtts://HOST[:PORT]); the [bridge] settings say the "
                "rest. Needs paho-mqtt (sockcli[mqtt]) [default: the [bridge] url setting; "
                "empty: no bridge]."),
    Option("--exec", dest="exec_command", kind=TEXT, metavar="CMD",
           help="Run CMD (with sh -c) once the hub listens, and broadcast each line it prints: "
                "a JSON object (data), or TYPE {json} (TYPE data, error, control or a "
                "configured type). Its stderr is the hub's; it is stopped with the hub."),
    Option("--restart", dest="restart", kind=CHOICE, choices=RESTART_POLICIES,
           help="When to run --exec's CMD again after it exits: never, on-failure (a non-zero "
                "status or a signal), always; waits 0.5 s, doubling up to 30 s, reset by a run "
                "of 10 s [default: on-failure]."),
)

#: Every entry a ServePlan has an attribute for, by its dest (besides the EVENT argument).
SERVE_PLAN_OPTIONS = GLOBAL_OPTIONS + SERVE_OPTIONS

_SERVE_FLAGS = by_flag(SERVE_OPTIONS)


class ServePlan(Plan):
    """Everything ``sockcli serve`` was asked to do: EVENT, and one attribute for each entry
    of :data:`SERVE_PLAN_OPTIONS`. Both parsers make one; :func:`run_serve` carries it out."""

    __slots__ = ("event", *(option.dest for option in SERVE_PLAN_OPTIONS))
    OPTIONS = SERVE_PLAN_OPTIONS

    event: str | None
    verbose: int
    quiet: bool
    debug: bool
    config_file: str | None
    socket_dir: str | None
    tcp: bool
    host: str | None
    port: int | None
    queue_size: int | None
    max_connections: int | None
    no_client_send: bool
    no_retain: bool
    no_fifo: bool
    token_file: str | None
    tls_cert: str | None
    tls_key: str | None
    insecure: bool
    bridge_url: str | None
    exec_command: str | None
    restart: str | None


def parse_fast_serve(argv: list[str]) -> ServePlan | None:
    """A ServePlan for a well-formed ``[global options] serve EVENT [options]`` line, else
    None: then click parses it. EVENT is required (no $SOCKCLI_EVENT: a hub serves the event
    it is given)."""
    values = parse_fast(argv, "serve", _SERVE_FLAGS, SERVE_PLAN_OPTIONS, event_from_env=False)
    if values is None or values["event"] is None:
        return None
    plan = ServePlan(**values)
    return None if usage_problem(plan) is not None else plan


def usage_problem(plan: ServePlan) -> tuple[str, str | None] | None:
    """Why the plan's options cannot go together: (the message, the option it is about or
    None for the line as a whole), or None."""
    if plan.tls_key is not None and plan.tls_cert is None:
        return "--tls-key needs --tls-cert", None
    if plan.restart is not None and plan.exec_command is None:
        return "--restart needs --exec", None
    if plan.exec_command is not None and not plan.exec_command.strip():
        return ("empty command: give the command line to run, such as --exec "
                "'my-status-script'", "'--exec'")
    return None


def run_fast_serve(plan: ServePlan) -> None:
    """:func:`run_serve` for the fast path, with the CliState that the group's callback, which
    does not run, would make of the global options (logging configured)."""
    state = CliState(**{option.dest: getattr(plan, option.dest) for option in GLOBAL_OPTIONS})
    state.configure_logging()
    run_serve(state, plan)


def _note(state: CliState, text: str) -> None:
    """A progress note on stderr, unless --quiet (CliState.info's, without click.echo)."""
    if not state.quiet:
        say(f"sockcli: {text}\n")


def _overrides(plan: ServePlan) -> dict[str, Any]:
    """The settings the options override."""
    overrides: dict[str, Any] = {}
    if plan.queue_size is not None:
        overrides["message_queue_size"] = plan.queue_size
    if plan.max_connections is not None:
        overrides["max_connections"] = plan.max_connections
    if plan.no_client_send:
        overrides["allow_client_send"] = False
    if plan.no_retain:
        overrides["retain"] = False
    if plan.no_fifo:
        overrides["fifo"] = False
    if plan.host is not None:
        overrides["host"] = plan.host
    if plan.port is not None:
        overrides["port"] = plan.port
    if plan.tls_cert is not None:
        overrides["tls_cert"] = os.path.abspath(plan.tls_cert)
        overrides["tls_key"] = os.path.abspath(plan.tls_key) if plan.tls_key is not None \
            else None
    if plan.insecure:
        overrides["insecure"] = True
    return overrides


def run_serve(state: CliState, plan: ServePlan) -> None:
    """Run the hub of ``plan.event`` (valid, and the plan free of usage problems) until SIGINT,
    SIGTERM or SIGHUP; the producer and the bridge start once it listens."""
    from sockcli.cli.sendopts import token_from_option
    from sockcli.factory import create_server

    assert plan.event is not None
    event = plan.event
    overrides = _overrides(plan)
    security: dict[str, Any] = {}
    token = token_from_option(plan.token_file)
    if token is not None:
        security["token"] = token
    transport = "tcp" if (plan.tcp or plan.host is not None or plan.port is not None or
                          security or plan.tls_cert is not None or plan.insecure) else "unix"
    signalled: list[int] = []
    started: list[bool] = []
    bridge = _bridge(state, event, plan.bridge_url)  # exit 78 at once without paho-mqtt
    try:
        hub: Any = create_server(transport, event, settings=state.settings(), **overrides,
                                 **security)
        if plan.exec_command is not None:
            hub.producer = _producer(state, hub, plan.exec_command,
                                     plan.restart or "on-failure")

        def stop(signum: int, frame: Any) -> None:
            signalled.append(signum)
            if started:  # inside start(), stop() would wait for a loop not running yet
                sdnotify.stopping()
                hub.stop()

        # Handlers before start(): a signal in between must still stop the hub cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        hub.start(blocking=False)
    except SocketError as exc:
        raise from_library(exc) from None
    started.append(True)
    if signalled:  # stopped before it started serving: say nothing of serving
        hub.stop()
    else:
        sdnotify.ready()  # a Type=notify unit (systemd) is started once clients can connect
        _note(state, f"serving {event!r} on {hub.address} ({_describe(transport, hub)}); "
                     "stop with Ctrl-C")
        _start_producer(hub)
        _start_bridge(state, hub, bridge)
    hub.wait()
    if bridge is not None:
        bridge.stop()  # says offline to the broker
    if hub.producer is not None:
        hub.producer.stop()  # its whole group, before serve exits
    _note(state, f"hub {event!r} stopped")


def _producer(state: CliState, hub: Any, command: str, restart: str) -> Any:
    """The producer of ``serve --exec``: its lines become the hub's own messages. CMD gets
    the hub's environment and what a sockcli it runs needs to find this hub."""
    from sockcli.hub.producer import Producer
    from sockcli.types import SocketMessage

    event = hub.event_name
    env = {**os.environ, "SOCKCLI_EVENT": event,
           "SOCKCLI_SOCKET_DIR": str(hub.config.socket_dir)}
    if state.config_file:
        env["SOCKCLI_CONFIG"] = os.path.abspath(state.config_file)

    def emit(message_type: Any, data: dict[str, Any]) -> None:
        hub.send(SocketMessage(event, message_type=message_type, data=data))

    return Producer(command, emit=emit, restart=restart, env=env,
                    max_line_bytes=hub.config.buffer_size)


def _bridge(state: CliState, event: str, url: str | None) -> Any:
    """The MQTT bridge of ``serve --bridge URL`` (or of the [bridge] url setting), made but
    not started; None without one. ConfigError (78) without paho-mqtt or for a bad URL."""
    from sockcli.exceptions import ValidationError

    settings = state.settings()
    if url is None and not settings.bridge.url:
        return None
    try:
        from sockcli.bridge import Bridge, require_paho

        require_paho()
        return Bridge(event, settings=settings, url=url)
    except ValidationError as exc:
        raise from_library(exc) from None


def _start_bridge(state: CliState, hub: Any, bridge: Any) -> None:
    """Start the bridge once the hub listens; its figures join the hub's (``sockcli list``).
    A bridge that cannot start stops the hub (exit 78): serving unbridged would only seem to
    work."""
    if bridge is None:
        return
    hub.bridge = bridge
    try:
        bridge.start()
    except SocketError as exc:
        hub.stop()
        raise from_library(exc) from None
    _note(state, f"bridging {hub.event_name!r} through {bridge.figures()['url']}")


def _start_producer(hub: Any) -> None:
    """Start the producer, if any, once the hub listens; a hub that cannot start it stops
    (exit 1): serving without the producer it was asked for would only seem to work."""
    if hub.producer is None:
        return
    try:
        hub.producer.start()
    except OSError as exc:
        hub.stop()
        raise CliError(f"cannot start the producer's watchdog (/bin/sh): {exc}") from None


def _describe(transport: str, hub: Any) -> str:
    """"unix", "tcp, token (per-hub secret)", "tcp, TLS, token", "tcp, no authentication":
    what protects the hub, for the start-up line."""
    protection = tuple(getattr(hub, "protection", ()))
    if transport == "tcp" and not any(p.startswith("token") for p in protection):
        protection += ("no authentication",)
    return ", ".join((transport, *protection))

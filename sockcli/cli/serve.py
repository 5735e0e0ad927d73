"""``sockcli serve EVENT``: run a hub in the foreground until a signal stops it."""

from __future__ import annotations

import os
import signal
from typing import Any

import click

from sockcli import sdnotify
from sockcli.cli.errors import CliError, from_library
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError
from sockcli.hub.producer import RESTART_POLICIES

__all__ = ["serve"]


@click.command()
@click.argument("event")
@click.option("--tcp", is_flag=True,
              help="Listen on TCP instead of a Unix socket; without a token, the hub requires "
                   "a secret of its own that your own clients find.")
@click.option("--host", metavar="ADDR", help="TCP address to bind (implies --tcp; default "
              "127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="TCP port (implies --tcp); 0, as the port setting: the first free port of "
                   "port_range_start..port_range_end [default: the port setting].")
@click.option("--queue-size", type=click.IntRange(0, 1_000_000), metavar="N",
              help="Messages kept while no listener is connected (message_queue_size).")
@click.option("--max-connections", type=click.IntRange(1, 100_000), metavar="N",
              help="Clients accepted at once.")
@click.option("--no-client-send", is_flag=True,
              help="Refuse messages from clients (allow_client_send = false).")
@click.option("--no-retain", is_flag=True,
              help="Keep no last message per type for 'listen --last' (retain = false).")
@click.option("--no-fifo", is_flag=True,
              help="Make no named pipe {event}.fifo for shells to publish to ([unix] fifo = "
                   "false); a TCP hub has none anyway.")
@click.option("--token-file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Require TCP clients to prove they know the token in FILE (mode 0600; "
                   "implies --tcp) [default: $SOCKCLI_TOKEN, else the token_file setting, "
                   "else a per-hub secret].")
@click.option("--tls-cert", metavar="FILE", type=click.Path(dir_okay=False),
              help="Serve TLS with this certificate chain (PEM; implies --tcp).")
@click.option("--tls-key", metavar="FILE", type=click.Path(dir_okay=False),
              help="The private key of --tls-cert (PEM), unless the certificate file holds it.")
@click.option("--insecure", is_flag=True,
              help="Serve TCP without authentication: every local user, and anyone who can "
                   "reach another address, may send and listen (implies --tcp).")
@click.option("--bridge", "bridge_url", metavar="URL",
              help="Share the event with the hubs of other machines through the MQTT broker "
                   "at URL (mqtt://HOST[:PORT], mqtts://HOST[:PORT]); the [bridge] settings "
                   "say the rest. Needs paho-mqtt (sockcli[mqtt]) [default: the [bridge] url "
                   "setting; empty: no bridge].")
@click.option("--exec", "exec_command", metavar="CMD",
              help="Run CMD (with sh -c) once the hub listens, and broadcast each line it "
                   "prints: a JSON object (data), or TYPE {json} (TYPE data, error, control "
                   "or a configured type). Its stderr is the hub's; it is stopped with the "
                   "hub.")
@click.option("--restart", type=click.Choice(RESTART_POLICIES),
              help="When to run --exec's CMD again after it exits: never, on-failure (a "
                   "non-zero status or a signal), always; waits 0.5 s, doubling up to 30 s, "
                   "reset by a run of 10 s [default: on-failure].")
@click.pass_obj
def serve(state: CliState, event: str, tcp: bool, host: str | None, port: int | None,
          queue_size: int | None, max_connections: int | None, no_client_send: bool,
          no_retain: bool, no_fifo: bool, token_file: str | None, tls_cert: str | None,
          tls_key: str | None, insecure: bool, bridge_url: str | None,
          exec_command: str | None, restart: str | None) -> None:
    """Run the hub for EVENT until SIGINT or SIGTERM.

    Clients find it by the event name. It relays every message a client sends to the other
    listeners, and keeps messages sent while nobody listens (see --queue-size). On exit the
    socket (TCP: the hub's secret) and the hub's record are removed.

    With --exec, the hub runs one producer for all its listeners: every line CMD prints
    becomes a message of the hub's own; CMD is run again as --restart says, and its whole
    process group is stopped when the hub stops (SIGTERM, SIGKILL 3 s later) or dies.
    """
    from sockcli.factory import create_server
    from sockcli.types import validate_event_name

    try:
        validate_event_name(event)
    except SocketError as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT") from None
    overrides: dict[str, Any] = {}
    if queue_size is not None:
        overrides["message_queue_size"] = queue_size
    if max_connections is not None:
        overrides["max_connections"] = max_connections
    if no_client_send:
        overrides["allow_client_send"] = False
    if no_retain:
        overrides["retain"] = False
    if no_fifo:
        overrides["fifo"] = False
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if tls_key is not None and tls_cert is None:
        raise click.UsageError("--tls-key needs --tls-cert")
    if restart is not None and exec_command is None:
        raise click.UsageError("--restart needs --exec")
    if exec_command is not None and not exec_command.strip():
        raise click.BadParameter("empty command: give the command line to run, such as "
                                 "--exec 'my-status-script'", param_hint="'--exec'")
    if tls_cert is not None:
        overrides["tls_cert"] = os.path.abspath(tls_cert)
        overrides["tls_key"] = os.path.abspath(tls_key) if tls_key is not None else None
    if insecure:
        overrides["insecure"] = True
    from sockcli.cli.sendopts import token_from_option

    security: dict[str, Any] = {}
    token = token_from_option(token_file)
    if token is not None:
        security["token"] = token
    transport = "tcp" if (tcp or host is not None or port is not None or security or
                          tls_cert is not None or insecure) else "unix"
    signalled: list[int] = []
    started: list[bool] = []
    bridge = _bridge(state, event, bridge_url)  # exit 78 at once without paho-mqtt
    try:
        hub: Any = create_server(transport, event, settings=state.settings(), **overrides,
                                 **security)
        if exec_command is not None:
            hub.producer = _producer(state, hub, exec_command, restart or "on-failure")

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
        state.info(f"serving {event!r} on {hub.address} ({_describe(transport, hub)}); stop "
                   "with Ctrl-C")
        _start_producer(hub)
        _start_bridge(state, hub, bridge)
    hub.wait()
    if bridge is not None:
        bridge.stop()  # says offline to the broker
    if hub.producer is not None:
        hub.producer.stop()  # its whole group, before serve exits
    state.info(f"hub {event!r} stopped")


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
    state.info(f"bridging {hub.event_name!r} through {bridge.figures()['url']}")


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

"""``sockcli serve EVENT``: run a hub in the foreground until a signal stops it."""

from __future__ import annotations

import os
import signal
from typing import Any

import click

from sockcli.cli.errors import from_library
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError

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
@click.pass_obj
def serve(state: CliState, event: str, tcp: bool, host: str | None, port: int | None,
          queue_size: int | None, max_connections: int | None, no_client_send: bool,
          no_retain: bool, token_file: str | None, tls_cert: str | None, tls_key: str | None,
          insecure: bool) -> None:
    """Run the hub for EVENT until SIGINT or SIGTERM.

    Clients find it by the event name. It relays every message a client sends to the other
    listeners, and keeps messages sent while nobody listens (see --queue-size). On exit the
    socket (TCP: the hub's secret) and the hub's record are removed.
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
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if tls_key is not None and tls_cert is None:
        raise click.UsageError("--tls-key needs --tls-cert")
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
    try:
        hub: Any = create_server(transport, event, settings=state.settings(), **overrides,
                                 **security)

        def stop(signum: int, frame: Any) -> None:
            signalled.append(signum)
            if started:  # inside start(), stop() would wait for a loop not running yet
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
        state.info(f"serving {event!r} on {hub.address} ({_describe(transport, hub)}); stop "
                   "with Ctrl-C")
    hub.wait()
    state.info(f"hub {event!r} stopped")


def _describe(transport: str, hub: Any) -> str:
    """"unix", "tcp, token (per-hub secret)", "tcp, TLS, token", "tcp, no authentication":
    what protects the hub, for the start-up line."""
    protection = tuple(getattr(hub, "protection", ()))
    if transport == "tcp" and not any(p.startswith("token") for p in protection):
        protection += ("no authentication",)
    return ", ".join((transport, *protection))

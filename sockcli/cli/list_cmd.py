"""``sockcli list``: the hubs running now, with live figures from each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from sockcli.cli.errors import ConfigError
from sockcli.cli.options import client_security_options, connect_option, json_option
from sockcli.cli.render import hub_table, is_terminal
from sockcli.cli.state import CliState
from sockcli.exceptions import AuthenticationError, SocketError, ValidationError
from sockcli.kinds import SocketType

if TYPE_CHECKING:
    from sockcli.runtime import HubRecord

__all__ = ["list_hubs"]

_ASK_TIMEOUT = 1.0


def _live(state: CliState, event: str, connect: tuple[str, int] | None,
          say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ask one hub for its figures; a hub that does not answer is shown with '?'."""
    client = state.client(event, connect, subscribe=False, auto_reconnect=False)
    try:
        client.connect(timeout=_ASK_TIMEOUT)
        stats: dict[str, Any] = client.stats(timeout=_ASK_TIMEOUT)
    except SocketError as exc:
        # Not a hub that is busy: say why (refused, or its secret file is unsafe to use).
        if isinstance(exc, AuthenticationError | ValidationError):
            (say or state.info)(f"{event}: {exc}")
        return {}
    finally:
        client.disconnect()
    stats["clients"] = max(0, int(stats.get("clients", 1)) - 1)  # not counting ourselves
    return stats


@click.command("list")
@json_option
@click.option("-w", "--watch", is_flag=True,
              help="Keep watching: a live view refreshed every --interval on a terminal (Ctrl-C "
                   "ends it, exit 0), else one JSON line (the --json array) per interval.")
@click.option("--interval", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="With --watch: the time between refreshes  [default: 1].")
@connect_option
@client_security_options
@click.pass_obj
def list_hubs(state: CliState, as_json: bool, watch: bool, interval: float | None,
              connect: tuple[str, int] | None) -> None:
    """List the running hubs: event, transport, address, pid, clients, queued messages."""
    if interval is not None and not watch:
        raise click.UsageError("--interval is the period of --watch: give --watch too")
    if watch:
        from sockcli.cli.watch import watch_hubs

        socket_dir = None if connect else str(state.settings().socket.socket_dir)
        watch_hubs(lambda say: hub_rows(state, connect, say), interval=interval or 1.0,
                   as_json=as_json or not is_terminal(), socket_dir=socket_dir,
                   info=state.info)
        return
    rows = hub_rows(state, connect)
    if as_json or not is_terminal():
        click.echo(json.dumps(rows, ensure_ascii=False, indent=None if not is_terminal() else 2))
        return
    if not rows:
        state.info("no hub is running (start one with 'sockcli serve EVENT')")
        return
    from rich.console import Console

    socket_dir = None if connect else str(state.settings().socket.socket_dir)
    Console().print(hub_table(rows, socket_dir))


def hub_rows(state: CliState, connect: tuple[str, int] | None,
             say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per running hub (the one at --connect), with the figures it gives now; what
    keeps a hub from answering is told through ``say`` (default: ``state.info``)."""
    from sockcli.client.discovery import running_hubs

    rows: list[dict[str, Any]] = []
    if connect is not None:
        event = state.resolve_event(None, connect)
        stats = _live(state, event, connect, say)
        rows.append({"event_name": event, "transport": "tcp",
                     "address": f"{connect[0]}:{connect[1]}", "pid": stats.get("pid"),
                     **_figures(stats)})
    else:
        socket_dir = state.settings().socket.socket_dir
        try:
            records = running_hubs(socket_dir)
        except SocketError as exc:
            raise ConfigError(str(exc)) from None
        for record in records:
            stats = _live(state, record.event_name, None, say)
            rows.append({"event_name": record.event_name, "transport": record.transport.value,
                         "address": record.address, **_ways_in(record), "pid": record.pid,
                         "started_ms": record.started_ms, **_figures(stats)})
    return rows


def _ways_in(record: HubRecord) -> dict[str, Any]:
    """A Unix hub's FIFO and JSON-lines socket (None: it has none, ``serve --no-fifo``), and
    whether systemd passed its sockets; a TCP hub has neither (they are local)."""
    if record.transport is not SocketType.UNIX:
        return {}
    return {"fifo": record.fifo, "lines": record.lines, "activated": record.activated}


def _figures(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("clients", "subscribers", "queued", "dropped", "received", "delivered", "rejected",
            "retained")
    figures = {k: stats.get(k) for k in keys}
    if "started_ms" in stats:
        figures["started_ms"] = stats["started_ms"]
    for part in ("producer", "bridge"):  # serve --exec, --bridge: only hubs that have one
        if isinstance(stats.get(part), dict):
            figures[part] = stats[part]
    return figures

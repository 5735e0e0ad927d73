"""``sockcli path``: where the ways into an event's hub are, for scripts that use them directly.

A script asks once (``fifo=$(sockcli path wallpaper_change --fifo)``) and then publishes with
one ``write`` per message (``echo '{"progress": 40}' > "$fifo"``), or points socat at the
JSON-lines socket. A running hub's record says what it really has: a TCP hub has host:port and
neither a FIFO nor a JSON-lines socket (they are local), a hub started with ``--no-fifo`` has
no FIFO. With no hub running, the paths are those a Unix hub would use under the current
settings, so that a script can take them before its hub starts.
"""

from __future__ import annotations

import json
from typing import Any

import click

from sockcli.cli.errors import ConfigError, NoHubError
from sockcli.cli.options import event_argument, json_option, options_from
from sockcli.cli.sendopts import FLAG, Option
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError
from sockcli.kinds import SocketType

__all__ = ["PATH_OPTIONS", "path"]

#: What ``sockcli path`` prints, in the order it prints them (by their key in ``--json``).
PATH_OPTIONS = (
    Option("--socket", dest="socket", kind=FLAG, default=False,
           help="The hub's socket, for 'sockcli send' and the libraries (host:port for a TCP "
                "hub); the default."),
    Option("--fifo", dest="fifo", kind=FLAG, default=False,
           help="The named pipe a shell publishes to with a redirection: echo '{...}' > "
                "\"$fifo\"."),
    Option("--lines", dest="lines", kind=FLAG, default=False,
           help="The JSON-lines socket (socat, nc -U, a desktop shell's socket): one JSON "
                "line per message, either way."),
)

def _paths(state: CliState, event: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``--json`` object of ``event`` (its socket, FIFO and JSON-lines socket, None for
    those it has not, and whether its hub runs), and why each it has not is missing (the
    text of exit 69). A socket directory that is not safe to use, or a socket path longer
    than a Unix socket takes, are ConfigError (78), as they are for ``serve``."""
    from sockcli.client.discovery import find_hub
    from sockcli.runtime import fifo_path, socket_path

    settings = state.settings()
    socket_dir = settings.socket.socket_dir
    send = f"or publish with 'sockcli send {event}'"
    try:
        record = find_hub(socket_dir, event)
        if record is not None and record.transport is SocketType.TCP:
            tcp = f"hub {event!r} is a TCP hub: it has no"
            return {"event_name": event, "socket": record.address, "fifo": None,
                    "lines": None, "running": True}, {
                "fifo": f"{tcp} FIFO (a FIFO is local); start it without --tcp for one, {send}",
                "lines": f"{tcp} JSON-lines socket (it listens on TCP only); start it "
                         f"without --tcp for one, {send}"}
        mine = str(socket_path(socket_dir, event))
    except SocketError as exc:
        raise ConfigError(str(exc)) from None
    if record is not None:
        paths = {"event_name": event, "socket": record.path or mine, "fifo": record.fifo,
                 "lines": record.lines, "running": True}
        return paths, {
            "fifo": f"hub {event!r} runs without a FIFO (serve --no-fifo, or the [unix] fifo "
                    f"setting): restart it with one, {send}",
            "lines": f"hub {event!r} runs without a JSON-lines socket (the [unix] "
                     f"lines_socket setting, or a socket path too long): restart it with one, "
                     f"{send}"}
    # No hub: what one would make under these settings, as sockcli.hub.unix decides it.
    unix = settings.unix
    lines, too_long = _lines_path(socket_dir, event) if unix.lines_socket else (None, False)
    paths = {"event_name": event, "socket": mine,
             "fifo": str(fifo_path(socket_dir, event)) if unix.fifo else None,
             "lines": lines, "running": False}
    would = f"a hub of {event!r} would make no"
    return paths, {
        "fifo": f"{would} FIFO: the [unix] fifo setting is false; set it to true for one, "
                f"{send}",
        "lines": f"{would} JSON-lines socket: its path would be longer than Unix sockets "
                 f"take; choose a shorter socket_dir or event name, {send}" if too_long else
                 f"{would} JSON-lines socket: the [unix] lines_socket setting is false; set "
                 f"it to true for one, {send}"}


def _lines_path(socket_dir: Any, event: str) -> tuple[str | None, bool]:
    """The JSON-lines socket's path, or (None, True) when it would be too long: the hub then
    makes none (it still starts, its main socket's path being 6 bytes shorter)."""
    from sockcli.runtime import lines_path

    try:
        return str(lines_path(socket_dir, event)), False
    except SocketError:
        return None, True


@click.command("path")
@event_argument
@options_from(PATH_OPTIONS)
@json_option
@click.pass_obj
def path(state: CliState, /, event: str | None, socket: bool, fifo: bool, lines: bool,
         as_json: bool) -> None:
    """Print where EVENT's hub takes messages: its socket, FIFO or JSON-lines socket.

    One path per line, in the order socket, FIFO, lines socket, for each option given (the
    socket without one), so that 'fifo=$(sockcli path EVENT --fifo)' works in a script. The
    running hub's record says them; with none running, the paths a Unix hub would use under
    the current settings. EVENT is found as send finds it. Exit 69 when the hub has no such
    path, or would have none (a TCP hub has no FIFO and no lines socket; serve --no-fifo and
    the [unix] fifo and lines_socket settings turn them off); --json then gives null.
    """
    if as_json and (socket or fifo or lines):
        raise click.UsageError("--json prints every path: give it without --socket, --fifo "
                               "and --lines")
    name = state.resolve_event(event)  # as send without --wait: 64 for several hubs, 69 none
    paths, missing = _paths(state, name)
    if as_json:
        click.echo(json.dumps(paths, ensure_ascii=False))
        return
    asked = [key for key, given in (("socket", socket), ("fifo", fifo), ("lines", lines))
             if given] or ["socket"]
    for key in asked:  # all or nothing: no path printed before a refusal
        if paths[key] is None:
            raise NoHubError(missing[key])
    for key in asked:
        click.echo(paths[key])

"""Options and arguments several commands share, as decorators."""

from __future__ import annotations

from typing import Any

import click

from sockcli.cli.state import parse_hostport

__all__ = ["MESSAGE_TYPES", "complete_events", "connect_option", "event_argument", "json_option"]

MESSAGE_TYPES = click.Choice(["data", "error", "control"], case_sensitive=False)


def complete_events(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[Any]:
    """Shell completion of EVENT: the names of the hubs running now."""
    from click.shell_completion import CompletionItem

    try:
        from sockcli.cli.state import CliState
        from sockcli.discovery import running_hubs

        root = ctx.find_root()
        state = CliState(config_file=root.params.get("config_file"),
                         socket_dir=root.params.get("socket_dir"))
        hubs = running_hubs(state.settings().socket.socket_dir)
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [CompletionItem(h.event_name, help=f"{h.transport.value} {h.address}")
            for h in hubs if h.event_name.startswith(incomplete)]


event_argument = click.argument("event", required=False, metavar="[EVENT]",
                                shell_complete=complete_events)

connect_option = click.option(
    "--connect", metavar="HOST:PORT", callback=parse_hostport,
    help="Reach a TCP hub at HOST:PORT (another machine) instead of finding it by name.")

json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="Machine-readable output even on a terminal.")

"""Options and arguments several commands share, as decorators."""

from __future__ import annotations

from typing import Any

import click

from sockcli.cli.state import parse_hostport

__all__ = ["MESSAGE_TYPES", "client_security_options", "complete_events", "connect_option",
           "event_argument", "json_option", "token_file_option"]

MESSAGE_TYPES = click.Choice(["data", "error", "control"], case_sensitive=False)


def complete_events(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[Any]:
    """Shell completion of EVENT: the names of the hubs running now."""
    from click.shell_completion import CompletionItem

    try:
        from sockcli.cli.state import CliState
        from sockcli.client.discovery import running_hubs

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


def _to_state(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Keep the option in the CliState: commands, the remote-event probe and the send plan
    all read it there."""
    from sockcli.cli.state import CliState

    if value is not None:
        state = ctx.find_object(CliState)
        if state is not None:
            setattr(state, str(param.name), value)


token_file_option = click.option(
    "--token-file", metavar="FILE", type=click.Path(dir_okay=False), expose_value=False,
    callback=_to_state,
    help="Read the shared token of TCP hubs from FILE (mode 0600) [default: $SOCKCLI_TOKEN, "
         "else the token_file setting].")

tls_ca_option = click.option(
    "--tls-ca", metavar="FILE", type=click.Path(dir_okay=False), expose_value=False,
    callback=_to_state,
    help="Speak TLS to TCP hubs, trusting the CA certificates in FILE (PEM) [default: the "
         "tls_ca setting].")


def client_security_options(command: Any) -> Any:
    """--token-file and --tls-ca, for the commands that connect to hubs."""
    return token_file_option(tls_ca_option(command))

"""``sockcli send``: publish JSON objects to a hub, and exit 0 only once it acknowledged them.

This is the click face of the command (help, completion, usage errors); the work, and the
fast path that skips click for ordinary command lines, are in :mod:`sockcli.cli.sendcore`.
"""

from __future__ import annotations

import os

import click

from sockcli.cli.options import (
    MESSAGE_TYPES,
    client_security_options,
    connect_option,
    event_argument,
)
from sockcli.cli.sendcore import SendPlan, run_send
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError
from sockcli.rules import validate_event_name

__all__ = ["plan_from_click", "send"]


def plan_from_click(state: CliState, event: str | None, lines: bool, data_text: str | None,
                    message_type: str, to: str | None, wait_s: float, timeout: float | None,
                    connect: tuple[str, int] | None) -> SendPlan:
    """The SendPlan of a parsed command line (also what the fast path must agree with)."""
    if data_text is not None and lines:
        raise click.UsageError("--data and --lines exclude each other")
    source = "EVENT"
    if event is None and os.environ.get("SOCKCLI_EVENT"):
        event, source = os.environ["SOCKCLI_EVENT"], "SOCKCLI_EVENT"
    if event is not None:
        try:
            validate_event_name(event)
        except SocketError as exc:
            raise click.BadParameter(str(exc), param_hint=source) from None
    return SendPlan(event=event, lines=lines, data_text=data_text,
                    message_type=message_type.lower(), to=to, wait=wait_s, timeout=timeout,
                    connect=connect, config_file=state.config_file,
                    socket_dir=state.socket_dir, verbose=state.verbose, quiet=state.quiet,
                    debug=state.debug, token_file=state.token_file, tls_ca=state.tls_ca)


@click.command()
@event_argument
@click.option("--lines", is_flag=True,
              help="Read one JSON object per line and send each as it arrives.")
@click.option("-d", "--data", "data_text", metavar="JSON",
              help="Send this JSON object; stdin is not read at all.")
@click.option("-t", "--type", "message_type", type=MESSAGE_TYPES, default="data",
              show_default=True, help="Message type.")
@click.option("--to", metavar="NAME", help="Deliver only to listeners started with --name NAME.")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 3600), default=1.0, show_default=True,
              metavar="SECONDS", help="How long to wait for a hub that is not running yet.")
@click.option("--timeout", type=click.FloatRange(0.001, 86400), metavar="SECONDS",
              help="How long to wait for the hub's acknowledgements [default: default_timeout].")
@connect_option
@client_security_options
@click.pass_obj
def send(state: CliState, event: str | None, lines: bool, data_text: str | None,
         message_type: str, to: str | None, wait_s: float, timeout: float | None,
         connect: tuple[str, int] | None) -> None:
    """Send JSON objects from stdin (or -d) to the hub of EVENT.

    Without --lines, stdin holds one JSON object: one message. With --lines, each line is one
    message, sent as it arrives; a bad line is reported and skipped, the others are sent, and
    the exit status is 65. Exits 0 only once the hub has acknowledged every message.
    """
    run_send(plan_from_click(state, event, lines, data_text, message_type, to, wait_s,
                             timeout, connect))

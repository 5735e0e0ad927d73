"""``sockcli send``: publish JSON objects to a hub, and exit 0 only once it acknowledged them.

This is the click face of the command (help, completion, usage errors); the work, and the
fast path that skips click for ordinary command lines, are in :mod:`sockcli.cli.sendcore`.
Its options are the entries of :mod:`sockcli.cli.sendopts`, which the fast path reads too.
"""

from __future__ import annotations

from typing import Any

import click

from sockcli.cli.options import (
    client_security_options,
    connect_option,
    event_argument,
    options_from,
)
from sockcli.cli.sendcore import SendPlan, run_send
from sockcli.cli.sendopts import (
    EXCLUSIVE,
    GLOBAL_OPTIONS,
    SECURITY_OPTIONS,
    SEND_OPTIONS,
    event_or_env,
)
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError
from sockcli.rules import validate_event_name

__all__ = ["plan_basics", "plan_from_click", "send"]


def plan_from_click(state: CliState, event: str | None, **values: Any) -> SendPlan:
    """The SendPlan of a parsed command line (also what the fast path must agree with):
    ``values`` are send's own options and --connect; the global options, --token-file and
    --tls-ca are in the CliState, under the same names."""
    for first, second in EXCLUSIVE:
        if values[first.dest] != first.default and values[second.dest] != second.default:
            raise click.UsageError(f"{first.flags[-1]} and {second.flags[-1]} exclude each "
                                   "other")
    event, kept = plan_basics(state, event)
    return SendPlan(event=event, **kept, **values)


def plan_basics(state: CliState, event: str | None) -> tuple[str | None, dict[str, Any]]:
    """What the plans of ``send`` and ``get`` take alike from a parsed command line: EVENT
    (else $SOCKCLI_EVENT), checked, and the global and security options the CliState holds."""
    event, source = event_or_env(event)
    if event is not None:
        try:
            validate_event_name(event)
        except SocketError as exc:
            raise click.BadParameter(str(exc), param_hint=source) from None
    return event, {option.dest: getattr(state, option.dest)
                   for option in GLOBAL_OPTIONS + SECURITY_OPTIONS}


@click.command()
@event_argument
@options_from(SEND_OPTIONS)
@connect_option
@client_security_options
@click.pass_obj
def send(state: CliState, /, event: str | None, **values: Any) -> None:
    """Send JSON objects from stdin (or -d) to the hub of EVENT.

    Without --lines, stdin holds one JSON object: one message. With --lines, each line is one
    message, sent as it arrives; a bad line is reported and skipped, the others are sent, and
    the exit status is 65. Exits 0 only once the hub has acknowledged every message.
    """
    run_send(plan_from_click(state, event, **values))

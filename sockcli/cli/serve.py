"""``sockcli serve EVENT``: run a hub in the foreground until a signal stops it.

This is the click face of the command (help, completion, usage errors); the work, the option
table and the fast path that keeps click out of a hub's memory are in
:mod:`sockcli.cli.servecore`.
"""

from __future__ import annotations

from typing import Any

import click

from sockcli.cli.options import options_from
from sockcli.cli.sendopts import GLOBAL_OPTIONS
from sockcli.cli.servecore import SERVE_OPTIONS, ServePlan, run_serve, usage_problem
from sockcli.cli.state import CliState
from sockcli.exceptions import SocketError

__all__ = ["plan_from_click", "serve"]


def plan_from_click(state: CliState, event: str, **values: Any) -> ServePlan:
    """The ServePlan of a parsed command line (also what the fast path must agree with):
    ``values`` are serve's options; the global options are in the CliState."""
    from sockcli.types import validate_event_name

    try:
        validate_event_name(event)
    except SocketError as exc:
        raise click.BadParameter(str(exc), param_hint="EVENT") from None
    plan = ServePlan(event=event, **values,
                     **{option.dest: getattr(state, option.dest) for option in GLOBAL_OPTIONS})
    problem = usage_problem(plan)
    if problem is not None:
        message, option = problem
        if option is None:
            raise click.UsageError(message)
        raise click.BadParameter(message, param_hint=option)
    return plan


@click.command()
@click.argument("event")
@options_from(SERVE_OPTIONS)
@click.pass_obj
def serve(state: CliState, /, event: str, **values: Any) -> None:
    """Run the hub for EVENT until SIGINT or SIGTERM.

    Clients find it by the event name. It relays every message a client sends to the other
    listeners, and keeps messages sent while nobody listens (see --queue-size). On exit the
    socket (TCP: the hub's secret) and the hub's record are removed.

    With --exec, the hub runs one producer for all its listeners: every line CMD prints
    becomes a message of the hub's own; CMD is run again as --restart says, and its whole
    process group is stopped when the hub stops (SIGTERM, SIGKILL 3 s later) or dies.
    """
    run_serve(state, plan_from_click(state, event, **values))

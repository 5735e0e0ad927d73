"""``sockcli listen``: print a hub's messages as they come, one per line.

This is the click face of the command (help, completion, usage errors, and the lines only
click parses: several events, --where, --exec, --idle); the work, and the fast path that skips
click for ordinary command lines, are in :mod:`sockcli.cli.listencore`, whose option tables
this command is built from.
"""

from __future__ import annotations

from typing import Any

import click

from sockcli.cli.follow import follows_many
from sockcli.cli.listencore import LISTEN_OPTIONS, ListenPlan, run_listen, usage_problem
from sockcli.cli.options import (
    client_security_options,
    connect_option,
    events_argument,
    options_from,
)
from sockcli.cli.send import plan_basics
from sockcli.cli.sendopts import GLOBAL_OPTIONS, SECURITY_OPTIONS
from sockcli.cli.state import CliState

__all__ = ["listen", "listen_plan_from_click"]


def listen_plan_from_click(state: CliState, events: tuple[str, ...],
                           **values: Any) -> ListenPlan:
    """The ListenPlan of a parsed command line (what the fast path must agree with):
    ``values`` are listen's own options and --connect; the global options, --token-file and
    --tls-ca are in the CliState. One EVENT (or none: $SOCKCLI_EVENT) is checked here;
    several, or patterns, by the merged receiver."""
    if follows_many(events, values["connect"]):  # a usage error with --connect
        kept = {option.dest: getattr(state, option.dest)
                for option in GLOBAL_OPTIONS + SECURITY_OPTIONS}
        plan = ListenPlan(events=tuple(events), **kept, **values)
    else:
        event, kept = plan_basics(state, events[0] if events else None)
        plan = ListenPlan(event=event, **kept, **values)
    problem = usage_problem(plan)
    if problem is not None:
        raise click.UsageError(problem)
    return plan


@click.command()
@events_argument
@options_from(LISTEN_OPTIONS)
@connect_option
@client_security_options
@click.pass_obj
def listen(state: CliState, /, events: tuple[str, ...], **values: Any) -> None:
    """Print the messages of EVENT's hub, one JSON line each (rich text on a terminal).

    Waits for a hub that is not running yet and survives its restarts, unless --no-reconnect.
    Several EVENTs, or glob PATTERNs ('wallpaper_*'), follow every local hub they select, those
    that start later included. Never reads stdin.
    """
    run_listen(listen_plan_from_click(state, events, **values), state)

"""``sockcli get``: print a hub's retained message (its last value) as one line, and exit.

This is the click face of the command (help, completion, usage errors); the work, and the
fast path that skips click for ordinary command lines, are in :mod:`sockcli.cli.getcore`,
whose option tables this command is built from.
"""

from __future__ import annotations

from typing import Any

import click

from sockcli.cli.getcore import GET_OPTIONS, GetPlan, run_get, usage_problem
from sockcli.cli.options import (
    client_security_options,
    connect_option,
    event_argument,
    options_from,
)
from sockcli.cli.send import plan_basics
from sockcli.cli.state import CliState

__all__ = ["get", "get_plan_from_click"]


def get_plan_from_click(state: CliState, event: str | None, **values: Any) -> GetPlan:
    """The GetPlan of a parsed command line (what the fast path must agree with): ``values``
    are get's own options and --connect; the global options, --token-file and --tls-ca are in
    the CliState."""
    event, kept = plan_basics(state, event)
    plan = GetPlan(event=event, **kept, **values)
    problem = usage_problem(plan)
    if problem is not None:
        raise click.UsageError(problem)
    return plan


@click.command()
@event_argument
@options_from(GET_OPTIONS)
@connect_option
@client_security_options
@click.pass_obj
def get(state: CliState, /, event: str | None, **values: Any) -> None:
    """Print the retained message of EVENT's hub as one line, and exit.

    The hub keeps the last message of each type it relayed; get prints the newest of them
    (of --type TYPE only, with it), as 'listen --last' prints it in the same format: JSON
    by default, with "retained": true. Exit 66 when the hub holds none, 69 when no hub runs.
    Made for status bars that poll: it starts as fast as send.
    """
    run_get(get_plan_from_click(state, event, **values))

"""The ``sockcli`` command group: global options, and the commands loaded on demand.

The global options are entries of :mod:`sockcli.cli.sendopts`, because the fast path of
``sockcli send`` parses them too; their values become the CliState's fields of the same names.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from sockcli import __version__
from sockcli.cli.options import options_from
from sockcli.cli.sendopts import GLOBAL_OPTIONS
from sockcli.cli.state import CliState

__all__ = ["cli"]

# name -> "module:attribute"; importing only the command that runs keeps start-up short.
COMMANDS = {
    "serve": "sockcli.cli.serve:serve",
    "send": "sockcli.cli.send:send",
    "listen": "sockcli.cli.listen:listen",
    "get": "sockcli.cli.get:get",
    "list": "sockcli.cli.list_cmd:list_hubs",
    "path": "sockcli.cli.path_cmd:path",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when they are used (or listed in --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="sockcli")
@options_from(GLOBAL_OPTIONS)
@click.pass_context
def cli(ctx: click.Context, /, **values: Any) -> None:
    """Messaging between processes for shell scripts: hubs, senders and listeners.

    \b
      sockcli serve wallpaper_change &          # a hub for one named event
      some-pipeline | sockcli send --lines      # publish JSON messages
      sockcli listen --type error               # print them as JSON lines
      sockcli get --format polybar              # the last message, once (status bars)
      sockcli list                              # the running hubs
      fifo=$(sockcli path EVENT --fifo)         # where a shell publishes with no process

    Exit status: 0 success, 1 failure, 2 usage, 64 no event to pick, 65 bad input data,
    66 stdin closed (get: nothing retained), 68 unknown --to recipient, 69 no hub,
    74 stdout closed or full, 75 not acknowledged, 77 not allowed (the hub refuses clients'
    messages, or this client, or is too old for the request), 78 bad configuration,
    124 listen --timeout before --count, 130 interrupted.
    See 'man sockcli'.
    """
    state = CliState(**values)
    state.configure_logging()
    ctx.obj = state



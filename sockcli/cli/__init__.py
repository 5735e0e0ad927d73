"""The ``sockcli`` command line. :func:`main` is the console script's entry point.

This module imports nothing heavy: an ordinary ``sockcli send`` line runs without click
(:mod:`sockcli.cli.sendcore`); everything else loads click and the command it names.
"""

from __future__ import annotations

import os
import sys

from sockcli.cli.errors import EXIT_INTERRUPTED, CliError, UsageError, from_library
from sockcli.exceptions import SocketError

__all__ = ["main"]


def _print_traceback() -> None:
    import traceback  # only for --debug: its import costs a quarter of a send

    traceback.print_exc()


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SOCKCLI_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status; errors become one stderr line."""
    args = sys.argv[1:] if argv is None else argv
    debug = _debugging(args)
    try:
        try:
            from sockcli.cli.sendcore import parse_fast_send, run_send

            plan = parse_fast_send(args)
            if plan is not None:
                try:
                    run_send(plan)
                    return 0
                except UsageError:
                    pass  # click reports it, usage text and all, as it does the others
            return _run_click(args, debug)
        except CliError as exc:
            if debug and not exc.reported:
                _print_traceback()  # then the usual line and exit status: --debug adds only
            exc.show()
            return exc.exit_code
        except SocketError as exc:
            if debug:
                _print_traceback()
            error = from_library(exc)
            error.show()
            return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug:
            raise
        sys.stderr.write(f"sockcli: internal error: {type(exc).__name__}: {exc} (run with "
                         "--debug for the traceback, and please report it)\n")
        return 1


def _run_click(args: list[str], debug: bool) -> int:
    """The full command line, through click."""
    import click

    from sockcli.cli.app import cli

    try:
        result = cli.main(args=args, prog_name="sockcli", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:  # click's translation of KeyboardInterrupt
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        if debug and not isinstance(exc, click.UsageError):
            _print_traceback()
        exc.show()  # click's own text for usage errors, with the hint to -h
        return exc.exit_code
    return result if isinstance(result, int) else 0

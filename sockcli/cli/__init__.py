"""The ``sockcli`` command line. :func:`main` is the console script's entry point."""

from __future__ import annotations

import os
import sys
import traceback

import click

from sockcli.cli.errors import EXIT_INTERRUPTED, from_library
from sockcli.exceptions import SocketError

__all__ = ["main"]


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SOCKCLI_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status; errors become one stderr line."""
    from sockcli.cli.app import cli

    args = sys.argv[1:] if argv is None else argv
    debug = _debugging(args)
    try:
        result = cli.main(args=args, prog_name="sockcli", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:  # click's translation of KeyboardInterrupt
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo(err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        if debug and not isinstance(exc, click.UsageError):
            traceback.print_exc()  # then the usual line and exit status: --debug adds only
        # CliError: "sockcli: error: ..."; usage errors: click's own text, with the hint to -h
        exc.show()
        return exc.exit_code
    except SocketError as exc:
        if debug:
            traceback.print_exc()
        error = from_library(exc)
        error.show()
        return error.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug:
            raise
        click.echo(f"sockcli: internal error: {type(exc).__name__}: {exc} (run with --debug "
                   "for the traceback, and please report it)", err=True)
        return 1
    return result if isinstance(result, int) else 0

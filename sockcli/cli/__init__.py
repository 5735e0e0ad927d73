"""The ``sockcli`` command line. :func:`main` is the console script's entry point.

This module imports nothing heavy: an ordinary ``sockcli send``, ``get`` or ``listen`` line runs
without click (:mod:`sockcli.cli.sendcore`, :mod:`sockcli.cli.getcore`,
:mod:`sockcli.cli.listencore`); everything else loads click and the command it names.
"""

from __future__ import annotations

import gc
import os
import sys
from functools import partial

from sockcli.cli.errors import (
    EXIT_INTERRUPTED,
    CliError,
    OutputError,
    UsageError,
    from_library,
    say,
)
from sockcli.exceptions import SocketError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO, TypeVar

    _T = TypeVar("_T")

__all__ = ["main"]


def _print_traceback() -> None:
    import traceback  # only for --debug: its import costs a quarter of a send

    traceback.print_exc()


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SOCKCLI_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status; errors become one stderr line.

    As the process's entry point (no ``argv``: the console script, ``python -m sockcli``), a
    command that ran without click ends the process as soon as it is done (:func:`_end_now`).
    """
    status = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        _end_now(status)
    return status


def _end_now(status: int) -> None:
    """Exit with ``status`` without the interpreter's teardown, when it has nothing left to
    do: no click (whose commands may leave threads, such as serve's), no threading module
    (so no thread), nothing registered with atexit, and stdout and stderr flushed. Returns
    if any of that does not hold, or a flush fails: then Python exits as usual, and reports
    what it does. The teardown frees the hundred modules a command imports: 4.6 ms of CPU,
    a tenth of a ``sockcli listen --count 1`` or a ``sockcli get`` (median of 31 runs,
    python -c 'import sockcli.cli.listencore, sockcli.client.oneshot' with and without
    os._exit(0): 27.4 ms against 22.1 ms above python -c pass, loaded 2-core machine).
    """
    import atexit

    if "click" in sys.modules or "threading" in sys.modules or atexit._ncallbacks():
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(status)


def _run(args: list[str]) -> int:
    """The command line's exit status, once it has run."""
    debug = _debugging(args)
    try:
        try:
            threshold = gc.get_threshold()
            if "serve" not in args:  # a hub runs for days: at Python's pace, for its memory
                gc.set_threshold(_FAST_GC_THRESHOLD, *threshold[1:])
            fast = _fast_command(args)
            if fast is not None:
                try:
                    fast()
                    return 0
                except UsageError:
                    pass  # click reports it, usage text and all, as it does the others
            gc.set_threshold(*threshold)  # click's commands, servers among them: as usual
            return _run_click(args, debug)
        except CliError as exc:
            if debug and not exc.reported:
                _print_traceback()  # then the usual line and exit status: --debug adds only
            exc.show()
            if isinstance(exc, OutputError):
                _discard_stdout()
            return exc.exit_code
        except SocketError as exc:
            if debug:
                _print_traceback()
            error = from_library(exc)
            error.show()
            return error.exit_code
    except KeyboardInterrupt:
        say("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug:
            raise
        say(f"sockcli: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
            "traceback, and please report it)\n")
        return 1


#: The cyclic collector's first threshold while a click-free send, get or listen runs
#: (Python's: 700). Their start-up allocates some 14,000 objects it keeps (modules, classes,
#: functions), which the default has the collector scan 20 times for nothing: 1.0 to 2.4 ms
#: of a 35 ms ``sockcli get`` or ``listen --count 1`` (median of 31 runs each, with the
#: collector on and off, loaded 2-core machine). A loop that runs long (``listen``,
#: ``send --lines``) frees about what it allocates, so cycles are still collected, later.
_FAST_GC_THRESHOLD = 100_000


def _fast_command(args: list[str]) -> Callable[[], None] | None:
    """The click-free run of an ordinary ``send`` (:mod:`sockcli.cli.sendcore`), ``get``
    (:mod:`sockcli.cli.getcore`) or ``listen`` (:mod:`sockcli.cli.listencore`) line, or None:
    click parses the line."""
    from sockcli.cli.sendcore import parse_fast_send, run_send

    plan = parse_fast_send(args)
    if plan is not None:
        return partial(run_send, plan)
    if "get" in args:
        from sockcli.cli.getcore import parse_fast_get, run_get

        get_plan = parse_fast_get(args)
        if get_plan is not None:
            return partial(run_get, get_plan)
    if "listen" in args:
        from sockcli.cli.listencore import parse_fast_listen, run_listen

        listen_plan = parse_fast_listen(args)
        if listen_plan is not None:  # it prints as click's commands do: stdout guarded
            return partial(_guarded, partial(run_listen, listen_plan))
    if "serve" in args:  # a hub keeps what it imports: no click (sockcli.cli.servecore)
        from sockcli.cli.servecore import parse_fast_serve, run_fast_serve

        serve_plan = parse_fast_serve(args)
        if serve_plan is not None:
            return partial(run_fast_serve, serve_plan)
    return None


class _Stdout:
    """``sys.stdout`` while a click command runs: a write or flush that fails (``>/dev/full``,
    a full disk, EIO) raises OutputError (exit 74) instead of an OSError that would read as
    an internal error, and a closed stdout (``>&-``, which Python makes None) raises it at
    the first write. A broken pipe stays a BrokenPipeError: its reader left, which is no
    failure (``| head -1``). Everything else is the real stream's."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        stream = self._open()
        if text == "" and isinstance(text, str):  # a check that stdout is open: no write
            return 0  # (click probes with b"" to tell a binary stream, TypeError here)
        try:
            return stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError.failed(exc) from None

    def flush(self) -> None:
        stream = self.stream
        if stream is None:  # nothing was written (a write raises): nothing to lose
            return
        try:
            stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError.failed(exc) from None

    def _open(self) -> TextIO:
        if self.stream is None:
            raise OutputError.closed()
        return self.stream

    def __getattr__(self, name: str) -> Any:
        if self.stream is None:
            raise AttributeError(name)
        return getattr(self.stream, name)


def _discard_stdout() -> None:
    """After a failed write to stdout: send descriptor 1 to /dev/null, so that what is still
    buffered does not fail a second time when Python flushes it at exit (exit status 120
    and a traceback-like "Exception ignored" report)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    if null != 1:
        os.dup2(null, 1)
        os.close(null)


def _run_click(args: list[str], debug: bool) -> int:
    """The full command line, through click, with stdout guarded (:class:`_Stdout`)."""
    return _guarded(partial(_click_main, args, debug))


def _guarded(run: Callable[[], _T]) -> _T:
    """``run()`` with stdout guarded (:class:`_Stdout`), and flushed before it is reported."""
    guard = _Stdout(sys.stdout)
    sys.stdout = guard
    try:
        result = run()
        guard.flush()  # what is still buffered fails here, where it is reported, not at exit
        return result
    finally:
        if sys.stdout is guard:  # not when click has wrapped it, after a broken pipe
            sys.stdout = guard.stream


def _click_main(args: list[str], debug: bool) -> int:
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

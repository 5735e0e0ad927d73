"""What ``sockcli listen`` does with the messages it receives: keep the ones ``--where``
wants, then print them, or run ``--exec CMD`` for each.

The receive loop sees one *sink* (:func:`make_sink`) and only calls it: ``many(batch)``
(returns how many messages it kept: ``--count`` and ``--idle`` count those), ``idle()``,
``tick()`` while waiting, ``wake_in()`` (how soon ``tick`` is due), ``finish()`` once
``--count`` is reached, and ``close()`` on every way out.

``--where`` filters here, in the listener, not in the hub: the hub stays a relay that encodes
each message once and hands the same bytes to every subscriber (a filter per subscriber
would mean evaluating, and so decoding, for each), a bad expression is a usage error before
any connection is made, and every hub, old ones included, serves such a listener.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import click

from sockcli.cli.runner import CommandRunner
from sockcli.strictjson import finite
from sockcli.where import Where, WhereSyntaxError, compile_where

__all__ = ["ExecSink", "PrintSink", "Sink", "WhereParam", "make_sink"]

# While commands run, how often the loop looks at them between messages: a failure is
# reported (or ends listen, --exec-fail exit) this soon after it happens.
_POLL_SECONDS = 0.1


class WhereParam(click.ParamType[Where]):
    """A click option that takes a ``--where`` expression: parsed once, a usage error (exit
    2) naming the option, the expression and the column when it is not one."""

    name = "expression"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Where:
        if isinstance(value, Where):
            return value
        try:
            return compile_where(str(value))
        except WhereSyntaxError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


class Printer(Protocol):
    def print_many(self, messages: list[Any]) -> None: ...

    def print_idle(self, last: dict[str, Any] | None) -> None: ...


class Sink(Protocol):
    def many(self, batch: list[Any]) -> int: ...

    def idle(self) -> None: ...

    def tick(self) -> None: ...

    def wake_in(self) -> float: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


def _keeper(where: tuple[Where, ...]) -> Callable[[dict[str, Any]], bool] | None:
    """One predicate for every ``--where`` (all must hold), None when there is none."""
    if not where:
        return None
    if len(where) == 1:
        return where[0]
    return lambda record: all(w(record) for w in where)


class PrintSink:
    """Prints the messages that ``--where`` keeps, with the printer of ``--format``."""

    def __init__(self, printer: Printer, where: tuple[Where, ...] = ()) -> None:
        self._printer = printer
        self._keep = _keeper(where)
        self._newest: Any = None  # the newest message kept, for --idle-text

    def many(self, batch: list[Any]) -> int:
        keep = self._keep
        kept = batch if keep is None else [m for m in batch if keep(m.as_dict())]
        if kept:
            self._printer.print_many(kept)
            self._newest = kept[-1]
        return len(kept)

    def idle(self) -> None:
        self._printer.print_idle(None if self._newest is None else self._newest.as_dict())

    def tick(self) -> None:
        """Nothing to look after between messages."""

    def wake_in(self) -> float:
        return math.inf

    def finish(self) -> None:
        """Everything was printed as it came."""

    def close(self) -> None:
        """Nothing to release."""


class ExecSink:
    """Runs ``--exec`` for each message that ``--where`` keeps; prints nothing itself."""

    def __init__(self, runner: CommandRunner, where: tuple[Where, ...] = ()) -> None:
        self.runner = runner
        self._keep = _keeper(where)
        # The --json line, byte for byte: `listen --exec cat` prints what `listen --json`
        # does (tests/test_listen_exec.py holds the two together).
        self._dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode

    def many(self, batch: list[Any]) -> int:
        kept = 0
        for message in batch:
            record = message.as_dict()
            if self._keep is not None and not self._keep(record):
                continue
            self.runner.run(record, self._line(record) + "\n")
            kept += 1
        return kept

    def idle(self) -> None:
        """Never called: listen refuses --idle with --exec."""

    def tick(self) -> None:
        self.runner.poll()

    def wake_in(self) -> float:
        return _POLL_SECONDS if self.runner.running else math.inf

    def finish(self) -> None:
        self.runner.wait_all()

    def close(self) -> None:
        self.runner.stop()

    def _line(self, record: dict[str, Any]) -> str:
        try:
            text: str = self._dumps(record)
        except ValueError:  # NaN or an infinity: null, as --json prints them
            text = self._dumps(finite(record))
        return text


def make_sink(*, where: tuple[Where, ...], command: str | None, jobs: int | None,
              exec_fail: str | None, outputs: Mapping[str, Any],
              printer: Callable[[], Printer]) -> PrintSink | ExecSink:
    """The sink of listen's options; usage errors for those that cannot go together.
    ``outputs``: the output options given (``{"--format": "waybar"}``), which --exec, since
    it prints nothing itself, has no use for; ``printer`` makes the printer otherwise."""
    if command is None:
        for option, given in (("--jobs", jobs), ("--exec-fail", exec_fail)):
            if given is not None:
                raise click.UsageError(f"{option} is an option of --exec CMD: give --exec too")
        return PrintSink(printer(), where)
    for option, given in outputs.items():
        if given not in (None, False):
            raise click.UsageError(f"--exec prints nothing itself (CMD's output is listen's "
                                   f"output): {option} has no use with it")
    if not command.strip():
        raise click.UsageError("--exec needs a command: --exec 'notify-send \"$SOCKCLI_DATA\"'")
    runner = CommandRunner(command, jobs=jobs or 1, stop_on_failure=exec_fail == "exit",
                           watch_fd=_stdout_pipe())
    return ExecSink(runner, where)


def _stdout_pipe() -> int | None:
    """Descriptor 1 when it is a pipe or a socket, whose reader can go away."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else None

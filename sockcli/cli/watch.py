"""``sockcli list --watch``: the running hubs and their figures, refreshed until stopped.

On a terminal, a live table in the manner of ``nats top``: redrawn in place every interval,
hubs appearing and disappearing as they start and stop, messages per second computed from the
change of each hub's ``received`` and ``delivered`` counters between two refreshes. Into a
pipe or with ``--json``, one line per interval holding what ``list --json`` prints (compact),
so that a script can follow the hubs too. Ctrl-C (SIGINT) and SIGTERM end either quietly with
exit status 0: stopping a viewer is how one uses it, not a failure (``top`` and ``nats top``
do the same).

The rows come from a callable of :mod:`sockcli.cli.list_cmd` (this module does not import it:
list imports this one); rich is imported only for the terminal view.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from types import FrameType
from typing import Any

from sockcli.cli.render import _uptime

__all__ = ["Collect", "Rates", "watch_hubs"]

#: ``collect(say)``: the rows of ``list --json`` now; ``say(text)`` tells why a hub gave none.
Collect = Callable[[Callable[[str], None]], list[dict[str, Any]]]

#: The first line of every frame of the view (tests find the frames by it).
TITLE = "sockcli list --watch"

_COLUMNS = ("EVENT", "VIA", "PID", "CLIENTS", "LISTENERS", "IN/S", "OUT/S", "QUEUED",
            "DROPPED", "REJECTED", "RETAINED", "PRODUCER", "UP")
_TEXT_COLUMNS = ("EVENT", "VIA", "RETAINED", "PRODUCER")


class _Stopped(Exception):
    """SIGTERM arrived: end the view as Ctrl-C does, the terminal restored."""


def watch_hubs(collect: Collect, *, interval: float, as_json: bool, socket_dir: str | None,
               info: Callable[[str], None]) -> None:
    """Show the rows of ``collect`` every ``interval`` seconds until Ctrl-C or SIGTERM:
    a live view, or (``as_json``) one JSON line each time. ``info`` is the stderr note of the
    command (``state.info``), for what keeps a hub from answering in the JSON form."""
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        if as_json:
            _stream(collect, interval, info)
        else:
            _view(collect, interval, socket_dir)
    except (KeyboardInterrupt, _Stopped):
        return
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def ticks(interval: float) -> Iterator[None]:
    """Yield every ``interval`` seconds, on a fixed schedule; a refresh that took longer
    than the interval is followed by the next at once, never by a burst to catch up."""
    next_at = time.monotonic()
    while True:
        yield
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()


def _stream(collect: Collect, interval: float, info: Callable[[str], None]) -> None:
    """One JSON line per interval; each reason a hub did not answer is told once."""
    told: set[str] = set()

    def say(text: str) -> None:
        if text not in told:
            told.add(text)
            info(text)

    for _ in ticks(interval):
        line = json.dumps(collect(say), ensure_ascii=False) + "\n"
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left (| head -1): done, quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return


class Rates:
    """Messages per second in and out of each hub: the change of its ``received`` and
    ``delivered`` counters since the previous refresh, divided by the time between them.

    None until a hub has been seen twice, and when a counter went down (not the same hub).
    A hub is known by its event, pid and start time, so a restarted hub starts afresh.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], tuple[float, Any, Any]] = {}

    def update(self, rows: list[dict[str, Any]], now: float,
               ) -> list[tuple[float | None, float | None]]:
        """The (in, out) rates of ``rows``, in their order; hubs gone are forgotten."""
        seen: dict[tuple[Any, ...], tuple[float, Any, Any]] = {}
        rates: list[tuple[float | None, float | None]] = []
        for row in rows:
            key = (row.get("event_name"), row.get("pid"), row.get("started_ms"))
            received, delivered = row.get("received"), row.get("delivered")
            before = self._seen.get(key)
            if before is None:
                rates.append((None, None))
            else:
                at, was_in, was_out = before
                rates.append((_rate(was_in, received, now - at),
                              _rate(was_out, delivered, now - at)))
            seen[key] = (now, received, delivered)
        self._seen = seen
        return rates


def _rate(before: Any, after: Any, seconds: float) -> float | None:
    if not isinstance(before, int) or not isinstance(after, int) or after < before or \
            seconds <= 0:
        return None
    return (after - before) / seconds


def _view(collect: Collect, interval: float, socket_dir: str | None) -> None:
    """The live table, redrawn in place each interval (each frame printed in turn on a
    terminal that cannot move its cursor, TERM=dumb)."""
    from rich.console import Console
    from rich.live import Live

    from sockcli.cli.render import is_terminal

    console = Console(highlight=False)
    rates = Rates()
    notes: dict[str, None] = {}

    def frame() -> Any:
        notes.clear()
        rows = collect(lambda text: notes.setdefault(text))
        return view(rows, rates.update(rows, time.monotonic()), list(notes), interval,
                    socket_dir)

    if console.is_dumb_terminal:
        for _ in ticks(interval):
            console.print(frame())
        return
    # Another process's lines on the same terminal (stderr) go above the view, not through it.
    with Live(console=console, auto_refresh=False, redirect_stdout=False,
              redirect_stderr=is_terminal(sys.stderr), vertical_overflow="ellipsis") as live:
        for _ in ticks(interval):
            live.update(frame(), refresh=True)


def view(rows: list[dict[str, Any]], rates: list[tuple[float | None, float | None]],
         notes: list[str], interval: float, socket_dir: str | None) -> Any:
    """One frame: a title line, the table of hubs, and the notes of this refresh."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    count = f"{len(rows)} hub{'s' if len(rows) != 1 else ''}"
    title = Text(f"{TITLE}   {count}   every {interval:g} s   "
                 f"{datetime.now().strftime('%H:%M:%S')}   Ctrl-C to quit", style="bold")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in _COLUMNS:
        text = column in _TEXT_COLUMNS
        # On a narrow terminal the figures are cut short (…), the lists fold.
        table.add_column(column, justify="left" if text else "right",
                         no_wrap=column not in ("RETAINED", "PRODUCER"),
                         overflow="fold" if column in ("RETAINED", "PRODUCER") else "ellipsis")
    for row, (rate_in, rate_out) in zip(rows, rates, strict=True):
        table.add_row(*[Text(cell) for cell in _cells(row, rate_in, rate_out)])
    parts: list[Any] = [title, table]
    if not rows:
        parts.append(Text("no hub is running (start one with 'sockcli serve EVENT')",
                          style="dim"))
    elif socket_dir:
        parts.append(Text(f"sockets in {socket_dir}", style="dim"))
    parts.extend(Text(note, style="yellow") for note in notes)
    return Group(*parts)


def _cells(row: dict[str, Any], rate_in: float | None, rate_out: float | None) -> list[str]:
    """The table's cells of one row; "?" for a figure a hub did not give."""

    def figure(key: str) -> str:
        value = row.get(key)
        return "?" if value is None else str(value)

    retained = row.get("retained")
    return [str(row.get("event_name")), str(row.get("transport")), figure("pid"),
            figure("clients"), figure("subscribers"), _per_second(rate_in),
            _per_second(rate_out), figure("queued"), figure("dropped"), figure("rejected"),
            ",".join(map(str, retained)) if isinstance(retained, list) and retained else "-",
            producer_state(row.get("producer")), _uptime(row.get("started_ms"))]


def _per_second(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}"


def producer_state(producer: Any) -> str:
    """The producer of ``serve --exec`` in one cell: its state, pid and restarts ("running
    pid 4242, 2 restarts"); "-" for a hub without one."""
    if not isinstance(producer, dict):
        return "-"
    words = [str(producer.get("state") or "?")]
    if producer.get("pid"):
        words.append(f"pid {producer['pid']}")
    cell = " ".join(words)
    restarts = producer.get("restarts")
    if isinstance(restarts, int) and not isinstance(restarts, bool) and restarts:
        cell += f", {restarts} restart{'s' if restarts != 1 else ''}"
    return cell

"""Output: JSON lines for programs, rich for people at a terminal.

rich is imported only when a terminal is there to look at it.
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime
from typing import Any, TextIO

from sockcli.cli.errors import OutputError

__all__ = ["MessagePrinter", "hub_table", "is_terminal"]

_STYLES = {"data": "green", "error": "bold red", "control": "cyan"}


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class MessagePrinter:
    """Prints one message per line and flushes it at once, even into a pipe.

    Whatever a peer sent, the output is strict JSON (RFC 8259): NaN and the infinities, which
    MessagePack carries and JSON cannot, are printed as null, as JavaScript's JSON.stringify
    does; and no value, a ``timestamp_iso`` that is not a date included, stops a listener.
    OutputError if stdout is closed: a listener that cannot print must not wait for messages.
    """

    def __init__(self, *, rich: bool) -> None:
        if sys.stdout is None:
            raise OutputError.closed()
        sys.stdout.write("")  # under sockcli.cli.main, a closed stdout raises OutputError
        self._console: Any = None
        self._dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
        if rich:
            from rich.console import Console

            # rich honours NO_COLOR itself, as no-color.org says: only when set and not empty.
            self._console = Console(highlight=False)

    def print_many(self, messages: list[Any]) -> None:
        """Print messages that arrived together, then flush once."""
        if self._console is None:
            dumps = self._dumps
            try:
                text = "".join([dumps(m.as_dict()) + "\n" for m in messages])
            except ValueError:  # a NaN or an infinity somewhere: this batch the slow way
                text = "".join([self._json(m.as_dict()) + "\n" for m in messages])
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        for message in messages:
            self.print(message)

    def print(self, message: Any) -> None:
        record = message.as_dict()
        if self._console is None:
            sys.stdout.write(self._json(record) + "\n")
            sys.stdout.flush()
            return
        from rich.text import Text

        kind = record["message_type"]
        line = Text()
        line.append(_clock(record), style="dim")
        line.append(" ")
        line.append(f"{kind:<7}", style=_STYLES.get(kind, "bold"))
        line.append(" ")
        line.append(record["event_name"], style="bold")
        line.append(" ")
        # json escapes the C0 controls; DEL and the C1 controls (U+009B is a CSI) it leaves.
        line.append(self._json(record["data"]).translate(_C1_ESCAPES))
        self._console.print(line, soft_wrap=True)

    def _json(self, value: Any) -> str:
        """``value`` as strict JSON: non-finite floats become null."""
        try:
            return self._dumps(value)
        except ValueError:
            return self._dumps(_finite(value))


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_C1_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def _clock(record: dict[str, Any]) -> str:
    """The time of day of a message, to the millisecond, in the sender's timezone: from
    ``timestamp_iso``, else (not a date: any client can send one) from ``timestamp_ms`` in
    local time; never the peer's text itself, which could hold terminal escapes."""
    try:
        moment = datetime.fromisoformat(record["timestamp_iso"])
    except (TypeError, ValueError):
        try:
            moment = datetime.fromtimestamp(record["timestamp_ms"] / 1000)
        except (TypeError, ValueError, OverflowError, OSError):
            return "--:--:--.---"
    return moment.strftime("%H:%M:%S.%f")[:-3]


def hub_table(rows: list[dict[str, Any]], socket_dir: str | None = None) -> Any:
    """A rich table of running hubs; sockets in ``socket_dir`` are shown by file name."""
    from rich.table import Table

    prefix = os.path.join(socket_dir, "") if socket_dir else None
    table = Table(box=None, header_style="bold", pad_edge=False,
                  caption=f"sockets in {socket_dir}" if socket_dir else None)
    for column in ("EVENT", "VIA", "ADDRESS", "PID", "CLIENTS", "LISTENERS", "QUEUED",
                   "DROPPED", "UP"):
        numeric = column not in ("EVENT", "VIA", "ADDRESS")
        # The event name is the key: never cut it; a long address folds instead.
        table.add_column(column, justify="right" if numeric else "left",
                         no_wrap=column != "ADDRESS",
                         overflow="fold" if column == "ADDRESS" else "ellipsis",
                         min_width=16 if column == "ADDRESS" else None)
    for row in rows:
        address = str(row["address"])
        if prefix and address.startswith(prefix):
            address = address[len(prefix):]
        cells = ["?" if row.get(k) is None else str(row[k])
                 for k in ("pid", "clients", "subscribers", "queued", "dropped")]
        table.add_row(row["event_name"], row["transport"], address, *cells,
                      _uptime(row.get("started_ms")))
    return table


def _uptime(started_ms: Any) -> str:
    if not isinstance(started_ms, int):
        return "?"
    import time

    seconds = max(0, int(time.time() - started_ms / 1000))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"

"""Output: JSON lines for programs, rich for people at a terminal.

rich is imported only when a terminal is there to look at it. ``sockcli get``, which must
start as fast as ``send``, prints through this module too: so it imports neither typing,
dataclasses, datetime (only for a waybar tooltip's clock) nor click.
"""

from __future__ import annotations

import math
import os
import sys

from sockcli.cli.errors import OutputError
from sockcli.cli.templates import Template, compact_json, is_missing, lookup
from sockcli.strictjson import encoder, finite
from sockcli.values import Value, set_field

TYPE_CHECKING = False  # on get's path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

__all__ = ["FORMATS", "BarPrinter", "Fields", "MessagePrinter", "bridge_summary", "hub_table",
           "is_terminal", "pango_escape", "producer_summary"]

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
        self._dumps = encoder()
        if rich:
            from rich.console import Console

            # rich honours NO_COLOR itself, as no-color.org says: only when set and not empty.
            self._console = Console(highlight=False)

    def print_many(self, messages: list[Any]) -> None:
        """Print messages that arrived together, then flush once."""
        if self._console is None:
            try:
                text = self._lines(messages)
            except ValueError:  # a NaN or an infinity somewhere: this batch the slow way
                text = "".join([self._json(m.as_dict()) + "\n" for m in messages])
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        for message in messages:
            self.print(message)

    def _lines(self, messages: list[Any]) -> str:
        """The JSON lines of ``messages``: what ``dumps(m.as_dict())`` gives each, with the
        text before ``data`` made once for the messages that share it (a batch: one event,
        type and instant), which halves the work per line (docs/PERFORMANCE.md)."""
        dumps = self._dumps
        parts: list[str] = []
        key: tuple[Any, ...] | None = None
        head = ""
        for m in messages:
            if getattr(m, "retained", True):  # retained, or only a record (sockcli get's)
                parts.append(dumps(m.as_dict()) + "\n")
                key = None
                continue
            if key is None or key[0] is not m.message_type or key[1] != m.timestamp_ms or \
                    key[2] != m.timestamp_iso or key[3] != m.event_name:
                key = (m.message_type, m.timestamp_ms, m.timestamp_iso, m.event_name)
                record = m.as_dict()
                record["data"] = None
                head = dumps(record)[:-len("null}")]  # the text up to the data
            parts.append(head)
            parts.append(dumps(m.data))
            parts.append("}\n")
        return "".join(parts)

    def print_idle(self, last: dict[str, Any] | None) -> None:
        """Nothing: JSON and the rich view have no idle output (listen refuses --idle)."""

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
            return self._dumps(finite(value))


_C1_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def _clock(record: dict[str, Any]) -> str:
    """The time of day of a message, to the millisecond, in the sender's timezone: from
    ``timestamp_iso``, else (not a date: any client can send one) from ``timestamp_ms`` in
    local time; never the peer's text itself, which could hold terminal escapes."""
    from datetime import datetime

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
    # The producer (serve --exec) and the bridge (serve --bridge) of the hubs that have one.
    extras = [(title, key, summary) for title, key, summary in (
        ("PRODUCER", "producer", producer_summary), ("BRIDGE", "bridge", bridge_summary))
        if any(isinstance(row.get(key), dict) for row in rows)]
    for column in ("EVENT", "VIA", "ADDRESS", "PID", "CLIENTS", "LISTENERS", "QUEUED",
                   "DROPPED", "UP", *(title for title, _, _ in extras)):
        numeric = column not in ("EVENT", "VIA", "ADDRESS", "PRODUCER", "BRIDGE")
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
        cells.append(_uptime(row.get("started_ms")))
        for _, key, summary in extras:
            part = row.get(key)
            cells.append(summary(part) if isinstance(part, dict) else "")
        table.add_row(row["event_name"], row["transport"], address, *cells)
    return table


def bridge_summary(bridge: dict[str, Any]) -> str:
    """A ``serve --bridge`` bridge in a few words: its state and url, what waits for the
    broker and what went each way, what was dropped or refused, and the other hubs seen:
    "connected mqtt://nas:1883, pending 0, published 12, received 3, dropped 0; hubs:
    laptop-1f2e3d4c online" (more than three hubs: how many of them are online)."""
    words = f"{bridge.get('state')} {bridge.get('url')}"
    for key in ("pending", "published", "received", "dropped"):
        words += f", {key} {bridge.get(key, '?')}"
    for key in ("rejected", "duplicates"):
        count = bridge.get(key)
        if isinstance(count, int) and count:
            words += f", {key} {count}"
    remote = bridge.get("remote_hubs")
    if isinstance(remote, dict) and remote:
        if len(remote) <= 3:
            words += "; hubs: " + ", ".join(f"{hub} {state}" for hub, state in remote.items())
        else:
            online = sum(1 for state in remote.values() if state == "online")
            words += f"; hubs: {online} of {len(remote)} online"
    return words


def producer_summary(producer: dict[str, Any]) -> str:
    """A ``serve --exec`` producer in a few words, from the figures its hub gives: "running,
    pid 4242", "restarting in 2.0 s", "exited 0" or "killed by SIGKILL", and how many times
    it was restarted and how many of its lines were rejected, when any."""
    state = producer.get("state")
    if state == "running":
        words = f"running, pid {producer.get('pid')}"
    elif state == "restarting" and isinstance(producer.get("restart_in"), int | float):
        words = f"restarting in {producer['restart_in']:.1f} s"
    elif state == "exited" and producer.get("last_exit"):
        words = str(producer["last_exit"])
    else:
        words = str(state)
    for key, one in (("restarts", "restart"), ("rejected", "rejected")):
        count = producer.get(key)
        if isinstance(count, int) and count:
            words += f", {count} {one}{'s' if count > 1 and key == 'restarts' else ''}"
    return words


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


#: The output formats of ``listen --format``; ``rich`` is the view on a terminal.
FORMATS = ("json", "text", "waybar", "i3bar", "polybar")

#: i3bar colours by message type; a type not here (data) keeps the bar's colour.
I3BAR_COLORS = {"error": "#FF0000", "control": "#00FFFF"}

_PANGO = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def pango_escape(text: str) -> str:
    """``text`` safe inside Pango markup (waybar's ``text`` and ``tooltip``)."""
    return text.translate(_PANGO)


def polybar_escape(text: str) -> str:
    """``text`` that cannot open a polybar formatting tag (``%{A1:cmd:}`` runs a command on
    a click): ``%{`` becomes ``% {``."""
    return text.replace("%{", "% {")


def one_line(text: str) -> str:
    """``text`` on one line: a line break in a value would split a message's output."""
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


class Fields(Value):
    """The templates that override a bar format's fields (None: the default from the
    message), and the ones for --template and --idle-text. A :class:`~sockcli.values.Value`,
    not a dataclass: ``sockcli get`` imports this module."""

    __slots__ = ("alt", "css_class", "idle_text", "template", "text", "tooltip")
    text: Template | None
    tooltip: Template | None
    css_class: Template | None
    alt: Template | None
    template: Template | None
    idle_text: Template | None

    def __init__(self, *, text: Template | None = None, tooltip: Template | None = None,
                 css_class: Template | None = None, alt: Template | None = None,
                 template: Template | None = None, idle_text: Template | None = None) -> None:
        set_field(self, "text", text)
        set_field(self, "tooltip", tooltip)
        set_field(self, "css_class", css_class)
        set_field(self, "alt", alt)
        set_field(self, "template", template)
        set_field(self, "idle_text", idle_text)


class BarPrinter:
    """One line per message for a status bar (``text``, ``polybar``, ``waybar``, ``i3bar``)
    or from ``--template``; each line written and flushed whole.

    ``print_idle`` writes the idle output (--idle): an empty ``text`` for waybar, an empty
    ``full_text`` for i3bar, an empty line otherwise, or ``--idle-text`` rendered against the
    last message.

    ``i3bar`` is one block of the i3bar protocol per line, a flat JSON object: what an
    i3blocks persistent block with ``format=json`` reads (``interval=persist``: each line
    updates the block; an empty ``full_text`` hides it). No ``name``: i3blocks names the
    block after its section, and routes clicks by that name. Not the protocol's header and
    endless array: a status line of one block is no use, i3blocks assembles the line.
    """

    def __init__(self, fmt: str, fields: Fields) -> None:
        if sys.stdout is None:
            raise OutputError.closed()
        sys.stdout.write("")  # under sockcli.cli.main, a closed stdout raises OutputError
        self._format = fmt
        self._fields = fields
        self._dumps = encoder()

    def print_many(self, messages: list[Any]) -> None:
        self._write("".join([self.line(m.as_dict()) + "\n" for m in messages]))

    def print_idle(self, last: dict[str, Any] | None) -> None:
        self._write(self.idle_line(last) + "\n")

    def line(self, record: dict[str, Any]) -> str:
        """The output line of one message record (without its newline)."""
        fields = self._fields
        if fields.template is not None:
            return one_line(fields.template.render(record))
        if self._format == "waybar":
            return self._dumps(self._waybar(record))
        if self._format == "i3bar":
            return self._dumps(self._i3bar(record))
        escape = polybar_escape if self._format == "polybar" else None
        return one_line(self._text(record, escape))

    def idle_line(self, last: dict[str, Any] | None) -> str:
        idle = self._fields.idle_text
        record = last or {}
        if self._fields.template is not None or self._format in ("text", "polybar"):
            if idle is None:
                return ""
            escape = polybar_escape if self._format == "polybar" else None
            return one_line(idle.render(record, escape))
        if self._format == "waybar":
            text = "" if idle is None else idle.render(record, pango_escape)
            return self._dumps({"text": text})
        # i3bar: an empty full_text hides the block.
        return self._dumps({"full_text": "" if idle is None else one_line(idle.render(record))})

    def _text(self, record: dict[str, Any], escape: Callable[[str], str] | None) -> str:
        """``--text`` rendered, else ``data.text``, else the data as compact JSON."""
        if self._fields.text is not None:
            return self._fields.text.render(record, escape)
        value = lookup(record, ("data", "text"))
        text = compact_json(record.get("data")) if is_missing(value) else (
            value if isinstance(value, str) else compact_json(value))
        return escape(text) if escape is not None else text

    def _waybar(self, record: dict[str, Any]) -> dict[str, Any]:
        fields = self._fields
        out: dict[str, Any] = {"text": self._text(record, pango_escape)}
        data = record.get("data")
        data = data if isinstance(data, dict) else {}
        if fields.alt is not None:
            out["alt"] = fields.alt.render(record)
        elif not is_missing(lookup(data, ("alt",))):
            out["alt"] = _plain(data["alt"])
        if fields.tooltip is not None:
            out["tooltip"] = fields.tooltip.render(record, pango_escape)
        elif not is_missing(lookup(data, ("tooltip",))):
            out["tooltip"] = pango_escape(_plain(data["tooltip"]))
        else:
            out["tooltip"] = pango_escape(
                f"{_plain(record.get('event_name'))}: {_plain(record.get('message_type'))} "
                f"at {_clock(record)}")
        if fields.css_class is not None:
            out["class"] = fields.css_class.render(record)
        else:
            given = data.get("class")
            if isinstance(given, str) or (
                    isinstance(given, list) and given and all(isinstance(c, str) for c in given)):
                out["class"] = given
            else:
                out["class"] = _plain(record.get("message_type"))
        percentage = _percentage(data)
        if percentage is not None:
            out["percentage"] = percentage
        return out

    def _i3bar(self, record: dict[str, Any]) -> dict[str, Any]:
        full = one_line(self._text(record, None))
        block: dict[str, Any] = {"full_text": full}
        data = record.get("data")
        short = lookup(data, ("short_text",)) if isinstance(data, dict) else None
        block["short_text"] = full if is_missing(short) else one_line(_plain(short))
        kind = record.get("message_type")
        color = I3BAR_COLORS.get(kind) if isinstance(kind, str) else None
        if color is not None:
            block["color"] = color
        if kind == "error":
            block["urgent"] = True
        return block

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def _plain(value: Any) -> str:
    """A string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else compact_json(value)


def _percentage(data: dict[str, Any]) -> int | None:
    """``data.percentage``, else ``data.progress``, when a finite number: rounded, 0 to 100."""
    for key in ("percentage", "progress"):
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                math.isfinite(value):
            return max(0, min(100, round(value)))
    return None

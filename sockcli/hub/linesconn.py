"""A client of a Unix hub's JSON-lines socket, ``{socket_dir}/{event}.lines.sock``.

For programs that speak sockets but not MessagePack (quickshell's ``Socket``, AGS and Gio,
``socat``, ``nc -U``): what the hub sends is one JSON line per message, the very line
``sockcli listen --json`` prints (:func:`message_line`); what the client writes is published,
in the line grammar of :mod:`sockcli.lines`. docs/protocol.md, "The JSON-lines socket", is
the reference; in short:

- A client that says nothing subscribes to every type. An optional first line chooses:
  ``#subscribe types=error,control last=1 slow=latest name=bar`` (every part optional), or
  ``#publish`` for a client that only publishes and reads nothing. :func:`parse_first_line`
  reads it. The hub waits :data:`FIRST_LINE_WAIT` seconds for that line before it treats the
  client as one that said nothing; what arrived for it meanwhile is held, then filtered by
  the types it chose, so that no message of another type slips through first.
- The hub speaks in the same lines: an error is a JSON object with an ``error`` key (its
  code), a ``reason``, and ``fatal: true`` when the hub closes the connection after it, or
  the ``line`` number it is about (:meth:`LinesConnection.render`).
- The limits are those of the MessagePack socket: the same peer check, the same
  ``max_connections`` (one count for both sockets), ``buffer_size`` per line, and the same
  slow-reader policy (``slow``) and flow control.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from sockcli.hub.connection import Connection
from sockcli.kinds import MESSAGE_TYPE_BY_VALUE, MessageType
from sockcli.lines import LineError, LineReader
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import Codec
from sockcli.rules import is_event_name
from sockcli.strictjson import finite

__all__ = ["FIRST_LINE_WAIT", "LinesConnection", "Subscription", "error_frame_line",
           "message_line",
           "parse_first_line"]

#: Seconds the hub waits for a new client's first line before it sends it anything.
FIRST_LINE_WAIT = 0.2

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def message_line(wire: dict[str, Any]) -> bytes:
    """The line of one message (its wire map), as ``sockcli listen --json`` prints it: the
    same keys in the same order, strict JSON (NaN and the infinities as null)."""
    record: dict[str, Any] = {
        "event_name": wire["event_name"],
        "timestamp_ms": wire["timestamp_ms"],
        "timestamp_iso": wire["timestamp_iso"],
        "message_type": wire["message_type"],
        "data": wire["data"],
    }
    if wire.get("retained"):
        record["retained"] = True
    try:
        text = _dumps(record)
    except ValueError:  # a NaN or an infinity, which MessagePack carries and JSON cannot
        text = _dumps(finite(record))
    return (text + "\n").encode("utf-8", "surrogatepass")


def error_frame_line(frame: fr.ErrorFrame) -> bytes:
    """An error as a lines client reads it: ``{"error": CODE, "reason": ..., "fatal": true}``
    (``fatal`` only when the hub closes the connection after it)."""
    record: dict[str, Any] = {"error": frame.code, "reason": frame.reason}
    if frame.fatal:
        record["fatal"] = True
    return (_dumps(record) + "\n").encode()


class Subscription:
    """What a lines client's first line asked for; the defaults are a silent client's."""

    __slots__ = ("last", "name", "slow", "subscribe", "types")

    def __init__(self, *, subscribe: bool = True, types: frozenset[MessageType] | None = None,
                 last: bool = False, slow: str = "wait", name: str | None = None) -> None:
        self.subscribe = subscribe
        self.types = types
        self.last = last
        self.slow = slow
        self.name = name


_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def parse_first_line(text: str) -> Subscription | None:
    """The subscription a first line asks for, or None when it is not a ``#`` line (a
    message, to publish, or a blank line). Raises :class:`LineError` for a ``#`` line that is
    not one of the documented forms."""
    text = text.strip(" \t\r")
    if not text.startswith("#"):
        return None
    verb, *parts = text[1:].split() or [""]  # "#" alone: an unknown first line too
    if verb == "publish" and not parts:
        return Subscription(subscribe=False)
    if verb != "subscribe":
        raise LineError(f"unknown first line {text[:40]!r}: the first line may be "
                        "'#subscribe [types=T,...] [last=1] [slow=wait|latest|drop] "
                        "[name=NAME]' or '#publish'")
    sub = Subscription()
    seen: set[str] = set()
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals or key in seen:
            raise LineError(f"#subscribe: expected KEY=VALUE once per key, got {part!r}")
        seen.add(key)
        if key == "types":
            sub.types = _types(value)
        elif key == "last":
            if value.lower() not in _BOOLEANS:
                raise LineError(f"#subscribe: last must be 1 or 0, not {value!r}")
            sub.last = _BOOLEANS[value.lower()]
        elif key == "slow":
            if value not in fr.SLOW_MODES:
                raise LineError(f"#subscribe: slow must be one of {', '.join(fr.SLOW_MODES)},"
                                f" not {value!r}")
            sub.slow = value
        elif key == "name":
            if not is_event_name(value):
                raise LineError(f"#subscribe: invalid name {value!r}: 1 to 64 letters, "
                                "digits, '_' and '-'")
            sub.name = value
        else:
            raise LineError(f"#subscribe: unknown key {key!r}: the keys are types, last, "
                            "slow and name")
    return sub


def _types(value: str) -> frozenset[MessageType]:
    types = set()
    for name in value.split(","):
        message_type = MESSAGE_TYPE_BY_VALUE.get(name.lower())
        if message_type is None:
            raise LineError(f"#subscribe: unknown message type {name!r}: choose from "
                            f"{', '.join(MESSAGE_TYPE_BY_VALUE)}")
        types.add(message_type)
    return frozenset(types)


class LinesConnection(Connection):
    """Hub-side state of one client of the JSON-lines socket."""

    lines = True

    __slots__ = ("first_line", "held", "held_bytes", "reader", "start")

    def __init__(self, sock: socket.socket, peer: str, codec: Codec, *,
                 max_line_bytes: int, first_line_wait: float) -> None:
        super().__init__(sock, peer, codec, first_line_wait)
        self.reader = LineReader(max_line_bytes=max_line_bytes)
        #: True until the client's first line has been read (or the wait for it is over).
        self.first_line = True
        #: The start of the first line, until it is complete.
        self.start = bytearray()
        #: What was delivered while the hub waited for the first line: (line, type) pairs,
        #: sent once the subscription is known; None once it is.
        self.held: list[tuple[bytes, MessageType]] | None = []
        self.held_bytes = 0

    def render(self, frame: fr.Frame, codec: Codec) -> bytes:
        """The line the hub sends for ``frame``: only errors go to a lines client."""
        if not isinstance(frame, fr.ErrorFrame):  # pragma: no cover - never sent here
            raise TypeError(f"no line form for {type(frame).__name__}")
        return error_frame_line(frame)

    def error_line(self, code: str, reason: str, line: int) -> bytes:
        """The line that refuses one of the client's lines (``line``: its number)."""
        return (_dumps({"error": code, "reason": reason, "line": line}) + "\n").encode()

    def hold(self, data: bytes, message_type: MessageType, limit: int) -> bool:
        """Keep a message delivered before the subscription is known; False once it is, or
        when more than ``limit`` bytes would be held: then what was held is in the output
        buffer already, in order, and flow control takes it from there (a client that says
        nothing and reads nothing must not hold more than any subscriber may)."""
        held = self.held
        if held is None:
            return False
        if self.held_bytes + len(data) <= limit:
            held.append((data, message_type))
            self.held_bytes += len(data)
            return True
        self.held = None  # its first line may still choose types, from then on
        for line, _ in held:
            self.enqueue(line)
        return False

    def discard_pending(self) -> int:
        """Drop the output that waits but the rest of a line the kernel took part of; return
        how many whole lines were dropped."""
        out = self.out
        head = out[0] if out and isinstance(out[0], memoryview) else None
        dropped = sum(bytes(chunk).count(b"\n") for chunk in (out[1:] if head else out))
        out.clear()
        self.out_size = 0
        if head is not None:
            rest = bytes(head)
            chunk = head.obj
            assert isinstance(chunk, bytes)
            sent = len(chunk) - len(rest)
            if sent and chunk[sent - 1] != 0x0A:  # the kernel took part of this line
                end = rest.find(b"\n") + 1
                self.enqueue(rest[:end])
                rest = rest[end:]
            dropped += rest.count(b"\n")
        if self.latest:
            dropped += len(self.latest)
            self.latest = None
        return dropped

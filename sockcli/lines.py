"""The line grammar: one message per line of text, for programs that print rather than call.

``sockcli serve --exec`` reads it from its producer's stdout; the FIFO and the JSON-lines
socket of the shell entry points read the same grammar. A line is one of

- a JSON object: the ``data`` of a data message, ``{"progress": 40}``;
- ``TYPE {json}``: a message type, one or more spaces or tabs, a JSON object, as in
  ``error {"reason": "disk full"}``. TYPE is ``data``, ``error``, ``control`` or a type
  registered in this process (the ``message_types`` setting, which hubs and clients register
  when they load their settings), in any case, as everywhere else a type name is read;
- blank (empty, or spaces and tabs only): skipped, so that ``echo`` alone does no harm.

Spaces and tabs around the line are ignored, and the line may end in ``\\r\\n``. Anything else
is refused with a short reason (:class:`LineError`, or :class:`Rejected` from a
:class:`LineReader`): text that is not JSON, JSON that is not an object, an unknown TYPE, a
TYPE alone, NaN or Infinity (strict JSON, as ``sockcli send``: :mod:`sockcli.strictjson`),
data nested deeper than a message may be, a string holding half of a surrogate pair (``"\\ud800"``,
which UTF-8 cannot carry), bytes that are not UTF-8, and a line longer than the caller's limit.

No I/O: :func:`parse_line` takes one line, :class:`LineReader` takes bytes in any chunks (one
at a time included) and returns what the complete lines were. Light: json, re and sockcli's
light modules only.
"""

from __future__ import annotations

import json
import re

from sockcli.exceptions import MessageError
from sockcli.kinds import MESSAGE_TYPE_BY_VALUE, MessageType
from sockcli.rules import MAX_DATA_DEPTH, check_data, is_event_name
from sockcli.strictjson import NotFinite, decoder, json_kind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["Line", "LineError", "LineReader", "Rejected", "json_object", "parse_line"]

#: How much of a refused line a :class:`Rejected` keeps, for a log line.
PREVIEW_CHARS = 60
_BLANKS = " \t"
_BOM = b"\xef\xbb\xbf"


class LineError(ValueError):
    """A line that is not a message; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Line:
    """One message a line gave: its ``number`` in the stream (1 for the first line, blank
    lines counted), its type and its data."""

    __slots__ = ("data", "message_type", "number")

    def __init__(self, number: int, message_type: MessageType, data: dict[str, Any]) -> None:
        self.number = number
        self.message_type = message_type
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Line) and (self.number, self.message_type, self.data) == \
            (other.number, other.message_type, other.data)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Line({self.number}, {self.message_type.value!r}, {self.data!r})"


class Rejected:
    """A line a :class:`LineReader` refused: its ``number``, the ``reason`` and the start of
    its ``text`` (at most :data:`PREVIEW_CHARS` characters, undecodable bytes escaped)."""

    __slots__ = ("number", "reason", "text")

    def __init__(self, number: int, reason: str, text: str) -> None:
        self.number = number
        self.reason = reason
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rejected) and (self.number, self.reason, self.text) == \
            (other.number, other.reason, other.text)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rejected({self.number}, {self.reason!r}, {self.text!r})"


def parse_line(line: bytes | str, *, number: int = 0, max_bytes: int | None = None,
               types: Mapping[str, MessageType] | None = None) -> Line | None:
    """The message of one line (without its ``\\n``; a final ``\\r`` is dropped), None for a
    blank line, or a :class:`LineError` saying what is wrong.

    ``max_bytes`` limits the line's length in bytes (its UTF-8 encoding for a str), without
    the line end; ``types`` maps the TYPE names accepted (lower case) to their types, by
    default every type known to this process when the line is parsed.
    """
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if max_bytes is not None and len(raw) > max_bytes:
        raise LineError(f"longer than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") \
            from None
    parsed = _parse(text.strip(_BLANKS), MESSAGE_TYPE_BY_VALUE if types is None else types)
    return None if parsed is None else Line(number, *parsed)


def _parse(text: str, types: Mapping[str, MessageType],
           ) -> tuple[MessageType, dict[str, Any]] | None:
    if not text:
        return None
    if text[0] == "{":
        return MessageType.DATA, _object(text)
    if text[0] == "\ufeff":  # a LineReader skips the one at the start of its stream
        raise LineError("starts with a byte order mark (U+FEFF)")
    head, blank, rest = _split_type(text)
    if blank:
        message_type = types.get(head.lower())
        if message_type is not None:
            return message_type, _object(rest, offset=len(text) - len(rest))
    else:
        glued = _GLUED_TYPE.match(text)  # error{...}, or error alone
        if glued is not None and glued.group(1).lower() in types:
            raise LineError(f"{glued.group(1)!r} must be followed by a space and a JSON "
                            "object")
    if blank and rest.startswith("{") and is_event_name(head):
        choices = ", ".join(types)
        raise LineError(f"unknown message type {head!r}: choose one of {choices}")
    _object(text)  # not JSON, or JSON that is not an object (no "{"): it says which
    raise AssertionError("unreachable: a JSON object starts with '{'")


_TYPE_AND_REST = re.compile(r"([^ \t]+)([ \t]+)(.*)", re.DOTALL)
_GLUED_TYPE = re.compile(r"([A-Za-z0-9_-]{1,64})(?:\{|\Z)")


def _split_type(text: str) -> tuple[str, str, str]:
    """(TYPE, the blanks after it, the rest); no blanks: (text, "", "")."""
    match = _TYPE_AND_REST.fullmatch(text)
    if match is None:
        return text, "", ""
    head, blank, rest = match.groups()
    return head, blank, rest


#: What a refusal of text that is not JSON suggests instead, in the line grammar.
_LINE_HINT = 'expected a JSON object such as {"progress": 40}, or TYPE {...}'


def _object(text: str, offset: int = 0) -> dict[str, Any]:
    return json_object(text, offset=offset)


def json_object(text: str, *, offset: int = 0, hint: str = _LINE_HINT,
                check: bool = True) -> dict[str, Any]:
    """The JSON object ``text`` holds, strict (RFC 8259: no NaN, no Infinity) and with no
    half surrogate pair, or a :class:`LineError` saying why not; ``check``: its values must
    also be what a message's data may hold (:func:`sockcli.rules.check_data`). ``offset``
    is where ``text`` starts in its line (for the column of an error), ``hint`` what to
    write instead. The MQTT bridge reads payloads with it too."""
    try:
        value = decoder().decode(text)
    except NotFinite as exc:
        raise LineError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise LineError(f"not JSON (column {offset + exc.pos + 1}): {exc.msg}; {hint}") \
            from None
    except RecursionError:  # json's decoder recurses once per level: [[[[...
        raise LineError(f"data nests deeper than {MAX_DATA_DEPTH} levels") from None
    if type(value) is not dict:
        raise LineError(f"expected a JSON object, got {json_kind(value)}")
    if check:
        try:
            check_data(value)
        except MessageError as exc:
            raise LineError(str(exc)) from None
    if "\\u" in text or "\\U" in text:  # only an escape can make half a surrogate pair
        _refuse_surrogates(value)
    return value


def _refuse_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is str:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(item[exc.start])
                raise LineError(f"a string holds an unpaired surrogate (\\u{code:04x}), which "
                                "UTF-8 cannot carry") from None


class LineReader:
    """Lines out of a byte stream fed in chunks of any size: sans-I/O, like the wire codec.

    :meth:`feed` returns a :class:`Line` or a :class:`Rejected` for each line the chunk
    completed, in order; blank lines give nothing. A line grows to at most ``max_line_bytes``
    (plus its ``\\r\\n``) in memory: one that passes the limit is rejected at once and the rest
    of it skipped up to its ``\\n``. :meth:`end` (the end of the stream) takes a last line that
    has no ``\\n``. A UTF-8 byte order mark at the start of the stream is skipped.
    """

    def __init__(self, *, max_line_bytes: int,
                 types: Mapping[str, MessageType] | None = None) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self._types = types
        self._pending = bytearray()
        self._skipping = False  # inside a line already rejected as too long
        #: Lines completed so far (blank and rejected ones included).
        self.lines = 0

    @property
    def pending(self) -> bool:
        """Whether the start of a line waits for the rest of it (its ``\\n``)."""
        return bool(self._pending) or self._skipping

    def feed(self, data: bytes) -> list[Line | Rejected]:
        """What the lines completed by ``data`` hold (``b""``: nothing, not the end)."""
        out: list[Line | Rejected] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            piece = data[start:newline]
            start = newline + 1
            if self._skipping:
                self._skipping = False
                self.lines += 1
                continue
            if self._pending:
                self._pending += piece
                piece = bytes(self._pending)
                self._pending.clear()
            self._complete(piece, out)
        if start < len(data) and not self._skipping:
            self._pending += data[start:]
            # One more byte than the limit may be the \r of a \r\n; anything else is over.
            over = len(self._pending) - self.max_line_bytes
            if over > 1 or (over == 1 and self._pending[-1] != 0x0D):
                out.append(self._too_long(self.lines + 1, bytes(self._pending)))
                self._pending.clear()
                self._skipping = True
        return out

    def end(self) -> list[Line | Rejected]:
        """The end of the stream: what its last line, if it had no ``\\n``, holds."""
        out: list[Line | Rejected] = []
        if self._skipping:
            self._skipping = False
            self.lines += 1
        elif self._pending:
            piece = bytes(self._pending)
            self._pending.clear()
            self._complete(piece, out)
        return out

    def _complete(self, raw: bytes, out: list[Line | Rejected]) -> None:
        self.lines += 1
        if self.lines == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        if len(raw) - raw.endswith(b"\r") > self.max_line_bytes:
            out.append(self._too_long(self.lines, raw))
            return
        try:
            line = parse_line(raw, number=self.lines, max_bytes=self.max_line_bytes,
                              types=self._types)
        except LineError as exc:
            out.append(Rejected(self.lines, exc.reason, _preview(raw)))
            return
        if line is not None:
            out.append(line)

    def _too_long(self, number: int, raw: bytes) -> Rejected:
        # The same start of the line however it arrived: whole, or cut at the limit.
        return Rejected(number, f"longer than {self.max_line_bytes} bytes",
                        _preview(raw[:self.max_line_bytes]))


def _preview(raw: bytes) -> str:
    text = raw.rstrip(b"\r").decode("utf-8", "backslashreplace")
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 3] + "..."

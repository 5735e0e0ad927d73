"""The rules every event name, message payload and ``timestamp_iso`` must follow.

Shared by the hub, the clients and the light send path, and imported by none of the heavy
modules, so checking costs nothing at start-up. The checks are written with str methods, not
``re``: importing re (and enum, which it imports) is 3 to 5 ms of a one-shot command's 35
(docs/PERFORMANCE.md, "Start-up"), and the checks cost the same (an event name: 190 ns with
a compiled pattern's fullmatch, 200 ns this way).
"""

from __future__ import annotations

from datetime import datetime  # loaded anyway wherever messages are made or read

from sockcli.exceptions import MessageError, ValidationError

TYPE_CHECKING = False  # typing itself costs ~10 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EVENT_NAME_RULE", "INSTANT_RULE", "KNOWN_INSTANTS", "MAX_DATA_DEPTH", "check_data",
           "is_event_name", "is_instant", "validate_event_name"]

#: Event names double as file names, so they are kept to a safe alphabet (no path traversal).
EVENT_NAME_RULE = r"^[A-Za-z0-9_-]{1,64}$"
#: How deeply maps and arrays may nest inside a message's data.
MAX_DATA_DEPTH = 32


def is_event_name(name: str) -> bool:
    """Whether ``name`` (a str) follows :data:`EVENT_NAME_RULE`; message type names follow it
    too. ASCII letters and digits are what ``isalnum`` takes of an ASCII text."""
    return 0 < len(name) <= 64 and name.isascii() and \
        name.replace("_", "a").replace("-", "a").isalnum()


def validate_event_name(name: object) -> str:
    """Return ``name`` if it follows :data:`EVENT_NAME_RULE`, else raise ValidationError."""
    if not isinstance(name, str) or not is_event_name(name):
        raise ValidationError(
            f"invalid event name {name!r}: it must match {EVENT_NAME_RULE} "
            "(1 to 64 letters, digits, '_' or '-')"
        )
    return name


def _fail(reason: str) -> MessageError:
    return MessageError(reason, code="invalid_message")


_SCALARS = frozenset({type(None), bool, int, float, str})


def check_data(value: Any, depth: int = 0) -> None:
    """Refuse payload values that JSON cannot carry (bytes, ext types) or that nest too deep."""
    if type(value) is dict and depth < MAX_DATA_DEPTH:
        # The common case, a map of scalars, without a call per value: every relayed
        # message is checked here.
        for k, v in value.items():
            if type(k) is not str:
                raise _fail(f"data keys must be strings, not {type(k).__name__}")
            if type(v) not in _SCALARS:
                check_data(v, depth + 1)
        return
    if depth > MAX_DATA_DEPTH:
        raise _fail(f"data nests deeper than {MAX_DATA_DEPTH} levels")
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(f"data keys must be strings, not {type(k).__name__}")
            check_data(v, depth + 1)
        return
    if isinstance(value, list):
        for v in value:
            check_data(v, depth + 1)
        return
    raise _fail(f"data may hold only maps, arrays, strings, numbers, booleans and nil, "
                f"not {type(value).__name__}")


#: The shape of a message's ``timestamp_iso``: an RFC 3339 date and time (ISO 8601's extended
#: format, ``T``, a UTC offset), ASCII digits only, with the ``+HH:MM:SS`` offsets Python
#: writes for a zone's local mean time. :func:`is_instant` checks the shape, then the values.
INSTANT_RULE = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                r"(Z|[+-][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)$")


def _digits(text: str, low: int, high: int) -> bool:
    """Whether ``text`` is ``low`` to ``high`` ASCII digits (the caller checked isascii)."""
    return low <= len(text) <= high and text.isdigit()


def _has_instant_shape(text: str) -> bool:
    """Whether ``text`` matches :data:`INSTANT_RULE`."""
    if len(text) < 20 or not text.isascii() or text[4] != "-" or text[7] != "-" or \
            text[10] != "T" or text[13] != ":" or text[16] != ":" or not (
            text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]).isdigit():
        return False
    rest = text[19:]
    if rest[0] == ".":  # a fraction of a second: 1 to 9 digits
        digits = rest[1:].lstrip("0123456789")
        if not 1 <= len(rest) - 1 - len(digits) <= 9:
            return False
        rest = digits
    if rest == "Z":
        return True
    if len(rest) < 6 or rest[0] not in "+-" or rest[3] != ":" or \
            not (rest[1:3] + rest[4:6]).isdigit():
        return False
    rest = rest[6:]  # then nothing, or :SS and maybe a fraction of 1 to 6 digits
    if not rest:
        return True
    if len(rest) < 3 or rest[0] != ":" or not _digits(rest[1:3], 2, 2):
        return False
    rest = rest[3:]
    return not rest or (rest[0] == "." and _digits(rest[1:], 1, 6))


#: Texts :func:`is_instant` accepted lately: ``text in KNOWN_INSTANTS`` is the hot path's
#: check (the hub's relay_fields). A stream carries the same text for every message of a
#: millisecond, and the lookup costs 25 ns where the check costs 400; a set rather than the
#: last text, so that senders in several timezones, interleaved, still hit. Emptied when
#: full; set operations are atomic.
KNOWN_INSTANTS: set[str] = set()
_INSTANTS_KEPT = 1024


def is_instant(text: str) -> bool:
    """Whether ``text`` is a valid ``timestamp_iso``: an ISO 8601 date and time of day with a
    UTC offset, in the RFC 3339 form every sockcli side writes
    (``2023-11-14T22:13:20.000+00:00``; ``Z`` for UTC, any fraction of a second or none),
    of a day and time that exist (no 30 February, no 24:00, no leap second, no year 0)."""
    if text in KNOWN_INSTANTS:
        return True
    if not _has_instant_shape(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    if len(KNOWN_INSTANTS) >= _INSTANTS_KEPT:
        KNOWN_INSTANTS.clear()
    KNOWN_INSTANTS.add(text)
    return True

"""The rules every event name and every message payload must follow.

Shared by the hub, the clients and the light send path, and imported by none of the heavy
modules, so checking costs nothing at start-up.
"""

from __future__ import annotations

import re

from sockcli.exceptions import MessageError, ValidationError

TYPE_CHECKING = False  # typing itself costs ~10 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EVENT_NAME_PATTERN", "EVENT_NAME_RULE", "MAX_DATA_DEPTH", "check_data",
           "validate_event_name"]

#: Event names double as file names, so they are kept to a safe alphabet (no path traversal).
EVENT_NAME_RULE = r"^[A-Za-z0-9_-]{1,64}$"
EVENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: How deeply maps and arrays may nest inside a message's data.
MAX_DATA_DEPTH = 32


def validate_event_name(name: object) -> str:
    """Return ``name`` if it follows :data:`EVENT_NAME_RULE`, else raise ValidationError."""
    if not isinstance(name, str) or EVENT_NAME_PATTERN.fullmatch(name) is None:
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

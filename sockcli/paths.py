"""Dotted paths into a message as ``listen --json`` prints it (``data.files.0``): the one
lookup that the templates (``--text``, ``--template``, ``get``) and ``listen --where`` share,
so that a path means the same thing in both. Dict keys and list indexes only: never an
attribute, never an evaluation.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MISSING", "lookup"]

#: What :func:`lookup` returns for a path that leads nowhere (null is a value: None).
MISSING: Any = object()


def lookup(record: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in ``record`` (dict keys, ASCII list indexes), or
    :data:`MISSING`; a non-finite float (NaN, which MessagePack carries) counts as null."""
    value = record
    for segment in path:
        if isinstance(value, dict):
            if segment not in value:
                return MISSING
            value = value[segment]
        elif isinstance(value, list):
            if not (segment.isdigit() and segment.isascii()):
                return MISSING
            index = int(segment)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

"""Strict JSON (RFC 8259) for every text input: no NaN, no Infinity, no number beyond a float.

Python's json takes ``NaN``, ``Infinity`` and ``1e400`` (which it makes an infinity); a
listener's output must stay strict JSON, so every input path refuses them: ``sockcli send``
(:func:`sockcli.cli.sendcore.parse_object`) and the line grammar of producers and pipes
(:mod:`sockcli.lines`). On the light send path: JSON through :mod:`sockcli.jsontext`, which
does not import json (nor re and enum with it).
"""

from __future__ import annotations

from sockcli.jsontext import Decoder
from sockcli.jsontext import encoder as _encoder

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["NotFinite", "decoder", "encoder", "finite", "json_kind"]


class NotFinite(ValueError):
    """NaN, Infinity or a number beyond a float: Python's json takes them, RFC 8259 does not,
    and a listener's JSON must stay strict."""


def _refuse_constant(name: str) -> Any:
    raise NotFinite(f"{name} is not valid JSON: numbers must be finite (send null or a "
                    "string instead)")


_INFINITY = float("inf")


def _finite_float(text: str) -> float:
    value = float(text)
    if value == _INFINITY or value == -_INFINITY:  # 1e400: json would make it Infinity
        raise NotFinite(f"{text} is out of range: JSON numbers here must fit a 64-bit "
                        "float (send a string instead)")
    return value


_DECODER: Any = None


def decoder() -> Decoder:
    """The one strict decoder: its ``decode`` raises :class:`NotFinite` for what RFC 8259
    refuses and Python takes, ``json.JSONDecodeError`` for the rest; ``scan_once`` is the C
    scanner.

    One for every line: json.loads with hooks builds a new one per call, 2.84 us a 220-byte
    line against 1.56 us with this one (python -m timeit; send --lines spent 4.3 us of CPU a
    line before the hooks)."""
    global _DECODER
    if _DECODER is None:
        _DECODER = Decoder(parse_constant=_refuse_constant, parse_float=_finite_float)
    strict: Decoder = _DECODER
    return strict


def encoder() -> Callable[[Any], str]:
    """The strict encoder of every JSON output (UTF-8 text, ``", "`` and ``": "``): the text
    of a value, ValueError for NaN and the infinities (:func:`finite` replaces them). Values
    come from MessagePack, which cannot hold a cycle, so there is no cycle check."""
    return _encoder(ensure_ascii=False, allow_nan=False, check_circular=False)


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, in words ("an array", "null"), for a complaint."""
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None (JSON has no form for them)."""
    if isinstance(value, float):
        return value if value - value == 0.0 else None  # NaN and the infinities: not 0
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value

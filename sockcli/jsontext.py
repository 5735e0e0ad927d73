"""JSON text for the one-shot commands, without importing the json package.

``import json`` imports ``re`` (for two patterns of its pure-Python fallback), and ``re``
imports ``enum``: 4 to 9 ms of a 35 ms ``sockcli get`` (python -c pass: 12 ms), a quarter of
what sockcli adds to Python's own start (docs/PERFORMANCE.md, "Start-up"). json's real work
is done by its C accelerator, ``_json``, which imports nothing; this module builds the same
scanner and encoder json builds from it, so the text is the text json gives (the tests compare
them), and falls back to the json package where ``_json`` is missing. json itself is imported
only to raise its ``JSONDecodeError``: the error path, where a millisecond does not matter.
"""

from __future__ import annotations

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]

__all__ = ["Decoder", "decode_error", "detect_encoding", "dumps", "encode_string", "encoder",
           "loads"]

#: JSON's whitespace (RFC 8259): what json.loads skips around a value.
_SPACE = " \t\n\r"
_NAN = float("nan")
_INF = float("inf")
_CONSTANTS = {"-Infinity": -_INF, "Infinity": _INF, "NaN": _NAN}


def decode_error(msg: str, doc: str, pos: int) -> ValueError:
    """json's own ``JSONDecodeError`` (a ValueError with lineno and colno)."""
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


class Decoder:
    """What ``json.JSONDecoder(parse_float=..., parse_constant=...)`` is, for its ``decode``
    and its ``scan_once``: the C scanner reads these attributes once, when it is made."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_int = int

    def __init__(self, *, parse_float: Callable[[str], Any] = float,
                 parse_constant: Callable[[str], Any] = _CONSTANTS.__getitem__) -> None:
        self.parse_float = parse_float
        self.parse_constant = parse_constant
        if _json is None:  # pragma: no cover
            import json

            fallback = json.JSONDecoder(parse_float=parse_float, parse_constant=parse_constant)
            self.scan_once: Callable[[str, int], tuple[Any, int]] = fallback.scan_once
        else:
            # The scanner reads the attributes above (typeshed wants a JSONDecoder).
            self.scan_once = _json.make_scanner(self)  # type: ignore[arg-type]

    def decode(self, text: str) -> Any:
        """The one JSON value of ``text`` (whitespace around it allowed), as json.loads; a
        ``JSONDecodeError`` with json's message and position otherwise."""
        start = len(text) - len(text.lstrip(_SPACE))
        try:
            value, end = self.scan_once(text, start)
        except StopIteration as exc:
            raise decode_error("Expecting value", text, exc.value) from None
        except SystemError:
            # The scanner raises json.decoder's JSONDecodeError, and finds it only once that
            # module is imported (else: "returned NULL without setting an exception").
            import json.decoder  # noqa: F401

            value, end = self.scan_once(text, start)
        if end != len(text):
            end = len(text) - len(text[end:].lstrip(_SPACE))
            if end != len(text):
                raise decode_error("Extra data", text, end)
        return value


_PLAIN: Decoder | None = None


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``."""
    global _PLAIN
    if isinstance(text, bytes):
        text = text.decode(detect_encoding(text), "surrogatepass")
    if _PLAIN is None:
        _PLAIN = Decoder()
    return _PLAIN.decode(text)


def detect_encoding(b: bytes) -> str:
    """The encoding json.loads reads ``b`` in (UTF-8, -16 or -32, by its first bytes): the
    json package's own rule, RFC 8259 and RFC 4627."""
    if b.startswith((b"\xef\xbb\xbf",)):
        return "utf-8-sig"
    if b.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if b.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(b) >= 4:
        if not b[0]:
            return "utf-16-be" if b[1] else "utf-32-be"
        if not b[1]:
            return "utf-16-le" if b[2] or b[3] else "utf-32-le"
    elif len(b) == 2:
        if not b[0]:
            return "utf-16-be"
        if not b[1]:
            return "utf-16-le"
    return "utf-8"


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def encode_string(text: str, *, ensure_ascii: bool) -> str:
    """A string's JSON text, quotes included."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(text, ensure_ascii=ensure_ascii)
    quote = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    return quote(text)


def encoder(*, ensure_ascii: bool = True, allow_nan: bool = True, sort_keys: bool = False,
            check_circular: bool = True, separators: tuple[str, str] = (", ", ": "),
            default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """``lambda value: json.dumps(value, ...)`` for these options (no indent), built once:
    ``JSONEncoder.encode`` builds its C encoder anew on every call (0.98 us a
    '{"i": N, "progress": N}' against 2.1 us, 100,000 calls). ValueError for NaN and the
    infinities unless ``allow_nan``; TypeError for what JSON has no form for (unless
    ``default`` gives a value that has one)."""
    item_separator, key_separator = separators
    default = default or _not_serializable
    if _json is None:  # pragma: no cover
        import json

        return json.JSONEncoder(ensure_ascii=ensure_ascii, allow_nan=allow_nan,
                                sort_keys=sort_keys, check_circular=check_circular,
                                separators=separators, default=default).encode
    quote = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    make = _json.make_encoder

    def text(value: Any) -> str:
        if type(value) is str:  # as JSONEncoder.encode: a string alone is one chunk
            return quote(value)
        # A fresh cycle table for each value (json's check_circular), or none.
        encode = make({} if check_circular else None, default, quote, None,
                      key_separator, item_separator, sort_keys, False, allow_nan)
        return "".join(encode(value, 0))

    if check_circular:
        return text
    encode_once = make(None, default, quote, None, key_separator, item_separator,
                       sort_keys, False, allow_nan)

    def text_once(value: Any) -> str:
        if type(value) is str:
            return quote(value)
        return "".join(encode_once(value, 0))

    return text_once


def dumps(value: Any, *, ensure_ascii: bool = True, sort_keys: bool = False,
          allow_nan: bool = True, separators: tuple[str, str] = (", ", ": "),
          default: Callable[[Any], Any] | None = None) -> str:
    """``json.dumps(value, ...)`` (no indent)."""
    return encoder(ensure_ascii=ensure_ascii, sort_keys=sort_keys, allow_nan=allow_nan,
                   separators=separators, default=default)(value)

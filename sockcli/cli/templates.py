"""Output templates for ``sockcli listen``: ``{data.progress:.0f}``, ``{data.text|idle}``.

A template is parsed once (:func:`parse`) and rendered for each message
(:meth:`Template.render`). Its syntax is deliberately small and never evaluates anything:

- literal text, ``{{`` and ``}}`` for literal braces;
- ``{path}``: a dotted path into the message as ``listen --json`` prints it (``data.files.0``
  indexes a list, other segments are keys of dicts; nothing else is looked into);
- ``{path:spec}``: a Python format spec, applied with :func:`format` to numbers and strings
  only (a spec that does not suit the value, ``{data.text:.1f}`` on a string, is left out);
- ``{path|fallback}`` (or ``{path:spec|fallback}``): literal text for a path that is missing
  or null; a missing path without a fallback renders empty.

Strings render as they are, other values (true, lists, objects: ``{data}``) as compact JSON.

``sockcli get`` renders through this module and must start as fast as ``send``: it imports
neither click, typing nor dataclasses. The click option type of a template is
:class:`sockcli.cli.options.TemplateParam`, still importable from here (lazily).
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes
from sockcli.jsontext import dumps
from sockcli.paths import MISSING, lookup
from sockcli.strictjson import finite
from sockcli.values import Value, set_field

TYPE_CHECKING = False  # on get's path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sockcli.cli.options import TemplateParam

__all__ = ["Template", "TemplateError", "TemplateParam", "compact_json", "is_missing", "lookup",
           "parse"]

# The click face of templates lives with the other click types; loaded only when asked for.
__getattr__, __dir__ = lazy_attributes(__name__, {"TemplateParam": "sockcli.cli.options"},
                                       globals())


class TemplateError(ValueError):
    """An invalid template: ``column`` is the 1-based position of the fault in it."""

    def __init__(self, column: int, reason: str) -> None:
        super().__init__(f"column {column}: {reason}")
        self.column = column
        self.reason = reason


class _Field(Value):
    __slots__ = ("fallback", "path", "spec")
    path: tuple[str, ...]
    spec: str
    fallback: str | None

    def __init__(self, path: tuple[str, ...], spec: str, fallback: str | None) -> None:
        set_field(self, "path", path)
        set_field(self, "spec", spec)
        set_field(self, "fallback", fallback)


_MISSING: Any = MISSING


class Template:
    """A parsed template: literal strings and fields, rendered against a message record."""

    def __init__(self, source: str, parts: list[str | _Field]) -> None:
        self.source = source
        self._parts = parts

    def render(self, record: dict[str, Any],
               escape: Callable[[str], str] | None = None) -> str:
        """The template filled in from ``record``; ``escape`` (Pango, polybar) is applied to
        what comes from the message (fallbacks included), never to the template's own text."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = lookup(record, part.path)
            if value is _MISSING or value is None:
                text = part.fallback or ""
            else:
                text = _text(value, part.spec)
            out.append(escape(text) if escape is not None else text)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __eq__(self, other: object) -> bool:  # one source parses to one template
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


def is_missing(value: Any) -> bool:
    """Whether :func:`lookup` found nothing (or null) there."""
    return value is _MISSING or value is None


def compact_json(value: Any) -> str:
    """``value`` as compact, strict JSON (NaN and the infinities as null; bytes and other
    values JSON has no form for as their text)."""
    return dumps(finite(value), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"), default=str)


def _text(value: Any, spec: str) -> str:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        if spec:
            try:
                return format(value, spec)
            except (ValueError, TypeError):
                pass  # a spec for numbers on a string, or the other way round: left out
        return value if isinstance(value, str) else str(value)
    return compact_json(value)


def parse(source: str) -> Template:
    """Parse ``source`` once; TemplateError (with the column) if it is not a template."""
    parts: list[str | _Field] = []
    literal: list[str] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "{":
            if source.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = i + 1
            while end < n and source[end] not in "{}":
                end += 1
            if end >= n:
                raise TemplateError(i + 1, "'{' is not closed (write '{{' for a brace)")
            if source[end] == "{":
                raise TemplateError(end + 1, "'{' inside a field")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_field(source[i + 1:end], i + 2))
            i = end + 1
        elif char == "}":
            if source.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError(i + 1, "single '}' (write '}}' for a brace)")
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(source, parts)


def _field(body: str, column: int) -> _Field:
    """One field, ``path[:spec][|fallback]``; ``column`` is where ``body`` starts."""
    fallback: str | None = None
    bar = body.find("|")
    if bar >= 0:
        body, fallback = body[:bar], body[bar + 1:]
    colon = body.find(":")
    spec = ""
    if colon >= 0:
        body, spec = body[:colon], body[colon + 1:]
        if not _valid_spec(spec):
            raise TemplateError(column + colon + 1, f"invalid format spec {spec!r}")
    path_text = body.strip()
    if not path_text:
        raise TemplateError(column, "empty field: a path is needed ({data.text})")
    offset = column + (len(body) - len(body.lstrip()))
    segments = path_text.split(".")
    for segment in segments:
        if not segment or segment != segment.strip():
            raise TemplateError(offset, f"invalid path {path_text!r}: an empty segment")
        offset += len(segment) + 1
    return _Field(tuple(segments), spec, fallback)


def _valid_spec(spec: str) -> bool:
    """A spec that suits at least one of an int, a float and a string."""
    for probe in (0, 0.0, ""):
        try:
            format(probe, spec)
        except (ValueError, TypeError):
            continue
        return True
    return False


"""Which events a listener of several hubs follows: names and glob patterns.

Light (fnmatch and the name rules only): ``sockcli listen`` asks :func:`is_pattern` of its
arguments before it knows whether it needs :mod:`sockcli.client.merged` at all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from sockcli.exceptions import ValidationError
from sockcli.rules import validate_event_name

__all__ = ["EventSelection", "check_pattern", "is_pattern"]

_GLOB_CHARS = frozenset("*?[")
#: What a pattern may hold: the characters of event names, and fnmatch's * ? [ ] and !.
_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                           "_-*?[]!")


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a glob pattern: event names never hold ``*``, ``?`` or ``[``."""
    return not _GLOB_CHARS.isdisjoint(text)


class EventSelection:
    """Event names and fnmatch patterns (``* ? [seq] [!seq]``, case-sensitive, as the file
    names of records are); an event is selected when it is named or matches a pattern."""

    def __init__(self, names: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.names = tuple(dict.fromkeys(names))
        self.patterns = tuple(dict.fromkeys(check_pattern(p) for p in patterns))
        self._names = frozenset(self.names)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> EventSelection:
        """Names and patterns from arguments; ValidationError for one that is neither."""
        texts = tuple(texts)
        return cls(names=[validate_event_name(t) for t in texts if not is_pattern(t)],
                   patterns=[t for t in texts if is_pattern(t)])

    def matches(self, event_name: str) -> bool:
        return event_name in self._names or any(
            fnmatch.fnmatchcase(event_name, p) for p in self.patterns)

    def missing(self, followed: Iterable[str]) -> list[str]:
        """The names with no hub in ``followed``, then the patterns matching none of them."""
        followed = set(followed)
        return [n for n in self.names if n not in followed] + [
            p for p in self.patterns if not any(fnmatch.fnmatchcase(e, p) for e in followed)]

    def __repr__(self) -> str:
        return f"EventSelection(names={self.names!r}, patterns={self.patterns!r})"


def check_pattern(pattern: str) -> str:
    """``pattern`` if every character can occur in an event name or is glob syntax; else
    ValidationError (a pattern with ``/`` or ``.`` could never match)."""
    bad = sorted(set(pattern) - _PATTERN_CHARS)
    if bad or not pattern:
        raise ValidationError(
            f"invalid event pattern {pattern!r}: it may hold only the characters of event "
            "names (letters, digits, '_', '-') and the glob characters * ? [ ] !")
    return pattern

"""``listen --where``: a small, safe language of conditions on a message's paths.

``data.progress >= 50 and data.step == "palette"`` is parsed once (:func:`compile_where`) into
a predicate that takes a message record (the dict ``listen --json`` prints) and says whether
the message is wanted. Nothing is evaluated by Python: a hand-written tokenizer and a
recursive-descent parser build a tree of small closures. The grammar (docs/LISTEN.md)::

    condition  = disjunct { "or" disjunct }
    disjunct   = conjunct { "and" conjunct }
    conjunct   = "not" conjunct | "(" condition ")" | "exists" path | comparison
    comparison = path ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) literal
               | path "~" string
    literal    = number | string | "true" | "false" | "null"    (JSON's, strings in "")

What a comparison means, so that a peer's data can never make it fail:

- a missing path compares as null (``== null`` and ``!= 5`` are true, orderings false);
  ``exists`` alone tells a missing path from a null; ``retained`` of a live message is false;
- values of different kinds are never equal and never ordered (``"5" == 5``, ``true == 1``
  and ``"a" < 1`` are false; ``!=`` is true): bools are not numbers;
- orderings compare two numbers, or two strings by code point; ``~`` is :func:`re.search`
  of a string (any other value never matches); NaN and the infinities count as null, as
  ``--json`` prints them.

Every fault of an expression is a :class:`WhereSyntaxError` with its 1-based column; nothing
else is raised, whatever the input (the tests throw random strings at it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sockcli.exceptions import ValidationError
from sockcli.paths import MISSING, lookup

__all__ = ["ROOTS", "Where", "WhereSyntaxError", "compile_where"]

#: The fields a path can start with: the keys of a message as ``listen --json`` prints it.
ROOTS = ("event_name", "timestamp_ms", "timestamp_iso", "message_type", "data", "retained")

#: Fields a record may leave out and what they are then: ``--json`` marks only retained
#: messages, so for a live one ``retained == false`` holds (and ``exists retained``).
_ROOT_DEFAULTS: Mapping[str, Any] = {"retained": False}

# Deep enough for any real condition, shallow enough that neither the parser nor the
# evaluation of the closures can exhaust Python's stack.
_MAX_DEPTH = 64

_KEYWORDS = frozenset({"and", "or", "not", "exists", "true", "false", "null"})
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[^\W\d][\w\-]*(?:\.[\w\-]*)*")
_MISSING: Any = MISSING

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]


class WhereSyntaxError(ValidationError):
    """An expression that is not one: ``column`` (1-based, in characters) is where the fault
    is, ``reason`` what it is; ``str()`` gives both."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.reason = message
        self.column = column


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "number", "string", "op", "(", ")", "end"
    text: str  # as written
    column: int  # 1-based
    value: Any = None  # the literal's value (number, string)


class Where:
    """A compiled ``--where`` expression: call it with a message record."""

    def __init__(self, source: str, predicate: Predicate) -> None:
        self.source = source
        self._predicate = predicate

    def __call__(self, record: Record) -> bool:
        return self._predicate(record)

    def __repr__(self) -> str:
        return f"Where({self.source!r})"


def compile_where(source: str) -> Where:
    """Parse ``source`` once into a predicate; WhereSyntaxError (with the column) if it is not
    an expression of the grammar."""
    parser = _Parser(source, _tokens(source))
    if parser.peek.kind == "end":
        raise WhereSyntaxError("empty expression: write a condition such as "
                               "'data.progress >= 50'", 1)
    predicate = parser.condition(0)
    token = parser.peek
    if token.kind == ")":
        raise WhereSyntaxError("')' without a '(' to close", token.column)
    if token.kind != "end":
        raise WhereSyntaxError(f"expected 'and' or 'or' before {_shown(token)}", token.column)
    return Where(source, predicate)


# --- tokens -----------------------------------------------------------------------------------

_HINTS = {
    "'": "strings are in double quotes, as in JSON: \"text\"",
    "=": "'=' is not an operator: write '=='",
    "!": "'!' is not an operator: write 'not', or '!='",
    "&": "write 'and', not '&' or '&&'",
    "|": "write 'or', not '|' or '||'",
    "+": "a number has no '+' sign: write 5, not +5",
    ".": "a number starts with a digit: write 0.5, not .5",
}


def _tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        column = i + 1
        if char.isspace():
            i += 1
        elif char in "()":
            out.append(_Token(char, char, column))
            i += 1
        elif char == "~":
            out.append(_Token("op", "~", column))
            i += 1
        elif source.startswith(_COMPARISONS, i):
            op = next(op for op in _COMPARISONS if source.startswith(op, i))
            out.append(_Token("op", op, column))
            i += len(op)
        elif char == '"':
            token, i = _string(source, i)
            out.append(token)
        elif char == "-" or char.isdigit():
            token, i = _number(source, i)
            out.append(token)
        else:
            match = _WORD.match(source, i)
            if match is None:
                hint = _HINTS.get(char)
                raise WhereSyntaxError(hint or f"unexpected character {char!r}", column)
            out.append(_Token("word", match.group(), column))
            i = match.end()
    out.append(_Token("end", "", n + 1))
    return out


def _string(source: str, start: int) -> tuple[_Token, int]:
    """The JSON string that starts at ``source[start]`` (a double quote)."""
    i = start + 1
    while True:
        end = source.find('"', i)
        if end < 0:
            raise WhereSyntaxError("string not closed: a '\"' is missing", start + 1)
        backslashes = 0
        while source[end - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            break
        i = end + 1
    text = source[start:end + 1]
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Invalid control character"):
            reason = "a control character (a tab, a line break) in a string: write it \\t, \\n"
        else:
            reason = (f"{exc.msg[0].lower()}{exc.msg[1:]} in a string (JSON escapes: \\\" "
                      "\\\\ \\n \\u00e9)")
        at = start + exc.pos
        if source[at] != "\\" and source[at - 1] == "\\":  # \uXXXX: json points past the \\
            at -= 1
        raise WhereSyntaxError(reason, at + 1) from None
    return _Token("string", text, start + 1, value), end + 1


def _number(source: str, start: int) -> tuple[_Token, int]:
    """The JSON number that starts at ``source[start]``: finite, no trailing letters."""
    match = _NUMBER.match(source, start)
    end = start
    while end < len(source) and (source[end].isalnum() or source[end] in "._-+"):
        end += 1
    text = source[start:end]
    if match is None or match.end() != end:
        raise WhereSyntaxError(f"invalid number {text!r} (JSON numbers: 5, -2.5, 1e3)",
                               start + 1)
    value: int | float
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise WhereSyntaxError(f"number {text} is out of range", start + 1)
    else:
        try:
            value = int(text)
        except ValueError:  # beyond Python's limit of digits for int()
            raise WhereSyntaxError(f"number {text[:20]}... is too long", start + 1) from None
    return _Token("number", text, start + 1, value), end


def _shown(token: _Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


# --- the parser -------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens; each rule returns a predicate."""

    def __init__(self, source: str, tokens: list[_Token]) -> None:
        self.source = source
        self.tokens = tokens
        self.index = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_word(self, word: str) -> bool:
        token = self.peek
        return token.kind == "word" and token.text == word

    def condition(self, depth: int) -> Predicate:
        parts = [self.disjunct(depth)]
        while self.at_word("or"):
            self.take()
            self._expect_condition("or")
            parts.append(self.disjunct(depth))
        if len(parts) == 1:
            return parts[0]
        return lambda r: any(p(r) for p in parts)

    def disjunct(self, depth: int) -> Predicate:
        parts = [self.conjunct(depth)]
        while self.at_word("and"):
            self.take()
            self._expect_condition("and")
            parts.append(self.conjunct(depth))
        if len(parts) == 1:
            return parts[0]
        return lambda r: all(p(r) for p in parts)

    def conjunct(self, depth: int) -> Predicate:
        token = self.peek
        if depth > _MAX_DEPTH:
            raise WhereSyntaxError(f"nested more than {_MAX_DEPTH} deep", token.column)
        if token.kind == "(":
            self.take()
            inner = self.condition(depth + 1)
            closing = self.peek
            if closing.kind != ")":
                raise WhereSyntaxError(f"expected ')' to close the '(' at column "
                                       f"{token.column}, found {_shown(closing)}",
                                       closing.column)
            self.take()
            return inner
        if token.kind == "word" and token.text == "not":
            self.take()
            self._expect_condition("not")
            negated = self.conjunct(depth + 1)
            return lambda r: not negated(r)
        if token.kind == "word" and token.text == "exists":
            self.take()
            path = self.path(after="'exists'")
            return lambda r: _lookup(r, path) is not _MISSING
        return self.comparison()

    def _expect_condition(self, after: str) -> None:
        token = self.peek
        if token.kind in ("end", ")") or (token.kind == "word" and token.text in ("and", "or")):
            raise WhereSyntaxError(f"expected a condition after {after!r}, found "
                                   f"{_shown(token)}", token.column)

    def path(self, *, after: str | None = None) -> tuple[str, ...]:
        """A dotted path whose first segment is one of :data:`ROOTS`."""
        token = self.peek
        where = f" after {after}" if after else ""
        if token.kind in ("number", "string") or (
                token.kind == "word" and token.text in ("true", "false", "null")):
            raise WhereSyntaxError(f"expected a path{where}, found the value "
                                   f"{token.text!r}: a value goes on the right "
                                   f"(data.progress >= 50)", token.column)
        if token.kind != "word" and after:
            raise WhereSyntaxError(f"expected a path{where}, found {_shown(token)}",
                                   token.column)
        if token.kind != "word":
            raise WhereSyntaxError(f"expected a condition, found {_shown(token)} (a path such "
                                   "as data.progress, 'exists', 'not' or '(')", token.column)
        if token.text in _KEYWORDS:
            raise WhereSyntaxError(f"expected a path{where}, found {token.text!r}",
                                   token.column)
        if token.text.lower() in _KEYWORDS:
            raise WhereSyntaxError(f"keywords are lowercase: write {token.text.lower()!r}",
                                   token.column)
        self.take()
        segments = tuple(token.text.split("."))
        offset = token.column
        for segment in segments:
            if not segment:
                raise WhereSyntaxError(f"empty segment in the path {token.text!r}", offset)
            offset += len(segment) + 1
        if segments[0] not in ROOTS:
            raise WhereSyntaxError(f"unknown field {segments[0]!r}: a path starts with "
                                   f"{', '.join(ROOTS[:-1])} or {ROOTS[-1]}", token.column)
        return segments

    def comparison(self) -> Predicate:
        start = self.peek
        path = self.path()
        token = self.peek
        if token.kind == "word" and token.text.lower() in _KEYWORDS - {"true", "false", "null"} \
                and token.text not in _KEYWORDS:
            raise WhereSyntaxError(f"keywords are lowercase: write {token.text.lower()!r}",
                                   token.column)
        if token.kind != "op":
            found = "the end" if token.kind == "end" else repr(token.text)
            raise WhereSyntaxError(f"expected an operator (== != < <= > >= ~) after "
                                   f"{start.text!r}, found {found} (or write "
                                   f"'exists {start.text}')", token.column)
        op = self.take().text
        literal = self.literal(op)
        if op == "~":
            return _matcher(path, literal)
        return _comparer(path, op, literal)

    def literal(self, op: str) -> _Token:
        token = self.peek
        if token.kind == "word" and token.text in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[token.text]
            token = _Token("literal", token.text, token.column, value)
        elif token.kind not in ("number", "string"):
            if token.kind == "word" and token.text.lower() in ("true", "false", "null"):
                reason = f"JSON's literals are lowercase: write {token.text.lower()!r}"
            elif token.kind == "word" and token.text not in _KEYWORDS:
                reason = (f"expected a value after {op!r}, found the path {token.text!r}: "
                          "a path compares with a value, not with another path")
            else:
                reason = (f"expected a value after {op!r} (a number, a \"string\", true, "
                          f"false or null), found {_shown(token)}")
            raise WhereSyntaxError(reason, token.column)
        if op == "~" and token.kind != "string":
            raise WhereSyntaxError(f"'~' takes a regular expression in a string, not "
                                   f"{token.text!r}", token.column)
        if op in ("<", "<=", ">", ">=") and token.kind == "literal":
            raise WhereSyntaxError(f"{op!r} orders numbers or strings, not {token.text}",
                                   token.column)
        self.take()
        return token


# --- evaluation -------------------------------------------------------------------------------


def _lookup(record: Record, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (:func:`sockcli.paths.lookup`), or _MISSING; a field every
    message has a default for (``retained``: false on live ones) when the record lacks it."""
    value = lookup(record, path)
    if value is _MISSING and path[0] in _ROOT_DEFAULTS and path[0] not in record:
        return lookup({path[0]: _ROOT_DEFAULTS[path[0]]}, path)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(value: Any, literal: Any) -> bool:
    """JSON equality of a value and a literal: of one kind (a missing path is null)."""
    if value is _MISSING or value is None:
        return literal is None
    if literal is None:
        return False
    if isinstance(literal, bool) or isinstance(value, bool):
        return value is literal
    if isinstance(literal, str):
        return isinstance(value, str) and value == literal
    return _is_number(value) and bool(value == literal)


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b), "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b), ">=": lambda a, b: bool(a >= b),
}


def _comparer(path: tuple[str, ...], op: str, token: _Token) -> Predicate:
    literal = token.value
    if op == "==":
        return lambda r: _equal(_lookup(r, path), literal)
    if op == "!=":
        return lambda r: not _equal(_lookup(r, path), literal)
    order = _ORDERINGS[op]
    if isinstance(literal, str):
        def strings(r: Record) -> bool:
            value = _lookup(r, path)
            return isinstance(value, str) and order(value, literal)
        return strings

    def numbers(r: Record) -> bool:
        value = _lookup(r, path)
        return _is_number(value) and order(value, literal)
    return numbers


def _matcher(path: tuple[str, ...], token: _Token) -> Predicate:
    try:
        pattern = re.compile(token.value)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        reason = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        raise WhereSyntaxError(f"invalid regular expression: {reason}", token.column) from None
    search = pattern.search

    def matches(r: Record) -> bool:
        value = _lookup(r, path)
        return isinstance(value, str) and search(value) is not None
    return matches

"""Parsing without click, for the commands whose start-up is their cost: ``send``, ``get`` and
``listen``.

Shell loops run ``sockcli send`` once per event, status bars ``sockcli get`` once a second and
scripts ``sockcli listen --count 1`` to wait for one event, so importing click (a third of their
time, two thirds of listen's) is not an option for their ordinary command lines.
:func:`parse_fast` reads ``[global options] COMMAND [EVENT] [options]`` with the option tables
of :mod:`sockcli.cli.sendopts` and returns None for anything else (help, an unknown or
malformed option, a bad value), which click then parses, with the same tables, into the same
:class:`Plan`. Only os and sockcli's light modules are imported here.
"""

from __future__ import annotations

import os

from sockcli.cli.sendopts import COUNT, GLOBAL_OPTIONS, event_or_env
from sockcli.exceptions import SocketError
from sockcli.rules import validate_event_name

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, ClassVar

    from sockcli.cli.sendopts import Option

__all__ = ["Plan", "by_flag", "parse_fast"]


class Plan:
    """What one command was asked to do: EVENT, and one attribute for each entry of the
    subclass's :attr:`OPTIONS`, named by its ``dest`` and defaulting to its default. Both
    parsers make one, and tests compare them: equality and repr are by field.

    Not a ``dataclass``: ``sockcli send`` imports this module, and ``import dataclasses`` costs
    9.8 ms (python -X importtime, bytecode cached) where ``python -c pass`` takes 8 ms.
    """

    __slots__ = ()
    #: The entries a plan has an attribute for (a subclass's ``__slots__``: "event" and these
    #: entries' dests).
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    event: str | None

    def __init__(self, *, event: str | None = None, **values: Any) -> None:
        _set = setattr  # the slots are the subclass's: mypy cannot see "event" among them
        _set(self, "event", event)
        for option in self.OPTIONS:
            setattr(self, option.dest, values.pop(option.dest, option.default))
        if values:
            raise TypeError(f"{type(self).__name__} has no {', '.join(sorted(values))}")

    def _values(self) -> tuple[object, ...]:
        names: tuple[str, ...] = self.__slots__
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        return f"{type(self).__name__}(" + \
            ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"


def by_flag(options: Iterable[Option]) -> dict[str, Option]:
    """The entries of a table by each of their flags."""
    return {flag: option for option in options for flag in option.flags}


_GLOBAL_FLAGS = by_flag(GLOBAL_OPTIONS)


def parse_fast(argv: list[str], command: str, flags: dict[str, Option],
               plan_options: Iterable[Option],
               exclusive: Iterable[tuple[Option, Option]] = (),
               event_from_env: bool = True) -> dict[str, Any] | None:
    """The values of a well-formed ``[global options] COMMAND [EVENT] [options]`` line, by
    dest, "event" included (EVENT, else $SOCKCLI_EVENT unless not ``event_from_env``, else
    None), and the environment variables of the ``plan_options`` that were not given; the
    values of a ``multiple`` option as a tuple. None for anything click must decide: help,
    version, another command, an unknown option, a bad or repeated value, two options of an
    ``exclusive`` pair, an invalid EVENT. ``flags`` are the command's own
    (:func:`by_flag`)."""
    values: dict[str, Any] = {}
    current, in_command = _GLOBAL_FLAGS, False
    i, n = 0, len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if not in_command and arg == command:
            current, in_command = flags, True
            continue
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        option = current.get(name)
        if option is None:
            if in_command and not arg.startswith("-") and "event" not in values:
                values["event"] = arg
                continue
            return None  # help, version, another command, anything unusual: click decides
        if not option.takes_value:
            if eq:
                return None
            values[option.dest] = values.get(option.dest, 0) + 1 if option.kind == COUNT \
                else True
            continue
        if eq:
            text = inline
        elif i < n:
            text = argv[i]
            i += 1
        else:
            return None
        value = option.convert(text)
        if value is None or (option.once and option.dest in values):
            return None  # click says what is wrong (a repeated -d: a usage error)
        values[option.dest] = (*values.get(option.dest, ()), value) if option.multiple \
            else value
    if not in_command or any(a.dest in values and b.dest in values for a, b in exclusive):
        return None
    for option in plan_options:
        if option.envvar and option.dest not in values and os.environ.get(option.envvar):
            value = option.convert(os.environ[option.envvar])
            if value is None:
                return None
            values[option.dest] = value
    event = values.pop("event", None)
    if event_from_env:
        event, _ = event_or_env(event)
    if event is not None:
        try:
            validate_event_name(event)
        except SocketError:
            return None
    values["event"] = event
    return values

"""Options and arguments several commands share, as decorators, and the click form of the
option tables in :mod:`sockcli.cli.sendopts`.

The tables are the declaration; here each entry becomes a ``click.option`` (its kind says
which click type), so the group, ``send`` and the commands that connect to hubs take exactly
the options the fast path of ``send`` parses, with the same ranges and defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from sockcli.cli.sendopts import (
    BUILTIN_MESSAGE_TYPES,
    CHOICE,
    CONNECT_OPTION,
    COUNT,
    DIR,
    FILE,
    FLAG,
    HOSTPORT,
    INT,
    MESSAGE_TYPE,
    SECONDS,
    SECURITY_OPTIONS,
    TEMPLATE,
    TEXT,
    WHERE,
    Option,
    given_more_than_once,
    message_type_choices,
    parse_hostport,
    unknown_message_type,
)
from sockcli.cli.state import CliState
from sockcli.cli.templates import Template, TemplateError, parse

__all__ = ["HostPort", "MessageTypeChoice", "TemplateParam", "click_option",
           "client_security_options", "complete_events", "connect_option", "event_argument",
           "events_argument", "json_option", "options_from"]

F = TypeVar("F", bound=Callable[..., Any])


class MessageTypeChoice(click.ParamType[str]):
    """A message type: data, error, control, or one that the ``message_types`` setting adds.

    The settings are those of the command line (its --config and --socket-dir), read only for
    a name that is not built in; completion offers every valid name.
    """

    name = "type"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value).lower()
        if text in BUILTIN_MESSAGE_TYPES:
            return text
        choices = message_type_choices(self._configured(ctx))  # a bad config: exit 78
        if text not in choices:
            self.fail(unknown_message_type(str(value), choices), param, ctx)
        return text

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        try:
            configured = self._configured(ctx)
        except Exception:  # completion must never print a traceback into the user's shell
            configured = ()
        return [CompletionItem(name) for name in message_type_choices(configured)
                if name.startswith(incomplete.lower())]

    @staticmethod
    def _configured(ctx: click.Context | None) -> tuple[str, ...]:
        if ctx is None:
            return ()
        return tuple(CliState.of(ctx).settings().socket.message_types)


class HostPort(click.ParamType[tuple[str, int]]):
    """HOST:PORT (or [v6]:PORT), as (host, port)."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        parsed = parse_hostport(str(value))
        if parsed is None:
            self.fail(f"{value!r} is not HOST:PORT (for example 127.0.0.1:47800)", param, ctx)
        return parsed


class TemplateParam(click.ParamType[Template]):
    """A click option that takes a template (:mod:`sockcli.cli.templates`): parsed once, a
    usage error (exit 2) naming the option and the column when it is not one."""

    name = "template"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Template:
        if isinstance(value, Template):
            return value
        try:
            return parse(str(value))
        except TemplateError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


def _click_type(option: Option) -> click.ParamType[Any] | None:
    kind = option.kind
    if kind == SECONDS:
        return click.FloatRange(option.low, option.high, min_open=option.low_open)
    if kind == INT:
        low, high = option.low, option.high
        return click.IntRange(None if low is None else int(low),
                              None if high is None else int(high))
    if kind == FILE:
        return click.Path(dir_okay=False)
    if kind == DIR:
        return click.Path(file_okay=False)
    if kind == MESSAGE_TYPE:
        return MessageTypeChoice()
    if kind == HOSTPORT:
        return HostPort()
    if kind == CHOICE:
        return click.Choice(option.choices)
    if kind == TEMPLATE:
        return TemplateParam()
    if kind == WHERE:
        from sockcli.cli.actions import WhereParam

        return WhereParam()
    if kind in (TEXT, FLAG, COUNT):
        return None
    raise ValueError(f"no click type for options of kind {kind!r}")


def _given_once(option: Option) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """The callback of an entry with ``once``: its one value (or its default), a usage error
    when it was given more than once."""

    def check(ctx: click.Context, param: click.Parameter, values: tuple[Any, ...]) -> Any:
        if len(values) > 1:
            raise click.UsageError(given_more_than_once(option, len(values)), ctx)
        return values[0] if values else option.default

    return check


def click_option(option: Option, **extra: Any) -> Callable[[F], F]:
    """The ``click.option`` of a table entry (``extra``: click-only arguments, or another
    help text for a command that reuses the entry)."""
    kwargs: dict[str, Any] = {"help": option.help, "default": option.default,
                              "show_default": option.show_default}
    if option.kind == FLAG:
        kwargs["is_flag"] = True
    elif option.kind == COUNT:
        kwargs["count"] = True
    else:
        kwargs.update(metavar=option.metavar, type=_click_type(option))
    if option.once:  # click keeps the last value silently: collect them all, refuse two
        kwargs.update(multiple=True, callback=_given_once(option))
    elif option.multiple:
        kwargs["multiple"] = True
    if option.envvar is not None:
        kwargs["envvar"] = option.envvar
    kwargs.update(extra)
    return click.option(*option.flags, option.dest, **kwargs)


def options_from(options: Iterable[Option], **extra: Any) -> Callable[[F], F]:
    """The options of a table, in its order (in help too), as one decorator."""
    decorators = [click_option(option, **extra) for option in options]

    def apply(command: F) -> F:
        for decorator in reversed(decorators):  # as stacked decorators apply, bottom first
            command = decorator(command)
        return command

    return apply


def complete_events(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[Any]:
    """Shell completion of EVENT: the names of the hubs running now."""
    from click.shell_completion import CompletionItem

    try:
        from sockcli.client.discovery import running_hubs

        hubs = running_hubs(CliState.of(ctx).settings().socket.socket_dir)
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [CompletionItem(h.event_name, help=f"{h.transport.value} {h.address}")
            for h in hubs if h.event_name.startswith(incomplete)]


event_argument = click.argument("event", required=False, metavar="[EVENT]",
                                shell_complete=complete_events)

#: listen's EVENT...: names and glob patterns (sockcli.cli.follow), each one completed.
events_argument = click.argument("events", nargs=-1, metavar="[EVENT|PATTERN]...",
                                 shell_complete=complete_events)

connect_option = click_option(CONNECT_OPTION)

json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="Machine-readable output even on a terminal.")


def _to_state(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Keep the option in the CliState: commands, the remote-event probe and the send plan
    all read it there."""
    if value is not None:
        state = ctx.find_object(CliState)
        if state is not None:
            setattr(state, str(param.name), value)


#: --token-file and --tls-ca, for the commands that connect to hubs.
client_security_options = options_from(SECURITY_OPTIONS, expose_value=False,
                                       callback=_to_state)

"""The options of ``sockcli send`` and the global options, declared once for both parsers.

A ``send`` line is parsed either by click (help, completion, usage errors: :mod:`sockcli.cli.app`
and :mod:`sockcli.cli.send` build their options from these tables) or, for the ordinary lines
shell loops run, by :func:`sockcli.cli.sendcore.parse_fast_send`, which must not import click
and reads the same tables. So a flag, a range, a default or a variable cannot change for one
parser and be forgotten by the other; tests/test_cli_fastpath.py proves, entry by entry, that
both give the same :class:`~sockcli.cli.sendcore.SendPlan`.

What the entries need of the environment is here too, once: ``$SOCKCLI_EVENT`` for a missing
EVENT (:func:`event_or_env`), HOST:PORT (:func:`parse_hostport`), and which message types are
valid (:func:`message_type_choices`). This module is imported by every ``sockcli send``: only
os, stat and sockcli's light modules.
"""

from __future__ import annotations

import os
import stat

from sockcli.kinds import MessageType
from sockcli.rules import is_event_name

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["BUILTIN_MESSAGE_TYPES", "CHOICE", "CLIENT_OPTIONS", "CONNECT_OPTION", "COUNT",
           "DIR", "EVENT_ENVVAR", "EXCLUSIVE", "FILE", "FLAG", "GLOBAL_OPTIONS", "HOSTPORT",
           "INT", "MESSAGE_TYPE", "PLAN_OPTIONS", "SECONDS", "SECURITY_OPTIONS", "SEND_OPTIONS",
           "TEMPLATE", "TEXT", "WAIT_OPTION", "WHERE", "Option", "event_or_env",
           "given_more_than_once", "message_type_choices", "parse_hostport",
           "token_from_option", "unknown_message_type"]

# The kinds of option: what a value is, so that each parser makes the same of it.
FLAG = "flag"  # no value: True when given
COUNT = "count"  # no value: how many times it is given
TEXT = "text"  # any string
FILE = "file"  # a path that is not an existing directory (click.Path(dir_okay=False))
DIR = "dir"  # a path that is not an existing file (click.Path(file_okay=False))
SECONDS = "seconds"  # a float from low to high (click.FloatRange(low, high)); None: no bound
INT = "int"  # an integer from low to high (click.IntRange(low, high)); None: no bound
MESSAGE_TYPE = "message_type"  # a name of the event-name pattern, made lower case
HOSTPORT = "hostport"  # HOST:PORT or [v6]:PORT, made (host, port)
CHOICE = "choice"  # one of the entry's ``choices`` (click.Choice)
TEMPLATE = "template"  # an output template, parsed (sockcli.cli.templates: TemplateParam)
WHERE = "where"  # a listen --where expression (sockcli.where); click's only (WhereParam)

#: The message types every hub knows; the ``message_types`` setting adds others.
BUILTIN_MESSAGE_TYPES = tuple(m.value for m in MessageType)
#: Where a missing EVENT comes from.
EVENT_ENVVAR = "SOCKCLI_EVENT"


class Option:
    """One option: its flags, the SendPlan (and CliState) attribute it sets, and its value.

    Not a ``dataclass``: ``sockcli send`` imports this module, and ``import dataclasses`` costs
    9.8 ms (python -X importtime, bytecode cached) where ``python -c pass`` takes 8 ms.
    """

    __slots__ = ("choices", "default", "dest", "envvar", "flags", "help", "high", "kind", "low",
                 "low_open", "metavar", "multiple", "once", "show_default")

    def __init__(self, *flags: str, dest: str, kind: str, help: str,
                 metavar: str | None = None, default: object = None,
                 low: float | None = None, high: float | None = None, low_open: bool = False,
                 envvar: str | None = None, show_default: bool = False,
                 once: str | None = None, choices: tuple[str, ...] = (),
                 multiple: bool = False) -> None:
        self.flags = flags
        self.dest = dest
        self.kind = kind
        self.help = help
        self.metavar = metavar
        self.default = default
        self.low = low
        self.high = high
        self.low_open = low_open  # SECONDS: low itself is out of range (click's min_open)
        #: Repeatable: its values in the order given, a tuple (its default: ()).
        self.multiple = multiple
        self.envvar = envvar  # read when the option is not given
        self.show_default = show_default
        self.choices = choices  # CHOICE: the values it takes
        #: Set (to the reason, for the message) on an option that given twice is a usage
        #: error in both parsers, not silently its last value: a second -d would lose the
        #: first one's message.
        self.once = once

    @property
    def takes_value(self) -> bool:
        return self.kind not in (FLAG, COUNT)

    def with_help(self, help: str) -> Option:
        """The same option, for a command that explains it in its own words."""
        copy = Option.__new__(Option)
        for name in Option.__slots__:
            setattr(copy, name, getattr(self, name))
        copy.help = help
        return copy

    def convert(self, text: str) -> object | None:
        """The value click would make of ``text``, or None where click would refuse it (the
        fast path then leaves the whole line to click, which explains the problem)."""
        kind = self.kind
        if kind == TEXT:
            return text
        if kind in (SECONDS, INT):
            try:
                value = float(text) if kind == SECONDS else int(text)
            except ValueError:
                return None
            return value if self._in_range(value) else None
        if kind == MESSAGE_TYPE:
            # Any name of the pattern: the configured types are known only once the settings
            # are loaded (run_send checks it then, and leaves an unknown one to click).
            return text.lower() if is_event_name(text) else None
        if kind == HOSTPORT:
            return parse_hostport(text)
        if kind in (FILE, DIR):
            return text if _path_ok(text, want_dir=kind == DIR) else None
        if kind == CHOICE:
            return text if text in self.choices else None
        if kind == TEMPLATE:  # sockcli get's: parsed once, here (templates is light)
            from sockcli.cli.templates import TemplateError, parse

            try:
                return parse(text)
            except TemplateError:
                return None
        if kind == WHERE:  # sockcli.where imports dataclasses and typing: click's only
            raise ValueError(f"option {self.flags[-1]} is for click to parse")
        raise ValueError(f"option {self.flags[-1]} has no value of its own (kind {kind})")

    def _in_range(self, value: float) -> bool:
        low, high = self.low, self.high
        if low is not None and (value <= low if self.low_open else value < low):
            return False
        return high is None or value <= high

    def __repr__(self) -> str:
        return f"Option({', '.join(self.flags)} -> {self.dest})"


def _path_ok(path: str, *, want_dir: bool) -> bool:
    """What click.Path (exists=False, readable=True) accepts: a path that does not exist, or
    one of the right kind that can be read."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    wrong = stat.S_ISREG(st.st_mode) if want_dir else stat.S_ISDIR(st.st_mode)
    return not wrong and os.access(path, os.R_OK)


def parse_hostport(value: str) -> tuple[str, int] | None:
    """HOST:PORT (or [v6]:PORT) as (host, port), or None if it is not one."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def event_or_env(event: str | None) -> tuple[str | None, str]:
    """EVENT as given, else ``$SOCKCLI_EVENT`` (when set and not empty), with the name of
    where it came from, for the message that says it is invalid."""
    if event is None:
        from_env = os.environ.get(EVENT_ENVVAR)
        if from_env:
            return from_env, EVENT_ENVVAR
    return event, "EVENT"


def message_type_choices(configured: Iterable[str] | None) -> list[str]:
    """The message types ``--type`` accepts: the built-in ones, then the configured ones."""
    return list(dict.fromkeys([*BUILTIN_MESSAGE_TYPES, *(t.lower() for t in configured or ())]))


def given_more_than_once(option: Option, times: int) -> str:
    """The one line that refuses an option of :attr:`Option.once` given ``times`` times."""
    return f"{'/'.join(option.flags)} given {times} times: {option.once}"


def unknown_message_type(name: str, choices: Iterable[str]) -> str:
    """The one line that refuses ``--type NAME`` (the same on every path)."""
    return (f"{name!r} is not a known message type: choose one of {', '.join(choices)} "
            "(the message_types setting adds others)")


# -- the tables -------------------------------------------------------------------------------

#: Options of the ``sockcli`` group, before the command.
GLOBAL_OPTIONS = (
    Option("-v", "--verbose", dest="verbose", kind=COUNT, default=0,
           help="Say more on stderr (repeat for debug logs)."),
    Option("-q", "--quiet", dest="quiet", kind=FLAG, default=False,
           help="Print nothing on stderr but errors."),
    Option("--debug", dest="debug", kind=FLAG, default=False,
           help="Show tracebacks and debug logs."),
    Option("--config", dest="config_file", kind=FILE, metavar="FILE", envvar="SOCKCLI_CONFIG",
           help="Settings file to use instead of $XDG_CONFIG_HOME/sockcli/settings.toml."),
    Option("--socket-dir", dest="socket_dir", kind=DIR, metavar="DIR",
           help="Where hubs keep their sockets [default: $XDG_RUNTIME_DIR/sockcli]."),
)

_LINES = Option("--lines", dest="lines", kind=FLAG, default=False,
                help="Read one JSON object per line and send each as it arrives.")
_DATA = Option("-d", "--data", dest="data_text", kind=TEXT, metavar="JSON",
               once="one JSON object per send (--lines sends one per line of stdin)",
               help="Send this JSON object; stdin is not read at all.")

#: How long to wait for a hub that is starting (``listen --wait`` too, with its own help).
WAIT_OPTION = Option("--wait", dest="wait", kind=SECONDS, low=0, high=3600, default=1.0,
                     show_default=True, metavar="SECONDS",
                     help="How long to wait for a hub that is not running yet.")

_TO = Option("--to", dest="to", kind=TEXT, metavar="NAME",
             help="Deliver only to listeners started with --name NAME.")
# Retained messages (docs/protocol.md, "Retained messages"): the hub keeps the last message
# of each type; these two set or clear it without relaying anything.
_RETAIN_ONLY = Option(
    "--retain-only", dest="retain_only", kind=FLAG, default=False,
    help="Set the hub's retained message of this type (what 'get' and 'listen --last' show) "
         "without relaying it to any listener, now or later.")
_CLEAR = Option(
    "--clear", dest="clear", kind=FLAG, default=False,
    help="Clear the hub's retained message of --type TYPE, or of every type without --type; "
         "sends no message to listeners and reads no stdin.")

#: ``send``'s own options. --type has no default of its own (None: data) so that --clear
#: can tell "--type data" from no --type.
SEND_OPTIONS = (
    _LINES,
    _DATA,
    Option("-t", "--type", dest="message_type", kind=MESSAGE_TYPE, metavar="TYPE",
           help="Message type: data, error, control, or one the message_types setting adds "
                "[default: data]."),
    _TO,
    _RETAIN_ONLY,
    _CLEAR,
    WAIT_OPTION,
    Option("--timeout", dest="timeout", kind=SECONDS, low=0.001, high=86400,
           metavar="SECONDS",
           help="How long to wait for the hub's acknowledgements [default: default_timeout]."),
)

#: --token-file and --tls-ca: send, listen and list keep them in the CliState.
SECURITY_OPTIONS = (
    Option("--token-file", dest="token_file", kind=FILE, metavar="FILE",
           help="Read the shared token of TCP hubs from FILE (mode 0600) [default: "
                "$SOCKCLI_TOKEN, else the token_file setting]."),
    Option("--tls-ca", dest="tls_ca", kind=FILE, metavar="FILE",
           help="Speak TLS to TCP hubs, trusting the CA certificates in FILE (PEM) "
                "[default: the tls_ca setting]."),
)

CONNECT_OPTION = Option(
    "--connect", dest="connect", kind=HOSTPORT, metavar="HOST:PORT",
    help="Reach a TCP hub at HOST:PORT (another machine) instead of finding it by name.")

#: The options of every command that connects to hubs (send, listen, list).
CLIENT_OPTIONS = (CONNECT_OPTION, *SECURITY_OPTIONS)

#: Every entry a SendPlan has an attribute for, by its dest (besides the EVENT argument).
PLAN_OPTIONS = GLOBAL_OPTIONS + SEND_OPTIONS + CLIENT_OPTIONS

#: Pairs of ``send`` options that cannot be given together (a usage error).
EXCLUSIVE = ((_DATA, _LINES), (_RETAIN_ONLY, _CLEAR), (_CLEAR, _DATA), (_CLEAR, _LINES),
             (_TO, _RETAIN_ONLY), (_TO, _CLEAR))


def token_from_option(path: str | None) -> bytes | None:
    """The token in the file of ``--token-file PATH`` (which must be 0600 and this user's), or
    None without the option; an unusable file is a configuration error (exit 78). The one
    reading of the option, for serve, send and the commands that connect."""
    if path is None:
        return None
    from sockcli.cli.errors import ConfigError
    from sockcli.exceptions import SocketError
    from sockcli.protocol.auth import load_token_file

    try:
        return load_token_file(os.path.abspath(path))
    except SocketError as exc:
        raise ConfigError(str(exc)) from None

"""What ``sockcli send`` does, without click: shell loops start it once per event, so its
start-up is most of its cost (docs/PERFORMANCE.md).

:func:`parse_fast_send` reads the common command lines itself and returns None for anything
else (help, an unknown or malformed option, a bad value), which then goes through click, whose
``send`` command (:mod:`sockcli.cli.send`) builds the same :class:`SendPlan`. Either way
:func:`run_send` does the work. Only os, sys, json, socket, msgpack and sockcli's light modules
are imported on this path.
"""

from __future__ import annotations

import json
import os
import sys

from sockcli.cli.errors import (
    ConfigError,
    DataError,
    NoEventError,
    NoHubError,
    from_library,
)
from sockcli.exceptions import HubAbsentError, MessageError, SocketError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from sockcli.client.oneshot import Sender

__all__ = ["MESSAGE_TYPES", "SendPlan", "parse_fast_send", "parse_object", "pick_event",
           "run_send"]

MESSAGE_TYPES = ("data", "error", "control")


class SendPlan:
    """Everything ``sockcli send`` was asked to do."""

    __slots__ = ("config_file", "connect", "data_text", "debug", "event", "lines",
                 "message_type", "quiet", "socket_dir", "timeout", "tls_ca", "to",
                 "token_file", "verbose", "wait")

    def __init__(self, *, event: str | None = None, lines: bool = False,
                 data_text: str | None = None, message_type: str = "data",
                 to: str | None = None, wait: float = 1.0, timeout: float | None = None,
                 connect: tuple[str, int] | None = None, config_file: str | None = None,
                 socket_dir: str | None = None, verbose: int = 0, quiet: bool = False,
                 debug: bool = False, token_file: str | None = None,
                 tls_ca: str | None = None) -> None:
        self.event = event
        self.lines = lines
        self.data_text = data_text
        self.message_type = message_type
        self.to = to
        self.wait = wait
        self.timeout = timeout
        self.connect = connect
        self.config_file = config_file
        self.socket_dir = socket_dir
        self.verbose = verbose
        self.quiet = quiet
        self.debug = debug
        self.token_file = token_file  # as given: made absolute when read
        self.tls_ca = tls_ca

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SendPlan) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "SendPlan(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


# -- the fast command line --------------------------------------------------------------------

_GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-q": "quiet", "--quiet": "quiet",
                 "--debug": "debug"}
_GLOBAL_VALUES = {"--config": "config_file", "--socket-dir": "socket_dir"}
_SEND_FLAGS = {"--lines": "lines"}
_SEND_VALUES = {"-d": "data_text", "--data": "data_text", "-t": "message_type",
                "--type": "message_type", "--to": "to", "--wait": "wait",
                "--timeout": "timeout", "--connect": "connect", "--token-file": "token_file",
                "--tls-ca": "tls_ca"}


def _float_in(text: str, low: float, high: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


def parse_hostport(value: str) -> tuple[str, int] | None:
    """HOST:PORT (or [v6]:PORT), or None if it is not one."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def _convert(key: str, text: str) -> object | None:
    """The option's value, or None when click should be the one to explain the problem."""
    if key == "message_type":
        return text.lower() if text.lower() in MESSAGE_TYPES else None
    if key == "wait":
        return _float_in(text, 0, 3600)
    if key == "timeout":
        return _float_in(text, 0.001, 86400)
    if key == "connect":
        return parse_hostport(text)
    return text


def parse_fast_send(argv: list[str]) -> SendPlan | None:
    """A SendPlan for a well-formed ``[global options] send ...`` line, else None."""
    from sockcli.rules import validate_event_name

    values: dict[str, Any] = {"verbose": 0}
    i, n, in_send = 0, len(argv), False
    while i < n:
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        flags = _SEND_FLAGS if in_send else _GLOBAL_FLAGS
        options = _SEND_VALUES if in_send else _GLOBAL_VALUES
        if not in_send and arg == "send":
            in_send = True
        elif name in flags and not eq:
            key = flags[name]
            values[key] = values[key] + 1 if key == "verbose" else True
        elif name in options:
            if eq:
                text = inline
            elif i + 1 < n:
                i += 1
                text = argv[i]
            else:
                return None
            value = _convert(options[name], text)
            if value is None:
                return None
            values[options[name]] = value
        elif in_send and not arg.startswith("-") and "event" not in values:
            values["event"] = arg
        else:
            return None  # help, version, another command, anything unusual: click decides
        i += 1
    if not in_send or (values.get("lines") and "data_text" in values):
        return None
    event = values.get("event")
    if event is None and os.environ.get("SOCKCLI_EVENT"):
        event = os.environ["SOCKCLI_EVENT"]
    if event is not None:
        try:
            values["event"] = validate_event_name(event)
        except SocketError:
            return None
    if "config_file" not in values and os.environ.get("SOCKCLI_CONFIG"):
        values["config_file"] = os.environ["SOCKCLI_CONFIG"]
    return SendPlan(**values)


# -- input ------------------------------------------------------------------------------------

def parse_object(text: str | bytes, where: str) -> dict[str, Any]:
    """One JSON object, or a DataError saying where and what is wrong."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        pos = ""
        if isinstance(exc, json.JSONDecodeError):
            pos = f" (line {exc.lineno}, column {exc.colno})" if where == "stdin" else \
                f" (column {exc.colno})"
        if "Extra data" in detail and where == "stdin":
            detail += ": stdin holds more than one JSON value; use --lines for one per line"
        raise DataError(f"{where}: invalid JSON{pos}: {detail}") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object ({{...}}), got "
                        f"{_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _stdin_chunks() -> Iterator[list[bytes]]:
    """The complete lines of stdin, in the groups they arrive in (a read returns what the
    pipeline has written so far, so nothing waits for more input to be sent)."""
    fd = sys.stdin.buffer.fileno()
    tail = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            if tail:
                yield [tail]
            return
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        if lines:
            yield lines


# -- the work ---------------------------------------------------------------------------------

def _settings(plan: SendPlan) -> dict[str, Any]:
    from sockcli.config.loader import load_settings_data
    from sockcli.runtime import check_socket_dir

    overrides: dict[str, Any] = {}
    if plan.socket_dir:
        overrides["socket_dir"] = os.path.abspath(plan.socket_dir)
    try:
        data = load_settings_data(plan.config_file, **overrides)
        check_socket_dir(data["socket"]["socket_dir"])  # unsafe: a configuration error
    except SocketError as exc:
        raise ConfigError(str(exc)) from None
    return data


def pick_event(socket_dir: str) -> str:
    """The only hub running in ``socket_dir``; NoEventError listing them otherwise."""
    from sockcli.runtime import list_records

    hubs = list_records(socket_dir)
    if len(hubs) == 1:
        return hubs[0].event_name
    if not hubs:
        raise NoEventError("no EVENT given and no hub is running: name the event, or start "
                           "a hub with 'sockcli serve EVENT'")
    names = ", ".join(h.event_name for h in hubs)
    raise NoEventError(f"no EVENT given and {len(hubs)} hubs are running ({names}): name "
                       "one, or set SOCKCLI_EVENT")


def _info(plan: SendPlan, text: str) -> None:
    if not plan.quiet:
        sys.stderr.write(f"sockcli: {text}\n")


def run_send(plan: SendPlan) -> None:
    """Send what the plan says; raise a CliError (with its exit status) when that fails."""
    single: dict[str, Any] | None = None
    if plan.data_text is not None:
        single = parse_object(plan.data_text, "--data")
    elif not plan.lines:
        single = parse_object(sys.stdin.buffer.read(), "stdin")
    settings = _settings(plan)
    sock_cfg = settings["socket"]
    socket_dir = str(sock_cfg["socket_dir"])
    event = plan.event or os.environ.get("SOCKCLI_EVENT") or None
    if event is None and plan.connect is None:
        event = pick_event(socket_dir)
    timeout = plan.timeout if plan.timeout is not None else float(sock_cfg["default_timeout"])
    sender = _open(plan, event, socket_dir, sock_cfg, settings.get("tcp", {}))
    try:
        if single is not None:
            _send_one(sender, plan, single, timeout)
        else:
            _send_lines(sender, plan, timeout)
    finally:
        sender.close()


def _security(plan: SendPlan, tcp: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """The token and the CA file for TCP hubs: the options, else $SOCKCLI_TOKEN and the
    settings. A bad token or token file is a configuration error (exit 78)."""
    from sockcli.protocol.auth import load_token_file, resolve_token

    try:
        explicit = load_token_file(os.path.abspath(plan.token_file)) if plan.token_file \
            else None
        token = resolve_token(explicit, tcp.get("token_file"))
    except SocketError as exc:
        raise ConfigError(str(exc)) from None
    tls_ca = os.path.abspath(plan.tls_ca) if plan.tls_ca else tcp.get("tls_ca")
    return token, str(tls_ca) if tls_ca else None


def _open(plan: SendPlan, event: str | None, socket_dir: str, cfg: dict[str, Any],
          tcp: dict[str, Any]) -> Sender:
    from sockcli.client.oneshot import Sender

    token, tls_ca = _security(plan, tcp)
    try:
        return Sender.open(event, socket_dir=socket_dir, wait=plan.wait, connect=plan.connect,
                           max_frame_size=int(cfg["buffer_size"]),
                           timezone=str(cfg["timezone"]),
                           timeout=float(cfg["default_timeout"]), token=token, tls_ca=tls_ca)
    except HubAbsentError:
        where = f"at {plan.connect[0]}:{plan.connect[1]}" if plan.connect else \
            f"for event {event!r}"
        raise NoHubError(f"no hub is running {where}: start one with 'sockcli serve "
                         f"{event or 'EVENT'}'") from None
    except SocketError as exc:
        raise from_library(exc) from None


def _send_one(sender: Sender, plan: SendPlan, data: dict[str, Any], timeout: float) -> None:
    try:
        sender.send(data, plan.message_type, plan.to)
        sender.flush(timeout)
    except MessageError as exc:
        raise from_library(exc) from None
    except SocketError as exc:
        raise from_library(exc, sending=True) from None


def _send_lines(sender: Sender, plan: SendPlan, timeout: float) -> None:
    sent = bad = number = 0
    for lines in _stdin_chunks():
        for raw in lines:
            number += 1
            if not raw.strip():
                continue
            try:
                # Without its line end, so that an error at the end of the line gets this
                # line's column, not "column 1" of a line that does not exist.
                data = parse_object(raw.rstrip(b"\r\n"), f"line {number}")
                sender.send(data, plan.message_type, plan.to, defer=True)
            except DataError as exc:
                bad += 1
                exc.show()
                continue
            except MessageError as exc:  # data msgpack cannot carry, or too large a frame
                bad += 1
                DataError(f"line {number}: {exc}").show()
                continue
            sent += 1
        try:
            sender.check()  # one write for what arrived together; a refusal stops us early
        except MessageError as exc:
            raise from_library(exc) from None
        except SocketError as exc:
            raise from_library(exc, sending=True) from None
    try:
        sender.flush(timeout)
    except MessageError as exc:
        raise from_library(exc) from None
    except SocketError as exc:
        raise from_library(exc, sending=True) from None
    if plan.verbose:
        _info(plan, f"{sent} messages sent and acknowledged, {bad} lines refused")
    if bad:  # each bad line was reported as it came: one line of stderr per error
        raise DataError(f"{bad} line{'s' if bad > 1 else ''} not sent; the other {sent} were "
                        "sent and acknowledged", reported=True)

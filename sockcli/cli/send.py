"""``sockcli send``: publish JSON objects to a hub, and exit 0 only once it acknowledged them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from sockcli.cli.errors import DataError, NoHubError, from_library
from sockcli.cli.options import MESSAGE_TYPES, connect_option, event_argument
from sockcli.cli.state import CliState
from sockcli.exceptions import MessageError, SocketError
from sockcli.hubclient import HubAbsentError

__all__ = ["send"]


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


def _stdin_lines() -> Iterator[bytes]:
    # Binary and unbuffered per line: each line goes out as soon as the pipeline writes it.
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return
        yield line


@click.command()
@event_argument
@click.option("--lines", is_flag=True,
              help="Read one JSON object per line and send each as it arrives.")
@click.option("-d", "--data", "data_text", metavar="JSON",
              help="Send this JSON object; stdin is not read at all.")
@click.option("-t", "--type", "message_type", type=MESSAGE_TYPES, default="data",
              show_default=True, help="Message type.")
@click.option("--to", metavar="NAME", help="Deliver only to listeners started with --name NAME.")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 3600), default=1.0, show_default=True,
              metavar="SECONDS", help="How long to wait for a hub that is not running yet.")
@click.option("--timeout", type=click.FloatRange(0.001, 86400), metavar="SECONDS",
              help="How long to wait for the hub's acknowledgements [default: default_timeout].")
@connect_option
@click.pass_obj
def send(state: CliState, event: str | None, lines: bool, data_text: str | None,
         message_type: str, to: str | None, wait_s: float, timeout: float | None,
         connect: tuple[str, int] | None) -> None:
    """Send JSON objects from stdin (or -d) to the hub of EVENT.

    Without --lines, stdin holds one JSON object: one message. With --lines, each line is one
    message, sent as it arrives; a bad line is reported and skipped, the others are sent, and
    the exit status is 65. Exits 0 only once the hub has acknowledged every message.
    """
    if data_text is not None and lines:
        raise click.UsageError("--data and --lines exclude each other")
    single: dict[str, Any] | None = None
    if data_text is not None:
        single = parse_object(data_text, "--data")
    elif not lines:
        single = parse_object(sys.stdin.buffer.read(), "stdin")
    name = state.resolve_event(event, connect)
    client = state.client(name, connect, subscribe=False, auto_reconnect=False)
    try:
        client.connect(timeout=wait_s)
    except HubAbsentError:
        where = f"at {connect[0]}:{connect[1]}" if connect else f"for event {name!r}"
        raise NoHubError(f"no hub is running {where}: start one with 'sockcli serve "
                         f"{name}'") from None
    except SocketError as exc:
        raise from_library(exc) from None
    try:
        if single is not None:
            _send_one(state, client, name, message_type, to, single, timeout)
        else:
            _send_lines(state, client, name, message_type, to, timeout)
    finally:
        client.disconnect()


def _message(state: CliState, event: str, message_type: str, data: dict[str, Any]) -> Any:
    from sockcli.types import MessageType, SocketMessage, format_timestamp

    # Stamped in the timezone of the settings this command uses (--config included), not in
    # that of the process-wide default settings.
    now_ms = time.time_ns() // 1_000_000
    return SocketMessage(event_name=event, message_type=MessageType.parse(message_type),
                         timestamp_ms=now_ms,
                         timestamp_iso=format_timestamp(now_ms, state.settings().socket.timezone),
                         data=data)


def _send_one(state: CliState, client: Any, event: str, message_type: str, to: str | None,
              data: dict[str, Any], timeout: float | None) -> None:
    try:
        client.send(_message(state, event, message_type, data), to=to, wait=True,
                    timeout=timeout)
    except MessageError as exc:
        raise from_library(exc) from None
    except SocketError as exc:
        raise from_library(exc, sending=True) from None


def _send_lines(state: CliState, client: Any, event: str, message_type: str, to: str | None,
                timeout: float | None) -> None:
    sent = bad = 0
    for number, raw in enumerate(_stdin_lines(), 1):
        if not raw.strip():
            continue
        try:
            # Without its newline, so that an error at the end of the line gets this line's
            # column, not "column 1" of a line that does not exist.
            data = parse_object(raw.rstrip(b"\r\n"), f"line {number}")
            client.send(_message(state, event, message_type, data), to=to, wait=False)
            client.check()  # a refusal (not allowed, unknown recipient) stops us early
        except DataError as exc:
            bad += 1
            exc.show()
            continue
        except MessageError as exc:
            if exc.code in ("invalid_message", "frame_too_large"):
                bad += 1
                DataError(f"line {number}: {exc}").show()
                continue
            raise from_library(exc) from None
        except SocketError as exc:
            raise from_library(exc, sending=True) from None
        sent += 1
    try:
        client.flush(timeout)
    except MessageError as exc:
        raise from_library(exc) from None
    except SocketError as exc:
        raise from_library(exc, sending=True) from None
    if state.verbose:
        state.info(f"{sent} messages sent and acknowledged, {bad} lines refused")
    if bad:  # each bad line was reported as it came: one line of stderr per error
        raise DataError(f"{bad} line{'s' if bad > 1 else ''} not sent; the other {sent} were "
                        "sent and acknowledged", reported=True)


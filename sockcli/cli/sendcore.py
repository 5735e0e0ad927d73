"""What ``sockcli send`` does, without click: shell loops start it once per event, so its
start-up is most of its cost (docs/PERFORMANCE.md).

:func:`parse_fast_send` reads the common command lines itself, with the option tables of
:mod:`sockcli.cli.sendopts`, and returns None for anything else (help, an unknown or malformed
option, a bad value), which then goes through click, whose ``send`` command
(:mod:`sockcli.cli.send`) is built from the same tables and makes the same :class:`SendPlan`.
Either way :func:`run_send` does the work. Only os, sys, json, socket, msgpack and sockcli's
light modules are imported on this path.
"""

from __future__ import annotations

import os
import sys
import time

from sockcli.cli.errors import (
    CliError,
    ConfigError,
    DataError,
    InputError,
    NoEventError,
    NoHubError,
    NotAcknowledgedError,
    UsageError,
    from_library,
)
from sockcli.cli.fastparse import Plan, by_flag, parse_fast
from sockcli.cli.sendopts import (
    BUILTIN_MESSAGE_TYPES,
    CLIENT_OPTIONS,
    EVENT_ENVVAR,
    EXCLUSIVE,
    PLAN_OPTIONS,
    SEND_OPTIONS,
    message_type_choices,
    unknown_message_type,
)
from sockcli.exceptions import HubAbsentError, MessageError, SocketError
from sockcli.jsontext import detect_encoding
from sockcli.strictjson import NotFinite, decoder, json_kind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, Protocol

    from sockcli.client.oneshot import Sender

    class ClientPlan(Protocol):
        """What :func:`plan_settings`, :func:`plan_security` and :func:`open_sender` read
        of a plan (SendPlan, GetPlan)."""

        config_file: str | None
        socket_dir: str | None
        connect: tuple[str, int] | None
        token_file: str | None
        tls_ca: str | None

__all__ = ["SendPlan", "check_message_type", "open_sender", "parse_fast_send", "parse_object",
           "pick_event", "plan_security", "plan_settings", "run_send"]


class SendPlan(Plan):
    """Everything ``sockcli send`` was asked to do: EVENT, and one attribute for each entry of
    :data:`~sockcli.cli.sendopts.PLAN_OPTIONS`, named by its ``dest`` and defaulting to its
    default. Both parsers make one; :func:`run_send` carries it out.
    """

    __slots__ = ("event", *(option.dest for option in PLAN_OPTIONS))
    OPTIONS = PLAN_OPTIONS

    event: str | None
    verbose: int
    quiet: bool
    debug: bool
    config_file: str | None
    socket_dir: str | None
    lines: bool
    data_text: str | None
    message_type: str | None  # None: data (and, for --clear, every type)
    to: str | None
    retain_only: bool
    clear: bool
    wait: float
    timeout: float | None
    connect: tuple[str, int] | None
    token_file: str | None  # as given: made absolute when read
    tls_ca: str | None


# -- the fast command line --------------------------------------------------------------------

_SEND_FLAGS = by_flag(SEND_OPTIONS + CLIENT_OPTIONS)


def parse_fast_send(argv: list[str]) -> SendPlan | None:
    """A SendPlan for a well-formed ``[global options] send ...`` line, else None: then click
    parses the line (help, another command, an unknown option or a bad value)."""
    values = parse_fast(argv, "send", _SEND_FLAGS, PLAN_OPTIONS, EXCLUSIVE)
    return None if values is None else SendPlan(**values)


def check_message_type(name: str, configured: Iterable[str] | None) -> None:
    """Register the configured message types (``message_types``); a UsageError if ``name`` is
    neither one of them nor a built-in type."""
    from sockcli.kinds import register_message_types

    register_message_types(configured)
    if name not in BUILTIN_MESSAGE_TYPES:
        choices = message_type_choices(configured)
        if name not in choices:
            raise UsageError(f"--type: {unknown_message_type(name, choices)}")


# -- input ------------------------------------------------------------------------------------

#: What every complaint about the input shows, so that the fix is on the screen.
_EXAMPLE = '{"progress": 40}'


def parse_object(text: str | bytes, where: str) -> dict[str, Any]:
    """One JSON object (RFC 8259: no NaN or Infinity), or a DataError saying where and what is
    wrong."""
    if not text.strip():  # --lines skips blank lines before this
        raise DataError(f"{where} is empty: expected one JSON object such as {_EXAMPLE}")
    try:
        if isinstance(text, bytes):  # as json.loads does: UTF-8, -16 or -32, by its first bytes
            text = text.decode(detect_encoding(text), "surrogatepass")
        value = decoder().decode(text)
    except NotFinite as exc:
        raise DataError(f"{where}: {exc}") from None
    except ValueError as exc:
        from json import JSONDecodeError  # the error path: its import does not matter

        detail = exc.msg if isinstance(exc, JSONDecodeError) else str(exc)
        pos = ""
        if isinstance(exc, JSONDecodeError):
            pos = f" (line {exc.lineno}, column {exc.colno})" if where == "stdin" else \
                f" (column {exc.colno})"
        if "Extra data" in detail and where == "stdin":
            detail += ": stdin holds more than one JSON value; use --lines for one per line"
        else:
            detail += f"; expected one JSON object such as {_EXAMPLE}"
        raise DataError(f"{where}: invalid JSON{pos}: {detail}") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object such as {_EXAMPLE}, got "
                        f"{json_kind(value)}")
    return value


def _stdin(plan: SendPlan) -> int:
    """The file descriptor of stdin, once a person at a terminal has been told what it waits
    for (else it would seem to hang); InputError if stdin is closed (``<&-``)."""
    if sys.stdin is None:  # Python makes it None when descriptor 0 is not open
        raise InputError("stdin is closed: --lines reads one JSON object per line from it"
                         if plan.lines else
                         "stdin is closed: pipe a JSON object in, or give it with --data JSON")
    fd = sys.stdin.fileno()
    if os.isatty(fd):
        _info(plan, "reading JSON objects from the terminal, one per line; end with Ctrl-D"
              if plan.lines else "reading a JSON object from the terminal; end with Ctrl-D")
    return fd


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = _read(fd)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError as exc:  # a directory (EISDIR), a terminal that went away (EIO)
        raise InputError(f"cannot read stdin: {exc.strerror or exc}") from None


def _stdin_chunks(fd: int) -> Iterator[list[bytes]]:
    """The complete lines of stdin, in the groups they arrive in (a read returns what the
    pipeline has written so far, so nothing waits for more input to be sent)."""
    tail = b""
    while True:
        chunk = _read(fd)
        if not chunk:
            if tail:
                yield [tail]
            return
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        if lines:
            yield lines


# -- the work ---------------------------------------------------------------------------------

def plan_settings(plan: ClientPlan) -> dict[str, Any]:
    """The settings as plain data (the JSON cache: no pydantic), with the plan's --config and
    --socket-dir; an invalid one, or an unsafe socket directory, is a ConfigError (78)."""
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


def pick_event(socket_dir: str, wait: float = 0.0,
               on_wait: Callable[[], None] | None = None) -> str:
    """The only hub running in ``socket_dir``, once one is.

    When no hub has a live record, the sockets of socket-activated hubs that have not started
    yet count as running (:func:`~sockcli.runtime.activatable_events`): the connection starts
    the hub. With none running it looks again, from 20 ms doubling, for up to ``wait``
    seconds (may be math.inf): ``sockcli serve E &`` then ``sockcli send`` must find the hub
    that is still starting (its record is written once it listens). ``on_wait()`` is called
    once, before the first pause. Raises NoEventError (64) at once when several hubs run,
    NoHubError (69) when none came in time.
    """
    from sockcli.client.connect import retry_while_absent
    from sockcli.runtime import activatable_events, list_records

    said: list[bool] = []

    def only_hub() -> str:
        running = [h.event_name for h in list_records(socket_dir)]
        what = "hubs are running"
        if not running:
            running = activatable_events(socket_dir)
            what = "socket-activated hubs wait for a first connection"
        if len(running) == 1:
            return running[0]
        if not running:
            raise HubAbsentError("no hub is running")
        raise NoEventError(f"no EVENT given and {len(running)} {what} ({', '.join(running)}): "
                           f"name one, or set {EVENT_ENVVAR}")

    def pause(seconds: float) -> bool:
        if on_wait is not None and not said:
            said.append(True)
            on_wait()
        time.sleep(seconds)
        return False

    try:
        return retry_while_absent(only_hub, time.monotonic() + wait,
                                  max_delay=_PICK_MAX_DELAY, pause=pause)
    except HubAbsentError:
        raise NoHubError("no EVENT given and no hub is running: name the event, or start a "
                         "hub with 'sockcli serve EVENT'") from None


#: Longest pause between two looks for a hub to pick (a hub that is starting is seen within
#: milliseconds; one that is not running costs four looks a second).
_PICK_MAX_DELAY = 0.25


def _info(plan: SendPlan, text: str) -> None:
    if not plan.quiet:
        sys.stderr.write(f"sockcli: {text}\n")


def run_send(plan: SendPlan) -> None:
    """Send what the plan says; raise a CliError (with its exit status) when that fails."""
    settings = plan_settings(plan)
    sock_cfg = settings["socket"]
    # Before reading any input: a --type the settings do not know is a usage error.
    check_message_type(plan.message_type or "data", sock_cfg.get("message_types"))
    single: dict[str, Any] | None = None
    stdin = -1
    if plan.clear:
        single = {}  # no data: stdin is not read
    elif plan.data_text is not None:
        single = parse_object(plan.data_text, "--data")
    elif plan.lines:
        stdin = _stdin(plan)  # closed: said before connecting
    else:
        single = parse_object(_read_all(_stdin(plan)), "stdin")
    socket_dir = str(sock_cfg["socket_dir"])
    event = plan.event
    wait = plan.wait
    if event is None and plan.connect is None:
        started = time.monotonic()
        event = pick_event(socket_dir, wait)  # --wait for a hub to appear, then the only one
        wait = max(0.0, wait - (time.monotonic() - started))
    timeout = plan.timeout if plan.timeout is not None else float(sock_cfg["default_timeout"])
    sender = open_sender(plan, event, wait, socket_dir, sock_cfg, settings.get("tcp", {}))
    try:
        if _retain(plan) is not None:  # before anything is sent: an older hub would relay it
            try:
                sender.require("retain", "send --retain-only and --clear")
            except SocketError as exc:
                raise from_library(exc) from None
        if single is not None:
            _send_one(sender, plan, single, timeout)
        else:
            _send_lines(sender, plan, timeout, stdin)
    finally:
        sender.close()


def _retain(plan: SendPlan) -> str | None:
    """The ``retain`` of the plan's messages (frames.RETAIN_MODES), or None: relay them."""
    if plan.retain_only:
        return "only"
    if plan.clear:
        return "clear" if plan.message_type else "clear_all"
    return None


def _message_type(plan: SendPlan) -> str:
    """The plan's --type; data without one, and control for --clear of every type (the hub
    ignores the type of a clear_all: it clears them all)."""
    if plan.message_type:
        return plan.message_type
    return "control" if plan.clear else "data"


def plan_security(plan: ClientPlan, tcp: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """The token and the CA file for TCP hubs: the options, else $SOCKCLI_TOKEN and the
    settings. A bad token or token file is a configuration error (exit 78)."""
    from sockcli.cli.sendopts import token_from_option

    explicit = token_from_option(plan.token_file)
    token = None
    # None of resolve_token's three sources (the usual case, a Unix hub): no need to import
    # it (sockcli.protocol.auth, 0.25 ms of a 35 ms send).
    if explicit is not None or tcp.get("token_file") or os.environ.get("SOCKCLI_TOKEN"):
        from sockcli.protocol.auth import resolve_token

        try:
            token = resolve_token(explicit, tcp.get("token_file"))
        except SocketError as exc:
            raise ConfigError(str(exc)) from None
    tls_ca = os.path.abspath(plan.tls_ca) if plan.tls_ca else tcp.get("tls_ca")
    return token, str(tls_ca) if tls_ca else None


def open_sender(plan: ClientPlan, event: str | None, wait: float, socket_dir: str,
                cfg: dict[str, Any], tcp: dict[str, Any], **hello: Any) -> Sender:
    """The one-shot client of the plan's hub (``hello``: Sender.open's ``peek`` and
    ``types``); NoHubError (69) when none runs, the CLI error of any other failure."""
    from sockcli.client.oneshot import Sender

    token, tls_ca = plan_security(plan, tcp)
    try:
        return Sender.open(event, socket_dir=socket_dir, wait=wait, connect=plan.connect,
                           max_frame_size=int(cfg["buffer_size"]),
                           timezone=str(cfg["timezone"]),
                           timeout=float(cfg["default_timeout"]), token=token, tls_ca=tls_ca,
                           **hello)
    except HubAbsentError:
        where = f"at {plan.connect[0]}:{plan.connect[1]}" if plan.connect else \
            f"for event {event!r}"
        raise NoHubError(f"no hub is running {where}: start one with 'sockcli serve "
                         f"{event or 'EVENT'}'") from None
    except SocketError as exc:
        raise from_library(exc) from None


def _send_one(sender: Sender, plan: SendPlan, data: dict[str, Any], timeout: float) -> None:
    try:
        sender.send(data, _message_type(plan), plan.to, retain=_retain(plan))
        sender.flush(timeout)
    except MessageError as exc:
        raise from_library(exc) from None
    except SocketError as exc:
        raise from_library(exc, sending=True) from None


def _send_lines(sender: Sender, plan: SendPlan, timeout: float, stdin: int) -> None:
    sent = bad = number = 0
    lines_of: list[int] = []  # the input line of each message sent, by sequence number - 1
    message_type, retain = _message_type(plan), _retain(plan)
    together = plan.to is None and retain is None  # as batches, when the hub takes them
    try:
        for lines in _stdin_chunks(stdin):
            numbers: list[int] = []  # the input line of each item
            items: list[dict[str, Any]] = []
            errors: list[tuple[int, DataError]] = []
            for raw, value in zip(lines, _objects(lines), strict=True):
                number += 1
                if value is None:
                    if not raw.strip():
                        continue
                    try:
                        # Without its line end, so that an error at the end of the line gets
                        # this line's column, not "column 1" of a line that does not exist.
                        value = parse_object(raw.rstrip(b"\r\n"), f"line {number}")
                    except DataError as exc:
                        errors.append((number, exc))
                        continue
                numbers.append(number)
                items.append(value)
            if together:
                refused = sender.send_many(items, message_type)
            else:
                refused = []
                for index, data in enumerate(items):
                    try:
                        sender.send(data, message_type, plan.to, defer=True, retain=retain)
                    except MessageError as exc:
                        refused.append((index, exc))
            # data msgpack cannot carry, or too large a frame: that line only
            errors += [(numbers[i], DataError(f"line {numbers[i]}: {exc}")) for i, exc in refused]
            skipped = {i for i, _ in refused}
            lines_of += [n for i, n in enumerate(numbers) if i not in skipped]
            sent += len(numbers) - len(skipped)
            bad += len(errors)
            for _, error in sorted(errors, key=lambda pair: pair[0]):
                error.show()  # in input order, each as it came
            sender.check()  # one write for what arrived together; a refusal stops us early
        sender.flush(timeout)
    except MessageError as exc:
        raise from_library(exc) from None
    except SocketError as exc:
        raise _unacknowledged_lines(exc, sender.acked, lines_of, number) from None
    if plan.verbose:
        _info(plan, f"{sent} messages sent and acknowledged, {bad} lines refused")
    if bad:  # each bad line was reported as it came: one line of stderr per error
        raise DataError(f"{bad} line{'s' if bad > 1 else ''} not sent; the other {sent} were "
                        "sent and acknowledged", reported=True)


def _objects(lines: list[bytes]) -> list[dict[str, Any] | None]:
    """Each line's JSON object, or None where :func:`parse_object` must look (a blank line,
    whitespace around the object, anything that is not one JSON object alone, text that is
    not UTF-8): the usual lines with one decode of the whole read and one scan each, which
    is json.loads' work without its per-call cost (1.9 us a line against 4.9 us, 100,000
    lines of '{"i": N, "progress": N}', python -m timeit on this machine, loaded)."""
    try:
        text = b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        return [None] * len(lines)
    scan = decoder().scan_once  # the C scanner
    objects: list[dict[str, Any] | None] = []
    for line in text.split("\n"):
        try:
            value, end = scan(line, 0)
        # Not JSON, NaN or Infinity: said by the slow path. SystemError: the scanner's
        # JSONDecodeError before json.decoder is imported (sockcli.jsontext.Decoder.decode).
        except (StopIteration, ValueError, SystemError):
            objects.append(None)
            continue
        objects.append(value if end == len(line) and type(value) is dict else None)
    return objects


def _unacknowledged_lines(exc: SocketError, acked: int, lines_of: list[int],
                          read: int) -> CliError:
    """Exit 75, saying exactly which input lines the hub acknowledged and where to resend
    from (``acked``: the last sequence number acknowledged; ``read``: the last line read)."""
    error = from_library(exc, sending=True)
    if not isinstance(error, NotAcknowledgedError) or acked >= len(lines_of):
        return error
    first = lines_of[acked]
    last = lines_of[acked - 1] if acked else 0
    done = f"lines 1-{last} acknowledged" if last > 1 else \
        "line 1 acknowledged" if last == 1 else "no line acknowledged"
    rest = f"{first}-{read}" if read > first else f"{first}"
    return NotAcknowledgedError(f"{exc}; {done}; {rest} not: resend from line {first}")

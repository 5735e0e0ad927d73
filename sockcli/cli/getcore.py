"""What ``sockcli get`` does, without click: status bars poll it (i3blocks ``interval=1``), so
it must start as fast as ``send`` (docs/PERFORMANCE.md).

:func:`parse_fast_get` reads the ordinary command lines with the option tables (the shared
entries of :mod:`sockcli.cli.sendopts`, the output options of :mod:`sockcli.cli.formatopts`
and :data:`GET_OPTIONS` here) and returns None for anything else, which click parses with the
same tables (:mod:`sockcli.cli.get`) into the same :class:`GetPlan`. Either way
:func:`run_get` does the work: it connects as a pure sender that asks to ``peek``, so the hub
sends it the retained messages (never a queued one, which stays for the first listener),
pings, and prints the newest message that came before the pong, as ``listen --last`` prints
it in the same format. docs/protocol.md, "Retained messages", is the exchange.
"""

from __future__ import annotations

import contextlib
import time

from sockcli.cli.errors import NothingRetainedError, OutputError, from_library
from sockcli.cli.fastparse import Plan, by_flag, parse_fast
from sockcli.cli.formatopts import FORMAT_OPTIONS, fields_of, format_problem, make_printer
from sockcli.cli.sendcore import (
    check_message_type,
    open_sender,
    pick_event,
    plan_settings,
)
from sockcli.cli.sendopts import (
    CLIENT_OPTIONS,
    GLOBAL_OPTIONS,
    MESSAGE_TYPE,
    SECONDS,
    WAIT_OPTION,
    Option,
)
from sockcli.exceptions import SocketError

TYPE_CHECKING = False  # on get's path: no typing import
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from sockcli.cli.render import Fields
    from sockcli.cli.templates import Template

__all__ = ["GET_OPTIONS", "GET_PLAN_OPTIONS", "GetPlan", "parse_fast_get", "run_get",
           "usage_problem"]

GET_TYPE = Option(
    "-t", "--type", dest="message_type", kind=MESSAGE_TYPE, metavar="TYPE",
    once="get prints one message: the newest retained one of TYPE, or of any type without "
         "--type",
    help="The retained message of this type (data, error, control, or one the message_types "
         "setting adds) [default: the newest retained message of any type].")
GET_TIMEOUT = Option(
    "--timeout", dest="timeout", kind=SECONDS, low=0.001, high=86400, metavar="SECONDS",
    help="How long to wait for the hub's answer [default: default_timeout].")

#: ``get``'s own options (the output options are listen's).
GET_OPTIONS = (GET_TYPE, *FORMAT_OPTIONS, WAIT_OPTION, GET_TIMEOUT)
#: Every entry a GetPlan has an attribute for, by its dest (besides the EVENT argument).
GET_PLAN_OPTIONS = GLOBAL_OPTIONS + GET_OPTIONS + CLIENT_OPTIONS


class GetPlan(Plan):
    """Everything ``sockcli get`` was asked to do: EVENT, and one attribute for each entry of
    :data:`GET_PLAN_OPTIONS`. Both parsers make one; :func:`run_get` carries it out."""

    __slots__ = ("event", *(option.dest for option in GET_PLAN_OPTIONS))
    OPTIONS = GET_PLAN_OPTIONS

    event: str | None
    verbose: int
    quiet: bool
    debug: bool
    config_file: str | None
    socket_dir: str | None
    message_type: str | None  # None: the newest of any type
    fmt: str | None  # None: json
    as_json: bool
    text_t: Template | None
    tooltip_t: Template | None
    class_t: Template | None
    alt_t: Template | None
    template_t: Template | None
    wait: float
    timeout: float | None
    connect: tuple[str, int] | None
    token_file: str | None
    tls_ca: str | None

    @property
    def fields(self) -> Fields:
        """The templates of the plan, for the printer."""
        return fields_of(text=self.text_t, tooltip=self.tooltip_t, css_class=self.class_t,
                         alt=self.alt_t, template=self.template_t)


_GET_FLAGS = by_flag(GET_OPTIONS + CLIENT_OPTIONS)


def parse_fast_get(argv: list[str]) -> GetPlan | None:
    """A GetPlan for a well-formed ``[global options] get ...`` line, else None: then click
    parses it (help, an unknown option, a bad value, output options that do not go
    together)."""
    values = parse_fast(argv, "get", _GET_FLAGS, GET_PLAN_OPTIONS)
    if values is None:
        return None
    plan = GetPlan(**values)
    return None if usage_problem(plan) is not None else plan


def usage_problem(plan: GetPlan) -> str | None:
    """Why the plan's options cannot go together (a usage error), or None."""
    return format_problem(plan.fmt, plan.as_json, plan.fields)


class _Retained:
    """A retained message's record, as the printers take messages (``as_dict()``): get
    builds no SocketMessage, whose module (dataclasses, datetime) would cost start-up."""

    __slots__ = ("record",)

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def as_dict(self) -> dict[str, Any]:
        return self.record


def run_get(plan: GetPlan) -> None:
    """Print the hub's retained message as the plan says; raise a CliError (with its exit
    status) when that fails: NothingRetainedError (66) when the hub holds none of that type."""
    settings = plan_settings(plan)
    sock_cfg = settings["socket"]
    types = None
    if plan.message_type is not None:
        check_message_type(plan.message_type, sock_cfg.get("message_types"))
        from sockcli.kinds import MessageType

        types = frozenset({MessageType.parse(plan.message_type)})
    with _stdout_guard():  # stdout closed or full: 74 before connecting
        printer = make_printer(plan.fmt, plan.as_json, plan.fields)
    socket_dir = str(sock_cfg["socket_dir"])
    event = plan.event
    wait = plan.wait
    if event is None and plan.connect is None:
        started = time.monotonic()
        event = pick_event(socket_dir, wait)  # --wait for a hub to appear, then the only one
        wait = max(0.0, wait - (time.monotonic() - started))
    timeout = plan.timeout if plan.timeout is not None else float(sock_cfg["default_timeout"])
    sender = open_sender(plan, event, wait, socket_dir, sock_cfg, settings.get("tcp", {}),
                         peek=True, types=types)
    try:
        records = sender.retained(timeout)
    except SocketError as exc:
        raise from_library(exc) from None
    finally:
        sender.close()
    if not records:
        of = f" of type {plan.message_type!r}" if plan.message_type else ""
        raise NothingRetainedError(
            f"hub {sender.event_name!r} holds no retained message{of}: none was sent since it "
            "started, it was cleared (send --clear), or the hub runs with --no-retain")
    with _stdout_guard():
        printer.print_many([_Retained(records[-1])])  # the newest: they come oldest first


@contextlib.contextmanager
def _stdout_guard() -> Iterator[None]:
    """A failed write to stdout (``>/dev/full``) is OutputError (74), not an internal error;
    a broken pipe stays one (its reader left: :func:`sockcli.cli.main` exits 0). Click's
    commands have this from sockcli.cli's guarded stdout; the fast path has it here."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError.failed(exc) from None

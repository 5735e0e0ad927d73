"""What ``sockcli listen`` does, without click: scripts run ``sockcli listen E --count 1`` to
wait for one event, so its start-up counts as send's does (docs/PERFORMANCE.md).

Its options are declared here once, as tables of :mod:`sockcli.cli.sendopts` entries (the
output options shared with ``get`` come from :mod:`sockcli.cli.formatopts`).
:func:`parse_fast_listen` reads the ordinary command lines with them, one EVENT or none and
every option but the :data:`CLICK_ONLY` ones, and returns None for anything else (help,
several events or a pattern, --where, --exec, --idle, an unknown or malformed option), which
click parses with the same tables (:mod:`sockcli.cli.listen`) into the same
:class:`ListenPlan`. Either way :func:`run_listen` does the work: one hub through a
:class:`~sockcli.cli.subscriber.Subscriber`, several through the library's merged receiver.
Messages are printed by the printer's ``print_many`` (:mod:`sockcli.cli.render`), called
from :meth:`_Printing.many`, or handed to ``--where``/``--exec``'s sink
(:mod:`sockcli.cli.actions`).
"""

from __future__ import annotations

import math
import os
import select
import stat
import sys
import time

from sockcli.cli.errors import ConfigError, NoHubError, TimedOutError, from_library, say
from sockcli.cli.fastparse import Plan, by_flag, parse_fast
from sockcli.cli.formatopts import (
    ALT_OPTION,
    CLASS_OPTION,
    TEMPLATE_OPTION,
    TEXT_OPTION,
    TOOLTIP_OPTION,
    fields_of,
    format_problem,
    make_printer,
)
from sockcli.cli.render import FORMATS, is_terminal
from sockcli.cli.sendcore import check_message_type, pick_event, plan_security, plan_settings
from sockcli.cli.sendopts import (
    CHOICE,
    CLIENT_OPTIONS,
    FLAG,
    GLOBAL_OPTIONS,
    INT,
    MESSAGE_TYPE,
    SECONDS,
    TEMPLATE,
    TEXT,
    WAIT_OPTION,
    WHERE,
    Option,
)
from sockcli.cli.subscriber import DEBUG, ERROR, INFO, WARNING, Subscriber
from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    SocketError,
    TimeoutError,
)
from sockcli.kinds import register_message_types

TYPE_CHECKING = False  # on listen's start-up path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sockcli.cli.render import BarPrinter, Fields, MessagePrinter
    from sockcli.cli.templates import Template
    from sockcli.where import Where

__all__ = ["CLICK_ONLY", "LISTEN_OPTIONS", "LISTEN_PLAN_OPTIONS", "ListenPlan",
           "parse_fast_listen", "run_listen", "usage_problem"]

# -- the options ------------------------------------------------------------------------------

_IDLE = Option("--idle", dest="idle", kind=SECONDS, low=0, low_open=True, metavar="SECONDS",
               help="When no message has come for SECONDS after one, print the idle output "
                    "once: empty text (waybar, i3bar), an empty line, or --idle-text.")
_IDLE_TEXT = Option("--idle-text", dest="idle_t", kind=TEMPLATE, metavar="TEMPLATE",
                    help="With --idle: the idle text, rendered against the last message.")
_WHERE = Option(
    "--where", dest="where", kind=WHERE, multiple=True, default=(), metavar="EXPR",
    help="Only messages for which EXPR holds (repeatable: all must): paths compared with JSON "
         "values, == != < <= > >=, ~ \"regex\", exists PATH, not, and, or, ( ): "
         "'data.progress >= 50 and data.step == \"palette\"'.")
_EXEC = Option(
    "--exec", dest="exec_cmd", kind=TEXT, metavar="CMD",
    help="Run CMD (sh -c) for each message instead of printing it: the message's JSON line on "
         "its stdin, SOCKCLI_EVENT, SOCKCLI_TYPE, SOCKCLI_TIMESTAMP_MS, SOCKCLI_TIMESTAMP_ISO "
         "and SOCKCLI_DATA in its environment, its stdout listen's.")
_JOBS = Option("--jobs", dest="jobs", kind=INT, low=1, metavar="N",
               help="With --exec: up to N commands at once, started in message order "
                    "[default: 1, one after the other].")
_EXEC_FAIL = Option(
    "--exec-fail", dest="exec_fail", kind=CHOICE, choices=("continue", "exit"),
    help="With --exec, when CMD fails: report it on stderr and go on (continue, the default) "
         "or stop listen with exit 1 (exit).")

#: ``listen``'s own options, in the order help shows them.
LISTEN_OPTIONS = (
    Option("-t", "--type", dest="types", kind=MESSAGE_TYPE, multiple=True, default=(),
           metavar="TYPE",
           help="Only messages of this type (repeatable: data, error, control, or one the "
                "message_types setting adds); filtered by the hub."),
    Option("-n", "--count", dest="count", kind=INT, low=1, metavar="N",
           help="Exit 0 after N messages."),
    Option("--timeout", dest="timeout", kind=SECONDS, low=0, metavar="SECONDS",
           help="Stop after SECONDS: exit 124 if --count was not reached, else 0."),
    Option("--name", dest="name", kind=TEXT, metavar="NAME",
           help="Name this listener, for 'send --to NAME'."),
    Option("--last", dest="last", kind=FLAG, default=False,
           help="First the hub's last message of each type listened to (retained; marked "
                "\"retained\": true in JSON), then the live ones."),
    Option("--slow", dest="slow", kind=CHOICE, choices=("wait", "latest", "drop"),
           default="wait", show_default=True,
           help="While this listener is behind: hold the publishers back (wait), keep only the "
                "latest message of each type (latest, for status bars), or be dropped (drop)."),
    Option("--no-reconnect", dest="no_reconnect", kind=FLAG, default=False,
           help="Exit 69 when no hub is running or it goes away, instead of waiting for it."),
    WAIT_OPTION.with_help("With --no-reconnect: how long to wait for the hub."),
    Option("--json", dest="as_json", kind=FLAG, default=False,
           help="Machine-readable output even on a terminal."),
    Option("--format", dest="fmt", kind=CHOICE, choices=FORMATS,
           help="Output format: json (the default into a pipe, and with --json), text, polybar "
                "(one plain line each), waybar (its custom module's JSON), i3bar (one i3bar "
                "block per line, for an i3blocks persistent block). Default on a terminal: a "
                "rich view."),
    TEXT_OPTION, TOOLTIP_OPTION, CLASS_OPTION, ALT_OPTION, TEMPLATE_OPTION,
    _IDLE, _IDLE_TEXT, _WHERE, _EXEC, _JOBS, _EXEC_FAIL,
)
#: The options only click parses: their lines are rare, and what they need (sockcli.where,
#: the --exec runner, the idle timer of actions' sink) would cost every listen its start-up.
CLICK_ONLY = (_IDLE, _IDLE_TEXT, _WHERE, _EXEC, _JOBS, _EXEC_FAIL)
#: Every entry a ListenPlan has an attribute for, by its dest (besides its events).
LISTEN_PLAN_OPTIONS = GLOBAL_OPTIONS + LISTEN_OPTIONS + CLIENT_OPTIONS

_FAST_FLAGS = by_flag([o for o in LISTEN_OPTIONS + CLIENT_OPTIONS if o not in CLICK_ONLY])


class ListenPlan(Plan):
    """Everything ``sockcli listen`` was asked to do: the one EVENT to follow (``event``; else
    None: the only hub, or the one at --connect), or ``events`` when they select several hubs
    or include patterns, and one attribute for each entry of :data:`LISTEN_PLAN_OPTIONS`.
    Both parsers make one; :func:`run_listen` carries it out."""

    __slots__ = ("event", "events", *(option.dest for option in LISTEN_PLAN_OPTIONS))
    OPTIONS = LISTEN_PLAN_OPTIONS

    event: str | None
    events: tuple[str, ...]  # () unless several hubs are followed
    verbose: int
    quiet: bool
    debug: bool
    config_file: str | None
    socket_dir: str | None
    types: tuple[str, ...]
    count: int | None
    timeout: float | None
    name: str | None
    last: bool
    slow: str
    no_reconnect: bool
    wait: float
    as_json: bool
    fmt: str | None
    text_t: Template | None
    tooltip_t: Template | None
    class_t: Template | None
    alt_t: Template | None
    template_t: Template | None
    idle: float | None
    idle_t: Template | None
    where: tuple[Where, ...]
    exec_cmd: str | None
    jobs: int | None
    exec_fail: str | None
    connect: tuple[str, int] | None
    token_file: str | None
    tls_ca: str | None

    def __init__(self, *, event: str | None = None, events: tuple[str, ...] = (),
                 **values: Any) -> None:
        super().__init__(event=event, **values)
        _set = setattr  # a slot of this class, which mypy cannot see among them
        _set(self, "events", events)

    @property
    def fields(self) -> Fields:
        """The templates of the plan, for the printer."""
        return fields_of(text=self.text_t, tooltip=self.tooltip_t, css_class=self.class_t,
                         alt=self.alt_t, template=self.template_t, idle_text=self.idle_t)


def parse_fast_listen(argv: list[str]) -> ListenPlan | None:
    """A ListenPlan for a well-formed ``[global options] listen [EVENT] ...`` line of the
    options the fast path takes, else None: then click parses it. ``--connect`` without an
    EVENT goes to click too (the hub is asked which event it serves)."""
    values = parse_fast(argv, "listen", _FAST_FLAGS, LISTEN_PLAN_OPTIONS)
    if values is None or (values["event"] is None and values.get("connect") is not None):
        return None
    plan = ListenPlan(**values)
    return None if usage_problem(plan) is not None else plan


def usage_problem(plan: ListenPlan) -> str | None:
    """Why the plan's output options cannot go together (a usage error), or None. With
    --exec, --jobs or --exec-fail, :func:`sockcli.cli.actions.make_sink` says what is wrong
    (it refuses the output options with --exec)."""
    if plan.exec_cmd is not None or plan.jobs is not None or plan.exec_fail is not None:
        return None
    return format_problem(plan.fmt, plan.as_json, plan.fields, idle=plan.idle)


# -- the work ---------------------------------------------------------------------------------

_PIPE_CHECK_SECONDS = 0.5
_BATCH = 1024


def run_listen(plan: ListenPlan, state: Any = None) -> None:
    """Print (or hand to --where and --exec) the messages of the plan's hub or hubs until
    --count or --timeout; raise a CliError with its exit status when that fails.
    ``state`` is click's CliState, if any: several hubs, and the hub at --connect without
    EVENT, are reached through the library's clients, which read it."""
    settings = plan_settings(plan)
    configured = settings["socket"].get("message_types")
    register_message_types(configured)
    for name in plan.types:  # a type the settings do not know: click says so (exit 2)
        check_message_type(name, configured)
    deadline = time.monotonic() + plan.timeout if plan.timeout is not None else math.inf
    received = 0

    def finish() -> None:
        if plan.count is not None and received < plan.count:
            raise TimedOutError(f"{received} of {plan.count} messages arrived within "
                                f"{plan.timeout} s")

    many = bool(plan.events)
    try:
        event_name = "" if many else _event_to_follow(plan, state, settings, deadline)
    except NoHubError:
        if plan.no_reconnect or plan.connect is not None:
            raise
        return finish()  # --timeout ran out before a hub came, as for a named hub
    if many:
        state = state if state is not None else _click_state(plan)
        from sockcli.cli.follow import open_receiver

        client: Any = open_receiver(state, plan.events, no_reconnect=plan.no_reconnect,
                                    types=plan.types or None, name=plan.name, slow=plan.slow,
                                    last=plan.last)
    else:
        client = _subscriber(plan, event_name, settings)
    sink = _sink(plan)
    idle_at = math.inf  # when --idle output is due: only after a message

    try:
        if many:
            from sockcli.cli.follow import start_receiver

            start_receiver(state, client, no_reconnect=plan.no_reconnect,
                           patience=min(plan.wait, _left(deadline)),
                           say_waiting=lambda what: _say_waiting(plan, what))
        elif not _connect(plan, client, settings, deadline):
            return finish()  # we waited for the hub until the --timeout deadline
        reader_gone = _reader_watch()
        while plan.count is None or received < plan.count:
            left = _left(deadline)
            if reader_gone is not None:  # look at the pipe twice a second even when idle
                left = min(left, _PIPE_CHECK_SECONDS)
            left = min(left, max(0.0, idle_at - time.monotonic()), sink.wake_in())
            try:
                # All that has arrived, up to what --count still wants: printed together,
                # flushed once (each message is still on stdout as soon as it came in).
                batch = client.receive_many(
                    _BATCH if plan.count is None else plan.count - received,
                    timeout=None if math.isinf(left) else left)
            except TimeoutError:
                try:
                    if time.monotonic() >= idle_at:  # --idle: once, until the next message
                        idle_at = math.inf
                        sink.idle()
                    sink.tick()  # --exec: the commands that ended
                except BrokenPipeError:
                    _silence_stdout()
                    return None
                if reader_gone is not None and reader_gone():
                    _silence_stdout()
                    return None
                if _left(deadline) > 0:
                    continue
                return finish()
            except ConnectionError as exc:
                if many:  # its text names the hub; a refusal keeps its own exit status
                    raise
                raise NoHubError(f"lost the hub of {event_name!r}") from exc
            try:
                kept = sink.many(batch)  # those --where keeps: printed, or --exec run
            except BrokenPipeError:
                _silence_stdout()
                return None
            received += kept
            if plan.idle is not None and kept:
                idle_at = time.monotonic() + plan.idle
        sink.finish()  # --count reached: --exec waits for the commands still running
        return None
    except SocketError as exc:
        raise from_library(exc) from None
    finally:
        try:
            sink.close()  # --exec: the commands still running are stopped
        finally:
            client.disconnect()


def _click_state(plan: ListenPlan) -> Any:
    """A CliState of the plan's global and security options, for the library's clients."""
    from sockcli.cli.state import CliState

    return CliState(config_file=plan.config_file, socket_dir=plan.socket_dir,
                    verbose=plan.verbose, quiet=plan.quiet, debug=plan.debug,
                    token_file=plan.token_file, tls_ca=plan.tls_ca)


def _subscriber(plan: ListenPlan, event_name: str, settings: dict[str, Any]) -> Subscriber:
    """The subscriber of the plan's one hub; a bad token or CA file is exit 78."""
    sock_cfg, tcp = settings["socket"], settings.get("tcp", {})
    token, tls_ca = plan_security(plan, tcp)
    tls_context = None
    if tls_ca is not None:
        from sockcli.tls import client_context

        try:
            tls_context = client_context(tls_ca)
        except SocketError as exc:
            raise ConfigError(str(exc)) from None
    return Subscriber(event_name, socket_dir=str(sock_cfg["socket_dir"]), connect=plan.connect,
                      types=plan.types, name=plan.name, slow=plan.slow, last=plan.last,
                      auto_reconnect=not plan.no_reconnect,
                      max_frame_size=int(sock_cfg["buffer_size"]),
                      timeout=float(sock_cfg["default_timeout"]),
                      reconnect_max_delay=float(sock_cfg["reconnect_max_delay"]),
                      token=token, tls_context=tls_context, log=_logger(plan))


def _sink(plan: ListenPlan) -> Any:
    """What receives the messages: the printer of the output options, or (--where, --exec,
    --idle: click's lines only) the sink of :mod:`sockcli.cli.actions`."""
    def printer() -> MessagePrinter | BarPrinter:
        return make_printer(plan.fmt, plan.as_json, plan.fields, rich=is_terminal())

    if not (plan.where or plan.idle is not None or plan.exec_cmd is not None or
            plan.jobs is not None or plan.exec_fail is not None):
        return _Printing(printer())
    from sockcli.cli.actions import make_sink

    outputs = {"--json": plan.as_json, "--format": plan.fmt, "--text": plan.text_t,
               "--tooltip": plan.tooltip_t, "--class": plan.class_t, "--alt": plan.alt_t,
               "--template": plan.template_t, "--idle": plan.idle, "--idle-text": plan.idle_t}
    return make_sink(where=plan.where, command=plan.exec_cmd, jobs=plan.jobs,
                     exec_fail=plan.exec_fail, outputs=outputs, printer=printer)


class _Printing:
    """The sink of a plain listen (no --where, --exec or --idle): every message printed."""

    def __init__(self, printer: MessagePrinter | BarPrinter) -> None:
        self.printer = printer

    def many(self, batch: list[Any]) -> int:
        self.printer.print_many(batch)  # the printing of listen's messages
        return len(batch)

    def idle(self) -> None:
        """Never called: no --idle."""

    def tick(self) -> None:
        """Nothing to look after between messages."""

    def wake_in(self) -> float:
        return math.inf

    def finish(self) -> None:
        """Everything was printed as it came."""

    def close(self) -> None:
        """Nothing to release."""


def _logger(plan: ListenPlan) -> Callable[..., None]:
    """What the subscriber says, as the library's client logs it under click's CliState
    (``sockcli: INFO: ...``, at the level of -v, -q and --debug); logging is imported and
    set up only for a line that is shown."""
    shown = ERROR if plan.quiet else DEBUG if plan.verbose >= 2 or plan.debug else \
        INFO if plan.verbose == 1 else WARNING

    def log(level: int, text: str, *args: Any) -> None:
        if level < shown:
            return
        import logging

        logging.basicConfig(level=shown, stream=sys.stderr,
                            format="sockcli: %(levelname)s: %(message)s")
        logging.getLogger("sockcli.client").log(level, text, *args)

    return log


def _info(plan: ListenPlan, text: str) -> None:
    """A progress note on stderr, unless --quiet."""
    if not plan.quiet:
        say(f"sockcli: {text}\n")


def _connect(plan: ListenPlan, client: Subscriber, settings: dict[str, Any],
             deadline: float) -> bool:
    """Connect the client of one hub, waiting for it (until the --timeout deadline: False
    when it ran out; --wait with --no-reconnect, then NoHubError)."""
    event_name = client.event_name
    if plan.verbose and not plan.no_reconnect:
        _info(plan, f"waiting for messages of {event_name!r}")
    if not plan.no_reconnect and plan.connect is None and is_terminal(sys.stderr) and \
            _hub_absent(str(settings["socket"]["socket_dir"]), event_name):
        _say_waiting(plan, f"the hub of {event_name!r}")  # said on a terminal only
    try:
        client.connect(timeout=min(plan.wait, _left(deadline)) if plan.no_reconnect
                       else _left(deadline))
    except (MaxConnectionsError, AuthenticationError):  # waiting longer will not help
        raise
    except ConnectionError as exc:
        if not plan.no_reconnect:  # we waited for the hub until the --timeout deadline
            return False
        raise NoHubError(f"no hub is running for event {event_name!r}: start one with "
                         f"'sockcli serve {event_name}'") from exc
    if plan.verbose:
        _info(plan, f"listening to {event_name!r} on {client.address}")
    return True


def _event_to_follow(plan: ListenPlan, state: Any, settings: dict[str, Any],
                     deadline: float) -> str:
    """EVENT (else $SOCKCLI_EVENT: both in the plan), else the hub's at --connect, else the
    only local hub, waited for as a named hub is (until the --timeout deadline, forever
    without one; --wait with --no-reconnect). Once picked, the event is followed by name,
    across the hub's restarts."""
    if plan.event is not None:
        return plan.event
    if plan.connect is not None:  # the hub says which event it serves (click's lines only)
        state = state if state is not None else _click_state(plan)
        name: str = state.resolve_event(None, plan.connect)
        return name
    patience = min(plan.wait, _left(deadline)) if plan.no_reconnect else _left(deadline)
    try:
        return pick_event(str(settings["socket"]["socket_dir"]), patience,
                          lambda: _say_waiting(plan, "a hub", verbose_too=True))
    except SocketError as exc:
        raise ConfigError(str(exc)) from None


def _say_waiting(plan: ListenPlan, what: str, *, verbose_too: bool = False) -> None:
    """Say, once, that listen waits for ``what`` ("a hub", "the hub of 'ev'") to start: on a
    terminal (stderr), and with ``verbose_too`` under -v as well (the wait for a hub to pick
    has no other -v line). The one wording of it, for every kind of wait."""
    if is_terminal(sys.stderr) or (verbose_too and plan.verbose):
        _info(plan, f"waiting for {what} to start")


def _hub_absent(socket_dir: str, event_name: str) -> bool:
    """No live record of a local hub for ``event_name``, nor the socket of one that systemd
    starts on the first connection: connecting will wait for one (a hub that is starting may
    be a few milliseconds from writing its record)."""
    from sockcli.runtime import check_socket_dir, read_record, socket_exists

    check_socket_dir(socket_dir)
    return read_record(socket_dir, event_name) is None and not socket_exists(socket_dir,
                                                                            event_name)


def _reader_watch() -> Callable[[], bool] | None:
    """For stdout on a pipe or socket: a check that its reader has gone (``| head -1``), so
    an idle listener exits then instead of at its next message."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    poller = select.poll()
    poller.register(fd, 0)  # no events asked: poll still reports POLLERR and POLLHUP

    def gone() -> bool:
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))

    return gone


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _silence_stdout() -> None:
    """The reader went away (``| head -1``): exit quietly, without a flush error at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

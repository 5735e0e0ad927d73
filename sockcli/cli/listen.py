"""``sockcli listen``: print a hub's messages as they come, one per line."""

from __future__ import annotations

import math
import os
import select
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from sockcli.cli.actions import WhereParam, make_sink
from sockcli.cli.errors import NoHubError, TimedOutError, from_library
from sockcli.cli.follow import follows_many, open_receiver, start_receiver
from sockcli.cli.options import (
    MessageTypeChoice,
    click_option,
    client_security_options,
    connect_option,
    events_argument,
    json_option,
)
from sockcli.cli.render import FORMATS, BarPrinter, Fields, MessagePrinter, is_terminal
from sockcli.cli.sendopts import WAIT_OPTION
from sockcli.cli.state import CliState
from sockcli.cli.templates import TemplateParam
from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    SocketError,
    TimeoutError,
)
from sockcli.where import Where

__all__ = ["listen"]


@click.command()
@events_argument
@click.option("-t", "--type", "types", type=MessageTypeChoice(), multiple=True, metavar="TYPE",
              help="Only messages of this type (repeatable: data, error, control, or one the "
                   "message_types setting adds); filtered by the hub.")
@click.option("-n", "--count", type=click.IntRange(min=1), metavar="N",
              help="Exit 0 after N messages.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop after SECONDS: exit 124 if --count was not reached, else 0.")
@click.option("--name", metavar="NAME", help="Name this listener, for 'send --to NAME'.")
@click.option("--last", is_flag=True,
              help="First the hub's last message of each type listened to (retained; marked "
                   "\"retained\": true in JSON), then the live ones.")
@click.option("--slow", type=click.Choice(["wait", "latest", "drop"]), default="wait",
              show_default=True,
              help="While this listener is behind: hold the publishers back (wait), keep only "
                   "the latest message of each type (latest, for status bars), or be dropped "
                   "(drop).")
@click.option("--no-reconnect", is_flag=True,
              help="Exit 69 when no hub is running or it goes away, instead of waiting for it.")
@click_option(WAIT_OPTION, help="With --no-reconnect: how long to wait for the hub.")
@json_option
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Output format: json (the default into a pipe, and with --json), text, "
                   "polybar (one plain line each), waybar (its custom module's JSON), i3bar "
                   "(one i3bar block per line, for an i3blocks persistent block). Default on a "
                   "terminal: a rich view.")
@click.option("--text", "text_t", type=TemplateParam(), metavar="TEMPLATE",
              help="The text of text, polybar, waybar and i3bar output: {data.text} paths, "
                   "{path:spec}, {path|fallback}, {{ and }} for braces.")
@click.option("--tooltip", "tooltip_t", type=TemplateParam(), metavar="TEMPLATE",
              help="waybar: the tooltip.")
@click.option("--class", "class_t", type=TemplateParam(), metavar="TEMPLATE",
              help="waybar: the CSS class.")
@click.option("--alt", "alt_t", type=TemplateParam(), metavar="TEMPLATE",
              help="waybar: the alt field.")
@click.option("--template", "template_t", type=TemplateParam(), metavar="TEMPLATE",
              help="One line per message from TEMPLATE alone, in any format.")
@click.option("--idle", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="When no message has come for SECONDS after one, print the idle output "
                   "once: empty text (waybar, i3bar), an empty line, or --idle-text.")
@click.option("--idle-text", "idle_t", type=TemplateParam(), metavar="TEMPLATE",
              help="With --idle: the idle text, rendered against the last message.")
@click.option("--where", "where", type=WhereParam(), multiple=True, metavar="EXPR",
              help="Only messages for which EXPR holds (repeatable: all must): paths compared "
                   "with JSON values, == != < <= > >=, ~ \"regex\", exists PATH, not, and, "
                   "or, ( ): 'data.progress >= 50 and data.step == \"palette\"'.")
@click.option("--exec", "exec_cmd", metavar="CMD",
              help="Run CMD (sh -c) for each message instead of printing it: the message's "
                   "JSON line on its stdin, SOCKCLI_EVENT, SOCKCLI_TYPE, SOCKCLI_TIMESTAMP_MS, "
                   "SOCKCLI_TIMESTAMP_ISO and SOCKCLI_DATA in its environment, its stdout "
                   "listen's.")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="With --exec: up to N commands at once, started in message order "
                   "[default: 1, one after the other].")
@click.option("--exec-fail", type=click.Choice(["continue", "exit"]),
              help="With --exec, when CMD fails: report it on stderr and go on (continue, the "
                   "default) or stop listen with exit 1 (exit).")
@connect_option
@client_security_options
@click.pass_obj
def listen(state: CliState, /, events: tuple[str, ...], types: tuple[str, ...], count: int | None,
           timeout: float | None, name: str | None, last: bool, slow: str, no_reconnect: bool,
           wait: float, as_json: bool, connect: tuple[str, int] | None,
           where: tuple[Where, ...], exec_cmd: str | None, jobs: int | None,
           exec_fail: str | None, **formats: Any) -> None:
    """Print the messages of EVENT's hub, one JSON line each (rich text on a terminal).

    Waits for a hub that is not running yet and survives its restarts, unless --no-reconnect.
    Several EVENTs, or glob PATTERNs ('wallpaper_*'), follow every local hub they select, those
    that start later included. Never reads stdin.
    """
    deadline = time.monotonic() + timeout if timeout is not None else math.inf
    received = 0

    def finish() -> None:
        if count is not None and received < count:
            raise TimedOutError(f"{received} of {count} messages arrived within {timeout} s")

    many = follows_many(events, connect)  # several events or a pattern: sockcli.cli.follow
    try:
        event_name = "" if many else _event_to_follow(state, events[0] if events else None,
                                                      connect, no_reconnect, wait, deadline)
    except NoHubError:
        if no_reconnect or connect is not None:
            raise
        return finish()  # --timeout ran out before a hub came, as for a named hub
    if many:
        client: Any = open_receiver(state, events, no_reconnect=no_reconnect,
                                    types=types or None, name=name, slow=slow, last=last)
    else:
        client = state.client(event_name, connect, subscribe=True, types=types or None,
                              name=name, auto_reconnect=not no_reconnect, slow=slow, last=last)
    sink = make_sink(where=where, command=exec_cmd, jobs=jobs, exec_fail=exec_fail,
                     outputs=_output_options(as_json, formats),
                     printer=lambda: _printer(as_json, formats))  # sockcli.cli.actions
    idle: float | None = formats["idle"]
    idle_at = math.inf  # when --idle output is due: only after a message

    try:
        if many:
            start_receiver(state, client, no_reconnect=no_reconnect,
                           patience=min(wait, _left(deadline)),
                           say_waiting=lambda what: _say_waiting(state, what))
        elif not _connect(state, client, event_name, connect, no_reconnect, wait, deadline):
            return finish()  # we waited for the hub until the --timeout deadline
        reader_gone = _reader_watch()
        while count is None or received < count:
            left = _left(deadline)
            if reader_gone is not None:  # look at the pipe twice a second even when idle
                left = min(left, _PIPE_CHECK_SECONDS)
            left = min(left, max(0.0, idle_at - time.monotonic()), sink.wake_in())
            try:
                # All that has arrived, up to what --count still wants: printed together,
                # flushed once (each message is still on stdout as soon as it came in).
                batch = client.receive_many(_BATCH if count is None else count - received,
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
            if idle is not None and kept:
                idle_at = time.monotonic() + idle
        sink.finish()  # --count reached: --exec waits for the commands still running
        return None
    except SocketError as exc:
        raise from_library(exc) from None
    finally:
        try:
            sink.close()  # --exec: the commands still running are stopped
        finally:
            client.disconnect()


_PIPE_CHECK_SECONDS = 0.5
_BATCH = 1024


def _connect(state: CliState, client: Any, event_name: str, connect: tuple[str, int] | None,
             no_reconnect: bool, wait: float, deadline: float) -> bool:
    """Connect the client of one hub, waiting for it (until the --timeout deadline: False
    when it ran out; --wait with --no-reconnect, then NoHubError)."""
    if state.verbose and not no_reconnect:
        state.info(f"waiting for messages of {event_name!r}")
    if not no_reconnect and connect is None and _hub_absent(state, event_name):
        _say_waiting(state, f"the hub of {event_name!r}")
    try:
        client.connect(timeout=min(wait, _left(deadline)) if no_reconnect
                       else _left(deadline))
    except (MaxConnectionsError, AuthenticationError):  # waiting longer will not help
        raise
    except ConnectionError as exc:
        if not no_reconnect:  # we waited for the hub until the --timeout deadline
            return False
        raise NoHubError(f"no hub is running for event {event_name!r}: start one with "
                         f"'sockcli serve {event_name}'") from exc
    if state.verbose:
        state.info(f"listening to {event_name!r} on {client.address}")
    return True


def _event_to_follow(state: CliState, event: str | None, connect: tuple[str, int] | None,
                     no_reconnect: bool, wait: float, deadline: float) -> str:
    """EVENT, else $SOCKCLI_EVENT, else the only local hub, waited for as a named hub is
    (until the --timeout deadline, forever without one; --wait with --no-reconnect). Once
    picked, the event is followed by name, across the hub's restarts."""
    patience = min(wait, _left(deadline)) if no_reconnect else _left(deadline)
    return state.resolve_event(event, connect, wait=patience,
                               on_wait=lambda: _say_waiting(state, "a hub", verbose_too=True))


def _say_waiting(state: CliState, what: str, *, verbose_too: bool = False) -> None:
    """Say, once, that listen waits for ``what`` ("a hub", "the hub of 'ev'") to start: on a
    terminal (stderr), and with ``verbose_too`` under -v as well (the wait for a hub to pick
    has no other -v line). The one wording of it, for every kind of wait."""
    if is_terminal(sys.stderr) or (verbose_too and state.verbose):
        state.info(f"waiting for {what} to start")


def _hub_absent(state: CliState, event_name: str) -> bool:
    """No live record of a local hub for ``event_name``, nor the socket of one that systemd
    starts on the first connection: connecting will wait for one (a hub that is starting may
    be a few milliseconds from writing its record)."""
    from sockcli.client.discovery import find_hub
    from sockcli.runtime import socket_exists

    socket_dir = state.settings().socket.socket_dir
    return find_hub(socket_dir, event_name) is None and not socket_exists(socket_dir,
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



def _output_options(as_json: bool, formats: dict[str, Any]) -> dict[str, Any]:
    """The output options as given (None or False when not), by name, for --exec to refuse."""
    return {"--json": as_json, "--format": formats["fmt"], "--text": formats["text_t"],
            "--tooltip": formats["tooltip_t"], "--class": formats["class_t"],
            "--alt": formats["alt_t"], "--template": formats["template_t"],
            "--idle": formats["idle"], "--idle-text": formats["idle_t"]}


def _printer(as_json: bool, formats: dict[str, Any]) -> MessagePrinter | BarPrinter:
    """The printer of --json/--format and the templates; usage errors for options that the
    chosen format has no use for."""
    fmt: str | None = formats["fmt"]
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json is --format json: it cannot go with --format {fmt}")
    if as_json:
        fmt = "json"
    fields = Fields(text=formats["text_t"], tooltip=formats["tooltip_t"],
                    css_class=formats["class_t"], alt=formats["alt_t"],
                    template=formats["template_t"], idle_text=formats["idle_t"])
    bar = fmt not in (None, "json") or fields.template is not None
    if fields.idle_text is not None and formats["idle"] is None:
        raise click.UsageError("--idle-text is the output of --idle: give --idle SECONDS too")
    if not bar:
        for option, given in (("--text", fields.text), ("--tooltip", fields.tooltip),
                              ("--class", fields.css_class), ("--alt", fields.alt),
                              ("--idle", formats["idle"])):
            if given is not None:
                raise click.UsageError(f"{option} needs --format text, polybar, waybar or "
                                       f"i3bar, or --template")
        return MessagePrinter(rich=fmt is None and is_terminal())
    if fmt != "waybar" and fields.template is None:
        for option, given in (("--tooltip", fields.tooltip), ("--class", fields.css_class),
                              ("--alt", fields.alt)):
            if given is not None:
                raise click.UsageError(f"{option} is a field of --format waybar only")
    return BarPrinter(fmt or "text", fields)

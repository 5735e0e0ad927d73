"""``sockcli listen`` of several events or of glob patterns: which hubs, and what it says.

One plain EVENT (or none) keeps listen's own path: one client that waits for its hub and
reconnects. Several, or any pattern, go through a
:class:`~sockcli.client.merged.MergedReceiver`, which follows each selected local hub, those
that start later included; docs/LISTEN.md ("Several events") gives the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from sockcli.cli.errors import NoHubError
from sockcli.cli.state import CliState
from sockcli.client.selection import EventSelection, is_pattern
from sockcli.exceptions import ValidationError

if TYPE_CHECKING:  # imported when used: one plain EVENT never needs it
    from sockcli.client.merged import MergedReceiver

__all__ = ["follows_many", "open_receiver", "start_receiver"]


def follows_many(events: tuple[str, ...], connect: tuple[str, int] | None) -> bool:
    """Whether ``events`` needs the merged receiver: two distinct events, or a pattern.
    A usage error with --connect, which reaches one hub."""
    many = len(set(events)) > 1 or any(is_pattern(e) for e in events)
    if many and connect is not None:
        raise click.UsageError("--connect reaches one hub: give it one EVENT (or none), not "
                               "several or a pattern")
    return many


def open_receiver(state: CliState, events: tuple[str, ...], *, no_reconnect: bool,
                  **client_options: Any) -> MergedReceiver:
    """The receiver of ``events`` (not started); ``client_options`` are those of each hub's
    client (types, name, slow, last). Bad names or patterns are usage errors (exit 2)."""
    try:
        selection = EventSelection.parse(events)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="'EVENT'") from None
    options = dict(subscribe=True, auto_reconnect=False, **client_options)
    # Made once here, so a bad token or CA file is exit 78 now, not in the watcher's thread.
    state.client(selection.names[0] if selection.names else "probe", **options)
    settings = state.settings()

    def make_client(event: str) -> Any:
        return state.client(event, **options)

    def followed(client: Any) -> None:
        if state.verbose:
            state.info(f"listening to {client.event_name!r} on {client.address}")

    def lost(event: str) -> None:
        if state.verbose and not no_reconnect:
            state.info(f"lost the hub of {event!r}; following it again when it is back")

    from sockcli.client.merged import MergedReceiver

    return MergedReceiver(settings.socket.socket_dir, selection, make_client,
                          buffer_size=settings.socket.receive_buffer_size,
                          lost_is_fatal=no_reconnect, on_follow=followed, on_lost=lost)


def start_receiver(state: CliState, receiver: MergedReceiver, *, no_reconnect: bool,
                   patience: float, say_waiting: Callable[[str], None]) -> None:
    """Follow the hubs that run, then watch for the others.

    With ``no_reconnect`` every named hub, and a hub for each pattern, must be there within
    ``patience`` seconds (NoHubError, 69, naming what is missing). Otherwise what is missing
    is waited for, said on a terminal (``say_waiting``), and under -v a last line says that
    the watch has begun: ``waiting for messages of ...``.
    """
    receiver.start()
    selection = receiver.selection
    if no_reconnect:
        missing = receiver.wait_for_all(patience)
        if missing:
            raise NoHubError(_missing_text(selection, missing))
        return
    for what in selection.missing(receiver.followed):
        say_waiting(f"the hub of {what!r}" if what in selection.names
                    else f"a hub matching {what!r}")
    if state.verbose:
        state.info(f"waiting for messages of {_listing(selection)}")


def _listing(selection: EventSelection) -> str:
    """``'a', 'b' and hubs matching 'w_*'``."""
    parts = [repr(n) for n in selection.names]
    parts += [f"hubs matching {p!r}" for p in selection.patterns]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _missing_text(selection: EventSelection, missing: list[str]) -> str:
    parts = [f"event {m!r}" if m in selection.names else f"any event matching {m!r}"
             for m in missing]
    if len(missing) == 1 and missing[0] in selection.names:
        start = f"start one with 'sockcli serve {missing[0]}'"
    else:
        start = "start them with 'sockcli serve EVENT'"
    return (f"no hub is running for {', nor for '.join(parts)}: {start}, or leave out "
            "--no-reconnect to wait for them")

"""Several local hubs as one stream of messages: ``sockcli listen EVENT1 EVENT2 'wallpaper_*'``.

A :class:`MergedReceiver` follows every local hub whose event is named or matches a glob
pattern (:class:`~sockcli.client.selection.EventSelection`), those that start later
included, and hands their messages over as one :class:`~sockcli.client.threaded.HubClient`
does: ``receive_many(limit, timeout)`` and ``disconnect()``. Each hub has its own HubClient,
unchanged, so the one-hub path costs nothing more; a small thread per hub moves that
client's batches into one shared, bounded :class:`~sockcli.client.inbox.Inbox` (a full
inbox stops the mover, then the client's reader: back-pressure still reaches every hub).
The messages of one hub keep their order; between hubs, the order is that of arrival.

Hubs are found by their records (:mod:`sockcli.runtime`), as ``sockcli list`` finds them. The
socket directory is looked at (one ``stat``) every :data:`RESCAN_SECONDS` and read again only
when it changed, so following a pattern costs nothing while no hub starts or stops. The
clients do not reconnect themselves: when a hub goes away its client is closed, and the hub is
followed again, as a new one, when its record is back (a restart, possibly on the other
transport).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sockcli.client.discovery import running_hubs
from sockcli.client.inbox import Inbox
from sockcli.client.selection import EventSelection
from sockcli.client.threaded import HubClient
from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    SocketError,
    TimeoutError,
)
from sockcli.rules import is_event_name
from sockcli.types import SocketMessage

__all__ = ["RESCAN_SECONDS", "MergedReceiver"]

#: How often the socket directory is looked at for hubs that started or stopped.
RESCAN_SECONDS = 0.25
#: After a change of the directory, it is read again at each look for this long: its mtime
#: has the kernel's coarse clock (a few ms), so two changes can leave the same mtime.
_SETTLE_SECONDS = 1.0
#: How long a hub whose record is there but that did not take the connection is left alone.
_RETRY_SECONDS = 1.0
#: How long one connection attempt may take (the watcher follows the others meanwhile).
_CONNECT_SECONDS = 1.0
_BATCH = 1024
_JOIN_SECONDS = 5.0


class _End:
    """Put into the shared inbox to end the stream: the receiver is closed, or it failed."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _is_end(item: object) -> bool:
    return isinstance(item, _End)


class _DirWatch:
    """Whether the socket directory may hold news: its inode, mtime and size, and the size and
    mtime of the records of hubs still starting (a hub writes its record into the file it
    created, which leaves the directory's mtime as it was)."""

    def __init__(self, socket_dir: Path) -> None:
        self._dir = socket_dir
        self._key: object = ()
        self._settle_until = 0.0
        #: Records of selected events that were there without a live hub at the last read.
        self.pending: frozenset[str] = frozenset()

    def changed(self) -> bool:
        key = (self._stat(self._dir), *(self._stat(self._dir / n) for n in sorted(self.pending)))
        now = time.monotonic()
        if key != self._key:
            self._key = key
            self._settle_until = now + _SETTLE_SECONDS
            return True
        return now < self._settle_until

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


class MergedReceiver:
    """The messages of every local hub ``selection`` picks, as one stream.

    ``make_client(event_name)`` makes the (not yet connected, subscribing, not reconnecting)
    client of one hub. ``on_follow(client)`` is called once a hub is followed, and
    ``on_lost(event_name)`` once it went away, from the receiver's threads. With
    ``lost_is_fatal`` the loss of a hub ends the stream instead (``receive_many`` raises
    ConnectionError), for ``listen --no-reconnect``.
    """

    def __init__(self, socket_dir: Path, selection: EventSelection,
                 make_client: Callable[[str], HubClient], *, buffer_size: int = 1024,
                 lost_is_fatal: bool = False,
                 on_follow: Callable[[HubClient], None] | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.selection = selection
        self._socket_dir = socket_dir
        self._make_client = make_client
        self._lost_is_fatal = lost_is_fatal
        self._on_follow = on_follow
        self._on_lost = on_lost
        self._inbox = Inbox(buffer_size)
        self._watch = _DirWatch(socket_dir)
        self._lock = threading.Lock()
        self._followed = threading.Condition(self._lock)  # notified when a hub is followed
        self._clients: dict[str, HubClient] = {}  # guarded by _lock, as the two below
        self._retry_at: dict[str, float] = {}
        self._again = False  # read the directory at the next look, changed or not
        self._movers: list[threading.Thread] = []
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    # -- what the listen loop uses ----------------------------------------------------------

    def start(self) -> None:
        """Follow the selected hubs that run now (in the caller's thread: a refusal raises
        here, MaxConnectionsError or AuthenticationError), then watch for new ones."""
        if self._watcher is not None:
            raise SocketError("this receiver is started already")
        self._watch.changed()  # the first look comes before the first read: nothing is missed
        self._scan()
        self._watcher = threading.Thread(target=self._watch_loop, name="sockcli-follow",
                                         daemon=True)
        self._watcher.start()

    @property
    def followed(self) -> list[str]:
        """The events of the hubs followed now, sorted."""
        with self._lock:
            return sorted(self._clients)

    def wait_for_all(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds until every name has its hub and every pattern
        matches one; return what is still missing (:meth:`EventSelection.missing`)."""
        deadline = time.monotonic() + timeout
        with self._followed:
            while True:
                missing = self.selection.missing(self._clients)
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self._followed.wait(left)

    def receive_many(self, limit: int = _BATCH, timeout: float | None = None,
                     ) -> list[SocketMessage]:
        """Every message waiting, from any hub, up to ``limit``; at least one, waiting up to
        ``timeout`` seconds (None: for ever). Raises TimeoutError when none came,
        ConnectionError once disconnected (or once a hub went away, with ``lost_is_fatal``),
        and what following a new hub raised (a refusal, an unsafe socket directory)."""
        items = self._inbox.get_many(max(1, limit), timeout, _is_end)
        if not items:
            raise TimeoutError(f"no message within {timeout} s")
        if isinstance(items[0], _End):
            raise items[0].error  # the marker stays: every later call is told too
        return items

    def disconnect(self) -> None:
        """Stop watching and close every client; what was received and not taken is lost."""
        self._stop.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(_JOIN_SECONDS)
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            movers = list(self._movers)
        for client in clients:
            client.disconnect()  # its mover sees the end of its stream and returns
        for mover in movers:
            if mover is not threading.current_thread():
                mover.join(_JOIN_SECONDS)
        self._inbox.put_marker(_End(ConnectionError("the receiver is disconnected")))

    # -- the watcher thread -----------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._stop.wait(RESCAN_SECONDS):
            try:
                if self._watch.changed() or self._look_again():
                    self._scan()
            except Exception as exc:  # a refusal, an unsafe directory: the stream ends with it
                self._inbox.put_marker(_End(exc))
                return

    def _look_again(self) -> bool:
        now = time.monotonic()
        with self._lock:
            again, self._again = self._again, False
            return again or any(at <= now for at in self._retry_at.values())

    def _scan(self) -> None:
        """Follow every selected hub that runs and is not followed yet, by event name."""
        records = running_hubs(self._socket_dir)  # UnsafePathError for an unsafe directory
        live = {r.event_name for r in records}
        try:
            names = os.listdir(self._socket_dir)
        except OSError:
            names = []
        self._watch.pending = frozenset(
            n for n in names if n.endswith(".hub") and n[:-4] not in live
            and is_event_name(n[:-4]) and self.selection.matches(n[:-4]))
        now = time.monotonic()
        with self._lock:
            self._retry_at = {e: at for e, at in self._retry_at.items() if at > now}
        for record in records:
            event = record.event_name
            if self._stop.is_set():
                return
            if not self.selection.matches(event):
                continue
            with self._lock:
                if event in self._clients or event in self._retry_at:
                    continue
            self._follow(event)

    def _follow(self, event: str) -> None:
        client = self._make_client(event)
        try:
            client.connect(timeout=_CONNECT_SECONDS)
        except (MaxConnectionsError, AuthenticationError):  # waiting will not help
            client.disconnect()
            raise
        except ConnectionError:  # it stopped meanwhile, or does not answer: look again later
            client.disconnect()
            with self._lock:
                self._retry_at[event] = time.monotonic() + _RETRY_SECONDS
            return
        mover = threading.Thread(target=self._move, args=(event, client), daemon=True,
                                 name=f"sockcli-follow-{event}")
        with self._lock:
            if self._stop.is_set():
                client.disconnect()
                return
            self._clients[event] = client
            self._movers = [m for m in self._movers if m.is_alive()]
            self._movers.append(mover)
            self._followed.notify_all()
        mover.start()
        if self._on_follow is not None:
            self._on_follow(client)

    # -- one mover thread per hub ---------------------------------------------------------

    def _move(self, event: str, client: HubClient) -> None:
        """Move ``client``'s messages into the shared inbox until its stream ends."""
        while True:
            try:
                batch = client.receive_many(_BATCH)
            except SocketError:  # its hub went away (no reconnection), or disconnect()
                break
            if not self._inbox.put_many(batch, self._stop.is_set):
                return
        if self._stop.is_set():
            return
        with self._lock:
            if self._clients.get(event) is client:
                del self._clients[event]
            self._again = True  # its record may be back already, in the same mtime tick
        client.disconnect()
        if self._on_lost is not None:
            self._on_lost(event)
        if self._lost_is_fatal:
            self._inbox.put_marker(_End(ConnectionError(f"lost the hub of {event!r}")))

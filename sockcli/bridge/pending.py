"""What the local hub sent that the broker has not acknowledged yet: the bridge's buffer.

Local delivery never waits for the broker: the tap appends each encoded message here, at
once, and a full queue drops its oldest message (counted, ``dropped``). One publisher thread
takes them in order, and hands at most :data:`WINDOW` at a time to paho (QoS 1, in flight
until the broker's PUBACK); paho keeps those and resends them after a reconnect. After a
reconnect nothing new is handed over until the resent ones are acknowledged, so that the
broker receives every message in the order the hub relayed them.

paho may report a PUBACK (in its network thread) before ``publish()`` has returned the
message id to the publisher thread: :meth:`Pending.sent` and :meth:`Pending.acked` meet in
either order. No paho here: its calls are made by :mod:`sockcli.bridge.mqtt`, never under
this lock (paho calls :meth:`acked` under its own).
"""

from __future__ import annotations

import threading
import time
from collections import deque

__all__ = ["WINDOW", "Outgoing", "Pending"]

#: Messages handed to paho and not acknowledged yet, at most.
WINDOW = 100


class Outgoing:
    """One message for the broker: its topic, its payload, whether it is to be retained."""

    __slots__ = ("payload", "retain", "topic")

    def __init__(self, topic: str, payload: bytes, retain: bool) -> None:
        self.topic = topic
        self.payload = payload
        self.retain = retain

    def __repr__(self) -> str:
        return f"Outgoing({self.topic!r}, {self.payload!r}, retain={self.retain})"


class Pending:
    """The queue (at most ``limit`` messages) and the ids of the publishes in flight.

    Thread-safe. Counts: :attr:`published` (acknowledged by the broker), :attr:`dropped`
    (pushed out of a full queue, or refused by the broker), :attr:`count` (waiting or in
    flight).
    """

    def __init__(self, limit: int, window: int = WINDOW) -> None:
        if limit < 1 or window < 1:
            raise ValueError("the queue and the window must hold at least one message")
        self.limit = limit
        self.window = window
        self._cond = threading.Condition()
        self._queue: deque[Outgoing] = deque()
        self._inflight: dict[int, bool] = {}  # paho mid -> whether it is a message (counted)
        self._early: dict[int, bool] = {}  # acknowledged before sent() knew the mid: ok?
        self._messages = 0  # of _inflight, the messages (not presence)
        self._reserved = 0  # taken by the publisher, publish() not returned yet
        self._connected = False
        self._draining = False  # reconnected: the resent messages come first
        self._closed = False
        self.published = 0
        self.dropped = 0
        self.refused = 0

    # -- the tap's side --------------------------------------------------------------------

    def put(self, item: Outgoing) -> None:
        """Append ``item``; the oldest waiting message goes if the queue is full."""
        with self._cond:
            self._queue.append(item)
            if len(self._queue) > self.limit:
                self._queue.popleft()
                self.dropped += 1
            self._cond.notify_all()

    # -- the publisher's side --------------------------------------------------------------

    def take(self, timeout: float) -> list[Outgoing] | None:
        """The next messages to publish, in order (as many as the window has room for),
        once connected; [] after ``timeout`` seconds without any, None once closed. Each
        must be followed by :meth:`sent` (or :meth:`unsent`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                room = self.window - self._messages - self._reserved
                if self._connected and not self._draining and self._queue and room > 0:
                    batch = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
                    self._reserved += len(batch)
                    return batch
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def sent(self, mid: int, *, message: bool = True) -> bool | None:
        """paho took a publish as ``mid`` (``message``: one taken from here, else presence).
        Returns None, or whether the broker accepted it if its PUBACK came first."""
        with self._cond:
            if message:
                self._reserved -= 1
            ok = self._early.pop(mid, None)
            if ok is None:
                self._inflight[mid] = message
                if message:
                    self._messages += 1
                return None
            if message:
                self._settle(ok)
            self._cond.notify_all()
            return ok

    def unsent(self) -> None:
        """A message taken was not published after all (paho raised): it is lost."""
        with self._cond:
            self._reserved -= 1
            self.dropped += 1
            self._cond.notify_all()

    # -- paho's side ---------------------------------------------------------------------

    def acked(self, mid: int, ok: bool = True) -> bool:
        """The broker acknowledged ``mid`` (``ok``: not with a failure reason code). Returns
        whether it was a message (not presence) that the broker refused."""
        with self._cond:
            message = self._inflight.pop(mid, None)
            if message is None:
                self._early[mid] = ok
                return False
            if message:
                self._messages -= 1
                self._settle(ok)
            if self._draining and not self._messages:
                self._draining = False
            self._cond.notify_all()
            return message and not ok

    def _settle(self, ok: bool) -> None:
        if ok:
            self.published += 1
        else:
            self.refused += 1
            self.dropped += 1

    def connected(self) -> None:
        """The broker accepted the connection: publish again, after the resent ones."""
        with self._cond:
            self._connected = True
            self._draining = self._messages > 0 or self._reserved > 0
            self._cond.notify_all()

    def disconnected(self) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    # -- the bridge's side ---------------------------------------------------------------

    @property
    def count(self) -> int:
        """Messages waiting or in flight (not acknowledged yet)."""
        with self._cond:
            return len(self._queue) + self._messages + self._reserved

    def wait_empty(self, timeout: float) -> bool:
        """Wait until every message is acknowledged, while connected; whether it happened
        within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._messages or self._reserved:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._connected or self._closed:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """End :meth:`take` (the publisher thread stops)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

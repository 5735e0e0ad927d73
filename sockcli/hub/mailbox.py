"""What other threads give the hub's loop, and what they may read of it.

Everything the loop owns is touched by the loop's thread only. Other threads (the hub owner's
``send()``, a signal handler's ``stop()``, ``get_connected_clients()``) go through a
:class:`Mailbox`: a queue of encoded messages under one lock, a wake-up socket pair whose
reading end sits in the loop's selector, and the snapshot of welcomed clients the loop keeps
up to date. One wake-up is written per batch of posts, not per message.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from typing import Any

from sockcli.exceptions import ConnectionError, ValidationError
from sockcli.hub.base import ClientInfo
from sockcli.types import MessageType

__all__ = ["Mailbox"]

#: An encoded message, its type, its one recipient (None: all), its wire map (to retain).
_Item = tuple[bytes, MessageType, "str | None", "dict[str, Any] | None"]


class Mailbox:
    """The loop's inbox from other threads, its wake-up socket and its client snapshot."""

    def __init__(self, event_name: str) -> None:
        self.event_name = event_name
        self._lock = threading.Lock()  # guards _items, _woken and _clients
        self._items: deque[_Item] = deque()
        self._woken = False
        self._clients: dict[str, ClientInfo] = {}
        #: The reading end, for the loop's selector; None until :meth:`open`.
        self.wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def open(self) -> socket.socket:
        """Make the wake-up pair; return the end the loop waits on."""
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        return self.wake_r

    def close(self) -> None:
        for sock in (self.wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    # -- any thread ---------------------------------------------------------------------------

    def clients(self) -> list[ClientInfo]:
        """A snapshot of the welcomed clients."""
        with self._lock:
            return list(self._clients.values())

    def post(self, frame: bytes, message_type: MessageType, client_id: str | None,
             wire: dict[str, Any] | None = None) -> bool:
        """Queue an encoded message for the loop to route; True if the loop must be woken
        (the first post since it last took them).

        Raises ConnectionError if ``client_id`` is not connected, ValidationError if it is a
        pure sender.
        """
        with self._lock:
            if client_id is not None:
                info = self._clients.get(client_id)
                if info is None:
                    raise ConnectionError(
                        f"no client {client_id!r} is connected to hub {self.event_name!r}")
                if not info.subscribed:
                    raise ValidationError(
                        f"client {client_id!r} is a pure sender and receives no messages")
            self._items.append((frame, message_type, client_id, wire))
            wake = not self._woken
            self._woken = True
        return wake

    def wake(self) -> None:
        """Interrupt the loop's select (also from a signal handler)."""
        w = self._wake_w
        if w is not None:
            with contextlib.suppress(OSError):  # full pipe: a wake-up is pending anyway
                w.send(b"\0")

    # -- the loop's thread --------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether something was posted since the last :meth:`take`; read without the lock
        (a post after this look wakes the loop anyway)."""
        return bool(self._items)

    def take(self) -> list[_Item]:
        """What was posted since the last call, oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._woken = False
        return items

    def drain_wake(self) -> None:
        assert self.wake_r is not None
        with contextlib.suppress(BlockingIOError):
            while self.wake_r.recv(4096):
                pass

    def welcomed(self, info: ClientInfo) -> None:
        with self._lock:
            self._clients[info.client_id] = info

    def left(self, client_id: str) -> None:
        with self._lock:
            self._clients.pop(client_id, None)

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()

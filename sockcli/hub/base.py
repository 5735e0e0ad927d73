"""The contract every hub fulfils, whatever its transport."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sockcli.types import MessageType, SocketMessage

__all__ = ["ClientInfo", "MessageHandler", "SocketServer"]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A connected client as the hub sees it (slots: one per connection, 10,000 at once)."""

    client_id: str
    #: The name the client gave in its hello (``sockcli listen --name``), or None.
    name: str | None
    #: True for listeners; pure senders never receive anything but replies.
    subscribed: bool
    #: The message types a subscriber asked for; None means all.
    types: frozenset[MessageType] | None
    connected_ms: int
    #: Socket path or host:port of the peer.
    peer: str
    #: Peer credentials on Unix sockets (SO_PEERCRED); None on TCP.
    pid: int | None = None
    uid: int | None = None
    gid: int | None = None


#: ``handler(message, client)``: called on the hub's thread for every message a client sends.
MessageHandler = Callable[[SocketMessage, ClientInfo], Any]


class SocketServer(ABC):
    """A hub for one event: it relays messages between clients and broadcasts its own.

    Use it as a context manager (``with create_server("unix", "E") as hub:``) to have it
    started and stopped.
    """

    @property
    @abstractmethod
    def event_name(self) -> str:
        """The event this hub serves."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach the hub: the socket path, or host:port. Empty before start."""

    @abstractmethod
    def start(self, blocking: bool | None = None) -> None:
        """Start accepting clients.

        Non-blocking (the default, ``blocking_mode = false``): returns once the hub accepts
        connections, the hub then runs in a background thread. Blocking: runs the hub in the
        calling thread and returns after :meth:`stop` (from another thread or a signal handler).
        On a hub that is already running it starts nothing: it returns at once, or, blocking,
        once the hub has stopped (so ``with create_server(...) as hub: hub.start()`` works).

        Raises SocketError if another hub for the event already runs or this one was stopped
        (a stopped hub cannot be restarted), UnsafePathError if the socket directory is not
        safe to use, ValidationError if the socket path is too long, ConnectionError if the
        address cannot be bound (TCP: no free port in the range).
        """

    @abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Stop the hub: close every connection, remove the socket file and the record.

        Idempotent; safe from a signal handler and from any thread. From another thread it
        waits up to ``timeout`` seconds for the hub to finish.
        """

    @abstractmethod
    def send(self, message: SocketMessage, client_id: str | None = None) -> None:
        """Broadcast ``message`` to every subscriber whose filter accepts its type, or send it to
        one client. With no subscriber connected a broadcast is queued (bounded FIFO).

        Thread-safe. Raises SocketError if the hub is not running, ValidationError if the
        message is for another event, ConnectionError if ``client_id`` is not connected,
        MessageError if the message cannot be encoded within ``buffer_size``.
        """

    @abstractmethod
    def is_running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""

    @abstractmethod
    def get_connected_clients(self) -> list[ClientInfo]:
        """A snapshot of the clients that completed the handshake."""

    @abstractmethod
    def add_handler(self, handler: MessageHandler) -> MessageHandler:
        """Call ``handler(message, client)`` for each message a client sends; returns handler,
        so it also works as a decorator. Handlers run on the hub's thread: keep them short."""

    @abstractmethod
    def remove_handler(self, handler: MessageHandler) -> None:
        """Stop calling ``handler``; unknown handlers are ignored."""

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Decorator spelling of :meth:`add_handler`."""
        return self.add_handler(handler)

    def __enter__(self) -> SocketServer:
        if not self.is_running():
            self.start(blocking=False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

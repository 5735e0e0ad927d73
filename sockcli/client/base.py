"""The contract every client fulfils, whatever its transport."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from types import TracebackType

from sockcli.types import MessageType, SocketMessage

__all__ = ["SocketClient"]


class SocketClient(ABC):
    """A connection to the hub of one event.

    A subscriber (``subscribe=True``) receives the messages of the types it asked for; a pure
    sender never receives any and never drains the hub's queue. Use it as a context manager to
    have it connected and disconnected.
    """

    @property
    @abstractmethod
    def event_name(self) -> str:
        """The event whose hub this client talks to."""

    @abstractmethod
    def connect(self, timeout: float | None = None) -> None:
        """Connect and complete the handshake, waiting up to ``timeout`` seconds (default:
        ``default_timeout``; ``math.inf`` waits for ever) for a hub that is absent or starting.

        Raises MaxConnectionsError if the hub is full, ConnectionError if no hub answered in
        time or the hub refused the handshake, ValidationError for a bad address.
        """

    @abstractmethod
    def disconnect(self) -> None:
        """Close the connection and stop reconnecting. Idempotent."""

    @abstractmethod
    def send(self, message: SocketMessage, *, to: str | None = None, wait: bool = True,
             timeout: float | None = None) -> None:
        """Send ``message`` to the hub, which relays it to the other subscribers (only to those
        named ``to`` if given).

        With ``wait`` (the default) it returns once the hub has acknowledged the message;
        otherwise call :meth:`flush` later. Raises MessageError if the hub refused it (client
        sends not allowed, unknown recipient, invalid message), ConnectionError if the
        connection was lost before the acknowledgement, TimeoutError if none came in time.
        """

    @abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Wait until the hub has acknowledged every message sent so far; raises as :meth:`send`
        for the first message that was refused or lost."""

    @abstractmethod
    def receive(self, timeout: float | None = None) -> SocketMessage:
        """The next message, waiting up to ``timeout`` seconds (None: for ever).

        Raises TimeoutError when none came in time, ConnectionError once the client is
        disconnected (or lost the hub with auto-reconnect off).
        """

    @abstractmethod
    def receive_iter(self, types: Iterable[MessageType | str] | None = None,
                     timeout: float | None = None) -> Iterator[SocketMessage]:
        """Yield messages (only of ``types`` if given) until :meth:`disconnect`.

        Raises as :meth:`receive` when the hub is lost for good or ``timeout`` passes without a
        message.
        """

    @abstractmethod
    def is_connected(self) -> bool:
        """True while a handshake-complete connection to the hub is open."""

    def __enter__(self) -> SocketClient:
        if not self.is_connected():
            self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.disconnect()

"""``sockcli listen``'s connection to one hub: a subscriber that receives in the calling
thread, waits for a hub that is not there yet, and reconnects when it goes away.

The library's :class:`~sockcli.client.discovery.LocalHubClient` does the same with a reader
thread, a bounded receive buffer and SocketMessage objects; its imports alone (threading,
logging, dataclasses, pathlib) cost listen twice its ``python -c pass`` budget, and a listener
has nothing to do meanwhile but wait for its next message. :class:`Subscriber` speaks the same
protocol with the same pieces (:mod:`sockcli.client.connect`, the handshake, the codec), finds
the hub the same way (its record, on either transport, or the socket of a socket-activated
hub), says the same things (``log``), and reconnects at the same pace; it reads only when the
caller asks for messages, so a listener that falls behind leaves the rest in the hub's hands
(back-pressure), as the bounded buffer did. Messages come as :class:`Received` records.
"""

from __future__ import annotations

import _socket
import contextlib
import math
import select
import time
from collections import deque

from sockcli.client.connect import (
    open_tcp_socket,
    open_unix_socket,
    retry_while_absent,
    start_session,
)
from sockcli.exceptions import ConnectionError, HubAbsentError, MessageError, SocketError
from sockcli.exceptions import TimeoutError as ReceiveTimeout
from sockcli.kinds import MessageType, SocketType
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from sockcli.protocol.handshake import ClientHandshake
from sockcli.runtime import check_socket_dir, read_record, socket_exists

TYPE_CHECKING = False  # on listen's start-up path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sockcli.runtime import HubRecord

__all__ = ["DEBUG", "ERROR", "INFO", "WARNING", "Received", "Subscriber"]

#: The levels of what a subscriber says (``logging``'s numbers, without importing it).
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

_RECV_SIZE = 256 * 1024
_FIRST_RETRY_DELAY = 0.02  # as sockcli.client.connect.retry_while_absent


class Received:
    """One message from the hub: the attributes and ``as_dict()`` of a
    :class:`~sockcli.types.SocketMessage`, without its module (dataclasses: start-up) or its
    checks, which :func:`~sockcli.protocol.frames.relay_fields` has made already."""

    __slots__ = ("data", "event_name", "message_type", "retained", "timestamp_iso",
                 "timestamp_ms")

    def __init__(self, event_name: str, timestamp_ms: int, timestamp_iso: str,
                 message_type: MessageType, data: dict[str, Any], retained: bool) -> None:
        self.event_name = event_name
        self.timestamp_ms = timestamp_ms
        self.timestamp_iso = timestamp_iso
        self.message_type = message_type
        self.data = data
        self.retained = retained

    def as_dict(self) -> dict[str, Any]:
        """As :meth:`SocketMessage.as_dict <sockcli.types.SocketMessage.as_dict>`: the keys
        in the documented order, ``retained`` only when true."""
        d = {"event_name": self.event_name, "timestamp_ms": self.timestamp_ms,
             "timestamp_iso": self.timestamp_iso, "message_type": self.message_type.value,
             "data": self.data}
        if self.retained:
            d["retained"] = True
        return d

    def __repr__(self) -> str:
        return f"Received({self.as_dict()!r})"


class Subscriber:
    """A subscriber of the hub of ``event_name``: local (found in ``socket_dir``) or at
    ``connect`` = (host, port). Not thread-safe.

    ``log(level, text, *args)`` is called for what the library's client logs (a hub that
    stops, a refusal, a reconnection), with the same words. ``token`` and ``tls_context``
    are for TCP hubs, as the client's ``tcp_security`` makes them.
    """

    def __init__(self, event_name: str, *, socket_dir: str,
                 connect: tuple[str, int] | None = None, types: tuple[str, ...] = (),
                 name: str | None = None, slow: str | None = None, last: bool = False,
                 auto_reconnect: bool = True, max_frame_size: int = 65536,
                 timeout: float = 5.0, reconnect_max_delay: float = 0.5,
                 token: bytes | None = None, tls_context: Any = None,
                 log: Callable[..., None]) -> None:
        self.event_name = event_name
        self.socket_dir = socket_dir
        self.connect_to = connect
        self.types = frozenset(MessageType.parse(t) for t in types) if types else None
        self.name = name
        self.slow = slow
        self.last = last
        self.auto_reconnect = auto_reconnect
        self.max_frame_size = max_frame_size
        self.timeout = timeout  # the longest one connection attempt or handshake may take
        self.reconnect_max_delay = reconnect_max_delay
        self._token = token
        self._tls_context = tls_context
        self._log = log
        self.record: HubRecord | None = None
        self._activation_path: str | None = None
        self._hub_secret: bytes | None = None
        self._server_name: str | None = None
        self._sock: _socket.socket | None = None
        self._codec = Codec(max_frame_size=max_frame_size)
        self._ready: deque[Any] = deque()
        self._lost: ConnectionError | None = None  # lost for good: raised by every receive
        self._next_attempt = 0.0  # while reconnecting: when to try again, and the pause after
        self._delay = _FIRST_RETRY_DELAY

    @property
    def address(self) -> str:
        """Where the hub is (or is looked for), as the library's clients say it."""
        if self.connect_to is not None:
            return f"{self.connect_to[0] or '127.0.0.1'}:{self.connect_to[1]}"
        if self.record is not None:
            return self.record.address
        if self._activation_path is not None:
            return self._activation_path
        return f"the record of {self.event_name!r} in {self.socket_dir}"

    # -- connecting -----------------------------------------------------------------------

    def connect(self, timeout: float) -> None:
        """Connect and complete the handshake, waiting up to ``timeout`` seconds (math.inf:
        for ever) for a hub that is absent or starting. Raises MaxConnectionsError,
        AuthenticationError, ConnectionError (HubAbsentError: none came in time) as the
        library's ``connect`` does."""
        deadline = time.monotonic() + timeout
        retry_while_absent(lambda: self._attempt(deadline), deadline,
                           max_delay=self.reconnect_max_delay)

    def _attempt(self, deadline: float) -> None:
        """One connection and handshake, bounded by ``deadline`` and by ``timeout``; then the
        frames that came with the welcome (the queued messages, often) are taken in."""
        remaining = deadline - time.monotonic()
        sock = self._open_socket(max(remaining, 0.001) if math.isfinite(remaining)
                                 else self.timeout)
        try:
            tcp = sock.family != _socket.AF_UNIX
            shake = ClientHandshake(subscribe=True, types=self.types, name=self.name,
                                    token=(self._hub_secret or self._token) if tcp else None,
                                    hub_name=self.event_name, slow=self.slow, last=self.last,
                                    batch=self.max_frame_size)
            codec = Codec(max_frame_size=self.max_frame_size)
            sock, _ = start_session(
                sock, codec, shake, max(0.001, min(deadline - time.monotonic(), self.timeout)),
                tls_context=self._tls_context if tcp else None, server_name=self._server_name)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock, self._codec = sock, codec
        if not self._take_frames():
            self._connection_ended()

    def _open_socket(self, timeout: float) -> _socket.socket:
        """The connected socket: at the address given, else where the hub's record says (a
        TCP hub's per-hub secret read too), else the socket of a socket-activated hub;
        HubAbsentError when there is none."""
        if self.connect_to is not None:
            host, port = self.connect_to[0] or "127.0.0.1", self.connect_to[1]
            self._hub_secret, self._server_name = None, host
            return open_tcp_socket(host, port, timeout, self.event_name)
        check_socket_dir(self.socket_dir)
        record = read_record(self.socket_dir, self.event_name)
        if record is None:
            if not socket_exists(self.socket_dir, self.event_name):
                raise HubAbsentError(f"no hub is running for event {self.event_name!r}")
            from pathlib import Path  # socket activation only: the path's length is checked

            from sockcli.runtime import socket_path

            self.record, self._hub_secret = None, None
            self._activation_path = str(socket_path(Path(self.socket_dir), self.event_name))
            return open_unix_socket(self._activation_path, timeout, self.event_name)
        self.record, self._activation_path = record, None
        if record.transport is SocketType.TCP and record.port is not None:
            from sockcli.hubsecret import read_secret

            host = record.host or "127.0.0.1"
            self._hub_secret, self._server_name = read_secret(self.socket_dir,
                                                              self.event_name), host
            return open_tcp_socket(host, record.port, timeout, self.event_name)
        self._hub_secret = None
        return open_unix_socket(str(record.path), timeout, self.event_name)

    def disconnect(self) -> None:
        """Close the connection; nothing is received after this."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(_socket.SHUT_RDWR)
            sock.close()
        self._lost = ConnectionError("the client is disconnected")

    # -- receiving ------------------------------------------------------------------------

    def receive_many(self, limit: int = 1024, timeout: float | None = None) -> list[Any]:
        """The messages that have arrived, up to ``limit`` (at least one: waits up to
        ``timeout`` seconds, None for ever), oldest first; reconnects meanwhile if the hub
        went away. Raises TimeoutError when none came in time, ConnectionError when the hub
        is lost for good (without ``auto_reconnect``, or refused for good)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready = self._ready
            if ready:
                return [ready.popleft() for _ in range(min(limit, len(ready)))]
            if self._lost is not None:
                raise self._lost
            if self._sock is None:
                if not self._reconnect(deadline):
                    break
            elif not self._read(deadline):
                break
        raise ReceiveTimeout(f"no message from {self.event_name!r} within {timeout} s")

    def _read(self, deadline: float | None) -> bool:
        """Take in what the hub sends, waiting until ``deadline`` at most: False when nothing
        came; True when messages, or the end of the connection, did."""
        sock = self._sock
        assert sock is not None
        pending = getattr(sock, "pending", None)  # TLS: decrypted bytes poll cannot see
        if pending is None or not pending():
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            wait = -1 if deadline is None else \
                max(0, math.ceil((deadline - time.monotonic()) * 1000))
            if not poller.poll(wait):
                return False
        try:
            data = sock.recv(_RECV_SIZE)
        except OSError:
            data = b""
        if not data:
            self._connection_ended()
            return True
        self._codec.receive_data(data)
        if not self._take_frames():
            self._connection_ended()
        return True

    def _take_frames(self) -> bool:
        """Decode every complete frame: messages to the ready queue, the rest handled;
        False when the connection must end (closed, a fatal error, a bad frame)."""
        ready, codec = self._ready, self._codec
        try:
            while True:
                m = codec.next_map()
                if m is NEED_DATA:
                    return True
                if m is CLOSED:
                    return False
                kind = m.get("kind") if type(m) is dict else None
                if kind == "message":
                    fields = fr.relay_fields(m)
                    if fields is None:  # unusual: the frame code explains, or learns a type
                        ready.append(fr.message_from_map(m, learn_types=True))
                    else:
                        ready.append(Received(fields[0], m["timestamp_ms"], m["timestamp_iso"],
                                              fields[1], m["data"], m.get("retained") is True))
                elif kind == "batch":  # our hello takes them: the same messages, one frame
                    batch = fr.batch_fields(m)
                    if batch is None:
                        ready.extend(fr.batch_messages(m))
                    else:
                        event, message_type, _, items = batch
                        stamp, iso = m["timestamp_ms"], m["timestamp_iso"]
                        ready.extend([Received(event, stamp, iso, message_type, data, False)
                                      for data in items])
                elif not self._dispatch(fr.frame_from_map(m)):
                    return False
        except MessageError as exc:
            self._log(WARNING, "bad frame from hub %s: %s", self.event_name, exc)
            return False

    def _dispatch(self, frame: fr.Frame) -> bool:
        """Handle a frame that is no message, as the library's client does; False ends the
        connection."""
        if isinstance(frame, fr.ErrorFrame):
            if frame.seq is not None:
                pass  # about a message of ours: a pure listener sends none
            elif frame.code == fr.ErrorCode.SHUTTING_DOWN:
                self._log(INFO, "hub %s is stopping%s", self.event_name,
                          "; reconnecting" if self.auto_reconnect else "")
            else:
                self._log(WARNING, "hub %s: %s (%s)", self.event_name, frame.reason,
                          frame.code)
            return not frame.fatal
        if isinstance(frame, fr.Ping) and self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendall(self._codec.send(fr.Pong(token=frame.token)))
        return True

    def _connection_ended(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._codec = Codec(max_frame_size=self.max_frame_size)
        if not self.auto_reconnect:
            self._lost = ConnectionError(f"lost the hub of {self.event_name!r}")
        self._next_attempt, self._delay = 0.0, _FIRST_RETRY_DELAY

    def _reconnect(self, deadline: float | None) -> bool:
        """Try to get the hub back until ``deadline`` (None: until it is back): False when
        the deadline came first. The pace is the library's: from 20 ms doubling up to
        ``reconnect_max_delay`` while nothing listens, ``reconnect_max_delay`` after any
        other failure (the hub is back but full, a reset mid-restart), kept from one call to
        the next. Anything else (an unsafe socket directory) loses the hub for good."""
        while True:
            now = time.monotonic()
            if self._next_attempt > now:
                if deadline is not None and self._next_attempt > deadline:
                    time.sleep(max(0.0, deadline - now))
                    return False
                time.sleep(self._next_attempt - now)
            try:
                self._attempt(math.inf)
            except HubAbsentError:
                self._next_attempt = time.monotonic() + self._delay
                self._delay = min(self._delay * 2, self.reconnect_max_delay)
                continue
            except ConnectionError as exc:
                self._log(DEBUG, "reconnecting to hub %s: %s", self.event_name, exc)
                self._next_attempt = time.monotonic() + self.reconnect_max_delay
                self._delay = _FIRST_RETRY_DELAY
                continue
            except SocketError as exc:
                self._lost = ConnectionError(str(exc))
                return True
            self._log(INFO, "reconnected to hub %s", self.event_name)
            return True

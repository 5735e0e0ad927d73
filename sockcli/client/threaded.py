"""Everything a client does, whatever the transport.

A background reader thread owns the receiving side of the socket: it files messages into a
bounded buffer (when that is full it stops reading, so back-pressure reaches the hub instead of
memory growing), records acknowledgements for waiting senders, and reconnects with backoff when
the hub goes away. Senders write under a lock from any thread.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import math
import os
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from sockcli.client.base import SocketClient
from sockcli.client.connect import retry_while_absent, start_session, tcp_security
from sockcli.client.inbox import Inbox
from sockcli.client.outbox import Outbox, batch_limit
from sockcli.client.settle import Settlement
from sockcli.exceptions import (
    ConnectionError,
    HubAbsentError,
    MessageError,
    SocketError,
    TimeoutError,
)
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from sockcli.protocol.handshake import ClientHandshake
from sockcli.types import MessageType, SocketMessage, SocketType, validate_event_name

if TYPE_CHECKING:
    from sockcli.config.views import SettingsView

__all__ = ["HubAbsentError", "HubClient"]

log = logging.getLogger("sockcli.client")

_RECV_SIZE = 256 * 1024


def _is_closed(item: object) -> bool:
    return isinstance(item, _Closed)


class _Closed:
    """Put into the receive buffer to wake a reader: the client is closed or lost the hub."""

    def __init__(self, error: SocketError) -> None:
        self.error = error


class HubClient(SocketClient):
    """A client of any transport; subclasses say how to open the socket."""

    transport: ClassVar[SocketType]

    def __init__(self, event_name: str, *, subscribe: bool = True,
                 types: Iterable[MessageType | str] | None = None, name: str | None = None,
                 auto_reconnect: bool | None = None, settings: SettingsView | None = None,
                 config_file: str | os.PathLike[str] | None = None,
                 token: bytes | str | None = None, slow: str | None = None,
                 last: bool = False, tap: bool = False, **overrides: Any) -> None:
        from sockcli.config.loader import settings_for

        self._event_name = validate_event_name(event_name)
        self.settings = settings_for(settings, config_file, overrides)
        self.config = self.settings.socket
        self.subscribe = subscribe
        self.types = frozenset(MessageType.parse(t) for t in types) if types is not None else None
        self.name = _checked_name(name)
        #: What the hub does while this subscriber is behind: "wait", "latest" or "drop".
        self.slow = _checked_slow(slow)
        #: Ask for the hub's retained messages (the last of each type) first, on every connect.
        self.last = last
        #: A tap (a bridge): it gets every message relayed, but leaves the hub's queue to the
        #: first other subscriber (protocol.md, hello ``tap``); a hub without the feature
        #: treats it as a plain subscriber.
        self.tap = tap
        self.auto_reconnect = (self.config.auto_reconnect if auto_reconnect is None
                               else auto_reconnect)
        self.client_id: str | None = None
        self.welcome: fr.Welcome | None = None
        self._codec = Codec(max_frame_size=self.config.buffer_size)
        self._sock: _socket.socket | None = None
        self._settle = Settlement(self._event_name)
        self._cond = self._settle.cond
        self._outbox = Outbox(self._event_name, connected=self._live_socket,
                              on_lost=self._settle.connection_lost)
        self._write_lock = self._outbox.lock
        self._inbox = Inbox(self.config.receive_buffer_size)
        self._reader: threading.Thread | None = None
        self._closed = threading.Event()
        self._connected = False
        self._acks = self._settle.acks  # guarded by _cond; seqs given out under _write_lock
        self._stats_reply: dict[str, Any] | None = None
        #: The largest batch frame for the current connection (None: its hub takes none).
        self._batch_limit: int | None = None
        self._stats_lock = threading.Lock()
        #: The name or address the hub's TLS certificate must name (set when connecting).
        self.tls_server_name: str | None = None
        self._token: bytes | None = None
        #: The per-hub secret of the hub :meth:`_open_socket` just found by its record (TCP,
        #: :mod:`sockcli.hubsecret`); proved instead of the token when there is one.
        self._hub_secret: bytes | None = None
        self._tls_context: Any = None
        if self.uses_tcp:  # the token and TLS of TCP connections (docs/SECURITY.md)
            self._token, self._tls_context = tcp_security(self.settings.tcp, token)
        self.reconnects = 0

    # -- what transports provide ------------------------------------------------------------

    #: Whether this client may connect over TCP, where the token and TLS apply.
    uses_tcp: ClassVar[bool] = True

    @abstractmethod
    def _open_socket(self, timeout: float) -> _socket.socket:
        """Open a connected socket to the hub, or raise HubAbsentError (retry) or
        ConnectionError (give up). A transport that finds a local TCP hub by its record sets
        :attr:`_hub_secret` to that hub's secret (or None) each time."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where this client looks for its hub."""

    # -- SocketClient ---------------------------------------------------------------------

    @property
    def event_name(self) -> str:
        return self._event_name

    def is_connected(self) -> bool:
        return self._connected

    def connect(self, timeout: float | None = None) -> None:
        if self._connected:
            return
        if self._reader is not None and self._reader.is_alive():
            raise SocketError("this client is reconnecting already; wait or disconnect")
        self._closed.clear()
        self._outbox.reopen()
        self._inbox.drop_markers(_is_closed)  # a new life: forget the end of the last one
        budget = self.config.default_timeout if timeout is None else timeout
        self._sock = self._establish(time.monotonic() + budget)
        self._connected = True
        self._reader = threading.Thread(target=self._read_loop,
                                        name=f"sockcli-client-{self._event_name}", daemon=True)
        self._reader.start()

    def disconnect(self) -> None:
        with self._write_lock:  # what send(wait=False) left waiting still goes out
            if self._sock is not None and self._connected:
                with contextlib.suppress(ConnectionError):
                    self._outbox.write_out(self._sock)
            self._outbox.clear()
        self._closed.set()
        self._outbox.close()
        sock = self._sock
        self._connected = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(_socket.SHUT_RDWR)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(5.0)
        late = self._sock  # a reconnection may have completed while the reader stopped
        if late is not None and late is not sock:
            late.close()
        self._connected = False
        if sock is not None:
            sock.close()
        self._sock = None
        self._settle.connection_lost()
        self._put_closed(ConnectionError("the client is disconnected"))

    def send(self, message: SocketMessage, *, to: str | None = None, wait: bool = True,
             timeout: float | None = None, retain: str | None = None) -> None:
        """See :meth:`SocketClient.send`. ``retain`` (:data:`frames.RETAIN_MODES
        <sockcli.protocol.frames.RETAIN_MODES>`) makes the message set the hub's retained
        message of its type without being relayed (``"only"``), or clear the retained message
        of its type (``"clear"``) or of every type (``"clear_all"``); it cannot go with ``to``
        (ValidationError). A hub that does not list the ``retain`` feature (an older one) is
        sent nothing: MessageError with code ``not_retaining``, as from a hub that retains
        nothing."""
        budget = self.config.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        fr.check_data(message.data)  # the hub would drop the connection for such data
        with self._write_lock:
            sock = self._wait_connected(deadline)
            if not wait and to is None and retain is None and self._outbox.add_message(
                    sock, self._batch_limit, message, self._settle.give_seq):
                return  # an item of a batch frame (sockcli.client.outbox)
            if retain is not None:
                retain = _checked_retain(retain, to, self.welcome, self._event_name)
            data = self._codec.pack_map(_message_map(message, self._acks.next_seq, to, retain))
            seq = self._settle.give_seq()  # only once encoded: a refused frame leaves no gap
            self._outbox.add(sock, data, now=wait)
        if wait:
            self._settle.wait(seq, deadline)

    def _live_socket(self) -> _socket.socket | None:
        return self._sock if self._connected else None

    def check(self) -> None:
        """Raise the first refusal the hub has sent so far (MessageError), without waiting."""
        with self._cond:
            failed = self._acks.pop_refusal(self._acks.sent)
        if failed is not None:
            raise failed

    def flush(self, timeout: float | None = None) -> None:
        budget = self.config.default_timeout if timeout is None else timeout
        with self._write_lock:
            if self._outbox.waiting and self._sock is not None and self._connected:
                self._outbox.write_out(self._sock)
        self._settle.wait(self._acks.sent, time.monotonic() + budget)

    def receive(self, timeout: float | None = None) -> SocketMessage:
        message: SocketMessage = self.receive_many(1, timeout)[0]
        return message

    def receive_many(self, limit: int = 1024, timeout: float | None = None,
                     ) -> list[SocketMessage]:
        """Every message waiting, up to ``limit`` (at least one: waits up to ``timeout``
        seconds, None for ever). Cheaper than :meth:`receive` per message under load.

        Raises as :meth:`receive`.
        """
        if not self.subscribe:
            raise SocketError("this client does not subscribe, so it receives nothing")
        items = self._inbox.get_many(max(1, limit), timeout, _is_closed)
        if not items:
            raise TimeoutError(f"no message from {self._event_name!r} within {timeout} s")
        if isinstance(items[0], _Closed):
            raise items[0].error  # the marker stays: every later call is told too
        return items

    def receive_iter(self, types: Iterable[MessageType | str] | None = None,
                     timeout: float | None = None) -> Iterator[SocketMessage]:
        wanted = frozenset(MessageType.parse(t) for t in types) if types is not None else None
        while True:
            try:
                message = self.receive(timeout)
            except ConnectionError:
                if self._closed.is_set():
                    return
                raise
            if wanted is None or message.message_type in wanted:
                yield message

    def stats(self, timeout: float | None = None) -> dict[str, Any]:
        """Ask the hub for its live figures (see docs/protocol.md, "stats")."""
        budget = self.config.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        with self._stats_lock:
            with self._cond:
                self._stats_reply = None
            with self._write_lock:
                sock = self._wait_connected(deadline)
                # In order after the messages waiting to go out.
                self._outbox.write_out(sock, self._codec.send(fr.StatsRequest()))
            with self._cond:
                while self._stats_reply is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"hub {self._event_name!r} sent no stats in time")
                    self._cond.wait(remaining)
                return self._stats_reply

    # -- connecting ---------------------------------------------------------------------

    def _establish(self, deadline: float) -> _socket.socket:
        """Open and handshake, retrying while the hub is absent, until ``deadline``."""

        def attempt() -> _socket.socket:
            remaining = deadline - time.monotonic()
            sock = self._open_socket(max(remaining, 0.001) if math.isfinite(remaining)
                                     else self.config.default_timeout)
            try:
                return self._handshake(sock, deadline)
            except BaseException:
                sock.close()
                raise

        if self._closed.is_set():
            raise ConnectionError("the client is disconnected")
        return retry_while_absent(attempt, deadline, max_delay=self.config.reconnect_max_delay,
                                  pause=self._closed.wait)

    def _handshake(self, sock: _socket.socket, deadline: float) -> _socket.socket:
        tcp = sock.family != _socket.AF_UNIX
        token = (self._hub_secret or self._token) if tcp else None
        shake = ClientHandshake(subscribe=self.subscribe, types=self.types, name=self.name,
                                token=token, hub_name=self._event_name, slow=self.slow,
                                last=self.last, tap=self.tap,
                                batch=self.config.buffer_size)
        codec = Codec(max_frame_size=self.config.buffer_size)
        sock, self.welcome = start_session(
            sock, codec, shake, max(0.001, min(deadline - time.monotonic(),
                                               self.config.default_timeout)),
            tls_context=self._tls_context if tcp else None, server_name=self.tls_server_name)
        sock.settimeout(None)
        self.client_id = self.welcome.client_id
        # Runs of send(wait=False) go as batch frames to a hub that takes them, each within
        # both ends' frame limits.
        self._batch_limit = batch_limit(self.welcome, self.config.buffer_size)
        sct = self.welcome.slow_consumer_timeout  # how long the hub may hold us back
        self._settle.hold_limit = sct + 1.0 if sct else 0.0
        self._codec = codec  # keeps any bytes that followed the welcome
        return sock

    def _wait_connected(self, deadline: float) -> _socket.socket:
        while True:
            sock = self._sock
            if self._connected and sock is not None:
                return sock
            if self._closed.is_set() or not self.auto_reconnect or self._reader is None:
                raise ConnectionError(f"not connected to the hub of {self._event_name!r}")
            with self._cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"not reconnected to {self._event_name!r} in time")
                if not self._connected:
                    self._cond.wait(min(remaining, 0.1))

    # -- the reader thread ----------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._closed.is_set():
            sock = self._sock
            if sock is not None:
                self._pump(sock)
            with self._cond:
                self._connected = False
                self._settle.connection_lost()
            if self._closed.is_set():
                break
            if not self.auto_reconnect:
                self._put_closed(ConnectionError(f"lost the hub of {self._event_name!r}"))
                break
            if sock is not None:
                sock.close()
            self._sock = None
            if not self._reconnect():
                break

    def _reconnect(self) -> bool:
        while True:
            try:
                sock = self._establish(math.inf)
                break
            except ConnectionError as exc:
                # The hub is back but full, or a connection attempt failed in a way that is
                # not "nobody listens" (reset, refused mid-restart): a subscriber that must
                # survive restarts keeps trying, at the slowest pace, until disconnect().
                if self._closed.is_set():
                    return False
                log.debug("reconnecting to hub %s: %s", self._event_name, exc)
                if self._closed.wait(self.config.reconnect_max_delay):
                    return False
            except SocketError as exc:
                if not self._closed.is_set():
                    self._put_closed(exc if isinstance(exc, ConnectionError)
                                     else ConnectionError(str(exc)))
                return False
        with self._cond:
            self._sock = sock
            self._connected = True
            self.reconnects += 1
            self._cond.notify_all()
        log.info("reconnected to hub %s", self._event_name)
        return True

    def _pump(self, sock: _socket.socket) -> None:
        """Read frames until the connection ends."""
        codec = self._codec
        while not self._closed.is_set():
            batch: list[SocketMessage] = []  # the messages of one read, filed at once
            try:
                while True:
                    m = codec.next_map()
                    if m is NEED_DATA:
                        break
                    if m is CLOSED:
                        self._inbox.put_many(batch, self._closed.is_set)
                        return
                    kind = m.get("kind") if type(m) is dict else None
                    if kind == "message":
                        # No frame object per message; a type the hub relayed is one it
                        # knows, so a type this process lacks is learnt, not refused.
                        batch.append(fr.message_from_map(m, learn_types=True))
                        continue
                    if kind == "batch":  # our hello takes them: as the same messages
                        batch.extend(fr.batch_messages(m))
                        continue
                    event = fr.frame_from_map(m)
                    if not self._dispatch(event):
                        self._inbox.put_many(batch, self._closed.is_set)
                        return
            except MessageError as exc:
                self._inbox.put_many(batch, self._closed.is_set)
                log.warning("bad frame from hub %s: %s", self._event_name, exc)
                return
            # Blocks while the buffer is full: the hub then sees us as a slow reader.
            if batch and not self._inbox.put_many(batch, self._closed.is_set):
                return
            try:
                data = sock.recv(_RECV_SIZE)
            except OSError:
                data = b""
            codec.receive_data(data)
            if not data:
                self._codec = Codec(max_frame_size=self.config.buffer_size)
                codec = self._codec
                return

    def _dispatch(self, frame: fr.Frame) -> bool:
        """Handle one frame from the hub; False ends the connection."""
        if isinstance(frame, fr.Ack | fr.ErrorFrame) and frame.seq is not None:
            with self._cond:
                self._acks.receive(frame)
                self._cond.notify_all()
        if isinstance(frame, fr.ErrorFrame):
            if frame.seq is not None:
                pass
            elif frame.code == fr.ErrorCode.SHUTTING_DOWN:
                log.info("hub %s is stopping%s", self._event_name,
                         "; reconnecting" if self.auto_reconnect else "")
            else:
                log.warning("hub %s: %s (%s)", self._event_name, frame.reason, frame.code)
            if frame.fatal:
                return False
        elif isinstance(frame, fr.Stats):
            with self._cond:
                self._stats_reply = dict(frame.values)
                self._cond.notify_all()
        elif isinstance(frame, fr.Ping):
            with self._write_lock:
                sock = self._sock
                if sock is not None:
                    pong = self._codec.send(fr.Pong(token=frame.token))
                    with contextlib.suppress(ConnectionError):
                        self._outbox.write_out(sock, pong)
        return True

    def _put_closed(self, error: SocketError) -> None:
        # Past maxsize on purpose: the marker must neither wait for a reader nor push out a
        # message that was received but not read yet.
        self._inbox.put_marker(_Closed(error))


def _checked_retain(retain: str, to: str | None, welcome: fr.Welcome | None,
                    event_name: str) -> str:
    """``retain`` for a message frame: ValidationError for one that is no mode or comes with
    ``to``, MessageError (``not_retaining``) when the hub's welcome lacks the feature."""
    from sockcli.exceptions import ValidationError

    if retain not in fr.RETAIN_MODES:
        raise ValidationError(f"retain must be one of {', '.join(fr.RETAIN_MODES)}, not "
                              f"{retain!r}")
    if to is not None:
        raise ValidationError("retain cannot go with to: a retained message is for everyone")
    if welcome is None or "retain" not in welcome.features:
        raise MessageError(f"hub {event_name!r} is too old for retained values: its welcome "
                           "does not list the 'retain' feature; nothing was sent",
                           code=fr.ErrorCode.NOT_RETAINING)
    return retain


def _message_map(message: SocketMessage, seq: int, to: str | None,
                 retain: str | None) -> dict[str, Any]:
    """The wire map of one message frame (the map itself: no frame object per message)."""
    frame = fr.message_to_map(message)
    frame["seq"] = seq
    if to is not None:
        frame["to"] = to
    if retain is not None:
        frame["retain"] = retain
    return frame


def _checked_name(name: str | None) -> str | None:
    if name is not None and not 1 <= len(name) <= 64:
        from sockcli.exceptions import ValidationError

        raise ValidationError("a client name must be 1 to 64 characters")
    return name


def _checked_slow(slow: str | None) -> str | None:
    if slow is not None and slow not in fr.SLOW_MODES:
        from sockcli.exceptions import ValidationError

        raise ValidationError(f"invalid slow mode {slow!r}: choose one of "
                              f"{', '.join(fr.SLOW_MODES)}")
    return slow

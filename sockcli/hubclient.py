"""Everything a client does, whatever the transport.

A background reader thread owns the receiving side of the socket: it files messages into a
bounded buffer (when that is full it stops reading, so back-pressure reaches the hub instead of
memory growing), records acknowledgements for waiting senders, and reconnects with backoff when
the hub goes away. Senders write under a lock from any thread.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import os
import queue
import socket
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from sockcli import frames as fr
from sockcli.client import SocketClient
from sockcli.codec import CLOSED, NEED_DATA, Codec
from sockcli.exceptions import (
    ConnectionError,
    HubAbsentError,
    MaxConnectionsError,
    MessageError,
    SocketError,
    TimeoutError,
)
from sockcli.types import MessageType, SocketMessage, SocketType, validate_event_name

__all__ = ["HubAbsentError", "HubClient"]

log = logging.getLogger("sockcli.client")

_RECV_SIZE = 256 * 1024
_FIRST_RETRY_DELAY = 0.02


class _Closed:
    """Put into the receive buffer to wake a reader: the client is closed or lost the hub."""

    def __init__(self, error: SocketError) -> None:
        self.error = error


class HubClient(SocketClient):
    """A client of any transport; subclasses say how to open the socket."""

    transport: ClassVar[SocketType]

    def __init__(self, event_name: str, *, subscribe: bool = True,
                 types: Iterable[MessageType | str] | None = None, name: str | None = None,
                 auto_reconnect: bool | None = None, settings: Any = None,
                 config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> None:
        from sockcli.config.settings import get_settings, load_settings

        self._event_name = validate_event_name(event_name)
        if settings is None:
            settings = load_settings(config_file) if config_file is not None else get_settings()
        self.settings = settings.with_overrides(**overrides)
        self.config = self.settings.socket
        self.subscribe = subscribe
        self.types = frozenset(MessageType.parse(t) for t in types) if types is not None else None
        if name is not None and not 1 <= len(name) <= 64:
            from sockcli.exceptions import ValidationError

            raise ValidationError("a client name must be 1 to 64 characters")
        self.name = name
        self.auto_reconnect = (self.config.auto_reconnect if auto_reconnect is None
                               else auto_reconnect)
        self.client_id: str | None = None
        self.welcome: fr.Welcome | None = None
        self._codec = Codec(max_frame_size=self.config.buffer_size)
        self._sock: socket.socket | None = None
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._inbox: queue.Queue[SocketMessage | _Closed] = queue.Queue(
            maxsize=self.config.receive_buffer_size)
        self._reader: threading.Thread | None = None
        self._closed = threading.Event()
        self._connected = False
        self._next_seq = 0
        self._acked = 0  # every seq up to here is settled (acknowledged or refused)
        self._lost_upto = 0  # seqs up to here were sent on a connection that died unacked
        self._failed: dict[int, fr.ErrorFrame] = {}
        self._stats_reply: dict[str, Any] | None = None
        self._stats_lock = threading.Lock()
        self.reconnects = 0

    # -- what transports provide ------------------------------------------------------------

    @abstractmethod
    def _open_socket(self, timeout: float) -> socket.socket:
        """Open a connected socket to the hub, or raise HubAbsentError (retry) or
        ConnectionError (give up)."""

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
        with self._inbox.mutex:  # a new life: forget the "closed" markers of the last one
            kept = [item for item in self._inbox.queue if not isinstance(item, _Closed)]
            self._inbox.queue.clear()
            self._inbox.queue.extend(kept)
        budget = self.config.default_timeout if timeout is None else timeout
        self._sock = self._establish(time.monotonic() + budget)
        self._connected = True
        self._reader = threading.Thread(target=self._read_loop,
                                        name=f"sockcli-client-{self._event_name}", daemon=True)
        self._reader.start()

    def disconnect(self) -> None:
        self._closed.set()
        sock = self._sock
        self._connected = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
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
        with self._cond:
            self._lose_pending()
            self._cond.notify_all()
        self._put_closed(ConnectionError("the client is disconnected"))

    def send(self, message: SocketMessage, *, to: str | None = None, wait: bool = True,
             timeout: float | None = None) -> None:
        budget = self.config.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        fr.check_data(message.data)  # the hub would drop the connection for such data
        with self._write_lock:
            sock = self._wait_connected(deadline)
            seq = self._next_seq + 1
            data = self._codec.send(fr.MessageFrame(message=message, seq=seq, to=to))
            self._next_seq = seq  # only once encoded: a refused frame leaves no gap to flush
            try:
                sock.sendall(data)
            except OSError as exc:
                with self._cond:
                    self._lost_upto = max(self._lost_upto, seq)
                raise ConnectionError(f"lost the hub of {self._event_name!r} while sending: "
                                      f"{exc.strerror or exc}") from exc
        if wait:
            self._wait_settled(seq, deadline)

    def check(self) -> None:
        """Raise the first refusal the hub has sent so far (MessageError), without waiting."""
        with self._cond:
            failed = self._first_failure(self._next_seq)
        if failed is not None:
            raise failed

    def flush(self, timeout: float | None = None) -> None:
        budget = self.config.default_timeout if timeout is None else timeout
        self._wait_settled(self._next_seq, time.monotonic() + budget)

    def receive(self, timeout: float | None = None) -> SocketMessage:
        if not self.subscribe:
            raise SocketError("this client does not subscribe, so it receives nothing")
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message from {self._event_name!r} within {timeout} s") \
                from None
        if isinstance(item, _Closed):
            self._put_closed(item.error)  # keep telling every later caller
            raise item.error
        return item

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
                try:
                    sock.sendall(self._codec.send(fr.StatsRequest()))
                except OSError as exc:
                    raise ConnectionError(f"lost the hub of {self._event_name!r}") from exc
            with self._cond:
                while self._stats_reply is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"hub {self._event_name!r} sent no stats in time")
                    self._cond.wait(remaining)
                return self._stats_reply

    # -- connecting ---------------------------------------------------------------------

    def _establish(self, deadline: float) -> socket.socket:
        """Open and handshake, retrying while the hub is absent, until ``deadline``."""
        delay = _FIRST_RETRY_DELAY
        while True:
            remaining = deadline - time.monotonic()
            try:
                sock = self._open_socket(max(remaining, 0.001) if math.isfinite(remaining)
                                         else self.config.default_timeout)
                try:
                    return self._handshake(sock, deadline)
                except BaseException:
                    sock.close()
                    raise
            except HubAbsentError:
                if self._closed.is_set():
                    raise ConnectionError("the client is disconnected") from None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                self._closed.wait(min(delay, remaining))
                delay = min(delay * 2, self.config.reconnect_max_delay)

    def _handshake(self, sock: socket.socket, deadline: float) -> socket.socket:
        hello = fr.Hello(subscribe=self.subscribe, types=self.types, name=self.name)
        codec = Codec(max_frame_size=self.config.buffer_size)
        try:
            sock.settimeout(max(0.001, min(deadline - time.monotonic(),
                                           self.config.default_timeout)))
            sock.sendall(codec.send(hello))
            while True:
                event = codec.next_event()
                if event is NEED_DATA:
                    codec.receive_data(sock.recv(_RECV_SIZE))
                    continue
                if event is CLOSED:
                    raise HubAbsentError(f"hub {self._event_name!r} closed the connection "
                                         "during the handshake")
                if isinstance(event, fr.Welcome):
                    break
                if isinstance(event, fr.ErrorFrame):
                    if event.code == fr.ErrorCode.MAX_CONNECTIONS:
                        raise MaxConnectionsError(event.reason)
                    raise ConnectionError(f"hub {self._event_name!r} refused the connection: "
                                          f"{event.reason} ({event.code})")
        except MessageError as exc:
            raise ConnectionError(f"hub {self._event_name!r} sent a bad frame: {exc}") from exc
        except SocketError:
            raise  # ours; note that ConnectionError and TimeoutError are OSErrors too
        except builtins.TimeoutError as exc:
            # Retried until the deadline, then reported as "no hub answered in time".
            raise HubAbsentError(f"hub {self._event_name!r} did not answer the handshake in "
                                 "time") from exc
        except OSError as exc:
            raise HubAbsentError(f"hub {self._event_name!r} went away during the handshake: "
                                 f"{exc.strerror or exc}") from exc
        sock.settimeout(None)
        self.welcome = event
        self.client_id = event.client_id
        self._codec = codec  # keeps any bytes that followed the welcome
        return sock

    def _wait_connected(self, deadline: float) -> socket.socket:
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

    # -- acknowledgements ---------------------------------------------------------------

    def _wait_settled(self, seq: int, deadline: float) -> None:
        with self._cond:
            while True:
                failed = self._first_failure(seq)
                if failed is not None:
                    raise failed
                if seq <= self._acked:
                    return
                if seq <= self._lost_upto:
                    raise ConnectionError(
                        f"the connection to {self._event_name!r} was lost before the hub "
                        "acknowledged the message")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"hub {self._event_name!r} did not acknowledge in time")
                self._cond.wait(remaining)

    def _first_failure(self, upto: int) -> MessageError | None:
        if not self._failed:
            return None
        first = min(self._failed)
        if first > upto:
            return None
        error = self._failed.pop(first)
        return MessageError(error.reason, code=error.code)

    def _lose_pending(self) -> None:
        if self._next_seq > self._acked:
            self._lost_upto = max(self._lost_upto, self._next_seq)

    # -- the reader thread ----------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._closed.is_set():
            sock = self._sock
            if sock is not None:
                self._pump(sock)
            with self._cond:
                self._connected = False
                self._lose_pending()
                self._cond.notify_all()
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
            except MaxConnectionsError:  # the hub is back but full: a slot may free up
                if self._closed.wait(self.config.reconnect_max_delay):
                    return False
            except SocketError as exc:
                if not self._closed.is_set():
                    self._put_closed(exc if isinstance(exc, ConnectionError)
                                     else ConnectionError(str(exc)))
                return False
        return self._install(sock)

    def _install(self, sock: socket.socket) -> bool:
        with self._cond:
            self._sock = sock
            self._connected = True
            self.reconnects += 1
            self._cond.notify_all()
        log.info("reconnected to hub %s", self._event_name)
        return True

    def _pump(self, sock: socket.socket) -> None:
        """Read frames until the connection ends."""
        codec = self._codec
        while not self._closed.is_set():
            try:
                while True:
                    event = codec.next_event()
                    if event is NEED_DATA:
                        break
                    if event is CLOSED:
                        return
                    if not self._dispatch(event):
                        return
            except MessageError as exc:
                log.warning("bad frame from hub %s: %s", self._event_name, exc)
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
        if isinstance(frame, fr.MessageFrame):
            self._put(frame.message)
        elif isinstance(frame, fr.Ack):
            with self._cond:
                self._acked = max(self._acked, frame.seq)
                self._cond.notify_all()
        elif isinstance(frame, fr.ErrorFrame):
            if frame.seq is not None:
                with self._cond:
                    self._failed[frame.seq] = frame
                    self._cond.notify_all()
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
                    with contextlib.suppress(OSError):
                        sock.sendall(self._codec.send(fr.Pong(token=frame.token)))
        return True

    def _put(self, item: SocketMessage) -> None:
        # Blocks while the buffer is full: the hub then sees us as a slow reader.
        while not self._closed.is_set():
            try:
                self._inbox.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_closed(self, error: SocketError) -> None:
        # Past maxsize on purpose: the marker must neither wait for a reader nor push out a
        # message that was received but not read yet.
        inbox = self._inbox
        with inbox.mutex:
            inbox.queue.append(_Closed(error))
            inbox.not_empty.notify()


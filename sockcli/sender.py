"""A one-shot sender for short-lived processes: no thread, no reconnection, few imports.

``sockcli send`` runs once per event in shell loops, so its whole life is start-up. The full
:class:`~sockcli.hubclient.HubClient` (reader thread, receive buffer, reconnection, frame
classes) is built for long-lived clients; :class:`Sender` speaks the same protocol
(docs/protocol.md) for the one thing a pure sender does: hello, messages with sequence numbers,
acknowledgements. It reads the hub's replies only when it must (to learn of a refusal early, or
to wait for the last acknowledgement), and imports neither typing, dataclasses nor pathlib.
"""

from __future__ import annotations

import builtins
import os
import select
import socket
import time

from sockcli.codec import CLOSED, NEED_DATA, Codec
from sockcli.connect import open_tcp_socket, open_unix_socket
from sockcli.exceptions import (
    ConnectionError,
    HubAbsentError,
    MaxConnectionsError,
    MessageError,
    TimeoutError,
)
from sockcli.rules import check_data, validate_event_name
from sockcli.runtime import read_record
from sockcli.timestamps import format_timestamp, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Sender"]

_PROTOCOL_VERSION = 1
_FIRST_RETRY_DELAY = 0.02
_MAX_RETRY_DELAY = 0.25


class Sender:
    """A connected pure sender. Not thread-safe: one per process or thread."""

    def __init__(self, sock: socket.socket, codec: Codec, event_name: str, *,
                 timezone: str = "local") -> None:
        self._sock = sock
        self._codec = codec
        self.event_name = event_name
        self.timezone = timezone
        self._seq = 0
        self._acked = 0
        self._refusals: dict[int, MessageError] = {}
        self._lost: str | None = None

    # -- connecting -----------------------------------------------------------------------

    @classmethod
    def open(cls, event_name: str | None, *, socket_dir: str, wait: float = 1.0,
             connect: tuple[str, int] | None = None, max_frame_size: int = 65536,
             timezone: str = "local", timeout: float = 5.0) -> Sender:
        """Connect to the hub of ``event_name`` (found in ``socket_dir`` on either transport,
        or at ``connect`` = (host, port)) and complete the handshake.

        A hub that is absent or starting is waited for up to ``wait`` seconds (HubAbsentError
        after that). ``event_name`` may be None with ``connect``: the hub's welcome names it.
        Raises MaxConnectionsError if the hub is full, ConnectionError if it refuses.
        """
        deadline = time.monotonic() + wait
        delay = _FIRST_RETRY_DELAY
        while True:
            try:
                sock = cls._open_socket(event_name, socket_dir, connect, timeout)
                try:
                    codec = Codec(max_frame_size=max_frame_size)
                    welcome = cls._handshake(sock, codec, timeout)
                except BaseException:
                    sock.close()
                    raise
                break
            except HubAbsentError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, _MAX_RETRY_DELAY)
        sock.settimeout(None)
        name = welcome.get("event_name")
        if not isinstance(name, str):
            sock.close()
            raise ConnectionError("the hub's welcome does not name its event")
        return cls(sock, codec, validate_event_name(name), timezone=timezone)

    @staticmethod
    def _open_socket(event_name: str | None, socket_dir: str,
                     connect: tuple[str, int] | None, timeout: float) -> socket.socket:
        if connect is not None:
            return open_tcp_socket(connect[0], connect[1], timeout, event_name or "?")
        assert event_name is not None
        record = read_record(socket_dir, event_name)
        if record is not None and record.port is not None:
            return open_tcp_socket(record.host or "127.0.0.1", record.port, timeout, event_name)
        # A Unix hub, or none yet: its socket path is known without the record.
        path = record.path if record is not None and record.path else \
            os.path.join(socket_dir, f"{event_name}.sock")
        return open_unix_socket(path, timeout, event_name)

    @staticmethod
    def _handshake(sock: socket.socket, codec: Codec, timeout: float) -> dict[str, Any]:
        sock.settimeout(timeout)
        try:
            sock.sendall(codec.pack_map({"kind": "hello", "version": _PROTOCOL_VERSION,
                                         "subscribe": False}))
            while True:
                m = codec.next_map()
                if m is NEED_DATA:
                    codec.receive_data(sock.recv(65536))
                    continue
                if m is CLOSED:
                    raise HubAbsentError("the hub closed the connection during the handshake")
                kind = m.get("kind") if isinstance(m, dict) else None
                if kind == "welcome":
                    return m  # type: ignore[no-any-return]
                if kind == "error":
                    reason = str(m.get("reason", ""))
                    if m.get("code") == "max_connections":
                        raise MaxConnectionsError(reason)
                    raise ConnectionError(f"the hub refused the connection: {reason} "
                                          f"({m.get('code')})")
        except MessageError as exc:
            raise ConnectionError(f"the hub sent a bad frame: {exc}") from exc
        except (ConnectionError, MaxConnectionsError, HubAbsentError):
            raise
        except builtins.TimeoutError as exc:  # from the socket timeout
            raise HubAbsentError("the hub did not answer the handshake in time") from exc
        except OSError as exc:
            raise HubAbsentError(f"the hub went away during the handshake: "
                                 f"{exc.strerror or exc}") from exc

    # -- sending --------------------------------------------------------------------------

    def send(self, data: dict[str, Any], message_type: str = "data", to: str | None = None,
             ) -> int:
        """Send one message and return its sequence number; does not wait.

        Raises MessageError (code ``invalid_message`` or ``frame_too_large``) for data the
        protocol cannot carry, before anything is sent; ConnectionError if the hub is gone.
        """
        check_data(data)
        stamp = now_ms()
        frame: dict[str, Any] = {
            "kind": "message",
            "event_name": self.event_name,
            "timestamp_ms": stamp,
            "timestamp_iso": format_timestamp(stamp, self.timezone),
            "message_type": message_type,
            "data": data,
            "seq": self._seq + 1,
        }
        if to is not None:
            frame["to"] = to
        payload = self._codec.pack_map(frame)  # refused here if too large: no gap in seqs
        if self._lost is not None:
            raise ConnectionError(self._lost)
        self._seq += 1
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            self._lost = f"lost the hub of {self.event_name!r}: {exc.strerror or exc}"
            raise ConnectionError(self._lost) from exc
        return self._seq

    def check(self) -> None:
        """Read the replies that have arrived, without waiting; raise the first refusal."""
        self._read(0.0)
        self._raise_refusal(self._seq)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the hub has acknowledged every message sent.

        Raises MessageError for the first refused message, ConnectionError if the hub went
        away first, TimeoutError if no acknowledgement came within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._raise_refusal(self._seq)
            if self._acked >= self._seq:
                return
            if self._lost is not None:
                raise ConnectionError(f"{self._lost} before it acknowledged "
                                      f"{self._seq - self._acked} message(s)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"hub {self.event_name!r} did not acknowledge within "
                                   f"{timeout} s")
            self._read(remaining)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- replies --------------------------------------------------------------------------

    def _raise_refusal(self, upto: int) -> None:
        if self._refusals:
            first = min(self._refusals)
            if first <= upto:
                raise self._refusals.pop(first)

    def _read(self, timeout: float) -> None:
        """Take in what the hub sent within ``timeout`` seconds (0: only what is there)."""
        if self._lost is not None:
            return
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            data = self._sock.recv(65536)
        except OSError as exc:
            data = b""
            self._lost = f"lost the hub of {self.event_name!r}: {exc.strerror or exc}"
        self._codec.receive_data(data)
        try:
            while True:
                m = self._codec.next_map()
                if m is NEED_DATA:
                    break
                if m is CLOSED:
                    self._lost = self._lost or f"hub {self.event_name!r} closed the connection"
                    break
                self._reply(m)
        except MessageError as exc:
            self._lost = f"hub {self.event_name!r} sent a bad frame: {exc}"

    def _reply(self, m: Any) -> None:
        if not isinstance(m, dict):
            return
        kind, seq = m.get("kind"), m.get("seq")
        if kind == "ack" and isinstance(seq, int):
            self._acked = max(self._acked, seq)
        elif kind == "error":
            code, reason = str(m.get("code", "")), str(m.get("reason", ""))
            if isinstance(seq, int):
                self._refusals[seq] = MessageError(reason, code=code)
            if m.get("fatal"):
                self._lost = f"hub {self.event_name!r} dropped the connection: {reason} ({code})"

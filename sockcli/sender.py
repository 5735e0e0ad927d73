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
    AuthenticationError,
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
#: Refusals of who the client is (AuthenticationError): retrying will not help.
_ACCESS_CODES = ("auth_failed", "peer_not_allowed", "tls_required")


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
        self._deferred: list[bytes] = []
        self._stamp = (-1, "")  # the last millisecond and its ISO text: streams share them

    # -- connecting -----------------------------------------------------------------------

    @classmethod
    def open(cls, event_name: str | None, *, socket_dir: str, wait: float = 1.0,
             connect: tuple[str, int] | None = None, max_frame_size: int = 65536,
             timezone: str = "local", timeout: float = 5.0, token: bytes | None = None,
             tls_ca: str | None = None) -> Sender:
        """Connect to the hub of ``event_name`` (found in ``socket_dir`` on either transport,
        or at ``connect`` = (host, port)) and complete the handshake.

        A hub that is absent or starting is waited for up to ``wait`` seconds (HubAbsentError
        after that). ``event_name`` may be None with ``connect``: the hub's welcome names it.
        Over TCP, ``tls_ca`` (a PEM file) makes it speak TLS to a hub whose certificate that CA
        signed, and ``token`` makes it prove the shared token and require the hub's proof
        (docs/SECURITY.md). Raises MaxConnectionsError if the hub is full,
        AuthenticationError if the hub refuses this client or cannot prove itself,
        ConnectionError if it refuses otherwise.
        """
        deadline = time.monotonic() + wait
        delay = _FIRST_RETRY_DELAY
        tls_context: Any = None
        while True:
            try:
                sock, host = cls._open_socket(event_name, socket_dir, connect, timeout)
                try:
                    if host is not None and tls_ca is not None:  # TLS is for TCP only
                        from sockcli.tls import client_context, client_wrap

                        if tls_context is None:
                            tls_context = client_context(tls_ca)
                        sock = client_wrap(tls_context, sock, host, timeout)
                    codec = Codec(max_frame_size=max_frame_size)
                    welcome = cls._handshake(sock, codec, timeout,
                                             token if host is not None else None)
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
                     connect: tuple[str, int] | None, timeout: float,
                     ) -> tuple[socket.socket, str | None]:
        """The connected socket, and the host for a TCP hub (None for a Unix one)."""
        if connect is not None:
            return open_tcp_socket(connect[0], connect[1], timeout, event_name or "?"), \
                connect[0]
        assert event_name is not None
        record = read_record(socket_dir, event_name)
        if record is not None and record.port is not None:
            host = record.host or "127.0.0.1"
            return open_tcp_socket(host, record.port, timeout, event_name), host
        # A Unix hub, or none yet: its socket path is known without the record.
        path = record.path if record is not None and record.path else \
            os.path.join(socket_dir, f"{event_name}.sock")
        return open_unix_socket(path, timeout, event_name), None

    @staticmethod
    def _handshake(sock: socket.socket, codec: Codec, timeout: float,
                   token: bytes | None = None) -> dict[str, Any]:
        sock.settimeout(timeout)
        hello: dict[str, Any] = {"kind": "hello", "version": _PROTOCOL_VERSION,
                                 "subscribe": False}
        proving = None
        if token is not None:  # hmac, hashlib and secrets are imported only now
            from sockcli.auth import ClientAuth

            proving = ClientAuth(token)
            hello.update(proving.hello_keys())
        try:
            sock.sendall(codec.pack_map(hello))
            while True:
                m = codec.next_map()
                if m is NEED_DATA:
                    codec.receive_data(sock.recv(65536))
                    continue
                if m is CLOSED:
                    raise HubAbsentError("the hub closed the connection during the handshake")
                kind = m.get("kind") if isinstance(m, dict) else None
                if kind == "welcome":
                    if proving is not None:
                        proving.check_welcome(m)
                    return m  # type: ignore[no-any-return]
                if kind == "challenge" and proving is not None:
                    sock.sendall(codec.pack_map(proving.answer(m)))
                elif kind == "error":
                    reason, code = str(m.get("reason", "")), m.get("code")
                    if code == "max_connections":
                        raise MaxConnectionsError(reason)
                    message = f"the hub refused the connection: {reason} ({code})"
                    if code in _ACCESS_CODES:
                        raise AuthenticationError(message, code=str(code))
                    raise ConnectionError(message)
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
             *, defer: bool = False) -> int:
        """Send one message and return its sequence number; does not wait for the hub.

        With ``defer`` the frame is kept until :meth:`push` (or the next plain send), so that
        messages that are ready together go out in one write. Raises MessageError (code
        ``invalid_message`` or ``frame_too_large``) for data the protocol cannot carry, before
        anything is sent; ConnectionError if the hub is gone.
        """
        check_data(data)
        stamp = now_ms()
        if stamp != self._stamp[0]:
            self._stamp = (stamp, format_timestamp(stamp, self.timezone))
        frame: dict[str, Any] = {
            "kind": "message",
            "event_name": self.event_name,
            "timestamp_ms": stamp,
            "timestamp_iso": self._stamp[1],
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
        self._deferred.append(payload)
        if not defer:
            self.push()
        return self._seq

    def push(self) -> None:
        """Write the deferred frames, in one system call."""
        if not self._deferred:
            return
        payload = b"".join(self._deferred)
        self._deferred.clear()
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            self._lost = f"lost the hub of {self.event_name!r}: {exc.strerror or exc}"
            raise ConnectionError(self._lost) from exc

    def check(self) -> None:
        """Read the replies that have arrived, without waiting; raise the first refusal."""
        self.push()
        self._read(0.0)
        self._raise_refusal(self._seq)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the hub has acknowledged every message sent.

        Raises MessageError for the first refused message, ConnectionError if the hub went
        away first, TimeoutError if no acknowledgement came within ``timeout`` seconds.
        """
        self.push()
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

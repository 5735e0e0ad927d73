"""A one-shot sender for short-lived processes: no thread, no reconnection, few imports.

``sockcli send`` runs once per event in shell loops, and ``sockcli get`` once per poll of a
status bar, so their whole life is start-up. The full
:class:`~sockcli.client.threaded.HubClient` (reader thread, receive buffer, reconnection) is
built for long-lived clients; :class:`Sender` does the one thing a pure sender does, with the
same protocol code (:mod:`sockcli.protocol`: the handshake, the acknowledgement ledger, the
codec) and the same connecting code (:mod:`sockcli.client.connect`). It reads the hub's
replies only when it must (to learn of a refusal early, or to wait for the last
acknowledgement), and imports neither typing, dataclasses nor pathlib. Opened to ``peek``, it
reads the hub's retained messages instead (:meth:`Sender.retained`).
"""

from __future__ import annotations

import os
import select
import time

from sockcli.client.connect import (
    open_tcp_socket,
    open_unix_socket,
    retry_while_absent,
    start_session,
)
from sockcli.exceptions import ConnectionError, MessageError, TimeoutError
from sockcli.protocol import frames as fr
from sockcli.protocol.acks import AckLedger
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from sockcli.protocol.handshake import ClientHandshake
from sockcli.rules import check_data, validate_event_name
from sockcli.runtime import read_record
from sockcli.timestamps import format_timestamp, now_ms

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from typing import Any

    from sockcli.kinds import MessageType

__all__ = ["Sender"]

_MAX_RETRY_DELAY = 0.25


class Sender:
    """A connected pure sender. Not thread-safe: one per process or thread."""

    def __init__(self, sock: _socket.socket, codec: Codec, event_name: str, *,
                 timezone: str = "local") -> None:
        self._sock = sock
        self._codec = codec
        self.event_name = event_name
        self.timezone = timezone
        self._acks = AckLedger()
        #: How long the hub may hold this sender back (its welcome's slow_consumer_timeout,
        #: plus a second): the least time flush() waits for an acknowledgement.
        self.hold_limit = 0.0
        #: What the hub implements beyond the base protocol (its welcome's ``features``).
        self.features: tuple[str, ...] = ()
        self._lost: str | None = None
        self._deferred: list[bytes] = []
        self._stamp = (-1, "")  # the last millisecond and its ISO text: streams share them
        #: The largest frame both ends take: what a batch is cut to (:meth:`send_many`).
        self.frame_limit = codec.max_frame_size

    # -- connecting -----------------------------------------------------------------------

    @classmethod
    def open(cls, event_name: str | None, *, socket_dir: str, wait: float = 1.0,
             connect: tuple[str, int] | None = None, max_frame_size: int = 65536,
             timezone: str = "local", timeout: float = 5.0, token: bytes | None = None,
             tls_ca: str | None = None, peek: bool = False,
             types: frozenset[MessageType] | None = None) -> Sender:
        """Connect to the hub of ``event_name`` (found in ``socket_dir`` on either transport,
        or at ``connect`` = (host, port)) and complete the handshake.

        A hub that is absent or starting is waited for up to ``wait`` seconds (HubAbsentError
        after that). ``event_name`` may be None with ``connect``: the hub's welcome names it.
        Over TCP, ``tls_ca`` (a PEM file) makes it speak TLS to a hub whose certificate that CA
        signed, and ``token`` makes it prove the shared token and require the hub's proof
        (docs/SECURITY.md); a local TCP hub found by its record that made a per-hub secret
        gets that secret proved instead. ``peek`` (with ``types``, None: all) asks for the
        hub's retained messages, for :meth:`retained`. Raises MaxConnectionsError if the hub
        is full, AuthenticationError if the hub refuses this client or cannot prove itself,
        ConnectionError if it refuses otherwise.
        """
        tls_context: list[Any] = []  # made once, on the first TCP attempt

        def attempt() -> tuple[_socket.socket, Codec, fr.Welcome]:
            sock, host, secret = cls._open_socket(event_name, socket_dir, connect, timeout)
            try:
                if host is not None and tls_ca is not None and not tls_context:
                    from sockcli.tls import client_context  # TLS is for TCP only

                    tls_context.append(client_context(tls_ca))
                codec = Codec(max_frame_size=max_frame_size)
                shake = ClientHandshake(token=(secret or token) if host is not None else None,
                                        peek=peek, types=types)
                sock, welcome = start_session(
                    sock, codec, shake, timeout, server_name=host,
                    tls_context=tls_context[0] if host is not None and tls_context else None)
                return sock, codec, welcome
            except BaseException:
                sock.close()
                raise

        sock, codec, welcome = retry_while_absent(attempt, time.monotonic() + wait,
                                                  max_delay=_MAX_RETRY_DELAY)
        sock.settimeout(None)
        try:
            name = validate_event_name(welcome.event_name)
        except ValueError:
            sock.close()
            raise ConnectionError("the hub's welcome names no valid event") from None
        sender = cls(sock, codec, name, timezone=timezone)
        sender.features = welcome.features
        if welcome.max_frame_size:  # a batch must fit the hub's limit as well as ours
            sender.frame_limit = min(codec.max_frame_size, welcome.max_frame_size)
        if welcome.slow_consumer_timeout:
            sender.hold_limit = welcome.slow_consumer_timeout + 1.0
        return sender

    @staticmethod
    def _open_socket(event_name: str | None, socket_dir: str,
                     connect: tuple[str, int] | None, timeout: float,
                     ) -> tuple[_socket.socket, str | None, bytes | None]:
        """The connected socket, the host for a TCP hub (None for a Unix one), and the
        per-hub secret of a local TCP hub that made one (:mod:`sockcli.hubsecret`)."""
        if connect is not None:
            return open_tcp_socket(connect[0], connect[1], timeout, event_name or "?"), \
                connect[0], None
        assert event_name is not None
        record = read_record(socket_dir, event_name)
        if record is not None and record.port is not None:
            from sockcli.hubsecret import read_secret

            host = record.host or "127.0.0.1"
            secret = read_secret(socket_dir, event_name)
            return open_tcp_socket(host, record.port, timeout, event_name), host, secret
        # A Unix hub, or none yet: its socket path is known without the record.
        path = record.path if record is not None and record.path else \
            os.path.join(socket_dir, f"{event_name}.sock")
        return open_unix_socket(path, timeout, event_name), None, None

    # -- sending --------------------------------------------------------------------------

    def send(self, data: dict[str, Any], message_type: str = "data", to: str | None = None,
             *, defer: bool = False, retain: str | None = None) -> int:
        """Send one message and return its sequence number; does not wait for the hub.

        With ``defer`` the frame is kept until :meth:`push` (or the next plain send), so that
        messages that are ready together go out in one write. ``retain``
        (:data:`~sockcli.protocol.frames.RETAIN_MODES`) sets or clears the hub's retained
        message instead of relaying this one (``send --retain-only``, ``--clear``). Raises
        MessageError (code ``invalid_message`` or ``frame_too_large``) for data the protocol
        cannot carry, (code ``not_retaining``) for ``retain`` to a hub too old for it, before
        anything is sent; ConnectionError if the hub is gone.
        """
        check_data(data)
        if retain is not None:
            self.require("retain", "retained values (send --retain-only, --clear)")
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
            "seq": self._acks.next_seq,
        }
        if to is not None:
            frame["to"] = to
        if retain is not None:
            frame["retain"] = retain
        payload = self._codec.pack_map(frame)  # refused here if too large: no gap in seqs
        if self._lost is not None:
            raise ConnectionError(self._lost)
        seq = self._acks.sent_one()
        self._deferred.append(payload)
        if not defer:
            self.push()
        return seq

    def send_many(self, items: list[dict[str, Any]], message_type: str = "data",
                  ) -> list[tuple[int, MessageError]]:
        """Send ``items`` as messages of one type stamped now (``send --lines``: the lines of
        one read), deferred like ``send(defer=True)``; return the (index, error) of each item
        refused before sending (data the protocol cannot carry, a message too large), the
        others numbered in order.

        To a hub whose welcome lists "batch" they go as batch frames, each cut to
        :attr:`frame_limit`: one frame, one header and one encoding for hundreds of
        messages, the same messages and acknowledgements. Raises ConnectionError if the hub
        is gone.
        """
        if "batch" not in self.features:
            return self._send_each(items, message_type, range(len(items)))
        refused: list[tuple[int, MessageError]] = []
        good: list[int] = []
        for index, data in enumerate(items):
            try:
                check_data(data)
            except MessageError as exc:
                refused.append((index, exc))
            else:
                good.append(index)
        stamp = now_ms()
        if stamp != self._stamp[0]:
            self._stamp = (stamp, format_timestamp(stamp, self.timezone))
        header = {"kind": "batch", "event_name": self.event_name, "timestamp_ms": stamp,
                  "timestamp_iso": self._stamp[1], "message_type": message_type}
        refused += self._send_batches(header, items, good)
        if self._lost is not None:
            raise ConnectionError(self._lost)
        return sorted(refused, key=lambda pair: pair[0])

    def _send_batches(self, header: dict[str, Any], items: list[dict[str, Any]],
                      indexes: list[int]) -> list[tuple[int, MessageError]]:
        """Batch frames of ``items[i] for i in indexes``, halved until each fits; an item
        too large alone goes as a message frame, which says why it cannot be sent."""
        if not indexes:
            return []
        if len(indexes) == 1:
            return self._send_each(items, header["message_type"], indexes)
        seq = self._acks.next_seq
        try:
            payload = self._codec.pack_map(
                {**header, "seq": seq, "items": [items[i] for i in indexes]})
        except MessageError:
            payload = b""
        if not payload or len(payload) > self.frame_limit:
            half = len(indexes) // 2
            return self._send_batches(header, items, indexes[:half]) + \
                self._send_batches(header, items, indexes[half:])
        self._acks.sent_many(len(indexes))  # numbered seq, seq + 1, ... in the order given
        self._deferred.append(payload)
        return []

    def _send_each(self, items: list[dict[str, Any]], message_type: str,
                   indexes: range | list[int]) -> list[tuple[int, MessageError]]:
        refused: list[tuple[int, MessageError]] = []
        for index in indexes:
            try:
                self.send(items[index], message_type, defer=True)
            except MessageError as exc:
                refused.append((index, exc))
        return refused

    def push(self) -> None:
        """Write the deferred frames, in one system call."""
        if not self._deferred:
            return
        payload = b"".join(self._deferred)
        self._deferred.clear()
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            lost = f"lost the hub of {self.event_name!r}: {exc.strerror or exc}"
            # What the hub acknowledged before it went is still to be read: take it in, so
            # that the caller knows exactly what was settled.
            while self._lost is None and self._read(0.0):
                pass
            self._lost = lost
            raise ConnectionError(lost) from exc

    def check(self) -> None:
        """Read the replies that have arrived, without waiting; raise the first refusal."""
        self.push()
        self._read(0.0)
        self._raise_refusal()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the hub has acknowledged every message sent.

        Raises MessageError for the first refused message, ConnectionError if the hub went
        away first, TimeoutError if no acknowledgement came within ``timeout`` seconds.
        """
        self.push()
        budget = max(timeout, self.hold_limit)  # the hub may hold us back (flow control)
        deadline = time.monotonic() + budget
        acks = self._acks
        seen = acks.acked
        while True:
            self._raise_refusal()
            if acks.pending <= 0:
                return
            if self._lost is not None:
                raise ConnectionError(f"{self._lost} before it acknowledged "
                                      f"{acks.pending} message(s)")
            if acks.acked != seen:  # progress: the wait is for the hub's silence
                seen = acks.acked
                deadline = time.monotonic() + budget
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"hub {self.event_name!r} did not acknowledge within "
                                   f"{budget:g} s")
            self._read(remaining)

    @property
    def acked(self) -> int:
        """The last sequence number the hub has acknowledged (every one up to it is settled)."""
        return self._acks.acked

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- peeking ---------------------------------------------------------------------------

    def retained(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The hub's retained messages of the types asked for at :meth:`open` (with
        ``peek``), oldest first, as ``listen --json`` prints them (``"retained": true``).

        The hub sends them right after its welcome; a ping sent now is answered after them,
        so its pong ends the list. Raises MessageError (code ``not_retaining``) for a hub too
        old to peek, ConnectionError if the hub went away or sent a bad frame, TimeoutError if
        the pong did not come within ``timeout`` seconds.
        """
        self.require("peek", "sockcli get")
        try:
            self._sock.sendall(self._codec.send(fr.Ping(token=1)))
        except OSError as exc:
            raise ConnectionError(f"lost the hub of {self.event_name!r}: "
                                  f"{exc.strerror or exc}") from exc
        deadline = time.monotonic() + timeout
        records: list[dict[str, Any]] = []
        while True:
            m = self._next_map(deadline)
            kind = m.get("kind") if type(m) is dict else None
            if kind == "message":
                records.append(self._record(m))
            elif kind == "pong":
                return records
            elif kind == "error":
                error = self._decoded(m)
                if isinstance(error, fr.ErrorFrame) and error.fatal:
                    raise ConnectionError(f"hub {self.event_name!r} dropped the connection: "
                                          f"{error.reason} ({error.code})")
            # Anything else (a kind of a newer version) is not for us: ignored.

    def require(self, feature: str, what: str) -> None:
        """MessageError (code ``not_retaining``) unless the hub lists ``feature`` (one of
        this module's: "retain", "peek"); ``what`` names what needs it, for the message."""
        if feature not in self.features:
            raise MessageError(f"hub {self.event_name!r} is too old for {what}: its welcome "
                               f"does not list the {feature!r} feature; nothing was sent",
                               code=fr.ErrorCode.NOT_RETAINING)

    def _next_map(self, deadline: float) -> Any:
        """The next frame's map from the hub, waiting until ``deadline`` at most."""
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while True:
            try:
                m = self._codec.next_map()
            except MessageError as exc:
                raise ConnectionError(f"hub {self.event_name!r} sent a bad frame: {exc}") \
                    from None
            if m is CLOSED:
                raise ConnectionError(f"hub {self.event_name!r} closed the connection")
            if m is not NEED_DATA:
                return m
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(int(remaining * 1000 + 0.999)):
                raise TimeoutError(f"hub {self.event_name!r} did not answer within the "
                                   "timeout")
            try:
                data = self._sock.recv(65536)
            except OSError as exc:
                raise ConnectionError(f"lost the hub of {self.event_name!r}: "
                                      f"{exc.strerror or exc}") from exc
            self._codec.receive_data(data)

    def _decoded(self, m: Any) -> fr.Frame:
        try:
            return fr.frame_from_map(m)
        except MessageError as exc:
            raise ConnectionError(f"hub {self.event_name!r} sent a bad frame: {exc}") from None

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        """A retained message as ``SocketMessage.as_dict()`` gives it, from its map: checked
        without building a SocketMessage (its module costs start-up), unless it is of an
        unusual shape (a custom type this process does not know), which the frame path takes
        in and explains."""
        fields = fr.relay_fields(m)
        if fields is None:
            try:
                record = fr.message_from_map(m, learn_types=True).as_dict()
            except MessageError as exc:
                raise ConnectionError(f"hub {self.event_name!r} sent a bad frame: {exc}") \
                    from None
        else:
            record = {"event_name": fields[0], "timestamp_ms": m["timestamp_ms"],
                      "timestamp_iso": m["timestamp_iso"], "message_type": fields[1].value,
                      "data": m["data"]}
        record["retained"] = True
        return record

    # -- replies --------------------------------------------------------------------------

    def _raise_refusal(self) -> None:
        refusal = self._acks.pop_refusal(self._acks.sent)
        if refusal is not None:
            raise refusal

    def _read(self, timeout: float) -> bool:
        """Take in what the hub sent within ``timeout`` seconds (0: only what is there);
        False when nothing came."""
        if self._lost is not None:
            return False
        # poll(), not select(): a descriptor above 1023 is fine (a busy host program).
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000 + 0.999))):
            return False
        try:
            data = self._sock.recv(65536)
        except OSError as exc:
            data = b""
            self._lost = f"lost the hub of {self.event_name!r}: {exc.strerror or exc}"
        self._codec.receive_data(data)
        try:
            while True:
                frame = self._codec.next_event()
                if frame is NEED_DATA:
                    break
                if frame is CLOSED:
                    self._lost = self._lost or f"hub {self.event_name!r} closed the connection"
                    break
                self._acks.receive(frame)
                if isinstance(frame, fr.ErrorFrame) and frame.fatal:
                    self._lost = (f"hub {self.event_name!r} dropped the connection: "
                                  f"{frame.reason} ({frame.code})")
        except MessageError as exc:
            self._lost = f"hub {self.event_name!r} sent a bad frame: {exc}"
        return bool(data)

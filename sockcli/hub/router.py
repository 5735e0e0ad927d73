"""Who gets what: the hub's routing of messages to subscribers.

The router holds the welcomed connections by client id, the bounded queue of messages that
found no subscriber, the retained messages (the last of each type, for the subscribers that
ask for them: ``listen --last``), and the message handlers of the hub's owner. For each
message a client sends it acknowledges or refuses it, calls the handlers, retains it and
relays it: to every subscriber whose type filter accepts it (broadcast), or to the
subscribers of one name (unicast). Content filters belong here too.

Flow control: each subscriber has its own outbound buffer
(:class:`~sockcli.hub.connection.Connection`). Once more than ``send_buffer_limit`` bytes wait
for one, what happens depends on the ``slow`` mode of its hello: "wait" (the default) puts it
in :attr:`Router.behind`, and while that set is not empty the loop stops reading from
publishers, so that their sends block instead of messages being lost, until every subscriber
there has read half its buffer; one that reads nothing for ``slow_consumer_timeout`` is
dropped, told how many messages it missed. "latest" keeps only the newest message of each
type while it is behind (a status bar wants the current value, not a backlog) and never holds
anyone back; "drop" drops it at once (sockcli before flow control). One message larger than
the limit is still delivered: the limit bounds what waits, not one message.

It runs on the hub's loop thread only, and never touches a socket: it hands frames to the
loop through the three callables it is given (write a frame, mark a connection for flushing,
drop a connection with an error).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sockcli.exceptions import MessageError
from sockcli.hub.base import ClientInfo, MessageHandler
from sockcli.hub.batchrelay import take_batch
from sockcli.hub.connection import Connection
from sockcli.hub.linesconn import message_line
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import MsgpackCodec
from sockcli.timestamps import format_timestamp, now_ms
from sockcli.types import MessageType, SocketMessage

__all__ = ["HubStats", "Router"]

log = logging.getLogger("sockcli.hub")


@dataclass(slots=True)
class HubStats:
    """Counters of one hub; read them with :meth:`HubServer.stats`."""

    received: int = 0  # messages accepted from clients
    delivered: int = 0  # message frames handed to subscribers' buffers
    dropped: int = 0  # queued messages dropped because the queue was full
    dropped_clients: int = 0  # subscribers dropped for not reading
    refused_connections: int = 0  # connections refused over max_connections
    rejected: int = 0  # messages refused (not allowed, invalid, unknown recipient)
    denied: int = 0  # connections refused by access control (peer, token, TLS)
    missed: int = 0  # messages discarded with the subscribers dropped for not reading
    replaced: int = 0  # messages a "latest" subscriber got a newer one of the same type for


@dataclass(slots=True, frozen=True)
class _Queued:
    """A message no subscriber took, encoded, with its type for the next one's filter."""

    message_type: MessageType
    frame: bytes


class Router:
    """The routing state and rules of one hub."""

    def __init__(self, *, event_name: str, config: Any, codec: MsgpackCodec, stats: HubStats,
                 write: Callable[[Connection, fr.Frame], None],
                 mark_dirty: Callable[[Connection], None],
                 drop: Callable[[Connection, fr.ErrorFrame], None]) -> None:
        self.event_name = event_name
        self.allow_client_send: bool = config.allow_client_send
        self.queue_size: int = config.message_queue_size
        self.send_buffer_limit: int = config.send_buffer_limit
        self.slow_consumer_timeout: float = config.slow_consumer_timeout
        #: "wait" subscribers with more than send_buffer_limit bytes waiting: while any is
        #: here, the loop holds publishers back.
        self.behind: set[Connection] = set()
        #: "latest" subscribers holding messages back in Connection.latest.
        self.lagging: set[Connection] = set()
        #: The last message of each type relayed (its wire map), oldest first, for the
        #: subscribers whose hello asks for them (``last``); empty when ``retain`` is off.
        self.retain: bool = config.retain
        self.retained: dict[MessageType, dict[str, Any]] = {}
        self.stats = stats
        #: Called with every message a client sends; replaced, never mutated (thread safety).
        self.handlers: list[MessageHandler] = []
        self.queue: deque[_Queued] = deque()
        self.codec = codec
        self.write = write
        self.mark_dirty = mark_dirty
        self._drop = drop
        self._by_id: dict[str, Connection] = {}
        self._subs: list[Connection] | None = None  # subscribers, cached between changes
        self._sub_set: set[Connection] = set()  # the same, to look one up
        self._stamp = (0, "")  # the last timestamp of a published line, and its ISO text

    # -- who is connected -----------------------------------------------------------------

    def add(self, conn: Connection, last: bool = False, peek: bool = False, *,
            replay: bool = True) -> None:
        """A client was welcomed; with ``replay``, hand it what :meth:`replay` says."""
        assert conn.info is not None
        self._by_id[conn.info.client_id] = conn
        self._subs = None
        if replay:
            self.replay(conn, last, peek)

    def replay(self, conn: Connection, last: bool = False, peek: bool = False) -> None:
        """A new subscriber that asked for the ``last`` values gets the retained message of
        each type it accepts (oldest first, marked retained), then the queued messages it
        accepts. A pure sender that asked to ``peek`` gets the retained messages only: never
        a queued one, which is the first subscriber's."""
        assert conn.info is not None
        if ((conn.info.subscribed and last) or peek) and self.retained:
            # A retained message that nobody took is in the queue too: a subscriber gets it
            # from there, once (the first bar started after its producer saw it twice).
            queued = {item.frame for item in self.queue} if conn.info.subscribed else set()
            for message_type, wire in self.retained.items():
                if conn.accepts(message_type) and self.codec.pack_map(wire) not in queued:
                    marked = {**wire, "retained": True}
                    conn.enqueue(message_line(marked) if conn.lines else
                                 self.codec.pack_map(marked))
                    self.stats.delivered += 1
            self.mark_dirty(conn)
        if conn.info.subscribed and self.queue and not conn.tap:
            self._replay_queue(conn)

    def changed(self, conn: Connection) -> None:
        """``conn``'s ClientInfo was replaced (a lines client's first line): who subscribes
        may have changed."""
        self._subs = None

    def keep(self, message_type: MessageType, wire: dict[str, Any]) -> None:
        """Retain ``wire`` as the last message of its type (the newest moves to the end)."""
        if self.retain:
            self.retained.pop(message_type, None)
            self.retained[message_type] = wire

    def remove(self, conn: Connection) -> None:
        self.behind.discard(conn)
        self.lagging.discard(conn)
        if conn.info is not None and conn.info.client_id:
            self._by_id.pop(conn.info.client_id, None)
            self._subs = None

    def subscribers(self, exclude: Connection | None = None) -> list[Connection]:
        subs = self._subs
        if subs is None:  # rebuilt after a client comes or goes, not per message
            subs = self._subs = [c for c in self._by_id.values() if c.subscribed]
            self._sub_set = set(subs)
        # A set, not the list: a publisher is rarely a subscriber, and `in` on 1,000 of them
        # would cost more than the message.
        return [c for c in subs if c is not exclude] if exclude in self._sub_set else subs

    # -- messages from clients ------------------------------------------------------------

    def client_message(self, conn: Connection, frame: fr.MessageFrame) -> None:
        message = frame.message
        self._take(conn, fr.message_to_map(message), message.event_name,
                   message.message_type, frame.seq, frame.to, message, frame.retain)

    def relay_map(self, conn: Connection, m: dict[str, Any]) -> bool:
        """:meth:`client_message` for a hub without handlers, straight from the map: the
        same checks (:func:`frames.relay_fields`), the same refusals, the same relay. False
        when the map is not of the usual shape: the frame path must explain what is wrong."""
        fields = fr.relay_fields(m)
        if fields is None:
            return False
        event, message_type, seq, to = fields
        # relay_fields found the type by its exact text: the map's is its value already.
        wire = {"kind": "message", "event_name": event, "timestamp_ms": m["timestamp_ms"],
                "timestamp_iso": m["timestamp_iso"], "message_type": m["message_type"],
                "data": m["data"]}
        if to is not None or event != self.event_name or not self.allow_client_send:
            self._take(conn, wire, event, message_type, seq, to, None)
            return True
        # What _take does with the usual message (everyone's, for this event, allowed),
        # without its other cases: a tenth of the hub's work per message (hub alone).
        try:
            data = self.codec.pack_map(wire)
        except MessageError:  # too large re-encoded: _take refuses it, saying so
            self._take(conn, wire, event, message_type, seq, to, None)
            return True
        if seq is not None:
            conn.ack_seq = seq if conn.ack_seq is None or seq > conn.ack_seq else conn.ack_seq
        self.stats.received += 1
        if self.retain:
            self.keep(message_type, wire)
        self.broadcast(data, message_type, exclude=conn, wire=wire)
        return True

    def relay_batch(self, conn: Connection, m: dict[str, Any]) -> bool:
        """:meth:`relay_map` for a batch frame (:class:`~sockcli.protocol.frames.Batch`):
        False when it is not of the usual shape, for the frame path to explain."""
        fields = fr.batch_fields(m)
        if fields is None:
            return False
        event, message_type, seq, items = fields
        take_batch(self, conn, event, message_type, m["timestamp_ms"], m["timestamp_iso"],
                   items, seq)
        return True

    def client_batch(self, conn: Connection, frame: fr.Batch) -> None:
        """A batch frame decoded in full (the hub has handlers, or the fast checks did not
        take it): the same as :meth:`relay_batch`."""
        take_batch(self, conn, frame.event_name, frame.message_type, frame.timestamp_ms,
                   frame.timestamp_iso, frame.items, frame.seq, frame)

    def _take(self, conn: Connection, wire: dict[str, Any], event: str,
              message_type: MessageType, seq: int | None, to: str | None,
              message: SocketMessage | None, retain: str | None = None) -> None:
        """Acknowledge, refuse or accept one client message; hand it to the handlers (when
        ``message`` is built) and relay ``wire`` to the other subscribers; or, with
        ``retain``, only set or clear the retained message (:meth:`_retain`)."""
        if seq is not None:
            conn.ack_seq = seq if conn.ack_seq is None else max(conn.ack_seq, seq)
        refusal = None if to is None and event == self.event_name and \
            self.allow_client_send else self.refusal_of(conn, event, to)
        if refusal is not None:
            self.stats.rejected += 1
            self.write(conn, fr.ErrorFrame(code=refusal[0], reason=refusal[1], seq=seq))
            return
        if retain is not None:
            self._retain(conn, wire, message_type, retain, seq)
            return
        try:
            data = self.codec.pack_map(wire)
        except MessageError as exc:  # re-encoded, 32-bit floats become 64-bit and may not fit
            self.stats.rejected += 1
            self.write(conn, fr.ErrorFrame(code=exc.code, reason=f"cannot relay: {exc}",
                                            seq=seq))
            return
        self.stats.received += 1
        if to is None:  # a message for one name is not everyone's last value
            self.keep(message_type, wire)
        if message is not None:
            assert conn.info is not None
            self.call_handlers(message, conn.info)
        if to is not None:
            for target in self.subscribers(exclude=conn):
                if target.info is not None and target.info.name == to:
                    self.deliver(target, self._line(data, wire) if target.lines else data,
                                 message_type)
        else:
            self.broadcast(data, message_type, exclude=conn, wire=wire)

    def call_handlers(self, message: SocketMessage, info: ClientInfo) -> None:
        for handler in self.handlers:
            try:
                handler(message, info)
            except Exception:
                log.exception("message handler %r failed", handler)

    def publish(self, message_type: MessageType, data: dict[str, Any],
                source: Connection | None, info: ClientInfo) -> tuple[str, str] | None:
        """A message of one line (the FIFO; a lines client, ``source``, which does not get
        it back), stamped now and relayed as a client's message would be; (code, reason)
        when it is refused. ``info`` is who the handlers are told sent it."""
        if not self.allow_client_send:
            self.stats.rejected += 1
            return (fr.ErrorCode.SEND_NOT_ALLOWED,
                    f"hub {self.event_name!r} does not accept messages from clients")
        stamp = now_ms()
        if stamp != self._stamp[0]:  # formatting the ISO text is most of a stamp's cost
            self._stamp = (stamp, format_timestamp(stamp))
        wire = {"kind": "message", "event_name": self.event_name, "timestamp_ms": stamp,
                "timestamp_iso": self._stamp[1], "message_type": message_type.value,
                "data": data}
        try:
            frame = self.codec.pack_map(wire)
        except MessageError as exc:
            self.stats.rejected += 1
            return (exc.code, f"cannot relay: {exc}")
        self.stats.received += 1
        self.keep(message_type, wire)
        if self.handlers:
            self.call_handlers(fr.message_from_map(wire), info)
        self.broadcast(frame, message_type, exclude=source, wire=wire)
        return None

    def _retain(self, conn: Connection, wire: dict[str, Any], message_type: MessageType,
                retain: str, seq: int | None) -> None:
        """``send --retain-only`` and ``send --clear``: set (``only``) or clear the retained
        message of ``message_type`` (``clear_all``: of every type). Neither is relayed nor
        queued, nor handed to the handlers, which see the messages that are relayed. A hub
        that retains nothing refuses ``only`` (the value would be lost: ``not_retaining``);
        clearing there succeeds, since nothing is retained afterwards either way."""
        if retain != "only":
            self.stats.received += 1
            if retain == "clear_all":
                self.retained.clear()
            else:
                self.retained.pop(message_type, None)
            return
        if not self.retain:
            self.stats.rejected += 1
            self.write(conn, fr.ErrorFrame(
                code=fr.ErrorCode.NOT_RETAINING, seq=seq,
                reason=f"hub {self.event_name!r} keeps no retained messages (its retain "
                       "setting is off: serve --no-retain): the message was not kept"))
            return
        try:
            self.codec.pack_map({**wire, "retained": True})  # it must fit when handed out
        except MessageError as exc:
            self.stats.rejected += 1
            self.write(conn, fr.ErrorFrame(code=exc.code, reason=f"cannot retain: {exc}",
                                            seq=seq))
            return
        self.stats.received += 1
        self.keep(message_type, wire)

    def refuse(self, conn: Connection, error: fr.RefusedMessageError) -> None:
        """Refuse one message alone (a type this hub does not know, a timestamp_iso that is
        no date); it still counts as handled (the batch's ack covers it), and the connection
        goes on."""
        if error.seq is not None:
            last = error.seq + error.count - 1  # a batch: every message of it
            conn.ack_seq = last if conn.ack_seq is None else max(conn.ack_seq, last)
        self.stats.rejected += error.count
        self.write(conn, fr.ErrorFrame(code=error.code, reason=str(error), seq=error.seq))

    def refusal_of(self, conn: Connection, event: str, to: str | None,
                    ) -> tuple[str, str] | None:
        if not self.allow_client_send:
            return (fr.ErrorCode.SEND_NOT_ALLOWED,
                    f"hub {self.event_name!r} does not accept messages from clients")
        if event != self.event_name:
            return (fr.ErrorCode.INVALID_MESSAGE,
                    f"message is for event {event!r}, this hub serves {self.event_name!r}")
        if to is not None and not any(
            c.info is not None and c.info.name == to for c in self.subscribers(exclude=conn)
        ):
            return (fr.ErrorCode.UNKNOWN_RECIPIENT,
                    f"no subscriber named {to!r} is connected to hub {self.event_name!r}")
        return None

    # -- delivery -------------------------------------------------------------------------

    def from_hub(self, frame: bytes, message_type: MessageType, client_id: str | None,
                 wire: dict[str, Any] | None = None) -> None:
        """A message the hub's owner sent (:meth:`HubServer.send`), already encoded."""
        if client_id is None:
            self.broadcast(frame, message_type, wire=wire)
        else:
            conn = self._by_id.get(client_id)
            if conn is not None and conn.subscribed:
                self.deliver(conn, self._line(frame, wire) if conn.lines else frame,
                             message_type)

    def broadcast(self, data: bytes, message_type: MessageType,
                  exclude: Connection | None = None, wire: dict[str, Any] | None = None,
                  ) -> None:
        """Deliver one encoded message to every subscriber that accepts its type; the
        clients of the JSON-lines socket get its line, made once (from ``wire``, its map,
        when the caller has it)."""
        delivered = False
        line = None
        size, limit = len(data), self.send_buffer_limit
        for conn in self.subscribers(exclude):
            info = conn.info
            if info is None or (info.types is not None and message_type not in info.types):
                continue  # its filter does not take this type (Connection.accepts)
            if conn.lines:
                if line is None:
                    line = self._line(data, wire)
                self.deliver(conn, line, message_type)
            elif conn.latest is None and conn.out_size + size <= limit:
                conn.enqueue(data)  # deliver(), for a subscriber with room: the usual case
                self.stats.delivered += 1
                self.mark_dirty(conn)
            else:
                self.deliver(conn, data, message_type)
            delivered = delivered or not conn.tap
        if not delivered:  # nobody connected takes this type: keep it for who comes next
            self.queue_message(data, message_type)

    def queue_message(self, data: bytes, message_type: MessageType) -> None:
        if self.queue_size <= 0:
            self.stats.dropped += 1
            return
        if len(self.queue) >= self.queue_size:
            self.queue.popleft()
            self.stats.dropped += 1
        self.queue.append(_Queued(message_type, data))

    def _replay_queue(self, conn: Connection) -> None:
        """Hand a new subscriber the queued messages its filter accepts, oldest first."""
        kept: deque[_Queued] = deque()
        for item in self.queue:
            if conn.accepts(item.message_type):
                conn.enqueue(self._line(item.frame, None) if conn.lines else item.frame)
                self.stats.delivered += 1
            else:
                kept.append(item)
        self.queue = kept
        self.mark_dirty(conn)

    def _line(self, frame: bytes, wire: dict[str, Any] | None) -> bytes:
        """The JSON line of an encoded message, for the clients of the lines socket."""
        return message_line(wire if wire is not None else self.codec.unpack_frame(frame))

    def deliver(self, conn: Connection, data: bytes, message_type: MessageType,
                count: int = 1) -> None:
        """Add one encoded message (a lines client: its line; a batch frame of ``count``
        messages, for a subscriber that takes them and is not in "latest" mode) to a
        subscriber's buffer, by the rules of flow control; a lines client that has not said
        what it wants yet holds it (:mod:`sockcli.hub.linesconn`)."""
        if conn.lines and conn.hold(  # type: ignore[attr-defined]
                data, message_type, self.send_buffer_limit):
            self.stats.delivered += 1
            return
        if conn.latest is not None or (
                conn.out_size and conn.out_size + len(data) > self.send_buffer_limit):
            mode = conn.slow
            if mode == "latest":
                if conn.latest is None:
                    conn.latest = {}
                    self.lagging.add(conn)
                elif message_type in conn.latest:
                    self.stats.replaced += 1
                conn.latest[message_type] = data
                return
            if mode == "drop":
                self.drop_slow(conn, f"more than {self.send_buffer_limit} bytes were waiting "
                                     "for this subscriber to read")
                return
            if conn not in self.behind:
                self.behind.add(conn)
                conn.progress_at = time.monotonic()  # the stall clock starts now
        conn.enqueue(data)
        self.stats.delivered += count
        self.mark_dirty(conn)

    def caught_up(self, conn: Connection) -> bool:
        """After a write: whether ``conn`` has read enough (half its buffer) to stop being
        behind; a "latest" subscriber then gets the newest message of each type it missed."""
        if conn.out_size > self.send_buffer_limit // 2:
            return False
        self.behind.discard(conn)
        if conn.latest is not None:
            for data in conn.latest.values():
                conn.enqueue(data)
                self.stats.delivered += 1
            conn.latest = None
            self.lagging.discard(conn)
            self.mark_dirty(conn)
        return True

    def drop_slow(self, conn: Connection, why: str) -> None:
        """Drop a subscriber that does not keep up, saying why and how much it missed."""
        self.behind.discard(conn)
        self.lagging.discard(conn)
        missed = conn.discard_pending()
        self.stats.dropped_clients += 1
        self.stats.missed += missed
        log.warning("hub %s drops subscriber %s: %s; %d messages discarded", self.event_name,
                    conn.info.client_id if conn.info else "?", why, missed)
        self._drop(conn, fr.ErrorFrame(
            code=fr.ErrorCode.SLOW_CONSUMER, fatal=True,
            reason=f"dropped: {why}; {missed} message{'s' if missed != 1 else ''} for this "
                   "subscriber were discarded"))

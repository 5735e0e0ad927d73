"""A batch frame on its way through the hub (docs/protocol.md, "Batches").

:class:`BatchRelay` holds the forms one batch takes, each made once, when first needed: the
batch frame for the subscribers that take batches of its size (one encoding shared by all),
one frame per message for the others and the queue, one JSON line per message for the lines
clients. :class:`~sockcli.hub.router.Router` checks, acknowledges and retains the batch; this
hands its messages to the subscribers, by the same rules of flow control as messages sent one
by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sockcli.exceptions import MessageError
from sockcli.hub.connection import Connection
from sockcli.hub.linesconn import message_line
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import MsgpackCodec
from sockcli.types import MessageType

if TYPE_CHECKING:
    from sockcli.hub.router import Router

__all__ = ["BatchRelay", "take_batch"]


def take_batch(router: Router, conn: Connection, event: str, message_type: MessageType,
               stamp: int, iso: str, items: list[dict[str, Any]], seq: int | None,
               frame: fr.Batch | None = None) -> None:
    """Acknowledge, refuse or relay the messages of one batch, as :meth:`Router._take` does
    each message: the whole batch is refused or taken (its items share event and type). It
    is encoded once for the subscribers that take batches and, only if one does not, once
    per message for the others (and the queue)."""
    count = len(items)
    if seq is not None:
        last = seq + count - 1
        conn.ack_seq = last if conn.ack_seq is None else max(conn.ack_seq, last)
    refusal = router.refusal_of(conn, event, None)
    if refusal is not None:
        router.stats.rejected += count
        span = f"messages {seq}-{seq + count - 1}" if seq is not None and count > 1 \
            else f"{count} message{'s' if count > 1 else ''}"
        router.write(conn, fr.ErrorFrame(code=refusal[0], seq=seq,
                                         reason=f"{refusal[1]} (a batch: {span} refused)"))
        return
    header = {"event_name": event, "timestamp_ms": stamp, "timestamp_iso": iso,
              "message_type": message_type.value}
    batch = BatchRelay(router.codec, header, items)
    targets = [c for c in router.subscribers(conn) if c.accepts(message_type)]
    try:
        forms = batch.forms(targets)
    except MessageError as exc:  # re-encoded, 32-bit floats become 64-bit and may not fit
        router.stats.rejected += count
        router.write(conn, fr.ErrorFrame(code=exc.code, reason=f"cannot relay: {exc}",
                                         seq=seq))
        return
    router.stats.received += count
    router.keep(message_type, batch.wire(-1))
    if router.handlers:
        assert conn.info is not None
        for message in (frame or batch.frame(message_type)).messages():
            router.call_handlers(message, conn.info)
    batch.relay(router, message_type, targets, forms)


class BatchRelay:
    """One batch on its way through the hub: its forms, each made once, when first needed
    (the batch frame for the subscribers that take batches, one frame per message for the
    others and the queue, one JSON line per message for the lines clients)."""

    __slots__ = ("_codec", "_encoded", "_header", "_joined", "_lines", "_singles", "items")

    def __init__(self, codec: MsgpackCodec, header: dict[str, Any],
                 items: list[dict[str, Any]]) -> None:
        self._codec = codec
        self._header = header  # event_name, timestamp_ms, timestamp_iso, message_type
        self.items = items
        self._encoded: bytes | None = None
        self._singles: list[bytes] | None = None
        self._joined: bytes | None = None
        self._lines: list[bytes] | None = None

    def forms(self, targets: list[Connection]) -> list[bytes | list[bytes]]:
        """What each of ``targets`` gets (:meth:`form_for`), and the single messages when
        none but taps takes them (for the queue). MessageError if a message is too large to
        relay."""
        forms = [self.form_for(c) for c in targets]
        if all(c.tap for c in targets):
            self.singles()
        return forms

    def relay(self, router: Router, message_type: MessageType, targets: list[Connection],
              forms: list[bytes | list[bytes]]) -> None:
        """Hand the batch to ``targets`` in their ``forms``, by :meth:`Router.deliver`'s
        rules; when only taps took it, queue its messages, as many as the queue holds."""
        count = len(self.items)
        for target, form in zip(targets, forms, strict=True):
            if isinstance(form, bytes):
                router.deliver(target, form, message_type, count)
            elif target.lines:
                for line in form:
                    router.deliver(target, line, message_type)
            elif target.latest is None and \
                    target.out_size + len(joined := self.joined()) <= router.send_buffer_limit:
                target.enqueue(joined)  # room for them all: one chunk, shared by every target
                router.stats.delivered += count
                router.mark_dirty(target)
            else:
                limit, stats = router.send_buffer_limit, router.stats
                for data in form:
                    if target.latest is None and target.out_size + len(data) <= limit:
                        target.enqueue(data)  # deliver(), for a subscriber with room
                        stats.delivered += 1
                        continue
                    router.deliver(target, data, message_type)
                    if target.closing:  # dropped as a slow consumer on the way: no more
                        break
                router.mark_dirty(target)
        if all(c.tap for c in targets):  # nobody takes them: kept for who comes next
            keep = max(router.queue_size, 1)
            for single in self.singles()[-keep:]:
                router.queue_message(single, message_type)
            router.stats.dropped += max(0, count - keep)

    def form_for(self, conn: Connection) -> bytes | list[bytes]:
        """What ``conn`` gets: the batch frame (bytes) if it takes batches that large and is
        not in "latest" mode (which keeps single messages), else a frame (or, for a lines
        client, a line) per message. MessageError if a message is too large to relay."""
        if conn.lines:
            return self.lines()
        if conn.batch and conn.slow != "latest" and conn.latest is None and \
                self.fits(conn.batch):
            return self.encoded()
        return self.singles()

    def wire(self, index: int) -> dict[str, Any]:
        """The wire map of one of its messages."""
        return {"kind": "message", **self._header, "data": self.items[index]}

    def frame(self, message_type: MessageType) -> fr.Batch:
        h = self._header
        return fr.Batch(event_name=h["event_name"], message_type=message_type,
                        timestamp_ms=h["timestamp_ms"], timestamp_iso=h["timestamp_iso"],
                        items=self.items)

    def encoded(self) -> bytes:
        """The batch frame (no ``seq``: that was the sender's)."""
        if self._encoded is None:
            self._encoded = self._codec.pack_map({"kind": "batch", **self._header,
                                                  "items": self.items})
        return self._encoded

    def fits(self, limit: int) -> bool:
        """Whether the batch frame is within a subscriber's ``batch`` size."""
        try:
            return len(self.encoded()) <= limit
        except MessageError:  # over the hub's own frame limit: one frame per message then
            return False

    def singles(self) -> list[bytes]:
        """One message frame per item."""
        if self._singles is None:
            pack, m = self._codec.pack_map, {"kind": "message", **self._header, "data": None}
            singles = []
            for data in self.items:
                m["data"] = data
                singles.append(pack(m))
            self._singles = singles
        return self._singles

    def joined(self) -> bytes:
        """The single frames end to end: what a subscriber with room for them all gets, one
        object for every such subscriber (fan-out to 100: the hub's work per delivery goes
        from a call to a share of one)."""
        if self._joined is None:
            self._joined = b"".join(self.singles())
        return self._joined

    def lines(self) -> list[bytes]:
        """One JSON line per item, for the clients of the lines socket."""
        if self._lines is None:
            self._lines = [message_line(self.wire(i)) for i in range(len(self.items))]
        return self._lines

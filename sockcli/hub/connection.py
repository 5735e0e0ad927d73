"""One client connection as the hub holds it: its codec, its state and its outbound buffer."""

from __future__ import annotations

import socket
import time
from enum import Enum
from typing import Any

from sockcli.hub.base import ClientInfo
from sockcli.protocol.codec import Codec
from sockcli.protocol.handshake import HubHandshake
from sockcli.types import MessageType

__all__ = ["Connection", "ConnectionState"]


class ConnectionState(Enum):
    HANDSHAKE = "handshake"  # accepted, waiting for hello
    ACTIVE = "active"  # welcomed
    CLOSING = "closing"  # told why it is dropped; flushing, then closed


class Connection:
    """Hub-side state of one client. Owned by the hub's loop thread only."""

    #: Whether this is a client of the JSON-lines socket (:mod:`sockcli.hub.linesconn`).
    lines = False

    __slots__ = (
        "ack_seq",
        "batch",
        "close_deadline",
        "codec",
        "connected_ms",
        "fd",
        "frame_deadline",
        "handshake",
        "handshake_deadline",
        "info",
        "latest",
        "out",
        "out_size",
        "paused",
        "peer",
        "progress_at",
        "slow",
        "sock",
        "state",
        "tap",
        "tls",
        "want_write",
    )

    def __init__(self, sock: socket.socket, peer: str, codec: Codec, handshake_timeout: float):
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.codec = codec
        self.state = ConnectionState.HANDSHAKE
        self.connected_ms = time.time_ns() // 1_000_000
        self.handshake_deadline = time.monotonic() + handshake_timeout
        self.close_deadline = 0.0
        #: When the partial frame held in the codec must be complete (0.0: none is held).
        self.frame_deadline = 0.0
        self.info: ClientInfo | None = None
        #: The bytes that wait for the kernel, in order. A list, not a deque: an empty deque
        #: holds a 64-slot block (760 bytes, a third of an idle subscriber's cost), an empty
        #: list nothing, and flush() joins what waits, so the list never grows long.
        self.out: list[bytes | memoryview] = []
        self.out_size = 0
        self.want_write = False
        #: Highest sequence number handled in the current read batch, acknowledged after it.
        self.ack_seq: int | None = None
        #: The hub's side of the protocol handshake until the client is welcomed; then None.
        self.handshake: HubHandshake | None = None
        #: The hub's TLS state (sockcli.hub.admission._TlsPending) until the TLS handshake is
        #: done; None otherwise, and always on a hub without TLS.
        self.tls: Any = None
        #: What the hub does while this subscriber is behind (its hello's ``slow``): "wait"
        #: (hold publishers back), "latest" (keep the latest message per type) or "drop".
        self.slow = "wait"
        #: "latest" mode: the newest message of each type that waits for room, encoded.
        self.latest: dict[MessageType, bytes] | None = None
        #: When the kernel last took bytes of this connection's output (time.monotonic()).
        self.progress_at = 0.0
        #: Whether the hub has stopped reading from this connection (flow control).
        self.paused = False
        #: A tap (hello ``tap``: a bridge): it gets what is relayed, but takes nothing from
        #: the queue, and a message only it took is queued all the same.
        self.tap = False
        #: The largest batch frame this subscriber reads (its hello's ``batch``; 0: none):
        #: the hub relays a batch to it as one frame, not one per message.
        self.batch = 0

    @property
    def subscribed(self) -> bool:
        return self.state is ConnectionState.ACTIVE and self.info is not None \
            and self.info.subscribed

    @property
    def closing(self) -> bool:
        return self.state is ConnectionState.CLOSING

    def accepts(self, message_type: MessageType) -> bool:
        """Whether this subscriber's filter lets ``message_type`` through."""
        info = self.info
        return info is not None and (info.types is None or message_type in info.types)

    def render(self, frame: Any, codec: Codec) -> bytes:
        """The bytes that carry ``frame`` (a :class:`~sockcli.protocol.frames.Frame`) to
        this client: its MessagePack frame."""
        data: bytes = codec.send(frame)
        return data

    def enqueue(self, data: bytes | memoryview) -> None:
        self.out.append(data)
        self.out_size += len(data)

    def flush(self) -> bool:
        """Write what the kernel takes now; True when the buffer is empty. Raises OSError."""
        out = self.out
        while out:
            # A memoryview head was partly sent; it stays apart so the hub can tell where the
            # next whole frame starts (it keeps that head when it drops a slow consumer).
            if len(out) > 1 and not isinstance(out[0], memoryview):
                out[:] = (b"".join(out),)
            chunk = out[0]
            try:
                sent = self.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return False
            self.out_size -= sent
            if sent:
                self.progress_at = time.monotonic()
            if sent < len(chunk):
                out[0] = memoryview(chunk)[sent:]  # no copy of a large remainder
                return False
            del out[0]
        return True

    def partial(self, fed: int, frame_timeout: float) -> bool:
        """After a read (``fed``: the bytes the codec held with it): start, keep or clear the
        deadline of the incomplete frame the codec holds; True while one is held. A frame that
        began before the read and is still incomplete keeps its deadline: trickling bytes
        does not extend it."""
        held = self.codec.buffered
        if not held:
            self.frame_deadline = 0.0
            return False
        if held < fed or not self.frame_deadline:  # a new frame began
            self.frame_deadline = time.monotonic() + frame_timeout
        return True

    def discard_pending(self) -> int:
        """Drop the output that waits but the rest of a frame the kernel took part of (the
        client must get whole frames); return how many whole frames were dropped."""
        out = self.out
        head = out[0] if out and isinstance(out[0], memoryview) else None
        dropped = sum(_count_frames(chunk) for chunk in (out[1:] if head else out))
        out.clear()
        self.out_size = 0
        if head is not None:
            rest, whole = _split_partial(head)
            dropped += whole
            if rest:
                self.enqueue(rest)
        if self.latest:
            dropped += len(self.latest)
            self.latest = None
        return dropped


#: How a batch frame of the hub's begins, after its length: a map whose first key is
#: "kind", and the kind "batch" (the hub packs its batches so: router.BatchRelay).
_BATCH_HEAD = b"\xa4kind\xa5batch"


def _count_frames(chunk: bytes | memoryview) -> int:
    """The number of messages in ``chunk``: whole frames, each behind its 4-byte length, a
    batch frame counting its messages."""
    count, at, end = 0, 0, len(chunk)
    while at + 4 <= end:
        size = int.from_bytes(chunk[at:at + 4], "big")
        if bytes(chunk[at + 5:at + 5 + len(_BATCH_HEAD)]) == _BATCH_HEAD:
            count += _batch_size(chunk[at + 4:at + 4 + size])
        else:
            count += 1
        at += 4 + size
    return count


def _batch_size(payload: bytes | memoryview) -> int:
    """How many messages a batch frame the hub made holds (dropping a slow consumer only)."""
    import msgpack

    items = msgpack.unpackb(payload, raw=False).get("items")
    return len(items) if isinstance(items, list) else 1


def _split_partial(head: memoryview) -> tuple[memoryview, int]:
    """For the unsent tail of a chunk of whole frames (Connection.flush's memoryview): the rest
    of the frame the kernel took part of, and how many whole frames follow it."""
    chunk = head.obj  # the chunk the view was cut from
    assert isinstance(chunk, bytes)
    sent = len(chunk) - len(head)
    at = 0
    while True:
        end = at + 4 + int.from_bytes(chunk[at:at + 4], "big")
        if end > sent:
            break
        at = end
    if at == sent:  # nothing of this frame went out: it is whole, like those after it
        return head[:0], _count_frames(head)
    return head[:end - sent], _count_frames(head[end - sent:])

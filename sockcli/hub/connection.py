"""One client connection as the hub holds it: its codec, its state and its outbound buffer."""

from __future__ import annotations

import socket
import time
from collections import deque
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

    __slots__ = (
        "ack_seq",
        "auth",
        "close_deadline",
        "codec",
        "connected_ms",
        "fd",
        "frame_deadline",
        "handshake",
        "handshake_deadline",
        "info",
        "out",
        "out_size",
        "peer",
        "sock",
        "state",
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
        self.out: deque[bytes | memoryview] = deque()
        self.out_size = 0
        self.want_write = False
        #: Highest sequence number handled in the current read batch, acknowledged after it.
        self.ack_seq: int | None = None
        #: The hub's side of the protocol handshake until the client is welcomed; then None.
        self.handshake: HubHandshake | None = None
        #: The hub's TLS state (sockcli.hub.admission._TlsPending) until the TLS handshake is
        #: done; None otherwise, and always on a hub without TLS.
        self.tls: Any = None

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

    def enqueue(self, data: bytes | memoryview) -> None:
        self.out.append(data)
        self.out_size += len(data)

    def flush(self) -> bool:
        """Write what the kernel takes now; True when the buffer is empty. Raises OSError."""
        while self.out:
            # A memoryview head was partly sent; it stays apart so the hub can tell where the
            # next whole frame starts (it keeps that head when it drops a slow consumer).
            if len(self.out) > 1 and not isinstance(self.out[0], memoryview):
                joined = b"".join(self.out)
                self.out.clear()
                self.out.append(joined)
            chunk = self.out[0]
            try:
                sent = self.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return False
            self.out_size -= sent
            if sent < len(chunk):
                self.out[0] = memoryview(chunk)[sent:]  # no copy of a large remainder
                return False
            self.out.popleft()
        return True

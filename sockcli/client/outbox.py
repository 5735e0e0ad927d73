"""The sending side of the threaded client: frames waiting to be written, and their writer.

``send(wait=False)`` must cost little per message, so its frames wait here and go out
together: in one write by a flusher thread (started on first use) as soon as it gets to run,
at once when the batch is large, or when the client needs the line (a send that waits, flush,
stats, a pong, disconnect). A message that comes after a quiet spell (:data:`IDLE_SECONDS`
since the last write) is written at once by the caller: handing it to the flusher costs a
thread switch, which a loaded machine can stretch to the interpreter's 5 ms switch interval
(p99 latency at 1,000 msg/s was 0.6 to 8.7 ms that way), while a dense stream, whose
messages come microseconds apart, keeps its batches. To a hub that takes batch frames, the
messages of one run (one event, type and instant) are gathered into one
(:mod:`sockcli.protocol.batches`), in order with the frames around them. Frames queued for a
connection that has died are dropped: their sequence numbers are reported lost by the
acknowledgement ledger, never silently resent.
"""

from __future__ import annotations

import _socket
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from sockcli.exceptions import ConnectionError
from sockcli.protocol.batches import BatchBuilder, Key

__all__ = ["COALESCE_BYTES", "IDLE_SECONDS", "Outbox", "batch_limit"]

#: A batch this large is written at once, without waiting for the flusher thread.
COALESCE_BYTES = 64 * 1024
#: A message queued this long after the last write goes out at once (nothing to batch with).
IDLE_SECONDS = 0.0005


class Outbox:
    """Frames for the hub, written in batches; every method but :meth:`close` wants
    :attr:`lock` held by the caller (it is the client's write lock)."""

    def __init__(self, event_name: str, *, connected: Callable[[], _socket.socket | None],
                 on_lost: Callable[[], None]) -> None:
        #: Serialises every write to the hub's socket.
        self.lock = threading.Lock()
        self._event_name = event_name
        self._connected = connected  # the socket while connected, else None
        self._on_lost = on_lost  # called (without the lock) when a write fails
        self._frames: list[bytes] = []
        self._size = 0
        self._for: _socket.socket | None = None  # the connection the frames were queued for
        self._ready = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._written = 0.0  # time.monotonic() of the last write
        #: The run of messages being gathered into a batch frame, for a hub that takes them
        #: (:meth:`batcher_for`); None: every message is a frame of its own.
        self.batcher: BatchBuilder | None = None

    def batcher_for(self, sock: _socket.socket, limit: int | None) -> BatchBuilder | None:
        """The batcher of ``sock``'s runs, frames of at most ``limit`` bytes (None: its hub
        takes no batches); what waited for an earlier connection is dropped first."""
        self._take(sock)
        if limit is None:
            self._end_run()
            self.batcher = None
        elif self.batcher is None or self.batcher.limit != limit:
            self._end_run()
            self.batcher = BatchBuilder(limit)
        return self.batcher

    def add(self, sock: _socket.socket, data: bytes, *, now: bool) -> None:
        """Queue one frame for ``sock``; write the batch at once if ``now`` or large."""
        self._take(sock)
        first = not self.waiting
        self._end_run()  # the frames keep the order of their sequence numbers
        self._frames.append(data)
        self._size += len(data)
        if now or self._size >= COALESCE_BYTES or (first and self._quiet()):
            self.write_out(sock)
        elif first:
            self._wake_flusher()

    def add_message(self, sock: _socket.socket, limit: int | None, message: Any,
                    commit: Callable[[], int]) -> bool:
        """Queue ``message`` (a SocketMessage sent with ``wait=False``) as an item of a batch
        frame, if ``sock``'s hub takes batches (``limit``: :func:`batch_limit`) and it fits
        one; ``commit`` gives its sequence number then. False: send it as a message frame
        (which says why it is too large, if it is). MessageError for data MessagePack
        cannot carry."""
        batcher = self.batcher_for(sock, limit)
        if batcher is None:
            return False
        key = (message.event_name, message.message_type.value, message.timestamp_ms,
               message.timestamp_iso)
        packed = batcher.pack(message.data)
        if not batcher.fits(key, packed):
            return False
        self.add_item(sock, key, commit(), packed)
        return True

    def add_item(self, sock: _socket.socket, key: Key, seq: int, packed: bytes) -> None:
        """Queue one message for ``sock`` as an item of a batch frame (``packed``: its data,
        from the batcher, which found it fits)."""
        assert self.batcher is not None
        self._take(sock)
        first = not self.waiting
        done = self.batcher.add(key, seq, packed)
        if done is not None:
            self._frames.append(done)
            self._size += len(done)
        if self._size + self.batcher.pending >= COALESCE_BYTES or (first and self._quiet()):
            self.write_out(sock)
        elif first:
            self._wake_flusher()

    def _take(self, sock: _socket.socket) -> None:
        if self._for is not sock:  # frames left for a dead connection are lost
            self.clear()
            self._for = sock

    def _quiet(self) -> bool:
        return time.monotonic() - self._written >= IDLE_SECONDS

    def _end_run(self) -> None:
        if self.batcher is not None:
            done = self.batcher.finish()
            if done is not None:
                self._frames.append(done)
                self._size += len(done)

    def write_out(self, sock: _socket.socket, extra: bytes = b"") -> None:
        """Write the waiting frames, then ``extra``, in one call. Raises ConnectionError."""
        self._end_run()
        frames = self._frames if self._for is sock else []  # else queued for a dead one
        payload = b"".join(frames) + extra if frames else extra
        self._frames = []
        self._size = 0
        if not payload:
            return
        try:
            sock.sendall(payload)
            self._written = time.monotonic()
        except OSError as exc:
            self._on_lost()
            raise ConnectionError(f"lost the hub of {self._event_name!r} while sending: "
                                  f"{exc.strerror or exc}") from exc

    @property
    def waiting(self) -> bool:
        return bool(self._frames) or bool(self.batcher and self.batcher.pending)

    def clear(self) -> None:
        self._frames.clear()
        self._size = 0
        if self.batcher is not None:
            self.batcher.clear()

    def close(self) -> None:
        """Let the flusher thread end once nothing waits."""
        self._closed = True
        self._ready.set()

    def reopen(self) -> None:
        self._closed = False

    def _wake_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                             name=f"sockcli-flush-{self._event_name}")
            self._flusher.start()
        self._ready.set()

    def _flush_loop(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            with self.lock:
                sock = self._connected()
                if sock is not None:
                    with contextlib.suppress(ConnectionError):  # the reader sees the loss
                        self.write_out(sock)
                if self._closed and not self.waiting:
                    self._flusher = None
                    return


def batch_limit(welcome: Any, buffer_size: int) -> int | None:
    """The largest batch frame for a connection: within this client's ``buffer_size`` and
    the hub's ``max_frame_size``; None if the hub's welcome does not list "batch"."""
    if "batch" not in welcome.features:
        return None
    return min(buffer_size, welcome.max_frame_size or buffer_size)

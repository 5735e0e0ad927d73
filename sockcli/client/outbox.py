"""The sending side of the threaded client: frames waiting to be written, and their writer.

``send(wait=False)`` must cost little per message, so its frames wait here and go out
together: in one write by a flusher thread (started on first use) as soon as it gets to run,
at once when the batch is large, or when the client needs the line (a send that waits, flush,
stats, a pong, disconnect). Frames queued for a connection that has died are dropped: their
sequence numbers are reported lost by the acknowledgement ledger, never silently resent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from sockcli.exceptions import ConnectionError

__all__ = ["COALESCE_BYTES", "Outbox"]

#: A batch this large is written at once, without waiting for the flusher thread.
COALESCE_BYTES = 64 * 1024


class Outbox:
    """Frames for the hub, written in batches; every method but :meth:`close` wants
    :attr:`lock` held by the caller (it is the client's write lock)."""

    def __init__(self, event_name: str, *, connected: Callable[[], socket.socket | None],
                 on_lost: Callable[[], None]) -> None:
        #: Serialises every write to the hub's socket.
        self.lock = threading.Lock()
        self._event_name = event_name
        self._connected = connected  # the socket while connected, else None
        self._on_lost = on_lost  # called (without the lock) when a write fails
        self._frames: list[bytes] = []
        self._size = 0
        self._for: socket.socket | None = None  # the connection the frames were queued for
        self._ready = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False

    def add(self, sock: socket.socket, data: bytes, *, now: bool) -> None:
        """Queue one frame for ``sock``; write the batch at once if ``now`` or large."""
        if self._for is not sock:  # frames left for a dead connection are lost
            self._frames.clear()
            self._size = 0
            self._for = sock
        self._frames.append(data)
        self._size += len(data)
        if now or self._size >= COALESCE_BYTES:
            self.write_out(sock)
        elif len(self._frames) == 1:
            self._wake_flusher()

    def write_out(self, sock: socket.socket, extra: bytes = b"") -> None:
        """Write the waiting frames, then ``extra``, in one call. Raises ConnectionError."""
        frames = self._frames if self._for is sock else []  # else queued for a dead one
        payload = b"".join(frames) + extra if frames else extra
        self._frames = []
        self._size = 0
        if not payload:
            return
        try:
            sock.sendall(payload)
        except OSError as exc:
            self._on_lost()
            raise ConnectionError(f"lost the hub of {self._event_name!r} while sending: "
                                  f"{exc.strerror or exc}") from exc

    @property
    def waiting(self) -> bool:
        return bool(self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self._size = 0

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
                if self._closed and not self._frames:
                    self._flusher = None
                    return

"""The connections a hub's loop holds, and how output reaches them.

:class:`ConnectionTable` is the part of :class:`~sockcli.hub.loop.HubLoop` that owns the
connection table and the selector registrations: writing frames (each connection renders
them its way: MessagePack frames, or lines for the JSON-lines clients), flushing what waits,
what the selector watches for each connection (reading unless flow control pauses it, writing
while output waits), dropping a client with its reason, and closing. The loop adds accepting,
reading and the timers.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from typing import Any

from sockcli.hub.connection import Connection, ConnectionState
from sockcli.hub.mailbox import Mailbox
from sockcli.hub.router import Router
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import Codec

__all__ = ["ConnectionTable"]

_CLOSE_GRACE = 1.0  # seconds a dropped client gets to read why it is dropped


class ConnectionTable:
    """The connections of one hub's loop, by descriptor, and their output."""

    # Set by the loop before it serves.
    config: Any
    codec: Codec
    router: Router
    mailbox: Mailbox

    def __init__(self) -> None:
        self._conns: dict[int, Connection] = {}
        self._dirty: set[Connection] = set()
        self._unsettled: set[Connection] = set()  # in handshake, closing or mid-frame: deadlines
        self.selector: selectors.BaseSelector | None = None

    def _pause(self, conn: Connection, paused: bool) -> None:
        if conn.paused != paused:
            conn.paused = paused
            if not paused and conn.frame_deadline:  # its frame's time restarts with reading
                conn.frame_deadline = time.monotonic() + self.config.frame_timeout
            self._apply_interest(conn)

    def _write(self, conn: Connection, frame: fr.Frame) -> None:
        conn.enqueue(conn.render(frame, self.codec))
        self._mark_dirty(conn)

    def _send_line(self, conn: Connection, line: bytes) -> None:
        conn.enqueue(line)
        self._mark_dirty(conn)

    def _mark_dirty(self, conn: Connection) -> None:
        self._dirty.add(conn)

    def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if conn.fd not in self._conns:
                continue
            try:
                done = conn.flush()
            except OSError:
                self._close(conn)
                continue
            if done and conn.state is ConnectionState.CLOSING:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_WR)
            self._set_write_interest(conn, not done)

    def _set_write_interest(self, conn: Connection, want: bool) -> None:
        if conn.want_write == want or self.selector is None:
            return
        conn.want_write = want
        self._apply_interest(conn)

    def _apply_interest(self, conn: Connection) -> None:
        """Register what the loop waits for on ``conn``: reading unless it is paused (flow
        control), writing while output waits; neither: not registered at all."""
        sel = self.selector
        if sel is None or conn.fd not in self._conns:
            return
        events = (0 if conn.paused else selectors.EVENT_READ) | \
            (selectors.EVENT_WRITE if conn.want_write else 0)
        try:
            registered = sel.get_key(conn.sock).events
        except KeyError:
            if events:
                sel.register(conn.sock, events, conn)
            return
        if not events:
            sel.unregister(conn.sock)
        elif events != registered:
            sel.modify(conn.sock, events, conn)

    def _drop(self, conn: Connection, error: fr.ErrorFrame) -> None:
        """Tell the client why, then close once it has read that (or after a grace period)."""
        if conn.state is ConnectionState.CLOSING:
            return
        if conn.tls is not None and conn.tls.wrapped:  # mid TLS handshake: writing would spin
            self._close(conn)                          # on OpenSSL's "want read"; it reads none
            return
        self._forget(conn)
        conn.state = ConnectionState.CLOSING
        self._pause(conn, False)  # it must be read to see it close
        self._unsettled.add(conn)
        conn.close_deadline = time.monotonic() + _CLOSE_GRACE
        conn.ack_seq = None
        self._write(conn, error)

    def _forget(self, conn: Connection) -> None:
        if conn.info is not None and conn.info.client_id:
            self.router.remove(conn)
            self.mailbox.left(conn.info.client_id)

    def _close(self, conn: Connection) -> None:
        if self._conns.pop(conn.fd, None) is None:
            return
        self._forget(conn)
        self._dirty.discard(conn)
        self._unsettled.discard(conn)
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.sock)
        conn.sock.close()

"""The hub's text ways in: its FIFO and the clients of its JSON-lines socket.

Both read the line grammar of :mod:`sockcli.lines` and publish each line as a client's
message (:meth:`Router.publish <sockcli.hub.router.Router.publish>`): the same checks, the
same retained values, the same flow control; a refused line is counted in the hub's
``rejected`` stat and logged at most once per interval (:class:`~sockcli.hub.rejects.RejectLog`),
and the next line is read as if nothing had happened. A lines client is told, in a line of
its own, which of its lines was refused and why.

:class:`LineIntake` runs on the hub's loop thread; the loop gives it the connections'
bytes and hands it the FIFO's readiness, and it gives back frames to write through the
callables it was given, as the router does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sockcli.hub.base import ClientInfo
from sockcli.hub.connection import Connection
from sockcli.hub.fifo import HubFifo
from sockcli.hub.linesconn import LinesConnection, parse_first_line
from sockcli.hub.rejects import RejectLog
from sockcli.hub.router import HubStats, Router
from sockcli.lines import LineError, Rejected
from sockcli.protocol import frames as fr

__all__ = ["LineIntake"]


class LineIntake:
    """The FIFO (if the hub has one) and what is particular to lines clients."""

    def __init__(self, *, event_name: str, router: Router, stats: HubStats,
                 welcomed: Callable[[ClientInfo], None],
                 drop: Callable[[Connection, fr.ErrorFrame], None],
                 send_line: Callable[[Connection, bytes], None]) -> None:
        self.event_name = event_name
        self.router = router
        self.stats = stats
        self._welcomed = welcomed  # publish a client's (new) ClientInfo
        self._drop = drop
        self._send_line = send_line  # enqueue bytes for a connection and mark it dirty
        self.fifo: HubFifo | None = None
        self._fifo_info: ClientInfo | None = None
        self._fifo_rejects: RejectLog | None = None
        self._lines_rejects = RejectLog("lines socket")

    # -- the FIFO -------------------------------------------------------------------------

    def open_fifo(self, fifo: HubFifo) -> None:
        self.fifo = fifo
        self._fifo_info = ClientInfo(client_id="fifo", name="fifo", subscribed=False,
                                     types=None, connected_ms=time.time_ns() // 1_000_000,
                                     peer=str(fifo.path))
        self._fifo_rejects = RejectLog(f"FIFO {fifo.path}")

    def read_fifo(self) -> bool:
        """Publish what the FIFO holds; True when more may wait (read again next turn)."""
        fifo = self.fifo
        assert fifo is not None
        items, more = fifo.read()
        self._publish_fifo(items)
        return more

    def _publish_fifo(self, items: list[Any]) -> None:
        fifo = self.fifo
        assert fifo is not None and self._fifo_info is not None
        assert self._fifo_rejects is not None
        publish, info = self.router.publish, self._fifo_info
        for item in items:
            if type(item) is Rejected:
                self._fifo_reject(item)
                continue
            refusal = publish(item.message_type, item.data, None, info)
            if refusal is None:
                fifo.messages += 1
            else:
                fifo.rejected += 1
                self._fifo_rejects.note(Rejected(item.number, refusal[1], ""))

    def _fifo_reject(self, rejected: Rejected) -> None:
        assert self.fifo is not None and self._fifo_rejects is not None
        self.stats.rejected += 1
        self.fifo.rejected += 1
        self._fifo_rejects.note(rejected)

    def fifo_figures(self) -> dict[str, Any] | None:
        fifo = self.fifo
        if fifo is None:
            return None
        return {"path": str(fifo.path), "messages": fifo.messages, "rejected": fifo.rejected}

    # -- timers ---------------------------------------------------------------------------

    @property
    def timed(self) -> bool:
        """Whether a deadline of ours may pass: the loop must wake up to look."""
        fifo = self.fifo
        return (fifo is not None and bool(fifo.partial_deadline)) or \
            self._lines_rejects.due() is not None or \
            (self._fifo_rejects is not None and self._fifo_rejects.due() is not None)

    def expire(self, now: float) -> None:
        fifo = self.fifo
        if fifo is not None and fifo.partial_deadline and now >= fifo.partial_deadline:
            self._publish_fifo(fifo.take_partial())
        if self._fifo_rejects is not None:
            self._fifo_rejects.tick()
        self._lines_rejects.tick()

    def close(self) -> None:
        """The hub stops: say what is still held of the refused lines."""
        if self._fifo_rejects is not None:
            self._fifo_rejects.tick(final=True)
        self._lines_rejects.tick(final=True)

    # -- lines clients --------------------------------------------------------------------

    def accepted(self, conn: LinesConnection, client_id: str) -> None:
        """A lines client passed admission: it subscribes to everything until its first
        line says otherwise, what it is sent meanwhile held (:meth:`settle`)."""
        from sockcli.hub.connection import ConnectionState

        assert conn.info is not None
        conn.handshake = None
        conn.state = ConnectionState.ACTIVE
        conn.info = ClientInfo(client_id=client_id, name=None, subscribed=True, types=None,
                               connected_ms=conn.connected_ms, peer=conn.peer,
                               pid=conn.info.pid, uid=conn.info.uid, gid=conn.info.gid)
        self._welcomed(conn.info)
        self.router.add(conn, replay=False)

    def read(self, conn: LinesConnection, data: bytes) -> bool:
        """Handle what a lines client wrote (``b""``: it ended its output); False when the
        connection is to be closed."""
        ended = not data
        if conn.first_line:
            data = self._first_line(conn, data, ended)
        items = conn.reader.feed(data) if data else []
        if ended:
            items += conn.reader.end()
        for item in items:
            if conn.closing:
                break
            if isinstance(item, Rejected):
                self._refuse(conn, item.number, fr.ErrorCode.INVALID_MESSAGE,
                             f"line {item.number}: {item.reason}", item)
                continue
            assert conn.info is not None
            refusal = self.router.publish(item.message_type, item.data, conn, conn.info)
            if refusal is not None:
                self._refuse(conn, item.number, refusal[0], refusal[1],
                             Rejected(item.number, refusal[1], ""))
        return not ended

    def _first_line(self, conn: LinesConnection, data: bytes, ended: bool) -> bytes:
        """Look for ``conn``'s first line in what it wrote so far: a ``#`` line settles its
        subscription (:func:`parse_first_line`) and is not published; any other line settles
        it as a client that said nothing. Return what is left for the line reader."""
        start = conn.start
        start += data
        newline = start.find(b"\n")
        if newline < 0 and not ended and len(start) <= conn.reader.max_line_bytes:
            return b""  # the first line is not complete yet
        line = bytes(start if newline < 0 else start[:newline])
        rest = b"" if newline < 0 else bytes(start[newline + 1:])
        start.clear()
        if not line.lstrip(b" \t").startswith(b"#") or len(line) > conn.reader.max_line_bytes:
            self.settle(conn, None)
            return line + (b"" if newline < 0 else b"\n") + rest
        conn.reader.lines += 1
        try:
            subscription = parse_first_line(line.decode("utf-8"))
        except (LineError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, LineError) else "not UTF-8"
            self.stats.rejected += 1
            self._lines_rejects.note(Rejected(1, reason, line[:60].decode("utf-8", "replace")))
            self._drop(conn, fr.ErrorFrame(code=fr.ErrorCode.INVALID_MESSAGE, fatal=True,
                                           reason=f"line 1: {reason}"))
            return b""
        self.settle(conn, subscription)
        return rest

    def settle(self, conn: LinesConnection, subscription: Any) -> None:
        """The first line was read (``subscription``: what it asked, None: nothing) or the
        wait for it is over: apply it, then send what was held and what to replay."""
        if not conn.first_line:
            return
        conn.first_line = False
        held, conn.held = conn.held, None
        info = conn.info
        assert info is not None
        last = False
        if subscription is not None:
            conn.slow = subscription.slow
            last = subscription.last
            info = ClientInfo(client_id=info.client_id, name=subscription.name,
                              subscribed=subscription.subscribe, types=subscription.types,
                              connected_ms=info.connected_ms, peer=info.peer, pid=info.pid,
                              uid=info.uid, gid=info.gid)
            conn.info = info
            self._welcomed(info)
            self.router.changed(conn)
        if not info.subscribed:
            return
        self.router.replay(conn, last)
        for line, message_type in held or ():
            if conn.accepts(message_type):
                self.router.deliver(conn, line, message_type)

    def _refuse(self, conn: LinesConnection, number: int, code: str, reason: str,
                rejected: Rejected) -> None:
        self.stats.rejected += 1
        self._lines_rejects.note(rejected)
        self._send_line(conn, conn.error_line(code, reason, number))

"""The hub's loop: one selectors loop that serves every connection of one event.

:class:`HubLoop` owns the sockets of a running hub: the listener, the connections and the
wake-up socket through which other threads hand it work (:meth:`HubLoop.post`). It accepts,
reads, writes, and keeps the timers (handshake, partial frame, closing grace). What it reads
goes to :class:`~sockcli.hub.admission.Admission` until the client is welcomed, then to
:class:`~sockcli.hub.router.Router`; both hand it back frames to write. One thread holds any
number of connections (no thread per client), and everything here is owned by that thread but
:meth:`post` and :meth:`clients`, which take the one lock: the queue of work from other threads
and the snapshot of connected clients.

The public face of a hub, and what differs per transport, is
:class:`~sockcli.hub.server.HubServer`, which gives the loop the two things it needs of it as
callables (who a peer is, the live figures), so that the loop does not know the server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sockcli.exceptions import MessageError
from sockcli.hub.admission import Admission, TlsOutcome
from sockcli.hub.base import ClientInfo
from sockcli.hub.connection import Connection, ConnectionState
from sockcli.hub.conntable import ConnectionTable
from sockcli.hub.descriptors import SpareDescriptor
from sockcli.hub.fifo import HubFifo
from sockcli.hub.flow import FlowControl
from sockcli.hub.intake import LineIntake
from sockcli.hub.linesconn import FIRST_LINE_WAIT, LinesConnection, error_frame_line
from sockcli.hub.mailbox import Mailbox
from sockcli.hub.replies import reply_to
from sockcli.hub.router import HubStats, Router
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from sockcli.types import MessageType

#: ``peer_info(sock, addr)``: the peer's address text and credentials (the transport's).
PeerInfo = Callable[[socket.socket, Any], tuple[str, dict[str, int]]]

__all__ = ["HubLoop"]

log = logging.getLogger("sockcli.hub")

_RECV_SIZE = 256 * 1024
_ACCEPTS_PER_WAKE = 128
#: The selector data of the JSON-lines listener (the MessagePack listener's is None).
_LINES = "lines"


class HubLoop(ConnectionTable):
    """The selector loop of one hub, from :meth:`open` to :meth:`close_all`."""

    def __init__(self, *, event_name: str, config: Any, stats: HubStats, peer_info: PeerInfo,
                 figures: Callable[[], dict[str, Any]]) -> None:
        self.event_name = event_name
        self._peer_info = peer_info
        self._figures = figures  # the hub's stats(), for stats requests
        self.config = config
        self.stats = stats
        self.codec = Codec(max_frame_size=config.buffer_size)
        self.router = Router(event_name=self.event_name, config=config, codec=self.codec,
                             stats=stats, write=self._write, mark_dirty=self._mark_dirty,
                             drop=self._drop)
        self.admission: Admission | None = None  # given at open: transports set their parts
        self.listener: socket.socket | None = None
        #: What other threads give the loop, and the clients they may see.
        self.mailbox = Mailbox(self.event_name)
        super().__init__()
        self.flow = FlowControl(self.router, self._conns, pause=self._pause,
                                consume=self._resume_reading)
        #: The FIFO and the lines clients' particulars (sockcli.hub.intake).
        self.intake = LineIntake(event_name=event_name, router=self.router, stats=stats,
                                 welcomed=self.mailbox.welcomed, drop=self._drop,
                                 send_line=self._send_line)
        self.lines_listener: socket.socket | None = None
        self._fifo_read = False  # whether the FIFO is in the selector
        self._fifo_more = False  # whether it had more than one turn's reads
        self._spare = SpareDescriptor(self.event_name)
        #: The thread running :meth:`run`, once it runs.
        self.ident: int | None = None

    # -- from other threads -----------------------------------------------------------------

    def post(self, frame: bytes, message_type: MessageType, client_id: str | None,
             wire: dict[str, Any] | None = None) -> None:
        """Hand the loop an encoded message to route (any thread): see :meth:`Mailbox.post`;
        a broadcast's ``wire`` map is retained as the last of its type."""
        wake = self.mailbox.post(frame, message_type, client_id, wire)
        if threading.get_ident() == self.ident:
            self._drain_inbox()
        elif wake:
            self.mailbox.wake()

    # -- start-up and shut-down -----------------------------------------------------------

    def open(self, listener: socket.socket, admission: Admission, *,
             lines_listener: socket.socket | None = None, fifo: HubFifo | None = None) -> None:
        """Take the bound listening sockets (MessagePack, JSON lines) and the FIFO; the loop
        is ready to :meth:`run`."""
        listener.setblocking(False)
        self.admission = admission
        self.listener = listener
        wake_r = self.mailbox.open()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.selector.register(wake_r, selectors.EVENT_READ, wake_r)
        if lines_listener is not None:
            lines_listener.setblocking(False)
            self.lines_listener = lines_listener
            self.selector.register(lines_listener, selectors.EVENT_READ, _LINES)
        if fifo is not None:
            self.intake.open_fifo(fifo)
            self._read_fifo(True)

    def run(self, stopping: Callable[[], bool]) -> None:
        """Serve until ``stopping()`` is true after a wake-up; then the caller closes all."""
        self.ident = threading.get_ident()
        sel = self.selector
        assert sel is not None
        mailbox = self.mailbox
        while not stopping():
            # Frames that come one at a time make a turn's bookkeeping weigh: timers only
            # when one is set, the inbox only when something waits.
            timed = self._timed()
            timeout = 0.0 if self._fifo_more or self._dirty else 0.25 if timed else None
            for key, mask in sel.select(timeout):
                data = key.data
                if isinstance(data, Connection):  # the usual event first
                    if data.tls is not None and not data.closing:
                        self._tls_event(data)  # TLS handshake first, then frames
                        continue
                    if mask & selectors.EVENT_READ:
                        self._read_guarded(data)
                    if mask & selectors.EVENT_WRITE and data.fd in self._conns:
                        self._mark_dirty(data)
                elif data is None:
                    self._accept(self.listener)
                elif data is mailbox.wake_r:
                    mailbox.drain_wake()
                elif data is _LINES:
                    self._accept(self.lines_listener, lines=True)
                elif type(data) is HubFifo:
                    self._fifo_more = self.intake.read_fifo()
            if mailbox.waiting:
                self._drain_inbox()
            self._flush_dirty()
            self._regulate()
            if timed:
                self._expire()

    def close_all(self) -> None:
        """Tell every client the hub is stopping, close every socket."""
        self.mailbox.clear()
        self.intake.close()
        bye = fr.ErrorFrame(code=fr.ErrorCode.SHUTTING_DOWN, fatal=True,
                            reason=f"hub {self.event_name!r} is stopping")
        for conn in list(self._conns.values()):
            if not conn.closing:
                conn.enqueue(conn.render(bye, self.codec))
            with contextlib.suppress(OSError):
                conn.flush()
            self._close(conn)
        sel = self.selector
        self._read_fifo(False)
        for sock in (self.listener, self.lines_listener, self.mailbox.wake_r):
            if sock is not None and sel is not None:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(sock)
        for sock in (self.listener, self.lines_listener):
            if sock is not None:
                sock.close()
        self.mailbox.close()
        if sel is not None:
            sel.close()
        self._spare.close()

    # -- the loop ---------------------------------------------------------------------------

    def _timed(self) -> bool:
        """Whether a deadline may pass (handshakes, partial frames, closing, stalls, the
        spare descriptor, the FIFO, the rejects' reports): then :meth:`_expire` runs."""
        return bool(self._unsettled) or self.flow.timed or self._spare.paused or \
            self.intake.timed

    def _read_fifo(self, on: bool) -> None:
        """Read the FIFO (``on``) or not (publishers are held back: flow control)."""
        fifo = self.intake.fifo
        if fifo is None or self.selector is None or on == self._fifo_read:
            return
        self._fifo_read = on
        if on:
            self.selector.register(fifo.fd, selectors.EVENT_READ, fifo)
        else:
            self._fifo_more = False
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fifo.fd)

    # -- flow control (sockcli.hub.flow) ---------------------------------------------------

    def _regulate(self) -> None:
        """Once per loop turn, after the writes: who is read (sockcli.hub.flow)."""
        self.flow.regulate()
        self._read_fifo(not self.flow.holding)
        if self._fifo_more and self._fifo_read:
            self._fifo_more = self.intake.read_fifo()
        if self._dirty:  # a "latest" subscriber's messages, queued once it caught up
            self._flush_dirty()

    def _expire(self) -> None:
        now = time.monotonic()
        if self._spare.paused and self.selector is not None:
            self._spare.resume(now, self.selector)
        if self.flow.timed:
            self.flow.expire(now)
        self.intake.expire(now)
        for conn in list(self._unsettled):
            if type(conn) is LinesConnection and conn.first_line and not conn.closing and \
                    now >= conn.handshake_deadline:  # said nothing: it gets everything
                self.intake.settle(conn, None)
                self._unsettled.discard(conn)
            elif conn.state is ConnectionState.HANDSHAKE and now >= conn.handshake_deadline:
                assert self.admission is not None
                self._drop(conn, self.admission.expired(conn))
            elif conn.state is ConnectionState.CLOSING and now >= conn.close_deadline:
                self._close(conn)
            elif conn.frame_deadline and now >= conn.frame_deadline and not conn.closing \
                    and not conn.paused:  # held back, it cannot finish its frame
                self.stats.rejected += 1
                self._drop(conn, fr.ErrorFrame(
                    code=fr.ErrorCode.MALFORMED, fatal=True,
                    reason=f"no complete frame within frame_timeout "
                           f"({self.config.frame_timeout:g} s): {conn.codec.buffered} bytes "
                           "of an unfinished frame held"))

    def _accept(self, listener: socket.socket | None, lines: bool = False) -> None:
        assert listener is not None and self.selector is not None
        admission = self.admission
        assert admission is not None
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # keep serving who is already here
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._out_of_descriptors(listener, lines)
                else:
                    log.warning("hub %s cannot accept: %s", self.event_name, exc)
                return
            sock.setblocking(False)
            peer, creds = self._peer_info(sock, addr)
            conn = LinesConnection(sock, peer, self.codec, max_line_bytes=self.config.buffer_size,
                                   first_line_wait=FIRST_LINE_WAIT) if lines else \
                Connection(sock, peer, Codec(max_frame_size=self.config.buffer_size),
                           self.config.handshake_timeout)
            conn.info = ClientInfo(client_id="", name=None, subscribed=False, types=None,
                                   connected_ms=conn.connected_ms, peer=peer, **creds)
            self._conns[conn.fd] = conn
            self._unsettled.add(conn)
            self.selector.register(sock, selectors.EVENT_READ, conn)
            live = len(self._conns) - sum(
                1 for c in self._unsettled if c.state is ConnectionState.CLOSING)
            refusal = admission.accept(conn, live)
            if refusal is not None:
                self._drop(conn, refusal)
            elif type(conn) is LinesConnection:
                self.intake.accepted(conn, admission.new_client_id())
                self._pause(conn, self.flow.holds(conn))

    def _out_of_descriptors(self, listener: socket.socket, lines: bool) -> None:
        """Every descriptor is in use: refuse the waiting clients (sockcli.hub.descriptors)."""
        assert self.selector is not None
        error = fr.ErrorFrame(
            code=fr.ErrorCode.MAX_CONNECTIONS, fatal=True,
            reason=f"hub {self.event_name!r} is out of file descriptors; try again later")
        refusal = error_frame_line(error) if lines else self.codec.send(error)
        self.stats.refused_connections += self._spare.refuse_waiting(
            listener, refusal, self.selector, data=_LINES if lines else None)

    def _tls_event(self, conn: Connection) -> None:
        """One step of a connection's TLS handshake (sockcli.hub.admission)."""
        assert self.admission is not None
        try:
            outcome, error = self.admission.tls_step(conn, self._rewrap)
        except Exception:
            log.exception("hub %s: unexpected error in the TLS handshake of %s; dropping it",
                          self.event_name, conn.peer)
            self._close(conn)
            return
        if outcome is TlsOutcome.CLOSE:
            self._close(conn)
        elif outcome is TlsOutcome.DROP:
            assert error is not None
            self._set_write_interest(conn, bool(conn.out))
            self._drop(conn, error)
        elif outcome is TlsOutcome.DONE:
            self._set_write_interest(conn, bool(conn.out))
            self._read_guarded(conn)  # the hello may have come with the handshake's end
        else:
            self._set_write_interest(conn, outcome is TlsOutcome.WAIT_WRITE)

    def _rewrap(self, conn: Connection,
                wrap: Callable[[socket.socket], socket.socket]) -> None:
        """Replace a connection's socket by its TLS wrapping, in the selector too."""
        assert self.selector is not None
        self.selector.unregister(conn.sock)
        conn.sock = wrap(conn.sock)
        conn.want_write = False
        self.selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _read_guarded(self, conn: Connection) -> None:
        """Serve one readable connection; a bug its input triggers costs it, not the hub."""
        try:
            self._read(conn)
        except Exception:
            log.exception("hub %s: unexpected error serving %s; dropping it", self.event_name,
                          conn.peer)
            self._close(conn)

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if conn.state is ConnectionState.CLOSING:
            if not data:
                self._close(conn)
            return  # discard: we are only waiting for the peer to read our last words
        if type(conn) is LinesConnection:
            self._read_lines(conn, data)
            return
        fed = conn.codec.buffered + len(data)  # for the frame deadline: did a frame end?
        conn.codec.receive_data(data)
        self._consume(conn, fed)

    def _consume(self, conn: Connection, fed: int) -> None:
        """Handle the complete frames ``conn``'s codec holds, then acknowledge them. Stops
        early, leaving the rest in the codec, when the replies waiting for ``conn`` pass
        ``send_buffer_limit``: a client that does not read its replies is not read either."""
        router = self.router
        limit = router.send_buffer_limit
        next_map = conn.codec.next_map
        active = ConnectionState.ACTIVE
        try:
            while not conn.closing:
                m = next_map()
                if m is NEED_DATA:
                    break
                if m is CLOSED:
                    self._close(conn)
                    return
                kind = m.get("kind") if type(m) is dict else None
                if kind == "message" and conn.state is active and not router.handlers and \
                        router.relay_map(conn, m):
                    # The hot path: no frame or message objects. Relaying never closes the
                    # sender: only its own replies can choke it.
                    if conn.out_size > limit:
                        self.flow.choke(conn)
                        break
                    continue
                if kind == "batch" and conn.state is active and not router.handlers and \
                        router.relay_batch(conn, m):
                    pass  # the same for a batch of messages
                else:
                    try:
                        frame = fr.frame_from_map(m)
                    except fr.RefusedMessageError as exc:
                        if conn.state is not ConnectionState.ACTIVE:
                            raise
                        # That message only: a type unknown here, a timestamp_iso no date.
                        router.refuse(conn, exc)
                    else:
                        self._handle(conn, frame)
                if conn.out_size > limit and conn.state is ConnectionState.ACTIVE:
                    self.flow.choke(conn)
                    break
        except MessageError as exc:
            self.stats.rejected += 1
            self._drop(conn, fr.ErrorFrame(code=exc.code, reason=str(exc), fatal=True))
        if conn.ack_seq is not None and conn.state is ConnectionState.ACTIVE:
            self._write(conn, fr.Ack(seq=conn.ack_seq))
            conn.ack_seq = None
        if conn.frame_deadline or conn.codec.buffered:
            self._track_partial_frame(conn, fed)

    def _read_lines(self, conn: LinesConnection, data: bytes) -> None:
        """What a lines client wrote (sockcli.hub.intake); it ended its output: close it."""
        if not self.intake.read(conn, data):
            self._close(conn)
            return
        if not conn.first_line and not conn.closing:
            self._unsettled.discard(conn)
        if conn.out_size > self.router.send_buffer_limit and not conn.closing:
            self.flow.choke(conn)  # it does not read what the hub says about its lines

    def _resume_reading(self, conn: Connection) -> None:
        """Flow control reads ``conn`` again: handle the frames its codec kept meanwhile (a
        lines client keeps nothing: what it wrote waits in the kernel)."""
        if type(conn) is not LinesConnection:
            self._consume(conn, conn.codec.buffered)

    def _track_partial_frame(self, conn: Connection, fed: int) -> None:
        """Keep the deadline of the incomplete frame ``conn`` holds (Connection.partial)."""
        if conn.closing or self._conns.get(conn.fd) is not conn:
            return
        if conn.partial(fed, self.config.frame_timeout):
            self._unsettled.add(conn)
        elif conn.state is ConnectionState.ACTIVE:
            self._unsettled.discard(conn)

    def _handle(self, conn: Connection, frame: fr.Frame) -> None:
        if conn.state is ConnectionState.HANDSHAKE:
            assert self.admission is not None
            reply = self.admission.handshake(conn, frame)
            if isinstance(reply, fr.Welcome):
                self._activate(conn, reply)
            elif isinstance(reply, fr.ErrorFrame):
                self._drop(conn, reply)
            else:
                self._write(conn, reply)
            return
        if isinstance(frame, fr.MessageFrame):
            self.router.client_message(conn, frame)
        elif isinstance(frame, fr.Batch):
            self.router.client_batch(conn, frame)
        elif (answer := reply_to(frame, self._figures)) is not None:
            self._write(conn, answer)

    def _activate(self, conn: Connection, welcome: fr.Welcome) -> None:
        """The handshake is complete: welcome the client and hand it to the router."""
        assert self.admission is not None and conn.handshake is not None
        hello = conn.handshake.hello
        last, peek = (hello.last, hello.peek) if hello is not None else (False, False)
        info = self.admission.welcomed(conn)
        conn.info = info
        conn.state = ConnectionState.ACTIVE
        self._unsettled.discard(conn)
        self.mailbox.welcomed(info)
        self._write(conn, welcome)
        self.router.add(conn, last, peek)
        self._pause(conn, self.flow.holds(conn))  # one that comes while others wait, waits

    def _drain_inbox(self) -> None:
        for frame, message_type, client_id, wire in self.mailbox.take():
            if wire is not None and client_id is None:
                self.router.keep(message_type, wire)
            self.router.from_hub(frame, message_type, client_id, wire)

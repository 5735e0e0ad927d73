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
from sockcli.hub.descriptors import SpareDescriptor
from sockcli.hub.flow import FlowControl
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
_CLOSE_GRACE = 1.0  # seconds a dropped client gets to read why it is dropped


class HubLoop:
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
        self.selector: selectors.BaseSelector | None = None
        #: What other threads give the loop, and the clients they may see.
        self.mailbox = Mailbox(self.event_name)
        self._conns: dict[int, Connection] = {}
        self._dirty: set[Connection] = set()
        self._unsettled: set[Connection] = set()  # in handshake, closing or mid-frame: deadlines
        self.flow = FlowControl(self.router, self._conns, pause=self._pause,
                                consume=lambda conn: self._consume(conn, conn.codec.buffered))
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

    def open(self, listener: socket.socket, admission: Admission) -> None:
        """Take the bound listening socket; the loop is ready to :meth:`run`."""
        listener.setblocking(False)
        self.admission = admission
        self.listener = listener
        wake_r = self.mailbox.open()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.selector.register(wake_r, selectors.EVENT_READ, wake_r)

    def run(self, stopping: Callable[[], bool]) -> None:
        """Serve until ``stopping()`` is true after a wake-up; then the caller closes all."""
        self.ident = threading.get_ident()
        sel = self.selector
        assert sel is not None
        while not stopping():
            for key, mask in sel.select(self._select_timeout()):
                if key.data is None:
                    self._accept()
                elif key.data is self.mailbox.wake_r:
                    self.mailbox.drain_wake()
                else:
                    conn: Connection = key.data
                    if conn.tls is not None and not conn.closing:
                        self._tls_event(conn)  # TLS handshake first, then frames
                        continue
                    if mask & selectors.EVENT_READ:
                        self._read_guarded(conn)
                    if mask & selectors.EVENT_WRITE and conn.fd in self._conns:
                        self._mark_dirty(conn)
            self._drain_inbox()
            self._flush_dirty()
            self._regulate()
            self._expire()

    def close_all(self) -> None:
        """Tell every client the hub is stopping, close every socket."""
        self.mailbox.clear()
        bye = self.codec.send(fr.ErrorFrame(code=fr.ErrorCode.SHUTTING_DOWN, fatal=True,
                                            reason=f"hub {self.event_name!r} is stopping"))
        for conn in list(self._conns.values()):
            if not conn.closing:
                conn.enqueue(bye)
            with contextlib.suppress(OSError):
                conn.flush()
            self._close(conn)
        sel = self.selector
        for sock in (self.listener, self.mailbox.wake_r):
            if sock is not None and sel is not None:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(sock)
        if self.listener is not None:
            self.listener.close()
        self.mailbox.close()
        if sel is not None:
            sel.close()
        self._spare.close()

    # -- the loop ---------------------------------------------------------------------------

    def _select_timeout(self) -> float | None:
        return 0.25 if self._unsettled or self.flow.timed or self._spare.paused else None

    # -- flow control (sockcli.hub.flow) ---------------------------------------------------

    def _regulate(self) -> None:
        """Once per loop turn, after the writes: who is read (sockcli.hub.flow)."""
        self.flow.regulate()
        if self._dirty:  # a "latest" subscriber's messages, queued once it caught up
            self._flush_dirty()

    def _pause(self, conn: Connection, paused: bool) -> None:
        if conn.paused != paused:
            conn.paused = paused
            if not paused and conn.frame_deadline:  # its frame's time restarts with reading
                conn.frame_deadline = time.monotonic() + self.config.frame_timeout
            self._apply_interest(conn)

    def _expire(self) -> None:
        now = time.monotonic()
        if self._spare.paused and self.listener is not None and self.selector is not None:
            self._spare.resume(now, self.listener, self.selector)
        if self.flow.timed:
            self.flow.expire(now)
        for conn in list(self._unsettled):
            if conn.state is ConnectionState.HANDSHAKE and now >= conn.handshake_deadline:
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

    def _accept(self) -> None:
        assert self.listener is not None and self.selector is not None
        admission = self.admission
        assert admission is not None
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # keep serving who is already here
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._out_of_descriptors()
                else:
                    log.warning("hub %s cannot accept: %s", self.event_name, exc)
                return
            sock.setblocking(False)
            peer, creds = self._peer_info(sock, addr)
            conn = Connection(sock, peer, Codec(max_frame_size=self.config.buffer_size),
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

    def _out_of_descriptors(self) -> None:
        """Every descriptor is in use: refuse the waiting clients (sockcli.hub.descriptors)."""
        assert self.listener is not None and self.selector is not None
        refusal = self.codec.send(fr.ErrorFrame(
            code=fr.ErrorCode.MAX_CONNECTIONS, fatal=True,
            reason=f"hub {self.event_name!r} is out of file descriptors; try again later"))
        self.stats.refused_connections += self._spare.refuse_waiting(
            self.listener, refusal, self.selector)

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
        fed = conn.codec.buffered + len(data)  # for the frame deadline: did a frame end?
        conn.codec.receive_data(data)
        self._consume(conn, fed)

    def _consume(self, conn: Connection, fed: int) -> None:
        """Handle the complete frames ``conn``'s codec holds, then acknowledge them. Stops
        early, leaving the rest in the codec, when the replies waiting for ``conn`` pass
        ``send_buffer_limit``: a client that does not read its replies is not read either."""
        router = self.router
        limit = router.send_buffer_limit
        try:
            while not conn.closing:
                m = conn.codec.next_map()
                if m is NEED_DATA:
                    break
                if m is CLOSED:
                    self._close(conn)
                    return
                if type(m) is dict and m.get("kind") == "message" and \
                        conn.state is ConnectionState.ACTIVE and not router.handlers and \
                        router.relay_map(conn, m):
                    pass  # the hot path: no frame or message objects
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
            self.router.from_hub(frame, message_type, client_id)

    # -- writing and closing --------------------------------------------------------------

    def _write(self, conn: Connection, frame: fr.Frame) -> None:
        conn.enqueue(self.codec.send(frame))
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

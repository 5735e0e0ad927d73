"""The hub's loop: one selectors loop that serves every connection of one event.

:class:`HubServer` owns the sockets: it accepts, reads, writes, keeps the timers (handshake,
partial frame, closing grace) and the wake-up socket through which other threads hand it work.
What it reads goes to :class:`~sockcli.hub.admission.Admission` until the client is welcomed,
then to :class:`~sockcli.hub.router.Router`; both give it back frames to write. Both
transports share this class; :class:`~sockcli.hub.unix.UnixSocketServer` and
:class:`~sockcli.hub.tcp.TcpSocketServer` only say how to bind, who the peer is and what to
clean up. One thread holds any number of connections (no thread per client), and everything
the loop touches is owned by that thread: other threads hand it work through a queue and the
wake-up socket, so the only lock guards that queue and the snapshot of connected clients.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from sockcli.exceptions import ConnectionError, MessageError, SocketError, ValidationError
from sockcli.hub.admission import Admission, TlsOutcome
from sockcli.hub.base import ClientInfo, MessageHandler, SocketServer
from sockcli.hub.connection import Connection, ConnectionState
from sockcli.hub.router import HubStats, Router
from sockcli.kinds import register_message_types
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from sockcli.runtime import HubLock, HubRecord, ensure_socket_dir
from sockcli.types import MessageType, SocketMessage, SocketType, validate_event_name

__all__ = ["HubServer", "HubStats"]

log = logging.getLogger("sockcli.hub")

_RECV_SIZE = 256 * 1024
_ACCEPTS_PER_WAKE = 128
_CLOSE_GRACE = 1.0  # seconds a dropped client gets to read why it is dropped


class HubServer(SocketServer):
    """Everything a hub does, whatever the transport. Subclasses implement the binding."""

    transport: ClassVar[SocketType]

    def __init__(self, event_name: str, *, settings: Any = None,
                 config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> None:
        from sockcli.config.loader import get_settings, load_settings

        self._event_name = validate_event_name(event_name)
        if settings is None:
            settings = load_settings(config_file) if config_file is not None else get_settings()
        self.settings = settings.with_overrides(**overrides)
        self.config = self.settings.socket
        register_message_types(self.config.message_types)
        self._lock = threading.Lock()  # guards _inbox, _clients and the state flags
        self._inbox: deque[tuple[bytes, MessageType, str | None]] = deque()
        self._clients: dict[str, ClientInfo] = {}
        self._conns: dict[int, Connection] = {}
        self._dirty: set[Connection] = set()
        self._unsettled: set[Connection] = set()  # in handshake, closing or mid-frame: deadlines
        self._stats = HubStats()
        self._codec = Codec(max_frame_size=self.config.buffer_size)
        self._router = Router(event_name=self._event_name, config=self.config,
                              codec=self._codec, stats=self._stats, write=self._write,
                              mark_dirty=self._mark_dirty, drop=self._drop)
        self._admission: Admission | None = None  # made at start: transports set their parts
        self._running = False
        self._stopping = False
        self._woken = False
        self._started_ms = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._hub_lock: HubLock | None = None
        self._address = ""

    # -- what transports provide ------------------------------------------------------------

    @property
    @abstractmethod
    def max_connections(self) -> int:
        """The limit of the transport's settings section."""

    @abstractmethod
    def _bind(self) -> tuple[socket.socket, HubRecord]:
        """Create, bind and listen; return the listening socket and the record to publish."""

    def _cleanup_address(self) -> None:
        """Remove what :meth:`_bind` left on disk (the Unix socket file)."""

    def _peer_info(self, sock: socket.socket, addr: Any) -> tuple[str, dict[str, int]]:
        """Describe a new peer: its address text and credentials, where the transport has them."""
        return str(addr), {}

    def _peer_refusal(self, info: ClientInfo) -> str | None:
        """Why this peer may not connect at all (its credentials), or None to let it in."""
        return None

    #: The shared token clients must prove they know (TCP, docs/SECURITY.md); None: no token.
    _token: bytes | None = None
    #: The ssl.SSLContext that wraps accepted connections (TCP with tls_cert); None: no TLS.
    _tls_context: Any = None

    # -- SocketServer ---------------------------------------------------------------------

    @property
    def event_name(self) -> str:
        return self._event_name

    @property
    def address(self) -> str:
        return self._address

    def is_running(self) -> bool:
        return self._running

    @property
    def protection(self) -> tuple[str, ...]:
        """What protects the hub beyond its transport: ("TLS", "token"), either, or ()."""
        return tuple(name for name, on in (("TLS", self._tls_context is not None),
                                           ("token", self._token is not None)) if on)

    def add_handler(self, handler: MessageHandler) -> MessageHandler:
        with self._lock:
            self._router.handlers = [*self._router.handlers, handler]
        return handler

    def remove_handler(self, handler: MessageHandler) -> None:
        with self._lock:
            self._router.handlers = [h for h in self._router.handlers if h is not handler]

    def get_connected_clients(self) -> list[ClientInfo]:
        with self._lock:
            return list(self._clients.values())

    def stats(self) -> dict[str, Any]:
        """Live figures: clients, subscribers, queued, dropped, received, delivered, ..."""
        s = self._stats
        with self._lock:
            clients = list(self._clients.values())
        return {
            "event_name": self._event_name,
            "transport": self.transport.value,
            "address": self._address,
            "pid": os.getpid(),
            "started_ms": self._started_ms,
            "clients": len(clients),
            "subscribers": sum(1 for c in clients if c.subscribed),
            "queued": len(self._router.queue),
            "queue_size": self.config.message_queue_size,
            "max_connections": self.max_connections,
            "received": s.received,
            "delivered": s.delivered,
            "dropped": s.dropped,
            "dropped_clients": s.dropped_clients,
            "refused_connections": s.refused_connections,
            "rejected": s.rejected,
            "denied": s.denied,
        }

    def start(self, blocking: bool | None = None) -> None:
        with self._lock:
            if self._running:
                raise SocketError(f"hub for {self._event_name!r} is already running")
            if self._stopped.is_set() or self._stopping:
                raise SocketError("a stopped hub cannot be restarted: create a new one")
            self._open()
            self._running = True
        if blocking is None:
            blocking = bool(self.config.blocking_mode)
        if blocking:
            self._run()
        else:
            self._thread = threading.Thread(
                target=self._run, name=f"sockcli-hub-{self._event_name}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        # No lock here: stop() may run in a signal handler that interrupted a lock holder.
        if not self._running or self._stopping:
            if self._thread is not None and threading.get_ident() != self._loop_ident:
                self._stopped.wait(timeout)
            return
        self._stopping = True
        self._wake()
        if threading.get_ident() != self._loop_ident:
            self._stopped.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the hub has stopped and cleaned up; False if ``timeout`` passed first."""
        return self._stopped.wait(timeout)

    def send(self, message: SocketMessage, client_id: str | None = None) -> None:
        if not self._running or self._stopping:
            raise SocketError(f"hub for {self._event_name!r} is not running")
        if message.event_name != self._event_name:
            raise ValidationError(
                f"message is for event {message.event_name!r}, this hub serves "
                f"{self._event_name!r}"
            )
        fr.check_data(message.data)
        frame = self._codec.pack_map(fr.message_to_map(message))
        with self._lock:
            if client_id is not None:
                info = self._clients.get(client_id)
                if info is None:
                    raise ConnectionError(
                        f"no client {client_id!r} is connected to hub {self._event_name!r}"
                    )
                if not info.subscribed:
                    raise ValidationError(
                        f"client {client_id!r} is a pure sender and receives no messages"
                    )
            self._inbox.append((frame, message.message_type, client_id))
            wake = not self._woken
            self._woken = True
        if threading.get_ident() == self._loop_ident:
            self._drain_inbox()
        elif wake:
            self._wake()

    # -- start-up and shut-down -----------------------------------------------------------

    def _open(self) -> None:
        socket_dir = ensure_socket_dir(self.config.socket_dir)
        hub_lock = HubLock(socket_dir, self._event_name)
        hub_lock.acquire()
        try:
            listener, record = self._bind()
        except BaseException:
            hub_lock.release()
            raise
        listener.setblocking(False)
        self._admission = Admission(
            event_name=self._event_name, config=self.config,
            max_connections=self.max_connections, peer_refusal=self._peer_refusal,
            stats=self._stats, token=self._token, tls_context=self._tls_context)
        self._listener = listener
        self._hub_lock = hub_lock
        self._address = record.address
        self._started_ms = record.started_ms
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        hub_lock.write(record)
        log.info("hub %s listening on %s", self._event_name, self._address)

    def _wake(self) -> None:
        w = self._wake_w
        if w is not None:
            with contextlib.suppress(OSError):  # full pipe: a wake-up is pending anyway
                w.send(b"\0")

    def _close_all(self) -> None:
        bye = self._codec.send(fr.ErrorFrame(code=fr.ErrorCode.SHUTTING_DOWN, fatal=True,
                                             reason=f"hub {self._event_name!r} is stopping"))
        for conn in list(self._conns.values()):
            if not conn.closing:
                conn.enqueue(bye)
            with contextlib.suppress(OSError):
                conn.flush()
            self._close(conn)
        sel = self._selector
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                if sel is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(sock)
                sock.close()
        if sel is not None:
            sel.close()
        self._cleanup_address()
        if self._hub_lock is not None:
            self._hub_lock.release()
        log.info("hub %s stopped", self._event_name)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        self._loop_ident = threading.get_ident()
        sel = self._selector
        assert sel is not None
        try:
            while not self._stopping:
                for key, mask in sel.select(self._select_timeout()):
                    if key.data is None:
                        self._accept()
                    elif key.data is self._wake_r:
                        self._drain_wake()
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
                self._expire()
        except Exception:
            log.exception("hub %s crashed", self._event_name)
            raise
        finally:
            with self._lock:
                self._clients.clear()
                self._running = False
            self._close_all()
            self._stopped.set()

    def _select_timeout(self) -> float | None:
        return 0.25 if self._unsettled else None

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in list(self._unsettled):
            if conn.state is ConnectionState.HANDSHAKE and now >= conn.handshake_deadline:
                assert self._admission is not None
                self._drop(conn, self._admission.expired(conn))
            elif conn.state is ConnectionState.CLOSING and now >= conn.close_deadline:
                self._close(conn)
            elif conn.frame_deadline and now >= conn.frame_deadline and not conn.closing:
                self._stats.rejected += 1
                self._drop(conn, fr.ErrorFrame(
                    code=fr.ErrorCode.MALFORMED, fatal=True,
                    reason=f"no complete frame within frame_timeout "
                           f"({self.config.frame_timeout:g} s): {conn.codec.buffered} bytes "
                           "of an unfinished frame held"))

    def _accept(self) -> None:
        assert self._listener is not None and self._selector is not None
        admission = self._admission
        assert admission is not None
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: keep serving who is already here
                log.warning("hub %s cannot accept: %s", self._event_name, exc)
                return
            sock.setblocking(False)
            peer, creds = self._peer_info(sock, addr)
            conn = Connection(sock, peer, Codec(max_frame_size=self.config.buffer_size),
                              self.config.handshake_timeout)
            conn.info = ClientInfo(client_id="", name=None, subscribed=False, types=None,
                                   connected_ms=conn.connected_ms, peer=peer, **creds)
            self._conns[conn.fd] = conn
            self._unsettled.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)
            live = len(self._conns) - sum(
                1 for c in self._unsettled if c.state is ConnectionState.CLOSING)
            refusal = admission.accept(conn, live)
            if refusal is not None:
                self._drop(conn, refusal)

    def _tls_event(self, conn: Connection) -> None:
        """One step of a connection's TLS handshake (sockcli.hub.admission)."""
        assert self._admission is not None
        try:
            outcome, error = self._admission.tls_step(conn, self._rewrap)
        except Exception:
            log.exception("hub %s: unexpected error in the TLS handshake of %s; dropping it",
                          self._event_name, conn.peer)
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
        assert self._selector is not None
        self._selector.unregister(conn.sock)
        conn.sock = wrap(conn.sock)
        conn.want_write = False
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _read_guarded(self, conn: Connection) -> None:
        """Serve one readable connection; a bug its input triggers costs it, not the hub."""
        try:
            self._read(conn)
        except Exception:
            log.exception("hub %s: unexpected error serving %s; dropping it", self._event_name,
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
        router = self._router
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
                    continue  # the hot path: no frame or message objects
                self._handle(conn, fr.frame_from_map(m))
        except MessageError as exc:
            self._stats.rejected += 1
            self._drop(conn, fr.ErrorFrame(code=exc.code, reason=str(exc), fatal=True))
        if conn.ack_seq is not None and conn.state is ConnectionState.ACTIVE:
            self._write(conn, fr.Ack(seq=conn.ack_seq))
            conn.ack_seq = None
        if conn.frame_deadline or conn.codec.buffered:
            self._track_partial_frame(conn, fed)

    def _track_partial_frame(self, conn: Connection, fed: int) -> None:
        """Start, keep or clear the deadline of the incomplete frame ``conn`` holds after a
        read (``fed``: the bytes the codec held with that read). A frame that began before the
        read and is still incomplete keeps its deadline: trickling bytes does not extend it."""
        if conn.closing or self._conns.get(conn.fd) is not conn:
            return
        held = conn.codec.buffered
        if not held:
            conn.frame_deadline = 0.0
            if conn.state is ConnectionState.ACTIVE:
                self._unsettled.discard(conn)
        elif held < fed or not conn.frame_deadline:  # a new frame began
            conn.frame_deadline = time.monotonic() + self.config.frame_timeout
            self._unsettled.add(conn)

    def _handle(self, conn: Connection, frame: fr.Frame) -> None:
        if conn.state is ConnectionState.HANDSHAKE:
            assert self._admission is not None
            reply = self._admission.handshake(conn, frame)
            if isinstance(reply, fr.Welcome):
                self._activate(conn, reply)
            elif isinstance(reply, fr.ErrorFrame):
                self._drop(conn, reply)
            else:
                self._write(conn, reply)
            return
        if isinstance(frame, fr.MessageFrame):
            self._router.client_message(conn, frame)
        elif isinstance(frame, fr.StatsRequest | fr.Stats):
            # frames.py reads a stats frame with keys as a reply; from a client it is a request
            # whose keys this version does not know, and unknown keys are ignored.
            self._write(conn, fr.Stats(values=self.stats()))
        elif isinstance(frame, fr.Ping):
            self._write(conn, fr.Pong(token=frame.token))
        elif isinstance(frame, fr.Pong):
            pass
        elif isinstance(frame, fr.UnknownFrame):
            self._write(conn, fr.ErrorFrame(code=fr.ErrorCode.UNKNOWN_KIND,
                                            reason=f"unknown frame kind {frame.kind!r}"))
        else:
            self._write(conn, fr.ErrorFrame(
                code=fr.ErrorCode.INVALID_MESSAGE,
                reason=f"a client may not send a {type(frame).__name__} frame"))

    def _activate(self, conn: Connection, welcome: fr.Welcome) -> None:
        """The handshake is complete: welcome the client and hand it to the router."""
        assert self._admission is not None
        info = self._admission.welcomed(conn)
        conn.info = info
        conn.state = ConnectionState.ACTIVE
        self._unsettled.discard(conn)
        with self._lock:
            self._clients[info.client_id] = info
        self._write(conn, welcome)
        self._router.add(conn)

    def _drain_inbox(self) -> None:
        with self._lock:
            items = list(self._inbox)
            self._inbox.clear()
            self._woken = False
        for frame, message_type, client_id in items:
            self._router.from_hub(frame, message_type, client_id)

    # -- writing and closing --------------------------------------------------------------

    def _write(self, conn: Connection, frame: fr.Frame) -> None:
        conn.enqueue(self._codec.send(frame))
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
        if conn.want_write == want or self._selector is None:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
        self._selector.modify(conn.sock, events, conn)
        conn.want_write = want

    def _drop(self, conn: Connection, error: fr.ErrorFrame) -> None:
        """Tell the client why, then close once it has read that (or after a grace period)."""
        if conn.state is ConnectionState.CLOSING:
            return
        self._forget(conn)
        conn.state = ConnectionState.CLOSING
        self._unsettled.add(conn)
        conn.close_deadline = time.monotonic() + _CLOSE_GRACE
        conn.ack_seq = None
        self._write(conn, error)

    def _forget(self, conn: Connection) -> None:
        if conn.info is not None and conn.info.client_id:
            self._router.remove(conn)
            with self._lock:
                self._clients.pop(conn.info.client_id, None)

    def _close(self, conn: Connection) -> None:
        if self._conns.pop(conn.fd, None) is None:
            return
        self._forget(conn)
        self._dirty.discard(conn)
        self._unsettled.discard(conn)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        conn.sock.close()

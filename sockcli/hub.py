"""The hub: one selectors loop that serves every connection of one event.

Both transports share this class; :class:`~sockcli.unix.UnixSocketServer` and
:class:`~sockcli.tcp.TcpSocketServer` only say how to bind and what to clean up. One thread
holds any number of connections (no thread per client), and everything the loop touches is
owned by that thread: other threads hand it work through a queue and a wake-up socket, so the
only lock guards that queue and the snapshot of connected clients.
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
from typing import Any, ClassVar

from sockcli import frames as fr
from sockcli.codec import CLOSED, NEED_DATA, Codec
from sockcli.connection import Connection, ConnectionState
from sockcli.exceptions import ConnectionError, MessageError, SocketError, ValidationError
from sockcli.runtime import HubLock, HubRecord, ensure_socket_dir
from sockcli.server import ClientInfo, MessageHandler, SocketServer
from sockcli.types import MessageType, SocketMessage, SocketType, validate_event_name

__all__ = ["HubServer", "HubStats"]

log = logging.getLogger("sockcli.hub")

_RECV_SIZE = 256 * 1024
_ACCEPTS_PER_WAKE = 128
_CLOSE_GRACE = 1.0  # seconds a dropped client gets to read why it is dropped


class HubStats:
    """Counters of one hub; read them with :meth:`HubServer.stats`."""

    __slots__ = ("delivered", "denied", "dropped", "dropped_clients", "received",
                 "refused_connections", "rejected")

    def __init__(self) -> None:
        self.received = 0  # messages accepted from clients
        self.delivered = 0  # message frames handed to subscribers' buffers
        self.dropped = 0  # queued messages dropped because the queue was full
        self.dropped_clients = 0  # subscribers dropped for not reading
        self.refused_connections = 0  # connections refused over max_connections
        self.rejected = 0  # messages refused (not allowed, invalid, unknown recipient)
        self.denied = 0  # connections refused by access control (peer, token, TLS)


class _Queued:
    __slots__ = ("frame", "message_type")

    def __init__(self, message_type: MessageType, frame: bytes) -> None:
        self.message_type = message_type
        self.frame = frame


class _TlsPending:
    """A connection of a TLS hub before its TLS handshake is done (Connection.tls)."""

    __slots__ = ("refusal", "wrapped")

    def __init__(self) -> None:
        self.wrapped = False  # False: the first byte was not seen yet
        self.refusal: fr.ErrorFrame | None = None  # to send once TLS is up (max_connections)


class HubServer(SocketServer):
    """Everything a hub does, whatever the transport. Subclasses implement the binding."""

    transport: ClassVar[SocketType]

    def __init__(self, event_name: str, *, settings: Any = None,
                 config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> None:
        from sockcli.config.settings import get_settings, load_settings

        self._event_name = validate_event_name(event_name)
        if settings is None:
            settings = load_settings(config_file) if config_file is not None else get_settings()
        self.settings = settings.with_overrides(**overrides)
        self.config = self.settings.socket
        self._handlers: list[MessageHandler] = []
        self._lock = threading.Lock()  # guards _inbox, _clients and the state flags
        self._inbox: deque[tuple[bytes, MessageType, str | None]] = deque()
        self._clients: dict[str, ClientInfo] = {}
        self._conns: dict[int, Connection] = {}
        self._by_id: dict[str, Connection] = {}
        self._subs: list[Connection] | None = None  # subscribers, cached between changes
        self._queue: deque[_Queued] = deque()
        self._dirty: set[Connection] = set()
        self._unsettled: set[Connection] = set()  # in handshake, closing or mid-frame: deadlines
        self._stats = HubStats()
        self._next_id = 0
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
        self._codec = Codec(max_frame_size=self.config.buffer_size)

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

    def add_handler(self, handler: MessageHandler) -> MessageHandler:
        with self._lock:
            self._handlers = [*self._handlers, handler]
        return handler

    def remove_handler(self, handler: MessageHandler) -> None:
        with self._lock:
            self._handlers = [h for h in self._handlers if h is not handler]

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
            "queued": len(self._queue),
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
                self._drop(conn, fr.ErrorFrame(code=fr.ErrorCode.HANDSHAKE_REQUIRED,
                                               reason="no hello frame in time", fatal=True))
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
            if self._tls_context is not None:
                conn.tls = _TlsPending()
            live = len(self._conns) - sum(
                1 for c in self._unsettled if c.state is ConnectionState.CLOSING)
            refusal = self._peer_refusal(conn.info)
            if refusal is not None:
                self._stats.denied += 1
                log.warning("hub %s refuses %s: %s", self._event_name, peer, refusal)
                self._refuse(conn, fr.ErrorFrame(code=fr.ErrorCode.PEER_NOT_ALLOWED, fatal=True,
                                                 reason=refusal))
            elif live > self.max_connections:
                self._stats.refused_connections += 1
                self._refuse(conn, fr.ErrorFrame(
                    code=fr.ErrorCode.MAX_CONNECTIONS, fatal=True,
                    reason=f"hub {self._event_name!r} already holds its maximum of "
                           f"{self.max_connections} connections"))

    def _refuse(self, conn: Connection, error: fr.ErrorFrame) -> None:
        """Refuse a connection just accepted: at once, or over TLS once its handshake is done
        (a TLS client could not read a plain error frame)."""
        if conn.tls is not None:
            conn.tls.refusal = error
        else:
            self._drop(conn, error)

    # -- TLS (docs/SECURITY.md): sniff the first byte, then a non-blocking handshake ---------

    def _tls_event(self, conn: Connection) -> None:
        try:
            self._tls_step(conn)
        except Exception:
            log.exception("hub %s: unexpected error in the TLS handshake of %s; dropping it",
                          self._event_name, conn.peer)
            self._close(conn)

    def _tls_step(self, conn: Connection) -> None:
        from sockcli import tls

        pending: _TlsPending = conn.tls
        assert self._selector is not None
        if not pending.wrapped:
            try:
                is_tls = tls.sniff(conn.sock)
            except (EOFError, OSError):
                self._close(conn)
                return
            if is_tls is None:
                return
            if not is_tls:  # a plain client: tell it in plain frames, which it can read
                conn.tls = None
                self._stats.denied += 1
                self._drop(conn, fr.ErrorFrame(
                    code=fr.ErrorCode.TLS_REQUIRED, fatal=True,
                    reason=f"hub {self._event_name!r} speaks TLS only: give the client the "
                           "CA of its certificate (tls_ca, --tls-ca)"))
                return
            self._selector.unregister(conn.sock)
            conn.sock = self._tls_context.wrap_socket(conn.sock, server_side=True,
                                                      do_handshake_on_connect=False)
            conn.want_write = False
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            pending.wrapped = True
        try:
            step = tls.handshake_step(conn.sock)
        except OSError as exc:  # ssl.SSLError included: a bad certificate, not TLS after all
            self._stats.denied += 1
            log.info("hub %s: TLS handshake with %s failed: %s", self._event_name, conn.peer,
                     exc)
            self._close(conn)
            return
        if step != "done":
            self._set_write_interest(conn, step == "write")
            return
        conn.tls = None
        self._set_write_interest(conn, bool(conn.out))
        if pending.refusal is not None:
            self._drop(conn, pending.refusal)
        else:
            self._read_guarded(conn)  # the hello may have come with the handshake's end

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
        try:
            while not conn.closing:
                m = conn.codec.next_map()
                if m is NEED_DATA:
                    break
                if m is CLOSED:
                    self._close(conn)
                    return
                if type(m) is dict and m.get("kind") == "message" and \
                        conn.state is ConnectionState.ACTIVE and not self._handlers:
                    self._relay_map(conn, m)  # the hot path: no frame or message objects
                    continue
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
            if conn.auth is not None:  # a challenge is out: only its answer may come
                self._authenticate(conn, frame)
            elif isinstance(frame, fr.Hello):
                self._welcome(conn, frame)
            else:
                self._drop(conn, fr.ErrorFrame(code=fr.ErrorCode.HANDSHAKE_REQUIRED, fatal=True,
                                               reason="the first frame must be a hello"))
            return
        if isinstance(frame, fr.MessageFrame):
            self._client_message(conn, frame)
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

    def _welcome(self, conn: Connection, hello: fr.Hello,
                 proof: dict[str, Any] | None = None) -> None:
        if hello.version != fr.PROTOCOL_VERSION:
            self._drop(conn, fr.ErrorFrame(
                code=fr.ErrorCode.UNSUPPORTED_VERSION, fatal=True,
                reason=f"protocol version {hello.version} is not supported; this hub speaks "
                       f"version {fr.PROTOCOL_VERSION}"))
            return
        if self._token is not None and proof is None:
            self._challenge(conn, hello)
            return
        self._next_id += 1
        client_id = f"c{self._next_id}"
        assert conn.info is not None
        info = ClientInfo(
            client_id=client_id, name=hello.name, subscribed=hello.subscribe, types=hello.types,
            connected_ms=conn.connected_ms, peer=conn.peer, pid=conn.info.pid,
            uid=conn.info.uid, gid=conn.info.gid,
        )
        conn.info = info
        conn.state = ConnectionState.ACTIVE
        self._unsettled.discard(conn)
        self._by_id[client_id] = conn
        self._subs = None
        with self._lock:
            self._clients[client_id] = info
        welcome = fr.Welcome(
            client_id=client_id, event_name=self._event_name,
            allow_client_send=self.config.allow_client_send,
            max_frame_size=self.config.buffer_size,
            features=fr.FEATURES if proof is None else (*fr.FEATURES, "auth"))
        if proof is None:
            self._write(conn, welcome)
        else:  # the hub's proof of the token: a key frames.Welcome does not carry
            self._write_map(conn, {**fr.frame_to_map(welcome), "auth": proof})
        if info.subscribed and self._queue:
            self._replay_queue(conn)

    def _challenge(self, conn: Connection, hello: fr.Hello) -> None:
        """A token is required: ask the client to prove it knows it (sockcli.auth)."""
        from sockcli import auth

        offer = hello.extra.get("auth")
        if not auth.offers_hmac(offer):
            why = ("this client offered none (it has no token configured, or it is too old "
                   "for token authentication)" if offer is None
                   else f"this client offers none of its methods ({offer!r})")
            self._deny(conn, f"hub {self._event_name!r} requires a token and {why}; give the "
                             "client the hub's token (token_file, SOCKCLI_TOKEN or "
                             "--token-file)")
            return
        conn.auth = auth.HubChallenge(hello)
        self._write_map(conn, conn.auth.frame())

    def _authenticate(self, conn: Connection, frame: fr.Frame) -> None:
        from sockcli.exceptions import AuthenticationError

        challenge = conn.auth
        conn.auth = None
        assert self._token is not None
        if isinstance(frame, fr.UnknownFrame):
            kind, fields = frame.kind, frame.fields
        else:
            kind, fields = type(frame).__name__, {}
        try:
            proof = challenge.verify(self._token, kind, fields)
        except AuthenticationError as exc:
            self._deny(conn, f"authentication failed: {exc}")
            return
        self._welcome(conn, challenge.hello, proof)

    def _deny(self, conn: Connection, reason: str) -> None:
        self._stats.denied += 1
        log.warning("hub %s refuses %s: %s", self._event_name, conn.peer, reason)
        self._drop(conn, fr.ErrorFrame(code=fr.ErrorCode.AUTH_FAILED, fatal=True, reason=reason))

    def _write_map(self, conn: Connection, m: dict[str, Any]) -> None:
        """Write a frame given as a raw map (kinds and keys frames.py does not model)."""
        conn.enqueue(self._codec.pack_map(m))
        self._mark_dirty(conn)

    def _replay_queue(self, conn: Connection) -> None:
        """Hand a new subscriber the queued messages its filter accepts, oldest first."""
        kept: deque[_Queued] = deque()
        for item in self._queue:
            if conn.accepts(item.message_type):
                conn.enqueue(item.frame)
                self._stats.delivered += 1
            else:
                kept.append(item)
        self._queue = kept
        self._mark_dirty(conn)

    def _client_message(self, conn: Connection, frame: fr.MessageFrame) -> None:
        message = frame.message
        self._take(conn, fr.message_to_map(message), message.event_name,
                   message.message_type, frame.seq, frame.to, message)

    def _relay_map(self, conn: Connection, m: dict[str, Any]) -> None:
        """:meth:`_client_message` for a hub without handlers, straight from the map: the
        same checks (:func:`frames.relay_fields`), the same refusals, the same relay."""
        fields = fr.relay_fields(m)
        if fields is None:  # not the usual shape: the full path explains what is wrong
            self._handle(conn, fr.frame_from_map(m))
            return
        event, message_type, seq, to = fields
        wire = {"kind": "message", "event_name": event, "timestamp_ms": m["timestamp_ms"],
                "timestamp_iso": m["timestamp_iso"], "message_type": message_type.value,
                "data": m["data"]}
        self._take(conn, wire, event, message_type, seq, to, None)

    def _take(self, conn: Connection, wire: dict[str, Any], event: str,
              message_type: MessageType, seq: int | None, to: str | None,
              message: SocketMessage | None) -> None:
        """Acknowledge, refuse or accept one client message; hand it to the handlers (when
        ``message`` is built) and relay ``wire`` to the other subscribers."""
        if seq is not None:
            conn.ack_seq = seq if conn.ack_seq is None else max(conn.ack_seq, seq)
        refusal = self._refusal_of(conn, event, to)
        if refusal is not None:
            self._stats.rejected += 1
            self._write(conn, fr.ErrorFrame(code=refusal[0], reason=refusal[1], seq=seq))
            return
        try:
            data = self._codec.pack_map(wire)
        except MessageError as exc:  # re-encoded, 32-bit floats become 64-bit and may not fit
            self._stats.rejected += 1
            self._write(conn, fr.ErrorFrame(code=exc.code, reason=f"cannot relay: {exc}",
                                            seq=seq))
            return
        self._stats.received += 1
        if message is not None:
            assert conn.info is not None
            for handler in self._handlers:
                try:
                    handler(message, conn.info)
                except Exception:
                    log.exception("message handler %r failed", handler)
        if to is not None:
            for target in self._subscribers(exclude=conn):
                if target.info is not None and target.info.name == to:
                    self._deliver(target, data)
        else:
            self._broadcast(data, message_type, exclude=conn)

    def _refusal_of(self, conn: Connection, event: str, to: str | None,
                    ) -> tuple[str, str] | None:
        if not self.config.allow_client_send:
            return (fr.ErrorCode.SEND_NOT_ALLOWED,
                    f"hub {self._event_name!r} does not accept messages from clients")
        if event != self._event_name:
            return (fr.ErrorCode.INVALID_MESSAGE,
                    f"message is for event {event!r}, this hub serves "
                    f"{self._event_name!r}")
        if to is not None and not any(
            c.info is not None and c.info.name == to
            for c in self._subscribers(exclude=conn)
        ):
            return (fr.ErrorCode.UNKNOWN_RECIPIENT,
                    f"no subscriber named {to!r} is connected to hub "
                    f"{self._event_name!r}")
        return None

    def _subscribers(self, exclude: Connection | None = None) -> list[Connection]:
        subs = self._subs
        if subs is None:  # rebuilt after a client comes or goes, not per message
            subs = self._subs = [c for c in self._by_id.values() if c.subscribed]
        return [c for c in subs if c is not exclude] if exclude in subs else subs

    def _broadcast(self, data: bytes, message_type: MessageType,
                   exclude: Connection | None = None) -> None:
        delivered = False
        for conn in self._subscribers(exclude):
            if conn.accepts(message_type):
                self._deliver(conn, data)
                delivered = True
        if not delivered:  # nobody connected takes this type: keep it for who comes next
            self._enqueue(data, message_type)

    def _enqueue(self, data: bytes, message_type: MessageType) -> None:
        size = self.config.message_queue_size
        if size <= 0:
            self._stats.dropped += 1
            return
        if len(self._queue) >= size:
            self._queue.popleft()
            self._stats.dropped += 1
        self._queue.append(_Queued(message_type, data))

    def _deliver(self, conn: Connection, data: bytes) -> None:
        if conn.out_size + len(data) > self.config.send_buffer_limit:
            self._stats.dropped_clients += 1
            log.warning("hub %s drops subscriber %s: it stopped reading (%d bytes pending)",
                        self._event_name, conn.info.client_id if conn.info else "?",
                        conn.out_size)
            # A memoryview head is a frame the kernel took only part of (Connection.flush): keep
            # it, or the error frame would start mid-frame and the client would read garbage.
            head = conn.out[0] if conn.out and isinstance(conn.out[0], memoryview) else None
            conn.out.clear()
            conn.out_size = 0
            if head is not None:
                conn.enqueue(head)
            self._drop(conn, fr.ErrorFrame(
                code=fr.ErrorCode.SLOW_CONSUMER, fatal=True,
                reason=f"dropped: more than {self.config.send_buffer_limit} bytes were waiting "
                       "for this subscriber to read"))
            return
        conn.enqueue(data)
        self._stats.delivered += 1
        self._mark_dirty(conn)

    def _drain_inbox(self) -> None:
        with self._lock:
            items = list(self._inbox)
            self._inbox.clear()
            self._woken = False
        for frame, message_type, client_id in items:
            if client_id is None:
                self._broadcast(frame, message_type)
            else:
                conn = self._by_id.get(client_id)
                if conn is not None and conn.subscribed:
                    self._deliver(conn, frame)

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
            self._by_id.pop(conn.info.client_id, None)
            self._subs = None
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

"""The hub as its owner sees it: :class:`HubServer`, shared by every transport.

It loads the settings, starts and stops the loop (:class:`~sockcli.hub.loop.HubLoop`) in a
thread of its own or the caller's, publishes the hub's record (:mod:`sockcli.runtime`), and
offers the :class:`~sockcli.hub.base.SocketServer` contract: send, handlers, clients, stats.
Subclasses (:class:`~sockcli.hub.unix.UnixSocketServer`,
:class:`~sockcli.hub.tcp.TcpSocketServer`) only say how to bind, who a peer is, whether it may
connect, and what to clean up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from sockcli.exceptions import SocketError, ValidationError
from sockcli.hub.admission import Admission
from sockcli.hub.base import ClientInfo, MessageHandler, SocketServer
from sockcli.hub.descriptors import connection_capacity
from sockcli.hub.loop import HubLoop
from sockcli.hub.router import HubStats
from sockcli.protocol import frames as fr
from sockcli.runtime import HubLock, HubRecord, ensure_socket_dir
from sockcli.types import SocketMessage, SocketType, validate_event_name

if TYPE_CHECKING:
    from sockcli.config.views import SettingsView
    from sockcli.hub.fifo import HubFifo
    from sockcli.hub.producer import Producer

__all__ = ["HubServer"]

log = logging.getLogger("sockcli.hub")


class HubServer(SocketServer):
    """Everything a hub does, whatever the transport. Subclasses implement the binding."""

    transport: ClassVar[SocketType]

    def __init__(self, event_name: str, *, settings: SettingsView | None = None,
                 config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> None:
        from sockcli.config.loader import settings_for

        self._event_name = validate_event_name(event_name)
        self.settings = settings_for(settings, config_file, overrides)
        self.config = self.settings.socket
        self._lock = threading.Lock()  # guards the state flags and the handler list
        self._stats = HubStats()
        self._loop = HubLoop(event_name=self._event_name, config=self.config, stats=self._stats,
                             peer_info=self._peer_info, figures=self.stats)
        self._running = False
        self._stopping = False
        self._started_ms = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._hub_lock: HubLock | None = None
        self._address = ""
        #: The command whose output this hub broadcasts (``serve --exec``), for its figures:
        #: its owner starts and stops it.
        self.producer: Producer | None = None
        #: The MQTT bridge of this hub (``serve --bridge``, :mod:`sockcli.bridge`), for its
        #: figures: its owner starts and stops it.
        self.bridge: Any = None

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
    #: Whether that token is a secret the hub made for itself (TCP, :mod:`sockcli.hubsecret`).
    _per_hub_secret = False
    #: The ssl.SSLContext that wraps accepted connections (TCP with tls_cert); None: no TLS.
    _tls_context: Any = None
    #: The JSON-lines listening socket and the FIFO that :meth:`_bind` made (Unix), if any.
    _lines_listener: socket.socket | None = None
    _fifo: HubFifo | None = None

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
        """What protects the hub beyond its transport: ("TLS", "token"), either, or ();
        "token (per-hub secret)" for a TCP hub's own secret, once it has started."""
        token = "token (per-hub secret)" if self._per_hub_secret else "token"
        return tuple(name for name, on in (("TLS", self._tls_context is not None),
                                           (token, self._token is not None)) if on)

    @property
    def listener(self) -> socket.socket | None:
        """The listening socket while the hub runs."""
        return self._loop.listener

    def add_handler(self, handler: MessageHandler) -> MessageHandler:
        router = self._loop.router
        with self._lock:
            router.handlers = [*router.handlers, handler]
        return handler

    def remove_handler(self, handler: MessageHandler) -> None:
        router = self._loop.router
        with self._lock:
            router.handlers = [h for h in router.handlers if h is not handler]

    def get_connected_clients(self) -> list[ClientInfo]:
        return self._loop.mailbox.clients()

    def stats(self) -> dict[str, Any]:
        """Live figures: clients, subscribers, queued, dropped, received, delivered, ...,
        and ``retained``: the types of the messages retained for ``listen --last``; with a
        :attr:`producer`, its figures as ``producer`` (its refused lines count as rejected)."""
        s = self._stats
        clients = self._loop.mailbox.clients()
        return {
            "event_name": self._event_name,
            "transport": self.transport.value,
            "address": self._address,
            "pid": os.getpid(),
            "started_ms": self._started_ms,
            "clients": len(clients),
            "subscribers": sum(1 for c in clients if c.subscribed),
            "queued": len(self._loop.router.queue),
            "queue_size": self.config.message_queue_size,
            "max_connections": self.max_connections,
            "received": s.received,
            "delivered": s.delivered,
            "dropped": s.dropped,
            "dropped_clients": s.dropped_clients,
            "refused_connections": s.refused_connections,
            "rejected": s.rejected,
            "denied": s.denied,
            "missed": s.missed,
            "replaced": s.replaced,
            "holding": len(self._loop.router.behind),
            # The types of the retained messages (listen --last), oldest first.
            "retained": [t.value for t in list(self._loop.router.retained)],
            **self._producer_figures(s.rejected),
            **self._fifo_figures(),
            **self._bridge_figures(),
        }

    def _bridge_figures(self) -> dict[str, Any]:
        """With a bridge: its figures as ``bridge`` (state, url, pending, published, ...)."""
        bridge = self.bridge
        if bridge is None:
            return {}
        try:
            return {"bridge": bridge.figures()}
        except Exception:  # the figures must never cost the hub its stats reply
            log.exception("hub %s: the bridge's figures failed", self._event_name)
            return {}

    def _fifo_figures(self) -> dict[str, Any]:
        """With a FIFO: its path and what came through it (``fifo``: path, messages,
        rejected; its refused lines are in ``rejected`` already)."""
        figures = self._loop.intake.fifo_figures()
        return {} if figures is None else {"fifo": figures}

    def _producer_figures(self, rejected: int) -> dict[str, Any]:
        """With a producer: its figures, and its refused lines counted as rejected too."""
        producer = self.producer
        if producer is None:
            return {}
        figures = producer.figures()
        return {"producer": figures, "rejected": rejected + figures["rejected"]}

    def start(self, blocking: bool | None = None) -> None:
        if blocking is None:
            blocking = bool(self.config.blocking_mode)
        with self._lock:
            if self._stopped.is_set() or self._stopping:
                raise SocketError("a stopped hub cannot be restarted: create a new one")
            running = self._running
            if not running:
                self._open()
                self._running = True
        if running:  # idempotent, as asyncio's start_serving(): `with hub: hub.start()`
            if blocking and threading.get_ident() != self._loop.ident:
                self._stopped.wait()  # what a blocking start() does: return once stopped
            return
        if blocking:
            self._run()
        else:
            self._thread = threading.Thread(
                target=self._run, name=f"sockcli-hub-{self._event_name}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        # No lock here: stop() may run in a signal handler that interrupted a lock holder.
        on_loop = threading.get_ident() == self._loop.ident
        if not self._running or self._stopping:
            if self._thread is not None and not on_loop:
                self._stopped.wait(timeout)
            return
        self._stopping = True
        self._loop.mailbox.wake()
        if not on_loop:
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
        wire = fr.message_to_map(message)
        frame = self._loop.codec.pack_map(wire)
        self._loop.post(frame, message.message_type, client_id, wire)

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
        try:
            self._loop.open(listener, Admission(
                event_name=self._event_name, config=self.config,
                max_connections=connection_capacity(self.max_connections, self._event_name),
                peer_refusal=self._peer_refusal,
                stats=self._stats, token=self._token, tls_context=self._tls_context),
                lines_listener=self._lines_listener, fifo=self._fifo)
        except BaseException:  # what _bind left (a socket file, a secret) must not stay
            listener.close()
            self._cleanup_address()
            hub_lock.release()
            raise
        self._hub_lock = hub_lock
        self._address = record.address
        self._started_ms = record.started_ms
        hub_lock.write(record)
        log.info("hub %s listening on %s", self._event_name, self._address)

    def _run(self) -> None:
        try:
            self._loop.run(lambda: self._stopping)
        except Exception:
            log.exception("hub %s crashed", self._event_name)
            raise
        finally:
            with self._lock:
                self._running = False
            self._loop.close_all()
            self._cleanup_address()
            if self._hub_lock is not None:
                self._hub_lock.release()
            log.info("hub %s stopped", self._event_name)
            self._stopped.set()

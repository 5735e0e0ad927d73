"""Who gets in: the hub's admission of new connections.

Every accepted connection passes here before the router sees it: the transport's verdict on
the peer (``SO_PEERCRED`` on Unix), the connection limit, TLS when the hub has a certificate
(the first byte tells a TLS client from a plain one, then a non-blocking handshake), and the
protocol handshake (:class:`~sockcli.protocol.handshake.HubHandshake`: hello, the token's
challenge and answer, welcome). docs/SECURITY.md says why each rule is there.

Like the router it never blocks and runs on the hub's loop thread only. The TLS step needs the
loop to re-register a wrapped socket, so it gets a callable for that; everything else is
returned to the loop as a frame to send or an outcome to act on.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sockcli.hub.base import ClientInfo
from sockcli.hub.connection import Connection
from sockcli.hub.router import HubStats
from sockcli.protocol import frames as fr
from sockcli.protocol.handshake import HubHandshake

__all__ = ["Admission", "TlsOutcome"]

log = logging.getLogger("sockcli.hub")


class TlsOutcome(Enum):
    """What the loop does after one step of a connection's TLS handshake."""

    WAIT_READ = "read"  # wait until the socket is readable
    WAIT_WRITE = "write"  # wait until it is writable
    CLOSE = "close"  # the peer went away or the handshake failed: close without a word
    DROP = "drop"  # send the error frame returned with it, then close
    DONE = "done"  # TLS is up: read the connection (the hello may have come with it)


@dataclass(slots=True)
class _TlsPending:
    """A connection of a TLS hub before its TLS handshake is done (Connection.tls)."""

    wrapped: bool = False  # False: the first byte was not seen yet
    refusal: fr.ErrorFrame | None = None  # to send once TLS is up (max_connections)


class Admission:
    """The admission rules and state of one hub."""

    def __init__(self, *, event_name: str, config: Any, max_connections: int,
                 peer_refusal: Callable[[ClientInfo], str | None], stats: HubStats,
                 token: bytes | None = None, tls_context: Any = None) -> None:
        self.event_name = event_name
        self.max_connections = max_connections
        self.token = token
        #: The ssl.SSLContext that wraps accepted connections (TCP with tls_cert), or None.
        self.tls_context = tls_context
        self.stats = stats
        self._config = config
        self._peer_refusal = peer_refusal
        self._next_id = 0

    # -- accepting ------------------------------------------------------------------------

    def accept(self, conn: Connection, live: int) -> fr.ErrorFrame | None:
        """Start admitting a connection just accepted (``live`` connections are open with it);
        return the fatal error to refuse it with, or None to go on with the handshake.

        Over TLS a refusal is kept until TLS is up (a TLS client could not read a plain
        frame) and None is returned.
        """
        cfg = self._config
        conn.handshake = HubHandshake(
            event_name=self.event_name, client_id=self.new_client_id, token=self.token,
            allow_client_send=cfg.allow_client_send, max_frame_size=cfg.buffer_size,
            slow_consumer_timeout=cfg.slow_consumer_timeout)
        if self.tls_context is not None:
            conn.tls = _TlsPending()
        assert conn.info is not None
        refusal = self._peer_refusal(conn.info)
        error = None
        if refusal is not None:
            self.stats.denied += 1
            log.warning("hub %s refuses %s: %s", self.event_name, conn.peer, refusal)
            error = fr.ErrorFrame(code=fr.ErrorCode.PEER_NOT_ALLOWED, fatal=True, reason=refusal)
        elif live > self.max_connections:
            self.stats.refused_connections += 1
            error = fr.ErrorFrame(
                code=fr.ErrorCode.MAX_CONNECTIONS, fatal=True,
                reason=f"hub {self.event_name!r} already holds its maximum of "
                       f"{self.max_connections} connections")
        if error is not None and conn.tls is not None:
            conn.tls.refusal = error
            return None
        return error

    def new_client_id(self) -> str:
        """The next client id: c1, c2, ... (the JSON-lines clients draw from it too)."""
        self._next_id += 1
        return f"c{self._next_id}"

    # -- the protocol handshake -------------------------------------------------------------

    def handshake(self, conn: Connection, frame: fr.Frame) -> fr.Frame:
        """Feed a frame of a connection in handshake; return what to send (a challenge, the
        welcome, or a fatal error: see :meth:`HubHandshake.receive`)."""
        assert conn.handshake is not None
        reply = conn.handshake.receive(frame)
        if isinstance(reply, fr.ErrorFrame) and reply.code == fr.ErrorCode.AUTH_FAILED:
            self.stats.denied += 1
            log.warning("hub %s refuses %s: %s", self.event_name, conn.peer, reply.reason)
        return reply

    def welcomed(self, conn: Connection) -> ClientInfo:
        """The ClientInfo of a connection whose handshake just completed."""
        shake = conn.handshake
        assert shake is not None and shake.hello is not None and shake.welcome is not None
        assert conn.info is not None
        hello = shake.hello
        conn.handshake = None
        conn.slow = hello.slow or "wait"
        conn.tap = hello.tap
        conn.batch = hello.batch
        return ClientInfo(
            client_id=shake.welcome.client_id, name=hello.name, subscribed=hello.subscribe,
            types=hello.types, connected_ms=conn.connected_ms, peer=conn.peer,
            pid=conn.info.pid, uid=conn.info.uid, gid=conn.info.gid)

    def expired(self, conn: Connection) -> fr.ErrorFrame:
        """The error for a connection that did not complete its handshake in time."""
        assert conn.handshake is not None
        return conn.handshake.expired()

    # -- TLS (docs/SECURITY.md): sniff the first byte, then a non-blocking handshake ---------

    def tls_step(self, conn: Connection,
                 rewrap: Callable[[Connection, Callable[[socket.socket], socket.socket]], None],
                 ) -> tuple[TlsOutcome, fr.ErrorFrame | None]:
        """Advance the TLS handshake of ``conn``; ``rewrap(conn, wrap)`` must replace the
        connection's socket by ``wrap(socket)`` where the loop's selector can see it."""
        from sockcli import tls

        pending: _TlsPending = conn.tls
        if not pending.wrapped:
            try:
                is_tls = tls.sniff(conn.sock)
            except (EOFError, OSError):
                return TlsOutcome.CLOSE, None
            if is_tls is None:
                return TlsOutcome.WAIT_READ, None
            if not is_tls:  # a plain client: tell it in plain frames, which it can read
                conn.tls = None
                self.stats.denied += 1
                return TlsOutcome.DROP, fr.ErrorFrame(
                    code=fr.ErrorCode.TLS_REQUIRED, fatal=True,
                    reason=f"hub {self.event_name!r} speaks TLS only: give the client the "
                           "CA of its certificate (tls_ca, --tls-ca)")
            context = self.tls_context
            rewrap(conn, lambda sock: context.wrap_socket(sock, server_side=True,
                                                          do_handshake_on_connect=False))
            pending.wrapped = True
        try:
            step = tls.handshake_step(conn.sock)
        except OSError as exc:  # ssl.SSLError included: a bad certificate, not TLS after all
            self.stats.denied += 1
            log.info("hub %s: TLS handshake with %s failed: %s", self.event_name, conn.peer,
                     exc)
            return TlsOutcome.CLOSE, None
        if step != "done":
            return (TlsOutcome.WAIT_WRITE if step == "write" else TlsOutcome.WAIT_READ), None
        conn.tls = None
        if pending.refusal is not None:
            return TlsOutcome.DROP, pending.refusal
        return TlsOutcome.DONE, None

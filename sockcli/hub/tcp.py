"""The hub of the TCP transport: loopback by default, a port from the configured range."""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any

from sockcli.exceptions import ConnectionError, ValidationError
from sockcli.hub.server import HubServer
from sockcli.runtime import HubRecord
from sockcli.types import SocketType

__all__ = ["TcpSocketServer", "is_loopback"]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or "localhost"); other names count as not."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TcpSocketServer(HubServer):
    """A hub on ``host``: the given ``port``, else the first free one of the range."""

    transport = SocketType.TCP

    def __init__(self, event_name: str, *, token: bytes | str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.tcp_config = self.settings.tcp
        self.port: int | None = None
        self._secure(token)

    def _secure(self, token: bytes | str | None) -> None:
        """Load the token and the TLS context, and refuse an open address without a token."""
        from sockcli.protocol.auth import resolve_token

        cfg = self.tcp_config
        self._token = resolve_token(token, cfg.token_file)
        if cfg.tls_cert:
            from sockcli.tls import server_context

            self._tls_context = server_context(cfg.tls_cert, cfg.tls_key)
        if self._token is None and not cfg.insecure and not is_loopback(cfg.host):
            raise ValidationError(
                f"refusing to listen on {cfg.host} without a token: anyone who can reach it "
                "could send and listen. Give the hub a token (token_file, SOCKCLI_TOKEN, or "
                "'sockcli serve --token-file FILE'), or accept the risk with insecure = true "
                "('sockcli serve --insecure')")

    @property
    def max_connections(self) -> int:
        return int(self.tcp_config.max_connections)

    def _ports(self) -> range:
        cfg = self.tcp_config
        if cfg.port:
            return range(cfg.port, cfg.port + 1)
        return range(cfg.port_range_start, cfg.port_range_end + 1)

    def _bind(self) -> tuple[socket.socket, HubRecord]:
        host = self.tcp_config.host
        ports = self._ports()
        for port in ports:
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
                sock.listen(socket.SOMAXCONN)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise ConnectionError(f"cannot listen on {host}:{port}: "
                                      f"{exc.strerror or exc}") from exc
            self.port = port
            record = HubRecord(event_name=self.event_name, transport=SocketType.TCP,
                               pid=os.getpid(), started_ms=time.time_ns() // 1_000_000,
                               host=host, port=port)
            return sock, record
        what = f"port {ports[0]}" if len(ports) == 1 else \
            f"every port from {ports[0]} to {ports[-1]}"
        raise ConnectionError(f"cannot listen on {host}: {what} is in use (set tcp.port or "
                              "widen port_range_start/port_range_end)")

    def _peer_info(self, sock: socket.socket, addr: Any) -> tuple[str, dict[str, int]]:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames, no Nagle
        return f"{addr[0]}:{addr[1]}", {}

"""The hub of the TCP transport: loopback by default, a port from the configured range, and
a token required of every client: the configured one, else a per-hub secret
(:mod:`sockcli.hubsecret`)."""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any

from sockcli.exceptions import ConnectionError, SocketError, ValidationError
from sockcli.hub.server import HubServer
from sockcli.runtime import HubRecord, open_socket_dir
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
        self._secret_inode: tuple[int, int] | None = None  # of the per-hub secret, while kept
        self._dir_fd: int | None = None  # the socket directory, while the secret is kept
        self._secure(token)

    def _secure(self, token: bytes | str | None) -> None:
        """Load the token and the TLS context, and refuse an open address without a token.

        Without a configured token and without ``insecure`` a (loopback) hub makes a per-hub
        secret when it starts (:meth:`_bind`): ``insecure`` is the only way to serve TCP
        without authentication.
        """
        from sockcli.protocol.auth import resolve_token

        cfg = self.tcp_config
        self._token = resolve_token(token, cfg.token_file)
        self._per_hub_secret = self._token is None and not cfg.insecure
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
        sock = self._listen()
        try:
            self._keep_secret()
        except BaseException:
            sock.close()
            raise
        record = HubRecord(event_name=self.event_name, transport=SocketType.TCP,
                           pid=os.getpid(), started_ms=time.time_ns() // 1_000_000,
                           host=self.tcp_config.host, port=self.port)
        return sock, record

    def _keep_secret(self) -> None:
        """Clear the secret a dead hub of this event left, and make this hub's own when it
        needs one (it keeps the directory's descriptor to remove it when it stops). Called
        with the event's lock held, before the record is written: a client that finds the
        record finds the secret."""
        from sockcli.hubsecret import clear_stale_secret, create_secret, secret_name

        socket_dir = self.config.socket_dir
        where = str(socket_dir / secret_name(self.event_name))
        dir_fd = open_socket_dir(socket_dir)
        if dir_fd is None:
            raise SocketError(f"cannot keep the hub's secret {where}: no directory {socket_dir}")
        keep = False
        try:
            if self._per_hub_secret:
                self._token, self._secret_inode = create_secret(dir_fd, self.event_name, where)
                keep = True
            else:  # a configured token, or insecure: clients must not find a stale secret
                clear_stale_secret(dir_fd, self.event_name, where)
        finally:
            if keep:
                self._dir_fd = dir_fd
            else:
                os.close(dir_fd)

    def _cleanup_address(self) -> None:
        from sockcli.hubsecret import remove_secret

        dir_fd, self._dir_fd = self._dir_fd, None
        if dir_fd is None:
            return
        try:
            if self._secret_inode is not None:
                remove_secret(dir_fd, self.event_name, self._secret_inode)
        finally:
            os.close(dir_fd)

    def _listen(self) -> socket.socket:
        """A socket listening on the host: the configured port, else the first free one of
        the range (:attr:`port` says which)."""
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
            return sock
        what = f"port {ports[0]}" if len(ports) == 1 else \
            f"every port from {ports[0]} to {ports[-1]}"
        raise ConnectionError(f"cannot listen on {host}: {what} is in use (set tcp.port or "
                              "widen port_range_start/port_range_end)")

    def _peer_info(self, sock: socket.socket, addr: Any) -> tuple[str, dict[str, int]]:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames, no Nagle
        return f"{addr[0]}:{addr[1]}", {}

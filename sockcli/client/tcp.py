"""The client of the TCP transport: at a given host and port, or found by event name."""

from __future__ import annotations

import socket
from typing import Any

from sockcli.client.connect import open_tcp_socket
from sockcli.client.threaded import HubClient
from sockcli.exceptions import HubAbsentError, ValidationError
from sockcli.hubsecret import read_secret
from sockcli.runtime import check_socket_dir, read_record
from sockcli.types import SocketType

__all__ = ["TcpSocketClient"]


class TcpSocketClient(HubClient):
    """A client of a TCP hub: at ``host``/``port`` if given, else found by event name in the
    local runtime directory (it then proves the hub's per-hub secret, when the hub made one,
    instead of its own token: :mod:`sockcli.hubsecret`)."""

    transport = SocketType.TCP

    def __init__(self, event_name: str, *, host: str | None = None, port: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        if port is not None and not 1 <= port <= 65535:
            raise ValidationError(f"invalid port {port}: it must be from 1 to 65535")
        if host is not None and port is None:
            raise ValidationError("a host needs a port too")
        self.host = host
        self.port = port

    @property
    def address(self) -> str:
        if self.port is not None:
            return f"{self.host or '127.0.0.1'}:{self.port}"
        return f"the record of {self.event_name!r} in {self.config.socket_dir}"

    def _target(self) -> tuple[str, int]:
        if self.port is not None:  # told where: the token, if any, is the configured one
            self._hub_secret = None
            return self.host or "127.0.0.1", self.port
        check_socket_dir(self.config.socket_dir)
        record = read_record(self.config.socket_dir, self.event_name)
        if record is None or record.transport is not SocketType.TCP or record.port is None:
            raise HubAbsentError(f"no TCP hub is running for event {self.event_name!r} (no "
                                 f"record in {self.config.socket_dir})")
        self._hub_secret = read_secret(self.config.socket_dir, self.event_name)
        return record.host or "127.0.0.1", record.port

    def _open_socket(self, timeout: float) -> socket.socket:
        host, port = self._target()
        self.tls_server_name = host
        return open_tcp_socket(host, port, timeout, self.event_name)

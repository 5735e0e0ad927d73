"""The client of the Unix domain socket transport: ``{socket_dir}/{event_name}.sock``."""

from __future__ import annotations

import _socket
import os
from pathlib import Path
from typing import Any

from sockcli.client.connect import open_unix_socket
from sockcli.client.threaded import HubClient
from sockcli.runtime import socket_path
from sockcli.types import SocketType

__all__ = ["UnixSocketClient"]


class UnixSocketClient(HubClient):
    """A client of the hub at ``{socket_dir}/{event_name}.sock``."""

    transport = SocketType.UNIX
    uses_tcp = False  # no token, no TLS: the kernel says who connects (SO_PEERCRED)

    def __init__(self, event_name: str, *, path: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.socket_path = Path(path) if path is not None else \
            socket_path(self.config.socket_dir, self.event_name)

    @property
    def address(self) -> str:
        return str(self.socket_path)

    def _open_socket(self, timeout: float) -> _socket.socket:
        return open_unix_socket(self.socket_path, timeout, self.event_name)

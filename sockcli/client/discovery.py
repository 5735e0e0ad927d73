"""Find a local hub by event name, whatever its transport.

``sockcli send``/``listen`` only know an event name. :class:`LocalHubClient` reads the hub's
record on every connection attempt, so a listener started before its hub, or one whose hub
comes back on the other transport, still finds it; and a TCP hub's per-hub secret
(:mod:`sockcli.hubsecret`), so that it proves it to a hub that made one. With no live record,
a socket at ``{event}.sock`` is connected to: a socket-activated hub that has not started yet
(systemd holds the socket, and starts the hub on that connection).
"""

from __future__ import annotations

import _socket
from pathlib import Path
from typing import Any

from sockcli.client.connect import open_tcp_socket, open_unix_socket
from sockcli.client.threaded import HubAbsentError, HubClient
from sockcli.hubsecret import read_secret
from sockcli.runtime import (
    HubRecord,
    check_socket_dir,
    list_records,
    read_record,
    socket_exists,
    socket_path,
)
from sockcli.types import SocketType

__all__ = ["LocalHubClient", "find_hub", "running_hubs"]


def find_hub(socket_dir: Path, event_name: str) -> HubRecord | None:
    """The record of the live hub for ``event_name`` in ``socket_dir``, if any."""
    check_socket_dir(socket_dir)
    return read_record(socket_dir, event_name)


def running_hubs(socket_dir: Path) -> list[HubRecord]:
    """Records of every live hub in ``socket_dir``, by event name."""
    check_socket_dir(socket_dir)
    return list_records(socket_dir)


class LocalHubClient(HubClient):
    """A client of whichever local hub serves the event (Unix or TCP), found by its record."""

    transport = SocketType.UNIX  # nominal: the record decides at each connection

    def __init__(self, event_name: str, **kwargs: Any) -> None:
        super().__init__(event_name, **kwargs)
        self.record: HubRecord | None = None
        #: The socket connected to without a record (socket activation), else None.
        self._activation_path: Path | None = None

    @property
    def address(self) -> str:
        if self.record is not None:
            return self.record.address
        if self._activation_path is not None:
            return str(self._activation_path)
        return f"the record of {self.event_name!r} in {self.config.socket_dir}"

    def _open_socket(self, timeout: float) -> _socket.socket:
        socket_dir = self.config.socket_dir
        record = find_hub(socket_dir, self.event_name)
        if record is None:
            if not socket_exists(socket_dir, self.event_name):
                raise HubAbsentError(f"no hub is running for event {self.event_name!r}")
            # A refused connection is HubAbsentError too: retried as for a missing hub.
            self.record, self._hub_secret = None, None
            self._activation_path = socket_path(socket_dir, self.event_name)
            return open_unix_socket(self._activation_path, timeout, self.event_name)
        self.record, self._activation_path = record, None
        if record.transport is SocketType.TCP and record.port is not None:
            self._hub_secret = read_secret(self.config.socket_dir, self.event_name)
            self.tls_server_name = record.host or "127.0.0.1"
            return open_tcp_socket(record.host or "127.0.0.1", record.port, timeout,
                                   self.event_name)
        self._hub_secret = None
        return open_unix_socket(Path(str(record.path)), timeout, self.event_name)

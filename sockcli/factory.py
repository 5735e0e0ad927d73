"""Create servers and clients by transport name."""

from __future__ import annotations

from typing import Any

from sockcli.client.base import SocketClient
from sockcli.hub.base import SocketServer
from sockcli.types import SocketType

__all__ = ["create_client", "create_server"]


def _classes(socket_type: SocketType | str) -> tuple[type[Any], type[Any]]:
    kind = SocketType.parse(socket_type)
    if kind is SocketType.UNIX:
        from sockcli.client.unix import UnixSocketClient
        from sockcli.hub.unix import UnixSocketServer

        return UnixSocketServer, UnixSocketClient
    from sockcli.client.tcp import TcpSocketClient
    from sockcli.hub.tcp import TcpSocketServer

    return TcpSocketServer, TcpSocketClient


def create_server(socket_type: SocketType | str, event_name: str, **kwargs: Any) -> SocketServer:
    """A hub for ``event_name`` on ``socket_type`` ("unix" or "tcp", any case, or the enum).

    ``kwargs`` go to the server: settings keys (``message_queue_size=10``), ``settings=`` or
    ``config_file=``. Raises ValidationError for an unknown type, event name or setting.
    """
    server_cls, _ = _classes(socket_type)
    server: SocketServer = server_cls(event_name, **kwargs)
    return server


def create_client(socket_type: SocketType | str, event_name: str, **kwargs: Any) -> SocketClient:
    """A client of the ``event_name`` hub on ``socket_type``; not connected yet.

    ``kwargs`` go to the client: ``subscribe``, ``types``, ``name``, ``auto_reconnect``,
    ``host``/``port`` (TCP), ``path`` (Unix) and settings keys.
    """
    _, client_cls = _classes(socket_type)
    client: SocketClient = client_cls(event_name, **kwargs)
    return client

"""Create servers and clients by transport name.

The names and their classes are the registry's (:mod:`sockcli.transports`): "unix", "tcp"
and any registered transport, so this module names none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sockcli.client.base import SocketClient
from sockcli.exceptions import ValidationError
from sockcli.hub.base import SocketServer
from sockcli.kinds import SocketType
from sockcli.transports import get_transport

__all__ = ["create_client", "create_server"]


def create_server(socket_type: SocketType | str, event_name: str, **kwargs: Any) -> SocketServer:
    """A hub for ``event_name`` on ``socket_type``: a transport's name in any case ("unix",
    "tcp", a registered one) or a :class:`~sockcli.kinds.SocketType`.

    ``kwargs`` go to the server: settings keys (``message_queue_size=10``), ``settings=`` or
    ``config_file=``. Raises ValidationError for an unknown type (naming the choices), event
    name or setting.
    """
    transport = get_transport(socket_type)
    server_cls = transport.server_class()
    if not (isinstance(server_cls, type) and issubclass(server_cls, SocketServer)):
        raise ValidationError(f"the hub of transport {transport.name!r}, {transport.server}, "
                              "is not a SocketServer")
    make: Callable[..., SocketServer] = server_cls  # each takes (event_name, **kwargs)
    return make(event_name, **kwargs)


def create_client(socket_type: SocketType | str, event_name: str, **kwargs: Any) -> SocketClient:
    """A client of the ``event_name`` hub on ``socket_type`` (as for :func:`create_server`);
    not connected yet.

    ``kwargs`` go to the client: ``subscribe``, ``types``, ``name``, ``auto_reconnect``,
    ``host``/``port`` (TCP), ``path`` (Unix) and settings keys.
    """
    transport = get_transport(socket_type)
    client_cls = transport.client_class()
    if not (isinstance(client_cls, type) and issubclass(client_cls, SocketClient)):
        raise ValidationError(f"the client of transport {transport.name!r}, "
                              f"{transport.client}, is not a SocketClient")
    make: Callable[..., SocketClient] = client_cls
    return make(event_name, **kwargs)

"""sockcli: inter-process messaging over Unix domain sockets and TCP.

A hub (:func:`create_server`) serves one named event; clients (:func:`create_client`) send it
messages, which it relays to every other subscriber. Importing this package is cheap: the
transports load on first use and the configuration (pydantic, dynaconf) only when needed.
"""

from __future__ import annotations

from sockcli._lazy import lazy_attributes
from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    MessageError,
    SocketError,
    TimeoutError,
    ValidationError,
)

# Everything else loads on first use: ``sockcli send`` must not pay for dataclasses, typing,
# pydantic or the hub just because the package was imported.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.client.base import SocketClient
    from sockcli.client.tcp import TcpSocketClient
    from sockcli.client.unix import UnixSocketClient
    from sockcli.config.loader import load_settings
    from sockcli.config.models import Settings, SocketConfig, TcpSocketConfig, UnixSocketConfig
    from sockcli.factory import create_client, create_server
    from sockcli.hub.base import ClientInfo, SocketServer
    from sockcli.hub.tcp import TcpSocketServer
    from sockcli.hub.unix import UnixSocketServer
    from sockcli.kinds import MessageType, SocketType
    from sockcli.types import SocketMessage

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ClientInfo",
    "ConnectionError",
    "MaxConnectionsError",
    "MessageError",
    "MessageType",
    "Settings",
    "SocketClient",
    "SocketConfig",
    "SocketError",
    "SocketMessage",
    "SocketServer",
    "SocketType",
    "TcpSocketClient",
    "TcpSocketConfig",
    "TcpSocketServer",
    "TimeoutError",
    "UnixSocketClient",
    "UnixSocketConfig",
    "UnixSocketServer",
    "ValidationError",
    "__version__",
    "create_client",
    "create_server",
    "load_settings",
]

_LAZY = {
    "MessageType": "sockcli.kinds",
    "SocketType": "sockcli.kinds",
    "SocketMessage": "sockcli.types",
    "SocketClient": "sockcli.client.base",
    "SocketServer": "sockcli.hub.base",
    "ClientInfo": "sockcli.hub.base",
    "UnixSocketServer": "sockcli.hub.unix",
    "UnixSocketClient": "sockcli.client.unix",
    "TcpSocketServer": "sockcli.hub.tcp",
    "TcpSocketClient": "sockcli.client.tcp",
    "create_server": "sockcli.factory",
    "create_client": "sockcli.factory",
    "Settings": "sockcli.config.models",
    "SocketConfig": "sockcli.config.models",
    "UnixSocketConfig": "sockcli.config.models",
    "TcpSocketConfig": "sockcli.config.models",
    "load_settings": "sockcli.config.loader",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

"""sockcli: inter-process messaging over Unix domain sockets and TCP.

A hub (:func:`create_server`) serves one named event; clients (:func:`create_client`) send it
messages, which it relays to every other subscriber. Importing this package is cheap: the
transports load on first use and the configuration (pydantic, dynaconf) only when needed.
"""

from __future__ import annotations

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
    from typing import Any

    from sockcli.client import SocketClient
    from sockcli.config.models import Settings, SocketConfig, TcpSocketConfig, UnixSocketConfig
    from sockcli.config.settings import load_settings
    from sockcli.factory import create_client, create_server
    from sockcli.kinds import MessageType, SocketType
    from sockcli.server import ClientInfo, SocketServer
    from sockcli.tcp import TcpSocketClient, TcpSocketServer
    from sockcli.types import SocketMessage
    from sockcli.unix import UnixSocketClient, UnixSocketServer

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
    "SocketClient": "sockcli.client",
    "SocketServer": "sockcli.server",
    "ClientInfo": "sockcli.server",
    "UnixSocketServer": "sockcli.unix",
    "UnixSocketClient": "sockcli.unix",
    "TcpSocketServer": "sockcli.tcp",
    "TcpSocketClient": "sockcli.tcp",
    "create_server": "sockcli.factory",
    "create_client": "sockcli.factory",
    "Settings": "sockcli.config.models",
    "SocketConfig": "sockcli.config.models",
    "UnixSocketConfig": "sockcli.config.models",
    "TcpSocketConfig": "sockcli.config.models",
    "load_settings": "sockcli.config.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sockcli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

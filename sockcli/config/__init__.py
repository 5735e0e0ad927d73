"""Configuration: pydantic models, loaded with dynaconf from settings.toml files and the
environment. Imported lazily, because pydantic and dynaconf cost more to import than the rest
of sockcli together."""

from __future__ import annotations

from sockcli._lazy import lazy_attributes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sockcli.config.loader import get_settings, load_settings
    from sockcli.config.models import (
        BridgeConfig,
        Settings,
        SocketConfig,
        TcpSocketConfig,
        UnixSocketConfig,
    )

__all__ = [
    "BridgeConfig",
    "Settings",
    "SocketConfig",
    "TcpSocketConfig",
    "UnixSocketConfig",
    "get_settings",
    "load_settings",
]

_LAZY = {
    "BridgeConfig": "sockcli.config.models",
    "Settings": "sockcli.config.models",
    "SocketConfig": "sockcli.config.models",
    "TcpSocketConfig": "sockcli.config.models",
    "UnixSocketConfig": "sockcli.config.models",
    "get_settings": "sockcli.config.loader",
    "load_settings": "sockcli.config.loader",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

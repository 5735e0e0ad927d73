"""Configuration: pydantic models, loaded with dynaconf from settings.toml files and the
environment. Imported lazily, because pydantic and dynaconf cost more to import than the rest
of sockcli together."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sockcli.config.models import Settings, SocketConfig, TcpSocketConfig, UnixSocketConfig
    from sockcli.config.settings import get_settings, load_settings

__all__ = [
    "Settings",
    "SocketConfig",
    "TcpSocketConfig",
    "UnixSocketConfig",
    "get_settings",
    "load_settings",
]

_LAZY = {
    "Settings": "sockcli.config.models",
    "SocketConfig": "sockcli.config.models",
    "TcpSocketConfig": "sockcli.config.models",
    "UnixSocketConfig": "sockcli.config.models",
    "get_settings": "sockcli.config.settings",
    "load_settings": "sockcli.config.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

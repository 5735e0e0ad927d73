"""What code may read of the settings, as protocols that both of their forms satisfy.

``load_settings`` returns either the pydantic :class:`~sockcli.config.models.Settings` or,
when nothing changed since an earlier run, a :class:`~sockcli.config.cache.CachedSettings`
that skips pydantic. Hubs, clients and the CLI are written against :class:`SettingsView`, so
mypy checks every ``settings.tcp.port`` they read, whichever form arrives; mypy checks that
each form satisfies the protocols where the loader returns it, and
tests/test_settings_typing.py that the protocols, the models and the cached form list the
same keys with the same values.

Every member is read-only: settings are frozen. Import this module under ``TYPE_CHECKING``
only where start-up matters (the send path does not import ``typing``).
"""

from __future__ import annotations

from typing import Any, Protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SettingsView", "SocketView", "TcpView", "UnixView"]


class SocketView(Protocol):
    """The top level of settings.toml: what every transport shares."""

    @property
    def socket_dir(self) -> Path: ...
    @property
    def default_timeout(self) -> float: ...
    @property
    def buffer_size(self) -> int: ...
    @property
    def timezone(self) -> str: ...
    @property
    def message_queue_size(self) -> int: ...
    @property
    def blocking_mode(self) -> bool: ...
    @property
    def allow_client_send(self) -> bool: ...
    @property
    def auto_reconnect(self) -> bool: ...
    @property
    def reconnect_max_delay(self) -> float: ...
    @property
    def receive_buffer_size(self) -> int: ...
    @property
    def send_buffer_limit(self) -> int: ...
    @property
    def handshake_timeout(self) -> float: ...
    @property
    def frame_timeout(self) -> float: ...
    @property
    def slow_consumer_timeout(self) -> float: ...
    @property
    def retain(self) -> bool: ...
    @property
    def message_types(self) -> tuple[str, ...]: ...


class UnixView(Protocol):
    """The ``[unix]`` section."""

    @property
    def max_connections(self) -> int: ...
    @property
    def socket_permissions(self) -> str: ...
    @property
    def auto_remove_socket(self) -> bool: ...
    @property
    def allowed_uids(self) -> tuple[int, ...]: ...
    @property
    def allowed_gids(self) -> tuple[int, ...]: ...
    @property
    def mode(self) -> int:
        """``socket_permissions`` as an integer, for chmod."""
        ...


class TcpView(Protocol):
    """The ``[tcp]`` section."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def port_range_start(self) -> int: ...
    @property
    def port_range_end(self) -> int: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def token_file(self) -> Path | None: ...
    @property
    def tls_cert(self) -> Path | None: ...
    @property
    def tls_key(self) -> Path | None: ...
    @property
    def tls_ca(self) -> Path | None: ...
    @property
    def insecure(self) -> bool: ...


class SettingsView(Protocol):
    """Validated settings: the top level, the built-in sections, and any section by name."""

    @property
    def socket(self) -> SocketView: ...
    @property
    def unix(self) -> UnixView: ...
    @property
    def tcp(self) -> TcpView: ...

    def section(self, name: str) -> Any:
        """The section ``name`` of any transport, registered ones included (an instance of
        its model, or the cached equivalent). Raises ValidationError for no such section."""
        ...

    def as_json(self) -> dict[str, Any]:
        """Every part as JSON values: {"socket": {...}, "unix": {...}, "tcp": {...}, ...}."""
        ...

    def with_overrides(self, **overrides: Any) -> SettingsView:
        """These settings with flat keyword overrides (``max_connections`` applies to every
        section that has it); the same object when there are none. Raises ValidationError."""
        ...

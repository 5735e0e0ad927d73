"""A cache of validated settings, so that a short-lived ``sockcli send`` skips pydantic and
dynaconf (together about six interpreter start-ups) when nothing changed.

The cache entry is keyed by everything the result depends on: the identity, size and times of
each settings file (present or not), the ``SOCKCLI_*`` settings variables (and dynaconf's own,
which it applies too), the variables that decide defaults (``XDG_RUNTIME_DIR``, ``HOME``), the
keyword overrides, the transport sections of the registry, the uid and the sockcli version.
Any change is a miss, and a miss validates in full, so an invalid file is reported on the very
next run. Entries are JSON (never pickle), 0600, in ``$XDG_CACHE_HOME/sockcli``.

:class:`CachedSettings` is the entry read back: it satisfies the same
:class:`~sockcli.config.views.SettingsView` as the pydantic settings. Its sections are
hand-written classes rather than ``dataclass(slots=True, frozen=True)``: this module is read
on every ``sockcli send``, and ``import dataclasses`` costs 9.8 ms (python -X importtime,
bytecode cached), more than ``python -c pass`` itself: 19 ms against 8 ms as processes, where
a cached ``sockcli send`` takes 22 ms in all.
"""

from __future__ import annotations

import contextlib
import os

from sockcli.exceptions import ValidationError
from sockcli.jsontext import dumps, loads

TYPE_CHECKING = False  # read on every `sockcli send`: no typing, pathlib or hashlib
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from sockcli.config.views import SettingsView

__all__ = ["CachedBridge", "CachedSettings", "CachedSocket", "CachedTcp", "CachedUnix",
           "cache_file", "cache_key", "load_cached", "settings_variables", "store_cached"]

_FORMAT = 8  # bump when the settings gain keys: an older entry would lack them
#: SOCKCLI_* variables that are not settings: they must not invalidate the cache.
#: The message variables of ``listen --exec`` are among them: a command that runs ``sockcli
#: send`` gets new values for each message, and must still find its settings cached.
_NOT_SETTINGS = frozenset({"SOCKCLI_EVENT", "SOCKCLI_CONFIG", "SOCKCLI_DEBUG", "SOCKCLI_TOKEN",
                           "SOCKCLI_NO_CACHE", "SOCKCLI_TYPE", "SOCKCLI_DATA",
                           "SOCKCLI_TIMESTAMP_MS", "SOCKCLI_TIMESTAMP_ISO",
                           # a secret: never written into the cache's key
                           "SOCKCLI_BRIDGE_PASSWORD"})


def cache_file() -> str:
    """``$XDG_CACHE_HOME/sockcli/settings.json`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sockcli", "settings.json")


def _file_id(path: str | os.PathLike[str]) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None]
    return [str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def settings_variables() -> list[tuple[str, str]]:
    """The environment variables the settings are read from, sorted: the ``SOCKCLI_*``
    settings and what dynaconf itself reads (``DYNACONF_*`` values, ``*_FOR_DYNACONF``
    options), which it applies to sockcli's settings too."""
    return sorted((k, v) for k, v in os.environ.items()
                  if (k.startswith("SOCKCLI_") and k not in _NOT_SETTINGS) or
                  k.startswith("DYNACONF_") or "_FOR_DYNACONF" in k)


def cache_key(files: list[str], overrides: dict[str, Any],
              registry: tuple[tuple[str, str], ...] = ()) -> str:
    """Everything the validated settings depend on, as one canonical JSON text; ``registry``
    is the transport sections' (name, model) pairs (:func:`sockcli.transports.registry_key`)."""
    from sockcli import __version__

    material = {
        "format": _FORMAT,
        "version": __version__,
        "uid": os.getuid(),
        "files": [_file_id(p) for p in files],
        "env": settings_variables(),
        "xdg_runtime_dir": os.environ.get("XDG_RUNTIME_DIR"),
        "home": os.environ.get("HOME"),
        "overrides": sorted((k, repr(v)) for k, v in overrides.items()),
        "registry": [list(pair) for pair in registry],
    }
    return dumps(material, sort_keys=True)


def load_cached(key: str) -> CachedSettings | None:
    """The cached settings for ``key``, or None (missing, stale, unreadable, or not ours)."""
    if os.environ.get("SOCKCLI_NO_CACHE"):
        return None
    path = cache_file()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # someone else's or loosely protected: do not trust it
        with open(fd, encoding="utf-8", closefd=False) as fh:
            entry = loads(fh.read())
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    try:
        return CachedSettings(entry["settings"])
    except (KeyError, TypeError, ValueError):
        return None


def store_cached(key: str, data: dict[str, Any]) -> None:
    """Write the entry atomically; a failure to cache is never an error."""
    path = cache_file()
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".settings.json.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps({"key": key, "settings": data}))
        os.replace(tmp, path)


def _path(text: str) -> Path:
    from pathlib import Path  # only for those who ask: the send path uses the text

    return Path(text)


def _optional_path(text: str | None) -> Path | None:
    return None if text is None else _path(text)


class _Section:
    """One validated section as plain attributes (what the models expose), frozen as they
    are. JSON arrays become tuples, as the models hold them; paths stay text until read."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update({k: tuple(v) if isinstance(v, list) else v
                              for k, v in values.items()})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"settings are frozen: cannot set {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"

    def model_dump(self) -> dict[str, Any]:
        """The values, as JSON gave them (paths as text)."""
        return dict(self.__dict__)


class CachedSocket(_Section):
    """The top level (:class:`~sockcli.config.views.SocketView`)."""

    default_timeout: float
    buffer_size: int
    timezone: str
    message_queue_size: int
    blocking_mode: bool
    allow_client_send: bool
    auto_reconnect: bool
    reconnect_max_delay: float
    receive_buffer_size: int
    send_buffer_limit: int
    handshake_timeout: float
    frame_timeout: float
    slow_consumer_timeout: float
    retain: bool
    message_types: tuple[str, ...]

    @property
    def socket_dir(self) -> Path:
        return _path(self.__dict__["socket_dir"])


class CachedUnix(_Section):
    """The ``[unix]`` section (:class:`~sockcli.config.views.UnixView`)."""

    max_connections: int
    socket_permissions: str
    auto_remove_socket: bool
    fifo: bool
    lines_socket: bool
    allowed_uids: tuple[int, ...]
    allowed_gids: tuple[int, ...]

    @property
    def mode(self) -> int:
        return int(self.socket_permissions, 8)


class CachedTcp(_Section):
    """The ``[tcp]`` section (:class:`~sockcli.config.views.TcpView`)."""

    host: str
    port: int
    port_range_start: int
    port_range_end: int
    max_connections: int
    insecure: bool

    @property
    def token_file(self) -> Path | None:
        return _optional_path(self.__dict__["token_file"])

    @property
    def tls_cert(self) -> Path | None:
        return _optional_path(self.__dict__["tls_cert"])

    @property
    def tls_key(self) -> Path | None:
        return _optional_path(self.__dict__["tls_key"])

    @property
    def tls_ca(self) -> Path | None:
        return _optional_path(self.__dict__["tls_ca"])


class CachedBridge(_Section):
    """The ``[bridge]`` section (:class:`~sockcli.config.views.BridgeView`)."""

    url: str
    topic_prefix: str
    username: str
    client_id: str
    queue_size: int
    retain: bool

    @property
    def password_file(self) -> Path | None:
        return _optional_path(self.__dict__["password_file"])

    @property
    def tls_ca(self) -> Path | None:
        return _optional_path(self.__dict__["tls_ca"])


class CachedSettings:
    """Settings validated on an earlier run: the same attributes as
    :class:`~sockcli.config.models.Settings`, without importing pydantic.

    ``data`` is :meth:`Settings.as_json`'s: the top level under "socket", then each section;
    a registered transport's section is a plain :class:`_Section` (its values as attributes).
    """

    socket: CachedSocket
    unix: CachedUnix
    tcp: CachedTcp
    bridge: CachedBridge

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.socket = CachedSocket(data["socket"])
        self.unix = CachedUnix(data["unix"])
        self.tcp = CachedTcp(data["tcp"])
        self.bridge = CachedBridge(data["bridge"])
        self._sections: dict[str, _Section] = {"unix": self.unix, "tcp": self.tcp,
                                               "bridge": self.bridge}
        for name, values in data.items():
            if name not in self._sections and name != "socket":
                self._sections[name] = _Section(values)

    def section(self, name: str) -> Any:
        """The section ``name``; a registered transport's is a plain object with its values as
        attributes (only the pydantic form is an instance of its model). Raises
        ValidationError for no such section."""
        found = self._sections.get(name)
        if found is None:
            raise ValidationError(f"no settings section {name!r}: the sections are "
                                  f"{', '.join(sorted(self._sections))}")
        return found

    def as_json(self) -> dict[str, Any]:
        return self._data

    def __eq__(self, other: object) -> bool:
        as_json = getattr(other, "as_json", None)
        return as_json is not None and self._data == as_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CachedSettings({self._data!r})"

    def with_overrides(self, **overrides: Any) -> SettingsView:
        """Validated settings (pydantic's, now) with ``overrides`` on top; self without."""
        if not overrides:
            return self
        from sockcli.config.models import Settings

        return Settings.build(self._data, overrides)

"""A cache of validated settings, so that a short-lived ``sockcli send`` skips pydantic and
dynaconf (together about six interpreter start-ups) when nothing changed.

The cache entry is keyed by everything the result depends on: the identity, size and times of
each settings file (present or not), the ``SOCKCLI_*`` settings variables, the variables that
decide defaults (``XDG_RUNTIME_DIR``, ``HOME``), the keyword overrides, the uid and the sockcli
version. Any change is a miss, and a miss validates in full, so an invalid file is reported on
the very next run. Entries are JSON (never pickle), 0600, in ``$XDG_CACHE_HOME/sockcli``.
"""

from __future__ import annotations

import contextlib
import json
import os

TYPE_CHECKING = False  # read on every `sockcli send`: no typing, pathlib or hashlib
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["CachedSettings", "cache_file", "cache_key", "load_cached", "store_cached"]

_FORMAT = 3  # bump when the settings gain keys: an older entry would lack them
#: SOCKCLI_* variables that are not settings: they must not invalidate the cache.
_NOT_SETTINGS = frozenset({"SOCKCLI_EVENT", "SOCKCLI_CONFIG", "SOCKCLI_DEBUG", "SOCKCLI_TOKEN",
                           "SOCKCLI_NO_CACHE"})


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


def cache_key(files: list[str], overrides: dict[str, Any]) -> str:
    """Everything the validated settings depend on, as one canonical JSON text."""
    from sockcli import __version__

    env = sorted((k, v) for k, v in os.environ.items()
                 if k.startswith("SOCKCLI_") and k not in _NOT_SETTINGS)
    material = {
        "format": _FORMAT,
        "version": __version__,
        "uid": os.getuid(),
        "files": [_file_id(p) for p in files],
        "env": env,
        "xdg_runtime_dir": os.environ.get("XDG_RUNTIME_DIR"),
        "home": os.environ.get("HOME"),
        "overrides": sorted((k, repr(v)) for k, v in overrides.items()),
    }
    return json.dumps(material, sort_keys=True)


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
            entry = json.load(fh)
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
            json.dump({"key": key, "settings": data}, fh)
        os.replace(tmp, path)


class _Section:
    """One validated section, as plain attributes (what the models expose)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def model_dump(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _SocketSection(_Section):
    @property
    def socket_dir(self) -> Path:
        from pathlib import Path  # only for those who ask: the send path uses the text

        return Path(self.__dict__["socket_dir_text"])

    def model_dump(self) -> dict[str, Any]:
        values = dict(self.__dict__)
        values["socket_dir"] = values.pop("socket_dir_text")
        return values


class _UnixSection(_Section):
    socket_permissions: str

    @property
    def mode(self) -> int:
        return int(self.socket_permissions, 8)


class CachedSettings:
    """Settings validated on an earlier run: the same attributes as
    :class:`~sockcli.config.models.Settings`, without importing pydantic."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        socket = dict(data["socket"])
        socket["socket_dir_text"] = str(socket.pop("socket_dir"))
        self.socket = _SocketSection(socket)
        self.unix = _UnixSection(dict(data["unix"]))
        self.tcp = _Section(dict(data["tcp"]))

    def as_json(self) -> dict[str, Any]:
        return self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CachedSettings):
            return self._data == other._data
        dump = getattr(other, "model_dump", None)
        return dump is not None and self._data == dump(mode="json")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CachedSettings({self._data!r})"

    def with_overrides(self, **overrides: Any) -> Any:
        if not overrides:
            return self
        from sockcli.config.models import Settings

        return Settings.model_validate(self._data).with_overrides(**overrides)

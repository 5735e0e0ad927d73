"""Load the settings with dynaconf from their layers, or their cached form when nothing
changed.

Layers, last wins: the packaged defaults, the user's file (or ``config_file``), ``SOCKCLI_``
environment variables, keyword arguments. :meth:`~sockcli.config.models.Settings.build`
validates and explains a bad value; this module tells it which layer the value came from.

Sections come from the transport registry (:mod:`sockcli.transports`), not from a list
here: the top level, then one table per transport, ``[unix]``, ``[tcp]`` and each registered
transport's (``[vsock]``). A registered section is read from the same layers as the built-in
ones (its table in the user's file, ``SOCKCLI_VSOCK__KEY`` variables, any keyword argument
its model has), validated by its model (whose defaults apply: the packaged file knows only
the built-in sections), cached with the rest, and read as ``settings.section("vsock")``;
``settings.unix`` and ``settings.tcp`` stay typed attributes. Register a transport before
its settings are loaded.

A first :func:`load_settings_data` (the CLI's) with nothing to validate but the packaged
file (no user file, no settings variable, no keyword but ``socket_dir``) takes the values of
:mod:`sockcli.config.defaults` instead of importing pydantic and dynaconf (300 ms): the same
values, validated ahead of time by tools/settings_defaults.py, which
tests/test_settings_defaults.py holds equal to a validation in the same environment.

Loading settings, from the cache too, makes their timezone the process's default for
message timestamps (:func:`sockcli.timestamps.set_default_timezone`): this module imports
the timestamp code, never the reverse.
"""

from __future__ import annotations

import _thread
import os

from sockcli.exceptions import ValidationError
from sockcli.timestamps import set_default_timezone
from sockcli.transports import registry_key

TYPE_CHECKING = False  # a cached load must not import typing, pathlib, tomllib or pydantic
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from sockcli.config.models import Settings
    from sockcli.config.views import SettingsView

__all__ = [
    "ENV_PREFIX",
    "apply_overrides",
    "default_settings_file",
    "get_settings",
    "load_settings",
    "load_settings_data",
    "reset_settings_cache",
    "settings_for",
    "user_settings_file",
]

ENV_PREFIX = "SOCKCLI"
_lock = _thread.allocate_lock()
#: The shared settings, with the key (:func:`sockcli.config.cache.cache_key`) they were
#: loaded under.
_cached: tuple[str, SettingsView] | None = None


def _default_path() -> str:
    # Beside this module in a wheel; no importlib.resources, whose import alone costs ~9 ms.
    here = os.path.dirname(os.path.abspath(__file__))
    packaged = os.path.join(here, "settings.toml")
    if os.path.isfile(packaged):
        return packaged
    return os.path.join(os.path.dirname(os.path.dirname(here)), "config", "settings.toml")


def _user_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "sockcli", "settings.toml")


def default_settings_file() -> Path:
    """The packaged defaults: inside the wheel, or config/settings.toml in a source checkout."""
    from pathlib import Path

    return Path(_default_path())


def user_settings_file() -> Path:
    """``$XDG_CONFIG_HOME/sockcli/settings.toml``, else ``~/.config/sockcli/settings.toml``."""
    from pathlib import Path

    return Path(_user_path())


def _lower(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower(v) for k, v in value.items()}
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            return _lower(tomllib.load(fh))  # type: ignore[no-any-return]
    except OSError as exc:
        raise ValidationError(f"cannot read settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"settings file {path} is not valid TOML: {exc}") from None


def _check_unknown_keys(path: Path, fields: dict[str | None, set[str]]) -> None:
    """A typo in a file must not pass silently; the environment may hold unrelated SOCKCLI_*."""
    data = _read_toml(path)
    sections = [f"[{name}]" for name in fields if name is not None]
    listed = " and ".join(sections) if len(sections) < 3 else \
        f"{', '.join(sections[:-1])} and {sections[-1]}"
    for key, value in data.items():
        if key in fields and isinstance(value, dict):
            for sub in value:
                if sub not in fields[key]:
                    raise ValidationError(
                        f"unknown setting [{key}] {sub} in {path}: "
                        f"known keys are {', '.join(sorted(fields[key]))}"
                    )
        elif key not in fields[None]:
            raise ValidationError(
                f"unknown setting {key} in {path}: known keys are "
                f"{', '.join(sorted(fields[None]))}, and the sections {listed}"
            )


def _env_name(section: str | None, key: str) -> str:
    return f"{ENV_PREFIX}_{section.upper()}__{key.upper()}" if section else \
        f"{ENV_PREFIX}_{key.upper()}"


def _source(section: str | None, key: str, user_file: Path | None,
            overrides: Mapping[str, Any]) -> str:
    if key in overrides:
        return f"keyword argument {key}="
    env = _env_name(section, key)
    if env in os.environ:
        return f"environment variable {env}"
    if user_file is not None and user_file.is_file():
        data = _read_toml(user_file)
        holder = data.get(section, {}) if section else data
        if isinstance(holder, dict) and key in holder:
            return str(user_file)
    return str(default_settings_file())


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  **overrides: Any) -> SettingsView:
    """Load and validate the settings; ``config_file`` replaces the user's file.

    Returns a frozen :class:`~sockcli.config.models.Settings`, or the same values validated on
    an earlier run when no input changed (a :class:`~sockcli.config.cache.CachedSettings`, see
    :mod:`sockcli.config.cache`); both are :class:`~sockcli.config.views.SettingsView`. Their
    timezone becomes the process's default. Raises ValidationError for an unreadable or
    invalid file, an invalid value anywhere, or an unknown keyword.
    """
    user_file = os.fspath(config_file) if config_file is not None else _user_path()
    return _load_keyed(_key(user_file, overrides), config_file, overrides)


def _key(user_file: str, overrides: Mapping[str, Any]) -> str:
    """What the settings depend on (:func:`sockcli.config.cache.cache_key`): the files'
    identities, the SOCKCLI_* variables, XDG_RUNTIME_DIR, HOME, the uid, the registry."""
    from sockcli.config import cache

    return cache.cache_key([_default_path(), user_file], dict(overrides), registry_key())


def _load_keyed(key: str, config_file: str | os.PathLike[str] | None,
                overrides: Mapping[str, Any], *, prevalidated: bool = False) -> SettingsView:
    """The settings cached under ``key``, else (with ``prevalidated``) the packaged ones
    validated ahead of time when they are all there is (:func:`_prevalidated`), else
    validated now; cached either way."""
    from sockcli.config import cache

    settings: SettingsView | None = cache.load_cached(key)
    if settings is None and prevalidated:
        data = _prevalidated(config_file, overrides)
        if data is not None:
            cache.store_cached(key, data)
            settings = cache.CachedSettings(data)
    if settings is not None:
        set_default_timezone(settings.socket.timezone)
        return settings
    settings = _load_and_validate(config_file, overrides)
    cache.store_cached(key, settings.as_json())
    return settings


def load_settings_data(config_file: str | os.PathLike[str] | None = None,
                       **overrides: Any) -> dict[str, Any]:
    """:func:`load_settings` as plain JSON values ({"socket": {...}, "unix": ..., "tcp": ...}),
    for code that must not import pathlib or pydantic when the cache is fresh, nor on a first
    run that has nothing to validate but the packaged settings (:func:`_prevalidated`)."""
    user_file = os.fspath(config_file) if config_file is not None else _user_path()
    return _load_keyed(_key(user_file, overrides), config_file, overrides,
                       prevalidated=True).as_json()


def _prevalidated(config_file: str | os.PathLike[str] | None,
                  overrides: Mapping[str, Any]) -> dict[str, Any] | None:
    """The packaged settings as the models validated them ahead of time
    (:mod:`sockcli.config.defaults`), when validating now could give nothing else: no
    ``config_file`` and no user settings file, no settings variable (``SOCKCLI_*``, dynaconf's),
    no keyword but a ``socket_dir``, the built-in transports only, and the packaged
    settings.toml the one they came from. ``socket_dir`` is computed as the model computes it.
    None otherwise, or for a path the model would rewrite (``/run//x/``): pydantic decides.
    """
    if config_file is not None or overrides.keys() - {"socket_dir"} or \
            os.path.isfile(_user_path()):
        return None
    from sockcli.config import cache, defaults

    if cache.settings_variables() or registry_key() != defaults.REGISTRY:
        return None
    socket_dir = overrides.get("socket_dir")
    if socket_dir is None or socket_dir == "":  # models.default_socket_dir()
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        socket_dir = f"{runtime}/sockcli" if runtime else f"/tmp/sockcli-{os.getuid()}"
    if not _plain_absolute(socket_dir) or not _packaged_file_is(defaults.SOURCE_SIZE,
                                                                defaults.SOURCE_CRC32):
        return None
    return defaults.settings_data(socket_dir)


def _plain_absolute(path: object) -> bool:
    """Whether ``path`` is an absolute path text that pathlib keeps as it is (no empty or "."
    part, no trailing slash), so that the model would store this very text."""
    return isinstance(path, str) and path.startswith("/") and \
        all(part not in ("", ".") for part in path[1:].split("/"))


def _packaged_file_is(size: int, crc32: int) -> bool:
    """Whether the packaged settings.toml has this size and CRC-32."""
    try:
        with open(_default_path(), "rb") as fh:
            content = fh.read()
    except OSError:
        return False
    if len(content) != size:
        return False
    import binascii  # 0.2 ms, on a first run only

    return binascii.crc32(content) == crc32


def _keep_text_variables(data: dict[str, Any]) -> None:
    """dynaconf parses variables as TOML, so ``SOCKCLI_UNIX__SOCKET_PERMISSIONS=0o640``
    became the integer 416, i.e. mode 0416: a setting whose type is text takes the
    variable's text as it is."""
    from sockcli.config.models import SocketConfig, section_models

    parts: dict[str | None, Any] = {None: SocketConfig}
    parts.update(section_models())
    for part, model in parts.items():
        for key, field in model.model_fields.items():
            raw = os.environ.get(_env_name(part, key)) if field.annotation is str else None
            if raw is not None:
                holder = data.setdefault(part, {}) if part is not None else data
                if isinstance(holder, dict):
                    holder[key] = raw


def _load_and_validate(config_file: str | os.PathLike[str] | None,
                       overrides: Mapping[str, Any]) -> Settings:
    from pathlib import Path

    from dynaconf import Dynaconf

    from sockcli.config.models import Settings, section_fields

    fields = section_fields()
    user_file = Path(config_file) if config_file is not None else user_settings_file()
    if config_file is not None and not user_file.is_file():
        raise ValidationError(f"settings file {user_file} does not exist")
    files = [str(default_settings_file())]
    if user_file.is_file():
        _check_unknown_keys(user_file, fields)
        files.append(str(user_file))
    try:
        dyn = Dynaconf(
            settings_files=files,
            envvar_prefix=ENV_PREFIX,
            environments=False,
            merge_enabled=True,
            load_dotenv=False,
            core_loaders=["TOML"],
        )
        data = _lower(dyn.as_dict())
    except Exception as exc:  # dynaconf raises assorted errors for unparsable input
        raise ValidationError(f"cannot load settings: {exc}") from None
    _keep_text_variables(data)
    tree = {"socket": data, **{name: data.get(name) for name in fields if name is not None}}

    def where(section: str | None, key: str) -> str:
        return _source(section, key, user_file, overrides)

    return Settings.build(tree, overrides, where)


def get_settings() -> SettingsView:
    """The default settings of this process, shared while what they depend on is unchanged.

    Keyed like the disk cache (:func:`sockcli.config.cache.cache_key`), so a process that
    changes ``XDG_RUNTIME_DIR``, ``HOME`` or a ``SOCKCLI_*`` variable, edits its settings
    file, or registers a transport gets fresh settings for the hubs and clients it makes
    afterwards; unchanged, the same object (the key costs two ``stat`` calls and a scan
    of the environment)."""
    global _cached
    key = _key(_user_path(), {})
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, _load_keyed(key, None, {}))
        return _cached[1]


def settings_for(settings: SettingsView | None = None,
                 config_file: str | os.PathLike[str] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> SettingsView:
    """The settings of one hub or client: ``settings`` if given, else those of
    ``config_file``, else the shared ones of this process; then its keyword ``overrides``.
    The message types they name are registered (:func:`sockcli.kinds.register_message_types`),
    so that the hub or client built on them knows its configured types."""
    from sockcli.kinds import register_message_types

    if settings is None:
        settings = load_settings(config_file) if config_file is not None else get_settings()
    result = settings.with_overrides(**(overrides or {}))
    register_message_types(result.socket.message_types)
    return result


def reset_settings_cache() -> None:
    """Forget the shared settings (after the environment or a file changed), and the default
    timezone they set: "local" until settings are loaded again."""
    global _cached
    with _lock:
        _cached = None
        set_default_timezone(None)


def apply_overrides(settings: SettingsView, overrides: Mapping[str, Any]) -> SettingsView:
    """Validate ``overrides`` on top of already loaded settings (``settings.with_overrides``)."""
    return settings.with_overrides(**overrides)

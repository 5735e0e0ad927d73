"""Load :class:`~sockcli.config.models.Settings` with dynaconf, and explain bad values.

Layers, last wins: the packaged defaults, the user's file, ``SOCKCLI_`` environment variables,
keyword arguments. An invalid value becomes a :class:`~sockcli.exceptions.ValidationError`
that names the key, the value and the layer it came from, because "input should be a valid
integer" alone does not tell a user which of four places to fix.
"""

from __future__ import annotations

import _thread
import os

from sockcli.exceptions import ValidationError

TYPE_CHECKING = False  # a cached load must not import typing, pathlib, tomllib or pydantic
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

__all__ = [
    "ENV_PREFIX",
    "apply_overrides",
    "configured_timezone",
    "default_settings_file",
    "get_settings",
    "load_settings",
    "load_settings_data",
    "user_settings_file",
]

ENV_PREFIX = "SOCKCLI"
_SECTIONS = ("unix", "tcp")
_lock = _thread.allocate_lock()
_cached: Any = None


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


def _fields() -> dict[str | None, set[str]]:
    from sockcli.config.models import SocketConfig, TcpSocketConfig, UnixSocketConfig

    return {
        None: set(SocketConfig.model_fields),
        "unix": set(UnixSocketConfig.model_fields),
        "tcp": set(TcpSocketConfig.model_fields),
    }


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
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            for sub in value:
                if sub not in fields[key]:
                    raise ValidationError(
                        f"unknown setting [{key}] {sub} in {path}: "
                        f"known keys are {', '.join(sorted(fields[key]))}"
                    )
        elif key not in fields[None]:
            raise ValidationError(
                f"unknown setting {key} in {path}: known keys are "
                f"{', '.join(sorted(fields[None]))}, and the sections [unix] and [tcp]"
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


def _split_overrides(overrides: Mapping[str, Any],
                     fields: dict[str | None, set[str]]) -> dict[str | None, dict[str, Any]]:
    split: dict[str | None, dict[str, Any]] = {None: {}, "unix": {}, "tcp": {}}
    for key, value in overrides.items():
        owners = [s for s, names in fields.items() if key in names]
        if not owners:
            known = sorted(set().union(*fields.values()))
            raise ValidationError(f"unknown setting {key!r}: known settings are {', '.join(known)}")
        for owner in owners:
            split[owner][key] = value
    return split


def _validate(data: dict[str, Any], user_file: Path | None,
              overrides: Mapping[str, Any]) -> Any:
    import pydantic

    from sockcli.config.models import Settings

    fields = _fields()
    tree: dict[str, Any] = {
        "socket": {k: v for k, v in data.items() if k in fields[None]},
        "unix": {k: v for k, v in dict(data.get("unix") or {}).items() if k in fields["unix"]},
        "tcp": {k: v for k, v in dict(data.get("tcp") or {}).items() if k in fields["tcp"]},
    }
    split = _split_overrides(overrides, fields)
    tree["socket"].update(split[None])
    tree["unix"].update(split["unix"])
    tree["tcp"].update(split["tcp"])
    try:
        return Settings.model_validate(tree)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        section = None if loc[0] == "socket" else loc[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        if len(loc) == 1:  # a rule across keys, such as the port range order
            raise ValidationError(f"invalid settings in [{section}]: {message}") from None
        key = loc[1]
        value = tree[loc[0]].get(key, "<missing>")
        name = f"[{section}] {key}" if section else key
        where = _source(section, key, user_file, overrides)
        raise ValidationError(f"invalid setting {name} = {value!r} from {where}: {message}") \
            from None


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  **overrides: Any) -> Any:
    """Load and validate the settings; ``config_file`` replaces the user's file.

    Returns a frozen :class:`~sockcli.config.models.Settings`, or the same values validated on
    an earlier run when no input changed (see :mod:`sockcli.config.cache`). Raises
    ValidationError for an unreadable or invalid file, an invalid value anywhere, or an unknown
    keyword.
    """
    from sockcli.config import cache

    user_file = os.fspath(config_file) if config_file is not None else _user_path()
    key = cache.cache_key([_default_path(), user_file], overrides)
    cached = cache.load_cached(key)
    if cached is not None:
        return cached
    settings = _load_and_validate(config_file, overrides)
    cache.store_cached(key, {"socket": settings.socket.model_dump(mode="json"),
                             "unix": settings.unix.model_dump(mode="json"),
                             "tcp": settings.tcp.model_dump(mode="json")})
    return settings


def load_settings_data(config_file: str | os.PathLike[str] | None = None,
                       **overrides: Any) -> dict[str, Any]:
    """:func:`load_settings` as plain JSON values ({"socket": {...}, "unix": ..., "tcp": ...}),
    for code that must not import pathlib or pydantic when the cache is fresh."""
    settings = load_settings(config_file, **overrides)
    as_json = getattr(settings, "as_json", None)
    if as_json is not None:
        data: dict[str, Any] = as_json()
        return data
    return {"socket": settings.socket.model_dump(mode="json"),
            "unix": settings.unix.model_dump(mode="json"),
            "tcp": settings.tcp.model_dump(mode="json")}


def _load_and_validate(config_file: str | os.PathLike[str] | None,
                       overrides: Mapping[str, Any]) -> Any:
    from pathlib import Path

    from dynaconf import Dynaconf

    fields = _fields()
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
    # dynaconf parses variables as TOML, so "0o640" became the integer 416, i.e. mode 0416:
    # a mode is octal text, so validate the variable's raw string instead.
    raw_mode = os.environ.get(_env_name("unix", "socket_permissions"))
    if raw_mode is not None:
        data.setdefault("unix", {})["socket_permissions"] = raw_mode
    return _validate(data, user_file, overrides)


def get_settings() -> Any:
    """The default settings of this process, loaded once and shared."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = load_settings()
        return _cached


def reset_settings_cache() -> None:
    """Forget the shared settings (after the environment or a file changed)."""
    global _cached
    with _lock:
        _cached = None


def configured_timezone() -> str:
    """The timezone name messages are stamped in."""
    return str(get_settings().socket.timezone)


def apply_overrides(settings: Any, overrides: Mapping[str, Any]) -> Any:
    """Validate ``overrides`` on top of already loaded settings (see Settings.with_overrides)."""
    if not overrides:
        return settings
    from sockcli.config.models import Settings

    data: dict[str, Any] = settings.socket.model_dump()
    data["unix"] = settings.unix.model_dump()
    data["tcp"] = settings.tcp.model_dump()
    result = _validate(data, None, overrides)
    assert isinstance(result, Settings)
    return result

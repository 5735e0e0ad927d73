"""Pydantic models of the settings, with the ranges that keep a hub safe and useful, and
:meth:`Settings.build`, the one place raw values become settings.

Raw values come from four layers (files, variables, keywords, see
:mod:`sockcli.config.loader`) and from the cache; whichever it is, a bad value is refused
here, with the key, the value and where it came from, because "input should be a valid
integer" alone does not tell a user which of four places to fix. The sections besides the
top level are those of the transport registry (:mod:`sockcli.transports`): ``unix`` and
``tcp`` are typed fields of :class:`Settings`, a registered transport's section is reached
with :meth:`Settings.section`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from sockcli.exceptions import ValidationError
from sockcli.timestamps import resolve_timezone, set_default_timezone
from sockcli.transports import transports

__all__ = ["Settings", "SocketConfig", "TcpSocketConfig", "UnixSocketConfig", "default_socket_dir",
           "section_fields", "section_models"]

#: Where a bad value came from, for its error: (section or None for the top level, key) to
#: text such as "environment variable SOCKCLI_TCP__PORT".
Where = Callable[[str | None, str], str]


def default_socket_dir() -> Path:
    """``$XDG_RUNTIME_DIR/sockcli`` when that is set, else ``/tmp/sockcli-<uid>``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "sockcli"
    return Path(f"/tmp/sockcli-{os.getuid()}")


_MODEL = ConfigDict(extra="forbid", frozen=True, validate_default=True)

Positive = Annotated[float, Field(gt=0, le=86400)]
#: A user or group id; strict, so that true is not read as 1.
Id = Annotated[int, Field(strict=True, ge=0, le=2**32 - 2)]


def _id_list(value: Any) -> Any:
    """``[1000, 1001]``, a single ``1000``, or the text ``"1000,1001"`` (from a variable)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        words = value.replace(",", " ").split()
        if not all(w.isdigit() for w in words):
            raise ValueError("must be a list of numeric ids, such as [1000, 1001]")
        return [int(w) for w in words]
    return value


def _optional_path(value: Any) -> Any:
    """An absent file: "" or nothing; else an absolute path (``~`` expanded)."""
    if value is None or value == "":
        return None
    path = Path(os.path.expanduser(str(value)))
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    return path


class SocketConfig(BaseModel):
    """Settings every transport shares (the top level of settings.toml)."""

    model_config = _MODEL

    socket_dir: Path = Field(default_factory=default_socket_dir)
    default_timeout: Positive = 5.0
    buffer_size: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 65536
    timezone: str = "local"
    message_queue_size: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    blocking_mode: bool = False
    allow_client_send: bool = True
    auto_reconnect: bool = True
    reconnect_max_delay: Positive = 0.5
    receive_buffer_size: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
    send_buffer_limit: Annotated[int, Field(ge=64 * 1024, le=1024 * 1024 * 1024)] = 4 * 1024 * 1024
    handshake_timeout: Positive = 5.0
    frame_timeout: Positive = 10.0
    #: Seconds a subscriber that is behind may read nothing before the hub drops it (and stops
    #: holding its publishers back for it).
    slow_consumer_timeout: Positive = 10.0
    #: The hub keeps the last message of each type it relays, for ``listen --last``.
    retain: bool = True
    #: Message types besides data, error and control (sockcli.kinds.register_message_type).
    message_types: tuple[str, ...] = ()

    @field_validator("message_types", mode="before")
    @classmethod
    def _type_list(cls, value: Any) -> Any:
        """``["warning", "notice"]``, or the text ``"warning,notice"`` (from a variable)."""
        if isinstance(value, str):
            return [w for w in value.replace(",", " ").split() if w]
        return value

    @field_validator("message_types")
    @classmethod
    def _type_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from sockcli.rules import is_event_name

        for name in value:
            if not is_event_name(name):
                raise ValueError(f"{name!r} is not a message type name: each must match "
                                 "^[A-Za-z0-9_-]{1,64}$")
        return tuple(dict.fromkeys(name.lower() for name in value))

    @field_validator("socket_dir", mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any) -> Any:
        if value is None or value == "":
            return default_socket_dir()
        return Path(os.path.expanduser(str(value)))

    @field_validator("socket_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            resolve_timezone(value)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return value


class UnixSocketConfig(BaseModel):
    """The ``[unix]`` section."""

    model_config = _MODEL

    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 1024
    socket_permissions: str = "0600"
    auto_remove_socket: bool = True
    #: The hub's named pipe ({event}.fifo) and JSON-lines socket ({event}.lines.sock).
    fifo: bool = True
    lines_socket: bool = True
    #: Peers (SO_PEERCRED) admitted besides the hub's own uid and root.
    allowed_uids: tuple[Id, ...] = ()
    allowed_gids: tuple[Id, ...] = ()

    @field_validator("allowed_uids", "allowed_gids", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _id_list(value)

    @field_validator("socket_permissions", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> str:
        if not isinstance(value, str):  # 0o640 arrives as 416, which would read as mode 0416
            raise ValueError("must be an octal string such as \"0600\", not a number")
        text = value.strip()
        digits = text[2:] if text.lower().startswith("0o") else text
        if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o777:
            raise ValueError("must be an octal mode from 0000 to 0777, such as \"0600\"")
        return f"0{int(digits, 8):03o}"

    @property
    def mode(self) -> int:
        """The permissions as an integer, for chmod."""
        return int(self.socket_permissions, 8)


class TcpSocketConfig(BaseModel):
    """The ``[tcp]`` section."""

    model_config = _MODEL

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    port_range_start: Annotated[int, Field(ge=1, le=65535)] = 47800
    port_range_end: Annotated[int, Field(ge=1, le=65535)] = 47899
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 1024
    #: The shared token (docs/SECURITY.md), in a file only its owner may read.
    token_file: Path | None = None
    #: TLS: the hub's certificate chain and key (PEM), and the CA clients trust.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    #: Serve without authentication when there is no token: no per-hub secret on loopback
    #: (sockcli.hubsecret), and a non-loopback address allowed.
    insecure: bool = False

    @field_validator("token_file", "tls_cert", "tls_key", "tls_ca", mode="before")
    @classmethod
    def _file(cls, value: Any) -> Any:
        return _optional_path(value)

    @field_validator("host")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _range_in_order(self) -> TcpSocketConfig:
        if self.port_range_start > self.port_range_end:
            raise ValueError(
                f"port_range_start ({self.port_range_start}) must not exceed "
                f"port_range_end ({self.port_range_end})"
            )
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("tls_key is set but tls_cert is not: a key needs its certificate")
        return self


class BridgeConfig(BaseModel):
    """The ``[bridge]`` section: a hub's bridge to an MQTT broker (docs/BRIDGE.md)."""

    model_config = _MODEL

    #: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; empty: no bridge (serve --bridge URL).
    url: str = ""
    topic_prefix: str = "sockcli"
    username: str = ""
    #: The broker password, in a file only its owner may read (or SOCKCLI_BRIDGE_PASSWORD).
    password_file: Path | None = None
    #: mqtts://: the CA certificates (PEM) the broker's certificate must chain to; empty:
    #: the system's.
    tls_ca: Path | None = None
    #: The MQTT client id; empty: sockcli-{hub id}.
    client_id: str = ""
    #: Messages kept for the broker while it is away; the oldest is dropped (and counted).
    queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = 10000
    #: Publish each message retained: the broker keeps the last one of each type.
    retain: bool = True

    @field_validator("password_file", "tls_ca", mode="before")
    @classmethod
    def _file(cls, value: Any) -> Any:
        return _optional_path(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip()
        if text and not text.lower().startswith(("mqtt://", "mqtts://")):
            raise ValueError("must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        return text

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        text = value.strip().strip("/")
        if not text or any(c in text for c in "+#\0"):
            raise ValueError("must be a non-empty MQTT topic without + or # (such as "
                             "\"sockcli\" or \"home/sockcli\")")
        return text


def section_models() -> dict[str, type[BaseModel]]:
    """The model of each settings section, by section name: the transports' in the
    registry's order (transports without a section of their own have none), then
    ``bridge``."""
    models: dict[str, type[BaseModel]] = {}
    for transport in transports():
        model = transport.model_class()
        if transport.section is not None and model is not None:
            models[transport.section] = model
    models["bridge"] = BridgeConfig
    return models


def section_fields() -> dict[str | None, set[str]]:
    """The keys of the top level (None) and of each section."""
    fields: dict[str | None, set[str]] = {None: set(SocketConfig.model_fields)}
    fields.update((name, set(model.model_fields)) for name, model in section_models().items())
    return fields


def _split_overrides(overrides: Mapping[str, Any],
                     fields: dict[str | None, set[str]]) -> dict[str | None, dict[str, Any]]:
    """Flat keywords by the part that owns each; a key of several sections goes to each."""
    split: dict[str | None, dict[str, Any]] = {part: {} for part in fields}
    for key, value in overrides.items():
        owners = [part for part, names in fields.items() if key in names]
        if not owners:
            known = sorted(set().union(*fields.values()))
            raise ValidationError(f"unknown setting {key!r}: known settings are {', '.join(known)}")
        for owner in owners:
            split[owner][key] = value
    return split


def _validated(model: type[BaseModel], section: str | None, raw: dict[str, Any],
               where: Where) -> BaseModel:
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a rule across keys, such as the port range order
            part = f" in [{section}]" if section else ""
            raise ValidationError(f"invalid settings{part}: {message}") from None
        key = str(err["loc"][0])
        value = raw.get(key, "<missing>")
        name = f"[{section}] {key}" if section else key
        raise ValidationError(f"invalid setting {name} = {value!r} from "
                              f"{where(section, key)}: {message}") from None


def _keyword_source(overrides: Mapping[str, Any]) -> Where:
    """Where a bad value came from when settings already validated get new keywords: only
    the keywords are new, so anything else is named as the settings in general."""
    def where(section: str | None, key: str) -> str:
        return f"keyword argument {key}=" if key in overrides else "the settings"
    return where


class Settings(BaseModel):
    """Everything a hub or client needs: the shared keys and every transport's section.

    The built-in sections are typed fields (``settings.unix``, ``settings.tcp``); every
    section, a registered transport's too, is ``settings.section(name)``.
    """

    model_config = _MODEL

    socket: SocketConfig = Field(default_factory=SocketConfig)
    unix: UnixSocketConfig = Field(default_factory=UnixSocketConfig)
    tcp: TcpSocketConfig = Field(default_factory=TcpSocketConfig)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    #: The sections of registered transports, which are not fields (defaults unless built).
    _extra: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        # build() hands over the validated sections; anywhere else they take their defaults.
        given = context.get("sections", {}) if isinstance(context, dict) else {}
        self._extra = {name: given[name] if name in given else model()
                       for name, model in section_models().items()
                       if name not in type(self).model_fields}

    @classmethod
    def build(cls, tree: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
              where: Where | None = None) -> Settings:
        """Validate ``tree`` ({"socket": {...}, section: {...}}: keys of other parts are
        ignored, missing ones take their defaults) with flat keyword ``overrides`` on top,
        and make the result's timezone the process's default (:mod:`sockcli.timestamps`).

        ``where(section, key)`` names the source of a bad value; by default a keyword
        argument. Raises ValidationError naming the key, the value and the source, or for an
        unknown keyword (a key of several sections, ``max_connections``, applies to each).
        """
        overrides = overrides or {}
        source = where or _keyword_source(overrides)
        fields = section_fields()
        split = _split_overrides(overrides, fields)
        models: dict[str | None, type[BaseModel]] = {None: SocketConfig}
        models.update(section_models())
        parts: dict[str, BaseModel] = {}
        for part, model in models.items():
            given = tree.get(part or "socket") or {}
            if not isinstance(given, Mapping):
                raise ValidationError(f"invalid settings section [{part}]: it must be a "
                                      f"table of keys, not {type(given).__name__}")
            raw = {k: v for k, v in given.items() if k in fields[part]}
            raw.update(split[part])
            parts[part or "socket"] = _validated(model, part, raw, source)
        typed = {name: value for name, value in parts.items() if name in cls.model_fields}
        settings = cls.model_validate(typed, context={"sections": parts})
        set_default_timezone(settings.socket.timezone)
        return settings

    def section(self, name: str) -> Any:
        """The section of the transport settings ``name`` (``"unix"``, ``"tcp"`` or a
        registered transport's), an instance of its model. Raises ValidationError for a name
        that is no section."""
        if name != "socket" and name in type(self).model_fields:
            return getattr(self, name)
        found = self._extra.get(name)
        if found is not None:
            return found
        known = section_models()
        if name in known:
            raise ValidationError(f"settings section {name!r} was registered after these "
                                  "settings were made: load them again")
        raise ValidationError(f"no settings section {name!r}: the sections are "
                              f"{', '.join(sorted(known))}")

    def as_json(self) -> dict[str, Any]:
        """Every part as JSON values: {"socket": {...}, "unix": {...}, "tcp": {...}, ...}."""
        data = {"socket": self.socket.model_dump(mode="json")}
        for name in section_models():
            data[name] = self.section(name).model_dump(mode="json")
        return data

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with flat keyword overrides applied to whichever section owns each key.

        ``max_connections`` applies to both transport sections. Unknown keys are a
        ValidationError listing the accepted ones.
        """
        if not overrides:
            return self
        tree = {"socket": self.socket.model_dump()}
        for name in section_models():
            tree[name] = self.section(name).model_dump()
        return self.build(tree, overrides)

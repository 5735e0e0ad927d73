"""Messages and the small enums every other module speaks in."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sockcli.exceptions import ValidationError

__all__ = [
    "EVENT_NAME_RULE",
    "MessageType",
    "SocketMessage",
    "SocketType",
    "format_timestamp",
    "resolve_timezone",
    "validate_event_name",
]

#: Event names double as file names, so they are kept to a safe alphabet (no path traversal).
EVENT_NAME_RULE = r"^[A-Za-z0-9_-]{1,64}$"
_EVENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MessageType(StrEnum):
    """The channel a message travels on; subscribers filter on it at the hub."""

    DATA = "data"
    ERROR = "error"
    CONTROL = "control"

    @classmethod
    def parse(cls, value: MessageType | str) -> MessageType:
        """Accept the enum or its value in any case; anything else is a ValidationError."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValidationError(
                f"invalid message type {value!r}: choose one of {choices}"
            ) from None


class SocketType(StrEnum):
    """The transport a hub listens on."""

    UNIX = "unix"
    TCP = "tcp"

    @classmethod
    def parse(cls, value: SocketType | str) -> SocketType:
        """Accept the enum or "unix"/"tcp" in any case; anything else is a ValidationError."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValidationError(
                f"invalid socket type {value!r}: choose one of unix, tcp"
            ) from None


def validate_event_name(name: object) -> str:
    """Return ``name`` if it follows :data:`EVENT_NAME_RULE`, else raise ValidationError."""
    if not isinstance(name, str) or _EVENT_NAME.fullmatch(name) is None:
        raise ValidationError(
            f"invalid event name {name!r}: it must match {EVENT_NAME_RULE} "
            "(1 to 64 letters, digits, '_' or '-')"
        )
    return name


@lru_cache(maxsize=32)
def resolve_timezone(name: str) -> tzinfo:
    """Turn an IANA name (or "local", "UTC") into a tzinfo; unknown names are a ValidationError."""
    if name.lower() == "local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown timezone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris', "
            "or 'local'"
        ) from None


def format_timestamp(timestamp_ms: int, timezone: str | tzinfo | None = None) -> str:
    """ISO 8601 text of a millisecond timestamp, in ``timezone`` or the configured one."""
    if timezone is None:
        from sockcli.config.settings import configured_timezone

        timezone = configured_timezone()
    tz = resolve_timezone(timezone) if isinstance(timezone, str) else timezone
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz)
    except (OverflowError, ValueError, OSError):
        # A peer controls timestamp_ms: out of datetime's range must not escape as ValueError.
        raise ValidationError(
            f"timestamp_ms {timestamp_ms} is out of range: it must fall in the years 1 to 9999"
        ) from None
    return moment.isoformat(timespec="milliseconds")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SocketMessage:
    """One message as applications see it; travels as a MessagePack map.

    Only ``event_name`` is required: the timestamps default to now (the ISO one in the
    configured timezone), the type to DATA and the payload to an empty map.
    """

    event_name: str
    timestamp_ms: int = field(default_factory=_now_ms)
    timestamp_iso: str = ""
    message_type: MessageType = MessageType.DATA
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_event_name(self.event_name)
        self.message_type = MessageType.parse(self.message_type)
        if not isinstance(self.data, dict):
            raise ValidationError(
                f"message data must be a map (dict), not {type(self.data).__name__}"
            )
        if isinstance(self.timestamp_ms, bool) or not isinstance(self.timestamp_ms, int):
            raise ValidationError(
                f"timestamp_ms must be an integer, not {type(self.timestamp_ms).__name__}"
            )
        if not self.timestamp_iso:
            self.timestamp_iso = format_timestamp(self.timestamp_ms)

    def as_dict(self) -> dict[str, Any]:
        """The message as plain JSON-compatible values, keys in the documented order."""
        return {
            "event_name": self.event_name,
            "timestamp_ms": self.timestamp_ms,
            "timestamp_iso": self.timestamp_iso,
            "message_type": self.message_type.value,
            "data": self.data,
        }

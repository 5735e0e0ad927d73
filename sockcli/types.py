"""Messages and the small enums every other module speaks in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sockcli.exceptions import ValidationError
from sockcli.kinds import MessageType, SocketType
from sockcli.rules import EVENT_NAME_RULE, validate_event_name
from sockcli.timestamps import format_timestamp, now_ms, resolve_timezone

__all__ = [
    "EVENT_NAME_RULE",
    "MessageType",
    "SocketMessage",
    "SocketType",
    "format_timestamp",
    "resolve_timezone",
    "validate_event_name",
]


@dataclass
class SocketMessage:
    """One message as applications see it; travels as a MessagePack map.

    Only ``event_name`` is required: the timestamps default to now, the type to DATA and the
    payload to an empty map. The ISO text is in the process's default timezone: that of the
    settings loaded last, else local time (:mod:`sockcli.timestamps`); give ``timestamp_iso``
    (``format_timestamp(ms, "UTC")``) to choose another.
    """

    event_name: str
    timestamp_ms: int = field(default_factory=now_ms)
    timestamp_iso: str = ""
    message_type: MessageType = MessageType.DATA
    data: dict[str, Any] = field(default_factory=dict)
    #: True for the hub's retained copy (the last message of its type), sent to a subscriber
    #: that asked for the last values (``listen --last``) before the live ones.
    retained: bool = False

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

    @classmethod
    def _checked(cls, event_name: str, timestamp_ms: int, timestamp_iso: str,
                 message_type: MessageType, data: dict[str, Any],
                 retained: bool = False) -> SocketMessage:
        """Build from fields the caller has already checked (:func:`frames.relay_fields`):
        a listener builds one per message, and ``__post_init__`` would check them again."""
        message = cls.__new__(cls)
        message.__dict__.update(event_name=event_name, timestamp_ms=timestamp_ms,
                                timestamp_iso=timestamp_iso, message_type=message_type,
                                data=data, retained=retained)
        return message

    def as_dict(self) -> dict[str, Any]:
        """The message as plain JSON-compatible values, keys in the documented order
        (``retained`` only when true)."""
        d = {
            "event_name": self.event_name,
            "timestamp_ms": self.timestamp_ms,
            "timestamp_iso": self.timestamp_iso,
            "message_type": self.message_type.value,
            "data": self.data,
        }
        if self.retained:
            d["retained"] = True
        return d

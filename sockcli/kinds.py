"""The kinds of messages and of transports.

Kept apart from :mod:`sockcli.types` (which needs dataclasses) so that the light send path
imports only what it uses.
"""

from __future__ import annotations

from enum import StrEnum

from sockcli.exceptions import ValidationError

__all__ = ["MESSAGE_TYPE_BY_VALUE", "MessageType", "SocketType"]


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
        # Every relayed message is parsed: a dict lookup is a tenth of an Enum call.
        known = MESSAGE_TYPE_BY_VALUE.get(value) if type(value) is str else None
        if known is not None:
            return known
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValidationError(
                f"invalid message type {value!r}: choose one of {choices}"
            ) from None


MESSAGE_TYPE_BY_VALUE: dict[str, MessageType] = {m.value: m for m in MessageType}


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

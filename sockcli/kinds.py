"""The kinds of messages and of transports.

Kept apart from :mod:`sockcli.types` (which needs dataclasses) so that the light send path
imports only what it uses.
"""

from __future__ import annotations

from enum import StrEnum

from sockcli.exceptions import ValidationError

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from typing import Self

__all__ = ["MESSAGE_TYPE_BY_VALUE", "MessageType", "SocketType"]


class _Choice(StrEnum):
    """A closed set of lower-case names, parsed from the enum or its value in any case."""

    @classmethod
    def parse(cls, value: object) -> Self:
        """Accept the enum or its value in any case; anything else is a ValidationError
        naming the choices."""
        if isinstance(value, cls):
            return value
        # Every relayed message is parsed: Enum's own value map is a tenth of an Enum call.
        known = cls._value2member_map_.get(value) if type(value) is str else None
        if known is not None:
            return known  # type: ignore[return-value]
        try:
            return cls(str(value).lower())
        except ValueError:
            kind = "".join(f" {c.lower()}" if c.isupper() else c for c in cls.__name__).strip()
            choices = ", ".join(m.value for m in cls)
            raise ValidationError(f"invalid {kind} {value!r}: choose one of {choices}") from None


class MessageType(_Choice):
    """The channel a message travels on; subscribers filter on it at the hub."""

    DATA = "data"
    ERROR = "error"
    CONTROL = "control"


MESSAGE_TYPE_BY_VALUE: dict[str, MessageType] = {m.value: m for m in MessageType}


class SocketType(_Choice):
    """The transport a hub listens on."""

    UNIX = "unix"
    TCP = "tcp"

"""The kinds of messages and of transports.

Kept apart from :mod:`sockcli.types` (which needs dataclasses) so that the light send path
imports only what it uses.

Message types are open: besides the three members of :class:`MessageType` an application adds
its own with :func:`register_message_type` (or the ``message_types`` setting, which hubs,
clients and the CLI register when they load their settings). A registered type is a
``MessageType`` value like the others (``MessageType("warning")``, ``MessageType.parse``), so
frames carry it, hubs relay it and subscribers filter on it with no other change; iterating
``MessageType`` still yields the three built-in members only.
"""

from __future__ import annotations

from enum import StrEnum

from sockcli.exceptions import ValidationError

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Self

__all__ = ["MESSAGE_TYPE_BY_VALUE", "MessageType", "SocketType", "message_type_names",
           "register_message_type", "register_message_types"]


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
            choices = ", ".join(cls._value2member_map_)  # registered message types included
            raise ValidationError(f"invalid {kind} {value!r}: choose one of {choices}") from None


class MessageType(_Choice):
    """The channel a message travels on; subscribers filter on it at the hub."""

    DATA = "data"
    ERROR = "error"
    CONTROL = "control"


#: Every message type by its wire value, registered ones included (one shared dict: the
#: frames module reads it to check each relayed message).
MESSAGE_TYPE_BY_VALUE: dict[str, MessageType] = {m.value: m for m in MessageType}


def register_message_type(name: str) -> MessageType:
    """Add the message type ``name`` (a name of the event-name pattern, any case, stored in
    lower case) and return it; registering a known type returns the existing one.

    The type is known to this process from then on: ``send --type``, ``listen --type``,
    hello filters and relayed frames accept it. Raises ValidationError for a bad name.
    """
    from sockcli.rules import is_event_name

    if not isinstance(name, str) or not is_event_name(name):
        raise ValidationError(f"invalid message type name {name!r}: it must match "
                              "^[A-Za-z0-9_-]{1,64}$ (1 to 64 letters, digits, '_' or '-')")
    value = name.lower()
    known = MESSAGE_TYPE_BY_VALUE.get(value)
    if known is not None:
        return known
    # A pseudo-member, as Flag makes for combinations: an instance of the enum that Enum's
    # own lookup finds by value, while iteration keeps to the declared members.
    member = str.__new__(MessageType, value)
    member._name_ = value.upper().replace("-", "_")
    member._value_ = value
    MessageType._value2member_map_[value] = member
    MESSAGE_TYPE_BY_VALUE[value] = member
    return member


def register_message_types(names: Iterable[str] | None) -> None:
    """:func:`register_message_type` for each of ``names`` (the ``message_types`` setting)."""
    for name in names or ():
        register_message_type(name)


def message_type_names() -> list[str]:
    """The values of every known message type: the built-in ones first, then the
    registered ones in the order of registration."""
    return list(MESSAGE_TYPE_BY_VALUE)


class SocketType(_Choice):
    """The transport a hub listens on."""

    UNIX = "unix"
    TCP = "tcp"

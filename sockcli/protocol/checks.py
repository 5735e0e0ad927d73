"""The checks of a message's keys, written once: for the hub's relay (:func:`relay_fields`,
:func:`batch_fields`: no objects built), for the clients' reading (:func:`message_from_map`,
:func:`batch_messages`) and for the frame decoders of :mod:`sockcli.protocol.frames`, which
re-exports the public names.

Pure data, like the frames: a map from the wire is hostile until these say otherwise.
"""

from __future__ import annotations

from sockcli.exceptions import MessageError, ValidationError
from sockcli.kinds import MESSAGE_TYPE_BY_VALUE, MessageType
from sockcli.protocol.errors import ErrorCode, RefusedMessageError, UnknownMessageTypeError
from sockcli.rules import KNOWN_INSTANTS, check_data, is_event_name, is_instant

TYPE_CHECKING = False  # on the send path: no typing, no collections.abc
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from sockcli.types import SocketMessage

__all__ = ["batch_fields", "batch_messages", "fail", "get_key", "message_class",
           "message_explained", "message_from_map", "optional_seq", "relay_fields"]


def fail(reason: str) -> MessageError:
    return MessageError(reason, code=ErrorCode.INVALID_MESSAGE)


def get_key(m: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, default: Any = ...,
         ) -> Any:
    value = m.get(key, default)
    if value is ...:
        raise fail(f"{m.get('kind')} frame lacks {key!r}")
    if value is default and default is not ...:
        return value
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise fail(f"{key!r} must be {_names(kind)}, not bool")
    if not isinstance(value, kind):
        raise fail(f"{key!r} must be {_names(kind)}, not {type(value).__name__}")
    return value


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def message_from_map(m: Mapping[str, Any], *, learn_types: bool = False) -> SocketMessage:
    """Build and validate a SocketMessage from the message keys of a frame.

    A ``message_type`` this process does not know, but that is a valid type name, raises
    UnknownMessageTypeError, a ``timestamp_iso`` neither "" nor a date (``rules.is_instant``)
    RefusedMessageError; with ``learn_types`` (a client reading what its hub relayed) the type
    is registered instead (:func:`sockcli.kinds.register_message_type`) and the timestamp kept
    as it came (the hub's owner's is unchecked: whoever shows it must not trust it).
    """
    # Every message a listener receives passes here: the usual shape is checked once, by
    # relay_fields, without building anything; anything else takes the path that explains.
    fields = relay_fields(m)
    if fields is not None:
        cls = _MESSAGE_CLASS or message_class()
        message: SocketMessage = cls._checked(fields[0], m["timestamp_ms"], m["timestamp_iso"],
                                              fields[1], m["data"], m.get("retained") is True)
        return message
    return message_explained(m, learn_types)


_MESSAGE_CLASS: Any = None


def message_class() -> Any:
    """:class:`~sockcli.types.SocketMessage`, imported on first use: a pure sender never
    builds one, and the module (dataclasses, datetime) is most of what it would import."""
    global _MESSAGE_CLASS
    if _MESSAGE_CLASS is None:
        from sockcli.types import SocketMessage

        _MESSAGE_CLASS = SocketMessage
    return _MESSAGE_CLASS


def relay_fields(m: Mapping[str, Any]) -> tuple[str, MessageType, int | None, str | None] | None:
    """The checks of :func:`message_from_map` and of a message frame's ``seq`` and ``to``,
    without building objects: (event_name, message_type, seq, to), or None when the frame
    is not of the usual shape (then :func:`frame_from_map` says what is wrong with it).

    The hub relays with this when no handler needs a :class:`SocketMessage`.
    """
    data, event, stamp = m.get("data"), m.get("event_name"), m.get("timestamp_ms")
    iso, kind, seq, to = m.get("timestamp_iso"), m.get("message_type"), m.get("seq"), m.get("to")
    if not (type(data) is dict and type(event) is str and type(stamp) is int and
            type(iso) is str and iso and type(kind) is str and
            (seq is None or (type(seq) is int and 0 <= seq < 2**63)) and
            (to is None or type(to) is str) and m.get("retain") is None):
        return None
    message_type = MESSAGE_TYPE_BY_VALUE.get(kind)
    if message_type is None or not is_event_name(event) or \
            (iso not in KNOWN_INSTANTS and not is_instant(iso)):
        return None
    check_data(data)
    return event, message_type, seq, to


def batch_fields(m: Mapping[str, Any]) -> tuple[str, MessageType, int | None, list[Any]] | None:
    """:func:`relay_fields` for a batch frame: (event_name, message_type, seq, items), every
    item's data checked, or None when it is not of the usual shape (then
    :func:`frame_from_map` says what is wrong with it)."""
    items, event, stamp = m.get("items"), m.get("event_name"), m.get("timestamp_ms")
    iso, kind, seq = m.get("timestamp_iso"), m.get("message_type"), m.get("seq")
    if not (type(items) is list and items and type(event) is str and type(stamp) is int and
            type(iso) is str and iso and type(kind) is str and
            (seq is None or (type(seq) is int and seq >= 0 and seq + len(items) <= 2**63)) and
            m.get("to") is None and m.get("retain") is None):
        return None
    message_type = MESSAGE_TYPE_BY_VALUE.get(kind)
    if message_type is None or not is_event_name(event) or \
            (iso not in KNOWN_INSTANTS and not is_instant(iso)):
        return None
    for data in items:
        if type(data) is not dict:
            raise fail(f"a batch's items must be maps, not {type(data).__name__}")
        check_data(data)
    return event, message_type, seq, items


def batch_messages(m: Mapping[str, Any]) -> list[SocketMessage]:
    """The messages of a batch frame from a hub, checked as :func:`message_from_map` checks
    each (``learn_types``: a type the hub relayed is learnt, not refused); MessageError if it
    is malformed."""
    items = m.get("items")
    if type(items) is not list or not items:
        raise fail("a batch needs a non-empty list of 'items'")
    first = message_from_map({**m, "kind": "message", "data": items[0]}, learn_types=True)
    cls = _MESSAGE_CLASS or message_class()
    event, stamp, iso, message_type = (first.event_name, first.timestamp_ms,
                                       first.timestamp_iso, first.message_type)
    messages = [first]
    for data in items[1:]:
        if type(data) is not dict:
            raise fail(f"a batch's items must be maps, not {type(data).__name__}")
        check_data(data)
        messages.append(cls._checked(event, stamp, iso, message_type, data, False))
    return messages


def message_explained(m: Mapping[str, Any], learn_types: bool = False) -> SocketMessage:
    from sockcli.types import SocketMessage

    data = get_key(m, "data", dict)
    check_data(data)
    try:
        message = SocketMessage(
            event_name=get_key(m, "event_name", str),
            timestamp_ms=get_key(m, "timestamp_ms", int),
            timestamp_iso=get_key(m, "timestamp_iso", str),
            message_type=_message_type(m, learn_types),
            data=data,
        )
    except ValidationError as exc:
        raise fail(str(exc)) from None
    iso = m["timestamp_iso"]  # last: only a sound frame's message can be refused alone
    if iso and not learn_types and not is_instant(iso):
        raise RefusedMessageError(
            f"timestamp_iso {iso[:64]!r} is not an ISO 8601 date and time with a UTC offset, "
            "such as '2023-11-14T22:13:20.000+00:00' (or leave it empty: the hub fills it in)",
            seq=_seq_of(m))
    return message


def _message_type(m: Mapping[str, Any], learn_types: bool) -> MessageType:
    name = get_key(m, "message_type", str)
    known = MESSAGE_TYPE_BY_VALUE.get(name.lower())
    if known is not None:
        return known
    if not is_event_name(name):  # not a type name at all: malformed
        return MessageType.parse(name)  # raises, naming the choices
    if learn_types:
        from sockcli.kinds import register_message_type

        return register_message_type(name)
    raise UnknownMessageTypeError(
        f"unknown message type {name!r}: known types are {', '.join(MESSAGE_TYPE_BY_VALUE)} "
        "(the message_types setting adds others)",
        seq=_seq_of(m))


def _seq_of(m: Mapping[str, Any]) -> int | None:  # a refused message's, if valid
    seq = m.get("seq")
    return seq if type(seq) is int and 0 <= seq < 2**63 else None


def optional_seq(m: Mapping[str, Any]) -> int | None:
    seq = get_key(m, "seq", int, default=None)
    if seq is not None and not 0 <= seq < 2**63:
        raise fail("'seq' must be a non-negative 63-bit integer")
    return seq  # type: ignore[no-any-return]

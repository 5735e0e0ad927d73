"""The frames of the sockcli protocol, and their translation to and from MessagePack maps.

Pure data: no I/O. :mod:`sockcli.codec` turns bytes into maps and this module turns maps into
frames, checking every key a peer sends, because a map from the wire is hostile until proven
otherwise. Unknown keys are ignored and unknown kinds become :class:`UnknownFrame`, so that
newer peers can add both without breaking older ones (see docs/protocol.md, "Versioning").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sockcli.exceptions import MessageError, ValidationError
from sockcli.kinds import MESSAGE_TYPE_BY_VALUE
from sockcli.rules import EVENT_NAME_PATTERN, MAX_DATA_DEPTH, check_data
from sockcli.types import MessageType, SocketMessage

__all__ = [
    "FEATURES",
    "MAX_DATA_DEPTH",
    "PROTOCOL_VERSION",
    "Ack",
    "ErrorCode",
    "ErrorFrame",
    "Frame",
    "Hello",
    "MessageFrame",
    "Ping",
    "Pong",
    "Stats",
    "StatsRequest",
    "UnknownFrame",
    "Welcome",
    "check_data",
    "frame_from_map",
    "frame_to_map",
    "relay_fields",
]

#: The major protocol version; it changes only when an older peer could misread a newer one.
PROTOCOL_VERSION = 1
#: What this implementation's hub offers, announced in the welcome frame.
FEATURES = ("ack", "stats", "ping", "unicast")


class ErrorCode:
    """The ``code`` values of error frames (docs/protocol.md lists what each means)."""

    MALFORMED = "malformed_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    INVALID_MESSAGE = "invalid_message"
    HANDSHAKE_REQUIRED = "handshake_required"
    UNSUPPORTED_VERSION = "unsupported_version"
    MAX_CONNECTIONS = "max_connections"
    SEND_NOT_ALLOWED = "send_not_allowed"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    UNKNOWN_KIND = "unknown_kind"
    SLOW_CONSUMER = "slow_consumer"
    SHUTTING_DOWN = "shutting_down"
    # Access control (docs/SECURITY.md); all three are fatal and sent before any welcome.
    PEER_NOT_ALLOWED = "peer_not_allowed"
    AUTH_FAILED = "auth_failed"
    TLS_REQUIRED = "tls_required"


@dataclass(frozen=True, kw_only=True)
class Hello:
    """Client to hub, first frame: who the client is and what it wants to receive."""

    version: int = PROTOCOL_VERSION
    subscribe: bool = False
    types: frozenset[MessageType] | None = None
    name: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Welcome:
    """Hub to client, answer to Hello: the connection is accepted."""

    version: int = PROTOCOL_VERSION
    client_id: str
    event_name: str
    allow_client_send: bool = True
    max_frame_size: int = 0
    features: tuple[str, ...] = FEATURES


@dataclass(frozen=True, kw_only=True)
class MessageFrame:
    """A message; from a client it may ask for an acknowledgement (``seq``) or a recipient."""

    message: SocketMessage
    seq: int | None = None
    to: str | None = None


@dataclass(frozen=True, kw_only=True)
class Ack:
    """Hub to client: every message with a sequence number up to ``seq`` has been handled."""

    seq: int


@dataclass(frozen=True, kw_only=True)
class ErrorFrame:
    """Hub to client: something was refused; ``fatal`` means the hub closes the connection."""

    code: str
    reason: str
    seq: int | None = None
    fatal: bool = False


@dataclass(frozen=True, kw_only=True)
class StatsRequest:
    """Client to hub: ask for the hub's live figures."""


@dataclass(frozen=True, kw_only=True)
class Stats:
    """Hub to client: live figures (clients, queued, dropped, ...), see docs/protocol.md."""

    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Ping:
    """Either direction: ask for a Pong carrying the same token."""

    token: int = 0


@dataclass(frozen=True, kw_only=True)
class Pong:
    """Answer to Ping."""

    token: int = 0


@dataclass(frozen=True, kw_only=True)
class UnknownFrame:
    """A well-formed frame of a kind this version does not know; peers may ignore it."""

    kind: str
    fields: Mapping[str, Any]


Frame = (
    Hello | Welcome | MessageFrame | Ack | ErrorFrame | StatsRequest | Stats | Ping | Pong
    | UnknownFrame
)


# -- decoding -------------------------------------------------------------------------------


def _fail(reason: str) -> MessageError:
    return MessageError(reason, code=ErrorCode.INVALID_MESSAGE)


def _get(m: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, default: Any = ...,
         ) -> Any:
    value = m.get(key, default)
    if value is ...:
        raise _fail(f"{m.get('kind')} frame lacks {key!r}")
    if value is default and default is not ...:
        return value
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(f"{key!r} must be {_names(kind)}, not bool")
    if not isinstance(value, kind):
        raise _fail(f"{key!r} must be {_names(kind)}, not {type(value).__name__}")
    return value


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def message_from_map(m: Mapping[str, Any]) -> SocketMessage:
    """Build and validate a SocketMessage from the message keys of a frame."""
    # Every message a listener receives passes here: the usual shape is checked once, by
    # relay_fields, without building anything; anything else takes the path that explains.
    fields = relay_fields(m)
    if fields is not None:
        return SocketMessage._checked(fields[0], m["timestamp_ms"], m["timestamp_iso"],
                                      fields[1], m["data"])
    return _message_explained(m)


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
            (to is None or type(to) is str)):
        return None
    message_type = MESSAGE_TYPE_BY_VALUE.get(kind)
    if message_type is None or not EVENT_NAME_PATTERN.fullmatch(event):
        return None
    check_data(data)
    return event, message_type, seq, to


def _message_explained(m: Mapping[str, Any]) -> SocketMessage:
    data = _get(m, "data", dict)
    check_data(data)
    try:
        return SocketMessage(
            event_name=_get(m, "event_name", str),
            timestamp_ms=_get(m, "timestamp_ms", int),
            timestamp_iso=_get(m, "timestamp_iso", str),
            message_type=MessageType.parse(_get(m, "message_type", str)),
            data=data,
        )
    except ValidationError as exc:
        raise _fail(str(exc)) from None


def _optional_seq(m: Mapping[str, Any]) -> int | None:
    seq = _get(m, "seq", int, default=None)
    if seq is not None and not 0 <= seq < 2**63:
        raise _fail("'seq' must be a non-negative 63-bit integer")
    return seq  # type: ignore[no-any-return]


def _hello(m: Mapping[str, Any]) -> Hello:
    raw_types = _get(m, "types", list, default=None)
    types = None
    if raw_types is not None:
        try:
            types = frozenset(MessageType.parse(_check_str(t, "types")) for t in raw_types)
        except ValidationError as exc:
            raise _fail(str(exc)) from None
    name = _get(m, "name", str, default=None)
    if name is not None and not 1 <= len(name) <= 64:
        raise _fail("'name' must be 1 to 64 characters")
    known = {"kind", "version", "subscribe", "types", "name"}
    return Hello(
        version=_get(m, "version", int),
        subscribe=_get(m, "subscribe", bool, default=False),
        types=types,
        name=name,
        extra={k: v for k, v in m.items() if k not in known},
    )


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{key!r} must hold strings, not {type(value).__name__}")
    return value


def _welcome(m: Mapping[str, Any]) -> Welcome:
    features = _get(m, "features", list, default=[])
    return Welcome(
        version=_get(m, "version", int),
        client_id=_get(m, "client_id", str),
        event_name=_get(m, "event_name", str),
        allow_client_send=_get(m, "allow_client_send", bool, default=True),
        max_frame_size=_get(m, "max_frame_size", int, default=0),
        features=tuple(_check_str(f, "features") for f in features),
    )


def _message(m: Mapping[str, Any]) -> MessageFrame:
    message = message_from_map(m)
    seq, to = m.get("seq"), m.get("to")
    if (seq is None or (type(seq) is int and 0 <= seq < 2**63)) and \
            (to is None or type(to) is str):
        return MessageFrame(message=message, seq=seq, to=to)
    return MessageFrame(message=message, seq=_optional_seq(m),
                        to=_get(m, "to", str, default=None))


def _error(m: Mapping[str, Any]) -> ErrorFrame:
    return ErrorFrame(
        code=_get(m, "code", str),
        reason=_get(m, "reason", str, default=""),
        seq=_optional_seq(m),
        fatal=_get(m, "fatal", bool, default=False),
    )


def _stats(m: Mapping[str, Any]) -> Stats | StatsRequest:
    values = {k: v for k, v in m.items() if k != "kind"}
    return Stats(values=values) if values else StatsRequest()


_DECODERS: dict[str, Any] = {
    "hello": _hello,
    "welcome": _welcome,
    "message": _message,
    "ack": lambda m: Ack(seq=_get(m, "seq", int)),
    "error": _error,
    "stats": _stats,
    "ping": lambda m: Ping(token=_get(m, "token", int, default=0)),
    "pong": lambda m: Pong(token=_get(m, "token", int, default=0)),
}


def frame_from_map(m: Any) -> Frame:
    """Validate a decoded map and return its frame; raise MessageError saying what is wrong."""
    if not isinstance(m, dict):
        raise MessageError(f"a frame must be a map, not {type(m).__name__}",
                           code=ErrorCode.MALFORMED)
    kind = m.get("kind")
    if not isinstance(kind, str):
        raise MessageError("a frame needs a string 'kind'", code=ErrorCode.MALFORMED)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return UnknownFrame(kind=kind, fields={k: v for k, v in m.items() if k != "kind"})
    frame: Frame = decoder(m)
    return frame


# -- encoding -------------------------------------------------------------------------------


def message_to_map(message: SocketMessage) -> dict[str, Any]:
    """The wire keys of a message (the same as :meth:`SocketMessage.as_dict` plus ``kind``)."""
    return {
        "kind": "message",
        "event_name": message.event_name,
        "timestamp_ms": message.timestamp_ms,
        "timestamp_iso": message.timestamp_iso,
        "message_type": message.message_type.value,
        "data": message.data,
    }


def frame_to_map(frame: Frame) -> dict[str, Any]:
    """The MessagePack map of a frame; optional keys are left out when unset."""
    if isinstance(frame, MessageFrame):
        m = message_to_map(frame.message)
        if frame.seq is not None:
            m["seq"] = frame.seq
        if frame.to is not None:
            m["to"] = frame.to
        return m
    if isinstance(frame, Hello):
        m = {**frame.extra, "kind": "hello", "version": frame.version,
             "subscribe": frame.subscribe}
        if frame.types is not None:
            m["types"] = sorted(t.value for t in frame.types)
        if frame.name is not None:
            m["name"] = frame.name
        return m
    if isinstance(frame, Welcome):
        return {"kind": "welcome", "version": frame.version, "client_id": frame.client_id,
                "event_name": frame.event_name, "allow_client_send": frame.allow_client_send,
                "max_frame_size": frame.max_frame_size, "features": list(frame.features)}
    if isinstance(frame, Ack):
        return {"kind": "ack", "seq": frame.seq}
    if isinstance(frame, ErrorFrame):
        m = {"kind": "error", "code": frame.code, "reason": frame.reason, "fatal": frame.fatal}
        if frame.seq is not None:
            m["seq"] = frame.seq
        return m
    if isinstance(frame, StatsRequest):
        return {"kind": "stats"}
    if isinstance(frame, Stats):
        return {**frame.values, "kind": "stats"}
    if isinstance(frame, Ping):
        return {"kind": "ping", "token": frame.token}
    if isinstance(frame, Pong):
        return {"kind": "pong", "token": frame.token}
    return {**frame.fields, "kind": frame.kind}

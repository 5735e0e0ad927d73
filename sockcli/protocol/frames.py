"""The frames of the sockcli protocol, and their translation to and from MessagePack maps.

Pure data: no I/O. A :class:`~sockcli.protocol.codec.FrameCodec` turns bytes into maps and this
module turns maps into frames, checking every key a peer sends, because a map from the wire is
hostile until proven otherwise. Unknown keys are ignored and unknown kinds become
:class:`UnknownFrame`, so that newer peers can add both without breaking older ones (see
docs/protocol.md, "Versioning").

Every frame is a small immutable value class. They are written on :class:`_Frame` rather than
as ``dataclass(frozen=True, slots=True)`` because ``sockcli send`` imports this module on every
run: ``import dataclasses`` alone costs 10.8 ms here (python -X importtime; ``python -c pass`` is
about 12 ms), which would take the send path from 2.7x to over 3x ``python -c pass``.
"""

from __future__ import annotations

from sockcli.exceptions import MessageError, ValidationError
from sockcli.kinds import MESSAGE_TYPE_BY_VALUE, MessageType
from sockcli.protocol.errors import ErrorCode, RefusedMessageError, UnknownMessageTypeError
from sockcli.rules import EVENT_NAME_PATTERN, KNOWN_INSTANTS, MAX_DATA_DEPTH, check_data, is_instant
from sockcli.values import Value, set_field

TYPE_CHECKING = False  # on the send path: no typing, no collections.abc
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from sockcli.types import SocketMessage

__all__ = [
    "FEATURES",
    "MAX_DATA_DEPTH",
    "PROTOCOL_VERSION",
    "RETAIN_MODES",
    "SLOW_MODES",
    "Ack",
    "Auth",
    "Challenge",
    "ErrorCode",
    "ErrorFrame",
    "Frame",
    "Hello",
    "MessageFrame",
    "Ping",
    "Pong",
    "RefusedMessageError",
    "Stats",
    "StatsRequest",
    "UnknownFrame",
    "UnknownMessageTypeError",
    "Welcome",
    "check_data",
    "frame_from_map",
    "frame_to_map",
    "message_from_map",
    "message_to_map",
    "relay_fields",
]

#: The major protocol version; it changes only when an older peer could misread a newer one.
PROTOCOL_VERSION = 1
#: What this implementation's hub offers, announced in the welcome frame ("retain": it takes
#: a message's ``retain`` key; "peek": it honours a hello's ``peek``; "tap": a hello's
#: ``tap``).
FEATURES = ("ack", "stats", "ping", "unicast", "slow", "retain", "peek", "tap")
#: The values of a hello's ``slow``: what the hub does while a subscriber is behind.
SLOW_MODES = ("wait", "latest", "drop")
#: The values of a message's ``retain``: set the retained message of its type without relaying
#: it ("only"), clear the retained message of its type ("clear"), or of every type
#: ("clear_all"); docs/protocol.md, "Retained messages".
RETAIN_MODES = ("only", "clear", "clear_all")


class _Frame(Value):
    """A frame: a :class:`~sockcli.values.Value` with its wire ``kind``."""

    __slots__ = ()
    kind: str


_set = set_field


class Hello(_Frame):
    """Client to hub, first frame: who the client is and what it wants to receive.

    ``auth`` lists the authentication methods the client speaks (it has a token); ``slow``
    says what the hub does while this subscriber is behind (:data:`SLOW_MODES`; None: the
    hub's default, "wait"); ``last`` asks a subscriber's retained messages first, ``peek`` a
    pure sender's (once, then nothing: ``sockcli get``); ``tap`` makes a subscriber a tap (a
    bridge): it gets every message relayed, but the queue is kept for the first other
    subscriber and never replayed to it; ``extra`` keeps the keys this version does not know,
    so that they survive a round trip.
    """

    __slots__ = ("auth", "extra", "last", "name", "peek", "slow", "subscribe", "tap", "types",
                 "version")
    kind = "hello"
    version: int
    subscribe: bool
    types: frozenset[MessageType] | None
    name: str | None
    auth: tuple[str, ...] | None
    slow: str | None
    last: bool
    peek: bool
    tap: bool
    extra: Mapping[str, Any]

    def __init__(self, *, version: int = PROTOCOL_VERSION, subscribe: bool = False,
                 types: frozenset[MessageType] | None = None, name: str | None = None,
                 auth: tuple[str, ...] | None = None, slow: str | None = None,
                 last: bool = False, peek: bool = False, tap: bool = False,
                 extra: Mapping[str, Any] | None = None) -> None:
        _set(self, "version", version)
        _set(self, "subscribe", subscribe)
        _set(self, "types", types)
        _set(self, "name", name)
        _set(self, "auth", auth)
        _set(self, "slow", slow)
        _set(self, "last", last)
        _set(self, "peek", peek)
        _set(self, "tap", tap)
        _set(self, "extra", {} if extra is None else extra)


class Welcome(_Frame):
    """Hub to client, answer to Hello: the connection is accepted.

    ``auth`` is the hub's proof that it knows the token (``{"method", "mac"}``), present only
    after a challenge. ``slow_consumer_timeout`` is how long the hub may hold a publisher back
    for a subscriber that reads nothing (0: not said): a client waits at least that long for an
    acknowledgement.
    """

    __slots__ = ("allow_client_send", "auth", "client_id", "event_name", "features",
                 "max_frame_size", "slow_consumer_timeout", "version")
    kind = "welcome"
    version: int
    client_id: str
    event_name: str
    allow_client_send: bool
    max_frame_size: int
    features: tuple[str, ...]
    auth: Mapping[str, Any] | None
    slow_consumer_timeout: float

    def __init__(self, *, client_id: str, event_name: str, version: int = PROTOCOL_VERSION,
                 allow_client_send: bool = True, max_frame_size: int = 0,
                 features: tuple[str, ...] = FEATURES,
                 auth: Mapping[str, Any] | None = None,
                 slow_consumer_timeout: float = 0.0) -> None:
        _set(self, "version", version)
        _set(self, "client_id", client_id)
        _set(self, "event_name", event_name)
        _set(self, "allow_client_send", allow_client_send)
        _set(self, "max_frame_size", max_frame_size)
        _set(self, "features", features)
        _set(self, "auth", auth)
        _set(self, "slow_consumer_timeout", slow_consumer_timeout)


class Challenge(_Frame):
    """Hub to client, instead of a welcome when a token is required: prove you know it.

    ``nonce`` is the hub's 32 random bytes as 64 hex digits (see :mod:`sockcli.protocol.auth`).
    """

    __slots__ = ("method", "nonce")
    kind = "challenge"
    method: str
    nonce: str

    def __init__(self, *, method: str, nonce: str) -> None:
        _set(self, "method", method)
        _set(self, "nonce", nonce)


class Auth(_Frame):
    """Client to hub, the answer to a challenge: the client's nonce and its HMAC."""

    __slots__ = ("mac", "method", "nonce")
    kind = "auth"
    method: str
    nonce: str
    mac: str

    def __init__(self, *, method: str, nonce: str, mac: str) -> None:
        _set(self, "method", method)
        _set(self, "nonce", nonce)
        _set(self, "mac", mac)


class MessageFrame(_Frame):
    """A message; from a client it may ask for an acknowledgement (``seq``), a recipient, or
    (``retain``, :data:`RETAIN_MODES`) to set or clear a retained message instead of being
    relayed."""

    __slots__ = ("message", "retain", "seq", "to")
    kind = "message"
    message: SocketMessage
    seq: int | None
    to: str | None
    retain: str | None

    def __init__(self, *, message: SocketMessage, seq: int | None = None,
                 to: str | None = None, retain: str | None = None) -> None:
        _set(self, "message", message)
        _set(self, "seq", seq)
        _set(self, "to", to)
        _set(self, "retain", retain)

    def __hash__(self) -> int:
        return hash((type(self), self.seq, self.to))  # a message holds a dict: not hashable


class Ack(_Frame):
    """Hub to client: every message with a sequence number up to ``seq`` has been handled."""

    __slots__ = ("seq",)
    kind = "ack"
    seq: int

    def __init__(self, *, seq: int) -> None:
        _set(self, "seq", seq)


class ErrorFrame(_Frame):
    """Hub to client: something was refused; ``fatal`` means the hub closes the connection."""

    __slots__ = ("code", "fatal", "reason", "seq")
    kind = "error"
    code: str
    reason: str
    seq: int | None
    fatal: bool

    def __init__(self, *, code: str, reason: str, seq: int | None = None,
                 fatal: bool = False) -> None:
        _set(self, "code", code)
        _set(self, "reason", reason)
        _set(self, "seq", seq)
        _set(self, "fatal", fatal)


class StatsRequest(_Frame):
    """Client to hub: ask for the hub's live figures."""

    __slots__ = ()
    kind = "stats"


class Stats(_Frame):
    """Hub to client: live figures (clients, queued, dropped, ...), see docs/protocol.md."""

    __slots__ = ("values",)
    kind = "stats"
    values: Mapping[str, Any]

    def __init__(self, *, values: Mapping[str, Any]) -> None:
        _set(self, "values", values)


class Ping(_Frame):
    """Either direction: ask for a Pong carrying the same token."""

    __slots__ = ("token",)
    kind = "ping"
    token: int

    def __init__(self, *, token: int = 0) -> None:
        _set(self, "token", token)


class Pong(_Frame):
    """Answer to Ping."""

    __slots__ = ("token",)
    kind = "pong"
    token: int

    def __init__(self, *, token: int = 0) -> None:
        _set(self, "token", token)


class UnknownFrame(_Frame):
    """A well-formed frame of a kind this version does not know; peers may ignore it."""

    __slots__ = ("fields", "kind")
    kind: str
    fields: Mapping[str, Any]

    def __init__(self, *, kind: str, fields: Mapping[str, Any]) -> None:
        _set(self, "kind", kind)
        _set(self, "fields", fields)


Frame = (
    Hello | Welcome | Challenge | Auth | MessageFrame | Ack | ErrorFrame | StatsRequest | Stats
    | Ping | Pong | UnknownFrame
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
        cls = _MESSAGE_CLASS or _message_class()
        message: SocketMessage = cls._checked(fields[0], m["timestamp_ms"], m["timestamp_iso"],
                                              fields[1], m["data"], m.get("retained") is True)
        return message
    return _message_explained(m, learn_types)


_MESSAGE_CLASS: Any = None


def _message_class() -> Any:
    """:class:`~sockcli.types.SocketMessage`, imported on first use: a pure sender never
    builds one, and the module (dataclasses, datetime) is most of what it would import."""
    global _MESSAGE_CLASS
    from sockcli.types import SocketMessage

    _MESSAGE_CLASS = SocketMessage
    return SocketMessage


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
    if message_type is None or not EVENT_NAME_PATTERN.fullmatch(event) or \
            (iso not in KNOWN_INSTANTS and not is_instant(iso)):
        return None
    check_data(data)
    return event, message_type, seq, to


def _message_explained(m: Mapping[str, Any], learn_types: bool = False) -> SocketMessage:
    from sockcli.types import SocketMessage

    data = _get(m, "data", dict)
    check_data(data)
    try:
        message = SocketMessage(
            event_name=_get(m, "event_name", str),
            timestamp_ms=_get(m, "timestamp_ms", int),
            timestamp_iso=_get(m, "timestamp_iso", str),
            message_type=_message_type(m, learn_types),
            data=data,
        )
    except ValidationError as exc:
        raise _fail(str(exc)) from None
    iso = m["timestamp_iso"]  # last: only a sound frame's message can be refused alone
    if iso and not learn_types and not is_instant(iso):
        raise RefusedMessageError(
            f"timestamp_iso {iso[:64]!r} is not an ISO 8601 date and time with a UTC offset, "
            "such as '2023-11-14T22:13:20.000+00:00' (or leave it empty: the hub fills it in)",
            seq=_seq_of(m))
    return message


def _message_type(m: Mapping[str, Any], learn_types: bool) -> MessageType:
    name = _get(m, "message_type", str)
    known = MESSAGE_TYPE_BY_VALUE.get(name.lower())
    if known is not None:
        return known
    if EVENT_NAME_PATTERN.fullmatch(name) is None:  # not a type name at all: malformed
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
    offer = m.get("auth")
    auth = None if offer is None else \
        tuple(x for x in offer if isinstance(x, str)) if isinstance(offer, list) else ()
    slow = _get(m, "slow", str, default=None)
    if slow is not None and slow not in SLOW_MODES:
        raise _fail(f"'slow' must be one of {', '.join(SLOW_MODES)}, not {slow!r}")
    subscribe = _get(m, "subscribe", bool, default=False)
    peek = _get(m, "peek", bool, default=False)
    if peek and subscribe:
        raise _fail("'peek' is for a client that does not subscribe (a subscriber asks for "
                    "'last')")
    tap = _get(m, "tap", bool, default=False)
    if tap and not subscribe:
        raise _fail("'tap' is for a subscriber")
    known = {"kind", "version", "subscribe", "types", "name", "auth", "slow", "last", "peek",
             "tap"}
    return Hello(
        version=_get(m, "version", int),
        subscribe=subscribe,
        types=types,
        name=name,
        auth=auth,
        slow=slow,
        last=_get(m, "last", bool, default=False),
        peek=peek,
        tap=tap,
        extra={k: v for k, v in m.items() if k not in known},
    )


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{key!r} must hold strings, not {type(value).__name__}")
    return value


def _text(m: Mapping[str, Any], key: str) -> str:
    """A key of a challenge or auth frame: missing or not text reads as "", which the
    authentication then refuses with ``auth_failed`` saying which value is wrong (the
    protocol answers a malformed auth frame with auth_failed, not invalid_message)."""
    value = m.get(key)
    return value if isinstance(value, str) else ""


def _welcome(m: Mapping[str, Any]) -> Welcome:
    features = _get(m, "features", list, default=[])
    return Welcome(
        version=_get(m, "version", int),
        client_id=_get(m, "client_id", str),
        event_name=_get(m, "event_name", str),
        allow_client_send=_get(m, "allow_client_send", bool, default=True),
        max_frame_size=_get(m, "max_frame_size", int, default=0),
        features=tuple(_check_str(f, "features") for f in features),
        auth=_get(m, "auth", dict, default=None),
        slow_consumer_timeout=float(_get(m, "slow_consumer_timeout", (int, float), default=0)),
    )


def _message(m: Mapping[str, Any]) -> MessageFrame:
    message = message_from_map(m)
    seq, to = m.get("seq"), m.get("to")
    retain = _retain(m)
    if (seq is None or (type(seq) is int and 0 <= seq < 2**63)) and \
            (to is None or type(to) is str):
        return MessageFrame(message=message, seq=seq, to=to, retain=retain)
    return MessageFrame(message=message, seq=_optional_seq(m),
                        to=_get(m, "to", str, default=None), retain=retain)


def _retain(m: Mapping[str, Any]) -> str | None:
    """A message's ``retain`` (:data:`RETAIN_MODES`), checked: a value it does not know, or
    one with ``to`` (a retained message is everyone's), is a fatal invalid_message."""
    retain = _get(m, "retain", str, default=None)
    if retain is None:
        return None
    if retain not in RETAIN_MODES:
        raise _fail(f"'retain' must be one of {', '.join(RETAIN_MODES)}, not {retain[:32]!r}")
    if m.get("to") is not None:
        raise _fail("'retain' cannot go with 'to': a retained message is for everyone")
    return retain  # type: ignore[no-any-return]


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
    "challenge": lambda m: Challenge(method=_text(m, "method"), nonce=_text(m, "nonce")),
    "auth": lambda m: Auth(method=_text(m, "method"), nonce=_text(m, "nonce"),
                           mac=_text(m, "mac")),
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
        if frame.retain is not None:
            m["retain"] = frame.retain
        return m
    if isinstance(frame, Hello):
        m = {**frame.extra, "kind": "hello", "version": frame.version,
             "subscribe": frame.subscribe}
        if frame.types is not None:
            m["types"] = sorted(t.value for t in frame.types)
        if frame.name is not None:
            m["name"] = frame.name
        if frame.auth is not None:
            m["auth"] = list(frame.auth)
        if frame.slow is not None:
            m["slow"] = frame.slow
        if frame.last:
            m["last"] = True
        if frame.peek:
            m["peek"] = True
        if frame.tap:
            m["tap"] = True
        return m
    if isinstance(frame, Welcome):
        m = {"kind": "welcome", "version": frame.version, "client_id": frame.client_id,
             "event_name": frame.event_name, "allow_client_send": frame.allow_client_send,
             "max_frame_size": frame.max_frame_size, "features": list(frame.features)}
        if frame.auth is not None:
            m["auth"] = dict(frame.auth)
        if frame.slow_consumer_timeout:
            m["slow_consumer_timeout"] = frame.slow_consumer_timeout
        return m
    if isinstance(frame, Challenge):
        return {"kind": "challenge", "method": frame.method, "nonce": frame.nonce}
    if isinstance(frame, Auth):
        return {"kind": "auth", "method": frame.method, "nonce": frame.nonce, "mac": frame.mac}
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

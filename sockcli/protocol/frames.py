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
from sockcli.kinds import MessageType
from sockcli.protocol.checks import (
    batch_fields,
    batch_messages,
    fail,
    get_key,
    message_class,
    message_explained,
    message_from_map,
    optional_seq,
    relay_fields,
)
from sockcli.protocol.errors import ErrorCode, RefusedMessageError, UnknownMessageTypeError
from sockcli.rules import MAX_DATA_DEPTH, check_data
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
    "Batch",
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
    "batch_fields",
    "batch_messages",
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
#: ``tap``; "batch": it takes batch frames, and sends them to a subscriber whose hello asks).
FEATURES = ("ack", "stats", "ping", "unicast", "slow", "retain", "peek", "tap", "batch")
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
    subscriber and never replayed to it; ``batch`` (a subscriber's: the size in bytes of the
    largest frame it reads; 0: none) lets the hub relay a :class:`Batch` as one; ``extra``
    keeps the keys this version does not know, so that they survive a round trip.
    """

    __slots__ = ("auth", "batch", "extra", "last", "name", "peek", "slow", "subscribe", "tap",
                 "types", "version")
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
    batch: int
    extra: Mapping[str, Any]

    def __init__(self, *, version: int = PROTOCOL_VERSION, subscribe: bool = False,
                 types: frozenset[MessageType] | None = None, name: str | None = None,
                 auth: tuple[str, ...] | None = None, slow: str | None = None,
                 last: bool = False, peek: bool = False, tap: bool = False, batch: int = 0,
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
        _set(self, "batch", batch)
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


class Batch(_Frame):
    """Messages of one event, type and instant in one frame: ``items`` holds each one's
    ``data``, in order.

    A client sends one to a hub whose welcome lists "batch" (``sockcli send --lines`` sends
    the lines of one read as one); its messages carry the sequence numbers ``seq``,
    ``seq + 1``, ... (``seq`` None: no acknowledgement asked). A hub sends one to a subscriber
    whose hello's ``batch`` is at least its size, without ``seq``. Either way it means
    exactly what the messages sent one by one would: it only spares each its frame, its
    header and the work per frame (docs/protocol.md, "Batches").
    """

    __slots__ = ("event_name", "items", "message_type", "seq", "timestamp_iso", "timestamp_ms")
    kind = "batch"
    event_name: str
    message_type: MessageType
    timestamp_ms: int
    timestamp_iso: str
    items: list[dict[str, Any]]
    seq: int | None

    def __init__(self, *, event_name: str, message_type: MessageType, timestamp_ms: int,
                 timestamp_iso: str, items: list[dict[str, Any]],
                 seq: int | None = None) -> None:
        _set(self, "event_name", event_name)
        _set(self, "message_type", message_type)
        _set(self, "timestamp_ms", timestamp_ms)
        _set(self, "timestamp_iso", timestamp_iso)
        _set(self, "items", items)
        _set(self, "seq", seq)

    def __hash__(self) -> int:
        return hash((type(self), self.event_name, self.timestamp_ms, self.seq))

    def messages(self) -> list[SocketMessage]:
        """Its messages, one :class:`~sockcli.types.SocketMessage` each."""
        cls = message_class()
        return [cls._checked(self.event_name, self.timestamp_ms, self.timestamp_iso,
                             self.message_type, data, False) for data in self.items]


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
    Hello | Welcome | Challenge | Auth | MessageFrame | Batch | Ack | ErrorFrame | StatsRequest
    | Stats | Ping | Pong | UnknownFrame
)


# -- decoding -------------------------------------------------------------------------------


def _batch(m: Mapping[str, Any]) -> Batch:
    """A batch frame, checked as its messages would be one by one; a type this process does
    not know or a timestamp_iso that is no date refuses the whole batch (seq: its first)."""
    if m.get("to") is not None or m.get("retain") is not None:
        raise fail("a batch cannot carry 'to' or 'retain': send those messages alone")
    items = get_key(m, "items", list)
    if not items:
        raise fail("a batch holds at least one item")
    seq = optional_seq(m)
    if seq is not None and seq + len(items) > 2**63:
        raise fail("a batch's sequence numbers must stay within 63 bits")
    try:
        first = message_explained({**m, "data": {}, "seq": seq})  # the header, a message's
    except RefusedMessageError as exc:  # every message of the batch, under the first's seq
        error = type(exc)(f"{exc} (a batch of {len(items)} messages)", seq=seq)
        error.count = len(items)
        raise error from None
    for data in items:
        if type(data) is not dict:
            raise fail(f"a batch's items must be maps, not {type(data).__name__}")
        check_data(data)
    return Batch(event_name=first.event_name, message_type=first.message_type,
                 timestamp_ms=first.timestamp_ms, timestamp_iso=first.timestamp_iso,
                 items=items, seq=seq)


def _hello(m: Mapping[str, Any]) -> Hello:
    raw_types = get_key(m, "types", list, default=None)
    types = None
    if raw_types is not None:
        try:
            types = frozenset(MessageType.parse(_check_str(t, "types")) for t in raw_types)
        except ValidationError as exc:
            raise fail(str(exc)) from None
    name = get_key(m, "name", str, default=None)
    if name is not None and not 1 <= len(name) <= 64:
        raise fail("'name' must be 1 to 64 characters")
    offer = m.get("auth")
    auth = None if offer is None else \
        tuple(x for x in offer if isinstance(x, str)) if isinstance(offer, list) else ()
    slow = get_key(m, "slow", str, default=None)
    if slow is not None and slow not in SLOW_MODES:
        raise fail(f"'slow' must be one of {', '.join(SLOW_MODES)}, not {slow!r}")
    subscribe = get_key(m, "subscribe", bool, default=False)
    peek = get_key(m, "peek", bool, default=False)
    if peek and subscribe:
        raise fail("'peek' is for a client that does not subscribe (a subscriber asks for "
                    "'last')")
    tap = get_key(m, "tap", bool, default=False)
    if tap and not subscribe:
        raise fail("'tap' is for a subscriber")
    batch = get_key(m, "batch", int, default=0)
    if batch < 0:
        raise fail("'batch' must be a frame size in bytes (0: no batches)")
    known = {"kind", "version", "subscribe", "types", "name", "auth", "slow", "last", "peek",
             "tap", "batch"}
    return Hello(
        version=get_key(m, "version", int),
        subscribe=subscribe,
        types=types,
        name=name,
        auth=auth,
        slow=slow,
        last=get_key(m, "last", bool, default=False),
        peek=peek,
        tap=tap,
        batch=batch if subscribe else 0,
        extra={k: v for k, v in m.items() if k not in known},
    )


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise fail(f"{key!r} must hold strings, not {type(value).__name__}")
    return value


def _text(m: Mapping[str, Any], key: str) -> str:
    """A key of a challenge or auth frame: missing or not text reads as "", which the
    authentication then refuses with ``auth_failed`` saying which value is wrong (the
    protocol answers a malformed auth frame with auth_failed, not invalid_message)."""
    value = m.get(key)
    return value if isinstance(value, str) else ""


def _welcome(m: Mapping[str, Any]) -> Welcome:
    features = get_key(m, "features", list, default=[])
    return Welcome(
        version=get_key(m, "version", int),
        client_id=get_key(m, "client_id", str),
        event_name=get_key(m, "event_name", str),
        allow_client_send=get_key(m, "allow_client_send", bool, default=True),
        max_frame_size=get_key(m, "max_frame_size", int, default=0),
        features=tuple(_check_str(f, "features") for f in features),
        auth=get_key(m, "auth", dict, default=None),
        slow_consumer_timeout=float(get_key(m, "slow_consumer_timeout", (int, float), default=0)),
    )


def _message(m: Mapping[str, Any]) -> MessageFrame:
    message = message_from_map(m)
    seq, to = m.get("seq"), m.get("to")
    retain = _retain(m)
    if (seq is None or (type(seq) is int and 0 <= seq < 2**63)) and \
            (to is None or type(to) is str):
        return MessageFrame(message=message, seq=seq, to=to, retain=retain)
    return MessageFrame(message=message, seq=optional_seq(m),
                        to=get_key(m, "to", str, default=None), retain=retain)


def _retain(m: Mapping[str, Any]) -> str | None:
    """A message's ``retain`` (:data:`RETAIN_MODES`), checked: a value it does not know, or
    one with ``to`` (a retained message is everyone's), is a fatal invalid_message."""
    retain = get_key(m, "retain", str, default=None)
    if retain is None:
        return None
    if retain not in RETAIN_MODES:
        raise fail(f"'retain' must be one of {', '.join(RETAIN_MODES)}, not {retain[:32]!r}")
    if m.get("to") is not None:
        raise fail("'retain' cannot go with 'to': a retained message is for everyone")
    return retain  # type: ignore[no-any-return]


def _error(m: Mapping[str, Any]) -> ErrorFrame:
    return ErrorFrame(
        code=get_key(m, "code", str),
        reason=get_key(m, "reason", str, default=""),
        seq=optional_seq(m),
        fatal=get_key(m, "fatal", bool, default=False),
    )


def _stats(m: Mapping[str, Any]) -> Stats | StatsRequest:
    values = {k: v for k, v in m.items() if k != "kind"}
    return Stats(values=values) if values else StatsRequest()


_DECODERS: dict[str, Any] = {
    "hello": _hello,
    "welcome": _welcome,
    "message": _message,
    "batch": _batch,
    "challenge": lambda m: Challenge(method=_text(m, "method"), nonce=_text(m, "nonce")),
    "auth": lambda m: Auth(method=_text(m, "method"), nonce=_text(m, "nonce"),
                           mac=_text(m, "mac")),
    "ack": lambda m: Ack(seq=get_key(m, "seq", int)),
    "error": _error,
    "stats": _stats,
    "ping": lambda m: Ping(token=get_key(m, "token", int, default=0)),
    "pong": lambda m: Pong(token=get_key(m, "token", int, default=0)),
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
        if frame.batch:
            m["batch"] = frame.batch
        return m
    if isinstance(frame, Batch):
        m = {"kind": "batch", "event_name": frame.event_name,
             "timestamp_ms": frame.timestamp_ms, "timestamp_iso": frame.timestamp_iso,
             "message_type": frame.message_type.value, "items": frame.items}
        if frame.seq is not None:
            m["seq"] = frame.seq
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

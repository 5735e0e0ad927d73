"""What crosses the broker, without the broker: topics, payloads both ways, deduplication.

Sans I/O and without paho, so that every rule of docs/BRIDGE.md is tested on its own:

- a hub's id (:func:`make_hub_id`), stable across restarts and different for two socket
  directories on one machine;
- the topics (:class:`Topics`): ``{prefix}/{event}/{type}`` for messages,
  ``{prefix}/{event}/$hubs/{hub_id}`` for presence;
- the outgoing payload (:class:`Encoder`): the ``sockcli listen --json`` object plus
  ``origin`` and a unique ``id``;
- the incoming payload (:func:`decode_payload`): the full form, or a bare object taken as the
  data; anything else is :class:`PayloadRejected` with a short reason;
- what to do with a decoded message (:class:`Inbound`): relay it, set the hub's retained
  value with it, or drop it as an echo of this hub, a duplicate (its ``id`` seen lately) or a
  retained value older than what the bridge has seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections import OrderedDict
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sockcli.exceptions import MessageError
from sockcli.kinds import MESSAGE_TYPE_BY_VALUE, MessageType
from sockcli.lines import LineError, json_object
from sockcli.rules import check_data, is_instant
from sockcli.strictjson import finite, json_kind
from sockcli.types import SocketMessage

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEDUP_WINDOW", "MAX_ID_CHARS", "OFFLINE", "ONLINE", "PRESENCE", "Encoder", "Inbound",
           "Incoming", "PayloadRejected", "Topics", "Verdict", "decode_payload",
           "make_hub_id", "message_type_of"]

#: How many message ids the bridge remembers to drop redeliveries (QoS 1 is at least once).
DEDUP_WINDOW = 65536
#: The topic level under the event where hubs say whether they are online.
PRESENCE = "$hubs"
ONLINE = "online"
OFFLINE = "offline"
#: The longest ``id`` or ``origin`` taken from a payload.
MAX_ID_CHARS = 256
#: The latest instant a timestamp_ms may name (9999-12-31T23:59:59.999Z): later ones cannot
#: be written as an ISO date.
_MAX_MS = 253_402_300_799_999
#: What may not be in a hub id: it is a topic level (no "/", "+", "#"), and stays readable.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class PayloadRejected(MessageError):
    """A payload from the broker that is no message for this hub; the text says why."""


def make_hub_id(socket_dir: str | os.PathLike[str], event_name: str,
                hostname: str | None = None) -> str:
    """``{hostname}-{h}``: ``h`` the first 8 hex digits of sha256(realpath(socket_dir) NUL
    event). The same after a restart (the broker keeps its session and presence under it),
    different for two socket directories of one machine (two "machines" in the tests)."""
    host = socket.gethostname() if hostname is None else hostname
    host = _UNSAFE.sub("-", host).strip("-")[:64] or "host"
    seed = os.fsencode(os.path.realpath(socket_dir)) + b"\0" + event_name.encode()
    return f"{host}-{hashlib.sha256(seed).hexdigest()[:8]}"


class Topics:
    """The topics of one event under one prefix."""

    def __init__(self, prefix: str, event_name: str) -> None:
        self.base = f"{prefix}/{event_name}"
        #: What a bridge subscribes to for messages: every type of the event.
        self.messages = f"{self.base}/+"
        #: What a bridge subscribes to for presence: every hub of the event.
        self.presences = f"{self.base}/{PRESENCE}/+"

    def message(self, message_type: MessageType) -> str:
        return f"{self.base}/{message_type.value}"

    def presence(self, hub_id: str) -> str:
        return f"{self.base}/{PRESENCE}/{hub_id}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """``("message", TYPE)`` or ``("presence", HUB_ID)`` for a topic of this event (the
        type as the topic spells it, unchecked), None for any other topic."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head):]
        if rest.startswith(PRESENCE + "/"):
            hub_id = rest[len(PRESENCE) + 1:]
            return ("presence", hub_id) if hub_id and "/" not in hub_id else None
        return ("message", rest) if rest and "/" not in rest else None


def message_type_of(topic_type: str,
                    types: Mapping[str, MessageType] = MESSAGE_TYPE_BY_VALUE) -> MessageType:
    """The message type a topic names (any case, as everywhere a type is read); a type this
    process does not know (the ``message_types`` setting) is PayloadRejected."""
    known = types.get(topic_type.lower())
    if known is None:
        raise PayloadRejected(f"unknown message type {topic_type!r} in the topic: choose one "
                              f"of {', '.join(types)} (or add it to message_types)")
    return known


class Encoder:
    """The payload of the messages of one bridge run: each gets ``origin`` (this hub) and an
    ``id`` unique across runs, ``{hub_id}:{started_ms}:{n}`` with n from 1."""

    def __init__(self, hub_id: str, started_ms: int) -> None:
        self.hub_id = hub_id
        #: The start of this run's ids, ``{hub_id}:{started_ms}``.
        self.run = f"{hub_id}:{started_ms}"
        #: Messages encoded so far (the n of the last id).
        self.count = 0

    def encode(self, message: SocketMessage) -> bytes:
        """UTF-8 JSON: the ``sockcli listen --json`` object, ``origin`` and ``id``. A NaN or
        an infinity (a library client may send one) becomes null, as ``listen --json``
        writes it."""
        self.count += 1
        body: dict[str, Any] = {
            "event_name": message.event_name,
            "timestamp_ms": message.timestamp_ms,
            "timestamp_iso": message.timestamp_iso,
            "message_type": message.message_type.value,
            "data": message.data,
            "origin": self.hub_id,
            "id": f"{self.run}:{self.count}",
        }
        try:
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:
            body["data"] = finite(message.data)
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogatepass")


class Incoming:
    """A message decoded from the broker, with the ``origin`` and ``id`` its payload named
    (None for a bare object, or a full form without them)."""

    __slots__ = ("id", "message", "origin")

    def __init__(self, message: SocketMessage, origin: str | None = None,
                 id: str | None = None) -> None:
        self.message = message
        self.origin = origin
        self.id = id

    def __repr__(self) -> str:
        return f"Incoming({self.message!r}, origin={self.origin!r}, id={self.id!r})"


def decode_payload(payload: bytes, message_type: MessageType, event_name: str, *,
                   max_bytes: int) -> Incoming:
    """The message a payload published on the topic of ``message_type`` holds.

    A JSON object with ``data`` (an object) and ``message_type`` is the full form (what
    bridges publish): its message_type must be the topic's, its event_name (if any) this
    event; its timestamps are kept when valid, else it is stamped now. Any other JSON object
    is the data of a message of the topic's type, stamped now. Anything else is
    PayloadRejected: larger than ``max_bytes`` (the hub's buffer_size), not UTF-8, not
    strict JSON (NaN, Infinity, 1e400), not an object, nested too deep, a lone surrogate.
    """
    if len(payload) > max_bytes:
        raise PayloadRejected(f"{len(payload)} bytes, larger than the hub's buffer_size "
                              f"({max_bytes} bytes)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"not UTF-8 (byte 0x{payload[exc.start]:02x} at offset "
                              f"{exc.start})") from None
    value = _json_object(text)
    if "message_type" in value and type(value.get("data")) is dict:
        return _full_form(value, message_type, event_name)
    _check(value)
    return Incoming(SocketMessage(event_name, message_type=message_type, data=value))


def _json_object(text: str) -> dict[str, Any]:
    try:  # the line grammar's strict reading (no NaN, no half surrogate pair)
        return json_object(text, hint='expected a JSON object such as {"progress": 40}',
                           check=False)
    except LineError as exc:
        raise PayloadRejected(exc.reason) from None


def _check(data: dict[str, Any]) -> None:
    try:
        check_data(data)
    except MessageError as exc:
        raise PayloadRejected(str(exc)) from None


def _full_form(value: dict[str, Any], topic_type: MessageType, event_name: str) -> Incoming:
    named = value["message_type"]
    if type(named) is not str or MESSAGE_TYPE_BY_VALUE.get(named.lower()) is not topic_type:
        raise PayloadRejected(f"message_type {named!r} is not the topic's type "
                              f"{topic_type.value!r}")
    event = value.get("event_name", event_name)
    if event != event_name:
        raise PayloadRejected(f"event_name {event!r} is not this hub's event {event_name!r}")
    origin, message_id = _label(value, "origin"), _label(value, "id")
    data: dict[str, Any] = value["data"]
    _check(data)
    stamp, iso = value.get("timestamp_ms"), value.get("timestamp_iso")
    if type(stamp) is int and 0 <= stamp <= _MAX_MS:
        message = SocketMessage(event_name, timestamp_ms=stamp,
                                timestamp_iso=iso if type(iso) is str and is_instant(iso)
                                else "", message_type=topic_type, data=data)
    else:  # no usable instant: stamped now, as a bare object is
        message = SocketMessage(event_name, message_type=topic_type, data=data)
    return Incoming(message, origin, message_id)


def _label(value: dict[str, Any], key: str) -> str | None:
    """``origin`` or ``id``: absent (None) or a string of 1 to :data:`MAX_ID_CHARS`."""
    label = value.get(key)
    if label is None:
        return None
    if type(label) is not str or not 1 <= len(label) <= MAX_ID_CHARS:
        raise PayloadRejected(f"{key} must be a string of 1 to {MAX_ID_CHARS} characters, "
                              f"not {json_kind(label) if type(label) is not str else repr(label)}")
    return label


class Verdict(StrEnum):
    """What the bridge does with a decoded message from the broker."""

    #: Hand it to the local hub, which relays it to the subscribers.
    RELAY = "relay"
    #: A retained value newer than any message of its type seen: make it the hub's retained
    #: value (``retain="only"``), relaying nothing.
    RETAIN = "retain"
    #: This hub's own message come back (a broker that does not honour No Local).
    ECHO = "echo"
    #: A message whose id was seen lately (a QoS 1 redelivery): counted, not relayed.
    DUPLICATE = "duplicate"
    #: A retained value older than (or as old as) what was seen of its type.
    STALE = "stale"


class Inbound:
    """The bridge's memory of what it saw: the ids of the last ``window`` messages from the
    broker (a bounded LRU), and the newest timestamp_ms of each type either way; ``run`` is
    this run's id prefix (:attr:`Encoder.run`).

    Not thread-safe: the bridge calls it under its lock.
    """

    def __init__(self, hub_id: str, window: int = DEDUP_WINDOW, *,
                 run: str | None = None) -> None:
        if window < 1:
            raise ValueError("the dedup window must hold at least one id")
        self.hub_id = hub_id
        #: This bridge run's id prefix (:attr:`Encoder.run`): what tells this run's own
        #: retained values from an earlier run's.
        self.run = run
        self.window = window
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._latest: dict[MessageType, int] = {}

    def note_local(self, message: SocketMessage) -> None:
        """A message of the local hub, on its way to the broker: retained values from the
        broker older than it are stale."""
        self._newest(message)

    def judge(self, incoming: Incoming, *, retained: bool) -> Verdict:
        """The verdict on ``incoming`` (``retained``: it came with the MQTT retain flag, a
        retained value sent on subscribing), remembering what it must.

        A message of this hub is an echo, except a retained value from an earlier run of it
        (its id names another run): after a restart, the hub gets its own last values back.
        A retained value is never a duplicate: the copy of a message seen is stale."""
        message_id = incoming.id
        if incoming.origin == self.hub_id and not (retained and self._earlier_run(message_id)):
            return Verdict.ECHO
        seen = message_id is not None and message_id in self._seen
        if message_id is not None:
            if seen:
                self._seen.move_to_end(message_id)
            else:
                self._seen[message_id] = None
                if len(self._seen) > self.window:
                    self._seen.popitem(last=False)
        message = incoming.message
        if retained:
            latest = self._latest.get(message.message_type)
            if seen or (latest is not None and message.timestamp_ms <= latest):
                return Verdict.STALE
            self._newest(message)
            return Verdict.RETAIN
        if seen:
            return Verdict.DUPLICATE
        self._newest(message)
        return Verdict.RELAY

    def _earlier_run(self, message_id: str | None) -> bool:
        return message_id is not None and self.run is not None and \
            not message_id.startswith(self.run + ":")

    def _newest(self, message: SocketMessage) -> None:
        latest = self._latest.get(message.message_type)
        if latest is None or message.timestamp_ms > latest:
            self._latest[message.message_type] = message.timestamp_ms

    @property
    def remembered(self) -> int:
        """How many ids the window holds now."""
        return len(self._seen)

"""frames.py: maps to frames and back, and every refusal of a hostile map."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockcli.exceptions import MessageError
from sockcli.protocol import frames as fr
from sockcli.rules import is_instant
from sockcli.types import EVENT_NAME_RULE, MessageType, SocketMessage

TS = 1700000000000
ISO = "2023-11-14T22:13:20.000+00:00"


def msg_map(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"kind": "message", "event_name": "ev", "timestamp_ms": TS,
                         "timestamp_iso": ISO, "message_type": "data", "data": {"p": 1}}
    m.update(overrides)
    return m


VALID: dict[str, dict[str, Any]] = {
    "hello": {"kind": "hello", "version": 1, "subscribe": True, "types": ["data"], "name": "bar"},
    "welcome": {"kind": "welcome", "version": 1, "client_id": "c1", "event_name": "ev",
                "allow_client_send": False, "max_frame_size": 1024, "features": ["ack"]},
    "message": msg_map(seq=5, to="bar"),
    "ack": {"kind": "ack", "seq": 9},
    "error": {"kind": "error", "code": "unknown_recipient", "reason": "r", "seq": 2,
              "fatal": False},
    "stats": {"kind": "stats", "clients": 3},
    "ping": {"kind": "ping", "token": 11},
    "pong": {"kind": "pong", "token": 12},
}


def refused(m: Any) -> MessageError:
    with pytest.raises(MessageError) as info:
        fr.frame_from_map(m)
    return info.value


def invalid(m: Any, *needles: str) -> str:
    """Assert ``m`` is refused as invalid_message and that the reason holds every needle."""
    err = refused(m)
    assert err.code == fr.ErrorCode.INVALID_MESSAGE == "invalid_message"
    for needle in needles:
        assert needle in str(err), (needle, str(err))
    return str(err)


def message(**kwargs: Any) -> SocketMessage:
    kwargs.setdefault("data", {"p": 1})
    return SocketMessage("ev", timestamp_ms=TS, timestamp_iso=ISO, **kwargs)


# -- round trips ---------------------------------------------------------------------------


ROUND_TRIP: list[fr.Frame] = [
    fr.Hello(),
    fr.Hello(version=1, subscribe=True, types=frozenset(MessageType), name="x" * 64),
    fr.Hello(subscribe=True, types=frozenset(), name="n"),
    fr.Hello(extra={"replay": {"since": 5}}),
    fr.Welcome(client_id="c7", event_name="ev"),
    fr.Welcome(client_id="c7", event_name="ev", allow_client_send=False, max_frame_size=4096,
               features=("ack", "future")),
    fr.MessageFrame(message=message()),
    fr.MessageFrame(message=message(message_type=MessageType.ERROR,
                                    data={"a": [1, {"b": None}], "f": 1.5, "t": True}),
                    seq=0, to="bar"),
    fr.MessageFrame(message=message(), seq=2**63 - 1),
    fr.Ack(seq=0),
    fr.ErrorFrame(code="send_not_allowed", reason="no", seq=3),
    fr.ErrorFrame(code="slow_consumer", reason="", fatal=True),
    fr.StatsRequest(),
    fr.Stats(values={"clients": 1, "address": "/x.sock"}),
    fr.Ping(),
    fr.Ping(token=-(2**63)),
    fr.Pong(token=2**64 - 1),
    fr.UnknownFrame(kind="replay", fields={"since": 1}),
    fr.UnknownFrame(kind="", fields={}),
]


@pytest.mark.parametrize("frame", ROUND_TRIP, ids=repr)
def test_round_trip(frame: fr.Frame) -> None:
    m = fr.frame_to_map(frame)
    assert fr.frame_from_map(m) == frame
    # ... and through real MessagePack, as on the wire.
    wire = msgpack.unpackb(msgpack.packb(m, use_bin_type=True), raw=False)
    assert fr.frame_from_map(wire) == frame


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_valid_map_decodes_and_encodes_back(kind: str) -> None:
    frame = fr.frame_from_map(VALID[kind])
    assert fr.frame_to_map(frame) == VALID[kind]


def test_frame_to_map_exact_maps() -> None:
    assert fr.frame_to_map(fr.Hello()) == {"kind": "hello", "version": 1, "subscribe": False}
    assert fr.frame_to_map(fr.Hello(subscribe=True, name="b",
                                    types=frozenset({MessageType.ERROR, MessageType.DATA}))) == {
        "kind": "hello", "version": 1, "subscribe": True, "types": ["data", "error"], "name": "b"}
    # extra keys travel, but never override the defined ones
    assert fr.frame_to_map(fr.Hello(extra={"kind": "x", "version": 9, "auth": "t"})) == {
        "kind": "hello", "version": 1, "subscribe": False, "auth": "t"}
    assert fr.frame_to_map(fr.MessageFrame(message=message())) == msg_map()
    assert list(fr.frame_to_map(fr.MessageFrame(message=message(), seq=1, to="b"))) == [
        "kind", "event_name", "timestamp_ms", "timestamp_iso", "message_type", "data", "seq",
        "to"]
    assert fr.frame_to_map(fr.Welcome(client_id="c1", event_name="ev")) == {
        "kind": "welcome", "version": 1, "client_id": "c1", "event_name": "ev",
        "allow_client_send": True, "max_frame_size": 0,
        "features": ["ack", "stats", "ping", "unicast", "slow", "retain", "peek", "tap",
                         "batch"]}
    assert fr.frame_to_map(fr.ErrorFrame(code="c", reason="r")) == {
        "kind": "error", "code": "c", "reason": "r", "fatal": False}
    assert fr.frame_to_map(fr.ErrorFrame(code="c", reason="r", seq=0, fatal=True)) == {
        "kind": "error", "code": "c", "reason": "r", "fatal": True, "seq": 0}
    assert fr.frame_to_map(fr.Ack(seq=4)) == {"kind": "ack", "seq": 4}
    assert fr.frame_to_map(fr.StatsRequest()) == {"kind": "stats"}
    assert fr.frame_to_map(fr.Stats(values={"kind": "zzz", "a": 1})) == {"kind": "stats", "a": 1}
    assert fr.frame_to_map(fr.Ping()) == {"kind": "ping", "token": 0}
    assert fr.frame_to_map(fr.Pong(token=3)) == {"kind": "pong", "token": 3}
    assert fr.frame_to_map(fr.UnknownFrame(kind="k", fields={"kind": "no", "a": 1})) == {
        "kind": "k", "a": 1}


def test_protocol_constants() -> None:
    assert fr.PROTOCOL_VERSION == 1
    assert fr.FEATURES == ("ack", "stats", "ping", "unicast", "slow", "retain", "peek", "tap",
                           "batch")
    assert fr.MAX_DATA_DEPTH == 32
    assert {v for k, v in vars(fr.ErrorCode).items() if k.isupper()} == {
        "malformed_frame", "frame_too_large", "invalid_message", "handshake_required",
        "unsupported_version", "max_connections", "send_not_allowed", "unknown_recipient",
        "unknown_kind", "slow_consumer", "shutting_down", "peer_not_allowed", "auth_failed",
        "tls_required", "not_retaining"}


def test_error_codes_are_all_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    for name, code in vars(fr.ErrorCode).items():
        if name.isupper():
            assert f"| `{code}` |" in doc, code


# -- defaults and optional keys -------------------------------------------------------------


def test_defaults_of_optional_keys() -> None:
    assert fr.frame_from_map({"kind": "hello", "version": 1}) == fr.Hello(
        subscribe=False, types=None, name=None, extra={})
    assert fr.frame_from_map({"kind": "welcome", "version": 1, "client_id": "c",
                              "event_name": "ev"}) == fr.Welcome(
        client_id="c", event_name="ev", allow_client_send=True, max_frame_size=0, features=())
    assert fr.frame_from_map({"kind": "error", "code": "x"}) == fr.ErrorFrame(
        code="x", reason="", seq=None, fatal=False)
    assert fr.frame_from_map({"kind": "ping"}) == fr.Ping(token=0)
    assert fr.frame_from_map({"kind": "pong"}) == fr.Pong(token=0)
    frame = fr.frame_from_map(msg_map())
    assert isinstance(frame, fr.MessageFrame)
    assert (frame.seq, frame.to) == (None, None)


def test_nil_means_absent_only_where_the_default_is_none() -> None:
    assert fr.frame_from_map({"kind": "hello", "version": 1, "types": None, "name": None}) == \
        fr.Hello()
    frame = fr.frame_from_map(msg_map(seq=None, to=None))
    assert isinstance(frame, fr.MessageFrame) and frame.seq is None and frame.to is None
    assert fr.frame_from_map({"kind": "error", "code": "c", "seq": None}) == \
        fr.ErrorFrame(code="c", reason="")
    invalid({"kind": "hello", "version": 1, "subscribe": None}, "'subscribe'", "NoneType")
    invalid({"kind": "ping", "token": None}, "'token'", "NoneType")
    invalid({"kind": "error", "code": "c", "fatal": None}, "'fatal'")


def test_stats_request_versus_reply() -> None:
    assert fr.frame_from_map({"kind": "stats"}) == fr.StatsRequest()
    assert fr.frame_from_map({"kind": "stats", "clients": 0}) == fr.Stats(values={"clients": 0})


def test_message_type_is_case_insensitive() -> None:
    frame = fr.frame_from_map(msg_map(message_type="ERROR"))
    assert isinstance(frame, fr.MessageFrame)
    assert frame.message.message_type is MessageType.ERROR
    assert fr.frame_to_map(frame)["message_type"] == "error"
    hello = fr.frame_from_map({"kind": "hello", "version": 1, "types": ["Control", "DATA"]})
    assert isinstance(hello, fr.Hello)
    assert hello.types == frozenset({MessageType.CONTROL, MessageType.DATA})


def test_empty_timestamp_iso_is_filled_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from sockcli.config.loader import get_settings, reset_settings_cache

    monkeypatch.setenv("SOCKCLI_TIMEZONE", "Asia/Tokyo")
    reset_settings_cache()
    get_settings()  # a process that loaded its settings stamps in their timezone
    frame = fr.frame_from_map(msg_map(timestamp_iso=""))
    assert isinstance(frame, fr.MessageFrame)
    assert frame.message.timestamp_iso == "2023-11-15T07:13:20.000+09:00"


# -- unknown keys and kinds ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["welcome", "message", "ack", "error", "ping", "pong"])
def test_unknown_keys_are_ignored(kind: str) -> None:
    plain = fr.frame_from_map(VALID[kind])
    extended = fr.frame_from_map({**VALID[kind], "future": {"x": [1, b"\x00"]}, "n": None})
    assert extended == plain


def test_unknown_hello_keys_are_kept_aside() -> None:
    hello = fr.frame_from_map({**VALID["hello"], "replay": {"since": 3}})
    assert isinstance(hello, fr.Hello)
    assert hello.extra == {"replay": {"since": 3}}
    assert hello == fr.Hello(subscribe=True, types=frozenset({MessageType.DATA}), name="bar",
                             extra={"replay": {"since": 3}})


def test_unknown_kind_becomes_unknown_frame() -> None:
    frame = fr.frame_from_map({"kind": "replay", "since": 5, "x": [1]})
    assert frame == fr.UnknownFrame(kind="replay", fields={"since": 5, "x": [1]})
    # Kinds are case-sensitive.
    assert fr.frame_from_map({"kind": "PING"}) == fr.UnknownFrame(kind="PING", fields={})


def test_not_a_map_or_no_kind_is_malformed() -> None:
    for m in ([], "hello", None, 3):
        err = refused(m)
        assert err.code == fr.ErrorCode.MALFORMED
        assert str(err).startswith("a frame must be a map, not ")
    for m in ({}, {"kind": 1}, {"kind": True}, {"kind": None}):
        err = refused(m)
        assert err.code == fr.ErrorCode.MALFORMED
        assert str(err) == "a frame needs a string 'kind'"


# -- invalid keys ---------------------------------------------------------------------------

BAD_TYPES: list[tuple[str, str, Any, str]] = [
    # (kind, key, bad value, the reason's wording)
    ("hello", "version", "1", "'version' must be int, not str"),
    ("hello", "version", True, "'version' must be int, not bool"),
    ("hello", "version", 1.0, "'version' must be int, not float"),
    ("hello", "subscribe", 1, "'subscribe' must be bool, not int"),
    ("hello", "subscribe", "yes", "'subscribe' must be bool, not str"),
    ("hello", "types", "data", "'types' must be list, not str"),
    ("hello", "types", {"data": 1}, "'types' must be list, not dict"),
    ("hello", "types", [1], "'types' must hold strings, not int"),
    ("hello", "types", [b"data"], "'types' must hold strings, not bytes"),
    ("hello", "name", 5, "'name' must be str, not int"),
    ("hello", "name", b"bar", "'name' must be str, not bytes"),
    ("welcome", "version", "1", "'version' must be int, not str"),
    ("welcome", "client_id", 1, "'client_id' must be str, not int"),
    ("welcome", "event_name", None, "'event_name' must be str, not NoneType"),
    ("welcome", "allow_client_send", 0, "'allow_client_send' must be bool, not int"),
    ("welcome", "max_frame_size", "64k", "'max_frame_size' must be int, not str"),
    ("welcome", "max_frame_size", False, "'max_frame_size' must be int, not bool"),
    ("welcome", "features", "ack", "'features' must be list, not str"),
    ("welcome", "features", ["ack", 2], "'features' must hold strings, not int"),
    ("message", "event_name", 1, "'event_name' must be str, not int"),
    ("message", "timestamp_ms", "1", "'timestamp_ms' must be int, not str"),
    ("message", "timestamp_ms", 1.5, "'timestamp_ms' must be int, not float"),
    ("message", "timestamp_ms", True, "'timestamp_ms' must be int, not bool"),
    ("message", "timestamp_iso", 0, "'timestamp_iso' must be str, not int"),
    ("message", "message_type", 1, "'message_type' must be str, not int"),
    ("message", "data", [1], "'data' must be dict, not list"),
    ("message", "data", "x", "'data' must be dict, not str"),
    ("message", "data", None, "'data' must be dict, not NoneType"),
    ("message", "seq", "1", "'seq' must be int, not str"),
    ("message", "seq", True, "'seq' must be int, not bool"),
    ("message", "to", 7, "'to' must be str, not int"),
    ("ack", "seq", "9", "'seq' must be int, not str"),
    ("ack", "seq", None, "'seq' must be int, not NoneType"),
    ("error", "code", 3, "'code' must be str, not int"),
    ("error", "reason", 3, "'reason' must be str, not int"),
    ("error", "seq", 1.0, "'seq' must be int, not float"),
    ("error", "fatal", "yes", "'fatal' must be bool, not str"),
    ("ping", "token", "t", "'token' must be int, not str"),
    ("ping", "token", True, "'token' must be int, not bool"),
    ("pong", "token", 1.5, "'token' must be int, not float"),
]


@pytest.mark.parametrize(("kind", "key", "value", "reason"), BAD_TYPES,
                         ids=[f"{k}.{key}={v!r}" for k, key, v, _ in BAD_TYPES])
def test_invalid_key_type(kind: str, key: str, value: Any, reason: str) -> None:
    assert invalid({**VALID[kind], key: value}, f"'{key}'") == reason


REQUIRED = [
    ("hello", "version"), ("welcome", "version"), ("welcome", "client_id"),
    ("welcome", "event_name"), ("message", "event_name"), ("message", "timestamp_ms"),
    ("message", "timestamp_iso"), ("message", "message_type"), ("message", "data"),
    ("ack", "seq"), ("error", "code"),
]


@pytest.mark.parametrize(("kind", "key"), REQUIRED, ids=[f"{k}.{key}" for k, key in REQUIRED])
def test_missing_required_key(kind: str, key: str) -> None:
    m = {k: v for k, v in VALID[kind].items() if k != key}
    assert invalid(m) == f"{kind} frame lacks {key!r}"


def test_seq_range() -> None:
    for bad in (-1, 2**63, 2**64 - 1):
        invalid(msg_map(seq=bad), "'seq' must be a non-negative 63-bit integer")
        invalid({"kind": "error", "code": "c", "seq": bad}, "'seq'")
    for good in (0, 1, 2**63 - 1):
        frame = fr.frame_from_map(msg_map(seq=good))
        assert isinstance(frame, fr.MessageFrame) and frame.seq == good


def test_name_length() -> None:
    invalid({"kind": "hello", "version": 1, "name": ""}, "'name' must be 1 to 64 characters")
    invalid({"kind": "hello", "version": 1, "name": "x" * 65}, "'name'", "64")
    hello = fr.frame_from_map({"kind": "hello", "version": 1, "name": "é" * 64})
    assert isinstance(hello, fr.Hello) and hello.name == "é" * 64


def test_unknown_message_type() -> None:
    invalid({"kind": "hello", "version": 1, "types": ["data", "bogus"]},
            "'bogus'", "data, error, control")
    invalid(msg_map(message_type="info"), "'info'", "data, error, control")
    invalid(msg_map(message_type=""), "data, error, control")


@pytest.mark.parametrize("name", ["", "../x", "a b", "x" * 65, "é", "a/b", "a.b"])
def test_invalid_event_name_in_a_message(name: str) -> None:
    invalid(msg_map(event_name=name), repr(name), EVENT_NAME_RULE)


def test_out_of_range_timestamp_with_empty_iso() -> None:
    invalid(msg_map(timestamp_ms=10**15, timestamp_iso=""), "out of range")
    # With the ISO text given, timestamp_ms is not converted, so any integer is accepted.
    frame = fr.frame_from_map(msg_map(timestamp_ms=10**15))
    assert isinstance(frame, fr.MessageFrame) and frame.message.timestamp_ms == 10**15


# -- data -----------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """``data`` whose deepest value sits at ``depth`` (data itself is level 0)."""
    value: Any = 1
    for i in range(depth - 1):
        value = [value] if i % 2 else {"k": value}
    return {"k": value}


def test_data_depth_limit() -> None:
    fr.check_data(nested(fr.MAX_DATA_DEPTH))
    frame = fr.frame_from_map(msg_map(data=nested(fr.MAX_DATA_DEPTH)))
    assert isinstance(frame, fr.MessageFrame)
    assert frame.message.data == nested(fr.MAX_DATA_DEPTH)
    assert invalid(msg_map(data=nested(fr.MAX_DATA_DEPTH + 1))) == \
        "data nests deeper than 32 levels"
    with pytest.raises(MessageError, match="deeper than 32"):
        fr.check_data(nested(fr.MAX_DATA_DEPTH + 1))


def test_data_depth_counts_empty_containers() -> None:
    def lists(n: int) -> Any:
        value: Any = []
        for _ in range(n - 1):
            value = [value]
        return value

    # data is level 0, the outermost list level 1, the innermost empty list level n
    fr.check_data({"x": lists(32)})
    assert fr.frame_from_map(msg_map(data={"x": lists(32)})) is not None
    invalid(msg_map(data={"x": lists(33)}), "deeper than 32")


@pytest.mark.parametrize("data", [{1: "a"}, {b"k": 1}, {"a": {2: 1}}, {"a": [{None: 1}]},
                                  {"a": {(1, 2): 1}}])
def test_non_string_keys_in_data(data: dict[Any, Any]) -> None:
    err = invalid(msg_map(data=data), "data keys must be strings, not ")
    assert err.split("not ")[-1] in {"int", "bytes", "NoneType", "tuple"}


@pytest.mark.parametrize(("value", "type_name"), [
    (b"x", "bytes"), (bytearray(b"x"), "bytearray"), ((1, 2), "tuple"), ({1, 2}, "set"),
    (msgpack.Timestamp(1, 0), "Timestamp"), (msgpack.ExtType(1, b""), "ExtType"),
    (object(), "object"),
])
def test_values_json_cannot_carry_are_refused(value: Any, type_name: str) -> None:
    assert invalid(msg_map(data={"a": [value]})) == (
        "data may hold only maps, arrays, strings, numbers, booleans and nil, "
        f"not {type_name}")


def test_data_values_json_can_carry_are_accepted() -> None:
    data = {"n": None, "b": False, "i": -(2**63), "u": 2**64 - 1, "f": float("inf"),
            "s": "☃", "l": [], "m": {}, "e": ""}
    frame = fr.frame_from_map(msg_map(data=data))
    assert isinstance(frame, fr.MessageFrame) and frame.message.data == data


# -- fuzzing: a hostile map yields a frame or a MessageError, nothing else -------------------

ALL_KEYS = sorted({k for m in VALID.values() for k in m} | {"future", "types", "name"})
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats() | st.text(max_size=70) | st.binary(max_size=5)
           | st.sampled_from(["data", "ERROR", "control", "ev", "", "../x"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3),
                      max_leaves=10)


@pytest.mark.timeout(60)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from([*VALID, "zzz"]),
       fields=st.dictionaries(st.sampled_from(ALL_KEYS), values, max_size=8),
       base=st.booleans())
def test_hostile_maps_only_raise_message_error(kind: str, fields: dict[str, Any],
                                               base: bool) -> None:
    m = {**(VALID[kind] if base and kind in VALID else {}), **fields, "kind": kind}
    try:
        frame = fr.frame_from_map(m)
    except MessageError as exc:
        assert exc.code in {"invalid_message", "malformed_frame"}
        return
    assert fr.frame_from_map(fr.frame_to_map(frame)) == frame


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ts=st.integers(min_value=-(2**63), max_value=2**64 - 1),
       iso=st.sampled_from(["", ISO, "x"]))
def test_any_timestamp_is_a_frame_or_invalid_message(ts: int, iso: str) -> None:
    # timestamp_iso is not checked against timestamp_ms; only "" needs it to be a date.
    try:
        frame = fr.frame_from_map(msg_map(timestamp_ms=ts, timestamp_iso=iso))
    except fr.RefusedMessageError as exc:
        assert exc.code == "invalid_message" and "not an ISO 8601 date" in str(exc)
        assert iso == "x"
        return
    except MessageError as exc:
        assert exc.code == "invalid_message" and "out of range" in str(exc)
        assert iso == ""
        return
    assert iso != "x"
    assert isinstance(frame, fr.MessageFrame) and frame.message.timestamp_ms == ts


# -- timestamp_iso: an ISO 8601 instant, or "" ------------------------------------------------

INSTANTS = [
    ISO,                                   # what every sockcli side writes
    "2023-11-14T22:13:20Z",                # JavaScript's toISOString without the fraction
    "2023-11-14T22:13:20.123Z",
    "2023-11-14T22:13:20.123456789-05:00",  # Go's RFC3339Nano
    "2023-11-14T22:13:20+14:00",
    "1900-01-01T00:00:00.000+09:18:59",    # Python's offset of a zone's local mean time
    "0001-01-01T00:00:00.000+00:00",
    "9999-12-31T23:59:59.999+00:00",
]
NOT_INSTANTS = [
    "yesterday",
    "2023-11-14",                          # a date, no time
    "2023-11-14T22:13:20",                 # no offset: not an instant
    "2023-11-14 22:13:20+00:00",           # space for T: fromisoformat takes it, RFC 3339 not
    "2023-11-14T22:13:20+00:00\x1b[2J",    # a terminal escape after a valid instant
    "2023-11-14T22:13:20+00:00\n",
    "2023-02-30T00:00:00Z",                # right shape, no such day
    "2023-13-01T00:00:00Z",
    "2023-11-14T24:00:00Z",
    "2023-11-14T22:13:60Z",                # a leap second: datetime cannot hold it
    "0000-01-01T00:00:00Z",
    "2023-11-14T22:13:20+24:00",
    "2023-W46-2T22:13:20Z",                # ISO 8601 week date: fromisoformat takes it
    "20231114T221320Z",                    # ISO 8601 basic format: fromisoformat takes it
    "2023-11-14t22:13:20z",
    "\uff12\uff10\uff12\uff13-11-14T22:13:20Z",  # full-width digits match \d, not [0-9]
    "2023-11-14T22:13:20." + "1" * 10 + "Z",
]


@pytest.mark.parametrize("iso", INSTANTS)
def test_an_iso_8601_instant_is_relayed_as_it_is(iso: str) -> None:
    m = msg_map(timestamp_iso=iso, seq=3)
    assert is_instant(iso)
    assert fr.relay_fields(m) == ("ev", MessageType.DATA, 3, None)  # the hub's hot path
    frame = fr.frame_from_map(m)
    assert isinstance(frame, fr.MessageFrame) and frame.message.timestamp_iso == iso


@pytest.mark.parametrize("iso", NOT_INSTANTS)
def test_a_timestamp_iso_that_is_not_an_instant_refuses_that_message_alone(iso: str) -> None:
    m = msg_map(timestamp_iso=iso, seq=7)
    assert not is_instant(iso)
    assert fr.relay_fields(m) is None  # not the usual shape: the frame path explains
    err = refused(m)
    # A refusal of this message, with its seq (the hub goes on with the connection), not a
    # malformed frame.
    assert isinstance(err, fr.RefusedMessageError)
    assert err.code == "invalid_message" and err.seq == 7
    assert str(err).startswith(f"timestamp_iso {iso[:64]!r} is not an ISO 8601 date and time "
                               "with a UTC offset, such as '2023-11-14T22:13:20.000+00:00'")
    assert "\x1b" not in str(err)  # shown with repr: the sender prints it on a terminal


def test_a_bad_timestamp_does_not_hide_what_makes_the_frame_malformed() -> None:
    # Checked last: a bad event name (fatal) wins over the timestamp (one message refused).
    err = refused(msg_map(event_name="no spaces", timestamp_iso="yesterday", seq=1))
    assert not isinstance(err, fr.RefusedMessageError) and err.code == "invalid_message"
    assert "event name" in str(err)
    unknown = refused(msg_map(message_type="nosuchtype", timestamp_iso="yesterday", seq=2))
    assert isinstance(unknown, fr.UnknownMessageTypeError) and unknown.seq == 2
    assert isinstance(unknown, fr.RefusedMessageError)


def test_the_remembered_instant_never_lets_another_text_through() -> None:
    assert is_instant(INSTANTS[1])
    assert fr.relay_fields(msg_map(timestamp_iso=INSTANTS[1])) is not None
    assert fr.relay_fields(msg_map(timestamp_iso=INSTANTS[1] + " ")) is None
    assert fr.relay_fields(msg_map(timestamp_iso=INSTANTS[1][:-1])) is None
    assert fr.relay_fields(msg_map(timestamp_iso=ISO)) is not None


def test_a_client_keeps_the_timestamp_its_hub_relayed() -> None:
    # What a hub relays was checked by it, or is its owner's: a listener must not lose the
    # connection (or the message) over it, and renders it defensively.
    message = fr.message_from_map(msg_map(timestamp_iso="yesterday"), learn_types=True)
    assert message.timestamp_iso == "yesterday" and message.data == {"p": 1}
    with pytest.raises(fr.RefusedMessageError):
        fr.message_from_map(msg_map(timestamp_iso="yesterday"))

"""The sans-I/O codec: framing, chunking, limits, and hostile bytes."""

from __future__ import annotations

import itertools
import random
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockcli.exceptions import MessageError
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import (
    CLOSED,
    DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE,
    NEED_DATA,
    Codec,
    Sentinel,
)
from sockcli.types import MessageType, SocketMessage

TS = 1700000000000
ISO = "2023-11-14T22:13:20.000+00:00"


def message(data: dict[str, Any] | None = None, **kwargs: Any) -> SocketMessage:
    return SocketMessage("ev", timestamp_ms=TS, timestamp_iso=ISO,
                         data={"p": 1} if data is None else data, **kwargs)


SAMPLE_FRAMES: list[fr.Frame] = [
    fr.Hello(),
    fr.Hello(subscribe=True, types=frozenset({MessageType.DATA, MessageType.ERROR}), name="bar"),
    fr.Welcome(client_id="c1", event_name="ev", max_frame_size=65536),
    fr.MessageFrame(message=message()),
    fr.MessageFrame(message=message({"nested": {"list": [1, 2.5, None, True, "é"]}},
                                    message_type=MessageType.CONTROL), seq=7, to="bar"),
    fr.Ack(seq=3),
    fr.ErrorFrame(code="unknown_recipient", reason="no one", seq=4),
    fr.ErrorFrame(code="slow_consumer", reason="dropped", fatal=True),
    fr.StatsRequest(),
    fr.Stats(values={"clients": 2, "queued": 0}),
    fr.Ping(token=42),
    fr.Pong(token=-5),
    fr.UnknownFrame(kind="replay", fields={"since": 10}),
]


def framed(payload: bytes) -> bytes:
    """A length prefix in front of raw payload bytes."""
    return struct.pack(">I", len(payload)) + payload


def packed(obj: Any) -> bytes:
    return framed(msgpack.packb(obj, use_bin_type=True))


def drain(codec: Codec) -> tuple[list[Any], Sentinel]:
    """Every frame the codec can give now, and the sentinel that stopped it."""
    out: list[Any] = []
    while True:
        event = codec.next_event()
        if isinstance(event, Sentinel):
            return out, event
        out.append(event)


def decode_one(data: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> Any:
    codec = Codec(max_frame_size=max_frame_size)
    codec.receive_data(data)
    return codec.next_event()


def refused(data: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> MessageError:
    with pytest.raises(MessageError) as info:
        decode_one(data, max_frame_size)
    return info.value


def message_map(**overrides: Any) -> dict[str, Any]:
    m = {"kind": "message", "event_name": "ev", "timestamp_ms": TS, "timestamp_iso": ISO,
         "message_type": "data", "data": {"p": 1}}
    m.update(overrides)
    return m


STREAM = b"".join(Codec().send(f) for f in SAMPLE_FRAMES)


# -- round trips and wire format ----------------------------------------------------------


@pytest.mark.parametrize("frame", SAMPLE_FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip_of_every_kind(frame: fr.Frame) -> None:
    codec = Codec()
    data = codec.send(frame)
    assert data[:HEADER_SIZE] == (len(data) - HEADER_SIZE).to_bytes(4, "big")
    codec.receive_data(data)
    assert codec.next_event() == frame
    assert codec.next_event() is NEED_DATA
    assert codec.buffered == 0


def test_hello_bytes_match_the_documented_example() -> None:
    hello = fr.Hello(subscribe=True, types=frozenset({MessageType.DATA}), name="bar")
    assert Codec().send(hello) == bytes.fromhex(
        "00000035 85 a46b696e64 a568656c6c6f a776657273696f6e 01"
        " a9737562736372696265 c3 a57479706573 91 a464617461 a46e616d65 a3626172"
    )


def test_message_bytes_match_the_documented_example() -> None:
    frame = fr.MessageFrame(message=message(), seq=1)
    data = Codec().send(frame)
    assert len(data) == 130
    assert data == bytes.fromhex(
        "0000007e 87 a46b696e64 a76d657373616765 aa6576656e745f6e616d65 a26576"
        " ac74696d657374616d705f6d73 cf0000018bcfe56800"
        " ad74696d657374616d705f69736f bd323032332d31312d31345432323a31333a32302e3030302b30303a3030"
        " ac6d6573736167655f74797065 a464617461 a464617461 81a17001 a3736571 01"
    )
    # The relayed copy (no seq) is 125 bytes, as docs/protocol.md says.
    assert len(Codec().pack_map(fr.message_to_map(frame.message))) == 125


def test_ack_bytes_match_the_documented_example() -> None:
    assert Codec().send(fr.Ack(seq=1)) == bytes.fromhex(
        "0000000f82a46b696e64a361636ba373657101")


def test_next_map_returns_the_raw_map() -> None:
    codec = Codec()
    codec.receive_data(packed({"kind": "ping", "token": 1, "future": [1, 2]}))
    assert codec.next_map() == {"kind": "ping", "token": 1, "future": [1, 2]}
    assert codec.next_map() is NEED_DATA


def test_pack_map_uses_str_and_bin_types() -> None:
    data = Codec().pack_map({"kind": "x", "s": "a", "b": b"a"})
    assert msgpack.unpackb(data[HEADER_SIZE:], raw=True) == {b"kind": b"x", b"s": b"a",
                                                              b"b": b"a"}
    assert b"\xa1a" in data  # fixstr "a"
    assert b"\xc4\x01a" in data  # bin 8 of one byte


# -- chunking -----------------------------------------------------------------------------


def test_one_byte_at_a_time_gives_the_same_frames() -> None:
    codec = Codec()
    got: list[Any] = []
    for i in range(len(STREAM)):
        codec.receive_data(STREAM[i:i + 1])
        frames, sentinel = drain(codec)
        assert sentinel is NEED_DATA
        got.extend(frames)
    assert got == SAMPLE_FRAMES
    assert codec.buffered == 0
    codec.receive_data(b"")
    assert codec.next_event() is CLOSED


def test_all_at_once_gives_the_same_frames() -> None:
    codec = Codec()
    codec.receive_data(STREAM)
    codec.receive_data(b"")
    frames, sentinel = drain(codec)
    assert frames == SAMPLE_FRAMES
    assert sentinel is CLOSED


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    codec = Codec()
    got: list[Any] = []
    for start, end in itertools.pairwise(bounds):
        if end > start:
            codec.receive_data(STREAM[start:end])
        frames, sentinel = drain(codec)
        assert sentinel is NEED_DATA
        got.extend(frames)
    assert got == SAMPLE_FRAMES
    codec.receive_data(b"")
    assert codec.next_event() is CLOSED


def test_seeded_random_chunkings() -> None:
    rng = random.Random(1234)
    for _ in range(50):
        codec = Codec()
        got: list[Any] = []
        pos = 0
        while pos < len(STREAM):
            step = rng.randint(1, 64)
            codec.receive_data(STREAM[pos:pos + step])
            pos += step
            got.extend(drain(codec)[0])
        assert got == SAMPLE_FRAMES


def test_buffered_counts_bytes_not_yet_returned() -> None:
    data = Codec().send(fr.Ping(token=1))
    codec = Codec()
    codec.receive_data(data + data[:5])
    assert codec.buffered == len(data) + 5
    assert codec.next_event() == fr.Ping(token=1)
    assert codec.buffered == 5
    assert codec.next_event() is NEED_DATA
    assert codec.buffered == 5


# -- sentinels and end of stream ------------------------------------------------------------


def test_sentinels() -> None:
    assert NEED_DATA is Sentinel.NEED_DATA and CLOSED is Sentinel.CLOSED
    assert NEED_DATA is not CLOSED
    codec = Codec()
    assert codec.next_event() is NEED_DATA
    assert codec.next_event() is NEED_DATA  # asking again changes nothing
    codec.receive_data(b"\x00\x00\x00")
    assert codec.next_event() is NEED_DATA
    codec.receive_data(b"\x0c")  # complete prefix, no payload yet
    assert codec.next_event() is NEED_DATA


def test_clean_end_of_stream_is_closed_for_ever() -> None:
    codec = Codec()
    codec.receive_data(b"")
    assert codec.next_event() is CLOSED
    assert codec.next_event() is CLOSED
    codec.receive_data(b"")  # a second end of stream is harmless
    assert codec.next_event() is CLOSED
    with pytest.raises(RuntimeError, match="after end of stream"):
        codec.receive_data(b"\x00")


def test_frames_before_end_of_stream_are_still_returned() -> None:
    codec = Codec()
    codec.receive_data(Codec().send(fr.Ping(token=9)))
    codec.receive_data(b"")
    assert codec.next_event() == fr.Ping(token=9)
    assert codec.next_event() is CLOSED


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 10])
def test_end_of_stream_mid_frame_is_malformed(cut: int) -> None:
    data = Codec().send(fr.Ping(token=1))
    assert cut < len(data)
    codec = Codec()
    codec.receive_data(data[:cut])
    assert codec.next_event() is NEED_DATA
    codec.receive_data(b"")
    with pytest.raises(MessageError) as info:
        codec.next_event()
    assert info.value.code == fr.ErrorCode.MALFORMED == "malformed_frame"
    assert str(info.value) == f"stream ended inside a frame ({cut} bytes pending)"


def test_end_of_stream_after_a_frame_and_a_partial_one() -> None:
    data = Codec().send(fr.Ping(token=1))
    codec = Codec()
    codec.receive_data(data + data[:2])
    codec.receive_data(b"")
    assert codec.next_event() == fr.Ping(token=1)
    with pytest.raises(MessageError, match=r"\(2 bytes pending\)") as info:
        codec.next_event()
    assert info.value.code == "malformed_frame"


# -- the size limit -------------------------------------------------------------------------


def test_max_frame_size_floor() -> None:
    with pytest.raises(ValueError, match="at least 64 bytes"):
        Codec(max_frame_size=63)
    assert Codec(max_frame_size=64).max_frame_size == 64
    assert Codec().max_frame_size == DEFAULT_MAX_FRAME_SIZE == 65536


def test_oversized_prefix_refused_as_soon_as_the_header_is_complete() -> None:
    codec = Codec(max_frame_size=1000)
    header = struct.pack(">I", 1001)
    codec.receive_data(header[:3])
    assert codec.next_event() is NEED_DATA  # three bytes say nothing yet
    codec.receive_data(header[3:])
    with pytest.raises(MessageError) as info:
        codec.next_event()  # no payload byte was sent
    assert info.value.code == fr.ErrorCode.FRAME_TOO_LARGE == "frame_too_large"
    assert str(info.value) == ("frame of 1001 bytes exceeds the limit of 1000 bytes (raise the "
                               "buffer_size setting, SOCKCLI_BUFFER_SIZE, of the hub and its "
                               "clients)")
    assert codec.buffered == HEADER_SIZE  # nothing but the prefix was buffered


def test_huge_prefix_refused_without_buffering() -> None:
    codec = Codec()
    codec.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(MessageError, match="frame of 4294967295 bytes exceeds the limit of "
                                           "65536 bytes") as info:
        codec.next_event()
    assert info.value.code == "frame_too_large"


def padded_ping(payload_size: int) -> bytes:
    """A ping frame whose payload is exactly ``payload_size`` bytes (an unknown padding key)."""
    base = len(msgpack.packb({"kind": "ping", "pad": ""}))
    # str 16 header (3 bytes) replaces the 1-byte fixstr header once the padding exceeds 31.
    pad = payload_size - base - 2
    assert pad > 255
    data = packed({"kind": "ping", "pad": "x" * pad})
    assert len(data) == HEADER_SIZE + payload_size
    return data


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    assert decode_one(padded_ping(1000), max_frame_size=1000) == fr.Ping(token=0)
    assert refused(padded_ping(1001), max_frame_size=1000).code == "frame_too_large"


def test_encoding_a_too_large_frame_is_refused() -> None:
    codec = Codec(max_frame_size=1000)
    big = fr.MessageFrame(message=message({"text": "x" * 1000}))
    with pytest.raises(MessageError) as info:
        codec.send(big)
    assert info.value.code == "frame_too_large"
    # The same words as the receiver's (the hub's error frame): they name the setting.
    assert "exceeds the limit of 1000 bytes (raise the buffer_size setting, " \
           "SOCKCLI_BUFFER_SIZE, of the hub and its clients)" in str(info.value)
    # The same message fits a codec with the default limit.
    assert len(Codec().send(big)) > 1000


def test_encoding_exactly_the_limit_is_accepted() -> None:
    data = padded_ping(1000)
    m = msgpack.unpackb(data[HEADER_SIZE:])
    assert Codec(max_frame_size=1000).pack_map(m) == data
    m["pad"] += "x"
    with pytest.raises(MessageError, match="frame of 1001 bytes exceeds the limit of 1000"):
        Codec(max_frame_size=1000).pack_map(m)


def test_encoding_an_unencodable_value_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="cannot encode frame") as info:
        Codec().pack_map({"kind": "ping", "x": object()})
    assert info.value.code == "invalid_message"
    with pytest.raises(MessageError, match="cannot encode frame"):
        Codec().pack_map({"kind": "ping", "x": 2**64})


# -- malformed payloads ---------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "type_name"), [
    ([1, 2], "list"), (5, "int"), ("hello", "str"), (None, "NoneType"), (True, "bool"),
    (1.5, "float"),
])
def test_payload_that_is_not_a_map(payload: Any, type_name: str) -> None:
    err = refused(packed(payload))
    assert err.code == "malformed_frame"
    assert str(err) == f"a frame must be a map, not {type_name}"


@pytest.mark.parametrize("m", [{}, {"token": 1}, {"kind": 1}, {"kind": None},
                               {"kind": b"ping"}, {"kind": ["ping"]}, {b"kind": "ping"}])
def test_frame_without_a_string_kind(m: dict[Any, Any]) -> None:
    err = refused(packed(m))
    assert err.code == "malformed_frame"
    assert str(err) == "a frame needs a string 'kind'"


def test_empty_payload_is_malformed() -> None:
    err = refused(framed(b""))
    assert err.code == "malformed_frame"
    assert str(err).startswith("malformed MessagePack:")


def test_truncated_msgpack_inside_a_complete_frame() -> None:
    payload = msgpack.packb({"kind": "ping", "token": 1})
    err = refused(framed(payload[:-1]))
    assert err.code == "malformed_frame"


def test_trailing_bytes_inside_a_frame_are_malformed() -> None:
    payload = msgpack.packb({"kind": "ping"}) + b"\x01"
    err = refused(framed(payload))
    assert err.code == "malformed_frame"
    assert "extra data" in str(err)


def test_two_objects_in_one_frame_are_malformed() -> None:
    payload = msgpack.packb({"kind": "ping"}) * 2
    assert refused(framed(payload)).code == "malformed_frame"


@pytest.mark.parametrize("where", ["value", "key", "unknown key value", "kind"])
def test_invalid_utf8_is_malformed(where: str) -> None:
    bad = b"\xa2\xc3\x28"  # fixstr of 2 bytes that are not UTF-8
    ping = b"\xa4kind\xa4ping"
    payloads = {
        "value": b"\x82" + ping + b"\xa4name" + bad,
        "key": b"\x82" + ping + bad + b"\x01",
        "unknown key value": b"\x82" + ping + b"\xa6future" + bad,
        "kind": b"\x81\xa4kind" + bad,
    }
    err = refused(framed(payloads[where]))
    assert err.code == "malformed_frame"
    assert "utf-8" in str(err).lower()


@pytest.mark.parametrize("key", [1, -1, 1.5, None, True])
def test_non_string_map_keys_are_malformed(key: Any) -> None:
    payload = msgpack.packb({"kind": "ping", key: 1})
    err = refused(framed(payload))
    assert err.code == "malformed_frame"
    assert "map key" in str(err)


def test_non_string_key_deep_inside_is_malformed() -> None:
    err = refused(packed(message_map(data={"a": [{1: 2}]})))
    assert err.code == "malformed_frame"


def test_bin_value_for_a_known_key_is_invalid() -> None:
    err = refused(packed(message_map(event_name=b"ev")))
    assert err.code == "invalid_message"
    assert str(err) == "'event_name' must be str, not bytes"


def test_bin_value_inside_data_is_invalid() -> None:
    err = refused(packed(message_map(data={"blob": b"\x00\x01"})))
    assert err.code == "invalid_message"
    assert str(err).endswith("not bytes")


def test_bin_key_inside_data_is_invalid() -> None:
    err = refused(packed(message_map(data={b"k": 1})))
    assert err.code == "invalid_message"
    assert str(err) == "data keys must be strings, not bytes"


def test_bin_value_in_an_unknown_key_is_ignored() -> None:
    assert decode_one(packed({"kind": "ping", "token": 3, "future": b"\x00"})) == \
        fr.Ping(token=3)


@pytest.mark.parametrize("where", ["data", "unknown key", "known key"])
def test_extension_types_are_refused_everywhere(where: str) -> None:
    ext = msgpack.ExtType(5, b"ab")
    maps = {
        "data": message_map(data={"x": ext}),
        "unknown key": {"kind": "ping", "future": ext},
        "known key": {"kind": "ping", "token": ext},
    }
    err = refused(packed(maps[where]))
    assert err.code == "invalid_message"
    assert str(err) == "extension type 5 is not allowed"


def test_timestamp_extension_in_data_is_refused() -> None:
    err = refused(packed(message_map(data={"when": msgpack.Timestamp(1, 0)})))
    assert err.code == "invalid_message"
    assert str(err).endswith("not Timestamp")


def test_timestamp_extension_for_a_known_key_is_refused() -> None:
    err = refused(packed(message_map(timestamp_ms=msgpack.Timestamp(1, 0))))
    assert err.code == "invalid_message"
    assert str(err) == "'timestamp_ms' must be int, not Timestamp"


def test_timestamp_extension_in_an_unknown_key_is_ignored() -> None:
    # docs/protocol.md, "Values": a well-formed timestamp in an unknown key goes with the key.
    assert decode_one(packed({"kind": "ping", "at": msgpack.Timestamp(1, 0)})) == fr.Ping()


def test_malformed_timestamp_extension_is_malformed() -> None:
    payload = b"\x82\xa4kind\xa4ping\xa2at" + b"\xc7\x05\xff" + b"\x00" * 5  # length 5: invalid
    err = refused(framed(payload))
    assert err.code == "malformed_frame"
    assert "timestamp" in str(err)


def nested_ping(depth: int) -> bytes:
    """A ping whose unknown key holds ``depth`` nested one-element arrays."""
    return framed(b"\x82\xa4kind\xa4ping\xa1x" + b"\x91" * depth + b"\x01")


def test_msgpack_nesting_limit() -> None:
    # 1023 arrays inside the frame's own map: 1024 levels, the decoder's limit.
    assert decode_one(nested_ping(1023)) == fr.Ping()
    err = refused(nested_ping(1024))
    assert err.code == "malformed_frame"
    assert str(err) == "malformed MessagePack: StackError"


def test_message_with_out_of_range_timestamp_is_invalid_not_a_crash() -> None:
    # timestamp_iso "" makes the decoder format timestamp_ms: out of datetime's range it used to
    # escape as ValueError and kill the hub's loop.
    for ts in (10**15, 2**63 - 1, -(2**63)):
        err = refused(packed(message_map(timestamp_ms=ts, timestamp_iso="")))
        assert err.code == "invalid_message"
        assert "out of range" in str(err)


# -- garbage never raises anything but MessageError ----------------------------------------


def consume(codec: Codec) -> None:
    """Read frames until the codec starves; MessageError is the only exception allowed."""
    for _ in range(10_000):
        try:
            event = codec.next_event()
        except MessageError as exc:
            assert exc.code in {"malformed_frame", "frame_too_large", "invalid_message"}
            return
        if isinstance(event, Sentinel):
            return
    raise AssertionError("the codec kept returning frames")


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), eof=st.booleans())
def test_random_bytes_only_raise_message_error(data: bytes, eof: bool) -> None:
    codec = Codec(max_frame_size=256)
    codec.receive_data(data)
    if eof:
        codec.receive_data(b"")
    consume(codec)


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=200))
def test_random_payload_with_valid_prefix_only_raises_message_error(payload: bytes) -> None:
    codec = Codec()
    codec.receive_data(framed(payload))
    consume(codec)


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_corrupting_one_byte_of_a_valid_stream_only_raises_message_error(
        index: int, byte: int) -> None:
    payload_start = HEADER_SIZE  # keep the first prefix: corrupt inside the frames
    i = payload_start + index % (len(STREAM) - payload_start)
    data = bytearray(STREAM)
    data[i] = byte
    codec = Codec()
    codec.receive_data(bytes(data))
    codec.receive_data(b"")
    consume(codec)


def test_garbage_sample_is_refused_with_malformed_frame() -> None:
    # 0xc1 is the one byte MessagePack never uses.
    err = refused(framed(b"\xc1"))
    assert err.code == "malformed_frame"

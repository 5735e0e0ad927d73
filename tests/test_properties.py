"""Properties of the codec, checked on generated input (hypothesis).

tests/test_codec.py checks fixed frames and a fixed stream; here the frames themselves are
generated: any valid message (any JSON-like data within the limits) survives the round trip,
any stream of frames cut anywhere decodes to the same frames, and any bytes at all, however
they are cut, give frames or a MessageError, never another exception, and the same outcome
whatever the cutting. The fuzz targets of fuzz/ replay their seeds here, so they keep working.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockcli.exceptions import MessageError
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec, Sentinel
from sockcli.rules import check_data
from sockcli.timestamps import format_timestamp
from sockcli.types import MessageType, SocketMessage

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIMIT = 1 << 20  # large enough for anything generated here
CODES = {"malformed_frame", "frame_too_large", "invalid_message"}

# -- strategies -------------------------------------------------------------------------------

event_names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
texts = st.text(max_size=40)  # any code point but lone surrogates, which UTF-8 cannot carry
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False) | texts)
#: What JSON can carry, as the protocol allows it in ``data`` (nested well under 32 levels).
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=25,
)
json_maps = st.dictionaries(texts, json_values, max_size=6)
#: Milliseconds that fall in the years 1 to 9999, so that an empty timestamp_iso can be filled.
timestamps = st.integers(min_value=-62135596800000 + 86400000, max_value=253402300799000 - 86400000)
message_types = st.sampled_from(list(MessageType))
seqs = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
names = st.none() | st.text(min_size=1, max_size=64)
tokens = st.integers(min_value=-(2**63), max_value=2**64 - 1)
KNOWN_KINDS = {"hello", "welcome", "message", "ack", "error", "stats", "ping", "pong"}


@st.composite
def messages(draw: st.DrawFn) -> SocketMessage:
    return SocketMessage(
        draw(event_names),
        timestamp_ms=draw(timestamps),
        # "" is filled in from timestamp_ms; any other text must be an ISO 8601 instant (not
        # checked against timestamp_ms). Old dates in Tokyo have offsets with seconds (LMT).
        timestamp_iso=draw(st.just("") | st.builds(format_timestamp, timestamps,
                                                   st.sampled_from(["UTC", "Asia/Tokyo"]))),
        message_type=draw(message_types),
        data=draw(json_maps),
    )


message_frames = st.builds(lambda m, seq, to: fr.MessageFrame(message=m, seq=seq, to=to),
                           messages(), seqs, names)
frames: st.SearchStrategy[fr.Frame] = st.one_of(
    message_frames,
    st.builds(lambda sub, types, name: fr.Hello(subscribe=sub, types=types, name=name),
              st.booleans(), st.none() | st.frozensets(message_types), names),
    st.builds(lambda cid, ev, allow, size, feats: fr.Welcome(
        client_id=cid, event_name=ev, allow_client_send=allow, max_frame_size=size,
        features=tuple(feats)), texts, event_names, st.booleans(),
        st.integers(min_value=0, max_value=2**31), st.lists(texts, max_size=4)),
    st.builds(lambda s: fr.Ack(seq=s), st.integers(min_value=0, max_value=2**63 - 1)),
    st.builds(lambda code, reason, seq, fatal: fr.ErrorFrame(code=code, reason=reason,
                                                              seq=seq, fatal=fatal),
              texts, texts, seqs, st.booleans()),
    st.just(fr.StatsRequest()),
    st.builds(lambda values: fr.Stats(values=values),
              st.dictionaries(texts.filter(lambda k: k != "kind"), json_values, min_size=1,
                              max_size=5)),
    st.builds(lambda t: fr.Ping(token=t), tokens),
    st.builds(lambda t: fr.Pong(token=t), tokens),
    st.builds(lambda kind, fields: fr.UnknownFrame(kind=kind, fields=fields),
              texts.filter(lambda k: k not in KNOWN_KINDS),
              st.dictionaries(texts.filter(lambda k: k != "kind"), json_values, max_size=4)),
)


def drain(codec: Codec) -> tuple[list[Any], Sentinel | str]:
    """Every frame the codec gives, and what stopped it: a sentinel or an error code."""
    out: list[Any] = []
    while True:
        try:
            event = codec.next_event()
        except MessageError as exc:
            assert exc.code in CODES, exc.code
            return out, exc.code
        if isinstance(event, Sentinel):
            return out, event
        out.append(event)
        assert len(out) < 100_000, "the codec kept returning frames"


def feed(data: bytes, cuts: list[int], eof: bool, max_frame_size: int = LIMIT,
         ) -> tuple[list[Any], Sentinel | str]:
    """Feed ``data`` cut at ``cuts`` (then the end of the stream if ``eof``), reading frames
    after every piece, as a connection would; stop at the first error."""
    codec = Codec(max_frame_size=max_frame_size)
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    got: list[Any] = []
    for start, end in itertools.pairwise(bounds):
        if end > start:
            codec.receive_data(data[start:end])
        frames_now, stop = drain(codec)
        got.extend(frames_now)
        if isinstance(stop, str):
            return got, stop
    if eof:
        codec.receive_data(b"")
        frames_now, stop = drain(codec)
        got.extend(frames_now)
        return got, stop
    return got, NEED_DATA


# -- round trips ------------------------------------------------------------------------------


@FAST
@given(message=messages(), seq=seqs, to=names)
def test_any_valid_message_survives_the_round_trip(message: SocketMessage, seq: int | None,
                                                   to: str | None) -> None:
    check_data(message.data)  # the generator keeps within the protocol's limits
    frame = fr.MessageFrame(message=message, seq=seq, to=to)
    codec = Codec(max_frame_size=LIMIT)
    data = codec.send(frame)
    codec.receive_data(data)
    back = codec.next_event()
    assert back == frame
    assert isinstance(back, fr.MessageFrame)
    assert back.message.as_dict() == message.as_dict()
    assert codec.next_event() is NEED_DATA and codec.buffered == 0
    # The hub relays what it re-encodes from the decoded message: the same bytes again.
    assert codec.pack_map(fr.message_to_map(back.message)) == \
        codec.pack_map(fr.message_to_map(message))


@FAST
@given(frame=frames)
def test_any_frame_of_any_kind_survives_the_round_trip(frame: fr.Frame) -> None:
    codec = Codec(max_frame_size=LIMIT)
    codec.receive_data(codec.send(frame))
    assert codec.next_event() == frame


@FAST
@given(message=messages(), limit=st.integers(min_value=64, max_value=4096))
def test_encoding_refuses_exactly_the_frames_over_the_limit(message: SocketMessage,
                                                              limit: int) -> None:
    frame = fr.MessageFrame(message=message)
    size = len(Codec(max_frame_size=LIMIT).send(frame)) - 4
    codec = Codec(max_frame_size=limit)
    try:
        data = codec.send(frame)
    except MessageError as exc:
        assert exc.code == "frame_too_large" and size > limit
        return
    assert size <= limit
    codec.receive_data(data)
    assert codec.next_event() == frame


# -- chunking ---------------------------------------------------------------------------------


@FAST
@given(sent=st.lists(frames, min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_chunking_of_any_frames_gives_the_same_frames(sent: list[fr.Frame],
                                                          cuts: list[int]) -> None:
    stream = b"".join(Codec(max_frame_size=LIMIT).send(f) for f in sent)
    got, stop = feed(stream, cuts, eof=True)
    assert got == sent
    assert stop is CLOSED


@FAST
@given(sent=st.lists(frames, min_size=1, max_size=5), index=st.integers(min_value=0),
       offset=st.integers(min_value=0), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_a_stream_ending_inside_a_frame_is_malformed_after_the_whole_frames(
        sent: list[fr.Frame], index: int, offset: int, cuts: list[int]) -> None:
    encoded = [Codec(max_frame_size=LIMIT).send(f) for f in sent]
    k = index % len(encoded)
    cut = 1 + offset % (len(encoded[k]) - 1)  # at least one byte of frame k, not all of it
    got, stop = feed(b"".join(encoded[:k]) + encoded[k][:cut], cuts, eof=True)
    assert got == sent[:k]
    assert stop == "malformed_frame"


# -- any bytes --------------------------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=20),
       eof=st.booleans(), limit=st.sampled_from([64, 300, 65536]))
def test_any_bytes_give_frames_or_a_message_error_whatever_the_cutting(
        data: bytes, cuts: list[int], eof: bool, limit: int) -> None:
    whole = feed(data, [], eof, limit)
    assert feed(data, cuts, eof, limit) == whole
    assert feed(data, list(range(len(data))), eof, limit) == whole  # one byte at a time


@FAST
@given(sent=st.lists(frames, max_size=4), noise=st.binary(min_size=1, max_size=300),
       cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_frames_before_noise_are_delivered_then_nothing_but_an_error(
        sent: list[fr.Frame], noise: bytes, cuts: list[int]) -> None:
    stream = b"".join(Codec(max_frame_size=LIMIT).send(f) for f in sent)
    got, stop = feed(stream + noise, cuts, eof=True)
    assert got[:len(sent)] == sent  # the noise cannot take back what came before it
    assert stop is CLOSED or isinstance(stop, str)


@FAST
@given(payload=st.binary(max_size=500))
def test_any_payload_in_an_honest_frame_is_a_frame_or_a_message_error(payload: bytes) -> None:
    codec = Codec()
    codec.receive_data(len(payload).to_bytes(4, "big") + payload)
    try:
        frame = codec.next_event()
    except MessageError as exc:
        assert exc.code in CODES
        return
    assert not isinstance(frame, Sentinel)
    # Whatever was accepted can be sent back and is read the same way again.
    again = Codec(max_frame_size=LIMIT)
    again.receive_data(again.send(frame))
    assert again.next_event() == frame or _has_nan(frame)


@FAST
@given(value=json_values | st.binary() | st.builds(msgpack.ExtType, st.integers(0, 127),
                                                    st.binary(max_size=4)),
       key=st.sampled_from(["kind", "data", "event_name", "seq", "types", "x"]),
       kind=st.sampled_from(["hello", "message", "ack", "error", "stats", "ping", "pong",
                             "welcome", "zzz"]))
def test_any_map_a_peer_may_send_is_a_frame_or_a_message_error(value: Any, key: str,
                                                               kind: str) -> None:
    m = {"kind": kind, "version": 1, "event_name": "ev", "timestamp_ms": 1,
         "timestamp_iso": "", "message_type": "data", "data": {}, "seq": 1, "client_id": "c1",
         "code": "x", key: value}
    body = msgpack.packb(m, use_bin_type=True)
    codec = Codec()
    codec.receive_data(len(body).to_bytes(4, "big") + body)
    try:
        codec.next_event()
    except MessageError as exc:
        assert exc.code in CODES


def _has_nan(frame: Any) -> bool:
    packed = msgpack.packb(fr.frame_to_map(frame), use_bin_type=True)
    return any(isinstance(v, float) and v != v
               for v in _walk(msgpack.unpackb(packed, raw=False, strict_map_key=False)))


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _walk(v)]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return [value]


# -- the fuzz targets keep working --------------------------------------------------------------

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["fuzz_codec.py", "fuzz_handshake.py"])
def test_fuzz_target_replays_its_seeds(target: str) -> None:
    done = subprocess.run([sys.executable, str(FUZZ / target), "--replay"],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed" in done.stdout, done.stdout

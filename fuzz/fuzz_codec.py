"""Fuzz target: bytes from a peer into the codec and the frame validation.

The first byte of an input picks the frame size limit and how the rest is cut into reads; the
rest is the byte stream. Checked for every input:

- the codec raises nothing but MessageError (with a documented code);
- the outcome (the frames, then what stopped the decoding) is the same whether the stream
  arrives in one piece or cut into reads;
- every frame it returns can be encoded again and reads back as the same frame;
- frame_from_map, given whatever MessagePack object the bytes hold (even maps with integer
  keys, which the codec itself refuses earlier), returns a frame or raises MessageError.

Run it with ``make fuzz`` (atheris), or ``python fuzz/fuzz_codec.py --replay [FILES]``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from fuzzlib import instrumented, main

with instrumented():
    import msgpack

    from sockcli.protocol import frames as fr
    from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec, Sentinel
    from sockcli.exceptions import MessageError

LIMITS = (64, 256, 4096, 65536)
CODES = {"malformed_frame", "frame_too_large", "invalid_message"}
BIG = 1 << 24


def _decode(stream: bytes, limit: int, sizes: list[int]) -> tuple[list[bytes], Any]:
    """Frames (as canonical bytes) and what stopped the decoding, reading ``stream`` in pieces
    of ``sizes`` (cycled), then the end of the stream."""
    codec = Codec(max_frame_size=limit)
    out: list[bytes] = []
    pos, i = 0, 0
    while True:
        if pos < len(stream):
            step = sizes[i % len(sizes)]
            codec.receive_data(stream[pos:pos + step])
            pos += step
            i += 1
        else:
            codec.receive_data(b"")
        while True:
            try:
                event = codec.next_event()
            except MessageError as exc:
                if exc.code not in CODES:
                    raise AssertionError(f"undocumented error code {exc.code!r}") from exc
                return out, exc.code
            if isinstance(event, Sentinel):
                break
            out.append(_check_frame(event))
        if event is CLOSED:
            return out, CLOSED
        assert event is NEED_DATA


def _check_frame(frame: Any) -> bytes:
    """The frame encodes again and reads back as itself; returns its canonical bytes."""
    codec = Codec(max_frame_size=BIG)
    data = codec.send(frame)
    codec.receive_data(data)
    back = codec.next_event()
    again = codec.send(back)  # type: ignore[arg-type]
    if again != data:
        raise AssertionError(f"{frame!r} reads back as {back!r}")
    if back != frame and not _has_nan(data):
        raise AssertionError(f"{frame!r} reads back as {back!r}")
    return data


def _has_nan(data: bytes) -> bool:
    def walk(v: Any) -> bool:
        if isinstance(v, float):
            return math.isnan(v)
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        if isinstance(v, list):
            return any(walk(x) for x in v)
        return False

    return walk(msgpack.unpackb(data[4:], raw=False, strict_map_key=False))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    control, stream = data[0], data[1:]
    limit = LIMITS[control & 3]
    sizes = [1 + (b % 31) for b in stream[:8]] or [1]
    if control & 4:
        sizes = [1]  # one byte at a time
    whole = _decode(stream, limit, [max(1, len(stream))])
    cut = _decode(stream, limit, sizes)
    if whole != cut:
        raise AssertionError(f"cutting changed the outcome: {whole!r} != {cut!r}")
    # frame_from_map on whatever object the bytes hold, past the codec's own checks.
    try:
        obj = msgpack.unpackb(stream, raw=False, strict_map_key=False, timestamp=0)
    except Exception:  # not MessagePack at all: msgpack's business, not ours
        return
    try:
        frame = fr.frame_from_map(obj)
    except MessageError as exc:
        if exc.code not in CODES:
            raise AssertionError(f"undocumented error code {exc.code!r}") from exc
        return
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        raise AssertionError(f"{obj!r} was taken for a frame: {frame!r}")


def _seeds() -> list[bytes]:
    from sockcli.types import MessageType, SocketMessage

    codec = Codec()
    message = SocketMessage("ev", timestamp_ms=1700000000000,
                            timestamp_iso="2023-11-14T22:13:20.000+00:00",
                            data={"p": [1, 2.5, None, True, "é", {"x": {}}]})
    stream = b"".join(codec.send(f) for f in [
        fr.Hello(subscribe=True, types=frozenset({MessageType.DATA}), name="bar"),
        fr.MessageFrame(message=message, seq=1, to="bar"),
        fr.Ack(seq=1),
        fr.ErrorFrame(code="slow_consumer", reason="r", seq=2, fatal=True),
        fr.StatsRequest(), fr.Stats(values={"clients": 1}),
        fr.Ping(token=3), fr.Pong(token=3),
        fr.UnknownFrame(kind="replay", fields={"since": 1}),
        fr.Welcome(client_id="c1", event_name="ev", max_frame_size=65536),
    ])
    return [
        b"\x03" + stream,
        b"\x07" + stream,
        b"\x00" + stream[:200],
        b"\x03" + stream[:-3],
        b"\x03\xff\xff\xff\xff",
        b"\x03\x00\x00\x00\x00",
        b"\x03\x00\x00\x00\x01\xc1",
        b"\x03" + codec.pack_map({"kind": "message", "data": {"e": msgpack.ExtType(5, b"")}}),
        b"\x03" + msgpack.packb({1: 2, "kind": "ping"}),
    ]


if __name__ == "__main__":
    main("fuzz_codec", test_one_input, _seeds())
    sys.exit(0)

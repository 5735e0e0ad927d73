"""Fuzz target: bytes as the first thing a real hub receives on a new connection.

One hub (Unix transport, in this process, its own loop thread) serves every input: each input
is written to a fresh connection, the connection is half-closed, and everything the hub answers
is read until it closes. Checked for every input:

- the hub answers with well-formed frames only and closes cleanly (no frame cut short);
- its first answer is what the protocol says, as predicted from the same bytes by the pure
  codec: nothing for an empty input, a welcome for a valid hello of version 1, else one fatal
  error of the predicted code (``malformed_frame``, ``frame_too_large``, ``invalid_message``,
  ``handshake_required``, ``unsupported_version``);
- a fatal error is the last frame; acknowledgements never go backwards;
- the hub is still running afterwards and has logged no internal error.

Run it with ``make fuzz`` (atheris), or ``python fuzz/fuzz_handshake.py --replay [FILES]``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from fuzzlib import instrumented, main

with instrumented():
    import msgpack

    from sockcli.protocol import frames as fr
    from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
    from sockcli.exceptions import MessageError
    from sockcli.hub.unix import UnixSocketServer

MAX_FRAME = 4096


class _Errors(logging.Handler):
    """Collects what the hub logs at ERROR: a caught bug, which the fuzzer must see."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


_errors = _Errors()
_hub: Any = None
_dir = ""


def _start_hub() -> Any:
    global _hub, _dir
    if _hub is None:
        _dir = os.environ.get("FUZZ_RUN_DIR") or tempfile.mkdtemp(prefix="sk-fuzz-", dir="/tmp")
        os.makedirs(_dir, mode=0o700, exist_ok=True)
        os.chmod(_dir, 0o700)
        logger = logging.getLogger("sockcli.hub")
        logger.addHandler(_errors)
        logger.propagate = False  # the warnings of dropped peers are expected: not on stderr
        _hub = UnixSocketServer("fz", socket_dir=_dir, buffer_size=MAX_FRAME,
                                message_queue_size=0, timezone="UTC")
        _hub.start(blocking=False)
    return _hub


def _expected_first(data: bytes) -> str | None:
    """What the hub must answer first, from the pure codec: 'welcome', an error code, or None
    (nothing at all)."""
    codec = Codec(max_frame_size=MAX_FRAME)
    codec.receive_data(data)
    codec.receive_data(b"")
    try:
        event = codec.next_event()
    except MessageError as exc:
        return exc.code
    if event is CLOSED:
        return None
    if not isinstance(event, fr.Hello):
        return fr.ErrorCode.HANDSHAKE_REQUIRED
    if event.version != fr.PROTOCOL_VERSION:
        return fr.ErrorCode.UNSUPPORTED_VERSION
    return "welcome"


def _exchange(address: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the hub refused early and closed; what it said is still to be read
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_one_input(data: bytes) -> None:
    hub = _start_hub()
    answer = _exchange(hub.address, data)
    codec = Codec(max_frame_size=1 << 20)
    codec.receive_data(answer)
    codec.receive_data(b"")
    frames: list[Any] = []
    try:
        while (event := codec.next_event()) is not CLOSED:
            assert event is not NEED_DATA
            frames.append(event)
    except MessageError as exc:
        raise AssertionError(f"the hub's answer is not well-formed: {exc}: {answer!r}") from exc
    expected = _expected_first(data)
    first = frames[0] if frames else None
    if expected is None:
        if frames:
            raise AssertionError(f"answered {frames!r} to an empty stream")
    elif expected == "welcome":
        if not isinstance(first, fr.Welcome):
            raise AssertionError(f"a valid hello got {first!r}, not a welcome")
    elif not (isinstance(first, fr.ErrorFrame) and first.fatal and first.code == expected):
        raise AssertionError(f"expected a fatal {expected} error, got {frames!r}")
    acked = -1
    for i, frame in enumerate(frames):
        if isinstance(frame, fr.ErrorFrame) and frame.fatal and i != len(frames) - 1:
            raise AssertionError(f"frames after a fatal error: {frames!r}")
        if isinstance(frame, fr.Ack):
            if frame.seq < acked:
                raise AssertionError(f"acknowledgements went backwards: {frames!r}")
            acked = frame.seq
        if i > 0 and isinstance(frame, fr.Welcome | fr.MessageFrame | fr.Ping):
            raise AssertionError(f"unexpected {frame!r} in {frames!r}")
    if not hub.is_running():
        raise AssertionError("the hub stopped")
    if _errors.records:
        raise AssertionError("the hub logged an internal error:\n" + "\n".join(_errors.records))


def _seeds() -> list[bytes]:
    from sockcli.types import MessageType, SocketMessage

    codec = Codec()
    hello = codec.send(fr.Hello(subscribe=True, types=frozenset({MessageType.DATA}), name="b"))
    message = fr.MessageFrame(message=SocketMessage(
        "fz", timestamp_ms=1700000000000, timestamp_iso="", data={"p": [1, "é", {}]}), seq=1)
    other = fr.MessageFrame(message=SocketMessage("ev", data={}), seq=2, to="nobody")
    return [
        b"",
        hello,
        codec.send(fr.Hello()) + codec.send(message) + codec.send(other),
        hello + codec.send(fr.StatsRequest()) + codec.send(fr.Ping(token=7)),
        hello + codec.send(fr.UnknownFrame(kind="replay", fields={})) + codec.send(fr.Ack(seq=1)),
        hello + codec.send(fr.Hello()),
        codec.send(fr.Hello(version=2)),
        codec.send(message),
        hello[:-1],
        hello + b"\x00\x00",
        b"\xff\xff\xff\xff",
        b"\x00\x00\x00\x01\xc1",
        codec.pack_map({"kind": "hello", "version": 1, "types": ["nope"]}),
        codec.pack_map({"kind": "hello", "version": True}),
        hello + codec.pack_map({"kind": "message", "data": {"e": msgpack.ExtType(3, b"")}}),
    ]


if __name__ == "__main__":
    try:
        main("fuzz_handshake", test_one_input, _seeds())
    finally:  # replay only: a fuzzing run ends inside libFuzzer
        if _hub is not None:
            _hub.stop()
        if _dir and not os.environ.get("FUZZ_RUN_DIR"):
            shutil.rmtree(_dir, ignore_errors=True)
    sys.exit(0)

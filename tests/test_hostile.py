"""Hostile and malformed input, over both transports (the ``transport`` fixture).

Every test runs :class:`Traffic` beside the offender: a well-behaved sender streams numbered,
acknowledged messages to a well-behaved listener for the whole test, and at the end every one
of them must have arrived, in order, exactly once, and the hub must have accepted nothing
else. The offender must get a fatal error frame (or a non-fatal one, where the protocol says
so) and then be disconnected; the hub must stay up and log no internal error.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from sockcli import SocketMessage
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import Codec
from tests.helpers import RawPeer, wait_until

TS = 1700000000000
ISO = "2023-11-14T22:13:20.000+00:00"
DROP_CODES = {"malformed_frame", "frame_too_large", "invalid_message", "handshake_required"}


@pytest.fixture(autouse=True)
def no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a peer sends, the hub never logs an error of its own (a caught bug)."""
    caplog.set_level(logging.WARNING, logger="sockcli")
    yield
    errors = [r.getMessage() for r in caplog.records
              if r.name.startswith("sockcli.hub") and r.levelno >= logging.ERROR]
    assert errors == [], errors


class Traffic:
    """A well-behaved sender streaming numbered messages, each acknowledged, to a well-behaved
    listener, in background threads, while the test misbehaves beside them."""

    def __init__(self, hub: Any, make_client: Any) -> None:
        self.hub = hub
        self.listener = make_client(name="bystander", types=["data"])
        self.sender = make_client(subscribe=False)
        wait_until(lambda: len(hub.get_connected_clients()) == 2, what="the bystanders")
        self.sent = 0
        self.received: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, name="traffic-send"),
                         threading.Thread(target=self._receive, name="traffic-receive")]
        for thread in self._threads:
            thread.start()
        self.wait_for(10)  # flowing before the test starts misbehaving

    def _send(self) -> None:
        try:
            while not self._stop.is_set():
                self.sender.send(SocketMessage("ev", data={"n": self.sent}), timeout=10)
                self.sent += 1
            self.sender.send(SocketMessage("ev", data={"end": True}), timeout=10)
        except BaseException as exc:  # reported by finish()
            self.errors.append(exc)

    def _receive(self) -> None:
        try:
            while True:
                message = self.listener.receive(timeout=20)
                if message.data.get("end"):
                    return
                self.received.append(message.data["n"])
        except BaseException as exc:
            self.errors.append(exc)

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.received) >= count or self.errors, timeout=10,
                   what=f"{count} bystander messages")
        assert self.errors == []

    def finish(self, accepted: int = 0) -> int:
        """Stop after 10 more messages; check every one arrived, in order, once, and that the
        hub accepted no other message than these and ``accepted`` more. Returns the number of
        messages streamed."""
        self.wait_for(len(self.received) + 10)  # still flowing after the misbehaviour
        self._stop.set()
        for thread in self._threads:
            thread.join(20)
        assert not any(t.is_alive() for t in self._threads)
        assert self.errors == []
        assert self.received == list(range(self.sent))
        assert self.hub.is_running()
        stats = self.hub.stats()
        # Nothing the offenders sent was accepted: only the bystander's messages and its end.
        assert stats["received"] == self.sent + 1 + accepted
        assert stats["dropped_clients"] == 0
        assert {c.name for c in self.hub.get_connected_clients()} >= {"bystander"}
        return self.sent


@pytest.fixture
def traffic(make_hub: Any, make_client: Any) -> Any:
    """``traffic(**hub_settings)``: a started hub and its :class:`Traffic`."""

    def start(**settings: Any) -> Traffic:
        hub = make_hub(**settings)
        return Traffic(hub, make_client)

    return start


def open_peer(hub: Any, hello: bool, **kwargs: Any) -> RawPeer:
    peer = RawPeer.for_hub(hub, **kwargs)
    if hello:
        peer.hello(subscribe=False, name="offender")
    return peer


def outcome(peer: RawPeer) -> list[fr.Frame]:
    """Every frame the hub sends ``peer`` until it closes the connection."""
    frames: list[fr.Frame] = []
    while True:
        frame = peer.next_frame()
        if frame is None:
            return frames
        frames.append(frame)


def assert_dropped(peer: RawPeer, codes: set[str] | str) -> fr.ErrorFrame:
    """The hub ends ``peer`` with a fatal error of one of ``codes``, and closes."""
    codes = {codes} if isinstance(codes, str) else codes
    try:
        frames = outcome(peer)
    finally:
        peer.close()
    assert frames, "the hub closed the connection without saying why"
    *before, last = frames
    assert isinstance(last, fr.ErrorFrame) and last.fatal, frames
    assert last.code in codes, last
    assert not any(isinstance(f, fr.ErrorFrame) and f.fatal for f in before), frames
    return last


def framed(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def packed(obj: Any) -> bytes:
    return framed(msgpack.packb(obj, use_bin_type=True))


def message_map(**overrides: Any) -> dict[str, Any]:
    m = {"kind": "message", "event_name": "ev", "timestamp_ms": TS, "timestamp_iso": ISO,
         "message_type": "data", "data": {"p": 1}}
    m.update(overrides)
    return {k: v for k, v in m.items() if v is not ...}


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"d": value}
    return value


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- random bytes -----------------------------------------------------------------------------


def random_blobs(seed: int) -> list[bytes]:
    """Pure noise, noise behind a small honest length (complete or not), and a frame of noise
    announcing more than it sends."""
    rng = random.Random(seed)
    blobs = []
    for i in range(30):
        size = rng.choice([1, 3, 4, 5, 64, 1000, 20_000])
        noise = rng.randbytes(size)
        if i % 3 == 0:
            blobs.append(noise)
        elif i % 3 == 1:
            blobs.append(framed(noise[:60_000]))
        else:
            blobs.append(struct.pack(">I", len(noise) + rng.randint(1, 100)) + noise)
    return blobs


@pytest.mark.timeout(30)
@pytest.mark.parametrize("hello", [False, True], ids=["before-hello", "after-hello"])
def test_random_bytes(traffic, hello: bool) -> None:
    t = traffic(handshake_timeout=1.0, frame_timeout=1.0)
    peers = []
    for blob in random_blobs(seed=7 + hello):
        peer = open_peer(t.hub, hello, timeout=10)
        peer.send_raw(blob)
        peers.append(peer)
    # All at once: the incomplete ones are dropped by their deadlines, in parallel.
    codes = {assert_dropped(peer, DROP_CODES).code for peer in peers}
    assert "frame_too_large" in codes and "malformed_frame" in codes, codes
    t.finish()
    wait_until(lambda: len(t.hub.get_connected_clients()) == 2, what="offenders forgotten")


# -- a length prefix announcing gigabytes ------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("hello", [False, True], ids=["before-hello", "after-hello"])
@pytest.mark.parametrize("size", [2**30, 2**31, 2**32 - 1])
def test_length_prefix_announcing_gigabytes(traffic, hello: bool, size: int) -> None:
    t = traffic()
    peer = open_peer(t.hub, hello)
    started = time.monotonic()
    peer.send_raw(struct.pack(">I", size))  # refused on these four bytes alone
    last = assert_dropped(peer, "frame_too_large")
    assert str(size) in last.reason
    assert time.monotonic() - started < 2.0
    t.finish()


@pytest.mark.timeout(30)
def test_payload_streamed_after_a_refused_prefix_is_not_buffered(traffic) -> None:
    t = traffic()
    peer = open_peer(t.hub, True)
    before = fd_count()  # with both ends of the offender's connection
    stop = threading.Event()

    def pour() -> None:  # the gigabytes the prefix announced, while the hub says no
        junk = b"\xee" * 65536
        try:
            peer.sock.sendall(struct.pack(">I", 2**31))
            while not stop.is_set():
                peer.sock.sendall(junk)
        except OSError:  # the hub closed the connection
            return

    pourer = threading.Thread(target=pour)
    pourer.start()
    try:
        frames = outcome(peer)
    finally:
        stop.set()
        pourer.join(10)
        peer.close()
    assert not pourer.is_alive()
    assert len(frames) == 1 and isinstance(frames[0], fr.ErrorFrame), frames
    assert (frames[0].code, frames[0].fatal) == ("frame_too_large", True)
    assert "2147483648" in frames[0].reason
    t.finish()
    wait_until(lambda: fd_count() <= before - 2, what="both ends of the offender closed")


# -- a frame cut off mid-way, then silence (frame_timeout) ---------------------------------


def test_frame_timeout_setting(monkeypatch: pytest.MonkeyPatch, sock_dir: Any) -> None:
    from sockcli import create_server
    from sockcli.config.loader import reset_settings_cache
    from sockcli.exceptions import ValidationError

    assert create_server("unix", "ev", socket_dir=sock_dir).config.frame_timeout == 10.0
    monkeypatch.setenv("SOCKCLI_FRAME_TIMEOUT", "2.5")
    reset_settings_cache()
    assert create_server("unix", "ev", socket_dir=sock_dir).config.frame_timeout == 2.5
    for bad in (0, -1, 86401):
        with pytest.raises(ValidationError, match="frame_timeout"):
            create_server("unix", "ev", socket_dir=sock_dir, frame_timeout=bad)


HELLO_BYTES = Codec().send(fr.Hello(subscribe=False))
MESSAGE_BYTES = Codec().send(fr.MessageFrame(message=SocketMessage("ev", data={"n": "cut"})))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cut", [1, 3, 4, 20, len(MESSAGE_BYTES) - 1],
                         ids=["1-byte-of-prefix", "3-bytes-of-prefix", "prefix-only",
                              "half-payload", "all-but-one-byte"])
def test_partial_frame_then_silence_is_dropped_after_frame_timeout(traffic, cut: int) -> None:
    t = traffic(frame_timeout=0.5)
    idle = open_peer(t.hub, True)  # says hello, then nothing at all: must be kept
    peer = open_peer(t.hub, True)
    peer.send_raw(MESSAGE_BYTES[:cut])
    started = time.monotonic()
    last = assert_dropped(peer, "malformed_frame")
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 3.0, elapsed
    assert "frame_timeout" in last.reason and f"{cut} bytes" in last.reason, last.reason
    # The idle connection has been silent for longer than frame_timeout: it is still served.
    idle.send_frame(fr.Ping(token=5))
    assert idle.next_frame() == fr.Pong(token=5)
    assert "offender" in {c.name for c in t.hub.get_connected_clients()}
    idle.close()
    t.finish()


@pytest.mark.timeout(30)
def test_partial_hello_is_dropped_after_frame_timeout_before_handshake_timeout(traffic) -> None:
    t = traffic(frame_timeout=0.5, handshake_timeout=30)
    peer = open_peer(t.hub, False)
    peer.send_raw(HELLO_BYTES[:-2])
    started = time.monotonic()
    assert_dropped(peer, "malformed_frame")
    assert time.monotonic() - started < 3.0
    t.finish()


@pytest.mark.timeout(30)
def test_trickling_bytes_do_not_extend_the_frame_deadline(traffic) -> None:
    t = traffic(frame_timeout=1.0)
    peer = open_peer(t.hub, True)
    stop = threading.Event()
    started = time.monotonic()

    def trickle() -> None:  # one byte every 0.1 s: the frame would take 10 s to arrive
        try:
            for i in range(len(MESSAGE_BYTES) - 1):
                peer.sock.sendall(MESSAGE_BYTES[i:i + 1])
                if stop.wait(0.1):
                    return
        except OSError:
            return

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        assert_dropped(peer, "malformed_frame")
    finally:
        stop.set()
        trickler.join(10)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0, elapsed
    t.finish()


@pytest.mark.timeout(30)
def test_reads_that_end_mid_frame_while_streaming_are_not_dropped(traffic, make_client) -> None:
    t = traffic(frame_timeout=0.5)
    listener = make_client(name="watcher", types=["control"])  # not the bystanders' data
    peer = open_peer(t.hub, True)
    count = 15
    stream = b"".join(Codec().send(fr.MessageFrame(message=SocketMessage(
        "ev", message_type="control", data={"n": f"s{i:02d}", "pad": "x" * 50})))
        for i in range(count))
    size = len(stream) // count  # every frame has this size
    assert len(stream) == size * count
    pace = threading.Event()
    # Every write finishes one frame and starts the next: the hub always holds part of a
    # frame, for 1.5 s in all (3 x frame_timeout), yet each frame completes in 0.1 s.
    for i in range(count):
        start = 0 if i == 0 else i * size + size // 2
        peer.send_raw(stream[start:(i + 1) * size + size // 2])
        pace.wait(0.1)
    got = [listener.receive(timeout=5).data["n"] for _ in range(count)]
    assert got == [f"s{i:02d}" for i in range(count)]
    peer.send_frame(fr.Ping(token=9))
    assert peer.next_frame() == fr.Pong(token=9)
    peer.close()
    t.finish(accepted=count)


# -- valid MessagePack of the wrong shape ------------------------------------------------------


BAD_UTF8_VALUE = framed(b"\x81\xa4kind\xa2\xff\xfe")
BAD_UTF8_KEY = framed(b"\x82\xa4kind\xa4ping\xa2\xc3\x28\x01")

#: (id, bytes, code, fatal, sent before the hello?)
WRONG_SHAPES: list[tuple[str, bytes, str, bool, bool]] = [
    ("array", packed([1, 2]), "malformed_frame", True, False),
    ("integer", packed(5), "malformed_frame", True, False),
    ("string", packed("hello"), "malformed_frame", True, False),
    ("nil", packed(None), "malformed_frame", True, False),
    ("no-kind", packed({"x": 1}), "malformed_frame", True, False),
    ("kind-not-string", packed({"kind": 1}), "malformed_frame", True, False),
    ("empty-payload", framed(b""), "malformed_frame", True, False),
    ("trailing-bytes", framed(msgpack.packb({"kind": "ping"}) + b"\x01"), "malformed_frame",
     True, False),
    ("invalid-utf8-value", BAD_UTF8_VALUE, "malformed_frame", True, False),
    ("invalid-utf8-key", BAD_UTF8_KEY, "malformed_frame", True, False),
    ("integer-key", packed({"kind": "ping", 1: 2}), "malformed_frame", True, False),
    ("nesting-2000", framed(b"\x82\xa4kind\xa4ping\xa1x" + b"\x81\xa1d" * 2000 + b"\x80"),
     "malformed_frame", True, False),
    ("message-without-data", packed(message_map(data=...)), "invalid_message", True, False),
    ("message-without-event", packed(message_map(event_name=...)), "invalid_message", True,
     False),
    ("timestamp-as-string", packed(message_map(timestamp_ms="now")), "invalid_message", True,
     False),
    ("timestamp-as-bool", packed(message_map(timestamp_ms=True)), "invalid_message", True,
     False),
    ("data-as-list", packed(message_map(data=[1])), "invalid_message", True, False),
    ("seq-as-bool", packed(message_map(seq=True)), "invalid_message", True, False),
    ("seq-negative", packed(message_map(seq=-1)), "invalid_message", True, False),
    ("seq-too-large", packed(message_map(seq=2**63)), "invalid_message", True, False),
    # A type name the hub does not know (another deployment's custom type): that message only.
    ("unknown-message-type", packed(message_map(message_type="alert")), "invalid_message",
     False, False),
    ("not-a-type-name", packed(message_map(message_type="no such")), "invalid_message",
     True, False),
    ("event-name-path", packed(message_map(event_name="../ev")), "invalid_message", True,
     False),
    ("data-nested-33", packed(message_map(data=nested(33))), "invalid_message", True, False),
    ("data-bin-value", packed(message_map(data={"b": b"\x00"})), "invalid_message", True,
     False),
    ("data-ext-type", packed(message_map(data={"e": msgpack.ExtType(5, b"x")})),
     "invalid_message", True, False),
    ("data-timestamp-ext", packed(message_map(data={"t": msgpack.Timestamp(1, 0)})),
     "invalid_message", True, False),
    ("ext-type-in-unknown-key", packed({"kind": "ping", "z": msgpack.ExtType(1, b"")}),
     "invalid_message", True, False),
    ("ping-token-string", packed({"kind": "ping", "token": "x"}), "invalid_message", True,
     False),
    ("hello-without-version", packed({"kind": "hello"}), "invalid_message", True, True),
    ("hello-version-string", packed({"kind": "hello", "version": "1"}), "invalid_message",
     True, True),
    ("hello-types-not-list", packed({"kind": "hello", "version": 1, "types": "data"}),
     "invalid_message", True, True),
    ("hello-unknown-type", packed({"kind": "hello", "version": 1, "types": ["news"]}),
     "invalid_message", True, True),
    ("hello-name-too-long", packed({"kind": "hello", "version": 1, "name": "n" * 65}),
     "invalid_message", True, True),
    ("hello-subscribe-nil", packed({"kind": "hello", "version": 1, "subscribe": None}),
     "invalid_message", True, True),
    ("hello-version-2", packed({"kind": "hello", "version": 2}), "unsupported_version", True,
     True),
    ("message-before-hello", packed(message_map(seq=1)), "handshake_required", True, True),
    ("unknown-kind-before-hello", packed({"kind": "replay"}), "handshake_required", True, True),
    ("garbage-before-hello", framed(b"\xc1"), "malformed_frame", True, True),
    # Not fatal: refused, and the connection goes on.
    ("unknown-kind", packed({"kind": "replay", "since": 3}), "unknown_kind", False, False),
    ("other-event", packed(message_map(event_name="other", seq=4)), "invalid_message", False,
     False),
    ("second-hello", packed({"kind": "hello", "version": 1}), "invalid_message", False, False),
    ("ack-from-client", packed({"kind": "ack", "seq": 1}), "invalid_message", False, False),
    ("error-from-client", packed({"kind": "error", "code": "x"}), "invalid_message", False,
     False),
    ("unicast-to-nobody", packed(message_map(to="nobody", seq=5)), "unknown_recipient", False,
     False),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("data", "code", "fatal", "first"),
                         [case[1:] for case in WRONG_SHAPES],
                         ids=[case[0] for case in WRONG_SHAPES])
def test_wrong_shape(traffic, data: bytes, code: str, fatal: bool, first: bool) -> None:
    t = traffic()
    peer = open_peer(t.hub, hello=not first)
    peer.send_raw(data)
    if fatal:
        assert_dropped(peer, code)
    else:
        frame = peer.next_frame()
        assert isinstance(frame, fr.ErrorFrame) and not frame.fatal, frame
        assert frame.code == code
        sent = msgpack.unpackb(data[4:])
        seq = sent.get("seq") if sent["kind"] == "message" else None
        assert frame.seq == seq
        if seq is not None:  # a refused message still counts as handled
            assert peer.next_frame() == fr.Ack(seq=seq)
        peer.send_frame(fr.Ping(token=1))
        assert peer.next_frame() == fr.Pong(token=1)
        peer.close()
    t.finish()


# -- a handshake that never comes ------------------------------------------------------------


@pytest.mark.timeout(30)
def test_many_connections_that_never_finish_the_handshake(traffic) -> None:
    t = traffic(handshake_timeout=0.5, frame_timeout=30)
    before = fd_count()
    silent = [open_peer(t.hub, False, timeout=10) for _ in range(100)]
    partial = [open_peer(t.hub, False, timeout=10) for _ in range(20)]
    for peer in partial:
        peer.send_raw(HELLO_BYTES[:7])
    started = time.monotonic()
    for peer in silent + partial:
        assert_dropped(peer, "handshake_required")
    assert time.monotonic() - started < 4.0
    assert len(t.hub.get_connected_clients()) == 2
    t.finish()
    wait_until(lambda: fd_count() <= before, what="every descriptor closed")


# -- thousands of connections opened and dropped ------------------------------------------


CHURN = 3000


def _churn_once(hub: Any, i: int) -> None:
    """One short-lived connection; how it leaves depends on ``i``."""
    peer = RawPeer.for_hub(hub, timeout=10)
    way = i % 6
    try:
        if way == 0:
            return  # connect and close at once
        if way == 1:
            peer.send_raw(HELLO_BYTES[:5])  # leave in the middle of the hello
            return
        if way == 5 and peer.sock.family == socket.AF_INET:
            # An abortive close: a reset instead of a FIN, right after the hello.
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.send_frame(fr.Hello(subscribe=way in (4, 5), name=f"churn{i}"))
        if way == 2:
            return  # leave before reading the welcome
        assert isinstance(peer.next_frame(), fr.Welcome)  # a subscriber leaves mid-stream
    finally:
        peer.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_thousands_of_connections_opened_and_dropped(traffic, transport: str) -> None:
    t = traffic(insecure=True)  # the churning peers say hello only: no per-hub secret
    before = fd_count()
    started = time.perf_counter()
    for i in range(CHURN):
        _churn_once(t.hub, i)
    churn_s = time.perf_counter() - started
    sent = t.finish()
    wait_until(lambda: t.hub.stats()["clients"] == 2, timeout=10,
               what="the hub's count back to the two bystanders")
    wait_until(lambda: fd_count() <= before, timeout=10,
               what=f"descriptors back to {before} (now {fd_count()})")
    stats = t.hub.stats()
    assert stats["clients"] == 2 and stats["subscribers"] == 1
    assert stats["refused_connections"] == 0
    print(f"\n[churn {transport}] {CHURN} connect/drop cycles in {churn_s:.2f} s "
          f"({CHURN / churn_s:,.0f}/s) while {sent} acknowledged messages streamed beside "
          f"them, all received in order; descriptors {before} before and after")

"""Batch frames: many messages of one event, type and instant in one frame (docs/protocol.md,
"Batches"). What a batch means is exactly what its messages sent one by one mean: these tests
hold the hub, the clients and the CLI to that, with real sockets and real processes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from sockcli.exceptions import MessageError
from sockcli.protocol import frames as fr
from sockcli.protocol.batches import MAX_ITEMS, BatchBuilder
from sockcli.protocol.codec import CLOSED, Codec
from sockcli.types import MessageType, SocketMessage
from tests.helpers import RawPeer, wait_until

ISO = "2023-11-14T22:13:20.000+00:00"


def batch_map(items: list[dict[str, Any]], *, seq: int | None = 1, event: str = "ev",
              kind: str = "data", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"kind": "batch", "event_name": event, "timestamp_ms": 1_700_000_000_000,
                         "timestamp_iso": ISO, "message_type": kind, "items": items, **extra}
    if seq is not None:
        m["seq"] = seq
    return m


def raw_batch(items: list[dict[str, Any]], **kwargs: Any) -> bytes:
    return Codec().pack_map(batch_map(items, **kwargs))


def frames_until(peer: RawPeer, done: Callable[[list[fr.Frame]], bool]) -> list[fr.Frame]:
    got: list[fr.Frame] = []
    while not done(got):
        frame = peer.next_frame()
        assert frame is not None, f"the hub closed the connection after {got}"
        got.append(frame)
    return got


def singles(frames: list[fr.Frame]) -> list[dict[str, Any]]:
    return [f.message.data for f in frames if isinstance(f, fr.MessageFrame)]


# -- the frame ------------------------------------------------------------------------------


def test_a_batch_round_trips_and_keeps_its_order() -> None:
    items = [{"i": i} for i in range(5)]
    frame = fr.frame_from_map(batch_map(items, seq=7))
    assert isinstance(frame, fr.Batch)
    assert (frame.event_name, frame.message_type, frame.seq, frame.items) == \
        ("ev", MessageType.DATA, 7, items)
    assert fr.frame_from_map(fr.frame_to_map(frame)) == frame
    assert [m.data for m in frame.messages()] == items
    assert {m.timestamp_iso for m in frame.messages()} == {ISO}


@pytest.mark.parametrize(("change", "reason"), [
    ({"items": []}, "at least one item"),
    ({"items": [{"i": 1}, 3]}, "items must be maps, not int"),
    ({"items": [{"i": b"x"}]}, "data may hold only"),
    ({"to": "bar"}, "cannot carry 'to' or 'retain'"),
    ({"retain": "only"}, "cannot carry 'to' or 'retain'"),
    ({"seq": 2**63 - 1, "items": [{}, {}]}, "within 63 bits"),
    ({"event_name": "no/slash"}, "event name"),
])
def test_a_malformed_batch_is_refused_saying_why(change: dict[str, Any], reason: str) -> None:
    m = {**batch_map([{"i": 1}]), **change}
    if change.get("items") and "seq" not in change:  # the fast checks say it as plainly
        with pytest.raises(MessageError, match=reason):
            fr.batch_fields(m)
    else:  # not of the usual shape: the frame path explains
        assert fr.batch_fields(m) is None
    with pytest.raises(MessageError, match=reason) as caught:
        fr.frame_from_map(m)
    assert not isinstance(caught.value, fr.RefusedMessageError)


def test_a_batch_of_an_unknown_type_is_refused_whole_and_alone() -> None:
    with pytest.raises(fr.UnknownMessageTypeError) as caught:
        fr.frame_from_map(batch_map([{"i": 1}, {"i": 2}, {"i": 3}], seq=10, kind="telemetry"))
    assert (caught.value.seq, caught.value.count) == (10, 3)
    assert "a batch of 3 messages" in str(caught.value)


def test_hello_carries_the_batch_size_of_a_subscriber_only() -> None:
    hello = fr.frame_from_map({"kind": "hello", "version": 1, "subscribe": True, "batch": 4096})
    assert isinstance(hello, fr.Hello) and hello.batch == 4096
    assert fr.frame_to_map(hello)["batch"] == 4096
    sender = fr.frame_from_map({"kind": "hello", "version": 1, "batch": 4096})
    assert isinstance(sender, fr.Hello) and sender.batch == 0
    with pytest.raises(MessageError, match="frame size in bytes"):
        fr.frame_from_map({"kind": "hello", "version": 1, "subscribe": True, "batch": -1})


# -- the builder of the library's runs ------------------------------------------------------


def test_the_builder_makes_one_frame_per_run() -> None:
    builder = BatchBuilder(65536)
    key = ("ev", "data", 1_700_000_000_000, ISO)
    assert all(builder.add(key, seq, builder.pack({"i": seq})) is None for seq in range(1, 4))
    other = builder.add(("ev", "error", 1_700_000_000_000, ISO), 4, builder.pack({"i": 4}))
    gap = builder.add(("ev", "error", 1_700_000_000_000, ISO), 9, builder.pack({"i": 9}))
    last = builder.finish()
    assert builder.finish() is None and builder.pending == 0
    decoded = [fr.frame_from_map(Codec().unpack_frame(f)) for f in (other, gap, last)]
    batch, *alone = decoded
    assert isinstance(batch, fr.Batch)
    assert (batch.seq, batch.message_type.value, batch.items) == \
        (1, "data", [{"i": 1}, {"i": 2}, {"i": 3}])
    # A run of one goes as the message frame it would have been, keys in their order.
    assert [(f.seq, f.message.message_type.value, f.message.data)  # type: ignore[union-attr]
            for f in alone] == [(4, "error", {"i": 4}), (9, "error", {"i": 9})]
    assert list(Codec().unpack_frame(gap)) == ["kind", "event_name", "timestamp_ms",  # type: ignore[arg-type]
                                               "timestamp_iso", "message_type", "data", "seq"]


def test_the_builder_keeps_frames_within_the_limit() -> None:
    builder = BatchBuilder(1024)
    key = ("ev", "data", 1, ISO)
    frames = [f for seq in range(1, 501)
              if (f := builder.add(key, seq, builder.pack({"pad": "x" * 40, "i": seq})))]
    frames.append(builder.finish())  # type: ignore[arg-type]
    assert all(len(f) <= 1024 for f in frames) and len(frames) > 10
    batches = [fr.frame_from_map(Codec().unpack_frame(f)) for f in frames]
    items = [i["i"] for b in batches for i in (
        b.items if isinstance(b, fr.Batch) else [b.message.data])]  # type: ignore[union-attr]
    assert items == list(range(1, 501))
    big = builder.pack({"pad": "x" * 2000})
    assert not builder.fits(key, big) and builder.fits(key, builder.pack({"i": 1}))
    roomy = BatchBuilder(65536)
    full = [roomy.add(key, seq, roomy.pack({})) for seq in range(1, MAX_ITEMS + 2)]
    assert [i for i, f in enumerate(full) if f is not None] == [MAX_ITEMS]


# -- the hub --------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_the_hub_relays_a_batch_as_its_messages_and_acknowledges_them_all(make_hub) -> None:
    hub = make_hub()
    plain, batched, sender = RawPeer.for_hub(hub), RawPeer.for_hub(hub), RawPeer.for_hub(hub)
    try:
        plain.hello(subscribe=True)
        batched.hello(subscribe=True, batch=65536)
        welcome = sender.hello()
        assert "batch" in welcome.features
        items = [{"i": i, "text": "é"} for i in range(300)]
        sender.send_raw(raw_batch(items, seq=5))
        [ack] = frames_until(sender, lambda got: bool(got))
        assert ack == fr.Ack(seq=304)  # the batch's messages are 5 ... 304
        got = frames_until(plain, lambda got: len(got) == 300)
        assert singles(got) == items
        assert {f.message.timestamp_iso for f in got} == {ISO}  # type: ignore[union-attr]
        [one] = frames_until(batched, lambda got: bool(got))
        assert isinstance(one, fr.Batch) and one.items == items and one.seq is None
        stats = hub.stats()
        assert (stats["received"], stats["delivered"]) == (300, 600)
    finally:
        for peer in (plain, batched, sender):
            peer.close()


@pytest.mark.timeout(30)
def test_a_batch_nobody_takes_is_queued_message_by_message(make_hub) -> None:
    hub = make_hub(message_queue_size=4)
    sender = RawPeer.for_hub(hub)
    try:
        sender.hello()
        sender.send_raw(raw_batch([{"i": i} for i in range(10)], seq=1))
        assert frames_until(sender, lambda got: bool(got)) == [fr.Ack(seq=10)]
        stats = hub.stats()
        assert (stats["queued"], stats["dropped"], stats["received"]) == (4, 6, 10)
        late = RawPeer.for_hub(hub)
        try:
            late.hello(subscribe=True, batch=65536)
            assert singles(frames_until(late, lambda got: len(got) == 4)) == \
                [{"i": i} for i in range(6, 10)]
        finally:
            late.close()
    finally:
        sender.close()


@pytest.mark.timeout(30)
def test_a_refused_batch_is_one_error_and_the_connection_goes_on(make_hub) -> None:
    hub = make_hub()
    sub, sender = RawPeer.for_hub(hub), RawPeer.for_hub(hub)
    try:
        sub.hello(subscribe=True)
        sender.hello()
        sender.send_raw(raw_batch([{"i": 1}, {"i": 2}], seq=1, event="other"))
        sender.send_raw(raw_batch([{"i": 3}, {"i": 4}, {"i": 5}], seq=3, kind="telemetry"))
        sender.send_raw(raw_batch([{"i": 6}], seq=6))
        got = frames_until(sender, lambda got: any(isinstance(f, fr.Ack) and f.seq == 6
                                                   for f in got))
        errors = [f for f in got if isinstance(f, fr.ErrorFrame)]
        assert [(e.seq, e.fatal) for e in errors] == [(1, False), (3, False)]
        assert "messages 1-2 refused" in errors[0].reason
        assert "unknown message type 'telemetry'" in errors[1].reason
        assert singles(frames_until(sub, lambda got: bool(got))) == [{"i": 6}]
        assert hub.stats()["rejected"] == 5
    finally:
        sub.close()
        sender.close()


@pytest.mark.timeout(30)
def test_a_batch_with_bad_data_drops_its_sender(make_hub) -> None:
    hub = make_hub()
    sender = RawPeer.for_hub(hub)
    try:
        sender.hello()
        sender.send_raw(raw_batch([{"i": 1}, "not a map"], seq=1))  # type: ignore[list-item]
        [error] = frames_until(sender, lambda got: bool(got))
        assert isinstance(error, fr.ErrorFrame) and error.fatal
        assert error.code == fr.ErrorCode.INVALID_MESSAGE and "must be maps" in error.reason
        assert sender.next_frame() is None
    finally:
        sender.close()


@pytest.mark.timeout(30)
def test_a_latest_subscriber_and_a_lines_client_get_single_messages(make_hub) -> None:
    hub = make_hub()
    bar, sender = RawPeer.for_hub(hub), RawPeer.for_hub(hub)
    lines = socket.socket(socket.AF_UNIX) if hub.address.startswith("/") else None
    try:
        bar.hello(subscribe=True, slow="latest", batch=65536)
        if lines is not None:
            lines.settimeout(10)
            lines.connect(str(hub.address).replace(".sock", ".lines.sock"))
            lines.sendall(b"#subscribe\n")
            wait_until(lambda: hub.stats()["subscribers"] == 2, 10, "the lines client")
        sender.hello()
        sender.send_raw(raw_batch([{"i": i} for i in range(3)], seq=1))
        assert singles(frames_until(bar, lambda got: len(got) == 3)) == \
            [{"i": 0}, {"i": 1}, {"i": 2}]
        if lines is not None:
            text = b""
            while text.count(b"\n") < 3:
                text += lines.recv(65536)
            assert [json.loads(line)["data"] for line in text.splitlines()] == \
                [{"i": 0}, {"i": 1}, {"i": 2}]
    finally:
        bar.close()
        sender.close()
        if lines is not None:
            lines.close()


# -- the clients ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_library_sends_go_as_batches_and_arrive_in_order(make_hub, make_client) -> None:
    hub = make_hub()
    watcher = RawPeer.for_hub(hub)
    try:
        watcher.hello(subscribe=True, batch=65536)
        reader = make_client(name="reader")
        sender = make_client(subscribe=False)
        n = 5000
        for i in range(n):
            sender.send(SocketMessage("ev", data={"i": i}), wait=False)
            if i == 2000:  # one that waits, and one for a name: alone, in their place
                sender.send(SocketMessage("ev", data={"i": "waited"}))
                sender.send(SocketMessage("ev", data={"i": "to"}), to="reader", wait=False)
        sender.flush(10)
        got = [m.data["i"] for m in reader.receive_many(n + 2, timeout=10)]
        while len(got) < n + 2:
            got += [m.data["i"] for m in reader.receive_many(n + 2, timeout=10)]
        expected: list[Any] = [*range(2001), "waited", "to", *range(2001, n)]
        assert got == expected
        frames = frames_until(watcher, lambda got: sum(
            len(f.items) if isinstance(f, fr.Batch) else 1 for f in got) >= n + 1)
        assert any(isinstance(f, fr.Batch) and len(f.items) > 1 for f in frames)
        assert [i for f in frames for i in (
            [d["i"] for d in f.items] if isinstance(f, fr.Batch) else [f.message.data["i"]]  # type: ignore[union-attr]
        )] == [i for i in expected if i != "to"]
    finally:
        watcher.close()


def _old_hub(path: str, seen: list[dict[str, Any]], ready: threading.Event) -> None:
    """A hub of before batches: its welcome lists no "batch"; it acknowledges each frame."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    ready.set()
    conn, _ = server.accept()
    codec = Codec()
    with server, conn:
        while True:
            data = conn.recv(65536)
            codec.receive_data(data)
            while isinstance(m := codec.next_map(), dict):
                seen.append(m)
                if m["kind"] == "hello":
                    conn.sendall(codec.pack_map({
                        "kind": "welcome", "version": 1, "client_id": "c1",
                        "event_name": "old", "max_frame_size": 65536,
                        "features": ["ack", "stats", "ping", "unicast", "slow", "retain"]}))
                elif "seq" in m:
                    conn.sendall(codec.pack_map({"kind": "ack", "seq": m["seq"]}))
            if m is CLOSED:
                return


@pytest.mark.timeout(60)
def test_send_lines_to_a_hub_without_batches_sends_message_frames(cli: Any) -> None:
    cli.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    hub = threading.Thread(target=_old_hub, args=(str(cli.socket_dir / "old.sock"), seen, ready),
                           daemon=True)
    hub.start()
    assert ready.wait(10)
    done = cli.run("send", "old", "--lines", input="".join(f'{{"i": {i}}}\n' for i in range(50)))
    assert done.returncode == 0, done.stderr
    hub.join(10)
    assert [m["kind"] for m in seen] == ["hello"] + ["message"] * 50
    assert [m["data"]["i"] for m in seen[1:]] == list(range(50))
    assert [m["seq"] for m in seen[1:]] == list(range(1, 51))


@pytest.mark.timeout(120)
def test_send_lines_reports_each_bad_line_and_delivers_the_rest_in_order(cli: Any) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "6", "--json")
    lines = ['{"i": 0}', '  {"i": 1}  ', '{"i": ', "[1, 2]", '{"i": 2}\r', "",
             '{"i": NaN}', '{"i": 3}', '{"big": "' + "x" * 70_000 + '"}', '{"i": 4}',
             '{"i": 5, "é": "ü"}']
    done = cli.run("send", "ev", "--lines", input="\n".join(lines) + "\n")
    assert done.returncode == 65
    errors = done.stderr.splitlines()  # one line each, in input order; no summary line
    assert [e.split(":")[2].strip() for e in errors] == ["line 3", "line 4", "line 7", "line 9"]
    assert "exceeds the limit" in errors[3]
    out, _ = listener.communicate(timeout=30)
    assert [json.loads(line)["data"] for line in out.split("\n")[:-1]] == \
        [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}, {"i": 4}, {"i": 5, "é": "ü"}]


@pytest.mark.timeout(120)
def test_send_lines_then_listen_json_prints_what_listen_printed_before(cli: Any) -> None:
    """The JSON lines of a batch are those of its messages one by one (the text before
    ``data`` is shared, not changed)."""
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "3", "--json")
    done = cli.run("send", "ev", "--lines", "-t", "error",
                   input='{"a": 1}\n{"b": [1, 2.5, null, "\\u2028"]}\n{}\n')
    assert done.returncode == 0, done.stderr
    out, _ = listener.communicate(timeout=30)
    records = [json.loads(line) for line in out.split("\n")[:-1]]
    assert [r["data"] for r in records] == [{"a": 1}, {"b": [1, 2.5, None, "\u2028"]}, {}]
    for line, record in zip(out.split("\n")[:-1], records, strict=True):
        assert list(record) == ["event_name", "timestamp_ms", "timestamp_iso", "message_type",
                                "data"]
        assert line == json.dumps(record, ensure_ascii=False)
        assert record["message_type"] == "error"
    assert time.time() * 1000 - records[0]["timestamp_ms"] < 600_000
    assert msgpack.packb(records[0]["data"]) == msgpack.packb({"a": 1})

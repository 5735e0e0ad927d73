"""Hub semantics on real sockets, over both transports (the ``transport`` fixture).

Every test synchronises on something observable: a received message, an acknowledgement, or
``wait_until`` on the hub's own view. Proving that something was *not* delivered is done by
ordering: a later message that must arrive is sent, and it has to be the next one received.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any

import pytest

import sockcli
from sockcli import MessageType, SocketMessage
from sockcli.hub.base import ClientInfo
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import Codec
from tests.helpers import RawPeer, wait_until

DATA = MessageType.DATA
ERROR = MessageType.ERROR
CONTROL = MessageType.CONTROL


def msg(n: Any, message_type: MessageType = DATA, event: str = "ev", **extra: Any) -> SocketMessage:
    return SocketMessage(event, message_type=message_type, data={"n": n, **extra})


def receive_n(client: Any, count: int, timeout: float = 5.0) -> list[SocketMessage]:
    return [client.receive(timeout=timeout) for _ in range(count)]


def ns(messages: list[SocketMessage]) -> list[Any]:
    return [m.data["n"] for m in messages]


def expect_next(client: Any, n: Any, timeout: float = 5.0) -> SocketMessage:
    """The next message ``client`` receives must be the marker ``n``: nothing came before it."""
    got = client.receive(timeout=timeout)
    assert got.data.get("n") == n, f"expected marker {n!r}, got {got.data!r}"
    return got


def wait_clients(hub: Any, count: int) -> list[ClientInfo]:
    """Wait until the hub lists exactly ``count`` handshake-complete clients; return them."""
    found: list[list[ClientInfo]] = []

    def ready() -> bool:
        clients = hub.get_connected_clients()
        if len(clients) != count:
            return False
        found.append(clients)
        return True

    wait_until(ready, what=f"{count} connected clients")
    return found[-1]


def wait_no_clients(hub: Any) -> None:
    wait_until(lambda: not hub.get_connected_clients(), what="no connected clients")


# -- relaying, handlers, broadcast and unicast ------------------------------------------------


@pytest.mark.timeout(15)
def test_client_message_goes_to_handlers_and_other_subscribers_not_back(make_hub,
                                                                        make_client) -> None:
    hub = make_hub()
    seen: list[tuple[SocketMessage, ClientInfo]] = []
    decorated: list[tuple[Any, str | None]] = []
    hub.add_handler(lambda m, c: seen.append((m, c)))

    @hub.on_message
    def record(message: SocketMessage, client: ClientInfo) -> None:
        decorated.append((message.data["n"], client.name))

    alice = make_client(name="alice")
    bob = make_client(name="bob")
    carol = make_client(name="carol")
    wait_clients(hub, 3)

    alice.send(msg(1, ERROR, text="hi"))  # wait=True: the handlers ran before the ack
    assert len(seen) == 1
    message, info = seen[0]
    assert (message.event_name, message.message_type, message.data) == (
        "ev", ERROR, {"n": 1, "text": "hi"})
    assert info.client_id == alice.client_id
    assert info.name == "alice"
    assert info.subscribed is True
    assert decorated == [(1, "alice")]

    for receiver in (bob, carol):
        got = receiver.receive(timeout=5)
        assert (got.event_name, got.message_type, got.data) == ("ev", ERROR, {"n": 1, "text": "hi"})
        assert got.timestamp_ms == message.timestamp_ms

    # Not echoed to the sender: the next thing alice receives is a later hub broadcast.
    hub.send(msg("marker"))
    expect_next(alice, "marker")
    expect_next(bob, "marker")
    expect_next(carol, "marker")


@pytest.mark.timeout(15)
def test_remove_handler_stops_calls(make_hub, make_client) -> None:
    hub = make_hub()
    calls: list[Any] = []

    def handler(message: SocketMessage, client: ClientInfo) -> None:
        calls.append(message.data["n"])

    assert hub.add_handler(handler) is handler
    sender = make_client(subscribe=False)
    sender.send(msg(1))
    hub.remove_handler(handler)
    hub.remove_handler(handler)  # unknown handlers are ignored
    sender.send(msg(2))
    assert calls == [1]


@pytest.mark.timeout(15)
def test_handler_exception_does_not_break_relay(make_hub, make_client) -> None:
    hub = make_hub()
    later: list[Any] = []

    def broken(message: SocketMessage, client: ClientInfo) -> None:
        raise RuntimeError("handler bug")

    hub.add_handler(broken)
    hub.add_handler(lambda m, c: later.append(m.data["n"]))
    listener = make_client()
    sender = make_client(subscribe=False)
    sender.send(msg(1))
    sender.send(msg(2))
    assert ns(receive_n(listener, 2)) == [1, 2]
    assert later == [1, 2]


@pytest.mark.timeout(15)
def test_server_broadcast_reaches_every_subscriber(make_hub, make_client) -> None:
    hub = make_hub()
    subs = [make_client(name=f"s{i}") for i in range(3)]
    sender = make_client(subscribe=False)
    wait_clients(hub, 4)
    for i in range(5):
        hub.send(msg(i, CONTROL))
    for sub in subs:
        got = receive_n(sub, 5)
        assert ns(got) == [0, 1, 2, 3, 4]
        assert {m.message_type for m in got} == {CONTROL}
    assert sender.is_connected()


@pytest.mark.timeout(15)
def test_server_unicast_by_client_id_reaches_only_that_client(make_hub, make_client) -> None:
    hub = make_hub()
    a = make_client(name="a")
    b = make_client(name="b")
    c = make_client(name="c")
    wait_clients(hub, 3)
    assert b.client_id is not None
    hub.send(msg("private"), client_id=b.client_id)
    hub.send(msg("all"))
    assert ns(receive_n(b, 2)) == ["private", "all"]
    expect_next(a, "all")
    expect_next(c, "all")


@pytest.mark.timeout(15)
def test_server_send_errors(make_hub, make_client) -> None:
    hub = make_hub()
    sender = make_client(subscribe=False)
    listener = make_client()
    wait_clients(hub, 2)

    with pytest.raises(sockcli.ConnectionError):
        hub.send(msg(1), client_id="no-such-client")
    assert sender.client_id is not None
    with pytest.raises(sockcli.ValidationError):
        hub.send(msg(2), client_id=sender.client_id)
    with pytest.raises(sockcli.ValidationError):
        hub.send(msg(3, event="other"))

    # None of the refused sends leaked through.
    hub.send(msg("ok"))
    expect_next(listener, "ok")
    assert hub.stats()["queued"] == 0


def test_server_send_when_not_running(make_hub) -> None:
    hub = make_hub(start=False)
    with pytest.raises(sockcli.SocketError):
        hub.send(msg(1))
    hub.start()
    hub.send(msg(2))  # queued, no subscriber
    hub.stop()
    with pytest.raises(sockcli.SocketError):
        hub.send(msg(3))


@pytest.mark.timeout(15)
def test_unicast_by_name_reaches_only_that_subscriber(make_hub, make_client) -> None:
    hub = make_hub()
    foo = make_client(name="foo")
    bar = make_client(name="bar")
    anon = make_client()
    sender = make_client(subscribe=False)
    wait_clients(hub, 4)
    sender.send(msg("for-bar", ERROR), to="bar")
    sender.send(msg("all"))
    assert ns(receive_n(bar, 2)) == ["for-bar", "all"]
    expect_next(foo, "all")
    expect_next(anon, "all")


@pytest.mark.timeout(15)
def test_unicast_to_unknown_name_is_refused(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client(name="bar")
    sender = make_client(subscribe=False, name="baz")
    wait_clients(hub, 2)
    with pytest.raises(sockcli.MessageError) as info:
        sender.send(msg("lost"), to="nobody")
    assert info.value.code == "unknown_recipient"
    # A pure sender's name is no recipient either.
    with pytest.raises(sockcli.MessageError) as info:
        make_client(subscribe=False).send(msg("lost"), to="baz")
    assert info.value.code == "unknown_recipient"
    sender.send(msg("after"))  # the connection is still usable
    expect_next(listener, "after")
    stats = hub.stats()
    assert stats["rejected"] == 2
    assert stats["received"] == 1


# -- pure senders, filters, the queue ----------------------------------------------------------


@pytest.mark.timeout(15)
def test_pure_sender_never_receives_and_does_not_drain_queue(make_hub, make_client) -> None:
    hub = make_hub()
    hub.send(msg(1))
    hub.send(msg(2))
    sender = make_client(subscribe=False)
    other_sender = make_client(subscribe=False)
    wait_clients(hub, 2)
    wait_until(lambda: hub.stats()["queued"] == 2, what="2 queued messages")
    sender.send(msg(3))  # no subscriber: queued as well
    hub.send(msg(4))
    wait_until(lambda: hub.stats()["queued"] == 4, what="4 queued messages")
    with pytest.raises(sockcli.SocketError):
        other_sender.receive(timeout=0.1)

    listener = make_client()
    assert ns(receive_n(listener, 4)) == [1, 2, 3, 4]
    assert hub.stats()["queued"] == 0
    assert sorted(c.subscribed for c in hub.get_connected_clients()) == [False, False, True]


@pytest.mark.timeout(15)
def test_pure_sender_gets_nothing_on_the_wire(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    sender = make_client(subscribe=False)
    peer = RawPeer.for_hub(hub)
    try:
        peer.hello(subscribe=False, name="raw-sender")
        wait_clients(hub, 3)
        hub.send(msg("broadcast"))
        expect_next(listener, "broadcast")
        sender.send(msg("relayed"))
        expect_next(listener, "relayed")
        # The hub has handled both; the raw sender's next frame must answer its own ping.
        peer.send_frame(fr.Ping(token=9))
        assert peer.next_frame() == fr.Pong(token=9)
    finally:
        peer.close()


@pytest.mark.timeout(15)
def test_type_filter_is_applied_at_the_hub(make_hub, make_client) -> None:
    hub = make_hub()
    errors_only = make_client(types=["error"])
    data_and_control = make_client(types=["data", "control"])
    everything = make_client()
    sender = make_client(subscribe=False)
    wait_clients(hub, 4)
    infos = {c.client_id: c for c in hub.get_connected_clients()}
    assert infos[errors_only.client_id].types == frozenset({ERROR})

    kinds = [DATA, ERROR, DATA, DATA, ERROR, CONTROL, ERROR, DATA]
    # Order is guaranteed per source, so each source gets a round of its own: first a client
    # (relayed), then the hub itself (broadcast).
    for source in ("client", "hub"):
        for i, kind in enumerate(kinds):
            if source == "client":
                sender.send(msg(i, kind), wait=False)
            else:
                hub.send(msg(i, kind))
        if source == "client":
            sender.flush()
        # receive(), not receive_iter(types=...): nothing may be filtered locally here.
        got = receive_n(errors_only, 3)
        assert ns(got) == [1, 4, 6]
        assert {m.message_type for m in got} == {ERROR}
        got = receive_n(data_and_control, 5)
        assert ns(got) == [0, 2, 3, 5, 7]
        assert ns(receive_n(everything, len(kinds))) == list(range(len(kinds)))

    hub.send(msg("end", ERROR))
    hub.send(msg("end", DATA))
    expect_next(errors_only, "end")
    expect_next(data_and_control, "end")


@pytest.mark.timeout(15)
def test_queue_replays_to_first_subscriber_in_order_before_new(make_hub, make_client) -> None:
    hub = make_hub(message_queue_size=10)
    for i in range(5):
        hub.send(msg(i))
    wait_until(lambda: hub.stats()["queued"] == 5, what="5 queued messages")
    listener = make_client()
    hub.send(msg("new"))
    assert ns(receive_n(listener, 6)) == [0, 1, 2, 3, 4, "new"]
    stats = hub.stats()
    assert stats["queued"] == 0
    assert stats["dropped"] == 0
    # The queue is replayed once: a second subscriber gets only what comes next.
    second = make_client()
    hub.send(msg("later"))
    expect_next(second, "later")
    expect_next(listener, "later")


@pytest.mark.timeout(15)
def test_queue_keeps_non_matching_messages_for_a_later_subscriber(make_hub,
                                                                  make_client) -> None:
    hub = make_hub(message_queue_size=10)
    kinds = [DATA, ERROR, DATA, ERROR, CONTROL, ERROR]
    for i, kind in enumerate(kinds):
        hub.send(msg(i, kind))
    errors = make_client(types=["error"])
    assert ns(receive_n(errors, 3)) == [1, 3, 5]
    wait_until(lambda: hub.stats()["queued"] == 3, what="3 messages left in the queue")
    errors.disconnect()
    wait_no_clients(hub)

    rest = make_client(types=["data", "control"])
    got = receive_n(rest, 3)
    assert ns(got) == [0, 2, 4]
    assert [m.message_type for m in got] == [DATA, DATA, CONTROL]
    assert hub.stats()["queued"] == 0


@pytest.mark.timeout(15)
def test_queue_overflow_drops_oldest_and_counts(make_hub, make_client) -> None:
    hub = make_hub(message_queue_size=3)
    for i in range(8):
        hub.send(msg(i))
    wait_until(lambda: hub.stats()["dropped"] == 5, what="5 dropped messages")
    stats = hub.stats()
    assert stats["queued"] == 3
    assert stats["queue_size"] == 3
    listener = make_client()
    hub.send(msg("new"))
    assert ns(receive_n(listener, 4)) == [5, 6, 7, "new"]
    assert hub.stats()["dropped"] == 5


@pytest.mark.timeout(15)
def test_queue_size_zero_keeps_nothing(make_hub, make_client) -> None:
    hub = make_hub(message_queue_size=0)
    hub.send(msg(1))
    hub.send(msg(2))
    wait_until(lambda: hub.stats()["dropped"] == 2, what="2 dropped messages")
    listener = make_client()
    hub.send(msg("new"))
    expect_next(listener, "new")
    assert hub.stats()["queued"] == 0


# -- limits and permissions -------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_max_connections_refuses_the_extra_client_only(make_hub, make_client) -> None:
    hub = make_hub(max_connections=2)
    listener = make_client(name="l")
    sender = make_client(subscribe=False)
    wait_clients(hub, 2)

    extra = make_client(connect=False)
    started = time.monotonic()
    with pytest.raises(sockcli.MaxConnectionsError) as info:
        extra.connect(timeout=5)
    assert time.monotonic() - started < 3, "a full hub must be reported, not retried"
    assert isinstance(info.value, sockcli.ConnectionError)
    assert not extra.is_connected()

    sender.send(msg("after-refusal"))
    expect_next(listener, "after-refusal")
    assert listener.is_connected() and sender.is_connected()
    assert hub.stats()["refused_connections"] == 1
    assert len(hub.get_connected_clients()) == 2

    # A freed slot can be taken again.
    sender.disconnect()
    wait_clients(hub, 1)
    late = make_client(subscribe=False)
    late.send(msg("late"))
    expect_next(listener, "late")
    assert hub.stats()["refused_connections"] == 1


@pytest.mark.timeout(15)
def test_client_send_not_allowed(make_hub, make_client) -> None:
    hub = make_hub(allow_client_send=False)
    calls: list[Any] = []
    hub.add_handler(lambda m, c: calls.append(m))
    listener = make_client()
    sender = make_client(subscribe=False)
    wait_clients(hub, 2)
    assert sender.welcome is not None and sender.welcome.allow_client_send is False

    with pytest.raises(sockcli.MessageError) as info:
        sender.send(msg("refused"))
    assert info.value.code == "send_not_allowed"
    with pytest.raises(sockcli.MessageError) as info:
        listener.send(msg("refused too"))
    assert info.value.code == "send_not_allowed"

    hub.send(msg("from-hub"))
    expect_next(listener, "from-hub")
    assert calls == []
    stats = hub.stats()
    assert (stats["received"], stats["rejected"], stats["queued"]) == (0, 2, 0)
    assert sender.is_connected()


# -- acknowledgements -------------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_send_wait_returns_after_ack(make_hub, make_client) -> None:
    hub = make_hub()
    handled: list[Any] = []
    hub.add_handler(lambda m, c: handled.append(m.data["n"]))
    listener = make_client()
    sender = make_client(subscribe=False)
    for i in range(5):
        sender.send(msg(i), wait=True)
        # The hub acknowledges after handling, so this is already visible on return.
        assert handled == list(range(i + 1))
        assert hub.stats()["received"] == i + 1
    assert ns(receive_n(listener, 5)) == [0, 1, 2, 3, 4]


@pytest.mark.timeout(20)
def test_send_nowait_then_flush_delivers_everything_in_order(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    sender = make_client(subscribe=False)
    count = 1000
    got: list[SocketMessage] = []
    reader = threading.Thread(target=lambda: got.extend(receive_n(listener, count)))
    reader.start()
    for i in range(count):
        sender.send(msg(i), wait=False)
    sender.flush(timeout=10)
    assert hub.stats()["received"] == count
    reader.join(10)
    assert not reader.is_alive()
    assert ns(got) == list(range(count))
    sender.flush()  # nothing pending: returns at once


# -- protocol errors on raw connections ---------------------------------------------------------


def _assert_fatal_then_closed(peer: RawPeer, code: str) -> fr.ErrorFrame:
    frame = peer.next_frame()
    assert isinstance(frame, fr.ErrorFrame), frame
    assert frame.code == code
    assert frame.fatal is True
    assert peer.next_frame() is None, "the hub must close the connection after a fatal error"
    return frame


@pytest.mark.timeout(15)
def test_malformed_payload_drops_only_that_peer(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client(name="listener")
    peer = RawPeer.for_hub(hub)
    try:
        peer.hello(subscribe=True, name="raw")
        wait_clients(hub, 2)
        garbage = b"\xc1\xc1\xc1\xc1"
        peer.send_raw(struct.pack(">I", len(garbage)) + garbage)
        _assert_fatal_then_closed(peer, "malformed_frame")
    finally:
        peer.close()
    wait_until(lambda: [c.name for c in hub.get_connected_clients()] == ["listener"],
               what="the bad peer forgotten")
    hub.send(msg("still-here"))
    expect_next(listener, "still-here")


@pytest.mark.timeout(15)
def test_oversized_frame_header_drops_only_that_peer(make_hub, make_client) -> None:
    hub = make_hub(buffer_size=4096)
    listener = make_client(name="listener")
    sender = make_client(subscribe=False)
    peer = RawPeer.for_hub(hub)
    try:
        peer.hello(subscribe=False)
        wait_clients(hub, 3)
        peer.send_raw(struct.pack(">I", 4097))  # announces more than buffer_size: no payload
        _assert_fatal_then_closed(peer, "frame_too_large")
    finally:
        peer.close()
    wait_clients(hub, 2)
    sender.send(msg("still-here"))
    expect_next(listener, "still-here")
    assert hub.stats()["received"] == 1


@pytest.mark.timeout(15)
def test_first_frame_must_be_hello(make_hub) -> None:
    hub = make_hub()
    peer = RawPeer.for_hub(hub)
    try:
        peer.send_frame(fr.Ping(token=3))
        _assert_fatal_then_closed(peer, "handshake_required")
    finally:
        peer.close()
    assert hub.get_connected_clients() == []


@pytest.mark.timeout(15)
def test_message_before_hello_is_refused_and_not_relayed(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    peer = RawPeer.for_hub(hub)
    try:
        peer.send_frame(fr.MessageFrame(message=msg("sneaky"), seq=1))
        _assert_fatal_then_closed(peer, "handshake_required")
    finally:
        peer.close()
    hub.send(msg("ok"))
    expect_next(listener, "ok")
    assert hub.stats()["received"] == 0


@pytest.mark.timeout(15)
def test_hello_with_unsupported_version(make_hub) -> None:
    hub = make_hub()
    peer = RawPeer.for_hub(hub)
    try:
        peer.send_frame(fr.Hello(version=2, subscribe=True))
        frame = _assert_fatal_then_closed(peer, "unsupported_version")
        assert "2" in frame.reason
    finally:
        peer.close()
    assert hub.get_connected_clients() == []


@pytest.mark.timeout(15)
def test_handshake_timeout_drops_silent_connection(make_hub, make_client) -> None:
    hub = make_hub(handshake_timeout=0.3)
    listener = make_client()  # a proper client is not affected by the deadline
    started = time.monotonic()
    peer = RawPeer.for_hub(hub)
    try:
        _assert_fatal_then_closed(peer, "handshake_required")
        elapsed = time.monotonic() - started
    finally:
        peer.close()
    assert 0.25 <= elapsed < 3.0, elapsed
    assert listener.is_connected()
    hub.send(msg("ok"))
    expect_next(listener, "ok")


@pytest.mark.timeout(15)
def test_unknown_frame_kind_is_a_non_fatal_error(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    peer = RawPeer.for_hub(hub)
    try:
        peer.hello(subscribe=False, name="raw")
        peer.send_raw(Codec().pack_map({"kind": "from-the-future", "x": [1, 2]}))
        frame = peer.next_frame()
        assert isinstance(frame, fr.ErrorFrame), frame
        assert frame.code == "unknown_kind"
        assert frame.fatal is False
        # Still usable: ping, then a message with an acknowledgement.
        peer.send_frame(fr.Ping(token=42))
        assert peer.next_frame() == fr.Pong(token=42)
        peer.send_frame(fr.MessageFrame(message=msg("raw-msg"), seq=7))
        assert peer.next_frame() == fr.Ack(seq=7)
        expect_next(listener, "raw-msg")
        assert [c.name for c in hub.get_connected_clients() if not c.subscribed] == ["raw"]
    finally:
        peer.close()


@pytest.mark.timeout(15)
def test_invalid_message_from_raw_peer_is_refused_with_its_seq(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    peer = RawPeer.for_hub(hub)
    try:
        peer.hello(subscribe=False)
        peer.send_frame(fr.MessageFrame(message=msg("elsewhere", event="other"), seq=1))
        frame = peer.next_frame()
        assert isinstance(frame, fr.ErrorFrame), frame
        assert (frame.code, frame.seq, frame.fatal) == ("invalid_message", 1, False)
        assert peer.next_frame() == fr.Ack(seq=1)
    finally:
        peer.close()
    hub.send(msg("ok"))
    expect_next(listener, "ok")
    assert hub.stats()["received"] == 0


# -- introspection ----------------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_stats_via_client(make_hub, make_client, transport) -> None:
    hub = make_hub()
    hub.send(msg("q1"))
    hub.send(msg("q2"))  # data, kept queued: the only subscriber wants errors
    errors = make_client(types=["error"], name="errors")
    sender = make_client(subscribe=False)
    wait_clients(hub, 2)
    for i in range(3):
        sender.send(msg(i, ERROR))
    assert ns(receive_n(errors, 3)) == [0, 1, 2]

    stats = sender.stats(timeout=5)
    assert stats["event_name"] == "ev"
    assert stats["transport"] == transport
    assert stats["address"] == hub.address
    assert stats["pid"] == os.getpid()
    assert (stats["clients"], stats["subscribers"], stats["queued"]) == (2, 1, 2)
    assert (stats["received"], stats["delivered"]) == (3, 3)
    assert (stats["dropped"], stats["refused_connections"], stats["rejected"]) == (0, 0, 0)
    assert errors.stats(timeout=5) == stats  # nothing changed in between
    local = hub.stats()
    assert {k: local[k] for k in stats} == stats


@pytest.mark.timeout(15)
def test_get_connected_clients_reports_clients(make_hub, make_client, transport) -> None:
    hub = make_hub()
    assert hub.get_connected_clients() == []
    a = make_client(name="alpha", types=["error", "control"])
    b = make_client(subscribe=False, name="beta")
    c = make_client()
    infos = {info.client_id: info for info in wait_clients(hub, 3)}
    assert set(infos) == {a.client_id, b.client_id, c.client_id}
    assert len(set(infos)) == 3
    ia, ib, ic = infos[a.client_id], infos[b.client_id], infos[c.client_id]
    assert (ia.name, ia.subscribed, ia.types) == ("alpha", True, frozenset({ERROR, CONTROL}))
    assert (ib.name, ib.subscribed, ib.types) == ("beta", False, None)
    assert (ic.name, ic.subscribed, ic.types) == (None, True, None)
    now_ms = time.time_ns() // 1_000_000
    for info in (ia, ib, ic):
        assert now_ms - 60_000 < info.connected_ms <= now_ms
        if transport == "unix":
            assert (info.pid, info.uid, info.gid) == (os.getpid(), os.getuid(), os.getgid())
        else:
            assert info.pid is None
            assert info.peer.startswith("127.0.0.1:")
    b.disconnect()
    wait_clients(hub, 2)
    assert {i.client_id for i in hub.get_connected_clients()} == {a.client_id, c.client_id}


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_concurrent_hub_send_from_threads(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client(receive_buffer_size=10_000)
    wait_clients(hub, 1)
    threads_n, per_thread = 8, 500
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            barrier.wait(5)
            for i in range(per_thread):
                hub.send(SocketMessage("ev", data={"t": t, "i": i}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    got = [listener.receive(timeout=10) for _ in range(threads_n * per_thread)]
    for th in threads:
        th.join(10)
    assert errors == []
    per: dict[int, list[int]] = {t: [] for t in range(threads_n)}
    for m in got:
        per[m.data["t"]].append(m.data["i"])
    for t in range(threads_n):
        assert per[t] == list(range(per_thread)), f"thread {t} out of order or incomplete"
    hub.send(msg("end"))
    expect_next(listener, "end")  # nothing duplicated
    assert hub.stats()["delivered"] == threads_n * per_thread + 1


# -- life cycle ---------------------------------------------------------------------------------


def _files(sock_dir: Any) -> list[str]:
    return sorted(os.listdir(sock_dir))


@pytest.mark.timeout(15)
def test_blocking_start_returns_after_stop(make_hub, make_client, sock_dir, transport) -> None:
    hub = make_hub(start=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            hub.start(blocking=True)
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    wait_until(hub.is_running, what="the hub running")
    listener = make_client()  # connect() retries until the hub accepts
    hub.send(msg("blocking"))
    expect_next(listener, "blocking")
    expected = {"ev.hub", "ev.sock", "ev.lines.sock", "ev.fifo"} if transport == "unix" \
        else {"ev.hub", "ev.token"}
    assert set(_files(sock_dir)) == expected

    hub.stop()
    runner.join(5)
    assert not runner.is_alive(), "start(blocking=True) did not return after stop()"
    assert errors == []
    assert not hub.is_running()
    assert _files(sock_dir) == []
    hub.stop()  # idempotent


@pytest.mark.timeout(15)
def test_stop_is_idempotent_and_final(make_hub, make_client, sock_dir) -> None:
    hub = make_hub()
    client = make_client(auto_reconnect=False)
    wait_clients(hub, 1)
    hub.stop()
    assert not hub.is_running()
    assert hub.get_connected_clients() == []
    assert _files(sock_dir) == []
    hub.stop()
    hub.stop(timeout=0.1)
    wait_until(lambda: not client.is_connected(), what="the client noticing")
    with pytest.raises(sockcli.SocketError):
        hub.start()
    assert not hub.is_running()
    assert _files(sock_dir) == []


@pytest.mark.timeout(15)
def test_stop_from_a_handler(make_hub, make_client, sock_dir) -> None:
    hub = make_hub()

    @hub.on_message
    def on_shutdown(message: SocketMessage, client: ClientInfo) -> None:
        if message.data.get("n") == "shutdown":
            hub.stop()  # on the hub's own thread: must not wait for itself

    sender = make_client(subscribe=False, auto_reconnect=False)
    sender.send(msg("shutdown"))  # acknowledged: the hub flushes before it closes
    wait_until(lambda: not hub.is_running(), what="the hub stopped")
    wait_until(lambda: not sender.is_connected(), what="the sender noticing")
    # is_running() turns False as the loop ends, just before the clean-up: wait for that too.
    wait_until(lambda: _files(sock_dir) == [], what="socket and record removed")
    with pytest.raises(sockcli.SocketError):
        hub.send(msg("too late"))


def test_stop_before_start_is_harmless(make_hub) -> None:
    hub = make_hub(start=False)
    hub.stop()
    assert not hub.is_running()


@pytest.mark.timeout(15)
def test_second_hub_for_same_event_is_refused(make_hub, make_client) -> None:
    first = make_hub()
    second = make_hub(start=False)
    with pytest.raises(sockcli.SocketError):
        second.start()
    assert first.is_running() and not second.is_running()
    listener = make_client()
    first.send(msg("first"))
    expect_next(listener, "first")


@pytest.mark.timeout(15)
def test_hub_context_manager(make_hub, make_client, sock_dir) -> None:
    hub = make_hub(start=False)
    with hub as running:
        assert running is hub
        assert hub.is_running()
        assert hub.address
        listener = make_client(auto_reconnect=False)
        hub.send(msg("ctx"))
        expect_next(listener, "ctx")
    assert not hub.is_running()
    assert _files(sock_dir) == []
    with pytest.raises(sockcli.ConnectionError):
        listener.receive(timeout=5)


@pytest.mark.timeout(15)
def test_message_no_connected_subscriber_accepts_is_queued(make_hub, make_client) -> None:
    hub = make_hub()
    make_client(types=["error"])
    wait_clients(hub, 1)
    hub.send(msg(1))  # a data message, and the only subscriber takes errors only
    wait_until(lambda: hub.stats()["queued"] == 1, what="the data message to be queued")
    late = make_client(types=["data"])
    assert ns([late.receive(timeout=5)]) == [1]
    assert hub.stats()["queued"] == 0 and hub.stats()["dropped"] == 0


@pytest.mark.timeout(15)
def test_ack_settles_the_highest_seq_of_a_batch(make_hub) -> None:
    hub = make_hub()
    peer = RawPeer.for_hub(hub)
    peer.hello(subscribe=False)
    # Three messages in one write, numbered out of order: the ack must name the highest.
    batch = b"".join(peer.codec.send(fr.MessageFrame(message=msg(n), seq=seq))
                     for n, seq in ((1, 5), (2, 9), (3, 7)))
    peer.send_raw(batch)
    frame = peer.next_frame()
    assert frame == fr.Ack(seq=9)
    peer.close()


@pytest.mark.timeout(15)
def test_stopping_hub_tells_clients_why(make_hub) -> None:
    hub = make_hub()
    peer = RawPeer.for_hub(hub)
    peer.hello(subscribe=True)
    hub.stop()
    frame = peer.next_frame()
    assert isinstance(frame, fr.ErrorFrame)
    assert (frame.code, frame.fatal) == ("shutting_down", True)
    assert peer.next_frame() is None
    peer.close()


@pytest.mark.timeout(30)
def test_reconnecting_client_waits_for_a_free_slot(make_hub, make_client) -> None:
    hub = make_hub(max_connections=1)
    listener = make_client(name="bar")
    wait_clients(hub, 1)
    hub.stop()
    wait_until(lambda: not listener.is_connected(), what="the listener to notice")
    # The listener now retries at its capped backoff (0.5 s); a raw peer must take the new
    # hub's only slot before the listener's next attempt. If the listener wins that race
    # anyway, free the slot and try the scenario again.
    for _attempt in range(5):
        time.sleep(0.6)  # past one full backoff period: the listener just made an attempt
        hub2 = make_hub(max_connections=1, insecure=True)  # the blocker says hello only
        blocker = RawPeer.for_hub(hub2)
        blocker.send_frame(fr.Hello(subscribe=False))
        if isinstance(blocker.next_frame(), fr.Welcome):
            break
        blocker.close()
        hub2.stop()
    else:
        pytest.fail("the raw peer never won the slot")
    time.sleep(0.6)  # the listener meets the full hub at least once and must not give up
    assert not [c for c in hub2.get_connected_clients() if c.name == "bar"]
    blocker.close()
    wait_until(lambda: [c for c in hub2.get_connected_clients() if c.name == "bar"],
               what="the listener to take the freed slot")
    hub2.send(msg("after"))
    assert ns([listener.receive(timeout=5)]) == ["after"]

"""Scale: one hub thread holding 1,000 connections and fanning a message out to all of them,
and the throughput of one sender to one subscriber. Figures are printed (run with -s)."""

from __future__ import annotations

import resource
import threading
import time

import pytest

from sockcli import MessageType, SocketMessage
from sockcli.protocol import frames as fr
from tests.helpers import RawPeer, wait_until

CONNECTIONS = 1000
MESSAGES = 20_000


@pytest.fixture(autouse=True, scope="module")
def enough_file_descriptors() -> None:
    """Both ends of 1,000 connections live in this process: 2,000+ descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * CONNECTIONS + 100:
        pytest.skip(f"RLIMIT_NOFILE is {soft}, too low for {CONNECTIONS} connections")


@pytest.mark.slow
@pytest.mark.timeout(40)
def test_one_hub_thread_holds_1000_connections(make_hub, transport: str) -> None:
    threads_before = threading.active_count()
    hub = make_hub(timezone="UTC", insecure=True)  # hellos only: no per-hub secret to prove
    assert threading.active_count() == threads_before + 1
    assert hub.max_connections >= CONNECTIONS

    peers: list[RawPeer] = []
    try:
        started = time.perf_counter()
        # Connect all first (the listen backlog holds them), then pipeline the hellos, then
        # collect the welcomes: no thread per connection, no round trip per connection.
        for _ in range(CONNECTIONS):
            peers.append(RawPeer.for_hub(hub, timeout=10))
        for i, peer in enumerate(peers):
            peer.send_frame(fr.Hello(subscribe=True, name=f"p{i}"))
        welcomes = [peer.next_frame() for peer in peers]
        connect_s = time.perf_counter() - started

        assert all(isinstance(w, fr.Welcome) for w in welcomes)
        ids = {w.client_id for w in welcomes if isinstance(w, fr.Welcome)}
        assert len(ids) == CONNECTIONS
        assert all(w.event_name == "ev" for w in welcomes if isinstance(w, fr.Welcome))
        clients = hub.get_connected_clients()
        assert len(clients) == CONNECTIONS
        assert {c.client_id for c in clients} == ids
        assert {c.name for c in clients} == {f"p{i}" for i in range(CONNECTIONS)}
        assert all(c.subscribed for c in clients)
        # Still the one hub thread, whatever the number of connections.
        assert threading.active_count() == threads_before + 1

        message = SocketMessage("ev", message_type=MessageType.CONTROL, data={"fan": "out",
                                                                              "n": 42})
        started = time.perf_counter()
        hub.send(message)
        frames = [peer.next_frame() for peer in peers]
        fanout_s = time.perf_counter() - started

        assert all(isinstance(f, fr.MessageFrame) for f in frames)
        got = [f.message for f in frames if isinstance(f, fr.MessageFrame)]
        assert len(got) == CONNECTIONS
        assert all(m == message for m in got)
        stats = hub.stats()
        assert (stats["clients"], stats["subscribers"], stats["delivered"], stats["dropped"],
                stats["refused_connections"]) == (CONNECTIONS, CONNECTIONS, CONNECTIONS, 0, 0)
        print(f"\n[scale {transport}] {CONNECTIONS} connections held by 1 hub thread; "
              f"connect+handshake all: {connect_s * 1000:.0f} ms; "
              f"fan-out of one message to all: {fanout_s * 1000:.1f} ms")
        assert connect_s < 20 and fanout_s < 20
    finally:
        for peer in peers:
            peer.close()
    wait_until(lambda: hub.get_connected_clients() == [], timeout=10,
               what="the hub to notice 1,000 departures")
    assert threading.active_count() == threads_before + 1
    hub.stop()
    wait_until(lambda: threading.active_count() == threads_before, what="the hub thread to end")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_messages_per_second_one_sender_one_subscriber(make_hub, make_client,
                                                       transport: str) -> None:
    make_hub(timezone="UTC")
    receiver = make_client(name="sink")
    sender = make_client(subscribe=False)
    received: list[int] = []
    problems: list[BaseException] = []

    def drain() -> None:
        try:
            for _ in range(MESSAGES):
                received.append(receiver.receive(timeout=20).data["i"])
        except BaseException as exc:  # reported by the main thread
            problems.append(exc)

    messages = [SocketMessage("ev", data={"i": i}) for i in range(MESSAGES)]
    reader = threading.Thread(target=drain, name="drain")
    reader.start()
    started = time.perf_counter()
    for message in messages:
        sender.send(message, wait=False)
    sender.flush(timeout=30)
    acked_s = time.perf_counter() - started
    reader.join(40)
    total_s = time.perf_counter() - started
    assert not reader.is_alive()
    assert problems == []
    assert received == list(range(MESSAGES))  # every one, in order
    rate = MESSAGES / total_s
    print(f"\n[throughput {transport}] {MESSAGES} messages, 1 sender -> hub -> 1 subscriber: "
          f"all acknowledged after {acked_s:.2f} s, all received after {total_s:.2f} s = "
          f"{rate:,.0f} messages/s")

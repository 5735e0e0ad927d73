"""Client semantics on real sockets, over both transports (the ``transport`` fixture).

Connecting and waiting for a hub, timeouts and the errors they raise, local filtering,
reconnection to a new hub, losing the hub, back-pressure, and the client's life cycle.
"""

from __future__ import annotations

import builtins
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sockcli
from sockcli import MessageType, SocketMessage
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from tests.helpers import wait_until

DATA = MessageType.DATA
ERROR = MessageType.ERROR
CONTROL = MessageType.CONTROL


def msg(n: Any, message_type: MessageType = DATA, event: str = "ev") -> SocketMessage:
    return SocketMessage(event, message_type=message_type, data={"n": n})


def ns(messages: list[SocketMessage]) -> list[Any]:
    return [m.data["n"] for m in messages]


def receive_n(client: Any, count: int, timeout: float = 5.0) -> list[SocketMessage]:
    return [client.receive(timeout=timeout) for _ in range(count)]


def expect_next(client: Any, n: Any, timeout: float = 5.0) -> None:
    got = client.receive(timeout=timeout)
    assert got.data.get("n") == n, f"expected marker {n!r}, got {got.data!r}"


def wait_clients(hub: Any, count: int) -> None:
    wait_until(lambda: len(hub.get_connected_clients()) == count,
               what=f"{count} connected clients")


# -- connecting ---------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_connect_to_no_hub_fails_after_timeout(make_client) -> None:
    client = make_client(connect=False)
    started = time.monotonic()
    with pytest.raises(sockcli.ConnectionError) as info:
        client.connect(timeout=0.5)
    elapsed = time.monotonic() - started
    assert isinstance(info.value, builtins.ConnectionError)
    assert not isinstance(info.value, sockcli.MaxConnectionsError)
    assert 0.45 <= elapsed < 2.0, elapsed
    assert not client.is_connected()
    with pytest.raises(builtins.ConnectionError):
        client.send(msg(1), timeout=0.5)


@pytest.mark.timeout(15)
def test_connect_waits_for_a_hub_that_starts_later(make_hub, make_client) -> None:
    hub = make_hub(start=False)
    client = make_client(connect=False, name="early")
    connecting = threading.Event()
    outcome: dict[str, Any] = {}

    def connect() -> None:
        connecting.set()
        started = time.monotonic()
        try:
            client.connect(timeout=5)
        except BaseException as exc:
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    def start_hub() -> None:
        connecting.wait(5)
        # The scenario itself, not a synchronisation: the hub comes up well after the
        # client's first (failed) attempt, so connect() has to retry.
        time.sleep(0.3)
        outcome["hub_started_at"] = time.monotonic()
        hub.start()

    threads = [threading.Thread(target=connect), threading.Thread(target=start_hub)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert "error" not in outcome, outcome.get("error")
    assert 0.3 <= outcome["elapsed"] < 5.0
    assert client.is_connected()
    infos = hub.get_connected_clients()
    assert [(i.name, i.client_id) for i in infos] == [("early", client.client_id)]
    hub.send(msg("hello"))
    expect_next(client, "hello")


@pytest.mark.timeout(10)
def test_connect_is_a_no_op_when_connected(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client()
    first_id = client.client_id
    client.connect(timeout=1)
    assert client.client_id == first_id
    wait_clients(hub, 1)
    assert [i.client_id for i in hub.get_connected_clients()] == [first_id]


# -- receiving --------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_receive_timeout_raises_builtin_compatible_timeout(make_hub, make_client) -> None:
    make_hub()
    client = make_client()
    started = time.monotonic()
    with pytest.raises(sockcli.TimeoutError):
        client.receive(timeout=0.2)
    assert time.monotonic() - started >= 0.19
    caught = False
    try:
        client.receive(timeout=0.05)
    except builtins.TimeoutError as exc:  # the built-in name catches ours
        caught = isinstance(exc, sockcli.SocketError)
    assert caught
    assert client.is_connected()  # a timeout is not a lost connection


@pytest.mark.timeout(10)
def test_pure_sender_cannot_receive(make_hub, make_client) -> None:
    make_hub()
    sender = make_client(subscribe=False)
    with pytest.raises(sockcli.SocketError):
        sender.receive(timeout=0.05)


@pytest.mark.timeout(15)
def test_receive_iter_filters_locally_and_ends_on_disconnect(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client()  # subscribes to everything: the filter below is local
    kinds = [DATA, ERROR, CONTROL, ERROR, DATA, DATA, ERROR, CONTROL]
    for i, kind in enumerate(kinds):
        hub.send(msg(i, kind))
    hub.send(msg("after", DATA))  # filtered out: the loop is left waiting for more
    expected = [i for i, k in enumerate(kinds) if k in (ERROR, CONTROL)]

    stop = threading.Event()

    def disconnect_when_told() -> None:
        if stop.wait(10):
            client.disconnect()

    stopper = threading.Thread(target=disconnect_when_told)
    stopper.start()
    got: list[SocketMessage] = []
    try:
        for message in client.receive_iter(types=["error", "control"], timeout=5):
            got.append(message)
            if message.data["n"] == expected[-1]:
                # The iterator then blocks in receive(); disconnect() from another thread
                # must end the loop cleanly (no exception, no timeout).
                stop.set()
    finally:
        stop.set()
        stopper.join(10)
    assert ns(got) == expected
    assert [m.message_type for m in got] == [kinds[i] for i in expected]
    assert not client.is_connected()


@pytest.mark.timeout(15)
def test_receive_iter_raises_timeout(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client()
    hub.send(msg(1, DATA))
    hub.send(msg(2, ERROR))
    got: list[int] = []
    with pytest.raises(sockcli.TimeoutError):
        for message in client.receive_iter(types=[MessageType.ERROR], timeout=0.3):
            got.append(message.data["n"])
    assert got == [2]


# -- reconnecting and losing the hub ----------------------------------------------------------


@pytest.mark.timeout(20)
def test_auto_reconnect_to_a_new_hub_keeps_name_and_filter(make_hub, make_client) -> None:
    hub1 = make_hub()
    client = make_client(name="watcher", types=["error"])
    sender = make_client(subscribe=False, auto_reconnect=False)
    wait_clients(hub1, 2)
    sender.send(msg("before", ERROR))
    expect_next(client, "before")
    assert client.reconnects == 0
    old_id = client.client_id

    hub1.stop()
    wait_until(lambda: not client.is_connected(), what="the client noticing the stop")
    assert client.reconnects == 0

    hub2 = make_hub()  # a new server object for the same event
    assert hub2 is not hub1
    wait_clients(hub2, 1)
    (info,) = hub2.get_connected_clients()
    assert info.name == "watcher"
    assert info.subscribed is True
    assert info.types == frozenset({ERROR})
    wait_until(client.is_connected, what="the client reconnected")
    assert client.reconnects == 1
    assert client.client_id == info.client_id
    assert old_id is not None

    hub2.send(msg("data-dropped-by-filter", DATA))
    hub2.send(msg("after", ERROR))
    expect_next(client, "after")
    # The old sender does not reconnect; a new one reaches the reconnected subscriber.
    with pytest.raises(sockcli.ConnectionError):
        sender.send(msg("stale"), timeout=1)
    new_sender = make_client(subscribe=False)
    new_sender.send(msg("relayed", DATA))
    new_sender.send(msg("relayed", ERROR))
    expect_next(client, "relayed")
    assert client.reconnects == 1


@pytest.mark.timeout(20)
def test_reconnected_subscriber_gets_what_the_new_hub_queued(make_hub, make_client) -> None:
    hub1 = make_hub()
    client = make_client(name="w")
    wait_clients(hub1, 1)
    hub1.stop()
    wait_until(lambda: not client.is_connected(), what="the client noticing the stop")
    hub2 = make_hub()
    # Either queued (client not back yet) or delivered directly: it must arrive, in order.
    for i in range(5):
        hub2.send(msg(i))
    assert ns(receive_n(client, 5)) == [0, 1, 2, 3, 4]
    assert client.reconnects == 1


@pytest.mark.timeout(20)
def test_send_waits_for_reconnection(make_hub, make_client) -> None:
    hub1 = make_hub()
    sender = make_client(subscribe=False, name="s")
    wait_clients(hub1, 1)
    hub1.stop()
    wait_until(lambda: not sender.is_connected(), what="the sender noticing the stop")
    with pytest.raises(sockcli.TimeoutError):
        sender.send(msg("no hub"), timeout=0.3)  # not silently lost: reported

    hub2 = make_hub()
    sender.send(msg("queued on the new hub"), timeout=5)
    assert sender.reconnects == 1
    listener = make_client()
    expect_next(listener, "queued on the new hub")
    assert hub2.stats()["received"] == 1


@pytest.mark.timeout(15)
def test_without_auto_reconnect_receive_raises_after_hub_stops(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client(auto_reconnect=False)
    wait_clients(hub, 1)
    hub.send(msg("last"))
    expect_next(client, "last")
    hub.stop()
    with pytest.raises(sockcli.ConnectionError):
        client.receive(timeout=5)
    with pytest.raises(builtins.ConnectionError):  # and it keeps saying so
        client.receive(timeout=5)
    assert not client.is_connected()
    assert client.reconnects == 0


@pytest.mark.timeout(15)
def test_send_after_hub_stopped_raises_connection_error(make_hub, make_client) -> None:
    hub = make_hub()
    sender = make_client(subscribe=False, auto_reconnect=False)
    wait_clients(hub, 1)
    sender.send(msg(1))
    hub.stop()
    # Whether the client has already noticed or finds out while sending, it must be told.
    with pytest.raises(sockcli.ConnectionError):
        for i in range(100):  # the first send may still fit in the kernel buffer
            sender.send(msg(i), timeout=5)
    wait_until(lambda: not sender.is_connected(), what="the sender noticing")
    with pytest.raises(sockcli.ConnectionError):
        sender.send(msg("again"), wait=False)


class _MortalHub:
    """A fake hub that welcomes one client, reads one message and dies without acknowledging.

    The only way to have a real connection lose a message for sure: a real hub always
    acknowledges what it read.
    """

    def __init__(self, transport: str, sock_dir: Path) -> None:
        if transport == "unix":
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(sock_dir / "ev.sock"))
            self.client_kwargs: dict[str, Any] = {}
        else:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.client_kwargs = {"host": "127.0.0.1", "port": self.listener.getsockname()[1]}
        self.listener.listen(4)
        self.listener.settimeout(10)
        self.got: list[fr.Frame] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(10)
                codec = Codec()
                hello = self._next(conn, codec)
                assert isinstance(hello, fr.Hello), hello
                conn.sendall(codec.send(fr.Welcome(client_id="c1", event_name="ev")))
                self.got.append(self._next(conn, codec))
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.listener.close()  # nothing listens any more: reconnection attempts fail

    @staticmethod
    def _next(conn: socket.socket, codec: Codec) -> Any:
        while True:
            event = codec.next_event()
            if event is CLOSED:
                raise EOFError
            if event is not NEED_DATA:
                return event
            codec.receive_data(conn.recv(65536))


@pytest.fixture
def mortal_hub(transport: str, sock_dir: Path) -> Iterator[_MortalHub]:
    hub = _MortalHub(transport, sock_dir)
    yield hub
    with contextlib.suppress(OSError):
        hub.listener.close()
    hub.thread.join(10)


def _fake_listener(transport: str, sock_dir: Path) -> tuple[socket.socket, dict[str, Any]]:
    """A listening socket where the client of ``make_client(**kwargs)`` will look for its hub."""
    if transport == "unix":
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sock_dir / "ev.sock"))
        kwargs: dict[str, Any] = {}
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        kwargs = {"host": "127.0.0.1", "port": listener.getsockname()[1]}
    listener.listen(4)
    return listener, kwargs


@pytest.mark.timeout(10)
def test_connect_to_a_silent_hub_raises_connection_error(make_client, transport,
                                                          sock_dir) -> None:
    # Something accepts connections (the kernel does, from the backlog) but never answers the
    # hello: "no hub answered in time" is a ConnectionError, like no hub at all.
    listener, kwargs = _fake_listener(transport, sock_dir)
    try:
        client = make_client(connect=False, **kwargs)
        started = time.monotonic()
        with pytest.raises(sockcli.ConnectionError):
            client.connect(timeout=0.5)
        assert 0.45 <= time.monotonic() - started < 3.0
        assert not client.is_connected()
    finally:
        listener.close()


@pytest.mark.timeout(15)
@pytest.mark.parametrize("auto_reconnect", [False, True])
def test_message_lost_before_ack_raises_connection_error(mortal_hub, make_client,
                                                         auto_reconnect) -> None:
    sender = make_client(subscribe=False, auto_reconnect=auto_reconnect,
                         **mortal_hub.client_kwargs)
    started = time.monotonic()
    with pytest.raises(sockcli.ConnectionError):
        sender.send(msg("doomed"), timeout=5)
    assert time.monotonic() - started < 4, "the loss must be reported, not timed out"
    mortal_hub.thread.join(5)
    assert mortal_hub.errors == []
    (frame,) = mortal_hub.got
    assert isinstance(frame, fr.MessageFrame) and frame.message.data == {"n": "doomed"}


@pytest.mark.timeout(15)
def test_flush_reports_messages_lost_before_ack(mortal_hub, make_client) -> None:
    sender = make_client(subscribe=False, auto_reconnect=False, **mortal_hub.client_kwargs)
    sender.send(msg("doomed"), wait=False)
    with pytest.raises(sockcli.ConnectionError):
        sender.flush(timeout=5)
    mortal_hub.thread.join(5)
    assert mortal_hub.errors == []


# -- refused messages ---------------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_oversized_message_is_refused_locally_and_flush_still_works(make_hub,
                                                                     make_client) -> None:
    hub = make_hub(buffer_size=2048)
    listener = make_client(buffer_size=2048)
    sender = make_client(subscribe=False, buffer_size=2048)
    big = SocketMessage("ev", data={"blob": "x" * 4096})
    with pytest.raises(sockcli.MessageError) as info:
        sender.send(big, wait=False)
    assert info.value.code == "frame_too_large"
    started = time.monotonic()
    sender.flush(timeout=3)  # nothing was sent, so nothing is pending
    assert time.monotonic() - started < 1
    with pytest.raises(sockcli.MessageError):
        hub.send(big)
    sender.send(msg("small"))
    expect_next(listener, "small")
    assert sender.reconnects == 0


@pytest.mark.timeout(15)
def test_data_the_protocol_cannot_carry_is_a_message_error(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    sender = make_client(subscribe=False)
    wait_clients(hub, 2)
    for bad in ({"raw": b"bytes"}, {"nested": {"set": {1, 2}}}):
        with pytest.raises(sockcli.MessageError) as info:
            sender.send(SocketMessage("ev", data=bad))
        assert info.value.code == "invalid_message"
        with pytest.raises(sockcli.MessageError):
            hub.send(SocketMessage("ev", data=bad))
    sender.flush(timeout=3)
    # Refused, not fatal: the same connection goes on.
    sender.send(msg("fine"))
    expect_next(listener, "fine")
    assert sender.reconnects == 0
    assert hub.stats()["received"] == 1


# -- back-pressure --------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_bounded_receive_buffer_loses_nothing(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client(receive_buffer_size=5)
    wait_clients(hub, 1)
    count = 200
    for i in range(count):
        hub.send(msg(i))
    # The hub handed every frame on; the client holds no more than its buffer, the rest
    # waits in the socket (white-box: the buffer is the only place to look).
    wait_until(lambda: hub.stats()["delivered"] == count, what="every message handed on")
    wait_until(lambda: client._inbox.qsize() == 5, what="a full receive buffer")
    assert client._inbox.qsize() == 5
    assert ns(receive_n(client, count)) == list(range(count))
    hub.send(msg("end"))
    expect_next(client, "end")
    stats = hub.stats()
    assert (stats["dropped_clients"], stats["dropped"]) == (0, 0)


# -- concurrency ------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_one_client_sends_from_many_threads(make_hub, make_client) -> None:
    hub = make_hub()
    listener = make_client()
    sender = make_client(subscribe=False)
    wait_clients(hub, 2)
    threads_n, per_thread = 4, 100
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                sender.send(SocketMessage("ev", data={"t": t, "i": i}), wait=(i % 2 == 0))
            sender.flush()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    got = receive_n(listener, threads_n * per_thread)
    for th in threads:
        th.join(10)
    assert errors == []
    for t in range(threads_n):
        assert [m.data["i"] for m in got if m.data["t"] == t] == list(range(per_thread))
    assert hub.stats()["received"] == threads_n * per_thread


# -- life cycle ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_is_connected_transitions(make_hub, make_client) -> None:
    hub1 = make_hub()
    client = make_client(connect=False)
    assert not client.is_connected()
    client.connect(timeout=5)
    assert client.is_connected()
    hub1.stop()
    wait_until(lambda: not client.is_connected(), what="disconnected after hub stop")
    make_hub()
    wait_until(client.is_connected, what="connected again after a new hub started")
    client.disconnect()
    assert not client.is_connected()
    client.connect(timeout=5)  # a disconnected client may connect again
    assert client.is_connected()
    client.disconnect()
    assert not client.is_connected()


@pytest.mark.timeout(10)
def test_client_context_manager(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client(connect=False, name="ctx")
    with client as entered:
        assert entered is client
        assert client.is_connected()
        wait_clients(hub, 1)
        hub.send(msg("inside"))
        expect_next(client, "inside")
    assert not client.is_connected()
    wait_clients(hub, 0)
    with pytest.raises(sockcli.ConnectionError):
        client.receive(timeout=1)


@pytest.mark.timeout(10)
def test_disconnect_is_idempotent(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client()
    never_connected = make_client(connect=False)
    never_connected.disconnect()
    never_connected.disconnect()
    wait_clients(hub, 1)
    client.disconnect()
    client.disconnect()
    assert not client.is_connected()
    wait_clients(hub, 0)
    with pytest.raises(sockcli.ConnectionError):
        client.receive(timeout=1)
    with pytest.raises(sockcli.ConnectionError):
        client.send(msg("after"), timeout=1)
    assert client.reconnects == 0


@pytest.mark.timeout(15)
def test_reconnect_by_hand_after_disconnect_receives_again(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client()
    client.disconnect()
    with pytest.raises(sockcli.ConnectionError):
        client.receive(timeout=1)
    client.connect(timeout=5)
    wait_clients(hub, 1)
    hub.send(msg("second life"))
    expect_next(client, "second life")  # not the stale "disconnected" of the first life


@pytest.mark.timeout(15)
def test_connect_by_hand_after_losing_the_hub(make_hub, make_client) -> None:
    hub1 = make_hub()
    client = make_client(auto_reconnect=False)
    hub1.stop()
    with pytest.raises(sockcli.ConnectionError):
        client.receive(timeout=5)
    wait_until(lambda: not client.is_connected(), what="the client noticing")
    hub2 = make_hub()
    client.connect(timeout=5)
    hub2.send(msg("new hub"))
    expect_next(client, "new hub")


@pytest.mark.timeout(15)
def test_losing_the_hub_keeps_messages_already_received(make_hub, make_client) -> None:
    hub = make_hub()
    client = make_client(auto_reconnect=False, receive_buffer_size=5)
    wait_clients(hub, 1)
    for i in range(5):
        hub.send(msg(i))
    wait_until(lambda: client._inbox.qsize() == 5, what="a full receive buffer")
    hub.stop()
    wait_until(lambda: not client.is_connected(), what="the client noticing")
    # Received before the loss: still readable, all of them, then the loss is reported.
    assert ns(receive_n(client, 5)) == [0, 1, 2, 3, 4]
    with pytest.raises(sockcli.ConnectionError):
        client.receive(timeout=5)
    client.disconnect()
    with pytest.raises(sockcli.ConnectionError):  # two markers in a buffer of 5: no overflow
        client.receive(timeout=5)


@pytest.mark.timeout(15)
def test_disconnect_during_a_reconnection_handshake_closes_it(make_client, transport,
                                                               sock_dir) -> None:
    """disconnect() while the reader is mid-handshake with a new hub: the new connection
    must be closed too, and the client must not end up "connected"."""
    listener, kwargs = _fake_listener(transport, sock_dir)
    listener.settimeout(10)
    second_hello = threading.Event()
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def serve() -> None:
        try:
            for n in (1, 2):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    codec = Codec()
                    hello = _MortalHub._next(conn, codec)
                    assert isinstance(hello, fr.Hello), hello
                    if n == 2:
                        second_hello.set()
                        release.wait(10)
                    conn.sendall(codec.send(fr.Welcome(client_id=f"c{n}", event_name="ev")))
                    if n == 2:  # then: is the client's end closed?
                        outcome["eof"] = conn.recv(65536) == b""
                # leaving the with block closes the first connection: the client reconnects
        except BaseException as exc:
            outcome["error"] = exc

    server = threading.Thread(target=serve)
    server.start()
    client = make_client(**kwargs)
    try:
        assert second_hello.wait(10), "the client did not reconnect"
        stopper = threading.Thread(target=client.disconnect)
        stopper.start()
        # White-box: the only sign that disconnect() began is the client's closed flag.
        wait_until(client._closed.is_set, what="disconnect() under way")
        release.set()
        stopper.join(10)
        server.join(10)
    finally:
        release.set()
        listener.close()
    assert "error" not in outcome, outcome.get("error")
    assert not client.is_connected()
    assert outcome.get("eof") is True, "the connection made during disconnect() was leaked"

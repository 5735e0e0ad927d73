"""sockcli/cli/subscriber.py, listen's one-thread subscriber, against a scripted hub: the
messages that come with the welcome, batch frames, pings, the hub's errors and what is said
of them, reconnection, a lost hub, bad frames; and the same messages as the library's
threaded client is given for the same frames."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sockcli.cli.subscriber import DEBUG, INFO, WARNING, Received, Subscriber
from sockcli.client.tcp import TcpSocketClient
from sockcli.exceptions import ConnectionError, TimeoutError
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec

pytestmark = pytest.mark.timeout(30)

FEATURES = ("ack", "stats", "ping", "unicast", "slow", "retain", "peek", "tap", "batch")
STAMP, ISO = 1_790_000_000_000, "2026-09-21T14:13:20.000+00:00"

#: One connection's script: given the socket, the codec and the hello, it talks to the client.
Script = Callable[[socket.socket, Codec, dict[str, Any]], None]


def message(n: int, kind: str = "data", **extra: Any) -> dict[str, Any]:
    return {"kind": "message", "event_name": "ev", "timestamp_ms": STAMP + n,
            "timestamp_iso": ISO, "message_type": kind, "data": {"n": n}, **extra}


def welcome(codec: Codec) -> bytes:
    return codec.send(fr.Welcome(client_id="c1", event_name="ev", features=FEATURES))


def read_frame(sock: socket.socket, codec: Codec) -> Any:
    while True:
        m = codec.next_map()
        if m is not NEED_DATA:
            return m
        data = sock.recv(65536)
        if not data:
            return CLOSED
        codec.receive_data(data)


class ScriptedHub:
    """A TCP hub that plays one script per connection, in order, and keeps each hello and
    every frame it was sent afterwards."""

    def __init__(self, scripts: list[Script]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.scripts = scripts
        self.hellos: list[dict[str, Any]] = []
        self.received: list[Any] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                codec = Codec()
                hello = read_frame(sock, codec)
                self.hellos.append(hello)
                script(sock, codec, hello)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(5)


@pytest.fixture
def play() -> Iterator[Callable[..., ScriptedHub]]:
    hubs: list[ScriptedHub] = []

    def start(*scripts: Script) -> ScriptedHub:
        hub = ScriptedHub(list(scripts))
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.close()


def subscriber(hub: ScriptedHub, said: list[tuple[int, str]], **kwargs: Any) -> Subscriber:
    def log(level: int, text: str, *args: Any) -> None:
        said.append((level, text % args))

    sub = Subscriber("ev", socket_dir="/nonexistent", connect=("127.0.0.1", hub.port),
                     reconnect_max_delay=0.05, log=log, **kwargs)
    sub.connect(timeout=5)
    return sub


def hold(sock: socket.socket, codec: Codec, hub: ScriptedHub | None = None) -> None:
    """Keep the connection until the client closes it, keeping what it sends."""
    while (m := read_frame(sock, codec)) is not CLOSED:
        if hub is not None:
            hub.received.append(m)


def test_messages_that_come_with_the_welcome_and_in_batches(play) -> None:
    def script(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        # The welcome and two queued messages in one write: one read takes all three.
        sock.sendall(welcome(codec) + codec.pack_map(message(1)) +
                     codec.pack_map(message(2, "error", retained=True)))
        sock.sendall(codec.pack_map({"kind": "batch", "event_name": "ev",
                                     "timestamp_ms": STAMP, "timestamp_iso": ISO,
                                     "message_type": "control",
                                     "items": [{"n": 3}, {"n": 4}, {"n": 5}]}))
        hold(sock, codec)

    hub = play(script)
    said: list[tuple[int, str]] = []
    sub = subscriber(hub, said, types=("error", "control", "data"), name="me", slow="latest",
                     last=True, max_frame_size=4096)
    got = sub.receive_many(10, timeout=5)
    got += sub.receive_many(10, timeout=5) if len(got) < 5 else []
    assert all(isinstance(m, Received) for m in got)
    assert [m.as_dict() for m in got] == [
        {"event_name": "ev", "timestamp_ms": STAMP + 1, "timestamp_iso": ISO,
         "message_type": "data", "data": {"n": 1}},
        {"event_name": "ev", "timestamp_ms": STAMP + 2, "timestamp_iso": ISO,
         "message_type": "error", "data": {"n": 2}, "retained": True},
        *({"event_name": "ev", "timestamp_ms": STAMP, "timestamp_iso": ISO,
           "message_type": "control", "data": {"n": n}} for n in (3, 4, 5))]
    assert (got[1].retained, got[2].message_type.value) == (True, "control")
    hello = hub.hellos[0]
    assert (hello["subscribe"], sorted(hello["types"]), hello["name"], hello["slow"],
            hello["last"], hello["batch"]) == (True, ["control", "data", "error"], "me",
                                               "latest", True, 4096)
    assert said == []
    sub.disconnect()


def test_limit_and_timeout(play) -> None:
    def script(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + b"".join(codec.pack_map(message(n)) for n in range(5)))
        hold(sock, codec)

    sub = subscriber(play(script), [])
    assert [m.data["n"] for m in sub.receive_many(2, timeout=5)] == [0, 1]
    assert [m.data["n"] for m in sub.receive_many(10, timeout=5)] == [2, 3, 4]
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sub.receive_many(10, timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2
    sub.disconnect()


def test_pings_are_answered(play) -> None:
    def script(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + codec.send(fr.Ping(token=42)) +
                     codec.pack_map(message(1)))
        hub.received.append(read_frame(sock, codec))
        hold(sock, codec)

    hub = play(script)
    sub = subscriber(hub, [])
    assert [m.data for m in sub.receive_many(10, timeout=5)] == [{"n": 1}]
    deadline = time.monotonic() + 5
    while not hub.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hub.received == [{"kind": "pong", "token": 42}]
    sub.disconnect()


def test_errors_said_and_the_hub_followed_across_a_restart(play) -> None:
    def first(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + codec.pack_map(message(1)) +
                     codec.send(fr.ErrorFrame(code="unknown_recipient", reason="no bar")) +
                     codec.send(fr.ErrorFrame(code=fr.ErrorCode.SHUTTING_DOWN,
                                              reason="hub stopping", fatal=True)))

    def refused(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.close()  # back, but gone during the handshake: tried again

    def second(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + codec.pack_map(message(2)))
        hold(sock, codec)

    said: list[tuple[int, str]] = []
    sub = subscriber(play(first, refused, second), said)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        try:
            got += sub.receive_many(10, timeout=0.5)
        except TimeoutError:
            continue
    assert [m.data["n"] for m in got] == [1, 2]
    assert said == [(WARNING, "hub ev: no bar (unknown_recipient)"),
                    (INFO, "hub ev is stopping; reconnecting"),
                    (INFO, "reconnected to hub ev")]
    sub.disconnect()


def test_a_lost_hub_without_reconnect_is_lost_for_good(play) -> None:
    def script(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + codec.pack_map(message(1)) +
                     codec.send(fr.ErrorFrame(code=fr.ErrorCode.SHUTTING_DOWN,
                                              reason="hub stopping", fatal=True)))

    said: list[tuple[int, str]] = []
    sub = subscriber(play(script), said, auto_reconnect=False)
    assert [m.data for m in sub.receive_many(10, timeout=5)] == [{"n": 1}]
    for _ in range(2):  # and every later call is told too
        with pytest.raises(ConnectionError, match="lost the hub of 'ev'"):
            sub.receive_many(10, timeout=5)
    assert said == [(INFO, "hub ev is stopping")]


def test_a_bad_frame_ends_the_connection_and_an_unknown_type_is_learnt(play) -> None:
    def first(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + codec.pack_map(message(1, "weird-kind")) +
                     codec.pack_map({**message(2), "data": [1, 2]}))

    def second(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + codec.pack_map(message(3)))
        hold(sock, codec)

    said: list[tuple[int, str]] = []
    sub = subscriber(play(first, second), said)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        got += sub.receive_many(10, timeout=5)
    assert [(m.message_type.value, m.data) for m in got] == [("weird-kind", {"n": 1}),
                                                            ("data", {"n": 3})]
    assert [level for level, _ in said] == [WARNING, INFO]
    assert said[0][1].startswith("bad frame from hub ev: ")
    assert DEBUG not in [level for level, _ in said]
    sub.disconnect()


def test_the_same_messages_as_the_library_client(play) -> None:
    """The frames a hub may send, through Subscriber and through the threaded client: the
    same records, in the same order."""
    frames = [message(1), message(2, "error", retained=True),
              {"kind": "batch", "event_name": "ev", "timestamp_ms": STAMP,
               "timestamp_iso": ISO, "message_type": "data",
               "items": [{"n": 3}, {"n": 4, "x": [1.5, None, "é"]}]},
              message(5, "control"), message(6, "other-kind")]

    def script(sock: socket.socket, codec: Codec, hello: dict[str, Any]) -> None:
        sock.sendall(welcome(codec) + b"".join(codec.pack_map(m) for m in frames))
        hold(sock, codec)

    def records(receive: Callable[[], list[Any]]) -> list[dict[str, Any]]:
        got: list[Any] = []
        while len(got) < 6:
            got += receive()
        return [m.as_dict() for m in got]

    hub = play(script, script)
    sub = subscriber(hub, [])
    ours = records(lambda: sub.receive_many(10, timeout=5))
    sub.disconnect()
    client = TcpSocketClient("ev", host="127.0.0.1", port=hub.port, subscribe=True)
    client.connect(timeout=5)
    try:
        theirs = records(lambda: client.receive_many(10, timeout=5))
    finally:
        client.disconnect()
    assert ours == theirs
    assert len(ours) == 6

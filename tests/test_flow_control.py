"""Flow control (docs/RELIABILITY.md): a subscriber that keeps reading, however slowly, loses
nothing, because the hub holds publishers back while it is behind; one that reads nothing for
``slow_consumer_timeout`` is dropped and told how much it missed; ``slow="latest"`` keeps the
newest message per type instead, and ``slow="drop"`` drops at once.

Real hubs, real clients and, for subscribers that must not read, hand-driven peers.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from sockcli import SocketMessage
from sockcli.protocol import frames as fr
from tests.clitools import read_line
from tests.helpers import RawPeer, wait_until

PAD = "x" * 200  # ~300 bytes a message: a few thousand fill a 64 KiB limit and the kernel's


def message(i: int, kind: str = "data") -> SocketMessage:
    return SocketMessage("ev", message_type=kind, data={"i": i, "pad": PAD})


def receive_all(client: Any, n: int, into: list[int]) -> None:
    while len(into) < n:
        into.extend(m.data["i"] for m in client.receive_many(1024, timeout=60))


@pytest.mark.timeout(120)
def test_a_slow_reader_loses_nothing_and_the_sender_is_held_back(make_hub, make_client) -> None:
    n = 20_000
    hub = make_hub(send_buffer_limit=64 * 1024, slow_consumer_timeout=30)
    slow = make_client(receive_buffer_size=8, name="slow")  # its reader blocks at 8 messages
    fast = make_client(name="fast")
    sender = make_client(subscribe=False)
    got_slow: list[int] = []
    got_fast: list[int] = []
    release = threading.Event()

    def read_slowly() -> None:
        release.wait(60)  # not a byte read until the sender is held back
        receive_all(slow, n, got_slow)

    def watch() -> None:
        wait_until(lambda: hub.stats()["holding"] == 1, 30, "the hub to hold back")
        release.set()

    readers = [threading.Thread(target=read_slowly),
               threading.Thread(target=receive_all, args=(fast, n, got_fast))]
    watcher = threading.Thread(target=watch)
    for t in (*readers, watcher):
        t.start()
    try:
        for i in range(n):
            sender.send(message(i), wait=False)  # blocks while the hub holds it back
        sender.flush(60)  # every message acknowledged: none lost on the way
    finally:
        watcher.join(60)
        release.set()
        for t in readers:
            t.join(60)
    assert release.is_set()
    assert got_slow == list(range(n))
    assert got_fast == list(range(n))
    stats = hub.stats()
    assert (stats["dropped_clients"], stats["missed"], stats["holding"]) == (0, 0, 0)


@pytest.mark.timeout(60)
def test_a_stalled_subscriber_is_dropped_and_told_what_it_missed(make_hub, make_client) -> None:
    n = 30_000  # 9 MB: more than the kernel's socket buffers hold, on TCP too
    hub = make_hub(send_buffer_limit=64 * 1024, slow_consumer_timeout=1)
    stalled = RawPeer.for_hub(hub)
    try:
        stalled.hello(subscribe=True)  # and then it reads nothing
        reader = make_client(name="reader")
        sender = make_client(subscribe=False)
        got: list[int] = []
        t = threading.Thread(target=receive_all, args=(reader, n, got))
        t.start()
        for i in range(n):
            sender.send(message(i), wait=False)
        # Held back while the stalled one was behind, then let go once it was dropped: every
        # acknowledgement comes, although flush's timeout is shorter than the hold.
        sender.flush(0.5)
        t.join(30)
        assert got == list(range(n))
        stats = hub.stats()
        assert stats["dropped_clients"] == 1 and stats["missed"] > 0
        # What the stalled subscriber finds when it finally reads: messages, then why.
        frames = []
        while (frame := stalled.next_frame()) is not None:
            frames.append(frame)
        error = frames[-1]
        assert isinstance(error, fr.ErrorFrame) and error.fatal
        assert error.code == fr.ErrorCode.SLOW_CONSUMER
        assert "slow_consumer_timeout" in error.reason
        assert f"{stats['missed']} messages for this subscriber were discarded" in error.reason
        received = [f.message.data["i"] for f in frames if isinstance(f, fr.MessageFrame)]
        assert received == list(range(len(received)))  # in order, a prefix, then nothing
        assert len(received) + stats["missed"] <= n  # those after the drop were never its
    finally:
        stalled.close()


@pytest.mark.timeout(60)
def test_latest_keeps_the_newest_message_of_each_type(make_hub, make_client) -> None:
    n = 30_000
    hub = make_hub(send_buffer_limit=64 * 1024, slow_consumer_timeout=1)
    bar = RawPeer.for_hub(hub)
    try:
        bar.hello(subscribe=True, slow="latest")
        sender = make_client(subscribe=False)
        for i in range(n):
            sender.send(message(i, "data" if i % 2 else "error"), wait=False)
        sender.flush(10)  # never held back for a "latest" subscriber
        stats = hub.stats()
        assert stats["holding"] == 0 and stats["replaced"] > 0
        last_of: dict[str, int] = {}
        seen = 0
        while seen < n - stats["replaced"]:
            frame = bar.next_frame()
            assert isinstance(frame, fr.MessageFrame), frame
            last_of[frame.message.message_type.value] = frame.message.data["i"]
            seen += 1
        assert last_of == {"error": n - 2, "data": n - 1}  # the current value of each type
        assert hub.stats()["dropped_clients"] == 0
    finally:
        bar.close()


@pytest.mark.timeout(60)
def test_drop_drops_a_subscriber_that_falls_behind(make_hub, make_client) -> None:
    hub = make_hub(send_buffer_limit=64 * 1024, slow_consumer_timeout=30)
    peer = RawPeer.for_hub(hub)
    try:
        peer.hello(subscribe=True, slow="drop")
        sender = make_client(subscribe=False)
        for i in range(30_000):
            sender.send(message(i), wait=False)
        sender.flush(10)  # not held back: it was dropped instead
        assert hub.stats()["dropped_clients"] == 1
        frames = []
        while (frame := peer.next_frame()) is not None:
            frames.append(frame)
        assert isinstance(frames[-1], fr.ErrorFrame)
        assert frames[-1].code == fr.ErrorCode.SLOW_CONSUMER
        assert "more than 65536 bytes were waiting" in frames[-1].reason
    finally:
        peer.close()


@pytest.mark.timeout(60)
def test_one_message_larger_than_the_limit_is_delivered(make_hub, make_client) -> None:
    make_hub(send_buffer_limit=64 * 1024, buffer_size=1024 * 1024)
    listener = make_client(buffer_size=1024 * 1024)
    sender = make_client(subscribe=False, buffer_size=1024 * 1024)
    big = "y" * (300 * 1024)
    for _ in range(3):
        sender.send(SocketMessage("ev", data={"big": big}))
    assert [len(listener.receive(10).data["big"]) for _ in range(3)] == [len(big)] * 3


def test_a_hello_with_an_unknown_slow_mode_is_refused(make_hub) -> None:
    hub = make_hub()
    peer = RawPeer.for_hub(hub)
    try:
        peer.send_raw(peer.codec.pack_map({"kind": "hello", "version": 1, "subscribe": True,
                                           "slow": "sometimes"}))
        error = peer.next_frame()
        assert isinstance(error, fr.ErrorFrame) and error.fatal
        assert "'slow' must be one of wait, latest, drop" in error.reason
    finally:
        peer.close()


def test_the_welcome_says_how_long_the_hub_may_hold_a_publisher(make_hub) -> None:
    hub = make_hub(slow_consumer_timeout=7)
    peer = RawPeer.for_hub(hub)
    try:
        welcome = peer.hello()
        assert welcome.slow_consumer_timeout == 7.0 and "slow" in welcome.features
    finally:
        peer.close()


_SLOW_READER = r"""
import sys, time
n = 0
for line in sys.stdin:
    n += 1
    if n % 200 == 0:
        time.sleep(0.004)  # slower than the writer: 100,000 lines take two seconds
    last = line
print(n, last.strip())
"""


@pytest.mark.timeout(180)
def test_100000_lines_into_a_slow_listener_arrive_complete_and_in_order(cli: Any) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "100000", stdout=subprocess.PIPE)
    reader = subprocess.Popen([sys.executable, "-c", _SLOW_READER], stdin=listener.stdout,
                              stdout=subprocess.PIPE, text=True)
    assert listener.stdout is not None
    listener.stdout.close()  # the reader owns the pipe now
    lines = "".join(f'{{"i": {i}, "pad": "{PAD}"}}\n' for i in range(100_000))
    done = cli.run("send", "ev", "--lines", input=lines, timeout=150)
    assert done.returncode == 0, done.stderr
    out, _ = reader.communicate(timeout=150)
    count, last = out.split(" ", 1)
    assert int(count) == 100_000
    assert '"i": 99999' in last
    assert listener.wait(30) == 0
    assert cli.list_json()[0]["dropped"] == 0


@pytest.mark.timeout(60)
def test_listen_says_how_many_messages_it_missed(cli: Any) -> None:
    settings = cli.config_home / "sockcli" / "settings.toml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("send_buffer_limit = 65536\nslow_consumer_timeout = 1\n")
    cli.serve("ev")
    listener = cli.listen("ev", stdout=subprocess.DEVNULL)
    listener.send_signal(signal.SIGSTOP)  # reads nothing at all
    try:
        lines = "".join(f'{{"i": {i}, "pad": "{PAD}"}}\n' for i in range(6_000))
        done = cli.run("send", "ev", "--lines", input=lines, timeout=40)
        assert done.returncode == 0, done.stderr  # held back, then let go: all acknowledged
    finally:
        listener.send_signal(signal.SIGCONT)
    while True:
        line = read_line(listener, "stderr", 20)
        if "slow_consumer" in line:
            break
    assert "messages for this subscriber were discarded" in line
    assert "read nothing for 1 s" in line


def test_the_slow_mode_is_a_choice_of_listen(cli: Any) -> None:
    done = cli.run("listen", "ev", "--slow", "sometimes")
    assert done.returncode == 2
    assert "'sometimes' is not one of 'wait', 'latest', 'drop'" in done.stderr


@pytest.mark.timeout(60)
def test_send_lines_says_which_lines_were_acknowledged_when_the_hub_goes(cli: Any) -> None:
    from tests.clitools import error_line, read_json, rest, stop

    hub = cli.serve("ev")
    listener = cli.listen("ev")
    sender = cli.popen("send", "ev", "--lines", stdin=subprocess.PIPE)
    assert sender.stdin is not None
    for n in (1, 2):
        sender.stdin.write(f'{{"n": {n}}}\n')
        sender.stdin.flush()
        assert read_json(listener)["data"] == {"n": n}
    cli.list_json()  # a round trip through the hub: the acknowledgements of 1 and 2 are out
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    sender.stdin.write('{"n": 3}\n\n{"n": 4}\n')
    sender.stdin.close()
    assert sender.wait(20) == 75
    line = error_line(rest(sender, "stderr"))
    assert line.endswith("; lines 1-2 acknowledged; 3-5 not: resend from line 3"), line


@pytest.mark.timeout(60)
def test_a_client_that_does_not_read_its_replies_is_not_read(make_hub, make_client) -> None:
    """Replies count: a flood of stats requests whose replies are never read stops being read
    once send_buffer_limit bytes of replies wait, and the client is dropped after
    slow_consumer_timeout; the hub does not grow, and others are served all along."""
    hub = make_hub(send_buffer_limit=64 * 1024, slow_consumer_timeout=1)
    flooder = RawPeer.for_hub(hub)
    other = make_client(name="other")
    sender = make_client(subscribe=False)
    try:
        flooder.hello()
        requests = flooder.codec.send(fr.StatsRequest()) * 1_000_000  # 7 MB: 400 MB of replies
        def flood() -> None:
            # Blocks once the hub stops reading it; once dropped, the hub reads and discards
            # the rest until it closes the connection.
            with contextlib.suppress(OSError):
                flooder.sock.sendall(requests)

        t = threading.Thread(target=flood)
        t.start()
        sender.send(message(1))  # served while the flood waits
        assert other.receive(10).data["i"] == 1
        wait_until(lambda: hub.stats()["dropped_clients"] == 1, 30, "the flooder's drop")
        t.join(30)
        frames = []
        while (frame := flooder.next_frame()) is not None:
            frames.append(frame)
        assert isinstance(frames[-1], fr.ErrorFrame)
        assert "read none of the hub's replies" in frames[-1].reason
        replies = sum(isinstance(f, fr.Stats) for f in frames)
        assert replies < 1_000_000 // 10  # a small part: the rest was never read
    finally:
        flooder.close()

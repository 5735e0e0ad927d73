"""Slow and dead peers: subscribers that never read, listeners and hubs killed with SIGKILL.

What already has its test elsewhere is not repeated here: a hub killed while ``send --lines``
streams makes the sender exit 75 (tests/test_cli_send.py), SIGTERM and SIGINT stop a hub
cleanly and remove its files (tests/test_cli_serve.py), the stale socket and record of a
killed hub are replaced by the next library hub (tests/test_unix.py, tests/test_tcp.py).
Figures are printed (run with -s) and quoted in docs/RELIABILITY.md.
"""

from __future__ import annotations

import selectors
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sockcli import SocketMessage, create_client
from sockcli.client.oneshot import Sender
from sockcli.exceptions import MessageError
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from tests.clitools import read_json, stop, transport_args
from tests.helpers import RawPeer, wait_until

# -- a subscriber that never reads ----------------------------------------------------------


def stalled_peer(address: str, rcvbuf: int = 4096) -> socket.socket:
    """A subscriber with a small receive buffer that says hello, reads its welcome, and then
    never reads again."""
    if address.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = address
    else:
        host, _, port = address.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    sock.settimeout(10)
    sock.connect(target)
    codec = Codec()
    sock.sendall(codec.send(fr.Hello(subscribe=True, name="stalled")))
    while (event := codec.next_event()) is NEED_DATA:
        codec.receive_data(sock.recv(1))  # byte by byte: nothing after the welcome is taken
    assert isinstance(event, fr.Welcome), event
    return sock


def read_to_end(sock: socket.socket) -> list[Any]:
    """Every frame left on ``sock`` until the hub closes it; a MessageError if the stream is
    not well-formed."""
    codec = Codec(max_frame_size=1 << 20)
    frames: list[Any] = []
    while True:
        event = codec.next_event()
        if event is CLOSED:
            return frames
        if event is NEED_DATA:
            try:
                codec.receive_data(sock.recv(1 << 20))
            except ConnectionResetError:
                codec.receive_data(b"")
            continue
        frames.append(event)


@pytest.mark.timeout(30)
def test_subscriber_that_never_reads_is_dropped_and_others_get_everything(
        make_hub, make_client) -> None:
    # send_buffer_limit: 4 MiB; the stalled one holds the sender back until it is dropped.
    # insecure: the stalled raw peer says hello only (no per-hub secret to prove).
    hub = make_hub(slow_consumer_timeout=1, insecure=True)
    listener = make_client(name="fast")
    sender = make_client(subscribe=False)
    stalled = stalled_peer(hub.address)
    wait_until(lambda: len(hub.get_connected_clients()) == 3, what="three clients")
    count, pad = 10_000, "x" * 1000  # 10 MB: more than the limit and the kernel's buffers
    received: list[int] = []
    leftovers: list[Any] = []

    def drain() -> None:
        for _ in range(count):
            received.append(listener.receive(timeout=20).data["n"])

    def autopsy() -> None:
        # The stalled subscriber reads at last once the hub has dropped it, within the grace
        # the hub gives a dropped client to read why.
        wait_until(lambda: hub.stats()["dropped_clients"] == 1, timeout=20, what="the drop")
        try:
            leftovers.extend(read_to_end(stalled))
        except MessageError as exc:
            leftovers.append(exc)

    reader = threading.Thread(target=drain)
    reader.start()
    examiner = threading.Thread(target=autopsy)
    examiner.start()
    started = time.monotonic()
    for n in range(count):
        sender.send(SocketMessage("ev", data={"n": n, "pad": pad}), wait=False)
        if n % 250 == 249:
            sender.flush(timeout=20)  # the hub never waits on the stalled subscriber
            # The listener stays within 1,000 messages (1 MB, a quarter of the limit) of the
            # sender: a fast subscriber by construction, on this busy shared interpreter.
            wait_until(lambda n=n: len(received) >= n - 1000, timeout=20,
                       what="the listener to keep up")
    sender.flush(timeout=20)
    acked_s = time.monotonic() - started
    reader.join(30)
    assert received == list(range(count))
    stats = hub.stats()
    assert stats["dropped_clients"] == 1
    assert {c.name for c in hub.get_connected_clients()} == {"fast", None}
    # What the stalled subscriber found: whole frames, the first messages in order, then why
    # it was dropped, then the end of the stream.
    examiner.join(20)
    stalled.close()
    assert leftovers and not isinstance(leftovers[-1], MessageError), leftovers[-1:]
    *messages, last = leftovers
    assert isinstance(last, fr.ErrorFrame), last
    assert (last.code, last.fatal) == ("slow_consumer", True)
    got = [f.message.data["n"] for f in messages]
    assert got == list(range(len(got))) and len(got) < count
    print(f"\n[stalled] {count} messages of 1 KB acknowledged in {acked_s:.2f} s beside a "
          f"subscriber that never reads; it was dropped after {len(got)} messages")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


class FastReaders:
    """Raw subscribers read by one thread with a selector: the cheapest possible readers, so
    that they keep up; each checks that it gets every message, in order."""

    def __init__(self, address: str, count: int) -> None:
        self.socks = [RawPeer(address, timeout=10) for _ in range(count)]
        for i, peer in enumerate(self.socks):
            peer.hello(subscribe=True, name=f"fast{i}")
        self.next = [0] * count
        self.errors: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fast-readers")

    def start(self, expected: int) -> None:
        self.expected = expected
        self._thread.start()

    def slowest(self) -> int:
        return min(self.next)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for i, peer in enumerate(self.socks):
            peer.sock.setblocking(False)
            sel.register(peer.sock, selectors.EVENT_READ, i)
        open_ = len(self.socks)
        deadline = time.monotonic() + 60
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                i = key.data
                peer = self.socks[i]
                try:
                    data = peer.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                peer.codec.receive_data(data)
                while (m := peer.codec.next_map()) is not NEED_DATA:
                    if m is CLOSED or m.get("kind") != "message":
                        self.errors.append(f"fast{i}: {m!r}")
                        sel.unregister(peer.sock)
                        open_ -= 1
                        break
                    if m["data"]["i"] != self.next[i]:
                        self.errors.append(f"fast{i}: got {m['data']['i']}, "
                                           f"expected {self.next[i]}")
                    self.next[i] += 1
                    if self.next[i] == self.expected:
                        sel.unregister(peer.sock)
                        open_ -= 1
                        break
        sel.close()
        self._done.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive()

    def close(self) -> None:
        for peer in self.socks:
            peer.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_hub_memory_stays_bounded_beside_stalled_subscribers(cli, transport: str) -> None:
    # --insecure on TCP: the raw peers say hello only (no per-hub secret to prove).
    hub = cli.serve("ev", *transport_args(transport), *(["--insecure"] if transport == "tcp"
                                                         else []),
                    env={"SOCKCLI_SLOW_CONSUMER_TIMEOUT": "1"})  # the stalled ones go soon
    address = cli.record("ev").get("path") or f"127.0.0.1:{cli.record('ev')['port']}"
    rss_start = _rss_kb(hub.pid)
    stalled = [stalled_peer(address) for _ in range(10)]
    fast = FastReaders(address, 10)
    count, pad = 20_000, "x" * 1000
    fast.start(count)
    peak = [rss_start]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            peak[0] = max(peak[0], _rss_kb(hub.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    sender = Sender.open("ev", socket_dir=str(cli.socket_dir), timezone="UTC")
    started = time.monotonic()
    try:
        for i in range(count):
            sender.send({"i": i, "pad": pad})
            if i % 200 == 199:
                sender.flush(timeout=30)
                # The fast readers stay within 2,000 messages (2 MB, half the hub's
                # send_buffer_limit) of the sender: fast by construction, never dropped.
                wait_until(lambda i=i: fast.slowest() >= i - 2000 or fast.errors, timeout=30,
                           what="the fast readers to keep up")
        sender.flush(timeout=30)
        sent_s = time.monotonic() - started
        fast.join(60)
        total_s = time.monotonic() - started
    finally:
        sampling.set()
        sampler.join(5)
        sender.close()
    assert fast.errors == []
    assert fast.next == [count] * 10  # every fast reader got all 20,000, in order
    with create_client(transport, "ev", subscribe=False, socket_dir=cli.socket_dir) as asker:
        # The ten fast readers and the one asking: the sender has gone, the stalled are out.
        wait_until(lambda: asker.stats()["clients"] == 11, what="11 clients")
        stats = asker.stats()
    assert stats["dropped_clients"] == 10
    assert stats["received"] == count
    rss_end = _rss_kb(hub.pid)
    for sock in stalled:
        sock.close()
    fast.close()
    print(f"\n[memory {transport}] hub RSS {rss_start / 1024:.1f} MB at start, peak "
          f"{peak[0] / 1024:.1f} MB, {rss_end / 1024:.1f} MB at the end; {count} messages of "
          f"1 KB to 10 fast readers (all received, in order) beside 10 stalled subscribers "
          f"(all dropped: slow_consumer); sent in {sent_s:.2f} s, all read after "
          f"{total_s:.2f} s")
    assert peak[0] < 150 * 1024, f"hub RSS peaked at {peak[0] / 1024:.1f} MB"
    assert hub.poll() is None


# -- kill -9 of a listener ------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_listener_killed_mid_stream_does_not_affect_the_hub(cli, transport: str) -> None:
    hub = cli.serve("ev", *transport_args(transport))
    doomed = cli.listen("ev")
    survivor = cli.listen("ev")
    sender = cli.popen("send", "ev", "--lines", stdin=subprocess.PIPE)
    assert sender.stdin is not None
    wait_until(lambda: cli.list_json()[0]["clients"] == 3, what="three clients", timeout=10)

    def lines(start: int, end: int) -> None:
        assert sender.stdin is not None
        sender.stdin.write("".join(f'{{"n": {n}}}\n' for n in range(start, end)))
        sender.stdin.flush()

    lines(0, 100)
    assert [read_json(doomed)["data"]["n"] for _ in range(100)] == list(range(100))
    lines(100, 200)  # the doomed listener is killed while these are on their way
    assert read_json(doomed)["data"]["n"] == 100
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(10) == -signal.SIGKILL
    wait_until(lambda: cli.list_json()[0]["clients"] == 2, timeout=10,
               what="the hub to count the killed listener out")
    lines(200, 300)
    sender.stdin.close()
    assert sender.wait(15) == 0  # every line acknowledged
    assert [read_json(survivor)["data"]["n"] for _ in range(300)] == list(range(300))
    [row] = cli.list_json()
    assert (row["clients"], row["received"], row["dropped"]) == (1, 300, 0)
    assert hub.poll() is None


# -- kill -9 of the hub ---------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_listeners_reconnect_to_a_new_hub_after_kill_9(cli, transport: str) -> None:
    hub = cli.serve("ev", *transport_args(transport))
    listeners = [cli.listen("ev") for _ in range(3)]
    sent = cli.run("send", "ev", "-d", '{"n": "before"}')
    assert sent.returncode == 0, sent.stderr
    for listener in listeners:
        assert read_json(listener)["data"] == {"n": "before"}

    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    # The dead hub left its files; they are recognised as stale (no hub runs) and removed by
    # the first sockcli command that looks (the waiting listeners, or this list) ...
    assert cli.list_json() == []
    left = [] if transport == "unix" else ["ev.token"]  # the next TCP hub replaces its secret
    assert cli.hub_files("ev") == left
    assert all(listener.poll() is None for listener in listeners)  # they wait for a new one

    # ... and the next serve replaces them.
    hub2 = cli.serve("ev", *transport_args(transport))
    serving = time.monotonic()
    assert cli.record("ev")["pid"] == hub2.pid
    arrivals: list[float | None] = [None] * len(listeners)
    first: list[Any] = [None] * len(listeners)

    def watch(i: int) -> None:
        first[i] = read_json(listeners[i], timeout=15)["data"]["n"]
        arrivals[i] = time.monotonic()

    watchers = [threading.Thread(target=watch, args=(i,)) for i in range(len(listeners))]
    for watcher in watchers:
        watcher.start()
    # A message every 20 ms until every listener has had one: the first each one receives
    # tells when it was back.
    sender = cli.popen("send", "ev", "--lines", stdin=subprocess.PIPE)
    assert sender.stdin is not None
    n = 0
    pace = threading.Event()
    while any(a is None for a in arrivals) and time.monotonic() - serving < 10:
        sender.stdin.write(f'{{"n": {n}}}\n')
        sender.stdin.flush()
        n += 1
        pace.wait(0.02)
    sender.stdin.close()
    assert sender.wait(10) == 0
    for watcher in watchers:
        watcher.join(10)
    delays = [a - serving for a in arrivals if a is not None]
    assert len(delays) == len(listeners), "a listener did not come back"
    # Afterwards they all receive the same messages again.
    for listener, start in zip(listeners, first, strict=True):
        assert [read_json(listener)["data"]["n"] for _ in range(n - 1 - start)] == \
            list(range(start + 1, n))
    sent = cli.run("send", "ev", "-d", '{"n": "after"}')
    assert sent.returncode == 0, sent.stderr
    for listener in listeners:
        assert read_json(listener)["data"] == {"n": "after"}
    print(f"\n[reconnect {transport}] {len(listeners)} listeners back after kill -9 of the hub: "
          f"first message {', '.join(f'{d * 1000:.0f}' for d in sorted(delays))} ms after the "
          "new hub said 'serving'")
    assert max(delays) < 2.0, delays


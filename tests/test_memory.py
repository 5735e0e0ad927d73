"""What a hub holds per idle subscriber (issue 12: at most 2 KiB of resident memory each).

The structure: once welcomed, a subscriber's connection keeps no handshake, an empty output
list (not a deque, whose first block is 760 bytes), a codec that made no msgpack.Packer (its
256 KiB buffer has a resident first page) and a ClientInfo without a ``__dict__``. And the
bytes: the Python allocations of the hub per connection, counted by tracemalloc with the
subscribers in another process (their own allocations would count too).
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli.factory import create_server
from sockcli.hub.connection import Connection, ConnectionState
from sockcli.protocol import frames as fr
from sockcli.types import SocketMessage
from tests.helpers import RawPeer

#: Python bytes per idle subscriber the hub may allocate (1,100 measured: the connection and
#: its codec 272, ClientInfo 104, the socket 88, the selector key 80, the codec's buffer and
#: the output list 56 each, the client id, the peer's address, the tables' entries).
BYTES_PER_SUBSCRIBER = 1536

#: Subscribers in another process: every hello written, then every welcome read.
_SUBSCRIBERS = """
import socket, struct, sys
import msgpack
path, n = sys.argv[1], int(sys.argv[2])
hello = msgpack.packb({"kind": "hello", "version": 1, "subscribe": True})
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(path)
    s.sendall(struct.pack(">I", len(hello)) + hello)
    socks.append(s)
for s in socks:
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    (size,) = struct.unpack(">I", head)
    body = b""
    while len(body) < size:
        body += s.recv(size - len(body))
    assert msgpack.unpackb(body)["kind"] == "welcome"
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def unix_hub(sock_dir: Path) -> Iterator[Any]:
    hub = create_server("unix", "ev", socket_dir=sock_dir, timezone="UTC")
    hub.start(blocking=False)
    yield hub
    hub.stop()


def _connections(hub: Any) -> list[Connection]:
    return list(hub._loop._conns.values())


def _wait_until(done: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.01)


def _wait_for_clients(hub: Any, n: int) -> None:
    _wait_until(lambda: len(hub.get_connected_clients()) >= n, f"{n} clients in")


def _wait_flushed(conn: Connection) -> None:
    # The hub's thread ends its flush after the kernel took the bytes, which the peer may
    # have read already.
    _wait_until(lambda: not conn.out and not conn.out_size, "flushed")


@pytest.mark.timeout(30)
def test_an_idle_subscriber_holds_no_buffer_packer_or_handshake(unix_hub: Any) -> None:
    peer = RawPeer.for_hub(unix_hub)
    try:
        welcome = peer.hello(subscribe=True)
        _wait_for_clients(unix_hub, 1)
        [conn] = _connections(unix_hub)
        _wait_flushed(conn)
        assert conn.state is ConnectionState.ACTIVE
        assert conn.handshake is None
        assert type(conn.out) is list and conn.out == [] and conn.out_size == 0
        assert conn.codec.buffered == 0 and conn.codec._packer is None
        assert conn.latest is None
        assert conn.info is not None and conn.info.client_id == welcome.client_id
        assert not hasattr(conn.info, "__dict__") and not hasattr(conn, "__dict__")
        # It still gets what is sent, and its output list is empty again afterwards.
        unix_hub.send(SocketMessage("ev", data={"n": 1}))
        frame = peer.next_frame()
        assert isinstance(frame, fr.MessageFrame) and frame.message.data == {"n": 1}
        _wait_flushed(conn)
        assert type(conn.out) is list
    finally:
        peer.close()


@pytest.mark.timeout(60)
def test_python_bytes_per_idle_subscriber_stay_under_the_bound(unix_hub: Any) -> None:
    n = 300
    first = RawPeer.for_hub(unix_hub)  # the shared pieces (the hub's packer) made before
    first.hello(subscribe=True)
    _wait_for_clients(unix_hub, 1)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        subs = subprocess.Popen([sys.executable, "-c", _SUBSCRIBERS, str(unix_hub.address),
                                 str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        try:
            assert subs.stdout is not None and subs.stdout.readline().strip() == "ready"
            _wait_for_clients(unix_hub, n + 1)
            after = tracemalloc.take_snapshot()
        finally:
            assert subs.stdin is not None
            subs.stdin.close()
            subs.wait(20)
    finally:
        tracemalloc.stop()
        first.close()
    hub_files = [tracemalloc.Filter(False, tracemalloc.__file__),
                 tracemalloc.Filter(False, subprocess.__file__)]  # this test's own
    grown = sum(stat.size_diff for stat in after.filter_traces(hub_files).compare_to(
        before.filter_traces(hub_files), "filename"))
    assert grown / n <= BYTES_PER_SUBSCRIBER, f"{grown / n:.0f} bytes per subscriber"

"""The TCP transport: binding, port choice, the address record, finding a hub by name, stale
records of killed hubs, IPv6 loopback."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockcli import (
    ConnectionError,
    MessageType,
    SocketMessage,
    TcpSocketClient,
    TcpSocketServer,
)
from sockcli.runtime import read_record
from sockcli.types import SocketType
from tests.helpers import hub_secret

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[1]

HUB_SCRIPT = textwrap.dedent("""
    import sys, threading
    from sockcli import TcpSocketServer
    hub = TcpSocketServer(sys.argv[1], socket_dir=sys.argv[2], timezone="UTC",
                          port_range_start=int(sys.argv[3]), port_range_end=int(sys.argv[4]))
    hub.start(blocking=False)
    print("ready", hub.port, flush=True)
    threading.Event().wait()
""")


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
    except OSError:
        return False
    finally:
        s.close()
    return True


def free_port_block(n: int) -> int:
    """First port of ``n`` consecutive free loopback ports, above the ephemeral range (so no
    outgoing connection of this or another test grabs one meanwhile) and off the default range."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(61000, 65500 - n)
        if all(_port_free(p) for p in range(first, first + n)):
            return first
    raise AssertionError(f"no block of {n} free ports found")


def _listen(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A plain listening socket that occupies ``port`` (no SO_REUSEADDR)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(1)
    return s


@pytest.fixture
def hubs() -> Iterator[list[TcpSocketServer]]:
    made: list[TcpSocketServer] = []
    yield made
    for hub in made:
        hub.stop()


@pytest.fixture
def clients() -> Iterator[list[TcpSocketClient]]:
    made: list[TcpSocketClient] = []
    yield made
    for client in made:
        client.disconnect()


@pytest.fixture
def occupied() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _hub(hubs: list[TcpSocketServer], sock_dir: Path, event: str = "ev", *, start: bool = True,
         **kwargs: object) -> TcpSocketServer:
    if "port" not in kwargs and "port_range_start" not in kwargs:
        first = free_port_block(4)
        kwargs.update(port_range_start=first, port_range_end=first + 3)
    hub = TcpSocketServer(event, socket_dir=sock_dir, timezone="UTC", **kwargs)
    hubs.append(hub)
    if start:
        hub.start(blocking=False)
    return hub


def _client(clients: list[TcpSocketClient], sock_dir: Path, event: str = "ev",
            **kwargs: object) -> TcpSocketClient:
    client = TcpSocketClient(event, socket_dir=sock_dir, timezone="UTC", **kwargs)
    clients.append(client)
    client.connect(timeout=5)
    return client


def _relay_works(clients: list[TcpSocketClient], sock_dir: Path, event: str = "ev",
                 **kwargs: object) -> None:
    listener = _client(clients, sock_dir, event, name="l", **kwargs)
    sender = _client(clients, sock_dir, event, subscribe=False, **kwargs)
    sender.send(SocketMessage(event, message_type="control", data={"k": [1, "x"]}))
    got = listener.receive(timeout=5)
    assert (got.event_name, got.message_type, got.data) == (
        event, MessageType.CONTROL, {"k": [1, "x"]})


# -- binding -------------------------------------------------------------------------------


def test_binds_loopback_by_default_with_reuseaddr(hubs, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    assert hub.tcp_config.host == "127.0.0.1"
    assert hub.address == f"127.0.0.1:{hub.port}"
    assert hub.address.startswith("127.0.0.1:")
    listener = hub.listener
    assert listener is not None
    assert listener.family == socket.AF_INET
    assert listener.getsockname() == ("127.0.0.1", hub.port)
    assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1


def test_default_range_is_47800_to_47899(hubs, sock_dir: Path) -> None:
    hub = TcpSocketServer("ev", socket_dir=sock_dir, timezone="UTC")
    hubs.append(hub)
    assert (hub.tcp_config.port, hub.tcp_config.port_range_start,
            hub.tcp_config.port_range_end) == (0, 47800, 47899)
    hub.start(blocking=False)  # the first free one of the default range
    assert hub.port is not None and 47800 <= hub.port <= 47899


def test_takes_first_free_port_of_range(hubs, clients, occupied, sock_dir: Path) -> None:
    first = free_port_block(3)
    occupied.append(_listen(first))
    hub = _hub(hubs, sock_dir, port_range_start=first, port_range_end=first + 2)
    assert hub.port == first + 1
    assert hub.address == f"127.0.0.1:{first + 1}"
    _relay_works(clients, sock_dir)
    # A second event in the same range gets the port after that.
    hub2 = _hub(hubs, sock_dir, "ev2", port_range_start=first, port_range_end=first + 2)
    assert hub2.port == first + 2


def test_explicit_port_is_honoured(hubs, clients, sock_dir: Path) -> None:
    first = free_port_block(3)
    hub = _hub(hubs, sock_dir, port=first + 2, port_range_start=first,
               port_range_end=first + 1)
    assert hub.port == first + 2
    assert hub.address == f"127.0.0.1:{first + 2}"
    # Told where, a client does not look for the record: it needs the hub's token.
    _relay_works(clients, sock_dir, host="127.0.0.1", port=first + 2, token=hub_secret(hub))


def test_explicit_port_in_use_is_refused(hubs, occupied, sock_dir: Path) -> None:
    port = free_port_block(1)
    occupied.append(_listen(port))
    hub = _hub(hubs, sock_dir, start=False, port=port)
    with pytest.raises(ConnectionError) as info:
        hub.start(blocking=False)
    assert str(info.value) == (f"cannot listen on 127.0.0.1: port {port} is in use (set "
                               "tcp.port or widen port_range_start/port_range_end)")
    assert os.listdir(sock_dir) == []  # lock released, record removed


def test_exhausted_range_raises_connection_error(hubs, occupied, sock_dir: Path) -> None:
    first = free_port_block(3)
    occupied.extend(_listen(p) for p in range(first, first + 3))
    hub = _hub(hubs, sock_dir, start=False, port_range_start=first, port_range_end=first + 2)
    with pytest.raises(ConnectionError) as info:
        hub.start(blocking=False)
    assert isinstance(info.value, ConnectionError)
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1: every port from {first} to {first + 2} is in use (set "
        "tcp.port or widen port_range_start/port_range_end)")
    assert not hub.is_running()
    assert hub.port is None
    assert os.listdir(sock_dir) == []


# -- the record ----------------------------------------------------------------------------


def test_record_while_running_and_removed_on_stop(hubs, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    path = sock_dir / "ev.hub"
    # No socket file for TCP; the hub's own secret (tests/test_tcp_secret.py) beside the record.
    assert sorted(os.listdir(sock_dir)) == ["ev.hub", "ev.token"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data == {"event_name": "ev", "transport": "tcp", "pid": os.getpid(),
                    "started_ms": data["started_ms"], "host": "127.0.0.1", "port": hub.port}
    assert data["started_ms"] == hub.stats()["started_ms"] > 0
    record = read_record(sock_dir, "ev")
    assert record is not None
    assert (record.transport, record.host, record.port, record.pid, record.address) == (
        SocketType.TCP, "127.0.0.1", hub.port, os.getpid(), hub.address)
    hub.stop()
    assert not path.exists()
    assert os.listdir(sock_dir) == []
    assert read_record(sock_dir, "ev") is None


def test_client_finds_hub_by_event_name(hubs, clients, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    client = TcpSocketClient("ev", socket_dir=sock_dir, timezone="UTC")
    assert client.address == f"the record of 'ev' in {sock_dir}"
    _relay_works(clients, sock_dir)
    assert len(hub.get_connected_clients()) == 2
    assert all(i.peer.startswith("127.0.0.1:") for i in hub.get_connected_clients())
    assert all(i.pid is None for i in hub.get_connected_clients())


def test_client_with_explicit_host_and_port(hubs, clients, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    assert hub.port is not None
    # Another socket_dir: the client must not need the record at all (nor its secret, but
    # told where it must be given the hub's token).
    elsewhere = sock_dir / "elsewhere"
    token = hub_secret(hub)
    client = TcpSocketClient("ev", socket_dir=elsewhere, timezone="UTC", host="127.0.0.1",
                             port=hub.port, token=token)
    assert client.address == f"127.0.0.1:{hub.port}"
    clients.append(client)
    client.connect(timeout=5)
    assert [i.client_id for i in hub.get_connected_clients()] == [client.client_id]
    port_only = TcpSocketClient("ev", socket_dir=elsewhere, timezone="UTC", port=hub.port,
                                token=token)
    clients.append(port_only)
    port_only.connect(timeout=5)
    hub.send(SocketMessage("ev", data={"to": "all"}))
    assert client.receive(timeout=5).data == {"to": "all"}
    assert port_only.receive(timeout=5).data == {"to": "all"}


def test_client_without_hub_fails_in_time(sock_dir: Path) -> None:
    client = TcpSocketClient("ev", socket_dir=sock_dir, timezone="UTC")
    with pytest.raises(ConnectionError, match=f"no TCP hub is running for event 'ev' \\(no "
                                              f"record in {sock_dir}\\)"):
        client.connect(timeout=0.3)


def test_killed_hub_leaves_stale_record_that_is_ignored_and_replaced(
        hubs, clients, sock_dir: Path) -> None:
    first = free_port_block(2)
    proc = subprocess.Popen(
        [sys.executable, "-c", HUB_SCRIPT, "ev", str(sock_dir), str(first), str(first + 1)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"ready {first}\n", proc.stderr.read() if proc.stderr else line
        live = read_record(sock_dir, "ev")
        assert live is not None and (live.pid, live.port) == (proc.pid, first)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    path = sock_dir / "ev.hub"
    stale = json.loads(path.read_text())
    assert (stale["pid"], stale["port"]) == (proc.pid, first)  # left behind by kill -9
    assert read_record(sock_dir, "ev") is None  # nobody holds the lock: ignored
    client = TcpSocketClient("ev", socket_dir=sock_dir, timezone="UTC", auto_reconnect=False)
    with pytest.raises(ConnectionError, match="no TCP hub is running for event 'ev'"):
        client.connect(timeout=0.3)

    hub = _hub(hubs, sock_dir, port_range_start=first, port_range_end=first + 1)
    fresh = json.loads(path.read_text())
    assert (fresh["pid"], fresh["port"]) == (os.getpid(), hub.port)
    record = read_record(sock_dir, "ev")
    assert record is not None and (record.pid, record.port) == (os.getpid(), hub.port)
    _relay_works(clients, sock_dir)


def test_second_hub_for_same_event_is_refused(hubs, sock_dir: Path) -> None:
    from sockcli import SocketError

    hub = _hub(hubs, sock_dir)
    second = _hub(hubs, sock_dir, start=False)
    with pytest.raises(SocketError, match="a hub for event 'ev' is already running"):
        second.start(blocking=False)
    assert second.port is None
    record = read_record(sock_dir, "ev")
    assert record is not None and record.port == hub.port


# -- IPv6 ----------------------------------------------------------------------------------


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
    except OSError:
        return False
    finally:
        s.close()
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback(hubs, clients, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir, host="::1")
    assert hub.address == f"[::1]:{hub.port}"
    assert hub.listener is not None and hub.listener.family == socket.AF_INET6
    record = read_record(sock_dir, "ev")
    assert record is not None and (record.host, record.port) == ("::1", hub.port)
    _relay_works(clients, sock_dir)  # found by name
    direct = _client(clients, sock_dir, host="::1", port=hub.port, token=hub_secret(hub))
    hub.send(SocketMessage("ev", data={"v6": True}))
    assert direct.receive(timeout=5).data == {"v6": True}
    peers = sorted(i.peer for i in hub.get_connected_clients())
    assert all(p.startswith("::1:") for p in peers), peers

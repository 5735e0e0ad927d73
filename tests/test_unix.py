"""The Unix domain socket transport: the socket file, its directory, stale and live owners,
path limits and peer credentials. Real sockets, real files, real subprocesses."""

from __future__ import annotations

import os
import shutil
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
    MessageType,
    SocketError,
    SocketMessage,
    UnixSocketClient,
    UnixSocketServer,
    ValidationError,
)
from sockcli.protocol import frames as fr
from sockcli.runtime import MAX_UNIX_PATH, read_record
from tests.helpers import OtherUserPeer, other_user, short_tmp_dir, wait_until

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[1]

# A hub in another process: prints "ready" once it accepts connections, then waits forever.
HUB_SCRIPT = textwrap.dedent("""
    import sys, threading
    from sockcli import UnixSocketServer
    hub = UnixSocketServer(sys.argv[1], socket_dir=sys.argv[2], timezone="UTC")
    hub.start(blocking=False)
    print("ready", flush=True)
    threading.Event().wait()
""")

# A client in another process: prints "connected <pid>" once welcomed, exits when stdin closes.
CLIENT_SCRIPT = textwrap.dedent("""
    import os, sys
    from sockcli import UnixSocketClient
    client = UnixSocketClient(sys.argv[1], socket_dir=sys.argv[2], timezone="UTC", name="sub")
    client.connect(timeout=5)
    print("connected", os.getpid(), flush=True)
    sys.stdin.read()
    client.disconnect()
""")


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _expect_line(proc: subprocess.Popen[str], prefix: str) -> str:
    """The first line the child prints; it must start with ``prefix`` (readiness handshake)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"child printed {line!r} instead of {prefix!r}; stderr:\n{err}")
    return line.strip()


def _kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture
def hubs() -> Iterator[list[UnixSocketServer]]:
    made: list[UnixSocketServer] = []
    yield made
    for hub in made:
        hub.stop()


@pytest.fixture
def clients() -> Iterator[list[UnixSocketClient]]:
    made: list[UnixSocketClient] = []
    yield made
    for client in made:
        client.disconnect()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    made: list[subprocess.Popen[str]] = []
    yield made
    for proc in made:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def _hub(hubs: list[UnixSocketServer], sock_dir: Path, event: str = "ev", *, start: bool = True,
         **kwargs: object) -> UnixSocketServer:
    hub = UnixSocketServer(event, socket_dir=sock_dir, timezone="UTC", **kwargs)
    hubs.append(hub)
    if start:
        hub.start(blocking=False)
    return hub


def _client(clients: list[UnixSocketClient], sock_dir: Path, event: str = "ev",
            **kwargs: object) -> UnixSocketClient:
    client = UnixSocketClient(event, socket_dir=sock_dir, timezone="UTC", **kwargs)
    clients.append(client)
    client.connect(timeout=5)
    return client


def _relay_works(clients: list[UnixSocketClient], sock_dir: Path, event: str = "ev") -> None:
    listener = _client(clients, sock_dir, event, name="l")
    sender = _client(clients, sock_dir, event, subscribe=False)
    sender.send(SocketMessage(event, data={"n": 1}))
    got = listener.receive(timeout=5)
    assert (got.event_name, got.message_type, got.data) == (event, MessageType.DATA, {"n": 1})


# -- the socket file -----------------------------------------------------------------------


def test_socket_path_is_event_name_in_socket_dir(hubs, clients, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir, "my-event_1")
    path = sock_dir / "my-event_1.sock"
    assert hub.socket_path == path
    assert hub.address == str(path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert sorted(os.listdir(sock_dir)) == ["my-event_1.fifo", "my-event_1.hub",
                                            "my-event_1.lines.sock", "my-event_1.sock"]
    _relay_works(clients, sock_dir, "my-event_1")


def test_socket_mode_is_0600_by_default(hubs, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    assert hub.unix_config.socket_permissions == "0600"
    assert stat.S_IMODE(os.lstat(hub.socket_path).st_mode) == 0o600


@pytest.mark.parametrize(("setting", "mode"), [("0660", 0o660), ("0o640", 0o640), ("666", 0o666)])
def test_socket_mode_follows_socket_permissions(hubs, sock_dir: Path, setting: str,
                                                mode: int) -> None:
    hub = _hub(hubs, sock_dir, socket_permissions=setting)
    assert stat.S_IMODE(os.lstat(hub.socket_path).st_mode) == mode


def test_socket_removed_on_stop_by_default(hubs, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    assert hub.unix_config.auto_remove_socket is True
    assert hub.socket_path.exists()
    hub.stop()
    assert not hub.is_running()
    assert os.listdir(sock_dir) == []  # socket and record both gone


def test_socket_kept_on_stop_without_auto_remove(hubs, clients, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir, auto_remove_socket=False)
    hub.stop()
    assert stat.S_ISSOCK(os.lstat(hub.socket_path).st_mode)
    # The record is removed all the same, and the FIFO (nobody would read it).
    assert sorted(os.listdir(sock_dir)) == ["ev.lines.sock", "ev.sock"]
    # A later hub treats the leftover as stale and replaces it.
    _hub(hubs, sock_dir)
    _relay_works(clients, sock_dir)


# -- the socket directory ------------------------------------------------------------------


def test_missing_socket_dir_is_created_0700(hubs, clients, sock_dir: Path) -> None:
    nested = sock_dir / "a" / "b"
    hub = _hub(hubs, nested)
    assert stat.S_IMODE(os.stat(nested).st_mode) == 0o700
    assert os.stat(nested).st_uid == os.geteuid()
    assert hub.socket_path == nested / "ev.sock"
    _relay_works(clients, nested)


def test_socket_dir_owned_by_another_user_is_refused(hubs, sock_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    import pwd

    nobody = pwd.getpwnam("nobody")
    foreign = sock_dir / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, nobody.pw_uid, nobody.pw_gid)
    hub = _hub(hubs, foreign, start=False)
    with pytest.raises(SocketError) as info:
        hub.start(blocking=False)
    text = str(info.value)
    assert f"socket directory {foreign} belongs to uid {nobody.pw_uid}" in text
    assert "not to you" in text
    assert not hub.is_running()
    assert os.listdir(foreign) == []
    # A client refuses it too, rather than trusting whatever socket sits there.
    client = UnixSocketClient("ev", socket_dir=foreign, timezone="UTC", auto_reconnect=False)
    with pytest.raises(SocketError, match="belongs to uid"):
        client.connect(timeout=1)


def test_socket_dir_writable_by_others_is_refused(hubs, sock_dir: Path) -> None:
    shared = sock_dir / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    hub = _hub(hubs, shared, start=False)
    with pytest.raises(SocketError) as info:
        hub.start(blocking=False)
    assert str(info.value) == (f"socket directory {shared} is writable by others (mode 0777): "
                               f"run 'chmod 700 {shared}'")
    assert os.listdir(shared) == []
    os.chmod(shared, 0o720)  # group-writable is refused as well
    with pytest.raises(SocketError, match=r"writable by others \(mode 0720\)"):
        _hub(hubs, shared, "ev2")


# -- stale and live owners -----------------------------------------------------------------


def test_stale_socket_of_killed_hub_is_replaced(hubs, clients, children, sock_dir: Path) -> None:
    proc = _spawn(HUB_SCRIPT, "ev", str(sock_dir))
    children.append(proc)
    _expect_line(proc, "ready")
    path = sock_dir / "ev.sock"
    _kill9(proc)
    # kill -9 ran no cleanup: the sockets, the FIFO and the record are still there, nobody
    # listens.
    assert sorted(os.listdir(sock_dir)) == ["ev.fifo", "ev.hub", "ev.lines.sock", "ev.sock"]
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError):
        probe.connect(str(path))
    probe.close()

    hub = _hub(hubs, sock_dir)
    assert hub.is_running()
    record = read_record(sock_dir, "ev")
    assert record is not None
    assert (record.pid, record.path) == (os.getpid(), str(path))
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    _relay_works(clients, sock_dir)


def test_live_hub_in_same_process_blocks_second(hubs, clients, sock_dir: Path) -> None:
    first = _hub(hubs, sock_dir)
    second = _hub(hubs, sock_dir, start=False)
    with pytest.raises(SocketError) as info:
        second.start(blocking=False)
    assert "a hub for event 'ev' is already running" in str(info.value)
    assert not second.is_running()
    # The failed start touched nothing of the first hub.
    assert first.is_running()
    assert sorted(os.listdir(sock_dir)) == ["ev.fifo", "ev.hub", "ev.lines.sock", "ev.sock"]
    _relay_works(clients, sock_dir)


def test_live_hub_in_subprocess_blocks_second(hubs, clients, children, sock_dir: Path) -> None:
    proc = _spawn(HUB_SCRIPT, "ev", str(sock_dir))
    children.append(proc)
    _expect_line(proc, "ready")
    inode = os.lstat(sock_dir / "ev.sock").st_ino
    hub = _hub(hubs, sock_dir, start=False)
    with pytest.raises(SocketError, match="a hub for event 'ev' is already running"):
        hub.start(blocking=False)
    assert os.lstat(sock_dir / "ev.sock").st_ino == inode
    _relay_works(clients, sock_dir)  # served by the child
    assert proc.poll() is None


def test_live_socket_without_lock_is_not_stolen(hubs, sock_dir: Path) -> None:
    """Something listens at the path (no record): the hub probes it and refuses to unlink it."""
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        squatter.bind(str(sock_dir / "ev.sock"))
        squatter.listen(1)
        hub = _hub(hubs, sock_dir, start=False)
        with pytest.raises(SocketError) as info:
            hub.start(blocking=False)
        assert str(info.value) == (f"a hub for event 'ev' is already running on "
                                   f"{sock_dir / 'ev.sock'}")
        assert stat.S_ISSOCK(os.lstat(sock_dir / "ev.sock").st_mode)
        assert os.listdir(sock_dir) == ["ev.sock"]  # the lock was released, record removed
    finally:
        squatter.close()


def test_regular_file_at_socket_path_is_refused_and_kept(hubs, sock_dir: Path) -> None:
    path = sock_dir / "ev.sock"
    path.write_text("precious\n")
    hub = _hub(hubs, sock_dir, start=False)
    with pytest.raises(SocketError) as info:
        hub.start(blocking=False)
    assert str(info.value) == (f"{path} exists and is not a socket: remove it or choose "
                               "another socket_dir")
    assert path.read_text() == "precious\n"
    assert os.listdir(sock_dir) == ["ev.sock"]
    assert not hub.is_running()


# -- path length ---------------------------------------------------------------------------


def test_too_long_socket_path_fails_at_construction(sock_dir: Path) -> None:
    deep = sock_dir / ("d" * 40) / ("e" * 40) / ("f" * 20)
    expected = deep / "ev.sock"
    size = len(os.fsencode(expected))
    assert size > MAX_UNIX_PATH
    with pytest.raises(ValidationError) as info:
        UnixSocketServer("ev", socket_dir=deep, timezone="UTC")
    assert not isinstance(info.value, OSError)
    assert str(info.value) == (
        f"socket path {expected} is {size} bytes long, over the limit of 107 bytes for Unix "
        "sockets: choose a shorter socket_dir or event name")
    assert not deep.exists()  # nothing created on disk
    with pytest.raises(ValidationError, match="over the limit of 107 bytes"):
        UnixSocketClient("ev", socket_dir=deep, timezone="UTC")


def test_socket_path_of_exactly_107_bytes_works(hubs, clients) -> None:
    base = short_tmp_dir()
    try:
        os.chmod(base, 0o700)
        # {base}/{pad}/ev.sock must come to exactly 107 bytes.
        pad = MAX_UNIX_PATH - len(os.fsencode(base)) - len("/") - len("/ev.sock")
        socket_dir = base / ("p" * pad)
        hub = _hub(hubs, socket_dir)
        assert len(os.fsencode(hub.socket_path)) == MAX_UNIX_PATH
        _relay_works(clients, socket_dir)
        with pytest.raises(ValidationError, match="108 bytes long"):
            UnixSocketServer("ev1", socket_dir=socket_dir, timezone="UTC")
    finally:
        for hub in hubs:
            hub.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- peer credentials ----------------------------------------------------------------------


def test_client_info_carries_peer_credentials_in_process(hubs, clients, sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    client = _client(clients, sock_dir, name="me")
    infos = hub.get_connected_clients()
    assert len(infos) == 1
    info = infos[0]
    assert (info.client_id, info.name, info.subscribed) == (client.client_id, "me", True)
    assert (info.pid, info.uid, info.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert info.peer == f"pid {os.getpid()}"


def test_client_info_carries_peer_credentials_of_subprocess(hubs, children,
                                                            sock_dir: Path) -> None:
    hub = _hub(hubs, sock_dir)
    proc = _spawn(CLIENT_SCRIPT, "ev", str(sock_dir))
    children.append(proc)
    line = _expect_line(proc, "connected ")
    assert line == f"connected {proc.pid}"
    infos = wait_until(hub.get_connected_clients, what="the child's welcome")
    assert [(i.name, i.pid, i.uid, i.gid, i.peer) for i in infos] == [
        ("sub", proc.pid, os.getuid(), os.getgid(), f"pid {proc.pid}")]
    assert proc.pid != os.getpid()
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)
    assert proc.returncode == 0
    wait_until(lambda: hub.get_connected_clients() == [], what="the child to leave")


def test_peer_credentials_of_other_user(hubs, children, sock_dir: Path) -> None:
    """A subprocess run as nobody (socket made 0666, dir 0711 so it can reach it, and nobody
    admitted by allowed_uids: tests/test_security.py covers the refusal without it). It needs
    nothing from the checkout, which nobody may not be able to read (tests/helpers.py)."""
    nobody = other_user()
    hub = _hub(hubs, sock_dir, socket_permissions="0666", allowed_uids=[nobody.pw_uid])
    os.chmod(sock_dir, 0o711)
    peer = OtherUserPeer(nobody, hub.socket_path, fr.Hello(subscribe=True, name="nob"), children)
    assert peer.ids == (peer.proc.pid, nobody.pw_uid, nobody.pw_gid)
    welcome = peer.next_map()
    assert isinstance(welcome, dict) and welcome["kind"] == "welcome"
    infos = wait_until(hub.get_connected_clients, what="nobody's welcome")
    assert [(i.name, i.pid, i.uid, i.gid) for i in infos] == [
        ("nob", peer.proc.pid, nobody.pw_uid, nobody.pw_gid)]

"""The runtime directory: hub locks, address records, directory checks, socket path limits."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sockcli import SocketError, TcpSocketServer, UnixSocketServer, ValidationError
from sockcli.runtime import (
    MAX_UNIX_PATH,
    HubLock,
    HubRecord,
    check_socket_dir,
    ensure_socket_dir,
    list_records,
    read_record,
    record_path,
    socket_path,
)
from sockcli.types import SocketType

pytestmark = pytest.mark.timeout(20)

REPO = Path(__file__).resolve().parents[1]


def _unix_record(event: str = "ev", pid: int = 4242) -> HubRecord:
    return HubRecord(event_name=event, transport=SocketType.UNIX, pid=pid,
                     started_ms=1_700_000_000_123, path=f"/tmp/x/{event}.sock")


# -- HubLock -------------------------------------------------------------------------------


def test_lock_is_exclusive(sock_dir: Path) -> None:
    first = HubLock(sock_dir, "ev")
    second = HubLock(sock_dir, "ev")
    first.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(SocketError) as info:
            second.acquire()
        waited = time.monotonic() - started
        assert 0.45 <= waited < 2.0
        assert str(info.value) == (f"a hub for event 'ev' is already running "
                                   f"(see {sock_dir / 'ev.hub'})")
        # Another event in the same directory is independent.
        other = HubLock(sock_dir, "other")
        other.acquire()
        other.release()
    finally:
        first.release()


def test_lock_is_exclusive_across_processes(sock_dir: Path) -> None:
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from sockcli.runtime import HubLock
        lock = HubLock(Path(sys.argv[1]), "ev")
        lock.acquire()
        print("locked", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(sock_dir)], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "locked\n"
        with pytest.raises(SocketError, match="already running"):
            HubLock(sock_dir, "ev").acquire()
        proc.stdin.close()  # the child exits without releasing: the kernel drops the lock
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    lock = HubLock(sock_dir, "ev")
    lock.acquire()
    lock.release()


def test_release_frees_lock_and_removes_record(sock_dir: Path) -> None:
    first = HubLock(sock_dir, "ev")
    first.acquire()
    assert first.path == sock_dir / "ev.hub"
    assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600
    first.write(_unix_record())
    assert json.loads(first.path.read_text())["pid"] == 4242
    assert read_record(sock_dir, "ev") == _unix_record()
    first.release()
    assert not first.path.exists()
    assert read_record(sock_dir, "ev") is None
    first.release()  # idempotent

    second = HubLock(sock_dir, "ev")
    started = time.monotonic()
    second.acquire()
    assert time.monotonic() - started < 0.4  # no waiting once released
    second.write(_unix_record(pid=7))
    assert read_record(sock_dir, "ev") == _unix_record(pid=7)
    second.release()
    assert os.listdir(sock_dir) == []


def test_write_replaces_longer_content(sock_dir: Path) -> None:
    lock = HubLock(sock_dir, "ev")
    lock.acquire()
    try:
        lock.write(_unix_record(pid=123456789))
        lock.write(_unix_record(pid=1))
        assert json.loads(lock.path.read_text()) == json.loads(_unix_record(pid=1).to_json())
    finally:
        lock.release()


def test_stale_record_without_lock_is_taken_over(sock_dir: Path) -> None:
    stale = sock_dir / "ev.hub"
    stale.write_text(_unix_record(pid=99999).to_json())
    assert read_record(sock_dir, "ev") is None
    lock = HubLock(sock_dir, "ev")
    lock.acquire()
    try:
        lock.write(_unix_record(pid=5))
        assert read_record(sock_dir, "ev") == _unix_record(pid=5)
    finally:
        lock.release()


# -- list_records --------------------------------------------------------------------------


def test_list_records_returns_live_hubs_sorted(sock_dir: Path) -> None:
    zeta = UnixSocketServer("zeta", socket_dir=sock_dir, timezone="UTC")
    alpha = TcpSocketServer("alpha", socket_dir=sock_dir, timezone="UTC",
                            port_range_start=61500, port_range_end=61999)
    # A stale record with valid JSON content but no lock held: a hub killed by kill -9.
    (sock_dir / "mid.hub").write_text(_unix_record("mid", pid=99999).to_json())
    # Garbage and files that are not records are ignored too.
    (sock_dir / "junk.txt").write_text("x")
    zeta.start(blocking=False)
    alpha.start(blocking=False)
    try:
        records = list_records(sock_dir)
        assert [(r.event_name, r.transport, r.pid) for r in records] == [
            ("alpha", SocketType.TCP, os.getpid()), ("zeta", SocketType.UNIX, os.getpid())]
        assert records[0].address == alpha.address
        assert records[1].address == zeta.address == str(sock_dir / "zeta.sock")
        assert not (sock_dir / "mid.hub").exists()  # a dead hub's: cleaned up (test_reap.py)
    finally:
        zeta.stop()
        alpha.stop()
    assert list_records(sock_dir) == []
    assert sorted(os.listdir(sock_dir)) == ["junk.txt"]


def test_list_records_of_missing_dir_is_empty(sock_dir: Path) -> None:
    assert list_records(sock_dir / "nope") == []
    assert read_record(sock_dir / "nope", "ev") is None


# -- HubRecord -----------------------------------------------------------------------------


def test_record_json_round_trip() -> None:
    unix = _unix_record()
    assert json.loads(unix.to_json()) == {"event_name": "ev", "transport": "unix", "pid": 4242,
                                          "started_ms": 1_700_000_000_123,
                                          "path": "/tmp/x/ev.sock"}
    assert HubRecord.from_json(unix.to_json()) == unix
    assert unix.address == "/tmp/x/ev.sock"
    tcp = HubRecord(event_name="t", transport=SocketType.TCP, pid=1, started_ms=2,
                    host="127.0.0.1", port=47800)
    assert json.loads(tcp.to_json()) == {"event_name": "t", "transport": "tcp", "pid": 1,
                                         "started_ms": 2, "host": "127.0.0.1", "port": 47800}
    assert HubRecord.from_json(tcp.to_json()) == tcp
    assert tcp.address == "127.0.0.1:47800"
    v6 = HubRecord(event_name="t", transport=SocketType.TCP, pid=1, started_ms=2, host="::1",
                   port=5)
    assert HubRecord.from_json(v6.to_json()) == v6
    assert v6.address == "[::1]:5"


@pytest.mark.parametrize("text", [
    "", "not json", "[]", "null", "42", "{}",
    '{"event_name": "ev", "transport": "unix", "pid": 1}',  # started_ms missing
    '{"event_name": "../x", "transport": "unix", "pid": 1, "started_ms": 2}',
    '{"event_name": "ev", "transport": "udp", "pid": 1, "started_ms": 2}',
    '{"event_name": "ev", "transport": "tcp", "pid": "x", "started_ms": 2}',
    '{"event_name": "ev", "transport": "tcp", "pid": 1, "started_ms": 2, "port": "p"}',
    '{"event_name": 5, "transport": "tcp", "pid": 1, "started_ms": 2}',
])
def test_record_from_garbage_is_none(text: str) -> None:
    assert HubRecord.from_json(text) is None


def test_live_record_with_garbage_content_is_none(sock_dir: Path) -> None:
    lock = HubLock(sock_dir, "ev")
    lock.acquire()
    try:
        assert read_record(sock_dir, "ev") is None  # locked but nothing written yet (starting)
        lock.path.write_text("garbage")
        assert read_record(sock_dir, "ev") is None
        assert list_records(sock_dir) == []
    finally:
        lock.release()


# -- socket directory checks ---------------------------------------------------------------


def test_ensure_socket_dir_creates_nested_0700(sock_dir: Path) -> None:
    target = sock_dir / "x" / "y" / "z"
    assert ensure_socket_dir(target) == target
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
    assert os.stat(target).st_uid == os.geteuid()
    assert ensure_socket_dir(target) == target  # existing and private: fine


def test_ensure_socket_dir_keeps_existing_private_dir(sock_dir: Path) -> None:
    os.chmod(sock_dir, 0o711)  # others may reach a socket but not list or write: left alone
    assert ensure_socket_dir(sock_dir) == sock_dir
    assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o711


def test_ensure_socket_dir_under_a_file_fails(sock_dir: Path) -> None:
    blocker = sock_dir / "file"
    blocker.write_text("")
    with pytest.raises(SocketError) as info:
        ensure_socket_dir(blocker / "sub")
    assert str(info.value).startswith(f"cannot create socket directory {blocker / 'sub'}: ")


def test_check_socket_dir_missing_is_accepted(sock_dir: Path) -> None:
    assert check_socket_dir(sock_dir / "absent") == sock_dir / "absent"
    assert not (sock_dir / "absent").exists()


def test_check_socket_dir_refuses_a_file(sock_dir: Path) -> None:
    f = sock_dir / "f"
    f.write_text("")
    with pytest.raises(SocketError) as info:
        check_socket_dir(f)
    assert str(info.value) == f"socket directory {f} is not a directory"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777])
def test_check_socket_dir_refuses_writable_by_others(sock_dir: Path, mode: int) -> None:
    d = sock_dir / "d"
    d.mkdir()
    os.chmod(d, mode)
    with pytest.raises(SocketError) as info:
        check_socket_dir(d)
    assert str(info.value) == (f"socket directory {d} is writable by others (mode "
                               f"{stat.S_IMODE(mode):04o}): run 'chmod 700 {d}'")


def test_check_socket_dir_refuses_other_owner(sock_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    import pwd

    nobody = pwd.getpwnam("nobody")
    d = sock_dir / "d"
    d.mkdir(mode=0o700)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(SocketError) as info:
        check_socket_dir(d)
    assert str(info.value) == (f"socket directory {d} belongs to uid {nobody.pw_uid}, not to "
                               f"you (uid {os.geteuid()}): choose another socket_dir")
    with pytest.raises(SocketError, match="belongs to uid"):
        ensure_socket_dir(d)


# -- paths ---------------------------------------------------------------------------------


def test_socket_and_record_paths() -> None:
    assert socket_path(Path("/run/x"), "ev-1_A") == Path("/run/x/ev-1_A.sock")
    assert record_path(Path("/run/x"), "ev-1_A") == Path("/run/x/ev-1_A.hub")
    for bad in ("", "../up", "a/b", "a.b", "x" * 65):
        with pytest.raises(ValidationError, match="invalid event name"):
            socket_path(Path("/run/x"), bad)
        with pytest.raises(ValidationError, match="invalid event name"):
            record_path(Path("/run/x"), bad)


def test_socket_path_length_limit() -> None:
    assert MAX_UNIX_PATH == 107
    base = "/" + "d" * (MAX_UNIX_PATH - len("/") - len("/ev.sock"))
    exact = socket_path(Path(base), "ev")
    assert len(os.fsencode(exact)) == 107
    over = Path(base + "d")
    with pytest.raises(ValidationError) as info:
        socket_path(over, "ev")
    assert str(info.value) == (f"socket path {over / 'ev.sock'} is 108 bytes long, over the "
                               "limit of 107 bytes for Unix sockets: choose a shorter "
                               "socket_dir or event name")
    # Bytes, not characters: a two-byte character counts twice.
    accented = Path("/" + "é" * 50)  # 109 bytes with /ev.sock, 59 characters
    assert len(str(accented / "ev.sock")) < MAX_UNIX_PATH
    with pytest.raises(ValidationError, match="over the limit of 107 bytes"):
        socket_path(accented, "ev")


def test_symlink_at_record_path_is_refused_not_followed(sock_dir: Path) -> None:
    target = sock_dir / "target"
    (sock_dir / "ev.hub").symlink_to(target)
    with pytest.raises(SocketError) as info:
        HubLock(sock_dir, "ev").acquire()
    assert str(info.value) == (f"cannot use hub record {sock_dir / 'ev.hub'}: Too many levels "
                               "of symbolic links (remove it or choose another socket_dir)")
    assert not target.exists()  # O_NOFOLLOW: nothing created through the link
    hub = UnixSocketServer("ev", socket_dir=sock_dir, timezone="UTC")
    with pytest.raises(SocketError, match="cannot use hub record"):
        hub.start(blocking=False)
    assert not hub.is_running()
    assert sorted(os.listdir(sock_dir)) == ["ev.hub"]
    assert read_record(sock_dir, "ev") is None


def test_directory_at_record_path_is_refused(sock_dir: Path) -> None:
    (sock_dir / "ev.hub").mkdir()
    hub = TcpSocketServer("ev", socket_dir=sock_dir, timezone="UTC")
    with pytest.raises(SocketError) as info:
        hub.start(blocking=False)
    assert str(info.value) == (f"cannot use hub record {sock_dir / 'ev.hub'}: Is a directory "
                               "(remove it or choose another socket_dir)")
    assert hub.port is None


# -- a hub's claim across start() and stop() ------------------------------------------------


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_start_on_a_running_hub_is_a_no_op(sock_dir: Path, transport: str) -> None:
    """``with create_server(...) as hub: hub.start()``: the second start() takes no second
    claim (no "already running" from the hub's own lock) and changes nothing; stop() twice
    is fine; a stopped hub still cannot be restarted."""
    from sockcli import create_client, create_server

    with create_server(transport, "ev", socket_dir=sock_dir, timezone="UTC") as hub:
        address = hub.address
        hub.start()
        hub.start(blocking=False)
        assert hub.is_running() and hub.address == address
        assert read_record(sock_dir, "ev") is not None
        client = create_client(transport, "ev", socket_dir=sock_dir, timezone="UTC",
                               auto_reconnect=False)
        client.connect(timeout=5)
        client.disconnect()
        hub.stop()
        hub.stop()
        assert not hub.is_running()
    hub.stop()  # and a third time, by the with block: still fine
    assert read_record(sock_dir, "ev") is None
    assert os.listdir(sock_dir) == []
    with pytest.raises(SocketError) as info:
        hub.start()
    assert str(info.value) == "a stopped hub cannot be restarted: create a new one"


def test_a_blocking_start_on_a_running_hub_returns_when_it_stops(sock_dir: Path) -> None:
    """In blocking mode the with block's start() returns once the hub stopped, as a blocking
    start() does (the hub itself runs in the thread the with statement started)."""
    import threading

    from tests.helpers import wait_until

    hub = UnixSocketServer("ev", socket_dir=sock_dir, timezone="UTC", blocking_mode=True)
    returned = threading.Event()

    def serve() -> None:
        with hub:
            hub.start()  # blocking_mode: returns once the hub stopped
            returned.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    wait_until(hub.is_running, what="the hub to start")
    assert not returned.wait(0.2)  # still serving
    hub.stop()
    assert returned.wait(5)
    thread.join(5)
    assert not thread.is_alive() and not hub.is_running()
    hub.stop()

"""Cleaning up after dead hubs, and finding socket-activated hubs that have no record yet.

A hub killed with -9 leaves its record, FIFO and sockets; the next sockcli command that reads
the record (list, send, listen, get, path) finds its lock free and removes them: only entries
of the expected type and ours, never through a link, a socket only when nobody listens on it
and a FIFO only when nobody reads it, and for a socket-activated hub never its sockets (they
are systemd's). A record locked by a hub that is starting, or shared by another reader, is
left to them.

A socket at ``{event}.sock`` with no live record is a socket-activated hub that has not
started: send, listen and get connect to it, and send without EVENT picks it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli.runtime import HubLock, HubRecord, activatable_events, list_records, socket_exists
from sockcli.types import SocketType
from tests.clitools import SOCKCLI, Cli, error_line, read_json, read_line, stop

pytestmark = pytest.mark.timeout(60)

HUB_FILES = ("ev.fifo", "ev.hub", "ev.lines.sock", "ev.sock")


def _files(cli: Cli) -> list[str]:
    return sorted(os.listdir(cli.socket_dir))


def _killed(cli: Cli, *args: str) -> list[str]:
    """Start ``sockcli serve ev ARGS``, kill it with -9, and return what it left."""
    hub = cli.serve("ev", *args)
    made = _files(cli)
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    assert _files(cli) == made  # kill -9 ran no clean-up
    return made


# -- a hub killed with -9 ---------------------------------------------------------------------


def test_a_killed_hub_leaves_its_record_fifo_and_sockets(cli: Cli) -> None:
    assert _killed(cli) == list(HUB_FILES)
    for name in ("ev.sock", "ev.lines.sock"):  # nobody listens on them any more
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(str(cli.socket_dir / name))
        probe.close()
    # list finds the lock free: it removes all four, and shows no hub.
    assert cli.list_json() == []
    assert _files(cli) == []


# What each command says when it finds only a dead hub's files (it removes them first).
COMMANDS = {
    "list": (("list", "--json"), 0, None),
    "send": (("send", "ev", "--wait", "0", "-d", "{}"), 69,
             "sockcli: error: no hub is running for event 'ev': start one with 'sockcli serve "
             "ev'"),
    "listen": (("listen", "ev", "--no-reconnect", "--wait", "0"), 69,
               "sockcli: error: no hub is running for event 'ev': start one with 'sockcli "
               "serve ev'"),
    "get": (("get", "ev", "--wait", "0"), 69,
            "sockcli: error: no hub is running for event 'ev': start one with 'sockcli serve "
            "ev'"),
    "path": (("path", "ev", "--json"), 0, None),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_every_command_cleans_up_after_a_killed_hub(cli: Cli, command: str,
                                                    transport: str) -> None:
    made = _killed(cli, *(["--tcp"] if transport == "tcp" else []))
    args, status, error = COMMANDS[command]
    done = cli.run(*args)
    assert done.returncode == status, done.stderr
    if error is None:
        assert done.stderr == ""
    else:
        assert error_line(done.stderr) == error
    # The TCP hub's per-hub secret is the next TCP hub's to replace (sockcli.hubsecret).
    assert _files(cli) == (["ev.token"] if transport == "tcp" else [])
    assert "ev.hub" in made
    if command == "path":
        assert json.loads(done.stdout)["running"] is False
    # The event is free for the next hub, which works as ever.
    cli.serve("ev")
    sent = cli.run("send", "ev", "-d", "{}")
    assert (sent.returncode, sent.stderr) == (0, "")


def test_send_without_event_cleans_up_and_says_no_hub_runs(cli: Cli) -> None:
    _killed(cli)
    done = cli.run("send", "--wait", "0", "-d", "{}")
    assert done.returncode == 69
    assert error_line(done.stderr) == (
        "sockcli: error: no EVENT given and no hub is running: name the event, or start a hub "
        "with 'sockcli serve EVENT'")
    assert _files(cli) == []


# -- what is removed, and what is left --------------------------------------------------------


def _record(cli: Cli, event: str = "ev", **fields: Any) -> Path:
    """A record no lock holds, as a hub killed with -9 leaves it."""
    d = cli.socket_dir
    d.mkdir(mode=0o700, exist_ok=True)
    values: dict[str, Any] = dict(event_name=event, transport=SocketType.UNIX, pid=99999,
                                  started_ms=1, path=str(d / f"{event}.sock"),
                                  fifo=str(d / f"{event}.fifo"),
                                  lines=str(d / f"{event}.lines.sock"))
    values.update(fields)
    path = d / f"{event}.hub"
    path.write_text(HubRecord(**values).to_json())
    return path


def _dead_socket(path: Path) -> None:
    """A socket file nobody listens on: bound, then closed."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    """Listening sockets the test holds, as systemd holds a socket unit's: closed after."""
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def _listening(path: Path, held: list[socket.socket]) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    held.append(sock)


def _accepts(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except ConnectionRefusedError:
        return False
    finally:
        probe.close()


def test_a_stale_record_takes_its_fifo_and_dead_sockets_and_nothing_else(cli: Cli) -> None:
    _record(cli)
    d = cli.socket_dir
    os.mkfifo(d / "ev.fifo", 0o600)
    _dead_socket(d / "ev.sock")
    _dead_socket(d / "ev.lines.sock")
    # Another event's files, and files of the event that no hub makes, stay.
    os.mkfifo(d / "other.fifo", 0o600)
    _dead_socket(d / "other.sock")
    (d / "ev.txt").write_text("mine")
    assert cli.list_json() == []
    assert _files(cli) == ["ev.txt", "other.fifo", "other.sock"]


@pytest.fixture
def fifo_readers() -> Iterator[list[int]]:
    """FIFOs the test holds open, as systemd holds a ``ListenFIFO=`` (read and write)."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def _read_fifo(path: Path, readers: list[int]) -> None:
    os.mkfifo(path, 0o600)
    readers.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))


def test_an_activated_hubs_sockets_are_left(cli: Cli, held: list[socket.socket],
                                            fifo_readers: list[int]) -> None:
    _record(cli, activated=True)
    d = cli.socket_dir
    _listening(d / "ev.sock", held)
    _dead_socket(d / "ev.lines.sock")  # even one nobody listens on: systemd's, not ours
    _read_fifo(d / "ev.fifo", fifo_readers)  # ListenFIFO=: systemd holds it open
    assert cli.list_json() == []
    assert _files(cli) == ["ev.fifo", "ev.lines.sock", "ev.sock"]
    assert _accepts(d / "ev.sock")
    # Its own FIFO, which nobody reads once it died, is removed (a write would hang).
    _record(cli, activated=True)
    os.close(fifo_readers.pop())
    assert cli.list_json() == []
    assert _files(cli) == ["ev.lines.sock", "ev.sock"]


def test_a_fifo_someone_reads_is_left(cli: Cli, fifo_readers: list[int]) -> None:
    _record(cli)
    _read_fifo(cli.socket_dir / "ev.fifo", fifo_readers)
    assert cli.list_json() == []
    assert _files(cli) == ["ev.fifo"]
    os.write(fifo_readers[0], b"x\n")  # and nothing was written to it
    assert os.read(fifo_readers[0], 100) == b"x\n"


def test_a_socket_someone_listens_on_is_left(cli: Cli, held: list[socket.socket]) -> None:
    # The record does not say activated, or cannot be read (a hub that died starting): a
    # socket that takes connections is someone's (systemd's), and stays.
    for content in (None, ""):
        path = _record(cli)
        if content is not None:
            path.write_text(content)
        d = cli.socket_dir
        _listening(d / "ev.lines.sock", held)
        _dead_socket(d / "ev.sock")
        os.mkfifo(d / "ev.fifo", 0o600)
        done = cli.run("send", "ev", "--wait", "0", "-d", "{}")
        assert done.returncode == 69, done.stderr
        assert _files(cli) == ["ev.lines.sock"]
        assert _accepts(d / "ev.lines.sock")
        held.pop().close()
        os.unlink(d / "ev.lines.sock")


def test_entries_of_another_type_and_links_are_left(cli: Cli) -> None:
    _record(cli)
    d = cli.socket_dir
    (d / "ev.fifo").write_text('{"n": 1}\n')  # a redirection made a file: no FIFO
    os.mkfifo(d / "ev.lines.sock", 0o600)  # not a socket
    elsewhere = Path(cli.root) / "target.sock"
    _dead_socket(elsewhere)
    os.symlink(elsewhere, d / "ev.sock")  # never followed, never removed
    done = cli.run("path", "ev", "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert _files(cli) == ["ev.fifo", "ev.lines.sock", "ev.sock"]
    assert (d / "ev.fifo").read_text() == '{"n": 1}\n'
    assert os.readlink(d / "ev.sock") == str(elsewhere) and elsewhere.exists()


def test_a_link_in_place_of_the_fifo_is_not_followed(cli: Cli) -> None:
    _record(cli)
    d = cli.socket_dir
    target = Path(cli.root) / "target.fifo"
    os.mkfifo(target, 0o600)
    os.symlink(target, d / "ev.fifo")
    assert cli.list_json() == []
    assert _files(cli) == ["ev.fifo"]
    assert os.path.islink(d / "ev.fifo") and target.exists()


def test_a_record_another_reader_holds_is_left_to_it(cli: Cli) -> None:
    path = _record(cli)
    os.mkfifo(cli.socket_dir / "ev.fifo", 0o600)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as a reader does, for a few microseconds
        assert cli.list_json() == []  # stale all the same: not shown
        assert _files(cli) == ["ev.fifo", "ev.hub"]
    finally:
        os.close(fd)
    assert cli.list_json() == []
    assert _files(cli) == []


def test_a_starting_hubs_record_is_left(cli: Cli) -> None:
    cli.socket_dir.mkdir(mode=0o700)
    os.mkfifo(cli.socket_dir / "ev.fifo", 0o600)
    lock = HubLock(cli.socket_dir, "ev")
    lock.acquire()  # locked, nothing written yet: a hub between its lock and its record
    try:
        assert cli.list_json() == []
        done = cli.run("send", "ev", "--wait", "0", "-d", "{}")
        assert done.returncode == 69
        assert _files(cli) == ["ev.fifo", "ev.hub"]
    finally:
        lock.release()


def test_the_library_cleans_up_too(cli: Cli) -> None:
    _record(cli, "a")
    _record(cli, "b", transport=SocketType.TCP, path=None, fifo=None, lines=None,
            host="127.0.0.1", port=1)
    _dead_socket(cli.socket_dir / "a.sock")
    assert list_records(cli.socket_dir) == []
    assert _files(cli) == []


# -- socket activation: a socket with no record yet -------------------------------------------


def test_a_socket_without_record_is_activatable(cli: Cli, held: list[socket.socket]) -> None:
    d = cli.socket_dir
    assert activatable_events(d) == [] and not socket_exists(d, "ev")  # no directory yet
    d.mkdir(mode=0o700)
    _listening(d / "ev.sock", held)
    _listening(d / "ev.lines.sock", held)  # not an event of its own
    _listening(d / "zz.sock", held)
    (d / "file.sock").write_text("")  # not a socket
    os.symlink(d / "zz.sock", d / "link.sock")  # not followed
    assert activatable_events(d) == ["ev", "zz"]
    assert socket_exists(d, "ev") and not socket_exists(d, "file")
    lock = HubLock(d, "zz")
    lock.acquire()
    try:
        lock.write(HubRecord(event_name="zz", transport=SocketType.UNIX, pid=os.getpid(),
                             started_ms=1, path=str(d / "zz.sock")))
        assert activatable_events(d) == ["ev"]  # zz's hub runs: it has a record
    finally:
        lock.release()


def test_a_refused_socket_without_record_is_no_hub(cli: Cli) -> None:
    cli.socket_dir.mkdir(mode=0o700)
    _dead_socket(cli.socket_dir / "ev.sock")
    for args in (("send", "ev", "--wait", "0", "-d", "{}"),
                 ("listen", "ev", "--no-reconnect", "--wait", "0")):
        done = cli.run(*args)
        assert done.returncode == 69, args
        assert error_line(done.stderr) == ("sockcli: error: no hub is running for event 'ev': "
                                           "start one with 'sockcli serve ev'")
    assert _files(cli) == ["ev.sock"]  # no record says whose it is: left


class Relay:
    """Holds a listening socket at ``path`` with no record next to it, as systemd holds a
    socket unit's, and carries each connection to the real hub at ``hub``: the clients find
    a hub by the socket alone, whatever starts it (here one that already runs elsewhere)."""

    def __init__(self, path: Path, hub: Path) -> None:
        self.hub = hub
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.socks: list[socket.socket] = [self.listener]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.connections += 1
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.hub))
            self.socks += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            sock.close()


@pytest.fixture
def relay(cli: Cli) -> Iterator[Relay]:
    """``ev``'s socket in the CLI's socket directory, with no record, relayed to a real
    ``sockcli serve ev`` running in another socket directory (``relay.hub``)."""
    other = cli.root / "other"
    cli.serve("ev", options=("--socket-dir", str(other)))
    cli.socket_dir.mkdir(mode=0o700)
    made = Relay(cli.socket_dir / "ev.sock", other / "ev.sock")
    yield made
    made.close()


def test_a_socket_without_record_is_found_by_send_listen_and_get(cli: Cli,
                                                                 relay: Relay) -> None:
    assert _files(cli) == ["ev.sock"] and cli.list_json() == []
    listener = cli.listen("ev", "--json", "--count", "2")  # found by the socket alone
    for args in (("send", "ev", "-d", '{"n": 1}'), ("send", "-d", '{"n": 2}')):  # picked
        sent = cli.run(*args)
        assert (sent.returncode, sent.stderr) == (0, ""), args
    assert [read_json(listener)["data"] for _ in range(2)] == [{"n": 1}, {"n": 2}]
    assert listener.wait(10) == 0
    got = cli.run("get")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["data"] == {"n": 2}
    assert relay.connections == 4  # none went anywhere else
    assert _files(cli) == ["ev.sock"]  # and nothing was made next to it


def test_a_listener_started_before_the_socket_finds_it(cli: Cli) -> None:
    other = cli.root / "other"
    cli.serve("ev", options=("--socket-dir", str(other)))
    cli.socket_dir.mkdir(mode=0o700)
    listener = cli.popen("-v", "listen", "ev", "--json", "--count", "1")
    assert "waiting for messages of 'ev'" in read_line(listener, "stderr", 15)
    relay = Relay(cli.socket_dir / "ev.sock", other / "ev.sock")
    try:
        line = read_line(listener, "stderr", 15)
        assert line.strip() == f"sockcli: listening to 'ev' on {cli.socket_dir}/ev.sock"
        sent = cli.run("send", "ev", "-d", '{"n": 3}')
        assert (sent.returncode, sent.stderr) == (0, "")
        assert read_json(listener)["data"] == {"n": 3}
        assert listener.wait(10) == 0
    finally:
        relay.close()


def _activate(cli: Cli, event: str) -> subprocess.Popen[str]:
    """Hold ``event``'s two sockets as systemd's socket unit would, with
    systemd-socket-activate, which starts ``sockcli serve EVENT`` on the first connection."""
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate (Debian's systemd package) is not installed")
    cli.socket_dir.mkdir(mode=0o700, exist_ok=True)
    sock, lines = cli.socket_dir / f"{event}.sock", cli.socket_dir / f"{event}.lines.sock"
    env = {k: v for k, v in cli.env.items() if not k.startswith("LISTEN_")}
    hub = subprocess.Popen(
        [activate, "-l", str(sock), "-l", str(lines), "--fdname=msgpack:lines",
         "-E", f"SOCKCLI_SOCKET_DIR={cli.socket_dir}", "-E", f"PATH={env.get('PATH', '')}",
         SOCKCLI, "serve", event],
        env=env, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    cli.procs.append(hub)
    assert read_line(hub, "stderr", 20).strip() == f"Listening on {sock} as 3."
    assert read_line(hub, "stderr", 20).strip() == f"Listening on {lines} as 4."
    return hub


@pytest.mark.timeout(90)
def test_listen_starts_a_socket_activated_hub_and_gets_its_messages(cli: Cli) -> None:
    hub = _activate(cli, "ev")
    assert cli.list_json() == []  # nothing runs yet, and list does not start it
    assert _files(cli) == ["ev.lines.sock", "ev.sock"]
    listener = cli.listen("ev", "--json", "--count", "1", timeout=30)
    [row] = cli.list_json()
    assert (row["event_name"], row["pid"], row["activated"]) == ("ev", hub.pid, True)
    sent = cli.run("send", "ev", "-d", '{"n": 1}')
    assert (sent.returncode, sent.stderr) == (0, "")
    assert read_json(listener, 20)["data"] == {"n": 1}
    assert listener.wait(10) == 0


@pytest.mark.timeout(90)
def test_send_without_event_picks_the_socket_activated_hub(cli: Cli) -> None:
    hub = _activate(cli, "ev")
    sent = cli.run("send", "-d", '{"n": 2}', "--timeout", "30", timeout=40)
    assert (sent.returncode, sent.stderr) == (0, "")
    got = cli.run("get", timeout=30)  # the hub runs now: picked by its record
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["data"] == {"n": 2}
    # Killed with -9: the record says activated, so the sockets stay (systemd's).
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    assert "ev.hub" in _files(cli)
    assert cli.list_json() == []
    assert _files(cli) == ["ev.lines.sock", "ev.sock"]


@pytest.mark.timeout(90)
def test_several_socket_activated_hubs_are_64_without_event(cli: Cli) -> None:
    _activate(cli, "alpha")
    _activate(cli, "beta")
    done = cli.run("send", "--wait", "0", "-d", "{}")
    assert done.returncode == 64
    assert error_line(done.stderr) == (
        "sockcli: error: no EVENT given and 2 socket-activated hubs wait for a first connection "
        "(alpha, beta): name one, or set SOCKCLI_EVENT")
    assert cli.list_json() == []  # none was started by the look

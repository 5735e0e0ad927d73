"""The socket directory against another local user (docs/SECURITY.md, "Who can reach the
sockets"): a planted or swapped directory, a planted socket link, loose modes and owners.

The default directory is ``$XDG_RUNTIME_DIR/sockcli``, else ``/tmp/sockcli-<uid>``: a fixed
name in a directory every user may write to. The tests do not touch the real
``/tmp/sockcli-<uid>`` (a developer's hubs may live there); they build the same shape, a fixed
name in a sticky, world-writable directory of their own, and point ``XDG_RUNTIME_DIR`` (the
variable the default reads) or ``socket_dir`` at it. The attacker is a real process of the
user ``nobody`` (tests/helpers.py, spawn_as), which needs nothing from the checkout.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli import (
    SocketError,
    TcpSocketClient,
    TcpSocketServer,
    UnixSocketClient,
    UnixSocketServer,
    create_server,
)
from sockcli.cli.errors import from_library
from sockcli.client.discovery import LocalHubClient
from sockcli.client.oneshot import Sender
from sockcli.exceptions import HubAbsentError, UnsafePathError, ValidationError
from sockcli.kinds import SocketType
from sockcli.runtime import HubLock, HubRecord, list_records, open_socket_dir, read_record
from tests.clitools import error_line, read_line, rest
from tests.helpers import child_line, other_user, short_tmp_dir, spawn_as

pytestmark = pytest.mark.timeout(60)


ERROR = "sockcli: error: "


def _link_refusal(path: Path) -> str:
    return (f"socket directory {path} is a symbolic link: sockcli does not follow one (remove "
            "it, or choose another socket_dir)")


def _last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.splitlines()[-1]


# -- the attacker -------------------------------------------------------------------------------

#: Run as nobody: makes its own directory in argv[1] with a fake hub's socket (anyone may
#: connect) and a fake record naming it (held locked, as a live hub's), then plants argv[1]/
#: argv[2] as a symbolic link to argv[3] (its own directory when empty). Prints "planted", then
#: counts the connections its socket accepts; prints the count and exits when stdin closes.
_PLANT = """
    import fcntl, json, os, select, socket, sys
    shared, name, target = sys.argv[1:4]
    evil = os.path.join(shared, "evil")
    os.mkdir(evil, 0o755)
    fake = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fake.bind(os.path.join(evil, "ev.sock"))
    os.chmod(os.path.join(evil, "ev.sock"), 0o777)
    fake.listen(128)
    record = os.open(os.path.join(evil, "ev.hub"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(record, fcntl.LOCK_EX)
    os.write(record, json.dumps({"event_name": "ev", "transport": "unix", "pid": os.getpid(),
                                 "started_ms": 1, "path": os.path.join(evil, "ev.sock")}).encode())
    if name:
        os.symlink(target or evil, os.path.join(shared, name))
    print("planted", flush=True)
    count = 0
    while True:
        ready = select.select([fake, 0], [], [], 60)[0]
        if not ready:
            sys.exit("nothing happened for 60 s")
        if fake in ready:
            fake.accept()[0].close()
            count += 1
        if 0 in ready and not os.read(0, 4096):
            break
    print(count, flush=True)
"""


class Attacker:
    """The user nobody's process of :data:`_PLANT`: a fake hub in its own directory."""

    def __init__(self, shared: Path, children: list[Any], *, link: str = "sockcli",
                 target: Path | None = None) -> None:
        self.user = other_user()
        self.dir = shared / "evil"
        self.socket = self.dir / "ev.sock"
        self.proc = spawn_as(self.user, _PLANT, str(shared), link,
                             str(target) if target else "")
        children.append(self.proc)
        assert child_line(self.proc) == "planted"

    def connections(self) -> int:
        """How many connections the fake hub got (ends the attacker)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        count = int(child_line(self.proc))
        assert self.proc.wait(10) == 0
        return count


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory like /tmp: every user may create entries in it, sticky (only an entry's
    owner may remove or rename it)."""
    path = short_tmp_dir()
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ours() -> Iterator[Path]:
    """A private directory of ours (0700) that a link may point to."""
    path = short_tmp_dir()
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- a planted directory ------------------------------------------------------------------------

@pytest.mark.parametrize("points_to", ["nobody's directory", "a private directory of ours"])
def test_a_planted_link_is_refused_by_every_command_with_78(cli, children, shared: Path,
                                                            ours: Path, points_to: str) -> None:
    """Before: a link to a directory of ours passed the check (os.stat follows links), so
    whoever could swap the link chose where hubs and clients went."""
    target = ours if points_to.startswith("a private") else None
    attacker = Attacker(shared, children, target=target)
    env = {"XDG_RUNTIME_DIR": str(shared)}  # the default socket_dir: {shared}/sockcli
    expected = _link_refusal(shared / "sockcli")
    for command in (["serve", "ev"], ["send", "ev", "-d", "{}"], ["send", "-d", "{}"],
                    ["listen", "ev"], ["listen", "ev", "--no-reconnect"], ["list"]):
        done = cli.run(*command, env=env)
        assert (done.returncode, error_line(done.stderr)) == (78, ERROR + expected), command
        assert done.stdout == ""
    assert attacker.connections() == 0
    assert os.path.islink(shared / "sockcli")  # refused, neither followed nor removed
    assert os.listdir(ours) == []  # nothing was created through the link


def test_a_planted_link_is_refused_everywhere_with_the_same_error(children, shared: Path,
                                                                  ours: Path) -> None:
    """Hub start, both clients, discovery, the one-shot sender and the record readers: one
    exception class, one text, exit status 78 on the command line."""
    Attacker(shared, children, target=ours)
    link = shared / "sockcli"
    expected = _link_refusal(link)
    attempts: dict[str, Callable[[], Any]] = {
        "unix hub": lambda: UnixSocketServer("ev", socket_dir=link).start(blocking=False),
        "tcp hub": lambda: TcpSocketServer("ev", socket_dir=link).start(blocking=False),
        "unix client": lambda: UnixSocketClient("ev", socket_dir=link,
                                                auto_reconnect=False).connect(timeout=1),
        "tcp client": lambda: TcpSocketClient("ev", socket_dir=link,
                                              auto_reconnect=False).connect(timeout=1),
        "discovery": lambda: LocalHubClient("ev", socket_dir=link,
                                            auto_reconnect=False).connect(timeout=1),
        "sender": lambda: Sender.open("ev", socket_dir=str(link), wait=1),
        "read_record": lambda: read_record(link, "ev"),
        "list_records": lambda: list_records(link),
        "hub lock": lambda: HubLock(link, "ev").acquire(),
    }
    for where, attempt in attempts.items():
        with pytest.raises(UnsafePathError) as info:
            attempt()
        assert str(info.value) == expected, where
        assert from_library(info.value).exit_code == 78
    assert os.listdir(ours) == []


@pytest.mark.timeout(30)
def test_a_directory_swapped_while_a_listener_waits_is_refused_with_78(cli, children,
                                                                       shared: Path) -> None:
    """Found at connection time, after the command's first check passed: the same message and
    exit status as at start-up (it was exit status 1)."""
    env = {"XDG_RUNTIME_DIR": str(shared)}
    real = shared / "sockcli"
    real.mkdir(mode=0o700)
    listener = cli.popen("-v", "listen", "ev", env=env)
    assert "waiting for messages of 'ev'" in read_line(listener, "stderr", 15)
    real.rename(shared / "ours")  # our directory goes (only we may move it: /tmp is sticky)
    attacker = Attacker(shared, children)  # and nobody plants a link in its place
    assert listener.wait(15) == 78
    assert _last_line(rest(listener, "stderr")) == ERROR + _link_refusal(real)
    assert attacker.connections() == 0


# -- the swap races -----------------------------------------------------------------------------

#: Run as nobody: points its link argv[1] at argv[2] and argv[3] in turn (a new link renamed
#: over the old one, so it never disappears), as fast as it can, saying "flipping" once it
#: does, until stdin closes; then prints how many times it flipped it.
_FLIP = """
    import os, select, sys
    link, targets = sys.argv[1], sys.argv[2:4]
    new = link + ".new"
    flips = 0
    while not select.select([0], [], [], 0)[0]:
        os.symlink(targets[flips % 2], new)
        os.replace(new, link)
        flips += 1
        if flips == 2:
            print("flipping", flush=True)
    print(flips, flush=True)
"""

#: Run as nobody in argv[1], a directory it may write to (not sticky): swaps argv[1]/sockcli
#: (our directory) for a link to its own directory and back, as fast as it can, saying
#: "swapping" once it does, until stdin closes; then prints how many swaps it made (ours is
#: back in place by then).
_SWAP = """
    import os, select, sys
    base = sys.argv[1]
    ours, aside, evil = (os.path.join(base, n) for n in ("sockcli", "aside", "evil"))
    swaps = 0
    while not select.select([0], [], [], 0)[0]:
        os.rename(ours, aside)
        os.symlink(evil, ours)
        os.unlink(ours)
        os.rename(aside, ours)
        swaps += 1
        if swaps == 1:
            print("swapping", flush=True)
    print(swaps, flush=True)
"""


def _send_many(socket_dir: Path, count: int) -> tuple[dict[str, int], list[str]]:
    """One-shot senders (a connection each) to the hub of "ev" in ``socket_dir``: how many
    were acknowledged, refused as unsafe, or found no hub; and any other error."""
    outcomes = {"acknowledged": 0, "refused": 0, "absent": 0}
    others: list[str] = []
    for n in range(count):
        try:
            sender = Sender.open("ev", socket_dir=str(socket_dir), wait=0, timeout=2)
        except UnsafePathError as exc:
            assert str(exc) == _link_refusal(socket_dir)
            outcomes["refused"] += 1
            continue
        except HubAbsentError:  # no directory there at that moment, or a fake hub's
            outcomes["absent"] += 1
            continue
        except SocketError as exc:
            others.append(str(exc))
            continue
        try:
            sender.send({"n": n})
            sender.flush(5)
            outcomes["acknowledged"] += 1
        except SocketError as exc:
            others.append(str(exc))
        finally:
            sender.close()
    return outcomes, others


def _finish(proc: Any) -> int:
    assert proc.stdin is not None
    proc.stdin.close()
    done = int(child_line(proc))
    assert proc.wait(10) == 0
    return done


@pytest.mark.timeout(60)
def test_flipping_a_planted_link_during_sends_captures_nothing(children, shared: Path,
                                                               ours: Path) -> None:
    """The issue's probe: nobody plants the default directory's name as a link and flips it
    between a private directory of ours (which passed the old check, os.stat following the
    link) and its own, with a fake hub. Before, 37 to 57 of 150 messages went to the fake
    hub; now the link is refused every time, whichever way it points."""
    link = shared / "sockcli"
    attacker = Attacker(shared, children, target=ours)
    hub = create_server("unix", "ev", socket_dir=ours, timezone="UTC")
    hub.start(blocking=False)
    flipper = spawn_as(attacker.user, _FLIP, str(link), str(ours), str(attacker.dir))
    children.append(flipper)
    assert child_line(flipper) == "flipping"
    try:
        outcomes, others = _send_many(link, 150)
    finally:
        flips = _finish(flipper)
        hub.stop()
    assert flips > 0
    assert (attacker.connections(), others) == (0, []), outcomes
    assert outcomes == {"acknowledged": 0, "refused": 150, "absent": 0}


@pytest.mark.timeout(60)
def test_swapping_our_directory_during_sends_captures_nothing(children, shared: Path) -> None:
    """Where the parent lets another user rename our directory (world-writable, not sticky):
    it is checked and used in one step (by descriptor), so each send reaches our hub, finds
    none (the directory was aside) or is refused; none reaches theirs."""
    base = shared / "open"
    base.mkdir()
    os.chmod(base, 0o777)
    real = base / "sockcli"
    attacker = Attacker(base, children, link="")  # {base}/evil with its fake hub, no link yet
    hub = create_server("unix", "ev", socket_dir=real, timezone="UTC")
    got: list[Any] = []
    hub.add_handler(lambda message, client: got.append(message.data))
    hub.start(blocking=False)
    swapper = spawn_as(attacker.user, _SWAP, str(base))
    children.append(swapper)
    assert child_line(swapper) == "swapping"
    try:
        outcomes, others = _send_many(real, 150)
    finally:
        swaps = _finish(swapper)
        hub.stop()
    assert swaps > 0
    assert (attacker.connections(), others) == (0, []), outcomes
    assert len(got) == outcomes["acknowledged"], outcomes
    assert sum(outcomes.values()) == 150


# -- a planted socket ---------------------------------------------------------------------------

def test_a_socket_that_is_a_link_is_refused_not_followed(cli, children, shared: Path) -> None:
    attacker = Attacker(shared, children, link="")
    sock_dir = cli.socket_dir
    sock_dir.mkdir(mode=0o700)
    planted = sock_dir / "ev.sock"
    planted.symlink_to(attacker.socket)  # a live socket behind it, anyone may connect
    expected = f"{planted} is a symbolic link: sockcli does not follow one (remove it, or " \
        "choose another socket_dir)"
    for command in (["send", "ev", "-d", "{}"], ["serve", "ev"]):
        done = cli.run(*command)
        assert (done.returncode, error_line(done.stderr)) == (78, ERROR + expected), command
    # A live record naming that path (listen and TCP clients go by the record).
    lock = HubLock(sock_dir, "ev")
    lock.acquire()
    try:
        lock.write(HubRecord(event_name="ev", transport=SocketType.UNIX, pid=os.getpid(),
                             started_ms=1, path=str(planted)))
        for command in (["listen", "ev", "--no-reconnect"], ["listen", "ev"],
                        ["send", "ev", "-d", "{}"]):
            done = cli.run(*command)
            assert (done.returncode, error_line(done.stderr)) == (78, ERROR + expected), \
                command
    finally:
        lock.release()
    for attempt in (lambda: UnixSocketClient("ev", socket_dir=sock_dir,
                                             auto_reconnect=False).connect(timeout=1),
                    lambda: Sender.open("ev", socket_dir=str(sock_dir), wait=1),
                    lambda: UnixSocketServer("ev", socket_dir=sock_dir).start(blocking=False)):
        with pytest.raises(UnsafePathError) as info:
            attempt()
        assert str(info.value) == expected
    assert planted.is_symlink()  # the hub neither removed it nor bound through it
    assert sorted(os.listdir(sock_dir)) == ["ev.sock"]
    assert attacker.connections() == 0


# -- modes and owners ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode, word", [(0o755, "readable"), (0o750, "readable"),
                                        (0o704, "readable"), (0o770, "writable"),
                                        (0o777, "writable"), (0o1733, "writable")])
def test_a_directory_others_may_list_or_change_is_refused(cli, sock_dir: Path, mode: int,
                                                          word: str) -> None:
    d = sock_dir / "d"
    d.mkdir()
    os.chmod(d, mode)
    expected = f"socket directory {d} is {word} by others (mode {mode:04o}): run 'chmod 700 {d}'"
    for attempt in (lambda: UnixSocketServer("ev", socket_dir=d).start(blocking=False),
                    lambda: UnixSocketClient("ev", socket_dir=d,
                                             auto_reconnect=False).connect(timeout=1),
                    lambda: read_record(d, "ev")):
        with pytest.raises(UnsafePathError) as info:
            attempt()
        assert str(info.value) == expected
    done = cli.run("--socket-dir", str(d), "send", "ev", "-d", "{}")
    assert (done.returncode, error_line(done.stderr)) == (78, ERROR + expected)
    assert os.listdir(d) == []
    assert stat.S_IMODE(os.stat(d).st_mode) == mode  # never "fixed" behind the user's back


@pytest.mark.parametrize("mode", [0o700, 0o711, 0o701])
def test_others_may_only_search_the_directory(hubs: list[Any], sock_dir: Path,
                                              mode: int) -> None:
    """Search (x) alone lets another user reach a socket whose own mode lets them (the recipe
    for allowed_uids); it shows them nothing and lets them change nothing."""
    os.chmod(sock_dir, mode)
    hub = UnixSocketServer("ev", socket_dir=sock_dir, timezone="UTC")
    hubs.append(hub)
    hub.start(blocking=False)
    client = UnixSocketClient("ev", socket_dir=sock_dir, timezone="UTC", auto_reconnect=False)
    client.connect(timeout=5)
    client.disconnect()


def test_a_directory_of_another_user_is_refused(cli, sock_dir: Path) -> None:
    nobody = other_user()
    d = sock_dir / "d"
    d.mkdir(mode=0o700)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    expected = (f"socket directory {d} belongs to uid {nobody.pw_uid}, not to you (uid "
                f"{os.geteuid()}): choose another socket_dir")
    for attempt in (lambda: UnixSocketServer("ev", socket_dir=d).start(blocking=False),
                    lambda: UnixSocketClient("ev", socket_dir=d,
                                             auto_reconnect=False).connect(timeout=1),
                    lambda: list_records(d)):
        with pytest.raises(UnsafePathError) as info:
            attempt()
        assert str(info.value) == expected
    for command in (["serve", "ev"], ["send", "ev", "-d", "{}"], ["listen", "ev"]):
        done = cli.run("--socket-dir", str(d), *command)
        assert (done.returncode, error_line(done.stderr)) == (78, ERROR + expected), command


def test_a_file_where_the_directory_should_be_is_refused(sock_dir: Path) -> None:
    f = sock_dir / "f"
    f.write_text("")
    with pytest.raises(UnsafePathError, match=f"^socket directory {f} is not a directory$"):
        UnixSocketServer("ev", socket_dir=f).start(blocking=False)
    with pytest.raises(SocketError, match=f"^cannot create socket directory {f / 'sub'}: "):
        UnixSocketServer("ev", socket_dir=f / "sub").start(blocking=False)


def test_the_descriptor_is_the_directory_that_was_checked(sock_dir: Path) -> None:
    """open_socket_dir's descriptor keeps naming the directory it checked, whatever happens to
    the path afterwards; a link, even to a good directory, is refused."""
    d = sock_dir / "d"
    fd = open_socket_dir(d, create=True)
    assert fd is not None
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o700
        d.rename(sock_dir / "moved")
        d.symlink_to(sock_dir / "moved")
        (sock_dir / "moved" / "mark").write_text("")
        assert os.listdir(fd) == ["mark"]
        with pytest.raises(UnsafePathError, match="is a symbolic link"):
            open_socket_dir(d)
    finally:
        os.close(fd)
    assert open_socket_dir(sock_dir / "absent") is None
    assert not (sock_dir / "absent").exists()
    assert isinstance(UnsafePathError("x"), ValidationError)  # 78, like every bad setting


def test_the_default_directory_is_the_checked_one(monkeypatch, shared: Path) -> None:
    """XDG_RUNTIME_DIR unset: /tmp/sockcli-<uid> (not touched here); set: {it}/sockcli, which
    every hub and client checks the same way."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert UnixSocketServer("ev").config.socket_dir == Path(f"/tmp/sockcli-{os.getuid()}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    (shared / "sockcli").symlink_to(shared)
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        UnixSocketServer("ev").start(blocking=False)

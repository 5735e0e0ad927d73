"""systemd socket activation (sockcli.hub.activation) and sd_notify (sockcli.sdnotify).

Unit level: a Python child gets real listening sockets and FIFOs as systemd passes them
(descriptors from 3, LISTEN_PID its own pid, LISTEN_FDNAMES), calls ``inherited()`` and
prints what it found as JSON. sd_notify: a real datagram socket (a path, an abstract name)
receives what the hub would say. End to end: ``systemd-socket-activate`` starts ``sockcli
serve`` on the first ``sockcli send``, which is delivered; ``sockcli serve`` says READY=1 once
its socket accepts; a hub given a FIFO as ``ListenFIFO=`` would give it reads its lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli import sdnotify
from sockcli.hub.activation import ActivationError, inherited
from tests.clitools import SOCKCLI, read_json, read_line, stop
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)

EVENT = "ev"
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

#: Puts the descriptors of argv[1]'s "fds" at 3, 4, ... (inheritable, as systemd passes them),
#: sets LISTEN_* with LISTEN_PID its own pid (or its parent's, or a given text), then either
#: calls inherited() and prints what it found, or execs argv (the pid stays: it is the hub's).
WRAPPER = textwrap.dedent("""
    import fcntl, json, os, subprocess, sys
    spec = json.loads(sys.argv[1])
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in spec["fds"]]
    for fd in spec["fds"]:
        os.close(fd)
    for index, fd in enumerate(high):
        os.dup2(fd, 3 + index, inheritable=True)
        os.close(fd)
    count = len(high)
    pid = {"self": str(os.getpid()), "parent": str(os.getppid())}.get(spec["pid"], spec["pid"])
    os.environ.update(LISTEN_PID=pid, LISTEN_FDS=str(spec.get("count", count)))
    if spec["names"] is not None:
        os.environ["LISTEN_FDNAMES"] = spec["names"]
    if spec.get("argv"):
        os.execv(spec["argv"][0], spec["argv"])

    from pathlib import Path
    from sockcli.hub.activation import inherited

    def state(fd):
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            return None
        return {"inheritable": os.get_inheritable(fd), "blocking": os.get_blocking(fd),
                "rdwr": flags & os.O_ACCMODE == os.O_RDWR}

    out = {}
    try:
        got = inherited(spec["event"], Path(spec["socket_dir"]))
    except Exception as exc:
        out["error"] = [type(exc).__name__, str(exc)]
    else:
        if got is None:
            out["found"] = None
        else:
            out["found"] = {
                "msgpack": got.msgpack and [got.msgpack.fileno(), got.msgpack.getsockname()],
                "lines": got.lines and [got.lines.fileno(), got.lines.getsockname()],
                "fifo": got.fifo}
    out["fds"] = {fd: state(fd) for fd in range(3, 3 + count)}
    out["env"] = sorted(k for k in os.environ if k.startswith("LISTEN_"))
    out["child_env"] = subprocess.run(["sh", "-c", "env"], capture_output=True, text=True,
                                      check=True).stdout.count("LISTEN_")
    print(json.dumps(out))
""")


class Passed:
    """The descriptors a test passes, kept open until the child has read them."""

    def __init__(self, sock_dir: Path) -> None:
        self.dir = sock_dir
        self.objects: list[Any] = []
        self.fds: list[int] = []

    def unix(self, path: Path, *, kind: int = socket.SOCK_STREAM,
             listen: bool = True) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, kind)
        sock.bind(str(path))
        if listen:
            sock.listen()
        return self.add(sock)

    def add(self, sock: socket.socket) -> socket.socket:
        self.objects.append(sock)
        self.fds.append(sock.fileno())
        return sock

    def fifo(self, path: Path, flags: int = os.O_RDWR) -> int:
        if not path.exists():
            os.mkfifo(path, 0o600)
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for obj in self.objects:
            obj.close()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def passed(sock_dir: Path) -> Iterator[Passed]:
    given = Passed(sock_dir)
    yield given
    given.close()


def probe(passed: Passed, names: str | None, *, pid: str = "self",
          socket_dir: Path | None = None, **extra: Any) -> dict[str, Any]:
    """Run the wrapper on what ``passed`` holds; its JSON report."""
    spec = {"fds": passed.fds, "names": names, "pid": pid, "event": EVENT,
            "socket_dir": str(socket_dir or passed.dir), **extra}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    done = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(spec)], env=env,
                          pass_fds=passed.fds, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def paths(d: Path) -> tuple[str, str, str]:
    return str(d / f"{EVENT}.sock"), str(d / f"{EVENT}.lines.sock"), str(d / f"{EVENT}.fifo")


# -- what is inherited ------------------------------------------------------------------------


def test_named_descriptors_in_any_order_are_inherited_close_on_exec_and_non_blocking(
        passed: Passed) -> None:
    sock, lines, fifo = paths(passed.dir)
    passed.unix(Path(lines))
    passed.fifo(Path(fifo))
    passed.unix(Path(sock))
    report = probe(passed, "lines:fifo:msgpack")
    assert report["found"] == {"msgpack": [5, sock], "lines": [3, lines], "fifo": 4}
    ready = {"inheritable": False, "blocking": False, "rdwr": True}
    assert report["fds"] == {"3": ready, "4": ready, "5": ready}
    # Gone from the environment, and from what a command it starts sees.
    assert report["env"] == [] and report["child_env"] == 0


@pytest.mark.parametrize("names", ["sockcli@ev.socket:sockcli@ev.socket:sockcli@ev.socket",
                                   None], ids=["unit-name", "no-names"])
def test_unnamed_sockets_are_told_apart_by_their_path(passed: Passed, names: str | None,
                                                      ) -> None:
    # One socket unit gives its own name to all its descriptors: the paths tell.
    sock, lines, fifo = paths(passed.dir)
    passed.fifo(Path(fifo))
    passed.unix(Path(sock))
    passed.unix(Path(lines))
    report = probe(passed, names)
    assert report["found"] == {"msgpack": [4, sock], "lines": [5, lines], "fifo": 3}
    assert report["env"] == []


def test_what_is_not_passed_is_none(passed: Passed) -> None:
    sock, _, _ = paths(passed.dir)
    passed.unix(Path(sock))
    report = probe(passed, "sockcli@ev.socket")
    assert report["found"] == {"msgpack": [3, sock], "lines": None, "fifo": None}


def test_a_fifo_passed_read_only_is_reopened_for_writing_too(passed: Passed) -> None:
    # Else the hub would read end of file each time the last writer leaves.
    _, _, fifo = paths(passed.dir)
    passed.fifo(Path(fifo), os.O_RDONLY)
    report = probe(passed, "fifo")
    assert report["found"] == {"msgpack": None, "lines": None, "fifo": 3}
    assert report["fds"]["3"] == {"inheritable": False, "blocking": False, "rdwr": True}


@pytest.mark.parametrize("pid", ["parent", "none"])
def test_descriptors_for_another_process_are_left_alone(passed: Passed, pid: str) -> None:
    sock, _, _ = paths(passed.dir)
    passed.unix(Path(sock))
    if pid == "none":
        report = probe(passed, "msgpack", count=0)
    else:
        report = probe(passed, "msgpack", pid="parent")
    assert report["found"] is None
    # Untouched (still inheritable, blocking), but the variables are gone all the same.
    assert report["fds"]["3"] == {"inheritable": True, "blocking": True, "rdwr": True}
    assert report["env"] == [] and report["child_env"] == 0


def test_nothing_passed_and_malformed_variables() -> None:
    assert inherited(EVENT, Path("/nonexistent"), environ={"HOME": "/root"}) is None
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x",
           "HOME": "/root"}
    assert inherited(EVENT, Path("/nonexistent"), environ=env) is None
    assert env == {"HOME": "/root"}
    for variables, what in [({"LISTEN_PID": "abc", "LISTEN_FDS": "1"}, "LISTEN_PID='abc'"),
                            ({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "-2"},
                             "LISTEN_FDS='-2'")]:
        with pytest.raises(ActivationError, match=what) as caught:
            inherited(EVENT, Path("/nonexistent"), environ=variables)
        assert "sd_listen_fds(3)" in str(caught.value)
        assert variables == {}


# -- what is refused --------------------------------------------------------------------------


def refused(report: dict[str, Any], count: int) -> str:
    """The ActivationError's text; every descriptor passed was closed, the variables unset."""
    assert "error" in report, report
    kind, text = report["error"]
    assert kind == "ActivationError"
    assert report["fds"] == {str(fd): None for fd in range(3, 3 + count)}
    assert report["env"] == []
    assert "\n" not in text
    return str(text)


def test_a_tcp_socket_is_refused(passed: Passed) -> None:
    sock, lines, _ = paths(passed.dir)
    passed.unix(Path(lines))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    passed.add(tcp)
    text = refused(probe(passed, "lines:msgpack"), 2)
    port = tcp.getsockname()[1]
    assert text == (f"descriptor 4 passed by systemd is a TCP/IPv4 socket (127.0.0.1:{port}): "
                    "a socket-activated hub serves Unix sockets only: set "
                    f"ListenStream={sock} (a path, not a port)")


@pytest.mark.parametrize("kind", ["datagram", "not-listening", "connected"])
def test_a_unix_socket_that_does_not_listen_for_streams_is_refused(passed: Passed, kind: str,
                                                                   ) -> None:
    sock, _, _ = paths(passed.dir)
    if kind == "datagram":
        passed.unix(Path(sock), kind=socket.SOCK_DGRAM, listen=False)
    elif kind == "not-listening":
        passed.unix(Path(sock), listen=False)
    else:
        one, other = socket.socketpair()
        passed.add(one)
        passed.objects.append(other)
    text = refused(probe(passed, None), 1)
    if kind == "datagram":
        assert text == (f"descriptor 3 passed by systemd is a datagram Unix socket ({sock!r}): "
                        "use ListenStream= (a stream socket), not ListenDatagram= or "
                        "ListenSequentialPacket=")
    else:
        assert text == ("descriptor 3 passed by systemd is a Unix socket that does not listen "
                        "(a connection, as Accept=yes passes): set Accept=no in the socket unit")


def test_a_regular_file_is_refused(passed: Passed, sock_dir: Path) -> None:
    path = sock_dir / "file"
    path.write_text("")
    passed.fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    text = refused(probe(passed, None), 1)
    assert text == (f"descriptor 3 passed by systemd is neither a socket nor a FIFO ({path}): "
                    "the socket unit may only list ListenStream= and ListenFIFO=")


def test_two_of_a_kind_are_refused(passed: Passed) -> None:
    sock, _, fifo = paths(passed.dir)
    # The first socket's file was removed and the path bound again: both claim the path.
    passed.unix(Path(sock))
    os.unlink(sock)
    passed.unix(Path(sock))
    text = refused(probe(passed, None), 2)
    assert text == (f"systemd passed two MessagePack sockets ({sock} and {sock}): the socket "
                    f"unit must list one, ListenStream={sock}")

    passed.close()
    passed.objects, passed.fds = [], []
    passed.fifo(Path(fifo))
    passed.fifo(Path(fifo))
    text = refused(probe(passed, None), 2)
    assert text == (f"systemd passed two FIFOs ({fifo} and {fifo}): the socket unit must list "
                    f"one, ListenFIFO={fifo}")


def test_a_socket_elsewhere_than_where_clients_look_is_refused(passed: Passed) -> None:
    elsewhere = Path(str(passed.dir) + "-other")
    elsewhere.mkdir(mode=0o700)
    try:
        sock, _, _ = paths(passed.dir)
        other, _, _ = paths(elsewhere)
        passed.unix(Path(other))
        text = refused(probe(passed, "sockcli@ev.socket"), 1)
        assert text == (f"the MessagePack socket passed by systemd is {other}, but clients look "
                        f"for {sock}: set ListenStream={sock} in the socket unit, or "
                        f"socket_dir to {elsewhere} (SOCKCLI_SOCKET_DIR)")
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_name_that_contradicts_the_path_or_the_kind_is_refused(passed: Passed) -> None:
    sock, lines, fifo = paths(passed.dir)
    passed.unix(Path(sock))
    text = refused(probe(passed, "lines"), 1)
    assert text == (f"the JSON-lines socket passed by systemd is {sock}, but clients look for "
                    f"{lines}: set ListenStream={lines} in the socket unit, or socket_dir to "
                    "the unit's directory (the file must be named ev.lines.sock)")
    assert "named 'fifo' but is a socket" in refused(probe(passed, "fifo"), 1)

    passed.close()
    passed.objects, passed.fds = [], []
    passed.fifo(Path(fifo))
    assert refused(probe(passed, "msgpack"), 1) == (
        f"descriptor 3 passed by systemd is named 'msgpack' but is a FIFO ({fifo}): give "
        "FileDescriptorName=msgpack only to a ListenStream= unit")


def test_a_fifo_elsewhere_and_an_abstract_socket_are_refused(passed: Passed) -> None:
    _, _, fifo = paths(passed.dir)
    stray = passed.dir / "stray.fifo"
    passed.fifo(stray)
    text = refused(probe(passed, None), 1)
    assert text == (f"the FIFO passed by systemd is {stray}, but clients write to {fifo}: set "
                    f"ListenFIFO={fifo} in the socket unit, or socket_dir to the unit's "
                    "directory (the file must be named ev.fifo)")

    passed.close()
    passed.objects, passed.fds = [], []
    sock, _, _ = paths(passed.dir)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"sockcli-test-{uuid.uuid4().hex}"
    abstract.bind("\0" + name)
    abstract.listen()
    passed.add(abstract)
    text = refused(probe(passed, None), 1)
    assert text == (f"the Unix socket passed by systemd as descriptor 3 is in the abstract "
                    f"namespace (@{name}), but clients look for a path: set ListenStream={sock}")


def test_names_that_do_not_match_the_count_are_refused(passed: Passed) -> None:
    sock, _, _ = paths(passed.dir)
    passed.unix(Path(sock))
    text = refused(probe(passed, "msgpack:lines"), 1)
    assert text == ("LISTEN_FDNAMES names 2 descriptors but LISTEN_FDS passes 1: give the "
                    "socket unit one FileDescriptorName= or none")


def test_a_descriptor_announced_but_not_passed_is_refused(passed: Passed) -> None:
    sock, _, _ = paths(passed.dir)
    passed.unix(Path(sock))
    report = probe(passed, None, count=2)
    assert report["error"] == ["ActivationError",
                               "descriptor 4 that LISTEN_FDS passes is not open (Bad file "
                               "descriptor): whatever starts sockcli serve must pass the "
                               "descriptors it announces"]
    assert report["fds"] == {"3": None}


# -- sd_notify --------------------------------------------------------------------------------


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, sock_dir: Path,
                  ) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing for systemd's, and $NOTIFY_SOCKET naming it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(sock_dir / "notify")
        sock.bind(address)
    else:
        address = f"@sockcli-test-{uuid.uuid4().hex}"
        sock.bind("\0" + address[1:])
    sock.settimeout(15)
    yield sock, address
    sock.close()


def test_notify_sends_one_datagram(notify_socket: tuple[socket.socket, str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sock, address = notify_socket
    assert sdnotify.notify("STATUS=testing", {"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"STATUS=testing"
    monkeypatch.setenv("NOTIFY_SOCKET", address)  # the default: os.environ
    assert sdnotify.ready() is True
    assert sock.recv(4096) == f"READY=1\nMAINPID={os.getpid()}".encode()
    assert sdnotify.stopping() is True
    assert sock.recv(4096) == b"STOPPING=1"


def test_notify_without_a_manager_is_false_and_never_raises(sock_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture,
                                                             ) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.notify("READY=1", {}) is False
    caplog.set_level("DEBUG", logger="sockcli.hub")
    for address in (str(sock_dir / "nobody"), f"@sockcli-test-{uuid.uuid4().hex}",
                    "vsock:2:999"):
        assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": address}) is False
    assert sdnotify.notify("\udcff", {"NOTIFY_SOCKET": str(sock_dir / "nobody")}) is False
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 4, logged
    assert logged[0].startswith(f"cannot notify the service manager at {sock_dir}/nobody: ")
    assert logged[2] == ("NOTIFY_SOCKET='vsock:2:999' is not a Unix socket's path or abstract "
                         "name: not notified")


# -- end to end (needs the hub's integration of sockcli.hub.activation and sdnotify) ---------


def test_serve_notifies_ready_once_its_socket_accepts_and_stopping(cli: Any, sock_dir: Path,
                                                                   ) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_dir / "notify"))
    sock.settimeout(20)
    with sock:
        hub = cli.popen("serve", EVENT, env={"NOTIFY_SOCKET": str(sock_dir / "notify")})
        assert sock.recv(4096) == f"READY=1\nMAINPID={hub.pid}".encode()
        # Ready means ready: the socket is there and accepts, now.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(cli.socket_dir / f"{EVENT}.sock"))
        assert stop(hub) == 0
        assert sock.recv(4096) == b"STOPPING=1"


def wrapper_env(cli: Any) -> dict[str, str]:
    return {**{k: v for k, v in cli.env.items() if not k.startswith("LISTEN_")},
            "SOCKCLI_SOCKET_DIR": str(cli.socket_dir)}


@pytest.mark.timeout(90)
def test_a_send_to_a_socket_activated_hub_starts_it_and_is_delivered(cli: Any) -> None:
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate (Debian's systemd package) is not installed")
    cli.socket_dir.mkdir(mode=0o700)
    sock, lines, _ = paths(cli.socket_dir)
    env = wrapper_env(cli)
    hub = subprocess.Popen(
        [activate, "-l", sock, "-l", lines, "--fdname=msgpack:lines",
         "-E", f"SOCKCLI_SOCKET_DIR={cli.socket_dir}", "-E", f"PATH={env.get('PATH', '')}",
         SOCKCLI, "serve", EVENT],
        env=env, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    cli.procs.append(hub)
    assert read_line(hub, "stderr", 20).strip() == f"Listening on {sock} as 3."
    assert read_line(hub, "stderr", 20).strip() == f"Listening on {lines} as 4."
    assert cli.list_json() == []  # no hub yet: systemd-socket-activate only holds the sockets

    # The send connects, which starts the hub; nobody listens yet, so the hub queues it.
    sent = cli.run("send", EVENT, "-d", '{"n": 1}', "--timeout", "30",
                   env={"SOCKCLI_SOCKET_DIR": str(cli.socket_dir)}, timeout=40)
    assert sent.returncode == 0, sent.stderr
    got = cli.run("listen", EVENT, "--count", "1", "--json", timeout=30)
    assert got.returncode == 0, got.stderr
    [record] = [json.loads(line) for line in got.stdout.splitlines()]
    assert record["data"] == {"n": 1}
    [row] = cli.list_json()
    assert (row["event_name"], row["pid"], row["activated"]) == (EVENT, hub.pid, True)
    assert stop(hub) == 0


@pytest.mark.timeout(90)
def test_an_activated_hub_serves_the_fifo_and_the_lines_socket_it_was_given(
        cli: Any, passed: Passed) -> None:
    # As systemd passes a socket unit's three descriptors: all named after the unit.
    cli.socket_dir.mkdir(mode=0o700)
    sock, lines, fifo = paths(cli.socket_dir)
    passed.unix(Path(sock))
    passed.unix(Path(lines))
    passed.fifo(Path(fifo))
    spec = {"fds": passed.fds, "names": ":".join(["sockcli@ev.socket"] * 3), "pid": "self",
            "argv": [SOCKCLI, "serve", EVENT]}
    hub = subprocess.Popen([sys.executable, "-c", WRAPPER, json.dumps(spec)],
                           env=wrapper_env(cli), pass_fds=passed.fds, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    cli.procs.append(hub)
    assert "serving" in read_line(hub, "stderr", 20)
    passed.close()  # the hub holds them now
    passed.objects, passed.fds = [], []
    [row] = cli.list_json()
    assert (row["pid"], row["activated"], row["fifo"], row["lines"]) == (hub.pid, True, fifo,
                                                                          lines)

    listener = cli.listen(EVENT, "--json")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as reader:
        reader.settimeout(20)
        reader.connect(lines)
        # Both subscribed (the listener and the lines client) before anything is published.
        wait_until(lambda: cli.list_json()[0]["subscribers"] == 2, 20, "two subscribers")
        done = cli.bash(f"echo '{{\"n\": 2}}' > {fifo}")
        assert done.returncode == 0, done.stderr
        assert read_json(listener, 20)["data"] == {"n": 2}
        got = b""
        while not got.endswith(b"\n"):
            chunk = reader.recv(65536)
            assert chunk, "the lines socket closed"
            got += chunk
        assert json.loads(got)["data"] == {"n": 2}
    assert stop(hub) == 0

"""A Unix hub's JSON-lines socket, ``{socket_dir}/{event}.lines.sock``, against a real
``sockcli serve``: socat and ``nc -U`` as listeners (the very line ``sockcli listen --json``
prints), socat as publisher, the first-line forms (``#subscribe types=… last=1``,
``#publish``, bad ones), refused lines, the peer check as another uid, max_connections shared
with the MessagePack socket, and slow readers in the drop and wait modes (issue 11).

Clients that are neither socat nor nc are plain sockets (:class:`LinesPeer`), as a widget's
``Socket`` would be.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import Cli, read_line, rest, stderr_line, stop
from tests.helpers import child_line, other_user, spawn_as, wait_until

pytestmark = pytest.mark.timeout(60)

#: The keys of a ``listen --json`` line of a live message, in order.
KEYS = ["event_name", "timestamp_ms", "timestamp_iso", "message_type", "data"]


class LinesPeer:
    """A client of the lines socket over a plain socket: it writes text, reads lines."""

    def __init__(self, path: Path, first: str = "", *, timeout: float = 15.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self._buf = b""
        if first:
            self.send(first)

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no line from the hub in time (holding {self._buf!r:.200})") \
                from None
        except ConnectionResetError:
            data = b""
        self._buf += data
        return bool(data)

    def line(self) -> str:
        """The next line the hub sends, without its newline; fails at end of stream."""
        while b"\n" not in self._buf:
            if not self._fill():
                raise AssertionError(f"the hub closed the connection; left: {self._buf!r}")
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.line())
        return value

    def rest(self, *, end_output: bool = True) -> list[str]:
        """Every line left until the hub closes the connection (``end_output``: after ending
        ours, which makes the hub close it once our lines are handled)."""
        if end_output:
            self.sock.shutdown(socket.SHUT_WR)
        while self._fill():
            pass
        assert self._buf.endswith(b"\n") or not self._buf, self._buf
        return self._buf.decode().splitlines()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[list[LinesPeer]]:
    made: list[LinesPeer] = []
    yield made
    for peer in made:
        peer.close()


def _hub(cli: Cli, *args: str, env: dict[str, str] | None = None,
         ) -> tuple[subprocess.Popen[str], Path, Path]:
    """``sockcli serve ev ARGS``, serving; its lines socket and FIFO."""
    proc = cli.serve("ev", *args, env=env)
    return proc, cli.socket_dir / "ev.lines.sock", cli.socket_dir / "ev.fifo"


def _connect(peers: list[LinesPeer], path: Path, first: str = "") -> LinesPeer:
    peer = LinesPeer(path, first)
    peers.append(peer)
    return peer


def _clients(cli: Cli) -> int:
    [row] = cli.list_json()
    return int(row["clients"])


def _wait_clients(cli: Cli, count: int) -> None:
    """Until the hub has accepted ``count`` clients (a connect returns before that)."""
    wait_until(lambda: _clients(cli) == count, timeout=15, what=f"{count} clients")


def _fifo_write(fifo: Path, *lines: str) -> None:
    """Publish ``lines`` through the hub's FIFO, in one write."""
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, "".join(f"{line}\n" for line in lines).encode())
    finally:
        os.close(fd)


def _message(line: str) -> tuple[str, Any]:
    """(type, data) of a live message's line, its keys checked."""
    record = json.loads(line)
    assert list(record) == KEYS, record
    assert record["event_name"] == "ev"
    return record["message_type"], record["data"]


def _popen(children: list[Any], *argv: str) -> subprocess.Popen[str]:
    """A program (socat, nc) whose stdout the test reads; killed at teardown."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    children.append(proc)
    return proc


# -- the socket file --------------------------------------------------------------------------


def test_the_lines_socket_is_private_and_removed_when_the_hub_stops(cli: Cli) -> None:
    hub, lines, _ = _hub(cli)
    st = os.lstat(lines)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    [row] = cli.list_json()
    assert row["lines"] == str(lines)
    assert stop(hub) == 0
    assert not os.path.lexists(lines)
    assert os.listdir(cli.socket_dir) == []


# -- socat and nc -----------------------------------------------------------------------------


def test_socat_listens_and_gets_the_very_line_listen_json_prints(cli: Cli,
                                                                 children: list[Any]) -> None:
    _, lines, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    socat = _popen(children, "socat", "-u", f"UNIX-CONNECT:{lines}", "-")
    _wait_clients(cli, 2)
    sent = [
        ("data", {"text": "h\u00e9llo \u2713 \U0001f600", "quote": "a \"b\" \\ c\n\t",
                  "ctl": "\u0000\u001f\u2028", "slash": "/"}),
        ("error", {"numbers": [0, -1, 2.5, 1e100, 0.1, 12345678901234567890], "none": None,
                   "flags": [True, False], "deep": {"a": {"b": {"c": []}}}}),
        ("control", {}),
    ]
    for message_type, data in sent:
        done = cli.run("send", "ev", "-t", message_type, input=json.dumps(data))
        assert done.returncode == 0, done.stderr
    _fifo_write(fifo, 'data {"via": "fifo"}')
    for message_type, data in [*sent, ("data", {"via": "fifo"})]:
        expected = read_line(listener)
        assert read_line(socat) == expected  # byte for byte: valid UTF-8 both sides
        assert _message(expected) == (message_type, data)


def test_socat_publishes_to_a_sockcli_listen(cli: Cli) -> None:
    _, lines, _ = _hub(cli)
    listener = cli.listen("--json", "ev")
    done = cli.bash(
        """printf '{"n": 1}\\nerror {"n": 2}\\n\\ncontrol {"n": 3}\\n' | """
        f"""socat -u - UNIX-CONNECT:{lines}""")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert [_message(read_line(listener)) for _ in range(3)] == [
        ("data", {"n": 1}), ("error", {"n": 2}), ("control", {"n": 3})]
    # Both ways: what socat prints is what the hub said of its lines, and the hub closes the
    # connection once socat has ended its output and its lines are handled.
    done = cli.bash(f"""printf 'bad\\n{{"n": 4}}\\n' | socat - UNIX-CONNECT:{lines}""",
                    timeout=15)
    assert done.returncode == 0, done.stderr
    [refusal] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (refusal["error"], refusal["line"]) == ("invalid_message", 1)
    assert refusal["reason"].startswith("line 1: not JSON"), refusal
    assert _message(read_line(listener)) == ("data", {"n": 4})
    [row] = cli.list_json()
    assert (row["clients"], row["received"], row["rejected"]) == (1, 4, 1)


def test_nc_listens(cli: Cli, children: list[Any]) -> None:
    if "OpenBSD" not in subprocess.run(["nc", "-h"], capture_output=True, text=True).stderr:
        pytest.skip("nc is not netcat-openbsd")
    _, lines, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    nc = _popen(children, "nc", "-U", str(lines))  # stdin at end of file: it still reads
    _wait_clients(cli, 2)
    _fifo_write(fifo, '{"n": 1}', 'error {"n": 2}')
    for expected in [("data", {"n": 1}), ("error", {"n": 2})]:
        line = read_line(nc)
        assert line == read_line(listener)
        assert _message(line) == expected


# -- the first line ---------------------------------------------------------------------------


def test_subscribe_types_gets_only_those_types(cli: Cli, peers: list[LinesPeer]) -> None:
    _, lines, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    errors = _connect(peers, lines, "#subscribe types=error\n")
    named = _connect(peers, lines, "#subscribe types=error,CONTROL name=bar\n")
    _wait_clients(cli, 3)
    _fifo_write(fifo, '{"n": 1}', 'error {"n": 2}', 'control {"n": 3}', 'error {"n": 4}',
                '{"n": 5}', 'control {"n": 6}', 'error {"n": 7}')
    assert [_message(read_line(listener))[1]["n"] for _ in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    assert [_message(errors.line()) for _ in range(3)] == [
        ("error", {"n": 2}), ("error", {"n": 4}), ("error", {"n": 7})]
    assert [_message(named.line()) for _ in range(5)] == [
        ("error", {"n": 2}), ("control", {"n": 3}), ("error", {"n": 4}),
        ("control", {"n": 6}), ("error", {"n": 7})]
    # The name the first line gave is the one 'send --to' knows.
    done = cli.run("send", "ev", "--to", "bar", "-t", "error", input='{"n": 8}')
    assert done.returncode == 0, done.stderr
    assert _message(named.line()) == ("error", {"n": 8})
    _fifo_write(fifo, 'error {"n": 9}')
    assert _message(read_line(listener)) == ("error", {"n": 9})
    assert [_message(line) for line in errors.rest()] == [("error", {"n": 9})]
    assert [_message(line) for line in named.rest()] == [("error", {"n": 9})]


def test_subscribe_last_gets_the_retained_values_first(cli: Cli, peers: list[LinesPeer]) -> None:
    _, lines, fifo = _hub(cli)
    first = cli.listen("--json", "ev")  # so that nothing is queued for later listeners
    _fifo_write(fifo, '{"n": 1}', 'error {"n": 2}', '{"n": 3}')
    assert [_message(read_line(first))[1]["n"] for _ in range(3)] == [1, 2, 3]
    last = _connect(peers, lines, "#subscribe last=1\n")
    no_last = _connect(peers, lines, "#subscribe last=0\n")
    silent = _connect(peers, lines)
    reference = cli.listen("--json", "--last", "ev")
    retained = [read_line(reference).rstrip("\n") for _ in range(2)]
    assert [json.loads(line)["retained"] for line in retained] == [True, True]
    assert sorted((json.loads(line)["message_type"], json.loads(line)["data"])
                  for line in retained) == [("data", {"n": 3}), ("error", {"n": 2})]
    assert [last.line(), last.line()] == retained  # the same lines, in the same order
    _wait_clients(cli, 5)
    _fifo_write(fifo, 'control {"n": 4}')
    live = read_line(reference).rstrip("\n")
    assert _message(live) == ("control", {"n": 4})  # not marked retained
    for peer in (last, no_last, silent):
        assert peer.line() == live
        assert peer.rest() == []


def test_publish_only_receives_nothing(cli: Cli, peers: list[LinesPeer]) -> None:
    _, lines, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    publisher = _connect(peers, lines, '#publish\n{"from": "publisher"}\n')
    assert _message(read_line(listener)) == ("data", {"from": "publisher"})
    [row] = cli.list_json()
    assert (row["clients"], row["subscribers"]) == (2, 1)
    _fifo_write(fifo, '{"n": 1}', 'error {"n": 2}')
    assert [_message(read_line(listener)) for _ in range(2)] == [
        ("data", {"n": 1}), ("error", {"n": 2})]
    assert publisher.rest() == []


BAD_FIRST_LINES = [
    ("#bogus", "unknown first line '#bogus'"),
    ("#", "unknown first line '#'"),
    ("#publish now", "unknown first line '#publish now'"),
    ("#subscribe types=nosuch", "#subscribe: unknown message type 'nosuch'"),
    ("#subscribe last=maybe", "#subscribe: last must be 1 or 0, not 'maybe'"),
    ("#subscribe slow=fast", "#subscribe: slow must be one of "),
    ("#subscribe name=a/b", "#subscribe: invalid name 'a/b'"),
    ("#subscribe types=error types=data", "#subscribe: expected KEY=VALUE once per key"),
    ("#subscribe oops", "#subscribe: expected KEY=VALUE once per key, got 'oops'"),
    ("#subscribe colour=red", "#subscribe: unknown key 'colour'"),
]


def test_a_bad_first_line_gets_a_fatal_error_line_then_end_of_stream(
        cli: Cli, peers: list[LinesPeer]) -> None:
    hub, lines, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    for text, reason in BAD_FIRST_LINES:
        peer = _connect(peers, lines, f'{text}\n{{"published": "never"}}\n')
        [line] = peer.rest(end_output=False)
        error = json.loads(line)
        assert list(error) == ["error", "reason", "fatal"], error
        assert (error["error"], error["fatal"]) == ("invalid_message", True)
        assert error["reason"].startswith(f"line 1: {reason}"), (text, error)
    _fifo_write(fifo, '{"n": 1}')
    assert _message(read_line(listener)) == ("data", {"n": 1})  # nothing else came before
    [row] = cli.list_json()
    assert (row["clients"], row["rejected"]) == (1, len(BAD_FIRST_LINES))
    warning = stderr_line(hub)
    assert warning.startswith("sockcli: WARNING: lines socket line 1 rejected: unknown first "
                              "line '#bogus'"), warning


def test_a_refused_line_gets_an_error_line_and_the_connection_goes_on(
        cli: Cli, peers: list[LinesPeer]) -> None:
    _, lines, _ = _hub(cli)
    listener = cli.listen("--json", "ev")
    peer = _connect(peers, lines, "#publish\n")
    long = '{"pad": "' + "a" * 70000 + '"}'
    # Line 1 is the first line: the hub's numbers count it, and blank lines.
    peer.send(f'{{"ok": 1}}\nnope\n\nerror nope\n{{"a": NaN}}\n{long}\n{{"ok": 2}}\n')
    refusals = [peer.json() for _ in range(4)]
    assert [(r["error"], r["line"]) for r in refusals] == [
        ("invalid_message", 3), ("invalid_message", 5), ("invalid_message", 6),
        ("invalid_message", 7)]
    assert all(list(r) == ["error", "reason", "line"] for r in refusals), refusals
    assert refusals[0]["reason"].startswith("line 3: not JSON")
    assert refusals[3]["reason"] == "line 7: longer than 65536 bytes"
    assert [_message(read_line(listener)) for _ in range(2)] == [
        ("data", {"ok": 1}), ("data", {"ok": 2})]
    peer.send('error {"ok": 3}\n')
    assert _message(read_line(listener)) == ("error", {"ok": 3})
    assert peer.rest() == []
    [row] = cli.list_json()
    assert (row["received"], row["rejected"]) == (3, 4)


# -- admission: the peer check and max_connections --------------------------------------------


#: Run as another user: connects to argv[1], writes argv[2], then prints "line TEXT" for each
#: line it reads and "closed" at the end of the stream.
_OTHER_USER_PEER = """
    import os, socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[1])
    print("connected", os.getuid(), flush=True)
    s.sendall(sys.argv[2].encode())
    for line in s.makefile("rb"):
        print("line", line.decode().rstrip("\\n"), flush=True)
    print("closed", flush=True)
"""


def _reachable_by_others(cli: Cli, settings: str) -> None:
    """Let another user reach the lines socket, so that only the peer check stands in the
    way: every directory on the path searchable (0711), the socket 0666 (settings file)."""
    path = cli.config_home / "sockcli" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[unix]\nsocket_permissions = "0666"\n{settings}')
    for directory in (cli.root, cli.runtime):
        os.chmod(directory, 0o711)


@pytest.mark.timeout(60)
def test_the_peer_check_refuses_another_uid(cli: Cli, children: list[Any]) -> None:
    nobody = other_user()
    _reachable_by_others(cli, "")
    hub, lines, fifo = _hub(cli)
    os.chmod(cli.socket_dir, 0o711)
    listener = cli.listen("--json", "ev")
    child = spawn_as(nobody, _OTHER_USER_PEER, str(lines), '{"from": "nobody"}\n')
    children.append(child)
    assert child_line(child) == f"connected {nobody.pw_uid}"
    word, _, text = child_line(child).partition(" ")
    assert word == "line", text
    assert json.loads(text) == {
        "error": "peer_not_allowed", "fatal": True,
        "reason": f"uid {nobody.pw_uid} (gid {nobody.pw_gid}) may not connect to hub 'ev': it "
                  f"admits uid {os.geteuid()}, root, and the uids and gids of [unix] "
                  "allowed_uids and allowed_gids"}
    assert child_line(child) == "closed"
    assert child.wait(10) == 0
    _fifo_write(fifo, '{"n": 1}')
    assert _message(read_line(listener)) == ("data", {"n": 1})  # not nobody's line
    assert stderr_line(hub).startswith("sockcli: WARNING: hub ev refuses ")


@pytest.mark.timeout(60)
def test_the_peer_check_admits_an_allowed_uid(cli: Cli, children: list[Any]) -> None:
    nobody = other_user()
    _reachable_by_others(cli, f"allowed_uids = [{nobody.pw_uid}]\n")
    _, lines, fifo = _hub(cli)
    os.chmod(cli.socket_dir, 0o711)
    listener = cli.listen("--json", "ev")
    child = spawn_as(nobody, _OTHER_USER_PEER, str(lines), '{"from": "nobody"}\n')
    children.append(child)
    assert child_line(child) == f"connected {nobody.pw_uid}"
    assert _message(read_line(listener)) == ("data", {"from": "nobody"})
    _fifo_write(fifo, '{"n": 1}')
    assert _message(read_line(listener)) == ("data", {"n": 1})
    word, _, text = child_line(child).partition(" ")
    assert (word, _message(text)) == ("line", ("data", {"n": 1}))


def test_max_connections_counts_both_sockets(cli: Cli, peers: list[LinesPeer]) -> None:
    """``sockcli list`` would take a connection itself: the test knows who is in by what
    they receive."""
    _, lines, _ = _hub(cli, "--max-connections", "2")
    subscriber = _connect(peers, lines)
    publisher = _connect(peers, lines, "#publish\n")
    publisher.send('{"n": 1}\n')
    assert _message(subscriber.line()) == ("data", {"n": 1})  # both are in
    refused = {"error": "max_connections", "fatal": True,
               "reason": "hub 'ev' already holds its maximum of 2 connections"}
    assert [json.loads(line) for line in _connect(peers, lines).rest(end_output=False)] == \
        [refused]
    done = cli.run("send", "ev", input='{"n": 0}')  # the MessagePack socket: full too
    assert done.returncode == 69, done.stderr
    assert "maximum of 2 connections" in done.stderr
    # One lines client leaves (its end of stream says the hub closed it): a MessagePack
    # listener takes its place, and the lines socket is full again.
    assert publisher.rest() == []
    listener = cli.listen("--json", "--no-reconnect", "ev")
    assert [json.loads(line) for line in _connect(peers, lines).rest(end_output=False)] == \
        [refused]
    subscriber.send('error {"n": 2}\n')
    assert _message(read_line(listener)) == ("error", {"n": 2})


# -- slow readers -----------------------------------------------------------------------------


#: A small send_buffer_limit (its minimum) and slow_consumer_timeout, for the hub.
_SLOW_ENV = {"SOCKCLI_SEND_BUFFER_LIMIT": "65536", "SOCKCLI_SLOW_CONSUMER_TIMEOUT": "3"}
#: Lines of about 1 KB: 1,000 are far more than the socket's buffers, the hub's limit and the
#: FIFO's 64 KiB together.
_COUNT, _PAD = 1000, "x" * 1000


def _writer(cli: Cli, fifo: Path, children: list[Any]) -> subprocess.Popen[str]:
    """bash writing ``_COUNT`` numbered lines into the FIFO, as fast as it can."""
    script = (f'for ((i = 1; i <= {_COUNT}; i++)); do '
              f'echo "{{\\"i\\": $i, \\"pad\\": \\"{_PAD}\\"}}"; done > "$fifo"')
    proc = subprocess.Popen(["bash", "-c", script], env={**cli.env, "fifo": str(fifo)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    children.append(proc)
    return proc


def _all_in_order(listener: subprocess.Popen[str]) -> None:
    """``listen --count _COUNT`` got every line of the writer, in order, and exited."""
    got = [json.loads(line)["data"]["i"] for line in rest(listener, timeout=40).splitlines()]
    assert got == list(range(1, _COUNT + 1))
    assert listener.wait(10) == 0


def _slow_peer(cli: Cli, peers: list[LinesPeer], path: Path, mode: str) -> LinesPeer:
    """A lines subscriber named "slow" that will read nothing, once its first line is in
    effect: before that, what it is sent is held aside (linesconn.FIRST_LINE_WAIT), outside
    flow control. The name is how the test knows (``send --to slow`` finds it)."""
    peer = _connect(peers, path, f"#subscribe name=slow {mode}\n")
    wait_until(lambda: cli.run("send", "ev", "--to", "slow", input='{"probe": 1}').returncode
               == 0, timeout=15, what="the slow subscriber's first line to be read")
    return peer


def _dropped_after_a_prefix(peer: LinesPeer, reason: str) -> None:
    """What the slow peer finally reads: the probe, the first messages, whole and in order,
    then the fatal slow_consumer line."""
    lines = peer.rest(end_output=False)
    assert _message(lines.pop(0)) == ("data", {"probe": 1})
    error = json.loads(lines[-1])
    assert (error["error"], error["fatal"]) == ("slow_consumer", True), error
    assert error["reason"].startswith(f"dropped: {reason}"), error
    got = [json.loads(line)["data"]["i"] for line in lines[:-1]]
    assert got == list(range(1, len(got) + 1))
    assert len(got) < _COUNT


def _fifo_fill(fifo: Path) -> tuple[int, int]:
    """Bytes waiting in the FIFO, and its capacity (opening it to read takes nothing)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        waiting = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
        return waiting, fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(fd)


def test_a_slow_lines_subscriber_in_drop_mode_is_dropped(cli: Cli, peers: list[LinesPeer],
                                                        children: list[Any]) -> None:
    hub, lines, fifo = _hub(cli, env=_SLOW_ENV)
    listener = cli.listen("--json", "--count", str(_COUNT), "ev")
    slow = _slow_peer(cli, peers, lines, "slow=drop")  # and it reads nothing
    writer = _writer(cli, fifo, children)
    _all_in_order(listener)
    assert writer.wait(20) == 0
    _dropped_after_a_prefix(slow, "more than 65536 bytes were waiting for this subscriber")
    assert stderr_line(hub).startswith("sockcli: WARNING: hub ev drops subscriber ")


def test_a_slow_lines_subscriber_in_wait_mode_holds_publishers_back(
        cli: Cli, peers: list[LinesPeer], children: list[Any]) -> None:
    """The FIFO is not read while it is behind (the writer blocks on a full pipe), until
    slow_consumer_timeout drops it; the listener loses nothing."""
    hub, lines, fifo = _hub(cli, env=_SLOW_ENV)
    listener = cli.listen("--json", "--count", str(_COUNT), "ev")
    slow = _slow_peer(cli, peers, lines, "")  # the default mode, wait; it reads nothing
    writer = _writer(cli, fifo, children)

    def held() -> bool:
        waiting, capacity = _fifo_fill(fifo)
        return writer.poll() is None and waiting >= capacity - 2 * len(_PAD)

    wait_until(held, timeout=2.5, what="the writer to block on a FIFO the hub stopped reading")
    warning = stderr_line(hub, timeout=20)
    assert warning.startswith("sockcli: WARNING: hub ev drops subscriber "), warning
    assert "it read nothing for 3 s (slow_consumer_timeout)" in warning, warning
    _all_in_order(listener)
    assert writer.wait(20) == 0
    _dropped_after_a_prefix(slow, "it read nothing for 3 s (slow_consumer_timeout)")


def test_after_kill_9_the_next_serve_binds_a_new_lines_socket(cli: Cli,
                                                             peers: list[LinesPeer]) -> None:
    """A hub killed with -9 leaves its lines socket, which refuses connections; the next
    serve replaces it."""
    hub, lines, fifo = _hub(cli)
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    assert stat.S_ISSOCK(os.lstat(lines).st_mode)
    with pytest.raises(ConnectionRefusedError):
        LinesPeer(lines)
    _hub(cli)
    peer = _connect(peers, lines)
    _wait_clients(cli, 1)
    _fifo_write(fifo, '{"n": 1}')
    assert _message(peer.line()) == ("data", {"n": 1})

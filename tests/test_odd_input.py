"""Odd input and odd environments: what a peer may claim (a timestamp_iso that is no date, NaN
in MessagePack), what a listener must survive rendering, closed and full standard streams, the
frame size limit's words, and a listener on a terminal waiting for its hub.

Input on ``sockcli send``'s side (NaN in JSON, empty or closed stdin, the terminal hint) is in
tests/test_cli_send.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sockcli import MessageError, SocketMessage, create_client, create_server
from sockcli.cli.render import MessagePrinter
from sockcli.timestamps import format_timestamp
from tests.clitools import SOCKCLI, error_line, read_json, read_line, rest, stop, strip_ansi

TS = 1700000000000  # 2023-11-14T22:13:20Z


def strict(line: str) -> Any:
    """``line`` parsed as RFC 8259 JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"not strict JSON: {name} in {line!r}")

    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def library_hub(cli) -> Iterator[Any]:
    """A hub in this process, in the CLI's socket directory: its owner's messages are not
    checked the way clients' are, so it can hand a listener anything."""
    hub = create_server("unix", "ev", socket_dir=cli.socket_dir, timezone="UTC")
    hub.start(blocking=False)
    yield hub
    hub.stop()


# -- timestamp_iso ---------------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_the_hub_refuses_a_timestamp_iso_that_is_no_date_and_keeps_the_connection(cli) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "1")
    client = create_client("unix", "ev", socket_dir=cli.socket_dir, subscribe=False)
    try:
        client.connect(timeout=5)
        first_id = client.client_id
        with pytest.raises(MessageError) as info:
            client.send(SocketMessage("ev", timestamp_ms=TS, timestamp_iso="yesterday",
                                      data={"n": 1}))
        assert info.value.code == "invalid_message"
        assert "timestamp_iso 'yesterday' is not an ISO 8601 date and time" in str(info.value)
        # Refused alone, as a message for another event is: the same connection goes on.
        client.send(SocketMessage("ev", data={"n": 2}))
        assert client.client_id == first_id
    finally:
        client.disconnect()
    # The refused message reached nobody: the listener's first message is the second one.
    record = read_json(listener)
    assert record["data"] == {"n": 2}
    assert listener.wait(10) == 0
    [row] = cli.list_json()
    assert row["received"] == 1


@pytest.mark.timeout(30)
def test_a_listener_on_a_terminal_renders_any_timestamp_and_any_value(cli, library_hub) -> None:
    bad = "2023-11-14T22:13:20+00:00\x1b[2J"  # no date, and a terminal escape in it
    library_hub.send(SocketMessage("ev", timestamp_ms=TS, timestamp_iso=bad,
                                   data={"x": float("nan"), "csi": "\x9b2J"}))
    library_hub.send(SocketMessage("ev", timestamp_ms=TS + 1,
                                   timestamp_iso=format_timestamp(TS + 1, "UTC"),
                                   data={"n": float("-inf")}))
    # Queued by the hub (nobody listens yet), handed to the listener when it connects.
    status, out, err = cli.pty("listen", "ev", "--count", "2", env={"TZ": "UTC"})
    assert (status, err) == (0, ""), err
    lines = strip_ansi(out).splitlines()
    assert len(lines) == 2, out
    # The time of day from timestamp_ms (local time: UTC here), never the peer's text.
    assert lines[0].startswith("22:13:20.000 data    ev ")
    assert "[2J" not in out and "\x9b" not in out
    assert '"x": null' in lines[0] and '"csi": "\\u009b2J"' in lines[0]
    assert lines[1].startswith("22:13:20.001 data    ev ") and '"n": null' in lines[1]


# -- NaN and Infinity ------------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_listen_prints_strict_json_whatever_a_library_client_sent(cli) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "3")
    with create_client("unix", "ev", socket_dir=cli.socket_dir, subscribe=False) as client:
        # MessagePack carries NaN and the infinities; the hub relays them as they are.
        client.send(SocketMessage("ev", data={"nan": float("nan"), "big": [float("inf")],
                                              "deep": {"small": -float("inf"), "ok": 1.5}}),
                    wait=False)
        client.send(SocketMessage("ev", data={"n": 2}), wait=False)  # likely the same batch
        client.send(SocketMessage("ev", data={"n": 3.25}))
    got = [strict(read_line(listener)) for _ in range(3)]
    assert [m["data"] for m in got] == [
        {"nan": None, "big": [None], "deep": {"small": None, "ok": 1.5}},
        {"n": 2},
        {"n": 3.25},
    ]
    assert listener.wait(10) == 0


class _Message:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def as_dict(self) -> dict[str, Any]:
        return {"event_name": "ev", "timestamp_ms": TS, "timestamp_iso": "not a date",
                "message_type": "data", "data": self.data}


def test_the_printer_makes_non_finite_floats_null_one_message_or_a_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    printer = MessagePrinter(rich=False)
    printer.print_many([_Message({"a": 1}), _Message({"a": math.nan, "b": [math.inf, 2.0]})])
    printer.print(_Message({"c": -math.inf}))
    printer.print_many([_Message({"d": 0.5})])
    assert [strict(line)["data"] for line in out.getvalue().splitlines()] == [
        {"a": 1}, {"a": None, "b": [None, 2.0]}, {"c": None}, {"d": 0.5}]
    assert strict(out.getvalue().splitlines()[0])["timestamp_iso"] == "not a date"  # as sent


# -- closed and full standard streams --------------------------------------------------------

@pytest.mark.timeout(30)
def test_list_into_a_full_or_closed_stdout_is_one_line_and_exit_74(cli) -> None:
    for redirect, words in ((">/dev/full", "cannot write to stdout: No space left on device"),
                            (">&-", "stdout is closed: redirect it to a file, or to /dev/null "
                                    "to discard the output")):
        for command in ("sockcli list", "sockcli list --json", "sockcli --version"):
            done = cli.bash(f"{command} {redirect}")
            assert done.returncode == 74, (command, redirect, done.stderr)
            assert error_line(done.stderr) == f"sockcli: error: {words}"


@pytest.mark.timeout(30)
def test_listen_with_stdout_closed_fails_at_once_instead_of_waiting(cli) -> None:
    started = time.monotonic()
    done = cli.bash("sockcli listen ev --timeout 20 >&-")  # no hub: it would wait 20 s
    assert done.returncode == 74, done.stderr
    assert error_line(done.stderr) == ("sockcli: error: stdout is closed: redirect it to a "
                                       "file, or to /dev/null to discard the output")
    assert time.monotonic() - started < 10


@pytest.mark.timeout(30)
def test_listen_into_a_full_stdout_is_one_line_and_exit_74(cli) -> None:
    cli.serve("ev")
    with open("/dev/full", "w") as full:
        listener = cli.listen("ev", stdout=full)
    done = cli.run("send", "ev", "-d", '{"n": 1}')
    assert done.returncode == 0, done.stderr
    assert listener.wait(10) == 74
    # After the -v lines: one error line, and no "Exception ignored" when Python exits.
    assert rest(listener, "stderr").splitlines() == [
        "sockcli: error: cannot write to stdout: No space left on device"]


@pytest.mark.timeout(30)
def test_an_error_with_stderr_closed_still_gives_its_exit_status(cli) -> None:
    done = cli.bash("echo '{' | sockcli send ev 2>&-; echo \"status $?\"")
    assert done.stdout == "status 65\n", done.stdout


@pytest.mark.timeout(30)
def test_serve_runs_with_stdout_closed(cli) -> None:
    # A hub writes only on stderr: a closed stdout (a daemon's) is no error.
    hub = subprocess.Popen(["bash", "-c", f"exec {SOCKCLI} serve ev >&-"], env=cli.env,
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cli.procs.append(hub)
    assert "serving" in read_line(hub, "stderr", 15)
    done = cli.run("send", "ev", "-d", "{}")
    assert (done.returncode, done.stderr) == (0, "")
    assert stop(hub) == 0
    assert "error" not in rest(hub, "stderr")


# -- the frame size limit --------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_a_frame_over_the_limit_names_the_setting_on_both_sides(cli) -> None:
    cli.serve("ev")
    big = json.dumps({"x": "a" * 70000})
    words = ("exceeds the limit of 65536 bytes (raise the buffer_size setting, "
             "SOCKCLI_BUFFER_SIZE, of the hub and its clients)")
    # The sender's own limit.
    done = cli.run("send", "ev", input=big)
    assert done.returncode == 65
    assert error_line(done.stderr).endswith(words), done.stderr
    # A sender allowed more: the hub's error frame says the same.
    done = cli.run("send", "ev", input=big, env={"SOCKCLI_BUFFER_SIZE": "1000000"})
    assert done.returncode != 0
    assert words in error_line(done.stderr), done.stderr


# -- listen on a terminal, no hub ------------------------------------------------------------

def _read_until(master: int, needle: str, timeout: float = 15.0) -> str:
    """What the terminal shows until ``needle`` appears in it; fails after ``timeout``."""
    text = ""
    deadline = time.monotonic() + timeout
    while needle not in text:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not on the terminal within {timeout} s: {text!r}"
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the other side closed
                data = b""
            assert data, f"terminal closed before {needle!r}: {text!r}"
            text += data.decode().replace("\r\n", "\n")
    return text


def _drain(master: int) -> str:
    text = ""
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        text += data.decode().replace("\r\n", "\n")
    return text


@pytest.mark.timeout(40)
def test_listen_with_stderr_on_a_terminal_says_once_that_it_waits_for_the_hub(cli) -> None:
    waiting = "sockcli: waiting for the hub of 'ev' to start\n"
    # Not on a terminal: nothing said (scripts read stderr).
    done = cli.run("listen", "ev", "--timeout", "0.2")
    assert (done.returncode, done.stderr) == (0, "")
    master, slave = pty.openpty()
    try:
        listener = cli.popen("listen", "ev", "--count", "2", stderr=slave)
        os.close(slave)
        slave = -1
        assert _read_until(master, waiting) == waiting
        hub = cli.serve("ev")
        assert cli.run("send", "ev", "-d", '{"n": 1}').returncode == 0
        assert read_json(listener)["data"] == {"n": 1}
        # The hub restarts: the listener reconnects without saying it again.
        assert stop(hub) == 0
        cli.serve("ev")
        assert cli.run("send", "ev", "-d", '{"n": 2}', "--wait", "5").returncode == 0
        assert read_json(listener)["data"] == {"n": 2}
        assert listener.wait(10) == 0
        assert "waiting" not in _drain(master)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


@pytest.mark.timeout(30)
def test_listen_with_a_running_hub_says_nothing_of_waiting(cli) -> None:
    cli.serve("ev")
    master, slave = pty.openpty()
    try:
        listener = cli.popen("-v", "listen", "ev", "--count", "1", stderr=slave)
        os.close(slave)
        slave = -1
        said = _read_until(master, "listening to")
        assert cli.run("send", "ev", "-d", "{}").returncode == 0
        assert listener.wait(10) == 0
        said += _drain(master)
        assert "to start" not in said, said
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)

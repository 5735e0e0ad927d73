"""``sockcli listen``: JSON lines (rich text on a terminal), --type, --count, --timeout, waiting
for a hub and surviving its restarts, pipes, Ctrl-C, and never reading stdin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime

import pytest

from tests.clitools import (
    SOCKCLI,
    color_codes,
    error_line,
    read_json,
    read_line,
    rest,
    stop,
    strip_ansi,
    transport_args,
)


def send(cli, *args: str, stdin: str | None = None) -> None:
    done = cli.run("send", *args, input=stdin)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_json_lines_and_hub_side_type_filter(cli, transport: str) -> None:
    cli.serve("ev", *transport_args(transport))
    listener = cli.listen("ev", "--type", "error", "-t", "control", "--count", "2")
    send(cli, "ev", "-d", '{"kind": "data"}')
    send(cli, "ev", "-t", "error", "-d", '{"kind": "error"}')
    send(cli, "ev", "-t", "control", "-d", '{"kind": "control"}')
    got = [read_json(listener) for _ in range(2)]  # flushed line by line into a pipe
    assert listener.wait(10) == 0
    assert rest(listener) == ""
    for record, kind in zip(got, ["error", "control"], strict=True):
        assert list(record) == ["event_name", "timestamp_ms", "timestamp_iso", "message_type",
                                "data"]
        assert (record["event_name"], record["message_type"], record["data"]) == \
            ("ev", kind, {"kind": kind})
        moment = datetime.fromisoformat(record["timestamp_iso"])
        assert int(moment.timestamp() * 1000) == record["timestamp_ms"]
    # The hub did the filtering: the data message had no taker, so the hub kept it.
    [row] = cli.list_json()
    assert (row["queued"], row["received"], row["delivered"]) == (1, 3, 2)


@pytest.mark.timeout(30)
def test_count_and_timeout(cli) -> None:
    cli.serve("ev")
    send(cli, "ev", "--lines", stdin='{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    done = cli.run("listen", "ev", "--count", "2", "--timeout", "10")
    assert (done.returncode, done.stderr) == (0, "")
    assert [json.loads(line)["data"] for line in done.stdout.splitlines()] == \
        [{"n": 1}, {"n": 2}]

    send(cli, "ev", "-d", '{"n": 4}')
    started = time.monotonic()
    done = cli.run("listen", "ev", "--count", "3", "--timeout", "0.5")
    assert time.monotonic() - started < 4
    assert done.returncode == 124
    assert [json.loads(line)["data"] for line in done.stdout.splitlines()] == [{"n": 4}]
    assert error_line(done.stderr) == \
        "sockcli: error: 1 of 3 messages arrived within 0.5 s"

    done = cli.run("listen", "ev", "--timeout", "0.3")  # no --count: running out is success
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    # Waiting for a hub that never comes counts as running out too.
    done = cli.run("listen", "other", "--count", "1", "--timeout", "0.3")
    assert (done.returncode, done.stdout) == (124, "")
    assert error_line(done.stderr) == "sockcli: error: 0 of 1 messages arrived within 0.3 s"


@pytest.mark.timeout(40)
@pytest.mark.parametrize("first", ["unix", "tcp"])
def test_waits_for_the_hub_and_survives_restarts(cli, first: str) -> None:
    listener = cli.popen("-v", "listen", "ev")
    assert "waiting for messages of 'ev'" in read_line(listener, "stderr")
    hub = cli.serve("ev", *transport_args(first))
    assert "listening to 'ev'" in read_line(listener, "stderr")
    send(cli, "ev", "-d", '{"n": 1}')
    assert read_json(listener)["data"] == {"n": 1}

    assert stop(hub, signal.SIGTERM) == 0
    second = "tcp" if first == "unix" else "unix"  # it comes back on the other transport
    hub = cli.serve("ev", *transport_args(second))
    send(cli, "ev", "-d", '{"n": 2}')
    assert read_json(listener)["data"] == {"n": 2}

    assert stop(hub, signal.SIGTERM) == 0
    cli.serve("ev", *transport_args(first))
    send(cli, "ev", "-d", '{"n": 3}')
    assert read_json(listener)["data"] == {"n": 3}
    assert listener.poll() is None


@pytest.mark.timeout(30)
def test_no_reconnect_exits_69(cli) -> None:
    started = time.monotonic()
    done = cli.run("listen", "ev", "--no-reconnect")
    assert time.monotonic() - started < 4  # --wait: 1 s
    assert done.returncode == 69
    assert error_line(done.stderr) == ("sockcli: error: no hub is running for event 'ev': "
                                       "start one with 'sockcli serve ev'")

    hub = cli.serve("ev")
    listener = cli.listen("ev", "--no-reconnect")
    send(cli, "ev", "-d", '{"n": 1}')
    assert read_json(listener)["data"] == {"n": 1}
    assert stop(hub) == 0
    assert listener.wait(10) == 69
    # -v (used to know when it listens) adds what happened; the error itself is one line.
    assert rest(listener, "stderr").splitlines() == [
        "sockcli: INFO: hub ev is stopping",
        "sockcli: error: lost the hub of 'ev'",
    ]


@pytest.mark.timeout(30)
def test_rich_rendering_on_a_terminal(cli) -> None:
    cli.serve("ev")
    color = {"TERM": "xterm-256color"}
    send(cli, "ev", "-t", "error", "-d", '{"error": "no such file"}')
    status, shown, err = cli.pty("listen", "ev", "--count", "1",
                                 env={**color, "NO_COLOR": ""})
    assert (status, err) == (0, "")
    assert color_codes(shown), repr(shown)  # coloured for people...
    plain = strip_ansi(shown)
    assert '"event_name"' not in plain
    [line] = plain.splitlines()
    clock, kind, event, data = line.split(maxsplit=3)
    assert (kind, event, json.loads(data)) == ("error", "ev", {"error": "no such file"})
    assert len(clock) == len("12:34:56.789") and clock[2] == clock[5] == ":"

    send(cli, "ev", "-d", '{"n": 2}')
    status, shown, err = cli.pty("listen", "ev", "--count", "1", env={**color, "NO_COLOR": "1"})
    assert (status, err) == (0, "")
    assert color_codes(shown) == [], repr(shown)  # ...but not when NO_COLOR says no
    assert strip_ansi(shown).split()[1:] == ["data", "ev", '{"n":', "2}"]

    send(cli, "ev", "-d", '{"n": 3}')
    status, shown, err = cli.pty("listen", "ev", "--count", "1", "--json", env=color)
    assert (status, err) == (0, "")
    assert "\x1b" not in shown
    assert json.loads(shown)["data"] == {"n": 3}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("queued", [1, 2], ids=["idle-after-head", "writes-after-head"])
def test_piped_into_head_exits_quietly(cli, queued: int) -> None:
    cli.serve("ev")
    send(cli, "ev", "--lines", stdin="".join(f'{{"n": {n}}}\n' for n in range(1, queued + 1)))
    script = 'sockcli listen ev | head -1; echo "listen exited ${PIPESTATUS[0]}"'
    if queued == 2:  # and one more after head has gone
        script = ('sockcli listen ev | { head -1; exec <&-; sockcli send ev -d \'{"n": 3}\'; }; '
                  'echo "listen exited ${PIPESTATUS[0]}"')
    done = cli.bash(script, timeout=20)
    assert done.stderr == ""
    first, status = done.stdout.splitlines()
    assert json.loads(first)["data"] == {"n": 1}
    assert status == "listen exited 0"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("connected", [True, False], ids=["connected", "waiting-for-hub"])
def test_ctrl_c_exits_130_without_traceback(cli, connected: bool) -> None:
    if connected:
        cli.serve("ev")
        listener = cli.listen("ev")
    else:
        listener = cli.popen("-v", "listen", "ev")
        assert "waiting for messages" in read_line(listener, "stderr")
    assert stop(listener, signal.SIGINT) == 130
    assert rest(listener, "stderr").strip() == ""
    assert rest(listener) == ""


@pytest.mark.timeout(30)
def test_never_reads_stdin(cli) -> None:
    cli.serve("ev")
    # stdin closed altogether
    send(cli, "ev", "-d", '{"n": 1}')
    closed = subprocess.run(["bash", "-c", f'exec "{SOCKCLI}" listen ev --count 1 <&-'],
                            capture_output=True, text=True, env=cli.env, timeout=20)
    assert (closed.returncode, closed.stderr) == (0, "")
    assert json.loads(closed.stdout)["data"] == {"n": 1}
    # stdin a pipe with something in it: left unread
    send(cli, "ev", "-d", '{"n": 2}')
    read_end, write_end = os.pipe()
    os.write(write_end, b"not for you\n")
    try:
        piped = cli.run("listen", "ev", "--count", "1", stdin=read_end)
        os.close(write_end)
        assert (piped.returncode, piped.stderr) == (0, "")
        assert json.loads(piped.stdout)["data"] == {"n": 2}
        assert os.read(read_end, 100) == b"not for you\n"
    finally:
        os.close(read_end)


@pytest.mark.timeout(30)
def test_no_event_and_no_hub_waits_as_a_named_listen_does(cli) -> None:
    # --timeout bounds the wait for a hub to pick, as it bounds the wait for a named hub.
    started = time.monotonic()
    done = cli.run("listen", "--count", "1", "--timeout", "0.5")
    assert time.monotonic() - started < 4
    assert (done.returncode, done.stdout) == (124, "")
    assert error_line(done.stderr) == "sockcli: error: 0 of 1 messages arrived within 0.5 s"
    done = cli.run("listen", "--timeout", "0.3")  # no --count: running out is success
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    # --no-reconnect: --wait for a hub, then 69.
    started = time.monotonic()
    done = cli.run("listen", "--no-reconnect")
    assert 1.0 <= time.monotonic() - started < 4  # --wait: 1 s
    assert done.returncode == 69
    assert error_line(done.stderr) == (
        "sockcli: error: no EVENT given and no hub is running: name the event, or start a hub "
        "with 'sockcli serve EVENT'")


@pytest.mark.timeout(40)
def test_no_event_takes_the_hub_that_comes_and_follows_it(cli) -> None:
    listener = cli.popen("-v", "listen", "--count", "2")
    assert read_line(listener, "stderr") == "sockcli: waiting for a hub to start\n"
    hub = cli.serve("late")
    assert read_line(listener, "stderr") == "sockcli: waiting for messages of 'late'\n"
    assert "listening to 'late'" in read_line(listener, "stderr")
    send(cli, "late", "-d", '{"n": 1}')
    assert read_json(listener)["data"] == {"n": 1}
    assert stop(hub) == 0
    # Another event's hub does not take it over; its own hub's return does.
    cli.serve("other")
    cli.serve("late", "--tcp")
    send(cli, "other", "-d", '{"n": "other"}')
    send(cli, "late", "-d", '{"n": 2}')
    got = read_json(listener)
    assert (got["event_name"], got["data"]) == ("late", {"n": 2})
    assert listener.wait(10) == 0

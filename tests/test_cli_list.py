"""``sockcli list``: the running hubs with live figures; a table on a terminal, JSON otherwise;
dead hubs (SIGKILL) and their stale files are not shown as running."""

from __future__ import annotations

import json
import signal

import pytest

from tests.clitools import (
    color_codes,
    error_line,
    read_json,
    stop,
    strip_ansi,
    transport_args,
)


def _address(cli, event: str, transport: str) -> str:
    record = cli.record(event)
    if transport == "unix":
        assert record["path"] == str(cli.socket_dir / f"{event}.sock")
        return str(record["path"])
    return f"{record['host']}:{record['port']}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_json_with_live_figures(cli, transport: str) -> None:
    hub = cli.serve("ev", *transport_args(transport))
    address = _address(cli, "ev", transport)
    listener = cli.listen("ev", "--type", "error", "--count", "1")
    sent = cli.run("send", "ev", "--lines", input='{"n": 1}\n{"n": 2}\n')  # nobody takes data
    assert sent.returncode == 0, sent.stderr
    [row] = cli.list_json()
    assert {k: row[k] for k in ("event_name", "transport", "address", "pid", "clients",
                                "subscribers", "queued")} == {
        "event_name": "ev", "transport": transport, "address": address, "pid": hub.pid,
        "clients": 1, "subscribers": 1, "queued": 2}  # list's own connection is not counted
    # The figures are asked of the hub each time, not read from a file.
    sent = cli.run("send", "ev", "-t", "error", "-d", '{"n": 3}')
    assert sent.returncode == 0, sent.stderr
    assert read_json(listener)["data"] == {"n": 3}
    assert listener.wait(10) == 0
    [row] = cli.list_json()
    assert (row["clients"], row["subscribers"], row["queued"], row["received"]) == (0, 0, 2, 3)
    # Without --json and without a terminal: the same JSON, for pipelines.
    piped = cli.run("list")
    assert piped.returncode == 0 and piped.stderr == ""
    assert [r["event_name"] for r in json.loads(piped.stdout)] == ["ev"]


@pytest.mark.timeout(30)
def test_table_on_a_terminal(cli) -> None:
    status, shown, err = cli.pty("list")
    assert (status, shown) == (0, "")
    assert err == "sockcli: no hub is running (start one with 'sockcli serve EVENT')\n"

    alpha = cli.serve("alpha", "--queue-size", "1")
    beta = cli.serve("beta", "--tcp")
    cli.listen("beta")
    # Nobody listens to alpha: the queue of one keeps the last message, two are dropped.
    sent = cli.run("send", "alpha", "--lines", input='{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    assert sent.returncode == 0, sent.stderr
    status, shown, err = cli.pty("list")
    assert (status, err) == (0, "")
    assert color_codes(shown) == []  # NO_COLOR is set in the test environment
    header, *rows, caption = [line.split() for line in strip_ansi(shown).splitlines()
                              if line.strip()]
    # The columns the README and the man page promise, DROPPED included.
    assert header == ["EVENT", "VIA", "ADDRESS", "PID", "CLIENTS", "LISTENERS", "QUEUED",
                      "DROPPED", "UP"]
    # Sockets in the socket directory are shown by file name, the directory in the caption.
    assert caption == ["sockets", "in", str(cli.socket_dir)]
    assert [r[:8] for r in rows] == [
        ["alpha", "unix", "alpha.sock", str(alpha.pid), "0", "0", "1", "2"],
        ["beta", "tcp", _address(cli, "beta", "tcp"), str(beta.pid), "1", "1", "0", "0"],
    ]
    assert all(len(r) == 9 for r in rows)
    status, shown, err = cli.pty("list", "--json")
    assert (status, err) == (0, "")
    assert [r["event_name"] for r in json.loads(shown)] == ["alpha", "beta"]


@pytest.mark.timeout(30)
def test_dead_hubs_are_not_running(cli) -> None:
    dead_unix = cli.serve("gone")
    dead_tcp = cli.serve("lost", "--tcp")
    live = cli.serve("live", "--tcp")
    assert [r["event_name"] for r in cli.list_json()] == ["gone", "live", "lost"]
    assert stop(dead_unix, signal.SIGKILL) == -signal.SIGKILL
    assert stop(dead_tcp, signal.SIGKILL) == -signal.SIGKILL
    # What they leave behind is still on disk, and still not a running hub.
    assert cli.hub_files("gone") == ["gone.hub", "gone.sock"]
    assert cli.hub_files("lost") == ["lost.hub", "lost.token"]
    [row] = cli.list_json()
    assert (row["event_name"], row["pid"]) == ("live", live.pid)
    nobody = cli.run("send", "gone", "--wait", "0", "-d", "{}")
    assert nobody.returncode == 69
    assert "no hub is running for event 'gone'" in error_line(nobody.stderr)
    # A new hub takes the event over, on either transport.
    again = cli.serve("gone", "--tcp")
    assert cli.record("gone")["pid"] == again.pid
    cli.serve("lost")
    assert [(r["event_name"], r["transport"]) for r in cli.list_json()] == \
        [("gone", "tcp"), ("live", "tcp"), ("lost", "unix")]
    sent = cli.run("send", "lost", "-d", "{}")
    assert sent.returncode == 0, sent.stderr

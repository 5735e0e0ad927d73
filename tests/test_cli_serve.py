"""``sockcli serve``: a hub in the foreground, its options, its clean stop, and the start-up
race of ``sockcli serve E & sockcli send E`` in a shell script."""

from __future__ import annotations

import json
import signal

import pytest

from tests.clitools import (
    error_line,
    free_port,
    rest,
    stop,
    transport_args,
)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_signal_stops_the_hub_cleanly(cli, transport: str, signum: int) -> None:
    hub = cli.serve("ev", *transport_args(transport))
    record = cli.record("ev")
    assert record["transport"] == transport and record["pid"] == hub.pid
    expected = ["ev.hub", "ev.sock"] if transport == "unix" else ["ev.hub", "ev.token"]
    assert cli.hub_files("ev") == expected
    listener = cli.listen("ev", "--no-reconnect")

    assert stop(hub, signum) == 0
    stderr = rest(hub, "stderr")
    assert stderr == "sockcli: hub 'ev' stopped\n"
    assert cli.hub_files("ev") == []
    assert (cli.socket_dir / "ev.hub").exists() is False
    # The listener was told, and nothing else is left holding the event: a new hub can start.
    assert listener.wait(10) == 69
    cli.serve("ev", *transport_args(transport))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_second_serve_of_a_running_event_fails(cli, transport: str) -> None:
    hub = cli.serve("ev", *transport_args(transport))
    for again in ([], ["--tcp"]):  # the event is taken whatever the second one's transport
        second = cli.run("serve", "ev", *again)
        assert second.returncode == 1
        line = error_line(second.stderr)
        assert line.startswith("sockcli: error: a hub for event 'ev' is already running")
    # The first hub is untouched: still recorded, still serving.
    assert cli.record("ev")["pid"] == hub.pid
    sent = cli.run("send", "ev", "-d", '{"still": "here"}')
    assert sent.returncode == 0, sent.stderr
    assert hub.poll() is None


# Every iteration starts a hub in the background and sends to it at once: the send must wait
# for the hub (up to --wait, 1 s by default), never fail because it came first.
RACE_SCRIPT = r"""
set -u
for i in $(seq 1 20); do
    if [ $((i % 2)) -eq 0 ]; then transport=--tcp; else transport=; fi
    sockcli serve race $transport &
    hub=$!
    sockcli send race -d "{\"i\": $i}"
    status=$?
    kill -TERM $hub
    wait $hub
    hub_status=$?
    echo "$i send=$status serve=$hub_status"
done
"""


@pytest.mark.timeout(90)
def test_serve_in_background_then_send_at_once_in_a_script(cli) -> None:
    done = cli.bash(RACE_SCRIPT, timeout=80)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{i} send=0 serve=0" for i in range(1, 21)], \
        done.stderr
    assert "error" not in done.stderr and "Traceback" not in done.stderr
    assert cli.hub_files("race") == []


@pytest.mark.timeout(30)
def test_tcp_host_port_and_queue_size(cli) -> None:
    port = free_port()
    cli.serve("ev", "--host", "127.0.0.1", "--port", str(port), "--queue-size", "2")
    address = f"127.0.0.1:{port}"
    # Three messages while nobody listens: the queue keeps the last two.
    sent = cli.run("send", "ev", "--lines", input='{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    assert sent.returncode == 0, sent.stderr
    [row] = cli.list_json()
    assert (row["transport"], row["address"]) == ("tcp", address)
    assert (row["queued"], row["dropped"]) == (2, 1)
    # --host/--port imply TCP, and the hub is reachable at that address, with its token (a
    # client told the address does not look for the hub's record, nor its per-hub secret).
    got = cli.run("listen", "--connect", address, "--count", "2",
                  "--token-file", str(cli.socket_dir / "ev.token"))
    assert got.returncode == 0, got.stderr
    assert [json.loads(line)["data"] for line in got.stdout.splitlines()] == [{"n": 2}, {"n": 3}]


@pytest.mark.timeout(30)
def test_max_connections(cli) -> None:
    cli.serve("ev", "--max-connections", "1")
    listener = cli.listen("ev")
    for args in (["send", "ev", "-d", "{}"], ["listen", "ev", "--count", "1"]):
        refused = cli.run(*args)
        assert refused.returncode == 69, args
        line = error_line(refused.stderr)
        assert "maximum of 1 connections" in line
    assert listener.poll() is None  # the one connected client is kept


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_no_client_send(cli, transport: str) -> None:
    cli.serve("ev", "--no-client-send", *transport_args(transport))
    listener = cli.listen("ev", "--count", "1")
    refused = cli.run("send", "ev", "-d", '{"n": 1}')
    assert refused.returncode == 77
    assert "does not accept messages from clients" in error_line(refused.stderr)
    refused = cli.run("send", "ev", "--lines", input='{"n": 1}\n{"n": 2}\n')
    assert refused.returncode == 77
    assert "does not accept messages from clients" in error_line(refused.stderr)
    # Listening is still allowed; nothing was accepted, relayed or queued.
    [row] = cli.list_json()
    assert (row["clients"], row["received"], row["delivered"], row["queued"]) == (1, 0, 0, 0)
    assert listener.poll() is None


@pytest.mark.timeout(30)
def test_port_0_takes_a_free_port_of_the_range_and_a_taken_port_exits_69(cli) -> None:
    port = free_port()
    one_port_range = {"SOCKCLI_TCP__PORT_RANGE_START": str(port),
                      "SOCKCLI_TCP__PORT_RANGE_END": str(port)}
    # --port 0 means what the port setting's 0 means, even over a fixed port setting.
    fixed = free_port()
    cli.serve("ev", "--port", "0", env={**one_port_range, "SOCKCLI_TCP__PORT": str(fixed)})
    record = cli.record("ev")
    assert (record["transport"], record["port"]) == ("tcp", port)
    # Every port of the range taken (here the only one): the hub does not start, exit 69.
    for args in (["--port", "0"], ["--tcp"]):
        taken = cli.run("serve", "other", *args, env=one_port_range)
        assert taken.returncode == 69, args
        assert f"port {port} is in use" in error_line(taken.stderr)
    # So is a fixed --port that is taken.
    taken = cli.run("serve", "other", "--port", str(port))
    assert taken.returncode == 69
    assert f"port {port} is in use" in error_line(taken.stderr)
    assert cli.hub_files("other") == []

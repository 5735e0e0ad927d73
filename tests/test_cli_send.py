"""``sockcli send``: JSON from stdin or -d, --lines as they arrive, --type, --to, and the exit
status that says whether the hub acknowledged everything."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.clitools import error_line, read_json, rest, stop, transport_args


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_stdin_object_data_option_and_types(cli, transport: str) -> None:
    cli.serve("ev", *transport_args(transport))
    listener = cli.listen("ev", "--count", "3")
    # One object on stdin, spread over lines as a person would write it.
    sent = cli.run("send", "ev", input='{\n  "progress": 40,\n  "file": "été.png"\n}\n')
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "")
    sent = cli.run("send", "ev", "--type", "error", "-d", '{"error": "no such file"}')
    assert (sent.returncode, sent.stderr) == (0, "")
    sent = cli.run("send", "ev", "-t", "control", "--data", '{"cmd": "stop", "n": [1, 2.5]}')
    assert (sent.returncode, sent.stderr) == (0, "")
    got = [read_json(listener) for _ in range(3)]
    assert [(m["message_type"], m["data"]) for m in got] == [
        ("data", {"progress": 40, "file": "été.png"}),
        ("error", {"error": "no such file"}),
        ("control", {"cmd": "stop", "n": [1, 2.5]}),
    ]
    assert all(m["event_name"] == "ev" for m in got)
    assert listener.wait(10) == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_exit_0_once_the_hub_has_every_message(cli, transport: str) -> None:
    cli.serve("ev", "--queue-size", "1000", *transport_args(transport))
    sent = cli.run("send", "ev", "--lines",
                   input="".join(f'{{"n": {n}}}\n' for n in range(500)))
    assert (sent.returncode, sent.stderr) == (0, "")
    # Asked right after the sender exited: the hub holds all of them already.
    [row] = cli.list_json()
    assert (row["received"], row["queued"], row["dropped"]) == (500, 500, 0)
    got = cli.run("listen", "ev", "--count", "500")
    assert (got.returncode, got.stderr) == (0, "")
    assert [json.loads(line)["data"]["n"] for line in got.stdout.splitlines()] == \
        list(range(500))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_lines_are_sent_as_they_arrive(cli, transport: str) -> None:
    cli.serve("ev", *transport_args(transport))
    listener = cli.listen("ev", "--count", "3")
    sender = cli.popen("send", "ev", "--lines", stdin=subprocess.PIPE)
    assert sender.stdin is not None
    for n in (1, 2, 3):
        # The listener prints line n while the sender has not been given line n + 1.
        sender.stdin.write(f'{{"n": {n}}}\n' + ("\n" if n == 2 else ""))  # blank lines skipped
        sender.stdin.flush()
        assert read_json(listener)["data"] == {"n": n}
        assert sender.poll() is None
    sender.stdin.close()
    assert sender.wait(10) == 0
    assert rest(sender, "stderr") == ""
    assert listener.wait(10) == 0


@pytest.mark.timeout(30)
def test_bad_lines_are_reported_and_the_others_sent_in_order(cli) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "3")
    lines = ['{"n": 1}', '{"n": 2', '{"n": 3}', '[4]', '{"n": 5}']
    sent = cli.run("send", "ev", "--lines", input="\n".join(lines) + "\n")
    assert sent.returncode == 65
    assert sent.stderr.splitlines() == [
        "sockcli: error: line 2: invalid JSON (column 8): Expecting ',' delimiter",
        "sockcli: error: line 4: expected a JSON object ({...}), got an array",
    ]
    assert [read_json(listener)["data"] for _ in range(3)] == [{"n": 1}, {"n": 3}, {"n": 5}]
    assert listener.wait(10) == 0
    # One bad line: one line of error, with its number and what is wrong.
    sent = cli.run("send", "ev", "--lines", input='{"n": 6}\n"six"\n')
    assert sent.returncode == 65
    assert error_line(sent.stderr) == \
        "sockcli: error: line 2: expected a JSON object ({...}), got a string"


@pytest.mark.timeout(30)
def test_invalid_single_object_exits_65_without_sending(cli) -> None:
    cases = [
        (["send", "ev"], '{"a": 1,\n "b": }\n',
         "sockcli: error: stdin: invalid JSON (line 2, column 7): Expecting value"),
        (["send", "ev"], "[1, 2]",
         "sockcli: error: stdin: expected a JSON object ({...}), got an array"),
        (["send", "ev"], "",
         "sockcli: error: stdin: invalid JSON (line 1, column 1): Expecting value"),
        (["send", "ev"], '{"a": 1}\n{"b": 2}\n',
         "sockcli: error: stdin: invalid JSON (line 2, column 1): Extra data: stdin holds more "
         "than one JSON value; use --lines for one per line"),
        (["send", "ev", "-d", "nope"], None,
         "sockcli: error: --data: invalid JSON (column 1): Expecting value"),
        (["send", "ev", "-d", "42"], None,
         "sockcli: error: --data: expected a JSON object ({...}), got a number"),
    ]
    for args, stdin, expected in cases:
        done = cli.run(*args, input=stdin, stdin=subprocess.DEVNULL)
        assert done.returncode == 65, (args, stdin, done.stderr)
        assert error_line(done.stderr) == expected
    # The data is checked before looking for a hub: none was needed to say so.
    assert cli.list_json() == []


@pytest.mark.timeout(30)
def test_data_option_never_reads_stdin(cli) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "3")
    done = cli.bash(
        "printf '%s\\n' one two three | while read -r word; do\n"
        '    sockcli send ev -d "{\\"word\\": \\"$word\\"}" || exit $?\n'
        "    echo \"sent $word\"\n"
        "done\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sent one", "sent two", "sent three"]
    assert [read_json(listener)["data"]["word"] for _ in range(3)] == ["one", "two", "three"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_to_name_reaches_only_that_listener(cli, transport: str) -> None:
    cli.serve("ev", *transport_args(transport))
    alice = cli.listen("ev", "--name", "alice", "--count", "2")
    other = cli.listen("ev", "--count", "1")
    sent = cli.run("send", "ev", "--to", "alice", "-d", '{"for": "alice"}')
    assert (sent.returncode, sent.stderr) == (0, "")
    sent = cli.run("send", "ev", "-d", '{"for": "all"}')
    assert (sent.returncode, sent.stderr) == (0, "")
    assert [read_json(alice)["data"] for _ in range(2)] == [{"for": "alice"}, {"for": "all"}]
    assert read_json(other)["data"] == {"for": "all"}  # the unicast never reached it
    assert alice.wait(10) == 0 and other.wait(10) == 0
    # A name nobody listens under: refused, nothing queued for later.
    refused = cli.run("send", "ev", "--to", "carol", "-d", '{"for": "carol"}')
    assert refused.returncode == 68
    assert "no subscriber named 'carol'" in error_line(refused.stderr)
    [row] = cli.list_json()
    assert row["queued"] == 0


@pytest.mark.timeout(30)
def test_no_hub_exits_69_within_about_a_second(cli) -> None:
    for args, stdin in ((["-d", "{}"], None), (["--lines"], '{"n": 1}\n')):
        started = time.monotonic()
        done = cli.run("send", "ev", *args, input=stdin)
        elapsed = time.monotonic() - started
        assert done.returncode == 69
        assert error_line(done.stderr) == ("sockcli: error: no hub is running for event 'ev': "
                                           "start one with 'sockcli serve ev'")
        assert 1.0 <= elapsed < 3.5, elapsed  # it waited --wait 1 s for the hub, not 5 s
    quick = cli.run("send", "ev", "--wait", "0", "-d", "{}")
    assert quick.returncode == 69
    assert "sockcli serve ev" in error_line(quick.stderr)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_hub_killed_while_streaming_exits_75(cli, transport: str) -> None:
    hub = cli.serve("ev", *transport_args(transport))
    listener = cli.listen("ev")
    sender = cli.popen("send", "ev", "--lines", stdin=subprocess.PIPE)
    assert sender.stdin is not None
    sender.stdin.write('{"n": 1}\n')
    sender.stdin.flush()
    assert read_json(listener)["data"] == {"n": 1}
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    # The next line has no hub to acknowledge it: the sender must not claim success.
    sender.stdin.write('{"n": 2}\n')
    sender.stdin.flush()
    sender.stdin.close()
    assert sender.wait(10) == 75
    line = error_line(rest(sender, "stderr"))
    assert "not acknowledged" in line or "lost the hub" in line, line

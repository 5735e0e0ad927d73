"""``sockcli send``: JSON from stdin or -d, --lines as they arrive, --type, --to, and the exit
status that says whether the hub acknowledged everything."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.clitools import error_line, read_json, read_line, rest, stop, transport_args


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
        "sockcli: error: line 2: invalid JSON (column 8): Expecting ',' delimiter; expected "
        'one JSON object such as {"progress": 40}',
        'sockcli: error: line 4: expected a JSON object such as {"progress": 40}, got an array',
    ]
    assert [read_json(listener)["data"] for _ in range(3)] == [{"n": 1}, {"n": 3}, {"n": 5}]
    assert listener.wait(10) == 0
    # One bad line: one line of error, with its number and what is wrong.
    sent = cli.run("send", "ev", "--lines", input='{"n": 6}\n"six"\n')
    assert sent.returncode == 65
    assert error_line(sent.stderr) == \
        'sockcli: error: line 2: expected a JSON object such as {"progress": 40}, got a string'


@pytest.mark.timeout(30)
def test_a_message_over_the_hubs_smaller_buffer_size_is_exit_65_and_the_rest_is_sent(
        cli) -> None:
    """The hub's buffer_size (its welcome's max_frame_size) is smaller than the sender's: the
    message it would not take is refused before it is sent (65: sending it again cannot
    help), not left unacknowledged by a dropped connection (75), and the good lines go."""
    cli.serve("ev", env={"SOCKCLI_BUFFER_SIZE": "1024"})
    listener = cli.listen("ev", "--count", "2")
    big = json.dumps({"blob": "x" * 3000})
    expected = re.compile(
        r"sockcli: error: (line 2: )?frame of 3\d{3} bytes exceeds the limit of 1024 bytes "
        r"\(raise the buffer_size setting, SOCKCLI_BUFFER_SIZE, of the hub and its clients\)")
    sent = cli.run("send", "ev", input=big)
    assert sent.returncode == 65
    assert expected.fullmatch(error_line(sent.stderr)), sent.stderr
    sent = cli.run("send", "ev", "--lines", input=f'{{"n": 1}}\n{big}\n{{"n": 3}}\n')
    assert sent.returncode == 65
    [line] = sent.stderr.splitlines()
    assert line.startswith("sockcli: error: line 2: ") and expected.fullmatch(line), line
    assert [read_json(listener)["data"] for _ in range(2)] == [{"n": 1}, {"n": 3}]
    assert listener.wait(10) == 0


@pytest.mark.timeout(30)
def test_invalid_single_object_exits_65_without_sending(cli) -> None:
    cases = [
        (["send", "ev"], '{"a": 1,\n "b": }\n',
         "sockcli: error: stdin: invalid JSON (line 2, column 7): Expecting value; expected "
         'one JSON object such as {"progress": 40}'),
        (["send", "ev"], "[1, 2]",
         'sockcli: error: stdin: expected a JSON object such as {"progress": 40}, got an array'),
        (["send", "ev"], "",
         'sockcli: error: stdin is empty: expected one JSON object such as {"progress": 40}'),
        (["send", "ev"], "hello\n",
         "sockcli: error: stdin: invalid JSON (line 1, column 1): Expecting value; expected "
         'one JSON object such as {"progress": 40}'),
        (["send", "ev"], '{"a": 1}\n{"b": 2}\n',
         "sockcli: error: stdin: invalid JSON (line 2, column 1): Extra data: stdin holds more "
         "than one JSON value; use --lines for one per line"),
        (["send", "ev", "-d", "nope"], None,
         "sockcli: error: --data: invalid JSON (column 1): Expecting value; expected one JSON "
         'object such as {"progress": 40}'),
        (["send", "ev", "-d", "42"], None,
         'sockcli: error: --data: expected a JSON object such as {"progress": 40}, got a number'),
        (["send", "ev", "-d", ""], None,
         'sockcli: error: --data is empty: expected one JSON object such as {"progress": 40}'),
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
    assert "lost the hub" in line or "before it acknowledged" in line, line
    assert "not: resend from line " in line, line  # which lines to send again


@pytest.mark.timeout(30)
def test_no_event_waits_for_a_hub_that_is_starting(cli) -> None:
    # No hub at all: --wait for one to appear (about a second by default), then 69.
    started = time.monotonic()
    done = cli.run("send", "-d", "{}")
    elapsed = time.monotonic() - started
    assert done.returncode == 69
    assert error_line(done.stderr) == (
        "sockcli: error: no EVENT given and no hub is running: name the event, or start a hub "
        "with 'sockcli serve EVENT'")
    assert 1.0 <= elapsed < 3.5, elapsed
    # A hub that starts while the sender waits is the one: the message reaches it.
    sender = cli.popen("send", "--wait", "10", "-d", '{"progress": 40}')
    cli.serve("late")
    assert sender.wait(10) == 0, rest(sender, "stderr")
    assert rest(sender, "stderr") == ""
    got = cli.run("listen", "late", "--count", "1", "--timeout", "10")
    assert got.returncode == 0, got.stderr
    [line] = got.stdout.splitlines()
    assert (json.loads(line)["event_name"], json.loads(line)["data"]) == \
        ("late", {"progress": 40})


def _readme_usage_example() -> str:
    """The usage error the README's exit status section shows, as printed."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Exit status", 1)[1]
    return section.split("```\n", 2)[1]


@pytest.mark.timeout(30)
def test_data_given_twice_is_a_usage_error_as_the_readme_shows(cli) -> None:
    cli.serve("ev")
    for args in (["-d", "{}", "-d", '{"second": "lost"}'], ["--data={}", "-d", "{}"],
                 ["--data", "{}", "--data", "{}"]):
        done = cli.run("send", "ev", *args)
        assert (done.returncode, done.stdout) == (2, ""), args
        assert done.stderr == _readme_usage_example(), done.stderr
    # Refused before anything was sent.
    [row] = cli.list_json()
    assert (row["received"], row["queued"]) == (0, 0)


# -- odd input: NaN and Infinity, closed stdin, a terminal ------------------------------------

NOT_FINITE = "is not valid JSON: numbers must be finite (send null or a string instead)"


@pytest.mark.timeout(30)
def test_nan_and_infinity_are_refused_at_the_input(cli) -> None:
    # Python's json takes them; JSON (RFC 8259) does not, and no listener could print them.
    cases = [
        (["send", "ev"], '{"a": NaN}', f"stdin: NaN {NOT_FINITE}"),
        (["send", "ev", "-d", '{"a": [1, Infinity]}'], None, f"--data: Infinity {NOT_FINITE}"),
        (["send", "ev", "-d", '{"a": {"b": -Infinity}}'], None,
         f"--data: -Infinity {NOT_FINITE}"),
        (["send", "ev", "-d", '{"a": 1e400}'], None,
         "--data: 1e400 is out of range: JSON numbers here must fit a 64-bit float (send a "
         "string instead)"),
    ]
    for args, stdin, expected in cases:
        done = cli.run(*args, input=stdin, stdin=subprocess.DEVNULL)
        assert done.returncode == 65, (args, done.stderr)
        assert error_line(done.stderr) == f"sockcli: error: {expected}"
    # --lines: that line is refused, the others sent.
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "2")
    done = cli.run("send", "ev", "--lines", input='{"n": 1}\n{"n": NaN}\n{"n": 1e308}\n')
    assert done.returncode == 65
    assert error_line(done.stderr) == f"sockcli: error: line 2: NaN {NOT_FINITE}"
    assert [read_json(listener)["data"] for _ in range(2)] == [{"n": 1}, {"n": 1e308}]
    assert listener.wait(10) == 0


@pytest.mark.timeout(30)
def test_closed_stdin_is_one_line_and_exit_66(cli) -> None:
    for command, words in (
            ("sockcli send ev <&-",
             "stdin is closed: pipe a JSON object in, or give it with --data JSON"),
            ("sockcli send --lines ev <&-",
             "stdin is closed: --lines reads one JSON object per line from it")):
        done = cli.bash(command)
        assert done.returncode == 66, (command, done.stderr)
        assert error_line(done.stderr) == f"sockcli: error: {words}"
    # --data never needs stdin.
    cli.serve("ev")
    done = cli.bash("sockcli send ev -d '{\"n\": 1}' <&-")
    assert (done.returncode, done.stderr) == (0, "")


def _send_from_a_terminal(cli, *args: str, typed: bytes) -> tuple[int, str]:
    """Run ``sockcli send ARGS`` with stdin on a pseudo-terminal; once it has said what it
    reads there, type ``typed`` and Ctrl-D. Returns the exit status and stderr."""
    master, slave = pty.openpty()
    try:
        sender = cli.popen("send", *args, stdin=slave)
        os.close(slave)
        slave = -1
        hint = read_line(sender, "stderr", 15)  # written before it reads: no race
        os.write(master, typed + b"\x04")  # Ctrl-D at the start of a line: end of input
        status = sender.wait(15)
        return status, hint + rest(sender, "stderr")
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


@pytest.mark.timeout(30)
def test_stdin_on_a_terminal_gets_a_one_line_hint(cli) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--count", "2")
    status, err = _send_from_a_terminal(cli, "ev", typed=b'{"progress": 40}\n')
    assert (status, err) == (0, "sockcli: reading a JSON object from the terminal; end with "
                                "Ctrl-D\n")
    status, err = _send_from_a_terminal(cli, "ev", "--lines", typed=b'{"n": 1}\n')
    assert (status, err) == (0, "sockcli: reading JSON objects from the terminal, one per line; "
                                "end with Ctrl-D\n")
    assert [read_json(listener)["data"] for _ in range(2)] == [{"progress": 40}, {"n": 1}]
    assert listener.wait(10) == 0
    # Not a terminal (a pipe, /dev/null): not a word (the other tests hold stderr to "").
    done = cli.run("send", "ev", stdin=subprocess.DEVNULL)
    assert error_line(done.stderr) == ('sockcli: error: stdin is empty: expected one JSON '
                                       'object such as {"progress": 40}')

"""``sockcli listen EVENT1 EVENT2 ...`` and glob patterns: one stream from several hubs, hubs
that start later and hubs that restart, the options across all of them, and bad usage.

Readiness: under -v, listen prints ``listening to 'E' on ADDRESS`` each time it follows a hub,
and ``waiting for messages of ...`` once its first look at the socket directory is done and
the watch for new hubs has begun."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest

from tests.clitools import (
    error_line,
    read_json,
    rest,
    stderr_line,
    stop,
    transport_args,
    usage_error,
)

pytestmark = pytest.mark.timeout(60)


def send(cli: Any, *args: str, stdin: str | None = None) -> None:
    done = cli.run("send", *args, input=stdin)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def follow(cli: Any, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``sockcli -v listen ARGS``, once it watches for hubs; and its stderr lines so far."""
    proc = cli.popen("-v", "listen", *args)
    lines = []
    while True:
        lines.append(stderr_line(proc, 15))
        if lines[-1].startswith("sockcli: waiting for messages of "):
            return proc, lines


def await_line(proc: subprocess.Popen[str], text: str) -> list[str]:
    """The stderr lines of ``proc`` up to the one that is ``text``."""
    lines = []
    while True:
        lines.append(stderr_line(proc, 15))
        if lines[-1] == text:
            return lines


def following(cli: Any, event: str) -> str:
    return f"sockcli: listening to {event!r} on {cli.socket_dir / (event + '.sock')}"


def by_event(lines: list[dict[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for line in lines:
        out.setdefault(line["event_name"], []).append(line["data"]["n"])
    return out


def test_two_named_events_one_stream_in_order_with_an_exact_total_count(cli: Any) -> None:
    cli.serve("a")
    cli.serve("b")
    listener, said = follow(cli, "a", "b", "--count", "6")
    assert said == [following(cli, "a"), following(cli, "b"),
                    "sockcli: waiting for messages of 'a' and 'b'"]
    send(cli, "a", "--lines", stdin="".join(f'{{"n": {n}}}\n' for n in range(1, 5)))
    send(cli, "b", "--lines", stdin="".join(f'{{"n": {n}}}\n' for n in range(1, 5)))
    assert listener.wait(15) == 0
    got = [json.loads(line) for line in rest(listener).splitlines()]
    assert len(got) == 6  # the total, not six of each
    assert all(list(g) == ["event_name", "timestamp_ms", "timestamp_iso", "message_type",
                           "data"] for g in got)
    seen = by_event(got)
    assert set(seen) == {"a", "b"}
    for numbers in seen.values():  # each hub's messages in the order it relayed them
        assert numbers == list(range(1, len(numbers) + 1))


def test_a_named_hub_that_starts_after_listen_is_waited_for(cli: Any) -> None:
    cli.serve("a")
    listener, said = follow(cli, "a", "b", "--count", "2", "--format", "text",
                            "--text", "{event_name}={data.n}")
    assert said == [following(cli, "a"), "sockcli: waiting for messages of 'a' and 'b'"]
    cli.serve("b")
    await_line(listener, following(cli, "b"))
    send(cli, "a", "-d", '{"n": 1}')
    send(cli, "b", "-d", '{"n": 2}')
    assert listener.wait(15) == 0
    # Each line says which hub it came from (here through the template).
    assert sorted(rest(listener).splitlines()) == ["a=1", "b=2"]


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_glob_follows_a_hub_started_later_and_no_other(cli: Any, transport: str) -> None:
    cli.serve("w_a")
    for other in ("other", "xw_a", "W_A"):  # fnmatch's whole name, and case-sensitive
        cli.serve(other)
    listener, said = follow(cli, "w_*", "--count", "2")
    assert said == [following(cli, "w_a"), "sockcli: waiting for messages of hubs matching "
                                           "'w_*'"]
    cli.serve("w_b", *transport_args(transport))
    address = (cli.socket_dir / "w_b.sock" if transport == "unix"
               else f"127.0.0.1:{cli.record('w_b')['port']}")
    await_line(listener, f"sockcli: listening to 'w_b' on {address}")
    for other in ("other", "xw_a", "W_A"):  # sent first: had they been followed, they came
        send(cli, other, "-d", '{"n": 0}')
    send(cli, "w_a", "-d", '{"n": 1}')
    send(cli, "w_b", "-d", '{"n": 2}')
    assert listener.wait(15) == 0
    got = [json.loads(line) for line in rest(listener).splitlines()]
    assert sorted((g["event_name"], g["data"]["n"]) for g in got) == [("w_a", 1), ("w_b", 2)]
    # The other hubs still hold theirs: nobody subscribed to them.
    queued = {row["event_name"]: (row["queued"], row["subscribers"]) for row in cli.list_json()
              if row["event_name"] in ("other", "xw_a", "W_A")}
    assert queued == {"other": (1, 0), "xw_a": (1, 0), "W_A": (1, 0)}


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_hub_that_restarts_under_a_glob_is_followed_again(cli: Any, transport: str) -> None:
    hub = cli.serve("w_a", *transport_args(transport))
    listener, _ = follow(cli, "w_*", "--count", "3")
    send(cli, "w_a", "-d", '{"n": 1}')
    assert read_json(listener)["data"] == {"n": 1}
    assert stop(hub) == 0
    await_line(listener, "sockcli: lost the hub of 'w_a'; following it again when it is back")
    # Back on the other transport: the record says where it is now.
    cli.serve("w_a", *transport_args("unix" if transport == "tcp" else "tcp"))
    lines = await_line(listener, following(cli, "w_a") if transport == "tcp"
                       else f"sockcli: listening to 'w_a' on 127.0.0.1:"
                            f"{cli.record('w_a')['port']}")
    assert not any(line.startswith("sockcli: listening to") for line in lines[:-1])
    send(cli, "w_a", "--lines", stdin='{"n": 2}\n{"n": 3}\n')
    assert [read_json(listener)["data"]["n"] for _ in range(2)] == [2, 3]
    assert listener.wait(15) == 0
    assert rest(listener) == ""


def test_types_name_count_and_timeout_apply_across_the_hubs(cli: Any) -> None:
    cli.serve("a")
    cli.serve("b")
    listener, _ = follow(cli, "a", "b", "-t", "error", "--name", "bar", "--count", "2")
    for event in ("a", "b"):
        send(cli, event, "-d", '{"n": 0}')  # data: filtered out by each hub (and queued)
        send(cli, event, "-t", "error", "--to", "bar", "-d", f'{{"n": "{event}"}}')
    assert listener.wait(15) == 0
    got = [json.loads(line) for line in rest(listener).splitlines()]
    assert sorted((g["event_name"], g["message_type"], g["data"]["n"]) for g in got) == \
        [("a", "error", "a"), ("b", "error", "b")]
    # The queued data messages, one per hub: --count 3 is the total, not reached in time.
    done = cli.run("listen", "a", "b", "--count", "3", "--timeout", "2")
    assert done.returncode == 124
    assert sorted((g["event_name"], g["data"]["n"]) for g in map(json.loads,
                  done.stdout.splitlines())) == [("a", 0), ("b", 0)]
    assert error_line(done.stderr) == "sockcli: error: 2 of 3 messages arrived within 2.0 s"


def test_last_gives_the_retained_messages_of_each_hub(cli: Any) -> None:
    cli.serve("a")
    cli.serve("b")
    taker, _ = follow(cli, "a", "b", "--count", "4")  # takes them live: nothing is queued
    send(cli, "a", "--lines", stdin='{"n": 1}\n{"n": 2}\n')
    send(cli, "b", "-d", '{"n": 3}')
    send(cli, "b", "-t", "error", "-d", '{"n": 4}')
    assert taker.wait(15) == 0
    assert len(rest(taker).splitlines()) == 4
    done = cli.run("listen", "a", "b", "--last", "--count", "3", "--json", "--timeout", "20")
    assert (done.returncode, done.stderr) == (0, "")
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(g["retained"] is True for g in got)
    # The last of each type, each hub's oldest first.
    assert by_event(got) == {"a": [2], "b": [3, 4]}
    assert [g["message_type"] for g in got if g["event_name"] == "b"] == ["data", "error"]


def test_no_line_is_split_or_interleaved_and_each_hub_keeps_its_order(cli: Any) -> None:
    cli.serve("a")
    cli.serve("b")
    listener, _ = follow(cli, "a", "b", "--count", "2000")
    text = "x" * 300  # long lines, so a torn write would show
    stdin = "".join(f'{{"n": {n}, "text": "{text}"}}\n' for n in range(1000))
    senders = [threading.Thread(target=send, args=(cli, e, "--lines"), kwargs={"stdin": stdin})
               for e in ("a", "b")]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    lines = rest(listener, timeout=30).splitlines()  # read while it writes: 800 kB
    assert listener.wait(15) == 0
    assert len(lines) == 2000
    got = [json.loads(line) for line in lines]  # every line one whole message
    assert by_event(got) == {"a": list(range(1000)), "b": list(range(1000))}
    assert all(g["data"]["text"] == text for g in got)


def test_no_reconnect_needs_every_hub_and_ends_when_one_goes(cli: Any) -> None:
    cli.serve("a")
    done = cli.run("listen", "a", "b", "--no-reconnect", "--wait", "0.2")
    assert (done.returncode, done.stdout) == (69, "")
    assert error_line(done.stderr) == (
        "sockcli: error: no hub is running for event 'b': start one with 'sockcli serve b', "
        "or leave out --no-reconnect to wait for them")
    done = cli.run("listen", "a", "c", "zz*", "--no-reconnect", "--wait", "0.2")
    assert done.returncode == 69
    assert error_line(done.stderr) == (
        "sockcli: error: no hub is running for event 'c', nor for any event matching 'zz*': "
        "start them with 'sockcli serve EVENT', or leave out --no-reconnect to wait for them")
    hub_b = cli.serve("b")
    listener = cli.popen("-v", "listen", "a", "b", "--no-reconnect")
    assert [stderr_line(listener) for _ in range(2)] == [following(cli, "a"),
                                                          following(cli, "b")]
    send(cli, "b", "-d", '{"n": 1}')
    assert read_json(listener)["data"] == {"n": 1}
    assert stop(hub_b) == 0
    assert listener.wait(15) == 69
    assert rest(listener, "stderr").splitlines()[-1] == "sockcli: error: lost the hub of 'b'"


def test_bad_usage(cli: Any) -> None:
    for args in (("a", "b"), ("w_*",)):
        done = cli.run("listen", *args, "--connect", "127.0.0.1:47999")
        assert done.returncode == 2
        assert usage_error(done.stderr) == ("Error: --connect reaches one hub: give it one "
                                            "EVENT (or none), not several or a pattern")
    done = cli.run("listen", "a", "w/*")
    assert done.returncode == 2
    assert usage_error(done.stderr) == (
        "Error: Invalid value for 'EVENT': invalid event pattern 'w/*': it may hold only the "
        "characters of event names (letters, digits, '_', '-') and the glob characters "
        "* ? [ ] !")
    done = cli.run("listen", "a", "b.c")
    assert done.returncode == 2
    assert "invalid event name 'b.c'" in usage_error(done.stderr)

"""Retained messages (the last value): the hub keeps the last message of each type it relays,
and a subscriber that asks (``last``, ``listen --last``) gets those first, marked retained,
oldest first, then the live ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sockcli import SocketMessage
from sockcli.exceptions import MessageError, TimeoutError, ValidationError
from sockcli.protocol import frames as fr

pytestmark = pytest.mark.timeout(30)


def test_a_late_subscriber_gets_the_last_message_of_each_type_first(make_hub,
                                                                     make_client) -> None:
    hub = make_hub()
    sender = make_client(subscribe=False)
    first = make_client(name="first")  # takes them live, so nothing is queued
    for kind, n in (("data", 1), ("error", 2), ("data", 3)):
        sender.send(SocketMessage("ev", message_type=kind, data={"n": n}))
    assert [first.receive(5).data["n"] for _ in range(3)] == [1, 2, 3]
    late = make_client(name="late", last=True)
    got = [late.receive(5) for _ in range(2)]
    # Oldest first: the error (2), then the newest data (3), each marked retained.
    assert [(m.message_type.value, m.data["n"], m.retained) for m in got] == \
        [("error", 2, True), ("data", 3, True)]
    assert got[0].as_dict()["retained"] is True
    sender.send(SocketMessage("ev", data={"n": 4}))
    live = late.receive(5)
    assert (live.data["n"], live.retained) == (4, False)
    assert "retained" not in live.as_dict()
    # Only for those who ask, and only the types they take.
    plain = make_client(name="plain")
    errors = make_client(name="errors", types=["error"], last=True)
    assert errors.receive(5).data == {"n": 2}  # the retained error; the data ones not
    with pytest.raises(TimeoutError):
        plain.receive(0.2)
    # The hub's own broadcasts are retained too.
    hub.send(SocketMessage("ev", message_type="control", data={"n": 5}))
    again = make_client(name="again", last=True, types=["control"])
    assert again.receive(5).data == {"n": 5}


def test_no_retain_keeps_nothing(make_hub, make_client) -> None:
    make_hub(retain=False)
    sender = make_client(subscribe=False)
    first = make_client(name="first")
    sender.send(SocketMessage("ev", data={"n": 1}))
    assert first.receive(5).data == {"n": 1}
    late = make_client(name="late", last=True)
    with pytest.raises(TimeoutError):
        late.receive(0.3)


def test_listen_last_prints_the_retained_message_first(cli: Any) -> None:
    cli.serve("ev")
    live = cli.listen("ev", "--count", "1")
    assert cli.run("send", "ev", "-d", '{"progress": 40}').returncode == 0
    assert json.loads(live.stdout.readline())["data"] == {"progress": 40}
    done = cli.run("listen", "ev", "--last", "--count", "1", "--json")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["data"] == {"progress": 40} and line["retained"] is True


# -- send --retain-only and send --clear (the message's "retain") -----------------------------


def test_retain_only_is_kept_but_delivered_to_nobody(make_hub, make_client) -> None:
    hub = make_hub()
    sender = make_client(subscribe=False)
    live = make_client(name="live")
    sender.send(SocketMessage("ev", data={"n": 1}), retain="only")  # acknowledged
    sender.send(SocketMessage("ev", message_type="error", data={"n": 2}))
    # The live listener's first message is the plain one: the retained-only one went to
    # nobody (a subscriber gets messages in the order the hub handled them).
    first = live.receive(5)
    assert (first.message_type.value, first.data, first.retained) == ("error", {"n": 2}, False)
    assert hub.stats()["queued"] == 0  # nor was it queued for a later subscriber
    assert hub.stats()["retained"] == ["data", "error"]
    late = make_client(name="late", last=True)
    got = [late.receive(5) for _ in range(2)]
    assert [(m.message_type.value, m.data, m.retained) for m in got] == \
        [("data", {"n": 1}, True), ("error", {"n": 2}, True)]
    # A retained-only message replaces the retained one of its type, and moves it last.
    sender.send(SocketMessage("ev", data={"n": 3}), retain="only")
    assert hub.stats()["retained"] == ["error", "data"]
    sender.send(SocketMessage("ev", data={"marker": True}))
    assert live.receive(5).data == {"marker": True}


def test_clear_one_type_or_all(make_hub, make_client) -> None:
    hub = make_hub()
    sender = make_client(subscribe=False)
    live = make_client(name="live")
    for kind in ("data", "error", "control"):
        sender.send(SocketMessage("ev", message_type=kind, data={"kind": kind}))
    assert [live.receive(5).message_type.value for _ in range(3)] == ["data", "error", "control"]
    sender.send(SocketMessage("ev", message_type="error"), retain="clear")
    assert hub.stats()["retained"] == ["data", "control"]
    sender.send(SocketMessage("ev", message_type="error"), retain="clear")  # nothing: fine
    sender.send(SocketMessage("ev", message_type="data"), retain="clear_all")
    assert hub.stats()["retained"] == []
    late = make_client(name="late", last=True)
    sender.send(SocketMessage("ev", data={"marker": True}))
    # Clearing delivered nothing, and nothing retained came first to the late subscriber.
    for client in (live, late):
        message = client.receive(5)
        assert (message.data, message.retained) == ({"marker": True}, False)


def test_retain_on_a_hub_that_retains_nothing(make_hub, make_client) -> None:
    make_hub(retain=False)
    sender = make_client(subscribe=False)
    live = make_client(name="live")
    with pytest.raises(MessageError) as refused:
        sender.send(SocketMessage("ev", data={"n": 1}), retain="only")
    assert refused.value.code == "not_retaining"
    assert "keeps no retained messages" in str(refused.value)
    sender.send(SocketMessage("ev"), retain="clear_all")  # nothing is retained: done
    sender.send(SocketMessage("ev", data={"marker": True}))
    assert live.receive(5).data == {"marker": True}  # neither was delivered


def test_retain_is_checked_before_anything_is_sent(make_hub, make_client) -> None:
    make_hub()
    sender = make_client(subscribe=False)
    live = make_client(name="live")
    with pytest.raises(ValidationError, match="retain must be one of only, clear, clear_all"):
        sender.send(SocketMessage("ev"), retain="forever")
    with pytest.raises(ValidationError, match="retain cannot go with to"):
        sender.send(SocketMessage("ev"), retain="only", to="live")
    sender.send(SocketMessage("ev", data={"n": 1}))  # the connection goes on, seqs unbroken
    assert live.receive(5).data == {"n": 1}


def test_the_hub_refuses_a_bad_retain_on_the_wire() -> None:
    base = {"kind": "message", "event_name": "ev", "timestamp_ms": 1,
            "timestamp_iso": "2023-11-14T22:13:20.000+00:00", "message_type": "data",
            "data": {}}
    assert fr.relay_fields({**base, "retain": "only"}) is None  # not the hot path
    frame = fr.frame_from_map({**base, "retain": "only", "seq": 3})
    assert isinstance(frame, fr.MessageFrame) and (frame.retain, frame.seq) == ("only", 3)
    assert fr.frame_to_map(frame)["retain"] == "only"
    for bad, why in (({"retain": "keep"}, "'retain' must be one of only, clear, clear_all"),
                     ({"retain": True}, "'retain' must be str"),
                     ({"retain": "only", "to": "x"}, "'retain' cannot go with 'to'")):
        with pytest.raises(MessageError, match=why) as err:
            fr.frame_from_map({**base, **bad})
        assert err.value.code == "invalid_message"
    hello = fr.frame_from_map({"kind": "hello", "version": 1, "peek": True, "types": ["error"]})
    assert isinstance(hello, fr.Hello) and hello.peek and not hello.subscribe
    assert fr.frame_to_map(hello)["peek"] is True
    with pytest.raises(MessageError, match="'peek' is for a client that does not subscribe"):
        fr.frame_from_map({"kind": "hello", "version": 1, "peek": True, "subscribe": True})


def test_send_retain_only_and_clear_on_the_command_line(cli: Any) -> None:
    cli.serve("ev")
    live = cli.listen("ev", "--json")
    kept = cli.run("send", "ev", "--retain-only", "-t", "error", "-d", '{"n": 1}')
    assert (kept.returncode, kept.stderr) == (0, "")
    assert cli.run("send", "ev", "-d", '{"n": 2}').returncode == 0
    # The live listener's next line is the plain message: the retained-only one never came.
    assert json.loads(live.stdout.readline())["data"] == {"n": 2}
    error = cli.run("get", "ev", "-t", "error")
    assert (error.returncode, json.loads(error.stdout)["data"]) == (0, {"n": 1})
    last = cli.run("listen", "ev", "--last", "--count", "2", "--json", "--no-reconnect")
    assert [json.loads(line)["data"] for line in last.stdout.splitlines()] == \
        [{"n": 1}, {"n": 2}]
    # --lines with --retain-only: each line sets it; the last one stays.
    lines = cli.run("send", "ev", "--retain-only", "--lines", "-t", "control",
                    input='{"n": 3}\n{"n": 4}\n')
    assert lines.returncode == 0, lines.stderr
    assert json.loads(cli.run("get", "ev", "-t", "control").stdout)["data"] == {"n": 4}
    # --clear -t TYPE clears that type only; it reads no stdin (an empty one would be exit 65).
    cleared = cli.run("send", "ev", "--clear", "-t", "error", input="")
    assert (cleared.returncode, cleared.stderr) == (0, "")
    assert cli.run("get", "ev", "-t", "error").returncode == 66
    assert json.loads(cli.run("get", "ev").stdout)["data"] == {"n": 4}
    # --clear alone clears every type.
    assert cli.run("send", "ev", "--clear", input="").returncode == 0
    assert cli.run("get", "ev").returncode == 66
    [row] = cli.list_json()
    assert row["queued"] == 0
    # Nothing of it reached the live listener: its next line is the next plain message.
    assert cli.run("send", "ev", "-d", '{"n": 5}').returncode == 0
    assert json.loads(live.stdout.readline())["data"] == {"n": 5}


def test_send_retain_usage_errors_and_a_hub_without_retain(cli: Any) -> None:
    from tests.clitools import error_line, usage_error

    for args, message in (
            (["--retain-only", "--clear"], "--retain-only and --clear exclude each other"),
            (["--clear", "-d", "{}"], "--clear and --data exclude each other"),
            (["--clear", "--lines"], "--clear and --lines exclude each other"),
            (["--to", "bar", "--retain-only"], "--to and --retain-only exclude each other"),
            (["--to", "bar", "--clear"], "--to and --clear exclude each other")):
        done = cli.run("send", "ev", *args)
        assert done.returncode == 2, args
        assert usage_error(done.stderr) == f"Error: {message}"
    cli.serve("ev", "--no-retain")
    refused = cli.run("send", "ev", "--retain-only", "-d", "{}")
    assert refused.returncode == 77
    assert error_line(refused.stderr) == (
        "sockcli: error: hub 'ev' keeps no retained messages (its retain setting is off: "
        "serve --no-retain): the message was not kept")
    assert cli.run("send", "ev", "--clear").returncode == 0

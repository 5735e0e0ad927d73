"""Retained messages (the last value): the hub keeps the last message of each type it relays,
and a subscriber that asks (``last``, ``listen --last``) gets those first, marked retained,
oldest first, then the live ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sockcli import SocketMessage
from sockcli.exceptions import TimeoutError

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

"""A tap (hello ``tap``, the MQTT bridge's local client): it gets every message relayed, but
the queue stays the first real subscriber's."""

from __future__ import annotations

from typing import Any

import pytest

from sockcli import MessageType, SocketMessage
from tests.helpers import wait_until


def msg(n: int) -> SocketMessage:
    return SocketMessage("ev", message_type=MessageType.DATA, data={"n": n})


@pytest.mark.timeout(30)
def test_a_broadcast_only_a_tap_takes_is_queued_for_the_first_subscriber(
        make_hub: Any, make_client: Any) -> None:
    hub = make_hub()
    tap = make_client(tap=True)
    wait_until(lambda: len(hub.get_connected_clients()) == 1, what="the tap welcomed")
    assert "tap" in tap.welcome.features
    sender = make_client(subscribe=False)
    for n in range(3):
        sender.send(msg(n))
    assert [tap.receive(timeout=5).data["n"] for _ in range(3)] == [0, 1, 2]
    assert hub.stats()["queued"] == 3  # the tap took them, and they wait for a listener
    listener = make_client()
    assert [listener.receive(timeout=5).data["n"] for _ in range(3)] == [0, 1, 2]
    assert hub.stats()["queued"] == 0
    sender.send(msg(3))  # with a real subscriber there, nothing is queued
    assert listener.receive(timeout=5).data["n"] == 3
    assert tap.receive(timeout=5).data["n"] == 3
    assert hub.stats()["queued"] == 0


@pytest.mark.timeout(30)
def test_a_tap_is_never_given_the_queue(make_hub: Any, make_client: Any) -> None:
    hub = make_hub()
    sender = make_client(subscribe=False)
    sender.send(msg(1))
    assert hub.stats()["queued"] == 1
    tap = make_client(tap=True)
    sender.send(msg(2))
    assert tap.receive(timeout=5).data["n"] == 2  # the live one only, not the queued one
    assert hub.stats()["queued"] == 2
    listener = make_client()
    assert [listener.receive(timeout=5).data["n"] for _ in range(2)] == [1, 2]

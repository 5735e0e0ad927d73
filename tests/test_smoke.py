"""The shortest path through the library, on both transports."""

from __future__ import annotations

from sockcli import MessageType, SocketMessage


def test_send_relays_to_subscriber(make_hub, make_client) -> None:
    make_hub()
    listener = make_client(name="bar")
    sender = make_client(subscribe=False)
    sender.send(SocketMessage("ev", message_type=MessageType.ERROR, data={"p": 1}))
    got = listener.receive(timeout=5)
    assert (got.event_name, got.message_type, got.data) == ("ev", MessageType.ERROR, {"p": 1})

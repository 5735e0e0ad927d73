"""Custom message types (docs/ARCHITECTURE.md): added by configuration or one registration
call, relayed by the hub, filtered at the hub, and no change to the three built-in types.

Registered types are process-wide, like enum members: each test uses names of its own so
that none depends on another's registrations.
"""

from __future__ import annotations

from typing import Any

import pytest

from sockcli import MessageType, SocketMessage
from sockcli.exceptions import MessageError, TimeoutError, ValidationError
from sockcli.kinds import message_type_names, register_message_type
from sockcli.protocol import frames as fr
from tests.helpers import RawPeer

pytestmark = pytest.mark.timeout(30)


def test_a_registered_type_is_a_message_type_value() -> None:
    notice = register_message_type("Notice_T1")
    assert isinstance(notice, MessageType)
    assert notice == "notice_t1" and notice.value == "notice_t1"
    assert MessageType("notice_t1") is notice
    assert MessageType.parse("NOTICE_T1") is notice
    assert register_message_type("notice_t1") is notice  # once only
    assert register_message_type("data") is MessageType.DATA
    # The three built-in types stay the members and the default.
    assert list(MessageType) == [MessageType.DATA, MessageType.ERROR, MessageType.CONTROL]
    assert SocketMessage("ev").message_type is MessageType.DATA
    assert message_type_names()[:3] == ["data", "error", "control"]
    assert "notice_t1" in message_type_names()
    message = SocketMessage("ev", message_type="notice_t1", data={"n": 1})
    assert message.message_type is notice
    assert message.as_dict()["message_type"] == "notice_t1"


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "slash/no", 7])
def test_a_type_name_follows_the_event_name_rule(name: Any) -> None:
    with pytest.raises(ValidationError, match="invalid message type name"):
        register_message_type(name)


def test_an_unknown_type_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValidationError, match="choose one of data, error, control"):
        MessageType.parse("never_registered_t1")


def test_frames_carry_a_registered_type() -> None:
    register_message_type("frame_t1")
    wire = {"kind": "message", "event_name": "ev", "timestamp_ms": 0,
            "timestamp_iso": "1970-01-01T00:00:00.000+00:00", "message_type": "frame_t1",
            "data": {}}
    frame = fr.frame_from_map(wire)
    assert isinstance(frame, fr.MessageFrame)
    assert frame.message.message_type == "frame_t1"
    assert fr.frame_to_map(frame) == wire
    hello = fr.frame_from_map({"kind": "hello", "version": 1, "types": ["FRAME_T1"]})
    assert isinstance(hello, fr.Hello) and hello.types == frozenset({MessageType("frame_t1")})


def test_configured_types_are_relayed_and_filtered_at_the_hub(make_hub, make_client) -> None:
    # By configuration: the hub's and the clients' settings name the type.
    hub = make_hub(message_types=["warning_t2"])
    warnings = make_client(types=["warning_t2"], name="w", message_types=["warning_t2"])
    everything = make_client(name="all", message_types=["warning_t2"])
    sender = make_client(subscribe=False, message_types=["warning_t2"])
    sender.send(SocketMessage("ev", message_type="data", data={"i": 1}))
    sender.send(SocketMessage("ev", message_type="warning_t2", data={"i": 2}))
    got = warnings.receive(5)
    assert (got.message_type, got.data) == (MessageType("warning_t2"), {"i": 2})
    with pytest.raises(TimeoutError):
        warnings.receive(0.2)  # the data message was filtered out at the hub
    assert [(m.message_type.value, m.data) for m in (everything.receive(5),
                                                     everything.receive(5))] == \
        [("data", {"i": 1}), ("warning_t2", {"i": 2})]
    assert hub.stats()["received"] == 2


def test_a_registered_type_works_without_configuration(make_hub, make_client) -> None:
    # By one call: a hub and clients in this process know the type.
    alert = register_message_type("alert_t3")
    hub = make_hub()
    listener = make_client(types=[alert])
    sender = make_client(subscribe=False)
    sender.send(SocketMessage("ev", message_type=alert, data={"a": 1}))
    assert listener.receive(5).data == {"a": 1}
    hub.send(SocketMessage("ev", message_type=alert, data={"from": "hub"}))
    assert listener.receive(5).data == {"from": "hub"}


def test_the_setting_is_validated() -> None:
    from sockcli.config.loader import load_settings

    with pytest.raises(ValidationError, match="message_types"):
        load_settings(message_types=["bad name"])
    settings = load_settings(message_types="Warning_T5, notice_t5")
    assert settings.socket.message_types == ("warning_t5", "notice_t5")


def test_sending_an_unknown_type_fails_before_the_wire(make_hub, make_client) -> None:
    make_hub()
    with pytest.raises((ValidationError, MessageError)):
        SocketMessage("ev", message_type="unregistered_t6")


def test_a_message_of_an_unknown_type_is_refused_alone(make_hub) -> None:
    """A deployment's mismatch (the sender knows a type the hub does not) costs that message,
    not the connection: a non-fatal invalid_message with its seq, then the ack."""
    hub = make_hub()
    peer = RawPeer.for_hub(hub)
    base = {"kind": "message", "event_name": "ev", "timestamp_ms": 0,
            "timestamp_iso": "1970-01-01T00:00:00.000+00:00", "data": {}}
    try:
        peer.hello()
        peer.send_raw(peer.codec.pack_map({**base, "message_type": "unknown_t7", "seq": 1}))
        error = peer.next_frame()
        assert isinstance(error, fr.ErrorFrame) and not error.fatal and error.seq == 1
        assert error.code == fr.ErrorCode.INVALID_MESSAGE
        assert "unknown message type 'unknown_t7'" in error.reason
        assert peer.next_frame() == fr.Ack(seq=1)
        peer.send_raw(peer.codec.pack_map({**base, "message_type": "data", "seq": 2}))
        assert peer.next_frame() == fr.Ack(seq=2)  # the connection goes on
        assert hub.stats()["rejected"] == 1
        # Not a type name at all: malformed, and fatal as before.
        peer.send_raw(peer.codec.pack_map({**base, "message_type": "no such", "seq": 3}))
        error = peer.next_frame()
        assert isinstance(error, fr.ErrorFrame) and error.fatal
    finally:
        peer.close()


def test_a_listener_learns_the_types_its_hub_relays(make_hub, make_client) -> None:
    """The hub validated the type: a subscriber whose settings lack it takes it as it comes."""
    wire = {"kind": "message", "event_name": "ev", "timestamp_ms": 0,
            "timestamp_iso": "1970-01-01T00:00:00.000+00:00", "message_type": "relayed_t8",
            "data": {"r": 1}}
    with pytest.raises(fr.UnknownMessageTypeError):
        fr.message_from_map(wire)
    message = fr.message_from_map(wire, learn_types=True)
    assert message.message_type == MessageType("relayed_t8")

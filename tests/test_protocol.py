"""The protocol in memory: a ClientHandshake and a HubHandshake driven against each other.

Each side has its own codec; every frame one side sends is encoded, and its bytes are fed to the
other side's codec one byte at a time, which must give nothing before the last byte and then
exactly that frame. No socket, no thread, no clock: what happens here is the protocol itself,
whichever role drives it (the one-shot sender, the threaded client, the hub).

The same handshakes also run over a second serialization written here (JSON lines), which
proves that they depend on the FrameCodec interface and not on MessagePack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    MessageError,
)
from sockcli.kinds import MessageType
from sockcli.protocol import frames as fr
from sockcli.protocol.acks import AckLedger
from sockcli.protocol.codec import CLOSED, NEED_DATA, FrameCodec, MsgpackCodec, Sentinel
from sockcli.protocol.handshake import ClientHandshake, HubHandshake
from sockcli.types import SocketMessage

pytestmark = pytest.mark.timeout(30)

TOKEN = b"0123456789abcdef0123456789abcdef"
OTHER_TOKEN = b"fedcba9876543210fedcba9876543210"
METHOD = "hmac-sha256"
HEX64 = re.compile(r"[0-9a-f]{64}")
TS = 1700000000000
ISO = "2023-11-14T22:13:20.000+00:00"


def message(n: int) -> SocketMessage:
    return SocketMessage("ev", timestamp_ms=TS + n, timestamp_iso=ISO, data={"n": n})


# -- a second serialization: JSON lines ------------------------------------------------------


class JsonLinesCodec(FrameCodec):
    """One JSON object per line, built from the same frame maps as the binary protocol."""

    def __init__(self, *, max_frame_size: int = 65536) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_event(self) -> fr.Frame | Sentinel:
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > self.max_frame_size:
                raise MessageError("line too long", code="frame_too_large")
            if not self._eof:
                return NEED_DATA
            if self._buffer:
                raise MessageError("stream ended inside a line", code="malformed_frame")
            return CLOSED
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return fr.frame_from_map(json.loads(line))

    def send(self, frame: fr.Frame) -> bytes:
        text = json.dumps(fr.frame_to_map(frame), sort_keys=True, separators=(",", ":"))
        return text.encode() + b"\n"


CodecFactory = Callable[[], FrameCodec]
CODECS: dict[str, CodecFactory] = {"msgpack": MsgpackCodec, "jsonlines": JsonLinesCodec}


# -- the in-memory link ----------------------------------------------------------------------


def deliver(sender: FrameCodec, receiver: FrameCodec, frame: fr.Frame) -> fr.Frame:
    """Encode ``frame`` with ``sender`` and feed the bytes to ``receiver`` one at a time: no
    frame may come out before the last byte, and exactly one after it."""
    data = sender.send(frame)
    assert len(data) > 1
    for i in range(len(data) - 1):
        receiver.receive_data(data[i:i + 1])
        assert receiver.next_event() is NEED_DATA, f"a frame came out after byte {i + 1}"
    receiver.receive_data(data[-1:])
    got = receiver.next_event()
    assert not isinstance(got, Sentinel), f"no frame after the last byte: {got}"
    assert receiver.next_event() is NEED_DATA
    assert receiver.buffered == 0
    return got


class Link:
    """A client and a hub handshake, each with its own codec, and the transcript of frames as
    each side received them."""

    def __init__(self, client: ClientHandshake, hub: HubHandshake,
                 codec: CodecFactory = MsgpackCodec) -> None:
        self.client = client
        self.hub = hub
        self.client_codec = codec()
        self.hub_codec = codec()
        self.transcript: list[tuple[str, fr.Frame]] = []

    def to_hub(self, frame: fr.Frame) -> fr.Frame:
        got = deliver(self.client_codec, self.hub_codec, frame)
        self.transcript.append(("client", got))
        return got

    def to_client(self, frame: fr.Frame) -> fr.Frame:
        got = deliver(self.hub_codec, self.client_codec, frame)
        self.transcript.append(("hub", got))
        return got

    def run(self) -> fr.Welcome:
        """Drive the handshake to the end; exceptions of ClientHandshake.receive propagate
        (the hub's last frame is in the transcript by then)."""
        frame: fr.Frame = self.client.start()
        for _ in range(5):  # hello, (challenge, auth), welcome: never more than two rounds
            reply = self.hub.receive(self.to_hub(frame))
            answer = self.client.receive(self.to_client(reply))
            if self.client.welcome is not None:
                return self.client.welcome
            assert answer is not None, f"the client has nothing to say to {reply!r}"
            frame = answer
        raise AssertionError(f"the handshake does not end: {self.transcript}")

    def kinds(self) -> list[tuple[str, str]]:
        return [(side, type(frame).__name__) for side, frame in self.transcript]


class Ids:
    """The hub's client_id callable, counting its calls."""

    def __init__(self, *ids: str) -> None:
        self._ids: Iterator[str] = iter(ids)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return next(self._ids)


def expected_mac(token: bytes, role: bytes, hub_nonce: str, client_nonce: str) -> str:
    """docs/protocol.md's HMAC, computed here independently of sockcli.protocol.auth."""
    text = b"sockcli-auth-v1\0" + role + b"\0" + bytes.fromhex(hub_nonce) + \
        bytes.fromhex(client_nonce)
    return hmac.new(token, text, hashlib.sha256).hexdigest()


# -- the plain handshake ---------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_plain_handshake(codec: str) -> None:
    ids = Ids("c7", "c8")
    client = ClientHandshake(subscribe=True, types=frozenset({MessageType.ERROR,
                                                              MessageType.CONTROL}), name="bar")
    hub = HubHandshake(event_name="ev", client_id=ids, allow_client_send=False,
                       max_frame_size=4096)
    link = Link(client, hub, CODECS[codec])
    assert not client.done and not hub.done

    welcome = link.run()

    hello = fr.Hello(subscribe=True, types=frozenset({MessageType.ERROR, MessageType.CONTROL}),
                     name="bar")
    expected = fr.Welcome(client_id="c7", event_name="ev", allow_client_send=False,
                          max_frame_size=4096, features=("ack", "stats", "ping", "unicast", "slow",
                                                      "retain", "peek", "tap", "batch"))
    assert link.transcript == [("client", hello), ("hub", expected)]
    assert welcome == expected and client.welcome == expected and hub.welcome == expected
    assert (welcome.client_id, welcome.event_name, welcome.allow_client_send,
            welcome.max_frame_size, welcome.features, welcome.auth, welcome.version) == \
        ("c7", "ev", False, 4096,
         ("ack", "stats", "ping", "unicast", "slow", "retain", "peek", "tap", "batch"), None, 1)
    assert ids.calls == 1
    assert client.done and hub.done
    assert hub.hello == hello
    assert hub.hello is not None
    assert (hub.hello.subscribe, hub.hello.types, hub.hello.name, hub.hello.auth) == \
        (True, frozenset({MessageType.ERROR, MessageType.CONTROL}), "bar", None)


def test_plain_handshake_defaults_and_features() -> None:
    ids = Ids("c1")
    link = Link(ClientHandshake(), HubHandshake(event_name="other", client_id=ids,
                                                features=("ack",)))
    welcome = link.run()
    assert link.kinds() == [("client", "Hello"), ("hub", "Welcome")]
    assert link.transcript[0][1] == fr.Hello(subscribe=False, types=None, name=None, auth=None)
    assert welcome == fr.Welcome(client_id="c1", event_name="other", allow_client_send=True,
                                 max_frame_size=0, features=("ack",))
    assert link.hub.hello == fr.Hello()
    assert ids.calls == 1


# -- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_token_handshake(codec: str) -> None:
    ids = Ids("c1")
    client = ClientHandshake(subscribe=True, name="bar", token=TOKEN)
    hub = HubHandshake(event_name="ev", client_id=ids, token=TOKEN, max_frame_size=65536)
    link = Link(client, hub, CODECS[codec])

    welcome = link.run()

    assert link.kinds() == [("client", "Hello"), ("hub", "Challenge"), ("client", "Auth"),
                            ("hub", "Welcome")]
    hello, challenge, auth, _ = (frame for _, frame in link.transcript)
    assert hello == fr.Hello(subscribe=True, name="bar", auth=(METHOD,))
    assert isinstance(challenge, fr.Challenge) and isinstance(auth, fr.Auth)
    assert challenge.method == METHOD and HEX64.fullmatch(challenge.nonce)
    assert auth.method == METHOD and HEX64.fullmatch(auth.nonce)
    assert auth.nonce != challenge.nonce
    assert auth.mac == expected_mac(TOKEN, b"client", challenge.nonce, auth.nonce)
    proof = {"method": METHOD, "mac": expected_mac(TOKEN, b"hub", challenge.nonce, auth.nonce)}
    assert welcome == fr.Welcome(client_id="c1", event_name="ev", max_frame_size=65536,
                                 features=("ack", "stats", "ping", "unicast", "slow", "retain",
                                           "peek", "tap", "batch", "auth"),
                                 auth=proof)
    assert "auth" in welcome.features
    assert hub.welcome == welcome and client.welcome == welcome
    assert hub.hello == hello
    assert ids.calls == 1  # only once the client has proved the token


def test_client_checks_the_hubs_proof() -> None:
    """A welcome whose proof is not made with the client's token is refused, and the client
    stays unwelcomed."""
    link = Link(ClientHandshake(token=TOKEN), HubHandshake(event_name="ev", client_id=Ids("c1"),
                                                           token=TOKEN))
    challenge = link.to_client(link.hub.receive(link.to_hub(link.client.start())))
    answer = link.client.receive(challenge)
    assert isinstance(answer, fr.Auth)
    welcome = link.hub.receive(link.to_hub(answer))
    assert isinstance(welcome, fr.Welcome) and welcome.auth is not None
    good_mac = welcome.auth["mac"]
    bad_mac = ("0" if good_mac[0] != "0" else "1") + good_mac[1:]
    forged = fr.Welcome(client_id="c1", event_name="ev", features=welcome.features,
                        auth={"method": METHOD, "mac": bad_mac})
    with pytest.raises(AuthenticationError) as info:
        link.client.receive(link.to_client(forged))
    assert str(info.value) == ("the hub's proof does not match this client's token: it does "
                               "not know the token")
    assert info.value.code == "auth_failed"
    assert link.client.welcome is None and not link.client.done

    without = fr.Welcome(client_id="c1", event_name="ev", features=welcome.features)
    with pytest.raises(AuthenticationError, match=r"^the welcome's auth mac must be 32 bytes"):
        link.client.receive(link.to_client(without))
    assert link.client.welcome is None

    assert link.client.receive(link.to_client(welcome)) is None  # the genuine one passes
    assert link.client.welcome == welcome


def test_wrong_token() -> None:
    ids = Ids("c1")
    link = Link(ClientHandshake(token=OTHER_TOKEN, hub_name="ev"),
                HubHandshake(event_name="ev", client_id=ids, token=TOKEN))
    with pytest.raises(AuthenticationError) as info:
        link.run()
    reason = ("authentication failed: wrong token: the client's proof does not match this "
              "hub's token")
    assert link.kinds() == [("client", "Hello"), ("hub", "Challenge"), ("client", "Auth"),
                            ("hub", "ErrorFrame")]
    assert link.transcript[-1][1] == fr.ErrorFrame(code="auth_failed", reason=reason,
                                                   fatal=True)
    assert info.value.code == "auth_failed"
    assert str(info.value) == f"hub 'ev' refused the connection: {reason} (auth_failed)"
    assert link.hub.welcome is None and link.client.welcome is None
    assert ids.calls == 0


def test_client_with_token_refuses_a_hub_without_one() -> None:
    ids = Ids("c1")
    link = Link(ClientHandshake(token=TOKEN), HubHandshake(event_name="ev", client_id=ids))
    with pytest.raises(AuthenticationError) as info:
        link.run()
    assert link.transcript == [
        ("client", fr.Hello(auth=(METHOD,))),
        ("hub", fr.Welcome(client_id="c1", event_name="ev")),
    ]
    assert str(info.value).startswith("the hub did not ask for the token: ")
    assert "did not ask for the token" in str(info.value)
    assert info.value.code == "auth_failed"
    assert link.client.welcome is None and not link.client.done
    assert link.hub.done  # the hub let it in: it is the client that must walk away


def test_client_without_token_meets_a_hub_that_requires_one() -> None:
    ids = Ids("c1")
    link = Link(ClientHandshake(hub_name="ev"),
                HubHandshake(event_name="ev", client_id=ids, token=TOKEN))
    with pytest.raises(AuthenticationError) as info:
        link.run()
    reason = ("hub 'ev' requires a token and this client offered none (it has no token "
              "configured, or it is too old for token authentication); give the client the "
              "hub's token (token_file, SOCKCLI_TOKEN or --token-file)")
    assert link.transcript == [
        ("client", fr.Hello()),
        ("hub", fr.ErrorFrame(code="auth_failed", reason=reason, fatal=True)),
    ]
    assert "requires a token and this client offered none" in str(info.value)
    assert info.value.code == "auth_failed"
    assert link.hub.welcome is None and ids.calls == 0


def test_hello_offering_only_unknown_methods() -> None:
    hub = HubHandshake(event_name="ev", client_id=Ids(), token=TOKEN)
    reply = hub.receive(deliver(MsgpackCodec(), MsgpackCodec(),
                                fr.Hello(auth=("sha1-magic", "plain"))))
    assert isinstance(reply, fr.ErrorFrame)
    assert (reply.code, reply.fatal, reply.seq) == ("auth_failed", True, None)
    assert "requires a token and this client offers none of its methods " \
        "(['sha1-magic', 'plain'])" in reply.reason
    assert hub.welcome is None


# -- refusals before any welcome -------------------------------------------------------------


def test_wrong_version() -> None:
    ids = Ids("c1")
    hub = HubHandshake(event_name="ev", client_id=ids)
    link = Link(ClientHandshake(hub_name="ev"), hub)
    reply = hub.receive(link.to_hub(fr.Hello(version=2, subscribe=True)))
    error = fr.ErrorFrame(code="unsupported_version", fatal=True,
                          reason="protocol version 2 is not supported; this hub speaks "
                                 "version 1")
    assert reply == error
    assert hub.hello is None and hub.welcome is None and ids.calls == 0
    got = link.to_client(reply)
    with pytest.raises(ConnectionError) as info:
        link.client.receive(got)
    assert type(info.value) is ConnectionError  # neither full nor an access refusal
    assert str(info.value) == ("hub 'ev' refused the connection: protocol version 2 is not "
                               "supported; this hub speaks version 1 (unsupported_version)")


@pytest.mark.parametrize("first", [
    fr.Ping(token=3),
    fr.StatsRequest(),
    fr.Auth(method=METHOD, nonce="00" * 32, mac="11" * 32),
    fr.MessageFrame(message=message(1), seq=1),
    fr.UnknownFrame(kind="future", fields={"x": 1}),
], ids=lambda frame: type(frame).__name__)
def test_first_frame_must_be_a_hello(first: fr.Frame) -> None:
    ids = Ids("c1")
    for token in (None, TOKEN):
        hub = HubHandshake(event_name="ev", client_id=ids, token=token)
        got = deliver(MsgpackCodec(), MsgpackCodec(), first)
        assert got == first
        assert hub.receive(got) == fr.ErrorFrame(code="handshake_required", fatal=True,
                                                 reason="the first frame must be a hello")
        assert hub.hello is None and hub.welcome is None
    assert ids.calls == 0


def test_expired_handshake() -> None:
    hub = HubHandshake(event_name="ev", client_id=Ids())
    assert hub.expired() == fr.ErrorFrame(code="handshake_required", fatal=True,
                                          reason="no hello frame in time")


@pytest.mark.parametrize(("answer", "name"), [
    (fr.Ping(token=1), "Ping"),
    (fr.Hello(auth=(METHOD,)), "Hello"),
    (fr.StatsRequest(), "StatsRequest"),
    (fr.MessageFrame(message=message(1), seq=1), "MessageFrame"),
    (fr.UnknownFrame(kind="future", fields={}), "future"),
])
def test_answer_to_the_challenge_must_be_auth(answer: fr.Frame, name: str) -> None:
    ids = Ids("c1")
    hub = HubHandshake(event_name="ev", client_id=ids, token=TOKEN)
    client_codec, hub_codec = MsgpackCodec(), MsgpackCodec()
    challenge = hub.receive(deliver(client_codec, hub_codec, fr.Hello(auth=(METHOD,))))
    assert isinstance(challenge, fr.Challenge)
    reply = hub.receive(deliver(client_codec, hub_codec, answer))
    assert reply == fr.ErrorFrame(
        code="auth_failed", fatal=True,
        reason=f"authentication failed: expected an auth frame after the challenge, not {name}")
    assert hub.welcome is None and ids.calls == 0


def test_auth_with_malformed_nonce_or_method() -> None:
    hub = HubHandshake(event_name="ev", client_id=Ids("c1"), token=TOKEN)
    assert isinstance(hub.receive(fr.Hello(auth=(METHOD,))), fr.Challenge)
    reply = hub.receive(fr.Auth(method=METHOD, nonce="zz", mac="00" * 32))
    assert reply == fr.ErrorFrame(code="auth_failed", fatal=True,
                                  reason="authentication failed: the auth frame's nonce must "
                                         "be 32 bytes as 64 hex digits")
    hub = HubHandshake(event_name="ev", client_id=Ids("c1"), token=TOKEN)
    assert isinstance(hub.receive(fr.Hello(auth=(METHOD,))), fr.Challenge)
    reply = hub.receive(fr.Auth(method="md5", nonce="00" * 32, mac="00" * 32))
    assert reply == fr.ErrorFrame(code="auth_failed", fatal=True,
                                  reason="authentication failed: the auth frame's method must "
                                         "be 'hmac-sha256'")


def test_max_connections_refusal() -> None:
    codec_hub, codec_client = MsgpackCodec(), MsgpackCodec()
    client = ClientHandshake(hub_name="ev")
    reason = "hub 'ev' already holds its maximum of 2 connections"
    got = deliver(codec_hub, codec_client,
                  fr.ErrorFrame(code="max_connections", fatal=True, reason=reason))
    codec_client.receive_data(b"")  # the hub closes after its refusal
    assert codec_client.next_event() is CLOSED
    with pytest.raises(MaxConnectionsError) as info:
        client.receive(got)
    assert type(info.value) is MaxConnectionsError
    assert isinstance(info.value, ConnectionError)
    assert not isinstance(info.value, AuthenticationError)
    assert str(info.value) == reason
    assert client.welcome is None


@pytest.mark.parametrize("code", ["peer_not_allowed", "tls_required", "auth_failed"])
def test_access_refusals(code: str) -> None:
    for hub_name, who in (("ev", "hub 'ev'"), (None, "the hub")):
        client = ClientHandshake(hub_name=hub_name)
        got = deliver(MsgpackCodec(), MsgpackCodec(),
                      fr.ErrorFrame(code=code, fatal=True, reason="not you"))
        with pytest.raises(AuthenticationError) as info:
            client.receive(got)
        assert info.value.code == code
        assert str(info.value) == f"{who} refused the connection: not you ({code})"
        assert client.welcome is None


def test_other_refusals_are_connection_errors() -> None:
    client = ClientHandshake()
    with pytest.raises(ConnectionError) as info:
        client.receive(fr.ErrorFrame(code="shutting_down", fatal=True, reason="bye"))
    assert type(info.value) is ConnectionError
    assert str(info.value) == "the hub refused the connection: bye (shutting_down)"


def test_client_ignores_what_it_does_not_need_before_the_welcome() -> None:
    client = ClientHandshake()
    assert client.receive(fr.Ping(token=5)) is None
    assert client.receive(fr.UnknownFrame(kind="future", fields={"a": 1})) is None
    assert client.receive(fr.Challenge(method=METHOD, nonce="00" * 32)) is None  # no token
    assert client.welcome is None
    welcome = fr.Welcome(client_id="c1", event_name="ev")
    assert client.receive(welcome) is None
    assert client.welcome == welcome


# -- messages and acknowledgements after the handshake ---------------------------------------


def send_message(link: Link, ledger: AckLedger, n: int, to: str | None = None) -> fr.Frame:
    """What the clients do: number the message, encode it, then commit the number."""
    seq = ledger.next_seq
    frame = fr.MessageFrame(message=message(n), seq=seq, to=to)
    got = link.to_hub(frame)
    assert ledger.sent_one() == seq
    return got


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_messages_acks_refusals_and_losses(codec: str) -> None:
    link = Link(ClientHandshake(name="script"),
                HubHandshake(event_name="ev", client_id=Ids("c1")), CODECS[codec])
    link.run()
    ledger = AckLedger()
    assert (ledger.next_seq, ledger.pending) == (1, 0)

    received = [send_message(link, ledger, n, to="bar" if n == 3 else None)
                for n in range(1, 6)]
    assert received == [fr.MessageFrame(message=message(n), seq=n,
                                        to="bar" if n == 3 else None) for n in range(1, 6)]
    assert [f.seq for f in received if isinstance(f, fr.MessageFrame)] == [1, 2, 3, 4, 5]
    assert (ledger.sent, ledger.next_seq, ledger.pending) == (5, 6, 5)
    assert not any(ledger.is_acked(s) or ledger.is_lost(s) for s in range(1, 6))

    # The hub handles 1 and 2, refuses 3 (and counts it handled), then the connection ends.
    refusal = fr.ErrorFrame(code="unknown_recipient", seq=3,
                            reason="no listener named 'bar' is connected to hub 'ev'")
    for frame in (fr.Ack(seq=2), refusal, fr.Ack(seq=3)):
        assert ledger.receive(link.to_client(frame)) is True
    others: list[fr.Frame] = [fr.Pong(token=1), fr.ErrorFrame(code="unknown_kind", reason="x"),
                              fr.Stats(values={"clients": 1})]
    for other in others:
        assert ledger.receive(link.to_client(other)) is False  # none of its business
    assert [ledger.is_acked(s) for s in range(1, 6)] == [True, True, True, False, False]
    assert ledger.pending == 2

    assert ledger.pop_refusal(2) is None  # nothing refused up to 2
    error = ledger.pop_refusal(5)
    assert isinstance(error, MessageError)
    assert (error.code, str(error)) == ("unknown_recipient",
                                        "no listener named 'bar' is connected to hub 'ev'")
    assert ledger.pop_refusal(5) is None  # reported once
    assert ledger.pop_refusal(10**6) is None

    ledger.lose_pending()
    assert [ledger.is_lost(s) for s in range(1, 7)] == [False, False, False, True, True, False]
    assert [ledger.is_acked(s) for s in range(1, 6)] == [True, True, True, False, False]

    assert ledger.pending == 2


def test_an_ack_on_a_later_connection_does_not_settle_lost_messages() -> None:
    """Messages 4 and 5 went out on a connection that ended before the hub acknowledged them;
    the client reconnects and sends 6, which the new connection acknowledges. The hub of the
    new connection never saw 4 and 5, so they must stay lost: if they counted as acknowledged,
    a caller waiting on them (or ``flush()`` after the reconnection) would be told they were
    delivered (docs/RELIABILITY.md: a lost connection is "never silently counted as
    delivered")."""
    ledger = AckLedger()
    for _ in range(5):
        ledger.sent_one()
    ledger.receive(fr.Ack(seq=3))
    ledger.lose_pending()  # the first connection ends: 4 and 5 are lost
    assert [ledger.is_lost(s) for s in range(1, 6)] == [False, False, False, True, True]
    assert ledger.sent_one() == 6  # written on the new connection
    assert ledger.receive(fr.Ack(seq=6)) is True  # the new connection's ack
    assert ledger.is_acked(6) and not ledger.is_lost(6)
    assert [(ledger.is_acked(s), ledger.is_lost(s)) for s in (4, 5)] == [(False, True)] * 2


def test_refusals_come_out_lowest_first_and_only_up_to_the_limit() -> None:
    ledger = AckLedger()
    for _ in range(6):
        ledger.sent_one()
    for seq, code in ((5, "send_not_allowed"), (2, "invalid_message"), (4, "unknown_recipient")):
        assert ledger.receive(fr.ErrorFrame(code=code, reason=f"r{seq}", seq=seq)) is True
    assert ledger.pop_refusal(1) is None
    popped = []
    while (error := ledger.pop_refusal(4)) is not None:
        popped.append((error.code, str(error)))
    assert popped == [("invalid_message", "r2"), ("unknown_recipient", "r4")]
    last = ledger.pop_refusal(6)
    assert last is not None and (last.code, str(last)) == ("send_not_allowed", "r5")
    assert ledger.pop_refusal(6) is None


def test_lose_pending_with_nothing_pending_loses_nothing() -> None:
    ledger = AckLedger()
    ledger.lose_pending()
    assert not ledger.is_lost(1)
    for _ in range(3):
        ledger.sent_one()
    ledger.receive(fr.Ack(seq=3))
    ledger.lose_pending()
    assert [ledger.is_lost(s) for s in range(1, 5)] == [False] * 4
    ledger.sent_one()
    ledger.lose_pending()
    assert [ledger.is_lost(s) for s in range(1, 6)] == [False, False, False, True, False]
    ledger.receive(fr.Ack(seq=2))  # an old ack does not move the mark back
    assert [ledger.is_acked(s) for s in range(1, 5)] == [True, True, True, False]


# -- the codec is an interface ----------------------------------------------------------------


def test_json_lines_wire_is_json() -> None:
    """The JSON link really speaks JSON: every write is one line holding one object."""
    client_codec = JsonLinesCodec()
    writes = [client_codec.send(fr.Hello(subscribe=True, name="bar", auth=(METHOD,))),
              client_codec.send(fr.Auth(method=METHOD, nonce="00" * 32, mac="11" * 32))]
    for data in writes:
        assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(writes[0]) == {"kind": "hello", "version": 1, "subscribe": True,
                                     "name": "bar", "auth": [METHOD]}
    assert json.loads(writes[1]) == {"kind": "auth", "method": METHOD, "nonce": "00" * 32,
                                     "mac": "11" * 32}


def test_the_handshake_module_needs_no_msgpack() -> None:
    code = ("import sys\n"
            "from sockcli.protocol.handshake import ClientHandshake, HubHandshake\n"
            "import sockcli.protocol.acks\n"
            "print('msgpack' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"

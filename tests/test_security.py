"""Who may connect (docs/SECURITY.md): Unix peer credentials, the shared token's HMAC
handshake, TLS, the loopback default, and no code execution from data.

Every refusal is checked by its exact error code, and every test that refuses someone checks
that the clients already connected keep working.
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import socket
import threading
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sockcli import (
    AuthenticationError,
    SocketMessage,
    TcpSocketClient,
    TcpSocketServer,
    UnixSocketClient,
    UnixSocketServer,
    ValidationError,
    create_server,
)
from sockcli.client.oneshot import Sender
from sockcli.hub.base import ClientInfo
from sockcli.hub.tcp import is_loopback
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from tests.clitools import error_line, free_port, read_json
from tests.helpers import (
    OtherUserPeer,
    RawPeer,
    child_line,
    hub_secret,
    make_certs,
    other_user,
    spawn_as,
    wait_until,
)

REPO = Path(__file__).resolve().parents[1]
TOKEN = b"a shared token for the tests, 40 bytes!!"
OTHER_TOKEN = b"not the token the hub has, 32 bytes"


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture
def clients() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for client in made:
        client.disconnect()


@pytest.fixture
def tcp_hub(hubs: list[Any], sock_dir: Path) -> Callable[..., TcpSocketServer]:
    def make(**kwargs: Any) -> TcpSocketServer:
        hub = TcpSocketServer("ev", socket_dir=sock_dir, timezone="UTC", **kwargs)
        hubs.append(hub)
        hub.start(blocking=False)
        return hub
    return make


@pytest.fixture
def tcp_client(clients: list[Any], sock_dir: Path) -> Callable[..., TcpSocketClient]:
    def make(hub: TcpSocketServer, *, connect: bool = True, **kwargs: Any) -> TcpSocketClient:
        host, _, port = hub.address.rpartition(":")
        kwargs.setdefault("auto_reconnect", False)
        # Told where, a client needs the hub's token: unless the test says, the secret of a
        # hub that made one (tests/test_tcp_secret.py), as a local client finds it.
        kwargs.setdefault("token", hub_secret(hub))
        client = TcpSocketClient("ev", host=host, port=int(port), socket_dir=sock_dir,
                                 timezone="UTC", **kwargs)
        clients.append(client)
        if connect:
            client.connect(timeout=5)
        return client
    return make


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a hub certificate it signed (for 127.0.0.1, ::1 and localhost), and an unrelated
    CA, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command (apt-get install openssl)")
    made = make_certs(tmp_path_factory.mktemp("certs"), "hub", ("ca", "other-ca"))
    return {"ca": made["ca"], "other_ca": made["other-ca"], "cert": made["cert"],
            "key": made["key"]}


def _tls(certs: dict[str, Path]) -> dict[str, Any]:
    return {"tls_cert": certs["cert"], "tls_key": certs["key"]}


def _roundtrip(sender: Any, subscriber: Any, n: int = 1) -> None:
    """``sender`` sends, ``subscriber`` receives: the hub still relays between them."""
    sender.send(SocketMessage("ev", data={"n": n}))
    assert subscriber.receive(timeout=5).data == {"n": n}


# -- Unix: peer credentials -------------------------------------------------------------------


def _open_unix_hub(hubs: list[Any], sock_dir: Path, **kwargs: Any) -> UnixSocketServer:
    """A Unix hub whose socket another user can reach: the directory traversable (0711) and
    the socket 0666, so that only the peer-credential check stands in the way."""
    hub = UnixSocketServer("ev", socket_dir=sock_dir, timezone="UTC", socket_permissions="0666",
                           **kwargs)
    hubs.append(hub)
    hub.start(blocking=False)
    os.chmod(sock_dir, 0o711)
    return hub


@pytest.mark.timeout(30)
def test_unix_refuses_another_user_and_keeps_serving_the_others(hubs, clients, children,
                                                               sock_dir: Path) -> None:
    nobody = other_user()
    hub = _open_unix_hub(hubs, sock_dir)
    listener = UnixSocketClient("ev", socket_dir=sock_dir, timezone="UTC")
    sender = UnixSocketClient("ev", socket_dir=sock_dir, timezone="UTC", subscribe=False)
    clients += [listener, sender]
    listener.connect(timeout=5)
    sender.connect(timeout=5)
    peer = OtherUserPeer(nobody, hub.socket_path, fr.Hello(subscribe=True, name="nob"), children)
    assert peer.ids[1:] == (nobody.pw_uid, nobody.pw_gid)
    error = peer.next_map()
    assert isinstance(error, dict)
    assert (error["kind"], error["code"], error["fatal"]) == ("error", "peer_not_allowed", True)
    assert error["reason"] == (
        f"uid {nobody.pw_uid} (gid {nobody.pw_gid}) may not connect to hub 'ev': it admits uid "
        f"{os.geteuid()}, root, and the uids and gids of [unix] allowed_uids and allowed_gids")
    assert peer.next_map() is CLOSED
    assert peer.proc.wait(10) == 0
    assert hub.stats()["denied"] == 1
    assert {c.uid for c in hub.get_connected_clients()} == {os.geteuid()}
    _roundtrip(sender, listener)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("by", ["uid", "gid"])
def test_unix_admits_the_allowed_uids_and_gids(hubs, children, sock_dir: Path, by: str) -> None:
    nobody = other_user()
    allowed = {"allowed_uids": [nobody.pw_uid]} if by == "uid" else \
        {"allowed_gids": [12345, nobody.pw_gid]}
    hub = _open_unix_hub(hubs, sock_dir, **allowed)
    peer = OtherUserPeer(nobody, hub.socket_path, fr.Hello(subscribe=True, name="nob"), children)
    welcome = peer.next_map()
    assert isinstance(welcome, dict) and welcome["kind"] == "welcome"
    infos = wait_until(hub.get_connected_clients, what="nobody's welcome")
    assert [(i.name, i.pid, i.uid, i.gid) for i in infos] == [
        ("nob", peer.ids[0], nobody.pw_uid, nobody.pw_gid)]
    assert hub.stats()["denied"] == 0
    assert peer.close() == 0
    wait_until(lambda: hub.get_connected_clients() == [], what="nobody to leave")


def test_the_other_user_cannot_read_what_we_keep_private(children, tmp_path: Path) -> None:
    """What the tests above rely on: their child really is another user, one who cannot read
    a 0700 directory such as a Debian home or `mktemp -d` (where a clone of the checkout, and
    its venv, may be); it needs nothing from there (tests/helpers.py, spawn_as)."""
    nobody = other_user()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    probe = spawn_as(nobody, """
        import os, sys
        print(os.getuid(), os.access(sys.argv[1], os.R_OK), "sockcli" in sys.modules, flush=True)
    """, str(private))
    children.append(probe)
    assert child_line(probe) == f"{nobody.pw_uid} False False"
    assert probe.wait(10) == 0


def _info(uid: int | None, gid: int | None) -> ClientInfo:
    return ClientInfo(client_id="", name=None, subscribed=False, types=None, connected_ms=0,
                      peer="pid 1", pid=1, uid=uid, gid=gid)


def test_unix_peer_rule(sock_dir: Path) -> None:
    """Own uid and root always; allowed_uids; allowed_gids (the primary gid); else refused,
    and refused when the credentials are unknown (fail closed)."""
    hub = UnixSocketServer("ev", socket_dir=sock_dir, allowed_uids=[1001], allowed_gids=[2002])
    me = os.geteuid()
    assert hub._peer_refusal(_info(me, 0)) is None
    assert hub._peer_refusal(_info(0, 0)) is None
    assert hub._peer_refusal(_info(1001, 5)) is None
    assert hub._peer_refusal(_info(4242, 2002)) is None
    assert hub._peer_refusal(_info(4242, 4242)) is not None
    assert hub._peer_refusal(_info(None, None)) == \
        "the hub cannot read this peer's credentials (SO_PEERCRED)"
    default = UnixSocketServer("ev", socket_dir=sock_dir)
    assert default._peer_refusal(_info(1001, 2002)) is not None


@pytest.mark.parametrize("value, expected", [
    ([], ()), ([1000, 1001], (1000, 1001)), (1000, (1000,)), ("1000, 1001", (1000, 1001)),
    ("", ()),
])
def test_allowed_ids_setting(sock_dir: Path, value: Any, expected: tuple[int, ...]) -> None:
    hub = UnixSocketServer("ev", socket_dir=sock_dir, allowed_uids=value, allowed_gids=value)
    assert tuple(hub.unix_config.allowed_uids) == tuple(hub.unix_config.allowed_gids) == expected


@pytest.mark.parametrize("value", [[True], ["nobody"], "nobody", [-1], [2**32]])
def test_allowed_ids_setting_refuses_what_is_not_an_id(sock_dir: Path, value: Any) -> None:
    with pytest.raises(ValidationError, match=r"invalid setting \[unix\] allowed_uids"):
        UnixSocketServer("ev", socket_dir=sock_dir, allowed_uids=value)


def test_allowed_ids_from_the_environment(sock_dir: Path, monkeypatch) -> None:
    from sockcli.config.loader import load_settings

    monkeypatch.setenv("SOCKCLI_UNIX__ALLOWED_UIDS", "[1000, 1001]")
    monkeypatch.setenv("SOCKCLI_UNIX__ALLOWED_GIDS", "100")
    settings = load_settings()
    assert tuple(settings.unix.allowed_uids) == (1000, 1001)
    assert tuple(settings.unix.allowed_gids) == (100,)


# -- TCP: the shared token ----------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_token_hub_and_clients_exchange_messages(tcp_hub, tcp_client) -> None:
    hub = tcp_hub(token=TOKEN)
    listener = tcp_client(hub, token=TOKEN)
    sender = tcp_client(hub, token=TOKEN, subscribe=False)
    assert listener.welcome is not None and "auth" in listener.welcome.features
    for n in range(3):
        _roundtrip(sender, listener, n)
    assert hub.stats()["denied"] == 0


@pytest.mark.timeout(30)
def test_wrong_token_is_refused_and_others_keep_working(tcp_hub, tcp_client) -> None:
    hub = tcp_hub(token=TOKEN)
    listener = tcp_client(hub, token=TOKEN)
    sender = tcp_client(hub, token=TOKEN, subscribe=False)
    with pytest.raises(AuthenticationError) as info:
        tcp_client(hub, token=OTHER_TOKEN)
    assert info.value.code == "auth_failed"
    assert str(info.value) == (
        "hub 'ev' refused the connection: authentication failed: wrong token: the client's "
        "proof does not match this hub's token (auth_failed)")
    with pytest.raises(AuthenticationError) as info:
        tcp_client(hub)  # no token at all
    assert info.value.code == "auth_failed"
    assert "requires a token and this client offered none" in str(info.value)
    assert hub.stats()["denied"] == 2
    assert len(hub.get_connected_clients()) == 2
    _roundtrip(sender, listener)


@pytest.mark.timeout(30)
def test_an_old_client_without_auth_gets_a_clear_fatal_error(tcp_hub, tcp_client) -> None:
    hub = tcp_hub(token=TOKEN)
    listener = tcp_client(hub, token=TOKEN)
    peer = RawPeer.for_hub(hub)
    try:
        peer.send_frame(fr.Hello(subscribe=True))  # what a version 1 client without auth says
        error = peer.next_frame()
        assert isinstance(error, fr.ErrorFrame)
        assert (error.code, error.fatal) == ("auth_failed", True)
        assert error.reason.startswith("hub 'ev' requires a token and this client offered none")
        assert peer.next_frame() is None  # then the hub closes
    finally:
        peer.close()
    sender = tcp_client(hub, token=TOKEN, subscribe=False)
    _roundtrip(sender, listener)


@pytest.mark.timeout(30)
def test_only_the_answer_may_follow_the_challenge(tcp_hub) -> None:
    hub = tcp_hub(token=TOKEN)
    peer = RawPeer.for_hub(hub)
    try:
        message = fr.MessageFrame(message=SocketMessage("ev", data={}), seq=1)
        # Pipelined after the hello: allowed without a token, not with one.
        peer.send_raw(peer.codec.send(fr.Hello(auth=("hmac-sha256",))) +
                      peer.codec.send(message))
        challenge = peer.next_frame()
        assert isinstance(challenge, fr.Challenge)
        assert challenge.method == "hmac-sha256"
        assert len(bytes.fromhex(challenge.nonce)) == 32
        error = peer.next_frame()
        assert isinstance(error, fr.ErrorFrame)
        assert (error.code, error.fatal) == ("auth_failed", True)
        assert "expected an auth frame after the challenge, not MessageFrame" in error.reason
        assert peer.next_frame() is None
    finally:
        peer.close()
    assert hub.stats()["received"] == 0


@pytest.mark.timeout(30)
def test_each_connection_gets_its_own_challenge(tcp_hub) -> None:
    hub = tcp_hub(token=TOKEN)
    nonces = set()
    for _ in range(3):
        peer = RawPeer.for_hub(hub)
        try:
            peer.send_frame(fr.Hello(auth=("hmac-sha256",)))
            challenge = peer.next_frame()
            assert isinstance(challenge, fr.Challenge)
            nonces.add(challenge.nonce)
        finally:
            peer.close()
    assert len(nonces) == 3  # a recorded answer is worth nothing on the next connection


@pytest.mark.timeout(30)
def test_a_client_with_a_token_refuses_a_hub_without_one(tcp_hub, tcp_client) -> None:
    hub = tcp_hub(insecure=True)  # the only hub without a token (no per-hub secret either)
    with pytest.raises(AuthenticationError, match="the hub did not ask for the token") as info:
        tcp_client(hub, token=TOKEN)
    assert info.value.code == "auth_failed"


class _FakeHub:
    """A TCP server that plays the hub's part of the handshake as told, and records every byte
    the client sent."""

    def __init__(self, proof: Callable[[dict[str, Any], bytes], Any]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.proof = proof
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from sockcli.protocol import auth

        conn, _ = self.listener.accept()
        conn.settimeout(10)
        codec = Codec()

        def next_map() -> Any:
            while True:
                m = codec.next_map()
                if m is not NEED_DATA:
                    return m
                data = conn.recv(65536)
                self.received += data
                codec.receive_data(data)

        with conn:
            hello = next_map()
            assert hello["auth"] == ["hmac-sha256"]
            nonce = auth.new_nonce()
            conn.sendall(codec.pack_map({"kind": "challenge", "method": "hmac-sha256",
                                         "nonce": nonce.hex()}))
            answer = next_map()
            welcome = fr.frame_to_map(fr.Welcome(client_id="c1", event_name="ev"))
            proof = self.proof(answer, nonce)
            if proof is not None:
                welcome["auth"] = proof
            conn.sendall(codec.pack_map(welcome))
            while next_map() is not CLOSED:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["no proof", "wrong proof", "right proof"])
def test_the_client_checks_the_hubs_proof(sock_dir: Path, case: str) -> None:
    from sockcli.protocol import auth

    def proof(answer: dict[str, Any], nonce: bytes) -> Any:
        if case == "no proof":
            return None
        token = TOKEN if case == "right proof" else OTHER_TOKEN
        return {"method": "hmac-sha256",
                "mac": auth.hub_mac(token, nonce, bytes.fromhex(answer["nonce"])).hex()}

    fake = _FakeHub(proof)
    client = TcpSocketClient("ev", host="127.0.0.1", port=fake.port, socket_dir=sock_dir,
                             token=TOKEN, auto_reconnect=False)
    try:
        if case == "right proof":
            client.connect(timeout=5)
            assert client.client_id == "c1"
        else:
            with pytest.raises(AuthenticationError) as info:
                client.connect(timeout=5)
            assert info.value.code == "auth_failed"
            assert ("does not know the token" if case == "wrong proof" else "mac") in \
                str(info.value)
    finally:
        client.disconnect()
        fake.close()
    assert fake.received  # the client spoke...
    assert TOKEN not in fake.received  # ...but the token never crossed the wire


@pytest.mark.timeout(30)
def test_the_one_shot_sender_authenticates(tcp_hub, tcp_client, sock_dir: Path) -> None:
    hub = tcp_hub(token=TOKEN)
    listener = tcp_client(hub, token=TOKEN)
    host, _, port = hub.address.rpartition(":")
    with Sender.open(None, socket_dir=str(sock_dir), connect=(host, int(port)),
                     token=TOKEN) as sender:
        sender.send({"via": "sender"})
        sender.flush(5)
    assert listener.receive(timeout=5).data == {"via": "sender"}
    for token in (OTHER_TOKEN, None):
        with pytest.raises(AuthenticationError) as info:
            Sender.open(None, socket_dir=str(sock_dir), connect=(host, int(port)), token=token)
        assert info.value.code == "auth_failed"
    assert hub.stats()["denied"] == 2


@pytest.mark.timeout(30)
def test_a_unix_hub_and_its_clients_ignore_the_token(hubs, clients, sock_dir: Path,
                                                     monkeypatch) -> None:
    """The token is for TCP: SOCKCLI_TOKEN set for the whole session changes nothing on Unix."""
    monkeypatch.setenv("SOCKCLI_TOKEN", TOKEN.decode())
    hub = create_server("unix", "ev", socket_dir=sock_dir, timezone="UTC")
    hubs.append(hub)
    hub.start(blocking=False)
    listener = UnixSocketClient("ev", socket_dir=sock_dir)
    clients.append(listener)
    listener.connect(timeout=5)
    with Sender.open("ev", socket_dir=str(sock_dir), token=TOKEN) as sender:
        sender.send({"n": 1})
        sender.flush(5)
    assert listener.receive(timeout=5).data == {"n": 1}


# -- TCP: loopback unless told ------------------------------------------------------------------

@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LocalHost", True), ("0.0.0.0", False), ("::", False),
    ("192.168.1.10", False), ("example.com", False), ("localhost.example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_open_address_needs_a_token_or_insecure(sock_dir: Path, monkeypatch) -> None:
    with pytest.raises(ValidationError) as info:
        TcpSocketServer("ev", socket_dir=sock_dir, host="0.0.0.0")
    assert str(info.value) == (
        "refusing to listen on 0.0.0.0 without a token: anyone who can reach it could send "
        "and listen. Give the hub a token (token_file, SOCKCLI_TOKEN, or 'sockcli serve "
        "--token-file FILE'), or accept the risk with insecure = true ('sockcli serve "
        "--insecure')")
    TcpSocketServer("ev", socket_dir=sock_dir, host="0.0.0.0", insecure=True)
    TcpSocketServer("ev", socket_dir=sock_dir, host="0.0.0.0", token=TOKEN)
    TcpSocketServer("ev", socket_dir=sock_dir, host="localhost")
    monkeypatch.setenv("SOCKCLI_TOKEN", TOKEN.decode())
    TcpSocketServer("ev", socket_dir=sock_dir, host="::")


# -- TLS ----------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_tls_hub_and_clients_exchange_messages(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub(**_tls(certs))
    listener = tcp_client(hub, tls_ca=certs["ca"])
    sender = tcp_client(hub, tls_ca=certs["ca"], subscribe=False)
    _roundtrip(sender, listener)
    # Many large frames, sent without waiting: records split frames and frames share records,
    # so the reads rely on draining what OpenSSL holds (pending()).
    pad = "x" * 40_000
    for n in range(150):
        sender.send(SocketMessage("ev", data={"n": n, "pad": pad}), wait=False)
    sender.flush(timeout=20)
    got = [listener.receive(timeout=10).data["n"] for _ in range(150)]
    assert got == list(range(150))
    hub.send(SocketMessage("ev", data={"from": "hub"}))
    assert listener.receive(timeout=5).data == {"from": "hub"}
    assert listener.stats(timeout=5)["clients"] == 2


@pytest.mark.timeout(60)
def test_a_tls_client_reads_and_writes_at_once(certs, tcp_hub, tcp_client) -> None:
    """OpenSSL forbids concurrent calls on one connection; the client's reader thread reads
    while this thread writes, so every OpenSSL call is serialised (ClientTlsSocket)."""
    hub = tcp_hub(**_tls(certs))
    both = tcp_client(hub, tls_ca=certs["ca"], name="both")
    other = tcp_client(hub, tls_ca=certs["ca"])
    pad = "y" * 3000
    feeder_error: list[BaseException] = []

    def feed() -> None:
        try:
            for n in range(400):
                other.send(SocketMessage("ev", data={"to_both": n, "pad": pad}), to="both",
                           wait=False)
            other.flush(timeout=20)
        except BaseException as exc:
            feeder_error.append(exc)

    feeder = threading.Thread(target=feed)
    feeder.start()
    for n in range(400):  # meanwhile "both" writes while its reader thread reads
        both.send(SocketMessage("ev", data={"from_both": n, "pad": pad}), wait=False)
    both.flush(timeout=20)
    feeder.join(30)
    assert not feeder_error
    got = [both.receive(timeout=10).data["to_both"] for _ in range(400)]
    assert got == list(range(400))
    assert [other.receive(timeout=10).data["from_both"] for _ in range(400)] == list(range(400))


@pytest.mark.timeout(60)
def test_tls_and_token_together(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub(token=TOKEN, **_tls(certs))
    listener = tcp_client(hub, tls_ca=certs["ca"], token=TOKEN)
    sender = tcp_client(hub, tls_ca=certs["ca"], token=TOKEN, subscribe=False)
    _roundtrip(sender, listener)
    with pytest.raises(AuthenticationError) as info:
        tcp_client(hub, tls_ca=certs["ca"], token=OTHER_TOKEN)
    assert info.value.code == "auth_failed"
    _roundtrip(sender, listener, 2)


@pytest.mark.timeout(60)
def test_a_plain_client_against_a_tls_hub_fails_cleanly(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub(**_tls(certs))
    listener = tcp_client(hub, tls_ca=certs["ca"])
    with pytest.raises(AuthenticationError) as info:
        tcp_client(hub)
    assert info.value.code == "tls_required"
    assert "hub 'ev' speaks TLS only" in str(info.value)
    peer = RawPeer.for_hub(hub)  # any plain client: it can read why
    try:
        peer.send_frame(fr.Hello())
        error = peer.next_frame()
        assert isinstance(error, fr.ErrorFrame)
        assert (error.code, error.fatal) == ("tls_required", True)
        assert peer.next_frame() is None
    finally:
        peer.close()
    assert hub.stats()["denied"] == 2
    sender = tcp_client(hub, tls_ca=certs["ca"], subscribe=False)
    _roundtrip(sender, listener)


@pytest.mark.timeout(60)
def test_a_full_tls_hub_says_so_over_tls(certs, tcp_hub, tcp_client) -> None:
    """max_connections is refused on accept; a TLS client could not read a plain frame, so the
    hub sends it once the TLS handshake is done."""
    from sockcli import MaxConnectionsError

    hub = tcp_hub(max_connections=1, **_tls(certs))
    first = tcp_client(hub, tls_ca=certs["ca"])
    with pytest.raises(MaxConnectionsError, match="maximum of 1 connections"):
        tcp_client(hub, tls_ca=certs["ca"], subscribe=False)
    assert hub.stats()["refused_connections"] == 1
    hub.send(SocketMessage("ev", data={"still": "here"}))
    assert first.receive(timeout=5).data == {"still": "here"}


@pytest.mark.timeout(60)
def test_a_hub_certificate_from_another_ca_is_refused(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub(**_tls(certs))
    listener = tcp_client(hub, tls_ca=certs["ca"])
    with pytest.raises(AuthenticationError) as info:
        tcp_client(hub, tls_ca=certs["other_ca"])
    assert info.value.code == "tls_failed"
    assert str(info.value).startswith("TLS: the hub's certificate is not trusted: ")
    wait_until(lambda: hub.stats()["denied"] == 1, what="the hub to count the failed handshake")
    sender = tcp_client(hub, tls_ca=certs["ca"], subscribe=False)
    _roundtrip(sender, listener)


@pytest.mark.timeout(60)
def test_a_certificate_must_name_the_address(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub(**_tls(certs))
    client = tcp_client(hub, tls_ca=certs["ca"], connect=False)
    client.tls_server_name = "not-the-hub.example"
    client._open_socket = _keeping_name(client)  # type: ignore[method-assign]
    with pytest.raises(AuthenticationError, match=r"not-the-hub\.example") as info:
        client.connect(timeout=5)
    assert info.value.code == "tls_failed"


def _keeping_name(client: TcpSocketClient) -> Callable[[float], socket.socket]:
    from sockcli.client.connect import open_tcp_socket

    def open_socket(timeout: float) -> socket.socket:
        assert client.port is not None
        return open_tcp_socket("127.0.0.1", client.port, timeout, "ev")
    return open_socket


@pytest.mark.timeout(60)
def test_a_tls_client_against_a_plain_hub_fails_cleanly(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub()
    listener = tcp_client(hub)
    with pytest.raises(AuthenticationError, match="does the hub serve TLS") as info:
        tcp_client(hub, tls_ca=certs["ca"])
    assert info.value.code == "tls_failed"
    sender = tcp_client(hub, subscribe=False)
    _roundtrip(sender, listener)


@pytest.mark.timeout(60)
def test_stalled_tls_handshakes_hold_up_nobody(certs, tcp_hub, tcp_client) -> None:
    hub = tcp_hub(handshake_timeout=1.0, **_tls(certs))
    host, _, port = hub.address.rpartition(":")
    silent = socket.create_connection((host, int(port)), timeout=10)
    half = socket.create_connection((host, int(port)), timeout=10)
    half.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and nothing more
    try:
        listener = tcp_client(hub, tls_ca=certs["ca"])
        sender = tcp_client(hub, tls_ca=certs["ca"], subscribe=False)
        _roundtrip(sender, listener)
        # Both are dropped once handshake_timeout has passed; the silent one, still plain, is
        # told why in a plain frame.
        codec = Codec()
        while (event := codec.next_event()) is NEED_DATA:
            codec.receive_data(silent.recv(65536))
        assert isinstance(event, fr.ErrorFrame) and event.code == "handshake_required"
        assert _read_to_end(half) is not None
        _roundtrip(sender, listener, 2)
    finally:
        silent.close()
        half.close()


def _read_to_end(sock: socket.socket) -> bytes | None:
    """Everything until the peer closes (b"" included), or None if it never does."""
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return bytes(data)


def test_tls_files_are_checked_when_the_hub_or_client_is_made(certs, sock_dir: Path,
                                                              tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    loose.write_bytes(certs["key"].read_bytes())
    os.chmod(loose, 0o644)
    with pytest.raises(ValidationError, match=f"TLS key file {loose} is readable by every "
                                              rf"user \(mode 0644\): run 'chmod 600 {loose}'"):
        TcpSocketServer("ev", socket_dir=sock_dir, tls_cert=certs["cert"], tls_key=loose)
    with pytest.raises(ValidationError, match="cannot read TLS"):
        TcpSocketServer("ev", socket_dir=sock_dir, tls_cert=tmp_path / "absent.pem",
                        tls_key=certs["key"])
    with pytest.raises(ValidationError, match="cannot load TLS certificate"):
        TcpSocketServer("ev", socket_dir=sock_dir, tls_cert=certs["ca"], tls_key=certs["key"])
    with pytest.raises(ValidationError, match="tls_key is set but tls_cert is not"):
        TcpSocketServer("ev", socket_dir=sock_dir, tls_key=certs["key"])
    with pytest.raises(ValidationError, match="cannot read TLS CA file"):
        TcpSocketClient("ev", host="127.0.0.1", port=1, socket_dir=sock_dir,
                        tls_ca=tmp_path / "absent.pem")
    with pytest.raises(ValidationError, match="must be an absolute path"):
        TcpSocketClient("ev", host="127.0.0.1", port=1, socket_dir=sock_dir, tls_ca="ca.pem")


# -- the command line -------------------------------------------------------------------------

def _token_file(root: Path, token: bytes = TOKEN, mode: int = 0o600) -> str:
    path = root / f"token-{mode:o}-{'good' if token == TOKEN else 'other'}"
    path.write_bytes(token + b"\n")
    os.chmod(path, mode)
    return str(path)


@pytest.mark.timeout(90)
def test_cli_tls_and_token(cli, certs) -> None:
    token = _token_file(cli.root)
    ca = ["--tls-ca", str(certs["ca"])]
    hub = cli.serve("ev", "--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"]),
                    "--token-file", token)
    assert cli.record("ev")["transport"] == "tcp"  # the TLS options imply --tcp
    listener = cli.listen("ev", "--json", *ca, "--token-file", token)
    sent = cli.run("send", "ev", *ca, "--token-file", token, "-d", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    assert read_json(listener)["data"] == {"n": 1}
    sent = cli.run("send", "ev", *ca, "-d", '{"n": 2}', env={"SOCKCLI_TOKEN": TOKEN.decode()})
    assert sent.returncode == 0, sent.stderr
    assert read_json(listener)["data"] == {"n": 2}
    refusals = [
        (["send", "ev", *ca, "-d", "{}"], 77, "(auth_failed)"),
        (["send", "ev", *ca, "--token-file", _token_file(cli.root, OTHER_TOKEN), "-d", "{}"],
         77, "wrong token"),
        (["send", "ev", "--token-file", token, "-d", "{}"], 77, "(tls_required)"),
        (["send", "ev", "--tls-ca", str(certs["other_ca"]), "--token-file", token, "-d", "{}"],
         77, "certificate is not trusted"),
        (["listen", "ev", "--tls-ca", str(certs["other_ca"]), "--token-file", token],
         77, "certificate is not trusted"),
        (["listen", "ev", *ca], 77, "(auth_failed)"),
        (["send", "ev", *ca, "--token-file", _token_file(cli.root, mode=0o640), "-d", "{}"],
         78, "is accessible by group or others (mode 0640)"),
        (["listen", "ev", *ca, "--token-file", str(cli.root / "absent")], 78,
         "cannot read token file"),
    ]
    for args, code, needle in refusals:
        done = cli.run(*args)
        assert done.returncode == code, (args, done.stderr)
        assert needle in error_line(done.stderr), (args, done.stderr)
    rows = cli.list_json(*ca, "--token-file", token)
    assert [(r["event_name"], r["received"]) for r in rows] == [("ev", 2)]
    sent = cli.run("send", "ev", *ca, "--token-file", token, "-d", '{"n": 3}')
    assert sent.returncode == 0, sent.stderr
    assert read_json(listener)["data"] == {"n": 3}  # the listener outlived every refusal
    assert hub.poll() is None


@pytest.mark.timeout(60)
def test_cli_remote_event_probe_uses_the_token(cli) -> None:
    token = _token_file(cli.root)
    port = free_port()
    cli.serve("ev", "--port", str(port), "--token-file", token)
    sent = cli.run("send", "--connect", f"127.0.0.1:{port}", "--token-file", token, "-d", "{}")
    assert sent.returncode == 0, sent.stderr
    listened = cli.run("listen", "--connect", f"127.0.0.1:{port}", "--token-file", token,
                       "--no-reconnect", "-n", "1", "--timeout", "5", "--json")
    assert listened.returncode == 0, listened.stderr  # the queued message
    refused = cli.run("listen", "--connect", f"127.0.0.1:{port}", "--no-reconnect")
    assert refused.returncode == 77, refused.stderr
    assert "(auth_failed)" in error_line(refused.stderr)


@pytest.mark.timeout(60)
def test_cli_open_address_needs_a_token_or_insecure(cli) -> None:
    refused = cli.run("serve", "ev", "--host", "0.0.0.0")
    assert refused.returncode == 78
    assert "refusing to listen on 0.0.0.0 without a token" in error_line(refused.stderr)
    assert "'sockcli serve --insecure'" in refused.stderr
    loose = cli.run("serve", "ev", "--token-file", _token_file(cli.root, mode=0o604))
    assert loose.returncode == 78
    assert "chmod 600" in error_line(loose.stderr)
    port = free_port()
    hub = cli.serve("ev", "--host", "0.0.0.0", "--port", str(port), "--insecure")
    sent = cli.run("send", "--connect", f"127.0.0.1:{port}", "-d", "{}")
    assert sent.returncode == 0, sent.stderr
    assert hub.poll() is None


# -- no code from data --------------------------------------------------------------------------

_FORBIDDEN_NAMES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "eval", "exec",
                    "dill", "cloudpickle"}


def _package_sources() -> list[Path]:
    files = sorted((REPO / "sockcli").rglob("*.py"))
    assert len(files) > 20
    return files


def test_no_pickle_eval_or_exec_in_the_package() -> None:
    """Data never becomes code: no pickle-like module, no eval()/exec()/compile() of text.

    Checked on the tokens, so that prose ("JSON, never pickle") does not count and no
    spelling (``from pickle import loads``, ``builtins.eval``) escapes."""
    found = []
    for path in _package_sources():
        text = path.read_text()
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string in _FORBIDDEN_NAMES:
                found.append(f"{path.relative_to(REPO)}:{tok.start[0]}: {tok.string}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in {"compile", "__import__"}:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.func.id}()")
    assert found == []


def test_the_source_check_can_fail() -> None:
    sample = "import pickle\nx = eval('1')\nexec(code)\n"
    names = [t.string for t in tokenize.generate_tokens(io.StringIO(sample).readline)
             if t.type == tokenize.NAME and t.string in _FORBIDDEN_NAMES]
    assert names == ["pickle", "eval", "exec"]

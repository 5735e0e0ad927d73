"""The per-hub secret of a loopback TCP hub (sockcli/hubsecret.py; docs/SECURITY.md, "Who may
connect: the per-hub secret (TCP on loopback)").

TCP on 127.0.0.1 carries no identity, so a TCP hub without a configured token makes a secret of
its own, keeps it 0600 in the private socket directory (``{event}.token``), and requires every
client to prove it; the user's own commands find it by the event name. Real processes: hubs
run by the installed ``sockcli``, the other user a real process of ``nobody``
(tests/helpers.py, OtherUserPeer and spawn_as).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from sockcli import AuthenticationError, SocketMessage, TcpSocketClient, TcpSocketServer
from sockcli.client.discovery import LocalHubClient
from sockcli.client.oneshot import Sender
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA
from tests.clitools import Cli, error_line, free_port, read_json, read_line, stop
from tests.helpers import OtherUserPeer, RawPeer, child_line, other_user, spawn_as

pytestmark = pytest.mark.timeout(60)

METHOD = "hmac-sha256"


def _serve(cli: Cli, *args: str, **kwargs: Any) -> tuple[Any, str]:
    """``sockcli serve ARGS`` and its start-up line, once it serves."""
    proc = cli.popen("serve", *args, **kwargs)
    line = read_line(proc, "stderr", 15)
    assert "serving" in line, line
    return proc, line


def _secret(cli: Cli, event: str = "ev") -> Path:
    return cli.socket_dir / f"{event}.token"


def _address(cli: Cli, event: str = "ev") -> str:
    record = cli.record(event)
    return f"{record['host']}:{record['port']}"


def _send(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Any:
    return cli.run("send", "ev", *args, "-d", '{"n": 1}', env=env)


def _link_refusal(path: Path) -> str:
    return (f"sockcli: error: {path} is a symbolic link: sockcli does not follow one (remove "
            "it, or choose another socket_dir)")


# -- the user's own commands --------------------------------------------------------------------

def test_send_listen_and_list_of_the_same_user_need_no_flag(cli: Cli) -> None:
    hub, line = _serve(cli, "ev", "--tcp")
    assert line.endswith(" (tcp, token (per-hub secret)); stop with Ctrl-C\n"), line
    listener = cli.listen("ev", "--count", "2")
    sent = _send(cli)
    assert (sent.returncode, sent.stderr) == (0, "")
    listed = cli.run("list", "--json")
    assert (listed.returncode, listed.stderr) == (0, "")  # its stats connection proved it too
    [row] = cli.list_json()
    assert (row["transport"], row["clients"], row["subscribers"], row["received"]) == \
        ("tcp", 1, 1, 1)
    picked = cli.run("send", "-d", '{"n": 2}')  # no EVENT: the only hub
    assert (picked.returncode, picked.stderr) == (0, "")
    assert [read_json(listener)["data"] for _ in range(2)] == [{"n": 1}, {"n": 2}]
    assert listener.wait(10) == 0
    assert stop(hub) == 0
    assert cli.hub_files("ev") == []  # the secret went with the record


def test_the_secret_is_ours_0600_random_and_removed_at_stop(cli: Cli) -> None:
    hub, _ = _serve(cli, "ev", "--tcp")
    other, _ = _serve(cli, "ev2", "--tcp")
    path = _secret(cli)
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    text = path.read_text()
    assert len(text) == 65 and text.endswith("\n") and bytes.fromhex(text[:-1])  # 32 bytes
    assert cli.hub_files("ev") == ["ev.hub", "ev.token"]
    assert _secret(cli, "ev2").read_text() != text  # one secret per hub
    assert stop(hub) == 0
    assert not path.exists()
    again, _ = _serve(cli, "ev", "--tcp")
    assert path.read_text() != text  # and per start
    assert stop(again) == 0 and stop(other) == 0
    assert os.listdir(cli.socket_dir) == []


def test_a_client_told_the_address_needs_the_token(cli: Cli) -> None:
    """``--connect HOST:PORT`` is for a hub elsewhere: no record, no secret; the hub's secret
    works as any shared token once copied."""
    _serve(cli, "ev", "--tcp")
    address = _address(cli)
    refused = _send(cli, "--connect", address)
    assert refused.returncode == 77
    assert "requires a token and this client offered none" in error_line(refused.stderr)
    given = _send(cli, "--connect", address, "--token-file", str(_secret(cli)))
    assert (given.returncode, given.stderr) == (0, "")


def test_the_hubs_secret_wins_over_a_clients_own_token(cli: Cli) -> None:
    """A secret exists only for a hub that has no configured token, so a token of the client's
    own (SOCKCLI_TOKEN for remote hubs, say) could only fail there."""
    _serve(cli, "ev", "--tcp")
    listener = cli.listen("ev", "--count", "1", env={"SOCKCLI_TOKEN": secrets.token_hex(32)})
    sent = _send(cli, env={"SOCKCLI_TOKEN": secrets.token_hex(32)})
    assert (sent.returncode, sent.stderr) == (0, "")
    assert read_json(listener)["data"] == {"n": 1}


# -- another user -------------------------------------------------------------------------------

def test_another_user_is_refused_and_reads_or_sends_nothing(cli: Cli, children: list[Any]) -> None:
    nobody = other_user()
    _serve(cli, "ev", "--tcp", env={"SOCKCLI_HANDSHAKE_TIMEOUT": "2"})
    address = _address(cli)
    listener = cli.listen("ev", "--count", "3")
    injected = fr.MessageFrame(message=SocketMessage("ev", data={"from": "nobody"}), seq=1)

    # A plain hello (what any program that speaks the protocol would say), and a message
    # pipelined after it: refused at once, the message never read.
    plain = OtherUserPeer(nobody, address, [fr.Hello(subscribe=True), injected], children)
    assert plain.ids[1] == nobody.pw_uid
    error = plain.next_map()
    assert isinstance(error, dict)
    assert (error["kind"], error["code"], error["fatal"]) == ("error", "auth_failed", True)
    assert error["reason"].startswith("hub 'ev' requires a token and this client offered none")
    assert plain.next_map() is CLOSED

    # A guess at the secret: refused.
    guess = fr.Auth(method=METHOD, nonce=secrets.token_hex(32), mac=secrets.token_hex(32))
    guesser = OtherUserPeer(nobody, address, [fr.Hello(subscribe=True, auth=(METHOD,)), guess],
                            children)
    challenge = guesser.next_map()
    assert isinstance(challenge, dict) and challenge["kind"] == "challenge"
    error = guesser.next_map()
    assert isinstance(error, dict) and (error["code"], error["fatal"]) == ("auth_failed", True)
    assert "wrong token" in error["reason"]
    assert guesser.next_map() is CLOSED

    # One that asks to be challenged and then waits, while messages flow: it is sent nothing
    # but the challenge, then dropped when handshake_timeout (2 s here) runs out.
    waiter = OtherUserPeer(nobody, address, fr.Hello(subscribe=True, auth=(METHOD,)), children)
    challenge = waiter.next_map()
    assert isinstance(challenge, dict) and challenge["kind"] == "challenge"
    for n in range(3):
        sent = cli.run("send", "ev", "-d", f'{{"n": {n}}}')
        assert sent.returncode == 0, sent.stderr
    assert [read_json(listener)["data"] for _ in range(3)] == [{"n": n} for n in range(3)]
    error = waiter.next_map()
    assert isinstance(error, dict) and error["code"] == "handshake_required"
    assert waiter.next_map() is CLOSED

    [row] = cli.list_json()
    assert row["received"] == 3  # ours only: nothing of nobody's was taken in


def test_another_user_cannot_read_the_secret(cli: Cli, children: list[Any]) -> None:
    """Even with every directory on the way searchable (0711, which sockcli accepts), the
    file's own mode keeps it: nobody can neither list the directory nor open the file."""
    nobody = other_user()
    _serve(cli, "ev", "--tcp")
    for path in (cli.root, cli.runtime, cli.socket_dir):
        os.chmod(path, 0o711)
    probe = spawn_as(nobody, """
        import errno, os, sys
        def attempt(call, *args):
            try:
                call(*args)
            except OSError as exc:
                return errno.errorcode[exc.errno]
            return "done"
        print(attempt(os.stat, sys.argv[1]), attempt(open, sys.argv[1], "rb"),
              attempt(os.listdir, os.path.dirname(sys.argv[1])), flush=True)
    """, str(_secret(cli)))
    children.append(probe)
    assert child_line(probe) == "done EACCES EACCES"  # it may see the file is there, no more
    assert probe.wait(10) == 0
    sent = _send(cli)  # and the 0711 directory is still ours to use
    assert (sent.returncode, sent.stderr) == (0, "")


def test_an_insecure_hub_makes_no_secret_and_admits_every_local_user(
        cli: Cli, children: list[Any]) -> None:
    nobody = other_user()
    _, line = _serve(cli, "ev", "--tcp", "--insecure")
    assert line.endswith(" (tcp, no authentication); stop with Ctrl-C\n"), line
    assert cli.hub_files("ev") == ["ev.hub"]
    peer = OtherUserPeer(nobody, _address(cli), fr.Hello(subscribe=True, name="nob"), children)
    welcome = peer.next_map()
    assert isinstance(welcome, dict) and welcome["kind"] == "welcome"  # what insecure means
    sent = _send(cli)
    assert (sent.returncode, sent.stderr) == (0, "")
    message = peer.next_map()
    assert isinstance(message, dict) and message["data"] == {"n": 1}
    assert peer.close() == 0


def test_an_insecure_hub_admits_a_plain_client(cli: Cli) -> None:
    _serve(cli, "ev", "--tcp", "--insecure")
    assert not _secret(cli).exists()
    peer = RawPeer(_address(cli))
    try:
        welcome = peer.hello(subscribe=False)
        assert "auth" not in welcome.features
    finally:
        peer.close()
    plain = _send(cli, "--connect", _address(cli))
    assert (plain.returncode, plain.stderr) == (0, "")


# -- a configured token -------------------------------------------------------------------------

def test_a_configured_token_works_as_before_and_no_secret_is_written(cli: Cli,
                                                                     tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(secrets.token_urlsafe(32))
    os.chmod(token, 0o600)
    # What a hub without a token left when it was killed: a token hub must not let clients
    # find it (they would prove the wrong secret).
    cli.socket_dir.mkdir(mode=0o700)
    stale = _secret(cli)
    stale.write_text(secrets.token_hex(32))
    os.chmod(stale, 0o600)
    hub, line = _serve(cli, "ev", "--token-file", str(token))
    assert line.endswith(" (tcp, token); stop with Ctrl-C\n"), line
    assert cli.hub_files("ev") == ["ev.hub"]
    refused = _send(cli)
    assert refused.returncode == 77
    assert "requires a token and this client offered none" in error_line(refused.stderr)
    listener = cli.listen("ev", "--count", "1", env={"SOCKCLI_TOKEN": token.read_text()})
    sent = _send(cli, "--token-file", str(token))
    assert (sent.returncode, sent.stderr) == (0, "")
    assert read_json(listener)["data"] == {"n": 1}
    assert stop(hub) == 0
    assert cli.hub_files("ev") == []


# -- the file, attacked or damaged --------------------------------------------------------------

def test_a_link_at_the_secrets_path_stops_the_hub_and_is_left_alone(cli: Cli,
                                                                     tmp_path: Path) -> None:
    """Refused as a planted socket link is: never followed, written through or removed."""
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    cli.socket_dir.mkdir(mode=0o700)
    link = _secret(cli)
    for points_to in (target, tmp_path / "absent"):
        link.symlink_to(points_to)
        refused = cli.run("serve", "ev", "--tcp")
        assert refused.returncode == 78
        assert error_line(refused.stderr) == _link_refusal(link)
        assert os.readlink(link) == str(points_to)
        assert cli.hub_files("ev") == ["ev.token"]  # the record went with the refusal
        link.unlink()
    assert target.read_text() == "keep me\n"
    assert not (tmp_path / "absent").exists()


def test_clients_refuse_a_link_or_a_loose_file_at_the_secrets_path(cli: Cli,
                                                                    tmp_path: Path) -> None:
    hub, _ = _serve(cli, "ev", "--tcp")
    path = _secret(cli)
    os.chmod(path, 0o644)
    loose = _send(cli)
    assert loose.returncode == 78
    assert error_line(loose.stderr) == (
        f"sockcli: error: token file {path} is accessible by group or others (mode 0644): "
        f"run 'chmod 600 {path}'")
    listed = cli.run("list", "--json")  # the hub is listed, without figures, and it says why
    assert listed.returncode == 0
    assert listed.stderr.startswith(f"sockcli: ev: token file {path} is accessible"), \
        listed.stderr
    os.chmod(path, 0o600)
    assert _send(cli).returncode == 0
    # Swapped for a link (only we or root could): refused, never followed.
    kept = tmp_path / "kept"
    os.rename(path, kept)
    path.symlink_to(kept)
    linked = _send(cli)
    assert linked.returncode == 78
    assert error_line(linked.stderr) == _link_refusal(path)
    # The hub removes only the file it made: not the link in its place.
    assert stop(hub) == 0
    assert cli.hub_files("ev") == ["ev.token"] and path.is_symlink()


def test_a_killed_hubs_secret_is_replaced_by_the_next_hub(cli: Cli) -> None:
    hub, _ = _serve(cli, "ev", "--tcp")
    old = _secret(cli).read_text()
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    assert cli.hub_files("ev") == ["ev.hub", "ev.token"]  # left behind, no hub running
    assert _send(cli, "--wait", "0").returncode == 69
    again, _ = _serve(cli, "ev", "--tcp")
    assert _secret(cli).read_text() != old
    sent = _send(cli)
    assert (sent.returncode, sent.stderr) == (0, "")
    assert stop(again) == 0
    assert cli.hub_files("ev") == []


# -- the library --------------------------------------------------------------------------------

def test_library_clients_that_find_the_hub_by_name_prove_its_secret(sock_dir: Path) -> None:
    hub = TcpSocketServer("ev", socket_dir=sock_dir, timezone="UTC")
    assert hub.protection == ()  # the secret is made when it starts
    hub.start(blocking=False)
    clients: list[Any] = []
    try:
        assert hub.protection == ("token (per-hub secret)",)
        by_name = TcpSocketClient("ev", socket_dir=sock_dir, timezone="UTC")
        local = LocalHubClient("ev", socket_dir=sock_dir, timezone="UTC", subscribe=False)
        clients += [by_name, local]
        by_name.connect(timeout=5)
        local.connect(timeout=5)
        assert by_name.welcome is not None and "auth" in by_name.welcome.features
        local.send(SocketMessage("ev", data={"via": "local"}))
        with Sender.open("ev", socket_dir=str(sock_dir)) as sender:
            sender.send({"via": "sender"})
            sender.flush(5)
        assert [by_name.receive(timeout=5).data["via"] for _ in range(2)] == ["local", "sender"]
        host, _, port = hub.address.rpartition(":")
        told = TcpSocketClient("ev", host=host, port=int(port), socket_dir=sock_dir,
                               auto_reconnect=False)
        clients.append(told)
        with pytest.raises(AuthenticationError) as info:
            told.connect(timeout=5)
        assert info.value.code == "auth_failed"
        assert hub.stats()["denied"] == 1
    finally:
        for client in clients:
            client.disconnect()
        hub.stop()
    assert os.listdir(sock_dir) == []


def test_a_hub_whose_port_is_taken_makes_no_secret(sock_dir: Path) -> None:
    """The secret is made once the port is bound, before the record is written: a hub that
    cannot listen leaves nothing, and a client that finds a record finds the secret."""
    from sockcli import ConnectionError

    taken = socket.create_server(("127.0.0.1", free_port()))
    try:
        hub = TcpSocketServer("ev", socket_dir=sock_dir, port=taken.getsockname()[1])
        with pytest.raises(ConnectionError, match="is in use"):
            hub.start(blocking=False)
    finally:
        taken.close()
    assert os.listdir(sock_dir) == []


# -- posing as the hub --------------------------------------------------------------------------

#: Run as nobody: listens on 127.0.0.1 (any free port), prints "port N", accepts one
#: connection, answers its first bytes with the hex frame of argv[1] (a welcome that proves
#: nothing), then prints "got HEX" with everything the client sent, once it closes.
_IMPOSTOR = """
    import socket, sys
    server = socket.create_server(("127.0.0.1", 0))
    print("port", server.getsockname()[1], flush=True)
    server.settimeout(20)
    conn, _ = server.accept()
    conn.settimeout(10)
    got = conn.recv(65536)
    conn.sendall(bytes.fromhex(sys.argv[1]))
    while True:
        try:
            more = conn.recv(65536)
        except OSError:
            break
        if not more:
            break
        got += more
    print("got", got.hex(), flush=True)
"""


def test_a_process_of_another_user_on_the_hubs_port_gets_no_message(
        cli: Cli, children: list[Any]) -> None:
    """Whatever answers on the recorded port (another user's process that took it once the
    hub let it go) must prove the hub's secret before a client sends anything."""
    from sockcli.hubsecret import create_secret
    from sockcli.protocol.codec import Codec
    from sockcli.runtime import HubLock, HubRecord, open_socket_dir
    from sockcli.types import SocketType

    nobody = other_user()
    welcome = Codec().send(fr.Welcome(client_id="c1", event_name="ev")).hex()
    impostor = spawn_as(nobody, _IMPOSTOR, welcome)
    children.append(impostor)
    word, port = child_line(impostor).split()
    assert word == "port"
    # The live record and the secret of a hub of ours, whose port the impostor now holds.
    cli.socket_dir.mkdir(mode=0o700)
    lock = HubLock(cli.socket_dir, "ev")
    lock.acquire()
    dir_fd = open_socket_dir(cli.socket_dir)
    assert dir_fd is not None
    try:
        create_secret(dir_fd, "ev", str(_secret(cli)))
        lock.write(HubRecord(event_name="ev", transport=SocketType.TCP, pid=os.getpid(),
                             started_ms=1, host="127.0.0.1", port=int(port)))
        sent = cli.run("send", "ev", "-d", '{"private": "not for nobody"}')
    finally:
        os.close(dir_fd)
        lock.release()
    assert sent.returncode == 77
    assert "the hub did not ask for the token" in error_line(sent.stderr)
    word, data = child_line(impostor).split()
    assert word == "got"
    received = Codec()
    received.receive_data(bytes.fromhex(data))
    hello = received.next_map()
    assert isinstance(hello, dict) and hello["kind"] == "hello"
    assert hello["auth"] == [METHOD]  # it offered to prove the secret, and sent nothing else
    assert received.next_map() is NEED_DATA  # nothing after the hello
    assert b"not for nobody" not in bytes.fromhex(data)

"""sockcli.auth: the token's sources and the HMAC challenge-response, byte by byte (no I/O
beyond token files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockcli.exceptions import AuthenticationError, ValidationError
from sockcli.protocol import auth
from sockcli.protocol import frames as fr

pytestmark = pytest.mark.timeout(30)

# The test vector of docs/protocol.md ("Access control"), computed independently with
# `openssl dgst -sha256 -hmac`.
TOKEN = b"an example token, 32 bytes long!"
HUB_NONCE = bytes(range(32))
CLIENT_NONCE = bytes(range(32, 64))
CLIENT_MAC = "79d3b7af944e613e2c6054c1fd4070f0736c7f7557b2bd7fed99f7d4b1aeaafd"
HUB_MAC = "91f8c878ebc579d1caae250e5c3522cfedb268283513cf6e8e10b10a4f333b7e"


def test_the_documented_vector() -> None:
    assert auth.client_mac(TOKEN, HUB_NONCE, CLIENT_NONCE).hex() == CLIENT_MAC
    assert auth.hub_mac(TOKEN, HUB_NONCE, CLIENT_NONCE).hex() == HUB_MAC


def test_the_mac_covers_every_input() -> None:
    base = auth.client_mac(TOKEN, HUB_NONCE, CLIENT_NONCE)
    assert auth.client_mac(TOKEN + b"!", HUB_NONCE, CLIENT_NONCE) != base
    assert auth.client_mac(TOKEN, CLIENT_NONCE, HUB_NONCE) != base  # the order matters
    assert auth.client_mac(TOKEN, HUB_NONCE, bytes(32)) != base
    # Domain separation: the hub's proof never passes for the client's, nor the reverse.
    assert auth.hub_mac(TOKEN, HUB_NONCE, CLIENT_NONCE) != base


def test_nonces_are_fresh_32_bytes() -> None:
    nonces = {auth.new_nonce() for _ in range(64)}
    assert len(nonces) == 64
    assert all(len(n) == auth.NONCE_BYTES == 32 for n in nonces)


def _exchange(client_token: bytes, hub_token: bytes) -> tuple[auth.ClientAuth, dict[str, str]]:
    client = auth.ClientAuth(client_token)
    hub = auth.HubChallenge()
    challenge = hub.frame()
    assert challenge == fr.Challenge(method="hmac-sha256", nonce=hub.nonce.hex())
    assert fr.frame_to_map(challenge) == {"kind": "challenge", "method": "hmac-sha256",
                                          "nonce": hub.nonce.hex()}
    answer = client.answer(challenge)
    assert set(fr.frame_to_map(answer)) == {"kind", "method", "nonce", "mac"}
    proof = hub.verify(hub_token, answer)
    return client, proof


def _challenge(**fields: object) -> fr.Challenge:
    """A challenge as a hub would send it, however wrong: decoded from its wire map."""
    frame = fr.frame_from_map({"kind": "challenge", "method": "hmac-sha256", **fields})
    assert isinstance(frame, fr.Challenge)
    return frame


def test_a_full_exchange_proves_both_sides() -> None:
    client, proof = _exchange(TOKEN, TOKEN)
    assert proof["method"] == "hmac-sha256"
    client.check_welcome(proof)  # no exception: the hub knows it


def test_the_hub_refuses_a_wrong_token() -> None:
    with pytest.raises(AuthenticationError, match="wrong token") as info:
        _exchange(b"another token, 32 bytes long!!!", TOKEN)
    assert info.value.code == "auth_failed"


def test_the_client_refuses_a_hub_that_cannot_prove_the_token() -> None:
    client, _ = _exchange(TOKEN, TOKEN)
    forged = {"method": "hmac-sha256", "mac": auth.hub_mac(b"x" * 32, bytes(32),
                                                              bytes(32)).hex()}
    with pytest.raises(AuthenticationError, match="does not know the token"):
        client.check_welcome(forged)
    with pytest.raises(AuthenticationError, match="mac"):
        client.check_welcome(None)  # no proof at all
    with pytest.raises(AuthenticationError, match="mac"):
        client.check_welcome({"mac": 7})


def test_the_client_refuses_a_welcome_without_a_challenge() -> None:
    client = auth.ClientAuth(TOKEN)
    with pytest.raises(AuthenticationError, match="did not ask for the token"):
        client.check_welcome(None)


def test_the_client_answers_one_challenge_only() -> None:
    client = auth.ClientAuth(TOKEN)
    client.answer(_challenge(nonce=HUB_NONCE.hex()))
    with pytest.raises(AuthenticationError, match="second challenge"):
        client.answer(_challenge(nonce=HUB_NONCE.hex()))


def test_the_client_answers_with_the_documented_mac() -> None:
    client = auth.ClientAuth(TOKEN, nonce=CLIENT_NONCE)
    answer = client.answer(_challenge(nonce=HUB_NONCE.hex()))
    assert answer == fr.Auth(method="hmac-sha256", nonce=CLIENT_NONCE.hex(), mac=CLIENT_MAC)
    client.check_welcome({"method": "hmac-sha256", "mac": HUB_MAC})


@pytest.mark.parametrize("challenge, message", [
    ({"method": "hmac-md5", "nonce": HUB_NONCE.hex()}, "method 'hmac-md5'"),
    ({"method": "hmac-sha256", "nonce": HUB_NONCE.hex()[:-2]}, "nonce"),
    ({"method": "hmac-sha256", "nonce": "zz" * 32}, "nonce"),
])
def test_the_client_refuses_a_bad_challenge(challenge: dict[str, object], message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        auth.ClientAuth(TOKEN).answer(_challenge(**challenge))


@pytest.mark.parametrize("challenge", [
    {"kind": "challenge", "method": "hmac-sha256"},
    {"kind": "challenge", "method": "hmac-sha256", "nonce": HUB_NONCE},  # bin, not hex text
])
def test_a_malformed_challenge_is_an_authentication_failure(challenge: dict[str, object],
                                                            ) -> None:
    frame = fr.frame_from_map(challenge)
    assert isinstance(frame, fr.Challenge)
    assert frame == fr.Challenge(method="hmac-sha256", nonce="")
    with pytest.raises(AuthenticationError, match="nonce"):
        auth.ClientAuth(TOKEN).answer(frame)


_GOOD_MAC = auth.client_mac(TOKEN, HUB_NONCE, CLIENT_NONCE).hex()


@pytest.mark.parametrize("frame, message", [
    (fr.UnknownFrame(kind="message", fields={}), "expected an auth frame after the challenge, "
                                                 "not message"),
    (fr.Hello(), "after the challenge, not Hello"),
    (fr.Auth(method="hmac-md5", nonce=CLIENT_NONCE.hex(), mac=_GOOD_MAC), "method"),
    (fr.Auth(method="hmac-sha256", nonce=CLIENT_NONCE.hex(), mac=_GOOD_MAC[:-1]), "mac"),
    (fr.Auth(method="hmac-sha256", nonce=" " + CLIENT_NONCE.hex()[1:], mac=_GOOD_MAC),
     "nonce"),
    (fr.Auth(method="hmac-sha256", nonce=CLIENT_NONCE.hex(), mac="00" * 32), "wrong token"),
])
def test_the_hub_refuses_a_bad_answer(frame: fr.Frame, message: str) -> None:
    hub = auth.HubChallenge(nonce=HUB_NONCE)
    with pytest.raises(AuthenticationError, match=message) as info:
        hub.verify(TOKEN, frame)
    assert info.value.code == "auth_failed"


@pytest.mark.parametrize("fields, missing", [
    ({"nonce": CLIENT_NONCE.hex(), "mac": _GOOD_MAC}, "method"),
    ({"method": "hmac-sha256", "mac": _GOOD_MAC}, "nonce"),
    ({"method": "hmac-sha256", "nonce": CLIENT_NONCE.hex()}, "mac"),
    ({"method": "hmac-sha256", "nonce": CLIENT_NONCE.hex(), "mac": 7}, "mac"),
])
def test_a_malformed_answer_is_an_authentication_failure(fields: dict[str, object],
                                                         missing: str) -> None:
    """docs/protocol.md: a malformed auth frame earns auth_failed, not invalid_message."""
    frame = fr.frame_from_map({"kind": "auth", **fields})
    assert isinstance(frame, fr.Auth)
    with pytest.raises(AuthenticationError, match=missing) as info:
        auth.HubChallenge(nonce=HUB_NONCE).verify(TOKEN, frame)
    assert info.value.code == "auth_failed"


def test_the_hub_accepts_the_documented_answer() -> None:
    hub = auth.HubChallenge(nonce=HUB_NONCE)
    proof = hub.verify(TOKEN, fr.Auth(method="hmac-sha256", nonce=CLIENT_NONCE.hex(),
                                      mac=CLIENT_MAC.upper()))
    assert proof == {"method": "hmac-sha256", "mac": HUB_MAC}


# -- where the token comes from -----------------------------------------------------------------

def _token_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_a_private_token_file_is_read_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = _token_file(tmp_path, b"  " + TOKEN + b"\n")
    assert auth.load_token_file(path) == TOKEN
    assert auth.load_token_file(str(path)) == TOKEN


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660, 0o644, 0o610])
def test_a_token_file_others_may_touch_is_refused(tmp_path: Path, mode: int) -> None:
    path = _token_file(tmp_path, TOKEN, mode)
    with pytest.raises(ValidationError) as info:
        auth.load_token_file(path)
    assert str(info.value) == (f"token file {path} is accessible by group or others (mode "
                               f"{mode:04o}): run 'chmod 600 {path}'")


def test_a_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file away")
    path = _token_file(tmp_path, TOKEN)
    os.chown(path, 65534, 65534)
    with pytest.raises(ValidationError, match="belongs to uid 65534, not to you"):
        auth.load_token_file(path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"), (b" \n\t", "is empty"), (b"short", "is 5 bytes long; it must be at "
                                                         "least 16"),
    (b"x" * 5000, "longer than 4096 bytes"),
])
def test_an_unusable_token_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = _token_file(tmp_path, content)
    with pytest.raises(ValidationError, match=message) as info:
        auth.load_token_file(path)
    assert f"token file {path}" in str(info.value)


def test_a_missing_or_odd_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cannot read token file .*No such file"):
        auth.load_token_file(tmp_path / "absent")
    os.chmod(tmp_path, 0o700)
    with pytest.raises(ValidationError, match="is not a regular file"):
        auth.load_token_file(tmp_path)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _token_file(tmp_path, b"from the file, at least 16 bytes")
    assert auth.resolve_token() is None
    assert auth.resolve_token(None, path) == b"from the file, at least 16 bytes"
    assert auth.resolve_token(None, "") is None
    monkeypatch.setenv("SOCKCLI_TOKEN", "  from the environment, 16+ bytes\n")
    assert auth.resolve_token(None, path) == b"from the environment, 16+ bytes"
    assert auth.resolve_token(TOKEN, path) == TOKEN
    assert auth.resolve_token(TOKEN.decode(), path) == TOKEN
    monkeypatch.setenv("SOCKCLI_TOKEN", "")  # empty: as if unset
    assert auth.resolve_token(None, path) == b"from the file, at least 16 bytes"
    monkeypatch.setenv("SOCKCLI_TOKEN", "short")
    with pytest.raises(ValidationError, match="the variable SOCKCLI_TOKEN is 5 bytes long"):
        auth.resolve_token(None, path)
    with pytest.raises(ValidationError, match="the token= argument is 3 bytes long"):
        auth.resolve_token(b"abc")


def test_the_module_imports_no_crypto_until_a_token_is_used() -> None:
    code = """
import json, sys
import sockcli.protocol.auth, sockcli.client.oneshot, sockcli.cli.sendcore
from sockcli.protocol.frames import Challenge
before = sorted(m for m in ("hmac", "hashlib", "secrets", "ssl") if m in sys.modules)
sockcli.protocol.auth.ClientAuth(b"x" * 32).answer(Challenge(method="hmac-sha256", nonce="00" * 32))
after = sorted(m for m in ("hmac", "hashlib", "secrets", "ssl") if m in sys.modules)
print(json.dumps([before, after]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], ["hashlib", "hmac", "secrets"]]

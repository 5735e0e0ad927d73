"""Shared-token authentication: where the token comes from, and the HMAC challenge-response.

The token never crosses the wire. A client that has a token offers ``"auth":
["hmac-sha256"]`` in its hello; a hub that has one answers with a ``challenge`` frame holding
a random nonce; the client replies with an ``auth`` frame holding its own nonce and
HMAC-SHA256(token, "sockcli-auth-v1" 0 "client" 0 hub-nonce client-nonce); the hub checks it
with :func:`hmac.compare_digest` and puts its own proof, the same HMAC with "hub" in place of
"client", into its welcome. Each side therefore proves that it knows the token, over nonces
the other side chose. docs/protocol.md ("Authentication") is the specification, with a test
vector.

Pure and I/O-free apart from reading the token file. :mod:`hmac`, :mod:`hashlib` and
:mod:`secrets` are imported only when a token is in use: ``sockcli send`` without one must
not pay for them.
"""

from __future__ import annotations

import os
import stat

from sockcli.exceptions import AuthenticationError, ValidationError
from sockcli.protocol import frames as fr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "ENV_TOKEN",
    "LABEL",
    "MAX_TOKEN_BYTES",
    "METHOD",
    "MIN_TOKEN_BYTES",
    "NONCE_BYTES",
    "ClientAuth",
    "HubChallenge",
    "check_token",
    "client_mac",
    "hub_mac",
    "load_token_file",
    "new_nonce",
    "read_token_fd",
    "resolve_token",
]

#: The only method of protocol version 1, as named in hello, challenge, auth and welcome.
METHOD = "hmac-sha256"
#: Domain separation: a MAC made for one role can never pass for the other's.
LABEL = b"sockcli-auth-v1"
NONCE_BYTES = 32
#: A token is a secret for an HMAC key: short ones fall to offline guessing from one exchange.
MIN_TOKEN_BYTES = 16
MAX_TOKEN_BYTES = 4096
ENV_TOKEN = "SOCKCLI_TOKEN"
_WHITESPACE = b" \t\r\n"
_HEX = frozenset("0123456789abcdefABCDEF")
_HOW = ("create one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE; "
        "chmod 600 FILE")


# -- where the token comes from -----------------------------------------------------------------

def check_token(token: bytes | str, where: str) -> bytes:
    """The token with surrounding whitespace removed; ValidationError if unusable."""
    raw = os.fsencode(token) if isinstance(token, str) else bytes(token)
    raw = raw.strip(_WHITESPACE)
    if not raw:
        raise ValidationError(f"the token from {where} is empty: {_HOW}")
    if len(raw) < MIN_TOKEN_BYTES:
        raise ValidationError(f"the token from {where} is {len(raw)} bytes long; it must be at "
                              f"least {MIN_TOKEN_BYTES} (random, not a password): {_HOW}")
    if len(raw) > MAX_TOKEN_BYTES:
        raise ValidationError(f"the token from {where} is longer than {MAX_TOKEN_BYTES} bytes")
    return raw


def load_token_file(path: str | os.PathLike[str]) -> bytes:
    """Read a token file, refusing one that others could read or change.

    The file must be a regular file of this user (or root), with no permission for group or
    others (``chmod 600``). Raises ValidationError saying what is wrong and how to fix it.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise ValidationError(f"cannot read token file {name}: {exc.strerror or exc}") from None
    return read_token_fd(fd, name)


def check_private_file(fd: int, label: str, name: str) -> None:
    """Refuse the file open as ``fd`` unless it is a regular file of this user (or root)
    with no permission for group or others: anyone else could read or change the secret
    in it. ``label`` names it in the errors ("token file /x"), ``name`` is its path for the
    ``chmod`` advice. ValidationError; OSError from fstat."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(f"{label} is not a regular file")
    if st.st_uid not in (os.geteuid(), 0):
        raise ValidationError(f"{label} belongs to uid {st.st_uid}, not to you "
                              f"(uid {os.geteuid()}): they could change it")
    if st.st_mode & 0o077:
        raise ValidationError(
            f"{label} is accessible by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): run 'chmod 600 {name}'")


def read_token_fd(fd: int, name: str) -> bytes:
    """The token in the file open as ``fd`` (closed here), with :func:`load_token_file`'s
    checks; ``name`` says which file in the errors (ValidationError)."""
    try:
        check_private_file(fd, f"token file {name}", name)
        data = os.read(fd, MAX_TOKEN_BYTES + 64)
    except OSError as exc:
        raise ValidationError(f"cannot read token file {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return check_token(data, f"token file {name}")


def resolve_token(explicit: bytes | str | None = None,
                  token_file: str | os.PathLike[str] | None = None) -> bytes | None:
    """The token to use, or None: ``explicit`` (``token=``, ``--token-file``), else the
    ``SOCKCLI_TOKEN`` variable when set and not empty, else the ``token_file`` setting."""
    if explicit is not None:
        return check_token(explicit, "the token= argument")
    env = os.environb.get(os.fsencode(ENV_TOKEN)) if os.supports_bytes_environ else \
        os.environ.get(ENV_TOKEN, "").encode()
    if env:
        return check_token(env, f"the variable {ENV_TOKEN}")
    if token_file:
        return load_token_file(token_file)
    return None


# -- the exchange, byte by byte -----------------------------------------------------------------

def new_nonce() -> bytes:
    import secrets

    return secrets.token_bytes(NONCE_BYTES)


def _mac(token: bytes, role: bytes, hub_nonce: bytes, client_nonce: bytes) -> bytes:
    import hashlib
    import hmac

    message = LABEL + b"\0" + role + b"\0" + hub_nonce + client_nonce
    return hmac.new(token, message, hashlib.sha256).digest()


def client_mac(token: bytes, hub_nonce: bytes, client_nonce: bytes) -> bytes:
    """What the client sends in its ``auth`` frame."""
    return _mac(token, b"client", hub_nonce, client_nonce)


def hub_mac(token: bytes, hub_nonce: bytes, client_nonce: bytes) -> bytes:
    """What the hub sends in its welcome's ``auth`` key."""
    return _mac(token, b"hub", hub_nonce, client_nonce)


def _same(expected: bytes, got: bytes) -> bool:
    import hmac

    return hmac.compare_digest(expected, got)


def _unhex(value: Any, what: str) -> bytes:
    """32 bytes written as 64 hex digits, or AuthenticationError."""
    if not isinstance(value, str) or len(value) != 2 * NONCE_BYTES or not _HEX.issuperset(value):
        raise AuthenticationError(f"{what} must be {NONCE_BYTES} bytes as {2 * NONCE_BYTES} hex "
                                  "digits")
    return bytes.fromhex(value)


class HubChallenge:
    """The hub's side of one connection's exchange: its nonce."""

    __slots__ = ("nonce",)

    def __init__(self, nonce: bytes | None = None) -> None:
        self.nonce = nonce if nonce is not None else new_nonce()

    def frame(self) -> fr.Challenge:
        """The challenge to send."""
        return fr.Challenge(method=METHOD, nonce=self.nonce.hex())

    def verify(self, token: bytes, answer: fr.Frame) -> dict[str, str]:
        """Check the client's answer; return the welcome's ``auth`` value (the hub's proof).

        Raises AuthenticationError (code ``auth_failed``) for anything but a valid ``auth``
        frame made with the same token.
        """
        if not isinstance(answer, fr.Auth):
            kind = answer.kind if isinstance(answer, fr.UnknownFrame) else type(answer).__name__
            raise AuthenticationError(f"expected an auth frame after the challenge, not {kind}")
        if answer.method != METHOD:
            raise AuthenticationError(f"the auth frame's method must be {METHOD!r}")
        client_nonce = _unhex(answer.nonce, "the auth frame's nonce")
        mac = _unhex(answer.mac, "the auth frame's mac")
        if not _same(client_mac(token, self.nonce, client_nonce), mac):
            raise AuthenticationError("wrong token: the client's proof does not match this "
                                      "hub's token")
        return {"method": METHOD, "mac": hub_mac(token, self.nonce, client_nonce).hex()}


class ClientAuth:
    """The client's side of one connection's exchange."""

    __slots__ = ("hub_nonce", "nonce", "token")

    def __init__(self, token: bytes, nonce: bytes | None = None) -> None:
        self.token = token
        self.nonce = nonce
        self.hub_nonce: bytes | None = None

    def answer(self, challenge: fr.Challenge) -> fr.Auth:
        """The auth frame that answers the hub's challenge."""
        if self.hub_nonce is not None:
            raise AuthenticationError("the hub sent a second challenge")
        if challenge.method != METHOD:
            raise AuthenticationError(f"the hub asks for authentication method "
                                      f"{challenge.method!r}; this client speaks {METHOD}")
        self.hub_nonce = _unhex(challenge.nonce, "the challenge's nonce")
        if self.nonce is None:
            self.nonce = new_nonce()
        return fr.Auth(method=METHOD, nonce=self.nonce.hex(),
                       mac=client_mac(self.token, self.hub_nonce, self.nonce).hex())

    def check_welcome(self, proof: Mapping[str, Any] | None) -> None:
        """Refuse a welcome that does not prove the hub knows the token (mutual
        authentication: a hub that skips the challenge could be anyone)."""
        if self.hub_nonce is None or self.nonce is None:
            raise AuthenticationError(
                "the hub did not ask for the token: it has none configured, or it is not the "
                "hub it claims to be; this client has a token and accepts only a hub that "
                "proves it knows the token")
        mac = _unhex(proof.get("mac") if isinstance(proof, dict) else None,
                     "the welcome's auth mac")
        if not _same(hub_mac(self.token, self.hub_nonce, self.nonce), mac):
            raise AuthenticationError("the hub's proof does not match this client's token: "
                                      "it does not know the token")

"""The handshake, written once: hello, then (with a token) challenge and auth, then welcome.

Two small state machines, sans I/O. :class:`ClientHandshake` is the client's side: it says what
to send first (:meth:`~ClientHandshake.start`), takes each frame the hub sends
(:meth:`~ClientHandshake.receive`) and answers with the frame to send back, if any, until the
hub welcomes the client or refuses it. :class:`HubHandshake` is the hub's side of one
connection: it takes the client's frames and returns the frame to send: a challenge (go on),
a welcome (the client is in) or a fatal error (drop it). Neither touches a socket, so the tests
drive one against the other in memory (tests/test_protocol.py), and the one-shot sender, the
threaded client and the hub all speak the same handshake.

docs/protocol.md ("Handshake", "Authentication") is the specification.
"""

from __future__ import annotations

from sockcli.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
)
from sockcli.protocol import frames as fr

TYPE_CHECKING = False  # on the send path: no typing import
if TYPE_CHECKING:
    from collections.abc import Callable

    from sockcli.kinds import MessageType
    from sockcli.protocol.auth import ClientAuth, HubChallenge

__all__ = ["ACCESS_CODES", "ClientHandshake", "HubHandshake"]

#: Refusals of who the client is: retrying will not help (AuthenticationError).
ACCESS_CODES = frozenset({fr.ErrorCode.AUTH_FAILED, fr.ErrorCode.PEER_NOT_ALLOWED,
                          fr.ErrorCode.TLS_REQUIRED})


class ClientHandshake:
    """The client's side of one connection's handshake.

    ``token`` (TCP only) makes the client offer token authentication and accept only a hub
    that proves it knows the token too (mutual authentication, docs/SECURITY.md).
    """

    __slots__ = ("_proving", "hello", "hub_name", "welcome")

    def __init__(self, *, subscribe: bool = False,
                 types: frozenset[MessageType] | None = None, name: str | None = None,
                 token: bytes | None = None, hub_name: str | None = None,
                 slow: str | None = None, last: bool = False, peek: bool = False,
                 tap: bool = False, batch: int = 0) -> None:
        self._proving: ClientAuth | None = None
        auth = None
        if token is not None:  # hmac, hashlib and secrets are imported only now
            from sockcli.protocol.auth import METHOD, ClientAuth

            self._proving = ClientAuth(token)
            auth = (METHOD,)
        #: The first frame, sent by :meth:`start`.
        self.hello = fr.Hello(subscribe=subscribe, types=types, name=name, auth=auth, slow=slow,
                              last=last, peek=peek, tap=tap, batch=batch if subscribe else 0)
        #: How refusals name the hub: ``hub 'EVENT'``, or ``the hub`` before its welcome.
        self.hub_name = f"hub {hub_name!r}" if hub_name else "the hub"
        #: The hub's welcome, once the handshake is complete.
        self.welcome: fr.Welcome | None = None

    @property
    def done(self) -> bool:
        """Whether the hub has welcomed this client."""
        return self.welcome is not None

    def start(self) -> fr.Hello:
        """The frame that opens the connection."""
        return self.hello

    def receive(self, frame: fr.Frame) -> fr.Frame | None:
        """Take a frame from the hub; return the frame to answer with, if any.

        After a welcome :attr:`welcome` is set. Raises MaxConnectionsError when the hub is
        full, AuthenticationError when it refuses who this client is or cannot prove it knows
        the token, ConnectionError for any other refusal.
        """
        if isinstance(frame, fr.Welcome):
            if self._proving is not None:
                self._proving.check_welcome(frame.auth)
            self.welcome = frame
            return None
        if isinstance(frame, fr.Challenge) and self._proving is not None:
            return self._proving.answer(frame)
        if isinstance(frame, fr.ErrorFrame):
            raise self.refusal(frame)
        return None  # a ping or a frame of a newer version: nothing to do before the welcome

    def refusal(self, error: fr.ErrorFrame) -> ConnectionError:
        """The exception that reports the hub's refusal ``error``."""
        if error.code == fr.ErrorCode.MAX_CONNECTIONS:
            return MaxConnectionsError(error.reason)
        message = f"{self.hub_name} refused the connection: {error.reason} ({error.code})"
        if error.code in ACCESS_CODES:
            return AuthenticationError(message, code=error.code)
        return ConnectionError(message)


class HubHandshake:
    """The hub's side of one connection's handshake.

    ``client_id`` is called once, when the client is welcomed, for the id to give it. With a
    ``token`` the hub challenges every client to prove it knows the token before the welcome,
    and proves its own knowledge in the welcome.
    """

    __slots__ = ("_challenge", "_client_id", "_features", "_token", "allow_client_send",
                 "event_name", "hello", "max_frame_size", "slow_consumer_timeout", "welcome")

    def __init__(self, *, event_name: str, client_id: Callable[[], str],
                 token: bytes | None = None, allow_client_send: bool = True,
                 max_frame_size: int = 0, features: tuple[str, ...] = fr.FEATURES,
                 slow_consumer_timeout: float = 0.0) -> None:
        self.event_name = event_name
        self.allow_client_send = allow_client_send
        self.max_frame_size = max_frame_size
        self.slow_consumer_timeout = slow_consumer_timeout
        self._client_id = client_id
        self._token = token
        self._features = features
        self._challenge: HubChallenge | None = None
        #: The client's hello, once it came.
        self.hello: fr.Hello | None = None
        #: The welcome sent, once the client is in.
        self.welcome: fr.Welcome | None = None

    @property
    def done(self) -> bool:
        """Whether the client has been welcomed."""
        return self.welcome is not None

    def receive(self, frame: fr.Frame) -> fr.Frame:
        """Take the client's next frame; return what to send: a Challenge (the handshake goes
        on), the Welcome (the client is in; :attr:`hello` says who it is), or a fatal
        ErrorFrame (drop the connection after sending it)."""
        if self._challenge is not None:
            return self._answer(frame)
        if not isinstance(frame, fr.Hello):
            return fr.ErrorFrame(code=fr.ErrorCode.HANDSHAKE_REQUIRED, fatal=True,
                                 reason="the first frame must be a hello")
        if frame.version != fr.PROTOCOL_VERSION:
            return fr.ErrorFrame(
                code=fr.ErrorCode.UNSUPPORTED_VERSION, fatal=True,
                reason=f"protocol version {frame.version} is not supported; this hub speaks "
                       f"version {fr.PROTOCOL_VERSION}")
        self.hello = frame
        if self._token is None:
            return self._welcome(None)
        return self._ask(frame)

    def expired(self) -> fr.ErrorFrame:
        """The error to drop a client with that did not complete the handshake in time."""
        return fr.ErrorFrame(code=fr.ErrorCode.HANDSHAKE_REQUIRED, fatal=True,
                             reason="no hello frame in time")

    def _ask(self, hello: fr.Hello) -> fr.Frame:
        """A token is required: challenge the client to prove it knows it."""
        from sockcli.protocol.auth import METHOD, HubChallenge

        if hello.auth is None or METHOD not in hello.auth:
            why = ("this client offered none (it has no token configured, or it is too old "
                   "for token authentication)" if hello.auth is None
                   else f"this client offers none of its methods ({list(hello.auth)!r})")
            return _auth_failed(f"hub {self.event_name!r} requires a token and {why}; give the "
                                "client the hub's token (token_file, SOCKCLI_TOKEN or "
                                "--token-file)")
        self._challenge = HubChallenge()
        return self._challenge.frame()

    def _answer(self, frame: fr.Frame) -> fr.Frame:
        challenge = self._challenge
        assert challenge is not None and self._token is not None
        self._challenge = None  # one answer only
        try:
            proof = challenge.verify(self._token, frame)
        except AuthenticationError as exc:
            return _auth_failed(f"authentication failed: {exc}")
        return self._welcome(proof)

    def _welcome(self, proof: dict[str, str] | None) -> fr.Welcome:
        self.welcome = fr.Welcome(
            client_id=self._client_id(), event_name=self.event_name,
            allow_client_send=self.allow_client_send, max_frame_size=self.max_frame_size,
            features=self._features if proof is None else (*self._features, "auth"),
            auth=proof, slow_consumer_timeout=self.slow_consumer_timeout)
        return self.welcome


def _auth_failed(reason: str) -> fr.ErrorFrame:
    return fr.ErrorFrame(code=fr.ErrorCode.AUTH_FAILED, fatal=True, reason=reason)

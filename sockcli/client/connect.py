"""Connecting to a hub: opening the socket (what differs between Unix and TCP), retrying while
the hub is absent, and running the handshake on the socket.

Light on purpose (no hub, no threads, no typing): the one-shot sender and the threaded client
both connect through here, so each of these is written once.
"""

from __future__ import annotations

import _socket  # socket's base: see open_unix_socket
import builtins
import os
import time

from sockcli.exceptions import ConnectionError, HubAbsentError, MessageError, SocketError
from sockcli.protocol.codec import CLOSED, NEED_DATA, Sentinel
from sockcli.runtime import entry_path, lstat_entry, open_socket_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any, TypeVar

    from sockcli.protocol import frames as fr
    from sockcli.protocol.codec import MsgpackCodec
    from sockcli.protocol.handshake import ClientHandshake

    _T = TypeVar("_T")

__all__ = ["handshake", "open_tcp_socket", "open_unix_socket", "retry_while_absent",
           "start_session", "tcp_security"]

_FIRST_RETRY_DELAY = 0.02


def open_unix_socket(path: str | os.PathLike[str], timeout: float,
                     event_name: str) -> _socket.socket:
    """Connect to the hub socket at ``path``; HubAbsentError when nothing listens there.

    The socket's directory is opened and checked first, and the socket reached through that
    descriptor (:func:`~sockcli.runtime.open_socket_dir`, :func:`~sockcli.runtime.entry_path`),
    so a directory swapped after the check is never the one connected to. Raises
    UnsafePathError for a directory that is not safe to use or a socket that is a symbolic
    link, ConnectionError when the connection fails otherwise.

    The socket is a ``_socket.socket``, the C type ``socket.socket`` extends: the clients use
    only its methods, and the one-shot commands are spared importing ``socket`` (2 to 3 ms
    of a 35 ms ``get``, docs/PERFORMANCE.md, "Start-up").
    """
    text = os.fspath(path)
    directory, name = os.path.split(text)
    absent = f"no hub is running for event {event_name!r} (nothing listens on {text})"
    dir_fd = open_socket_dir(directory)
    if dir_fd is None:
        raise HubAbsentError(absent)
    try:
        if lstat_entry(dir_fd, name, text) is None:
            raise HubAbsentError(absent)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(entry_path(dir_fd, name, text))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise HubAbsentError(absent) from exc
        except BlockingIOError as exc:  # EAGAIN: its accept queue is full; worth retrying
            sock.close()
            raise HubAbsentError(f"the hub of event {event_name!r} is busy: its queue of "
                                 f"connections waiting to be accepted ({text}) is full") from exc
        except OSError as exc:
            sock.close()
            raise ConnectionError(f"cannot connect to {text}: {exc.strerror or exc}") from exc
    finally:
        os.close(dir_fd)
    return sock


def open_tcp_socket(host: str, port: int, timeout: float, event_name: str) -> socket.socket:
    """Connect to a hub at host:port; HubAbsentError when nothing listens there."""
    import socket

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError as exc:
        raise HubAbsentError(f"no hub is listening on {host}:{port} for event "
                             f"{event_name!r}") from exc
    except TimeoutError as exc:
        raise HubAbsentError(f"{host}:{port} did not answer in time") from exc
    except OSError as exc:
        raise ConnectionError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames: no Nagle delay
    return sock


def tcp_security(tcp: Any, token: bytes | str | None = None) -> tuple[bytes | None, Any]:
    """The token (``token``, else $SOCKCLI_TOKEN, else the ``token_file`` setting) and the
    TLS client context (from the ``tls_ca`` setting, or None) of a client's TCP connections,
    given the ``[tcp]`` settings. Raises ValidationError for an unusable token or CA file."""
    from sockcli.protocol.auth import resolve_token

    resolved = resolve_token(token, tcp.token_file)
    context = None
    if tcp.tls_ca:
        from sockcli.tls import client_context

        context = client_context(tcp.tls_ca)
    return resolved, context


# -- connecting, written once for both clients -------------------------------------------------

def retry_while_absent(attempt: Callable[[], _T], deadline: float, *, max_delay: float,
                       pause: Callable[[float], bool] | None = None) -> _T:
    """``attempt()`` until it stops raising HubAbsentError, or re-raise that once ``deadline``
    (a time.monotonic() value, may be math.inf) has passed.

    Between attempts it waits 20 ms, doubling up to ``max_delay`` seconds: a hub that is
    starting is found within milliseconds, one that is absent costs little. ``pause(seconds)``
    waits instead of time.sleep and returns True to give up (the client was closed), which
    raises ConnectionError.
    """
    delay = _FIRST_RETRY_DELAY
    while True:
        try:
            return attempt()
        except HubAbsentError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            wait = min(delay, remaining)
            if pause is None:
                time.sleep(wait)
            elif pause(wait):
                raise ConnectionError("the client is disconnected") from None
            delay = min(delay * 2, max_delay)


def handshake(sock: _socket.socket, codec: MsgpackCodec, shake: ClientHandshake,
              timeout: float) -> fr.Welcome:
    """Run the client's side of the handshake on a connected socket, each read and write
    bounded by ``timeout`` seconds, and return the hub's welcome.

    Bytes that followed the welcome stay in ``codec``. Raises as
    :meth:`ClientHandshake.receive` for a refusal; ConnectionError for a bad frame;
    HubAbsentError (worth retrying) when the hub went away or did not answer in time.
    """
    name = shake.hub_name
    try:
        sock.settimeout(timeout)
        sock.sendall(codec.send(shake.start()))
        while shake.welcome is None:
            frame = codec.next_event()
            if frame is NEED_DATA:
                codec.receive_data(sock.recv(65536))
                continue
            if frame is CLOSED:
                raise HubAbsentError(f"{name} closed the connection during the handshake")
            assert not isinstance(frame, Sentinel)
            reply = shake.receive(frame)
            if reply is not None:
                sock.sendall(codec.send(reply))
    except MessageError as exc:
        raise ConnectionError(f"{name} sent a bad frame: {exc}") from exc
    except SocketError:
        raise  # ours; note that ConnectionError and TimeoutError are OSErrors too
    except builtins.TimeoutError as exc:
        # Retried until the deadline, then reported as "no hub answered in time".
        raise HubAbsentError(f"{name} did not answer the handshake in time") from exc
    except OSError as exc:
        raise HubAbsentError(f"{name} went away during the handshake: "
                             f"{exc.strerror or exc}") from exc
    limit = shake.welcome.max_frame_size
    if 64 <= limit < codec.max_frame_size:
        # The hub takes no larger frame (its buffer_size): refuse one here, before it is sent
        # (a data error: exit 65), rather than have the hub drop the connection over it (which
        # reads as "not acknowledged, send it again"). The hub never sends a larger one.
        codec.max_frame_size = limit
    return shake.welcome


def start_session(sock: _socket.socket, codec: MsgpackCodec, shake: ClientHandshake,
                  timeout: float, *, tls_context: Any = None,
                  server_name: str | None = None) -> tuple[_socket.socket, fr.Welcome]:
    """TLS first when ``tls_context`` is given (TCP: the hub's certificate must name
    ``server_name``), then :func:`handshake`; return the socket to use from then on (the TLS
    one) and the welcome. A TLS socket made here is closed again if the handshake fails; the
    plain ``sock`` is the caller's to close."""
    if tls_context is None:
        return sock, handshake(sock, codec, shake, timeout)
    import socket

    from sockcli.tls import client_wrap

    assert isinstance(sock, socket.socket)  # TLS is for TCP: open_tcp_socket's socket
    host = server_name or str(sock.getpeername()[0])
    tls_sock = client_wrap(tls_context, sock, host, timeout)
    try:
        return tls_sock, handshake(tls_sock, codec, shake, timeout)
    except BaseException:
        tls_sock.close()
        raise

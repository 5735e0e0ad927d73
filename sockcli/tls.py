"""TLS for TCP hubs and their clients, through the standard :mod:`ssl` module.

Imported only when a certificate or a CA is configured. Two socket classes adapt
:class:`ssl.SSLSocket` to the two ways sockcli uses sockets:

- :class:`HubTlsSocket`, for the hub's non-blocking selectors loop: ``recv`` and ``send`` raise
  :class:`BlockingIOError` where OpenSSL says "want read/write", as a plain non-blocking socket
  does, so the hub's read and flush paths need no TLS case.
- :class:`ClientTlsSocket`, for clients: blocking calls with a timeout, and safe for one thread
  to read while another writes. OpenSSL forbids concurrent calls on one SSL object, so every
  OpenSSL call is made under a lock on a non-blocking socket, and the waiting (select) is done
  outside the lock.

Both drain what OpenSSL has already decrypted (:meth:`ssl.SSLSocket.pending`) on every
``recv``: bytes held there are invisible to select(), and a reader waiting on select() for them
would wait for the next record instead.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import stat
import threading
import time

from sockcli.exceptions import AuthenticationError, HubAbsentError, ValidationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    _T = TypeVar("_T")

__all__ = [
    "ClientTlsSocket",
    "HubTlsSocket",
    "client_context",
    "client_wrap",
    "handshake_step",
    "server_context",
    "sniff",
]

#: The first byte of every TLS record of a handshake; never the first byte of a sockcli frame
#: (a length prefix of 0x16000000 bytes is far above the 16 MiB limit).
_HANDSHAKE_RECORD = 0x16


def _want() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, "TLS needs the socket to be ready")


class HubTlsSocket(ssl.SSLSocket):
    """A non-blocking server-side TLS socket that behaves like a plain one for the hub."""

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            data = super().recv(buflen, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise _want() from None
        return _drain(self, data, buflen)

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise _want() from None

    def shutdown(self, how: int) -> None:
        # SSLSocket.shutdown drops the TLS layer, and a later recv would hand the hub raw
        # records; shut the socket down and keep the layer.
        socket.socket.shutdown(self, how)


class ClientTlsSocket(ssl.SSLSocket):
    """A client-side TLS socket: blocking with a timeout, one reader and writers in parallel."""

    _sockcli_lock: threading.Lock
    _sockcli_wait: float | None = None  # the timeout callers set; the socket is non-blocking

    def settimeout(self, value: float | None) -> None:
        self._sockcli_wait = value
        super().settimeout(0.0)

    def gettimeout(self) -> float | None:
        return self._sockcli_wait

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def _io(self, call: Callable[[], _T]) -> _T:
        wait = self._sockcli_wait
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            with self._sockcli_lock:
                try:
                    return call()
                except ssl.SSLWantReadError:
                    readable = True
                except ssl.SSLWantWriteError:
                    readable = False
            if wait == 0.0:
                raise _want()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("timed out")
            fd = self.fileno()
            if fd < 0:
                raise OSError(errno.EBADF, "the socket is closed")
            if not wait_fd(fd, readable, left):
                raise TimeoutError("timed out")

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        return self._io(lambda: _drain(self, ssl.SSLSocket.recv(self, buflen, flags), buflen))

    def send(self, data: Any, flags: int = 0) -> int:
        return self._io(lambda: ssl.SSLSocket.send(self, data, flags))

    def do_handshake(self, block: bool = False) -> None:
        self._io(lambda: ssl.SSLSocket.do_handshake(self))

    def shutdown(self, how: int) -> None:
        # Called from another thread to wake the reader: a plain shutdown, no OpenSSL call.
        socket.socket.shutdown(self, how)


def wait_fd(fd: int, readable: bool, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (or writable) for up to ``timeout`` seconds (None: for
    ever); False when the time ran out. poll(), not select(): select() cannot take a
    descriptor above 1023, which a busy process has."""
    poller = select.poll()
    poller.register(fd, select.POLLIN if readable else select.POLLOUT)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))


def _drain(sock: ssl.SSLSocket, data: bytes, buflen: int) -> bytes:
    """``data`` (one record at most: OpenSSL reads one per call) plus more records, up to
    ``buflen`` bytes or until the socket has no more, as a plain socket's recv would give; and
    always whatever OpenSSL has decrypted and holds (pending()), which select() cannot see.

    The socket is non-blocking underneath, so this never waits. An error other than "want
    read/write" propagates: the connection is broken, and the data read with it is moot.
    """
    if not data:
        return data
    chunks = [data]
    total = len(data)
    while True:
        held = sock.pending()
        if total >= buflen and not held:
            break
        try:
            chunk = ssl.SSLSocket.recv(sock, max(held, buflen - total))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not chunk:  # the end of the stream: the next recv reports it
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


# -- contexts -----------------------------------------------------------------------------------

def _check_key_file(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValidationError(f"cannot read TLS key file {path}: {exc.strerror or exc}") \
            from None
    if st.st_mode & 0o004:
        raise ValidationError(f"TLS key file {path} is readable by every user (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}): run 'chmod 600 {path}'")


def server_context(cert: str | os.PathLike[str], key: str | os.PathLike[str] | None = None,
                   ) -> ssl.SSLContext:
    """The hub's context: TLS 1.2 or newer, this certificate chain and key (``key`` may be
    left out when the certificate file holds the key too). Raises ValidationError."""
    cert_path = os.fspath(cert)
    key_path = os.fspath(key) if key is not None else None
    _check_key_file(key_path if key_path is not None else cert_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except FileNotFoundError as exc:
        raise ValidationError(f"cannot read TLS certificate or key {exc.filename or cert_path}: "
                              f"{exc.strerror}") from None
    except (ssl.SSLError, OSError) as exc:
        what = cert_path if key_path is None else f"{cert_path} with key {key_path}"
        raise ValidationError(f"cannot load TLS certificate {what}: "
                              f"{getattr(exc, 'reason', None) or exc}") from None
    context.sslsocket_class = HubTlsSocket
    return context


def client_context(ca: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client's context: it trusts only the certificates ``ca`` holds (a PEM file) and checks
    that the hub's certificate names the address it connects to. Raises ValidationError."""
    path = os.fspath(ca)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=path)
    except FileNotFoundError as exc:
        raise ValidationError(f"cannot read TLS CA file {path}: {exc.strerror}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValidationError(f"cannot load TLS CA file {path}: "
                              f"{getattr(exc, 'reason', None) or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = ClientTlsSocket
    return context


# -- client side --------------------------------------------------------------------------------

def client_wrap(context: ssl.SSLContext, sock: socket.socket, host: str,
                timeout: float) -> ClientTlsSocket:
    """Wrap a connected socket and complete the TLS handshake within ``timeout`` seconds.

    ``host`` is what the hub's certificate must name. Raises AuthenticationError (code
    ``tls_failed``) when TLS fails (untrusted certificate, not a TLS hub), HubAbsentError when
    the hub went away or did not answer (worth retrying). The socket is closed on failure.
    """
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    tls_sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    assert isinstance(tls_sock, ClientTlsSocket)
    tls_sock._sockcli_lock = threading.Lock()
    try:
        tls_sock.settimeout(timeout)
        tls_sock.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        tls_sock.close()
        raise AuthenticationError(
            f"TLS: the hub's certificate is not trusted: {exc.verify_message} (checked against "
            f"tls_ca, for the name or address {host!r})", code="tls_failed") from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        tls_sock.close()
        raise HubAbsentError(f"the hub closed the connection during the TLS handshake: "
                             f"{exc}") from None
    except ssl.SSLError as exc:
        tls_sock.close()
        raise AuthenticationError(f"TLS handshake with the hub failed: {exc.reason or exc} "
                                  "(does the hub serve TLS?)", code="tls_failed") from None
    except TimeoutError as exc:
        tls_sock.close()
        raise HubAbsentError("the hub did not complete the TLS handshake in time") from exc
    except OSError as exc:
        tls_sock.close()
        raise HubAbsentError(f"the hub went away during the TLS handshake: "
                             f"{exc.strerror or exc}") from exc
    return tls_sock


# -- hub side -----------------------------------------------------------------------------------

def sniff(sock: socket.socket) -> bool | None:
    """Peek at the first byte a new connection sent: True for TLS, False for anything else,
    None when nothing came yet. Raises EOFError when the peer closed without a byte."""
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None
    if not first:
        raise EOFError("closed before the TLS handshake")
    return first[0] == _HANDSHAKE_RECORD


def handshake_step(sock: socket.socket) -> str:
    """Drive a non-blocking server handshake: "done", or "read"/"write" (what it waits for).
    Raises ssl.SSLError or OSError when the handshake fails."""
    assert isinstance(sock, ssl.SSLSocket)
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return "read"
    except ssl.SSLWantWriteError:
        return "write"
    return "done"

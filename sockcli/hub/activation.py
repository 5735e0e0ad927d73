"""systemd socket activation: the listening sockets (and the FIFO) a hub inherits.

Why: with a ``sockcli@.socket`` unit, systemd binds the hub's sockets before anything else
runs, and starts ``sockcli serve`` on the first connection. A bar that starts before its hub,
or a script that sends the moment the session starts, never races the hub: its connection
waits in the socket's backlog until the hub accepts it, where it would otherwise fail (no
socket yet) and have to retry.

How the descriptors are passed (``sd_listen_fds(3)``): ``LISTEN_PID`` must be this process's
pid, else nothing is inherited (the variables were meant for another process);
``LISTEN_FDS`` descriptors follow from 3; ``LISTEN_FDNAMES`` names them, colon-separated.
:func:`inherited` reads the variables once and unsets them, so the commands ``serve --exec``
starts do not believe the descriptors are theirs.

How the descriptors are told apart:

- a FIFO (``ListenFIFO=``) by its type: it is the hub's named pipe;
- a socket by its name: ``FileDescriptorName=msgpack`` or ``lines`` (one socket unit per
  socket); any other name, such as the socket unit's own name that systemd gives when the unit
  sets none (one unit can only give one name to all its descriptors), by the path it is
  bound to: ``….lines.sock`` is the JSON-lines socket, any other the MessagePack one.

Each must be where clients look for it (:func:`sockcli.runtime.socket_path`, ``lines_path``,
``fifo_path`` of the settings' ``socket_dir``): a socket elsewhere would be served to nobody,
so it is refused with both paths named, and so is anything but a listening ``AF_UNIX`` stream
socket or a FIFO. Every refusal is an :class:`ActivationError` that says what to change in the
unit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from sockcli.exceptions import ValidationError
from sockcli.runtime import fifo_path, lines_path, socket_path

__all__ = ["LISTEN_FDS_START", "ActivationError", "Inherited", "inherited"]

#: The first descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_MSGPACK, _LINES, _FIFO = "msgpack", "lines", "fifo"
_LINES_SUFFIX = ".lines.sock"
_SOCKET_TYPES = {socket.SOCK_DGRAM: "datagram", socket.SOCK_SEQPACKET: "sequential-packet"}


class ActivationError(ValidationError):
    """What systemd passed cannot be served: a descriptor of the wrong kind, at the wrong
    path, or two of one kind. The text says what to change in the socket unit."""


@dataclass(frozen=True, slots=True)
class Inherited:
    """The descriptors systemd passed, by what they are; None where it passed none (the hub
    makes that one itself). All are close-on-exec and non-blocking."""

    #: The MessagePack listening socket, at ``socket_path(socket_dir, event)``.
    msgpack: socket.socket | None
    #: The JSON-lines listening socket, at ``lines_path(socket_dir, event)``.
    lines: socket.socket | None
    #: The FIFO (``ListenFIFO=``) at ``fifo_path(socket_dir, event)``, open for reading and
    #: writing (as systemd opens it), so that the hub never reads end of file.
    fifo: int | None

    def close(self) -> None:
        """Close every inherited descriptor (systemd keeps its own copies)."""
        for sock in (self.msgpack, self.lines):
            if sock is not None:
                sock.close()
        if self.fifo is not None:
            with contextlib.suppress(OSError):
                os.close(self.fifo)


def inherited(event_name: str, socket_dir: Path, *,
              environ: MutableMapping[str, str] | None = None) -> Inherited | None:
    """The sockets and FIFO systemd passed to this process for ``event_name``, or None when
    it passed nothing (no ``LISTEN_PID``, another process's, or ``LISTEN_FDS=0``).

    ``LISTEN_PID``, ``LISTEN_FDS`` and ``LISTEN_FDNAMES`` are removed from ``environ``
    (``os.environ`` by default) in every case, as ``sd_listen_fds(3)`` does when asked to
    unset them. Raises ActivationError when the variables are malformed or a descriptor
    cannot be served (the descriptors are then closed).
    """
    env = os.environ if environ is None else environ
    pid_text, count_text, names_text = (env.pop(name, None) for name in _VARIABLES)
    if pid_text is None:
        return None
    pid = _number("LISTEN_PID", pid_text)
    if pid != os.getpid():
        return None
    count = _number("LISTEN_FDS", count_text or "0")
    if count == 0:
        return None
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + count)
    sockets: dict[str, socket.socket] = {}
    try:
        found = _sort(fds, names_text, event_name, socket_dir, sockets)
    except BaseException:
        owned = {sock.fileno() for sock in sockets.values()}
        for sock in sockets.values():
            sock.close()
        _close_all(fd for fd in fds if fd not in owned)
        raise
    return Inherited(msgpack=sockets.get(_MSGPACK), lines=sockets.get(_LINES),
                     fifo=found.get(_FIFO))


def _sort(fds: range, names_text: str | None, event_name: str, socket_dir: Path,
          sockets: dict[str, socket.socket]) -> dict[str, int]:
    """Classify every descriptor; the sockets go into ``sockets`` as they are made (for the
    caller to close if one is refused). Returns the descriptor of each kind."""
    count = len(fds)
    names = names_text.split(":") if names_text is not None else ["unknown"] * count
    if len(names) != count:
        raise ActivationError(
            f"LISTEN_FDNAMES names {len(names)} descriptors but LISTEN_FDS passes {count}: "
            "give the socket unit one FileDescriptorName= or none")
    expected = {_MSGPACK: socket_path(socket_dir, event_name),
                _LINES: lines_path(socket_dir, event_name),
                _FIFO: fifo_path(socket_dir, event_name)}
    found: dict[str, tuple[int, str]] = {}
    for fd, name in zip(fds, names, strict=True):
        kind, where, sock = _classify(fd, name, expected)
        if sock is not None:
            sockets[kind if kind not in sockets else f"{kind}+{fd}"] = sock
        if kind in found:
            raise ActivationError(
                f"systemd passed two {_what(kind)}s ({found[kind][1]} and {where}): "
                f"the socket unit must list one, {_directive(kind)}{expected[kind]}")
        found[kind] = (fd, where)
    return {kind: fd for kind, (fd, _) in found.items()}


def _number(variable: str, text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0 or (variable == "LISTEN_PID" and value == 0):
        raise ActivationError(f"{variable}={text!r} is not a valid number: whatever starts "
                              "sockcli serve must follow sd_listen_fds(3)")
    return value


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _what(kind: str) -> str:
    return {_MSGPACK: "MessagePack socket", _LINES: "JSON-lines socket",
            _FIFO: "FIFO"}[kind]


def _directive(kind: str) -> str:
    return "ListenFIFO=" if kind == _FIFO else "ListenStream="


def _classify(fd: int, name: str, expected: dict[str, Path],
              ) -> tuple[str, str, socket.socket | None]:
    """What descriptor ``fd`` (named ``name``) is: its kind, its path (for messages), and
    its socket object (None for the FIFO). Made close-on-exec and non-blocking."""
    try:
        st = os.fstat(fd)
    except OSError as exc:
        raise ActivationError(f"descriptor {fd} that LISTEN_FDS passes is not open "
                              f"({exc.strerror}): whatever starts sockcli serve must pass "
                              "the descriptors it announces") from None
    if stat.S_ISFIFO(st.st_mode):
        return _FIFO, _fifo(fd, name, st, expected[_FIFO]), None
    if not stat.S_ISSOCK(st.st_mode):
        raise ActivationError(
            f"descriptor {fd} passed by systemd is neither a socket nor a FIFO "
            f"({_fd_target(fd)}): the socket unit may only list ListenStream= and "
            "ListenFIFO=")
    sock = socket.socket(fileno=fd)
    try:
        kind, where = _listening(sock, fd, name, expected)
        sock.setblocking(False)
        os.set_inheritable(fd, False)
    except BaseException:
        sock.detach()  # the caller closes the descriptor
        raise
    return kind, where, sock


def _listening(sock: socket.socket, fd: int, name: str, expected: dict[str, Path],
               ) -> tuple[str, str]:
    """Check that ``sock`` is a listening Unix stream socket where clients look for it."""
    if sock.family != socket.AF_UNIX:
        family = {socket.AF_INET: "TCP/IPv4", socket.AF_INET6: "TCP/IPv6"}.get(
            sock.family, f"address family {sock.family}")
        raise ActivationError(
            f"descriptor {fd} passed by systemd is a {family} socket ({_address(sock)}): "
            f"a socket-activated hub serves Unix sockets only: set "
            f"ListenStream={expected[_MSGPACK]} (a path, not a port)")
    address = sock.getsockname()
    if sock.type != socket.SOCK_STREAM:
        kind = _SOCKET_TYPES.get(sock.type, f"type {sock.type}")
        raise ActivationError(
            f"descriptor {fd} passed by systemd is a {kind} Unix socket ({address!r}): use "
            "ListenStream= (a stream socket), not ListenDatagram= or "
            "ListenSequentialPacket=")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise ActivationError(
            f"descriptor {fd} passed by systemd is a Unix socket that does not listen (a "
            "connection, as Accept=yes passes): set Accept=no in the socket unit")
    if not isinstance(address, str) or not address:
        shown = "not bound to a path" if not address else \
            f"in the abstract namespace (@{address[1:].decode(errors='replace')})"
        raise ActivationError(
            f"the Unix socket passed by systemd as descriptor {fd} is {shown}, but clients "
            f"look for a path: set ListenStream={expected[_MSGPACK]}")
    if name == _FIFO:
        raise ActivationError(
            f"descriptor {fd} passed by systemd is named {_FIFO!r} but is a socket "
            f"({address}): give FileDescriptorName={_FIFO} only to a ListenFIFO= unit")
    if name in (_MSGPACK, _LINES):
        kind = name
    else:
        kind = _LINES if address.endswith(_LINES_SUFFIX) else _MSGPACK
    want = expected[kind]
    if not _same_path(address, want):
        raise ActivationError(
            f"the {_what(kind)} passed by systemd is {address}, but clients look for {want}: "
            f"set ListenStream={want} in the socket unit, or {_socket_dir_hint(address, want)}")
    return kind, address


def _fifo(fd: int, name: str, st: os.stat_result, want: Path) -> str:
    """Check the FIFO is the hub's, open it for reading and writing; return its path."""
    where = _fd_target(fd)
    if name in (_MSGPACK, _LINES):
        raise ActivationError(
            f"descriptor {fd} passed by systemd is named {name!r} but is a FIFO ({where}): "
            f"give FileDescriptorName={name} only to a ListenStream= unit")
    try:
        there = os.stat(want, follow_symlinks=False)
    except OSError:
        there = None
    if there is None or (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino):
        raise ActivationError(
            f"the FIFO passed by systemd is {where}, but clients write to {want}: set "
            f"ListenFIFO={want} in the socket unit, or {_socket_dir_hint(where, want)}")
    access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    if access == os.O_WRONLY:
        raise ActivationError(f"the FIFO passed by systemd ({want}) is open for writing only: "
                              "pass it as ListenFIFO= does (open for reading)")
    if access == os.O_RDONLY:
        # Reopened for writing too (as ListenFIFO= does), else the hub would read end of file
        # each time the last writer leaves. Through /proc, the same FIFO whatever its path.
        with contextlib.suppress(OSError):
            again = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                os.dup2(again, fd, inheritable=False)
            finally:
                os.close(again)
    os.set_blocking(fd, False)
    os.set_inheritable(fd, False)
    return str(want)


def _same_path(address: str, want: Path) -> bool:
    if Path(address) == want:
        return True
    try:
        return os.path.realpath(address) == os.path.realpath(want)
    except OSError:
        return False


def _socket_dir_hint(actual: str, want: Path) -> str:
    where = Path(actual.removesuffix(" (deleted)"))
    if where.name == want.name and where.is_absolute():
        return f"socket_dir to {where.parent} (SOCKCLI_SOCKET_DIR)"
    return f"socket_dir to the unit's directory (the file must be named {want.name})"


def _fd_target(fd: int) -> str:
    """What ``fd`` is open on, as /proc shows it (a path, or ``pipe:[…]``)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"descriptor {fd}"


def _address(sock: socket.socket) -> str:
    try:
        host, port = sock.getsockname()[:2]
    except (OSError, ValueError):
        return "unknown address"
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"

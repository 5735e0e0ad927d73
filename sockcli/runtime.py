"""The runtime directory: where hubs keep their sockets and their records.

Each running hub holds an exclusive ``flock`` on ``{socket_dir}/{event}.hub`` for its whole
life and writes its address there as JSON. The kernel drops the lock when the process dies, even
by ``kill -9``, so a record whose lock is free is stale by definition: there is no pid guessing,
and two hubs can never both believe they own an event. TCP clients find a hub's port here;
``sockcli list`` reads every record. Whoever reads a stale record removes it, with what its hub
left (its socket, its FIFO: :func:`_reap`), so a hub killed with -9 leaves nothing for long.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time

from sockcli.exceptions import SocketError, UnsafePathError, ValidationError
from sockcli.jsontext import dumps, loads
from sockcli.kinds import SocketType
from sockcli.rules import is_event_name, validate_event_name

TYPE_CHECKING = False  # the light send path reads records: no typing, pathlib, dataclasses
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any, TypeVar

    _P = TypeVar("_P", str, Path)
    _T = TypeVar("_T")

__all__ = [
    "MAX_UNIX_PATH",
    "HubLock",
    "HubRecord",
    "activatable_events",
    "check_socket_dir",
    "ensure_socket_dir",
    "entry_path",
    "fifo_path",
    "lines_path",
    "list_records",
    "lstat_entry",
    "open_socket_dir",
    "read_record",
    "record_path",
    "socket_exists",
    "socket_path",
]

#: sun_path holds 108 bytes on Linux, one of which is the terminating NUL.
MAX_UNIX_PATH = 107
_LOCK_RETRY_SECONDS = 0.5  # readers take the lock shared for a few microseconds


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = "/proc/self/fd"
_proc: list[bool] = []  # whether /proc/self/fd reaches open directories, looked at once


def open_socket_dir(path: str | os.PathLike[str], *, create: bool = False) -> int | None:
    """Open the socket directory and check what was opened; return its descriptor, or None
    when it does not exist (and ``create`` is false). The caller closes the descriptor.

    The check and the use are one step: the directory is opened without following a
    symbolic link (``O_NOFOLLOW``), checked with ``fstat`` on that descriptor, and then used
    through it (``dir_fd=``, :func:`entry_path`), never by its path again, so a directory
    swapped after the check is not the one used. ``create`` makes it (parents included)
    mode 0700 first.

    Raises UnsafePathError (the same text wherever it is found) for a symbolic link,
    something that is not a directory, a directory another user owns (they could plant or
    swap sockets and records in it), or one group or others may list or write to (search
    alone is allowed). Raises SocketError when it cannot be opened or created otherwise.
    """
    # A trailing slash would make the kernel follow a symbolic link despite O_NOFOLLOW.
    text = os.fspath(path).rstrip("/") or "/"
    try:
        return _open_checked(path, text)
    except FileNotFoundError:
        if not create:
            return None
    except _Unreachable as exc:
        if not create:
            raise SocketError(f"cannot use socket directory {path}: {exc.strerror}") from None
    try:
        os.makedirs(text, mode=0o700, exist_ok=True)
        return _open_checked(path, text)
    except (FileNotFoundError, _Unreachable) as exc:
        raise SocketError(f"cannot create socket directory {path}: {exc.strerror}") from None
    except OSError as exc:
        raise SocketError(f"cannot create socket directory {path}: {exc.strerror}") from exc


#: How often a path that was a link or a file when opened, and is a directory when looked at
#: just after, is opened again (someone is swapping it) before it is refused as what it was.
_SWAPPED_RETRIES = 3


class _Unreachable(OSError):
    """Neither open nor lstat reaches the path: a parent is not a directory."""


def _open_checked(path: str | os.PathLike[str], text: str) -> int:
    fd = -1
    for attempt in range(_SWAPPED_RETRIES, -1, -1):
        try:
            fd = os.open(text, _DIR_FLAGS)
            break
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise SocketError(f"cannot use socket directory {path}: {exc.strerror}"
                                  ) from exc
            try:  # what is there, if anything: a symbolic link, a file, or a file as a parent
                st = os.lstat(text)
            except FileNotFoundError:  # removed meanwhile: as if we had not looked
                raise
            except OSError as unreachable:
                raise _Unreachable(unreachable.errno, unreachable.strerror) from None
            link = stat.S_ISLNK(st.st_mode) or (stat.S_ISDIR(st.st_mode) and
                                                exc.errno == errno.ELOOP)
            if stat.S_ISDIR(st.st_mode) and attempt:
                continue  # a directory again, swapped back meanwhile: open it (and check it)
            if link:
                raise UnsafePathError(
                    f"socket directory {path} is a symbolic link: sockcli does not follow one "
                    "(remove it, or choose another socket_dir)"
                ) from None
            raise UnsafePathError(f"socket directory {path} is not a directory") from None
    try:
        _check_dir(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_dir(path: str | os.PathLike[str], st: os.stat_result) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"socket directory {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise UnsafePathError(
            f"socket directory {path} belongs to uid {st.st_uid}, not to you (uid "
            f"{os.geteuid()}): choose another socket_dir"
        )
    # Group and others may search the directory (x: the 0711 of docs/SECURITY.md's recipe
    # for allowed_uids, to reach a socket whose own mode lets them), never list it (r: the
    # events that run) nor add, remove or rename entries in it (w: plant or swap a socket).
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise UnsafePathError(f"socket directory {path} is writable by others (mode "
                              f"{mode:04o}): run 'chmod 700 {path}'")
    if mode & 0o044:
        raise UnsafePathError(f"socket directory {path} is readable by others (mode "
                              f"{mode:04o}): run 'chmod 700 {path}'")


def ensure_socket_dir(path: _P) -> _P:
    """Create ``path`` 0700 if missing, then refuse it unless it is private to this user
    (:func:`open_socket_dir`)."""
    fd = open_socket_dir(path, create=True)
    if fd is not None:
        os.close(fd)
    return path


def check_socket_dir(path: _P) -> _P:
    """Refuse a socket directory that is a symbolic link, another user's, or open to others
    (:func:`open_socket_dir`); a missing one is accepted (no hub there yet)."""
    fd = open_socket_dir(path)
    if fd is not None:
        os.close(fd)
    return path


def entry_path(dir_fd: int, name: str, path: str) -> str:
    """A path that reaches ``name`` in the directory open as ``dir_fd``, whatever became of
    the directory's own path since it was checked: ``/proc/self/fd/N/name`` (Linux has no
    ``connectat`` or ``bindat``, and such a path is always shorter than sun_path), or
    ``path`` itself where /proc is not mounted (docs/SECURITY.md says what that leaves)."""
    if not _proc:
        _proc.append(os.path.isdir(_PROC_FD))
    via = f"{_PROC_FD}/{dir_fd}/{name}"
    return via if _proc[0] and len(via) <= MAX_UNIX_PATH else path


def lstat_entry(dir_fd: int, name: str, path: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in the checked directory ``dir_fd``; None when nothing is there.

    Raises UnsafePathError for a symbolic link (``path`` names it in the text): a socket is
    reached, bound or removed only where it is, never through a link.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"{path} is a symbolic link: sockcli does not follow one "
                              "(remove it, or choose another socket_dir)")
    return st


def socket_path(socket_dir: Path, event_name: str) -> Path:
    """``{socket_dir}/{event}.sock``, refused if longer than the kernel accepts."""
    return _unix_path(socket_dir / f"{validate_event_name(event_name)}.sock")


def _unix_path(path: Path) -> Path:
    """``path``, refused (ValidationError) if longer than a Unix socket's sun_path holds."""
    size = len(os.fsencode(path))
    if size > MAX_UNIX_PATH:
        raise ValidationError(
            f"socket path {path} is {size} bytes long, over the limit of {MAX_UNIX_PATH} "
            "bytes for Unix sockets: choose a shorter socket_dir or event name"
        )
    return path


def fifo_path(socket_dir: Path, event_name: str) -> Path:
    """``{socket_dir}/{event}.fifo``: the named pipe a Unix hub reads lines from."""
    return socket_dir / f"{validate_event_name(event_name)}.fifo"


def lines_path(socket_dir: Path, event_name: str) -> Path:
    """``{socket_dir}/{event}.lines.sock``: a Unix hub's JSON-lines socket, refused if
    longer than the kernel accepts."""
    return _unix_path(socket_dir / f"{validate_event_name(event_name)}.lines.sock")


def record_path(socket_dir: Path, event_name: str) -> Path:
    """``{socket_dir}/{event}.hub``: the hub's lock and address record."""
    return socket_dir / f"{validate_event_name(event_name)}.hub"


_RECORD_FIELDS = ("event_name", "transport", "pid", "started_ms", "path", "host", "port",
                  "fifo", "lines", "activated")


class HubRecord:
    """What a running hub says about itself. Immutable; compared by value.

    Not a ``dataclass``: ``sockcli send`` imports this module, and ``import dataclasses`` costs
    9.8 ms (python -X importtime, bytecode cached) where ``python -c pass`` takes 8 ms.
    """

    __slots__ = ("activated", "event_name", "fifo", "host", "lines", "path", "pid", "port",
                 "started_ms", "transport")

    event_name: str
    transport: SocketType
    pid: int
    started_ms: int
    path: str | None
    host: str | None
    port: int | None
    #: A Unix hub's named pipe and JSON-lines socket (None: it has none, ``--no-fifo``).
    fifo: str | None
    lines: str | None
    #: Whether the hub's sockets were passed by systemd (socket activation): they are
    #: systemd's, and stay when the hub stops or dies.
    activated: bool

    def __init__(self, *, event_name: str, transport: SocketType, pid: int, started_ms: int,
                 path: str | None = None, host: str | None = None,
                 port: int | None = None, fifo: str | None = None, lines: str | None = None,
                 activated: bool = False) -> None:
        values = (event_name, transport, pid, started_ms, path, host, port, fifo, lines,
                  activated)
        for name, value in zip(_RECORD_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"HubRecord is immutable; cannot set {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _RECORD_FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HubRecord) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in _RECORD_FIELDS)
        return f"HubRecord({fields})"

    @property
    def address(self) -> str:
        """The socket path, or host:port."""
        if self.transport is SocketType.UNIX:
            return str(self.path)
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "event_name": self.event_name,
            "transport": self.transport.value,
            "pid": self.pid,
            "started_ms": self.started_ms,
        }
        if self.transport is SocketType.UNIX:
            data["path"] = self.path
            if self.fifo is not None:
                data["fifo"] = self.fifo
            if self.lines is not None:
                data["lines"] = self.lines
            if self.activated:
                data["activated"] = True
        else:
            data["host"] = self.host
            data["port"] = self.port
        return dumps(data)

    @classmethod
    def from_json(cls, text: str) -> HubRecord | None:
        try:
            data = loads(text)
            return cls(
                event_name=validate_event_name(data["event_name"]),
                transport=SocketType.parse(data["transport"]),
                pid=int(data["pid"]),
                started_ms=int(data["started_ms"]),
                path=data.get("path"),
                host=data.get("host"),
                port=int(data["port"]) if data.get("port") is not None else None,
                fifo=_text_or_none(data.get("fifo")),
                lines=_text_or_none(data.get("lines")),
                activated=data.get("activated") is True,
            )
        except (ValueError, KeyError, TypeError, ValidationError):
            return None


def _text_or_none(value: object) -> str | None:
    if value is not None and type(value) is not str:
        raise TypeError("a path in a hub record must be a string")
    return value


class HubLock:
    """The exclusive claim of one event name in one socket directory.

    The record is opened through the checked directory's descriptor (:func:`open_socket_dir`),
    which the lock keeps until :meth:`release`, so it is created, locked and removed in the
    directory that was checked even if the directory's path is swapped meanwhile.
    """

    def __init__(self, socket_dir: Path, event_name: str) -> None:
        self.path = record_path(socket_dir, event_name)
        self.event_name = event_name
        self._socket_dir = socket_dir
        self._name = os.path.basename(self.path)
        self._fd: int | None = None
        self._dir_fd: int | None = None

    def acquire(self) -> None:
        """Take the claim, or raise SocketError if a live hub holds it (UnsafePathError if
        the directory or the record is not safe to use)."""
        dir_fd = open_socket_dir(self._socket_dir)
        if dir_fd is None:
            raise SocketError(f"cannot use hub record {self.path}: no directory "
                              f"{self._socket_dir}")
        try:
            self._fd = self._lock(dir_fd)
        except BaseException:
            os.close(dir_fd)
            raise
        self._dir_fd = dir_fd

    def _lock(self, dir_fd: int) -> int:
        deadline = time.monotonic() + _LOCK_RETRY_SECONDS
        while True:
            try:
                fd = os.open(self._name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                             0o600, dir_fd=dir_fd)
            except OSError as exc:  # a symlink (ELOOP), a directory, ...: not ours to use
                error = UnsafePathError if exc.errno == errno.ELOOP else SocketError
                raise error(f"cannot use hub record {self.path}: {exc.strerror} (remove "
                            "it or choose another socket_dir)") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise SocketError(
                        f"a hub for event {self.event_name!r} is already running "
                        f"(see {self.path})"
                    ) from None
                time.sleep(0.01)
                continue
            # The previous owner may have unlinked the file between our open and our lock.
            try:
                same = os.stat(self._name, dir_fd=dir_fd, follow_symlinks=False).st_ino == \
                    os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)  # a dead predecessor's address must not be read as ours
                return fd
            os.close(fd)

    def write(self, record: HubRecord) -> None:
        """Publish the hub's address; readers trust it only while the lock is held."""
        assert self._fd is not None
        payload = record.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)

    def release(self) -> None:
        """Remove the record and drop the claim (unlink first: the lock still guards it)."""
        if self._fd is None or self._dir_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._name, dir_fd=self._dir_fd)
        os.close(self._fd)
        os.close(self._dir_fd)
        self._fd = self._dir_fd = None


def _live_record(name: str, dir_fd: int, directory: str) -> HubRecord | None:
    """The record ``name`` in ``dir_fd`` (the directory ``directory``) if its hub lives: its
    lock is held. A record whose lock is free is a dead hub's, cleaned up (:func:`_reap`)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            # Locked: a live hub owns it.
            with open(fd, closefd=False) as fh:
                return HubRecord.from_json(fh.read())
        _reap(name, fd, dir_fd, directory)  # nobody holds it: the record of a dead hub
        return None
    finally:
        os.close(fd)


#: The most of a dead hub's record that is read (a record is a few hundred bytes).
_RECORD_READ = 65536


def _reap(name: str, fd: int, dir_fd: int, directory: str) -> None:
    """Remove what the dead hub of the record ``name`` (open as ``fd``, locked shared) left.

    The lock is made exclusive without waiting: a reader holding it shared, or a hub that is
    starting (it locks, then checks that the name still names what it locked), leaves it to
    them; a hub that starts meanwhile waits for it (:class:`HubLock` retries). Under it, and
    only while the name still names the file locked, the record is read, and each entry its
    hub made is removed by name through the checked directory's descriptor, never through a
    link, only if it is of the expected type, ours, and unused (:func:`_remove_unused`): the
    FIFO, the JSON-lines socket, the socket, then the record. A socket-activated hub's
    sockets stay whatever they look like: they are systemd's. Silent, and every error
    swallowed: a clean-up must never make the command that came across the record fail.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = os.fstat(fd)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != (locked.st_dev, locked.st_ino) or \
                not _ours(st, stat.S_ISREG):
            return
        record = HubRecord.from_json(os.pread(fd, _RECORD_READ, 0).decode("utf-8", "replace"))
        event = name[:-len(".hub")]
        _remove_unused(dir_fd, f"{event}.fifo", directory, stat.S_ISFIFO)
        if record is None or not record.activated:  # unreadable: a hub that died starting
            _remove_unused(dir_fd, f"{event}.lines.sock", directory, stat.S_ISSOCK)
            _remove_unused(dir_fd, f"{event}.sock", directory, stat.S_ISSOCK)
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _ours(st: os.stat_result, kind: Callable[[int], bool]) -> bool:
    return kind(st.st_mode) and st.st_uid == os.geteuid()


def _remove_unused(dir_fd: int, name: str, directory: str, kind: Callable[[int], bool]) -> None:
    """Remove ``name`` if it is a FIFO (``kind`` stat.S_ISFIFO) nobody has open for reading,
    or a socket (stat.S_ISSOCK) nobody listens on, of ours; anything else stays, a symbolic
    link included. In use means someone else's: systemd's (``ListenFIFO=``, ``ListenStream=``
    of a socket unit), which made it anew at the path, and must keep it."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not _ours(st, kind):
            return
        if _fifo_read(dir_fd, name) if kind is stat.S_ISFIFO else \
                _listened(dir_fd, name, os.path.join(directory, name)):
            return
        again = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino):  # not made anew meanwhile
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _fifo_read(dir_fd: int, name: str) -> bool:
    """Whether someone has the FIFO ``name`` open for reading: a non-blocking open for
    writing fails with ENXIO exactly when nobody does (POSIX). Nothing is written, so the
    reader sees nothing (a reader that also holds it for writing never sees end of file)."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY |
                     os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        return exc.errno != errno.ENXIO  # anything else: not known unused, so kept
    os.close(fd)
    return True


def _listened(dir_fd: int, name: str, path: str) -> bool:
    """Whether a connection to the socket ``name`` is taken: anything but a refusal (or its
    absence) counts, so that a socket that may be in use is never removed. Without waiting:
    a Unix connect completes at once or fails with EAGAIN (a full queue: someone listens)."""
    import socket  # the clean-up path only

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(entry_path(dir_fd, name, path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True
    finally:
        probe.close()
    return True


def read_record(socket_dir: str | os.PathLike[str], event_name: str) -> HubRecord | None:
    """The record of the live hub for ``event_name``, or None (absent, stale, or starting);
    a stale one is cleaned up, with what its hub left (:func:`_reap`).

    Read through the checked directory (:func:`open_socket_dir`): UnsafePathError if the
    directory is not safe to use, None if it does not exist.
    """
    name = f"{validate_event_name(event_name)}.hub"
    dir_fd = open_socket_dir(socket_dir)
    if dir_fd is None:
        return None
    try:
        return _live_record(name, dir_fd, os.fspath(socket_dir))
    finally:
        os.close(dir_fd)


def list_records(socket_dir: str | os.PathLike[str]) -> list[HubRecord]:
    """Records of every live hub in ``socket_dir``, sorted by event name (the stale ones
    cleaned up, :func:`_reap`); [] for a missing directory, UnsafePathError for one that is
    not safe to use."""
    def live(dir_fd: int, names: list[str], directory: str) -> list[HubRecord]:
        records = [_live_record(n, dir_fd, directory) for n in names]
        return [r for r in records if r is not None]

    return _in_dir(socket_dir, ".hub", live)


def _in_dir(socket_dir: str | os.PathLike[str], suffix: str,
            look: Callable[[int, list[str], str], list[_T]]) -> list[_T]:
    """``look(dir_fd, names, directory)`` on the sorted names ending in ``suffix`` of the
    checked socket directory (:func:`open_socket_dir`); [] when it is missing or cannot be
    listed."""
    dir_fd = open_socket_dir(socket_dir)
    if dir_fd is None:
        return []
    try:
        try:
            names = sorted(p for p in os.listdir(dir_fd) if p.endswith(suffix))
        except OSError:
            return []
        return look(dir_fd, names, os.fspath(socket_dir))
    finally:
        os.close(dir_fd)


def socket_exists(socket_dir: str | os.PathLike[str], event_name: str) -> bool:
    """Whether ``{socket_dir}/{event}.sock`` is a socket of ours, whether or not a hub has a
    record: where a socket-activated hub that has not started yet is found (systemd holds
    the socket and starts the hub on the first connection). Looked at through the checked
    directory, without following a link (UnsafePathError if the directory is unsafe)."""
    name = f"{validate_event_name(event_name)}.sock"
    dir_fd = open_socket_dir(socket_dir)
    if dir_fd is None:
        return False
    try:
        return _is_socket(dir_fd, name)
    finally:
        os.close(dir_fd)


def activatable_events(socket_dir: str | os.PathLike[str]) -> list[str]:
    """The events whose socket ``{event}.sock`` is there (a socket of ours) while no live
    hub has a record for them: socket-activated hubs that have not started yet, by name.
    [] for a missing directory, UnsafePathError for one that is not safe to use.

    Nothing is connected to: a connection would start such a hub (and every one of them,
    for a command that only looks)."""
    def waiting(dir_fd: int, names: list[str], directory: str) -> list[str]:
        events = []
        for name in names:
            event = name[:-len(".sock")]
            if not is_event_name(event):  # {event}.lines.sock among them
                continue
            # The record first: cleaning up after a dead hub may remove its socket.
            if _live_record(f"{event}.hub", dir_fd, directory) is None and \
                    _is_socket(dir_fd, name):
                events.append(event)
        return events

    return _in_dir(socket_dir, ".sock", waiting)


def _is_socket(dir_fd: int, name: str) -> bool:
    try:
        return _ours(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), stat.S_ISSOCK)
    except OSError:
        return False

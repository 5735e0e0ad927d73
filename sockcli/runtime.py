"""The runtime directory: where hubs keep their sockets and their records.

Each running hub holds an exclusive ``flock`` on ``{socket_dir}/{event}.hub`` for its whole
life and writes its address there as JSON. The kernel drops the lock when the process dies, even
by ``kill -9``, so a record whose lock is free is stale by definition: there is no pid guessing,
and two hubs can never both believe they own an event. TCP clients find a hub's port here;
``sockcli list`` reads every record.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time

from sockcli.exceptions import SocketError, UnsafePathError, ValidationError
from sockcli.kinds import SocketType
from sockcli.rules import validate_event_name

TYPE_CHECKING = False  # the light send path reads records: no typing, pathlib, dataclasses
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TypeVar

    _P = TypeVar("_P", str, Path)

__all__ = [
    "MAX_UNIX_PATH",
    "HubLock",
    "HubRecord",
    "check_socket_dir",
    "ensure_socket_dir",
    "entry_path",
    "list_records",
    "lstat_entry",
    "open_socket_dir",
    "read_record",
    "record_path",
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
    path = socket_dir / f"{validate_event_name(event_name)}.sock"
    size = len(os.fsencode(path))
    if size > MAX_UNIX_PATH:
        raise ValidationError(
            f"socket path {path} is {size} bytes long, over the limit of {MAX_UNIX_PATH} "
            "bytes for Unix sockets: choose a shorter socket_dir or event name"
        )
    return path


def record_path(socket_dir: Path, event_name: str) -> Path:
    """``{socket_dir}/{event}.hub``: the hub's lock and address record."""
    return socket_dir / f"{validate_event_name(event_name)}.hub"


_RECORD_FIELDS = ("event_name", "transport", "pid", "started_ms", "path", "host", "port")


class HubRecord:
    """What a running hub says about itself. Immutable; compared by value.

    Not a ``dataclass``: ``sockcli send`` imports this module, and ``import dataclasses`` costs
    9.8 ms (python -X importtime, bytecode cached) where ``python -c pass`` takes 8 ms.
    """

    __slots__ = ("event_name", "host", "path", "pid", "port", "started_ms", "transport")

    event_name: str
    transport: SocketType
    pid: int
    started_ms: int
    path: str | None
    host: str | None
    port: int | None

    def __init__(self, *, event_name: str, transport: SocketType, pid: int, started_ms: int,
                 path: str | None = None, host: str | None = None,
                 port: int | None = None) -> None:
        values = (event_name, transport, pid, started_ms, path, host, port)
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
        else:
            data["host"] = self.host
            data["port"] = self.port
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> HubRecord | None:
        try:
            data = json.loads(text)
            return cls(
                event_name=validate_event_name(data["event_name"]),
                transport=SocketType.parse(data["transport"]),
                pid=int(data["pid"]),
                started_ms=int(data["started_ms"]),
                path=data.get("path"),
                host=data.get("host"),
                port=int(data["port"]) if data.get("port") is not None else None,
            )
        except (ValueError, KeyError, TypeError, ValidationError):
            return None


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


def _live_record(name: str, dir_fd: int) -> HubRecord | None:
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
        fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it: stale record of a dead hub
        return None
    finally:
        os.close(fd)


def read_record(socket_dir: str | os.PathLike[str], event_name: str) -> HubRecord | None:
    """The record of the live hub for ``event_name``, or None (absent, stale, or starting).

    Read through the checked directory (:func:`open_socket_dir`): UnsafePathError if the
    directory is not safe to use, None if it does not exist.
    """
    name = f"{validate_event_name(event_name)}.hub"
    dir_fd = open_socket_dir(socket_dir)
    if dir_fd is None:
        return None
    try:
        return _live_record(name, dir_fd)
    finally:
        os.close(dir_fd)


def list_records(socket_dir: str | os.PathLike[str]) -> list[HubRecord]:
    """Records of every live hub in ``socket_dir``, sorted by event name; [] for a missing
    directory, UnsafePathError for one that is not safe to use."""
    dir_fd = open_socket_dir(socket_dir)
    if dir_fd is None:
        return []
    try:
        try:
            names = sorted(p for p in os.listdir(dir_fd) if p.endswith(".hub"))
        except OSError:
            return []
        records = [_live_record(n, dir_fd) for n in names]
    finally:
        os.close(dir_fd)
    return [r for r in records if r is not None]

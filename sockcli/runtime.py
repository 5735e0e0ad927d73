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

from sockcli.exceptions import SocketError, ValidationError
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
    "list_records",
    "read_record",
    "record_path",
    "socket_path",
]

#: sun_path holds 108 bytes on Linux, one of which is the terminating NUL.
MAX_UNIX_PATH = 107
_LOCK_RETRY_SECONDS = 0.5  # readers take the lock shared for a few microseconds


def ensure_socket_dir(path: _P) -> _P:
    """Create ``path`` 0700 if missing, then refuse it unless it is private to this user."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise SocketError(f"cannot create socket directory {path}: {exc.strerror}") from exc
    return check_socket_dir(path)


def check_socket_dir(path: _P) -> _P:
    """Refuse a directory another user owns or others may write: they could swap our sockets."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise SocketError(f"cannot use socket directory {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SocketError(f"socket directory {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise SocketError(
            f"socket directory {path} belongs to uid {st.st_uid}, not to you (uid "
            f"{os.geteuid()}): choose another socket_dir"
        )
    if st.st_mode & 0o022:
        raise SocketError(
            f"socket directory {path} is writable by others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): run 'chmod 700 {path}'"
        )
    return path


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
    """The exclusive claim of one event name in one socket directory."""

    def __init__(self, socket_dir: Path, event_name: str) -> None:
        self.path = record_path(socket_dir, event_name)
        self.event_name = event_name
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the claim, or raise SocketError if a live hub holds it."""
        deadline = time.monotonic() + _LOCK_RETRY_SECONDS
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                             0o600)
            except OSError as exc:  # a symlink (ELOOP), a directory, ...: not ours to use
                raise SocketError(f"cannot use hub record {self.path}: {exc.strerror} (remove "
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
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)  # a dead predecessor's address must not be read as ours
                self._fd = fd
                return
            os.close(fd)

    def write(self, record: HubRecord) -> None:
        """Publish the hub's address; readers trust it only while the lock is held."""
        assert self._fd is not None
        payload = record.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)

    def release(self) -> None:
        """Remove the record and drop the claim (unlink first: the lock still guards it)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def _live_record(path: str | os.PathLike[str]) -> HubRecord | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
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
    """The record of the live hub for ``event_name``, or None (absent, stale, or starting)."""
    name = f"{validate_event_name(event_name)}.hub"
    return _live_record(os.path.join(os.fspath(socket_dir), name))


def list_records(socket_dir: str | os.PathLike[str]) -> list[HubRecord]:
    """Records of every live hub in ``socket_dir``, sorted by event name."""
    try:
        names = sorted(p for p in os.listdir(socket_dir) if p.endswith(".hub"))
    except OSError:
        return []
    records = [_live_record(os.path.join(os.fspath(socket_dir), n)) for n in names]
    return [r for r in records if r is not None]

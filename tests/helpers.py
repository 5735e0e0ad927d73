"""Small tools the tests share: waiting on a condition, raw protocol peers, processes run as
another user."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec, Sentinel


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class RawPeer:
    """A hand-driven protocol client over a plain socket, for what SocketClient will not do.

    With a ``token`` (:meth:`for_hub` gives it a TCP hub's per-hub secret), :meth:`hello`
    proves it as sockcli's clients do; frames sent by hand are sent as they are.
    """

    def __init__(self, address: str, *, max_frame_size: int = 65536, timeout: float = 5.0,
                 token: bytes | None = None):
        if address.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        else:
            host, _, port = address.rpartition(":")
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.codec = Codec(max_frame_size=max_frame_size)
        self.token = token

    @classmethod
    def for_hub(cls, hub: Any, **kwargs: Any) -> RawPeer:
        """A peer of ``hub``, holding its per-hub secret if it made one."""
        kwargs.setdefault("token", hub_secret(hub))
        return cls(str(hub.address), **kwargs)

    def send_frame(self, frame: fr.Frame) -> None:
        self.sock.sendall(self.codec.send(frame))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, **kwargs: Any) -> fr.Welcome:
        """Say hello (and prove the token, if the peer has one); return the welcome."""
        if self.token is None:
            self.send_frame(fr.Hello(**kwargs))
            frame = self.next_frame()
            assert isinstance(frame, fr.Welcome), frame
            return frame
        from sockcli.protocol.auth import METHOD, ClientAuth

        proving = ClientAuth(self.token)
        self.send_frame(fr.Hello(auth=(METHOD,), **kwargs))
        challenge = self.next_frame()
        assert isinstance(challenge, fr.Challenge), challenge
        self.send_frame(proving.answer(challenge))
        frame = self.next_frame()
        assert isinstance(frame, fr.Welcome), frame
        proving.check_welcome(frame.auth)
        return frame

    def next_frame(self) -> fr.Frame | None:
        """The next frame, or None at end of stream."""
        while True:
            event = self.codec.next_event()
            if event is CLOSED:
                return None
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            self.codec.receive_data(data)

    def close(self) -> None:
        self.sock.close()


def hub_secret(hub: Any) -> bytes | None:
    """The per-hub secret of a TCP hub that made one (read as its clients read it), else
    None."""
    from sockcli.hubsecret import read_secret
    from sockcli.types import SocketType

    if getattr(hub, "transport", None) is not SocketType.TCP:
        return None
    return read_secret(hub.config.socket_dir, hub.event_name)


def short_tmp_dir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="sk-", dir="/tmp"))


# -- processes run as another user ------------------------------------------------------------
#
# The checkout, and the venv inside it, may be in a directory the other user cannot read: a
# Debian home (0700) or `mktemp -d` (0700). So the child gets nothing from the checkout: its
# script uses the standard library only and comes on the command line, and it runs on an
# interpreter that user can run and read (the venv's when it can, else the one behind it, else
# the system's). The protocol is spoken by the test, through the child (OtherUserPeer).


def other_user() -> pwd.struct_passwd:
    """The user ``nobody``; skips the test unless we are root with setpriv (util-linux)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run a process as another user")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody to run a process as another user")


def _as(user: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


#: What a child run as another user inherits: no PYTHONPATH, no venv, nothing of ours.
_CHILD_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8",
              "PYTHONDONTWRITEBYTECODE": "1"}


@functools.cache
def _python_for(uid: int, gid: int) -> str | None:
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [sys.executable, os.path.realpath(sys.executable), base, os.path.realpath(base),
                  shutil.which("python3", path=_CHILD_ENV["PATH"])]
    user = pwd.getpwuid(uid)
    for python in dict.fromkeys(c for c in candidates if c):
        try:
            done = subprocess.run(
                [*_as(user), python, "-I", "-c", "import select, socket, sys; "
                 "sys.exit(sys.version_info < (3, 8))"],
                cwd="/", env=_CHILD_ENV, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return python
    return None


def python_for(user: pwd.struct_passwd) -> str:
    """An interpreter ``user`` can run, standard library included; skips the test if none."""
    python = _python_for(user.pw_uid, user.pw_gid)
    if python is None:
        pytest.skip(f"no Python that user {user.pw_name} can run (the checkout's venv is in a "
                    f"directory {user.pw_name} cannot read, and no system python3 works)")
    return python


def spawn_as(user: pwd.struct_passwd, script: str, *args: str) -> subprocess.Popen[str]:
    """Run ``script`` (standard library only) as ``user``, from ``/``, with pipes (text)."""
    return subprocess.Popen(
        [*_as(user), python_for(user), "-I", "-c", textwrap.dedent(script), *args],
        cwd="/", env=_CHILD_ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def child_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The next line ``proc`` prints (stripped); fails with the child's stderr if it ends."""
    from tests.clitools import read_line

    try:
        return read_line(proc, "stdout", timeout).strip()
    except AssertionError as exc:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"{exc}; the child's stderr:\n{err}") from None


#: Connects to argv[1] (a Unix socket's path, or HOST:PORT), says "connected PID UID GID",
#: writes the hex bytes of argv[2], then prints what it reads as "data HEX" lines, and "closed"
#: at the end; exits when the socket or its stdin closes.
_PEER_SCRIPT = """
    import os, select, socket, sys
    if sys.argv[1].startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sys.argv[1])
    else:
        host, _, port = sys.argv[1].rpartition(":")
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    print("connected", os.getpid(), os.getuid(), os.getgid(), flush=True)
    s.sendall(bytes.fromhex(sys.argv[2]))
    while True:
        ready = select.select([s, 0], [], [], 30)[0]
        if not ready:
            sys.exit("nothing happened for 30 s")
        if 0 in ready and not os.read(0, 4096):
            break
        if s in ready:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                print("closed", flush=True)
                break
            print("data", data.hex(), flush=True)
"""


class OtherUserPeer:
    """A raw protocol client whose socket belongs to another user's process: the test encodes
    and decodes, the child (run as ``user``) only connects and moves the bytes.

    ``path`` is a Unix socket's path or a TCP hub's ``host:port``; ``hello`` is the first frame,
    or the frames to send at once (pipelined).
    """

    def __init__(self, user: pwd.struct_passwd, path: str | os.PathLike[str],
                 hello: fr.Frame | list[fr.Frame], children: list[Any]) -> None:
        self.codec = Codec()
        frames = hello if isinstance(hello, list) else [hello]
        data = b"".join(self.codec.send(frame) for frame in frames)
        self.proc = spawn_as(user, _PEER_SCRIPT, os.fspath(path), data.hex())
        children.append(self.proc)
        word, pid, uid, gid = child_line(self.proc).split()
        assert word == "connected", word
        #: The child's pid, uid and gid, as it saw them.
        self.ids = (int(pid), int(uid), int(gid))

    def next_map(self, timeout: float = 10.0) -> dict[str, Any] | Sentinel:
        """The next frame the hub sent, as its wire map, or CLOSED."""
        while True:
            item = self.codec.next_map()
            if item is not NEED_DATA:
                return item
            line = child_line(self.proc, timeout)
            if line == "closed":
                self.codec.receive_data(b"")
            else:
                word, _, data = line.partition(" ")
                assert word == "data", line
                self.codec.receive_data(bytes.fromhex(data))

    def close(self, timeout: float = 10.0) -> int:
        """Close the child's stdin (it leaves) and return its exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)


def _openssl(cwd: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr


def make_certs(directory: Path, server: str, cas: tuple[str, ...] = ("ca",)) -> dict[str, Path]:
    """Test certificates made with the openssl command: a CA for each name of ``cas`` (the
    first signs), and a certificate ``{server}.pem`` (key ``{server}.key``) it signed for
    127.0.0.1, ::1 and localhost (P-256 keys, two days, the usual extensions). Returns each
    CA's PEM by its name, ``cert`` and ``key``. The caller skips or fails without openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    for ca in cas:
        _openssl(directory, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{ca}.key", "-out",
                 f"{ca}.pem", "-days", "2", "-subj", f"/CN=sockcli test {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl(directory, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{server}.key", "-out", f"{server}.csr", "-subj", "/CN=localhost")
    (directory / f"{server}.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n")
    _openssl(directory, "x509", "-req", "-in", f"{server}.csr", "-CA", f"{cas[0]}.pem",
             "-CAkey", f"{cas[0]}.key", "-CAcreateserial", "-out", f"{server}.pem", "-days",
             "2", "-extfile", f"{server}.ext")
    for key in directory.glob("*.key"):
        os.chmod(key, 0o600)
    return {**{ca: directory / f"{ca}.pem" for ca in cas},
            "cert": directory / f"{server}.pem", "key": directory / f"{server}.key"}

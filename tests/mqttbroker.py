"""A private mosquitto for the bridge tests (tests/test_bridge.py, tests/test_bridge_netns.py).

Each :class:`Broker` has its own directory: a config, a log, a persistence directory, and for
the variants a password file (``kind="password"``) or a test CA and a server certificate it
signed (``kind="tls"``). It listens on a free port of 127.0.0.1 (or on a given address inside a
network namespace), and can be stopped with any signal and started again on the same port with
the same config and persistence: the broker a bridge knew comes back, sessions included.

mosquitto is a real, separate program: :func:`require_mosquitto` skips the test (with the
reason) where it is not installed, and :func:`require_clients` where ``mosquitto_pub`` and
``mosquitto_sub`` (Debian: mosquitto-clients) are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from tests.clitools import free_port
from tests.helpers import make_certs

__all__ = ["MOSQUITTO", "Broker", "Brokers", "make_test_ca", "require_clients", "require_mosquitto"]

#: Where Debian's mosquitto package installs the broker.
MOSQUITTO = "/usr/sbin/mosquitto"

#: The account of the password variant.
USERNAME = "sockcli-test"
PASSWORD = "s3cret-pa55word-for-the-test"


def require_mosquitto() -> None:
    """Skip the test unless the mosquitto broker is installed (apt-get install mosquitto)."""
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip(f"the bridge tests need the mosquitto broker ({MOSQUITTO}): "
                    "apt-get install mosquitto")


def require_clients() -> None:
    """Skip the test unless mosquitto_pub and mosquitto_sub are installed."""
    missing = [c for c in ("mosquitto_pub", "mosquitto_sub") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install mosquitto-clients")


def make_test_ca(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate it signed for 127.0.0.1, ::1 and localhost
    (:func:`tests.helpers.make_certs`). Returns ``ca``, ``cert`` and ``key``."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS bridge test needs the openssl command (apt-get install openssl)")
    return make_certs(directory, "broker")


class Broker:
    """One mosquitto with a private config, on a fixed port for its whole life.

    ``kind``: ``anonymous`` (anyone may connect), ``password`` (a password file with
    :data:`USERNAME` / :data:`PASSWORD`, anonymous refused) or ``tls`` (a TLS listener whose
    certificate the test CA :attr:`ca` signed). ``prefix`` runs the broker under a command
    (``ip netns exec NS``); ``host`` is the address it listens on.
    """

    def __init__(self, root: Path, *, kind: str = "anonymous", host: str = "127.0.0.1",
                 port: int | None = None, prefix: Sequence[str] = ()) -> None:
        require_mosquitto()
        if kind not in ("anonymous", "password", "tls"):
            raise ValueError(f"unknown broker kind {kind!r}")
        self.kind = kind
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port if port is not None else free_port()
        self.prefix = list(prefix)
        self.conf = root / "mosquitto.conf"
        self.log = root / "mosquitto.log"
        self.data = root / "data"
        self.data.mkdir(exist_ok=True)
        self.db = self.data / "mosquitto.db"
        self.ca: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.conf.write_text(self._config())

    # -- the config ------------------------------------------------------------------------

    def _config(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            # Run as whoever runs the tests: as root, mosquitto would otherwise switch to the
            # user mosquitto, who cannot read this private directory.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            # Persistence is what makes "no loss across a broker restart" possible at all:
            # the sessions of the bridges (their subscriptions, the QoS 1 messages queued for
            # them while they are away) and the retained messages are saved to
            # persistence_location every autosave_interval (1 s; mosquitto saves when a whole
            # second has gone by since the last save, so about every 2 s) and on a clean stop.
            # Even after kill -9 the broker comes back with everything saved before it died:
            # wait_saved() waits for a save made after a given moment.
            "persistence true",
            f"persistence_location {self.data}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            # A bridge away for a while gets all it missed (mosquitto's default is 1000).
            "max_queued_messages 100000",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]
        if self.kind == "password":
            if shutil.which("mosquitto_passwd") is None:
                pytest.skip("the password broker needs mosquitto_passwd: apt-get install "
                            "mosquitto")
            passwords = self.root / "passwords"
            done = subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USERNAME,
                                   PASSWORD], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            lines += [f"password_file {passwords}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if self.kind == "tls":
            certs = make_test_ca(self.root / "certs")
            self.ca = certs["ca"]
            lines += [f"cafile {certs['ca']}", f"certfile {certs['cert']}",
                      f"keyfile {certs['key']}", "tls_version tlsv1.2"]
        return "\n".join(lines) + "\n"

    # -- what clients use ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL a bridge is given: mqtt:// (mqtts:// for the TLS variant)."""
        scheme = "mqtts" if self.kind == "tls" else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    def client_args(self) -> list[str]:
        """The connection options of mosquitto_pub and mosquitto_sub for this broker."""
        args = ["-h", self.host, "-p", str(self.port)]
        if self.kind == "password":
            args += ["-u", USERNAME, "-P", PASSWORD]
        if self.ca is not None:
            args += ["--cafile", str(self.ca)]
        return args

    def pub(self, topic: str, payload: str | bytes, *, qos: int = 1,
            retain: bool = False) -> None:
        """Publish one message with mosquitto_pub (QoS 1 by default: it has reached the broker
        when this returns)."""
        require_clients()
        data = payload.encode() if isinstance(payload, str) else payload
        args = [*self.prefix, "mosquitto_pub", *self.client_args(), "-t", topic, "-q", str(qos),
                "-s"]
        if retain:
            args.append("-r")
        done = subprocess.run(args, input=data, capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def sub(self, *topics: str) -> subprocess.Popen[str]:
        """``mosquitto_sub -v`` of ``topics``: one ``TOPIC PAYLOAD`` line per message (bytes
        that are not UTF-8 replaced). The caller stops it."""
        require_clients()
        args = [*self.prefix, "mosquitto_sub", *self.client_args(), "-v", "-q", "1"]
        for topic in topics:
            args += ["-t", topic]
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, encoding="utf-8", errors="replace")

    # -- running it ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> Broker:
        """Start mosquitto and return once it accepts connections: its log says it is running
        (it opens its listeners first), and, where the address is reachable from here, a TCP
        connection is accepted."""
        assert not self.running, "the broker is already running"
        offset = self.log.stat().st_size if self.log.exists() else 0
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = open(self.root / "mosquitto.stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([*self.prefix, MOSQUITTO, "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr)
        deadline = time.monotonic() + timeout
        while not self._log_since(offset).count(" running"):
            self._check_alive(deadline, "say it is running")
            time.sleep(0.01)
        if not self.prefix:
            while True:
                try:
                    socket.create_connection((self.host, self.port), timeout=1).close()
                    break
                except OSError:
                    self._check_alive(deadline, f"accept on {self.host}:{self.port}")
                    time.sleep(0.01)
        return self

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``signum`` (SIGTERM: a clean stop that saves everything and sends the wills;
        SIGKILL: a crash) and return the exit status."""
        assert self.proc is not None and self.proc.poll() is None, "the broker is not running"
        self.proc.send_signal(signum)
        return self.proc.wait(timeout)

    def kill(self) -> int:
        """kill -9: what was saved (wait_saved) survives, the rest is lost, no will is sent."""
        return self.stop(signal.SIGKILL)

    def restart(self, timeout: float = 15.0) -> Broker:
        """Start again, same port, same config, same persistence."""
        return self.start(timeout)

    def wait_saved(self, timeout: float = 15.0) -> None:
        """Wait until mosquitto has saved its in-memory database after this call began: what
        was true then (sessions, subscriptions, retained messages) survives even kill -9."""
        since = time.time_ns()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.db.stat().st_mtime_ns > since:
                    return
            except FileNotFoundError:
                pass
            self._check_alive(deadline, "save its database")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop it if it runs (teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the broker's log and stderr, for failure messages."""
        text = self._log_since(0).splitlines()[-lines:]
        err = self.root / "mosquitto.stderr"
        if err.exists():
            text += err.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _check_alive(self, deadline: float, what: str) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited ({self.proc.returncode}) before it could "
                                 f"{what}:\n{self.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"mosquitto did not {what} in time:\n{self.log_tail()}")

    def __repr__(self) -> str:
        return f"Broker({self.kind}, {self.url})"


class Brokers:
    """The brokers of one test (a fixture's factory): ``brokers(kind=...)`` makes and starts
    one in a directory of its own under ``base``; :meth:`close` stops them all."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.made: list[Broker] = []

    def __call__(self, kind: str = "anonymous", *, start: bool = True,
                 **kwargs: Any) -> Broker:
        root = self.base / f"broker-{len(self.made)}"
        broker = Broker(root, kind=kind, **kwargs)
        self.made.append(broker)
        return broker.start() if start else broker

    def close(self) -> None:
        for broker in self.made:
            broker.close()

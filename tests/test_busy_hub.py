"""A hub whose accept queue is full (EAGAIN on connect) is busy, not absent and not broken:
clients retry it within their timeout (docs/RELIABILITY.md); and a TLS handshake that stalls
costs the hub no CPU, before or after the handshake timeout."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sockcli.client.connect import open_unix_socket, retry_while_absent
from sockcli.exceptions import HubAbsentError


def _full_listener(path: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket that accepts nothing, its queue filled until connect says EAGAIN."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued = []
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:
            s.close()
            return listener, queued
        queued.append(s)


@pytest.mark.timeout(30)
def test_a_full_accept_queue_is_busy_and_retried(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    path = run / "ev.sock"
    listener, queued = _full_listener(path)
    try:
        with pytest.raises(HubAbsentError, match="is busy: its queue of connections"):
            open_unix_socket(path, 1.0, "ev")
        # Retried, not given up: once the hub accepts again, the same call gets in.
        attempts = []

        def attempt() -> socket.socket:
            attempts.append(1)
            if len(attempts) == 3:  # the hub catches up: its queue empties
                for s in queued:
                    s.close()
                listener.accept()[0].close()
                while True:
                    listener.setblocking(False)
                    try:
                        listener.accept()[0].close()
                    except BlockingIOError:
                        break
            return open_unix_socket(path, 1.0, "ev")

        sock = retry_while_absent(attempt, time.monotonic() + 10, max_delay=0.05)
        sock.close()
        assert len(attempts) >= 3
    finally:
        for s in queued:
            s.close()
        listener.close()


def _openssl(cwd: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(60)
def test_stalled_tls_handshakes_cost_no_cpu(cli: Any, tmp_path: Path) -> None:
    _openssl(tmp_path, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "hub.key", "-out", "hub.pem", "-days", "2", "-subj",
             "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1")
    os.chmod(tmp_path / "hub.key", 0o600)
    hub = cli.serve("tl", "--tcp", "--insecure", "--tls-cert", str(tmp_path / "hub.pem"),
                    "--tls-key", str(tmp_path / "hub.key"),
                    env={"SOCKCLI_HANDSHAKE_TIMEOUT": "0.5"})
    host, port = cli.record("tl")["host"], cli.record("tl")["port"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    before = _cpu_seconds(hub.pid)
    stalled = []
    for i in range(12):  # half a ClientHello, or a whole one whose answer is never read
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(hello[: len(hello) // 2] if i % 2 else hello)
        stalled.append(s)
    for s in stalled:  # each is closed by the hub at its handshake timeout
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass  # closed with our bytes unread: a reset is a close too
        s.close()
    assert _cpu_seconds(hub.pid) - before < 0.3

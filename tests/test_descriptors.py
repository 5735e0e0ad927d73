"""Out of file descriptors (docs/RELIABILITY.md): a hub whose descriptors are all in use
refuses new clients with ``max_connections`` (a frame they can read, not silence), without a
busy loop and without a flood of log lines, and serves its clients as before."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sockcli.hub.descriptors import RESERVED, connection_capacity
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec

# The hub runs in a child whose descriptors are nearly all taken by files it opened: then
# accept() fails with EMFILE, which is what a busy host program does to a library hub.
_CHILD = r"""
import json, os, resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from sockcli import create_server
hub = create_server("unix", "fd", socket_dir=sys.argv[1], max_connections=1000)
hub.start()
hog = []
try:
    while True:
        hog.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
for fd in hog[-3:]:  # three left: three clients get in, the others are refused
    os.close(fd)
print("ready", flush=True)
expected = int(sys.stdin.readline())
# The client read its refusal before the hub's loop had counted it (it counts a batch once
# the batch is refused): wait for the count, bounded.
deadline = time.monotonic() + 10
while hub.stats()["refused_connections"] < expected and time.monotonic() < deadline:
    time.sleep(0.01)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "stats": hub.stats()}), flush=True)
hub.stop()
"""


def _first_frame(sock: socket.socket) -> fr.Frame | None:
    codec = Codec()
    while True:
        event = codec.next_event()
        if event is CLOSED:
            return None
        if event is not NEED_DATA:
            return event  # type: ignore[return-value]
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        codec.receive_data(data)


@pytest.mark.timeout(60)
def test_out_of_descriptors_refuses_clients_without_a_busy_loop(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(run)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        welcomed = refused = 0
        socks = []
        for _ in range(40):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(str(run / "fd.sock"))
            # Refused at once, it may be closed already: the refusal is still there to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(Codec().send(fr.Hello(subscribe=True)))
            frame = _first_frame(sock)
            if isinstance(frame, fr.Welcome):
                welcomed += 1
                socks.append(sock)
            else:
                assert isinstance(frame, fr.ErrorFrame), frame
                assert frame.code == fr.ErrorCode.MAX_CONNECTIONS
                assert "out of file descriptors" in frame.reason
                refused += 1
                sock.close()
        assert (welcomed, refused) == (3, 37)
        child.stdin.write(f"{refused}\n")
        child.stdin.flush()
        figures = json.loads(child.stdout.readline())
        assert figures["stats"]["refused_connections"] == 37
        assert figures["cpu"] < 5.0  # a busy loop would have spent the whole run
        for sock in socks:
            sock.close()
    finally:
        if child.poll() is None:
            child.kill()
        _, err = child.communicate(timeout=10)
    warnings = [line for line in err.splitlines() if "out of file descriptors" in line]
    assert len(warnings) <= 1, err  # said once per interval, not once per attempt


def test_max_connections_is_kept_below_the_descriptor_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_capacity(10, "ev") == 10
    if soft != resource.RLIM_INFINITY:
        assert connection_capacity(soft * 2, "ev") == soft - RESERVED

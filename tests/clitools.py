"""Running the installed ``sockcli`` executable in subprocesses, for the end-to-end tests."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import queue
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The console script installed next to the interpreter running the tests.
SOCKCLI = str(Path(sys.executable).with_name("sockcli"))


class Cli:
    """A private environment (runtime and config directories) and ways to run sockcli in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "run"
        self.runtime.mkdir(mode=0o700)
        self.config_home = root / "cfg"
        self.config_home.mkdir()
        self.socket_dir = self.runtime / "sockcli"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKCLI_")}
        env.update(XDG_RUNTIME_DIR=str(self.runtime), XDG_CONFIG_HOME=str(self.config_home),
                   XDG_CACHE_HOME=str(root / "cache"),
                   PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
        self.env = env
        self.procs: list[subprocess.Popen[str]] = []

    def run(self, *args: str, input: str | None = None, timeout: float = 20.0,
            env: dict[str, str] | None = None, stdin: Any = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``sockcli ARGS`` to completion."""
        return subprocess.run(
            [SOCKCLI, *args], input=input, capture_output=True, text=True, timeout=timeout,
            env={**self.env, **(env or {})},
            stdin=stdin if input is None else None,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any,
              ) -> subprocess.Popen[str]:
        """Start ``sockcli ARGS`` in the background; stopped at teardown."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([SOCKCLI, *args], text=True, env={**self.env, **(env or {})},
                                **kwargs)
        self.procs.append(proc)
        return proc

    def serve(self, event: str, *args: str, timeout: float = 15.0, options: Sequence[str] = (),
              **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``sockcli OPTIONS serve EVENT ARGS`` and return once it says it is serving."""
        proc = self.popen(*options, "serve", event, *args, **kwargs)
        line = read_line(proc, "stderr", timeout)
        assert "serving" in line, f"serve did not start: {line!r}"
        return proc

    def listen(self, *args: str, timeout: float = 15.0, options: Sequence[str] = (),
               **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``sockcli -v OPTIONS listen ARGS`` and return once it is connected to its
        hub."""
        proc = self.popen("-v", *options, "listen", *args, **kwargs)
        while True:
            line = read_line(proc, "stderr", timeout)
            if "listening to" in line:
                return proc

    def bash(self, script: str, *, timeout: float = 30.0, env: dict[str, str] | None = None,
             **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a bash script with the venv's ``sockcli`` first on PATH."""
        path = f"{Path(SOCKCLI).parent}{os.pathsep}{self.env.get('PATH', os.defpath)}"
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              timeout=timeout, env={**self.env, "PATH": path, **(env or {})},
                              **kwargs)

    def pty(self, *args: str, env: dict[str, str] | None = None, timeout: float = 20.0,
            ) -> tuple[int, str, str]:
        """Run ``sockcli ARGS`` with stdout on a pseudo-terminal (200 columns); returns the
        exit status, what it wrote on the terminal (\r\n made \n) and its stderr."""
        return run_in_pty([SOCKCLI, *args], env={**self.env, **(env or {})}, timeout=timeout)

    def record(self, event: str) -> dict[str, Any]:
        """The hub record of ``event`` (transport, address, pid), as JSON."""
        data: dict[str, Any] = json.loads((self.socket_dir / f"{event}.hub").read_text())
        return data

    def hub_files(self, event: str) -> list[str]:
        """What the hub of ``event`` left in the socket directory: its record, its socket
        (Unix), its per-hub secret (TCP)."""
        if not self.socket_dir.exists():
            return []
        return sorted(n for n in os.listdir(self.socket_dir)
                      if n in (f"{event}.sock", f"{event}.hub", f"{event}.token"))

    def list_json(self, *args: str, options: Sequence[str] = ()) -> list[dict[str, Any]]:
        """``sockcli OPTIONS list --json ARGS``, parsed; fails the test unless it exits 0."""
        done = self.run(*options, "list", "--json", *args)
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.root, ignore_errors=True)


# id(pipe) -> (pipe, its queue). The pipe is kept so that its id is never reused by a later
# pipe (ids of collected objects are), which would hand that pipe a finished queue.
_readers: dict[int, tuple[Any, queue.Queue[str | None]]] = {}
_readers_lock = threading.Lock()


def _lines_of(pipe: Any) -> queue.Queue[str | None]:
    """A queue fed by a thread that reads ``pipe`` line by line (None at end of stream).

    select() on a buffered pipe misses lines already in Python's buffer, so a thread does the
    reading and the tests wait on the queue.
    """
    with _readers_lock:
        known = _readers.get(id(pipe))
        lines = known[1] if known is not None and known[0] is pipe else None
        if lines is None:
            lines = queue.Queue()
            _readers[id(pipe)] = (pipe, lines)

            def pump(q: queue.Queue[str | None] = lines) -> None:
                try:
                    for line in pipe:
                        q.put(line)
                except ValueError:  # closed at teardown
                    pass
                q.put(None)

            threading.Thread(target=pump, daemon=True).start()
        return lines


def read_line(proc: subprocess.Popen[str], stream: str = "stdout", timeout: float = 10.0) -> str:
    """The next line the process writes on ``stream``; fails the test after ``timeout``."""
    try:
        line = _lines_of(getattr(proc, stream)).get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line on {stream} within {timeout} s") from None
    if line is None:
        proc.wait(5)
        raise AssertionError(f"process exited ({proc.returncode}) before a line on {stream}")
    return line


def rest(proc: subprocess.Popen[str], stream: str = "stdout", timeout: float = 10.0) -> str:
    """Everything else the process writes on ``stream`` until it closes it."""
    lines = _lines_of(getattr(proc, stream))
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"{stream} not closed within {timeout} s") from None
        if line is None:
            return "".join(out)
        out.append(line)


def transport_args(transport: str) -> list[str]:
    """The ``serve`` options of a transport."""
    return ["--tcp"] if transport == "tcp" else []


def stderr_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The next line ``proc`` writes on stderr, without its newline."""
    return read_line(proc, "stderr", timeout).rstrip("\n")


def read_json(proc: subprocess.Popen[str], timeout: float = 10.0) -> dict[str, Any]:
    """The next stdout line of ``proc``, which must be a JSON object."""
    line = read_line(proc, "stdout", timeout)
    value: dict[str, Any] = json.loads(line)
    return value


def error_line(stderr: str, prefix: str = "sockcli: error: ") -> str:
    """The one line of an error report: exactly one line, starting with ``prefix``."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


def usage_error(stderr: str) -> str:
    """Click's usage text for exit 2: the usage line, the hint to -h, then 'Error: ...'."""
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("Usage: sockcli"), stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Send ``signum`` and return the exit status."""
    proc.send_signal(signum)
    return proc.wait(timeout)


def free_port() -> int:
    """A TCP port nothing listens on now, outside the hubs' default range (47800-47899)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not 47800 <= port <= 47899:
            return port


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def color_codes(text: str) -> list[str]:
    """The SGR parameters in ``text`` that set a colour (foreground or background)."""
    found = []
    for params in _SGR.findall(text):
        for p in params.split(";"):
            if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                found.append(p)
    return found


def strip_ansi(text: str) -> str:
    """``text`` without its terminal escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def run_in_pty(argv: Sequence[str], env: dict[str, str], timeout: float = 20.0,
               stdin: Any = subprocess.DEVNULL) -> tuple[int, str, str]:
    """Run ``argv`` with stdout on a pseudo-terminal; returns (status, terminal text, stderr)."""
    master, slave = pty.openpty()
    try:
        rows, cols = 50, int(env.get("COLUMNS", "200"))
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=slave, stderr=subprocess.PIPE,
                                env=env, text=True)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise AssertionError(f"{argv[1:]} did not finish within {timeout} s: "
                                     f"{b''.join(chunks)!r}")
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError as exc:  # EIO: every holder of the terminal has closed it
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        status = proc.wait(timeout)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
    finally:
        os.close(master)
    return status, b"".join(chunks).decode().replace("\r\n", "\n"), err

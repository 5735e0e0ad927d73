"""Running the installed ``sockcli`` executable in subprocesses, for the end-to-end tests."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
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

    def serve(self, event: str, *args: str, timeout: float = 15.0) -> subprocess.Popen[str]:
        """Start ``sockcli serve EVENT ARGS`` and return once it says it is serving."""
        proc = self.popen("serve", event, *args)
        line = read_line(proc, "stderr", timeout)
        assert "serving" in line, f"serve did not start: {line!r}"
        return proc

    def listen(self, *args: str, timeout: float = 15.0) -> subprocess.Popen[str]:
        """Start ``sockcli -v listen ARGS`` and return once it is connected to its hub."""
        proc = self.popen("-v", "listen", *args)
        while True:
            line = read_line(proc, "stderr", timeout)
            if "listening to" in line:
                return proc

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


_readers: dict[int, queue.Queue[str | None]] = {}
_readers_lock = threading.Lock()


def _lines_of(pipe: Any) -> queue.Queue[str | None]:
    """A queue fed by a thread that reads ``pipe`` line by line (None at end of stream).

    select() on a buffered pipe misses lines already in Python's buffer, so a thread does the
    reading and the tests wait on the queue.
    """
    with _readers_lock:
        lines = _readers.get(id(pipe))
        if lines is None:
            lines = _readers[id(pipe)] = queue.Queue()

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

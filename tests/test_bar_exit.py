"""Stopping the bar leaves nothing behind: the process tree a status bar makes for a module
(the bar holds the read end of a pipe; ``sh -c 'sockcli listen EV --last --format waybar'``
writes into it), the bar killed (SIGTERM, SIGKILL) without stopping its module, as waybar
0.9.17 does. ``listen`` and its python must be gone within a couple of seconds, messages
flowing or not, and the hub must count no subscriber afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import SOCKCLI, read_line
from tests.helpers import wait_until

EVENT = "wallpaper_change"
MODULE = f"sockcli listen {EVENT} --last --format waybar"
# How long the module may outlive its bar: listen looks at its stdout twice a second.
GONE_WITHIN = 3.0

# The bar: starts SHELL -c COMMAND with stdout into a pipe whose read end only the bar holds,
# says the module's pid, then copies what the module prints. It never stops the module.
BAR = """
import os, subprocess, sys
read_end, write_end = os.pipe()
module = subprocess.Popen([sys.argv[1], "-c", sys.argv[2]], stdout=write_end,
                          stdin=subprocess.DEVNULL)
os.close(write_end)
print(module.pid, flush=True)
with os.fdopen(read_end) as lines:
    for line in lines:
        print(line, end="", flush=True)
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(pid: int) -> set[int]:
    """``pid`` and every live process below it, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                children.setdefault(stat[1], []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def subscribers(cli: Any) -> int:
    rows = cli.list_json()
    return sum(int(r.get("subscribers") or 0) for r in rows if r["event_name"] == EVENT)


@contextmanager
def flowing(cli: Any, traffic: str) -> Iterator[None]:
    """"busy": messages keep coming (one every few tens of milliseconds) while the bar dies;
    "idle": none after the first."""
    if traffic == "idle":
        yield
        return
    stop = threading.Event()

    def send() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            cli.run("send", EVENT, "-d", json.dumps({"text": f"busy {n}", "progress": n % 100}))
            stop.wait(0.02)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    yield
    stop.set()
    sender.join(30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("traffic", ["idle", "busy"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
@pytest.mark.parametrize(("shell", "command"), [
    ("dash", MODULE), ("bash", MODULE),
    # A shell with more to do stays in between, waiting for listen.
    ("bash", f"{MODULE}; exit $?"),
], ids=["dash", "bash", "bash-waiting"])
def test_killing_the_bar_stops_its_module(cli: Any, shell: str, command: str, signum: int,
                                          traffic: str) -> None:
    cli.serve(EVENT)
    assert cli.run("send", EVENT, "-d", '{"text": "ready", "progress": 5}').returncode == 0
    env = {**cli.env, "PATH": f"{Path(SOCKCLI).parent}{os.pathsep}{cli.env['PATH']}"}
    bar = subprocess.Popen([sys.executable, "-c", BAR, shell, command], env=env, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    cli.procs.append(bar)
    module = int(read_line(bar, timeout=15))
    # The module works: the retained message first (--last), in waybar's JSON.
    first = json.loads(read_line(bar, timeout=15))
    assert (first["text"], first["percentage"]) == ("ready", 5)
    tree = descendants(module)  # the shell (if it did not exec) and sockcli's python
    assert any("sockcli" in Path(f"/proc/{p}/cmdline").read_text() for p in tree)
    # bash execs a lone command (the module is sockcli's python itself); Debian 12's dash
    # does not, and neither does a shell with more to do: it waits in between.
    assert len(tree) == (1 if (shell, command) == ("bash", MODULE) else 2), tree
    assert subscribers(cli) == 1

    with flowing(cli, traffic):
        os.kill(bar.pid, signum)
        assert bar.wait(10) == -signum
        killed = time.monotonic()
        wait_until(lambda: not any(alive(p) for p in tree), timeout=GONE_WITHIN,
                   what=f"the module ({shell} -c, sockcli listen) to exit after its bar")
        assert time.monotonic() - killed < GONE_WITHIN
        wait_until(lambda: subscribers(cli) == 0, timeout=10,
                   what="the hub to count no subscriber")

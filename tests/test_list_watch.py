"""``sockcli list --watch``: the live view on a terminal (a real pseudo-terminal: frames
redrawn in place, hubs appearing and going, figures and rates following the traffic, Ctrl-C
and SIGTERM ending it with exit 0), and the JSON-lines stream into a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from typing import Any

import pytest

from sockcli.cli.watch import TITLE, Rates, producer_state
from tests.clitools import SOCKCLI, read_line, rest, strip_ansi, usage_error

# The columns of the view, in order; PRODUCER may hold several words, so rows are read from
# both ends (see _rows).
COLUMNS = ["EVENT", "VIA", "PID", "CLIENTS", "LISTENERS", "IN/S", "OUT/S", "QUEUED",
           "DROPPED", "REJECTED", "RETAINED", "PRODUCER", "UP"]


class Terminal:
    """``sockcli ARGS`` with stdout on a pseudo-terminal of 200 columns, read as it runs."""

    def __init__(self, cli: Any, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        env = {**cli.env, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50"}
        self.proc = subprocess.Popen([SOCKCLI, *args], stdin=subprocess.DEVNULL, stdout=slave,
                                     stderr=subprocess.PIPE, env=env, text=True)
        os.close(slave)
        cli.procs.append(self.proc)
        self.master = master
        self.raw = b""
        self.closed = False

    def _read(self, timeout: float) -> None:
        if self.closed:
            return
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            data = b""
        if not data:
            self.closed = True
        self.raw += data

    def text(self) -> str:
        """What the terminal got so far, without escape sequences and carriage returns."""
        return strip_ansi(self.raw.decode(errors="replace")).replace("\r", "")

    def frames(self) -> list[str]:
        """The complete frames so far (each followed by the next one), oldest first."""
        return self.text().split(TITLE)[1:-1]

    def frame_where(self, predicate: Callable[[str], bool], *, after: int = 0,
                    timeout: float = 15.0, what: str = "a frame") -> str:
        """The first complete frame after the first ``after`` ones for which ``predicate``
        holds; fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames()[after:]:
                if predicate(frame):
                    return frame
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"no {what} within {timeout} s; last frames: "
                                     f"{self.frames()[-2:]!r}")
            self._read(min(left, 0.2))

    def finish(self, timeout: float = 10.0) -> tuple[int, str]:
        """Read until the process closes the terminal; its exit status and stderr."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        status = self.proc.wait(timeout)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        os.close(self.master)
        return status, err


def _rows(frame: str) -> dict[str, dict[str, str]]:
    """The table of one frame: event -> {column: cell}."""
    lines = frame.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["EVENT"])
    assert lines[header].split() == COLUMNS, lines[header]
    rows = {}
    for line in lines[header + 1:]:
        cells = line.split()
        if not cells or cells[0] in ("sockets", "no"):
            break
        fixed = dict(zip(COLUMNS[:11], cells[:11], strict=True))
        rows[cells[0]] = {**fixed, "PRODUCER": " ".join(cells[11:-1]), "UP": cells[-1]}
    return rows


def _row(event: str, **expected: str) -> Callable[[str], bool]:
    """A predicate: the frame has a row for ``event`` with these cells (COLUMN=value)."""

    def holds(frame: str) -> bool:
        row = _rows(frame).get(event)
        return row is not None and all(row[k.replace("_", "/")] == v
                                       for k, v in expected.items())

    return holds


@pytest.mark.timeout(60)
def test_view_follows_hubs_that_start_and_stop(cli: Any) -> None:
    view = Terminal(cli, "list", "--watch", "--interval", "0.2")
    empty = view.frame_where(lambda f: "no hub is running" in f, what="the empty view")
    assert "0 hubs   every 0.2 s" in empty.splitlines()[0]
    assert _rows(empty) == {}

    alpha = cli.serve("alpha")
    shown = view.frame_where(lambda f: "alpha" in _rows(f), what="alpha appearing")
    assert "1 hub   every 0.2 s" in shown.splitlines()[0]
    row = _rows(shown)["alpha"]
    assert {k: row[k] for k in COLUMNS[1:12]} == {
        "VIA": "unix", "PID": str(alpha.pid), "CLIENTS": "0", "LISTENERS": "0",
        "IN/S": row["IN/S"], "OUT/S": row["OUT/S"], "QUEUED": "0", "DROPPED": "0",
        "REJECTED": "0", "RETAINED": "-", "PRODUCER": "-"}
    assert row["IN/S"] in ("-", "0.0")  # "-" until the hub was seen twice
    assert re.fullmatch(r"\d+s", row["UP"])
    assert f"sockets in {cli.socket_dir}" in shown

    beta = cli.serve("beta", "--tcp")
    both = view.frame_where(lambda f: set(_rows(f)) == {"alpha", "beta"}, what="beta appearing")
    assert list(_rows(both)) == ["alpha", "beta"]
    assert _rows(both)["beta"]["VIA"] == "tcp" and _rows(both)["beta"]["PID"] == str(beta.pid)
    seen = len(view.frames())

    beta.send_signal(signal.SIGTERM)
    assert beta.wait(10) == 0
    view.frame_where(lambda f: set(_rows(f)) == {"alpha"}, after=seen, what="beta going away")

    # SIGTERM ends the view as Ctrl-C does: quietly, exit 0, the cursor shown again.
    view.proc.send_signal(signal.SIGTERM)
    status, err = view.finish()
    assert (status, err) == (0, "")
    assert view.raw.rstrip().endswith(b"\x1b[?25h"), view.raw[-80:]


@pytest.mark.timeout(60)
def test_view_figures_follow_the_traffic_and_ctrl_c_exits_0(cli: Any) -> None:
    cli.serve("ev", "--queue-size", "1")
    view = Terminal(cli, "list", "--watch", "--interval", "0.2")
    # Seen twice, the idle hub's rates are 0.0.
    view.frame_where(_row("ev", IN_S="0.0", OUT_S="0.0", LISTENERS="0"), what="idle rates")

    listener = cli.listen("ev", "--count", "2")
    seen = len(view.frames())
    sent = cli.run("send", "ev", "-d", '{"progress": 40}')
    assert sent.returncode == 0, sent.stderr
    assert json.loads(read_line(listener))["data"] == {"progress": 40}
    # The refresh after the message: one in, one out, and a retained data message.
    busy = view.frame_where(lambda f: _row("ev", CLIENTS="1", LISTENERS="1", RETAINED="data")(f)
                            and float(_rows(f)["ev"]["IN/S"]) > 0, after=seen,
                            what="the message counted")
    row = _rows(busy)["ev"]
    assert float(row["OUT/S"]) == float(row["IN/S"]) > 0  # one listener: out = in
    # Then back to 0.0 while nothing flows.
    view.frame_where(_row("ev", IN_S="0.0", OUT_S="0.0", RETAINED="data"),
                     after=view.frames().index(busy) + 1, what="the rates back to 0")

    seen = len(view.frames())
    refused = cli.run("send", "ev", "--to", "nobody", "-d", "{}")
    assert refused.returncode == 68, refused.stderr
    errors = cli.run("send", "ev", "-t", "error", "-d", '{"n": 1}')
    assert errors.returncode == 0, errors.stderr
    assert json.loads(read_line(listener))["message_type"] == "error"
    assert listener.wait(10) == 0
    # The listener is gone; two messages nobody takes go to the queue of one.
    for n in (1, 2):
        assert cli.run("send", "ev", "-d", f'{{"n": {n}}}').returncode == 0
    view.frame_where(_row("ev", CLIENTS="0", LISTENERS="0", REJECTED="1", QUEUED="1",
                          DROPPED="1", RETAINED="error,data"), after=seen,
                     what="rejected, queued, dropped and the retained types")

    view.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    status, err = view.finish()
    assert (status, err) == (0, "")
    # The last frame stays on the screen, followed by the cursor shown again.
    assert view.raw.rstrip().endswith(b"\x1b[?25h")
    assert view.text().rstrip().endswith(f"sockets in {cli.socket_dir}")


@pytest.mark.timeout(60)
def test_json_lines_into_a_pipe(cli: Any) -> None:
    hub = cli.serve("ev")
    watch = cli.popen("list", "--watch", "--interval", "0.2")
    first = json.loads(read_line(watch, timeout=15))
    # Each line is what `list --json` prints at that moment, on one line.
    assert first == cli.list_json()
    [row] = first
    assert {k: row[k] for k in ("event_name", "transport", "pid", "clients", "subscribers",
                                "queued", "dropped", "received", "delivered", "rejected",
                                "retained")} == {
        "event_name": "ev", "transport": "unix", "pid": hub.pid, "clients": 0,
        "subscribers": 0, "queued": 0, "dropped": 0, "received": 0, "delivered": 0,
        "rejected": 0, "retained": []}

    sent = cli.run("send", "ev", "-d", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    while True:  # lines keep coming, one per interval, until the message shows
        [row] = json.loads(read_line(watch))
        if row["received"] == 1:
            break
        assert row["received"] == 0
    assert (row["queued"], row["retained"]) == (1, ["data"])

    cli.serve("later")
    while True:
        rows = json.loads(read_line(watch))
        if len(rows) == 2:
            break
    assert [r["event_name"] for r in rows] == ["ev", "later"]

    watch.send_signal(signal.SIGINT)
    assert watch.wait(10) == 0
    assert rest(watch) == "" or all(json.loads(line) for line in rest(watch).splitlines())
    assert rest(watch, "stderr") == ""


@pytest.mark.timeout(30)
def test_json_lines_stop_when_the_reader_goes(cli: Any) -> None:
    cli.serve("ev")
    done = cli.bash("set -o pipefail; sockcli list --watch --interval 0.1 | head -n 2")
    assert (done.returncode, done.stderr) == (0, "")
    assert [[r["event_name"] for r in json.loads(line)] for line in
            done.stdout.splitlines()] == [["ev"], ["ev"]]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("args", "needle"), [
    (["--interval", "2"], "--interval is the period of --watch: give --watch too"),
    (["--watch", "--interval", "0"],
     "Invalid value for '--interval': 0.0 is not in the range x>=0.1"),
    (["--watch", "--interval", "soon"], "Invalid value for '--interval': 'soon' is not a "),
])
def test_bad_interval_is_a_usage_error(cli: Any, args: list[str], needle: str) -> None:
    done = cli.run("list", *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert needle in usage_error(done.stderr)


def test_rates_from_successive_counters() -> None:
    rates = Rates()
    hub = {"event_name": "ev", "pid": 7, "started_ms": 1}
    assert rates.update([{**hub, "received": 10, "delivered": 20}], 100.0) == [(None, None)]
    assert rates.update([{**hub, "received": 13, "delivered": 26}], 100.5) == [(6.0, 12.0)]
    # A restarted hub (another pid) starts afresh; a missing figure has no rate.
    again = {**hub, "pid": 8}
    assert rates.update([{**again, "received": 1, "delivered": None}], 101.0) == [(None, None)]
    assert rates.update([{**again, "received": 1, "delivered": None}], 102.0) == [(0.0, None)]
    # Counters that went down are not a rate.
    assert rates.update([{**again, "received": 0, "delivered": 0}], 103.0) == [(None, None)]


def test_producer_cell() -> None:
    assert producer_state(None) == "-"
    assert producer_state({"pid": 42, "state": "running", "restarts": 0}) == "running pid 42"
    assert producer_state({"pid": 42, "state": "running", "restarts": 1}) == \
        "running pid 42, 1 restart"
    assert producer_state({"pid": None, "state": "backoff", "restarts": 3}) == \
        "backoff, 3 restarts"

"""``sockcli serve EVENT --exec CMD``: one producer for every listener, through the installed
CLI: its lines as the hub's messages (fan-out, types, refusals), its stderr, its restarts, and
its process group ended when the hub stops or dies (no orphan after ``kill -9``).

Most producers here are ``cat FIFO``: the test writes the lines CMD prints, when the listeners
are there, and closing the FIFO ends the run (cat exits 0). Processes are watched through
/proc with a deadline, never by sleeping.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sockcli.hub.producer import Backoff, describe_status
from tests.clitools import SOCKCLI, read_json, stderr_line, usage_error

pytestmark = pytest.mark.timeout(60)


# -- helpers -------------------------------------------------------------------------------------

def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by whoever inherited it, does
    not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def producer(cli: Any, event: str = "ev") -> dict[str, Any]:
    (row,) = [r for r in cli.list_json() if r["event_name"] == event]
    figures: dict[str, Any] = row["producer"]
    return figures


def wait_producer(cli: Any, what: str, predicate: Callable[[dict[str, Any]], bool],
                  timeout: float = 15.0) -> dict[str, Any]:
    """The producer's figures once ``predicate`` holds for them."""
    seen: list[dict[str, Any]] = []

    def check() -> bool:
        seen[:] = [producer(cli)]
        return predicate(seen[0])

    try:
        wait_for(what, check, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last figures: {seen}") from None
    return seen[0]


class Feed:
    """A FIFO that the producer ``cat``s: what the test writes is what CMD prints."""

    def __init__(self, root: Path) -> None:
        self.path = root / "feed"
        os.mkfifo(self.path)
        self.fd = -1

    def open(self, timeout: float = 15.0) -> None:
        """Open it for writing once a ``cat`` reads it (ENXIO until then)."""
        def ready() -> bool:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                return False
            os.set_blocking(self.fd, True)
            return True

        wait_for("the producer opens its FIFO", ready, timeout)

    def write(self, *lines: str | bytes) -> None:
        for line in lines:
            os.write(self.fd, line if isinstance(line, bytes) else line.encode() + b"\n")

    def close(self) -> None:
        """The end of cat's input: it exits 0."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def feed(cli: Any) -> Any:
    fifo = Feed(cli.root)
    yield fifo
    fifo.close()


def messages(proc: subprocess.Popen[str], n: int) -> list[tuple[str, dict[str, Any]]]:
    """The type and data of the next ``n`` messages ``proc`` (a listener) prints."""
    out = []
    for _ in range(n):
        record = read_json(proc)
        assert record["event_name"] == "ev"
        out.append((record["message_type"], record["data"]))
    return out


def stderr_until(proc: subprocess.Popen[str], needle: str, timeout: float = 15.0) -> list[str]:
    """serve's stderr lines up to the first one holding ``needle`` (included)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not lines or needle not in lines[-1]:
        lines.append(stderr_line(proc, max(0.1, deadline - time.monotonic())))
    assert not any("Traceback" in line for line in lines), lines
    return lines


# -- the lines ---------------------------------------------------------------------------------

def test_one_producer_fans_out_to_two_listeners_in_order(cli: Any, feed: Feed) -> None:
    serve = cli.serve("ev", "--exec", f"cat {feed.path}")
    first, second = cli.listen("ev"), cli.listen("ev")
    feed.open()
    sent = [("data", {"n": i, "text": f"step {i}"}) for i in range(1, 21)]
    sent[4] = ("error", {"n": 5, "reason": "disk full"})
    sent[9] = ("control", {"n": 10, "op": "reload"})
    feed.write(*[json.dumps(data) if kind == "data" else f"{kind} {json.dumps(data)}"
                 for kind, data in sent])
    assert messages(first, 20) == sent
    assert messages(second, 20) == sent
    figures = producer(cli)
    assert figures["command"] == f"cat {feed.path}"
    assert figures["state"] == "running" and figures["restarts"] == 0
    assert figures["messages"] == 20 and figures["rejected"] == 0
    assert alive(figures["pid"]) and serve.poll() is None


def test_typed_lines_and_refused_lines(cli: Any, feed: Feed) -> None:
    serve = cli.serve("ev", "--exec", f"cat {feed.path}", env={"SOCKCLI_MESSAGE_TYPES": "notice"})
    listener = cli.listen("ev")
    feed.open()
    feed.write('{"n": 1}',
               "not json",                      # refused, logged at once
               '  error\t{"n": 2}\r',           # blanks around and a \r\n: fine
               "warning {}",                    # not a type of this hub
               "",                              # blank: nothing
               'notice {"n": 3}',               # the message_types setting's type
               '{"n": NaN}',
               "[1, 2]",
               b'{"n": "\xff"}\n',
               'Control {"n": 4}')
    assert messages(listener, 4) == [("data", {"n": 1}), ("error", {"n": 2}),
                                     ("notice", {"n": 3}), ("control", {"n": 4})]
    figures = wait_producer(cli, "5 lines rejected", lambda p: p["rejected"] == 5)
    assert figures["messages"] == 4 and figures["state"] == "running"
    (row,) = cli.list_json()
    assert row["rejected"] == 5  # the hub's own figure counts them too
    # The first refusal at once, with its line number, reason and text; the others later.
    lines = stderr_until(serve, "rejected")
    assert lines[-1] == ("sockcli: WARNING: producer line 2 rejected: not JSON (column 1): "
                         "Expecting value; expected a JSON object such as {\"progress\": 40}, "
                         "or TYPE {...}: 'not json'")
    # CMD still runs, and what it prints next still arrives.
    feed.write('{"n": 5}')
    assert messages(listener, 1) == [("data", {"n": 5})]
    assert producer(cli)["pid"] == figures["pid"]


@pytest.mark.timeout(90)
def test_a_flood_of_bad_lines_is_counted_and_logged_once_per_interval(cli: Any,
                                                                      feed: Feed) -> None:
    serve = cli.serve("ev", "--exec", f"cat {feed.path}")
    listener = cli.listen("ev")
    feed.open()
    feed.write(*(f"garbage {i}" for i in range(1, 1001)))
    feed.write('{"after": "the flood"}')
    assert messages(listener, 1) == [("data", {"after": "the flood"})]
    wait_producer(cli, "1000 rejected", lambda p: p["rejected"] == 1000)
    first = stderr_until(serve, "rejected")
    assert first[-1].startswith("sockcli: WARNING: producer line 1 rejected: ")
    # The other 999 in one summary, after the interval (5 s), with the last of them.
    summary = stderr_line(serve, 20)
    assert summary.startswith("sockcli: WARNING: producer: 999 more lines rejected; the last, "
                              "line 1000: "), summary
    assert summary.endswith("'garbage 1000'")


def test_a_line_longer_than_buffer_size_is_refused(cli: Any, feed: Feed) -> None:
    cli.serve("ev", "--exec", f"cat {feed.path}",
              env={"SOCKCLI_BUFFER_SIZE": "2048"})
    listener = cli.listen("ev")
    feed.open()
    feed.write(json.dumps({"big": "x" * 5000}), json.dumps({"small": 1}))
    assert messages(listener, 1) == [("data", {"small": 1})]
    assert producer(cli)["rejected"] == 1


def test_cmd_has_the_hubs_stderr_and_environment_and_no_stdin(cli: Any) -> None:
    path = f"{Path(SOCKCLI).parent}:{os.environ.get('PATH', os.defpath)}"
    script = ('echo "from CMD to stderr" >&2; '
              'printf \'{"event": "%s", "stdin": "%s"}\\n\' "$SOCKCLI_EVENT" "$(cat)"; '
              # A sockcli that CMD runs finds its hub, with no EVENT given.
              'sockcli send -d \'{"via": "send"}\'; exec sleep 1000')
    serve = cli.serve("ev", "--exec", script, env={"PATH": path})
    assert "from CMD to stderr" in stderr_until(serve, "from CMD")[-1]
    listener = cli.listen("ev")  # the first subscriber: it gets what was queued
    got = messages(listener, 2)
    assert sorted(got, key=str) == sorted([("data", {"event": "ev", "stdin": ""}),
                                           ("data", {"via": "send"})], key=str)


def test_listen_last_started_later_gets_the_current_value(cli: Any) -> None:
    cli.serve("ev", "--exec",
              'echo \'{"progress": 10}\'; echo \'{"progress": 40}\'; '
              'echo \'error {"reason": "late"}\'; exec sleep 1000')
    wait_producer(cli, "three messages", lambda p: p["messages"] == 3)
    first = cli.listen("ev")  # the first bar: the queue's (nobody listened before)
    assert [data for _, data in messages(first, 3)] == \
        [{"progress": 10}, {"progress": 40}, {"reason": "late"}]
    done = cli.run("listen", "ev", "--last", "--count", "2")  # a bar started later
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(m["message_type"], m["data"], m["retained"]) for m in got] == \
        [("data", {"progress": 40}, True), ("error", {"reason": "late"}, True)]


# -- restarts ----------------------------------------------------------------------------------

def test_on_failure_restarts_and_the_messages_resume(cli: Any, feed: Feed) -> None:
    serve = cli.serve("ev", "--exec", f"cat {feed.path}; exit 3")
    listener = cli.listen("ev")
    feed.open()
    first_pid = producer(cli)["pid"]
    feed.write('{"run": 1}')
    assert messages(listener, 1) == [("data", {"run": 1})]
    feed.close()
    assert stderr_until(serve, "restarting")[-1].startswith(
        "sockcli: WARNING: producer exited 3 after ")
    feed.open()  # the new cat
    feed.write('{"run": 2}')
    assert messages(listener, 1) == [("data", {"run": 2})]
    figures = producer(cli)
    assert figures["restarts"] == 1 and figures["state"] == "running"
    assert figures["returncode"] == 3 and figures["last_exit"] == "exited 3"
    assert figures["pid"] != first_pid and not alive(first_pid)
    assert figures["restart"] == "on-failure"


def test_restarts_back_off_doubling(cli: Any) -> None:
    serve = cli.serve("ev", "--exec", "exit 1")
    waits = []
    for _ in range(3):
        line = stderr_until(serve, "restarting")[-1]
        assert line.startswith("sockcli: WARNING: producer exited 1 after "), line
        waits.append(line.rsplit("restarting in ", 1)[1])
    assert waits == ["0.5 s", "1.0 s", "2.0 s"]
    figures = wait_producer(cli, "restarting", lambda p: p["state"] == "restarting")
    assert 0 <= figures["restart_in"] <= 4.0 and figures["pid"] is None
    assert figures["restarts"] >= 2


def test_backoff_doubles_up_to_its_cap_and_resets_after_a_stable_run() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.maximum, backoff.stable) == (0.5, 30.0, 10.0)
    wait, waits = None, []
    for _ in range(9):
        wait = backoff.next(wait, ran=0.1)
        waits.append(wait)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.next(30.0, ran=10.0) == 0.5
    assert backoff.next(4.0, ran=9.9) == 8.0
    assert [describe_status(s) for s in (0, 3, -15, -9)] == \
        ["exited 0", "exited 3", "killed by SIGTERM", "killed by SIGKILL"]


def test_never_leaves_the_hub_serving_without_its_producer(cli: Any) -> None:
    serve = cli.serve("ev", "--exec", "echo '{\"n\": 1}'; exit 4", "--restart", "never")
    line = stderr_until(serve, "not restarted")[-1]
    assert line == ("sockcli: WARNING: producer exited 4; not restarted (--restart never): "
                    "the hub goes on serving")
    figures = wait_producer(cli, "exited", lambda p: p["state"] == "exited")
    assert (figures["pid"], figures["restarts"], figures["returncode"]) == (None, 0, 4)
    assert serve.poll() is None
    done = cli.run("listen", "ev", "--last", "--count", "1")  # the value it left
    assert json.loads(done.stdout)["data"] == {"n": 1}
    assert cli.run("send", "ev", "-d", '{"n": 2}').returncode == 0  # still a hub


def test_on_failure_does_not_restart_after_status_0(cli: Any) -> None:
    serve = cli.serve("ev", "--exec", "echo '{\"n\": 1}'")
    assert "producer exited 0; not restarted (--restart on-failure)" in \
        stderr_until(serve, "not restarted")[-1]
    figures = wait_producer(cli, "exited", lambda p: p["state"] == "exited")
    assert figures["restarts"] == 0 and figures["last_exit"] == "exited 0"


def test_always_restarts_after_status_0(cli: Any, feed: Feed) -> None:
    serve = cli.serve("ev", "--exec", f"cat {feed.path}", "--restart", "always")
    listener = cli.listen("ev")
    for run in (1, 2, 3):
        feed.open()
        feed.write(json.dumps({"run": run}))
        assert messages(listener, 1) == [("data", {"run": run})]
        feed.close()  # cat exits 0
        assert "producer exited 0 after" in stderr_until(serve, "restarting")[-1]
    figures = wait_producer(cli, "two restarts, a third coming",
                            lambda p: p["restarts"] == 2 and p["state"] == "restarting")
    assert figures["restart"] == "always"


# -- the process group -------------------------------------------------------------------------

# CMD prints its own pid and its background child's (a grandchild of the hub); the loop
# keeps starting new sleeps for as long as the shell lives.
FAMILY = ('while :; do sleep 1000 & printf \'{"sh": %d, "child": %d}\\n\' $$ $!; wait; done')
# The same, deaf to SIGTERM (sleep inherits the ignored signal): only SIGKILL ends it.
DEAF = "trap '' TERM; " + FAMILY


def family(cli: Any, *args: str, script: str = FAMILY) -> tuple[subprocess.Popen[str], list[int]]:
    """serve --exec SCRIPT, and the pids of the shell, its child and the watchdog, alive."""
    serve = cli.serve("ev", "--exec", script, *args)
    listener = cli.listen("ev")
    (_, data), = messages(listener, 1)
    pids = [data["sh"], data["child"], producer(cli)["watchdog_pid"]]
    assert pids[0] == producer(cli)["pid"]
    for pid in pids:
        assert alive(pid), pid
    # CMD's group is its own: not the hub's, so a Ctrl-C at the terminal reaches the hub only.
    assert os.getpgid(data["sh"]) == os.getpgid(data["child"]) == data["sh"]
    assert os.getpgid(data["sh"]) != os.getpgid(serve.pid)
    return serve, pids


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_stopping_serve_ends_cmds_whole_group_first(cli: Any, signum: int) -> None:
    serve, pids = family(cli)
    serve.send_signal(signum)
    assert serve.wait(15) == 0
    # serve has exited: by then nothing of CMD, nor the watchdog, runs.
    assert [pid for pid in pids if alive(pid)] == []


@pytest.mark.timeout(90)
def test_a_cmd_deaf_to_sigterm_is_killed_after_the_grace_period(cli: Any) -> None:
    serve, pids = family(cli, script=DEAF)
    started = time.monotonic()
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(20) == 0
    assert time.monotonic() - started >= 2.9  # SIGTERM first; SIGKILL after 3 s
    assert [pid for pid in pids if alive(pid)] == []


@pytest.mark.timeout(90)
@pytest.mark.parametrize("script", [FAMILY, DEAF], ids=["plain", "deaf-to-sigterm"])
def test_no_orphan_after_kill_9_of_serve(cli: Any, script: str) -> None:
    serve, pids = family(cli, script=script)
    serve.kill()
    assert serve.wait(10) == -signal.SIGKILL
    # The shell dies with its parent (PR_SET_PDEATHSIG), the grandchild by the watchdog's
    # SIGTERM (or its SIGKILL 3 s later), and then the watchdog exits.
    wait_for("CMD, its child and the watchdog gone",
             lambda: not any(alive(pid) for pid in pids), timeout=20)


def test_the_group_is_ended_between_runs(cli: Any, feed: Feed) -> None:
    # A background job of a run that ended is part of that run: it does not survive it.
    serve = cli.serve("ev", "--exec",
                      f"sleep 1000 >/dev/null & echo \"{{\\\"bg\\\": $!}}\"; cat {feed.path}; "
                      "exit 5")
    listener = cli.listen("ev")
    feed.open()
    (_, data), = messages(listener, 1)
    assert alive(data["bg"])
    feed.close()
    stderr_until(serve, "restarting")
    wait_for("the first run's background job gone", lambda: not alive(data["bg"]))
    (_, again), = messages(listener, 1)  # the second run's
    assert again["bg"] != data["bg"] and alive(again["bg"])


@pytest.mark.timeout(90)
def test_a_killed_watchdog_is_replaced_at_the_next_run(cli: Any, feed: Feed) -> None:
    serve = cli.serve("ev", "--exec", f"cat {feed.path}; exit 3")
    listener = cli.listen("ev")
    feed.open()
    old = producer(cli)["watchdog_pid"]
    os.kill(old, signal.SIGKILL)
    wait_for("the watchdog gone", lambda: not alive(old))
    feed.close()
    assert stderr_until(serve, "starting another")[-1] == \
        f"sockcli: WARNING: the producer's watchdog (pid {old}) is gone (status -9); " \
        "starting another"
    feed.open()
    feed.write('{"run": 2}')
    assert messages(listener, 1) == [("data", {"run": 2})]
    figures = producer(cli)
    assert figures["watchdog_pid"] != old and alive(figures["watchdog_pid"])
    # And it guards the new run: nothing left after a kill -9 of serve.
    pids = [figures["pid"], figures["watchdog_pid"]]
    serve.kill()
    serve.wait(10)
    feed.close()
    wait_for("CMD and the new watchdog gone", lambda: not any(alive(p) for p in pids), 20)


# -- the list and bad usage ---------------------------------------------------------------------

def test_list_shows_the_producer_on_a_terminal(cli: Any) -> None:
    cli.serve("ev", "--exec", "echo '{\"n\": 1}'; echo bad; exec sleep 1000")
    figures = wait_producer(cli, "one rejected", lambda p: p["rejected"] == 1)
    status, out, err = cli.pty("list")
    assert status == 0, err
    assert "PRODUCER" in out
    assert f"running, pid {figures['pid']}, 1 rejected" in out
    plain = cli.serve("other")
    status, out, _ = cli.pty("list")
    assert plain.poll() is None and status == 0
    (row,) = [r for r in cli.list_json() if r["event_name"] == "other"]
    assert "producer" not in row  # a hub without one has no such key


@pytest.mark.parametrize(("args", "expected"), [
    (["--restart", "never"], "Error: --restart needs --exec"),
    (["--exec", "  "], "Error: Invalid value for '--exec': empty command"),
    (["--exec", "true", "--restart", "sometimes"], "Error: Invalid value for '--restart': "
                                                   "'sometimes' is not one of 'never', "
                                                   "'on-failure', 'always'."),
])
def test_bad_usage_is_exit_2(cli: Any, args: list[str], expected: str) -> None:
    done = cli.run("serve", "ev", *args)
    assert done.returncode == 2
    assert usage_error(done.stderr).startswith(expected)
    assert cli.hub_files("ev") == []

"""``sockcli listen --exec CMD``: the message on CMD's stdin and in its environment, order,
``--jobs``, failures, ``--exec-fail exit``, and no command left behind however listen ends.

Commands synchronise with the tests through files and FIFOs in a private directory; a test
never sleeps to let something happen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import read_json, read_line, rest, usage_error
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)

# $n of a message whose data is {"n": N} (its SOCKCLI_DATA is compact JSON: {"n":N}).
N = 'n=${SOCKCLI_DATA#*:}; n=${n%\\}}; '


def send(cli: Any, *args: str, stdin: str | None = None) -> None:
    done = cli.run("send", *args, input=stdin)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def numbered(count: int, start: int = 1) -> str:
    return "".join(json.dumps({"n": n}) + "\n" for n in range(start, start + count))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which a container's init may never reap, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_in(path: Path) -> int:
    """The pid a command wrote into ``path``, once it is there whole."""
    text = wait_until(lambda: path.exists() and path.read_text().endswith("\n") and
                      path.read_text(), timeout=15, what=f"{path.name}")
    return int(text)


def release(fifo: Path) -> None:
    """Let the command blocked reading ``fifo`` go on."""
    fd = os.open(fifo, os.O_WRONLY)  # blocks until the command has it open
    os.write(fd, b"go\n")
    os.close(fd)


def test_the_message_on_stdin_and_in_the_environment(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    script = ('{ printf "%s\\n" "$SOCKCLI_EVENT" "$SOCKCLI_TYPE" "$SOCKCLI_TIMESTAMP_MS" '
              '"$SOCKCLI_TIMESTAMP_ISO" "$SOCKCLI_DATA" "$INHERITED"; cat; } > "$OUT/$$"; '
              'echo "ran $SOCKCLI_TYPE"')
    runner = cli.listen("ev", "--count", "3", "--exec", script,
                        env={"OUT": str(tmp_path), "INHERITED": "from listen's environment"})
    printer = cli.listen("ev", "--count", "3", "--json")
    send(cli, "ev", "-d", '{"text": "sun & sea <1>", "n": 1.5, "list": [1, null], "u": "é"}')
    send(cli, "ev", "-t", "error", "-d", '{"error": "line\\nbreak"}')
    send(cli, "ev", "-t", "control", "-d", "{}")
    assert runner.wait(15) == 0
    # CMD's stdout is listen's stdout; listen itself prints nothing.
    assert rest(runner) == "ran data\nran error\nran control\n"
    printed = rest(printer).splitlines(keepends=True)
    assert len(printed) == 3
    outputs = sorted((p.read_text() for p in tmp_path.iterdir()),
                     key=lambda text: printed.index(text.split("\n", 6)[6]))
    for output, line in zip(outputs, printed, strict=True):
        record = json.loads(line)
        *variables, stdin = output.split("\n", 6)
        assert variables == [record["event_name"], record["message_type"],
                             str(record["timestamp_ms"]), record["timestamp_iso"],
                             json.dumps(record["data"], separators=(",", ":"),
                                        ensure_ascii=False),
                             "from listen's environment"]
        assert stdin == line  # byte for byte the --json line, newline included
    assert [json.loads(line)["message_type"] for line in printed] == ["data", "error", "control"]


def test_one_at_a_time_and_in_order(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    log = tmp_path / "log"
    # mkdir is atomic: a second command running at the same time would fail to take the lock.
    script = (N + 'mkdir "$D/lock" || echo "overlap $n" >> "$D/log"; '
              'echo "$n" >> "$D/log"; cat > /dev/null; rmdir "$D/lock"')
    runner = cli.listen("ev", "--count", "20", "--exec", script, env={"D": str(tmp_path)})
    send(cli, "ev", "--lines", stdin=numbered(20))
    assert runner.wait(30) == 0
    assert log.read_text().splitlines() == [str(n) for n in range(1, 21)]
    assert rest(runner) == "" and "exec" not in rest(runner, "stderr")


def test_jobs_run_at_once_up_to_n(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    for n in range(1, 7):
        os.mkfifo(tmp_path / f"go.{n}")
    script = N + ': > "$D/started.$n"; read x < "$D/go.$n"; echo "$n" >> "$D/done"'
    runner = cli.listen("ev", "--count", "6", "--jobs", "3", "--exec", script,
                        env={"D": str(tmp_path)})
    send(cli, "ev", "--lines", stdin=numbered(6))

    def started() -> list[int]:
        return sorted(int(p.name.split(".")[1]) for p in tmp_path.glob("started.*"))

    wait_until(lambda: started() == [1, 2, 3], timeout=15, what="three commands at once")
    # The first three hold their slots: the fourth cannot have started (none has ended).
    assert started() == [1, 2, 3]
    release(tmp_path / "go.2")
    wait_until(lambda: started() == [1, 2, 3, 4], timeout=15, what="the fourth command")
    assert (tmp_path / "done").read_text() == "2\n"
    assert started() == [1, 2, 3, 4]  # still three running: 1, 3, 4
    for n in (1, 3, 4, 5, 6):
        if n >= 5:
            wait_until(lambda n=n: n in started(), timeout=15, what=f"command {n}")
        release(tmp_path / f"go.{n}")
    assert runner.wait(15) == 0
    assert sorted((tmp_path / "done").read_text().split()) == ["1", "2", "3", "4", "5", "6"]


def test_failures_are_reported_counted_and_not_fatal(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    script = N + 'echo "$n" >> "$D/log"; [ "$n" = 2 ] && exit 3; [ "$n" = 4 ] && kill -9 $$; :'
    runner = cli.popen("listen", "ev", "--count", "5", "--exec", script,
                       env={"D": str(tmp_path)})
    send(cli, "ev", "--lines", stdin=numbered(5))
    assert runner.wait(30) == 1  # commands failed, reported at the end by the exit status
    assert (tmp_path / "log").read_text().split() == ["1", "2", "3", "4", "5"]
    assert rest(runner, "stderr").splitlines() == [
        f"sockcli: exec: {script!r} exited 3 for message 2",
        f"sockcli: exec: {script!r} was killed by SIGKILL for message 4",
        "sockcli: error: exec: 2 of 5 commands failed",
    ]


def test_exec_fail_exit_stops_at_the_first_failure(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    script = N + '[ "$n" = 2 ] && exit 7; echo "$n" >> "$D/log"'
    runner = cli.popen("listen", "ev", "--exec", script, "--exec-fail", "exit",
                       env={"D": str(tmp_path)})
    send(cli, "ev", "--lines", stdin=numbered(4))
    assert runner.wait(30) == 1
    assert rest(runner, "stderr") == f"sockcli: error: exec: {script!r} exited 7 for message 2\n"
    assert (tmp_path / "log").read_text() == "1\n"  # 3 and 4 never ran


def test_count_waits_for_the_commands_still_running(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    os.mkfifo(tmp_path / "go")
    script = 'echo $$ > "$D/pid"; read x < "$D/go"; echo finished >> "$D/log"'
    runner = cli.listen("ev", "--count", "1", "--exec", script, env={"D": str(tmp_path)})
    send(cli, "ev", "-d", '{"n": 1}')
    pid_in(tmp_path / "pid")
    assert runner.poll() is None  # --count is reached, and listen waits for its command
    release(tmp_path / "go")
    assert runner.wait(15) == 0
    assert (tmp_path / "log").read_text() == "finished\n"


def start_long(cli: Any, tmp_path: Path, *args: str, **kwargs: Any,
               ) -> tuple[subprocess.Popen[str], list[int]]:
    """A listen whose command (its shell, and a child of the shell) runs until killed; the
    pids of both once they run."""
    cli.serve("ev", *(("--tcp",) if "--tcp" in args else ()))
    script = 'echo $$ > "$D/sh"; sleep 1000 & echo $! > "$D/child"; wait'
    listener = cli.listen("ev", "--exec", script,
                          *(a for a in args if a != "--tcp"), env={"D": str(tmp_path)},
                          **kwargs)
    send(cli, "ev", "-d", '{"n": 1}')
    pids = [pid_in(tmp_path / "sh"), pid_in(tmp_path / "child")]
    assert all(alive(pid) for pid in pids)
    return listener, pids


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGHUP, 0),
                                                (signal.SIGINT, 130)])
def test_a_signal_to_listen_stops_the_running_commands(cli: Any, tmp_path: Path, signum: int,
                                                       status: int) -> None:
    listener, pids = start_long(cli, tmp_path)
    listener.send_signal(signum)
    assert listener.wait(10) == status
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10,
               what="the command's process group to be stopped")
    assert "Traceback" not in rest(listener, "stderr")


def test_kill_9_of_listen_takes_the_shell_along(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    script = 'echo $$ > "$D/sh"; exec sleep 1000'  # sh becomes sleep: the same process
    listener = cli.listen("ev", "--exec", script, env={"D": str(tmp_path)})
    send(cli, "ev", "-d", '{"n": 1}')
    pid = pid_in(tmp_path / "sh")
    wait_until(lambda: b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes(), timeout=10,
               what="the shell to become sleep")
    listener.kill()
    listener.wait(10)
    wait_until(lambda: not alive(pid), timeout=10, what="PR_SET_PDEATHSIG to stop the command")


def test_the_hub_lost_with_no_reconnect_stops_the_commands(cli: Any, tmp_path: Path) -> None:
    listener, pids = start_long(cli, tmp_path, "--no-reconnect")
    hub = cli.procs[0]
    hub.send_signal(signal.SIGTERM)
    assert hub.wait(10) == 0
    assert listener.wait(10) == 69
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10,
               what="the command's process group to be stopped")
    assert rest(listener, "stderr").splitlines()[-1] == "sockcli: error: lost the hub of 'ev'"


def test_the_reader_of_stdout_gone_stops_listen_and_its_commands(cli: Any,
                                                                 tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        listener, pids = start_long(cli, tmp_path, stdout=write_end)
    finally:
        os.close(write_end)
    os.close(read_end)  # the bar went away
    assert listener.wait(10) == 0
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10,
               what="the command's process group to be stopped")


def test_where_chooses_the_messages_to_run_for(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    runner = cli.listen("ev", "--count", "2", "--where", "data.n > 2", "--exec",
                        N + 'echo "run $n"')
    send(cli, "ev", "--lines", stdin=numbered(5))
    assert runner.wait(15) == 0
    assert rest(runner) == "run 3\nrun 4\n"


def test_exec_cat_prints_what_json_does(cli: Any) -> None:
    cli.serve("ev")
    cat = cli.listen("ev", "--count", "2", "--exec", "cat")
    printer = cli.listen("ev", "--count", "2", "--json")
    send(cli, "ev", "-d", '{"a": "é & <b>", "n": [1.5, -0.0, 9223372036854775807]}')
    send(cli, "ev", "-t", "error", "-d", '{"z": "\\u0000\\u001b"}')
    assert cat.wait(15) == 0 and printer.wait(15) == 0
    assert rest(cat) == rest(printer)


@pytest.mark.parametrize(("args", "error"), [
    (["--jobs", "2"], "--jobs is an option of --exec CMD: give --exec too"),
    (["--exec-fail", "exit"], "--exec-fail is an option of --exec CMD: give --exec too"),
    (["--exec", "true", "--format", "waybar"],
     "--exec prints nothing itself (CMD's output is listen's output): --format has no use "
     "with it"),
    (["--exec", "true", "--json"],
     "--exec prints nothing itself (CMD's output is listen's output): --json has no use with "
     "it"),
    (["--exec", "true", "--template", "{data}"],
     "--exec prints nothing itself (CMD's output is listen's output): --template has no use "
     "with it"),
    (["--exec", " "], "--exec needs a command: --exec 'notify-send \"$SOCKCLI_DATA\"'"),
    (["--exec", "true", "--jobs", "0"],
     "Invalid value for '--jobs': 0 is not in the range x>=1."),
    (["--exec", "true", "--exec-fail", "stop"],
     "Invalid value for '--exec-fail': 'stop' is not one of 'continue', 'exit'."),
])
def test_usage_errors(cli: Any, args: list[str], error: str) -> None:
    cli.serve("ev")
    done = cli.run("listen", "ev", *args, timeout=10)
    assert (done.returncode, done.stdout) == (2, "")
    assert usage_error(done.stderr) == f"Error: {error}"


def test_retained_messages_run_too(cli: Any, tmp_path: Path) -> None:
    cli.serve("ev")
    first = cli.listen("ev", "--count", "1")
    send(cli, "ev", "-d", '{"n": 7}')
    assert read_json(first)["data"] == {"n": 7}
    runner = cli.listen("ev", "--last", "--count", "1", "--exec",
                        'grep -q \'"retained": true\' && echo "retained $SOCKCLI_DATA"')
    assert read_line(runner) == 'retained {"n":7}\n'
    assert runner.wait(10) == 0

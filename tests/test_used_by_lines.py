"""The design card's used-by lines, exactly as written: ``sockcli serve wallpaper_change &``,
then ``echo '{"progress":40}' | sockcli send`` and ``sockcli listen --type error``, with no
event name, in bash, back to back, many times."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clitools import SOCKCLI, read_json, read_line, rest, stop

ROUNDS = 20

#: The two lines as the card writes them, then the hub stopped: ROUNDS times back to back.
SERVE_THEN_SEND = f"""
for i in $(seq {ROUNDS}); do
    sockcli serve wallpaper_change &
    echo '{{"progress":40}}' | sockcli send
    sent=$?
    kill %1; wait %1
    echo "$i send=$sent serve=$?"
done
"""

#: The same, and an error for the bar in each round; the hub is stopped when the test says
#: (a line on stdin) that the bar has that round's error, so that every hub is a restart the
#: bar lived through.
SERVE_SEND_ERROR = f"""
for i in $(seq {ROUNDS}); do
    sockcli serve wallpaper_change &
    echo '{{"progress":40}}' | sockcli send
    sent=$?
    sockcli send --type error -d "{{\\"error\\": \\"round $i\\"}}"
    echo "$i send=$sent error=$?"
    read -r go || exit 3
    kill %1; wait %1
    echo "$i serve=$?"
done
"""


@pytest.fixture
def bash_scripts(cli) -> Iterator[list[subprocess.Popen[str]]]:
    """Scripts started in their own process group, which is killed at teardown (with the hub
    a script may have left in the background)."""
    scripts: list[subprocess.Popen[str]] = []
    yield scripts
    for script in scripts:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(5)
        for stream in (script.stdin, script.stdout, script.stderr):
            if stream is not None:
                stream.close()


def _start_bash(cli, scripts: list[subprocess.Popen[str]], script: str,
                ) -> subprocess.Popen[str]:
    path = f"{Path(SOCKCLI).parent}{os.pathsep}{cli.env.get('PATH', os.defpath)}"
    proc = subprocess.Popen(["bash", "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**cli.env, "PATH": path}, start_new_session=True)
    scripts.append(proc)
    return proc


@pytest.mark.timeout(120)
def test_send_right_after_serve_in_background_without_event(cli) -> None:
    done = cli.bash(SERVE_THEN_SEND, timeout=110)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{i} send=0 serve=0" for i in range(1, ROUNDS + 1)], \
        done.stderr
    assert "error" not in done.stderr and "Traceback" not in done.stderr
    assert cli.hub_files("wallpaper_change") == []


@pytest.mark.timeout(150)
def test_bar_started_before_its_hub_gets_only_the_errors_across_restarts(
        cli, bash_scripts: list[subprocess.Popen[str]]) -> None:
    bar = cli.popen("-v", "listen", "--type", "error")  # no event, and no hub yet
    assert read_line(bar, "stderr", 15) == "sockcli: waiting for a hub to start\n"
    assert cli.list_json() == []
    script = _start_bash(cli, bash_scripts, SERVE_SEND_ERROR)
    assert script.stdin is not None
    for i in range(1, ROUNDS + 1):
        assert read_line(script, "stdout", 20) == f"{i} send=0 error=0\n"
        got = read_json(bar, timeout=20)
        assert (got["event_name"], got["message_type"], got["data"]) == \
            ("wallpaper_change", "error", {"error": f"round {i}"})
        script.stdin.write("go\n")
        script.stdin.flush()
        assert read_line(script, "stdout", 20) == f"{i} serve=0\n"
    script.stdin.close()
    assert script.wait(20) == 0, rest(script, "stderr")
    # The bar followed the event through every restart and is still waiting for the next hub.
    assert bar.poll() is None
    assert stop(bar) in (0, -signal.SIGTERM)
    # Exactly one line per round, each read above: no data message ever reached it.
    assert rest(bar, "stdout") == ""
    notes = rest(bar, "stderr").splitlines()
    assert "Traceback" not in "\n".join(notes)
    assert notes[:2] == ["sockcli: waiting for messages of 'wallpaper_change'",
                         f"sockcli: listening to 'wallpaper_change' on "
                         f"{cli.socket_dir / 'wallpaper_change.sock'}"]

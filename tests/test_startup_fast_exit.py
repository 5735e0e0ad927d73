"""sockcli.cli._end_now: the console script's click-free commands end without the
interpreter's teardown, and only when nothing is left for the teardown to do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(30)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=20, check=False)


def test_it_exits_at_once_with_the_status_and_everything_written() -> None:
    done = _python("import sys\nfrom sockcli.cli import _end_now\n"
                   "sys.stdout.write('no newline, still buffered')\n"
                   "sys.stderr.write('err')\n"
                   "_end_now(7)\n"
                   "print('not reached')\n")
    assert (done.returncode, done.stdout, done.stderr) == (7, "no newline, still buffered",
                                                           "err")


@pytest.mark.parametrize("setup", [
    "import atexit; atexit.register(lambda: print('atexit ran'))",
    "import threading",
    "import click",
], ids=["atexit", "threading", "click"])
def test_it_leaves_the_exit_to_python_when_something_is_left(setup: str) -> None:
    done = _python(f"{setup}\nfrom sockcli.cli import _end_now\n_end_now(7)\n"
                   "print('reached')\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "reached"
    if "atexit" in setup:
        assert done.stdout.splitlines() == ["reached", "atexit ran"]


def test_a_failing_flush_is_left_to_python() -> None:
    code = ("import sys\nfrom sockcli.cli import _end_now\n"
            "sys.stdout.write('x' * 10)\n_end_now(0)\n")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=20, check=False, env=buffered)
    assert done.returncode == 120  # Python's own status for a stdout it could not flush
    assert "No space left on device" in done.stderr


def test_called_with_arguments_main_returns(tmp_path) -> None:
    """In-process callers (tests, programs) pass argv: main returns its status to them."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-c", "from sockcli.cli import main\n"
         "rc = main(['get', 'nohub', '--wait', '0'])\nprint('returned', rc)\n"],
        capture_output=True, text=True, timeout=20, check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert done.stdout.splitlines()[-1] == "returned 69", done.stderr

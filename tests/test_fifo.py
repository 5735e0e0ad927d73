"""A Unix hub's FIFO, ``{socket_dir}/{event}.fifo``, written by real shells (bash and dash)
into a real ``sockcli serve``, read back by a real ``sockcli listen --json``: every message
type, bad, blank, long and unterminated lines, 8 concurrent writers, the FIFO's mode and
owner, what a hub killed with -9 leaves, a regular file or a symbolic link at the path, and
the ``1<>"$fifo"`` idiom that never hangs (issue 11).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import Cli, error_line, read_json, rest, stderr_line, stop

pytestmark = pytest.mark.timeout(60)

SHELLS = ["bash", "dash"]
#: The keys of a ``listen --json`` line, in order (no "retained": these are live messages).
KEYS = ["event_name", "timestamp_ms", "timestamp_iso", "message_type", "data"]


def _hub(cli: Cli, *args: str, event: str = "ev") -> tuple[subprocess.Popen[str], Path]:
    """``sockcli serve EVENT ARGS``, serving, and the path of its FIFO."""
    proc = cli.serve(event, *args)
    fifo = cli.socket_dir / f"{event}.fifo"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    return proc, fifo


def _sh(cli: Cli, shell: str, script: str, fifo: Path, timeout: float = 30.0,
        ) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``shell -c``, the FIFO's path in ``$fifo``; it must succeed."""
    done = subprocess.run([shell, "-c", script], env={**cli.env, "fifo": str(fifo)},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    assert (done.returncode, done.stderr) == (0, ""), (done.returncode, done.stderr)
    return done


def _received(listener: subprocess.Popen[str], count: int) -> list[tuple[str, Any]]:
    """The next ``count`` messages of a ``listen --json``, as (type, data), each line checked
    to be a live message of hub 'ev'."""
    out = []
    for _ in range(count):
        record = read_json(listener)
        assert list(record) == KEYS, record
        assert record["event_name"] == "ev"
        out.append((record["message_type"], record["data"]))
    return out


def _stats(cli: Cli) -> dict[str, Any]:
    [row] = cli.list_json()
    return row


def _stderr_after_stop(proc: subprocess.Popen[str]) -> list[str]:
    """Stop the hub with SIGTERM and return the rest of its stderr, line by line."""
    assert stop(proc) == 0
    return rest(proc, "stderr").splitlines()


def _write_settings(cli: Cli, text: str) -> None:
    path = cli.config_home / "sockcli" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- the line grammar, from bash and dash -----------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_every_type_arrives_in_order_with_its_exact_content(cli: Cli, shell: str) -> None:
    _write_settings(cli, 'message_types = ["warning"]\n')
    hub, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    first = {"n": 1, "text": "h\u00e9llo w\u00f6rld \u2713 \U0001f600",
             "list": [1, 2.5, -0.1, 1e100, None, True, {"deep": "x"}]}
    _sh(cli, shell, f"""
        echo '{json.dumps(first, ensure_ascii=False)}' > "$fifo"
        echo 'data {{"n": 2}}' > "$fifo"
        echo 'error   {{"n": 3, "reason": "disk full"}}' > "$fifo"
        printf 'control\\t{{"n": 4}}\\n' > "$fifo"
        echo 'warning {{"n": 5}}' > "$fifo"
        {{ echo 'WARNING {{"n": 6}}'; echo 'Error {{"n": 7}}'; }} > "$fifo"
        echo '   {{"n": 8}}   ' > "$fifo"
        printf '{{"n": 9}}\\r\\n' > "$fifo"
    """, fifo)
    assert _received(listener, 9) == [
        ("data", first),
        ("data", {"n": 2}), ("error", {"n": 3, "reason": "disk full"}),
        ("control", {"n": 4}), ("warning", {"n": 5}), ("warning", {"n": 6}),
        ("error", {"n": 7}), ("data", {"n": 8}), ("data", {"n": 9})]
    stats = _stats(cli)
    assert (stats["received"], stats["rejected"]) == (9, 0)
    assert sorted(stats["retained"]) == ["control", "data", "error", "warning"]
    assert _stderr_after_stop(hub) == ["sockcli: hub 'ev' stopped"]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_bad_line_between_two_good_ones_is_counted_and_logged_once(cli: Cli,
                                                                      shell: str) -> None:
    hub, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    _sh(cli, shell, """
        echo '{"n": 1}' > "$fifo"
        echo 'not json' > "$fifo"
        echo '{"n": 2}' > "$fifo"
    """, fifo)
    assert _received(listener, 2) == [("data", {"n": 1}), ("data", {"n": 2})]
    stats = _stats(cli)
    assert (stats["received"], stats["rejected"]) == (2, 1)
    lines = _stderr_after_stop(hub)
    assert len(lines) == 2, lines
    warning, stopped = lines
    assert warning.startswith(f"sockcli: WARNING: FIFO {fifo} line 2 rejected: not JSON "), \
        warning
    assert warning.endswith(": 'not json'"), warning
    assert stopped == "sockcli: hub 'ev' stopped"


def test_every_kind_of_bad_line_is_refused_and_the_log_is_not_flooded(cli: Cli) -> None:
    """The first refused line is logged at once; the others of the next 5 s in one summary
    (here: when the hub stops); the good lines around them arrive as if nothing happened."""
    hub, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    _sh(cli, "bash", """
        {
            echo '{"n": 1}'
            echo '[1, 2]'
            echo 'nosuch {"a": 1}'
            echo 'error'
            echo 'error{"a": 1}'
            echo '{"a": NaN}'
            echo '"text"'
            printf '{"a": "\\xff"}\\n'
            echo '{"n": 2}'
        } > "$fifo"
    """, fifo)
    assert _received(listener, 2) == [("data", {"n": 1}), ("data", {"n": 2})]
    assert _stats(cli)["rejected"] == 7
    lines = _stderr_after_stop(hub)
    assert len(lines) == 3, lines
    first, summary, stopped = lines
    assert first.startswith(f"sockcli: WARNING: FIFO {fifo} line 2 rejected: "), first
    assert first.endswith(": '[1, 2]'"), first
    assert summary.startswith(f"sockcli: WARNING: FIFO {fifo}: 6 more lines rejected; the "
                              "last, line 8: not UTF-8"), summary
    assert stopped == "sockcli: hub 'ev' stopped"


@pytest.mark.parametrize("shell", SHELLS)
def test_blank_lines_are_ignored_but_counted_as_lines(cli: Cli, shell: str) -> None:
    hub, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    _sh(cli, shell, """
        printf '\\n\\n \\t \\n{"n": 1}\\n\\n\\r\\n{"n": 2}\\n' > "$fifo"
        echo > "$fifo"
        echo 'bad' > "$fifo"
        echo '{"n": 3}' > "$fifo"
    """, fifo)
    assert _received(listener, 3) == [("data", {"n": 1}), ("data", {"n": 2}),
                                      ("data", {"n": 3})]
    assert _stats(cli)["rejected"] == 1
    # Lines 1-3 blank, 4 n=1, 5 and 6 blank, 7 n=2, 8 blank (echo alone), 9 'bad'.
    warning, _ = _stderr_after_stop(hub)
    assert warning.startswith(f"sockcli: WARNING: FIFO {fifo} line 9 rejected: "), warning


@pytest.mark.parametrize("shell", SHELLS)
def test_a_line_longer_than_buffer_size_is_refused_and_the_next_one_is_fine(
        cli: Cli, shell: str) -> None:
    hub, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    # 70,000 bytes: over buffer_size (65536), and longer than one read of the hub (64 KiB);
    # then 60,000 bytes, under it (and far over PIPE_BUF: one writer, so still whole).
    _sh(cli, shell, """
        long=$(head -c 70000 /dev/zero | tr '\\0' a)
        big=$(head -c 60000 /dev/zero | tr '\\0' b)
        echo "{\\"pad\\": \\"$long\\"}" > "$fifo"
        echo '{"n": 1}' > "$fifo"
        echo "{\\"pad\\": \\"$big\\"}" > "$fifo"
    """, fifo)
    assert _received(listener, 2) == [("data", {"n": 1}), ("data", {"pad": "b" * 60000})]
    assert _stats(cli)["rejected"] == 1
    warning, _ = _stderr_after_stop(hub)
    assert warning.startswith(f"sockcli: WARNING: FIFO {fifo} line 1 rejected: longer than "
                              "65536 bytes: "), warning[:200]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_last_line_without_newline_arrives(cli: Cli, shell: str) -> None:
    _hub_proc, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    _sh(cli, shell, """printf '{"n": 1}' > "$fifo" """, fifo)
    assert _received(listener, 1) == [("data", {"n": 1})]
    # Only once it has arrived: a second one within the grace would be glued to it.
    _sh(cli, shell, """printf 'error {"n": 2}' > "$fifo" """, fifo)
    assert _received(listener, 1) == [("error", {"n": 2})]
    _sh(cli, shell, """echo '{"n": 3}' > "$fifo" """, fifo)
    assert _received(listener, 1) == [("data", {"n": 3})]
    assert _stats(cli)["rejected"] == 0


def test_eight_concurrent_writers_of_a_thousand_lines_each(cli: Cli) -> None:
    """8 background jobs of one bash script, 1,000 lines each of about 440 bytes (under
    PIPE_BUF): all 8,000 arrive whole, each writer's in its order. Odd writers open the FIFO
    for each line (the documented ``echo … > "$fifo"``), even ones keep it open."""
    writers, per_writer, pad_len = 8, 1000, 400
    _hub_proc, fifo = _hub(cli)
    listener = cli.listen("--json", "--count", str(writers * per_writer), "ev")
    _sh(cli, "bash", f"""
        write() {{
            local w=$1 i pad
            pad=$(printf '%0{pad_len}d' 0 | tr 0 "$w")
            if (( w % 2 )); then
                for (( i = 1; i <= {per_writer}; i++ )); do
                    echo "{{\\"w\\": $w, \\"i\\": $i, \\"pad\\": \\"$pad\\"}}" > "$fifo"
                done
            else
                exec 3> "$fifo"
                for (( i = 1; i <= {per_writer}; i++ )); do
                    echo "{{\\"w\\": $w, \\"i\\": $i, \\"pad\\": \\"$pad\\"}}" >&3
                done
                exec 3>&-
            fi
        }}
        for w in $(seq 1 {writers}); do write "$w" & done
        wait
    """, fifo, timeout=50)
    lines = rest(listener, timeout=50).splitlines()
    assert listener.wait(10) == 0
    assert len(lines) == writers * per_writer
    seen: dict[int, list[int]] = {w: [] for w in range(1, writers + 1)}
    for line in lines:
        record = json.loads(line)  # a line interleaved with another would not parse
        assert record["message_type"] == "data"
        data = record["data"]
        assert set(data) == {"w", "i", "pad"}, data
        assert data["pad"] == str(data["w"]) * pad_len, data
        seen[data["w"]].append(data["i"])
    assert seen == {w: list(range(1, per_writer + 1)) for w in seen}
    stats = _stats(cli)
    assert (stats["received"], stats["rejected"]) == (writers * per_writer, 0)


# -- the FIFO file ----------------------------------------------------------------------------


def test_the_fifo_is_private_and_removed_when_the_hub_stops(cli: Cli) -> None:
    hub, fifo = _hub(cli)
    st = os.lstat(fifo)
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    [row] = cli.list_json()
    assert row["fifo"] == str(fifo)
    assert stop(hub) == 0
    assert not os.path.lexists(fifo)
    assert os.listdir(cli.socket_dir) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_after_kill_9_the_fifo_stays_and_the_next_serve_replaces_it(cli: Cli,
                                                                     shell: str) -> None:
    hub, fifo = _hub(cli)
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # nobody reads it now
    # A plain redirection would wait for a reader for ever; the 1<> idiom returns at once
    # (what it wrote is lost with the pipe).
    hung = subprocess.run(["timeout", "0.5", shell, "-c", 'echo \'{"n": 0}\' > "$fifo"'],
                          env={**cli.env, "fifo": str(fifo)}, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=20)
    assert hung.returncode == 124
    _sh(cli, shell, """echo '{"lost": 1}' 1<>"$fifo" """, fifo, timeout=5)
    _hub(cli)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    listener = cli.listen("--json", "ev")
    _sh(cli, shell, """echo '{"n": 1}' > "$fifo"; echo '{"n": 2}' 1<>"$fifo" """, fifo)
    assert _received(listener, 2) == [("data", {"n": 1}), ("data", {"n": 2})]
    assert _stats(cli)["received"] == 2  # nothing of what the first hub left


def test_after_kill_9_any_sockcli_command_removes_the_fifo(cli: Cli) -> None:
    hub, _ = _hub(cli)
    assert stop(hub, signal.SIGKILL) == -signal.SIGKILL
    assert sorted(os.listdir(cli.socket_dir)) == ["ev.fifo", "ev.hub", "ev.lines.sock",
                                                  "ev.sock"]
    assert cli.list_json() == []  # it finds the dead hub's record, and cleans up after it
    assert os.listdir(cli.socket_dir) == []


def test_a_regular_file_at_the_path_is_replaced_with_a_warning(cli: Cli) -> None:
    """``echo … > "$fifo"`` while no FIFO is there makes a regular file: serve removes it."""
    cli.socket_dir.mkdir(mode=0o700)
    fifo = cli.socket_dir / "ev.fifo"
    _sh(cli, "bash", """echo '{"lost": 1}' > "$fifo" """, fifo)
    assert stat.S_ISREG(os.lstat(fifo).st_mode)
    hub = cli.popen("serve", "ev")
    assert stderr_line(hub) == (
        f"sockcli: WARNING: removed the regular file at {fifo} (12 bytes), made by a "
        "redirection while no hub read the FIFO there")
    assert "serving" in stderr_line(hub)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    listener = cli.listen("--json", "ev")
    _sh(cli, "bash", """echo '{"n": 1}' > "$fifo" """, fifo)
    assert _received(listener, 1) == [("data", {"n": 1})]


def test_a_symbolic_link_at_the_path_makes_serve_fail(cli: Cli) -> None:
    cli.socket_dir.mkdir(mode=0o700)
    fifo = cli.socket_dir / "ev.fifo"
    target = cli.root / "target"
    target.write_text("keep\n")
    fifo.symlink_to(target)
    done = cli.run("serve", "ev")
    assert done.returncode == 78, done.stderr  # UnsafePathError: EX_CONFIG
    line = error_line(done.stderr)
    assert line.startswith(f"sockcli: error: {fifo} is a symbolic link"), line
    assert os.path.islink(fifo) and target.read_text() == "keep\n"
    assert sorted(os.listdir(cli.socket_dir)) == ["ev.fifo"]  # nothing else left behind


# -- the never-blocking idiom -----------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_the_read_write_redirection_delivers_to_a_hub(cli: Cli, shell: str) -> None:
    _hub_proc, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    _sh(cli, shell, """
        echo '{"n": 1}' 1<>"$fifo"
        echo 'error {"n": 2}' 1<>"$fifo"
    """, fifo)
    assert _received(listener, 2) == [("data", {"n": 1}), ("error", {"n": 2})]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_read_write_redirection_returns_at_once_without_a_hub(cli: Cli,
                                                                  shell: str) -> None:
    """No hub, no FIFO: the write cannot hang; it leaves a regular file (which the next
    serve removes, as above)."""
    hub, fifo = _hub(cli)
    assert stop(hub) == 0
    assert not os.path.lexists(fifo)
    _sh(cli, shell, """echo '{"n": 1}' 1<>"$fifo" """, fifo, timeout=5)
    assert stat.S_ISREG(os.lstat(fifo).st_mode)
    assert fifo.read_text() == '{"n": 1}\n'


def test_the_hub_log_says_nothing_of_good_lines(cli: Cli) -> None:
    """A busy FIFO leaves no trace on the hub's stderr but the refused lines."""
    hub, fifo = _hub(cli)
    listener = cli.listen("--json", "ev")
    _sh(cli, "bash", """for i in $(seq 1 100); do echo "{\\"i\\": $i}"; done > "$fifo" """,
        fifo)
    assert [data["i"] for _, data in _received(listener, 100)] == list(range(1, 101))
    assert _stderr_after_stop(hub) == ["sockcli: hub 'ev' stopped"]

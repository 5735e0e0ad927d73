"""``sockcli path``: the socket, FIFO and JSON-lines socket of an event's hub, through the
installed executable: every flag and their order, --json, no hub (the paths a hub would use),
a Unix hub's record, a TCP hub and serve --no-fifo (exit 69), EVENT found as send finds it
(SOCKCLI_EVENT, the only hub, 64 for several, 69 for none), usage errors, completion."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from typing import Any

import pytest

from tests.clitools import Cli, error_line, read_json, read_line, usage_error

pytestmark = pytest.mark.timeout(60)


def _path(cli: Cli, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return cli.run("path", *args, **kwargs)


def _ok(cli: Cli, *args: str, **kwargs: Any) -> list[str]:
    """The lines ``sockcli path ARGS`` prints; fails the test unless it exits 0, silent."""
    done = _path(cli, *args, **kwargs)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout.splitlines()


def _json(cli: Cli, *args: str) -> dict[str, Any]:
    [line] = _ok(cli, *args, "--json")
    value: dict[str, Any] = json.loads(line)
    return value


def _would(cli: Cli, event: str = "ev") -> dict[str, Any]:
    """What path says of an event whose hub does not run: the paths of a Unix hub."""
    where = cli.socket_dir
    return {"event_name": event, "socket": f"{where}/{event}.sock",
            "fifo": f"{where}/{event}.fifo", "lines": f"{where}/{event}.lines.sock",
            "running": False}


# -- no hub running: the paths a hub would use -------------------------------------------------


def test_each_flag_prints_its_path_in_a_fixed_order(cli: Cli) -> None:
    would = _would(cli)
    sock, fifo, lines = would["socket"], would["fifo"], would["lines"]
    assert _ok(cli, "ev") == [sock]  # the socket by default
    assert _ok(cli, "ev", "--socket") == [sock]
    assert _ok(cli, "ev", "--fifo") == [fifo]
    assert _ok(cli, "ev", "--lines") == [lines]
    # Whatever the order of the flags: socket, FIFO, lines socket, one per line.
    assert _ok(cli, "ev", "--lines", "--fifo", "--socket") == [sock, fifo, lines]
    assert _ok(cli, "--lines", "ev", "--fifo") == [fifo, lines]
    assert _ok(cli, "ev", "--fifo", "--socket", "--fifo") == [sock, fifo]
    assert _json(cli, "ev") == would
    # Nothing was made: the socket directory does not even exist yet.
    assert not cli.socket_dir.exists()


def test_paths_follow_the_settings(cli: Cli) -> None:
    other = cli.root / "elsewhere"
    done = cli.run("--socket-dir", str(other), "path", "ev", "--fifo", "--socket")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [f"{other}/ev.sock", f"{other}/ev.fifo"]
    config = cli.root / "settings.toml"
    config.write_text(f'socket_dir = "{other}"\n')
    done = cli.run("--config", str(config), "path", "ev", "--lines")
    assert (done.returncode, done.stdout) == (0, f"{other}/ev.lines.sock\n"), done.stderr


def test_event_from_the_environment(cli: Cli) -> None:
    env = {"SOCKCLI_EVENT": "from_env"}
    assert _ok(cli, "--fifo", env=env) == [_would(cli, "from_env")["fifo"]]
    assert _ok(cli, "named", "--fifo", env=env) == [_would(cli, "named")["fifo"]]


def test_no_event_and_no_hub_is_69_as_for_send(cli: Cli) -> None:
    done = _path(cli, "--fifo")
    assert (done.returncode, done.stdout) == (69, "")
    sent = cli.run("send", "--wait", "0", "-d", "{}")
    assert sent.returncode == 69
    assert error_line(done.stderr) == error_line(sent.stderr) == (
        "sockcli: error: no EVENT given and no hub is running: name the event, or start a hub "
        "with 'sockcli serve EVENT'")


@pytest.mark.parametrize("args", [("bad/name",), ("x" * 65,)], ids=["slash", "too-long"])
def test_a_bad_event_name_is_a_usage_error_as_for_send(cli: Cli, args: tuple[str, ...]) -> None:
    done = _path(cli, *args, "--fifo")
    assert (done.returncode, done.stdout) == (2, "")
    sent = cli.run("send", *args, "-d", "{}")
    assert sent.returncode == 2
    assert usage_error(done.stderr) == usage_error(sent.stderr)
    assert "Invalid value for EVENT: invalid event name" in usage_error(done.stderr)
    from_env = _path(cli, env={"SOCKCLI_EVENT": "bad/name"})
    assert from_env.returncode == 2
    assert "Invalid value for SOCKCLI_EVENT" in usage_error(from_env.stderr)


def test_json_takes_no_flag(cli: Cli) -> None:
    done = _path(cli, "ev", "--json", "--fifo")
    assert (done.returncode, done.stdout) == (2, "")
    assert usage_error(done.stderr) == ("Error: --json prints every path: give it without "
                                        "--socket, --fifo and --lines")


def test_an_unsafe_socket_dir_is_a_configuration_error(cli: Cli) -> None:
    cli.socket_dir.mkdir(mode=0o700)
    os.chmod(cli.socket_dir, 0o755)
    done = _path(cli, "ev")
    assert (done.returncode, done.stdout) == (78, "")
    assert error_line(done.stderr) == (
        f"sockcli: error: socket directory {cli.socket_dir} is readable by others (mode "
        f"0755): run 'chmod 700 {cli.socket_dir}'")


def test_a_socket_path_too_long_is_a_configuration_error(cli: Cli) -> None:
    deep = cli.root / ("d" * 90)
    done = cli.run("--socket-dir", str(deep), "path", "event_name_of_some_length", "--lines")
    assert (done.returncode, done.stdout) == (78, "")
    assert "bytes for Unix sockets: choose a shorter socket_dir or event name" in \
        error_line(done.stderr)


# -- a running hub: its record says ----------------------------------------------------------


def test_a_unix_hub_says_its_paths_and_they_are_the_ones_foreseen(cli: Cli) -> None:
    before = _json(cli, "ev")
    cli.serve("ev")
    record = cli.record("ev")
    after = _json(cli, "ev")
    assert after == {**before, "running": True}
    assert (after["socket"], after["fifo"], after["lines"]) == \
        (record["path"], record["fifo"], record["lines"])
    assert stat.S_ISSOCK(os.lstat(after["socket"]).st_mode)
    assert stat.S_ISFIFO(os.lstat(after["fifo"]).st_mode)
    assert stat.S_ISSOCK(os.lstat(after["lines"]).st_mode)
    assert _ok(cli, "ev", "--lines", "--socket", "--fifo") == \
        [after["socket"], after["fifo"], after["lines"]]


def test_a_script_publishes_through_the_fifo_it_was_told(cli: Cli) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--json", "--count", "1")
    done = cli.bash('fifo=$(sockcli path ev --fifo) && echo \'{"progress": 40}\' > "$fifo"')
    assert (done.returncode, done.stderr) == (0, "")
    assert read_json(listener)["data"] == {"progress": 40}
    assert listener.wait(10) == 0


def test_the_only_hub_is_picked_and_several_are_64(cli: Cli) -> None:
    cli.serve("alpha")
    assert _ok(cli) == [cli.record("alpha")["path"]]
    assert _ok(cli, "--fifo", env={"SOCKCLI_EVENT": "other"}) == [_would(cli, "other")["fifo"]]
    cli.serve("beta", "--tcp")
    done = _path(cli, "--socket")
    assert (done.returncode, done.stdout) == (64, "")
    sent = cli.run("send", "--wait", "0", "-d", "{}")
    assert sent.returncode == 64
    assert error_line(done.stderr) == error_line(sent.stderr) == (
        "sockcli: error: no EVENT given and 2 hubs are running (alpha, beta): name one, or set "
        "SOCKCLI_EVENT")
    assert _ok(cli, "beta") == [f"{cli.record('beta')['host']}:{cli.record('beta')['port']}"]


def test_a_tcp_hub_has_an_address_and_neither_fifo_nor_lines(cli: Cli) -> None:
    cli.serve("tt", "--tcp")
    record = cli.record("tt")
    address = f"{record['host']}:{record['port']}"
    assert _ok(cli, "tt") == _ok(cli, "tt", "--socket") == [address]
    assert _json(cli, "tt") == {"event_name": "tt", "socket": address, "fifo": None,
                                "lines": None, "running": True}
    for args, what, why in ((("--fifo",), "FIFO", "a FIFO is local"),
                            (("--socket", "--fifo"), "FIFO", "a FIFO is local"),
                            (("--lines",), "JSON-lines socket", "it listens on TCP only")):
        done = _path(cli, "tt", *args)
        assert (done.returncode, done.stdout) == (69, ""), args  # nothing printed before it
        assert error_line(done.stderr) == (
            f"sockcli: error: hub 'tt' is a TCP hub: it has no {what} ({why}); start it "
            "without --tcp for one, or publish with 'sockcli send tt'")


def test_a_hub_without_fifo_says_so(cli: Cli) -> None:
    cli.serve("ev", "--no-fifo")
    paths = _json(cli, "ev")
    assert (paths["fifo"], paths["running"]) == (None, True)
    assert not os.path.lexists(_would(cli)["fifo"])
    for args in (("--fifo",), ("--socket", "--fifo", "--lines")):
        done = _path(cli, "ev", *args)
        assert (done.returncode, done.stdout) == (69, "")
        assert error_line(done.stderr) == (
            "sockcli: error: hub 'ev' runs without a FIFO (serve --no-fifo, or the [unix] fifo "
            "setting): restart it with one, or publish with 'sockcli send ev'")
    assert _ok(cli, "ev", "--socket", "--lines") == [paths["socket"], paths["lines"]]


@pytest.mark.parametrize(("variable", "key", "option"), [
    ("SOCKCLI_UNIX__FIFO", "fifo", "--fifo"),
    ("SOCKCLI_UNIX__LINES_SOCKET", "lines", "--lines")])
def test_no_hub_and_settings_that_turn_a_way_off(cli: Cli, variable: str, key: str,
                                                 option: str) -> None:
    env = {variable: "false"}
    done = cli.run("path", "ev", "--json", env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {**_would(cli), key: None}
    done = cli.run("path", "ev", "--socket", option, env=env)
    assert (done.returncode, done.stdout) == (69, "")
    setting = variable.removeprefix("SOCKCLI_UNIX__").lower()
    what = "FIFO" if key == "fifo" else "JSON-lines socket"
    assert error_line(done.stderr) == (
        f"sockcli: error: a hub of 'ev' would make no {what}: the [unix] {setting} setting is "
        "false; set it to true for one, or publish with 'sockcli send ev'")
    # And the hub started under them makes none indeed.
    cli.serve("ev", env=env)
    assert _json(cli, "ev") == {**_would(cli), key: None, "running": True}


def test_a_lines_socket_path_too_long_is_none_as_for_the_hub(cli: Cli) -> None:
    # The main socket's path fits in 107 bytes, the lines socket's (6 bytes longer) does not.
    where = cli.root / ("d" * (96 - len(str(cli.root)) - 1))
    assert len(f"{where}/ev.sock") <= 107 < len(f"{where}/ev.lines.sock")
    options = ("--socket-dir", str(where))
    done = cli.run(*options, "path", "ev", "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["lines"] is None
    done = cli.run(*options, "path", "ev", "--lines")
    assert (done.returncode, done.stdout) == (69, "")
    assert error_line(done.stderr) == (
        "sockcli: error: a hub of 'ev' would make no JSON-lines socket: its path would be "
        "longer than Unix sockets take; choose a shorter socket_dir or event name, or publish "
        "with 'sockcli send ev'")
    hub = cli.popen(*options, "serve", "ev")
    assert "has no JSON-lines socket: its path would be longer" in read_line(hub, "stderr")
    assert "serving" in read_line(hub, "stderr")
    done = cli.run(*options, "path", "ev", "--json")
    assert json.loads(done.stdout) == {"event_name": "ev", "socket": f"{where}/ev.sock",
                                       "fifo": f"{where}/ev.fifo", "lines": None,
                                       "running": True}
    done = cli.run(*options, "path", "ev", "--lines")
    assert (done.returncode, done.stdout) == (69, "")
    assert "hub 'ev' runs without a JSON-lines socket" in error_line(done.stderr)


def test_event_completion_offers_the_running_hubs(cli: Cli) -> None:
    cli.serve("alpha")
    cli.serve("beta", "--tcp")
    env = {"_SOCKCLI_COMPLETE": "bash_complete", "COMP_WORDS": "sockcli path ",
           "COMP_CWORD": "2"}
    done = cli.run(env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["plain,alpha", "plain,beta"]
    env.update(COMP_WORDS="sockcli path --", COMP_CWORD="2")
    done = cli.run(env=env)
    assert done.stdout.splitlines() == [f"plain,{flag}" for flag in (
        "--socket", "--fifo", "--lines", "--json", "--help")]

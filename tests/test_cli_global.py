"""What every command shares: global options, finding the event, --connect, configuration,
and errors as one line on stderr with a documented exit status."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

import sockcli
import sockcli.cli.errors as errors_module
from tests.clitools import (
    SOCKCLI,
    error_line,
    read_json,
    rest,
    stderr_line,
    stop,
    usage_error,
)

DOCUMENTED_CODES = {0, 1, 2, 64, 65, 66, 68, 69, 74, 75, 77, 78, 124, 130}


@pytest.mark.timeout(30)
def test_version() -> None:
    for flag in ("--version", "-V"):
        done = subprocess.run([SOCKCLI, flag], capture_output=True, text=True, timeout=20)
        assert (done.returncode, done.stdout, done.stderr) == \
            (0, f"sockcli, version {sockcli.__version__}\n", "")


@pytest.mark.timeout(10)
def test_exit_codes_are_documented() -> None:
    """errors.py documents each code the CLI uses; each has its own test in these files."""
    doc = errors_module.__doc__ or ""
    table = {int(m) for m in re.findall(r"^(\d+)\s{2,}", doc, re.MULTILINE)}
    assert table == DOCUMENTED_CODES
    used = {cls.exit_code for cls in vars(errors_module).values()
            if isinstance(cls, type) and issubclass(cls, errors_module.CliError)}
    assert used <= DOCUMENTED_CODES
    assert errors_module.EXIT_INTERRUPTED == 130


@pytest.mark.timeout(30)
def test_help_lists_the_exit_codes(cli) -> None:
    done = cli.run("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for code in sorted(DOCUMENTED_CODES - {0}):
        assert re.search(rf"\b{code} [a-z]", text), code


@pytest.mark.timeout(30)
def test_usage_errors_exit_2_with_clicks_usage_text(cli) -> None:
    cases = [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["send", "ev", "--lines", "-d", "{}"], "--data and --lines exclude each other"),
        (["send", "ev", "--connect", "localhost"], "'localhost' is not HOST:PORT"),
        (["serve", "no/slash"], "Invalid value for EVENT"),
        (["listen", "ev", "--count", "0"], "Invalid value for '-n' / '--count'"),
        (["listen", "ev", "--type", "news"], "Invalid value for '-t' / '--type'"),
        (["--frobnicate", "list"], "No such option '--frobnicate'"),
    ]
    for args, expected in cases:
        done = cli.run(*args)
        assert done.returncode == 2, args
        assert expected in usage_error(done.stderr), done.stderr


@pytest.mark.timeout(30)
def test_quiet_and_verbose(cli) -> None:
    hub = cli.popen("-q", "serve", "ev")
    # The send waits for the hub: it is how we know the hub is up without its "serving" line.
    sent = cli.run("-q", "send", "ev", "--wait", "10", "-d", '{"n": 1}')
    assert (sent.returncode, sent.stderr) == (0, "")
    sent = cli.run("-v", "send", "ev", "--lines", input='{"n": 2}\n{"n": 3}\n')
    assert sent.returncode == 0
    assert sent.stderr == "sockcli: 2 messages sent and acknowledged, 0 lines refused\n"
    assert stop(hub) == 0
    assert rest(hub, "stderr") == ""  # -q: neither "serving" nor "stopped"

    hub = cli.popen("-v", "serve", "ev")
    assert stderr_line(hub) == "sockcli: INFO: hub ev listening on " \
        f"{cli.socket_dir / 'ev.sock'}"
    # Errors are printed even with -q.
    refused = cli.run("-q", "serve", "ev")
    assert refused.returncode == 1
    assert "already running" in error_line(refused.stderr)
    assert stop(hub) == 0


@pytest.mark.timeout(30)
def test_debug_shows_the_traceback_and_keeps_the_exit_status(cli) -> None:
    plain = cli.run("send", "ev", "--wait", "0", "-d", "{}")
    assert plain.returncode == 69
    assert "no hub is running" in error_line(plain.stderr)
    for args, env in ((["--debug"], None), ([], {"SOCKCLI_DEBUG": "1"})):
        debug = cli.run(*args, "send", "ev", "--wait", "0", "-d", "{}", env=env)
        assert debug.returncode == 69
        assert debug.stderr.startswith("Traceback (most recent call last):")
        assert debug.stderr.splitlines()[-1] == plain.stderr.rstrip("\n")
    debug = cli.run("--debug", "send", "ev", "-d", "[]")
    assert debug.returncode == 65 and "Traceback" in debug.stderr


@pytest.mark.timeout(40)
def test_event_may_be_left_out(cli) -> None:
    # No hub: waited for as a named one (send --wait, listen --no-reconnect --wait), then 69.
    for command in (["send", "-d", "{}", "--wait", "0"],
                    ["listen", "--no-reconnect", "--wait", "0"]):
        done = cli.run(*command)
        assert done.returncode == 69
        assert error_line(done.stderr) == (
            "sockcli: error: no EVENT given and no hub is running: name the event, or start a "
            "hub with 'sockcli serve EVENT'")

    # One hub (TCP here): it is the one.
    cli.serve("alpha", "--tcp")
    listener = cli.listen("--count", "1")
    sent = cli.run("send", "-d", '{"to": "the only hub"}')
    assert (sent.returncode, sent.stderr) == (0, "")
    got = read_json(listener)
    assert (got["event_name"], got["data"]) == ("alpha", {"to": "the only hub"})

    # Two hubs: the user must choose, and is told among what.
    cli.serve("beta")
    for command in (["send", "-d", "{}"], ["listen"]):
        done = cli.run(*command)
        assert done.returncode == 64
        assert error_line(done.stderr) == (
            "sockcli: error: no EVENT given and 2 hubs are running (alpha, beta): name one, or "
            "set SOCKCLI_EVENT")

    # $SOCKCLI_EVENT chooses; an EVENT argument still wins over it.
    env = {"SOCKCLI_EVENT": "beta"}
    listener = cli.listen("--count", "2", env=env)
    sent = cli.run("send", "-d", '{"n": 1}', env=env)
    assert (sent.returncode, sent.stderr) == (0, "")
    sent = cli.run("send", "beta", "-d", '{"n": 2}', env={"SOCKCLI_EVENT": "alpha"})
    assert (sent.returncode, sent.stderr) == (0, "")
    assert [(m["event_name"], m["data"]) for m in (read_json(listener), read_json(listener))] \
        == [("beta", {"n": 1}), ("beta", {"n": 2})]
    assert listener.wait(10) == 0


@pytest.mark.timeout(30)
def test_connect_reaches_a_tcp_hub_by_address(cli) -> None:
    hub = cli.serve("ev", "--tcp")
    record = cli.record("ev")
    address = f"{record['host']}:{record['port']}"
    # Another socket directory, where no record says where the hub is: only the address can,
    # with the hub's token (its per-hub secret, as one would copy it to another machine).
    elsewhere = ["--socket-dir", str(cli.root / "elsewhere")]
    token = ["--token-file", str(cli.socket_dir / "ev.token")]
    listener = cli.listen("--connect", address, "--count", "2", *token, options=elsewhere)
    for args in (["send", "ev"], ["send"]):  # the hub says which event it serves
        sent = cli.run(*elsewhere, *args, "--connect", address, *token, "-d",
                       '{"via": "address"}')
        assert (sent.returncode, sent.stderr) == (0, "")
    assert [read_json(listener)["data"] for _ in range(2)] == [{"via": "address"}] * 2
    assert listener.wait(10) == 0
    [row] = cli.list_json("--connect", address, *token, options=elsewhere)
    assert (row["event_name"], row["transport"], row["address"], row["pid"]) == \
        ("ev", "tcp", address, record["pid"])
    # Nothing there: 69, as for a missing local hub.
    assert stop(hub) == 0
    gone = cli.run(*elsewhere, "send", "ev", "--connect", address, "--wait", "0", "-d", "{}")
    assert gone.returncode == 69
    assert f"no hub is running at {address}" in error_line(gone.stderr)


def _write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.mark.timeout(40)
def test_config_file(cli) -> None:
    other_dir = cli.root / "other"
    config = _write(cli.root / "conf" / "settings.toml",
                    f'socket_dir = "{other_dir}"\ntimezone = "Asia/Tokyo"\n')
    # The user's own settings file is broken: --config replaces it, so it is not read.
    _write(cli.config_home / "sockcli" / "settings.toml", "buffer_size = 1\n")
    hub = cli.popen("--config", config, "serve", "ev")
    assert stderr_line(hub).startswith(f"sockcli: serving 'ev' on {other_dir / 'ev.sock'} ")
    # SOCKCLI_CONFIG works as the option does.
    listener = cli.listen("ev", "--count", "1", env={"SOCKCLI_CONFIG": config})
    sent = cli.run("--config", config, "send", "ev", "-d", '{"n": 1}')
    assert (sent.returncode, sent.stderr) == (0, "")
    assert read_json(listener)["timestamp_iso"].endswith("+09:00")
    assert [r["event_name"] for r in cli.list_json(options=["--config", config])] == ["ev"]
    assert stop(hub) == 0
    assert not (other_dir / "ev.hub").exists()


@pytest.mark.timeout(40)
def test_invalid_configuration_exits_78(cli) -> None:
    bad = {"SOCKCLI_BUFFER_SIZE": "abc"}
    for command in (["serve", "ev"], ["send", "ev", "-d", "{}"], ["send", "-d", "{}"],
                    ["listen", "ev"], ["listen"], ["list"]):
        done = cli.run(*command, env=bad)
        assert done.returncode == 78, command
        assert error_line(done.stderr) == (
            "sockcli: error: invalid setting buffer_size = 'abc' from environment variable "
            "SOCKCLI_BUFFER_SIZE: Input should be a valid integer, unable to parse string as an "
            "integer")
    files = {
        "missing.toml": (None, "does not exist"),
        "syntax.toml": ("buffer_size = \n", "is not valid TOML"),
        "typo.toml": ("bufer_size = 4096\n", "unknown setting bufer_size in"),
        "range.toml": ("[unix]\nmax_connections = 0\n", "invalid setting [unix] "
                       "max_connections = 0 from"),
    }
    for name, (text, expected) in files.items():
        path = cli.root / name
        if text is not None:
            path.write_text(text)
        done = cli.run("--config", str(path), "send", "ev", "-d", "{}")
        assert done.returncode == 78, name
        assert expected in error_line(done.stderr)
    # The user's settings file, when it is the one in use.
    _write(cli.config_home / "sockcli" / "settings.toml", 'timezone = "Mars/Olympus"\n')
    done = cli.run("list")
    assert done.returncode == 78
    assert "invalid setting timezone = 'Mars/Olympus'" in error_line(done.stderr)


@pytest.mark.timeout(40)
def test_socket_dir_option(cli) -> None:
    os.mkdir(cli.root / "work")
    relative = ["--socket-dir", "hubs"]  # relative to where the command runs
    cwd = str(cli.root / "work")
    hub = cli.popen(*relative, "serve", "ev", cwd=cwd)
    assert str(cli.root / "work" / "hubs" / "ev.sock") in stderr_line(hub)
    done = subprocess.run([SOCKCLI, *relative, "send", "ev", "-d", "{}"], cwd=cwd,
                          env=cli.env, capture_output=True, text=True, timeout=20)
    assert (done.returncode, done.stderr) == (0, "")
    assert cli.list_json() == []  # not in the default directory
    listed = cli.list_json(options=["--socket-dir", str(cli.root / "work" / "hubs")])
    assert [r["event_name"] for r in listed] == ["ev"]
    assert stop(hub, signal.SIGINT) == 0
    # A directory others may write to is refused by every command, as a configuration error.
    unsafe = cli.root / "unsafe"
    unsafe.mkdir(mode=0o700)
    os.chmod(unsafe, 0o777)
    for command in (["serve", "ev"], ["send", "ev", "-d", "{}"], ["send", "-d", "{}"],
                    ["listen", "ev"], ["list"]):
        done = cli.run("--socket-dir", str(unsafe), *command)
        assert done.returncode == 78, command
        assert error_line(done.stderr) == (
            f"sockcli: error: socket directory {unsafe} is writable by others (mode 0777): "
            f"run 'chmod 700 {unsafe}'")

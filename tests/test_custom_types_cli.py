"""Custom message types through the command line: a type added by configuration alone (the
settings file or ``SOCKCLI_MESSAGE_TYPES``) is relayed by ``serve``, filtered by the hub for
``listen --type`` and accepted by ``send --type``, on the fast path and through click; an
unknown type is a usage error naming the valid ones, and completion offers them."""

from __future__ import annotations

from typing import Any

import pytest

from sockcli.cli.sendcore import parse_fast_send
from tests.clitools import read_json, rest, transport_args, usage_error

pytestmark = pytest.mark.timeout(60)

CHOICES = "data, error, control, warning"


def _configure(cli: Any, source: str) -> dict[str, str]:
    """Add the type ``warning`` by the settings file or by the variable; returns the
    environment every command of the test then runs with."""
    if source == "file":
        settings = cli.config_home / "sockcli" / "settings.toml"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text('message_types = ["warning"]\n')
        return {}
    return {"SOCKCLI_MESSAGE_TYPES": "warning"}


def _refusal(name: str, choices: str) -> str:
    return (f"Error: Invalid value for '-t' / '--type': {name!r} is not a known message type: "
            f"choose one of {choices} (the message_types setting adds others)")


@pytest.mark.parametrize("source", ["file", "env"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_configured_type_is_relayed_and_filtered_by_the_hub(cli: Any, source: str,
                                                              transport: str) -> None:
    env = _configure(cli, source)
    cli.serve("ev", *transport_args(transport), env=env)
    listener = cli.listen("ev", "--type", "warning", "--count", "1", env=env)
    [row] = cli.list_json()
    assert row["subscribers"] == 1  # its filter is at the hub already
    data = cli.run("send", "ev", "-d", '{"d": 1}', env=env)
    assert (data.returncode, data.stderr) == (0, "")
    warning = cli.bash("""echo '{"w":1}' | sockcli send ev --type warning""", env=env)
    assert (warning.returncode, warning.stderr) == (0, "")
    got = read_json(listener)
    assert (got["event_name"], got["message_type"], got["data"]) == ("ev", "warning", {"w": 1})
    assert listener.wait(10) == 0
    assert rest(listener) == ""  # the data message was not for it
    [row] = cli.list_json()
    assert (row["received"], row["delivered"], row["queued"]) == (2, 1, 1)


@pytest.mark.parametrize("source", ["file", "env"])
def test_an_unknown_type_is_a_usage_error_naming_the_choices(cli: Any, source: str) -> None:
    env = _configure(cli, source)
    fast = ["send", "ev", "--type", "nope", "-d", "{}"]
    slow = ["send", "ev", "-tnope", "-d", "{}"]  # an attached short value: click parses it
    assert parse_fast_send(fast) is not None and parse_fast_send(slow) is None
    for argv in (fast, slow, ["send", "ev", "--type", "NOPE", "--lines"],
                 ["listen", "ev", "--type", "warning", "--type", "nope"]):
        # No hub is running: the type is refused before any connection (not exit 69).
        done = cli.run(*argv, input='{"w": 1}\n', env=env)
        assert done.returncode == 2, (argv, done.stderr)
        name = "NOPE" if "NOPE" in argv else "nope"
        assert usage_error(done.stderr) == _refusal(name, CHOICES), argv
        assert done.stdout == ""


def test_without_configuration_a_custom_type_is_refused(cli: Any) -> None:
    for argv in (["send", "ev", "--type", "warning", "-d", "{}"],
                 ["send", "ev", "-twarning", "-d", "{}"],
                 ["listen", "ev", "--type", "warning"]):
        done = cli.run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert usage_error(done.stderr) == _refusal("warning", "data, error, control"), argv


def test_click_path_and_config_option_accept_it_and_listen_repeats_type(cli: Any) -> None:
    config = cli.root / "custom.toml"
    config.write_text('message_types = ["warning", "notice"]\n')
    options = ["--config", str(config)]
    cli.serve("ev", options=options)
    listener = cli.listen("ev", "-t", "error", "--type", "WARNING", "--count", "2",
                          options=options)
    slow = [*options, "send", "ev", "-twarning", "-d", '{"n": 2}']
    assert parse_fast_send(slow) is None
    for argv in ([*options, "send", "ev", "-t", "notice", "-d", '{"n": 0}'],
                 [*options, "send", "ev", "--type=error", "-d", '{"n": 1}'],
                 slow):
        done = cli.run(*argv)
        assert (done.returncode, done.stderr) == (0, ""), argv
    got = [read_json(listener) for _ in range(2)]
    assert [(m["message_type"], m["data"]) for m in got] == \
        [("error", {"n": 1}), ("warning", {"n": 2})]
    assert listener.wait(10) == 0


@pytest.mark.parametrize("source", ["file", "env"])
def test_completion_offers_the_configured_types(cli: Any, source: str) -> None:
    env = _configure(cli, source)

    def complete(words: str) -> list[str]:
        done = cli.run(env={**env, "_SOCKCLI_COMPLETE": "bash_complete", "COMP_WORDS": words,
                            "COMP_CWORD": str(len(words.split(" ")) - 1)})
        assert (done.returncode, done.stderr) == (0, "")
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("sockcli send --type ") == ["data", "error", "control", "warning"]
    assert complete("sockcli listen -t error --type w") == ["warning"]
    assert complete("sockcli send -t W") == ["warning"]

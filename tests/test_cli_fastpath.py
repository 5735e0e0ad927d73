"""The fast path of ``sockcli send``: the same plans as click, entry by entry of the option
tables, and no heavy imports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import sockcli.cli.send as send_module
from sockcli.cli import sendopts
from sockcli.cli.app import cli as click_cli
from sockcli.cli.sendcore import SendPlan, parse_fast_send
from sockcli.cli.sendopts import Option
from sockcli.cli.state import CliState
from tests.clitools import read_line

SAME_AS_CLICK = [
    ["send", "ev"],
    ["send", "ev", "--lines"],
    ["send", "--lines", "ev"],
    ["send", "ev", "-d", '{"a": 1}'],
    ["send", "ev", "--data={\"a\": 1}"],
    ["send", "ev", "-d", "--lines"],  # a value, even one that looks like an option
    ["send", "ev", "-d", ""],
    ["send", "ev", "-t", "error"],
    ["send", "ev", "--type=CONTROL"],
    ["send", "ev", "--to", "bar", "--wait", "0.5", "--timeout", "2"],
    ["send", "ev", "--wait=0", "--timeout=0.25"],
    ["send", "ev", "--wait", "1e3", "--timeout", " 7 "],
    ["send", "--connect", "127.0.0.1:47800"],
    ["send", "ev", "--connect=[::1]:47801"],
    ["send", "ev", "--token-file", "/tmp/token", "--tls-ca", "ca.pem"],
    ["send", "--tls-ca=/etc/ca.pem", "--token-file=rel/token", "ev"],
    ["-v", "send", "ev"],
    ["-v", "-v", "--quiet", "send", "ev"],
    ["--debug", "send", "ev"],
    ["--config", "/tmp/x.toml", "--socket-dir=/tmp/s", "send", "ev"],
    ["--socket-dir", "rel/dir", "send"],
]

CLICK_DECIDES = [
    ["send", "--help"],
    ["send", "-h"],
    ["--version"],
    ["send", "ev", "--frobnicate"],
    ["send", "ev", "--type", "no/slash"],
    ["send", "ev", "--type", ""],
    ["send", "ev", "--wait", "-1"],
    ["send", "ev", "--wait", "soon"],
    ["send", "ev", "--timeout", "0"],
    ["send", "ev", "-d"],
    ["send", "ev", "--lines", "-d", "{}"],
    ["send", "ev", "-d", "{}", "-d", '{"second": "lost"}'],  # a usage error, not the last
    ["send", "ev", "--data={}", "-d", "{}"],
    ["send", "ev", "--lines=yes"],
    ["send", "ev", "--connect", "localhost"],
    ["send", "ev", "--token-file"],
    ["send", "no/slash"],
    ["send", "ev", "extra"],
    ["send", "ev", "-vd", "{}"],
    ["send", "ev", "-terror"],
    ["send", "-v", "ev"],  # a global option after the command
    ["-vv", "send", "ev"],
    ["send", "--", "ev"],
    ["listen", "ev"],
    ["list"],
    ["serve", "ev"],
    [],
]

#: For each kind of option: a value to give it, and the value it must become.
SAMPLES: dict[str, tuple[str, object]] = {
    sendopts.TEXT: ("a b=c", "a b=c"),
    sendopts.FILE: ("rel/some.file", "rel/some.file"),
    sendopts.DIR: ("rel/some-dir", "rel/some-dir"),
    sendopts.MESSAGE_TYPE: ("ERROR", "error"),
    sendopts.HOSTPORT: ("[::1]:47801", ("::1", 47801)),
}


def _sample_values(option: Option) -> list[tuple[str, object]]:
    if option.kind == sendopts.SECONDS:  # both bounds, and a value within them
        assert option.low is not None and option.high is not None
        middle = (option.low + option.high) / 2
        return [(repr(v), v) for v in (option.low, option.high, middle) if v != option.default]
    assert option.kind in SAMPLES, f"add a sample value for options of kind {option.kind!r}"
    return [SAMPLES[option.kind]]


def _place(option: Option, words: list[str]) -> list[str]:
    """A whole command line with ``words`` where ``option`` belongs."""
    if option in sendopts.GLOBAL_OPTIONS:
        return [*words, "send", "ev"]
    return ["send", "ev", *words]


def _every_entry() -> list[tuple[list[str], str, object]]:
    """(command line, dest, expected value) for every flag of every entry of the tables."""
    lines: list[tuple[list[str], str, object]] = []
    for option in sendopts.PLAN_OPTIONS:
        for flag in option.flags:
            if option.kind == sendopts.FLAG:
                lines.append((_place(option, [flag]), option.dest, True))
            elif option.kind == sendopts.COUNT:
                lines.append((_place(option, [flag, flag]), option.dest, 2))
            else:
                for text, value in _sample_values(option):
                    lines.append((_place(option, [flag, text]), option.dest, value))
                    if flag.startswith("--"):
                        lines.append((_place(option, [f"{flag}={text}"]), option.dest, value))
    return lines


def _bad_values(option: Option, tmp_path: Path) -> list[str]:
    """Values click refuses for ``option`` (so must the fast path)."""
    if option.kind == sendopts.SECONDS:
        assert option.low is not None and option.high is not None
        return [repr(option.low - 0.0001), repr(option.high * 2), "soon", ""]
    if option.kind == sendopts.MESSAGE_TYPE:
        return ["no/slash", "", "x" * 65]
    if option.kind == sendopts.HOSTPORT:
        return ["localhost", "host:0", "host:65536", ":80", "host:port"]
    if option.kind == sendopts.FILE:
        return [str(tmp_path)]  # a directory
    if option.kind == sendopts.DIR:
        afile = tmp_path / "a-file"
        afile.write_text("")
        return [str(afile)]
    return []


def _click_plan(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> SendPlan:
    plans: list[SendPlan] = []
    monkeypatch.setattr(send_module, "run_send", plans.append)
    result = CliRunner().invoke(click_cli, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(plans) == 1
    return plans[0]


@pytest.mark.parametrize("argv", SAME_AS_CLICK, ids=" ".join)
def test_fast_parse_gives_the_plan_click_gives(argv, monkeypatch) -> None:
    monkeypatch.delenv("SOCKCLI_EVENT", raising=False)
    monkeypatch.delenv("SOCKCLI_CONFIG", raising=False)
    monkeypatch.delenv("SOCKCLI_DEBUG", raising=False)
    fast = parse_fast_send(argv)
    assert fast is not None
    assert fast == _click_plan(argv, monkeypatch)


@pytest.mark.parametrize("argv", CLICK_DECIDES, ids=lambda a: " ".join(a) or "<none>")
def test_anything_unusual_goes_to_click(argv) -> None:
    assert parse_fast_send(argv) is None


@pytest.mark.parametrize(("argv", "dest", "value"), _every_entry(),
                         ids=[" ".join(a) for a, _, _ in _every_entry()])
def test_every_entry_of_the_tables_gives_the_plan_click_gives(argv, dest, value,
                                                               monkeypatch) -> None:
    monkeypatch.delenv("SOCKCLI_EVENT", raising=False)
    monkeypatch.delenv("SOCKCLI_CONFIG", raising=False)
    fast = parse_fast_send(argv)
    assert fast is not None, "the fast path does not take this line"
    assert getattr(fast, dest) == value
    assert fast == _click_plan(argv, monkeypatch)


@pytest.mark.parametrize("option", [o for o in sendopts.PLAN_OPTIONS if o.takes_value],
                         ids=repr)
def test_a_bad_or_missing_value_is_left_to_click(option: Option, tmp_path: Path,
                                                 monkeypatch) -> None:
    runtime = tmp_path / "run"  # click reads the settings to refuse a message type
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    for flag in option.flags:
        if option not in sendopts.GLOBAL_OPTIONS:  # the value left out, at the end
            assert parse_fast_send(["send", "ev", flag]) is None
        for text in _bad_values(option, tmp_path):
            argv = _place(option, [flag, text])
            assert parse_fast_send(argv) is None, argv
            done = CliRunner().invoke(click_cli, argv)
            assert done.exit_code == 2, (argv, done.output)


def _declared(command: click.Command) -> set[str]:
    ctx = click.Context(command, info_name=command.name)
    return {flag for p in command.get_params(ctx) if isinstance(p, click.Option)
            for flag in p.opts + p.secondary_opts} - {"-h", "--help", "-V", "--version"}


def test_click_has_exactly_the_options_of_the_tables() -> None:
    def flags(options: tuple[Option, ...]) -> set[str]:
        return {flag for option in options for flag in option.flags}

    assert _declared(click_cli) == flags(sendopts.GLOBAL_OPTIONS)
    assert _declared(send_module.send) == flags(sendopts.SEND_OPTIONS + sendopts.CLIENT_OPTIONS)
    dests = [option.dest for option in sendopts.PLAN_OPTIONS]
    assert len(dests) == len(set(dests))
    assert set(SendPlan.__slots__) == {"event", *dests}
    # What click keeps in the CliState instead of passing it to the command.
    fields = {f.name for f in dataclasses.fields(CliState)}
    assert {o.dest for o in sendopts.GLOBAL_OPTIONS + sendopts.SECURITY_OPTIONS} <= fields


def test_a_configured_message_type_is_taken_by_both(monkeypatch, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("SOCKCLI_MESSAGE_TYPES", "warning,Notice")
    for argv, expected in ((["send", "ev", "-t", "Warning"], "warning"),
                           (["send", "ev", "--type=notice"], "notice")):
        fast = parse_fast_send(argv)
        assert fast is not None and fast.message_type == expected
        assert fast == _click_plan(argv, monkeypatch)
    # Any name of the pattern passes the fast parse; run_send checks it against the settings.
    assert parse_fast_send(["send", "ev", "-t", "nope"]) is not None
    done = CliRunner().invoke(click_cli, ["send", "ev", "-t", "nope"])
    assert done.exit_code == 2
    assert "Error: Invalid value for '-t' / '--type': 'nope' is not a known message type: " \
        "choose one of data, error, control, warning, notice" in done.output


def test_environment_is_read_the_same_way(monkeypatch) -> None:
    monkeypatch.setenv("SOCKCLI_EVENT", "from-env")
    monkeypatch.setenv("SOCKCLI_CONFIG", "/tmp/c.toml")
    monkeypatch.setenv("SOCKCLI_DEBUG", "1")
    fast = parse_fast_send(["send"])
    assert fast == _click_plan(["send"], monkeypatch)
    assert (fast.event, fast.config_file) == ("from-env", "/tmp/c.toml")
    monkeypatch.setenv("SOCKCLI_EVENT", "not/valid")
    assert parse_fast_send(["send"]) is None  # click reports the bad variable


_PROBE = """
import json, sys
from sockcli.cli import main
rc = main(["send", "ev", "-d", '{"n": 1}'])
heavy = sorted(m for m in ("rich", "pydantic", "dynaconf", "click", "typing", "dataclasses",
                           "pathlib", "threading", "logging") if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


def _probe(cli) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          env=cli.env, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.timeout(60)
def test_send_path_imports_nothing_heavy_once_the_settings_are_cached(cli) -> None:
    cli.serve("ev")
    first = _probe(cli)  # the cache may be cold: a full validation is allowed here
    assert first["rc"] == 0
    second = _probe(cli)
    assert second == {"rc": 0, "heavy": []}


@pytest.mark.timeout(60)
def test_a_changed_settings_file_is_picked_up_on_the_next_run(cli) -> None:
    settings = cli.config_home / "sockcli" / "settings.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text('timezone = "UTC"\n')
    cli.serve("ev")
    listener = cli.listen("ev", "--json")
    stamps = []
    for zone, suffix in (("UTC", "+00:00"), ("Asia/Tokyo", "+09:00"), ("America/New_York", "")):
        settings.write_text(f'timezone = "{zone}"\n')
        for _ in range(2):  # the second run of each reads the refreshed cache
            sent = cli.run("send", "ev", "-d", "{}")
            assert sent.returncode == 0, sent.stderr
            stamp = json.loads(read_line(listener))["timestamp_iso"]
            if suffix:
                assert stamp.endswith(suffix), (zone, stamp)
            stamps.append(stamp)
    assert stamps[-1][-6:] in ("-05:00", "-04:00")
    # An invalid file is reported on the very next run, cache or not.
    settings.write_text('timezone = "Mars/Olympus"\n')
    bad = cli.run("send", "ev", "-d", "{}")
    assert bad.returncode == 78
    assert "Mars/Olympus" in bad.stderr and "timezone" in bad.stderr

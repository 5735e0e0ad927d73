"""``sockcli serve`` without click (sockcli.cli.servecore): the same plans as click, entry by
entry of its table, anything unusual left to click, and a running hub that imported neither
click nor the producer's modules."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import click
import pytest
from click.testing import CliRunner

import sockcli.cli.serve as serve_module
from sockcli.cli import sendopts
from sockcli.cli.app import cli as click_cli
from sockcli.cli.sendopts import Option
from sockcli.cli.servecore import (
    RESTART_POLICIES,
    SERVE_OPTIONS,
    SERVE_PLAN_OPTIONS,
    ServePlan,
    parse_fast_serve,
)
from tests.clitools import read_line, rest, stop, usage_error

SAME_AS_CLICK = [
    ["serve", "ev"],
    ["serve", "ev", "--tcp"],
    ["serve", "--tcp", "ev"],
    ["serve", "ev", "--host", "0.0.0.0", "--port", "0"],
    ["serve", "ev", "--port=47800", "--queue-size", "0", "--max-connections", "100000"],
    ["serve", "ev", "--queue-size", " 7 "],
    ["serve", "ev", "--no-client-send", "--no-retain", "--no-fifo"],
    ["serve", "ev", "--token-file", "/tmp/token", "--insecure"],
    ["serve", "ev", "--tls-cert", "cert.pem", "--tls-key=key.pem"],
    ["serve", "ev", "--tls-cert=chain.pem"],
    ["serve", "ev", "--bridge", "mqtt://broker:1883"],
    ["serve", "ev", "--exec", "my-status-script --json", "--restart", "always"],
    ["serve", "ev", "--exec=--looks-like-an-option"],
    ["serve", "ev", "--port", "1", "--port", "2"],  # click keeps the last value, so do we
    ["-v", "serve", "ev"],
    ["-q", "--debug", "serve", "ev"],
    ["--config", "/tmp/x.toml", "--socket-dir=/tmp/s", "serve", "ev"],
]

CLICK_DECIDES = [
    ["serve", "--help"],
    ["serve", "ev", "-h"],
    ["serve"],  # EVENT is required, $SOCKCLI_EVENT or not
    ["serve", "no/slash"],
    ["serve", "ev", "extra"],
    ["serve", "ev", "--frobnicate"],
    ["serve", "ev", "--port", "65536"],
    ["serve", "ev", "--port", "-1"],
    ["serve", "ev", "--port", "eighty"],
    ["serve", "ev", "--queue-size", "1000001"],
    ["serve", "ev", "--max-connections", "0"],
    ["serve", "ev", "--restart", "sometimes", "--exec", "x"],
    ["serve", "ev", "--tls-key", "key.pem"],
    ["serve", "ev", "--restart", "always"],
    ["serve", "ev", "--exec", " "],
    ["serve", "ev", "--tcp=yes"],
    ["serve", "ev", "--exec"],
    ["serve", "-v", "ev"],  # a global option after the command
    ["send", "ev"],
    [],
]

#: A sample value of each kind serve's table uses, and what it becomes.
SAMPLES: dict[str, tuple[str, object]] = {
    sendopts.TEXT: ("a b=c", "a b=c"),
    sendopts.FILE: ("rel/some.file", "rel/some.file"),
}


def _samples(option: Option) -> list[tuple[str, object]]:
    if option.kind == sendopts.INT:
        assert option.low is not None and option.high is not None
        return [(str(int(v)), int(v)) for v in (option.low, option.high)]
    if option.kind == sendopts.CHOICE:
        return [(choice, choice) for choice in option.choices]
    assert option.kind in SAMPLES, f"add a sample value for options of kind {option.kind!r}"
    return [SAMPLES[option.kind]]


def _every_entry() -> list[tuple[list[str], str, object]]:
    """(command line, dest, expected value) for every flag of every entry of the table; a
    --tls-key with its --tls-cert, a --restart with its --exec."""
    needs = {"tls_key": ["--tls-cert", "c.pem"], "restart": ["--exec", "cmd"]}
    lines: list[tuple[list[str], str, object]] = []
    for option in SERVE_OPTIONS:
        extra = needs.get(option.dest, [])
        for flag in option.flags:
            if option.kind == sendopts.FLAG:
                lines.append((["serve", "ev", flag], option.dest, True))
                continue
            for text, value in _samples(option):
                lines.append((["serve", "ev", *extra, flag, text], option.dest, value))
                lines.append((["serve", "ev", *extra, f"{flag}={text}"], option.dest, value))
    return lines


def _click_plan(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> ServePlan:
    plans: list[ServePlan] = []
    monkeypatch.setattr(serve_module, "run_serve", lambda state, plan: plans.append(plan))
    result = CliRunner().invoke(click_cli, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(plans) == 1
    return plans[0]


@pytest.mark.parametrize("argv", SAME_AS_CLICK, ids=" ".join)
def test_fast_parse_gives_the_plan_click_gives(argv: list[str], monkeypatch) -> None:
    fast = parse_fast_serve(argv)
    assert fast is not None
    assert fast == _click_plan(argv, monkeypatch)


@pytest.mark.parametrize(("argv", "dest", "value"), _every_entry(),
                         ids=[" ".join(a) for a, _, _ in _every_entry()])
def test_every_entry_of_the_table_gives_the_plan_click_gives(argv: list[str], dest: str,
                                                              value: object,
                                                              monkeypatch) -> None:
    fast = parse_fast_serve(argv)
    assert fast is not None, "the fast path does not take this line"
    assert getattr(fast, dest) == value
    assert fast == _click_plan(argv, monkeypatch)


@pytest.mark.parametrize("argv", CLICK_DECIDES, ids=lambda a: " ".join(a) or "<none>")
def test_anything_unusual_goes_to_click(argv: list[str], monkeypatch) -> None:
    monkeypatch.setenv("SOCKCLI_EVENT", "ev")
    assert parse_fast_serve(argv) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["serve", "ev", "--tls-key", "key.pem"], "Error: --tls-key needs --tls-cert"),
    (["serve", "ev", "--restart", "always"], "Error: --restart needs --exec"),
    (["serve", "ev", "--exec", " "], "Error: Invalid value for '--exec': empty command: give "
                                     "the command line to run, such as --exec "
                                     "'my-status-script'"),
    (["serve", "no/slash"], "Error: Invalid value for EVENT:"),
])
def test_options_that_do_not_go_together_are_usage_errors(argv: list[str], message: str,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(serve_module, "run_serve", lambda state, plan: None)
    result = CliRunner().invoke(click_cli, argv, prog_name="sockcli")
    assert result.exit_code == 2
    assert usage_error(result.output).startswith(message), result.output


def test_click_has_exactly_the_options_of_the_table() -> None:
    ctx = click.Context(serve_module.serve, info_name="serve")
    declared = [flag for p in serve_module.serve.get_params(ctx) if isinstance(p, click.Option)
                for flag in p.opts]
    assert [f for f in declared if f not in ("-h", "--help")] == \
        [flag for option in SERVE_OPTIONS for flag in option.flags]
    dests = [option.dest for option in SERVE_PLAN_OPTIONS]
    assert len(dests) == len(set(dests))
    assert set(ServePlan.__slots__) == {"event", *dests}


def test_restart_policies_are_the_producers() -> None:
    from sockcli.hub.producer import RESTART_POLICIES as PRODUCER_POLICIES

    assert RESTART_POLICIES == PRODUCER_POLICIES


#: Runs ``sockcli serve``; once it serves, a thread notes what is imported and stops it.
_PROBE = """
import json, os, signal, sys, threading, time
from sockcli.cli import main
seen = {}
def look():
    path = os.path.join(os.environ["XDG_RUNTIME_DIR"], "sockcli", "ev.sock")
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    seen["heavy"] = sorted(m for m in ("click", "subprocess", "ctypes", "sockcli.hub.producer",
                                      "pydantic") if m in sys.modules)
    seen["serving"] = os.path.exists(path)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=look, daemon=True).start()
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, **seen}))
"""


def _probe(cli: Any, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, env=cli.env, timeout=40)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.timeout(90)
def test_a_serving_hub_holds_neither_click_nor_the_producers_modules(cli: Any) -> None:
    _probe(cli, "serve", "ev")  # the settings cache may be cold: pydantic is allowed here
    assert _probe(cli, "-q", "serve", "ev") == \
        {"rc": 0, "heavy": [], "serving": True}
    # Asked for them, it has them: --exec imports the producer, --help click.
    with_exec = _probe(cli, "serve", "ev", "--exec", "sleep 30")
    assert with_exec["rc"] == 0 and "sockcli.hub.producer" in with_exec["heavy"]


@pytest.mark.timeout(60)
def test_the_fast_path_says_what_click_said(cli: Any) -> None:
    hub = cli.popen("serve", "ev")
    assert read_line(hub, "stderr", 15) == \
        f"sockcli: serving 'ev' on {cli.socket_dir / 'ev.sock'} (unix); stop with Ctrl-C\n"
    assert stop(hub, signal.SIGINT) == 0
    assert rest(hub, "stderr") == "sockcli: hub 'ev' stopped\n"
    quiet = cli.popen("-q", "serve", "ev")
    deadline = time.monotonic() + 15
    while not (cli.socket_dir / "ev.sock").exists():
        assert time.monotonic() < deadline and quiet.poll() is None, "the hub did not start"
        time.sleep(0.01)
    assert stop(quiet) == 0
    assert rest(quiet, "stderr") == ""

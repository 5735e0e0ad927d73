"""The fast path of ``sockcli listen``: the plans click makes, entry by entry of the option
tables; the same bytes, exit status and stderr as the click path on the same hub; and no heavy
imports."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import click
import pytest
from click.testing import CliRunner

import sockcli.cli.listen as listen_module
from sockcli import SocketMessage
from sockcli.cli import sendopts
from sockcli.cli.app import cli as click_cli
from sockcli.cli.listencore import (
    CLICK_ONLY,
    LISTEN_OPTIONS,
    LISTEN_PLAN_OPTIONS,
    ListenPlan,
    parse_fast_listen,
)
from sockcli.cli.sendopts import Option
from sockcli.cli.templates import parse
from sockcli.client.discovery import LocalHubClient
from tests.clitools import SOCKCLI, Cli, transport_args

pytestmark = pytest.mark.timeout(60)

SAME_AS_CLICK = [
    ["listen"],
    ["listen", "ev"],
    ["listen", "ev", "--count", "1"],
    ["listen", "ev", "-n", "3", "--timeout", "2.5"],
    ["listen", "--count=2", "ev", "--timeout=0"],
    ["listen", "ev", "-t", "error", "--type", "CONTROL", "-t", "error"],
    ["listen", "ev", "--name", "bar", "--last", "--slow", "latest"],
    ["listen", "ev", "--slow=drop", "--no-reconnect", "--wait", "0.5"],
    ["listen", "ev", "--json"],
    ["listen", "ev", "--format", "json"],
    ["listen", "ev", "--format", "waybar", "--text", "{data.n}", "--tooltip", "t",
     "--class", "c", "--alt", "a"],
    ["listen", "ev", "--format=polybar", "--text={data.text|?}"],
    ["listen", "ev", "--template", "{event_name} {data.n:>3}"],
    ["listen", "ev", "--connect", "127.0.0.1:47800", "--token-file", "/tmp/t", "--tls-ca",
     "ca.pem"],
    ["-v", "-q", "--debug", "--config", "/tmp/x.toml", "--socket-dir=/tmp/s", "listen", "ev"],
    ["-v", "-v", "listen", "--count", "1"],
]

CLICK_DECIDES = [
    ["listen", "--help"],
    ["listen", "ev", "-h"],
    ["listen", "a", "b"],  # several events
    ["listen", "ev", "ev"],
    ["listen", "wallpaper_*"],  # a pattern
    ["listen", "no/slash"],
    ["listen", "ev", "--where", "data.n > 1"],
    ["listen", "ev", "--exec", "cat"],
    ["listen", "ev", "--jobs", "2"],
    ["listen", "ev", "--exec-fail", "exit"],
    ["listen", "ev", "--format", "text", "--idle", "1"],
    ["listen", "ev", "--idle-text", "x"],
    ["listen", "ev", "--count", "0"],
    ["listen", "ev", "--count", "1.5"],
    ["listen", "ev", "--count"],
    ["listen", "ev", "--timeout", "-1"],
    ["listen", "ev", "--slow", "never"],
    ["listen", "ev", "--format", "xml"],
    ["listen", "ev", "--json", "--format", "text"],
    ["listen", "ev", "--text", "{data.n}"],  # no format that has a text
    ["listen", "ev", "--format", "text", "--tooltip", "t"],  # waybar's only
    ["listen", "ev", "--template", "{data.n"],
    ["listen", "ev", "-t", "no/slash"],
    ["listen", "--connect", "127.0.0.1:47800"],  # the hub is asked for its event
    ["listen", "ev", "--connect", "localhost"],
    ["listen", "ev", "--frobnicate"],
    ["listen", "-v", "ev"],  # a global option after the command
    ["listen", "--", "ev"],
    ["listen", "ev", "--last=yes"],
]


def _click_plan(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> ListenPlan:
    plans: list[ListenPlan] = []
    monkeypatch.setattr(listen_module, "run_listen", lambda plan, state: plans.append(plan))
    result = CliRunner().invoke(click_cli, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(plans) == 1
    return plans[0]


@pytest.fixture(autouse=True)
def no_event_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOCKCLI_EVENT", "SOCKCLI_CONFIG", "SOCKCLI_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("argv", SAME_AS_CLICK, ids=" ".join)
def test_fast_parse_gives_the_plan_click_gives(argv: list[str], monkeypatch) -> None:
    fast = parse_fast_listen(argv)
    assert fast is not None
    assert fast == _click_plan(argv, monkeypatch)


@pytest.mark.parametrize("argv", CLICK_DECIDES, ids=" ".join)
def test_anything_unusual_goes_to_click(argv: list[str]) -> None:
    assert parse_fast_listen(argv) is None


def test_the_plan_holds_what_was_given(monkeypatch) -> None:
    plan = parse_fast_listen(["listen", "ev", "-t", "Error", "-t", "data", "-n", "2",
                              "--format", "waybar", "--text", "{data.n}", "--wait", "0.5"])
    assert plan is not None
    assert (plan.event, plan.events, plan.types, plan.count, plan.fmt, plan.text_t, plan.wait,
            plan.slow, plan.where, plan.exec_cmd) == \
        ("ev", (), ("error", "data"), 2, "waybar", parse("{data.n}"), 0.5, "wait", (), None)
    monkeypatch.setenv("SOCKCLI_EVENT", "from-env")
    from_env = parse_fast_listen(["listen"])
    assert from_env is not None and from_env.event == "from-env"
    assert from_env == _click_plan(["listen"], monkeypatch)
    # Several events, or a pattern: click's, and the plan says which.
    many = _click_plan(["listen", "a", "b_*"], monkeypatch)
    assert (many.event, many.events) == (None, ("a", "b_*"))


def _sample(option: Option) -> list[tuple[str, object]]:
    """Values to give ``option``, with the value each must become."""
    if option.kind == sendopts.SECONDS:
        assert option.low is not None
        high = option.high if option.high is not None else 1e6
        return [(repr(v), v) for v in (option.low, high, (option.low + high) / 2)
                if v != option.default]
    if option.kind == sendopts.INT:
        return [("1", 1), ("12", 12)]
    if option.kind == sendopts.CHOICE:
        return [(c, c) for c in option.choices if c != option.default]
    if option.kind == sendopts.TEMPLATE:
        return [("{data.n}", parse("{data.n}"))]
    return {sendopts.TEXT: [("a b", "a b")], sendopts.FILE: [("rel/f", "rel/f")],
            sendopts.HOSTPORT: [("[::1]:47801", ("::1", 47801))],
            sendopts.MESSAGE_TYPE: [("ERROR", "error")]}[option.kind]


def _with_what_it_needs(option: Option, words: list[str]) -> list[str]:
    """``listen ev WORDS``, with the options that ``option`` needs to be valid."""
    needs = {"text_t": ["--format", "text"], "tooltip_t": ["--format", "waybar"],
             "class_t": ["--format", "waybar"], "alt_t": ["--format", "waybar"]}
    return ["listen", "ev", *needs.get(option.dest, []), *words]


def _every_entry() -> list[tuple[list[str], str, object]]:
    lines: list[tuple[list[str], str, object]] = []
    for option in LISTEN_OPTIONS + sendopts.CLIENT_OPTIONS:
        if option in CLICK_ONLY:
            continue
        for flag in option.flags:
            if option.kind == sendopts.FLAG:
                lines.append((_with_what_it_needs(option, [flag]), option.dest, True))
                continue
            for text, value in _sample(option):
                expected = (value,) if option.multiple else value
                lines.append((_with_what_it_needs(option, [flag, text]), option.dest, expected))
                if flag.startswith("--"):
                    lines.append((_with_what_it_needs(option, [f"{flag}={text}"]), option.dest,
                                  expected))
    return lines


@pytest.mark.parametrize(("argv", "dest", "value"), _every_entry(),
                         ids=[" ".join(a) for a, _, _ in _every_entry()])
def test_every_entry_of_the_tables_gives_the_plan_click_gives(argv, dest, value,
                                                               monkeypatch) -> None:
    fast = parse_fast_listen(argv)
    assert fast is not None, "the fast path does not take this line"
    assert getattr(fast, dest) == value
    assert fast == _click_plan(argv, monkeypatch)


def _declared(command: click.Command) -> set[str]:
    ctx = click.Context(command, info_name=command.name)
    return {flag for p in command.get_params(ctx) if isinstance(p, click.Option)
            for flag in p.opts + p.secondary_opts} - {"-h", "--help"}


def test_click_has_exactly_the_options_of_the_tables() -> None:
    flags = {flag for option in LISTEN_OPTIONS + sendopts.CLIENT_OPTIONS
             for flag in option.flags}
    assert _declared(listen_module.listen) == flags
    dests = [option.dest for option in LISTEN_PLAN_OPTIONS]
    assert len(dests) == len(set(dests))
    assert set(ListenPlan.__slots__) == {"event", "events", *dests}


# -- the same output on both paths ------------------------------------------------------------

#: Messages queued before each run, with fixed timestamps, so that both runs print the same.
QUEUED = [("data", {"n": 1, "text": "a & <b>", "progress": 40}),
          ("error", {"n": 2, "text": "bad", "tooltip": "line 1\nline 2"}),
          ("control", {"n": 3, "unicode": "é ✓", "class": ["x", "y"]})]

_CLICK_PATH = ("import sys\nimport sockcli.cli as c\n"
               "c._fast_command = lambda args: None  # click parses every line\n"
               "sys.exit(c.main(sys.argv[1:]))\n")


def _queue(cli: Cli, event: str) -> None:
    """Send QUEUED to the hub of ``event`` with no listener: the hub keeps them in order."""
    client = LocalHubClient(event, subscribe=False, socket_dir=cli.socket_dir)
    client.connect(timeout=10)
    try:
        for n, (kind, data) in enumerate(QUEUED):
            stamp = 1_790_000_000_000 + n
            client.send(SocketMessage(event, timestamp_ms=stamp,
                                      timestamp_iso=f"2026-09-21T14:13:20.{n:03d}+00:00",
                                      message_type=kind, data=data))
    finally:
        client.disconnect()


def _run(cli: Cli, click_path: bool, args: list[str], stdout: Any = subprocess.PIPE,
         ) -> tuple[int, str, str]:
    argv = [sys.executable, "-c", _CLICK_PATH, *args] if click_path else [SOCKCLI, *args]
    done = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          env=cli.env, timeout=30, stdin=subprocess.DEVNULL, check=False)
    return done.returncode, done.stdout or "", done.stderr


def _both(cli: Cli, args: list[str], *, queue_event: str | None = "ev",
          stdout: Any = subprocess.PIPE) -> tuple[int, str, str]:
    """The fast run and the click run of ``sockcli ARGS``, each after QUEUED was queued (and
    what the run left in the queue taken afterwards); they must agree."""
    results = []
    for click_path in (False, True):
        if queue_event is not None:
            _queue(cli, queue_event)
        results.append(_run(cli, click_path, args, stdout))
        if queue_event is not None:
            drained = _run(cli, False, ["listen", queue_event, "--timeout", "0.5"])
            assert drained[0] == 0, drained
    fast, slow = results
    assert fast == slow
    return fast


_FORMATS = [
    [],
    ["--json"],
    ["--format", "text"],
    ["--format", "polybar", "--text", "{data.n}: %{{F#f00}}{data.text}"],
    ["--format", "waybar"],
    ["--format", "waybar", "--text", "{data.n}", "--tooltip", "t {data.tooltip|none}",
     "--class", "c{data.n}", "--alt", "a"],
    ["--format", "i3bar"],
    ["--template", "{event_name} {message_type} {data.n:>3} {timestamp_iso}"],
    ["-t", "error", "--type", "control"],
]


# Every format over Unix; over TCP (another connecting path, the same printing) two of them.
@pytest.mark.parametrize(("transport", "extra"), [
    *(("unix", extra) for extra in _FORMATS), ("tcp", []), ("tcp", ["--json"])],
    ids=lambda a: a if isinstance(a, str) else " ".join(a) or "plain")
def test_the_same_output_as_click(cli: Cli, transport: str, extra: list[str]) -> None:
    cli.serve("ev", *transport_args(transport))
    count = "2" if "-t" in extra else "3"
    args = ["listen", "ev", "--count", count, *extra]
    assert parse_fast_listen(args) is not None
    status, out, err = _both(cli, args)
    assert (status, err) == (0, "")
    assert len(out.splitlines()) == int(count)
    if not extra:
        assert [json.loads(line)["data"] for line in out.splitlines()] == [d for _, d in QUEUED]


def test_the_same_retained_messages_and_errors_as_click(cli: Cli) -> None:
    cli.serve("ev")
    # --last: the retained message of each type (of those relayed: the queue is empty).
    _queue(cli, "ev")
    assert _run(cli, False, ["listen", "ev", "--count", "3"])[0] == 0
    status, out, err = _both(cli, ["listen", "ev", "--last", "--count", "3"], queue_event=None)
    assert (status, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["data"], r["retained"]) for r in lines] == [(d, True) for _, d in QUEUED]
    # --timeout before --count: what came, then 124 and the same line on stderr.
    status, out, err = _both(cli, ["listen", "ev", "--count", "9", "--timeout", "0.5"])
    assert status == 124 and len(out.splitlines()) == 3
    assert err == "sockcli: error: 3 of 9 messages arrived within 0.5 s\n"
    # No hub, --no-reconnect: 69.
    status, out, err = _both(cli, ["listen", "nohub", "--no-reconnect", "--wait", "0"],
                             queue_event=None)
    assert (status, out) == (69, "")
    assert err == ("sockcli: error: no hub is running for event 'nohub': start one with "
                   "'sockcli serve nohub'\n")
    # -v: the same notes.
    status, out, err = _both(cli, ["-v", "listen", "ev", "--count", "1"])
    assert status == 0 and err.startswith("sockcli: waiting for messages of 'ev'\n"
                                          "sockcli: listening to 'ev' on ")
    # A type the settings do not know: click's usage error, both ways.
    status, out, err = _both(cli, ["listen", "ev", "-t", "news"], queue_event=None)
    assert status == 2 and "Invalid value for '-t' / '--type'" in err


def test_a_full_stdout_is_74_on_both_paths(cli: Cli) -> None:
    cli.serve("ev")
    with open("/dev/full", "w") as full:
        status, _, err = _both(cli, ["listen", "ev", "--count", "3"], stdout=full)
    assert status == 74
    assert err == "sockcli: error: cannot write to stdout: No space left on device\n"


_PROBE = """
import json, sys
from sockcli.cli import main
rc = main(["listen", "ev", "--count", "1", "--format", "waybar", "--text", "{data.n}"])
heavy = sorted(m for m in ("rich", "pydantic", "dynaconf", "click", "typing", "dataclasses",
                           "pathlib", "threading", "logging", "sockcli.types", "sockcli.where")
               if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


def test_listen_path_imports_nothing_heavy(cli: Cli) -> None:
    cli.serve("ev")
    for _ in range(2):  # the first run fills the settings cache (without pydantic, too)
        _queue(cli, "ev")
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              env=cli.env, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert json.loads(lines[0])["text"] == "1"
        assert json.loads(lines[-1]) == {"rc": 0, "heavy": []}


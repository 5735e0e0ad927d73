"""``sockcli get``: the hub's retained message as one line, through the installed executable:
exit codes, formats and templates (the same line ``listen --last`` prints), --type, EVENT
resolution, the queue left alone, old hubs; and the click-free parser against click's."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import sockcli.cli.get as get_module
from sockcli.cli.app import cli as click_cli
from sockcli.cli.getcore import GET_PLAN_OPTIONS, GetPlan, parse_fast_get
from sockcli.cli.sendopts import GLOBAL_OPTIONS
from sockcli.cli.templates import parse
from sockcli.protocol import frames as fr
from sockcli.protocol.codec import CLOSED, NEED_DATA, Codec
from tests.clitools import Cli, error_line, read_json, usage_error

pytestmark = pytest.mark.timeout(60)

PROGRESS = '{"progress": 40, "text": "a & <b>", "tooltip": "line 1\\nline 2"}'


def _get(cli: Cli, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return cli.run("get", *args, **kwargs)


def _send(cli: Cli, *args: str) -> None:
    done = cli.run("send", *args)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def _last(cli: Cli, *args: str) -> str:
    """What ``listen --last --count 1 ARGS`` prints: the retained message's line."""
    done = cli.run("listen", "ev", "--last", "--count", "1", "--no-reconnect", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def hub(cli: Cli) -> Iterator[Cli]:
    """A hub of "ev" with a live listener, which takes every broadcast (nothing is queued)."""
    cli.serve("ev")
    live = cli.listen("ev", "--json")
    yield cli
    live.terminate()


# -- exit codes -------------------------------------------------------------------------------


def test_nothing_retained_is_66_then_the_message_is_printed(hub: Cli) -> None:
    empty = _get(hub, "ev")
    assert (empty.returncode, empty.stdout) == (66, "")
    assert error_line(empty.stderr) == (
        "sockcli: error: hub 'ev' holds no retained message: none was sent since it started, "
        "it was cleared (send --clear), or the hub runs with --no-retain")
    _send(hub, "ev", "-d", PROGRESS)
    done = _get(hub, "ev")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.count("\n") == 1
    record = json.loads(done.stdout)
    assert list(record) == ["event_name", "timestamp_ms", "timestamp_iso", "message_type",
                            "data", "retained"]
    assert (record["event_name"], record["message_type"], record["retained"]) == \
        ("ev", "data", True)
    assert record["data"] == json.loads(PROGRESS)
    # Exactly the line listen --last prints for it, in JSON (the default) and with --json.
    assert done.stdout == _last(hub, "--json") == _get(hub, "ev", "--json").stdout
    assert _get(hub, "ev", "--format", "json").stdout == done.stdout


def test_no_hub_is_69_and_no_event_to_pick_is_64(cli: Cli) -> None:
    absent = _get(cli, "ev", "--wait", "0")
    assert absent.returncode == 69
    assert error_line(absent.stderr) == \
        "sockcli: error: no hub is running for event 'ev': start one with 'sockcli serve ev'"
    nothing = _get(cli, "--wait", "0")
    assert nothing.returncode == 69
    assert error_line(nothing.stderr) == (
        "sockcli: error: no EVENT given and no hub is running: name the event, or start a hub "
        "with 'sockcli serve EVENT'")
    cli.serve("ev")
    _send(cli, "ev", "-d", '{"n": 1}')
    only = _get(cli)  # the only hub is picked, as send picks it
    assert (only.returncode, json.loads(only.stdout)["data"]) == (0, {"n": 1})
    from_env = _get(cli, env={"SOCKCLI_EVENT": "ev"})
    assert from_env.stdout == only.stdout
    cli.serve("other")
    several = _get(cli)
    assert several.returncode == 64
    assert error_line(several.stderr) == (
        "sockcli: error: no EVENT given and 2 hubs are running (ev, other): name one, or set "
        "SOCKCLI_EVENT")


def test_a_hub_without_retain_holds_nothing(cli: Cli) -> None:
    cli.serve("ev", "--no-retain")
    live = cli.listen("ev", "--json")
    _send(cli, "ev", "-d", '{"n": 1}')
    assert read_json(live)["data"] == {"n": 1}
    done = _get(cli, "ev")
    assert (done.returncode, done.stdout) == (66, "")
    assert "holds no retained message" in error_line(done.stderr)


def test_usage_errors_are_click_s(hub: Cli) -> None:
    for args, expected in (
            (["--json", "--format", "waybar"],
             "Error: --json is --format json: it cannot go with --format waybar"),
            (["--text", "{data.text}"],
             "Error: --text needs --format text, polybar, waybar or i3bar, or --template"),
            (["--format", "polybar", "--tooltip", "x"],
             "Error: --tooltip is a field of --format waybar only"),
            (["--format", "polybar", "--text", "{data.text"],
             "Error: Invalid value for '--text': '{data.text': column 1: '{' is not closed "
             "(write '{{' for a brace)"),
            (["--format", "toml"], "Error: Invalid value for '--format': 'toml' is not one of "
             "'json', 'text', 'waybar', 'i3bar', 'polybar'."),
            (["-t", "error", "-t", "data"], "Error: -t/--type given 2 times: get prints one "
             "message: the newest retained one of TYPE, or of any type without --type"),
            (["-t", "nope"], "Error: Invalid value for '-t' / '--type': 'nope' is not a known "
             "message type: choose one of data, error, control (the message_types setting "
             "adds others)")):
        done = _get(hub, "ev", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert usage_error(done.stderr) == expected


def test_closed_stdout_is_74(hub: Cli) -> None:
    _send(hub, "ev", "-d", "{}")
    done = hub.bash("sockcli get ev >&-")
    assert done.returncode == 74
    assert error_line(done.stderr).startswith("sockcli: error: stdout is closed")
    full = hub.bash("sockcli get ev >/dev/full")
    assert full.returncode == 74
    assert error_line(full.stderr) == "sockcli: error: cannot write to stdout: No space left " \
        "on device"


# -- formats and templates --------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["--format", "text"],
    ["--format", "polybar"],
    ["--format", "waybar"],
    ["--format", "i3bar"],
    ["--format", "polybar", "--text", "{data.progress:>3}% {data.text}"],
    ["--format", "waybar", "--text", "{data.progress}%", "--tooltip", "{data.tooltip}",
     "--class", "{message_type}-x", "--alt", "{data.absent|none}"],
    ["--template", "{event_name}: {data.progress:.1f} {{raw}} {retained}"],
    ["--format", "i3bar", "--template", "[{data.text}]"],
], ids=" ".join)
def test_each_format_prints_what_listen_last_prints(hub: Cli, args: list[str]) -> None:
    _send(hub, "ev", "-d", PROGRESS)
    done = _get(hub, "ev", *args)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.count("\n") == 1 and done.stdout.endswith("\n")
    assert done.stdout == _last(hub, *args)


def test_format_contents(hub: Cli) -> None:
    _send(hub, "ev", "-d", PROGRESS)
    waybar = json.loads(_get(hub, "ev", "--format", "waybar").stdout)
    assert waybar == {"text": "a &amp; &lt;b&gt;", "tooltip": "line 1\nline 2", "class": "data",
                      "percentage": 40}
    assert _get(hub, "ev", "--format", "polybar").stdout == "a & <b>\n"
    assert json.loads(_get(hub, "ev", "--format", "i3bar").stdout) == \
        {"full_text": "a & <b>", "short_text": "a & <b>"}
    template = _get(hub, "ev", "--template", "{data.progress:05.1f}|{data.absent|idle}|{{x}}")
    assert template.stdout == "040.0|idle|{x}\n"
    assert _get(hub, "ev", "--template", "{retained}").stdout == "true\n"


# -- which message ----------------------------------------------------------------------------


def test_the_newest_of_any_type_or_the_one_of_type(hub: Cli) -> None:
    _send(hub, "ev", "-d", '{"n": 1}')
    _send(hub, "ev", "-t", "error", "-d", '{"n": 2}')
    assert json.loads(_get(hub, "ev").stdout)["data"] == {"n": 2}  # the newest: the error
    assert json.loads(_get(hub, "ev", "-t", "data").stdout)["data"] == {"n": 1}
    assert json.loads(_get(hub, "ev", "--type=ERROR").stdout)["message_type"] == "error"
    _send(hub, "ev", "-d", '{"n": 3}')  # data again: now the newest, moved to the end
    assert json.loads(_get(hub, "ev").stdout)["data"] == {"n": 3}
    control = _get(hub, "ev", "-t", "control")
    assert control.returncode == 66
    assert error_line(control.stderr).startswith(
        "sockcli: error: hub 'ev' holds no retained message of type 'control': ")


def test_get_takes_no_queued_message_from_the_first_listener(cli: Cli) -> None:
    """No listener: the message is queued for the first one, and retained. get shows the
    retained copy and leaves the queue alone; the first listener still gets the message."""
    cli.serve("ev")
    _send(cli, "ev", "-d", '{"n": 1}')
    for _ in range(3):
        done = _get(cli, "ev")
        assert json.loads(done.stdout)["data"] == {"n": 1}
    [row] = cli.list_json()
    assert (row["queued"], row["clients"]) == (1, 0)
    first = cli.run("listen", "ev", "--count", "1", "--json", "--no-reconnect")
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert record["data"] == {"n": 1} and "retained" not in record  # the queued one, live
    [row] = cli.list_json()
    assert row["queued"] == 0


def test_a_unicast_message_is_not_retained(hub: Cli) -> None:
    named = hub.listen("ev", "--name", "bar", "--json")
    _send(hub, "ev", "-d", '{"to": "all"}')
    _send(hub, "ev", "--to", "bar", "-d", '{"to": "bar"}')
    assert read_json(named)["data"] == {"to": "all"}
    assert read_json(named)["data"] == {"to": "bar"}
    assert json.loads(_get(hub, "ev").stdout)["data"] == {"to": "all"}


def test_get_over_tcp(cli: Cli) -> None:
    cli.serve("ev", "--tcp")
    _send(cli, "ev", "-d", '{"n": 1}')
    done = _get(cli, "ev")  # found by its record; proves the hub's secret
    assert (done.returncode, json.loads(done.stdout)["data"]) == (0, {"n": 1})
    record = cli.record("ev")
    secret = cli.socket_dir / "ev.token"
    told = _get(cli, "--connect", f"{record['host']}:{record['port']}", "--token-file",
                str(secret), "--format", "polybar", "--text", "{event_name} {data.n}")
    assert (told.returncode, told.stdout, told.stderr) == (0, "ev 1\n", "")


# -- an older hub -----------------------------------------------------------------------------


class OldHub:
    """A hub of before retained values on a TCP port: it welcomes without the ``retain`` and
    ``peek`` features, acknowledges messages and answers pings, and keeps every frame it
    was sent."""

    FEATURES = ("ack", "stats", "ping", "unicast", "slow")

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frames: list[dict[str, Any]] = []
        self.served = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                self._talk(sock)
            self.served.set()

    def _talk(self, sock: socket.socket) -> None:
        codec = Codec()
        while True:
            m = codec.next_map()
            if m is NEED_DATA:
                data = sock.recv(65536)
                codec.receive_data(data)
                continue
            if m is CLOSED:
                return
            self.frames.append(m)
            reply: fr.Frame | None = None
            if m["kind"] == "hello":
                reply = fr.Welcome(client_id="c1", event_name="ev", features=self.FEATURES)
            elif m["kind"] == "message" and m.get("seq") is not None:
                reply = fr.Ack(seq=m["seq"])
            elif m["kind"] == "ping":
                reply = fr.Pong(token=m.get("token", 0))
            if reply is not None:
                sock.sendall(codec.send(reply))

    def close(self) -> None:
        self.listener.close()
        self._thread.join(5)


@pytest.fixture
def old_hub() -> Iterator[OldHub]:
    hub = OldHub()
    yield hub
    hub.close()


def test_an_older_hub_is_told_nothing(cli: Cli, old_hub: OldHub) -> None:
    address = f"127.0.0.1:{old_hub.port}"
    for args, what in ((["get"], "sockcli get"),
                       (["send", "--retain-only", "-d", "{}"], "send --retain-only and --clear"),
                       (["send", "--clear"], "send --retain-only and --clear")):
        old_hub.served.clear()
        done = cli.run(*args, "--connect", address)
        assert (done.returncode, done.stdout) == (77, ""), done.stderr
        assert error_line(done.stderr) == (
            f"sockcli: error: hub 'ev' is too old for {what}: its welcome does not list the "
            f"'{'peek' if args == ['get'] else 'retain'}' feature; nothing was sent")
        assert old_hub.served.wait(5)
    assert [m["kind"] for m in old_hub.frames] == ["hello"] * 3  # no message, no ping
    assert old_hub.frames[0].get("peek") is True
    # The same hub takes an ordinary send.
    plain = cli.run("send", "--connect", address, "-d", '{"n": 1}')
    assert (plain.returncode, plain.stderr) == (0, "")
    assert old_hub.frames[-1]["data"] == {"n": 1} and "retain" not in old_hub.frames[-1]


# -- the fast path ------------------------------------------------------------------------


SAME_AS_CLICK = [
    ["get", "ev"],
    ["get"],
    ["get", "ev", "--type", "ERROR"],
    ["get", "-t", "control", "ev"],
    ["get", "ev", "--json"],
    ["get", "ev", "--format", "waybar", "--text", "{data.text}", "--tooltip", "t",
     "--class", "c", "--alt", "a"],
    ["get", "ev", "--format=polybar", "--text={data.progress:.0f}%"],
    ["get", "ev", "--template", "{event_name} {{x}}"],
    ["get", "ev", "--format", "json", "--wait", "0", "--timeout", "2.5"],
    ["get", "--connect", "127.0.0.1:47800", "--token-file", "tok", "--tls-ca", "ca.pem"],
    ["-v", "--socket-dir", "rel/dir", "--config", "/tmp/c.toml", "get", "ev"],
]

CLICK_DECIDES = [
    ["get", "--help"],
    ["get", "ev", "--format", "toml"],
    ["get", "ev", "--json", "--format", "i3bar"],
    ["get", "ev", "--text", "{data.text}"],  # json has no text
    ["get", "ev", "--format", "text", "--class", "x"],
    ["get", "ev", "--format", "text", "--text", "{oops"],
    ["get", "ev", "-t", "a", "-t", "b"],
    ["get", "ev", "extra"],
    ["get", "ev", "--wait", "-1"],
    ["get", "no/slash"],
    ["get", "ev", "--lines"],
    ["send", "ev", "--retain-only", "--clear"],
    ["send", "ev", "--clear", "-d", "{}"],
    ["send", "ev", "--clear", "--lines"],
    ["send", "ev", "--to", "bar", "--retain-only"],
    ["send", "ev", "--to", "bar", "--clear"],
]


def _click_plan(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> GetPlan:
    plans: list[GetPlan] = []
    monkeypatch.setattr(get_module, "run_get", plans.append)
    result = CliRunner().invoke(click_cli, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(plans) == 1
    return plans[0]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("argv", SAME_AS_CLICK, ids=" ".join)
def test_fast_parse_gives_the_plan_click_gives(argv: list[str], monkeypatch) -> None:
    for name in ("SOCKCLI_EVENT", "SOCKCLI_CONFIG", "SOCKCLI_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    fast = parse_fast_get(argv)
    assert fast is not None
    assert fast == _click_plan(argv, monkeypatch)


@pytest.mark.timeout(10)
def test_the_plan_holds_what_was_given() -> None:
    plan = parse_fast_get(["get", "ev", "-t", "Error", "--format", "waybar", "--text",
                           "{data.n}", "--wait", "0.5"])
    assert plan is not None
    assert (plan.event, plan.message_type, plan.fmt, plan.text_t, plan.wait, plan.as_json) == \
        ("ev", "error", "waybar", parse("{data.n}"), 0.5, False)
    assert set(GetPlan.__slots__) == {"event", *(o.dest for o in GET_PLAN_OPTIONS)}
    assert set(GLOBAL_OPTIONS) <= set(GET_PLAN_OPTIONS)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("argv", CLICK_DECIDES, ids=" ".join)
def test_anything_unusual_goes_to_click(argv: list[str]) -> None:
    from sockcli.cli.sendcore import parse_fast_send

    assert parse_fast_get(argv) is None
    assert parse_fast_send(argv) is None
    if argv != ["get", "--help"]:
        assert CliRunner().invoke(click_cli, argv).exit_code == 2


_PROBE = """
import json, sys
from sockcli.cli import main
rc = main(["get", "ev", "--format", "waybar", "--tooltip", "{data.n}"])
heavy = sorted(m for m in ("rich", "pydantic", "dynaconf", "click", "typing", "dataclasses",
                           "pathlib", "threading", "logging", "sockcli.types") if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


def test_get_path_imports_nothing_heavy(hub: Cli) -> None:
    _send(hub, "ev", "-d", '{"n": 1}')
    for _ in range(2):  # the first run may fill the settings cache
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              env=hub.env, timeout=30)
        assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads(lines[0])["tooltip"] == "1"
    assert json.loads(lines[-1]) == {"rc": 0, "heavy": []}

"""The fast path of ``sockcli send``: the same plans as click, and no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import sockcli.cli.send as send_module
from sockcli.cli.app import cli as click_cli
from sockcli.cli.sendcore import SendPlan, parse_fast_send
from tests.clitools import read_line

SAME_AS_CLICK = [
    ["send", "ev"],
    ["send", "ev", "--lines"],
    ["send", "--lines", "ev"],
    ["send", "ev", "-d", '{"a": 1}'],
    ["send", "ev", "--data={\"a\": 1}"],
    ["send", "ev", "-t", "error"],
    ["send", "ev", "--type=CONTROL"],
    ["send", "ev", "--to", "bar", "--wait", "0.5", "--timeout", "2"],
    ["send", "ev", "--wait=0", "--timeout=0.25"],
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
    ["send", "ev", "--type", "news"],
    ["send", "ev", "--wait", "-1"],
    ["send", "ev", "--wait", "soon"],
    ["send", "ev", "--timeout", "0"],
    ["send", "ev", "-d"],
    ["send", "ev", "--lines", "-d", "{}"],
    ["send", "ev", "--connect", "localhost"],
    ["send", "ev", "--token-file"],
    ["send", "no/slash"],
    ["send", "ev", "extra"],
    ["send", "ev", "-vd", "{}"],
    ["listen", "ev"],
    ["list"],
    ["serve", "ev"],
    [],
]


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

"""The examples, run as their users run them: the wallpaper pipeline against a hub and a
listener, the waybar and eww modules, the systemd unit, and `make demo` (examples/demo.sh)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import SOCKCLI, read_line
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
PIPELINE = EXAMPLES / "wallpaper-pipeline.sh"
WAYBAR_SCRIPT = EXAMPLES / "waybar" / "wallpaper-progress.sh"
WAYBAR_CONFIG = EXAMPLES / "waybar" / "config.jsonc"
EWW_DIR = EXAMPLES / "eww"
UNIT = EXAMPLES / "systemd" / "sockcli-hub@.service"
DEMO = EXAMPLES / "demo.sh"
BIN = str(Path(sys.executable).parent)
EVENT = "wallpaper_change"
# Variables of the examples that must not leak in from the developer's shell.
EXAMPLE_VARIABLES = ("FAIL_STEP", "STEP_DELAY", "WALLPAPER_EVENT", "WALLPAPER_SIZE",
                     "WALLPAPER_APPLY_CMD", "WALLPAPER_HIDE_AFTER", "WALLPAPER_STATE_DIR")


def progress_messages(name: str = "aurora") -> list[dict[str, Any]]:
    """The data messages of a complete run, in order (the last one also has palette/file)."""
    texts = [("fetch", f"fetching {name}", f"fetched {name} (256x144)"),
             ("resize", "resizing to 128x72", "resized to 128x72"),
             ("palette", "extracting the palette", "extracted the palette"),
             ("apply", f"applying {name}", f"wallpaper set: {name}")]
    messages = []
    for index, (step, running, done) in enumerate(texts):
        messages.append({"step": step, "status": "running", "progress": 25 * index,
                         "wallpaper": name, "text": running})
        messages.append({"step": step, "status": "done", "progress": 25 * (index + 1),
                         "wallpaper": name, "text": done})
    return messages


def example_env(cli: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The cli fixture's private environment, the venv first on PATH, our own TMPDIR."""
    env = {k: v for k, v in cli.env.items() if k not in EXAMPLE_VARIABLES}
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}", TMPDIR=str(tmp),
               WALLPAPER_STATE_DIR=str(tmp_path / "state"))
    env.update(extra)
    return env


def run_pipeline(env: dict[str, str], *args: str, timeout: float = 30
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PIPELINE), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def messages(listener: subprocess.Popen[str], count: int) -> list[dict[str, Any]]:
    return [json.loads(read_line(listener, timeout=15)) for _ in range(count)]


def recording_sockcli(tmp_path: Path) -> tuple[Path, Path]:
    """A directory with a ``sockcli`` that logs its arguments, then runs the real one."""
    shim_dir, log = tmp_path / "shim", tmp_path / "sockcli-calls.log"
    shim_dir.mkdir()
    shim = shim_dir / "sockcli"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
                    f'exec {shlex.quote(SOCKCLI)} "$@"\n')
    shim.chmod(0o755)
    return shim_dir, log


def subscribers(cli: Any, event: str = EVENT) -> int:
    listed = cli.run("list", "--json")
    for hub in json.loads(listed.stdout or "[]"):
        if hub["event_name"] == event:
            return int(hub.get("subscribers") or 0)
    return 0


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def processes_with(text: str) -> list[int]:
    """Live processes of ours whose environment mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text()
                if state[state.rindex(")") + 2:].split()[0] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@contextmanager
def started(argv: list[str], env: dict[str, str], cwd: Path | None = None
            ) -> Iterator[subprocess.Popen[str]]:
    """Start ``argv`` in its own process group; at exit, that whole group is stopped."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not group_members(proc.pid):
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                wait_until(lambda: not group_members(proc.pid), timeout=5,
                           what="the example's processes to stop")
            except AssertionError:
                continue
        proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# --- examples/wallpaper-pipeline.sh -----------------------------------------------------------

NAMES = ["aurora", 'say "hi" \\ back\tslash\nnew line é ✓ \x01 <&>']


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", NAMES, ids=["plain", "needs-escaping"])
def test_pipeline_broadcasts_progress_in_order(cli: Any, tmp_path: Path, name: str) -> None:
    cli.serve(EVENT)
    listener = cli.listen(EVENT, "--count", "8")
    shim_dir, calls = recording_sockcli(tmp_path)
    env = example_env(cli, tmp_path)
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"

    done = run_pipeline(env, name)

    assert done.returncode == 0, done.stderr
    records = messages(listener, 8)
    assert listener.wait(10) == 0
    assert {(r["event_name"], r["message_type"]) for r in records} == {(EVENT, "data")}
    data = [r["data"] for r in records]
    last = data[-1]
    palette, file = last.pop("palette"), last.pop("file")
    assert data == progress_messages(name)
    assert len(palette) == 5 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in palette)
    state = tmp_path / "state"
    assert file == str(state / "current.ppm")
    assert (state / "current.ppm").read_text().startswith("P3\n128 72\n255\n")
    assert (state / "palette").read_text().split() == palette
    # One sender for the whole stream, as the example promises.
    assert calls.read_text().splitlines() == [f"send --lines {EVENT}"]
    assert list((tmp_path / "tmp").iterdir()) == []  # its work directory is gone


@pytest.mark.timeout(60)
@pytest.mark.parametrize("index,step", list(enumerate(["fetch", "resize", "palette", "apply"])))
def test_pipeline_reports_an_injected_failure(cli: Any, tmp_path: Path, index: int,
                                              step: str) -> None:
    cli.serve(EVENT)
    before = progress_messages()[:2 * index + 1]  # up to this step's "running"
    listener = cli.listen(EVENT, "--count", str(len(before) + 1))
    shim_dir, calls = recording_sockcli(tmp_path)
    env = example_env(cli, tmp_path, FAIL_STEP=step)
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"

    done = run_pipeline(env)

    assert done.returncode == 1, done.stderr
    assert f"{step} failed: injected failure (FAIL_STEP={step})" in done.stderr
    records = messages(listener, len(before) + 1)
    assert [r["message_type"] for r in records] == ["data"] * len(before) + ["error"]
    assert [r["data"] for r in records[:-1]] == before
    assert records[-1]["data"] == {"step": step, "status": "failed", "progress": 25 * index,
                                   "wallpaper": "aurora",
                                   "error": f"injected failure (FAIL_STEP={step})"}
    assert listener.wait(10) == 0
    error = json.dumps(records[-1]["data"], ensure_ascii=False, separators=(",", ":"))
    error_call = f"send --type error -d {error} {EVENT}"
    assert calls.read_text().splitlines() == [f"send --lines {EVENT}", error_call]
    assert not (tmp_path / "state" / "current.ppm").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.timeout(60)
def test_pipeline_reports_a_real_failure_with_its_message(cli: Any, tmp_path: Path) -> None:
    cli.serve(EVENT)
    listener = cli.listen(EVENT, "--count", "8")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = example_env(cli, tmp_path, WALLPAPER_STATE_DIR=str(blocker / "state"), LC_ALL="C")

    done = run_pipeline(env)

    assert done.returncode == 1, done.stderr
    records = messages(listener, 8)
    assert [r["data"] for r in records[:7]] == progress_messages()[:7]
    error = records[7]
    assert error["message_type"] == "error"
    assert error["data"]["step"] == "apply" and error["data"]["progress"] == 75
    assert error["data"]["error"] == (f"mkdir: cannot create directory '{blocker}': "
                                      "Not a directory")


@pytest.mark.timeout(30)
def test_pipeline_without_a_hub_fails_with_sends_status(cli: Any, tmp_path: Path) -> None:
    done = run_pipeline(example_env(cli, tmp_path))
    assert done.returncode == 69, done.stderr
    assert "no hub is running for event 'wallpaper_change'" in done.stderr
    assert "could not be delivered" in done.stderr


@pytest.mark.timeout(30)
def test_pipeline_event_and_usage(cli: Any, tmp_path: Path) -> None:
    cli.serve("other_event")
    listener = cli.listen("other_event", "--count", "8")
    env = example_env(cli, tmp_path, WALLPAPER_EVENT="other_event", WALLPAPER_SIZE="64x36")
    done = run_pipeline(env, "-q", "dusk")
    assert done.returncode == 0 and done.stderr == ""
    records = messages(listener, 8)
    assert {r["event_name"] for r in records} == {"other_event"}
    assert records[2]["data"]["text"] == "resizing to 64x36"

    for args, complaint in [(["--fail", "nope"], "no step named 'nope'"),
                            (["--delay", "soon"], "not a number of seconds"),
                            (["a", "b"], "one NAME at most"),
                            (["--bogus"], "unknown option: --bogus")]:
        bad = run_pipeline(env, *args)
        assert (bad.returncode, bad.stdout) == (2, ""), args
        assert complaint in bad.stderr, bad.stderr
    shown = run_pipeline(env, "--help")
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: wallpaper-pipeline.sh")
    for script in (PIPELINE, DEMO, WAYBAR_SCRIPT, EWW_DIR / "scripts" / "wallpaper-listen.sh"):
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert script.read_text().startswith("#!/usr/bin/env bash\n")


# --- the waybar module ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_waybar_module_turns_messages_into_waybar_json(cli: Any, tmp_path: Path) -> None:
    env = example_env(cli, tmp_path, WALLPAPER_HIDE_AFTER="0.3")
    # Started before the hub: sockcli listen waits for it.
    with started(["bash", str(WAYBAR_SCRIPT), EVENT], env) as bar:
        assert json.loads(read_line(bar, timeout=15)) == {
            "text": "", "tooltip": f"{EVENT}: idle", "class": "idle", "percentage": 0}
        cli.serve(EVENT)
        wait_until(lambda: subscribers(cli) >= 1, timeout=15, what="the module's listener")

        sent = cli.run("send", EVENT, "-d",
                       '{"step":"palette","progress":50,"text":"colours <of> sun & sea"}')
        assert sent.returncode == 0, sent.stderr
        shown = json.loads(read_line(bar))
        assert {k: shown[k] for k in ("text", "class", "percentage")} == {
            "text": "palette 50%", "class": "running", "percentage": 50}
        assert re.fullmatch(rf"{EVENT}: colours &lt;of&gt; sun &amp; sea \(50%\) at "
                            r"\d\d:\d\d:\d\d", shown["tooltip"])

        assert cli.run("send", EVENT, "--type", "control", "-d", '{"x":1}').returncode == 0
        sent = cli.run("send", EVENT, "--type", "error", "-d",
                       '{"step":"palette","error":"no colours"}')
        assert sent.returncode == 0, sent.stderr
        shown = json.loads(read_line(bar))  # the control message showed nothing
        assert {k: shown[k] for k in ("text", "class", "percentage")} == {
            "text": "palette failed", "class": "error", "percentage": 50}
        assert shown["tooltip"].startswith(f"{EVENT}: palette failed at ")
        assert shown["tooltip"].endswith(": no colours")
        # WALLPAPER_HIDE_AFTER seconds after an error, back to idle (hidden).
        assert json.loads(read_line(bar))["class"] == "idle"

        os.kill(bar.pid, signal.SIGTERM)
        assert bar.wait(10) == 143
        # Its sockcli listen and python3 go with it.
        wait_until(lambda: not group_members(bar.pid), timeout=5, what="the module to stop")


@pytest.mark.timeout(60)
def test_waybar_module_follows_the_pipeline(cli: Any, tmp_path: Path) -> None:
    cli.serve(EVENT)
    env = example_env(cli, tmp_path, WALLPAPER_HIDE_AFTER="0")
    with started(["bash", str(WAYBAR_SCRIPT)], env) as bar:
        assert json.loads(read_line(bar, timeout=15))["class"] == "idle"
        wait_until(lambda: subscribers(cli) >= 1, timeout=15, what="the module's listener")
        assert run_pipeline(env).returncode == 0
        assert run_pipeline(example_env(cli, tmp_path, FAIL_STEP="apply")).returncode == 1
        lines = [json.loads(read_line(bar)) for _ in range(8 + 8)]
    seen = [(line["text"], line["class"], line["percentage"]) for line in lines]
    steps = [("fetch", 0, 25), ("resize", 25, 50), ("palette", 50, 75), ("apply", 75, 100)]
    complete = [(f"{s} {p}%", "done" if p == 100 else "running", p)
                for s, a, b in steps for p in (a, b)]
    assert seen == complete + complete[:7] + [("apply failed", "error", 75)]


def test_waybar_config_snippet() -> None:
    text = WAYBAR_CONFIG.read_text()
    config = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))
    module = config["custom/wallpaper"]
    assert module["return-type"] == "json"
    assert "custom/wallpaper" in config["modules-right"]
    assert Path(shlex.split(module["exec"])[0]).name == WAYBAR_SCRIPT.name
    assert f"{WAYBAR_SCRIPT.relative_to(REPO)}" in text  # how to install it is said
    assert os.access(WAYBAR_SCRIPT, os.X_OK)


# --- the eww widget ---------------------------------------------------------------------------


def deflisten(yuck: str, name: str) -> tuple[dict[str, Any], str]:
    """The :initial value (JSON) and the command of ``(deflisten NAME ...)``."""
    match = re.search(rf"\(deflisten\s+{name}\s+:initial\s+'([^']*)'\s+\"([^\"]+)\"\s*\)",
                      yuck)
    assert match, f"no (deflisten {name} :initial '...' \"command\") in eww.yuck"
    return json.loads(match.group(1)), match.group(2)


@pytest.mark.timeout(60)
def test_eww_deflisten_command_works(cli: Any, tmp_path: Path) -> None:
    yuck = re.sub(r";.*$", "", (EWW_DIR / "eww.yuck").read_text(), flags=re.MULTILINE)
    assert yuck.count("(") == yuck.count(")")
    initial, command = deflisten(yuck, "wallpaper")
    script = EWW_DIR / shlex.split(command)[0]  # eww runs it from its configuration directory
    assert script.is_file() and os.access(script, os.X_OK), script
    used = set(re.findall(r"\{wallpaper\.(\w+)\}|\$\{wallpaper\.(\w+)\}", yuck))
    fields = {a or b for a, b in used}
    assert fields <= set(initial), fields - set(initial)
    assert "(defwidget wallpaper-progress" in yuck and "(wallpaper-progress)" in yuck
    assert (EWW_DIR / "eww.scss").is_file()

    cli.serve(EVENT)
    env = example_env(cli, tmp_path, WALLPAPER_HIDE_AFTER="0.3")
    with started(["sh", "-c", command], env, cwd=EWW_DIR) as widget:
        assert json.loads(read_line(widget, timeout=15)) == initial
        wait_until(lambda: subscribers(cli) >= 1, timeout=15, what="the widget's listener")
        sent = cli.run("send", EVENT, "-d",
                       '{"step":"resize","progress":25,"text":"resizing to 128x72"}')
        assert sent.returncode == 0, sent.stderr
        assert json.loads(read_line(widget)) == {
            "visible": True, "step": "resize", "progress": 25, "label": "resize 25%",
            "tooltip": "resizing to 128x72", "class": "running"}
        sent = cli.run("send", EVENT, "--type", "error", "-d",
                       '{"step":"apply","error":"disk full"}')
        assert sent.returncode == 0, sent.stderr
        assert json.loads(read_line(widget)) == {
            "visible": True, "step": "apply", "progress": 25, "label": "apply failed",
            "tooltip": "disk full", "class": "error"}
        assert json.loads(read_line(widget)) == initial  # hidden again
        assert set(initial) == {"visible", "step", "progress", "label", "tooltip", "class"}


# --- the systemd unit -------------------------------------------------------------------------


def unit_sections() -> dict[str, dict[str, list[str]]]:
    """The unit file as sections of keys, each with all its values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"a setting outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line}"
        current.setdefault(key, []).append(value)
    return sections


def fake_home(root: Path) -> Path:
    """A HOME whose ~/.local/bin/sockcli is the venv's, where the unit expects it (%h)."""
    home = root / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "sockcli").symlink_to(SOCKCLI)
    return home


@pytest.mark.timeout(30)
def test_systemd_unit_settings_and_its_command(cli: Any, tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert "systemctl --user enable --now sockcli-hub@wallpaper_change" in text
    configparser.ConfigParser(strict=False, interpolation=None).read_string(text)
    unit = unit_sections()
    service = unit["Service"]
    assert unit["Unit"]["Description"][0]
    assert service["Type"] in (["simple"], ["exec"])
    assert service["Restart"] == ["on-failure"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert unit["Install"]["WantedBy"] == ["default.target"]
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "%h/.local/bin/sockcli" and argv[1:] == ["serve", "%i"]

    # What systemd would run for sockcli-hub@wallpaper_change: it serves, and a stop (SIGTERM)
    # is a clean exit 0, so Restart=on-failure leaves a stopped hub stopped.
    home = fake_home(cli.root)
    command = [a.replace("%h", str(home)).replace("%i", EVENT) for a in argv]
    assert os.path.realpath(command[0]) == os.path.realpath(SOCKCLI)
    hub = subprocess.Popen(command, env={**cli.env, "HOME": str(home)}, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    cli.procs.append(hub)
    assert "serving 'wallpaper_change'" in read_line(hub, "stderr", 15)
    listed = json.loads(cli.run("list", "--json").stdout)
    assert [(h["event_name"], h["pid"]) for h in listed] == [(EVENT, hub.pid)]
    hub.send_signal(signal.SIGTERM)
    assert hub.wait(10) == 0
    assert not (cli.socket_dir / f"{EVENT}.sock").exists()


@pytest.mark.timeout(60)
def test_systemd_unit_passes_systemd_analyze_verify(cli: Any) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    home = fake_home(cli.root)
    env = {**cli.env, "HOME": str(home)}
    instance = UNIT.parent / "sockcli-hub@wallpaper_change.service"  # from the template
    verified = subprocess.run([analyze, "verify", "--user", "--man=no", str(instance)],
                              env=env, capture_output=True, text=True, timeout=45)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == "", verified.stderr  # no warning (unknown key, bad value...)

    # And it does check the command: without ~/.local/bin/sockcli, the unit is refused.
    (home / ".local" / "bin" / "sockcli").unlink()
    refused = subprocess.run([analyze, "verify", "--user", "--man=no", str(instance)],
                             env=env, capture_output=True, text=True, timeout=45)
    assert refused.returncode != 0 and "is not executable" in refused.stderr


# --- make demo --------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_demo_runs_end_to_end_and_leaves_nothing_behind(cli: Any) -> None:
    tmp = cli.root / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in cli.env.items() if k not in EXAMPLE_VARIABLES}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}", TMPDIR=str(tmp))
    demo = subprocess.Popen(["bash", str(DEMO)], env=env, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = demo.communicate(timeout=80)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(5)
    assert demo.returncode == 0, out + err
    assert err == ""
    lines = out.splitlines()

    # Who said what, and in which order.
    demo_dir = re.search(r"^\[demo\] +private XDG_RUNTIME_DIR=(\S+)/run$", out, re.MULTILINE)
    assert demo_dir, out
    assert Path(demo_dir.group(1)).parent == tmp
    assert any(re.fullmatch(r"\[hub\] +sockcli: serving 'wallpaper_change' on \S+ \(unix\).*",
                            line) for line in lines), out
    assert lines[-2:] == ["[hub]      sockcli: hub 'wallpaper_change' stopped",
                          f"[demo]     everything stopped; {demo_dir.group(1)} removed"]
    listener_lines = [line.split(None, 1)[1] for line in lines
                      if line.startswith("[listener] {")]
    records = [json.loads(line) for line in listener_lines]
    data = [r["data"] for r in records]
    first_run = data[:8]
    assert set(first_run[-1].pop("palette")) and first_run[-1].pop("file")
    assert first_run == progress_messages()
    assert data[8:13] == progress_messages()[:5]
    assert [r["message_type"] for r in records] == ["data"] * 13 + ["error", "control"]
    assert data[13] == {"step": "palette", "status": "failed", "progress": 50,
                        "wallpaper": "aurora", "error": "injected failure (FAIL_STEP=palette)"}
    assert data[14] == {"demo": "finished"}
    connected = lines.index(next(line for line in lines if "listening to" in line))
    assert connected < lines.index(next(line for line in lines if line.startswith(
        "[listener] {")))
    # `sockcli list` ran while the pipeline was connected (not a terminal: JSON).
    listed = [json.loads(line) for line in lines if line.startswith("[{")]
    assert [h["event_name"] for h in listed[0]] == [EVENT]
    assert "[demo]     the pipeline exited 1 after sending an error message" in out
    assert any(line.startswith("[pipeline] ") for line in lines)

    # Nothing left: no process of its group or of its runtime directory, no temporary files.
    assert group_members(demo.pid) == []
    assert processes_with(demo_dir.group(1)) == []
    assert list(tmp.iterdir()) == []


@pytest.mark.timeout(30)
def test_make_demo_runs_the_demo_script_with_the_venv_first_on_path() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # Under `make test` this runs inside make: without the parent's variables, and without
    # "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    planned = subprocess.run([make, "--no-print-directory", "-n", "demo"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=20)
    assert planned.returncode == 0, planned.stderr
    command = planned.stdout.strip().splitlines()[-1]
    assert command == f'PATH="{REPO / ".venv" / "bin"}:$PATH" bash examples/demo.sh'
    assert not (EXAMPLES / "demo.py").exists()

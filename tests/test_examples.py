"""The examples, run as their users run them: the wallpaper pipeline against a hub and a
listener; the waybar, polybar, i3blocks and eww modules, each one `sockcli listen` line taken
from the bar's own configuration file and run through `sh -c` as the bar runs it; the systemd
units, the socket-activated pair under systemd-socket-activate and the producer run by
`serve --exec` included; and `make demo` (examples/demo.sh)."""

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
UNIT = EXAMPLES / "systemd" / "sockcli@.service"
SOCKET_UNIT = EXAMPLES / "systemd" / "sockcli@.socket"
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


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


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
    for script in (PIPELINE, DEMO):
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert script.read_text().startswith("#!/usr/bin/env bash\n")


# --- the bar modules: one `sockcli listen` line each, run as the bar runs it ------------------

WAYBAR_CONFIG = EXAMPLES / "waybar" / "config.jsonc"
POLYBAR_CONFIG = EXAMPLES / "polybar" / "config.ini"
I3BLOCKS_CONFIG = EXAMPLES / "i3blocks" / "config"
EWW_YUCK = EXAMPLES / "eww" / "eww.yuck"
# The messages every bar test sends: the first before the bar starts (--last shows it).
RUNNING = '{"step":"palette","status":"running","progress":50,"text":"colours <of> sun & sea"}'
FAILED = '{"step":"palette","status":"failed","progress":50,"error":"no colours"}'
DONE = '{"step":"apply","status":"done","progress":100,"text":"wallpaper set: aurora"}'


def waybar_module() -> dict[str, Any]:
    """The "custom/wallpaper" entry of waybar/config.jsonc (JSON with // comment lines)."""
    text = WAYBAR_CONFIG.read_text()
    config = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))
    assert "custom/wallpaper" in config["modules-right"]
    module: dict[str, Any] = config["custom/wallpaper"]
    return module


def ini_section(path: Path, section: str) -> dict[str, str]:
    """One section of a polybar or i3blocks file (ini, no interpolation: `%output%`)."""
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return dict(parser[section])


def eww_deflisten(name: str) -> tuple[dict[str, Any], str]:
    """The :initial value (JSON) and the command of ``(deflisten NAME ...)`` in eww.yuck, the
    command's yuck string unescaped (``\\"`` is ``"``)."""
    yuck = re.sub(r"^\s*;.*$", "", EWW_YUCK.read_text(), flags=re.MULTILINE)
    match = re.search(rf"\(deflisten\s+{name}\s+:initial\s+'([^']*)'\s+"
                      r'"((?:[^"\\]|\\.)*)"\s*\)', yuck)
    assert match, f"no (deflisten {name} :initial '...' \"command\") in eww.yuck"
    return json.loads(match.group(1)), re.sub(r"\\(.)", r"\1", match.group(2))


def one_listen_line(command: str) -> list[str]:
    """``command`` is one ``sockcli listen`` line and nothing else (no script, no pipe)."""
    argv = shlex.split(command)
    assert argv[:3] == ["sockcli", "listen", EVENT], argv
    assert not set(argv) & {"|", ";", "&&", "||", "&"}, argv
    assert "--last" in argv and argv[4:8] == ["-t", "data", "-t", "error"], argv
    return argv


def bar_shows(cli: Any, tmp_path: Path, command: str, cwd: Path | None = None) -> list[str]:
    """Run ``command`` through ``sh -c`` as a bar does, against a real hub that holds a
    message already; then an ignored control message, an error and a data message. The three
    lines it prints, and once it is stopped, no subscriber left."""
    cli.serve(EVENT)
    # Another bar took the message live: the hub retains it (nothing is queued).
    other = cli.listen(EVENT, "--count", "1")
    assert cli.run("send", EVENT, "-d", RUNNING).returncode == 0
    assert other.wait(10) == 0
    lines = []
    with started(["sh", "-c", command], example_env(cli, tmp_path), cwd=cwd) as bar:
        lines.append(read_line(bar, timeout=15))  # the retained message: --last
        for args in (["-t", "control", "-d", '{"demo":1}'], ["-t", "error", "-d", FAILED],
                     ["-d", DONE]):
            sent = cli.run("send", EVENT, *args)
            assert sent.returncode == 0, sent.stderr
        lines += [read_line(bar) for _ in range(2)]
        assert subscribers(cli) == 1
    wait_until(lambda: subscribers(cli) == 0, timeout=10, what="the bar's listener to go")
    return lines


@pytest.mark.timeout(60)
def test_waybar_module_is_one_listen_line(cli: Any, tmp_path: Path) -> None:
    module = waybar_module()
    assert module["return-type"] == "json" and module["hide-empty-text"] is True
    one_listen_line(module["exec"])
    assert module["escape"] is False  # sockcli escapes for Pango itself
    assert bar_shows(cli, tmp_path, module["exec"]) == [
        '{"text": "palette running", "tooltip": "colours &lt;of&gt; sun &amp; sea", '
        '"class": "running", "percentage": 50}\n',
        '{"text": "palette failed", "tooltip": "no colours", "class": "failed", '
        '"percentage": 50}\n',
        '{"text": "apply done", "tooltip": "wallpaper set: aurora", "class": "done", '
        '"percentage": 100}\n']
    # Every class the module prints has its style.
    css = (EXAMPLES / "waybar" / "style.css").read_text()
    assert all(f"#custom-wallpaper.{c} " in css for c in ("running", "done", "failed"))


@pytest.mark.timeout(60)
def test_waybar_module_follows_the_pipeline(cli: Any, tmp_path: Path) -> None:
    cli.serve(EVENT)
    env = example_env(cli, tmp_path)
    with started(["sh", "-c", waybar_module()["exec"]], env) as bar:
        wait_until(lambda: subscribers(cli) >= 1, timeout=15, what="the module's listener")
        assert run_pipeline(env).returncode == 0
        assert run_pipeline(example_env(cli, tmp_path, FAIL_STEP="apply")).returncode == 1
        lines = [json.loads(read_line(bar)) for _ in range(8 + 8)]
    seen = [(line["text"], line["class"], line["percentage"]) for line in lines]
    complete = [(f"{m['step']} {m['status']}", m["status"], m["progress"])
                for m in progress_messages()]
    assert seen == complete + complete[:7] + [("apply failed", "failed", 75)]


@pytest.mark.timeout(60)
def test_polybar_module_is_one_listen_line(cli: Any, tmp_path: Path) -> None:
    module = ini_section(POLYBAR_CONFIG, "module/wallpaper")
    assert (module["type"], module["tail"], module["label"]) == (
        "custom/script", "true", "%output%")
    argv = one_listen_line(module["exec"])
    assert argv[argv.index("--format") + 1] == "polybar"
    assert bar_shows(cli, tmp_path, module["exec"]) == [
        "palette 50% running\n", "palette 50% failed\n", "apply 100% done\n"]


@pytest.mark.timeout(60)
def test_i3blocks_block_is_one_listen_line(cli: Any, tmp_path: Path) -> None:
    block = ini_section(I3BLOCKS_CONFIG, "wallpaper")
    # A persistent block (each line updates it) whose lines are JSON objects.
    assert (block["interval"], block["format"]) == ("persist", "json")
    argv = one_listen_line(block["command"])
    assert argv[argv.index("--format") + 1] == "i3bar"
    lines = bar_shows(cli, tmp_path, block["command"])
    assert lines == [
        '{"full_text": "palette 50% running", "short_text": "palette 50% running"}\n',
        '{"full_text": "palette 50% failed", "short_text": "palette 50% failed", '
        '"color": "#FF0000", "urgent": true}\n',
        '{"full_text": "apply 100% done", "short_text": "apply 100% done"}\n']
    # What i3blocks 1.5 parses: flat objects, one per line, of i3bar keys only.
    assert all(set(json.loads(line)) <= {"full_text", "short_text", "color", "urgent"}
               for line in lines)


@pytest.mark.timeout(60)
def test_eww_deflisten_is_one_listen_line(cli: Any, tmp_path: Path) -> None:
    initial, command = eww_deflisten("wallpaper")
    argv = one_listen_line(command)
    assert argv[argv.index("--template") + 1] == "{data}"
    # The idle output is the :initial value: hidden (status "idle") until a message comes.
    idle_text = argv[argv.index("--idle-text") + 1]
    assert json.loads(idle_text.replace("{{", "{").replace("}}", "}")) == initial
    yuck = re.sub(r"^\s*;.*$", "", EWW_YUCK.read_text(), flags=re.MULTILINE)
    assert yuck.count("(") == yuck.count(")")
    used = set(re.findall(r"\bwallpaper\.(\w+)", yuck))
    # Every field the widget reads is in the idle object, or is the error of an error message.
    assert used - set(initial) == {"error"}, used
    assert "(defwidget wallpaper-progress" in yuck and "(wallpaper-progress)" in yuck
    css = (EXAMPLES / "eww" / "eww.scss").read_text()
    assert ".wallpaper.failed" in css and ".wallpaper.done" in css
    # eww runs it from its configuration directory: the data of each message, as JSON.
    lines = bar_shows(cli, tmp_path, command, cwd=EXAMPLES / "eww")
    assert [json.loads(line) for line in lines] == [
        json.loads(RUNNING), json.loads(FAILED), json.loads(DONE)]
    assert lines[0] == RUNNING + "\n"  # compact, as sent


@pytest.mark.timeout(30)
def test_first_bar_after_its_producer_sees_the_first_message_once(cli: Any) -> None:
    # Nobody listened yet: the message is both queued (for the first subscriber) and retained.
    cli.serve(EVENT)
    assert cli.run("send", EVENT, "-d", RUNNING).returncode == 0
    bar = cli.listen(EVENT, "--last", "--count", "2")
    assert cli.run("send", EVENT, "-d", DONE).returncode == 0
    records = messages(bar, 2)
    assert bar.wait(10) == 0
    # Once, from the queue (so not marked retained), then the live one.
    assert [(r["data"], "retained" in r) for r in records] == [
        (json.loads(RUNNING), False), (json.loads(DONE), False)]


def test_no_glue_scripts_are_left() -> None:
    assert not (EXAMPLES / "waybar" / "wallpaper-progress.sh").exists()
    assert not (EXAMPLES / "eww" / "scripts").exists()
    scripts = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.sh"))
    assert scripts == ["demo.sh", "wallpaper-pipeline.sh"]


# --- one producer for every bar: serve --exec ----------------------------------------------------

PRODUCER_UNIT = EXAMPLES / "producer" / "sockcli-wallpaper.service"


def serve_has_exec() -> bool:
    done = subprocess.run([SOCKCLI, "serve", "--help"], capture_output=True, text=True,
                          timeout=20)
    return "--exec" in done.stdout


@pytest.mark.timeout(30)
def test_pipeline_prints_exec_lines_with_stdout(tmp_path: Path, cli: Any) -> None:
    env = example_env(cli, tmp_path)
    env["PATH"] = os.defpath  # no sockcli needed: nothing is sent
    done = run_pipeline(env, "--stdout", "-q")
    assert (done.returncode, done.stderr) == (0, "")
    data = [json.loads(line) for line in done.stdout.splitlines()]
    last = data[-1]
    assert last.pop("palette") and last.pop("file")
    assert data == progress_messages()
    failed = run_pipeline(example_env(cli, tmp_path, FAIL_STEP="resize"), "--stdout", "-q")
    assert failed.returncode == 1
    *lines, error = failed.stdout.splitlines()
    assert [json.loads(line) for line in lines] == progress_messages()[:3]
    kind, _, body = error.partition(" ")
    assert kind == "error" and json.loads(body) == {
        "step": "resize", "status": "failed", "progress": 25, "wallpaper": "aurora",
        "error": "injected failure (FAIL_STEP=resize)"}


@pytest.mark.timeout(60)
def test_producer_unit_serves_two_bars_from_one_pipeline(cli: Any, tmp_path: Path) -> None:
    unit = unit_sections(PRODUCER_UNIT)
    (exec_start,) = unit["Service"]["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:3] == ["%h/.local/bin/sockcli", "serve", EVENT] and "--exec" in argv
    assert "--stdout" in argv[argv.index("--exec") + 1]
    if not serve_has_exec():
        pytest.skip("sockcli serve --exec is not there yet: the producer example needs it")
    home = fake_home(cli.root)
    (home / ".local" / "bin" / "wallpaper-pipeline.sh").symlink_to(PIPELINE)
    env = {**example_env(cli, tmp_path), "HOME": str(home)}
    command = [a.replace("%h", str(home)) for a in argv]
    with started(command, env) as hub:
        assert "serving" in read_line(hub, "stderr", 15)
        bars = [cli.listen(EVENT, "--last", "-t", "data", "-t", "error") for _ in range(2)]
        # The pipeline runs for about four seconds (--delay 1): each bar sees it to the end,
        # from the retained message on, in order.
        expected = progress_messages()
        for bar in bars:
            seen = []
            while not seen or seen[-1]["progress"] != 100:
                record = json.loads(read_line(bar, timeout=20))
                record["data"].pop("palette", None), record["data"].pop("file", None)
                seen.append(record["data"])
            # Each message once: the first bar gets the first message from the queue, not
            # also as the retained one.
            assert len(seen) <= len(expected) and seen == expected[len(expected) - len(seen):]
        [row] = cli.list_json()
        producer = row["producer"]["pid"]
        assert Path(f"/proc/{producer}").exists()
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(20) == 0
    # The producer's group (its shell, sleeping until the next run) went with the hub.
    wait_until(lambda: not group_members(producer) and not alive(producer), timeout=10,
               what="the producer to stop with the hub")


# --- the systemd units ------------------------------------------------------------------------


def unit_sections(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """The unit file as sections of keys, each with all its values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in path.read_text().splitlines():
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


def expand(text: str, root: Path, runtime: Path) -> str:
    """A unit's value as systemd expands it for sockcli@wallpaper_change (user manager)."""
    return text.replace("%h", str(root / "home")).replace("%t", str(runtime)).replace(
        "%i", EVENT)


@pytest.mark.timeout(30)
def test_systemd_units_settings_and_their_command(cli: Any, tmp_path: Path) -> None:
    from sockcli.runtime import fifo_path, lines_path, socket_path

    for path in (UNIT, SOCKET_UNIT):
        text = path.read_text()
        assert "systemctl --user enable --now sockcli@wallpaper_change.socket" in text
        configparser.ConfigParser(strict=False, interpolation=None).read_string(text)
    sockets = unit_sections(SOCKET_UNIT)
    listen = sockets["Socket"]
    assert sockets["Unit"]["Description"][0]
    assert listen["ListenStream"] == ["%t/sockcli/%i.sock", "%t/sockcli/%i.lines.sock"]
    assert listen["ListenFIFO"] == ["%t/sockcli/%i.fifo"]
    assert (listen["SocketMode"], listen["DirectoryMode"]) == (["0600"], ["0700"])
    assert (listen["Accept"], listen["RemoveOnStop"]) == (["no"], ["yes"])
    assert listen["Service"] == ["sockcli@%i.service"]
    assert "FileDescriptorName" not in listen  # the hub tells the sockets apart by path
    assert sockets["Install"]["WantedBy"] == ["sockets.target"]
    # Where the clients look: the default socket_dir of a session, $XDG_RUNTIME_DIR/sockcli.
    expanded = [expand(v, cli.root, cli.runtime)
                for v in listen["ListenStream"] + listen["ListenFIFO"]]
    assert expanded == [str(f(cli.socket_dir, EVENT))
                        for f in (socket_path, lines_path, fifo_path)]

    unit = unit_sections()
    service = unit["Service"]
    assert unit["Unit"]["Description"][0]
    assert service["Type"] == ["notify"]  # the hub says READY=1 once its sockets accept
    assert service["Restart"] == ["on-failure"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert unit["Install"] == {"Also": ["sockcli@%i.socket"]}
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "%h/.local/bin/sockcli" and argv[1:] == ["serve", "%i"]

    # What systemd would run for sockcli@wallpaper_change started without its sockets: it
    # serves, and a stop (SIGTERM) is a clean exit 0, so Restart=on-failure leaves a stopped
    # hub stopped.
    home = fake_home(cli.root)
    command = [expand(a, cli.root, cli.runtime) for a in argv]
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
def test_systemd_units_pass_systemd_analyze_verify(cli: Any) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    home = fake_home(cli.root)
    env = {**cli.env, "HOME": str(home)}
    # The instances, from the templates; the socket's check needs its service loaded too.
    instances = [str(UNIT.parent / f"sockcli@{EVENT}.{kind}") for kind in ("socket", "service")]
    verified = subprocess.run([analyze, "verify", "--user", "--man=no", *instances],
                              env=env, capture_output=True, text=True, timeout=45)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == "", verified.stderr  # no warning (unknown key, bad value...)

    # And it does check the command: without ~/.local/bin/sockcli, the units are refused.
    (home / ".local" / "bin" / "sockcli").unlink()
    refused = subprocess.run([analyze, "verify", "--user", "--man=no", *instances],
                             env=env, capture_output=True, text=True, timeout=45)
    assert refused.returncode != 0 and "is not executable" in refused.stderr


@pytest.mark.timeout(90)
def test_systemd_socket_unit_starts_its_hub_on_the_first_send(cli: Any) -> None:
    # The socket unit's streams and the service's command, as systemd would pass and run them
    # (every descriptor named after the socket unit), with systemd-socket-activate; it cannot
    # pass a FIFO (tests/test_activation.py passes one by hand).
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate (Debian's systemd package) is not installed")
    home = fake_home(cli.root)
    streams = [expand(v, cli.root, cli.runtime)
               for v in unit_sections(SOCKET_UNIT)["Socket"]["ListenStream"]]
    (exec_start,) = unit_sections()["Service"]["ExecStart"]
    command = [expand(a, cli.root, cli.runtime) for a in shlex.split(exec_start)]
    cli.socket_dir.mkdir(mode=0o700)  # DirectoryMode=0700
    name = f"sockcli@{EVENT}.socket"
    # systemd-socket-activate gives its command only the variables -E names; a user
    # manager gives a service XDG_RUNTIME_DIR (the default socket_dir's parent), HOME, PATH.
    env = {**cli.env, "HOME": str(home)}
    passed = [f"-E{k}={env[k]}" for k in ("XDG_RUNTIME_DIR", "HOME", "PATH",
                                            "SOCKCLI_SOCKET_DIR") if k in env]
    hub = subprocess.Popen(
        [activate, *(f"--listen={s}" for s in streams), f"--fdname={name}:{name}", *passed,
         *command],
        env=env, text=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cli.procs.append(hub)
    for fd, stream in enumerate(streams, start=3):
        assert read_line(hub, "stderr", 20).strip() == f"Listening on {stream} as {fd}."

    sent = cli.run("send", EVENT, "-d", '{"step": "fetch"}', "--timeout", "30", timeout=40)
    assert sent.returncode == 0, sent.stderr
    got = cli.run("listen", EVENT, "--count", "1", "--json", timeout=30)
    assert got.returncode == 0, got.stderr
    assert [json.loads(line)["data"] for line in got.stdout.splitlines()] == [{"step": "fetch"}]
    [row] = cli.list_json()
    assert (row["event_name"], row["pid"], row["activated"]) == (EVENT, hub.pid, True)
    hub.send_signal(signal.SIGTERM)
    assert hub.wait(10) == 0


@pytest.mark.timeout(60)
def test_producer_unit_passes_systemd_analyze_verify(cli: Any) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    home = fake_home(cli.root)
    verified = subprocess.run([analyze, "verify", "--user", "--man=no", str(PRODUCER_UNIT)],
                              env={**cli.env, "HOME": str(home)}, capture_output=True,
                              text=True, timeout=45)
    assert (verified.returncode, verified.stderr) == (0, "")


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
    # Next to it, the waybar-format listener: the same messages, as a waybar module reads them.
    shown = [json.loads(line.split(None, 1)[1]) for line in lines
             if line.startswith("[waybar]   {")]
    assert [s["class"] for s in shown] == ["data"] * 13 + ["error", "control"]
    texts = [m["text"] for m in progress_messages()]
    assert [s["text"] for s in shown[:13]] == texts + texts[:5]
    assert shown[13]["text"] == json.dumps(data[13], separators=(",", ":"))
    assert shown[14]["text"] == '{"demo":"finished"}' and "percentage" not in shown[14]
    assert [s["percentage"] for s in shown[:14]] == [r["progress"] for r in data[:14]]
    assert all(re.fullmatch(r"wallpaper_change: (data|error|control) at "
                            r"\d\d:\d\d:\d\d\.\d{3}", s["tooltip"]) for s in shown)
    # Nothing was sent before both listeners said they were connected.
    first_message = lines.index(next(line for line in lines if line.startswith(
        ("[listener] {", "[waybar]   {"))))
    for tag in ("[listener]", "[waybar]"):
        connected = lines.index(next(line for line in lines
                                     if line.startswith(tag) and "listening to" in line))
        assert connected < first_message
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

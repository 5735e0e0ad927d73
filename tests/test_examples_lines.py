"""The quickshell widget of examples/quickshell/, which reads a hub's JSON-lines socket itself.

There is no quickshell here, so examples/quickshell/check-widget.py speaks to the socket as
WallpaperLink.qml does (the same path lookup, first line, line splitting and fields read, the
same reconnection) and prints what the widget would show; it runs against a real
``sockcli serve`` with ``sockcli send`` and FIFO publishers. The widget's own logic,
wallpaper.mjs, is run with node (when installed) on the same lines and must show the same.
And the QML files are read, to check that they use wallpaper.mjs's constants and functions,
which must be check-widget.py's: the script and the widget cannot drift apart.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.clitools import SOCKCLI, read_line

REPO = Path(__file__).resolve().parents[1]
QUICKSHELL = REPO / "examples" / "quickshell"
SCRIPT = QUICKSHELL / "check-widget.py"
LOGIC = QUICKSHELL / "wallpaper.mjs"
LINK = QUICKSHELL / "WallpaperLink.qml"
WIDGET = QUICKSHELL / "WallpaperWidget.qml"
SHELL = QUICKSHELL / "shell.qml"
EVENT = "wallpaper_change"
BIN = str(Path(SOCKCLI).parent)

RUNNING: dict[str, Any] = {"step": "palette", "status": "running", "progress": 50,
                           "text": "colours <of> sun & sea"}
DONE_75: dict[str, Any] = {"step": "palette", "status": "done", "progress": 75,
                           "text": "extracted"}
FAILED: dict[str, Any] = {"step": "apply", "status": "failed", "progress": 75,
                          "error": "no colours"}
DONE: dict[str, Any] = {"step": "apply", "status": "done", "progress": 100,
                        "text": "wallpaper set: aurora"}


def compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def script_module() -> ModuleType:
    """check-widget.py, imported (its name has a dash) for its constants."""
    spec = importlib.util.spec_from_file_location("check_widget", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def widget_env(cli: Any, *, sockcli_on_path: bool = True,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """The cli fixture's private environment; with the venv's sockcli first on PATH, or with a
    PATH that has no sockcli at all."""
    env = dict(cli.env)
    path = "/usr/local/bin:/usr/bin:/bin"
    env["PATH"] = f"{BIN}{os.pathsep}{path}" if sockcli_on_path else path
    env.update(extra or {})
    return env


def start_widget(children: list[Any], env: dict[str, str], *args: str
                 ) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    children.append(proc)
    return proc


def until(proc: subprocess.Popen[str], event: str, *, skipping: tuple[str, ...] = ("failed",),
          timeout: float = 15.0) -> dict[str, Any]:
    """The next ``event`` the script prints; only ``skipping`` events may come before it."""
    deadline = time.monotonic() + timeout
    while True:
        record: dict[str, Any] = json.loads(
            read_line(proc, timeout=max(0.1, deadline - time.monotonic())))
        if record["event"] == event:
            return record
        assert record["event"] in skipping, f"expected {event!r}, got {record}"


def shows(record: dict[str, Any]) -> dict[str, Any]:
    """What the widget shows, from one of the script's lines."""
    return {k: record[k] for k in ("online", "visible", "label", "progress", "detail",
                                   "failed", "notice")}


def showing(label: str, detail: str, *, progress: int, failed: bool = False,
            online: bool = True, visible: bool = True, notice: str = "") -> dict[str, Any]:
    return {"online": online, "visible": visible, "label": label, "progress": progress,
            "detail": detail, "failed": failed, "notice": notice}


NOTHING = showing("", "", progress=0, visible=False, online=False)


# --- against a real hub -----------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_widget_shows_the_retained_state_then_each_message_then_hides(
        cli: Any, children: list[Any]) -> None:
    cli.serve(EVENT)
    # The state the widget must show at once when it starts: the hub's last data message
    # (relayed to a listener, so it is the retained copy the widget gets, not a queued one),
    # and a control message after it, which the widget's first line does not ask for.
    listener = cli.listen(EVENT, "--count", "2")
    for args in (["-d", compact(RUNNING)], ["-t", "control", "-d", '{"bar": "reload"}']):
        sent = cli.run("send", EVENT, *args)
        assert sent.returncode == 0, sent.stderr
    assert listener.wait(15) == 0

    widget = start_widget(children, widget_env(cli), "--hide-after", "4")

    assert until(widget, "path", skipping=())["path"] == str(
        cli.socket_dir / f"{EVENT}.lines.sock")
    assert shows(until(widget, "connected")) == {**NOTHING, "online": True}
    retained = until(widget, "line", skipping=())
    record = json.loads(retained["line"])
    assert (record["message_type"], record["data"], record["retained"]) == (
        "data", RUNNING, True)
    assert shows(retained) == showing("palette 50% running", RUNNING["text"], progress=50)

    # A shell publishing through the FIFO (every type: the control line is not for the
    # widget), then sockcli send.
    published = cli.bash(
        'fifo=$(sockcli path wallpaper_change --fifo)\n'
        f"echo '{compact(DONE_75)}' > \"$fifo\"\n"
        "echo 'control {\"bar\": \"reload\"}' > \"$fifo\"\n"
        f"echo 'error {compact(FAILED)}' > \"$fifo\"\n")
    assert published.returncode == 0, published.stderr
    line = until(widget, "line", skipping=())
    assert shows(line) == showing("palette 75% done", "extracted", progress=75)
    line = until(widget, "line", skipping=())
    assert json.loads(line["line"])["message_type"] == "error"
    assert shows(line) == showing("apply 75% failed", "no colours", progress=75, failed=True)
    sent = cli.run("send", EVENT, "-d", compact(DONE))
    assert sent.returncode == 0, sent.stderr
    done = until(widget, "line", skipping=())
    assert shows(done) == showing("apply 100% done", DONE["text"], progress=100)

    # A finished run hides itself --hide-after seconds after the hub stamped it (the hub's
    # timestamp_ms, the clock time.time() reads too).
    hidden = until(widget, "hidden", skipping=(), timeout=20)
    assert time.time() >= json.loads(done["line"])["timestamp_ms"] / 1000 + 4 - 0.05
    assert shows(hidden) == showing("apply 100% done", DONE["text"], progress=100,
                                    visible=False)

    # A widget started now gets the retained messages, oldest first (the error, then the
    # newer data): it ends on the finished run, already hidden.
    late = start_widget(children, widget_env(cli), "--hide-after", "4")
    until(late, "connected", skipping=("path",))
    first, second = until(late, "line", skipping=()), until(late, "line", skipping=())
    assert shows(first) == showing("apply 75% failed", "no colours", progress=75, failed=True)
    assert shows(second) == showing("apply 100% done", DONE["text"], progress=100,
                                    visible=False)
    assert [json.loads(r["line"])["retained"] for r in (first, second)] == [True, True]


@pytest.mark.timeout(60)
def test_widget_asks_sockcli_for_the_path_and_falls_back_to_the_default(
        cli: Any, children: list[Any]) -> None:
    # sockcli knows the socket_dir setting: the widget follows it.
    other = cli.root / "elsewhere"
    settings = {"SOCKCLI_SOCKET_DIR": str(other)}
    cli.serve(EVENT, env=settings)
    widget = start_widget(children, widget_env(cli, extra=settings))
    assert until(widget, "path", skipping=())["path"] == str(other / f"{EVENT}.lines.sock")
    until(widget, "connected")
    sent = cli.run("send", EVENT, "-d", compact(RUNNING), env=settings)
    assert sent.returncode == 0, sent.stderr
    assert shows(until(widget, "line", skipping=()))["label"] == "palette 50% running"

    # Without sockcli on PATH: $XDG_RUNTIME_DIR/sockcli/wallpaper_change.lines.sock.
    cli.serve(EVENT)
    plain = start_widget(children, widget_env(cli, sockcli_on_path=False))
    assert until(plain, "path", skipping=())["path"] == str(
        cli.runtime / "sockcli" / f"{EVENT}.lines.sock")
    until(plain, "connected")
    sent = cli.run("send", EVENT, "-t", "error", "-d", compact(FAILED))
    assert sent.returncode == 0, sent.stderr
    assert shows(until(plain, "line", skipping=())) == showing(
        "apply 75% failed", "no colours", progress=75, failed=True)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_widget_follows_its_hub_across_restarts(cli: Any, children: list[Any],
                                                how: str) -> None:
    # Started before any hub: it keeps trying.
    widget = start_widget(children, widget_env(cli))
    until(widget, "path", skipping=())
    failed = until(widget, "failed", skipping=())
    assert (failed["reason"], shows(failed)) == ("FileNotFoundError", NOTHING)
    hub = cli.serve(EVENT)
    assert shows(until(widget, "connected")) == {**NOTHING, "online": True}
    sent = cli.run("send", EVENT, "-d", compact(RUNNING))
    assert sent.returncode == 0, sent.stderr
    assert shows(until(widget, "line", skipping=()))["label"] == "palette 50% running"

    hub.send_signal(getattr(signal, how))
    hub.wait(15)
    if how == "SIGTERM":
        # The hub says why it closes the connection; the widget shows it while it waits.
        notice = "hub 'wallpaper_change' is stopping"
        line = until(widget, "line", skipping=())
        assert json.loads(line["line"]) == {"error": "shutting_down", "reason": notice,
                                            "fatal": True}
        assert shows(line) == showing("palette 50% running", RUNNING["text"], progress=50,
                                      notice=notice)
        gone = "FileNotFoundError"  # the hub removed its sockets
    else:
        notice = ""
        gone = "ConnectionRefusedError"  # the socket of a killed hub stays, nobody listening
    offline = showing("palette 50% running", RUNNING["text"], progress=50, online=False,
                      notice=notice)
    assert shows(until(widget, "disconnected", skipping=())) == offline
    failed = until(widget, "failed", skipping=())
    if how == "SIGTERM":  # (refused in the instant between closing and removing the socket)
        while failed["reason"] == "ConnectionRefusedError":
            failed = until(widget, "failed", skipping=())
    assert (failed["reason"], shows(failed)) == (gone, offline)

    cli.serve(EVENT)  # replaces what a killed hub left
    # Online again, with what it showed (a new hub has no retained message) and no notice.
    assert shows(until(widget, "connected")) == {**offline, "online": True, "notice": ""}
    sent = cli.run("send", EVENT, "-d", compact(DONE))
    assert sent.returncode == 0, sent.stderr
    assert shows(until(widget, "line", skipping=())) == showing(
        "apply 100% done", DONE["text"], progress=100)


# --- the widget's own JavaScript, with node ---------------------------------------------------

#: Imports wallpaper.mjs, as quickshell does, and reads the lines of its stdin with it: prints
#: shown() of each, as `check-widget.py --replay` does.
NODE_REPLAY = r"""
const fs = require("fs");
const { pathToFileURL } = require("url");
const [file, now, hideAfter] = process.argv.slice(1);
import(pathToFileURL(file).href).then(lib => {
    const lines = fs.readFileSync(0, "utf8").split("\n");
    lines.pop();
    let view = lib.online(lib.initial());
    for (const line of lines) {
        view = lib.show(view, line);
        console.log(JSON.stringify(lib.shown(view, Number(now), Number(hideAfter))));
    }
});
"""
NOW = 1_800_000_000_000


def wire(message_type: str, data: Any, stamp: Any = NOW - 1000, **extra: Any) -> str:
    return json.dumps({"event_name": EVENT, "timestamp_ms": stamp,
                       "timestamp_iso": "2027-01-15T08:00:00.000+00:00",
                       "message_type": message_type, "data": data, **extra})


#: Lines a hub sends and lines no hub sends, for both readers of them.
ODD_LINES = [
    wire("data", RUNNING, retained=True),
    wire("data", {"step": "resize"}),                   # no progress: the last one stays
    wire("data", {"progress": "50"}),                   # a string is no progress
    wire("data", {"progress": True, "step": 7}),        # nor true; a number is no step
    wire("data", {"progress": 150}), wire("data", {"progress": -5}),
    wire("data", {"progress": 33.7, "status": "running"}),
    '{"message_type": "data", "data": {"progress": 1' + "0" * 400 + "}}",  # Infinity in JS
    '{"message_type": "data", "data": {"progress": 1e400}}',
    wire("data", {"progress": 99.99999999999999999}),   # 100 as a double, in both
    wire("error", FAILED),
    wire("error", None), wire("error", ["not", "an", "object"]),
    wire("data", DONE), wire("data", DONE, stamp=NOW - 60_000),  # hidden: 60 s old
    wire("data", DONE, stamp="recently"),
    wire("control", {"bar": "reload"}), wire("custom", {"x": 1}),
    '{"error": "shutting_down", "reason": "hub \'wallpaper_change\' is stopping", "fatal": true}',
    '{"error": "invalid_message", "line": 3}', '{"fatal": true}',
    "bogus", "", "[1, 2]", "null", '"text"', "NaN", '{"data": NaN, "message_type": "data"}',
    "{} trailing", "\ufeff{}", '{"a": 1}\r', '  {"message_type": "data", "data": {}}  ',
    wire("data", {"step": "é ✓ \u2028 \ud83d\ude00", "text": "<&>", "status": "done",
                  "progress": 100}),
    '{"message_type": "data", "data": {"step": "\\ud800", "progress": 1}}',  # a lone surrogate
    '{"message_type": "data", "data": {"step": "a", "step": "b"}, "__proto__": {"x": 1}}',
    '{"message_type": "data", "message_type": "error", "data": {"error": "twice"}}',
]


def replay_with_python(lines: list[str], now: float, hide_after: float) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--replay", "--now", str(now),
                           "--hide-after", str(hide_after)],
                          input="".join(f"{line}\n" for line in lines).encode(),
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.decode().split("\n")[:-1]]


def replay_with_node(lines: list[str], now: float, hide_after: float) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: wallpaper.mjs cannot be run here")
    done = subprocess.run([node, "-e", NODE_REPLAY, str(LOGIC), str(now), str(hide_after * 1000)],
                          input="".join(f"{line}\n" for line in lines).encode(),
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().split("\n")[:-1]]


@pytest.mark.timeout(60)
def test_wallpaper_mjs_and_the_script_show_the_same_for_every_line() -> None:
    by_node = replay_with_node(ODD_LINES, NOW, 10)
    assert replay_with_python(ODD_LINES, NOW, 10) == by_node
    assert len(by_node) == len(ODD_LINES)
    # A few of them, spelled out.
    assert by_node[0] == showing("palette 50% running", RUNNING["text"], progress=50)
    assert [v["label"] for v in by_node[1:10]] == [
        "resize 50%", "50%", "50%", "100%", "0%", "33% running", "33%", "33%", "100%"]
    assert by_node[10] == showing("apply 75% failed", "no colours", progress=75, failed=True)
    assert by_node[11]["label"] == by_node[12]["label"] == "apply 75% failed"
    assert [v["visible"] for v in by_node[13:16]] == [True, False, False]
    assert by_node[16] == by_node[17] == by_node[15]  # not asked for: nothing changes
    assert [v["notice"] for v in by_node[18:21]] == [
        "hub 'wallpaper_change' is stopping", "invalid_message", "the hub sent an unknown line"]
    assert by_node[21]["notice"] == "the hub sent a line that is not JSON"
    assert by_node[23]["notice"] == "the hub sent a line that is not a JSON object"


@pytest.mark.timeout(60)
def test_wallpaper_mjs_reads_a_real_hubs_lines_as_the_script_did(
        cli: Any, children: list[Any]) -> None:
    cli.serve(EVENT)
    widget = start_widget(children, widget_env(cli))
    until(widget, "connected", skipping=("path", "failed"))
    # Every type and odd values, through the FIFO as a shell writes them.
    lines = [compact(RUNNING), "control {\"bar\": \"reload\"}",
             'error {"step": "fetch", "error": "HTTP 404 for \\"dawn\\"", "progress": 0}',
             '{"step": "é ✓ <&>", "progress": 12.5, "status": "running", "text": "\\u2028"}',
             '{"progress": "n/a"}', f"data {compact(DONE)}"]
    published = cli.bash('fifo=$(sockcli path wallpaper_change --fifo)\n'
                         'while IFS= read -r line; do printf "%s\\n" "$line" > "$fifo"; done',
                         input="".join(f"{line}\n" for line in lines), stdin=None)
    assert published.returncode == 0, published.stderr
    seen = [until(widget, "line", skipping=()) for _ in range(len(lines) - 1)]  # no control
    assert [json.loads(r["line"])["message_type"] for r in seen] == [
        "data", "error", "data", "data", "data"]
    # Replayed later, nothing is hidden yet (the default 10 s); what the widget showed live
    # is what wallpaper.mjs shows of the same lines.
    raw = [r["line"] for r in seen]
    now = json.loads(raw[-1])["timestamp_ms"]
    by_node = replay_with_node(raw, now, 10)
    assert by_node == replay_with_python(raw, now, 10)
    assert by_node == [shows(r) for r in seen]
    assert [v["label"] for v in by_node] == [
        "palette 50% running", "fetch 0% failed", "é ✓ <&> 12% running", "12%",
        "apply 100% done"]


# --- the QML, read ----------------------------------------------------------------------------


def js_constants() -> dict[str, Any]:
    """wallpaper.mjs's `export const NAME = VALUE;` lines (VALUE is JSON, or names EVENT)."""
    found = {}
    for name, value in re.findall(r"^export const ([A-Z_]+) = (.+);$", LOGIC.read_text(),
                                  re.MULTILINE):
        found[name] = json.loads(value.replace("EVENT", json.dumps(EVENT)))
    return found


def test_the_script_uses_wallpaper_mjs_constants() -> None:
    script = script_module()
    constants = js_constants()
    assert constants == {"EVENT": EVENT, "FIRST_LINE": "#subscribe types=data,error last=1\n",
                         "PATH_COMMAND": ["sockcli", "path", EVENT, "--lines"],
                         "RETRY_MS": 1000, "HIDE_AFTER_MS": 10000}
    for name, value in constants.items():
        assert getattr(script, name) == value, name
    assert script.fallback_path("/run/user/1000") == \
        "/run/user/1000/sockcli/wallpaper_change.lines.sock"
    assert script.fallback_path(None) == script.fallback_path("") == ""
    assert 'return runtimeDir + "/sockcli/" + EVENT + ".lines.sock";' in LOGIC.read_text()
    # The first line is one the hub takes: the retained copy and types, nothing else.
    from sockcli.hub.linesconn import parse_first_line
    from sockcli.kinds import MessageType

    sub = parse_first_line(constants["FIRST_LINE"])
    assert sub is not None and sub.subscribe and sub.last
    assert sub.types == frozenset({MessageType.DATA, MessageType.ERROR})


def qml_code(path: Path) -> str:
    """A QML file without its // comments (a `//` inside a string is kept)."""
    return re.sub(r'^((?:[^"/\n]|"(?:[^"\\\n]|\\.)*"|/(?!/))*)//.*$', r"\1", path.read_text(),
                  flags=re.MULTILINE)


def test_the_qml_uses_wallpaper_mjs_for_path_first_line_lines_and_retries() -> None:
    link = qml_code(LINK)
    assert 'import "wallpaper.mjs" as Wallpaper' in link
    # The path: sockcli's answer, else the default under $XDG_RUNTIME_DIR.
    assert "command: Wallpaper.PATH_COMMAND" in link
    assert 'Wallpaper.fallbackPath(Quickshell.env("XDG_RUNTIME_DIR"))' in link
    assert "link.pathStatus === 0 && found !== \"\"" in link
    # Connected: the first line, flushed, and nothing else ever written.
    assert re.search(r"if \(connected\) \{\s*attempt\.write\(Wallpaper\.FIRST_LINE\);\s*"
                     r"attempt\.flush\(\);", link)
    assert link.count(".write(") == 1
    # Lines split at "\n" (SplitParser's default marker), each read by Wallpaper.show.
    assert re.search(r"parser: SplitParser \{\s*onRead: line => link\.receive\(line\)\s*\}",
                     link)
    assert "splitMarker" not in link
    assert "link.view = Wallpaper.show(link.view, line);" in link
    # Each attempt a new Socket; after a failure or the end, another one RETRY_MS later.
    assert "socketComponent.createObject(link, { path: link.path })" in link
    assert "onError: link.retire(attempt)" in link
    assert re.search(r"\} else \{\s*link\.retire\(attempt\);", link)
    assert "link.view = Wallpaper.offline(link.view);" in link
    assert re.search(r"id: retryTimer\s*interval: Wallpaper\.RETRY_MS\s*onTriggered: "
                     r"link\.open\(\)", link)
    assert "property int hideAfter: Wallpaper.HIDE_AFTER_MS" in link
    for name in ("visible", "hideIn", "online", "initial"):
        assert f"Wallpaper.{name}(" in link, name
    # Every Wallpaper.NAME the QML uses is one wallpaper.mjs defines.
    logic = LOGIC.read_text()
    for name in set(re.findall(r"Wallpaper\.(\w+)", link)):
        assert re.search(rf"^export (const {name} =|function {name}\()", logic, re.MULTILINE), \
            name

    widget, shell = qml_code(WIDGET), qml_code(SHELL)
    assert "required property var link" in widget and "visible: link.shown" in widget
    for field in ("label", "progress", "failed", "error", "text", "notice", "online"):
        assert f"view.{field}" in widget, field
    assert "WallpaperLink {\n        id: wallpaper" in shell
    assert "link: wallpaper" in shell and "model: Quickshell.screens" in shell
    for path in (LINK, WIDGET, SHELL):
        code = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', qml_code(path))
        assert code.count("{") == code.count("}"), path.name
        assert code.count("(") == code.count(")"), path.name


@pytest.mark.timeout(60)
def test_the_qml_files_pass_qmllint_when_quickshell_is_installed() -> None:
    qmllint = shutil.which("qmllint") or shutil.which("qmllint6")
    if qmllint is None or not (shutil.which("qs") or shutil.which("quickshell")):
        pytest.skip("qmllint and quickshell are not installed")
    done = subprocess.run([qmllint, str(LINK), str(WIDGET), str(SHELL)], capture_output=True,
                          text=True, timeout=50, cwd=QUICKSHELL)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_script_is_executable_and_standalone() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")
    imported = set(re.findall(r"^(?:from|import) (\w+)", SCRIPT.read_text(), re.MULTILINE))
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    shown = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                           text=True, timeout=20)
    assert shown.returncode == 0 and "--hide-after" in shown.stdout

"""``sockcli listen --format``, the templates (--text, --template...) and --idle: the template
engine on its own, then real serve/send/listen processes."""

from __future__ import annotations

import json
import time

import pytest

from sockcli.cli.templates import TemplateError, parse
from tests.clitools import read_json, read_line, rest, usage_error

RECORD = {
    "event_name": "ev",
    "timestamp_ms": 1700000000000,
    "timestamp_iso": "2023-11-14T22:13:20.000+00:00",
    "message_type": "data",
    "data": {"progress": 42.345, "text": "a & b", "files": ["x.png", "y.png"], "none": None,
             "flag": True, "nested": {"k": [1, {"z": "deep"}]}, "nan": float("nan")},
}


def render(source: str, record: dict[str, object] | None = None) -> str:
    return parse(source).render(RECORD if record is None else record)


# --- the template engine -----------------------------------------------------------------


@pytest.mark.timeout(10)
def test_paths_into_the_record() -> None:
    assert render("{event_name} {message_type} {timestamp_iso}") == \
        "ev data 2023-11-14T22:13:20.000+00:00"
    assert render("{data.text}|{data.files.1}|{data.nested.k.1.z}") == "a & b|y.png|deep"
    assert render("{data.progress}") == "42.345"
    assert render("{data.flag} {data.files}") == 'true ["x.png","y.png"]'
    assert json.loads(render("{data}"))["files"] == ["x.png", "y.png"]
    assert "NaN" not in render("{data}") and '"nan":null' in render("{data}")
    assert render("plain text") == "plain text"
    assert render("") == ""


@pytest.mark.timeout(10)
def test_missing_paths_and_fallbacks() -> None:
    assert render("[{data.absent}]") == "[]"
    assert render("[{data.none}]") == "[]"  # null renders empty
    assert render("[{data.nan}]") == "[]"  # so does NaN
    assert render("{data.absent|idle}") == "idle"
    assert render("{data.none|-}") == "-"
    assert render("{data.text|unused}") == "a & b"
    assert render("{data.files.5|no file}") == "no file"  # out of range
    assert render("{data.files.first|no}") == "no"  # lists take indexes only
    assert render("{data.text.length|n/a}") == "n/a"  # no attributes of strings
    assert render("{data.progress.real|n/a}") == "n/a"  # nor of numbers
    assert render("{__class__|safe}") == "safe"
    assert render("{data.absent:>5|x}") == "x"  # the fallback is not formatted


@pytest.mark.timeout(10)
def test_format_specs() -> None:
    assert render("{data.progress:.0f}%") == "42%"
    assert render("{data.progress:>8.1f}") == "    42.3"
    assert render("{data.text:>7}") == "  a & b"
    assert render("{data.text:.1}") == "a"
    # A spec that does not suit the value (a number spec on a string) is left out.
    assert render("{data.text:.1f}") == "a & b"
    assert render("{data.files.0:d}") == "x.png"
    assert render("{data.flag:>10}") == "true"  # not a number nor a string: JSON, no spec
    assert render("{data.n:03d}", {"data": {"n": 7}}) == "007"


@pytest.mark.timeout(10)
def test_braces() -> None:
    assert render("{{literal}}") == "{literal}"
    assert render("{{{event_name}}}") == "{ev}"
    assert render("}}{{") == "}{"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("source", "column", "reason"), [
    ("{data", 1, "not closed"),
    ("ab {data.x", 4, "not closed"),
    ("ab}", 3, "single '}'"),
    ("{a{b}}", 3, "inside a field"),
    ("x{}", 3, "empty field"),
    ("{:>5}", 2, "empty field"),
    ("{data..x}", 7, "empty segment"),
    ("{data.}", 7, "empty segment"),
    ("{data.x:zz}", 9, "invalid format spec"),
])
def test_invalid_templates_name_the_column(source: str, column: int, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse(source)
    assert info.value.column == column
    assert reason in str(info.value)
    assert str(info.value).startswith(f"column {column}: ")


@pytest.mark.timeout(10)
def test_no_evaluation() -> None:
    # Python's str.format would look these up; here they are plain missing keys.
    assert render("{data.__class__}") == ""
    assert render("{0}") == ""
    assert render("{data[text]}") == ""


# --- end to end --------------------------------------------------------------------------


def send(cli, *args: str) -> None:
    done = cli.run("send", *args)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


@pytest.mark.timeout(40)
def test_waybar(cli) -> None:
    cli.serve("ev")
    bar = cli.listen("ev", "--format", "waybar", "--count", "4")
    send(cli, "ev", "-d", '{"text": "a & <b>", "progress": 140, "alt": "busy"}')
    send(cli, "ev", "-d", '{"progress": -3, "tooltip": "line 1\\n<2>", "class": ["x", "y"]}')
    send(cli, "ev", "-d", '{"percentage": 55.6, "progress": 10, "text": 7}')
    send(cli, "ev", "-t", "error", "-d", '{"error": "disk full"}')
    first, second, third, error = (read_json(bar) for _ in range(4))
    assert bar.wait(10) == 0
    assert first["text"] == "a &amp; &lt;b&gt;"
    assert first["percentage"] == 100  # clamped
    assert (first["alt"], first["class"]) == ("busy", "data")
    assert first["tooltip"].startswith("ev: data at ")
    assert second["percentage"] == 0
    assert second["tooltip"] == "line 1\n&lt;2&gt;"  # the newline kept, for waybar to show
    assert second["class"] == ["x", "y"]
    assert second["text"] == \
        '{"progress":-3,"tooltip":"line 1\\n&lt;2&gt;","class":["x","y"]}'
    assert "alt" not in second
    assert (third["percentage"], third["text"]) == (56, "7")
    assert error["class"] == "error"
    assert error["text"] == '{"error":"disk full"}'
    assert "percentage" not in error
    assert rest(bar) == ""


@pytest.mark.timeout(40)
def test_waybar_templates(cli) -> None:
    cli.serve("ev")
    bar = cli.listen("ev", "--format", "waybar", "--count", "1",
                     "--text", "<b>{data.name}</b> {data.progress:.0f}%",
                     "--tooltip", "{event_name}: {data.file|?}", "--class", "p{data.progress}",
                     "--alt", "{message_type}")
    send(cli, "ev", "-d", '{"name": "R&D <x>", "progress": 12.4, "file": "a>b"}')
    got = read_json(bar)
    assert bar.wait(10) == 0
    # The template's own markup stays; what comes from the message is escaped.
    assert got == {"text": "<b>R&amp;D &lt;x&gt;</b> 12%", "alt": "data",
                   "tooltip": "ev: a&gt;b", "class": "p12.4", "percentage": 12}


@pytest.mark.timeout(40)
def test_i3bar_protocol(cli) -> None:
    cli.serve("ev")
    bar = cli.listen("ev", "--format", "i3bar", "--count", "3")
    send(cli, "ev", "-d", '{"text": "40%", "short_text": "4"}')
    send(cli, "ev", "-t", "error", "-d", '{"text": "failed\\nbadly"}')
    send(cli, "ev", "-t", "control", "-d", '{"text": "stop"}')
    lines = [read_line(bar) for _ in range(3)]
    assert bar.wait(10) == 0
    # One flat block object per line, as an i3blocks persistent block (format=json) reads
    # them: no header, no array, no name (i3blocks names the block after its section).
    assert all(line.startswith("{") and line.endswith("}\n") for line in lines)
    data, error, control = (json.loads(line) for line in lines)
    assert data == {"full_text": "40%", "short_text": "4"}
    assert error == {"full_text": "failed badly", "short_text": "failed badly",
                     "color": "#FF0000", "urgent": True}
    assert control == {"full_text": "stop", "short_text": "stop", "color": "#00FFFF"}
    assert rest(bar) == ""


@pytest.mark.timeout(40)
@pytest.mark.parametrize("fmt", ["text", "polybar"])
def test_plain_lines(cli, fmt: str) -> None:
    cli.serve("ev")
    bar = cli.listen("ev", "--format", fmt, "--count", "3")
    send(cli, "ev", "-d", '{"text": "two\\nlines %{A1:reboot:}x%{A}"}')
    send(cli, "ev", "-d", '{"progress": 5}')
    send(cli, "ev", "-d", '{"text": ""}')  # an empty line hides a polybar module
    lines = [read_line(bar) for _ in range(3)]
    assert bar.wait(10) == 0
    if fmt == "polybar":  # no formatting tag (a click action!) from a message
        assert lines[0] == "two lines % {A1:reboot:}x% {A}\n"
    else:
        assert lines[0] == "two lines %{A1:reboot:}x%{A}\n"
    assert lines[1:] == ['{"progress":5}\n', "\n"]
    assert rest(bar) == ""


@pytest.mark.timeout(40)
def test_text_option_and_template(cli) -> None:
    cli.serve("ev")
    text = cli.listen("ev", "--format", "polybar", "--text", "{data.progress:>3}%",
                      "--count", "1")
    # --template wins over any format: even i3bar prints only the template's lines.
    line = cli.listen("ev", "--format", "i3bar", "--template",
                      "{{{event_name}}} {data.files.1|none} {data}", "--count", "2")
    send(cli, "ev", "-d", '{"progress": 7, "files": ["a", "b"]}')
    send(cli, "ev", "-d", '{"progress": 8}')
    assert read_line(text) == "  7%\n"
    assert read_line(line) == '{ev} b {"progress":7,"files":["a","b"]}\n'
    assert read_line(line) == '{ev} none {"progress":8}\n'
    assert (text.wait(10), line.wait(10)) == (0, 0)
    assert rest(line) == ""


@pytest.mark.timeout(40)
def test_json_stays_the_default_and_an_alias(cli) -> None:
    cli.serve("ev")
    plain = cli.listen("ev", "--count", "1")
    alias = cli.listen("ev", "--json", "--count", "1")
    explicit = cli.listen("ev", "--format", "json", "--count", "1")
    send(cli, "ev", "-d", '{"n": 1}')
    for proc in (plain, alias, explicit):
        assert read_json(proc)["data"] == {"n": 1}
        assert proc.wait(10) == 0


def _no_line(proc, seconds: float) -> None:
    """Nothing more on stdout for ``seconds``."""
    with pytest.raises(AssertionError, match="no line"):
        read_line(proc, timeout=seconds)


@pytest.mark.timeout(40)
def test_idle_waybar(cli) -> None:
    cli.serve("ev")
    bar = cli.listen("ev", "--format", "waybar", "--idle", "0.3")
    _no_line(bar, 0.8)  # no idle output before a first message
    send(cli, "ev", "-d", '{"text": "busy", "progress": 50}')
    assert read_json(bar)["text"] == "busy"
    started = time.monotonic()
    assert read_json(bar) == {"text": ""}
    assert time.monotonic() - started >= 0.2
    _no_line(bar, 1.0)  # once only
    send(cli, "ev", "-d", '{"text": "again"}')
    assert read_json(bar)["text"] == "again"
    assert read_json(bar) == {"text": ""}  # and again after a new message


@pytest.mark.timeout(40)
@pytest.mark.parametrize(("fmt", "extra", "idle_line"), [
    ("polybar", (), "\n"),
    ("text", ("--idle-text", "{event_name} idle, last {data.progress|?}"), "ev idle, last 9\n"),
    ("i3bar", (), '{"full_text": ""}\n'),
])
def test_idle_lines(cli, fmt: str, extra: tuple[str, ...], idle_line: str) -> None:
    cli.serve("ev")
    bar = cli.listen("ev", "--format", fmt, "--idle", "0.3", *extra)
    send(cli, "ev", "-d", '{"progress": 9}')
    assert read_line(bar) != idle_line
    assert read_line(bar) == idle_line
    _no_line(bar, 0.8)


@pytest.mark.timeout(40)
@pytest.mark.parametrize(("args", "needle"), [
    (["--text", "{data"], "Invalid value for '--text': '{data': column 1: '{' is not closed"),
    (["--template", "ab}"], "Invalid value for '--template': 'ab}': column 3: single '}'"),
    (["--format", "waybar", "--tooltip", "{x:zz}"], "'--tooltip': '{x:zz}': column 4: invalid"),
    (["--format", "waybar", "--json"], "--json is --format json"),
    (["--format", "text", "--tooltip", "x"], "--tooltip is a field of --format waybar only"),
    (["--text", "x"], "--text needs --format"),
    (["--format", "json", "--idle", "1"], "--idle needs --format"),
    (["--format", "text", "--idle-text", "x"], "--idle-text is the output of --idle"),
    (["--format", "text", "--idle", "0"], "--idle"),
    (["--format", "nope"], "--format"),
])
def test_usage_errors(cli, args: list[str], needle: str) -> None:
    done = cli.run("listen", "ev", "--timeout", "0", *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert needle in usage_error(done.stderr)


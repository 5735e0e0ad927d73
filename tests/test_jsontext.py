"""jsontext: the JSON of the one-shot commands, built on json's C accelerator without
importing json, gives exactly the text and the values json gives; and the one-shot commands
(send, get, listen --count 1) import neither json nor re nor socket."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockcli import jsontext
from sockcli.strictjson import NotFinite, decoder, encoder

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.booleans(), st.booleans())
def test_dumps_is_json_dumps(value: Any, ensure_ascii: bool, sort_keys: bool) -> None:
    assert jsontext.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort_keys) == \
        json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort_keys)
    compact = (",", ":")
    assert jsontext.dumps(value, separators=compact, ensure_ascii=False) == \
        json.dumps(value, separators=compact, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_loads_reads_what_json_reads(value: Any) -> None:
    text = json.dumps(value)
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.loads(f" \n\t{text}\r\n ") == value
    assert jsontext.loads(text.encode("utf-16")) == value


def test_the_strict_encoder_refuses_what_json_refuses() -> None:
    text = encoder()
    assert text({"a": "é", "b": [1, 2.5, None]}) == '{"a": "é", "b": [1, 2.5, null]}'
    assert text("é\n") == json.dumps("é\n", ensure_ascii=False)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        text({"x": math.inf})
    with pytest.raises(TypeError, match="Object of type bytes is not JSON serializable"):
        text({"x": b"raw"})
    assert jsontext.dumps(b"raw", default=str) == json.dumps(b"raw", default=str)


def test_a_cycle_is_refused_as_json_refuses_it() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        jsontext.dumps(loop)


@pytest.mark.parametrize("text", ["", "  ", "{", "{} x", '{"a": 1}\n{"b": 2}', "[1,]",
                                  '{"a" 1}', "nul", '"\\x"', '{"a": 1} \n '])
def test_errors_are_json_errors_at_the_same_place(text: str) -> None:
    try:
        want: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        want = (exc.msg, exc.lineno, exc.colno, exc.pos)
    try:
        got: Any = jsontext.loads(text)
    except json.JSONDecodeError as exc:
        got = (exc.msg, exc.lineno, exc.colno, exc.pos)
    assert got == want


def test_the_strict_decoder_refuses_nan_infinity_and_overflow() -> None:
    strict = decoder()
    assert strict.decode('{"p": 1.5e3}') == {"p": 1500.0}
    for bad in ('{"p": NaN}', '{"p": -Infinity}', '{"p": 1e400}'):
        with pytest.raises(NotFinite):
            strict.decode(bad)
    assert math.isnan(jsontext.loads("NaN"))  # the plain reader is json.loads


def test_detect_encoding_is_jsons() -> None:
    for text in ('{"a": "é"}', "[]", '"x"', "1", "{}"):
        for codec in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32",
                      "utf-32-le", "utf-32-be"):
            raw = text.encode(codec)
            assert jsontext.detect_encoding(raw) == json.detect_encoding(raw), (text, codec)


_IMPORTS = ("json", "re", "socket", "selectors", "typing", "threading")


def _imported(cli: Any, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; from sockcli.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, env=cli.env, timeout=30)
    assert done.returncode == 0, done.stderr
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:")}
    return sorted(m for m in _IMPORTS if m in names)


@pytest.mark.timeout(60)
def test_one_shot_commands_import_neither_json_nor_re_nor_socket(cli) -> None:
    cli.serve("ev")
    assert cli.run("send", "ev", "-d", '{"n": 1}').returncode == 0  # fills the settings cache
    assert _imported(cli, "send", "ev", "-d", '{"n": 2}') == []
    assert _imported(cli, "send", "ev", "--retain-only", "-d", '{"n": 3}') == []
    assert _imported(cli, "get", "ev") == []
    assert _imported(cli, "get", "ev", "--format", "waybar", "--text", "{data.n}") == []
    assert _imported(cli, "listen", "ev", "--last", "--count", "1", "--json") == []


def test_a_syntax_error_before_json_is_imported_is_a_json_error() -> None:
    # In a process that never imported json, the C scanner cannot raise its error alone.
    probe = ("from sockcli.strictjson import decoder\n"
             "try:\n    decoder().decode('{\"n\": 2')\n"
             "except ValueError as exc:\n    print(type(exc).__name__, exc.colno)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout == "JSONDecodeError 8\n", done.stderr

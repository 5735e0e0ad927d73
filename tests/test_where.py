"""``--where``: the expression language (sockcli/where.py) and ``sockcli listen --where``."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest

from sockcli.exceptions import SocketError, ValidationError
from sockcli.where import ROOTS, Where, WhereSyntaxError, compile_where
from tests.clitools import read_line, rest, usage_error

RECORD: dict[str, Any] = {
    "event_name": "wallpaper_change",
    "timestamp_ms": 1700000000000,
    "timestamp_iso": "2023-11-14T22:13:20.000+00:00",
    "message_type": "data",
    "data": {"progress": 60, "step": "palette", "ratio": 0.5, "done": False, "none": None,
             "files": ["a.png", "b.jpg"], "nested": {"k": "v"}, "nan": float("nan"),
             "big": 10**30, "one": 1, "text": "Ünïcode 5"},
}


def holds(expr: str, record: dict[str, Any] | None = None) -> bool:
    return compile_where(expr)(RECORD if record is None else record)


# --- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    ("data.progress == 60", True), ("data.progress == 60.0", True), ("data.progress == 61", False),
    ("data.progress != 61", True), ("data.progress != 60", False),
    ("data.progress < 61", True), ("data.progress < 60", False),
    ("data.progress <= 60", True), ("data.progress <= 59.5", False),
    ("data.progress > 59", True), ("data.progress > 60", False),
    ("data.progress >= 60", True), ("data.progress >= 60.5", False),
    ("data.ratio == 5e-1", True), ("data.ratio > -1", True), ("data.big > 1e29", True),
    ("data.step == \"palette\"", True), ("data.step != \"palette\"", False),
    ("data.step < \"pb\"", True), ("data.step > \"pb\"", False), ("data.step >= \"palette\"", True),
    ("data.text == \"\\u00dcn\\u00efcode 5\"", True), ("data.text == \"Ünïcode 5\"", True),
    ("data.done == false", True), ("data.done == true", False), ("data.done != true", True),
    ("data.none == null", True), ("data.none != null", False),
    ("data.files.0 == \"a.png\"", True), ("data.files.1 ~ \"\\\\.jpg$\"", True),
    ("data.nested.k == \"v\"", True),
    ("event_name == \"wallpaper_change\"", True), ("message_type == \"data\"", True),
    ("timestamp_ms >= 1700000000000", True), ("timestamp_iso ~ \"^2023-11-14T\"", True),
])
def test_each_operator(expr: str, expected: bool) -> None:
    assert holds(expr) is expected


def test_regex_is_a_search_on_strings_only() -> None:
    assert holds('data.step ~ "let"')  # anywhere in the string: re.search
    assert not holds('data.step ~ "^let"')
    assert holds('data.step ~ "(?i)PALETTE"')
    for path in ("data.progress", "data.done", "data.none", "data.files", "data.nested",
                 "data.missing"):
        assert not holds(f'{path} ~ ""'), path  # non-strings never match, not even ""


def test_compiled_once() -> None:
    where = compile_where('data.step ~ "^p" and data.progress > 10')
    assert isinstance(where, Where) and where.source == 'data.step ~ "^p" and data.progress > 10'
    assert [where({**RECORD, "data": {"step": s, "progress": p}})
            for s, p in [("p", 11), ("p", 10), ("q", 11)]] == [True, False, False]


# --- precedence and parentheses ---------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    # not > and > or
    ("data.one == 1 or data.one == 2 and data.one == 3", True),      # 1 or (2 and 3)
    ("(data.one == 1 or data.one == 2) and data.one == 3", False),
    ("data.one == 2 and data.one == 3 or data.one == 1", True),      # (2 and 3) or 1
    ("data.one == 2 and (data.one == 3 or data.one == 1)", False),
    ("not data.one == 2 and data.one == 1", True),                   # (not 2) and 1
    ("not (data.one == 1 and data.one == 2)", True),
    ("not data.one == 1 or data.one == 1", True),                    # (not 1) or 1
    ("not (data.one == 1 or data.one == 2)", False),
    ("not not data.one == 1", True),
    ("((data.one == 1))", True),
    ("exists data.one and not exists data.two", True),
    ("(data.one==1)and(data.step==\"palette\")", True),               # no spaces needed
    ("data.one == 1\n  and\tdata.progress >= 50", True),
])
def test_precedence_and_parentheses(expr: str, expected: bool) -> None:
    assert holds(expr) is expected


def test_and_or_short_circuit_left_to_right() -> None:
    # The right side would match a non-string with '~' - never an error, just false: the
    # point is only that evaluation never raises, whichever side is looked at.
    assert holds('data.one == 1 or data.files ~ "x"')
    assert not holds('data.one == 2 and data.files ~ "x"')


# --- missing paths and kinds ------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "expected"), [
    # A missing path compares as null.
    ("data.missing == null", True), ("data.missing != null", False),
    ("data.missing != 5", True), ("data.missing == 5", False), ("data.missing != \"x\"", True),
    ("data.missing < 5", False), ("data.missing >= 5", False), ("data.missing > \"\"", False),
    ("exists data.missing", False), ("exists data.none", True), ("exists data", True),
    ("data.files.2 == null", True), ("exists data.files.2", False), ("exists data.files.1", True),
    ("data.files.x == null", True), ("data.step.0 == null", True),
    ("data.progress.a == null", True),
    ("data.nested.k.deeper == null", True),
    # NaN and the infinities count as null, as --json prints them.
    ("data.nan == null", True), ("data.nan < 1", False), ("data.nan != 1", True),
    # Kinds: never equal across kinds, never ordered across kinds; bools are not numbers.
    ("data.one == true", False), ("data.one != true", True), ("data.done == 0", False),
    ("data.done < 1", False), ("data.one == \"1\"", False), ("data.step < 5", False),
    ("data.step > 5", False), ("data.progress < \"a\"", False), ("data.files == null", False),
    ("data.files != \"a.png\"", True), ("data.nested == 1", False), ("data.none < 1", False),
    ("data.none == false", False),
    # retained: absent from a live message's --json, false for --where.
    ("retained == false", True), ("retained == true", False), ("exists retained", True),
])
def test_missing_paths_and_kinds(expr: str, expected: bool) -> None:
    assert holds(expr) is expected


def test_retained_message() -> None:
    assert holds("retained == true", {**RECORD, "retained": True})
    assert not holds("retained == false", {**RECORD, "retained": True})


def test_data_that_is_not_an_object_never_breaks() -> None:
    for data in (None, 5, "text", [1, 2], True):
        record = {**RECORD, "data": data}
        assert holds("data.x == null", record)
        assert not holds("data.x == 1", record)
        assert not holds('data ~ "t"', record) or data == "text"


# --- errors, each with its column -------------------------------------------------------------


@pytest.mark.parametrize(("expr", "column", "reason"), [
    ("", 1, "empty expression: write a condition such as 'data.progress >= 50'"),
    ("   ", 1, "empty expression: write a condition such as 'data.progress >= 50'"),
    ("data.progress >=", 17, "expected a value after '>=' (a number, a \"string\", true, "
                             "false or null), found the end"),
    ("data.progress >= and", 18, "expected a value after '>=' (a number, a \"string\", true, "
                                 "false or null), found 'and'"),
    ("data.x == data.y", 11, "expected a value after '==', found the path 'data.y': a path "
                             "compares with a value, not with another path"),
    ("50 <= data.progress", 1, "expected a path, found the value '50': a value goes on the "
                               "right (data.progress >= 50)"),
    ('"a" == data.x', 1, "expected a path, found the value '\"a\"': a value goes on the right "
                         "(data.progress >= 50)"),
    ("data.x == 'a'", 11, "strings are in double quotes, as in JSON: \"text\""),
    ("data.x = 1", 8, "'=' is not an operator: write '=='"),
    ("data.x ! 1", 8, "'!' is not an operator: write 'not', or '!='"),
    ("data.x == 1 && data.y == 2", 13, "write 'and', not '&' or '&&'"),
    ("data.x == 1 || data.y == 2", 13, "write 'or', not '|' or '||'"),
    ("data.x == +1", 11, "a number has no '+' sign: write 5, not +5"),
    ("data.x == .5", 11, "a number starts with a digit: write 0.5, not .5"),
    ("data.x == 05", 11, "invalid number '05' (JSON numbers: 5, -2.5, 1e3)"),
    ("data.x == 1.", 11, "invalid number '1.' (JSON numbers: 5, -2.5, 1e3)"),
    ("data.x == 5px", 11, "invalid number '5px' (JSON numbers: 5, -2.5, 1e3)"),
    ("data.x == -", 11, "invalid number '-' (JSON numbers: 5, -2.5, 1e3)"),
    ("data.x == 1e999", 11, "number 1e999 is out of range"),
    ("data.x == True", 11, "JSON's literals are lowercase: write 'true'"),
    ("data.x == 1 AND data.y == 2", 13, "expected 'and' or 'or' before 'AND'"),
    ("data.x AND", 8, "keywords are lowercase: write 'and'"),
    ("dat.x == 1", 1, f"unknown field 'dat': a path starts with {', '.join(ROOTS[:-1])} or "
                      "retained"),
    ("data..x == 1", 6, "empty segment in the path 'data..x'"),
    ("data.x. == 1", 8, "empty segment in the path 'data.x.'"),
    ("data.x", 7, "expected an operator (== != < <= > >= ~) after 'data.x', found the end "
                  "(or write 'exists data.x')"),
    ("data.x 5", 8, "expected an operator (== != < <= > >= ~) after 'data.x', found '5' (or "
                    "write 'exists data.x')"),
    ("data.x == 1 data.y == 2", 13, "expected 'and' or 'or' before 'data.y'"),
    ("data.x == 1 and", 16, "expected a condition after 'and', found the end"),
    ("data.x == 1 or)", 15, "expected a condition after 'or', found ')'"),
    ("data.x == 1 and or data.y == 1", 17, "expected a condition after 'and', found 'or'"),
    ("not", 4, "expected a condition after 'not', found the end"),
    ("exists", 7, "expected a path after 'exists', found the end"),
    ("exists 5", 8, "expected a path after 'exists', found the value '5': a value goes on the "
                    "right (data.progress >= 50)"),
    ("exists and", 8, "expected a path after 'exists', found 'and'"),
    ("(data.x == 1", 13, "expected ')' to close the '(' at column 1, found the end"),
    ("((data.x == 1) or (data.y == 2)", 32, "expected ')' to close the '(' at column 1, found "
                                            "the end"),
    ("data.x == 1)", 12, "')' without a '(' to close"),
    ("()", 2, "expected a condition, found ')' (a path such as data.progress, 'exists', 'not' "
              "or '(')"),
    ("== 1", 1, "expected a condition, found '==' (a path such as data.progress, 'exists', "
                "'not' or '(')"),
    ("data.x ~ 5", 10, "'~' takes a regular expression in a string, not '5'"),
    ("data.x ~ null", 10, "'~' takes a regular expression in a string, not 'null'"),
    ('data.x ~ "("', 10, "invalid regular expression: missing ), unterminated subpattern"),
    ('data.x ~ "a{99999999999}"', 10, "invalid regular expression: the repetition number is "
                                      "too large"),
    ("data.x < null", 10, "'<' orders numbers or strings, not null"),
    ("data.x >= true", 11, "'>=' orders numbers or strings, not true"),
    ('data.x == "abc', 11, "string not closed: a '\"' is missing"),
    ('data.x == "a\\"', 11, "string not closed: a '\"' is missing"),
    ('data.x == "a\\qb"', 13, "invalid \\escape in a string (JSON escapes: \\\" \\\\ \\n "
                              "\\u00e9)"),
    ('data.x == "a\\u12"', 13, "invalid \\uXXXX escape in a string (JSON escapes: \\\" \\\\ "
                               "\\n \\u00e9)"),
    ('data.x == "a\tb"', 13, "a control character (a tab, a line break) in a string: write "
                             "it \\t, \\n"),
    ("data.x == 1 @", 13, "unexpected character '@'"),
    ("data.x == [1]", 11, "unexpected character '['"),
    ("é.x == 1", 1, f"unknown field 'é': a path starts with {', '.join(ROOTS[:-1])} or "
                    "retained"),
    ("(" * 70 + "data.x == 1" + ")" * 70, 66, "nested more than 64 deep"),
    ("not " * 70 + "data.x == 1", 261, "nested more than 64 deep"),
])
def test_every_error_with_its_column(expr: str, column: int, reason: str) -> None:
    with pytest.raises(WhereSyntaxError) as caught:
        compile_where(expr)
    assert (caught.value.column, caught.value.reason) == (column, reason)
    assert str(caught.value) == f"column {column}: {reason}"
    assert isinstance(caught.value, ValidationError) and isinstance(caught.value, SocketError)


def test_long_chains_and_literals() -> None:
    assert holds(" and ".join(["data.one == 1"] * 3000))  # and/or chains are not recursion
    assert holds(" or ".join(["data.one == 2"] * 3000 + ["data.one == 1"]))
    nested = "(" * 64 + "data.one == 1" + ")" * 64
    assert holds(nested)
    with pytest.raises(WhereSyntaxError, match="is too long"):
        compile_where("data.one == " + "1" * 5000)


def test_random_strings_raise_nothing_but_syntax_errors() -> None:
    rng = random.Random(10)
    pieces = ['(', ')', '"', '\\', '~', '=', '!', '<', '>', '.', '-', '+', ' ', '0', '7', 'e',
              'E', 'data', 'data.x', 'data.files.0', 'and', 'or', 'not', 'exists', 'true',
              'null', '"a"', "'", '\t', '\n', 'é', '\x00', '[', '(?', '*', '\\u', 'AND', '1e9',
              'event_name', 'retained', '==', '>=', '"(?i)x"', '{', '#']
    records = [RECORD, {**RECORD, "data": None}, {**RECORD, "data": {"x": "a", "files": [1]}},
               {**RECORD, "data": {"x": [None, {"y": 1}]}}, {}]
    compiled = 0
    for _ in range(30000):
        source = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        try:
            where = compile_where(source)
        except WhereSyntaxError as exc:
            assert 1 <= exc.column <= len(source) + 1, (source, exc)
            continue
        compiled += 1
        for record in records:
            assert where(record) in (True, False), source
    assert compiled > 5
    for _ in range(5000):  # valid expressions of the grammar, then each one mutated
        source = _expression(rng, 0)
        where = compile_where(source)
        for record in records:
            assert where(record) in (True, False), source
        for _ in range(3):
            at = rng.randint(0, len(source))
            mutated = source[:at] + rng.choice([*pieces, ""]) + source[at + rng.randint(0, 3):]
            try:
                where = compile_where(mutated)
            except WhereSyntaxError as exc:
                assert 1 <= exc.column <= len(mutated) + 1, (mutated, exc)
                continue
            for record in records:
                assert where(record) in (True, False), mutated
    for _ in range(3000):  # arbitrary characters
        source = "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 20)))
        with contextlib.suppress(WhereSyntaxError):
            compile_where(source)(RECORD)


def _expression(rng: random.Random, depth: int) -> str:
    """A random expression of the grammar."""
    paths = ["data.x", "data.files.0", "data.x.y", "retained", "event_name", "data"]
    values = ["1", "-2.5", "1e3", '"a"', '"\\u00e9\\n"', "null", "true", "false"]
    roll = rng.random() if depth < 4 else rng.random() * 0.5
    if roll < 0.3:
        op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
        value = rng.choice(values[:5] if op not in ("==", "!=") else values)
        return f"{rng.choice(paths)} {op} {value}"
    if roll < 0.4:
        regex = rng.choice(['"a"', '"^x$"', '"(?i)A|b"', '"\\\\d+"'])
        return f"{rng.choice(paths)} ~ {regex}"
    if roll < 0.5:
        return f"exists {rng.choice(paths)}"
    if roll < 0.65:
        return f"not {_expression(rng, depth + 1)}"
    if roll < 0.8:
        return f"({_expression(rng, depth + 1)})"
    joiner = rng.choice([" and ", " or ", "and", " or\n"])
    return joiner.join(f"({_expression(rng, depth + 1)})" if joiner == "and" else
                       _expression(rng, depth + 1) for _ in range(rng.randint(2, 3)))


# --- through the CLI --------------------------------------------------------------------------


def send(cli: Any, *args: str, stdin: str | None = None) -> None:
    done = cli.run("send", *args, input=stdin)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


def lines(*data: dict[str, Any]) -> str:
    return "".join(json.dumps(d) + "\n" for d in data)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("expr", "wanted"), [
    ("data.n == 2", [2]),
    ("data.n != 2", [1, 3, 4, 5, 6]),
    ("data.n < 3", [1, 2]),
    ("data.n <= 3", [1, 2, 3]),
    ("data.n > 4", [5, 6]),
    ("data.n >= 4", [4, 5, 6]),
    ('data.s ~ "^[ab]"', [1, 2, 4]),
    ("exists data.flag", [3, 6]),
    ("not exists data.flag and data.n > 1", [2, 4, 5]),
    ("data.n == 1 or data.n == 5 and data.flag == true", [1]),
    ("(data.n == 1 or data.n == 6) and data.flag == true", [6]),
    ('data.s == "b" or message_type == "error"', [2, 5]),
    ("data.n == \"2\"", []),
])
def test_each_operator_through_the_cli(cli: Any, expr: str, wanted: list[int]) -> None:
    cli.serve("ev")
    # The end marker, sent last, passes every filter: once it is out, every message before it
    # has been kept or dropped (the hub keeps the order).
    listener = cli.listen("ev", "--where", f"({expr}) or data.end == true",
                          "--count", str(len(wanted) + 1))
    send(cli, "ev", "--lines", stdin=lines(
        {"n": 1, "s": "a"}, {"n": 2, "s": "b"}, {"n": 3, "s": "c", "flag": True},
        {"n": 4, "s": "ab"}))
    send(cli, "ev", "-t", "error", "-d", '{"n": 5, "s": "cb"}')
    send(cli, "ev", "-d", '{"n": 6, "s": "x", "flag": true}')
    send(cli, "ev", "-t", "control", "-d", '{"end": true}')
    got = [json.loads(read_line(listener, timeout=15))["data"] for _ in range(len(wanted) + 1)]
    assert listener.wait(10) == 0
    assert [d.get("n") for d in got[:-1]] == wanted
    assert got[-1] == {"end": True}
    assert rest(listener) == ""


@pytest.mark.timeout(30)
def test_count_counts_only_matching_messages(cli: Any) -> None:
    cli.serve("ev")
    send(cli, "ev", "--lines", stdin=lines(*({"n": n} for n in range(1, 7))))
    done = cli.run("listen", "ev", "--count", "2", "--where", "data.n >= 2",
                   "--where", "data.n != 3", "--timeout", "10")  # every --where must hold
    assert (done.returncode, done.stderr) == (0, "")
    assert [json.loads(line)["data"] for line in done.stdout.splitlines()] == \
        [{"n": 2}, {"n": 4}]
    # (The hub's queue went to that first listener: the next one is sent new messages.)
    send(cli, "ev", "--lines", stdin=lines(*({"n": n} for n in range(4, 7))))
    done = cli.run("listen", "ev", "--count", "5", "--where", "data.n > 4", "--timeout", "0.5")
    assert done.returncode == 124
    assert [json.loads(line)["data"] for line in done.stdout.splitlines()] == \
        [{"n": 5}, {"n": 6}]
    assert done.stderr == "sockcli: error: 2 of 5 messages arrived within 0.5 s\n"


@pytest.mark.timeout(30)
def test_retained_messages_are_filtered_too(cli: Any) -> None:
    cli.serve("ev")
    first = cli.listen("ev", "--count", "3")  # takes them live: the hub retains them
    send(cli, "ev", "-d", '{"n": 1}')
    send(cli, "ev", "-t", "error", "-d", '{"n": 2}')
    send(cli, "ev", "-t", "control", "-d", '{"n": 3}')
    assert first.wait(10) == 0
    listener = cli.listen("ev", "--last", "--count", "2", "--where", "data.n >= 2",
                          "--where", 'retained == true or data.n == 9')
    first = json.loads(read_line(listener))
    assert (first["data"], first["message_type"], first["retained"]) == ({"n": 2}, "error", True)
    second = json.loads(read_line(listener))
    assert (second["data"], second["message_type"], second["retained"]) == \
        ({"n": 3}, "control", True)
    assert listener.wait(10) == 0
    assert rest(listener) == ""

    # A live message is not retained: 'retained == false' picks it.
    listener = cli.listen("ev", "--last", "--count", "1", "--where", "retained == false")
    send(cli, "ev", "-d", '{"n": 4}')
    record = json.loads(read_line(listener))
    assert record["data"] == {"n": 4} and "retained" not in record
    assert listener.wait(10) == 0


@pytest.mark.timeout(30)
def test_idle_follows_matching_messages(cli: Any) -> None:
    cli.serve("ev")
    listener = cli.listen("ev", "--format", "text", "--template", "n={data.n}",
                          "--idle", "0.3", "--idle-text", "idle after {data.n}",
                          "--where", "data.even == true")
    send(cli, "ev", "--lines", stdin=lines({"n": 2, "even": True}, {"n": 3, "even": False}))
    assert read_line(listener) == "n=2\n"
    # The idle text is of the last *matching* message: 2, not the 3 that came after it.
    assert read_line(listener) == "idle after 2\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("expr", "column", "reason"), [
    ("data.progress >=", 17, "expected a value after '>=' (a number, a \"string\", true, "
                             "false or null), found the end"),
    ("data.step == 'palette'", 14, "strings are in double quotes, as in JSON: \"text\""),
    ("progress > 5", 1, "unknown field 'progress': a path starts with event_name, "
                        "timestamp_ms, timestamp_iso, message_type, data or retained"),
])
def test_bad_where_is_exit_2_naming_the_column(cli: Any, expr: str, column: int,
                                              reason: str) -> None:
    # No hub runs: a bad expression is refused before any connection or wait.
    done = cli.run("listen", "ev", "--where", "data.ok == true", "--where", expr, timeout=10)
    assert (done.returncode, done.stdout) == (2, "")
    assert usage_error(done.stderr) == \
        f"Error: Invalid value for '--where': {expr!r}: column {column}: {reason}"

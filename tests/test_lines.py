"""The line grammar (sockcli/lines.py): what each line gives, what is refused and why, and a
reader that gives the same lines however the bytes are cut."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockcli.kinds import MessageType, register_message_type
from sockcli.lines import PREVIEW_CHARS, Line, LineError, LineReader, Rejected, parse_line

pytestmark = pytest.mark.timeout(60)

DATA, ERROR, CONTROL = MessageType.DATA, MessageType.ERROR, MessageType.CONTROL


def kinds(line: bytes | str) -> tuple[str, dict[str, object]] | None:
    parsed = parse_line(line)
    return None if parsed is None else (parsed.message_type.value, parsed.data)


def reason(line: bytes | str, **kwargs: object) -> str:
    with pytest.raises(LineError) as info:
        parse_line(line, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == str(info.value)
    return info.value.reason


@pytest.mark.parametrize(("line", "expected"), [
    (b'{"progress": 40}', ("data", {"progress": 40})),
    ('{"progress": 40}', ("data", {"progress": 40})),
    (b"{}", ("data", {})),
    (b'  \t{"a": [1, {"b": null}]}\t ', ("data", {"a": [1, {"b": None}]})),
    (b'{"a": 1}\r', ("data", {"a": 1})),
    (b'{"a":\r1}\r\r', ("data", {"a": 1})),  # \r is JSON's whitespace too
    (b'data {"a": 1}', ("data", {"a": 1})),
    (b'error {"reason": "disk full"}', ("error", {"reason": "disk full"})),
    (b'control\t{"op": "reload"}', ("control", {"op": "reload"})),
    (b'error \t \t{"n": 1}\r', ("error", {"n": 1})),
    (b'ERROR {"n": 1}', ("error", {"n": 1})),  # type names are case-insensitive everywhere
    (b'Control {}', ("control", {})),
    ('{"text": "caf\u00e9 \u2713"}'.encode(), ("data", {"text": "caf\u00e9 \u2713"})),
    (b'{"e": "\\ud83d\\ude00"}', ("data", {"e": "\U0001f600"})),  # a whole pair is fine
    (b'{"f": 1.5e300, "i": -9007199254740993}', ("data", {"f": 1.5e300,
                                                           "i": -9007199254740993})),
    (b'{"a": 1, "a": 2}', ("data", {"a": 2})),  # as JSON parsers do: the last one wins
])
def test_a_line_gives_its_type_and_data(line: bytes | str, expected: tuple[str, dict]) -> None:
    assert kinds(line) == expected


@pytest.mark.parametrize("line", [b"", b" ", b"\t \t", b"\r", b"  \r", ""])
def test_blank_lines_give_nothing(line: bytes | str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(("line", "expected"), [
    (b"hello", 'not JSON (column 1): Expecting value; expected a JSON object such as '
               '{"progress": 40}, or TYPE {...}'),
    (b'{"a": 1', "not JSON (column 8): Expecting ',' delimiter"),
    (b'{"a": 1} {"b": 2}', "not JSON (column 10): Extra data"),
    (b'data {"a": 1', "not JSON (column 13): Expecting ',' delimiter"),  # column in the line
    (b"[1, 2]", "expected a JSON object, got an array"),
    (b'"text"', "expected a JSON object, got a string"),
    (b"42", "expected a JSON object, got a number"),
    (b"null", "expected a JSON object, got null"),
    (b"true", "expected a JSON object, got a boolean"),
    (b"error [1]", "expected a JSON object, got an array"),
    (b"warning {}", "unknown message type 'warning': choose one of data, error, control"),
    (b"some words", "not JSON (column 1): Expecting value"),  # a TYPE only before an object
    (b"1 {}", "unknown message type '1'"),
    (b"error", "'error' must be followed by a space and a JSON object"),
    (b"error  ", "'error' must be followed by a space and a JSON object"),
    (b"error{}", "'error' must be followed by a space and a JSON object"),
    (b'{"a": NaN}', "NaN is not valid JSON: numbers must be finite"),
    (b'{"a": -Infinity}', "-Infinity is not valid JSON: numbers must be finite"),
    (b'error {"a": Infinity}', "Infinity is not valid JSON: numbers must be finite"),
    (b'{"a": 1e400}', "1e400 is out of range: JSON numbers here must fit a 64-bit float"),
    (b'{"a": "\\ud800"}', "a string holds an unpaired surrogate (\\ud800)"),
    (b'{"\\uDC00": 1}', "a string holds an unpaired surrogate (\\udc00)"),
    (b'{"a": "\xff"}', "not UTF-8 (byte 0xff at offset 7)"),
    (b"\xc3", "not UTF-8 (byte 0xc3 at offset 0)"),  # half a character
    (b'\xef\xbb\xbf{"a": 1}', "starts with a byte order mark (U+FEFF)"),
    (b'{"a": "x\ty"}', "not JSON (column 9): Invalid control character"),
    (b"\x00", "not JSON (column 1): Expecting value"),
])
def test_what_is_not_a_message_is_refused_with_a_reason(line: bytes, expected: str) -> None:
    assert reason(line).startswith(expected)


def test_data_nested_deeper_than_a_message_may_be_is_refused() -> None:
    ok = b'{"a":' * 32 + b"1" + b"}" * 32
    assert parse_line(ok) is not None
    assert reason(b'{"a":' * 33 + b"1" + b"}" * 33) == "data nests deeper than 32 levels"
    # Deep enough to exhaust json's recursion, too: still a reason, never a RecursionError.
    assert reason(b'{"a":' + b"[" * 100_000) == "data nests deeper than 32 levels"


def test_the_length_limit_counts_bytes_without_the_line_end() -> None:
    line = b'{"a":"' + b"x" * 10 + b'"}'  # 18 bytes
    assert parse_line(line, max_bytes=18) is not None
    assert parse_line(line + b"\r", max_bytes=18) is not None
    assert reason(line, max_bytes=17) == "longer than 17 bytes"
    text = '{"a":"\u00e9\u00e9"}'  # 10 characters, 12 bytes
    assert parse_line(text, max_bytes=12) is not None
    assert reason(text, max_bytes=11) == "longer than 11 bytes"


def test_registered_types_are_types_of_lines_too() -> None:
    assert reason(b"notice {}").startswith("unknown message type 'notice'")
    notice = register_message_type("notice")
    assert kinds(b'notice {"n": 1}') == ("notice", {"n": 1})
    assert parse_line(b"Notice {}").message_type is notice  # type: ignore[union-attr]
    assert reason(b"other {}") == \
        "unknown message type 'other': choose one of data, error, control, notice"


def test_the_caller_may_choose_the_types() -> None:
    only_data = {"data": DATA}
    assert parse_line(b'data {"a": 1}', types=only_data) == Line(0, DATA, {"a": 1})
    assert reason(b"error {}", types=only_data) == \
        "unknown message type 'error': choose one of data"


def test_a_line_keeps_its_number() -> None:
    assert parse_line(b'error {"a": 1}', number=7) == Line(7, ERROR, {"a": 1})
    assert repr(Line(7, ERROR, {"a": 1})) == "Line(7, 'error', {'a': 1})"


# -- the reader -------------------------------------------------------------------------------

STREAM = (b'\xef\xbb\xbf{"n": 1}\r\n'       # 1: a BOM at the start of the stream is skipped
          b"\n"                             # 2: blank
          b'error {"n": 2}\n'               # 3
          b"not json\n"                     # 4: refused
          b'{"n": "' + b"x" * 40 + b'"}\n'  # 5: too long for 32
          b"   \t\r\n"                      # 6: blank
          b'control\t{"n": 6}\r\n'          # 7
          b'{"n": 7}')                      # 8: no newline before the end

EXPECTED = [
    Line(1, DATA, {"n": 1}),
    Line(3, ERROR, {"n": 2}),
    Rejected(4, 'not JSON (column 1): Expecting value; expected a JSON object such as '
                '{"progress": 40}, or TYPE {...}', "not json"),
    Rejected(5, "longer than 32 bytes", '{"n": "' + "x" * 25),  # its first 32 bytes
    Line(7, CONTROL, {"n": 6}),
    Line(8, DATA, {"n": 7}),
]


def read_all(chunks: list[bytes], max_line_bytes: int = 32) -> list[Line | Rejected]:
    reader = LineReader(max_line_bytes=max_line_bytes)
    out: list[Line | Rejected] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    out.extend(reader.end())
    assert reader.lines == STREAM.count(b"\n") + 1
    return out


def test_the_reader_gives_every_line_in_order_whole() -> None:
    assert read_all([STREAM]) == EXPECTED


def test_the_reader_gives_the_same_lines_one_byte_at_a_time() -> None:
    assert read_all([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_the_reader_gives_the_same_lines_however_the_bytes_are_cut(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert read_all(chunks) == EXPECTED


def test_a_line_too_long_is_refused_at_once_and_not_kept() -> None:
    reader = LineReader(max_line_bytes=8)
    assert reader.feed(b'{"a": 1}') == []  # 8 bytes: may still end here
    assert reader.feed(b"\r") == []  # the \r of a \r\n is not counted
    assert reader.feed(b"\n") == [Line(1, DATA, {"a": 1})]
    refused = reader.feed(b'{"a": 12')
    assert refused == []
    refused = reader.feed(b"3")  # a 9th byte that is no \r: over the limit
    assert refused == [Rejected(2, "longer than 8 bytes", '{"a": 12')]
    for _ in range(1000):  # the rest of it is skipped, not kept
        assert reader.feed(b"x" * 1000) == []
    assert len(reader._pending) == 0
    assert reader.feed(b'"}\n{"b": 2}\n') == [Line(3, DATA, {"b": 2})]
    assert reader.feed(b'{"c": 3}\r') == []
    assert reader.feed(b"\r") == [Rejected(4, "longer than 8 bytes", '{"c": 3}')]
    assert reader.feed(b"\n") == []
    assert reader.end() == []
    assert reader.lines == 4


def test_a_rejected_line_shows_only_its_start() -> None:
    long = b'{"text": "' + b"y" * 200 + b"\xff"
    (rejected,) = LineReader(max_line_bytes=1000).feed(long + b"\n")
    assert isinstance(rejected, Rejected) and rejected.number == 1
    assert rejected.reason == "not UTF-8 (byte 0xff at offset 210)"
    assert len(rejected.text) == PREVIEW_CHARS and rejected.text.endswith("...")
    (bad,) = LineReader(max_line_bytes=100).feed(b"\xfe\xff\n")
    assert bad == Rejected(1, "not UTF-8 (byte 0xfe at offset 0)", "\\xfe\\xff")


def test_a_bom_is_skipped_only_at_the_start_of_the_stream() -> None:
    reader = LineReader(max_line_bytes=100)
    assert reader.feed(b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"a": 2}\n') == [
        Line(1, DATA, {"a": 1}),
        Rejected(2, "starts with a byte order mark (U+FEFF)", '\ufeff{"a": 2}'),
    ]


def test_the_end_of_a_stream_without_a_last_line() -> None:
    reader = LineReader(max_line_bytes=100)
    assert reader.feed(b"") == []
    assert reader.end() == []
    assert reader.lines == 0
    reader = LineReader(max_line_bytes=4)
    assert reader.feed(b"123456") == [Rejected(1, "longer than 4 bytes", "1234")]
    assert reader.end() == []
    assert reader.lines == 1
    with pytest.raises(ValueError, match="at least 1"):
        LineReader(max_line_bytes=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5),
                                st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                                | st.floats(allow_nan=False, allow_infinity=False),
                                max_size=4),
                max_size=8),
       st.sampled_from(["data", "error", "control", ""]))
def test_what_json_dumps_writes_reads_back(objects: list[dict[str, object]], kind: str) -> None:
    text = "".join(f"{kind} {json.dumps(o)}\n" if kind else json.dumps(o) + "\n"
                   for o in objects).encode()
    reader = LineReader(max_line_bytes=1 << 16)
    lines = reader.feed(text) + reader.end()
    assert lines == [Line(i + 1, MessageType(kind or "data"), o) for i, o in enumerate(objects)]

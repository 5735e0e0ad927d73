"""rules: the event name and timestamp_iso checks, written with str methods, take exactly
what their documented patterns (EVENT_NAME_RULE, INSTANT_RULE) take."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sockcli import rules

# The rules as fullmatch reads them: their "$" would also take a final newline.
NAME = re.compile(rules.EVENT_NAME_RULE.removeprefix("^").removesuffix("$"))
SHAPE = re.compile(rules.INSTANT_RULE.removeprefix("^").removesuffix("$"))

NAME_CHARS = st.sampled_from("aZ09_-.é٣ /\x00\n")
SHAPE_CHARS = st.sampled_from("0123456789-T:.+Z ٣\n")


@settings(max_examples=2000, deadline=None)
@given(st.text(NAME_CHARS, max_size=70) | st.text(max_size=8))
@example("a" * 64)
@example("a" * 65)
@example("")
@example("ev\n")
def test_is_event_name_takes_what_the_rule_takes(name: str) -> None:
    assert rules.is_event_name(name) == (NAME.fullmatch(name) is not None)


def _instants() -> st.SearchStrategy[str]:
    digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=10)
    fraction = st.none() | digits.map(lambda d: "." + d)
    offset = st.sampled_from(["Z", "+00:00", "-05:30", "+00:17:30", "+00:17:30.5",
                              "+00:17:30.1234567", "+0000", "+00:0", "+00:00:", "z", ""])
    return st.builds(lambda date, frac, off: date + (frac or "") + off,
                     st.sampled_from(["2023-11-14T22:13:20", "2023-11-14 22:13:20",
                                      "2023-1-14T22:13:20", "٢٠٢٣-11-14T22:13:20",
                                      "2023-11-14T22:13", "99999-11-14T22:13:20"]),
                     fraction, offset)


@settings(max_examples=3000, deadline=None)
@given(_instants() | st.text(SHAPE_CHARS, max_size=40))
@example("2023-11-14T22:13:20.000+00:00")
@example("2023-11-14T22:13:20.1234567890Z")
@example("2023-11-14T22:13:20.Z")
@example("2023-11-14T22:13:20+00:00\n")
def test_the_instant_shape_is_the_rule(text: str) -> None:
    assert rules._has_instant_shape(text) == (SHAPE.fullmatch(text) is not None)


def test_is_instant_checks_the_values_too() -> None:
    assert rules.is_instant("2023-11-14T22:13:20.000+00:00")
    assert rules.is_instant("2024-02-29T00:00:00Z")
    assert not rules.is_instant("2023-02-29T00:00:00Z")  # no such day
    assert not rules.is_instant("2023-11-14T24:00:00Z")
    assert not rules.is_instant("2023-11-14T22:13:20")  # no offset

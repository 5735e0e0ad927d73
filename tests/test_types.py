"""types.py, timestamps.py and exceptions.py: messages, timestamps and their default timezone,
names, enums and the error hierarchy."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

import sockcli
from sockcli import (
    ConnectionError,
    MaxConnectionsError,
    MessageError,
    MessageType,
    SocketError,
    SocketMessage,
    SocketType,
    TimeoutError,
    ValidationError,
)
from sockcli.config.loader import get_settings, load_settings, reset_settings_cache
from sockcli.kinds import message_type_names
from sockcli.timestamps import default_timezone, set_default_timezone
from sockcli.types import EVENT_NAME_RULE, format_timestamp, resolve_timezone, validate_event_name

TS = 1700000000000  # 2023-11-14T22:13:20Z
SUMMER_TS = 1688000000000  # 2023-06-29T00:53:20Z


def use_timezone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Configure ``name`` and load the settings, as every hub, client and command does."""
    monkeypatch.setenv("SOCKCLI_TIMEZONE", name)
    reset_settings_cache()
    get_settings()


@pytest.fixture
def local_zone() -> Iterator[None]:
    """Local time is Europe/Paris (summer time from March to October) for the test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


# -- SocketMessage --------------------------------------------------------------------------


def test_message_with_keywords() -> None:
    m = SocketMessage(event_name="x", message_type=MessageType.DATA, data={"k": [1, "v"]})
    assert m.event_name == "x"
    assert m.message_type is MessageType.DATA
    assert m.data == {"k": [1, "v"]}


def test_message_defaults() -> None:
    m = SocketMessage("x")
    assert m.message_type is MessageType.DATA
    assert m.data == {}
    assert SocketMessage("x").data is not m.data  # no shared default


def test_timestamp_defaults_to_now() -> None:
    before = time.time()
    m = SocketMessage("x")
    after = time.time()
    assert isinstance(m.timestamp_ms, int)
    assert int(before * 1000) - 1 <= m.timestamp_ms <= int(after * 1000) + 1
    parsed = datetime.fromisoformat(m.timestamp_iso)
    assert parsed.tzinfo is not None
    assert int(parsed.timestamp() * 1000) == m.timestamp_ms
    assert len(m.timestamp_iso.split(".")[1]) == len("123+00:00")  # milliseconds


def test_timestamp_iso_in_the_configured_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    use_timezone(monkeypatch, "Asia/Tokyo")
    assert SocketMessage("x", timestamp_ms=TS).timestamp_iso == "2023-11-15T07:13:20.000+09:00"
    use_timezone(monkeypatch, "UTC")
    assert SocketMessage("x", timestamp_ms=TS).timestamp_iso == "2023-11-14T22:13:20.000+00:00"
    use_timezone(monkeypatch, "America/New_York")
    assert SocketMessage("x", timestamp_ms=TS + 7).timestamp_iso == \
        "2023-11-14T17:13:20.007-05:00"
    m = SocketMessage("x")
    assert m.timestamp_iso.endswith(("-05:00", "-04:00"))


def test_timestamp_iso_defaults_to_local_time() -> None:
    m = SocketMessage("x", timestamp_ms=TS)
    assert m.timestamp_iso == datetime.fromtimestamp(TS / 1000).astimezone().isoformat(
        timespec="milliseconds")


def test_explicit_timestamp_iso_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    use_timezone(monkeypatch, "Asia/Tokyo")
    m = SocketMessage("x", timestamp_ms=TS, timestamp_iso="whatever the sender said")
    assert m.timestamp_iso == "whatever the sender said"


def test_unknown_configured_timezone_is_refused_when_loading(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKCLI_TIMEZONE", "Mars/Olympus_Mons")
    reset_settings_cache()
    with pytest.raises(ValidationError) as info:
        get_settings()
    text = str(info.value)
    assert "Mars/Olympus_Mons" in text
    assert "SOCKCLI_TIMEZONE" in text
    assert "IANA" in text
    assert default_timezone() == "local"  # the settings were refused: nothing changed
    assert SocketMessage("x", timestamp_ms=TS).timestamp_iso == format_timestamp(TS, "local")


def test_a_bare_message_uses_local_time_until_settings_are_loaded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKCLI_TIMEZONE", "Asia/Tokyo")
    reset_settings_cache()
    assert SocketMessage("x", timestamp_ms=TS).timestamp_iso == format_timestamp(TS, "local")
    get_settings()
    assert SocketMessage("x", timestamp_ms=TS).timestamp_iso == "2023-11-15T07:13:20.000+09:00"


def test_loading_and_overriding_settings_set_the_default_timezone() -> None:
    assert default_timezone() == "local"
    settings = load_settings(timezone="UTC")
    assert default_timezone() == "UTC"
    settings.with_overrides(timezone="Asia/Kolkata")
    assert default_timezone() == "Asia/Kolkata"
    assert format_timestamp(TS) == "2023-11-15T03:43:20.000+05:30"
    load_settings(timezone="UTC")  # the cached form sets it too
    assert default_timezone() == "UTC"
    reset_settings_cache()
    assert default_timezone() == "local"


def test_set_default_timezone() -> None:
    set_default_timezone("Europe/Paris")
    assert format_timestamp(TS) == "2023-11-14T23:13:20.000+01:00"
    fixed = timezone(timedelta(hours=2))
    set_default_timezone(fixed)
    assert default_timezone() is fixed
    assert format_timestamp(TS) == "2023-11-15T00:13:20.000+02:00"
    with pytest.raises(ValidationError, match="unknown timezone 'Nowhere'"):
        set_default_timezone("Nowhere")
    assert default_timezone() is fixed  # a refused name leaves the default as it was
    set_default_timezone(None)
    assert default_timezone() == "local"


def test_local_time_follows_summer_time(local_zone: None) -> None:
    # The offset is that of each instant, not of the moment the zone was first looked up.
    # (Odd milliseconds: the last text formatted is reused for the same instant and zone.)
    assert format_timestamp(TS + 3, "local") == "2023-11-14T23:13:20.003+01:00"
    assert format_timestamp(SUMMER_TS + 3, "local") == "2023-06-29T02:53:20.003+02:00"
    assert SocketMessage("x", timestamp_ms=SUMMER_TS).timestamp_iso.endswith("+02:00")


def test_a_message_needs_no_configuration() -> None:
    """A fresh interpreter builds a message without pydantic or dynaconf, in local time,
    whatever the settings say: nothing loaded them."""
    code = ("import json, sys, sockcli\n"
            f"m = sockcli.SocketMessage('e', timestamp_ms={TS})\n"
            "print(json.dumps([m.timestamp_iso,"
            " [n for n in ('pydantic', 'dynaconf') if n in sys.modules]]))")
    env = {**os.environ, "SOCKCLI_TIMEZONE": "Asia/Tokyo", "TZ": "UTC"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["2023-11-14T22:13:20.000+00:00", []]


def test_format_timestamp_with_explicit_timezone() -> None:
    assert format_timestamp(TS, "UTC") == "2023-11-14T22:13:20.000+00:00"
    assert format_timestamp(TS, "Europe/Paris") == "2023-11-14T23:13:20.000+01:00"
    assert format_timestamp(TS + 999, "Asia/Kolkata") == "2023-11-15T03:43:20.999+05:30"
    # summer time
    assert format_timestamp(1688000000000, "Europe/Paris") == "2023-06-29T02:53:20.000+02:00"
    fixed = timezone(timedelta(hours=-3, minutes=-30))
    assert format_timestamp(TS, fixed) == "2023-11-14T18:43:20.000-03:30"
    assert format_timestamp(0, UTC) == "1970-01-01T00:00:00.000+00:00"
    assert format_timestamp(-1, "UTC") == "1969-12-31T23:59:59.999+00:00"


def test_format_timestamp_explicit_beats_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    use_timezone(monkeypatch, "Asia/Tokyo")
    assert format_timestamp(TS, "UTC") == "2023-11-14T22:13:20.000+00:00"
    assert format_timestamp(TS, "local") == format_timestamp(TS, "LOCAL")
    assert format_timestamp(TS) == "2023-11-15T07:13:20.000+09:00"
    set_default_timezone("Europe/Paris")  # what a program may set itself
    assert format_timestamp(TS, "UTC") == "2023-11-14T22:13:20.000+00:00"
    assert format_timestamp(TS) == "2023-11-14T23:13:20.000+01:00"


def test_local_timezone() -> None:
    assert format_timestamp(TS, "local") == format_timestamp(TS, "LOCAL")
    assert resolve_timezone("local").utcoffset(datetime.now()) is not None


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "UTC+99", "../../etc/passwd"])
def test_unknown_timezone(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        format_timestamp(TS, name)
    assert f"unknown timezone {name!r}" in str(info.value)
    assert "'UTC'" in str(info.value) and "'local'" in str(info.value)


def test_out_of_range_timestamp_is_a_validation_error() -> None:
    for ts in (10**15, 2**63, -(10**15)):
        with pytest.raises(ValidationError, match=f"timestamp_ms {ts} is out of range"):
            format_timestamp(ts, "UTC")
        with pytest.raises(ValidationError, match="out of range"):
            SocketMessage("x", timestamp_ms=ts)
    with pytest.raises(ValidationError, match="out of range"):
        format_timestamp(10**400, "UTC")
    # with its ISO text given, the timestamp is not converted
    assert SocketMessage("x", timestamp_ms=10**15, timestamp_iso="t").timestamp_ms == 10**15


def test_message_type_given_as_text() -> None:
    assert SocketMessage("x", message_type="ERROR").message_type is MessageType.ERROR  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="invalid message type 'info': choose one of "
                                              "data, error, control"):
        SocketMessage("x", message_type="info")  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [[1], "text", None, (("a", 1),)])
def test_message_data_must_be_a_map(data: object) -> None:
    with pytest.raises(ValidationError, match="message data must be a map"):
        SocketMessage("x", data=data)  # type: ignore[arg-type]


@pytest.mark.parametrize("ts", [True, 1.5, "1700000000000", None])
def test_timestamp_ms_must_be_an_integer(ts: object) -> None:
    with pytest.raises(ValidationError,
                       match=f"timestamp_ms must be an integer, not {type(ts).__name__}"):
        SocketMessage("x", timestamp_ms=ts)  # type: ignore[arg-type]


def test_as_dict() -> None:
    m = SocketMessage("x", timestamp_ms=TS, timestamp_iso="iso",
                      message_type=MessageType.CONTROL, data={"a": 1})
    d = m.as_dict()
    assert d == {"event_name": "x", "timestamp_ms": TS, "timestamp_iso": "iso",
                 "message_type": "control", "data": {"a": 1}}
    assert list(d) == ["event_name", "timestamp_ms", "timestamp_iso", "message_type", "data"]
    assert type(d["message_type"]) is str


# -- event names ----------------------------------------------------------------------------

VALID_NAMES = ["x", "wallpaper_change", "A-b_9", "0", "_", "-", "a" * 64, "UPPER"]
INVALID_NAMES = ["", "../x", "a/b", "a.b", ".", "..", "a b", " a", "a\n", "a" * 65, "é", "ü_x",
                 "日本", "a\x00", "a:b", "a*"]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_event_names(name: str) -> None:
    assert validate_event_name(name) == name
    assert SocketMessage(name).event_name == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_event_names(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_event_name(name)
    assert str(info.value) == (
        f"invalid event name {name!r}: it must match {EVENT_NAME_RULE} "
        "(1 to 64 letters, digits, '_' or '-')")
    with pytest.raises(ValidationError, match=r"\^\[A-Za-z0-9_-\]\{1,64\}\$"):
        SocketMessage(name)


@pytest.mark.parametrize("name", [None, 5, b"x", ["x"]])
def test_event_name_must_be_a_string(name: object) -> None:
    with pytest.raises(ValidationError, match="invalid event name"):
        validate_event_name(name)


def test_event_name_rule_text() -> None:
    assert EVENT_NAME_RULE == r"^[A-Za-z0-9_-]{1,64}$"


# -- enums ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("data", MessageType.DATA), ("DATA", MessageType.DATA), ("Error", MessageType.ERROR),
    ("cOnTrOl", MessageType.CONTROL), (MessageType.ERROR, MessageType.ERROR),
])
def test_message_type_parse(text: str, expected: MessageType) -> None:
    assert MessageType.parse(text) is expected


@pytest.mark.parametrize("text", ["", "info", "datum", " data", "data ", None, 1])
def test_message_type_parse_errors_name_the_choices(text: object) -> None:
    with pytest.raises(ValidationError) as info:
        MessageType.parse(text)  # type: ignore[arg-type]
    # Other tests may have registered message types in this process: they come after these.
    choices = ", ".join(message_type_names())
    assert choices.startswith("data, error, control")
    assert str(info.value) == f"invalid message type {text!r}: choose one of {choices}"


def test_message_type_values() -> None:
    assert [m.value for m in MessageType] == ["data", "error", "control"]
    assert MessageType.DATA == "data"


@pytest.mark.parametrize(("text", "expected"), [
    ("unix", SocketType.UNIX), ("UNIX", SocketType.UNIX), ("Unix", SocketType.UNIX),
    ("tcp", SocketType.TCP), ("TCP", SocketType.TCP), ("tCp", SocketType.TCP),
    (SocketType.TCP, SocketType.TCP),
])
def test_socket_type_parse(text: str, expected: SocketType) -> None:
    assert SocketType.parse(text) is expected


@pytest.mark.parametrize("text", ["", "udp", "unix ", "ipc", None])
def test_socket_type_parse_errors_name_the_choices(text: object) -> None:
    with pytest.raises(ValidationError) as info:
        SocketType.parse(text)  # type: ignore[arg-type]
    assert str(info.value) == f"invalid socket type {text!r}: choose one of unix, tcp"


# -- exceptions -----------------------------------------------------------------------------


def test_exception_hierarchy() -> None:
    for cls in (ConnectionError, MaxConnectionsError, MessageError, TimeoutError,
                ValidationError):
        assert issubclass(cls, SocketError)
    assert issubclass(SocketError, Exception)
    assert issubclass(ConnectionError, builtins.ConnectionError)
    assert issubclass(TimeoutError, builtins.TimeoutError)
    assert issubclass(MaxConnectionsError, ConnectionError)
    assert issubclass(MaxConnectionsError, builtins.ConnectionError)
    assert issubclass(ValidationError, ValueError)
    assert not issubclass(MessageError, builtins.ConnectionError)
    assert not issubclass(TimeoutError, builtins.ConnectionError)
    assert ConnectionError is not builtins.ConnectionError
    assert TimeoutError is not builtins.TimeoutError
    assert sockcli.exceptions.TimeoutError is TimeoutError


def test_builtin_except_clauses_catch_ours() -> None:
    with pytest.raises(builtins.TimeoutError):
        raise TimeoutError("late")
    try:
        raise TimeoutError("late")
    except builtins.TimeoutError as exc:
        assert isinstance(exc, SocketError)
    try:
        raise MaxConnectionsError("full")
    except builtins.ConnectionError as exc:
        assert str(exc) == "full"
    try:
        raise MaxConnectionsError("full")
    except OSError as exc:  # the built-ins are OSErrors, so ours are too
        assert isinstance(exc, ConnectionError)


def test_message_error_code() -> None:
    assert MessageError("x").code == "invalid_message"
    err = MessageError("too big", code="frame_too_large")
    assert err.code == "frame_too_large"
    assert str(err) == "too big"

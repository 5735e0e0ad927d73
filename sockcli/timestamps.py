"""Message timestamps: milliseconds since the epoch, and ISO 8601 text in a timezone.

Which timezone: the one given to :func:`format_timestamp`, else this process's default,
which is ``"local"`` until settings are loaded. The configuration package sets it
(:func:`set_default_timezone`) each time settings are loaded (``load_settings``, which every
hub, client and CLI command calls) or validated with overrides (``with_overrides``, the
keywords of a hub or client), so a process stamps messages in the timezone of the settings
it loaded last; a bare ``SocketMessage`` in a process that loaded none uses local time.

The timezone reaches this module as a value and never the other way round: this module
imports nothing of the configuration, because ``SocketMessage`` must not cost pydantic and
dynaconf, and because the configuration validates timezones with :func:`resolve_timezone`.
"""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from functools import lru_cache

from sockcli.exceptions import ValidationError

__all__ = ["default_timezone", "format_timestamp", "now_ms", "resolve_timezone",
           "set_default_timezone"]


@lru_cache(maxsize=32)
def resolve_timezone(name: str) -> tzinfo:
    """Turn an IANA name (or "local", "UTC") into a tzinfo; unknown names are a ValidationError.

    "local" gives the local zone's offset of now; :func:`format_timestamp` instead takes the
    local offset of each instant it formats, so that a long-running hub follows summer time.
    """
    if name.lower() == "local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown timezone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris', "
            "or 'local'"
        ) from None


_default: str | tzinfo = "local"


def set_default_timezone(timezone: str | tzinfo | None) -> None:
    """Make ``timezone`` (a name as :func:`resolve_timezone` takes, or a tzinfo) the one of
    timestamps formatted without one; None restores "local". Raises ValidationError for an
    unknown name, leaving the default as it was."""
    global _default
    if timezone is None:
        timezone = "local"
    elif isinstance(timezone, str):
        resolve_timezone(timezone)
    _default = timezone  # one reference: safe to swap under threads


def default_timezone() -> str | tzinfo:
    """The timezone of timestamps formatted without one (see the module's docstring)."""
    return _default


def format_timestamp(timestamp_ms: int, timezone: str | tzinfo | None = None) -> str:
    """ISO 8601 text of a millisecond timestamp, in ``timezone`` or the default one."""
    if timezone is None:
        timezone = _default
    global _last
    last = _last
    if last[0] == timestamp_ms and last[1] == timezone:  # a stream stamps many per millisecond
        return last[2]
    if isinstance(timezone, str):
        tz = None if timezone.lower() == "local" else resolve_timezone(timezone)
    else:
        tz = timezone
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz)
        if tz is None:
            moment = moment.astimezone()  # the local offset of that instant
    except (OverflowError, ValueError, OSError):
        # A peer controls timestamp_ms: out of datetime's range must not escape as ValueError.
        raise ValidationError(
            f"timestamp_ms {timestamp_ms} is out of range: it must fall in the years 1 to 9999"
        ) from None
    text = moment.isoformat(timespec="milliseconds")
    _last = (timestamp_ms, timezone, text)  # one tuple: safe to swap under threads
    return text


_last: tuple[int | None, object, str] = (None, None, "")


def now_ms() -> int:
    """Now, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000

"""Message timestamps: milliseconds since the epoch, and ISO 8601 text in a timezone."""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from functools import lru_cache

from sockcli.exceptions import ValidationError

__all__ = ["format_timestamp", "now_ms", "resolve_timezone"]


@lru_cache(maxsize=32)
def resolve_timezone(name: str) -> tzinfo:
    """Turn an IANA name (or "local", "UTC") into a tzinfo; unknown names are a ValidationError."""
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


def format_timestamp(timestamp_ms: int, timezone: str | tzinfo | None = None) -> str:
    """ISO 8601 text of a millisecond timestamp, in ``timezone`` or the configured one."""
    if timezone is None:
        from sockcli.config.loader import configured_timezone

        timezone = configured_timezone()
    global _last
    last = _last
    if last[0] == timestamp_ms and last[1] == timezone:  # a stream stamps many per millisecond
        return last[2]
    tz = resolve_timezone(timezone) if isinstance(timezone, str) else timezone
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz)
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



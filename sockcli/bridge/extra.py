"""Whether the ``sockcli[mqtt]`` extra is installed: paho-mqtt, which only a bridge needs.

``serve --bridge`` calls :func:`require_paho` before the hub starts, so that a missing extra
is one clear line and exit 78 at once, not a traceback once the hub is serving.
"""

from __future__ import annotations

from sockcli.exceptions import ValidationError

__all__ = ["MIN_PAHO", "MissingExtraError", "require_paho"]

#: The oldest paho-mqtt the bridge works with (CallbackAPIVersion.VERSION2 came with 2.0,
#: the fixes it relies on with 2.1).
MIN_PAHO = (2, 1)
_INSTALL = "pip install 'sockcli[mqtt]'"


class MissingExtraError(ValidationError):
    """An optional dependency is not installed (or too old): a configuration error (exit 78)
    whose text names the extra to install."""


def require_paho() -> None:
    """Raise :class:`MissingExtraError` unless paho-mqtt (>= 2.1) can be imported."""
    try:
        import paho.mqtt
        import paho.mqtt.client  # what the bridge uses, with its own imports
    except ImportError:
        raise MissingExtraError(f"--bridge needs paho-mqtt: {_INSTALL}") from None
    version = str(getattr(paho.mqtt, "__version__", "0"))
    if _version_tuple(version) < MIN_PAHO:
        wanted = ".".join(map(str, MIN_PAHO))
        raise MissingExtraError(f"--bridge needs paho-mqtt >= {wanted}, not {version}: "
                                f"pip install --upgrade 'sockcli[mqtt]'")


def _version_tuple(text: str) -> tuple[int, ...]:
    """(2, 2) for "2.2.0rc1": the leading numbers of each dotted part."""
    parts: list[int] = []
    for part in text.split(".")[:2]:
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits) if digits else 0)
    return tuple(parts)

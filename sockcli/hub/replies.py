"""What the hub answers to a welcomed client's frames other than messages.

Pure: a frame in, the frame to send back (or None) out; the loop writes it. Kept apart so that
a new request kind (retained messages, a replay) adds one case here and nothing to the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sockcli.protocol import frames as fr

__all__ = ["reply_to"]


def reply_to(frame: fr.Frame, figures: Callable[[], dict[str, Any]]) -> fr.Frame | None:
    """The answer to ``frame`` from a welcomed client (``figures()``: the hub's stats)."""
    if isinstance(frame, fr.StatsRequest | fr.Stats):
        # frames.py reads a stats frame with keys as a reply; from a client it is a request
        # whose keys this version does not know, and unknown keys are ignored.
        return fr.Stats(values=figures())
    if isinstance(frame, fr.Ping):
        return fr.Pong(token=frame.token)
    if isinstance(frame, fr.Pong):
        return None
    if isinstance(frame, fr.UnknownFrame):
        return fr.ErrorFrame(code=fr.ErrorCode.UNKNOWN_KIND,
                             reason=f"unknown frame kind {frame.kind!r}")
    return fr.ErrorFrame(code=fr.ErrorCode.INVALID_MESSAGE,
                         reason=f"a client may not send a {type(frame).__name__} frame")

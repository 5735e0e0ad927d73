"""Dying with the parent: ``PR_SET_PDEATHSIG``, for the commands that ``serve --exec`` and
``listen --exec`` start, so that even a ``kill -9`` of sockcli takes their ``sh`` along.

The signal fires when the *thread* that forked the child ends, so fork from a thread that
lives as long as the parent's need for the child. Linux only: elsewhere :func:`prctl_function`
is None and the callers rely on their other means (the hub's watchdog, listen's handlers).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

__all__ = ["die_with_parent", "prctl_function"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_PRCTL: list[Callable[..., int] | None] = []  # [prctl], once looked up


def prctl_function() -> Callable[..., int] | None:
    """libc's prctl (None where there is none: not Linux). Call it in
    the parent, before the fork: the child should only call it, not load it."""
    if not _PRCTL:
        func: Callable[..., int] | None = None
        try:
            func = ctypes.CDLL(None, use_errno=True).prctl  # libc is in the process already
        except (OSError, AttributeError):
            pass
        else:
            func.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                             ctypes.c_ulong]
            func.restype = ctypes.c_int
        _PRCTL.append(func)
    return _PRCTL[0]


def die_with_parent(parent_pid: int, prctl: Callable[..., int] | None,
                    signum: int = signal.SIGKILL) -> None:
    """In a new child, before exec: ``signum`` (SIGKILL) when the thread that forked it ends
    (its parent thread's death, whatever killed it), and at once if the parent is already gone
    (it died between the fork and this call, so the signal would never come). ``prctl``: from
    :func:`prctl_function`, looked up before the fork."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)

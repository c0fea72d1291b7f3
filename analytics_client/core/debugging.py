"""``--debug``: whether tracebacks are shown besides the one-line errors.

Errors are written to be read by a person (what failed, where, what to do), so a traceback by
default only repeats them at length. ``--debug`` (or ``ANALYTICS_SYNC_DEBUG=1``, which reaches a
flow run however it was started) brings tracebacks back; Prefect keeps every state's message.
"""

from __future__ import annotations

import os

__all__ = ["DEBUG_ENV", "debugging", "set_debugging"]

DEBUG_ENV = "ANALYTICS_SYNC_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_debugging(enabled: bool) -> None:
    """For this process and the processes it starts (a flow run's tasks read the environment)."""
    if enabled:
        os.environ[DEBUG_ENV] = "1"

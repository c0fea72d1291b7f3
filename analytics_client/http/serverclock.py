"""The API's own clock over one read, as the ``Date`` of its answers shows it (RFC 9110 §6.6.1).

Every ``updated_at`` is stamped by the API's clock, so that clock, not ours, says what a cursor
means: a record stamped ahead of it comes from a broken clock, and how long after a mark a read
began decides whether a change can still appear below that mark (``state/markpolicy.py``).

A read's ``earliest`` is the clock of its first answer (the smallest ``Date`` of its answers: the
walks of a sliced read answer in any order), its ``latest`` the largest. An origin server
truncates ``Date`` to the second (``email.utils.formatdate``, nginx, uvicorn): a ``Date`` is never
later than the moment the answer was made, which is the safe side for every use here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from analytics_client.http.ratelimit_headers import server_clock

__all__ = ["ServerClock"]


class ServerClock:
    """The ``Date`` headers of one read's answers: the earliest and the latest, in epoch µs
    (None until an answer carried a readable ``Date``). Thread-safe: a sliced read's walks share
    it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.earliest_us: int | None = None
        self.latest_us: int | None = None
        self.answers = 0  # answers observed, with or without a Date
        self.undated = 0  # of those, answers without a readable Date

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the ``Date`` of one answer of the read."""
        seconds = server_clock(headers)
        with self._lock:
            self.answers += 1
            if seconds is None:
                self.undated += 1
                return
            moment = round(seconds) * 1_000_000  # an HTTP-date is whole seconds
            if self.earliest_us is None or moment < self.earliest_us:
                self.earliest_us = moment
            if self.latest_us is None or moment > self.latest_us:
                self.latest_us = moment

    def __repr__(self) -> str:
        return (f"ServerClock(earliest_us={self.earliest_us}, latest_us={self.latest_us}, "
                f"answers={self.answers}, undated={self.undated})")

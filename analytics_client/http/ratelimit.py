"""A client-side rate limiter shared by every request of a run, learned from the API's answers.

Retrying each 429 on its own makes storms: five resources hammer a limited API, all get 429,
all wait, all come back at once. Instead every request first takes its turn here. The pace is
unknown until the API says it: on a 429 we count how many requests the API accepted in the
last second and pace everyone a little below that. The refused request waits out its
``Retry-After`` (the retry policy); the others go on at the new pace, because a short
``Retry-After`` (the contract's is whole seconds, so a token bucket says 1 s when it lacks one
token for 5 ms) would otherwise idle the whole run for a second per refusal. Everyone pauses
for the ``Retry-After`` only when it is long, or when the API refuses again soon after the pace
was set (the limit is shared, or lower than it looked). An exhausted quota announced in headers
(``X-RateLimit-Remaining: 0`` with a reset, the IETF ``RateLimit`` fields; read by
``ratelimit_headers.py``) pauses everyone until the reset, before any 429. The pace creeps up
slowly afterwards, so a raised limit is found again, but never past the rate that drew the last
429 for long.

The limiter never decides that a pause is too long: ``ahead()`` tells the client what pause a
request would wait out and why, and the client fails the resource when it passes ``max_wait``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping

from analytics_client.http.ratelimit_headers import Wait, quota_wait

__all__ = ["RateLimiter"]

_BELOW = 0.97  # pace this far below the rate that was refused
_PROBE_EVERY = 20.0  # seconds without a 429 before the ceiling is raised a little
_PROBE_STEP = 1.02
_SHORT_RETRY_AFTER = 1.0  # seconds: a refusal this short pauses only the refused request
_ESCALATE_WITHIN = 10.0  # seconds: a new refusal this soon after the last pause is a pause too
_SAME_PAUSE = 0.5  # seconds: responses announcing the same reset, give or take, are one pause


class RateLimiter:
    """Thread-safe pacing of requests; a no-op until the API signals a limit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._interval = 0.0  # seconds between requests; 0: unlimited
        self._next = 0.0  # earliest start of the next request
        self._paused_until = 0.0
        self._pause_source = ""  # the header that asked for the pause, for logs and errors
        self._accepted: collections.deque[float] = collections.deque()  # last ~1 s of 2xx
        self._last_limit = 0.0  # when the pace was last set (a refusal or a probe)
        self._last_refusal = float("-inf")
        self._episode_until = 0.0  # 429s before this belong to the refusal already handled
        self.limited = 0  # 429s seen

    @property
    def rate(self) -> float | None:
        """The current pace in requests per second, None while unlimited."""
        return 1 / self._interval if self._interval else None

    def ahead(self) -> Wait | None:
        """The pause a request starting now would wait out, and the header that asked for it."""
        with self._lock:
            pause = self._paused_until - self._clock()
            return Wait(pause, self._pause_source) if pause > 0 else None

    def acquire(self) -> None:
        """Wait for this request's turn."""
        with self._lock:
            now = self._clock()
            self._probe(now)
            start = max(now, self._paused_until, self._next)
            if self._interval:
                self._next = start + self._interval
        if start > now:
            self._sleep(start - now)

    def observe(self, status: int, headers: Mapping[str, str],
                retry_after: float | None = None, wall: float | None = None) -> Wait | None:
        """Learn from a response: a 429 sets the pace; RateLimit headers pause ahead of one.
        ``wall``: the wall clock a reset time is measured against (None: now).

        Returns the pause everyone now waits for when this response started or lengthened one
        (for the caller to log), else None.
        """
        with self._lock:
            now = self._clock()
            while self._accepted and self._accepted[0] < now - 1.0:
                self._accepted.popleft()
            if status == 429:
                return self._refused(now, retry_after or _SHORT_RETRY_AFTER)
            if 200 <= status < 300:
                self._accepted.append(now)
            quota = quota_wait(headers, wall)
            if quota is not None:
                return self._pause(now, quota.seconds, quota.source)
            return None

    def _pause(self, now: float, seconds: float, source: str) -> Wait | None:
        """Everyone waits until ``now + seconds``; news only when that moves the pause on."""
        if now + seconds <= self._paused_until + _SAME_PAUSE:
            return None
        self._paused_until, self._pause_source = now + seconds, source
        return Wait(seconds, source)

    def _refused(self, now: float, pause: float) -> Wait | None:
        self.limited += 1
        if now < self._episode_until:
            return None  # requests that were in flight with the first refusal: same news
        paused = None
        if pause > _SHORT_RETRY_AFTER or now < self._last_refusal + _ESCALATE_WITHIN:
            paused = self._pause(now, pause, f"HTTP 429, Retry-After {pause:g} s")
        current = self.rate or float("inf")
        self._interval = 1 / min(current, max(1.0, len(self._accepted) * _BELOW))
        self._last_limit = self._last_refusal = now
        self._episode_until = now + pause + 1.0
        return paused

    def _probe(self, now: float) -> None:
        if self._interval and now - self._last_limit > _PROBE_EVERY:
            self._interval /= _PROBE_STEP
            self._last_limit = now


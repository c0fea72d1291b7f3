"""What a response says about when to send the next request: ``Retry-After`` and rate-limit headers.

Every rule for reading these headers lives here, so the client and the limiter agree on them:

* ``Retry-After`` (RFC 9110 §10.2.3) is delay-seconds or an HTTP-date. An HTTP-date is read on
  the server's clock, and the response's ``Date`` (RFC 9110 §6.6.1) is the same clock: the delay
  is ``Retry-After - Date``, whatever the skew between the server's clock and ours. Without a
  ``Date``, the local clock stands in (RFC 9110 §10.2.3 says no more).
* ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (the de facto pair of GitHub, Twitter and
  many others) and ``RateLimit-Remaining`` / ``RateLimit-Reset`` (draft-ietf-httpapi-ratelimit-
  headers up to -05): the reset is delta seconds for most APIs but a Unix time for GitHub and
  Twitter. No API asks for a pause of 30 years, so a number above ``UNIX_TIME_ABOVE`` (10^9 s,
  September 2001) is a Unix time, and one above ``UNIX_MS_ABOVE`` a Unix time in milliseconds;
  either is judged against the response's ``Date`` when it has one (the same skew argument).
* The IETF structured fields (draft-ietf-httpapi-ratelimit-headers-08 and later, RFC 9651
  syntax): ``RateLimit: "default";r=0;t=3`` (``r`` remaining quota units, ``t`` seconds until
  the quota resets) and ``RateLimit-Policy: "default";q=100;w=60`` (``w`` the window, the reset
  at the latest when ``t`` is absent). Drafts -06/-07 sent one dictionary,
  ``RateLimit: limit=100, remaining=0, reset=3``; both are read.

A quota pause is announced only by an exhausted quota (remaining <= 0) with a reset; the
largest announced wait wins, because pausing too short earns a 429 and pausing too long costs
only time. Values that cannot be read (garbage, negative, NaN, infinite) announce nothing.
"""

from __future__ import annotations

import datetime as dt
import decimal
import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import http_sf

__all__ = ["UNIX_MS_ABOVE", "UNIX_TIME_ABOVE", "Wait", "quota_wait", "retry_after", "server_clock"]

UNIX_TIME_ABOVE = 1e9  # seconds: a reset larger than this is a Unix time (September 2001 on)
UNIX_MS_ABOVE = 1e11  # a reset larger than this is a Unix time in milliseconds (year 5138 in s)
_SHOWN = 60  # characters of a header value quoted in logs and errors

Headers = Mapping[str, str]


@dataclass(frozen=True)
class Wait:
    """A wait the API asked for, and the header that asked (quoted for logs and errors)."""

    seconds: float
    source: str


def server_clock(headers: Headers) -> float | None:
    """The server's clock as Unix time, from its ``Date`` header (RFC 9110 §6.6.1)."""
    return _http_date(headers.get("date"))


def retry_after(headers: Headers, now: float | None = None) -> Wait | None:
    """The wait ``Retry-After`` asks for: delay-seconds, or an HTTP-date minus the ``Date``."""
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is None:
        when = _http_date(value)
        if when is None:
            return None
        reference = server_clock(headers)
        clock = "the response's Date" if reference is not None else "our clock"
        seconds = when - (reference if reference is not None else _now(now))
        return _wait(seconds, f"Retry-After: {_short(value)} ({seconds:.0f} s after {clock})")
    return _wait(seconds, f"Retry-After: {_short(value)}")


def quota_wait(headers: Headers, now: float | None = None) -> Wait | None:
    """The longest wait an exhausted quota announces, or None while quota remains."""
    waits = [w for w in (_structured(headers), *(_pair(headers, p, now) for p in ("x-", "")))
             if w is not None]
    return max(waits, key=lambda w: w.seconds) if waits else None


def _pair(headers: Headers, prefix: str, now: float | None) -> Wait | None:
    """``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset``: delta seconds or a Unix time."""
    remaining = _number(headers.get(f"{prefix}ratelimit-remaining"))
    raw_reset = headers.get(f"{prefix}ratelimit-reset")
    reset = _number(raw_reset)
    if remaining is None or remaining > 0 or reset is None:
        return None
    name = f"{'X-' if prefix else ''}RateLimit-Reset: {_short(raw_reset or '')}"
    if reset <= UNIX_TIME_ABOVE:
        return _wait(reset, f"{name} (seconds)")
    when = reset / 1000 if reset > UNIX_MS_ABOVE else reset
    reference = server_clock(headers)
    clock = "the response's Date" if reference is not None else "our clock"
    seconds = when - (reference if reference is not None else _now(now))
    unit = "Unix time in ms" if reset > UNIX_MS_ABOVE else "Unix time"
    return _wait(seconds, f"{name} ({unit}, {seconds:.0f} s after {clock})")


def _structured(headers: Headers) -> Wait | None:
    """``RateLimit`` as an RFC 9651 list (draft -08 on) or dictionary (drafts -06/-07)."""
    value = headers.get("ratelimit")
    if value is None:
        return None
    windows = _policy_windows(headers.get("ratelimit-policy"))
    waits: list[float] = []
    for name, params in _parse(value, "list") or []:
        if not isinstance(params, dict):
            continue
        remaining, reset = _param(params, "r"), _param(params, "t")
        if reset is None:
            reset = windows.get(str(name))
        if remaining is not None and remaining <= 0 and reset is not None:
            waits.append(reset)
    if not waits:  # the older dictionary form: limit=10, remaining=0, reset=5
        members = _parse(value, "dictionary")
        if isinstance(members, dict):
            remaining = _param({k: v[0] for k, v in members.items() if isinstance(v, tuple)},
                               "remaining")
            reset = _param({k: v[0] for k, v in members.items() if isinstance(v, tuple)}, "reset")
            if remaining is not None and remaining <= 0 and reset is not None:
                waits.append(reset)
    return _wait(max(waits), f"RateLimit: {_short(value)}") if waits else None


def _policy_windows(value: str | None) -> dict[str, float]:
    """Each policy's window ``w`` (seconds), the reset at the latest when ``t`` is missing."""
    windows: dict[str, float] = {}
    if value is None:
        return windows
    for name, params in _parse(value, "list") or []:
        if isinstance(params, dict):
            window = _param(params, "w")
            if window is not None:
                windows[str(name)] = window
    return windows


def _parse(value: str, kind: str) -> Any:
    try:
        return http_sf.parse(value.encode("latin-1", "replace"), tltype=kind)
    except (ValueError, TypeError, UnicodeError):
        return None


def _param(params: Mapping[Any, Any], key: str) -> float | None:
    """An RFC 9651 Integer or Decimal parameter (http_sf gives int or Decimal) as a float."""
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _number(value: str | None) -> float | None:
    """A header's number (the first of a list, as some APIs repeat it); None unless finite."""
    if value is None:
        return None
    first = value.split(",")[0].split(";")[0].strip()
    try:
        number = float(first)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _http_date(value: str | None) -> float | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime, RFC 9110 §5.6.7) as Unix time."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime carries no zone; HTTP dates are GMT
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _wait(seconds: float, source: str) -> Wait | None:
    """Only a positive, finite wait is one; a reset in the past asks for nothing."""
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return Wait(seconds, source)


def _short(value: str) -> str:
    value = value.strip()
    return value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."


def _now(now: float | None) -> float:
    return time.time() if now is None else now

"""The one timestamp codec: ISO-8601 text to an instant in epoch microseconds, and back.

A cursor is an instant, never text: ``2026-03-01T10:00:00.5Z`` is after ``2026-03-01T10:00:00Z``
and ``2026-03-01T11:00:00+01:00`` is the same moment, which text comparison gets wrong. Every
timestamp the pipeline reads (records, marks, ``initial_value``) goes through ``parse`` with one
strictness:

* an offset is required (``Z``, ``z``, ``+05:30``, ``-0800``, ``+05``): a time without one is
  ambiguous;
* at most microsecond precision (Delta's ``timestamp``): digits beyond the sixth that are not
  zero are refused, never truncated;
* the instant must lie in years 1-9999 once converted to UTC, which Delta readers can read
  (``9999-12-31T23:00:00-05:00`` is in year 10000 in UTC).

Every ISO-8601 form Python's ``datetime.fromisoformat`` reads is accepted (basic and extended,
``T`` or a space, ``,`` or ``.`` before the fraction).
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["MAX_US", "MIN_US", "NotATimestamp", "format", "parse"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
_FRACTION = re.compile(r"[.,](\d+)")


class NotATimestamp(ValueError):  # noqa: N818 - a ValueError saying what the text is not
    """Text of no instant's form at all (unparseable, or without an offset), as against an
    instant out of range or too precise: a cursor of such values is a config to fix."""


def parse(text: str) -> int:
    """``text`` as epoch microseconds (exact; no float on the way).

    Raises ``ValueError`` saying what is wrong: unparseable, no offset, sub-microsecond digits,
    or outside years 1-9999 in UTC.
    """
    if not isinstance(text, str):
        raise NotATimestamp(f"not a string but {type(text).__name__}")
    fraction = _FRACTION.search(text)
    if fraction and fraction.group(1)[6:].strip("0"):
        raise ValueError("more than microsecond precision (Delta timestamps hold microseconds)")
    candidate = text[:-1] + "Z" if text.endswith("z") else text
    try:
        parsed = dt.datetime.fromisoformat(candidate)
    except ValueError:
        raise NotATimestamp("not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise NotATimestamp("a timestamp without a UTC offset")
    delta = parsed - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not MIN_US <= micros <= MAX_US:
        raise ValueError("outside years 1-9999 once converted to UTC")
    return micros


def format(micros: int) -> str:  # noqa: A001 - the codec's pair is parse/format
    """Epoch microseconds as the contract writes timestamps: ``2026-01-01T00:00:00.000000Z``."""
    moment = _EPOCH + dt.timedelta(microseconds=micros)
    # strftime's %Y drops the leading zeros of years before 1000 on Linux.
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S.%f}Z"

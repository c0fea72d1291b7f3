"""The one cursor codec: how a cursor value is read, compared, sent and written down.

An incremental cursor (dlt's ``incremental.cursor_path``) is one of two kinds, and a mark is
an integer in the cursor's own units either way, so every comparison is integer arithmetic:

* ``timestamp``: an ISO-8601 instant with a zone, kept as epoch microseconds
  (``timestamps.py`` reads and writes the text); the default, and the contract's ``updated_at``;
* ``integer``: a JSON integer kept as it is (Stripe's ``created`` in Unix seconds, GitHub's
  ids, a sequence number), within Delta's ``bigint`` (64 bits).

The kind is the config's to declare, never the first value's to decide (a cursor typed by
the first record it meets changes type with the data): a ``columns`` hint on the cursor
field (``bigint`` or ``timestamp``), else the type of ``initial_value`` / ``end_value`` (an
integer, as dlt's ``Incremental`` takes it from ``initial_value``), else ``timestamp``.
``config/model.py``'s ``cursor_kind`` applies that rule; everything below it takes a
``CursorCodec``.

What differs by kind, and why:

* ``lag`` (dlt's ``lag``) is in the cursor's units: seconds for a timestamp (so microseconds
  here), the integer itself for an integer cursor (dlt subtracts it from a numeric
  ``last_value`` the same way);
* the API's clock (``state/markpolicy.py``: marks capped at the API's ``Date`` and proven by
  it) applies to timestamp cursors only (``clocked``). An integer is compared with no clock:
  it may be seconds, milliseconds or an id, and we are never told which, so an integer mark is
  as its pages allow and every run starts ``lag`` units before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from analytics_client.core import timestamps
from analytics_client.core.jsonpath import field_chain, field_value

__all__ = ["INTEGER", "TIMESTAMP", "CursorCodec", "CursorKind", "KindMismatch", "codec_for",
           "cursor_column", "cursor_value"]

CursorKind = Literal["timestamp", "integer"]

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
_DATE = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}")  # ISO 8601's calendar date: no time


class KindMismatch(ValueError):
    """A cursor value of the other kind (an integer where the config declares an instant, or
    text where it declares an integer): every record will be so, so a read names the config
    to fix (``mismatch``) instead of setting each record aside."""


@dataclass(frozen=True)
class CursorCodec:
    """How cursors of one ``kind`` are read (``parse``), written (``format``, also what a
    ``start_param`` or ``{incremental.start_value}`` sends) and offset (``offset``)."""

    kind: CursorKind = "timestamp"

    @property
    def clocked(self) -> bool:
        """Whether the cursor is a moment on the API's clock (its ``Date`` caps and proves
        marks): timestamps only (the module docstring says why)."""
        return self.kind == "timestamp"

    @property
    def column_type(self) -> Literal["timestamp", "bigint"]:
        """The cursor column's dlt ``data_type`` in the Delta table."""
        return "timestamp" if self.kind == "timestamp" else "bigint"

    @property
    def lowest(self) -> int:
        return timestamps.MIN_US if self.kind == "timestamp" else _BIGINT_MIN

    @property
    def highest(self) -> int:
        return timestamps.MAX_US if self.kind == "timestamp" else _BIGINT_MAX

    def parse(self, value: object) -> int:
        """``value`` as a mark (epoch µs, or the integer); raises ``ValueError`` saying why not.

        An integer cursor takes a JSON integer only (not a boolean, not a float, not text: a
        cursor of mixed types is a config to fix, not one to guess at); ``read`` takes the
        text ``format`` wrote.
        """
        if self.kind == "timestamp":
            if isinstance(value, int) and not isinstance(value, bool):
                raise KindMismatch(f"{value} is an integer")
            if isinstance(value, str) and _DATE.fullmatch(value):
                raise KindMismatch(f"{value!r} is a date without a time")
            return timestamps.parse(value)  # type: ignore[arg-type]
        if isinstance(value, str):
            raise KindMismatch(f"{value!r} is text")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"a {type(value).__name__}, but the cursor is an integer")
        if not _BIGINT_MIN <= value <= _BIGINT_MAX:
            raise ValueError("outside 64-bit integers (Delta's bigint)")
        return value

    def format(self, mark: int) -> str:  # noqa: A003 - the codec's pair is parse/format
        """A mark as text: the contract's timestamp form, or the integer's decimal digits."""
        return timestamps.format(mark) if self.kind == "timestamp" else str(mark)

    def mismatch(self, field: str, value: object) -> str:
        """What a resource's error says when ``field`` holds ``value`` of the other kind."""
        if self.kind == "timestamp" and isinstance(value, str) and _DATE.fullmatch(value):
            return (f"the cursor {field!r} holds dates without a time ({value!r}): a date "
                    "cursor is not supported yet (no instant to keep a mark at); use a "
                    "timestamp field as incremental.cursor_path (e.g. updated_at), or read the "
                    "resource without incremental")
        if self.kind == "timestamp":
            return (f"the cursor {field!r} holds integers ({value!r}), but the config declares "
                    f"no kind, so it is read as an ISO-8601 timestamp: declare it in columns "
                    f"({field}: {{data_type: bigint}}) or give an integer "
                    "incremental.initial_value (e.g. 0)")
        return (f"the cursor {field!r} holds text ({value!r}), but the config declares it an "
                f"integer: if it is an ISO-8601 timestamp, declare columns.{field}.data_type "
                "timestamp and give initial_value as a timestamp; if it is a number sent as "
                "text, it cannot be an incremental cursor here (use no incremental)")

    def unreadable(self, field: str, values: list[object]) -> str | None:
        """Why a read cannot go on, when ``values`` (a first page's cursors) hold at least two
        present values and none is of an instant's form at all (a time without an offset, a
        week date, a word: ``timestamps.NotATimestamp``): setting every record aside and
        ending ok would hide a config to fix (a new user's trial). An instant out of range or
        too precise is one record's fault: it is set aside and the read goes on. None while
        any value has the form, or with too few values."""
        present = [v for v in values if v is not None]
        if len(present) < 2 or self.kind != "timestamp":
            return None
        reasons = []
        for value in present:
            try:
                self.parse(value)
                return None
            except timestamps.NotATimestamp as exc:
                reasons.append(str(exc))
            except ValueError:
                return None
        return (f"no record of the first page has a readable cursor {field!r} "
                f"(e.g. {present[0]!r}: {reasons[0]}): incremental reads need an ISO-8601 "
                "timestamp with a UTC offset; choose another incremental.cursor_path, or read "
                "the resource without incremental")

    def read(self, text: object) -> int:
        """A mark written by ``format`` (a state block's ``cursor``, an ``initial_value``
        given as text), or a value ``parse`` takes; raises ``ValueError``."""
        if self.kind == "integer" and isinstance(text, str) and re.fullmatch(r"-?[0-9]+", text):
            return self.parse(int(text))
        return self.parse(text)

    def offset(self, seconds_or_units: float) -> int:
        """``lag`` in the cursor's units, as an integer to subtract from a mark."""
        if self.kind == "timestamp":
            return round(seconds_or_units * 1_000_000)
        return round(seconds_or_units)

    def clamp(self, mark: int) -> int:
        """``mark`` within what the kind can hold (a start ``lag`` before the lowest cursor)."""
        return max(self.lowest, min(self.highest, mark))


TIMESTAMP = CursorCodec("timestamp")
INTEGER = CursorCodec("integer")


def codec_for(kind: CursorKind) -> CursorCodec:
    return TIMESTAMP if kind == "timestamp" else INTEGER


def _chain(path: str) -> tuple[str, ...]:
    chain = field_chain(path)
    if chain is None:  # config/model.py accepts no other cursor_path
        raise ValueError(f"cursor_path {path!r} is not a chain of fields")
    return chain


def cursor_value(record: object, path: str) -> object:
    """The cursor of ``record`` at ``path`` (dlt's ``cursor_path``, a JSONPath of fields:
    ``updated_at``, ``$.updated``, ``properties.hs_lastmodifieddate``); None when absent."""
    chain = _chain(path)
    if len(chain) == 1:
        return record.get(chain[0]) if isinstance(record, dict) else None
    return field_value(record, chain)


def cursor_column(path: str) -> str:
    """The table column that holds the cursor at ``path``: the field itself for a top-level
    cursor, else dlt's name for a nested field, its names joined by ``__``
    (``properties__hs_lastmodifieddate``; dlt's ``relational`` normalizer flattens nested
    objects so). A record's nested object is kept whole besides, as any object is."""
    return "__".join(_chain(path))

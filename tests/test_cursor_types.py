"""A cursor is an instant (or an integer), never text: in the merge, the batch and the mark."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_client import Lake
from analytics_client.core import timestamps
from analytics_client.core.errors import LakeError
from analytics_client.lake.tables import TableWriter

SYNCED = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: dt.timedelta(minutes=m))
INSTANTS = st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1),
                        timezones=st.just(dt.UTC))


def iso(moment: dt.datetime, offset: dt.timedelta, digits: int, style: str) -> str:
    """One of the many ISO-8601 spellings of ``moment``, written by hand (not our codec)."""
    local = moment.astimezone(dt.timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits].ljust(digits, "0")
    if offset == dt.timedelta(0) and style != "+00:00":
        return text + style
    minutes = int(offset.total_seconds()) // 60
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@given(INSTANTS, OFFSETS, st.sampled_from(["Z", "z", "+00:00"]))
@settings(max_examples=200, deadline=None)
def test_every_iso_spelling_parses_to_the_same_instant(moment: dt.datetime, offset: dt.timedelta,
                                                       style: str) -> None:
    """Offsets, Z or z, full microseconds: one instant, compared independently of our codec."""
    text = iso(moment, offset, 6, style)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert timestamps.parse(text) == (moment - epoch) // dt.timedelta(microseconds=1)
    assert timestamps.parse(timestamps.format(timestamps.parse(text))) == timestamps.parse(text)


def write(lake: Lake, records: list[dict[str, object]]) -> None:
    TableWriter(lake, "events", cursor_field="updated_at", synced_at=SYNCED).write(records)


@given(INSTANTS, st.integers(min_value=1, max_value=10**6), OFFSETS, OFFSETS,
       st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=6))
@settings(max_examples=40, deadline=None)
def test_a_later_instant_wins_whatever_its_spelling(
        tmp_path_factory: pytest.TempPathFactory, old: dt.datetime, later_us: int,
        old_offset: dt.timedelta, new_offset: dt.timedelta, old_digits: int, new_digits: int
) -> None:
    """Run 2's version is newer as an instant: it replaces run 1's, in one batch or two."""
    old = old.replace(microsecond=0)
    new = old + dt.timedelta(microseconds=later_us)
    new_text = iso(new, new_offset, 6, "Z")
    old_text = iso(old, old_offset, old_digits, "Z")
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    write(lake, [{"id": "e1", "updated_at": old_text, "status": "old"}])
    write(lake, [{"id": "e1", "updated_at": new_text, "status": "new"}])
    assert lake.read("events")["status"].to_list() == ["new"]
    write(lake, [{"id": "e1", "updated_at": old_text, "status": "stale"}])  # never goes back
    assert lake.read("events")["status"].to_list() == ["new"]
    other = Lake(str(tmp_path_factory.mktemp("lake")))
    write(other, [{"id": "e1", "updated_at": new_text, "status": "new"},
                  {"id": "e1", "updated_at": old_text, "status": "old"}])
    assert other.read("events")["status"].to_list() == ["new"]


def test_the_issue_example_text_order_is_not_time_order(tmp_path: Path) -> None:
    """'...10:00:00.5Z' sorts before '...10:00:00Z' as text, after it as time."""
    lake = Lake(str(tmp_path))
    write(lake, [{"id": "e1", "updated_at": "2026-03-01T10:00:00Z", "status": "old"}])
    write(lake, [{"id": "e1", "updated_at": "2026-03-01T10:00:00.5Z", "status": "new"}])
    table = lake.read("events")
    assert table["status"].to_list() == ["new"]
    assert table.schema["updated_at"] == pl.Datetime("us", "UTC")


def test_a_table_with_a_text_cursor_is_refused_clearly(tmp_path: Path) -> None:
    """An older version stored the cursor as text: refuse with what to do, never compare text."""
    lake = Lake(str(tmp_path))
    TableWriter(lake, "events", cursor_field=None, synced_at=SYNCED).write(
        [{"id": "e1", "updated_at": "2026-03-01T10:00:00Z"}])
    with pytest.raises(LakeError, match="compared them as text"):
        write(lake, [{"id": "e1", "updated_at": "2026-03-01T10:00:01Z"}])

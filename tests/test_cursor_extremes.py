"""Cursors at the ends of what a Delta timestamp holds (years 1 and 9999), from a real server.

Found by the generated records of test_records_property: a mark near year 1 made the lagged
filter (``lag`` seconds before the mark) unwritable, and records whose cursor lies past year
9999 once converted to UTC (set aside, unreadable) following a tie group at the mark made the
group's re-read take them for a loop. Both failed the resource; both are read on here, with
every readable record landing once and the others set aside by name.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, load_config, run_sync
from analytics_client.core.timestamps import MIN_US
from analytics_client.core.timestamps import format as format_cursor
from tests.records_support import own_config, table
from tests.recordserver import RecordServer

PAST_9999 = "9999-12-31T23:59:00-00:01"  # 10000-01-01T00:00:00Z: outside Delta's range
LAST = "9999-12-31T23:59:59.999999Z"


def event(id_: str, updated_at: str) -> str:
    return json.dumps({"id": id_, "updated_at": updated_at})


def sync(server: RecordServer, lake: Path, run_id: str, *, limit: int, lag: float = 0):
    config = own_config(limit=limit)
    config["resources"][0]["endpoint"]["incremental"]["lag"] = lag
    source = load_config(config, base_url=server.base_url)
    [summary] = run_sync(source, Credentials("any-key", "any-org"), str(lake),
                         pipeline="extremes", run_id=run_id, batch_rows=limit)
    return summary


@settings(max_examples=8, deadline=None)
@given(offset_us=st.integers(0, 10_000_000), lag=st.sampled_from([0, 0.5, 5, 60]))
def test_a_mark_near_year_1_reads_on_whatever_the_lag(tmp_path_factory, offset_us: int,
                                                      lag: float) -> None:
    """The second run's filter is the mark less ``lag``, kept at year 1 at the lowest. The API
    dates no answer here: its clock would prove a mark of year 1, and the read would start just
    after it instead (tests/test_marks_clock.py)."""
    lake = tmp_path_factory.mktemp("lake")
    with RecordServer(clock=lambda: None) as server:
        server.put("events", [event("a", format_cursor(MIN_US + offset_us))])
        for run in ("r1", "r2"):
            summary = sync(server, lake, run, limit=3, lag=lag)
            assert summary.status == "ok", summary.error
        server.put("events", [event("a", format_cursor(MIN_US + offset_us)),
                              event("b", format_cursor(MIN_US + offset_us + 1))])
        summary = sync(server, lake, "r3", limit=3, lag=lag)
        assert summary.status == "ok", summary.error
    assert sorted(table(lake, "events")["id"].to_list()) == ["a", "b"]


@settings(max_examples=6, deadline=None)
@given(group=st.integers(1, 7), past=st.integers(1, 7), limit=st.integers(2, 4))
def test_unreadable_cursors_after_a_tie_group_at_the_mark_are_set_aside_not_a_loop(
        tmp_path_factory, group: int, past: int, limit: int) -> None:
    """The mark is the last instant Delta holds; the group there spans pages and records past
    it (unreadable once converted to UTC) follow: the run ends ok, they are quarantined."""
    lake = tmp_path_factory.mktemp("lake")
    tied = [event(f"g{n}", LAST) for n in range(group)]
    with RecordServer() as server:
        server.put("events", [event("a", "2026-02-28T10:00:00Z"), *tied])
        assert sync(server, lake, "r1", limit=limit).status == "ok"
        server.put("events", [event("a", "2026-02-28T10:00:00Z"), *tied,
                              *(event(f"p{n}", PAST_9999) for n in range(past))])
        summary = sync(server, lake, "r2", limit=limit)
    assert summary.status == "ok", summary.error
    assert summary.quarantined == past
    assert sorted(table(lake, "events")["id"].to_list()) == sorted(
        ["a", *(f"g{n}" for n in range(group))])

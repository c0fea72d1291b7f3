"""A tie group larger than a page, step by step, as analytics_client/keyset.py's proof argues it.

More records share one ``updated_at`` than fit on a page, so the filter cannot move past them:
the walk reads the group by page number. A record of the group read on an early page is then
updated; it leaves the group and the records behind it move up one place, so one of them slides
onto a page already read. The walk must read the group again until a pass brings no new id,
land every id exactly once, and never commit a mark past the group while part of it is unread.

A real loopback server (tests/recordserver.py) answers; a real Delta table is written; the
steps are checked in the server's request log and in every commit of the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from analytics_client import Credentials, load_config, run_sync
from analytics_client.core.timing import Timing
from analytics_client.state.marks import MemoryMarkStore
from tests.records_support import APP_ID, own_config, rows_by_id, table, table_mark
from tests.recordserver import RecordServer, instant_ns

PAGE = 3  # page[size]: the group (7 records) spans three pages
BEFORE = "2026-03-01T09:00:00.000000Z"
TIE = "2026-03-01T10:00:00.000000Z"
AFTER = "2026-03-01T10:30:00.000000Z"
MOVED = "2026-03-01T11:00:00.000000Z"  # g1's updated_at once it is updated mid-group
GROUP = [f"g{n}" for n in range(1, 8)]
FILTER = "filter[updated_at][gte]"


def event(id_: str, updated_at: str) -> str:
    return f'{{"id":"{id_}","updated_at":"{updated_at}","name":"{id_} at {updated_at}"}}'


def step(params: dict[str, str]) -> tuple[str | None, int]:
    """A request as the proof speaks of it: the filter's instant (None: none) and the page."""
    low = params.get(FILTER)
    return (None if low is None else TIE if instant_ns(low) == instant_ns(TIE) else low,
            int(params["page[number]"]))


@pytest.fixture
def server() -> Iterator[RecordServer]:
    moved: list[int] = []

    def update_g1_before_page_3_of_the_group(n: int, params: dict[str, str]) -> None:
        if not moved and step(params) == (TIE, 3):
            running.put("events", [event("a1", BEFORE), *(event(g, TIE) for g in GROUP[1:]),
                                   event("z1", AFTER), event("g1", MOVED)])
            moved.append(n)

    with RecordServer(on_request=update_g1_before_page_3_of_the_group) as running:
        running.put("events", [event("a1", BEFORE), *(event(g, TIE) for g in GROUP),
                               event("z1", AFTER)])
        yield running


def test_a_tie_group_over_pages_is_read_again_until_no_new_id_appears(
        server: RecordServer, tmp_path: Path) -> None:
    """Page 1 ends inside the group; the group is read by page from its timestamp; g1 leaves it
    and g7 slides onto page 2, already read; a re-read finds g7, one more brings nothing new;
    every id lands once, and no commit's mark passes the group before g7 is in the table."""
    source = load_config(own_config(limit=PAGE), base_url=server.base_url)
    [summary] = run_sync(source, Credentials("any-key", "any-org"), str(tmp_path),
                         pipeline="analytics", batch_rows=PAGE,
                         timing=Timing(merge_every=0))  # a commit per batch: marks mid-read
    assert summary.status == "ok", summary.error

    steps = [step(params) for _, params in server.queries]
    served = [server.served[n] for n in range(1, len(steps) + 1)]
    assert list(zip(steps, served, strict=True)) == [
        # Page 1 of everything ends inside the group: g3..g7 share g2's timestamp.
        ((None, 1), ["a1", "g1", "g2"]),
        # The next request starts at that timestamp (gte), so g1 and g2 come again...
        ((TIE, 1), ["g1", "g2", "g3"]),
        # ...and the page holds nothing past it: the group is read on by page number.
        ((TIE, 2), ["g4", "g5", "g6"]),
        # g1 was updated before this request: it left the group, g7 moved up onto page 2.
        ((TIE, 3), ["z1", "g1"]),
        # The walk left a group that spanned pages: it reads it again. This pass finds g7...
        ((TIE, 1), ["g2", "g3", "g4"]),
        ((TIE, 2), ["g5", "g6", "g7"]),
        ((TIE, 3), ["z1", "g1"]),
        # ...and the next brings no id it has not seen: the group is complete.
        ((TIE, 1), ["g2", "g3", "g4"]),
        ((TIE, 2), ["g5", "g6", "g7"]),
        ((TIE, 3), ["z1", "g1"]),
    ]

    rows = rows_by_id(table(tmp_path, "events"))  # asserts every id is there once
    assert set(rows) == {"a1", *GROUP, "z1"}
    for id_, row in rows.items():
        want = MOVED if id_ == "g1" else AFTER if id_ == "z1" else BEFORE if id_ == "a1" else TIE
        assert row["name"] == f"{id_} at {want}", id_

    # Every commit carries the mark it allows. While g7 is not in the table, that mark is not
    # past the group: a run stopped there starts again at the group (gte), not after it.
    path = str(tmp_path / "events")
    versions = range(DeltaTable(path).version() + 1)
    commits = [(DeltaTable(path, version=v).transaction_version(APP_ID),
                set(table_at(path, v))) for v in versions]
    assert any("g7" not in ids and mark is not None for mark, ids in commits), (
        "no commit before g7 carried a mark; lower batch_rows so the test can fail")
    for mark, ids in commits:
        if "g7" not in ids and mark is not None:
            assert mark <= micros(TIE), (mark, sorted(ids))
    assert commits[-1][0] == micros(MOVED)  # the run read everything below g1's new timestamp


def table_at(path: str, version: int) -> list[str]:
    return pl.read_delta(path, version=version, columns=["id"])["id"].to_list()


def micros(text: str) -> int:
    ns = instant_ns(text)
    assert ns is not None
    return ns // 1000


def test_a_tie_group_that_never_settles_stops_the_walk_with_the_mark_before_it(
        tmp_path: Path) -> None:
    """Every re-read pass of the group brings a new id: the walk stops with an error instead of
    moving on, the mark saved is not past the group (z1, read after it, is not counted as
    safe), and once the API settles the next run lands every id exactly once."""
    storm: list[str] = []

    def a_new_record_in_the_group_on_every_first_page(n: int, params: dict[str, str]) -> None:
        if storm and step(params) == (TIE, 1):
            storm.append(f"g0-{len(storm):03d}")  # sorts before g1: on page 1 of the group
            api.put("events", [*api.records("events")[:-1], event(storm[-1], TIE),
                                  event("z1", AFTER)])

    with RecordServer(on_request=a_new_record_in_the_group_on_every_first_page) as api:
        api.put("events", [event("a1", BEFORE), *(event(g, TIE) for g in GROUP),
                              event("z1", AFTER)])
        storm.append("on")
        marks = MemoryMarkStore()
        source = load_config(own_config(limit=PAGE), base_url=api.base_url)
        [failed] = run_sync(source, Credentials("any-key", "any-org"), str(tmp_path),
                            pipeline="analytics", batch_rows=PAGE, marks=marks)
        assert failed.status == "failed"
        assert "kept changing" in (failed.error or ""), failed.error
        saved = marks.load("analytics", "events")
        assert saved is not None and saved.cursor is not None
        assert micros(saved.cursor) <= micros(TIE), saved.cursor
        assert table_mark(tmp_path, "events") is not None
        assert table_mark(tmp_path, "events") <= micros(TIE)  # type: ignore[operator]

        storm.clear()  # the API settles
        [again] = run_sync(source, Credentials("any-key", "any-org"), str(tmp_path),
                           pipeline="analytics", batch_rows=PAGE, marks=marks)
        assert again.status == "ok", again.error
        served = {json.loads(r.raw)["id"] for r in api.records("events")}
        rows = rows_by_id(table(tmp_path, "events"))  # asserts every id is there once
        assert set(rows) == served and len(served) > len(GROUP) + 2

"""An API that does not filter by the cursor, as dlt's users meet it (dlt's own mock API is
one): dlt reads every page and keeps the records at or after the incremental's start on its
side; so do we, whether the config names a ``start_param`` the API ignores (the keyset walk
sees a record below its filter and falls back: read/keyset.py) or names none (the plan's
lagged read of everything: read/plan.py).

The oracle is the generated record set itself: after each run the table's live rows are the
records whose cursor is at or after ``initial_value``, and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client.state.marks import MemoryMarkStore
from tests.cursorapis import CursorApi
from tests.test_integer_cursors import EVENTS, source, sync, table


def config(initial: int, start_param: bool) -> dict[str, Any]:
    incremental: dict[str, Any] = {"cursor_path": "created", "initial_value": initial}
    if start_param:
        incremental["start_param"] = "created[gte]"
    return source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": incremental},
                   "max_delete_share": 1.0})


def kept(records: list[dict[str, Any]], initial: int) -> set[tuple[Any, ...]]:
    """What dlt's incremental keeps: cursor at or after the start (closed start)."""
    return {(r["id"], r["created"], r["amount"]) for r in records if r["created"] >= initial}


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=st.lists(st.integers(0, 60), max_size=45), initial=st.integers(0, 60),
       moved=st.lists(st.integers(0, 44), max_size=6), created=st.integers(0, 8),
       deleted=st.sets(st.integers(0, 44), max_size=6), start_param=st.booleans())
def test_an_api_that_ignores_the_filter_lands_exactly_what_is_at_or_after_the_start(
        tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture,
        first: list[int], initial: int, moved: list[int], created: int, deleted: set[int],
        start_param: bool) -> None:
    """Two runs (records moved up, created, deleted between them): each ends ok with the
    table equal to the records at or after ``initial_value``, none below it. Deletes are
    generated where the read serves everything (no ``start_param``); behind a filter that no
    page shows ignored, a delete below the start waits for a full read, as behind any filter
    without the API's count (docs/deletes.md)."""
    lake = tmp_path_factory.mktemp("lake")
    marks = MemoryMarkStore()
    records = [{"id": f"e{i:03d}", "created": c, "amount": i} for i, c in enumerate(first)]
    raw = config(initial, start_param)
    with CursorApi(ignore_filters=True) as api:
        api.put("events", records)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert sync(api, lake, raw, marks)["events"].status == "ok"
        assert table(lake, "events", "id", "created", "amount") == kept(records, initial)
        if start_param and any(c < initial for c in first):
            assert "the API ignores the filter" in caplog.text
        top = max([*first, initial])
        for n, index in enumerate(moved):
            if index < len(records):
                records[index] = {**records[index], "created": top + n, "amount": -n}
        records += [{"id": f"n{i:03d}", "created": top + i, "amount": 1000 + i}
                    for i in range(created)]
        if not start_param:
            records = [r for i, r in enumerate(records) if i not in deleted]
        api.put("events", records)
        assert sync(api, lake, raw, marks)["events"].status == "ok"
        assert table(lake, "events", "id", "created", "amount") == kept(records, initial)


def test_a_second_run_without_changes_lands_nothing(tmp_path: Path) -> None:
    """dlt's ``test_incremental_implicitly_filters_out_data`` on an API of ours: the second
    run reads every page again (the API cannot filter) and writes nothing."""
    marks = MemoryMarkStore()
    records = [{"id": f"e{i:03d}", "created": i, "amount": i} for i in range(35)]
    with CursorApi(ignore_filters=True) as api:
        api.put("events", records)
        assert sync(api, tmp_path, config(5, False), marks)["events"].status == "ok"
        second = sync(api, tmp_path, config(5, False), marks)["events"]
        assert (second.status, second.inserted, second.updated, second.commits) == \
            ("ok", 0, 0, 0)
        assert table(tmp_path, "events", "id", "created", "amount") == kept(records, 5)


@pytest.mark.parametrize("start_param", [True, False])
def test_a_date_only_cursor_fails_naming_the_cursor_not_ok_with_nothing(
        tmp_path: Path, start_param: bool) -> None:
    """A cursor of dates (``"2024-01-03"``) has no instant to keep a mark at: the resource
    fails naming ``cursor_path`` and what to do, instead of setting every record aside and
    ending ok with an empty table (found by a new user's trial)."""
    incremental: dict[str, Any] = {"cursor_path": "day",
                                   "initial_value": "2024-01-01T00:00:00Z"}
    if start_param:
        incremental["start_param"] = "day[gte]"  # a filter this API ignores
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": incremental}})
    with CursorApi() as api:
        api.put("events", [{"id": f"e{i}", "created": i, "day": f"2024-01-0{i + 1}"}
                           for i in range(3)])
        summary = sync(api, tmp_path, raw, MemoryMarkStore())["events"]
    assert summary.status == "failed"
    assert "'day' holds dates without a time ('2024-01-0" in (summary.error or "")
    assert "incremental.cursor_path" in (summary.error or "")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrent_slices_over_an_api_that_ignores_the_filter_land_exactly(
        tmp_path: Path, concurrency: int) -> None:
    """``endpoint.concurrency: 3``, whose slices are cut by the cursor filter, on an API that
    ignores it (and counts everything): every record at or after the start lands, none below,
    the run ends ok and saves a mark that moves (a new user's trial found a sliced walk that
    fell back saving none, so every run was a full read), on the first run and after changes."""
    records = [{"id": f"e{i:03d}", "created": i, "amount": i} for i in range(600)]
    raw = config(10, True)
    raw["resources"][0]["endpoint"]["concurrency"] = concurrency
    marks = MemoryMarkStore()
    with CursorApi(ignore_filters=True, counts=True) as api:
        api.put("events", records)
        for run in range(2):
            summary = sync(api, tmp_path, raw, marks)["events"]
            assert summary.status == "ok", summary
            # A lagged read's mark lags one run (window.py): the first answer bounds the
            # first; the table's highest the next.
            assert summary.mark is not None and (run == 0 or int(summary.mark) > 10), summary
            assert table(tmp_path, "events", "id", "created", "amount") == kept(records, 10)
            records = [{**r, "created": r["created"] + 1000, "amount": -1} if i % 7 == 0 else r
                       for i, r in enumerate(records)]
            api.put("events", records)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=st.lists(st.integers(0, 90), min_size=1, max_size=40),
       later=st.lists(st.integers(91, 120), max_size=10), bucket=st.sampled_from([10, 50, 100]))
def test_a_coarse_filter_never_gets_a_live_record_deleted(
        tmp_path_factory: pytest.TempPathFactory, first: list[int], later: list[int],
        bucket: int) -> None:
    """An API that applies ``start_param`` to a coarser bucket (the day of an instant) serves
    records below the start: the read falls back to every page, but the requests still carry
    the filter, so records of earlier buckets are not served. None of them may be taken for
    deleted (found by a new user's trial: they were soft-deleted); four runs, table exact."""
    lake = tmp_path_factory.mktemp("lake")
    marks = MemoryMarkStore()
    records = [{"id": f"e{i:03d}", "created": c, "amount": i} for i, c in enumerate(first)]
    raw = config(0, True)
    raw["resources"][0]["endpoint"]["concurrency"] = 1
    raw["resources"][0]["endpoint"]["incremental"]["lag"] = 3  # a start inside a bucket
    with CursorApi(coarse_filter=bucket) as api:
        for step in range(4):  # the lagged mark reaches the later records by the third run
            if step == 1:
                records += [{"id": f"n{i:03d}", "created": c, "amount": -i}
                            for i, c in enumerate(later)]
            api.put("events", records)
            summary = sync(api, lake, raw, marks)["events"]
            assert summary.status == "ok", summary
            assert summary.deleted == 0, summary
            assert table(lake, "events", "id", "created", "amount") == kept(records, 0)




@pytest.mark.parametrize("start_param", [True, False])
@given(form=st.sampled_from(["{d}T00:00:00", "{d}T10", "{d} 10:00", "2024-W01-{n}",
                             "2024-00{n}", "{d}Z", "{d} ", "yesterday {n}"]))
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_cursor_no_value_of_which_reads_fails_naming_it(
        tmp_path_factory: pytest.TempPathFactory, start_param: bool, form: str) -> None:
    """Cursor values without an instant (no UTC offset, week dates, words): every record would
    be set aside and the run end ok with nothing (a new user's trial); the first page says it
    instead, naming ``cursor_path`` and an example."""
    incremental: dict[str, Any] = {"cursor_path": "day",
                                   "initial_value": "2024-01-01T00:00:00Z"}
    if start_param:
        incremental["start_param"] = "day[gte]"  # a filter this API ignores
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": incremental}})
    lake = tmp_path_factory.mktemp("lake")
    with CursorApi() as api:
        api.put("events", [{"id": f"e{i}", "created": i,
                            "day": form.format(d=f"2024-01-0{i + 1}", n=i + 1)}
                           for i in range(3)])
        summary = sync(api, lake, raw, MemoryMarkStore())["events"]
    assert summary.status == "failed", summary
    assert "'day'" in (summary.error or "") and "incremental.cursor_path" in (summary.error or "")

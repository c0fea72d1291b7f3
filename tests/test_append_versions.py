"""Append tables with an incremental cursor keep each version once (docs/data-model.md).

A keyset read starts each request again at the last cursor of the page before, and a lagged
re-read reads the window below its mark again: both serve records the table already holds.
A merge table drops such re-reads; an append table must too, by version, (primary key, cursor
value), while a changed record (a new cursor) is appended. Over a real loopback API and real
Delta tables; the oracle is the server's own history (every version it held at a run's start,
at or after ``initial_value``), never our code path.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, load_config, run_sync
from analytics_client.core.summary import ResourceSummary
from tests.routeserver import Request, RouteServer

INITIAL = "2024-01-01T00:00:00Z"
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Items:
    """``GET /items?since=&page=``: records with ``updated >= since``, sorted by (updated, id),
    ``size`` a page, answered ``{"data": [...], "total_pages": n}``. ``history`` holds every
    version the API held at the start of a run (the oracle's source)."""

    def __init__(self, records: dict[int, dt.datetime], size: int) -> None:
        self.records = dict(records)
        self.size = size
        self.history: set[tuple[int, dt.datetime]] = set()

    def snapshot(self) -> None:
        """A run starts: every version held now is one the run must land (once)."""
        self.history |= set(self.records.items())

    def route(self, request: Request) -> tuple[int, Any]:
        since = dt.datetime.fromisoformat(
            request.query.get("since", INITIAL).replace("Z", "+00:00"))
        rows = sorted((u, i) for i, u in self.records.items() if u >= since)
        page = int(request.query.get("page", "1"))
        total = max(1, -(-len(rows) // self.size))
        chunk = rows[(page - 1) * self.size: page * self.size]
        return 200, {"data": [{"id": i, "updated": _iso(u)} for u, i in chunk],
                     "total_pages": total}


def _config(style: str) -> dict[str, Any]:
    endpoint: dict[str, Any] = {
        "path": "items", "data_selector": "data",
        "paginator": {"type": "page_number", "base_page": 1, "total_path": "total_pages"}}
    if style == "start_param":
        endpoint["incremental"] = {"cursor_path": "updated", "start_param": "since",
                                   "initial_value": INITIAL}
    else:  # the placeholder: a lagged re-read
        endpoint["params"] = {"since": "{incremental.start_value}"}
        endpoint["incremental"] = {"cursor_path": "updated", "initial_value": INITIAL}
    return {"client": {"base_url": "http://unused"},
            "resources": [{"name": "items", "write_disposition": "append",
                           "primary_key": "id", "endpoint": endpoint}]}


def _run(server: RouteServer, lake: Path, style: str, run_id: str) -> ResourceSummary:
    source = load_config(_config(style), base_url=server.base_url)
    [summary] = run_sync(source, Credentials(api_key="k"), str(lake), run_id=run_id,
                         pipeline="append-versions")
    assert summary.status == "ok", summary.error
    return summary


def _versions(lake: Path) -> list[tuple[int, dt.datetime]]:
    frame = pl.read_delta(str(lake / "items")).select("id", "updated")
    return [(int(i), u) for i, u in frame.iter_rows()]


def _hours(n: int) -> dict[int, dt.datetime]:
    return {i: BASE + dt.timedelta(hours=i) for i in range(n)}


def test_a_keyset_read_of_an_unchanged_api_appends_each_record_once(tmp_path: Path) -> None:
    items = Items(_hours(14), size=4)
    with RouteServer({("GET", r"/items"): items.route}) as server:
        items.snapshot()
        summary = _run(server, tmp_path, "start_param", "r1")
    rows = _versions(tmp_path)
    assert sorted(rows) == sorted(items.history)  # 14 rows, none twice
    assert summary.inserted == len(items.history)
    assert summary.rows_fetched > summary.inserted  # the page edges were read twice


def test_a_lagged_rerun_of_an_unchanged_api_appends_nothing(tmp_path: Path) -> None:
    items = Items(_hours(14), size=4)
    with RouteServer({("GET", r"/items"): items.route}) as server:
        items.snapshot()
        _run(server, tmp_path, "placeholder", "r1")
        items.snapshot()
        second = _run(server, tmp_path, "placeholder", "r2")
    assert sorted(_versions(tmp_path)) == sorted(items.history)
    assert second.inserted == 0
    assert second.rows_fetched > 0  # the re-read happened, and landed nothing new


def test_a_changed_record_is_appended_as_a_new_version(tmp_path: Path) -> None:
    items = Items(_hours(6), size=4)
    with RouteServer({("GET", r"/items"): items.route}) as server:
        for run_id in ("r1", "r2"):
            items.snapshot()
            _run(server, tmp_path, "start_param", run_id)
            items.records[5] = BASE + dt.timedelta(hours=30)  # id 5 changes after run 1
    rows = _versions(tmp_path)
    assert sorted(rows) == sorted(items.history)
    assert sum(1 for i, _ in rows if i == 5) == 2  # its old version and its new one


@st.composite
def _histories(draw: st.DrawFn) -> tuple[int, dict[int, dt.datetime], list[list[int]]]:
    size = draw(st.integers(1, 5))
    count = draw(st.integers(0, 12))
    # Cursors at whole hours, several records may share one (tie groups at page edges).
    start = {i: BASE + dt.timedelta(hours=draw(st.integers(0, 6))) for i in range(count)}
    changes = draw(st.lists(st.lists(st.integers(0, count + 3), max_size=4), min_size=1,
                            max_size=3))
    return size, start, changes


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=_histories(), style=st.sampled_from(["start_param", "placeholder"]))
def test_an_append_table_holds_every_version_served_exactly_once(
        tmp_path_factory: Any, history: tuple[int, dict[int, dt.datetime], list[list[int]]],
        style: str) -> None:
    size, start, changes = history
    lake = tmp_path_factory.mktemp("lake")
    items = Items(start, size)
    clock = BASE + dt.timedelta(hours=10)
    with RouteServer({("GET", r"/items"): items.route}) as server:
        items.snapshot()
        _run(server, lake, style, "r0")
        for n, changed in enumerate(changes, 1):
            for i in changed:  # a change (or a new record) gets a later cursor, as a clock would
                clock += dt.timedelta(hours=1)
                items.records[i] = clock
            items.snapshot()
            _run(server, lake, style, f"r{n}")
    rows = _versions(lake) if (lake / "items").exists() else []
    assert len(rows) == len(set(rows)), "a version was appended twice"
    assert set(rows) == items.history, "the table is not the versions the API served"

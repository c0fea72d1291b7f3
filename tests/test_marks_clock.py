"""Marks and the API's clock (issue 23, items 3 and 5), against a loopback API the test controls.

The server (tests/recordserver.py) dates every answer by a clock the test sets, and serves the
records the test wrote; the test's own records are the oracle. The contract, measured on that
clock, is all the generated changes obey: a change the previous run could not see (made after
its answers were dated ``t``) is stamped after ``t - 5 s`` and never after the clock now.
Records stamped in the future break it on purpose.

* A record (or a tie group larger than a page) stamped in the future never blinds a later run:
  every later real change is read, and each run's summary names the future records once.
* After a full read whose tie group at the mark lies at least 6 s before the API's clock, a run
  with nothing new makes one request; when the clock proved nothing yet, the first quiet run
  proves it (one commit of the mark alone) and the next one makes one request.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, load_config, run_sync
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timing import Timing
from tests.records_support import APP_ID, own_config, table_mark
from tests.recordserver import RecordServer, instant_ns

FILTER = "filter[updated_at][gte]"
SECOND = 1_000_000
NOW = 1_780_000_000  # 2026-05-28T20:26:40Z: the API's clock when the test begins (Unix s)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def stamp(micros: int) -> str:
    """An instant as the contract writes it (independent of the library's codec)."""
    return (EPOCH + dt.timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros(text: str) -> int:
    ns = instant_ns(text)
    assert ns is not None and ns % 1000 == 0, text
    return ns // 1000


@dataclass
class Api:
    """The test's records (the oracle) and the API's clock, served by a ``RecordServer``."""

    server: RecordServer
    now: int = NOW  # the API's clock, Unix seconds
    records: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (cursor µs, version)

    def put(self, id_: str, cursor_us: int) -> None:
        version = self.records[id_][1] + 1 if id_ in self.records else 1
        self.records[id_] = (cursor_us, version)
        self.serve()

    def serve(self) -> None:
        self.server.put("events", [json.dumps({"id": i, "updated_at": stamp(c), "v": v})
                                   for i, (c, v) in self.records.items()])

    def requests(self) -> list[dict[str, str]]:
        return [params for path, params in self.server.queries if path == "/v1/events"]


@pytest.fixture
def api() -> Iterator[Api]:
    state: list[Api] = []
    with RecordServer(clock=lambda: state[0].now) as server:
        state.append(Api(server))
        yield state[0]


def sync(api: Api, lake: Path, *, limit: int = 3, lag: float = 10.0, deletes: str = "off",
         run_id: str = "run") -> ResourceSummary:
    config = own_config(limit=limit, delete_missing=deletes)
    config["resources"][0]["endpoint"]["incremental"]["lag"] = lag
    source = load_config(config, base_url=api.server.base_url)
    [summary] = run_sync(source, Credentials("any-key", "any-org"), str(lake),
                         pipeline="analytics", run_id=run_id, batch_rows=limit)
    assert summary.status == "ok", summary.error
    return summary


def assert_table_is_the_api(api: Api, lake: Path) -> None:
    """Every record of the API, once, at its latest version and cursor."""
    frame = pl.read_delta(str(lake / "events"), columns=["id", "updated_at", "v"])
    rows = {r["id"]: r for r in frame.to_dicts()}
    assert frame.height == len(rows), "an id landed twice"
    stored = {i: ((r["updated_at"] - EPOCH) // dt.timedelta(microseconds=1), r["v"])
              for i, r in rows.items()}
    missing = sorted(set(api.records) - set(stored))
    stale = sorted(i for i in set(api.records) & set(stored) if stored[i] != api.records[i])
    assert not missing and not stale and set(stored) == set(api.records), (
        f"missing {missing[:5]}, stale {stale[:5]} (table, api): "
        f"{[(stored[i], api.records[i]) for i in stale[:3]]}")


def future_notes(summary: ResourceSummary) -> list[str]:
    return [n for n in summary.notes if "past the API's clock" in n]


def assert_names_once(summary: ResourceSummary, future: set[str], real: set[str]) -> None:
    """One note names the run's future records, each listed id once, and no real record."""
    [note] = future_notes(summary) if future else [None]
    if note is None:
        assert not future_notes(summary), summary.notes
        return
    assert note.startswith(f"{len(future):,} record(s) carry updated_at"), note
    named = [i for i in future | real if f"{i} (" in note]
    assert named and set(named) <= future, (named, note)
    assert all(note.count(f"{i} (") == 1 for i in named), note
    assert len(named) == min(len(future), 5), note


# ---- a future record never blinds a later run ------------------------------------------------

real_offsets = st.lists(st.integers(0, 3 * 86_400 * SECOND), min_size=1, max_size=12)
# An hour at least: still past the clock (and its minute of tolerance) after every step.
future_offsets = st.integers(3600 * SECOND, 10 * 365 * 86_400 * SECOND)


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """Real records over the three days before the clock (ties among them, one at the clock
    itself sometimes), future outliers (singles and a tie group of 1-9), and later steps: the
    clock moves on and real records change or appear, stamped as the contract allows."""
    offsets = draw(real_offsets)
    ties = draw(st.lists(st.sampled_from(offsets), max_size=6))  # more records at one instant
    singles = draw(st.lists(future_offsets, max_size=3))
    group = draw(st.integers(0, 9))
    steps = draw(st.lists(st.fixed_dictionaries({
        "seconds": st.integers(1, 300),
        "changes": st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10**9)),
                            min_size=1, max_size=6),
        "future": st.booleans(),
    }), min_size=1, max_size=3))
    return {"real": offsets + ties, "singles": singles, "group": group,
            "group_at": draw(future_offsets), "steps": steps,
            "limit": draw(st.integers(2, 4)), "lag": draw(st.sampled_from([5.0, 10.0, 60.0]))}


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_records_stamped_in_the_future_never_blind_a_later_run(
        api: Api, tmp_path_factory: pytest.TempPathFactory, history: dict[str, Any]) -> None:
    """Each run lands every record (future ones too), the table equals the test's records
    after every run, and the summary names the records past the clock once per run."""
    lake = tmp_path_factory.mktemp("lake")
    api.records.clear()
    api.server.queries.clear()
    api.now = NOW
    clock_us = NOW * SECOND
    for n, offset in enumerate(history["real"]):
        api.put(f"r{n:02d}", clock_us - offset)
    future = {f"f{n}": clock_us + offset for n, offset in enumerate(history["singles"])}
    future |= {f"g{n}": clock_us + history["group_at"] for n in range(history["group"])}
    for id_, cursor in future.items():
        api.put(id_, cursor)
    real = {i for i in api.records if i.startswith("r")}
    limit, lag = history["limit"], history["lag"]

    summary = sync(api, lake, limit=limit, lag=lag, run_id="r0")
    assert_table_is_the_api(api, lake)
    assert_names_once(summary, set(future), real)
    mark = table_mark(lake, "events")
    assert mark is not None and mark <= NOW * SECOND, "the mark passed the API's clock"

    for n, step in enumerate(history["steps"], start=1):
        seen_at = api.now * SECOND  # what the last run's answers were dated
        api.now += step["seconds"]
        lowest = seen_at - 5 * SECOND + 1  # the contract: at most 5 s late
        existing = sorted(real)
        for pick, at in step["changes"]:
            # A change the last run could not see: stamped after its clock less 5 s, never
            # after the clock now, and after the record's own last stamp.
            id_ = existing[pick] if pick < len(existing) else f"n{n}-{pick}"
            cursor = lowest + at % (api.now * SECOND - lowest + 1)
            if id_ in api.records:
                cursor = max(cursor, api.records[id_][0] + 1)
            if cursor > api.now * SECOND:
                continue  # the record already stands at the clock: no room for a change
            api.put(id_, cursor)
            real.add(id_)
        if step["future"]:
            future[f"f-{n}"] = api.now * SECOND + history["group_at"]
            api.put(f"f-{n}", future[f"f-{n}"])
        summary = sync(api, lake, limit=limit, lag=lag, run_id=f"r{n}")
        assert_table_is_the_api(api, lake)
        assert_names_once(summary, set(future), real)
        mark = table_mark(lake, "events")
        assert mark is not None and mark <= api.now * SECOND, "the mark passed the API's clock"


def test_one_record_from_2030_lands_is_named_once_and_the_next_run_reads_on(
        api: Api, tmp_path: Path) -> None:
    """The issue's case: a record stamped 2030-01-01 among real ones. It lands and the summary
    names it; the table's mark stays at the API's clock; the next run asks from the clock less
    the lag (not from 2029-12-31) and reads the real change made meanwhile."""
    for n in range(5):
        api.put(f"r{n}", (NOW - 3600 + n) * SECOND)
    api.put("f", micros("2030-01-01T00:00:00Z"))
    first = sync(api, tmp_path)
    assert_table_is_the_api(api, tmp_path)
    [note] = future_notes(first)
    assert note.count("f (2030-01-01T00:00:00.000000Z)") == 1, note
    assert table_mark(tmp_path, "events") == NOW * SECOND

    api.now += 60
    api.put("r2", (api.now - 30) * SECOND)
    api.server.queries.clear()
    second = sync(api, tmp_path)
    assert_table_is_the_api(api, tmp_path)
    assert micros(api.requests()[0][FILTER]) == (NOW - 10) * SECOND
    assert second.updated == 1 and len(future_notes(second)) == 1


def test_a_future_tie_group_larger_than_a_page_never_blinds_a_later_run(
        api: Api, tmp_path: Path) -> None:
    """Seven records share 2031-06-01 and the page holds three: the walk reads the group by
    page, lands it, and the mark stays at the clock; two later runs read every real change."""
    for n in range(4):
        api.put(f"r{n}", (NOW - 100 * n) * SECOND)
    group = {f"g{n}" for n in range(7)}
    for id_ in sorted(group):
        api.put(id_, micros("2031-06-01T00:00:00Z"))
    summary = sync(api, tmp_path, limit=3)
    assert_table_is_the_api(api, tmp_path)
    assert_names_once(summary, group, {"r0", "r1", "r2", "r3"})
    for step in range(2):
        api.now += 20
        api.put(f"r{step}", (api.now - 3) * SECOND)
        api.put(f"new{step}", api.now * SECOND)
        summary = sync(api, tmp_path, limit=3)
        assert_table_is_the_api(api, tmp_path)
        assert_names_once(summary, group, set(api.records) - group)
        assert table_mark(tmp_path, "events") == api.now * SECOND  # the run's clock


def test_a_mark_an_earlier_version_moved_to_2030_is_named_with_its_fix(
        api: Api, tmp_path: Path) -> None:
    """What the cap cannot repair: a table whose mark an earlier version moved to 2030. The
    run reads from there (what changed since was never read, nothing says where the truth
    was), and the summary names the mark, the API's clock and the fix."""
    api.put("r0", (NOW - 60) * SECOND)
    sync(api, tmp_path)
    poisoned = micros("2030-01-01T00:00:00Z")
    DeltaTable(str(tmp_path / "events")).create_write_transaction(
        [], "append", schema=DeltaTable(str(tmp_path / "events")).schema(),
        commit_properties=CommitProperties(app_transactions=[Transaction(APP_ID, poisoned)]))
    summary = sync(api, tmp_path)
    [note] = [n for n in summary.notes if "ahead of the API's clock" in n]
    assert "2030-01-01T00:00:00.000000Z" in note and "--full-refresh events" in note, note
    assert table_mark(tmp_path, "events") == poisoned  # not lowered: it would claim a lie


# ---- a mark the API's clock has proven -----------------------------------------------------

def tie_group_at_the_mark(api: Api, *, seconds_before_clock: int) -> int:
    """Ten records, seven of them sharing the newest instant (more than a page of three)."""
    mark = (api.now - seconds_before_clock) * SECOND
    for n in range(3):
        api.put(f"a{n}", mark - (n + 1) * 60 * SECOND)
    for n in range(7):
        api.put(f"t{n}", mark)
    return mark


def mark_commits(lake: Path) -> list[dict[str, Any]]:
    return [c for c in DeltaTable(str(lake / "events")).history()
            if c.get("analytics_sync.operation") == "mark"]


@pytest.mark.parametrize("deletes", ["off", "soft"])
def test_a_quiet_run_after_a_full_read_makes_one_request(
        api: Api, tmp_path: Path, deletes: str) -> None:
    """The tie group at the mark lies 6 s before the API's clock at the first answer: the full
    read proves the mark, and the next run asks once, strictly after it (with delete capture
    on, its bisection adds its one one-record count request, docs/deletes.md)."""
    mark = tie_group_at_the_mark(api, seconds_before_clock=6)
    sync(api, tmp_path, deletes=deletes)
    assert table_mark(tmp_path, "events") == mark
    version = DeltaTable(str(tmp_path / "events")).version()

    api.now += 900  # the schedule's next run
    api.server.queries.clear()
    quiet = sync(api, tmp_path, deletes=deletes)
    reads = [q for q in api.requests() if q.get("page[size]") != "1"]
    assert len(reads) == 1, reads
    assert micros(reads[0][FILTER]) == mark + 1  # strictly after the mark: no lag, no tie group
    assert len(api.requests()) == (1 if deletes == "off" else 2), api.requests()
    assert (quiet.pages, quiet.rows_fetched, quiet.commits) == (1, 0, 0)
    assert DeltaTable(str(tmp_path / "events")).version() == version  # nothing written

    api.now += 30
    api.put("t3", api.now * SECOND)  # one change: read, and the mark follows it
    api.server.queries.clear()
    changed = sync(api, tmp_path, deletes=deletes)
    assert changed.updated == 1
    assert_table_is_the_api(api, tmp_path)


def test_a_mark_the_clock_did_not_prove_is_proven_by_the_next_quiet_run(
        api: Api, tmp_path: Path) -> None:
    """The tie group at the mark is 2 s before the API's clock: nothing is proven, and the
    first quiet run reads the lag window and the group again, then records the proof (one
    commit of the mark alone); from then on a quiet run makes one request."""
    mark = tie_group_at_the_mark(api, seconds_before_clock=2)
    sync(api, tmp_path)
    assert not mark_commits(tmp_path)

    api.now += 900
    api.server.queries.clear()
    sync(api, tmp_path)
    assert len(api.requests()) > 3 and micros(api.requests()[0][FILTER]) == mark - 10 * SECOND
    assert len(mark_commits(tmp_path)) == 1  # the proof, once

    for _ in range(2):
        api.now += 900
        api.server.queries.clear()
        sync(api, tmp_path)
        assert len(api.requests()) == 1 and micros(api.requests()[0][FILTER]) == mark + 1
    assert len(mark_commits(tmp_path)) == 1
    assert table_mark(tmp_path, "events") == mark
    assert_table_is_the_api(api, tmp_path)


def test_the_marks_of_a_read_that_fails_midway_prove_nothing(api: Api, tmp_path: Path) -> None:
    """A read that fails after two commits leaves their marks without the API's clock (the tie
    group at a mid-read mark may be unread): the next run starts lag before the mark."""
    for n in range(9):
        api.put(f"r{n}", (NOW - 3600 + 60 * n) * SECOND)

    def fail_the_third_page(n: int, params: dict[str, str]) -> None:
        if n == 3:
            api.server.drop("events")  # a 404: not retried, the read fails there

    api.server.on_request = fail_the_third_page
    config = own_config(limit=3, delete_missing="off")
    source = load_config(config, base_url=api.server.base_url)
    [failed] = run_sync(source, Credentials("k", "o"), str(tmp_path), pipeline="analytics",
                        batch_rows=3, timing=Timing(merge_every=0))  # a commit per batch
    assert failed.status == "failed" and failed.commits == 2, (failed.error, failed.commits)
    mark = table_mark(tmp_path, "events")
    assert mark == (NOW - 3600 + 60 * 2) * SECOND  # where the second page began
    clock = DeltaTable(str(tmp_path / "events")).transaction_version(f"{APP_ID}:api-clock")
    assert clock == 0

    api.server.on_request = None
    api.serve()
    api.server.queries.clear()
    sync(api, tmp_path)
    assert micros(api.requests()[0][FILTER]) == mark - 10 * SECOND
    assert_table_is_the_api(api, tmp_path)


def test_without_a_date_every_run_starts_lag_before_the_mark(tmp_path: Path) -> None:
    """An API that dates nothing proves nothing and caps nothing: as before the clock."""
    with RecordServer(clock=lambda: None) as server:
        api = Api(server)
        mark = tie_group_at_the_mark(api, seconds_before_clock=3600)
        sync(api, tmp_path)
        server.queries.clear()
        sync(api, tmp_path)
        assert micros(api.requests()[0][FILTER]) == mark - 10 * SECOND
    assert DeltaTable(str(tmp_path / "events")).transaction_version(f"{APP_ID}:api-clock") == 0


# ---- a record without a cursor --------------------------------------------------------------

def cursorless_config(api: Api, missing: str) -> Any:
    config = own_config(delete_missing="off")
    config["resources"][0]["endpoint"]["incremental"]["on_cursor_value_missing"] = missing
    return load_config(config, base_url=api.server.base_url)


@pytest.mark.parametrize("missing", ["raise", "include", "exclude"])
def test_a_record_without_a_cursor_lands_keyed_when_the_config_includes_it(
        api: Api, tmp_path: Path, missing: str) -> None:
    """dlt's on_cursor_value_missing: ``include`` lands records whose cursor is missing or null
    (keyed, the cursor null) and they move no mark; ``raise`` (the default) sets them aside by
    name; ``exclude`` drops them. Once such a record gets a cursor, it lands with it."""
    at = (NOW - 600) * SECOND
    api.server.put("events", [json.dumps({"id": "a", "updated_at": stamp(at), "v": 1}),
                              json.dumps({"id": "b", "v": 1}),
                              json.dumps({"id": "c", "updated_at": None, "v": 1})])
    source = cursorless_config(api, missing)
    [first] = run_sync(source, Credentials("k", "o"), str(tmp_path), pipeline="analytics")
    assert first.status == "ok", first.error
    rows = {r["id"]: r for r in pl.read_delta(str(tmp_path / "events")).to_dicts()}
    landed = {"raise": {"a"}, "include": {"a", "b", "c"}, "exclude": {"a"}}[missing]
    assert set(rows) == landed
    assert first.quarantined == (2 if missing == "raise" else 0)
    if missing == "include":
        assert rows["b"]["updated_at"] is None and rows["c"]["updated_at"] is None
    assert table_mark(tmp_path, "events") == at  # never moved by a record without a cursor

    api.now += 60
    api.server.put("events", [json.dumps({"id": "a", "updated_at": stamp(at), "v": 1}),
                              json.dumps({"id": "b", "v": 1}),
                              json.dumps({"id": "c", "updated_at": stamp(api.now * SECOND),
                                          "v": 2})])
    [second] = run_sync(source, Credentials("k", "o"), str(tmp_path), pipeline="analytics")
    assert second.status == "ok", second.error
    rows = {r["id"]: r for r in pl.read_delta(str(tmp_path / "events")).to_dicts()}
    assert rows["c"]["v"] == 2 and micros(rows["c"]["updated_at"].isoformat()) == api.now * SECOND
    assert ("b" in rows) == (missing == "include")


def test_a_version_without_a_cursor_never_replaces_one_that_has_it(
        api: Api, tmp_path: Path) -> None:
    """Served again without its cursor (a full refresh), a record keeps the version that has
    one: nothing says which is newer."""
    at = (NOW - 600) * SECOND
    api.server.put("events", [json.dumps({"id": "a", "updated_at": stamp(at), "v": 1})])
    source = cursorless_config(api, "include")
    run_sync(source, Credentials("k", "o"), str(tmp_path), pipeline="analytics")
    api.server.put("events", [json.dumps({"id": "a", "v": 2})])
    [again] = run_sync(source, Credentials("k", "o"), str(tmp_path), pipeline="analytics",
                       full_refresh=True)
    assert again.status == "ok", again.error
    [row] = pl.read_delta(str(tmp_path / "events")).to_dicts()
    assert row["v"] == 1 and row["updated_at"] is not None

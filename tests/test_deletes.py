"""Deleted at the source, gone from the lake (docs/deletes.md), against a loopback API whose
records a test owns: the oracle is the test's own dict of live records, never our code.

Soft (the default): a row whose record is gone keeps its values with ``_deleted_at`` set;
hard: the row is removed. Live rows (``_deleted_at IS NULL``) equal the API's records after a
quiet run, and no row whose record is alive is ever marked, also while the API changes under a
run's paging.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, Lake, load_config
from analytics_client.core.stop import StopFlag
from analytics_client.http.client import ApiClient
from analytics_client.run.sync import sync_resource
from tests.plans import plan_of
from tests.records_support import own_config, run, table, table_exists
from tests.recordserver import RecordServer

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


class Api:
    """The test's model of the API: live records by id, each with its ``updated_at`` (s)."""

    def __init__(self, server: RecordServer, n: int = 0, *, stamp_all: int | None = None) -> None:
        self.server, self.clock, self.next_id = server, 0, 0
        self.records: dict[str, int] = {}
        self.deleted: set[str] = set()
        self.create(n, stamp=stamp_all)

    def _put(self) -> None:
        self.server.put("events", [self.raw(i) for i in sorted(self.records)])

    def raw(self, id_: str) -> str:
        when = (BASE + dt.timedelta(seconds=self.records[id_])).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps({"id": id_, "updated_at": when, "v": self.records[id_]})

    def create(self, n: int, *, stamp: int | None = None) -> None:
        for _ in range(n):
            self.clock += 1
            self.records[f"e{self.next_id:05d}"] = stamp if stamp is not None else self.clock
            self.next_id += 1
        self._put()

    def update(self, picks: list[int]) -> None:
        ids = sorted(self.records)
        for pick in picks:
            if ids:
                self.clock += 1
                self.records[ids[pick % len(ids)]] = self.clock
        self._put()

    def delete(self, picks: list[int]) -> None:
        for pick in picks:
            ids = sorted(self.records)
            if ids:
                gone = ids[pick % len(ids)]
                del self.records[gone]
                self.deleted.add(gone)
        self._put()


def config(mode: str = "soft", **resource: Any) -> dict[str, Any]:
    return own_config(limit=10, delete_missing=mode, max_delete_share=1.0, **resource)


def live(lake: Path) -> pl.DataFrame:
    frame = table(lake, "events")
    return frame.filter(pl.col("_deleted_at").is_null())


def assert_lake_equals(api: Api, lake: Path, mode: str) -> None:
    """Live rows are exactly the API's records, each with its latest version; soft keeps the
    deleted ones marked, hard keeps none of them."""
    if not table_exists(lake, "events"):  # nothing was ever served: no table of nothing
        assert api.records == {}
        return
    rows = table(lake, "events")
    ids = rows["id"].to_list()
    assert len(ids) == len(set(ids)), "duplicate ids"
    alive = dict(zip(live(lake)["id"].to_list(), live(lake)["v"].to_list(), strict=True))
    assert alive == api.records
    gone = set(ids) - set(alive)
    assert gone <= api.deleted
    if mode == "hard":
        assert not gone


def assert_no_live_record_marked(api: Api, lake: Path) -> None:
    if not table_exists(lake, "events"):
        return
    marked = table(lake, "events").filter(pl.col("_deleted_at").is_not_null())["id"].to_list()
    assert not set(marked) & set(api.records), "a record the API still has was marked deleted"


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_deletes_between_runs_leave_the_lake(tmp_path: Path, mode: str) -> None:
    """Records deleted between two incremental runs are marked (soft) or removed (hard)."""
    with RecordServer() as server:
        api = Api(server, 120)
        run(server, tmp_path, config(mode))
        api.delete([3, 50, 51, 99])
        api.update([7])
        summary = run(server, tmp_path, config(mode), run_id="second")["events"]
        assert summary.status == "ok", summary.error
        assert summary.deleted == 4
        assert_lake_equals(api, tmp_path, mode)
        if mode == "soft":
            marked = table(tmp_path, "events").filter(pl.col("_deleted_at").is_not_null())
            assert set(marked["id"]) == api.deleted
            assert marked["v"].null_count() == 0  # the last values stay


def test_a_record_that_comes_back_is_live_again(tmp_path: Path) -> None:
    """A soft-deleted row whose record the API serves again (an undelete, unchanged) is live
    again after the read that sees it."""
    with RecordServer() as server:
        api = Api(server, 30)
        run(server, tmp_path, config())
        value = api.records["e00004"]
        api.delete([4])
        run(server, tmp_path, config(), run_id="two")
        assert "e00004" not in live(tmp_path)["id"].to_list()
        api.records["e00004"] = value
        api.deleted.discard("e00004")
        api._put()
        summary = _full(server, tmp_path, config())
        assert summary.status == "ok", summary.error
        assert_lake_equals(api, tmp_path, "soft")


def _full(server: RecordServer, lake: Path, cfg: dict[str, Any]) -> Any:
    source = load_config(cfg, base_url=server.base_url)
    from analytics_client import run_sync
    return run_sync(source, Credentials("k", "o"), str(lake), full_refresh=True,
                    run_id="full", pipeline="analytics")[0]


def test_full_refresh_finds_deletes_anywhere(tmp_path: Path) -> None:
    """--full-refresh (a complete read) marks exactly the ids it did not see."""
    with RecordServer() as server:
        api = Api(server, 200)
        run(server, tmp_path, config())
        api.delete([0, 1, 2, 150])
        summary = _full(server, tmp_path, config())
        assert summary.status == "ok", summary.error
        assert summary.deleted == 4
        assert_lake_equals(api, tmp_path, "soft")


def test_the_guard_refuses_a_read_that_would_delete_too_much(tmp_path: Path) -> None:
    """An API that suddenly serves half its records fails the resource and deletes nothing."""
    with RecordServer() as server:
        api = Api(server, 100)
        run(server, tmp_path, own_config(limit=10))
        before = DeltaTable(str(tmp_path / "events")).version()
        api.delete(list(range(0, 100, 2)))
        summary = _full(server, tmp_path, own_config(limit=10))
        assert summary.status == "failed"
        assert "max_delete_share" in (summary.error or "") and "10%" in (summary.error or "")
        assert live(tmp_path).height == 100
        assert DeltaTable(str(tmp_path / "events")).version() == before


def _synced_then_two_deleted(server: RecordServer, lake: Path) -> tuple[Api, Any, Any]:
    """100 records synced, then two deleted at the API: the model, the source, its plan."""
    api = Api(server, 100)
    run(server, lake, config())
    api.delete([5, 6])
    source = load_config(config(), base_url=server.base_url)
    return api, source, plan_of(source.resources[0])


def test_a_stopped_run_deletes_nothing(tmp_path: Path) -> None:
    """A run stopped (Ctrl-C) mid-read keeps its commits and marks no row deleted."""
    with RecordServer() as server:
        api, source, plan = _synced_then_two_deleted(server, tmp_path)
        with ApiClient(source, Credentials("k", "o"), stop=StopFlag()) as client:
            server.on_request = lambda n, params: client.stop.request("a test") if n >= 3 else None
            summary = sync_resource(client, Lake(str(tmp_path)), plan, full_refresh=True)
        assert summary.status == "stopped"
        assert summary.deleted == 0
        assert table(tmp_path, "events")["_deleted_at"].null_count() == 100


def test_a_failed_run_deletes_nothing(tmp_path: Path) -> None:
    """A read that fails (the API answers 404 mid-read) deletes nothing."""
    with RecordServer() as server:
        api = Api(server, 100)
        run(server, tmp_path, config())
        api.delete([5, 6])

        def vanish(n: int, params: dict[str, str]) -> None:
            if n >= 4:
                server._records.pop("events", None)

        server.on_request = vanish
        summary = _full(server, tmp_path, config())
        assert summary.status == "failed"
        assert summary.deleted == 0
        assert table(tmp_path, "events")["_deleted_at"].null_count() == 100


@pytest.mark.parametrize("deletes", [0, 1, 8])
def test_incremental_delete_capture_costs_about_k_log_n_requests(tmp_path: Path,
                                                                 deletes: int) -> None:
    """An incremental run finds k deletes among n older records with about k*log2(n/k)
    one-record probes plus short re-reads; with none, one extra request (the API's count)."""
    import math
    with RecordServer() as server:
        n = 2000
        api = Api(server, n)
        # limit 100: as the default config pages; bigger pages make fewer re-read requests
        cfg = own_config(limit=100, delete_missing="soft")
        run(server, tmp_path, cfg)
        api.delete([i * 211 + 17 for i in range(deletes)])
        api.update([1])
        summary = run(server, tmp_path, cfg, run_id="two")["events"]
        assert summary.status == "ok", summary.error
        assert summary.deleted == deletes
        assert_lake_equals(api, tmp_path, "soft")
        bound = 1 if deletes == 0 else 2 + deletes * (math.log2(n / deletes) + 4)
        assert summary.delete_requests <= bound, summary.delete_requests


def test_deletes_inside_a_tie_group_larger_than_a_page(tmp_path: Path) -> None:
    """Records sharing one updated_at, more than a page of them, some deleted: exact."""
    with RecordServer() as server:
        api = Api(server, 0)
        api.create(60, stamp=5)
        api.create(40)
        run(server, tmp_path, config())
        api.delete([3, 17, 33, 59])
        summary = run(server, tmp_path, config(), run_id="two")["events"]
        assert summary.status == "ok", summary.error
        assert_lake_equals(api, tmp_path, "soft")


# ---- generated interleavings -------------------------------------------------------------

_op = st.tuples(st.sampled_from(["create", "update", "delete"]),
                st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
_step = st.fixed_dictionaries({
    "before": st.lists(_op, max_size=4),
    "during": st.lists(st.tuples(st.integers(1, 12), _op), max_size=3),
    "full": st.booleans(),
})


def _apply(api: Api, op: tuple[str, list[int]]) -> None:
    kind, picks = op
    if kind == "create":
        api.create(len(picks))
    elif kind == "update":
        api.update(picks)
    else:
        api.delete(picks)


@pytest.mark.slow
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(start=st.integers(1, 80), steps=st.lists(_step, min_size=1, max_size=4),
       mode=st.sampled_from(["soft", "hard"]))
def test_generated_creates_updates_and_deletes_across_runs(
        tmp_path_factory: pytest.TempPathFactory, start: int, steps: list[dict[str, Any]],
        mode: str) -> None:
    """Any interleaving of creates, updates and deletes, between runs and while a run pages:
    no live record is ever marked deleted, and after a quiet run (incremental and full) the
    live rows equal the API's records."""
    lake = tmp_path_factory.mktemp("lake")
    with RecordServer() as server:
        api = Api(server, start)
        for number, step in enumerate(steps):
            for op in step["before"]:
                _apply(api, op)
            pending = sorted(step["during"], key=lambda t: t[0])

            def during(n: int, params: dict[str, str], pending: list[Any] = pending) -> None:
                while pending and pending[0][0] <= n:
                    _apply(api, pending.pop(0)[1])

            server.on_request = during
            cfg = config(mode)
            if step["full"]:
                summary = _full(server, lake, cfg)
            else:
                summary = run(server, lake, cfg, run_id=f"r{number}")["events"]
            server.on_request = None
            assert summary.status == "ok", summary.error
            assert_no_live_record_marked(api, lake)
        quiet = run(server, lake, config(mode), run_id="quiet")["events"]
        assert quiet.status == "ok", quiet.error
        assert_lake_equals(api, lake, mode)
        assert _full(server, lake, config(mode)).status == "ok"
        assert_lake_equals(api, lake, mode)


# ---- tombstones, replace, the change feed ------------------------------------------------

@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_tombstones_delete_their_row_in_the_same_commit(tmp_path: Path, mode: str) -> None:
    """dlt's hard_delete hint: a record arriving with deleted=true deletes (hard) or marks
    (soft) its row in the commit that brings it; deleted=false or absent is a live record."""
    hinted = own_config(limit=10, delete_missing=mode,
                        columns={"deleted": {"hard_delete": True}})

    def event(id_: str, second: int, deleted: bool | None) -> str:
        when = (BASE + dt.timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body: dict[str, Any] = {"id": id_, "updated_at": when}
        if deleted is not None:
            body["deleted"] = deleted
        return json.dumps(body)

    with RecordServer() as server:
        server.put("events", [event("a", 1, False), event("b", 2, None), event("c", 3, False)])
        run(server, tmp_path, hinted)
        server.put("events", [event("a", 1, False), event("b", 20, True), event("c", 21, False),
                              event("z", 22, True)])
        summary = run(server, tmp_path, hinted, run_id="two")["events"]
        assert summary.status == "ok", summary.error
        rows = table(tmp_path, "events")
        assert sorted(live(tmp_path)["id"].to_list()) == ["a", "c"]
        if mode == "hard":
            assert sorted(rows["id"].to_list()) == ["a", "c"]
        else:
            marked = rows.filter(pl.col("_deleted_at").is_not_null())
            assert sorted(marked["id"].to_list()) == ["b", "z"]
        history = DeltaTable(str(tmp_path / "events")).history()
        assert not any("delete" in str(h.get("analytics_sync.operation", "")) for h in history)


@pytest.mark.parametrize("mode", ["soft", "hard", "off"])
def test_replace_keeps_missing_rows_marked_only_when_soft(tmp_path: Path, mode: str) -> None:
    """A replace reads everything: soft keeps the rows it did not see, marked; hard and off
    replace the table with what was read."""
    cfg = own_config(limit=10, write_disposition="replace", delete_missing=mode,
                     max_delete_share=1.0)
    del cfg["resources"][0]["endpoint"]["incremental"]  # replace reads everything
    with RecordServer() as server:
        api = Api(server, 20)
        run(server, tmp_path, cfg)
        api.delete([1, 2])
        summary = run(server, tmp_path, cfg, run_id="two")["events"]
        assert summary.status == "ok", summary.error
        assert sorted(live(tmp_path)["id"].to_list()) == sorted(api.records)
        assert table(tmp_path, "events").height == (20 if mode == "soft" else 18)


def test_tables_we_create_write_a_change_feed_of_each_run(tmp_path: Path) -> None:
    """Change Data Feed is on for new tables; a hard delete appears in it with the summary's
    version range."""
    with RecordServer() as server:
        api = Api(server, 30)
        run(server, tmp_path, config("hard"))
        dt_ = DeltaTable(str(tmp_path / "events"))
        assert dt_.metadata().configuration.get("delta.enableChangeDataFeed") == "true"
        api.delete([4])
        api.update([9])
        summary = run(server, tmp_path, config("hard"), run_id="two")["events"]
        assert summary.first_version is not None and summary.table_version is not None
        changes = pl.DataFrame(DeltaTable(str(tmp_path / "events")).load_cdf(
            starting_version=summary.first_version,
            ending_version=summary.table_version).read_all())
        kinds = changes.group_by("_change_type").len()
        by_kind = dict(zip(kinds["_change_type"], kinds["len"], strict=True))
        assert by_kind.get("delete") == 1
        assert by_kind.get("update_postimage") == 1


def test_a_stop_while_deletes_are_looked_for_deletes_nothing(tmp_path: Path) -> None:
    """Ctrl-C during delete capture's count probe: the read's rows stay committed, nothing is
    marked, the summary says why; the next run finds the deletes."""
    with RecordServer() as server:
        api, source, plan = _synced_then_two_deleted(server, tmp_path)
        with ApiClient(source, Credentials("k", "o"), stop=StopFlag()) as client:
            def stop_at_probe(n: int, params: dict[str, str]) -> None:
                if params.get("page[size]") == "1":
                    client.stop.request("a test")

            server.on_request = stop_at_probe
            summary = sync_resource(client, Lake(str(tmp_path)), plan)
        server.on_request = None
        assert summary.deleted == 0
        assert any("stopped while looking for deletes" in note for note in summary.notes)
        assert table(tmp_path, "events")["_deleted_at"].null_count() == 100
        again = run(server, tmp_path, config(), run_id="again")["events"]
        assert again.status == "ok" and again.deleted == 2
        assert_lake_equals(api, tmp_path, "soft")

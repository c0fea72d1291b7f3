"""Deletes end to end through the Prefect flow (``flows/main.py``): a real Prefect API (the test
harness), the sandbox or a loopback API the test owns, real Delta tables.

Soft (the default), hard and tombstones (dlt's ``hard_delete`` hint) each through the flow: the
rows are marked or removed, and the run's summary artifact shows the ``deleted`` column and the
Delta versions the run committed (a change-feed reader's range). The guard through the flow and
the command line: an API that suddenly serves half its records fails the resource, changes
nothing, and fails the run.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import State

from analytics_client import DEFAULT_CONFIG, Lake
from analytics_client.core.summary import HEADERS, markdown_rows
from analytics_sandbox import World, serve
from flows.main import analytics_sync, main
from tests.groundtruth import assert_table_equals_truth, fetch_truth, live_rows
from tests.records_support import own_config
from tests.recordserver import RecordServer

# Every test here runs the flow against the Prefect test harness (its start alone takes ~15 s).
pytestmark = pytest.mark.slow

SMALL = {"tags": 15, "users": 25, "deals": 60, "pages": 30, "tasks": 45}


def flow_run(pipeline: str, lake: Path, base_url: str, **kwargs: Any) -> State[Any]:
    """One run of the flow with the secrets from the environment; its final state."""
    return analytics_sync(pipeline=pipeline, lake_uri=str(lake), base_url=base_url,
                          api_key_block=None, organization_id_block=None, return_state=True,
                          **kwargs)


def summary_rows(pipeline: str) -> dict[str, dict[str, str]]:
    """The resource rows of the run's summary artifact (markdown), by resource, by header."""
    artifact = Artifact.get(f"analytics-sync-{pipeline}-summary")
    assert artifact is not None, "no summary artifact"
    markdown = str(artifact.data)
    assert "| deleted |" in markdown and "| versions |" in markdown, markdown
    return {cells[0]: dict(zip(HEADERS, cells, strict=True)) for cells in markdown_rows(markdown)}


def artifact_text(pipeline: str) -> str:
    artifact = Artifact.get(f"analytics-sync-{pipeline}-summary")
    assert artifact is not None, "no summary artifact"
    return str(artifact.data)


def versions_cell(summary: dict[str, Any]) -> str:
    """What the summary's ``versions`` column says for a run that committed first..last."""
    first, last = summary["first_version"], summary["table_version"]
    return str(last) if first == last else f"{first}-{last}"


def change_feed(lake: Path, resource: str, first: int, last: int) -> pl.DataFrame:
    """The Change Data Feed rows of ``resource`` between two versions (inclusive)."""
    table = DeltaTable(str(lake / resource))
    return pl.DataFrame(table.load_cdf(starting_version=first, ending_version=last).read_all())


# ---- soft and hard, against the sandbox -----------------------------------------------------

@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_the_flow_marks_or_removes_the_rows_of_deleted_records_and_reports_them(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Deals deleted at the source: the next flow run marks their rows (soft, the default
    config) or removes them (hard), the tables equal the truth, and the summary artifact's
    deleted and versions columns say how many and which Delta versions (the change feed of
    that range holds the deletes)."""
    pipeline = f"flow-deletes-{mode}"
    config = copy.deepcopy(DEFAULT_CONFIG)
    if mode == "hard":
        config["resource_defaults"]["delete_missing"] = "hard"
    with serve(World(seed=51, counts=SMALL)) as sandbox:
        monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
        first = flow_run(pipeline, tmp_path, sandbox.base_url, config=config)
        assert first.is_completed(), first.message
        before = Lake(str(tmp_path)).read("deals")
        deals = sorted(before["id"].to_list())
        gone = sandbox.delete("deals", [deals[4], deals[20], deals[41]])
        gone_task = sandbox.delete("tasks", [fetch_truth(sandbox.base_url, "tasks")[7]["id"]])
        sandbox.advance(updates={"deals": 2}, resources=["deals"], seed=9)

        second = flow_run(pipeline, tmp_path, sandbox.base_url, config=config)
        assert second.is_completed(), second.message
        summaries = {s["resource"]: s for s in second.result()}
        assert {r: s["deleted"] for r, s in summaries.items()} == {
            "tags": 0, "deals": 3, "pages": 0, "tasks": 1, "users": 0}
        lake = Lake(str(tmp_path))
        for resource in SMALL:
            assert_table_equals_truth(lake.read(resource), fetch_truth(sandbox.base_url, resource),
                                      resource)
        after = lake.read("deals")
        if mode == "soft":
            marked = after.filter(pl.col("_deleted_at").is_not_null())
            assert sorted(marked["id"].to_list()) == sorted(gone)
            # the rows keep their last values
            assert marked.drop("_deleted_at").sort("id").equals(
                before.filter(pl.col("id").is_in(gone)).drop("_deleted_at").sort("id"))
            assert gone_task[0] in lake.read("tasks")["id"].to_list()
        else:
            assert not set(gone) & set(after["id"].to_list())
            assert after.height == len(deals) - 3
            assert gone_task[0] not in lake.read("tasks")["id"].to_list()

        rows = summary_rows(pipeline)
        deals_row = summaries["deals"]
        assert rows["deals"]["deleted"] == "3" and rows["tasks"]["deleted"] == "1"
        assert rows["tags"]["deleted"] == "0"
        assert rows["deals"]["versions"] == versions_cell(deals_row)
        assert "-" in rows["deals"]["versions"]  # the updates' commit, then the deletes'
        feed = change_feed(tmp_path, "deals", deals_row["first_version"],
                           deals_row["table_version"])
        if mode == "soft":
            marking = feed.filter((pl.col("_change_type") == "update_postimage")
                                  & pl.col("_deleted_at").is_not_null())
            assert sorted(marking["id"].to_list()) == sorted(gone)
        else:
            assert sorted(feed.filter(pl.col("_change_type") == "delete")["id"].to_list()) \
                == sorted(gone)
        history = DeltaTable(str(tmp_path / "deals")).history()
        operations = {h["version"]: h.get("analytics_sync.operation") for h in history}
        assert operations[deals_row["table_version"]] == f"{mode} delete"


# ---- tombstones, against a loopback API the test owns ---------------------------------------

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def event(id_: str, second: int, deleted: bool | None = None) -> str:
    """An ``events`` record as JSON text; ``deleted`` absent when None."""
    when = (BASE + dt.timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body: dict[str, Any] = {"id": id_, "updated_at": when, "v": second}
    if deleted is not None:
        body["deleted"] = deleted
    return json.dumps(body)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_the_flow_applies_tombstones_in_the_commit_that_brings_them(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """dlt's hard_delete hint through the flow: records arriving with deleted=true mark (soft)
    or remove (hard) their rows in the commit that brings them, a record never seen before
    arriving deleted is never live, and the artifact counts them in its deleted column."""
    pipeline = f"flow-tombstones-{mode}"
    config = own_config(limit=10, delete_missing=mode, columns={"deleted": {"hard_delete": True}})
    monkeypatch.setenv("ANALYTICS_API_KEY", "any-key")
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", "any-org")
    with RecordServer() as server:
        server.put("events", [event(f"e{i:02d}", i, False if i % 2 else None)
                              for i in range(1, 25)])
        first = flow_run(pipeline, tmp_path, server.base_url, config=config)
        assert first.is_completed(), first.message
        before = DeltaTable(str(tmp_path / "events")).version()

        alive = [event(f"e{i:02d}", i, False if i % 2 else None)
                 for i in range(1, 25) if i not in (3, 5, 10, 17)]
        tombstones = [event("e03", 100, True), event("e10", 101, True), event("e17", 102, True),
                      event("new", 103, True)]
        server.put("events", [*alive, event("e05", 104, False), *tombstones])
        second = flow_run(pipeline, tmp_path, server.base_url, config=config)
        assert second.is_completed(), second.message
        [summary] = second.result()

        rows = pl.read_delta(str(tmp_path / "events"))
        live = live_rows(rows) if "_deleted_at" in rows.columns else rows
        expected_live = sorted(f"e{i:02d}" for i in range(1, 25) if i not in (3, 10, 17))
        assert sorted(live["id"].to_list()) == expected_live
        assert live.filter(pl.col("id") == "e05")["v"].to_list() == [104]
        if mode == "hard":
            assert sorted(rows["id"].to_list()) == expected_live
        else:
            marked = rows.filter(pl.col("_deleted_at").is_not_null())
            assert sorted(marked["id"].to_list()) == ["e03", "e10", "e17", "new"]
        # three rows deleted or marked; soft also counts "new", inserted already marked
        assert summary["deleted"] == (4 if mode == "soft" else 3)
        # in the commits that brought them: no separate delete commit
        history = DeltaTable(str(tmp_path / "events")).history()
        assert not any("delete" in str(h.get("analytics_sync.operation", ""))
                       for h in history if h["version"] > before)

        table = summary_rows(pipeline)["events"]
        assert table["deleted"] == str(summary["deleted"])
        assert table["versions"] == versions_cell(summary) == str(before + 1)  # one commit


# ---- the guard --------------------------------------------------------------------------------

def _task_states(state: State[Any]) -> dict[str, Any]:
    """The flow run's task runs' states by resource, as the Prefect API recorded them."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    return {r.name.removeprefix("sync-"): r.state for r in runs}


def test_the_flow_refuses_a_full_refresh_that_would_delete_half_a_table(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An API that suddenly serves half its deals: --full-refresh through the flow fails deals
    (naming max_delete_share), leaves its table at the same Delta version with every row live,
    fails the flow run, and the command line exits 1 saying the same."""
    pipeline = "flow-deletes-guard"
    with serve(World(seed=52, counts=SMALL)) as sandbox:
        monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
        first = flow_run(pipeline, tmp_path, sandbox.base_url)
        assert first.is_completed(), first.message
        version = DeltaTable(str(tmp_path / "deals")).version()
        deals = sorted(d["id"] for d in fetch_truth(sandbox.base_url, "deals"))
        sandbox.delete("deals", deals[::2])  # half of them

        state = flow_run(pipeline, tmp_path, sandbox.base_url, full_refresh=True)
        assert state.is_failed()
        assert "1 of 5 resources failed: deals" in (state.message or "")
        tasks = _task_states(state)
        assert tasks["deals"].is_failed()
        assert "max_delete_share" in (tasks["deals"].message or "")
        assert "50.0%" in (tasks["deals"].message or "")
        assert all(tasks[r].is_completed() for r in SMALL if r != "deals")
        assert "max_delete_share" in artifact_text(pipeline)
        assert summary_rows(pipeline)["deals"]["status"] == "failed"
        assert DeltaTable(str(tmp_path / "deals")).version() == version
        table = Lake(str(tmp_path)).read("deals")
        assert table.height == SMALL["deals"]
        assert table["_deleted_at"].null_count() == SMALL["deals"]

        capsys.readouterr()
        code = main(["--full-refresh", "--pipeline", pipeline, "--lake", str(tmp_path),
                     "--base-url", sandbox.base_url, "--api-key-block", "",
                     "--organization-block", "", "--resources", "deals"])
        out, err = capsys.readouterr()
        assert code == 1, err
        assert "max_delete_share" in out  # the summary's failure line
        assert "1 of 1 resources failed: deals" in err
        assert DeltaTable(str(tmp_path / "deals")).version() == version
        assert live_rows(Lake(str(tmp_path)).read("deals")).height == SMALL["deals"]

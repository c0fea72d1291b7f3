"""The Prefect flow syncs a child resource: real Prefect API (test harness), real sandbox, real
Delta tables. The child's task waits for its parent's (``wait_for``) and runs the same
``SyncRun.sync`` as ``run_sync``; the run's summary lists it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import State

from analytics_client import Lake
from analytics_sandbox import World, serve
from flows.main import analytics_sync
from tests.groundtruth import assert_table_equals_truth, fetch_truth
from tests.test_children import assert_children_match, child_requests, config, pages_per_deal

pytestmark = pytest.mark.slow

COUNTS = {"tags": 10, "users": 15, "deals": 40, "pages": 5, "tasks": 90}


def _task_runs(state: State[Any]) -> dict[str, Any]:
    """The flow run's task runs by resource, as the Prefect API recorded them."""
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.removeprefix("sync-"): r for r in runs}


def _run(sandbox: Any, lake: Path, raw: dict[str, Any], **kwargs: Any) -> State[Any]:
    return analytics_sync(pipeline="flow-children", lake_uri=str(lake), config=raw,
                          base_url=sandbox.base_url, api_key_block=None,
                          organization_id_block=None, return_state=True, **kwargs)


def test_the_flow_syncs_deals_then_their_tasks_equal_to_the_truth(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deals and deal_tasks (/v1/deals/{deal_id}/tasks): the child's task starts only after the
    parent's ended; both tables equal the truth; the summary has the child; a rerun with no
    deal changed reads no child, and one after 3 deals changed reads exactly theirs."""
    raw = config()
    with serve(World(seed=23, counts=COUNTS)) as sandbox:
        monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
        deals = {d["id"] for d in fetch_truth(sandbox.base_url, "deals")}

        state = _run(sandbox, tmp_path, raw)
        assert state.is_completed(), state.message
        summary = {s["resource"]: s for s in state.result()}
        assert list(summary) == ["deals", "deal_tasks"]
        assert summary["deals"]["inserted"] == COUNTS["deals"]
        assert summary["deal_tasks"]["status"] == "ok"
        assert summary["deal_tasks"]["inserted"] == sum(
            1 for t in fetch_truth(sandbox.base_url, "tasks") if t.get("deal_id") in deals)
        runs = _task_runs(state)
        assert runs["deal_tasks"].start_time >= runs["deals"].end_time, runs
        assert child_requests(sandbox) == pages_per_deal(sandbox, deals)
        assert_table_equals_truth(Lake(str(tmp_path)).read("deals"),
                                  fetch_truth(sandbox.base_url, "deals"), "deals")
        assert_children_match(sandbox, tmp_path)

        seen = child_requests(sandbox)
        again = _run(sandbox, tmp_path, raw)
        assert again.is_completed(), again.message
        assert child_requests(sandbox) == seen  # no deal changed: no child read

        changed = sandbox.advance(updates={"deals": 3}, resources=["deals"],
                                  seed=4)["deals"]["updated"]
        third = _run(sandbox, tmp_path, raw)
        assert third.is_completed(), third.message
        assert child_requests(sandbox) - seen == pages_per_deal(sandbox, set(changed))
        assert_table_equals_truth(Lake(str(tmp_path)).read("deals"),
                                  fetch_truth(sandbox.base_url, "deals"), "deals")
        assert_children_match(sandbox, tmp_path)


def test_a_child_alone_in_the_flow_reads_the_parent_table_as_it_is(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """resources=["deal_tasks"]: no parent task to wait for; the children of every deal in
    the parent's table are read (its parent found in the whole config), none requested
    literally as ``{deal_id}``."""
    raw = config()
    with serve(World(seed=24, counts=COUNTS)) as sandbox:
        monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
        first = _run(sandbox, tmp_path, raw, resources=["deals"])
        assert first.is_completed(), first.message
        alone = _run(sandbox, tmp_path, raw, resources=["deal_tasks"])
        assert alone.is_completed(), alone.message
        assert [s["resource"] for s in alone.result()] == ["deal_tasks"]
        assert_children_match(sandbox, tmp_path)


def test_a_child_runs_after_its_parent_failed(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deals fails (its data_selector broken on the second run): deal_tasks still runs after it
    (``allow_failure``: the parent's earlier commits stand) and reads the deals table as it is;
    the run fails naming deals alone."""
    raw = config()
    with serve(World(seed=25, counts=COUNTS)) as sandbox:
        monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
        assert _run(sandbox, tmp_path, raw).is_completed()
        broken = copy.deepcopy(raw)
        broken["resources"][0]["endpoint"]["data_selector"] = "no_such_list"
        state = _run(sandbox, tmp_path, broken)
        assert state.is_failed()
        assert "1 of 2 resources failed: deals" in (state.message or "")
        runs = _task_runs(state)
        assert runs["deal_tasks"].state.is_completed(), runs["deal_tasks"].state
        assert runs["deal_tasks"].start_time >= runs["deals"].end_time, runs
        assert_children_match(sandbox, tmp_path)

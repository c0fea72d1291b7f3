"""Deletes against the bundled sandbox (issue 21's acceptance): the default config, all five
resources, records deleted between runs and while a run pages (mutate mode), plain incremental
runs and ``--full-refresh``; generated interleavings; children following their parent.

Two properties, checked against the sandbox's own ground truth (``/_admin/truth``,
``/_admin/deleted``), never against our code:

* after a quiet run the table's live rows (``_deleted_at`` null) equal the truth exactly;
* after every run, also one the API changed under, no row is marked deleted (soft) or removed
  (hard) unless its record is among the ids the sandbox deleted, and every record the API had
  both when the run began and when it ended is a live row. A record deleted while a run pages
  may stay live until the next run: that is allowed, and the quiet run then settles it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Lake
from analytics_client.config.schemas import CONTRACT_COLUMNS
from analytics_client.core.summary import ResourceSummary
from analytics_sandbox import RunningSandbox, SandboxSettings, World, serve
from tests.groundtruth import (
    assert_children_equal_truth,
    fetch_deleted,
    fetch_truth,
    live_rows,
)
from tests.support import CONTRACT_PAGES, RESOURCES, assert_lake_equals_truth, sync

# A few hundred records each: tie groups and a few dozen pages per resource, seconds per run.
COUNTS = {"tags": 200, "users": 200, "deals": 300, "pages": 200, "tasks": 300}
# Mutate mode: after every third page served, that resource gets 3 updates, 1 create and 1
# delete. A full read of n records then sees about n/30 deletes and a second read as many: well
# under the default max_delete_share (10 %), which this module leaves as it is.
# Late stamps are on, between runs and while a run pages: a change is stamped up to 5 s before
# the sandbox's clock (its Date) when it is made, as the contract allows.
MUTATING = {"mutate_every_n_requests": 3, "mutate_updates": 3, "mutate_creates": 1,
            "mutate_deletes": 1, "late_visibility": True}
QUIET = {"mutate_every_n_requests": 0, "late_visibility": True}


# ---- reading the lake and the sandbox -------------------------------------------------------

def rows(lake: Path, resource: str) -> pl.DataFrame:
    return Lake(str(lake)).read(resource)


def ids(lake: Path, resource: str) -> set[str]:
    return set(rows(lake, resource)["id"].to_list())


def live_ids(lake: Path, resource: str) -> set[str]:
    return set(live_rows(rows(lake, resource))["id"].to_list())


def marked_ids(lake: Path, resource: str) -> set[str]:
    table = rows(lake, resource)
    if "_deleted_at" not in table.columns:
        return set()
    return set(table.filter(pl.col("_deleted_at").is_not_null())["id"].to_list())


def truth_ids(sandbox: RunningSandbox, resources: tuple[str, ...]) -> dict[str, set[str]]:
    return {r: {rec["id"] for rec in fetch_truth(sandbox.base_url, r)} for r in resources}


def lake_ids(lake: Path, resources: tuple[str, ...]) -> dict[str, set[str]]:
    return {r: ids(lake, r) if (lake / r).exists() else set() for r in resources}


def deleted_ids(sandbox: RunningSandbox, resources: tuple[str, ...]) -> dict[str, set[str]]:
    return {r: set(fetch_deleted(sandbox.base_url, r)) for r in resources}


def assert_only_deleted_records_left(sandbox: RunningSandbox, lake: Path,
                                     resources: tuple[str, ...],
                                     truth_before: dict[str, set[str]],
                                     rows_before: dict[str, set[str]]) -> None:
    """The run marked (soft) or removed (hard) only rows whose records the sandbox deleted, and
    every record there was before and after the run is a live row."""
    truth_after = truth_ids(sandbox, resources)
    deleted = deleted_ids(sandbox, resources)
    for resource in resources:
        marked = marked_ids(lake, resource)
        removed = rows_before[resource] - ids(lake, resource)
        assert marked <= deleted[resource], (
            f"{resource}: marked deleted while the API still has them: "
            f"{sorted(marked - deleted[resource])[:5]}")
        assert removed <= deleted[resource], (
            f"{resource}: removed while the API still has them: "
            f"{sorted(removed - deleted[resource])[:5]}")
        kept = truth_before[resource] & truth_after[resource]
        lost = kept - live_ids(lake, resource)
        assert not lost, f"{resource}: records alive throughout the run are not live rows: " \
                         f"{sorted(lost)[:5]}"


def checked_run(sandbox: RunningSandbox, lake: Path, *, config: dict[str, Any] | None = None,
                resources: tuple[str, ...] = RESOURCES,
                full_refresh: bool = False) -> dict[str, ResourceSummary]:
    """One run (every resource ok), then the properties that hold after any run."""
    truth_before = truth_ids(sandbox, resources)
    rows_before = lake_ids(lake, resources)
    summaries = sync(sandbox, lake, config=config, resources=list(resources),
                     full_refresh=full_refresh)
    failed = {r: s.error for r, s in summaries.items() if s.status != "ok"}
    assert not failed, failed
    assert_only_deleted_records_left(sandbox, lake, resources, truth_before, rows_before)
    return summaries


def deleted_count(sandbox: RunningSandbox) -> int:
    return sum(len(ids_) for ids_ in deleted_ids(sandbox, RESOURCES).values())


def runs_while_deleting(sandbox: RunningSandbox, tmp_path: Path, *,
                        full_refresh: bool = False) -> None:
    """Two runs, each after deletes between runs, with the sandbox deleting while they page."""
    sandbox.configure(**MUTATING)
    before = deleted_count(sandbox)
    for number in range(2):
        sandbox.advance(updates=3, creates=2, deletes=2, seed=f"more{number}")
        checked_run(sandbox, tmp_path, full_refresh=full_refresh)
    between_runs = 2 * 2 * len(RESOURCES)
    assert deleted_count(sandbox) - before > between_runs  # and some while paging


# ---- 1. the default config against the mutating sandbox -------------------------------------

@pytest.mark.slow
def test_incremental_runs_end_equal_to_the_truth_after_deletes_between_and_while_paging(
        tmp_path: Path) -> None:
    """With the default config, incremental runs find deletes made between runs and while they
    page, never touch a record the API still has, and a quiet run ends equal to the truth."""
    with serve(World(seed=31, counts=COUNTS), SandboxSettings(fault_seed=31)) as sandbox:
        checked_run(sandbox, tmp_path)
        assert_lake_equals_truth(sandbox, tmp_path)

        sandbox.advance(updates=6, creates=4, deletes=5, seed=1)
        between = checked_run(sandbox, tmp_path)
        assert {r: s.deleted for r, s in between.items()} == dict.fromkeys(RESOURCES, 5)
        assert_lake_equals_truth(sandbox, tmp_path)

        runs_while_deleting(sandbox, tmp_path)

        sandbox.configure(**QUIET)
        quiet = checked_run(sandbox, tmp_path)
        assert sum(s.deleted for s in quiet.values()) > 0  # what was deleted behind the reads
        assert_lake_equals_truth(sandbox, tmp_path)
        for resource in RESOURCES:  # soft by default: every row of a deleted record is kept
            assert marked_ids(tmp_path, resource) == ids(tmp_path, resource) & set(
                fetch_deleted(sandbox.base_url, resource))


@pytest.mark.slow
def test_full_refreshes_end_equal_to_the_truth_after_deletes_between_and_while_paging(
        tmp_path: Path) -> None:
    """With the default config, --full-refresh finds deletes made between runs and while it
    pages, never touches a record the API still has, and a quiet one ends equal to the truth,
    as does a plain incremental run after it."""
    with serve(World(seed=32, counts=COUNTS), SandboxSettings(fault_seed=32)) as sandbox:
        checked_run(sandbox, tmp_path)
        sandbox.advance(updates=6, creates=4, deletes=5, seed=2)
        between = checked_run(sandbox, tmp_path, full_refresh=True)
        assert {r: s.deleted for r, s in between.items()} == dict.fromkeys(RESOURCES, 5)
        assert_lake_equals_truth(sandbox, tmp_path)

        runs_while_deleting(sandbox, tmp_path, full_refresh=True)

        sandbox.configure(**QUIET)
        checked_run(sandbox, tmp_path, full_refresh=True)
        assert_lake_equals_truth(sandbox, tmp_path)
        again = checked_run(sandbox, tmp_path)
        assert sum(s.deleted for s in again.values()) == 0
        assert_lake_equals_truth(sandbox, tmp_path)


# ---- 2. generated interleavings -------------------------------------------------------------

# Small worlds; the runs sync every resource, so an example costs a few seconds.
GEN_COUNTS = {"tags": 30, "users": 40, "deals": 80, "pages": 30, "tasks": 60}


def _per_resource(high: int) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries({r: st.integers(0, high) for r in RESOURCES})


_mutation = st.none() | st.fixed_dictionaries({
    "mutate_every_n_requests": st.integers(2, 5),
    "mutate_updates": st.integers(0, 3),
    "mutate_creates": st.integers(0, 2),
    "mutate_deletes": st.integers(1, 2),
    "late_visibility": st.booleans(),
})
_step = st.fixed_dictionaries({
    "updates": _per_resource(8), "creates": _per_resource(5), "deletes": _per_resource(6),
    "during": _mutation, "full": st.booleans(),
})


def generated_config(mode: str) -> dict[str, Any]:
    """The default config, soft or hard; the guard is off (max_delete_share 1.0) because the
    generated deletes may well take a tenth of a small table: the guard has tests of its own."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resource_defaults"]["delete_missing"] = mode
    raw["resource_defaults"]["max_delete_share"] = 1.0
    return raw


@pytest.mark.slow
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), steps=st.lists(_step, min_size=1, max_size=4),
       mode=st.sampled_from(["soft", "hard"]))
def test_generated_creates_updates_and_deletes_across_runs_through_the_sandbox(
        tmp_path_factory: pytest.TempPathFactory, seed: int, steps: list[dict[str, Any]],
        mode: str) -> None:
    """Any interleaving of creates, updates and deletes between runs and while runs page,
    incremental or full: no record the API has is ever marked or removed, and after a quiet run
    (incremental, then full) the live rows equal the truth."""
    lake = tmp_path_factory.mktemp("lake")
    config = generated_config(mode)
    with serve(World(seed=seed, counts=GEN_COUNTS), SandboxSettings(fault_seed=seed)) as sandbox:
        for number, step in enumerate(steps):
            sandbox.advance(updates=step["updates"], creates=step["creates"],
                            deletes=step["deletes"], seed=f"{seed}:{number}")
            sandbox.configure(**(step["during"] or QUIET))
            checked_run(sandbox, lake, config=config, full_refresh=step["full"])
            sandbox.configure(**QUIET)
        checked_run(sandbox, lake, config=config)
        assert_lake_equals_truth(sandbox, lake)
        checked_run(sandbox, lake, config=config, full_refresh=True)
        assert_lake_equals_truth(sandbox, lake)
        if mode == "hard":
            for resource in RESOURCES:
                assert not marked_ids(lake, resource)
                assert ids(lake, resource) == live_ids(lake, resource)


# ---- 3. children follow their parent ----------------------------------------------------------

CHILD_COUNTS = {"tags": 20, "users": 30, "deals": 120, "pages": 5, "tasks": 300}


def child_config(mode: str) -> dict[str, Any]:
    """The seed's deals and a dlt-style child of them, ``/v1/deals/{deal_id}/tasks`` (as
    tests/test_children.py configures it), deletes ``mode`` on both."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resource_defaults"]["delete_missing"] = mode
    raw["resources"] = [r for r in raw["resources"] if r["name"] == "deals"]
    raw["resources"].append({
        "name": "deal_tasks",
        "endpoint": {"path": "/v1/deals/{deal_id}/tasks",
                     "params": {"deal_id": {"type": "resolve", "resource": "deals",
                                            "field": "id"}},
                     "paginator": {**CONTRACT_PAGES, "limit": 5}, "incremental": None},
        "columns": copy.deepcopy(CONTRACT_COLUMNS["tasks"]),
        "include_from_parent": ["name"]})
    return raw


def assert_live_children_equal_truth(sandbox: RunningSandbox, lake: Path) -> None:
    """The child table's live rows are exactly the tasks of the deals the API still has."""
    assert_children_equal_truth(live_rows(rows(lake, "deal_tasks")),
                                fetch_truth(sandbox.base_url, "deals"),
                                fetch_truth(sandbox.base_url, "tasks"),
                                parent="deals", child="tasks", link="deal_id",
                                included=("name",))


def deals_with_tasks(sandbox: RunningSandbox, n: int) -> list[str]:
    """``n`` deal ids that have at least one task."""
    owners = sorted({t["deal_id"] for t in fetch_truth(sandbox.base_url, "tasks")
                     if t.get("deal_id")})
    return owners[:n]


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_the_children_of_deleted_deals_follow_them(tmp_path: Path, mode: str) -> None:
    """Deals deleted at the source: after the next incremental run their tasks' rows are marked
    (soft) or removed (hard), every other child row is untouched, and the live child rows are
    exactly the tasks of the live deals."""
    config = child_config(mode)
    with serve(World(seed=41, counts=CHILD_COUNTS)) as sandbox:
        first = sync(sandbox, tmp_path, config=config)
        assert all(s.status == "ok" for s in first.values()), first
        before = rows(tmp_path, "deal_tasks")
        gone = sandbox.delete("deals", deals_with_tasks(sandbox, 5))
        of_gone = pl.col("_deals_id").is_in(gone)
        assert before.filter(of_gone).height >= 5

        second = sync(sandbox, tmp_path, config=config)
        assert all(s.status == "ok" for s in second.values()), second
        assert second["deals"].deleted == 5
        after = rows(tmp_path, "deal_tasks")
        if mode == "soft":
            followed = after.filter(of_gone)
            assert followed.height == before.filter(of_gone).height
            assert followed["_deleted_at"].null_count() == 0
            # the rows keep their last values
            assert followed.drop("_deleted_at").sort("id").equals(
                before.filter(of_gone).drop("_deleted_at").sort("id"))
        else:
            assert after.filter(of_gone).is_empty()
        others = after.filter(~of_gone).sort("id")
        assert others.equals(before.filter(~of_gone).sort("id"))  # not one value rewritten
        assert others["_deleted_at"].null_count() == others.height
        assert_lake_equals_truth(sandbox, tmp_path, ("deals",))
        assert_live_children_equal_truth(sandbox, tmp_path)

        refreshed = sync(sandbox, tmp_path, config=config, full_refresh=True)
        assert all(s.status == "ok" for s in refreshed.values()), refreshed
        assert refreshed["deal_tasks"].deleted == 0  # nothing left for a complete read to find
        assert_live_children_equal_truth(sandbox, tmp_path)


def test_a_deal_deleted_between_its_read_and_its_childrens_read_does_not_fail_the_child(
        tmp_path: Path) -> None:
    """A deal that changed, was read, and was deleted before its tasks were read (its child
    endpoint now a 404) leaves the child resource ok: the deal has no tasks to read any more."""
    config = child_config("soft")
    with serve(World(seed=42, counts=CHILD_COUNTS)) as sandbox:
        sync(sandbox, tmp_path, config=config)
        changed = sandbox.advance(updates={"deals": 3}, resources=["deals"],
                                  seed=3)["deals"]["updated"]
        parent = sync(sandbox, tmp_path, config=config, resources=["deals"])
        assert parent["deals"].status == "ok" and parent["deals"].updated == 3
        sandbox.delete("deals", changed[:1])  # after the deals' read, before the tasks' read
        child = sync(sandbox, tmp_path, config=config, resources=["deal_tasks"])["deal_tasks"]
        assert child.status == "ok", child.error
        assert any(changed[0] in note and "404" in note for note in child.notes), child.notes


# ---- late stamps while a run pages ---------------------------------------------------------

def test_a_change_stamped_late_while_a_run_pages_is_not_marked_deleted(tmp_path: Path) -> None:
    """A record updated with a late stamp while an incremental run pages is never marked
    deleted (tags, world seed 65). Was a strict xfail: the sandbox stamped a late change up to
    5 s before the newest record instead of before its clock, so it showed up more than 10 s
    after its updated_at (tag_89s2bgvh546c, 10.8 s), beyond the contract; the delete capture's
    second read (the next run's) then missed it and marked it deleted."""
    config = generated_config("soft")
    tags = ("tags",)
    with serve(World(seed=65, counts=GEN_COUNTS), SandboxSettings(fault_seed=65)) as sandbox:
        sandbox.advance(deletes=5, resources=tags, seed="65:0")
        sandbox.configure(mutate_every_n_requests=3, mutate_updates=2, mutate_creates=0,
                          mutate_deletes=1)
        sync(sandbox, tmp_path, config=config, resources=list(tags), full_refresh=True)
        sandbox.configure(mutate_every_n_requests=0)
        sandbox.advance(updates=8, creates=1, deletes=2, resources=tags, seed="65:1")
        sandbox.configure(mutate_every_n_requests=4, mutate_updates=2, mutate_creates=2,
                          mutate_deletes=2)
        run = sync(sandbox, tmp_path, config=config, resources=list(tags))["tags"]
        sandbox.configure(mutate_every_n_requests=0)
        assert run.status == "ok", run.error
        alive = marked_ids(tmp_path, "tags") - set(fetch_deleted(sandbox.base_url, "tags"))
        assert not alive, f"marked deleted while the API has them: {sorted(alive)}"

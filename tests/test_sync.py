"""End to end through the library: a real loopback sandbox, real Delta tables, no Prefect."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from analytics_client import Credentials, Lake, load_config, run_sync
from analytics_client.core import jsontext
from analytics_client.core.summary import ResourceSummary
from analytics_client.lake.quarantine import Quarantine
from analytics_sandbox import RunningSandbox, World, serve
from tests.groundtruth import fetch_truth
from tests.plans import plan_of
from tests.support import PLAIN, RESOURCES, assert_lake_equals_truth, sync

SMALL = {"tags": 40, "users": 60, "deals": 230, "pages": 90, "tasks": 150}


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with serve(World(seed=7, counts=SMALL)) as running:
        yield running


def test_full_sync_makes_every_table_equal_the_api(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The seed config lands all five resources with every row and field as served."""
    summaries = sync(sandbox, tmp_path, batch_rows=50)
    for resource, summary in summaries.items():
        assert summary.status == "ok", summary.error
        assert summary.inserted == SMALL[resource]
        assert summary.rows_fetched >= SMALL[resource]  # keyset paging re-reads page edges
        assert summary.commits >= 1
    # 230 rows in batches of 50: each staged on disk (memory stays bounded by the batch), then
    # one commit, one table rewrite per run (issue 24); nothing staged is left behind.
    assert summaries["deals"].commits == 1
    assert not list((tmp_path / "_staging").glob("*.parts/*"))
    assert_lake_equals_truth(sandbox, tmp_path)


def test_a_long_read_merges_its_staged_batches_every_merge_every_seconds(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """``Timing.merge_every`` bounds how long batches wait staged: at 0, every full batch is
    merged with its mark as it comes (the mark never ahead of the rows: the table equals the
    API), so a crash of a long read loses at most that slice."""
    from analytics_client.core.timing import Timing

    summaries = sync(sandbox, tmp_path, batch_rows=50, timing=Timing(merge_every=0))
    assert summaries["deals"].status == "ok", summaries["deals"].error
    assert summaries["deals"].commits >= 5  # 230 rows in batches of 50, each merged
    assert_lake_equals_truth(sandbox, tmp_path)


def test_rerun_without_changes_inserts_updates_and_rewrites_nothing(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A second run over an unchanged API commits nothing: no row counted, no file rewritten."""
    sync(sandbox, tmp_path)
    lake = Lake(str(tmp_path))
    versions = {r: lake.version(r) for r in RESOURCES}
    files = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    summaries = sync(sandbox, tmp_path)
    for resource, summary in summaries.items():
        assert (summary.inserted, summary.updated, summary.commits) == (0, 0, 0)
        assert lake.version(resource) == versions[resource]
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == files


def test_after_the_api_changes_tables_equal_the_new_truth(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Updates and new records (with a field that appears later) land; nothing else moves."""
    sync(sandbox, tmp_path)
    before_columns = set(Lake(str(tmp_path)).read("deals").columns)
    changes = sandbox.advance(updates=25, creates=12, seed=1)
    summaries = sync(sandbox, tmp_path)
    for resource in RESOURCES:
        assert summaries[resource].inserted == len(changes[resource]["created"])
        assert summaries[resource].updated == len(set(changes[resource]["updated"]))
    assert_lake_equals_truth(sandbox, tmp_path)
    new_columns = set(Lake(str(tmp_path)).read("deals").columns) - before_columns
    assert "priority" in {c.removesuffix("__json") for c in new_columns}


def test_custom_fields_keep_every_key_as_json(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """custom_fields whose keys and value types vary per record are kept whole."""
    sync(sandbox, tmp_path, resources=["deals"])
    table = Lake(str(tmp_path)).read("deals")
    objects = [json.loads(v) for v in table["custom_fields"].drop_nulls()]
    key_sets = {frozenset(o) for o in objects}
    assert len(key_sets) > 3
    assert {} in objects or table["custom_fields"].null_count() > 0


def test_a_failing_resource_keeps_its_commits_and_the_others_finish(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """deals exhausts its retries on page 3; its first pages stay, the other four complete."""
    sandbox.set_faults([{"kind": "status", "status": 503, "resource": "deals", "page": 3, "times": 50}])
    summaries = sync(sandbox, tmp_path, batch_rows=10, config=PLAIN)
    deals = summaries["deals"]
    assert deals.status == "failed"
    assert deals.retries == 4
    assert "deals: HTTP 503 on page 3" in (deals.error or "")
    assert "gave up after 5 attempts" in (deals.error or "")
    table = Lake(str(tmp_path)).read("deals")
    assert table.height == 20  # pages 1 and 2, committed before the failure
    truth = {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}
    assert set(table["id"]) <= truth
    assert_lake_equals_truth(sandbox, tmp_path, ("tags", "pages", "tasks", "users"))


def test_throttling_and_resets_are_survived(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """429 with Retry-After, a reset and a cut-off body are retried and nothing is lost."""
    sandbox.set_faults([
        {"kind": "status", "status": 429, "retry_after": "3", "resource": "tasks", "page": 2, "times": 2},
        {"kind": "reset", "resource": "pages", "page": 4},
        {"kind": "truncate", "resource": "users", "page": 1},
        {"kind": "html200", "resource": "tags", "page": 2},
    ])
    summaries = sync(sandbox, tmp_path, config=PLAIN)
    assert {r: s.retries for r, s in summaries.items()} == {
        "tags": 1, "deals": 0, "pages": 1, "tasks": 2, "users": 1}
    assert all(s.status == "ok" for s in summaries.values())
    assert_lake_equals_truth(sandbox, tmp_path)


def test_wrong_key_fails_every_resource_at_once(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A 401 is not retried; each resource fails with the API's detail and nothing is written."""
    summaries = sync(sandbox, tmp_path, credentials=Credentials("wrong-key", sandbox.organization_id))
    for summary in summaries.values():
        assert summary.status == "failed"
        assert "HTTP 401 on page 1" in (summary.error or "") and "API key" in (summary.error or "")
        assert summary.retries == 0
    assert sandbox.stats()["total_requests"] == len(RESOURCES)
    assert not any((tmp_path / r).exists() for r in RESOURCES)  # no table written


@pytest.mark.parametrize(("kind", "message"), [
    ("data_not_list", "'data' is"),
    ("same_page", "has exactly the records of page"),
])
def test_contract_breaking_pages_fail_the_resource_after_earlier_pages_commit(
        sandbox: RunningSandbox, tmp_path: Path, kind: str, message: str) -> None:
    """A page that breaks the contract fails its resource; what came before is committed."""
    page = 1 if kind == "data_not_list" else 2
    sandbox.set_faults([{"kind": kind, "resource": "tasks", "page": 3 if kind != "same_page" else None,
                         "times": 1 if kind != "same_page" else 100}])
    summaries = sync(sandbox, tmp_path, resources=["tasks"], batch_rows=1000, config=PLAIN)
    tasks = summaries["tasks"]
    assert tasks.status == "failed"
    assert message in (tasks.error or "")
    assert Lake(str(tmp_path)).read("tasks").height == (20 if kind == "data_not_list" else 10)
    del page


# --- payloads a server cannot easily be made to send: an httpx MockTransport ----------------

def page_doc(records: list[dict], number: int, total_pages: int) -> dict:
    return {"data": records,
            "meta": {"page": {"number": number, "size": 10, "total_pages": total_pages,
                              "total_count": 0}},
            "links": {"next": None if number >= total_pages else f"/v1/tags?page[number]={number + 1}"}}


def tag(i: str, updated: str = "2026-01-01T00:00:00.000000Z", **extra: object) -> dict:
    return {"id": i, "name": f"tag {i}", "created_at": "2026-01-01T00:00:00.000000Z",
            "updated_at": updated, **extra}


def run_pages(tmp_path: Path, pages: list[list[dict]], on_bad_record: str = "quarantine"
              ) -> ResourceSummary:
    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page[number]", "1"))
        records = pages[number - 1] if number <= len(pages) else []
        return httpx.Response(200, json=page_doc(records, number, len(pages)))

    config = copy.deepcopy(PLAIN)
    config["resource_defaults"]["on_bad_record"] = on_bad_record
    source = load_config(config, base_url="http://api.test").select(["tags"])
    [summary] = run_sync(source, Credentials("test-key", "test-org"), str(tmp_path),
                         transport=httpx.MockTransport(handler))
    return summary


def test_duplicate_ids_within_and_across_pages_keep_the_latest(tmp_path: Path) -> None:
    """An id served twice (same page or a later one) is stored once, with its latest version."""
    summary = run_pages(tmp_path, [
        [tag("a", color="red"), tag("b"), tag("a", "2026-01-02T00:00:00.000000Z", color="blue")],
        [tag("b", "2026-01-03T00:00:00.000000Z", color="green"), tag("c")],
    ])
    assert summary.status == "ok"
    table = Lake(str(tmp_path)).read("tags").sort("id")
    assert table["id"].to_list() == ["a", "b", "c"]
    assert table["color"].to_list() == ["blue", "green", None]


def test_record_without_id_fails_with_its_position(tmp_path: Path) -> None:
    """With on_bad_record: fail, a record with no id fails the resource naming it."""
    summary = run_pages(tmp_path, [[tag("a"), {"name": "nameless", "updated_at": "2026-01-01T00:00:00Z"}]],
                        on_bad_record="fail")
    assert summary.status == "failed"
    assert "tags" in (summary.error or "") and "'id'" in (summary.error or "")


def test_documented_field_of_another_type_fails_naming_field_and_id(tmp_path: Path) -> None:
    """With on_bad_record: fail, a declared field of another type fails; nothing is coerced."""
    summary = run_pages(tmp_path, [[tag("a"), tag("b", name=42)]], on_bad_record="fail")
    assert summary.status == "failed"
    assert all(s in (summary.error or "") for s in ("tags", "'name'", "'b'"))
    assert Lake(str(tmp_path)).version("tags") is None  # nothing of the batch was written


@pytest.mark.parametrize(
    ("bad", "field"),
    [({"name": "nameless", "updated_at": "2026-01-01T00:00:00Z"}, "id"),
     (tag("b", name=42), "name"),
     (tag("b", updated="2026-13-01T00:00:00Z"), "updated_at")],
)
def test_a_record_that_breaks_its_types_is_set_aside_and_the_rest_lands(
        tmp_path: Path, bad: dict, field: str) -> None:
    """By default a bad record goes to <lake>/_quarantine as received; its batch still lands."""
    summary = run_pages(tmp_path, [[tag("a"), bad, tag("c")]])
    assert (summary.status, summary.inserted, summary.quarantined) == ("ok", 2, 1)
    assert sorted(Lake(str(tmp_path)).read("tags")["id"]) == ["a", "c"]
    [row] = Quarantine(Lake(str(tmp_path)), "analytics").read("tags").to_dicts()
    assert row["field"] == field and field in row["reason"]
    assert jsontext.loads(row["record"]) == bad


def test_new_undocumented_field_on_a_second_run_adds_a_column(tmp_path: Path) -> None:
    """A field that appears later gets a column; rows from the first run keep their data."""
    run_pages(tmp_path, [[tag("a", color="red"), tag("b")]])
    second = run_pages(tmp_path, [[tag("a", color="red"),
                                   tag("b", "2026-01-05T00:00:00.000000Z", priority=3)]])
    assert (second.inserted, second.updated) == (0, 1)
    table = Lake(str(tmp_path)).read("tags").sort("id")
    assert table["priority"].to_list() == [None, 3]
    assert table["color"].to_list() == ["red", None]
    assert table.schema["priority"] == pl.Int64


def test_the_run_holds_at_most_its_row_budget_however_many_resources_fill_batches(
        tmp_path: Path) -> None:
    """Five resources at once hold no more records than budget.py's bound: 1.5x the run's
    budget plus a page each (which resource reaches its share first depends on thread timing,
    so the bound, not the limit, is what holds on a busy machine)."""
    from concurrent.futures import ThreadPoolExecutor

    from analytics_client.http.client import ApiClient
    from analytics_client.run.budget import RowBudget
    from analytics_client.run.sync import sync_resource

    budget = RowBudget(300)
    with serve(World(seed=3, counts={"tags": 400, "users": 400, "deals": 400, "pages": 400,
                                      "tasks": 400})) as sandbox:
        source = load_config(PLAIN, base_url=sandbox.base_url)
        lake = Lake(str(tmp_path))
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id)) as client, \
                ThreadPoolExecutor(5) as pool:
            summaries = list(pool.map(
                lambda r: sync_resource(client, lake, plan_of(r), batch_rows=1000, budget=budget),
                source.resources))
        assert all(s.status == "ok" for s in summaries)
        # 400 records, batch 1000: the budget cut each read into staged batches (the peak below
        # proves it: 2,000 records held at once otherwise), merged in one commit each.
        assert all(s.commits == 1 for s in summaries)
        assert budget.peak <= 1.5 * 300 + 5 * 10 and budget.held == 0
        assert_lake_equals_truth(sandbox, tmp_path)

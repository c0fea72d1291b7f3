"""Incremental reads with every paginator (window.py), against the real sandbox into Delta.

Each dlt-style config filters by the cursor the way dlt writes it (``start_param``, the
``{incremental.start_value}`` placeholder, or the ``{"type": "incremental"}`` parameter). The
sandbox changes records while the first run reads (late stamps included); the tests check the
claims of docs/incremental.md against tests/groundtruth.py: nothing present at the start lost or
older, the mark never above the API's highest cursor when the read began, and the runs after it
equal to the truth while reading only a window.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from analytics_client import Lake
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.state.marks import MemoryMarkStore, app_id
from analytics_sandbox import FaultRule, SandboxSettings, World, serve
from tests.groundtruth import fetch_truth
from tests.support import CONTRACT_PAGES, PLAIN, SMALL, assert_lake_equals_truth, sync
from tests.test_pagination_styles import STYLES, assert_nothing_older_than_before, timestamps

READ = ("deals", "tasks")
GTE = "filter[updated_at][gte]"

# How the filter is written: dlt's three forms.
FORMS: dict[str, Any] = {
    "start_param": lambda: ({}, {"cursor_path": "updated_at", "start_param": GTE}),
    "placeholder": lambda: ({GTE: "{incremental.start_value}"}, {"cursor_path": "updated_at"}),
    "param": lambda: ({GTE: {"type": "incremental", "cursor_path": "updated_at"}}, None),
}

CASES: dict[str, tuple[str, Any, str, str]] = {
    **{f"{name} / start_param": (*STYLES[name], "id", "start_param") for name in STYLES
       if name != "auto over page_number"},
    "cursor sorted by updated_at / start_param": (*STYLES["cursor"], "updated_at", "start_param"),
    "offset / placeholder": (*STYLES["offset"], "id", "placeholder"),
    "json_link / param": (*STYLES["json_link"], "id", "param"),
    # page numbers without a keyset (the placeholder is not a start_param): a lagged re-read
    "page_number / placeholder": ("page_number", {**CONTRACT_PAGES, "limit": 10}, "id",
                                  "placeholder"),
}


def config(style: str, paginator: Any, sort: str, form: str, **incremental: Any) -> dict[str, Any]:
    raw = copy.deepcopy(PLAIN)
    for resource in raw["resources"]:
        params, spec = FORMS[form]()
        endpoint = resource["endpoint"]
        endpoint["paginator"] = paginator
        endpoint["params"] = {"pagination": style, "sort": sort, **params}
        if spec is not None:
            endpoint["incremental"] = {**spec, **incremental}
    return raw


def table_mark(lake: Path, resource: str) -> int | None:
    return Lake(str(lake)).mark(resource, app_id("analytics"))


def highest(records: list[dict[str, Any]]) -> int:
    return max(parse_cursor(r["updated_at"]) for r in records)


@pytest.mark.parametrize("name", list(CASES))
def test_incremental_config_syncs_equal_to_the_truth_with_changes_during_the_first_run(
        tmp_path: Path, name: str) -> None:
    """Nothing lost under change; the mark stays at or below the API's highest cursor at the
    start; later runs read a window only and equal the truth."""
    style, paginator, sort, form = CASES[name]
    raw = config(style, paginator, sort, form)
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=True, fault_seed=11)
    with serve(World(seed=11, counts=SMALL), settings) as sandbox:
        truth = {r: fetch_truth(sandbox.base_url, r) for r in READ}
        before = {r: timestamps(truth[r]) for r in READ}
        first = sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert all(s.status == "ok" for s in first.values()), first
        assert sandbox.stats()["mutations"] > 0
        assert_nothing_older_than_before(sandbox, tmp_path, before)
        for resource in READ:
            mark = table_mark(tmp_path, resource)
            assert mark is not None and mark <= highest(truth[resource])

        sandbox.configure(mutate_every_n_requests=0)
        sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert_lake_equals_truth(sandbox, tmp_path, READ)

        sandbox.advance(updates=15, creates=5, seed=3)
        third = sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert_lake_equals_truth(sandbox, tmp_path, READ)
        for resource in READ:
            # A window, not the whole resource: what changed, plus what the lag re-reads.
            assert third[resource].rows_fetched < len(truth[resource]) // 2, third[resource]


def test_a_read_that_fails_midway_leaves_the_mark_where_it_was(tmp_path: Path) -> None:
    """The commits before the failure stand; neither the table's mark nor the state moves."""
    style, paginator = STYLES["offset"]
    raw = config(style, paginator, "id", "start_param")
    marks = MemoryMarkStore()
    with serve(World(seed=5, counts=SMALL)) as sandbox:
        sync(sandbox, tmp_path, marks, config=raw, resources=["deals"])
        mark, saved = table_mark(tmp_path, "deals"), marks.load("analytics", "deals")
        assert mark is not None and saved is not None
        sandbox.advance(updates=60, creates=10, seed=4)
        sandbox.set_faults([FaultRule(kind="status", status=400, resource="deals", page=3)])
        failed = sync(sandbox, tmp_path, marks, config=raw, resources=["deals"], batch_rows=10)
        assert failed["deals"].status == "failed" and failed["deals"].commits > 0
        assert table_mark(tmp_path, "deals") == mark
        assert marks.load("analytics", "deals").cursor == saved.cursor  # type: ignore[union-attr]
        sandbox.set_faults([])
        sync(sandbox, tmp_path, marks, config=raw, resources=["deals"])
        assert_lake_equals_truth(sandbox, tmp_path, ("deals",))


@pytest.mark.parametrize("paging", ["offset", "page_number keyset"])
def test_a_backfill_reads_its_window_and_moves_no_mark(tmp_path: Path, paging: str) -> None:
    """end_value: exactly the records in [initial_value, end_value), no mark in table or state."""
    marks = MemoryMarkStore()
    with serve(World(seed=9, counts=SMALL)) as sandbox:
        deals = fetch_truth(sandbox.base_url, "deals")
        stamps = sorted(parse_cursor(r["updated_at"]) for r in deals)
        lo, hi = stamps[len(stamps) // 4], stamps[len(stamps) // 2]
        initial, end = (dt.datetime.fromtimestamp(v / 1e6, dt.UTC).isoformat() for v in (lo, hi))
        if paging == "offset":
            raw = config(*STYLES["offset"], "id", "start_param",
                         initial_value=initial, end_value=end)
        else:
            raw = config("page_number", {**CONTRACT_PAGES, "limit": 10}, "updated_at",
                         "start_param", initial_value=initial, end_value=end)
        result = sync(sandbox, tmp_path, marks, config=raw, resources=["deals"])
        assert result["deals"].status == "ok", result
        want = {r["id"] for r in deals if lo <= parse_cursor(r["updated_at"]) < hi}
        assert set(Lake(str(tmp_path)).read("deals")["id"]) == want
        assert table_mark(tmp_path, "deals") is None
        assert marks.load("analytics", "deals") is None


def test_initial_value_starts_the_first_read_and_the_param_carries_it(tmp_path: Path) -> None:
    """initial_value is the first run's start_value: only records from it on are read."""
    with serve(World(seed=9, counts=SMALL)) as sandbox:
        deals = fetch_truth(sandbox.base_url, "deals")
        stamps = sorted(parse_cursor(r["updated_at"]) for r in deals)
        cut = stamps[len(stamps) * 3 // 4]
        initial = dt.datetime.fromtimestamp(cut / 1e6, dt.UTC).isoformat()
        raw = config(*STYLES["cursor"], "id", "placeholder", initial_value=initial)
        result = sync(sandbox, tmp_path, config=raw, resources=["deals"])
        assert result["deals"].status == "ok", result
        # The first read starts at initial_value (tests/test_initial_value.py: not lag before).
        table = Lake(str(tmp_path)).read("deals")
        assert {r["id"] for r in deals if parse_cursor(r["updated_at"]) >= cut} \
            <= set(table["id"])
        assert table.height < len(deals) // 2


def test_check_asks_the_first_request_a_placeholder_config_sends() -> None:
    """``check`` fills dlt's placeholders as the first run does (the sandbox refuses a literal
    ``{incremental.start_value}`` as a timestamp with a 400)."""
    from analytics_client import Credentials, load_config
    from analytics_client.run.check import check_source

    raw = config(*STYLES["offset"], "id", "placeholder", initial_value="2026-03-01T00:00:00Z")
    with serve(World(seed=9, counts=SMALL)) as sandbox:
        source = load_config(raw, base_url=sandbox.base_url).select(["deals"])
        results = check_source(source, Credentials(sandbox.api_key, sandbox.organization_id))
        assert [(r.resource, r.ok) for r in results] == [("deals", True)], results

"""After `state reset`, one full read brings the mark back, even when it commits no row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from analytics_client import Lake
from analytics_client.read.keyset import format_cursor, parse_cursor
from analytics_client.state.marks import MemoryMarkStore, app_id, effective_start, reset
from analytics_sandbox import RunningSandbox, World, serve
from tests.groundtruth import fetch_truth
from tests.support import SMALL, sync


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with serve(World(seed=12, counts=SMALL)) as running:
        yield running


def test_a_reset_full_read_that_commits_nothing_still_records_the_mark(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """reset, run, run: the second run after the reset is incremental again (block and table)."""
    marks = MemoryMarkStore()
    sync(sandbox, tmp_path, marks, resources=["deals"])
    reset(marks, "analytics", "deals")
    lake = Lake(str(tmp_path))
    newest = max(parse_cursor(r["updated_at"]) for r in fetch_truth(sandbox.base_url, "deals"))

    full = sync(sandbox, tmp_path, marks, resources=["deals"])["deals"]
    assert full.rows_fetched >= SMALL["deals"]  # the reset forced a full read...
    assert full.inserted == full.updated == 0  # ...which found nothing to change
    block = marks.load("analytics", "deals")
    assert block is not None and block.cursor == format_cursor(newest)
    assert full.mark == format_cursor(newest)

    start = effective_start(lake, "deals", "analytics", block, None)
    assert start.mark_us == newest, start.reason
    again = sync(sandbox, tmp_path, marks, resources=["deals"])["deals"]
    assert again.pages <= 2 and again.rows_fetched < SMALL["deals"] / 10


def test_a_table_without_this_pipelines_mark_gets_it_from_a_read_that_changes_nothing(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A second pipeline over the same lake (or a table written before marks): a commit holding
    only the app transaction records the mark, so the next run starts incremental from the table."""
    sync(sandbox, tmp_path, None, resources=["deals"], pipeline="first")
    lake = Lake(str(tmp_path))
    before = lake.version("deals")
    assert lake.mark("deals", app_id("second")) is None

    read = sync(sandbox, tmp_path, None, resources=["deals"], pipeline="second")["deals"]
    assert read.inserted == read.updated == 0
    newest = max(parse_cursor(r["updated_at"]) for r in fetch_truth(sandbox.base_url, "deals"))
    assert lake.mark("deals", app_id("second")) == newest
    assert lake.version("deals") == (before or 0) + 1  # one commit, holding no data
    last = DeltaTable(lake.table_uri("deals")).history(1)[0]
    assert last["operation"] != "MERGE"
    assert Lake(str(tmp_path)).row_count("deals") == SMALL["deals"]

    start = effective_start(lake, "deals", "second", None, None)
    assert start.mark_us == newest, start.reason
    # And a read with nothing new adds no further commit.
    sync(sandbox, tmp_path, None, resources=["deals"], pipeline="second")
    assert lake.version("deals") == (before or 0) + 1

"""analytics-maintenance on a real table made by many small sync commits: fewer files, same data."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from analytics_client import Lake
from analytics_client.config.schemas import contract_columns
from analytics_client.core.errors import LakeError
from analytics_client.lake.maintenance import maintain_table
from analytics_client.lake.tables import TableMark, TableWriter
from analytics_client.state.marks import app_id
from analytics_sandbox import RunningSandbox, SandboxSettings, World, serve
from flows.maintenance import analytics_maintenance
from tests.groundtruth import assert_table_equals_truth, fetch_truth

COUNTS = {"tags": 10, "users": 10, "deals": 60, "pages": 10, "tasks": 10}
pytestmark = pytest.mark.slow


@pytest.fixture
def small_commits(harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lake, RunningSandbox]]:
    """The API's deals written by our table writer four records per commit: many small files.

    (Merges rewrite the files they match, so a merged table stays compact by itself; appends,
    like the many small inserts of an incremental sync, are what pile up files.)
    """
    monkeypatch.setenv("ANALYTICS_SYNC_LOCK_DIR", str(tmp_path / "locks"))
    with serve(World(seed=8, counts=COUNTS), SandboxSettings(late_visibility=False)) as sandbox:
        lake = Lake(str(tmp_path / "lake"))
        writer = TableWriter(lake, "deals", write_disposition="append",
                             columns=contract_columns("deals"))
        records = sandbox.truth("deals")
        for start in range(0, len(records), 4):
            writer.write(records[start:start + 4], mark=TableMark(app_id("maint"), 1_700_000_000_000_000 + start))
        yield lake, sandbox


def _parquet_files(lake: Lake, resource: str) -> int:
    return sum(1 for _ in Path(lake.table_uri(resource)).rglob("*.parquet")
               if "_delta_log" not in _.parts)


def _data(lake: Lake) -> pl.DataFrame:
    return lake.read("deals").sort("id")


def test_maintenance_flow_compacts_checkpoints_and_vacuums(
        small_commits: tuple[Lake, RunningSandbox]) -> None:
    """Files on disk and active files drop to one, the log gets a checkpoint, rows are identical."""
    lake, sandbox = small_commits
    version_before = lake.version("deals")
    active_before = len(DeltaTable(lake.table_uri("deals")).file_uris())
    on_disk_before = _parquet_files(lake, "deals")
    data_before = _data(lake)
    assert version_before is not None and version_before == 14 and active_before == 15

    [result] = analytics_maintenance(pipeline="maint", lake_uri=lake.uri, resources=["deals"],
                                     retention_hours=0, enforce_retention=False)

    table = DeltaTable(lake.table_uri("deals"))
    assert result["files_before"] == active_before and result["files_after"] == 1
    assert len(table.file_uris()) == 1 and _parquet_files(lake, "deals") == 1 < on_disk_before
    assert result["files_vacuumed"] == on_disk_before  # every small file, after compaction
    assert table.version() > version_before
    assert "OPTIMIZE" in [h["operation"] for h in table.history()]
    checkpoints = list((Path(lake.table_uri("deals")) / "_delta_log").glob("*.checkpoint.parquet"))
    assert checkpoints, "no checkpoint written"
    assert _data(lake).equals(data_before)
    assert_table_equals_truth(lake.read("deals"), fetch_truth(sandbox.base_url, "deals"), "deals")
    # The sync's mark (a Delta app transaction) survives compaction and checkpointing.
    assert table.transaction_version(app_id("maint")) == 1_700_000_000_000_000 + 56
    print(f"\nmaintenance: version {version_before} -> {table.version()}, active files "
          f"{active_before} -> 1, files on disk {on_disk_before} -> 1")


def test_default_retention_keeps_a_week_of_time_travel(small_commits: tuple[Lake, RunningSandbox]) -> None:
    """With the 7-day default, compaction happens but no file is deleted: old versions still read."""
    lake, _ = small_commits
    version_before = lake.version("deals")
    on_disk_before = _parquet_files(lake, "deals")
    old = pl.read_delta(lake.table_uri("deals"), version=version_before).sort("id")

    result = maintain_table(lake, "deals")

    assert result.files_after == 1 and result.files_vacuumed == 0
    assert _parquet_files(lake, "deals") == on_disk_before + 1  # the compacted file is added
    assert pl.read_delta(lake.table_uri("deals"), version=version_before).sort("id").equals(old)
    assert _data(lake).equals(old)


def test_short_retention_is_refused_unless_asked_for(small_commits: tuple[Lake, RunningSandbox]) -> None:
    """A retention below the table's 7 days fails (nothing deleted); a missing table is skipped."""
    lake, _ = small_commits
    on_disk_before = _parquet_files(lake, "deals")
    with pytest.raises(LakeError, match="vacuuming"):
        maintain_table(lake, "deals", retention_hours=1)
    assert _parquet_files(lake, "deals") >= on_disk_before
    assert maintain_table(lake, "users").status == "no table"


def _key_ranges(lake: Lake, resource: str) -> list[tuple[str, str]]:
    """Each active file's (min, max) ``id``, from the Delta log's file statistics."""
    actions = pl.DataFrame(DeltaTable(lake.table_uri(resource)).get_add_actions(flatten=True))
    return sorted(zip(actions["min.id"].to_list(), actions["max.id"].to_list(), strict=True))


def test_z_order_by_the_key_leaves_files_of_disjoint_key_ranges_and_the_same_rows(
        tmp_path: Path) -> None:
    """Small commits each span the key range (ids arrive in no order); z-ordered by ``id`` each
    file holds a range of its own, so a merge's key-range predicate can skip the others."""
    lake = Lake(str(tmp_path / "shuffled"))
    writer = TableWriter(lake, "deals", write_disposition="append",
                         columns=contract_columns("deals"))
    records = World(seed=24, counts={**COUNTS, "deals": 3_000}).truth("deals")
    random.Random(24).shuffle(records)
    for start in range(0, len(records), 100):
        writer.write(records[start:start + 100], mark=TableMark(app_id("maint"), 1 + start))
    data_before = _data(lake)
    ranges = _key_ranges(lake, "deals")
    assert any(high > low for (_, high), (low, _) in zip(ranges, ranges[1:], strict=False))

    # a target size small enough that the 3,000 rows land in several files
    result = maintain_table(lake, "deals", z_order=["id"], target_size=100_000)

    ranges = _key_ranges(lake, "deals")
    assert result.files_after == len(ranges) > 1
    assert all(high < low for (_, high), (low, _) in zip(ranges, ranges[1:], strict=False)), ranges
    assert _data(lake).equals(data_before)
    assert sorted(_data(lake)["id"].to_list()) == sorted(r["id"] for r in records)
    assert DeltaTable(lake.table_uri("deals")).transaction_version(app_id("maint")) == 2_901


def test_z_order_by_a_column_the_table_lacks_fails_naming_it_and_rewrites_nothing(
        small_commits: tuple[Lake, RunningSandbox]) -> None:
    lake, _ = small_commits
    version = lake.version("deals")
    with pytest.raises(LakeError, match=r"deals: cannot z-order .* by \['ID'\]: the table has no"):
        maintain_table(lake, "deals", z_order=["id", "ID"])
    assert lake.version("deals") == version

"""The independent comparison itself can fail: a change to any one field of a real row is seen.

The fault matrix's "0 rows lost" rests on groundtruth.differences; a comparison that skipped a
kind of field (decimals, objects, undocumented values, stale columns) would pass anything.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from analytics_client import Lake
from analytics_sandbox import SandboxSettings, World, serve
from tests.groundtruth import (
    assert_table_equals_truth,
    differences,
    fetch_deleted,
    fetch_truth,
    live_rows,
)
from tests.support import sync

COUNTS = {"tags": 5, "users": 5, "deals": 60, "pages": 5, "tasks": 5}
Row = dict[str, Any]


def _first(rows: list[tuple[Row, Row]], column: str) -> tuple[Row, Row]:
    return next((row, record) for row, record in rows if row.get(column) is not None)


@pytest.fixture(scope="module")
def deals(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Row, Row]]:
    """Each deals row of a real lake beside the API's record; they agree in every field."""
    lake = tmp_path_factory.mktemp("lake")
    with serve(World(seed=3, counts=COUNTS), SandboxSettings(late_visibility=False)) as sandbox:
        sync(sandbox, lake, resources=["deals"])
        truth = fetch_truth(sandbox.base_url, "deals")
    rows = {row["id"]: row for row in Lake(str(lake)).read("deals").to_dicts()}
    pairs = [(rows[record["id"]], record) for record in truth]
    assert all(differences(row, record, "deals") == [] for row, record in pairs)
    return pairs


@pytest.mark.parametrize(("column", "change"), [
    ("amount", lambda v: v + Decimal("0.01")),  # a decimal off by a cent
    ("name", lambda v: v + " "),
    ("updated_at", lambda v: v.replace(microsecond=(v.microsecond + 1) % 1_000_000)),
    ("tag_ids", lambda v: [*v, "extra"]),
    ("custom_fields", lambda v: v.replace("}", ',"x":1}', 1) if v != "{}" else '{"x":1}'),
    ("legacy_id", lambda v: v + 1),  # an undocumented 64-bit integer in its typed column
    ("probability__json", lambda v: v + "1" if v[-1].isdigit() else "0"),  # as JSON text
], ids=lambda x: x if isinstance(x, str) else "")
def test_a_change_to_any_field_is_a_difference(
        deals: list[tuple[Row, Row]], column: str, change: Callable[[Any], Any]) -> None:
    """Documented, decimal, object and undocumented values are all compared."""
    row, record = _first(deals, column)
    wrong = differences({**row, column: change(row[column])}, record, "deals")
    assert len(wrong) == 1 and column.removesuffix("__json") in wrong[0], wrong


def test_a_column_left_holding_a_value_the_record_no_longer_has_is_a_difference(
        deals: list[tuple[Row, Row]]) -> None:
    """A stale value (a field the API dropped, kept by a merge) is not equal to a null."""
    row, record = next((row, record) for row, record in deals if record.get("legacy_id") is None)
    wrong = differences({**row, "legacy_id": 2**60}, record, "deals")
    assert wrong == ["column 'legacy_id' holds 1152921504606846976, the API has no 'legacy_id'"]


def test_a_json_true_is_not_the_number_one() -> None:
    """Undocumented values compare as JSON: true and 1 differ, 1 and 1.0 do not."""
    record = {"id": "d1", "name": "n", "created_at": None, "updated_at": None, "flag": True,
              "ratio": 1}
    row = {"id": "d1", "name": "n", "flag__json": "1", "ratio__json": "1.0"}
    assert differences(row, record, "deals") == ["undocumented flag: table 1 != API True"]


def _tag(rid: str, *, deleted: bool) -> Row:
    """A tags row as the pipeline writes it, equal to ``_tag_record(rid)``."""
    moment = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    return {"id": rid, "name": f"name {rid}", "color": None, "created_at": moment,
            "updated_at": moment, "_synced_at": moment, "_row_hash": "h",
            "_deleted_at": moment if deleted else None}


def _tag_record(rid: str) -> Row:
    stamp = "2026-01-02T00:00:00.000000Z"
    return {"id": rid, "name": f"name {rid}", "created_at": stamp, "updated_at": stamp}


def test_a_soft_deleted_row_is_not_compared() -> None:
    """A soft-deleted row (``_deleted_at`` set) is ignored; without the column every row is live."""
    table = pl.DataFrame([_tag("tag_a", deleted=False), _tag("tag_gone", deleted=True)])
    assert live_rows(table)["id"].to_list() == ["tag_a"]
    assert_table_equals_truth(table, [_tag_record("tag_a")], "tags")
    without = table.drop("_deleted_at")  # a table before soft deletes: every row is live
    assert live_rows(without).height == 2
    assert_table_equals_truth(without, [_tag_record("tag_a"), _tag_record("tag_gone")], "tags")


@pytest.mark.parametrize(("rows", "truth", "said"), [
    ([("tag_a", False), ("tag_gone", False)], ["tag_a"], "extra live rows ['tag_gone']"),
    ([("tag_a", False), ("tag_b", True)], ["tag_a", "tag_b"],
     "missing live rows ['tag_b'] (soft-deleted while the API serves them: ['tag_b'])"),
    ([("tag_a", False), ("tag_a", True)], ["tag_a"], "duplicate ids"),
], ids=["live row the API deleted", "live record soft-deleted", "id twice"])
def test_live_rows_must_be_exactly_the_truth(rows: list[tuple[str, bool]], truth: list[str],
                                              said: str) -> None:
    """A live row the truth lacks is extra, a soft-deleted row the truth has is missing."""
    table = pl.DataFrame([_tag(rid, deleted=deleted) for rid, deleted in rows])
    with pytest.raises(AssertionError, match=re.escape(said)):
        assert_table_equals_truth(table, [_tag_record(rid) for rid in truth], "tags")


def test_fetch_deleted_is_the_sandbox_deleted_ids() -> None:
    """fetch_deleted and RunningSandbox.deleted list what advance and delete removed from truth."""
    with serve(World(3, counts=COUNTS)) as sandbox:
        assert fetch_deleted(sandbox.base_url, "deals") == []
        advanced = sandbox.advance(deletes={"deals": 3}, resources=["deals"])["deals"]["deleted"]
        chosen = sandbox.delete("deals", [fetch_truth(sandbox.base_url, "deals")[0]["id"]])
        gone = fetch_deleted(sandbox.base_url, "deals")
        assert gone == sandbox.deleted("deals") == sorted(advanced + chosen)
        assert not set(gone) & {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}

"""The independent comparison itself can fail: a change to any one field of a real row is seen.

The fault matrix's "0 rows lost" rests on groundtruth.differences; a comparison that skipped a
kind of field (decimals, objects, undocumented values, stale columns) would pass anything.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from analytics_client import Lake
from analytics_sandbox import SandboxSettings, World, serve
from tests.groundtruth import differences, fetch_truth
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

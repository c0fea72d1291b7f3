"""An independent check that a Delta table holds exactly what the API serves.

Written from the contract (shared/analytics-api.md), not from our schemas: the expected value of
every field is derived here from the raw JSON with the standard library, so a test cannot pass
merely because the client and the sandbox share an assumption.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import httpx
import polars as pl

TS, DATE, DEC, INT, BOOL, STR, STRLIST, OBJ = "ts", "date", "dec", "int", "bool", "str", "strlist", "obj"
COMMON = {"id": STR, "created_at": TS, "updated_at": TS}
CONTRACT: dict[str, dict[str, str]] = {
    "tags": {**COMMON, "name": STR, "color": STR},
    "users": {**COMMON, "name": STR, "email": STR, "role": STR, "active": BOOL, "last_login_at": TS},
    "deals": {**COMMON, "name": STR, "amount": DEC, "currency": STR, "stage": STR, "owner_id": STR,
              "tag_ids": STRLIST, "custom_fields": OBJ, "closed_at": TS},
    "pages": {**COMMON, "name": STR, "url": STR, "views": INT, "published": BOOL},
    "tasks": {**COMMON, "name": STR, "status": STR, "due_date": DATE, "deal_id": STR,
              "assignee_id": STR, "completed_at": TS},
}


def fetch_truth(base_url: str, resource: str) -> list[dict[str, Any]]:
    """The sandbox's current records, parsed exactly (decimals as Decimal)."""
    response = httpx.get(f"{base_url}/_admin/truth/{resource}", timeout=60)
    response.raise_for_status()
    return json.loads(response.content, parse_float=Decimal)


def expected(kind: str, raw: Any) -> Any:
    if raw is None:
        return None
    if kind == TS:
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(dt.UTC)
    if kind == DATE:
        return dt.date.fromisoformat(raw)
    if kind == DEC:
        return Decimal(raw)
    return raw


def actual(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == OBJ:
        return json.loads(value, parse_float=Decimal)
    if kind == TS:
        return value.astimezone(dt.UTC)
    return value


def assert_table_equals_truth(table: pl.DataFrame, truth: list[dict[str, Any]], resource: str) -> None:
    """Every id exactly once, no extra ids, every documented and undocumented value equal."""
    ids = table["id"].to_list()
    assert len(ids) == len(set(ids)), f"{resource}: duplicate ids in the table"
    truth_ids = {r["id"] for r in truth}
    assert set(ids) == truth_ids, (
        f"{resource}: missing {sorted(truth_ids - set(ids))[:5]}, extra {sorted(set(ids) - truth_ids)[:5]}"
    )
    rows = {row["id"]: row for row in table.to_dicts()}
    contract = CONTRACT[resource]
    for record in truth:
        row = rows[record["id"]]
        for field, kind in contract.items():
            want, got = expected(kind, record.get(field)), actual(kind, row.get(field))
            assert got == want, f"{resource} {record['id']} {field}: table {got!r} != API {want!r}"
        for field, raw in record.items():
            if field in contract or raw is None:
                continue
            assert _undocumented_value(row, field) == raw, (
                f"{resource} {record['id']} undocumented {field}: table "
                f"{_undocumented_value(row, field)!r} != API {raw!r}")


def _undocumented_value(row: dict[str, Any], field: str) -> Any:
    """Undocumented values live in their typed column, or as JSON text in ``<field>__json``."""
    if row.get(field) is not None:
        value = row[field]
        return Decimal(repr(value)) if isinstance(value, float) else value
    text = row.get(f"{field}__json")
    return None if text is None else json.loads(text, parse_float=Decimal)

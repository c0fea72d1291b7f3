"""An independent check that a Delta table holds exactly what the API serves.

Written from the contract (shared/analytics-api.md), not from our schemas: the expected value of
every field is derived here from the raw JSON with the standard library, so a test cannot pass
merely because the client and the sandbox share an assumption.

The API deletes records without a tombstone; the pipeline soft-deletes their rows (``_deleted_at``
set, values kept). A table equals the truth when its live rows (``_deleted_at`` null) do.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import httpx
import polars as pl

TS, DATE, DEC, INT, BOOL, STR = "ts", "date", "dec", "int", "bool", "str"
STRLIST, OBJ = "strlist", "obj"
COMMON = {"id": STR, "created_at": TS, "updated_at": TS}
CONTRACT: dict[str, dict[str, str]] = {
    "tags": {**COMMON, "name": STR, "color": STR},
    "users": {**COMMON, "name": STR, "email": STR, "role": STR, "active": BOOL,
              "last_login_at": TS},
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


def fetch_deleted(base_url: str, resource: str) -> list[str]:
    """The ids the sandbox has deleted from ``resource`` so far, sorted (no API serves these)."""
    response = httpx.get(f"{base_url}/_admin/deleted/{resource}", timeout=60)
    response.raise_for_status()
    ids: list[str] = response.json()
    return ids


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


# Columns the pipeline adds to every row (README, "What lands in the lake"); not API fields.
# ``_deleted_at``: null on a live row, the time the pipeline saw its record gone on a soft-deleted
# one.
DELETED_AT = "_deleted_at"
PIPELINE_COLUMNS = frozenset({"_synced_at", "_row_hash", DELETED_AT})
VARIANT_SUFFIX = "__json"  # an undocumented value that fits no typed column, as JSON text


def live_rows(table: pl.DataFrame) -> pl.DataFrame:
    """The rows whose record the API still serves: ``_deleted_at`` null, or every row of a table
    without that column."""
    if DELETED_AT not in table.columns:
        return table
    return table.filter(pl.col(DELETED_AT).is_null())


def assert_table_equals_truth(table: pl.DataFrame, truth: list[dict[str, Any]],
                              resource: str) -> None:
    """Every id of the truth exactly once among the live rows, no live row the truth lacks, every
    documented and undocumented value equal; soft-deleted rows are not compared (an id is still
    one row of the table, live or soft-deleted)."""
    all_ids = table["id"].to_list()
    assert len(all_ids) == len(set(all_ids)), f"{resource}: duplicate ids in the table"
    live = live_rows(table)
    ids = set(live["id"].to_list())
    truth_ids = {r["id"] for r in truth}
    soft_deleted = set(all_ids) - ids
    assert ids == truth_ids, (
        f"{resource}: missing live rows {sorted(truth_ids - ids)[:5]} (soft-deleted while the "
        f"API serves them: {sorted((truth_ids - ids) & soft_deleted)[:5]}), extra live rows "
        f"{sorted(ids - truth_ids)[:5]} (the API serves no such record)"
    )
    rows = {row["id"]: row for row in live.to_dicts()}
    for record in truth:
        wrong = differences(rows[record["id"]], record, resource)
        assert not wrong, f"{resource} {record['id']}: " + "; ".join(wrong[:5])


def differences(row: dict[str, Any], record: dict[str, Any], resource: str) -> list[str]:
    """Every field in which the table's row says something other than the API's record.

    All of them: documented fields by their contract type, undocumented fields by value
    (from their typed column or their JSON text), and any column left holding a value for a
    field the record no longer has (a null written or left out is the same, the contract says).
    """
    contract = CONTRACT[resource]
    wrong: list[str] = []
    for field, kind in contract.items():
        want, got = expected(kind, record.get(field)), actual(kind, row.get(field))
        if got != want:
            wrong.append(f"{field}: table {got!r} != API {want!r}")
    for field, raw in record.items():
        if field in contract:
            continue
        got = _undocumented_value(row, field)
        if not _same_json(got, raw):
            wrong.append(f"undocumented {field}: table {got!r} != API {raw!r}")
        elif row.get(field) is not None and row.get(f"{field}{VARIANT_SUFFIX}") is not None:
            wrong.append(f"undocumented {field}: both its column and its JSON text hold a value")
    for column, value in row.items():
        field = column.removesuffix(VARIANT_SUFFIX)
        if (column in PIPELINE_COLUMNS or field in contract or value is None
                or record.get(field) is not None):
            continue
        wrong.append(f"column {column!r} holds {value!r}, the API has no {field!r}")
    return wrong


def _same_json(got: Any, want: Any) -> bool:
    """JSON values equal as JSON: ``True`` is not ``1``, ``1`` equals ``1.0`` (both numbers)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, dict):
        return (isinstance(got, dict) and got.keys() == want.keys()
                and all(_same_json(got[k], want[k]) for k in want))
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(_same_json(g, w) for g, w in zip(got, want, strict=True)))
    return bool(got == want)


def _undocumented_value(row: dict[str, Any], field: str) -> Any:
    """Undocumented values live in their typed column, or as JSON text in ``<field>__json``."""
    if row.get(field) is not None:
        value = row[field]
        return Decimal(repr(value)) if isinstance(value, float) else value
    text = row.get(f"{field}{VARIANT_SUFFIX}")
    return None if text is None else json.loads(text, parse_float=Decimal)


def assert_children_equal_truth(table: pl.DataFrame, parents: list[dict[str, Any]],
                                children: list[dict[str, Any]], *, parent: str, child: str,
                                link: str, included: tuple[str, ...] = ()) -> None:
    """A child table read per parent (``/v1/deals/{deal_id}/tasks``) holds, for every parent
    record, exactly the child records whose ``link`` field names it (the contract's
    ``tasks.deal_id``), every field equal (``differences``), plus ``_<parent>_id`` and the
    included parent fields, named as dlt names them."""
    by_id = {p["id"]: p for p in parents}
    want = {(c["id"], c[link]): c for c in children if c.get(link) in by_id}
    key = f"_{parent}_id"
    got = {(row["id"], row[key]): row for row in table.to_dicts()}
    assert len(got) == table.height, f"{child}: duplicate (id, {key}) pairs"
    assert set(got) == set(want), (f"{child}: missing {sorted(set(want) - set(got))[:5]}, "
                                   f"extra {sorted(set(got) - set(want))[:5]}")
    from_parent = {key, *(f"_{parent}_{field}" for field in included)}
    for pair, record in want.items():
        row = got[pair]
        own = {c: v for c, v in row.items() if c not in from_parent}
        wrong = differences(own, record, child)
        assert not wrong, f"{child} {pair}: " + "; ".join(wrong[:5])
        for field in included:
            assert row[f"_{parent}_{field}"] == by_id[pair[1]].get(field), (child, pair, field)

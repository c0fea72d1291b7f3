"""What the exact-record tests share: configs, one run, and an independent decoder of the lake.

Nothing here imports the library's conversion code (``analytics_client.lake.frames``,
``schemas``, ``keyset``): expectations come from the data model (docs/data-model.md, issue 10)
and the API contract, decoded with the stdlib and polars/deltalake reading the tables as any
user would. A test that shared the code under test's decoder would agree with its bugs.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import DeltaTable

from analytics_client import DEFAULT_CONFIG, Credentials, load_config, run_sync
from analytics_client.core.summary import ResourceSummary
from tests.recordserver import RecordServer, instant_ns

PIPELINE = "analytics"
APP_ID = f"analytics-sync:{PIPELINE}"
T0 = "2026-03-01T10:00:00.000000Z"
T1 = "2026-03-01T11:00:00.000000Z"
QUARANTINE = "_quarantine"
QUARANTINE_COLUMNS = ("pipeline", "resource", "key", "field", "reason", "record", "run_id",
                      "quarantined_at")
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# Epoch microseconds of the first and last instant a Delta timestamp (years 1-9999) holds.
MIN_US = (dt.datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // dt.timedelta(microseconds=1)
MAX_US = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) \
    // dt.timedelta(microseconds=1)
INT64 = (-(2**63), 2**63 - 1)


# ---- configs -----------------------------------------------------------------------------------

def paginator(limit: int = 10) -> dict[str, Any]:
    return {"type": "page_number", "page_param": "page[number]", "limit_param": "page[size]",
            "limit": limit, "base_page": 1, "total_path": "meta.page.total_pages"}


def own_config(name: str = "events", *, limit: int = 10, **resource: Any) -> dict[str, Any]:
    """One user resource outside the contract's five, read incrementally on ``updated_at``."""
    return {
        "client": {"base_url": "http://placeholder.invalid",
                   "auth": {"type": "api_key", "name": "api_key", "location": "header"}},
        "resources": [{
            "name": name,
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {
                "path": f"/v1/{name}",
                "data_selector": "data",
                "params": {"sort": "updated_at"},
                "paginator": paginator(limit),
                "incremental": {"cursor_path": "updated_at",
                                "start_param": "filter[updated_at][gte]"},
            },
            **resource,
        }],
    }


def default_config(**deals: Any) -> dict[str, Any]:
    """The default configuration; ``deals`` entries are set on the deals resource."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    for resource in config["resources"]:
        if resource["name"] == "deals":
            resource.update(deals)
    return config


def run(server: RecordServer, lake: Path, config: dict[str, Any], *,
        resources: list[str] | None = None, run_id: str = "run", marks: Any = None
        ) -> dict[str, ResourceSummary]:
    source = load_config(config, base_url=server.base_url)
    summaries = run_sync(source, Credentials("any-key", "any-org"), str(lake),
                         resources=resources, run_id=run_id, marks=marks, pipeline=PIPELINE)
    return {s.resource: s for s in summaries}


def deal(id_: str, extra: str = "", updated_at: str = T0, name: str | None = None) -> str:
    """A deals record as raw JSON text: the contract's not-null fields, then ``extra`` verbatim."""
    name_json = json.dumps(name if name is not None else f"deal {id_}")
    text = (f'{{"id":"{id_}","name":{name_json},"created_at":"{T0}",'
            f'"updated_at":"{updated_at}"')
    return text + ("," + extra if extra else "") + "}"


# ---- reading the lake as a user would ----------------------------------------------------------

def table(lake: Path, resource: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / resource))


def rows_by_id(frame: pl.DataFrame) -> dict[object, dict[str, Any]]:
    rows = frame.to_dicts()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate ids in the table: {ids}"
    return {r["id"]: r for r in rows}


def table_exists(lake: Path, resource: str) -> bool:
    return DeltaTable.is_deltatable(str(lake / resource))


def table_mark(lake: Path, resource: str) -> int | None:
    """The mark the table's commits carry (Delta app transaction), epoch microseconds."""
    if not table_exists(lake, resource):
        return None
    version = DeltaTable(str(lake / resource)).transaction_version(APP_ID)
    return None if version is None else int(version)


def quarantine(lake: Path) -> pl.DataFrame | None:
    uri = str(lake / QUARANTINE)
    if not DeltaTable.is_deltatable(uri):
        return None
    frame = pl.read_delta(uri)
    missing = [c for c in QUARANTINE_COLUMNS if c not in frame.columns]
    assert not missing, f"the quarantine table lacks columns {missing}: {frame.columns}"
    assert isinstance(frame.schema["quarantined_at"], pl.Datetime), frame.schema
    for column in ("pipeline", "resource", "key", "field", "reason", "record", "run_id"):
        assert frame.schema[column] in (pl.String, pl.Null), (column, frame.schema[column])
    return frame


def quarantine_rows(lake: Path, resource: str | None = None) -> list[dict[str, Any]]:
    frame = quarantine(lake)
    if frame is None:
        return []
    rows = frame.to_dicts()
    return [r for r in rows if resource is None or r["resource"] == resource]


def assert_quarantined(lake: Path, resource: str, key: str, raw: str, *,
                       fields: tuple[str, ...], run_id: str | None = None,
                       reason_mentions: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record ``raw`` (served under ``key``) is in quarantine naming one of ``fields``."""
    frame = quarantine(lake)
    assert frame is not None, f"no quarantine table at {lake / QUARANTINE}: {key!r} was not set aside"
    rows = [r for r in frame.to_dicts() if r["resource"] == resource and r["key"] == key]
    assert rows, f"{resource} {key!r} not in quarantine: {frame.to_dicts()}"
    served = decode(raw)
    row = next((r for r in rows if r["record"] is not None
                and same_json(decode(r["record"]), served)), None)
    assert row is not None, f"no quarantine row holds the record as served:\n{raw}\n{rows}"
    assert row["pipeline"] == PIPELINE
    assert row["field"] in fields or any(f and f in (row["field"] or "") for f in fields), \
        f"quarantine names field {row['field']!r}, expected one of {fields}"
    assert row["reason"], row
    if reason_mentions:
        assert any(m.lower() in row["reason"].lower() for m in reason_mentions), row["reason"]
    if run_id is not None:
        assert row["run_id"] == run_id
    assert row["quarantined_at"] is not None
    return row


# ---- an independent decoder -------------------------------------------------------------------

@dataclass(frozen=True)
class Constant:
    """A non-standard JSON constant (NaN, Infinity, -Infinity), kept as its token."""

    token: str


def decode(text: str) -> Any:
    """JSON text to Python, exactly: decimals as Decimal, NaN & co. as Constant tokens."""
    return json.loads(text, parse_float=Decimal, parse_constant=Constant)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by exact value, booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | Decimal) and isinstance(b, int | Decimal):
        return Decimal(a) == Decimal(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


def replace_surrogates(value: Any) -> Any:
    """The value with every lone surrogate replaced by U+FFFD (what a lenient decoder keeps)."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value


def _micros(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def cursor_micros(text: str) -> int | None:
    """The served cursor as epoch µs; None if it has sub-microsecond digits or is not one."""
    ns = instant_ns(text)
    if ns is None or ns % 1000:
        return None
    return ns // 1000


def in_delta_range(micros: int) -> bool:
    return MIN_US <= micros <= MAX_US


def value_problem(row: dict[str, Any], schema: dict[str, pl.DataType], field: str,
                  served: Any, *, cursor: bool = False) -> str | None:
    """Why ``row`` does not hold ``served`` for ``field`` (None: it does), by the data model.

    The value is in the typed column ``field`` or, as JSON text, in ``field__json``; the other
    is null; a null or missing value leaves both null. A typed column holds it exactly:
    strings as String, booleans as Boolean, integers as Int64 (within int64) or Float64 (up to
    2**53), other numbers as Float64 only when the float is exact (``Decimal(repr(x))``
    equals the served decimal) or a Decimal column holding it exactly. The cursor field is a
    Datetime("us", "UTC") column equal to the served instant.
    """
    variant_name = field + "__json"
    typed = row.get(field) if field in schema else None
    variant = row.get(variant_name) if variant_name in schema else None
    if served is None:
        if typed is not None or variant is not None:
            return f"{field!r} served null/missing but stored {typed!r} / {variant!r}"
        return None
    if typed is not None and variant is not None:
        return f"{field!r} is in both {field!r} ({typed!r}) and {variant_name!r} ({variant!r})"
    wanted = [served] + ([replace_surrogates(served)] if has_lone_surrogate(served) else [])
    if cursor:
        micros = cursor_micros(served) if isinstance(served, str) else None
        dtype = schema.get(field)
        if dtype != pl.Datetime("us", "UTC"):
            return f"cursor {field!r} is a {dtype} column, not Datetime(us, UTC)"
        if variant is not None or typed is None:
            return f"cursor {field!r} {served!r} not in its typed column ({typed!r}, {variant!r})"
        if micros is None or _micros(typed) != micros:
            return f"cursor {field!r}: served {served!r}, stored {typed!r}"
        return None
    if variant is not None:
        try:
            stored = decode(variant)
        except ValueError as exc:
            return f"{variant_name!r} is not JSON text ({exc}): {variant!r}"
        if not any(same_json(stored, w) for w in wanted):
            return f"{variant_name!r} holds {stored!r}, served {served!r}"
        return None
    if typed is None:
        return f"{field!r}: served {served!r}, both columns null (value lost)"
    dtype = schema[field]
    if isinstance(served, str):
        ok = dtype == pl.String and typed in wanted
    elif isinstance(served, bool):
        ok = dtype == pl.Boolean and typed is served
    elif isinstance(served, int | Decimal):
        exact = Decimal(served)
        if dtype == pl.Int64:
            ok = exact == exact.to_integral_value() and INT64[0] <= exact <= INT64[1] \
                and Decimal(typed) == exact
        elif dtype == pl.Float64:
            ok = math.isfinite(typed) and Decimal(repr(typed)) == exact
        elif isinstance(dtype, pl.Decimal):
            ok = Decimal(typed) == exact
        else:
            ok = False
    else:  # objects and lists never have a typed column
        ok = False
    if not ok:
        return f"{field!r}: served {served!r}, stored {typed!r} in a {dtype} column"
    return None

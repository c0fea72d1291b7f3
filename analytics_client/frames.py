"""Records (dicts parsed from the API's JSON) to typed polars frames, exactly or not at all."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeGuard

import orjson
import polars as pl

from analytics_client.errors import ContractError, RecordTypeError
from analytics_client.schemas import DOCUMENTED, EXPECTED, FieldSpec, Kind

__all__ = [
    "JSON_SUFFIX",
    "ROW_HASH",
    "SYNCED_AT",
    "canonical_json",
    "deduplicate",
    "records_to_frame",
    "row_hash",
]

Record = dict[str, object]

SYNCED_AT = "_synced_at"
ROW_HASH = "_row_hash"
# `<field>__json` holds, as JSON text, the values of `<field>` that do not fit its column type.
JSON_SUFFIX = "__json"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Every integer up to 2**53 in magnitude is exactly a float64; beyond, some are not.
_FLOAT_EXACT_INT = 2**53
_AMOUNT_LIMIT = Decimal(10) ** 13
_CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LONG_FRACTION = re.compile(r"[.,](\d{7,})")


class _Misfit(Exception):
    """A value does not fit a kind; `got` describes what it is instead."""

    def __init__(self, got: str) -> None:
        super().__init__(got)
        self.got = got


def canonical_json(value: object) -> str:
    """JSON text that is the same for equal values: sorted keys, no spaces, unicode kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_bytes(value: object) -> bytes:
    """UTF-8 canonical JSON; orjson writes the same text as ``canonical_json``, 5x faster.

    orjson refuses integers beyond 64 bits (json does not): those take the slow path.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return canonical_json(value).encode("utf-8")


def row_hash(record: Record) -> str:
    """A content hash that ignores null-valued keys, so a missing key and a null are one."""
    content = {k: v for k, v in record.items() if v is not None}
    return hashlib.blake2b(_canonical_bytes(content), digest_size=16).hexdigest()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits_int64(value: int) -> bool:
    return _INT64_MIN <= value <= _INT64_MAX


# ---- documented kinds: convert exactly or raise _Misfit -------------------------------------


def _to_string(value: object) -> object:
    if not isinstance(value, str):
        raise _Misfit(_json_type(value))
    return value


def _to_micros(value: object) -> object:
    if not isinstance(value, str):
        raise _Misfit(_json_type(value))
    long = _LONG_FRACTION.search(value)
    # fromisoformat silently drops digits past the sixth: refuse rather than truncate.
    if long and long.group(1)[6:].strip("0"):
        raise _Misfit("a timestamp with sub-microsecond precision")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Misfit("an unparseable string") from None
    if parsed.tzinfo is None:
        raise _Misfit("a timestamp without a UTC offset")
    return (parsed - _EPOCH) // _MICROSECOND


def _to_date(value: object) -> object:
    if not isinstance(value, str):
        raise _Misfit(_json_type(value))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Misfit("an unparseable string") from None


def _to_decimal(value: object) -> object:
    if _is_int(value):
        exact = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _Misfit("a non-finite float")
        # repr is the shortest text that reads back as this float: what the JSON said.
        exact = Decimal(repr(value))
    else:
        raise _Misfit(_json_type(value))
    if abs(exact) >= _AMOUNT_LIMIT:
        raise _Misfit("a number of 10^13 or more in absolute value")
    if exact != exact.quantize(_CENT):
        raise _Misfit("a number with more than 2 decimal places")
    return exact


def _to_int64(value: object) -> object:
    if _is_int(value):
        if not _fits_int64(value):
            raise _Misfit("an integer beyond 64 bits")
        return value
    if isinstance(value, float):
        # 1e2 and 100.0 are valid JSON for 100; 1.5 is not an integer.
        if not value.is_integer():
            raise _Misfit("a float with a fractional part")
        if not _INT64_MIN <= value < 2.0**63:
            raise _Misfit("a number beyond 64 bits")
        return int(value)
    raise _Misfit(_json_type(value))


def _to_bool(value: object) -> object:
    if not isinstance(value, bool):
        raise _Misfit(_json_type(value))
    return value


def _to_string_list(value: object) -> object:
    if not isinstance(value, list):
        raise _Misfit(_json_type(value))
    for item in value:
        if not isinstance(item, str):
            raise _Misfit(f"a list holding a {_json_type(item)}")
    return value


def _to_json_object(value: object) -> object:
    if not isinstance(value, dict):
        raise _Misfit(_json_type(value))
    return canonical_json(value)


_CONVERTERS: dict[Kind, Callable[[object], object]] = {
    "string": _to_string,
    "timestamp": _to_micros,
    "date": _to_date,
    "decimal": _to_decimal,
    "integer": _to_int64,
    "boolean": _to_bool,
    "string_list": _to_string_list,
    "json_object": _to_json_object,
}


# ---- the same conversions for a whole column at once, when every value is of the usual form --
#
# Each returns None where it cannot vouch for every value; the exact per-value path above then
# converts the column or names the record that does not fit. So the fast path only has to be
# right when it answers, and the messages stay those of the slow path.

_NONE = type(None)
_UTC_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


def _parsed_strings(name: str, values: list[object], pattern: str,
                    parse: Callable[[pl.Series], pl.Series]) -> pl.Series | None:
    column = pl.Series(name, values, dtype=pl.String)
    if not column.str.contains(pattern).all():
        return None
    parsed = parse(column)
    # An impossible date or time (2026-02-30) parses to null: the slow path names it.
    return parsed if parsed.null_count() == column.null_count() else None


def _fast_decimal(name: str, values: list[object]) -> pl.Series | None:
    """Floats whose shortest form has at most 2 decimals, as exact cents.

    Below 10^13 two amounts 0.01 apart never share a float, so ``round(x * 100) / 100 == x``
    holds exactly for the floats that JSON text with at most two decimals parses to.
    """
    try:
        floats = pl.Series(name, values, dtype=pl.Float64)
    except (TypeError, OverflowError):
        return None
    if not (floats.abs() < 1e13).all():
        return None
    cents = (floats * 100).round(0)
    # Checked in Python, whose division is correctly rounded (polars may multiply by 0.01).
    if any(c is not None and c / 100 != v for c, v in zip(cents.to_list(), values, strict=True)):
        return None
    exact = cents.cast(pl.Int64).cast(pl.Decimal(18, 2)) * Decimal("0.01")
    return exact.cast(pl.Decimal(18, 2)).alias(name)


def _fast_string_list(name: str, values: list[object]) -> pl.Series | None:
    # polars builds nested lists from Python objects slowly; JSON text of plain strings is exact.
    if not all(type(item) is str for value in values if value for item in value):  # type: ignore[attr-defined]
        return None
    text = [None if v is None else orjson.dumps(v).decode() for v in values]
    return pl.Series(name, text, dtype=pl.String).str.json_decode(pl.List(pl.String))


def _fast_column(name: str, spec: FieldSpec, values: list[object]) -> pl.Series | None:
    types = set(map(type, values))
    if _NONE in types and not spec.nullable:
        return None
    types.discard(_NONE)
    kind = spec.kind
    try:
        if kind == "string" and types <= {str}:
            return pl.Series(name, values, dtype=pl.String)
        if kind == "boolean" and types <= {bool}:
            return pl.Series(name, values, dtype=pl.Boolean)
        if kind == "integer" and types <= {int}:
            return pl.Series(name, values, dtype=pl.Int64)
        if kind == "timestamp" and types <= {str}:
            return _parsed_strings(name, values, _UTC_TIMESTAMP, lambda c: c.str.strptime(
                pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False))
        if kind == "date" and types <= {str}:
            return _parsed_strings(name, values, _ISO_DATE,
                                   lambda c: c.str.to_date("%Y-%m-%d", strict=False))
        if kind == "decimal" and types <= {int, float}:
            return _fast_decimal(name, values)
        if kind == "string_list" and types <= {list}:
            return _fast_string_list(name, values)
    except (TypeError, OverflowError):  # e.g. an integer beyond 64 bits
        return None
    return None


def _documented_column(
    resource: str, name: str, spec: FieldSpec, records: Sequence[Record], primary_key: str
) -> pl.Series:
    fast = _fast_column(name, spec, [record.get(name) for record in records])
    return fast if fast is not None else _exact_column(resource, name, spec, records, primary_key)


def _exact_column(
    resource: str, name: str, spec: FieldSpec, records: Sequence[Record], primary_key: str
) -> pl.Series:
    """Value by value: slow, exact, and it names the record whose value does not fit."""
    convert = _CONVERTERS[spec.kind]
    values: list[object] = []
    for record in records:
        value = record.get(name)
        try:
            if value is None:
                if not spec.nullable:
                    raise _Misfit("null")
                values.append(None)
            else:
                values.append(convert(value))
        except _Misfit as misfit:
            expected = EXPECTED[spec.kind] + ("" if spec.nullable else ", not null")
            raise RecordTypeError(
                resource,
                field=name,
                record_id=record.get(primary_key),
                expected=expected,
                got=misfit.got,
                value=value,
            ) from None
    if spec.kind == "timestamp":
        return pl.Series(name, values, dtype=pl.Int64).cast(spec.dtype)
    return pl.Series(name, values, dtype=spec.dtype)


# ---- undocumented fields: a typed column where values fit, a variant column where not -------


def _infer(values: list[object]) -> pl.DataType | None:
    """The one column type that holds every value exactly, or None (all go to the variant)."""
    kinds = {_json_type(v) for v in values}
    ints = [v for v in values if _is_int(v)]
    if kinds == {"string"}:
        return pl.String()
    if kinds == {"boolean"}:
        return pl.Boolean()
    if kinds == {"integer"}:
        return pl.Int64() if all(_fits_int64(v) for v in ints) else None
    if kinds == {"float"}:
        return pl.Float64()
    if kinds == {"integer", "float"}:
        return pl.Float64() if all(abs(v) <= _FLOAT_EXACT_INT for v in ints) else None
    return None


def _fitter(dtype: pl.DataType) -> Callable[[object], bool] | None:
    """Which values a column of this type takes without any loss; None: no value does."""
    if dtype == pl.String:
        return lambda v: isinstance(v, str)
    if dtype == pl.Boolean:
        return lambda v: isinstance(v, bool)
    if dtype == pl.Int64:
        return lambda v: _is_int(v) and _fits_int64(v)
    if dtype == pl.Float64:
        return lambda v: isinstance(v, float) or (_is_int(v) and abs(v) <= _FLOAT_EXACT_INT)
    return None


def _undocumented_columns(
    name: str, values: list[object], existing: pl.DataType | None, *, variant_only: bool = False
) -> tuple[pl.Series | None, pl.Series | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    # A field the table already holds only as JSON text stays so: a batch that happens to be
    # uniform must not add a typed twin column (and a schema commit) for it.
    target = existing if existing is not None or variant_only else _infer(present)
    fits = _fitter(target) if target is not None else None
    if fits is None:
        variant = [None if v is None else canonical_json(v) for v in values]
        return None, pl.Series(name + JSON_SUFFIX, variant, dtype=pl.String)
    assert target is not None
    to_float = target == pl.Float64
    typed: list[object] = []
    variant = []
    misfits = 0
    for v in values:
        if v is None or fits(v):
            # An int bound for a Float64 column was checked to be exact as a float.
            typed.append(float(v) if to_float and _is_int(v) else v)
            variant.append(None)
        else:
            typed.append(None)
            variant.append(canonical_json(v))
            misfits += 1
    typed_column = None if misfits == len(present) else pl.Series(name, typed, dtype=target)
    variant_column = pl.Series(name + JSON_SUFFIX, variant, dtype=pl.String) if misfits else None
    return typed_column, variant_column


# ---- the frame --------------------------------------------------------------------------------


def _field_names(resource: str, records: Sequence[object], primary_key: str) -> list[str]:
    """Check every record's shape and key; return every field name in order of appearance."""
    names: dict[str, None] = {}
    for position, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ContractError(
                resource,
                f"record {position} of the batch is a JSON {_json_type(record)}, not an object; "
                "nothing of this batch was written",
            )
        if record.get(primary_key) is None:
            raise ContractError(
                resource,
                f"record {position} of the batch has no {primary_key!r} (missing or null); "
                "nothing of this batch was written",
            )
        names.update(dict.fromkeys(record))
    reserved = [n for n in names if n in (SYNCED_AT, ROW_HASH) or n.endswith(JSON_SUFFIX)]
    if reserved:
        raise ContractError(
            resource,
            f"the records carry field(s) {reserved!r}, whose names this pipeline reserves "
            f"({SYNCED_AT!r}, {ROW_HASH!r} and names ending in {JSON_SUFFIX!r}); "
            "nothing of this batch was written",
        )
    return list(names)


def _check_case_collisions(resource: str, columns: list[str], table_columns: Sequence[str]) -> None:
    # Delta column names are case-insensitive: 'Name' and 'name' cannot both exist.
    seen: dict[str, str] = {c.lower(): c for c in table_columns}
    for column in columns:
        other = seen.setdefault(column.lower(), column)
        if other != column:
            raise ContractError(
                resource,
                f"fields {other!r} and {column!r} differ only in case, which a Delta table "
                "cannot hold; nothing of this batch was written",
            )


def _utc_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"synced_at must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND


def records_to_frame(
    resource: str,
    records: list[object],
    *,
    primary_key: str = "id",
    table_schema: dict[str, pl.DataType] | None = None,
    synced_at: datetime,
) -> pl.DataFrame:
    """Type a batch of records: documented fields as declared, the rest inferred over the batch.

    Raises ContractError for a record that is not an object or lacks its key, and
    RecordTypeError for a documented field whose value does not fit its declared type.
    ``table_schema`` is the target table's: undocumented values that fit an existing column go
    there, the others to ``<field>__json``. Nothing is rounded, truncated or dropped.
    """
    table_schema = table_schema or {}
    declared = DOCUMENTED.get(resource, {})
    names = _field_names(resource, records, primary_key)
    rows: list[Record] = records  # type: ignore[assignment]  # checked by _field_names

    columns: list[pl.Series] = [
        _documented_column(resource, name, spec, rows, primary_key)
        for name, spec in declared.items()
    ]
    for name in names:
        if name in declared:
            continue
        typed, variant = _undocumented_columns(
            name, [r.get(name) for r in rows], table_schema.get(name),
            variant_only=name + JSON_SUFFIX in table_schema and name not in table_schema,
        )
        if name == primary_key and (typed is None or variant is not None):
            wanted = table_schema.get(name) or "one type (all strings or all 64-bit integers)"
            raise ContractError(
                resource,
                f"the primary key {name!r} holds values that are not all {wanted}; "
                "nothing of this batch was written",
            )
        columns.extend(c for c in (typed, variant) if c is not None)

    stamp = _utc_micros(synced_at)
    columns.append(
        pl.Series(SYNCED_AT, [stamp] * len(rows), dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    )
    columns.append(pl.Series(ROW_HASH, [row_hash(r) for r in rows], dtype=pl.String))
    _check_case_collisions(resource, [c.name for c in columns], list(table_schema))
    return pl.DataFrame(columns)


def deduplicate(frame: pl.DataFrame, *, primary_key: str, cursor_field: str | None) -> pl.DataFrame:
    """One row per key: the latest cursor wins, and on a tie the later row (a later page)."""
    if frame.height < 2 or frame[primary_key].n_unique() == frame.height:
        return frame
    position = "__position"
    while position in frame.columns:
        position += "_"
    order = [cursor_field, position] if cursor_field else [position]
    return (
        frame.with_row_index(position)
        .sort(order, nulls_last=False)
        .unique(subset=[primary_key], keep="last")
        .sort(position)
        .drop(position)
    )

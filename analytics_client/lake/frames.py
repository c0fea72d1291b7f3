"""Records (parsed exactly by ``jsontext``) to typed polars frames; what cannot be typed is
set aside.

The promise: what the API sent is what the table holds, or the record is set aside by name
(``Rejected``, bound for the quarantine table), never changed in silence. Declared columns
(dlt ``columns`` hints, ``schemas.py``) take only values that fit them exactly; undocumented
fields get the one column type that holds every value exactly, else their JSON text in
``<field>__json``. The primary key and the incremental cursor are typed even when undeclared
(inferred from the values: text or bigint, timestamp or bigint), because the merge compares them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeGuard

import orjson
import polars as pl

from analytics_client.config.schemas import ColumnHint
from analytics_client.core import jsontext, timestamps
from analytics_client.core.errors import ContractError, RecordTypeError
from analytics_client.core.jsontext import canonical_bytes, canonical_json, exact_float, normalized

__all__ = [
    "DELETED_AT",
    "JSON_SUFFIX",
    "ROW_HASH",
    "SYNCED_AT",
    "Batch",
    "Rejected",
    "canonical_json",
    "deduplicate",
    "records_to_frame",
    "row_hash",
    "typed_batch",
]

Record = dict[str, object]
Columns = Mapping[str, ColumnHint]

SYNCED_AT = "_synced_at"
ROW_HASH = "_row_hash"
# When the pipeline found that the API no longer has the row's record (soft delete,
# lake/deletes.py); null on live rows. Readers filter ``_deleted_at IS NULL``.
DELETED_AT = "_deleted_at"
# `<field>__json` holds, as JSON text, the values of `<field>` that do not fit its column type.
JSON_SUFFIX = "__json"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Rejected:
    """A record set aside: why, and which field; ``record`` exactly as received."""

    record: object
    key: object
    field: str | None
    reason: str
    # dataclasses.field by its module: the class's own ``field`` attribute shadows the name
    error: ContractError = dataclasses.field(repr=False, compare=False)


@dataclass(frozen=True)
class Batch:
    """The typed rows of a batch, and the records that could not be typed."""

    frame: pl.DataFrame
    rejected: list[Rejected]


class _Misfit(Exception):
    """A value does not fit a kind; `got` describes what it is instead."""

    def __init__(self, got: str) -> None:
        super().__init__(got)
        self.got = got


def row_hash(record: Record) -> str:
    """A content hash that ignores null-valued keys, so a missing key and a null are one.

    Raises ``ValueError`` for a record no JSON text holds (a NaN, a lone surrogate).
    """
    # Most records hold no null: hash them as they are, without a copy (same bytes). By
    # identity, as the copy's test is: ``in`` would ask each value's own ``==``.
    has_null = any(map(operator.is_, record.values(), itertools.repeat(None)))
    content = {k: v for k, v in record.items() if v is not None} if has_null else record
    return hashlib.blake2b(canonical_bytes(content), digest_size=16).hexdigest()


_JSON_TYPES: dict[type, str] = {type(None): "null", bool: "boolean", int: "integer",
                                float: "number", Decimal: "number", str: "string", list: "array",
                                dict: "object"}


def _json_type(value: object) -> str:
    """The JSON type of a decoded value (one dict lookup for the exact types ``loads`` makes)."""
    known = _JSON_TYPES.get(type(value))
    if known is not None:
        return known
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, jsontext.NotJson):
        return f"{value.token} (not JSON)"
    return type(value).__name__


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits_int64(value: int) -> bool:
    return _INT64_MIN <= value <= _INT64_MAX


def _as_decimal(value: object) -> Decimal:
    """An int, float or Decimal as the exact decimal the JSON wrote; else _Misfit."""
    if _is_int(value):
        return Decimal(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as this float: what the JSON said.
        exact = Decimal(repr(value))
    elif isinstance(value, Decimal):
        exact = value
    else:
        raise _Misfit(_json_type(value))
    if not exact.is_finite():
        raise _Misfit("a non-finite number")
    return exact


# ---- declared kinds: convert exactly or raise _Misfit ---------------------------------------


def _to_text(value: object, hint: ColumnHint) -> object:
    if not isinstance(value, str):
        raise _Misfit(_json_type(value))
    return value


def _to_micros(value: object, hint: ColumnHint) -> object:
    if not isinstance(value, str):
        raise _Misfit(_json_type(value))
    try:
        return timestamps.parse(value)
    except ValueError as exc:
        raise _Misfit(f"{value!r}: {exc}") from None


def _to_date(value: object, hint: ColumnHint) -> object:
    if not isinstance(value, str):
        raise _Misfit(_json_type(value))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Misfit("an unparseable string") from None


def _places(exact: Decimal) -> int:
    """Decimal places the value needs (12.50 needs 1, 1E+2 needs 0); exact at any length."""
    exponent = normalized(exact).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _to_decimal(value: object, hint: ColumnHint) -> object:
    exact = _as_decimal(value)
    # copy_abs and comparisons are exact; abs() would round to 28 digits first.
    if exact.copy_abs() >= Decimal(10) ** (hint.digits - hint.places):
        raise _Misfit(f"a number of 10^{hint.digits - hint.places} or more in absolute value")
    if _places(exact) > hint.places:
        raise _Misfit(f"a number with more than {hint.places} decimal places")
    return exact


def _to_int64(value: object, hint: ColumnHint) -> object:
    if _is_int(value):
        whole = value
    elif isinstance(value, float | Decimal):
        # 1e2 and 100.0 are valid JSON for 100; 1.5 is not an integer.
        exact = _as_decimal(value)
        if _places(exact):
            raise _Misfit("a number with a fractional part")
        whole = int(exact)
    else:
        raise _Misfit(_json_type(value))
    if not _fits_int64(whole):
        raise _Misfit("an integer beyond 64 bits")
    return whole


def _to_double(value: object, hint: ColumnHint) -> object:
    exact = _as_decimal(value)
    as_float = float(exact)
    if as_float in (float("inf"), float("-inf")):
        raise _Misfit("a number beyond the range of a double")
    return as_float


def _to_bool(value: object, hint: ColumnHint) -> object:
    if not isinstance(value, bool):
        raise _Misfit(_json_type(value))
    return value


def _to_text_list(value: object, hint: ColumnHint) -> object:
    if not isinstance(value, list):
        raise _Misfit(_json_type(value))
    for item in value:
        if not isinstance(item, str):
            raise _Misfit(f"a list holding a {_json_type(item)}")
    return value


def _to_json(value: object, hint: ColumnHint) -> object:
    if not isinstance(value, dict | list):
        raise _Misfit(_json_type(value))
    return canonical_json(value)


_CONVERTERS: dict[str, Callable[[object, ColumnHint], object]] = {
    "text": _to_text,
    "timestamp": _to_micros,
    "date": _to_date,
    "decimal": _to_decimal,
    "bigint": _to_int64,
    "double": _to_double,
    "bool": _to_bool,
    "text_list": _to_text_list,
    "json": _to_json,
}


# ---- the same conversions for a whole column at once, when every value is of the usual form --
#
# Each returns None where it cannot vouch for every value; the exact per-value path above then
# converts the column or names the records that do not fit. So the fast path only has to be
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


def _fast_decimal(name: str, values: list[object], hint: ColumnHint) -> pl.Series | None:
    """Decimals whose exponent shows at most ``scale`` places, and ints, within the precision.

    polars builds a Decimal column by truncating extra places (12.345 -> 12.34, measured), so
    each value's places are checked here first; anything unusual goes the exact way.
    """
    limit = Decimal(10) ** (hint.digits - hint.places)
    decimals: list[Decimal | None] = []
    for value in values:
        if value is None:
            decimals.append(None)
            continue
        number = Decimal(value) if _is_int(value) else value
        if not isinstance(number, Decimal) or not number.is_finite():
            return None
        exponent = number.as_tuple().exponent
        if (not isinstance(exponent, int) or exponent < -hint.places
                or number.copy_abs() >= limit):
            return None
        decimals.append(number)
    return pl.Series(name, decimals, dtype=hint.dtype)


def _fast_text_list(name: str, values: list[object]) -> pl.Series | None:
    # polars builds nested lists from Python objects slowly; JSON text of plain strings is exact.
    if not all(type(item) is str for value in values if value for item in value):  # type: ignore[attr-defined]
        return None
    text = [None if v is None else orjson.dumps(v).decode() for v in values]
    return pl.Series(name, text, dtype=pl.String).str.json_decode(pl.List(pl.String))


def _fast_column(name: str, hint: ColumnHint, values: list[object]) -> pl.Series | None:
    types = set(map(type, values))
    if _NONE in types and not hint.nullable:
        return None
    types.discard(_NONE)
    kind = hint.data_type
    try:
        if kind == "text" and types <= {str}:
            return pl.Series(name, values, dtype=pl.String)
        if kind == "bool" and types <= {bool}:
            return pl.Series(name, values, dtype=pl.Boolean)
        if kind == "bigint" and types <= {int}:
            return pl.Series(name, values, dtype=pl.Int64)
        if kind == "timestamp" and types <= {str}:
            return _parsed_strings(name, values, _UTC_TIMESTAMP, lambda c: c.str.strptime(
                pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False))
        if kind == "date" and types <= {str}:
            return _parsed_strings(name, values, _ISO_DATE,
                                   lambda c: c.str.to_date("%Y-%m-%d", strict=False))
        if kind == "decimal" and types <= {int, Decimal}:
            return _fast_decimal(name, values, hint)
        if kind == "text_list" and types <= {list}:
            return _fast_text_list(name, values)
        if kind == "json" and types <= {dict, list}:
            text = [None if v is None else canonical_json(v) for v in values]
            return pl.Series(name, text, dtype=pl.String)
    except (TypeError, OverflowError):  # e.g. an integer beyond 64 bits
        return None
    return None


def _declared_column(name: str, hint: ColumnHint, values: list[object]
                     ) -> tuple[pl.Series, dict[int, str]]:
    """The column, and per row position that does not fit, what its value is instead."""
    fast = _fast_column(name, hint, values)
    if fast is not None:
        return fast, {}
    return _exact_column(name, hint, values)


def _exact_column(name: str, hint: ColumnHint, values: list[object]
                  ) -> tuple[pl.Series, dict[int, str]]:
    """Value by value: slow, exact, and it names each value that does not fit."""
    assert hint.data_type is not None  # the plan keeps typed hints only
    convert = _CONVERTERS[hint.data_type]
    converted: list[object] = []
    misfits: dict[int, str] = {}
    for position, value in enumerate(values):
        try:
            if value is None:
                if not hint.nullable:
                    raise _Misfit("null")
                converted.append(None)
            else:
                converted.append(convert(value, hint))
        except _Misfit as misfit:
            misfits[position] = misfit.got
            converted.append(None)
    if hint.data_type == "timestamp":
        return pl.Series(name, converted, dtype=pl.Int64).cast(hint.dtype), misfits
    return pl.Series(name, converted, dtype=hint.dtype), misfits


# ---- undocumented fields: a typed column where values fit, a variant column where not -------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _inferred_column(name: str, values: list[object], present: list[object],
                     types: set[type]) -> pl.Series | None:
    """The column of the one type that holds every value exactly, or None (none does).

    Whole-column: the JSON type is looked up once per distinct Python type; only a column of
    numbers is checked value by value (``exact_float``, once per value, its result kept).
    """
    kinds = {_JSON_TYPES.get(t) for t in types}
    if None in kinds:  # a type ``loads`` does not make (a subclass, a marker): value by value
        kinds = {_json_type(v) for v in present}
    if kinds == {"string"}:
        return pl.Series(name, values, dtype=pl.String)
    if kinds == {"boolean"}:
        return pl.Series(name, values, dtype=pl.Boolean)
    if kinds == {"integer"}:
        whole: list[int] = present  # type: ignore[assignment]  # every one an int
        fits = _INT64_MIN <= min(whole) and max(whole) <= _INT64_MAX
        return pl.Series(name, values, dtype=pl.Int64) if fits else None
    if kinds <= {"integer", "number"}:
        floats = [None if v is None else exact_float(v) for v in values]  # type: ignore[arg-type]
        if floats.count(None) != len(values) - len(present):
            return None
        return pl.Series(name, floats, dtype=pl.Float64)
    return None


def _fitter(dtype: pl.DataType) -> Callable[[object], tuple[bool, object]] | None:
    """Whether a value fits a column of this type without loss, and as what; None: none does."""
    if dtype == pl.String:
        return lambda v: (isinstance(v, str), v)
    if dtype == pl.Boolean:
        return lambda v: (isinstance(v, bool), v)
    if dtype == pl.Int64:
        return lambda v: (_is_int(v) and _fits_int64(v), v)
    if dtype == pl.Float64:
        def fits_float(v: object) -> tuple[bool, object]:
            as_float = exact_float(v) if _is_number(v) else None  # type: ignore[arg-type]
            return as_float is not None, as_float
        return fits_float
    return None


def _undocumented_columns(
    name: str, values: list[object], existing: pl.DataType | None, *, variant_only: bool = False
) -> tuple[pl.Series | None, pl.Series | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    # A field the table already holds only as JSON text stays so: a batch that happens to be
    # uniform must not add a typed twin column (and a schema commit) for it.
    inferred = None if variant_only and existing is None else _inferred_column(
        name, values, present, set(map(type, present)))
    if inferred is not None and (existing is None or inferred.dtype == existing):
        return inferred, None  # every value fits: the usual case, without a loop per value
    target = existing if existing is not None or variant_only else None
    fits = _fitter(target) if target is not None else None
    if fits is None:
        variant = [None if v is None else canonical_json(v) for v in values]
        return None, pl.Series(name + JSON_SUFFIX, variant, dtype=pl.String)
    assert target is not None
    typed: list[object] = []
    variant = []
    misfits = 0
    for v in values:
        ok, as_typed = (True, None) if v is None else fits(v)
        if ok:
            typed.append(as_typed)
            variant.append(None)
        else:
            typed.append(None)
            variant.append(canonical_json(v))
            misfits += 1
    typed_column = None if misfits == len(present) else pl.Series(name, typed, dtype=target)
    variant_column = pl.Series(name + JSON_SUFFIX, variant, dtype=pl.String) if misfits else None
    return typed_column, variant_column


# ---- records that cannot be rows ------------------------------------------------------------


def _name_problem(name: str) -> str | None:
    """Why a field name cannot be a Delta column of this pipeline, or None."""
    if name == "":
        return "the field name is empty, which no Delta column can have"
    if "`" in name:
        return "the field name holds a backtick, which Delta merge expressions cannot quote"
    if "\x00" in name:
        # Measured: delta-rs (1.6) panics and aborts the whole process on such a column name.
        return "the field name holds a NUL character, which the Delta writer cannot take"
    if name in (SYNCED_AT, ROW_HASH, DELETED_AT) or name.endswith(JSON_SUFFIX):
        return (f"this pipeline reserves the name ({SYNCED_AT!r}, {ROW_HASH!r}, "
                f"{DELETED_AT!r} and names "
                f"ending in {JSON_SUFFIX!r} are its own columns)")
    if jsontext.problem(name):
        return "the field name holds a lone UTF-16 surrogate, which is no Unicode text"
    return None


class _Gate:
    """Admits records one by one; case spellings are claimed by the first record to use one."""

    def __init__(self, primary_key: str, claimed: Sequence[str], also: Sequence[str] = ()) -> None:
        self.key = (primary_key, *also)  # a composite key's columns, then a child's parent's
        # Delta column names are case-insensitive: 'Name' and 'name' cannot both exist.
        self.spelling: dict[str, str] = {c.lower(): c for c in claimed}
        self.fine: set[str] = set()  # names already found fit to be columns
        # Key tuples of records already claimed: such a record passes the name checks again
        # (its spellings are the claimed ones, and a claimed spelling never changes), so an
        # API's usual shape is checked once per batch, not once per record.
        self.shapes: set[tuple[str, ...]] = set()

    def check(self, position: int, record: object) -> tuple[str | None, str] | None:
        """(field, reason) if the record's shape or names cannot make a row, else None."""
        if not isinstance(record, dict):
            return None, (f"record {position} of the batch is a JSON {_json_type(record)}, "
                          "not an object")
        key = record.get(self.key[0])
        for column in self.key:
            if record.get(column) is None:
                return column, f"record {position} of the batch has no {column!r} (missing or null)"
        if tuple(record) in self.shapes:
            return None
        lowered: dict[str, str] = {}
        for name in record:
            if name not in self.fine:
                reason = _name_problem(name)
                if reason:
                    return name, f"field {name!r} of record {key!r}: {reason}"
                self.fine.add(name)
            other = lowered.setdefault(name.lower(), name)
            other = self.spelling.get(name.lower(), other)
            if other != name:
                return name, (f"fields {other!r} and {name!r} differ only in case, which a Delta "
                              f"table cannot hold (record {key!r})")
        return None

    def claim(self, record: Record) -> None:
        """The record became a row: its spellings are the columns' from now on."""
        shape = tuple(record)
        if shape in self.shapes:
            return
        for name in shape:
            self.spelling.setdefault(name.lower(), name)
        self.shapes.add(shape)


def _value_problem(record: Record, primary_key: str) -> tuple[str, str]:
    """The first field whose value no JSON text holds (looked for only once hashing failed)."""
    key = record.get(primary_key)
    for name, value in record.items():
        reason = jsontext.problem(value)
        if reason:
            return name, f"field {name!r} of record {key!r} holds {reason}"
    raise AssertionError(f"record {key!r} failed to hash, yet every value is JSON")


def _reject(resource: str, record: object, primary_key: str, field_name: str | None,
            reason: str, error: ContractError | None = None) -> Rejected:
    key = record.get(primary_key) if isinstance(record, dict) else None
    error = error or ContractError(resource, f"{reason}; nothing of this batch was written")
    return Rejected(record=record, key=key, field=field_name, reason=reason, error=error)


# ---- the frame --------------------------------------------------------------------------------


def _key_and_cursor_hints(records: Sequence[Record], columns: Columns, primary_key: str,
                          cursor_field: str | None, table_schema: Mapping[str, pl.DataType],
                          cursor_nullable: bool = False) -> dict[str, ColumnHint]:
    """Hints for the key and the cursor when the config declares none: the merge compares them.

    The table's column type wins; else the first value decides (text or bigint for a key,
    timestamp or bigint for a cursor). Values of another type are then set aside by name.
    """
    inferred: dict[str, ColumnHint] = {}
    for name, default in ((primary_key, "text"), (cursor_field, "timestamp")):
        if name is None or name in columns:
            continue
        existing = table_schema.get(name)
        if existing == pl.Int64:
            kind = "bigint"
        elif existing is not None:
            kind = "text" if existing == pl.String and default == "text" else default
        else:
            first = next((r[name] for r in records if r.get(name) is not None), None)
            kind = "bigint" if _is_int(first) else default
        nullable = cursor_nullable and name == cursor_field
        inferred[name] = ColumnHint(data_type=kind, nullable=nullable)  # type: ignore[arg-type]
    return inferred


def _utc_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"synced_at must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND


def typed_batch(
    resource: str,
    records: Sequence[object],
    *,
    columns: Columns | None = None,
    primary_key: str = "id",
    cursor_field: str | None = None,
    cursor_nullable: bool = False,
    table_schema: Mapping[str, pl.DataType] | None = None,
    synced_at: datetime, key_also: Sequence[str] = (),
) -> Batch:
    """Type a batch: declared columns as hinted, the rest inferred; the untypable set aside.

    ``columns`` are the resource's hints (dlt ``columns``); ``table_schema`` the target table's:
    undocumented values that fit an existing column go there, the others to ``<field>__json``.
    A record is set aside (``Batch.rejected``) when it is no object, lacks its key, has a name
    the lake cannot hold (empty, a backtick, reserved, a case twin of a column), holds a value
    no JSON text holds (NaN, a lone surrogate), or a value that does not fit a declared,
    key (``primary_key``, ``key_also``) or cursor column (a null cursor fits if
    ``cursor_nullable``). Nothing is rounded, truncated or dropped.
    """
    table_schema = dict(table_schema or {})
    columns = dict(columns or {})
    rejected: list[Rejected] = []
    gate = _Gate(primary_key, [*table_schema, *columns], key_also)
    rows: list[Record] = []
    hashes: list[str] = []
    for position, record in enumerate(records, start=1):
        refused = gate.check(position, record)
        if refused is None:
            row: Record = record  # type: ignore[assignment]  # checked by the gate
            try:
                # Hashing writes every value as JSON: the one pass that finds NaN and surrogates.
                hashes.append(row_hash(row))
            except ValueError:
                refused = _value_problem(row, primary_key)
            else:
                gate.claim(row)
                rows.append(row)
        if refused is not None:
            rejected.append(_reject(resource, record, primary_key, *refused))

    declared = {**_key_and_cursor_hints(rows, columns, primary_key, cursor_field, table_schema,
                                        cursor_nullable), **columns}
    typed, misfits = _declared_columns(declared, rows)
    if misfits:
        keep = [i for i in range(len(rows)) if i not in misfits]
        for position, (name, got) in sorted(misfits.items()):
            record = rows[position]
            hint = declared[name]
            error = RecordTypeError(resource, field=name, record_id=record.get(primary_key),
                                    expected=hint.expected, got=got, value=record.get(name))
            reason = (f"field {name!r} of record {record.get(primary_key)!r} is {got}; the "
                      f"column is declared as {hint.expected}")
            rejected.append(_reject(resource, record, primary_key, name, reason, error))
        rows = [rows[i] for i in keep]
        hashes = [hashes[i] for i in keep]
        typed, _ = _declared_columns(declared, rows)

    frame_columns = list(typed)
    # Field names in order of first use: the distinct shapes (in order) hold the same names.
    shapes = dict.fromkeys(map(tuple, rows))
    for name in dict.fromkeys(itertools.chain.from_iterable(shapes)):
        if name in declared:
            continue
        typed_column, variant = _undocumented_columns(
            name, [r.get(name) for r in rows], table_schema.get(name),
            variant_only=name + JSON_SUFFIX in table_schema and name not in table_schema,
        )
        frame_columns.extend(c for c in (typed_column, variant) if c is not None)

    stamp = _utc_micros(synced_at)
    frame_columns.append(
        pl.Series(SYNCED_AT, [stamp] * len(rows), dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    )
    frame_columns.append(pl.Series(ROW_HASH, hashes, dtype=pl.String))
    return Batch(pl.DataFrame(frame_columns), rejected)


def _declared_columns(declared: Mapping[str, ColumnHint], rows: Sequence[Record]
                      ) -> tuple[list[pl.Series], dict[int, tuple[str, str]]]:
    """Every declared column; per row position, the first column its value does not fit."""
    series: list[pl.Series] = []
    misfits: dict[int, tuple[str, str]] = {}
    for name, hint in declared.items():
        column, bad = _declared_column(name, hint, [row.get(name) for row in rows])
        series.append(column)
        for position, got in bad.items():
            misfits.setdefault(position, (name, got))
    return series, misfits


def records_to_frame(resource: str, records: Sequence[object], **kwargs: object) -> pl.DataFrame:
    """``typed_batch`` for callers that take no quarantine (``on_bad_record: fail``).

    Raises the first set-aside record's error: ``RecordTypeError`` for a value that does not
    fit its declared column, ``ContractError`` for any other reason.
    """
    batch = typed_batch(resource, records, **kwargs)  # type: ignore[arg-type]
    if batch.rejected:
        raise batch.rejected[0].error
    return batch.frame


def deduplicate(frame: pl.DataFrame, *, primary_key: str, cursor_field: str | None,
                also: Sequence[str] = ()) -> pl.DataFrame:
    """One row per key: the latest cursor wins, and on a tie the later row (a later page).

    ``also``: more key columns (a child's parent key: children.py). The cursor column is typed
    (an instant or an integer), so the comparison is by value.
    """
    key = [primary_key, *also]
    if frame.height < 2 or frame.select(key).n_unique() == frame.height:
        return frame
    position = "__position"
    while position in frame.columns:
        position += "_"
    order = [cursor_field, position] if cursor_field else [position]
    return (
        frame.with_row_index(position)
        .sort(order, nulls_last=False)
        .unique(subset=key, keep="last")
        .sort(position)
        .drop(position)
    )


"""Records to typed frames: declared types, exact numbers, inference over the whole batch."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest

from analytics_client.config.schemas import CONTRACT_COLUMNS, ColumnHint, contract_columns
from analytics_client.core.errors import ContractError, RecordTypeError
from analytics_client.lake.frames import deduplicate, records_to_frame, row_hash, typed_batch

DOCUMENTED = sorted(CONTRACT_COLUMNS)


def polars_schema(resource: str) -> dict[str, pl.DataType]:
    return {name: hint.dtype for name, hint in contract_columns(resource).items()}

SYNCED = datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)
TS = "2026-03-01T10:00:00.000000Z"


def record(resource: str = "deals", id: str = "r1", **fields: object) -> dict[str, object]:
    """A valid record of ``resource`` with ``fields`` set on top."""
    base: dict[str, object] = {"id": id, "created_at": TS, "updated_at": TS}
    required = {
        "tags": {"name": "t"},
        "users": {"name": "u", "email": "u@example.com", "active": True},
        "deals": {"name": "d"},
        "pages": {"name": "p", "url": "https://example.com", "views": 1, "published": False},
        "tasks": {"name": "t"},
    }
    return {**base, **required.get(resource, {}), **fields}


def frame(records: list[object], resource: str = "deals", **kwargs: object) -> pl.DataFrame:
    """The frame of a batch typed by the resource's contract hints (the default config's)."""
    kwargs.setdefault("columns", contract_columns(resource))
    return records_to_frame(resource, records, synced_at=SYNCED, **kwargs)


def type_error(resource: str, value: object, field: str) -> RecordTypeError:
    with pytest.raises(RecordTypeError) as caught:
        frame([record(resource, id="bad_1", **{field: value})], resource)
    return caught.value


# ---- declared schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("resource", sorted(DOCUMENTED))
def test_documented_resources_have_declared_column_types(resource: str) -> None:
    """A documented resource's frame has exactly the declared types plus the bookkeeping columns."""
    result = frame([record(resource)], resource)
    assert dict(result.schema) == {
        **polars_schema(resource),
        "_synced_at": pl.Datetime("us", "UTC"),
        "_row_hash": pl.String(),
    }
    assert polars_schema(resource)["id"] == pl.String()
    assert polars_schema(resource)["updated_at"] == pl.Datetime("us", "UTC")


def test_declared_types_match_the_contract() -> None:
    """The contract's special types map to Decimal(18,2), Date, List(Utf8) and JSON text."""
    assert polars_schema("deals")["amount"] == pl.Decimal(18, 2)
    assert polars_schema("deals")["tag_ids"] == pl.List(pl.String())
    assert polars_schema("deals")["custom_fields"] == pl.String()
    assert polars_schema("tasks")["due_date"] == pl.Date()
    assert polars_schema("pages")["views"] == pl.Int64()
    assert polars_schema("users")["active"] == pl.Boolean()
    assert polars_schema("users")["last_login_at"] == pl.Datetime("us", "UTC")
    assert polars_schema("nope") == {}


def test_empty_batch_gives_an_empty_typed_frame() -> None:
    """An empty batch still has every declared column with its type."""
    result = frame([], "pages")
    assert result.height == 0
    assert result.schema["views"] == pl.Int64()


# ---- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("100", "100.00"),
        ("100.0", "100.00"),
        ("1e2", "100.00"),
        ("0.29", "0.29"),
        ("-12.5", "-12.50"),
        ("9999999999999.99", "9999999999999.99"),
        ("-9999999999999.99", "-9999999999999.99"),
        ("0.1", "0.10"),
        ("1234567.89", "1234567.89"),
    ],
)
def test_amount_is_built_exactly(raw: str, expected: str) -> None:
    """An amount read by json.loads as int or float becomes the exact Decimal the JSON wrote."""
    value = json.loads(raw)
    result = frame([record(amount=value)])
    assert result.schema["amount"] == pl.Decimal(18, 2)
    assert result["amount"][0] == Decimal(expected)


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        (1.234, "more than 2 decimal places"),
        (1e16, "10^16"),
        (-1e16, "10^16"),
        (10**16, "10^16"),
        (0.001, "more than 2 decimal places"),
        ("12", "string"),
        (True, "boolean"),
        ([1], "array"),
        (float("nan"), "non-finite"),
    ],
)
def test_amount_that_does_not_fit_is_rejected(raw: object, got: str) -> None:
    """An amount with 3+ decimals, too large or not a number is rejected, never rounded."""
    error = type_error("deals", raw, "amount")
    assert (error.field, error.record_id, error.resource) == ("amount", "bad_1", "deals")
    assert got in error.got
    assert "2 decimal places" in error.expected
    assert "'amount'" in str(error) and "'bad_1'" in str(error)


# ---- timestamps and dates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-01T10:00:00.000000Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T10:00:00.123456Z", datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T05:30:00.5-04:30", datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-03-01T10:00:00+00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T10:00:00.1234560Z", datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_timestamps_are_parsed_to_utc_microseconds(raw: str, expected: datetime) -> None:
    """Any ISO-8601 timestamp with Z or an offset becomes the same instant in UTC, microseconds."""
    result = frame([record(closed_at=raw)])
    assert result.schema["closed_at"] == pl.Datetime("us", "UTC")
    assert result["closed_at"][0] == expected


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        ("2026-03-01T10:00:00", "without a UTC offset"),
        ("2026-03-01", "without a UTC offset"),
        ("yesterday", "not an ISO-8601 timestamp"),
        ("2026-13-01T10:00:00Z", "not an ISO-8601 timestamp"),
        ("2026-03-01T10:00:00.1234567Z", "more than microsecond precision"),
        ("9999-12-31T23:00:00-05:00", "outside years 1-9999"),
        (1772359200, "integer"),
    ],
)
def test_bad_timestamps_are_rejected(raw: object, got: str) -> None:
    """Naive, unparseable, non-string or sub-microsecond timestamps raise RecordTypeError."""
    error = type_error("deals", raw, "closed_at")
    assert error.field == "closed_at" and got in error.got


def test_due_date_is_a_date() -> None:
    """A YYYY-MM-DD due_date becomes a Date; an impossible date or a timestamp is rejected."""
    assert frame([record("tasks", due_date="2026-02-28")], "tasks")["due_date"][0] == date(
        2026, 2, 28
    )
    for bad in ("2026-02-30", "2026-03-01T00:00:00Z", 20260301):
        assert type_error("tasks", bad, "due_date").field == "due_date"


# ---- integers, booleans, strings, lists, objects ------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [(5, 5), (5.0, 5), (1e2, 100), (-(2**63), -(2**63))])
def test_integer_fields_accept_any_json_form_of_an_integer(raw: object, expected: int) -> None:
    """views accepts 5, 5.0 and 1e2 as the integer they denote."""
    result = frame([record("pages", views=raw)], "pages")
    assert result.schema["views"] == pl.Int64() and result["views"][0] == expected


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        (True, "boolean"),
        (1.5, "fractional"),
        (2**63, "beyond 64 bits"),
        ("5", "string"),
        (1e19, "beyond 64 bits"),
    ],
)
def test_integer_fields_reject_other_values(raw: object, got: str) -> None:
    """A bool, a fractional float, an int beyond int64 or a string in views is rejected."""
    error = type_error("pages", raw, "views")
    assert error.field == "views" and got in error.got


@pytest.mark.parametrize("raw", [0, 1, "true", None])
def test_boolean_fields_reject_ints_and_strings(raw: object) -> None:
    """published (not null) accepts only true/false: 0, 1, "true" and null are rejected."""
    error = type_error("pages", raw, "published")
    assert error.field == "published" and "boolean" in error.expected


@pytest.mark.parametrize(
    ("resource", "field"), [("tags", "name"), ("users", "email"), ("deals", "owner_id")]
)
def test_string_fields_reject_numbers(resource: str, field: str) -> None:
    """A number in a string field raises RecordTypeError naming the field."""
    error = type_error(resource, 7, field)
    assert (error.field, error.got) == (field, "integer")
    assert error.expected.startswith("a string")


def test_a_documented_id_must_be_a_string() -> None:
    """An integer id of a documented resource raises RecordTypeError, not a silent cast."""
    with pytest.raises(RecordTypeError) as caught:
        frame([record(id=7)])  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.record_id, caught.value.got) == ("id", 7, "integer")


@pytest.mark.parametrize(
    ("resource", "field"),
    [("tags", "name"), ("users", "active"), ("pages", "views"), ("deals", "updated_at")],
)
def test_not_null_fields_reject_null_and_missing(resource: str, field: str) -> None:
    """A not-null field that is null or missing raises RecordTypeError saying 'not null'."""
    explicit = type_error(resource, None, field)
    assert explicit.got == "null" and "not null" in explicit.expected
    missing = record(resource, id="bad_2")
    del missing[field]
    with pytest.raises(RecordTypeError, match="not null") as caught:
        frame([missing], resource)
    assert caught.value.field == field and caught.value.record_id == "bad_2"


def test_enum_values_are_plain_strings() -> None:
    """An enum value the contract does not list is kept, not rejected."""
    result = frame(
        [record("users", role="superadmin"), record("users", id="r2", role=None)], "users"
    )
    assert result["role"].to_list() == ["superadmin", None]


def test_tag_ids_keep_null_and_empty_apart() -> None:
    """tag_ids is List(Utf8) where null, [] and a list stay distinct."""
    result = frame(
        [record(tag_ids=None), record(id="r2", tag_ids=[]), record(id="r3", tag_ids=["a", "b"])]
    )
    assert result["tag_ids"].to_list() == [None, [], ["a", "b"]]
    for bad in ("a", [1], ["a", None]):
        assert type_error("deals", bad, "tag_ids").field == "tag_ids"


def test_custom_fields_become_canonical_json_text() -> None:
    """custom_fields of any keys and types becomes canonical JSON; null stays null, {} is '{}'."""
    values = [
        {"b": 1, "a": "x"},
        {"a": 2**70, "nested": {"z": [1.5, None], "y": "ü"}},
        {},
        None,
    ]
    result = frame([record(id=f"r{i}", custom_fields=v) for i, v in enumerate(values)])
    assert result["custom_fields"].to_list() == [
        '{"a":"x","b":1}',
        '{"a":1180591620717411303424,"nested":{"y":"ü","z":[1.5,null]}}',
        "{}",
        None,
    ]
    assert [json.loads(t) if t else None for t in result["custom_fields"]] == values
    assert type_error("deals", "a", "custom_fields").got == "string"


def test_record_type_error_names_the_record() -> None:
    """The error for a bad value deep in a batch names that record's id."""
    records = [record(id=f"deal_{i}", amount=i) for i in range(5)]
    records[3]["amount"] = "3"
    with pytest.raises(RecordTypeError) as caught:
        frame(records)
    assert caught.value.record_id == "deal_3"


# ---- record shape and key -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"name": "no id"}, {"id": None, "name": "null id"}])
def test_records_without_a_key_are_a_contract_error(bad: dict[str, object]) -> None:
    """A record whose id is missing or null raises ContractError naming resource and position."""
    with pytest.raises(ContractError, match=r"deals: record 3 of the batch has no 'id'"):
        frame([record(), record(id="r2"), bad])


@pytest.mark.parametrize("bad", [["a", "list"], "text", 7, None])
def test_non_object_records_are_a_contract_error(bad: object) -> None:
    """A record that is not a JSON object raises ContractError naming the resource and position."""
    with pytest.raises(ContractError, match=r"deals: record 2 of the batch is a JSON"):
        frame([record(), bad])


def test_reserved_field_names_are_refused() -> None:
    """Fields named like the bookkeeping or variant columns raise ContractError, not collide."""
    for name in ("_row_hash", "_synced_at", "score__json"):
        with pytest.raises(ContractError, match="reserves"):
            frame([record(**{name: "x"})])


@pytest.mark.parametrize(("name", "why"), [("", "empty"), ("a`b", "backtick"),
                                           ("a\x00b", "NUL"), ("x__json", "reserves")])
def test_names_a_delta_table_cannot_hold_set_the_record_aside(name: str, why: str) -> None:
    """Such a name never becomes a column (a NUL would abort delta-rs): its record is set aside."""
    batch = typed_batch("events", [{"id": "a", "ok": 1}, {"id": "b", name: 1}],
                        synced_at=SYNCED)
    assert batch.frame["id"].to_list() == ["a"] and name not in batch.frame.columns
    [rejected] = batch.rejected
    assert (rejected.key, rejected.field) == ("b", name) and why in rejected.reason


def test_fields_differing_only_in_case_are_refused() -> None:
    """Two fields that differ only in case raise ContractError, as Delta cannot hold both."""
    with pytest.raises(ContractError, match="differ only in case"):
        frame([record(Name="x")])


# ---- undocumented fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (["a", "b", None], pl.String()),
        ([True, False], pl.Boolean()),
        ([1, -(2**63), 2**63 - 1], pl.Int64()),
        ([1.5, 2.25], pl.Float64()),
        ([1, 2.5, 2**53, -(2**53)], pl.Float64()),
    ],
)
def test_undocumented_fields_are_inferred_over_the_batch(
    values: list[object], dtype: pl.DataType
) -> None:
    """An undocumented field of one type gets that column type and keeps every value exactly."""
    result = frame([record(id=f"r{i}", extra=v) for i, v in enumerate(values)])
    assert result.schema["extra"] == dtype
    assert "extra__json" not in result.columns
    assert result["extra"].to_list() == values


@pytest.mark.parametrize(
    "values",
    [
        [1, "one"],
        [1, 2**53 + 1, 0.5],
        [2**70, 1],
        [[1, 2], {"a": 1}],
        [True, 1],
        [{"k": "v"}],
    ],
)
def test_undocumented_fields_of_no_single_type_go_to_the_variant_column(
    values: list[object],
) -> None:
    """Mixed types, containers and ints beyond int64 go whole to <field>__json as exact JSON."""
    result = frame([record(id=f"r{i}", extra=v) for i, v in enumerate(values)])
    assert "extra" not in result.columns
    assert result.schema["extra__json"] == pl.String()
    assert [json.loads(t) for t in result["extra__json"]] == values


def test_inference_reads_every_row_not_the_first_hundred() -> None:
    """A float after 150 ints makes the column Float64 instead of truncating the float."""
    values: list[object] = [*range(150), 1.5]
    result = frame([record(id=f"r{i}", extra=v) for i, v in enumerate(values)])
    assert result.schema["extra"] == pl.Float64()
    assert result["extra"][150] == 1.5


def test_all_null_undocumented_fields_make_no_column() -> None:
    """An undocumented field null or absent everywhere produces no column (missing == null)."""
    result = frame([record(extra=None), record(id="r2")])
    assert "extra" not in result.columns and "extra__json" not in result.columns


@pytest.mark.parametrize(
    ("existing", "values", "typed", "variant"),
    [
        (pl.Int64(), [5, "7", None], [5, None, None], [None, '"7"', None]),
        (pl.Int64(), [5, 2.5], [5, None], [None, "2.5"]),
        (pl.Float64(), [1, 2**60, 0.5], [1.0, None, 0.5], [None, str(2**60), None]),
        (pl.String(), ["a", 1, [1]], ["a", None, None], [None, "1", "[1]"]),
        (pl.Boolean(), [True, 0], [True, None], [None, "0"]),
    ],
)
def test_values_fitting_the_table_column_go_there_the_rest_to_the_variant(
    existing: pl.DataType, values: list[object], typed: list[object], variant: list[object]
) -> None:
    """With a table column, values that fit it exactly go there and the others to <field>__json."""
    result = frame(
        [record(id=f"r{i}", extra=v) for i, v in enumerate(values)],
        table_schema={"extra": existing},
    )
    assert result.schema["extra"] == existing
    assert result["extra"].to_list() == typed
    assert result["extra__json"].to_list() == variant


def test_table_column_of_another_type_sends_everything_to_the_variant() -> None:
    """When no batch value fits the table's column, only the variant column is produced."""
    result = frame([record(extra="x")], table_schema={"extra": pl.Int64()})
    assert "extra" not in result.columns
    assert result["extra__json"].to_list() == ['"x"']


def test_undocumented_resources_infer_everything() -> None:
    """A resource the contract does not list is typed wholly by inference."""
    result = frame([{"id": "e1", "n": 1, "at": "x"}, {"id": "e2", "n": 2}], "events")
    assert dict(result.schema) == {
        "id": pl.String(),
        "n": pl.Int64(),
        "at": pl.String(),
        "_synced_at": pl.Datetime("us", "UTC"),
        "_row_hash": pl.String(),
    }


def test_undocumented_primary_key_of_mixed_types_is_refused() -> None:
    """An undeclared key takes the first record's type; a key of another type is refused by name."""
    with pytest.raises(RecordTypeError) as caught:
        frame([{"id": "e1"}, {"id": 2}], "events")
    assert (caught.value.field, caught.value.record_id) == ("id", 2)


# ---- bookkeeping columns ------------------------------------------------------------------------


def test_synced_at_is_the_given_utc_instant() -> None:
    """Every row carries the _synced_at passed in, as Datetime(us, UTC)."""
    result = frame([record(), record(id="r2")])
    assert result["_synced_at"].to_list() == [SYNCED, SYNCED]


def test_row_hash_is_stable_across_processes_and_versions() -> None:
    """The hash is blake2b-128 of canonical JSON without null keys: fixed, not Python's hash()."""
    rec = {
        "id": "deal_1",
        "name": "Zoë ✓",
        "amount": 12.5,
        "tag_ids": ["b", "a"],
        "custom_fields": {"z": 1, "a": None},
        "closed_at": None,
    }
    canonical = (
        '{"amount":12.5,"custom_fields":{"a":null,"z":1},"id":"deal_1",'
        '"name":"Zoë ✓","tag_ids":["b","a"]}'
    )
    expected = hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
    assert row_hash(rec) == expected == "719143da36815df020025ed45d6f8761"


def test_row_hash_follows_content_not_presentation() -> None:
    """A missing key and a null hash alike; key order does not matter; a new value or field does."""
    base = {"id": "a", "x": 1, "y": "z"}
    assert row_hash(base) == row_hash({"y": "z", "x": 1, "id": "a", "gone": None})
    assert row_hash(base) != row_hash({**base, "x": 2})
    assert row_hash(base) != row_hash({**base, "new": 0})
    assert row_hash(base) != row_hash({**base, "y": ["z"]})


# ---- whole-column conversion agrees with the exact per-value one ------------------------------

# Per kind: values the whole-column path must convert exactly as the per-value path does, and
# values it must leave to the per-value path (None), which converts or rejects them by name.
COLUMN_CASES: dict[str, tuple[list[object], list[object]]] = {
    "decimal": (
        [Decimal("0.29"), Decimal("844422.19"), Decimal("1E+2"), 100, Decimal("-0.01"),
         Decimal("9999999999999.99"), Decimal("0.1"), None, Decimal("12.5"), 0],
        [Decimal("1.005"), 0.29, Decimal("1E+16"), 10**16, 10**30, Decimal("1E-9"),
         Decimal("NaN"), Decimal("0.300")],
    ),
    "timestamp": (
        ["2026-03-01T10:00:00.000000Z", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00.7Z",
         "2024-02-29T23:59:59.999999Z", None],
        ["2026-03-01T10:00:00+02:00", "2026-02-30T10:00:00Z", "2026-03-01T10:00:00.1234567Z",
         "2026-03-01 10:00:00Z", "2026-03-01T25:00:00Z"],
    ),
    "date": (["2026-03-01", "2024-02-29", None], ["2026-02-30", "2026-3-1", "20260301"]),
    "bigint": ([0, -1, 2**63 - 1, -(2**63), None], [2**63, True, Decimal("1E+2"), 1.5]),
    "bool": ([True, False, None], [1, "true"]),
    "text": (["", "Zoë ✓", "\u0000", None], [1, ["a"]]),
    "text_list": ([["a", "b"], [], ["ü"], None], [["a", 1], "a"]),
    "json": ([{"b": [1, Decimal("1.50")], "a": "ü"}, [], {}, [{"z": None}], None],
             ["{}", 1, True]),
}


@pytest.mark.parametrize("kind", sorted(COLUMN_CASES))
def test_whole_column_conversion_is_exact_or_declines(kind: str) -> None:
    """A column of usual values converts at once, equal to the per-value result; odd ones fall back."""
    from analytics_client.lake import frames

    hint = ColumnHint(data_type=kind, precision=18, scale=2) if kind == "decimal" \
        else ColumnHint(data_type=kind)  # type: ignore[arg-type]
    usual, odd = COLUMN_CASES[kind]
    fast = frames._fast_column("x", hint, usual)
    assert fast is not None, f"{kind}: the usual values took the slow path"
    exact, misfits = frames._exact_column("x", hint, usual)
    assert misfits == {}
    assert fast.dtype == exact.dtype == hint.dtype
    assert fast.to_list() == exact.to_list()
    for value in odd:
        assert frames._fast_column("x", hint, [*usual, value]) is None, (kind, value)
    strict = hint.model_copy(update={"nullable": False})
    assert frames._fast_column("x", strict, usual) is None


# ---- deduplication ------------------------------------------------------------------------------


def test_deduplicate_keeps_latest_cursor_then_later_occurrence() -> None:
    """Per key the latest updated_at wins, and on a tie the later row in the batch."""
    records = [
        record(id="a", updated_at="2026-03-01T10:00:02Z", name="a-newest"),
        record(id="a", updated_at="2026-03-01T10:00:01Z", name="a-older-later"),
        record(id="b", name="b-first"),
        record(id="b", name="b-second"),
        record(id="c", name="c-only"),
    ]
    result = deduplicate(frame(records), primary_key="id", cursor_field="updated_at")
    assert sorted(result.select("id", "name").rows()) == [
        ("a", "a-newest"),
        ("b", "b-second"),
        ("c", "c-only"),
    ]
    no_cursor = deduplicate(frame(records), primary_key="id", cursor_field=None)
    assert sorted(no_cursor["name"].to_list()) == ["a-older-later", "b-second", "c-only"]


@pytest.mark.parametrize("depth", [1, 254, 256, 900])
def test_deep_nesting_lands_exactly_at_any_depth(depth: int) -> None:
    """Lists nested hundreds deep (orjson stops at 255, recursion near 1000) land as exact text."""
    from analytics_client.core import jsontext

    text = '{"id": "a", "deep": ' + "[" * depth + "1.50" + "]" * depth + "}"
    batch = typed_batch("events", [jsontext.loads(text)], synced_at=SYNCED)
    assert not batch.rejected
    stored = batch.frame["deep__json"][0]
    assert json.loads(stored, parse_float=Decimal) == json.loads(text, parse_float=Decimal)["deep"]

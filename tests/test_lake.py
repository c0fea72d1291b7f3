"""Delta tables: merge, append and replace real tables under tmp_path, checked by reading back."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from analytics_client.config.schemas import contract_columns
from analytics_client.core.errors import LakeError, RecordTypeError
from analytics_client.core.summary import WriteResult
from analytics_client.lake.frames import records_to_frame
from analytics_client.lake.tables import Lake, TableWriter

SYNCED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T0 = "2026-03-01T10:00:00.000000Z"
T1 = "2026-03-01T11:00:00.000000Z"
T2 = "2026-03-01T12:00:00.000000Z"


def deal(id: str, updated_at: str = T0, **fields: object) -> dict[str, object]:
    """A valid deals record."""
    return {"id": id, "created_at": T0, "updated_at": updated_at, "name": f"deal {id}", **fields}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def writer(lake: Lake, resource: str = "deals", **kwargs: object) -> TableWriter:
    """A writer typed by the resource's contract hints, as the default config gives them."""
    kwargs.setdefault("columns", contract_columns(resource))
    return TableWriter(lake, resource, synced_at=SYNCED, **kwargs)  # type: ignore[arg-type]


def rows(lake: Lake, resource: str = "deals") -> dict[str, dict[str, object]]:
    """The table read back with polars, as {id: row}."""
    return {r["id"]: r for r in lake.read(resource).to_dicts()}


def history(lake: Lake, resource: str = "deals") -> list[dict[str, object]]:
    return DeltaTable(lake.table_uri(resource)).history()


# ---- types survive the roundtrip ----------------------------------------------------------------

RECORDS = {
    "tags": [
        {"id": "tag_1", "created_at": T0, "updated_at": T0, "name": "Vip", "color": "#ff0000"}
    ],
    "users": [
        {
            "id": "user_1",
            "created_at": T0,
            "updated_at": T0,
            "name": "Ana",
            "email": "a@x.io",
            "role": "admin",
            "active": True,
            "last_login_at": "2026-03-01T12:30:00.654321+02:00",
        }
    ],
    "deals": [
        deal(
            "deal_1",
            amount=9999999999999.99,
            currency="EUR",
            stage="won",
            owner_id="user_1",
            tag_ids=["tag_1", "tag_2"],
            custom_fields={"b": [1, 2.5], "a": None},
            closed_at=T1,
            extra_int=2**62,
            extra_text="x",
        )
    ],
    "pages": [
        {
            "id": "page_1",
            "created_at": T0,
            "updated_at": T0,
            "name": "Home",
            "url": "https://x.io/",
            "views": 2**63 - 1,
            "published": False,
        }
    ],
    "tasks": [
        {
            "id": "task_1",
            "created_at": T0,
            "updated_at": T0,
            "name": "Call",
            "status": "open",
            "due_date": "2026-12-31",
            "deal_id": "deal_1",
            "assignee_id": None,
            "completed_at": None,
        }
    ],
}


@pytest.mark.parametrize("resource", sorted(RECORDS))
def test_types_survive_the_delta_roundtrip(lake: Lake, resource: str) -> None:
    """polars read_delta returns the frame written, type for type and value for value."""
    records: list[object] = list(RECORDS[resource])
    result = writer(lake, resource).write(records)
    assert result == WriteResult(inserted=1, updated=0, version=0)
    written = records_to_frame(resource, records, synced_at=SYNCED,
                               columns=contract_columns(resource), cursor_field="updated_at")
    back = lake.read(resource)
    assert back.get_column("_deleted_at").null_count() == back.height  # every row is live
    back = back.drop("_deleted_at")
    assert back.schema == written.schema
    assert back.equals(written)


def test_roundtrip_values_are_exact(lake: Lake) -> None:
    """Decimals, UTC microseconds, lists, JSON text and big int64s read back exactly."""
    writer(lake).write(list(RECORDS["deals"]))
    row = rows(lake)["deal_1"]
    assert row["amount"] == Decimal("9999999999999.99")
    assert row["closed_at"] == datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert row["tag_ids"] == ["tag_1", "tag_2"]
    assert row["custom_fields"] == '{"a":null,"b":[1,2.5]}'
    assert row["extra_int"] == 2**62
    assert row["_synced_at"] == SYNCED
    writer(lake, "tasks").write(list(RECORDS["tasks"]))
    assert rows(lake, "tasks")["task_1"]["due_date"] == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("100", "100"),
        ("100.0", "100"),
        ("1e2", "100"),
        ("0.29", "0.29"),
        ("-12.5", "-12.5"),
        ("9999999999999.99", "9999999999999.99"),
    ],
)
def test_amounts_land_in_the_table_exactly(lake: Lake, raw: str, expected: str) -> None:
    """Every JSON form of an amount is stored as the exact decimal it denotes."""
    writer(lake).write([deal("d", amount=json.loads(raw))])
    assert rows(lake)["d"]["amount"] == Decimal(expected)


def test_unicode_roundtrips(lake: Lake) -> None:
    """Non-ASCII names, JSON keys and values come back unchanged."""
    name = "Zoë ✓ 東京 🚀 e\u0301"
    custom = {"clé": "värde", "emoji": "🎉"}
    writer(lake).write([deal("d", name=name, custom_fields=custom, note="ß")])
    row = rows(lake)["d"]
    assert row["name"] == name and row["note"] == "ß"
    assert json.loads(row["custom_fields"]) == custom
    assert "🎉" in row["custom_fields"]  # ensure_ascii=False: readable text, not \\u escapes


# ---- merge --------------------------------------------------------------------------------------


def test_merge_inserts_then_updates_and_reports_counts(lake: Lake) -> None:
    """A merge reports inserted and updated rows from its metrics and the version committed."""
    w = writer(lake)
    assert w.write([deal("a"), deal("b")]) == WriteResult(inserted=2, updated=0, version=0)
    result = w.write([deal("b", T1, name="renamed"), deal("c")])
    assert result == WriteResult(inserted=1, updated=1, version=1)
    assert rows(lake)["b"]["name"] == "renamed"
    assert lake.version("deals") == 1


def test_rerun_with_identical_data_commits_nothing(lake: Lake) -> None:
    """Merging the same records again changes no row, makes no commit and returns version None."""
    records: list[object] = [
        deal("a", amount=1.5, tag_ids=["x"]),
        deal("b", custom_fields={"k": 1}),
    ]
    writer(lake).write(records)
    version = lake.version("deals")
    result = writer(lake).write([dict(r) for r in records])  # type: ignore[call-overload]
    assert result == WriteResult(inserted=0, updated=0, version=None)
    assert lake.version("deals") == version
    assert len(history(lake)) == 1


def test_identical_rerun_with_missing_keys_instead_of_nulls_commits_nothing(lake: Lake) -> None:
    """A null and a missing key are the same content: a rerun dropping null keys changes nothing."""
    writer(lake).write([deal("a", stage=None, amount=None)])
    assert writer(lake).write([deal("a")]) == WriteResult(0, 0, None)


def test_older_version_never_overwrites_newer(lake: Lake) -> None:
    """A record with an older updated_at than the table's leaves the table row as it is."""
    writer(lake).write([deal("a", T2, name="newest")])
    result = writer(lake).write([deal("a", T1, name="stale")])
    assert result == WriteResult(inserted=0, updated=0, version=None)
    assert rows(lake)["a"]["name"] == "newest"


def test_equal_updated_at_with_new_content_updates(lake: Lake) -> None:
    """Same updated_at but different content (a field appeared) updates the row."""
    writer(lake).write([deal("a")])
    result = writer(lake).write([deal("a", stage="won")])
    assert (result.inserted, result.updated) == (0, 1)
    assert rows(lake)["a"]["stage"] == "won"


@pytest.mark.parametrize("existing", [False, True])
def test_duplicate_ids_in_a_batch_keep_the_latest(lake: Lake, existing: bool) -> None:
    """Duplicates in one batch merge as one row: latest updated_at, then the later occurrence."""
    if existing:
        writer(lake).write([deal("a", name="orig"), deal("b", name="orig")])
    batch: list[object] = [
        deal("a", T2, name="a-latest"),
        deal("a", T1, name="a-older"),
        deal("b", T1, name="b-first"),
        deal("b", T1, name="b-second"),
    ]
    result = writer(lake).write(batch)
    assert (result.inserted, result.updated) == ((0, 2) if existing else (2, 0))
    table = lake.read("deals")
    assert table.height == 2
    assert sorted(table.select("id", "name").rows()) == [("a", "a-latest"), ("b", "b-second")]


def test_duplicate_new_ids_are_not_inserted_twice_on_an_existing_table(lake: Lake) -> None:
    """New ids repeated in a batch merged into an existing table become one row each."""
    writer(lake).write([deal("x")])
    writer(lake).write([deal("n"), deal("n", T1, name="later")])
    assert lake.read("deals").height == 2
    assert rows(lake)["n"]["name"] == "later"


def test_lists_that_shrink_or_empty_shrink_in_the_table(lake: Lake) -> None:
    """tag_ids shrinking to one, then [], then null is reflected after each merge."""
    w = writer(lake)
    w.write([deal("a", T0, tag_ids=["t1", "t2", "t3"])])
    w.write([deal("a", T1, tag_ids=["t2"])])
    assert rows(lake)["a"]["tag_ids"] == ["t2"]
    w.write([deal("a", T2, tag_ids=[])])
    assert rows(lake)["a"]["tag_ids"] == []
    w.write([deal("a", "2026-03-01T13:00:00Z")])
    assert rows(lake)["a"]["tag_ids"] is None


def test_field_left_out_of_a_whole_batch_becomes_null(lake: Lake) -> None:
    """A documented or undocumented field missing from every record of a later batch is nulled."""
    writer(lake).write(
        [
            deal("a", amount=5, stage="won", extra="x", custom_fields={"k": 1}),
            deal("b", amount=7, extra="y"),
        ]
    )
    writer(lake).write([deal("a", T1)])  # no amount, stage, extra or custom_fields anywhere
    after = rows(lake)
    assert {
        k: after["a"][k] for k in ("amount", "stage", "extra", "custom_fields")
    } == dict.fromkeys(("amount", "stage", "extra", "custom_fields"))
    assert (after["b"]["amount"], after["b"]["extra"]) == (Decimal("7"), "y")


def test_new_field_in_a_second_batch_adds_a_column_without_nulling_old_rows(lake: Lake) -> None:
    """A field first seen in batch two becomes a column; every value written before stays."""
    first: list[object] = [
        deal(f"d{i}", amount=i, stage="s", tag_ids=[str(i)], old=i) for i in range(50)
    ]
    writer(lake).write(first)
    before = lake.read("deals").sort("id")
    result = writer(lake).write([deal("d3", T1, old=3, fresh={"a": 1}), deal("new", fresh_n=1.5)])
    assert (result.inserted, result.updated) == (1, 1)
    after = lake.read("deals").sort("id")
    assert after.schema["fresh__json"] == pl.String() and after.schema["fresh_n"] == pl.Float64()
    unchanged = after.filter(~pl.col("id").is_in(["d3", "new"])).select(before.columns)
    assert unchanged.equals(before.filter(pl.col("id") != "d3"))
    assert rows(lake)["d3"]["fresh__json"] == '{"a":1}'
    ops = [h["operation"] for h in history(lake)]
    assert ops == ["MERGE", "WRITE", "WRITE"]  # newest first: evolve (empty append), then merge


def test_varying_undocumented_field_keeps_every_value_in_typed_or_variant_column(
    lake: Lake,
) -> None:
    """A field whose type changes between records and runs never fails and never loses a value."""
    values: list[object] = [1, "high", 2**70, {"a": [1, None]}, [1, 2], 2.5, True, -(2**63), None]
    w = writer(lake)
    w.write([deal("v0", score=values[0])])  # the table gets score: Int64
    w.write([deal(f"v{i}", score=v) for i, v in enumerate(values) if i])
    table = lake.read("deals")
    assert table.schema["score"] == pl.Int64() and table.schema["score__json"] == pl.String()
    back = rows(lake)
    for i, value in enumerate(values):
        row = back[f"v{i}"]
        got = (
            row["score"]
            if row["score"] is not None
            else (json.loads(row["score__json"]) if row["score__json"] is not None else None)
        )
        assert got == value and type(got) is type(value)
        assert row["score"] is None or row["score__json"] is None


def test_value_moving_between_typed_and_variant_column_clears_the_other(lake: Lake) -> None:
    """When a row's value changes type, the column it left is nulled on update."""
    w = writer(lake)
    w.write([deal("a", score=1), deal("b", score=2)])
    w.write([deal("a", T1, score="one")])
    assert (rows(lake)["a"]["score"], rows(lake)["a"]["score__json"]) == (None, '"one"')
    w.write([deal("a", T2, score=5)])
    assert (rows(lake)["a"]["score"], rows(lake)["a"]["score__json"]) == (5, None)
    assert (rows(lake)["b"]["score"], rows(lake)["b"]["score__json"]) == (2, None)


def test_custom_fields_with_varying_keys_and_types_merge(lake: Lake) -> None:
    """custom_fields whose keys and value types change across batches always roundtrip exactly."""
    batches = [
        [deal("a", custom_fields={"x": 1}), deal("b", custom_fields={"y": "s"})],
        [
            deal("a", T1, custom_fields={"x": "now text", "z": [1, {"q": None}]}),
            deal("c", custom_fields={}),
        ],
        [deal("b", T1, custom_fields=None), deal("d", custom_fields={"big": 2**70, "f": 0.1})],
    ]
    for batch in batches:
        writer(lake).write(batch)  # type: ignore[arg-type]
    got = {
        k: (json.loads(v["custom_fields"]) if v["custom_fields"] else None)
        for k, v in rows(lake).items()
    }
    assert got == {
        "a": {"x": "now text", "z": [1, {"q": None}]},
        "b": None,
        "c": {},
        "d": {"big": 2**70, "f": 0.1},
    }


def test_merge_without_cursor_uses_content_only(lake: Lake) -> None:
    """With cursor_field=None any changed content updates and identical content commits nothing."""
    w = writer(lake, cursor_field=None)
    w.write([deal("a", T2, name="new")])
    assert w.write([deal("a", T2, name="new")]).version is None
    result = w.write([deal("a", T1, name="older but different")])
    assert (result.updated, rows(lake)["a"]["name"]) == (1, "older but different")


def test_undocumented_resource_merges_by_inferred_schema(lake: Lake) -> None:
    """A resource the contract does not list is created and merged with inferred columns."""
    w = writer(lake, "events", cursor_field="seq")
    w.write([{"id": "e1", "seq": 1, "kind": "a"}, {"id": "e2", "seq": 1}])
    result = w.write([{"id": "e1", "seq": 2, "kind": "b"}, {"id": "e2", "seq": 0, "kind": "old"}])
    assert (result.inserted, result.updated) == (0, 1)
    assert {k: v["kind"] for k, v in rows(lake, "events").items()} == {"e1": "b", "e2": None}


def test_commit_metadata_is_stored_with_the_data_commit(lake: Lake) -> None:
    """commit_metadata lands in the merge commit itself, not in a schema-evolution commit."""
    w = writer(lake)
    w.write([deal("a")], commit_metadata={"analytics_sync.run_id": "r1"})
    w.write([deal("a", T1, brand_new=1)], commit_metadata={"analytics_sync.run_id": "r2"})
    latest, evolve, create = history(lake)
    assert (latest["operation"], latest["analytics_sync.run_id"]) == ("MERGE", "r2")
    assert "analytics_sync.run_id" not in evolve
    assert create["analytics_sync.run_id"] == "r1"


def test_bad_record_writes_nothing(lake: Lake) -> None:
    """A RecordTypeError anywhere in a batch leaves the table at its version."""
    writer(lake).write([deal("a")])
    with pytest.raises(RecordTypeError):
        writer(lake).write([deal("b"), deal("c", amount=1.234)])
    assert lake.version("deals") == 0 and sorted(rows(lake)) == ["a"]


def test_empty_batch_commits_nothing(lake: Lake) -> None:
    """Writing no records creates no table and returns version None."""
    assert writer(lake).write([]) == WriteResult(0, 0, None)
    assert lake.version("deals") is None


# ---- a table of another schema ------------------------------------------------------------------


def test_table_with_another_schema_is_a_lake_error(lake: Lake) -> None:
    """A documented column of another type raises LakeError naming column and types; no cast."""
    uri = lake.table_uri("deals")
    Path(uri).parent.mkdir(parents=True)
    write_deltalake(uri, pl.DataFrame({"id": ["a"], "amount": [1.5]}))
    for disposition in ("merge", "append"):
        with pytest.raises(LakeError) as caught:
            writer(lake, write_disposition=disposition).write([deal("b", amount=1)])
        message = str(caught.value)
        assert caught.value.resource == "deals"
        assert "'amount'" in message and "Float64" in message and "Decimal" in message
        assert "full refresh" in message
    assert lake.version("deals") == 0
    assert lake.read("deals")["amount"].to_list() == [1.5]


def test_replace_rewrites_a_table_of_another_schema(lake: Lake) -> None:
    """A full refresh (replace) fixes a foreign schema: it overwrites schema and rows."""
    uri = lake.table_uri("deals")
    Path(uri).parent.mkdir(parents=True)
    write_deltalake(uri, pl.DataFrame({"id": ["a"], "amount": [1.5]}))
    w = writer(lake, write_disposition="replace")
    w.write([deal("b", amount=1)])
    assert w.finish().version == 1
    assert lake.read("deals").schema["amount"] == pl.Decimal(18, 2)


# ---- append and replace -------------------------------------------------------------------------


def test_append_adds_each_version_once_and_evolves_new_columns(lake: Lake) -> None:
    """append with a cursor: a (key, cursor) already in the batch or the table is not added
    again, a new cursor is (docs/data-model.md); new columns are evolved."""
    w = writer(lake, write_disposition="append")
    assert w.write([deal("a"), deal("a")]) == WriteResult(1, 0, 0)
    assert w.write([deal("a"), deal("a", T1, extra=1)]) == WriteResult(1, 0, 1)
    table = lake.read("deals")
    assert table.height == 2 and table["extra"].to_list().count(1) == 1
    assert w.finish() == WriteResult(0, 0, None)
    assert w.write([deal("a", T1, extra=1)]) == WriteResult(0, 0, None)  # nothing to commit


def test_append_without_a_cursor_adds_every_batch_as_is(lake: Lake) -> None:
    """Without a cursor nothing tells a re-read from a new version: every row is appended."""
    w = writer(lake, write_disposition="append", cursor_field=None)
    assert w.write([deal("a"), deal("a")]) == WriteResult(2, 0, 0)
    assert w.write([deal("a")]) == WriteResult(1, 0, 1)
    assert lake.read("deals").height == 3


def test_replace_swaps_in_the_run_in_one_commit(lake: Lake) -> None:
    """replace stages batches (deduplicated across them) and finish() overwrites the table once."""
    writer(lake).write([deal("old1"), deal("old2")], commit_metadata={"k": "v0"})
    w = writer(lake, write_disposition="replace")
    assert w.write([deal("n1"), deal("n2")]).version is None
    assert (
        w.write([deal("n2", T1, name="n2-latest"), deal("n3")], commit_metadata={"k": "v1"}).version
        is None
    )
    assert lake.version("deals") == 0 and sorted(rows(lake)) == ["old1", "old2"]
    assert w.finish() == WriteResult(inserted=3, updated=0, version=1)
    assert sorted(rows(lake)) == ["n1", "n2", "n3"] and rows(lake)["n2"]["name"] == "n2-latest"
    last = history(lake)[0]
    assert last["operation"] == "WRITE" and last["operationParameters"]["mode"] == "Overwrite"
    assert last["k"] == "v1"
    assert not Path(lake.staging_uri("deals")).exists()


def test_replace_interrupted_before_finish_leaves_the_table_intact(lake: Lake) -> None:
    """A replace run failing before finish changes nothing; the next run replaces cleanly."""
    writer(lake).write([deal("old")])
    crashed = writer(lake, write_disposition="replace")
    crashed.write([deal("half1")])
    crashed.write([deal("half2")])
    with pytest.raises(RecordTypeError):
        crashed.write([deal("bad", amount="x")])
    # the run dies here: finish() is never called
    assert lake.version("deals") == 0 and sorted(rows(lake)) == ["old"]
    rerun = writer(lake, write_disposition="replace")
    rerun.write([deal("fresh")])
    assert rerun.finish().version == 1
    assert sorted(rows(lake)) == ["fresh"]  # nothing staged by the crashed run leaks in


def test_replace_with_no_records_leaves_the_table_untouched(lake: Lake) -> None:
    """finish() after zero staged records keeps the table and returns version None."""
    writer(lake).write([deal("keep")])
    w = writer(lake, write_disposition="replace")
    w.write([])
    assert w.finish() == WriteResult(0, 0, None)
    assert lake.version("deals") == 0 and sorted(rows(lake)) == ["keep"]


# ---- the lake -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../x", "a\\b", "/abs", "C:\\x", "a b", "a.b", "_staging", "é"]
)
def test_names_that_escape_the_lake_are_refused(lake: Lake, name: str) -> None:
    """Resource names that are empty, paths or outside [A-Za-z0-9_-]+ raise LakeError."""
    with pytest.raises(LakeError, match="cannot name a table"):
        lake.table_uri(name)
    with pytest.raises(LakeError):
        writer(lake, name)


def test_local_lake_creates_parent_directories(tmp_path: Path) -> None:
    """A local lake path that does not exist yet is created on the first write."""
    lake = Lake(str(tmp_path / "a" / "b" / "lake"))
    assert lake.version("deals") is None
    writer(lake).write([deal("a")])
    assert lake.version("deals") == 0
    assert (tmp_path / "a" / "b" / "lake" / "deals" / "_delta_log").is_dir()


def test_object_store_uris_are_joined_not_resolved() -> None:
    """An object store URI keeps its scheme; storage options are passed through but never shown."""
    lake = Lake("s3://bucket/prefix/", storage_options={"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert lake.table_uri("deals") == "s3://bucket/prefix/deals"
    assert lake.storage_options == {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    assert "s3cr3t" not in repr(lake)


def test_reading_a_missing_table_is_a_lake_error(lake: Lake) -> None:
    """read() of a resource never synced says so."""
    with pytest.raises(LakeError, match="no Delta table"):
        lake.read("deals")


def test_unknown_write_disposition_is_refused(lake: Lake) -> None:
    """A write_disposition other than merge, append or replace raises LakeError at once."""
    with pytest.raises(LakeError, match="write_disposition"):
        writer(lake, write_disposition="upsert")


def test_table_written_without_bookkeeping_columns_still_merges(lake: Lake) -> None:
    """A table of the declared types but no _row_hash (another tool's) gains it and updates rows."""
    uri = lake.table_uri("deals")
    Path(uri).parent.mkdir(parents=True)
    seed = records_to_frame("deals", [deal("a", name="theirs")], synced_at=SYNCED,
                            columns=contract_columns("deals"))
    write_deltalake(uri, seed.drop("_row_hash", "_synced_at"))
    result = writer(lake).write([deal("a", name="ours"), deal("b")])
    assert (result.inserted, result.updated) == (1, 1)
    assert rows(lake)["a"]["name"] == "ours" and rows(lake)["a"]["_row_hash"] is not None

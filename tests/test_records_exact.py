"""Issue 10's eight failing inputs: records as real APIs send them, served byte for byte.

Each test serves raw JSON text from ``tests/recordserver.py`` (never re-serialised), runs the
library (``run_sync``) into a real Delta lake under ``tmp_path`` and reads the tables back with
polars/deltalake. Expectations come from the data model and the API contract, decoded by
``tests/records_support.py`` (stdlib ``json`` with ``parse_float=Decimal``), never from the
library's own conversion code.

The spec they check (issue 10): what the API sent is what the table holds, or the record is set
aside in ``<lake>/_quarantine`` (pipeline, resource, key, field, reason, record as received,
run_id, quarantined_at) naming the field, while the other records of the batch land and the
resource's status stays ``ok`` (``on_bad_record: quarantine``, the default); a mark never passes
what is committed, quarantine included.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from analytics_client.state.marks import MemoryMarkStore
from tests.records_support import (
    MAX_US,
    PIPELINE,
    T0,
    T1,
    UTC,
    Constant,
    assert_quarantined,
    deal,
    decode,
    default_config,
    own_config,
    quarantine_rows,
    rows_by_id,
    run,
    same_json,
    table,
    table_exists,
    table_mark,
    value_problem,
)
from tests.recordserver import RecordServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[RecordServer]:
    with RecordServer() as running:
        yield running


def ok(summary: object) -> None:
    assert getattr(summary, "status", None) == "ok", getattr(summary, "error", summary)


def quarantined_count(summary: object) -> object:
    return getattr(summary, "quarantined", "ResourceSummary has no 'quarantined' field")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


# ---- 1. the cursor of a user's own resource is an instant, never text ------------------------

def test_1_own_resource_update_with_a_trimmed_fraction_lands(
        server: RecordServer, tmp_path: Path) -> None:
    """10:00:00.5Z is after 10:00:00Z (as text it sorts before): run 2's version wins."""
    config = own_config()
    server.put("events", ['{"id":"e1","updated_at":"2026-03-01T10:00:00Z","status":"old"}'])
    ok(run(server, tmp_path, config)["events"])
    server.put("events", ['{"id":"e1","updated_at":"2026-03-01T10:00:00.5Z","status":"new"}'])
    second = run(server, tmp_path, config)["events"]
    ok(second)
    events = table(tmp_path, "events")
    assert events["status"].to_list() == ["new"], "the update was lost: cursor compared as text"
    assert events.schema["updated_at"] == pl.Datetime("us", "UTC")
    assert events["updated_at"].to_list() == [utc(2026, 3, 1, 10, 0, 0, 500000)]
    assert second.updated == 1
    mark = table_mark(tmp_path, "events")
    assert mark is not None and mark <= micros(utc(2026, 3, 1, 10, 0, 0, 500000))


def test_1_own_resource_two_versions_in_one_batch_keep_the_later_instant(
        server: RecordServer, tmp_path: Path) -> None:
    """Deduplicating a batch compares instants: 10:00:00.5Z beats 10:00:00Z."""
    server.put("events", ['{"id":"e1","updated_at":"2026-03-01T10:00:00Z","status":"old"}',
                          '{"id":"e1","updated_at":"2026-03-01T10:00:00.5Z","status":"new"}'])
    ok(run(server, tmp_path, own_config())["events"])
    events = table(tmp_path, "events")
    assert events["status"].to_list() == ["new"]
    assert events["updated_at"].to_list() == [utc(2026, 3, 1, 10, 0, 0, 500000)]


def test_1_own_resource_offsets_are_the_same_instant(
        server: RecordServer, tmp_path: Path) -> None:
    """11:00:00+01:00 is 10:00:00Z; a later instant written with a smaller text still wins."""
    config = own_config()
    server.put("events", ['{"id":"e1","updated_at":"2026-03-01T11:00:00+01:00","status":"old"}'])
    ok(run(server, tmp_path, config)["events"])
    events = table(tmp_path, "events")
    assert events.schema["updated_at"] == pl.Datetime("us", "UTC")
    assert events["updated_at"].to_list() == [utc(2026, 3, 1, 10)]
    # 10:00:01Z is one second later, though "2026-03-01T10..." < "2026-03-01T11..." as text.
    server.put("events", ['{"id":"e1","updated_at":"2026-03-01T10:00:01Z","status":"new"}'])
    ok(run(server, tmp_path, config)["events"])
    events = table(tmp_path, "events")
    assert events["status"].to_list() == ["new"]
    assert events["updated_at"].to_list() == [utc(2026, 3, 1, 10, 0, 1)]


def test_1_own_resource_offsets_in_one_batch(server: RecordServer, tmp_path: Path) -> None:
    """In one batch, 10:30:00-02:00 (12:30Z) beats 11:00:00Z although it is smaller as text."""
    server.put("events", ['{"id":"e1","updated_at":"2026-03-01T11:00:00Z","status":"old"}',
                          '{"id":"e1","updated_at":"2026-03-01T10:30:00-02:00","status":"new"}'])
    ok(run(server, tmp_path, own_config())["events"])
    events = table(tmp_path, "events")
    assert events["status"].to_list() == ["new"]
    assert events["updated_at"].to_list() == [utc(2026, 3, 1, 12, 30)]


# ---- 2. numbers are never rounded ---------------------------------------------------------------

def test_2_balance_beyond_a_float_is_kept_exactly_as_json_text(
        server: RecordServer, tmp_path: Path) -> None:
    """12345678901234567.89 has no float64: it lands in balance__json, exactly; 1.5 is a float."""
    d0, d1 = deal("d0", '"balance":1.5'), deal("d1", '"balance":12345678901234567.89')
    server.put("deals", [d0, d1])
    ok(run(server, tmp_path, default_config(), resources=["deals"])["deals"])
    frame = table(tmp_path, "deals")
    rows = rows_by_id(frame)
    assert set(rows) == {"d0", "d1"}
    assert "balance__json" in frame.columns, \
        f"no balance__json column; balance holds {rows['d1'].get('balance')!r} (rounded)"
    assert rows["d1"]["balance__json"] is not None
    assert decode(rows["d1"]["balance__json"]) == Decimal("12345678901234567.89")
    assert rows["d1"].get("balance") is None
    assert value_problem(rows["d0"], frame.schema, "balance", Decimal("1.5")) is None


def test_2_amount_with_more_than_two_decimals_is_quarantined(
        server: RecordServer, tmp_path: Path) -> None:
    """99.999999999999999999 is not an amount (2 decimals at most): set aside, not rounded."""
    bad = deal("d1", '"amount":99.999999999999999999')
    server.put("deals", [deal("d0", '"amount":12.5'), bad, deal("d2", '"amount":3')])
    summary = run(server, tmp_path, default_config(), resources=["deals"], run_id="r1")["deals"]
    ok(summary)
    rows = rows_by_id(table(tmp_path, "deals"))
    assert "d1" not in rows, f"d1 landed with amount {rows['d1']['amount']!r} (rounded)"
    assert rows["d0"]["amount"] == Decimal("12.5") and rows["d2"]["amount"] == Decimal(3)
    assert_quarantined(tmp_path, "deals", "d1", bad, fields=("amount",), run_id="r1")
    assert quarantined_count(summary) == 1


def test_2_custom_fields_keep_every_digit(server: RecordServer, tmp_path: Path) -> None:
    """custom_fields' JSON text holds 0.1234567890123456789 exactly, not its nearest float."""
    server.put("deals", [deal("d0", '"custom_fields":{"p":0.1234567890123456789}')])
    ok(run(server, tmp_path, default_config(), resources=["deals"])["deals"])
    [row] = table(tmp_path, "deals").to_dicts()
    assert decode(row["custom_fields"]) == {"p": Decimal("0.1234567890123456789")}, \
        row["custom_fields"]


# ---- 3. NaN is not JSON -------------------------------------------------------------------------

def test_3_nan_in_custom_fields_is_quarantined(server: RecordServer, tmp_path: Path) -> None:
    bad = deal("d1", '"custom_fields":{"x":NaN,"z":1}')
    server.put("deals", [deal("d0", '"custom_fields":{"z":1}'), bad, deal("d2")])
    summary = run(server, tmp_path, default_config(), resources=["deals"], run_id="r1")["deals"]
    ok(summary)
    rows = rows_by_id(table(tmp_path, "deals"))
    assert "d1" not in rows, f"d1 landed with custom_fields {rows['d1']['custom_fields']!r}"
    assert set(rows) == {"d0", "d2"}
    row = assert_quarantined(tmp_path, "deals", "d1", bad, fields=("custom_fields",),
                             run_id="r1", reason_mentions=("nan", "json"))
    assert decode(row["record"])["custom_fields"] == {"x": Constant("NaN"), "z": 1}
    assert quarantined_count(summary) == 1


def test_3_on_bad_record_fail_fails_the_resource_and_writes_nothing(
        server: RecordServer, tmp_path: Path) -> None:
    """``on_bad_record: fail``: the resource fails naming field and record; no row written."""
    server.put("deals", [deal("d0"), deal("d1", '"custom_fields":{"x":NaN,"z":1}'), deal("d2")])
    summary = run(server, tmp_path, default_config(on_bad_record="fail"), resources=["deals"])["deals"]
    assert summary.status == "failed"
    assert "custom_fields" in (summary.error or "") and "d1" in (summary.error or "")
    assert not table_exists(tmp_path, "deals") or table(tmp_path, "deals").height == 0
    assert not quarantine_rows(tmp_path, "deals")


# ---- 4. one bad character never fails the batch ----------------------------------------------

def test_4_lone_surrogate_sets_aside_one_record_not_the_batch(
        server: RecordServer, tmp_path: Path) -> None:
    bad = deal("d1", name="hi \ud83d")  # json.dumps writes the lone surrogate as \ud83d
    assert "\\ud83d" in bad
    server.put("deals", [deal("d0", name="fine"), bad])
    summary = run(server, tmp_path, default_config(), resources=["deals"], run_id="r1")["deals"]
    ok(summary)
    rows = rows_by_id(table(tmp_path, "deals"))
    assert rows["d0"]["name"] == "fine"
    if "d1" in rows:  # landed with U+FFFD (a warning names field and id)
        assert rows["d1"]["name"] == "hi \ufffd"
        assert quarantined_count(summary) == 0
    else:
        row = assert_quarantined(tmp_path, "deals", "d1", bad, fields=("name",), run_id="r1")
        assert "\\ud83d" in row["record"].lower()  # kept as an escape: the text is valid UTF-8
        assert quarantined_count(summary) == 1


# ---- 5. instants outside years 1-9999 once in UTC --------------------------------------------

def test_5_closed_at_beyond_9999_in_utc_is_quarantined(
        server: RecordServer, tmp_path: Path) -> None:
    bad = deal("d1", '"closed_at":"9999-12-31T23:00:00-05:00"')
    server.put("deals", [deal("d0", '"closed_at":"2026-03-01T09:00:00-05:00"'), bad])
    summary = run(server, tmp_path, default_config(), resources=["deals"], run_id="r1")["deals"]
    ok(summary)
    rows = rows_by_id(table(tmp_path, "deals"))  # readable: nothing beyond 9999 stored
    assert "d1" not in rows, "closed_at beyond year 9999 in UTC was stored"
    assert rows["d0"]["closed_at"] == utc(2026, 3, 1, 14)
    assert_quarantined(tmp_path, "deals", "d1", bad, fields=("closed_at",), run_id="r1")
    assert quarantined_count(summary) == 1


def test_5_updated_at_beyond_9999_never_reaches_a_mark_and_a_fix_lands(
        server: RecordServer, tmp_path: Path) -> None:
    """The bad cursor is set aside; no mark passes 9999; once the API fixes it, it lands."""
    marks = MemoryMarkStore()
    config = default_config()
    bad = deal("d1", updated_at="9999-12-31T23:00:00-05:00")
    server.put("deals", [deal("d0"), bad])
    first = run(server, tmp_path, config, resources=["deals"], run_id="r1", marks=marks)["deals"]
    ok(first)
    assert set(rows_by_id(table(tmp_path, "deals"))) == {"d0"}
    assert_quarantined(tmp_path, "deals", "d1", bad, fields=("updated_at",), run_id="r1")

    def assert_marks_in_range() -> None:
        mark = table_mark(tmp_path, "deals")
        assert mark is None or mark <= MAX_US, f"table mark {mark} is beyond year 9999"
        saved = marks.load(PIPELINE, "deals")
        if saved is not None and saved.cursor is not None:
            assert saved.cursor[:4].isdigit() and saved.cursor[:4] <= "9999" \
                and len(saved.cursor.split("-")[0]) == 4, saved.cursor

    assert_marks_in_range()
    second = run(server, tmp_path, config, resources=["deals"], run_id="r2", marks=marks)["deals"]
    ok(second)  # the same bad record again: set aside again, the run is not stuck
    assert_marks_in_range()
    fixed = deal("d1", updated_at=T1, name="fixed")
    server.put("deals", [deal("d0"), fixed])
    third = run(server, tmp_path, config, resources=["deals"], run_id="r3", marks=marks)["deals"]
    ok(third)
    rows = rows_by_id(table(tmp_path, "deals"))
    assert rows["d1"]["name"] == "fixed" and rows["d1"]["updated_at"] == utc(2026, 3, 1, 11)
    assert_marks_in_range()


# ---- 6. merge on a key without any cursor -----------------------------------------------------

def countries_config() -> dict:
    config = own_config("countries")
    endpoint = config["resources"][0]["endpoint"]
    endpoint["incremental"] = None  # explicitly: no cursor at all
    del endpoint["params"]
    return config


def test_6_merge_without_a_cursor_upserts_on_the_key(
        server: RecordServer, tmp_path: Path) -> None:
    config = countries_config()
    server.put("countries", ['{"id":"fr","name":"France"}', '{"id":"de","name":"Germany"}'])
    ok(run(server, tmp_path, config)["countries"])
    assert {r["id"]: r["name"] for r in table(tmp_path, "countries").to_dicts()} == {
        "fr": "France", "de": "Germany"}
    server.put("countries", ['{"id":"fr","name":"République française"}',
                             '{"id":"de","name":"Germany"}'])
    second = run(server, tmp_path, config)["countries"]
    ok(second)
    assert {r["id"]: r["name"] for r in table(tmp_path, "countries").to_dicts()} == {
        "fr": "République française", "de": "Germany"}
    assert (second.inserted, second.updated) == (0, 1)


def test_6_merge_without_a_cursor_keeps_the_later_record_of_a_batch(
        server: RecordServer, tmp_path: Path) -> None:
    server.put("countries", ['{"id":"fr","name":"France"}',
                             '{"id":"fr","name":"République française"}'])
    ok(run(server, tmp_path, countries_config())["countries"])
    rows = table(tmp_path, "countries").to_dicts()
    assert [(r["id"], r["name"]) for r in rows] == [("fr", "République française")]


# ---- 7. a field named "" ----------------------------------------------------------------------

def test_7_empty_field_name_has_one_stable_column_or_is_quarantined(
        server: RecordServer, tmp_path: Path) -> None:
    """Never ``column_<n>``, never a value silently nulled by a rename between runs."""
    config = default_config()
    v1, v2 = deal("d1", '"":"v1"'), deal("d1", '"":"v2"', updated_at=T1)
    server.put("deals", [deal("d0"), v1])
    first = run(server, tmp_path, config, resources=["deals"], run_id="r1")["deals"]
    ok(first)
    frame1 = table(tmp_path, "deals")
    assert not [c for c in frame1.columns if re.fullmatch(r"column_\d+", c)], frame1.columns
    server.put("deals", [deal("d0"), v2])
    second = run(server, tmp_path, config, resources=["deals"], run_id="r2")["deals"]
    ok(second)
    frame2 = table(tmp_path, "deals")
    assert not [c for c in frame2.columns if re.fullmatch(r"column_\d+", c)], frame2.columns
    rows1, rows2 = rows_by_id(frame1), rows_by_id(frame2)
    assert "d0" in rows2
    if "d1" not in rows1:  # quarantined, in both runs, naming ""
        assert "d1" not in rows2
        assert_quarantined(tmp_path, "deals", "d1", v1, fields=("",), run_id="r1")
        assert_quarantined(tmp_path, "deals", "d1", v2, fields=("",), run_id="r2")
        for row in quarantine_rows(tmp_path, "deals"):
            assert row["field"] == "", row
    else:  # one stable column, the same in both runs
        holding1 = [c for c, v in rows1["d1"].items() if v == "v1"]
        holding2 = [c for c, v in rows2["d1"].items() if v == "v2"]
        assert len(holding1) == 1 and holding1 == holding2, (holding1, holding2)
        assert set(frame2.columns) == set(frame1.columns), "a new column for the same name"


# ---- 8. a record that can never land does not block the others ------------------------------

def test_8_case_twins_quarantine_one_record_and_later_runs_go_on(
        server: RecordServer, tmp_path: Path) -> None:
    config = default_config()
    bad = deal("d1", '"email":"a@example.com","Email":"A@example.com"')
    server.put("deals", [deal("d0"), bad, deal("d2")])
    first = run(server, tmp_path, config, resources=["deals"], run_id="r1")["deals"]
    ok(first)
    assert set(rows_by_id(table(tmp_path, "deals"))) == {"d0", "d2"}
    assert_quarantined(tmp_path, "deals", "d1", bad, fields=("email", "Email"), run_id="r1")
    assert quarantined_count(first) == 1
    server.put("deals", [deal("d0"), bad, deal("d2"), deal("d3", updated_at=T1)])
    second = run(server, tmp_path, config, resources=["deals"], run_id="r2")["deals"]
    ok(second)
    assert set(rows_by_id(table(tmp_path, "deals"))) == {"d0", "d2", "d3"}


# ---- the quarantine table and the summary ---------------------------------------------------

def test_quarantine_rows_hold_the_record_exactly_as_received(
        server: RecordServer, tmp_path: Path) -> None:
    """Every quarantine column, for a record carrying a huge integer, a long decimal and NaN."""
    bad = deal("d7", '"big":123456789012345678901234567890,"long":0.12345678901234567890123,'
                     '"custom_fields":{"x":-Infinity}')
    server.put("deals", [bad, deal("d8")])
    summary = run(server, tmp_path, default_config(), resources=["deals"], run_id="run-42")["deals"]
    ok(summary)
    row = assert_quarantined(tmp_path, "deals", "d7", bad, fields=("custom_fields",),
                             run_id="run-42")
    record = decode(row["record"])
    assert same_json(record["big"], 123456789012345678901234567890)
    assert record["long"] == Decimal("0.12345678901234567890123")
    assert row["resource"] == "deals" and row["key"] == "d7"
    assert set(rows_by_id(table(tmp_path, "deals"))) == {"d8"}
    assert quarantined_count(summary) == 1


# ---- the harness itself, on inputs today's code already handles ------------------------------

def test_harness_plain_values_land_and_read_back_through_the_decoder(
        server: RecordServer, tmp_path: Path) -> None:
    """Strings, ints, bools and exact floats land as served, and a second run reads only
    from the mark (the server's filter) and lands the update: the harness itself is sound."""
    config = default_config()
    served = {"d0": '"s":"x","i":5,"b":true,"f":1.5', "d1": '"s":"y","i":-7,"b":false,"f":2'}
    server.put("deals", [deal(k, v) for k, v in served.items()])
    ok(run(server, tmp_path, config, resources=["deals"])["deals"])
    server.put("deals", [deal("d0", served["d0"]),
                         deal("d1", '"s":"z","i":9,"b":true,"f":0.25', updated_at=T1)])
    before = len(server.queries)
    second = run(server, tmp_path, config, resources=["deals"])["deals"]
    ok(second)
    assert (second.inserted, second.updated) == (0, 1)
    # run 2 read only from the mark (strictly after it: the API's clock proved it), and the
    # server filtered on it (delete capture's one-record count requests aside)
    reads = [q for _, q in server.queries[before:] if q.get("page[size]") != "1"]
    assert reads and all(q.get("filter[updated_at][gte]") == "2026-03-01T10:00:00.000001Z"
                         for q in reads), reads
    frame = table(tmp_path, "deals")
    rows = rows_by_id(frame)
    expected = {"d0": {"s": "x", "i": 5, "b": True, "f": Decimal("1.5"), "updated_at": T0},
                "d1": {"s": "z", "i": 9, "b": True, "f": Decimal("0.25"), "updated_at": T1}}
    for key, fields in expected.items():
        for name, value in fields.items():
            problem = value_problem(rows[key], frame.schema, name, value,
                                    cursor=name == "updated_at")
            assert problem is None, problem
    assert value_problem(rows["d0"], frame.schema, "missing", None) is None
    assert value_problem(rows["d0"], frame.schema, "s", "other") is not None  # it can fail
    mark = table_mark(tmp_path, "deals")
    assert mark == micros(utc(2026, 3, 1, 11))
    assert server.requests["/v1/deals"] == len(server.queries) >= 2


# ---- found by the property tests on the first implementation ---------------------------------

def test_found_decimals_longer_than_28_digits_keep_every_digit(
        server: RecordServer, tmp_path: Path) -> None:
    """Python's default decimal context holds 28 digits: no operation under it may touch a
    served number (``Decimal.normalize()`` rounded 1613353.000000000000000007950608)."""
    long = "1613353.000000000000000007950608"
    longer = "0.1234567890123456789012345678901234567890"
    server.put("deals", [deal("d0", f'"x":{long},"custom_fields":{{"p":{longer}}}'),
                         deal("d1", '"x":"text"')])
    ok(run(server, tmp_path, default_config(), resources=["deals"])["deals"])
    frame = table(tmp_path, "deals")
    rows = rows_by_id(frame)
    assert decode(rows["d0"]["custom_fields"]) == {"p": Decimal(longer)}, rows["d0"]["custom_fields"]
    assert value_problem(rows["d0"], frame.schema, "x", Decimal(long)) is None, \
        value_problem(rows["d0"], frame.schema, "x", Decimal(long))


@pytest.mark.parametrize("bad", [
    ("0001-01-01T00:00:00+01:00", "0001-01-01T00:30:00+01:00"),  # year 0 once in UTC
    ("2026-03-01T09:00:00.0000001Z", "2026-03-01T09:00:00.0000002Z"),  # below a microsecond
], ids=["year-0", "nanoseconds"])
def test_found_a_page_of_only_unreadable_cursors_is_set_aside_and_the_walk_goes_on(
        server: RecordServer, tmp_path: Path, bad: tuple[str, str]) -> None:
    """Page 1 holds only records whose cursor cannot be a mark: both are set aside, the walk
    reads on, and the records behind them land (the walk once failed: "no record has a
    readable 'updated_at' ... so the walk cannot move past it")."""
    raws = [f'{{"id":"b{n}","updated_at":"{cursor}"}}' for n, cursor in enumerate(bad)]
    good = ['{"id":"e1","updated_at":"2026-03-01T10:00:00Z"}',
            '{"id":"e2","updated_at":"2026-03-01T11:00:00Z"}']
    server.put("events", raws + good)
    summary = run(server, tmp_path, own_config(limit=2), run_id="r1")["events"]
    ok(summary)
    assert set(rows_by_id(table(tmp_path, "events"))) == {"e1", "e2"}
    for n, raw in enumerate(raws):
        assert_quarantined(tmp_path, "events", f"b{n}", raw, fields=("updated_at",), run_id="r1")
    mark = table_mark(tmp_path, "events")
    assert mark is not None and mark <= micros(utc(2026, 3, 1, 11))
    assert quarantined_count(summary) == 2


def test_found_a_record_read_again_is_counted_once(server: RecordServer, tmp_path: Path) -> None:
    """A tie group larger than a page is read again; its bad record is one record set aside,
    one quarantine row, and the summary counts it once."""
    raws = ['{"id":"e1","updated_at":"2026-03-01T10:00:00Z"}',
            '{"id":"e2","updated_at":"2026-03-01T10:00:00Z","":1}',
            '{"id":"e3","updated_at":"2026-03-01T10:00:00Z"}']
    server.put("events", raws)
    summary = run(server, tmp_path, own_config(limit=2), run_id="r1")["events"]
    ok(summary)
    assert set(rows_by_id(table(tmp_path, "events"))) == {"e1", "e3"}
    assert_quarantined(tmp_path, "events", "e2", raws[1], fields=("",), run_id="r1")
    assert len(quarantine_rows(tmp_path, "events")) == 1
    assert quarantined_count(summary) == 1

"""Property: any records an API may send land exactly, or are set aside naming a field.

Hypothesis generates a resource of arbitrary JSON records (unique string ids; keys of any
unicode including empty, spaces, dots, backticks, case twins, emoji, reserved names; values of
any JSON: integers beyond int64, long decimals, exponent forms, deep and empty objects and
lists, nulls and missing keys, the odd NaN and lone surrogate; ``updated_at`` in every ISO-8601
form and offset, ties between different texts of one instant, instants that leave years
1-9999 once in UTC, sub-microsecond digits). The test writes the raw JSON text itself, serves
it over loopback HTTP (``tests/recordserver.py``), runs ``run_sync`` into a fresh lake, updates
some records (new values, cursor moved forward) and adds others, runs again, and checks after
each run with an independent decoder (``tests/records_support.py``, stdlib json with
``parse_float=Decimal``, never the library's conversion code):

* every served record (its latest version) is in the table with every value as served, or in
  ``<lake>/_quarantine`` with ``field`` naming one of its keys and a reason; records with only
  plain names and valid values must be in the table; records with NaN/Infinity, an instant
  outside years 1-9999 or sub-microsecond digits must be in quarantine;
* in the table: no duplicate ids, no id that was not served; each field's value in its typed
  column or in ``<field>__json`` (the other null), typed exactly (see ``value_problem``); the
  cursor a ``Datetime("us", "UTC")`` equal to the served instant;
* no mark ahead of the data: every served record whose cursor is below the table's mark
  (Delta app transaction, epoch µs) is in the table or in quarantine, and the mark is within
  years 1-9999;
* each run's status is ``ok`` and its ``quarantined`` count is the quarantine rows it added.

Profiles (registered in tests/conftest.py): ``ci`` (default, bounded: about 2 minutes for this
module on a busy 2-core machine) and ``long`` (500 examples per property)::

    HYPOTHESIS_PROFILE=long uv run pytest tests/test_records_property.py -p no:cacheprovider

A failure prints the shrunk records; ``@reproduce_failure`` / ``print_blob`` replay it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.records_support import (
    MAX_US,
    MIN_US,
    T0,
    Constant,
    cursor_micros,
    decode,
    default_config,
    has_lone_surrogate,
    in_delta_range,
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

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
# Each example is two syncs into a fresh lake (about 0.5-1 s on a busy machine).
EXAMPLES = {"ci": 100, "long": 500}.get(PROFILE, 100)
TAME_EXAMPLES = {"ci": 10, "long": 100}.get(PROFILE, 10)
SYNC_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)
RESOURCE = "items"
BOOKKEEPING = ("_synced_at", "_row_hash")


@pytest.fixture
def server() -> Iterator[RecordServer]:
    """One server per test function; each example replaces what it serves."""
    with RecordServer() as running:
        yield running


# ---- raw JSON text --------------------------------------------------------------------------

def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (a biased integer would hit its bound far more often);
    shrinks towards False, so a shrunk failure keeps only the rarities it needs."""
    return st.sampled_from([False] * (n - 1) + [True])


TEXT = st.characters(codec="utf-8")  # any unicode scalar value (no lone surrogates)
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


@st.composite
def json_string(draw: st.DrawFn, *, surrogates: bool = True) -> str:
    """A JSON string literal: raw unicode or \\u escapes; now and then a lone surrogate."""
    text = draw(st.text(TEXT, max_size=8))
    if surrogates and draw(one_in(20)):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(SURROGATE) + text[at:]
    ascii_only = has_lone_surrogate(text) or draw(st.booleans())
    literal = json.dumps(text, ensure_ascii=ascii_only)
    if draw(st.booleans()):
        literal = literal.replace("/", "\\/")  # a valid escape json.dumps never writes
    return literal


@st.composite
def json_number(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["int", "int", "bigint", "decimal", "decimal", "exponent",
                                 "float", "special"]))
    if kind == "int":
        return str(draw(st.integers(-(2**63), 2**63 - 1)))
    if kind == "bigint":
        return str(draw(st.one_of(st.integers(2**63, 10**40), st.integers(-(10**40), -(2**63) - 1),
                                  st.integers(2**53 - 3, 2**53 + 3))))
    sign = draw(st.sampled_from(["", "-"]))
    whole = str(draw(st.integers(0, 10**20)))
    if kind == "decimal":
        digits = draw(st.integers(1, 25))
        fraction = str(draw(st.integers(0, 10**digits - 1))).zfill(digits)
        return f"{sign}{whole}.{fraction}"
    if kind == "exponent":
        mantissa = str(draw(st.integers(0, 99)))
        if draw(st.booleans()):
            mantissa += "." + str(draw(st.integers(0, 999))).zfill(draw(st.integers(1, 3)))
        e = draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+", "-"]))
        return f"{sign}{mantissa}{e}{draw(st.integers(0, 400))}"
    if kind == "float":
        value = draw(st.floats(allow_nan=False, allow_infinity=False))
        return repr(value)  # shortest text reading back as this float: 1e+16, 5e-324, -0.0
    return draw(st.sampled_from(["0", "-0", "0.0", "1e2", "-1.5E-7", "1E+400", "1e-400",
                                 "100.0", "0.1", "12345678901234567.89",
                                 "99.999999999999999999", "9007199254740993"]))


CONSTANTS = st.sampled_from(["NaN", "Infinity", "-Infinity"])


def json_value(*, constants: bool = True) -> st.SearchStrategy[str]:
    scalar = st.one_of(st.just("null"), st.sampled_from(["true", "false"]), json_number(),
                       json_string())
    if constants:  # NaN & co. are rare: one scalar in about thirty
        plain = scalar
        scalar = one_in(30).flatmap(lambda rare: CONSTANTS if rare else plain)

    def containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        lists = st.lists(children, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
        objects = st.dictionaries(st.text(TEXT, max_size=5), children, max_size=4).map(
            lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}")
        return st.one_of(lists, objects)

    nested = st.recursive(scalar, containers, max_leaves=8)
    deep = st.integers(30, 120).map(lambda n: "[" * n + "1" + "]" * n)
    return st.one_of(nested, nested, nested, nested, nested, nested, nested, deep,
                     st.sampled_from(["{}", "[]"]))


# ---- field names ----------------------------------------------------------------------------

SPECIAL_KEYS = ["", " ", "a b", "a.b", "`tick`", '"q"', "Name", "name", "NAME", "ID", "Id",
                "Updated_At", "🙂", "ça", "select", "from", "1st", "_synced_at", "_row_hash",
                "x__json", "x", "tab\t", "semi;colon", "eq=", "(paren)", "a,b", "{b}", "new\nline",
                "\u200b", "ß", "SS"]
PLAIN = re.compile(r"[a-z][a-z0-9_]{0,11}")
KEYS = st.one_of(st.sampled_from(SPECIAL_KEYS), st.text(TEXT, max_size=6),
                 st.from_regex(PLAIN, fullmatch=True)).filter(lambda k: k not in ("id", "updated_at"))


# ---- cursors --------------------------------------------------------------------------------

BASE_US = cursor_micros(T0)
assert BASE_US is not None
DAY_US = 86_400 * 10**6


@dataclass(frozen=True)
class Cursor:
    text: str
    strict: bool  # RFC 3339 with at most 6 fraction digits: must be accepted when in range


def _civil(micros: int) -> tuple[int, int, int, int, int, int, int]:
    """Epoch µs to a proleptic Gregorian date and time, for any year (no datetime limits)."""
    days, rest = divmod(micros, DAY_US)
    # days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += m <= 2
    seconds, us = divmod(rest, 10**6)
    return y, m, d, seconds // 3600, seconds // 60 % 60, seconds % 60, us


@st.composite
def cursor_text(draw: st.DrawFn, micros: int, *, wild: bool = True) -> Cursor:
    """One of the many ISO-8601 texts of the instant ``micros`` (sub-µs digits added rarely)."""
    strict = True
    minute = 60 * 10**6
    if micros > MAX_US:  # year 10000 in UTC: written with a negative offset, in year 9999
        offset_min = draw(st.integers(-18 * 60, (MAX_US - micros) // minute))
    elif micros < MIN_US:  # year 0 in UTC: written with a positive offset, in year 1
        offset_min = draw(st.integers(-((micros - MIN_US) // minute), 18 * 60))
    elif wild:
        offset_min = draw(st.one_of(st.just(0), st.sampled_from([330, -480, 840, -720, 60, -300]),
                                    st.integers(-18 * 60, 18 * 60)))
    else:
        offset_min = 0
    y, mo, d, h, mi, s, us = _civil(micros + offset_min * 60 * 10**6)
    if not 1 <= y <= 9999:  # the local time has no four-digit year: write the UTC text
        offset_min = 0
        y, mo, d, h, mi, s, us = _civil(micros)
    assert 1 <= y <= 9999, micros
    fraction = f"{us:06d}"
    if wild:
        digits = draw(st.integers(0, 6))
        while digits < 6 and fraction[digits:].strip("0"):
            digits += 1
        fraction = fraction[:digits]
        if draw(one_in(25)):  # nanoseconds: not a microsecond timestamp
            fraction = fraction.ljust(6, "0") + str(draw(st.integers(1, 999))).zfill(3)
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}" + (f".{fraction}" if fraction else "")
    if offset_min == 0 and (not wild or draw(st.booleans())):
        zone = "Z"
    else:
        sign = "-" if offset_min < 0 or (offset_min == 0 and draw(st.booleans())) else "+"
        zone = f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    if wild and draw(one_in(15)):  # valid ISO-8601 but not RFC 3339's usual form
        variant = draw(st.sampled_from(["lower_z", "no_colon", "comma", "lower_t"]))
        if variant == "lower_z" and zone == "Z":
            zone, strict = "z", False
        elif variant == "no_colon" and zone != "Z":
            zone, strict = zone.replace(":", ""), False
        elif variant == "comma" and fraction:
            text, strict = text.replace(".", ","), False
        elif variant == "lower_t":
            text, strict = text.replace("T", "t"), False
    return Cursor(text + zone, strict)


EXTREMES = [
    MIN_US, MIN_US + 3_600 * 10**6, MAX_US,
    MIN_US - 3_600 * 10**6,  # 0001-01-01T00:00:00+01:00: year 0 in UTC
    MAX_US + 3_600 * 10**6 + 1,  # 9999-12-31T23:00:00-05:00 and the like: year 10000 in UTC
]


def instants(pool: list[int]) -> st.SearchStrategy[int]:
    """Shared instants (ties written as different texts), any nearby one, now and then one at
    or beyond the edge of years 1-9999."""
    return st.one_of(st.sampled_from(pool), st.integers(BASE_US - DAY_US, BASE_US + DAY_US),
                     one_in(10).flatmap(
                         lambda rare: st.sampled_from(EXTREMES) if rare else st.just(BASE_US)))


# ---- records --------------------------------------------------------------------------------

@dataclass
class Record:
    id: str
    cursor: Cursor
    fields: dict[str, str]  # name -> raw JSON text of the value
    raw: str = field(init=False)

    def __post_init__(self) -> None:
        self.raw = render(self.id, self.cursor.text, self.fields)


def render(id_: str, cursor: str, fields: dict[str, str]) -> str:
    parts = [f'"id":{json.dumps(id_)}', f'"updated_at":{json.dumps(cursor)}']
    parts += [f"{json.dumps(k)}:{v}" for k, v in fields.items()]
    return "{" + ",".join(parts) + "}"


@st.composite
def record_fields(draw: st.DrawFn, names: list[str], values: st.SearchStrategy[str]
                  ) -> dict[str, str]:
    chosen = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)) if names else []
    return {name: draw(values) for name in chosen}


@dataclass
class Scenario:
    first: list[Record]
    second: list[Record]


@st.composite
def scenarios(draw: st.DrawFn, *, wild: bool = True) -> Scenario:
    ids = draw(st.lists(st.text(TEXT, min_size=1, max_size=6), min_size=1, max_size=8,
                        unique=True))
    names = draw(st.lists(KEYS if wild else st.from_regex(PLAIN, fullmatch=True),
                          max_size=6, unique=True))
    values = json_value() if wild else st.one_of(
        st.just("null"), st.sampled_from(["true", "false"]),
        st.integers(-(2**63), 2**63 - 1).map(str),
        st.text(TEXT, max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)))
    pool = draw(st.lists(st.integers(BASE_US - DAY_US, BASE_US + DAY_US), min_size=1, max_size=3))
    moments = instants(pool) if wild else st.sampled_from(pool)
    first = [Record(i, draw(cursor_text(draw(moments), wild=wild)),
                    draw(record_fields(names, values))) for i in ids]
    # Run 2: some records change (their cursor moves past every cursor seen so far, as the
    # contract says), some are new, the rest are served again unchanged.
    seen = [m for r in first if (m := cursor_micros(r.cursor.text)) is not None and in_delta_range(m)]
    after = max([*seen, BASE_US])
    # (an instant past year 9999 must stay writable as year 9999 with an offset of -18:00)
    later = st.integers(after + 1, min(after + DAY_US, MAX_US + 17 * 3_600 * 10**6))
    later_names = draw(st.lists(KEYS if wild else st.from_regex(PLAIN, fullmatch=True),
                                max_size=3, unique=True))
    changed = draw(st.sets(st.sampled_from(ids), max_size=len(ids)))
    second = []
    for record in first:
        if record.id in changed:
            second.append(Record(record.id, draw(cursor_text(draw(later), wild=wild)),
                                 draw(record_fields(names + later_names, values))))
        else:
            second.append(record)
    new_ids = draw(st.lists(st.text(TEXT, min_size=1, max_size=6), max_size=3, unique=True)
                   .map(lambda xs: [x for x in xs if x not in ids]))
    second += [Record(i, draw(cursor_text(draw(later), wild=wild)),
                      draw(record_fields(names + later_names, values))) for i in new_ids]
    return Scenario(first, second)


# ---- what a record must, may or must not become ----------------------------------------------

def has_constant(value: Any) -> bool:
    if isinstance(value, Constant):
        return True
    if isinstance(value, dict):
        return any(has_constant(v) for v in value.values())
    if isinstance(value, list):
        return any(has_constant(v) for v in value)
    return False


def must_quarantine(record: Record) -> str | None:
    """Why this record can never land as served (None: it may)."""
    micros = cursor_micros(record.cursor.text)
    if micros is None:
        return "cursor with sub-microsecond digits"
    if not in_delta_range(micros):
        return "cursor outside years 1-9999 in UTC"
    if has_constant(decode(record.raw)):
        return "NaN/Infinity is not JSON"
    return None


def must_land(record: Record, all_names: set[str]) -> bool:
    """Plain names, no case twin anywhere in the resource, valid values and cursor."""
    if must_quarantine(record) or not record.cursor.strict or has_lone_surrogate(decode(record.raw)):
        return False
    for name in record.fields:
        if not PLAIN.fullmatch(name) or name.endswith("__json"):
            return False
        if any(o != name and o.casefold() == name.casefold() for o in all_names):
            return False
    return True


# ---- the check ------------------------------------------------------------------------------

def check_lake(lake: Path, resource: str, served: list[Record], *, run_id: str, summary: Any,
               all_names: set[str], timestamps: frozenset[str] = frozenset(),
               tame: bool = False) -> None:
    assert getattr(summary, "status", None) == "ok", getattr(summary, "error", summary)
    latest = {r.id: r for r in served}  # served lists hold one version per id
    frame = table(lake, resource) if table_exists(lake, resource) else None
    rows = rows_by_id(frame) if frame is not None else {}
    assert set(rows) <= set(latest), f"ids never served: {set(rows) - set(latest)}"
    quarantined = quarantine_rows(lake, resource)
    added = [q for q in quarantined if q["run_id"] == run_id]
    columns = frame.columns if frame is not None else []
    column_fields = {c.removesuffix("__json") for c in columns} - {"id", *BOOKKEEPING}

    for record in latest.values():
        value = decode(record.raw)
        keys = set(value)
        aside = [q for q in quarantined if q["key"] == record.id and q["record"] is not None
                 and same_json(decode(q["record"]), value)]
        why = must_quarantine(record)
        if aside:
            q = aside[-1]
            assert q["reason"], q
            named = q["field"]
            assert named is not None and (named in keys or any(k and k in named for k in keys)), \
                f"quarantine of {record.id!r} names {named!r}, not one of its keys {sorted(keys)}"
            assert not must_land(record, all_names), \
                f"{record.id!r} has plain names and valid values, yet was set aside: {q['reason']}"
            continue
        assert why is None, f"{record.id!r} ({why}) is not in quarantine:\n{record.raw}"
        assert record.id in rows, f"{record.id!r} is neither in the table nor in quarantine:\n{record.raw}"
        row = rows[record.id]
        assert frame is not None
        problem = value_problem(row, frame.schema, "updated_at", value["updated_at"], cursor=True)
        assert problem is None, f"{record.id!r}: {problem}\n{record.raw}"
        for name in (keys | column_fields) - {"id", "updated_at"}:
            problem = value_problem(row, frame.schema, name, value.get(name),
                                    cursor=name in timestamps)
            assert problem is None, f"{record.id!r}: {problem}\n{record.raw}"

    mark = table_mark(lake, resource)
    if mark is not None:
        assert MIN_US <= mark <= MAX_US, f"mark {mark} outside years 1-9999"
        for record in latest.values():
            micros = cursor_micros(record.cursor.text)
            if micros is not None and micros < mark:
                assert record.id in rows or any(q["key"] == record.id for q in quarantined), \
                    f"mark {mark} is ahead of {record.id!r} (cursor {record.cursor.text})"

    count = getattr(summary, "quarantined", None if tame else "no ResourceSummary.quarantined")
    if count is None:  # the tame harness check also runs on code without a quarantine
        count = 0
    assert count == len(added), f"summary counts {count} quarantined, the table got {len(added)}"


def sync_twice(server: RecordServer, root: Path, scenario: Scenario, config: dict[str, Any],
               resource: str = RESOURCE, timestamps: frozenset[str] = frozenset(),
               tame: bool = False) -> None:
    all_names = {n for r in scenario.first + scenario.second for n in r.fields}
    with tempfile.TemporaryDirectory(dir=root) as directory:
        lake = Path(directory)
        for n, records in enumerate((scenario.first, scenario.second), start=1):
            note(f"run {n} serves:\n" + "\n".join(r.raw for r in records))
            server.put(resource, [r.raw for r in records])
            summary = run(server, lake, config, resources=[resource], run_id=f"run-{n}")[resource]
            check_lake(lake, resource, records, run_id=f"run-{n}", summary=summary,
                       all_names=all_names, timestamps=timestamps, tame=tame)


@SYNC_SETTINGS
@given(scenario=scenarios())
def test_any_records_land_exactly_or_are_set_aside_naming_a_field(
        server: RecordServer, tmp_path: Path, scenario: Scenario) -> None:
    sync_twice(server, tmp_path, scenario, own_config(RESOURCE, limit=3))


TAGS_DOCUMENTED = {"name", "color", "created_at"}


@settings(SYNC_SETTINGS, max_examples=TAME_EXAMPLES)
@given(scenario=scenarios(wild=False))
def test_tame_records_round_trip_on_a_documented_resource(
        server: RecordServer, tmp_path: Path, scenario: Scenario) -> None:
    """The harness itself, on inputs today's code already handles: plain names, strings,
    int64s, booleans, canonical UTC cursors, on the contract's ``tags`` (default config)."""

    def tag(record: Record) -> Record:
        fields = {k: v for k, v in record.fields.items() if k not in TAGS_DOCUMENTED}
        return Record(record.id, record.cursor, {"name": json.dumps(f"tag {record.id}"),
                                                 "created_at": json.dumps(T0), **fields})

    tame = Scenario([tag(r) for r in scenario.first], [tag(r) for r in scenario.second])
    sync_twice(server, tmp_path, tame, default_config(), "tags", frozenset({"created_at"}),
               tame=True)

"""The sandbox's data world: deterministic records, their ground truth, and a clock that moves.

Everything an extraction can meet under the contract is generated here on purpose:
timestamp ties larger than a page, nulls written and nulls left out, amounts in
every JSON number form, 64-bit integers, unicode, lists that shrink, objects whose
keys vary, undocumented fields whose type varies, and fields that appear later.
"""

from __future__ import annotations

import bisect
import collections
import json
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from .profiles import PROFILES, enrich, evolve

__all__ = [
    "BASE_TIME",
    "DEFAULT_COUNTS",
    "RESOURCES",
    "AdvanceResult",
    "Page",
    "RawNumber",
    "Sort",
    "World",
    "format_timestamp",
    "parse_timestamp",
]

Record = dict[str, Any]
Sort = Literal["id", "updated_at", "-updated_at"]
Counts = Mapping[str, int]
# {resource: {"updated": [ids], "created": [ids], "deleted": [ids]}}
AdvanceResult = dict[str, dict[str, list[str]]]

RESOURCES: Final = ("tags", "users", "deals", "pages", "tasks")
# 27,250 records: 2,725 pages at the default page size of 10.
DEFAULT_COUNTS: Final[Mapping[str, int]] = MappingProxyType(
    {"tags": 250, "users": 2000, "deals": 10000, "pages": 5000, "tasks": 10000}
)
BASE_TIME: Final = datetime(2026, 1, 1, tzinfo=UTC)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_BASE_US: Final = (BASE_TIME - _EPOCH) // _US
_SECOND: Final = 1_000_000
# The initial history: records are created and changed over the 90 days after BASE_TIME.
_HISTORY_US: Final = 90 * 86_400 * _SECOND
# The contract's replica lag: a change can become visible up to 5 s after its updated_at.
_LATE_US: Final = 5 * _SECOND
_INT64_MAX: Final = 2**63 - 1
_PREFIX: Final = {"tags": "tag", "users": "user", "deals": "deal", "pages": "page", "tasks": "task"}
_ID_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"


class RawNumber(str):
    """A JSON number token served verbatim.

    ``json.dumps`` writes ``100.0`` for a float; the contract allows ``1e2`` too, so the
    world keeps such amounts as their token and splices it into the bytes it serves.
    """


class Page(NamedTuple):
    """One page of a query: the serialized records and the size of the whole result set."""

    records: list[bytes]
    total_count: int


def format_timestamp(micros: int) -> str:
    """Write microseconds since the epoch the way the API does: ``2026-03-01T10:00:00.123456Z``."""
    return (_EPOCH + micros * _US).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> int:
    """Read an ISO-8601 timestamp into microseconds since the epoch; naive means UTC.

    Raises ValueError when the text is not a timestamp.
    """
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def _encode(value: Any) -> str:
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dumps(k)}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return _dumps(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _serialize(record: Record) -> bytes:
    # The C encoder is ~10x faster; only records holding a raw token need the slow path.
    if any(isinstance(v, RawNumber) for v in record.values()):
        return _encode(record).encode()
    return _dumps(record).encode()


@dataclass(slots=True)
class _Row:
    record: Record
    created_us: int
    updated_us: int
    raw: bytes | None = None

    def bytes(self) -> bytes:
        if self.raw is None:
            self.raw = _serialize(self.record)
        return self.raw


class _Table:
    """One resource's rows plus the sorted views a query needs, rebuilt lazily after a change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: dict[str, _Row] = {}
        # Every id ever deleted from this table: gone from every view, never issued again.
        self.deleted: set[str] = set()
        self._by_id: list[_Row] | None = None
        self._by_updated: tuple[list[int], list[_Row]] | None = None
        self._by_updated_desc: tuple[list[int], list[_Row]] | None = None
        self._id_filtered: dict[int, list[_Row]] = {}
        self._by_field: dict[str, dict[object, list[_Row]]] = {}

    def changed(self) -> None:
        self._by_id = None
        self._by_updated = None
        self._by_updated_desc = None
        self._id_filtered.clear()
        self._by_field.clear()

    def where(self, field: str, value: object) -> list[_Row]:
        """The rows whose ``field`` equals ``value``, by id (an index kept until a change)."""
        index = self._by_field.get(field)
        if index is None:
            index = self._by_field[field] = {}
            for row in self.by_id():
                index.setdefault(row.record.get(field), []).append(row)
        return index.get(value, [])

    def delete(self, ids: Iterable[str]) -> None:
        """Remove rows for good; the caller checked that they exist and calls ``changed``."""
        for rid in ids:
            self.rows.pop(rid)
            self.deleted.add(rid)

    def by_id(self) -> list[_Row]:
        if self._by_id is None:
            self._by_id = [self.rows[i] for i in sorted(self.rows)]
        return self._by_id

    def by_updated(self) -> tuple[list[int], list[_Row]]:
        if self._by_updated is None:
            rows = sorted(self.by_id(), key=lambda r: r.updated_us)  # stable: ties stay by id
            self._by_updated = ([r.updated_us for r in rows], rows)
        return self._by_updated

    def by_updated_desc(self) -> tuple[list[int], list[_Row]]:
        if self._by_updated_desc is None:
            rows = sorted(self.by_id(), key=lambda r: -r.updated_us)  # ties by id ascending
            self._by_updated_desc = ([-r.updated_us for r in rows], rows)
        return self._by_updated_desc

    def view(self, sort: Sort, gte_us: int | None) -> tuple[list[_Row], int, int]:
        """The rows in ``sort`` order and the slice [lo, hi) of them that pass the filter."""
        if sort == "updated_at":
            keys, rows = self.by_updated()
            lo = 0 if gte_us is None else bisect.bisect_left(keys, gte_us)
            return rows, lo, len(rows)
        if sort == "-updated_at":
            keys, rows = self.by_updated_desc()
            hi = len(rows) if gte_us is None else bisect.bisect_right(keys, -gte_us)
            return rows, 0, hi
        rows = self.by_id()
        if gte_us is None:
            return rows, 0, len(rows)
        # An incremental extraction asks the same filter for every page: keep the result.
        filtered = self._id_filtered.get(gte_us)
        if filtered is None:
            if len(self._id_filtered) > 16:
                self._id_filtered.clear()
            filtered = [r for r in rows if r.updated_us >= gte_us]
            self._id_filtered[gte_us] = filtered
        return filtered, 0, len(filtered)


SortKey = tuple[int, str] | tuple[str]


def _sort_key(sort: Sort) -> Callable[[_Row], SortKey]:
    """A row's position in ``sort`` order: ties by id ascending, as the contract says."""
    if sort == "updated_at":
        return lambda row: (row.updated_us, row.record["id"])
    if sort == "-updated_at":
        return lambda row: (-row.updated_us, row.record["id"])
    return lambda row: (row.record["id"],)


class World:
    """Every record the sandbox serves, generated from ``seed`` and changed only by ``advance``.

    Thread-safe: the server reads while admin calls and mutate mode write.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        counts: Counts | None = None,
        scale: float = 1.0,
        profile: str = "default",
    ) -> None:
        """``profile``: how rich the records are (``profiles.py``: ``default`` or ``rich``)."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose from {PROFILES}")
        self.profile = profile
        unknown = set(counts or {}) - set(RESOURCES)
        if unknown:
            raise ValueError(f"unknown resources in counts: {sorted(unknown)}; known: {RESOURCES}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        base = {**DEFAULT_COUNTS, **(counts or {})}
        self.seed = seed
        self.counts: dict[str, int] = {r: max(0, round(base[r] * scale)) for r in RESOURCES}
        self._lock = threading.RLock()
        self._tables = {r: _Table(r) for r in RESOURCES}
        self._ids: set[str] = set()
        self._advances = 0
        self.version = 0
        self._clock_us = _BASE_US + _HISTORY_US
        self._generate(random.Random(seed))

    # -- reading -------------------------------------------------------------------------

    @property
    def clock(self) -> str:
        """The world's current time: every ``updated_at`` so far is at or before it."""
        return format_timestamp(self._clock_us)

    @property
    def clock_us(self) -> int:
        """``clock`` in microseconds since the epoch: the time the API's ``Date`` header shows
        (its answers are dated on the clock that stamps its records, as a real API's are)."""
        return self._clock_us

    def count(self, resource: str) -> int:
        """How many records ``resource`` holds now."""
        return len(self._table(resource).rows)

    def page(
        self,
        resource: str,
        *,
        number: int = 1,
        size: int = 10,
        sort: Sort = "id",
        updated_gte: int | None = None,
    ) -> Page:
        """One page of a query, as serialized record bytes; ``updated_gte`` is in microseconds."""
        with self._lock:
            rows, lo, hi = self._table(resource).view(sort, updated_gte)
            start = lo + (number - 1) * size
            end = min(start + size, hi)
            return Page([row.bytes() for row in rows[start:end]], hi - lo)

    def page_at(self, resource: str, *, offset: int, size: int = 10, sort: Sort = "id",
                updated_gte: int | None = None) -> Page:
        """The ``size`` records from position ``offset`` (0-based) of a query."""
        with self._lock:
            rows, lo, hi = self._table(resource).view(sort, updated_gte)
            start = lo + offset
            return Page([row.bytes() for row in rows[start:min(start + size, hi)]], hi - lo)

    def page_after(self, resource: str, *, after: SortKey | None, size: int = 10,
                   sort: Sort = "id", updated_gte: int | None = None,
                   ) -> tuple[Page, SortKey | None]:
        """The ``size`` records strictly after ``after`` in ``sort`` order (a server-side
        keyset), and the key of the last one when more follow it (the next cursor), else None.
        """
        with self._lock:
            rows, lo, hi = self._table(resource).view(sort, updated_gte)
            key = _sort_key(sort)
            start = lo if after is None else bisect.bisect_right(rows, after, lo, hi, key=key)
            end = min(start + size, hi)
            page = Page([row.bytes() for row in rows[start:end]], hi - lo)
            return page, (key(rows[end - 1]) if start < end < hi else None)

    def children(self, resource: str, field: str, value: str, *, number: int = 1,
                 size: int = 10) -> Page:
        """Page ``number`` of the records of ``resource`` whose ``field`` is ``value``, by id
        (``/v1/deals/{deal_id}/tasks``: the tasks whose ``deal_id`` is that deal)."""
        with self._lock:
            rows = self._table(resource).where(field, value)
            start = (number - 1) * size
            return Page([row.bytes() for row in rows[start:start + size]], len(rows))

    def exists(self, resource: str, record_id: str) -> bool:
        """Whether ``record_id`` is a record of ``resource`` now (a deleted one is not)."""
        with self._lock:
            return record_id in self._table(resource).rows

    def deleted(self, resource: str) -> list[str]:
        """Every id of ``resource`` deleted so far, sorted: the ground truth of what is gone."""
        with self._lock:
            return sorted(self._table(resource).deleted)

    def truth(self, resource: str) -> list[Record]:
        """The records of ``resource`` exactly as the API serves them (same omitted keys), by id."""
        records: list[Record] = json.loads(self.truth_bytes(resource))
        return records

    def truth_bytes(self, resource: str) -> bytes:
        """``truth`` as the JSON array the API's bytes make, number tokens untouched."""
        with self._lock:
            return b"[" + b",".join(row.bytes() for row in self._table(resource).by_id()) + b"]"

    # -- changing ------------------------------------------------------------------------

    def advance(
        self,
        updates: int | Counts = 0,
        creates: int | Counts = 0,
        deletes: int | Counts = 0,
        *,
        resources: Iterable[str] | None = None,
        seed: int | str | None = None,
        late_visibility: bool = True,
    ) -> AdvanceResult:
        """Move the clock forward, delete, update and create records; return the ids touched.

        ``updates``, ``creates`` and ``deletes`` count per resource (an int applies to each of
        ``resources``, default all). Deletes come first and pick among the records there are
        (at most all of them), so the ids deleted, updated and created are disjoint; a deleted
        record leaves every listing, count and child listing and its id is never issued again
        (the contract: no tombstone). With ``late_visibility`` some changes are stamped up
        to 5 s before the clock stood when the advance began (the time the answers before it
        were dated), as the contract allows: a change becomes visible at most 5 s after the
        ``updated_at`` it carries, on the clock the ``Date`` header shows. (Stamped before the
        newest ``updated_at`` instead, a change could show up long after its stamp when the
        clock had moved on from that record: beyond the contract.)
        Without ``seed`` the n-th advance of a world is the same every run.
        """
        chosen = tuple(resources) if resources is not None else RESOURCES
        named = [*chosen]
        for per_resource in (updates, creates, deletes):
            if isinstance(per_resource, Mapping):
                named += per_resource
            numbers = per_resource.values() if isinstance(per_resource, Mapping) else [per_resource]
            if any(n < 0 for n in numbers):
                raise ValueError(f"counts must be >= 0, got {per_resource!r}")
        for name in named:
            self._table(name)
        with self._lock:
            self._advances += 1
            rng = random.Random(
                f"{self.seed}:advance:{self._advances}" if seed is None else f"advance:{seed}"
            )
            start = self._clock_us
            self._clock_us += rng.randrange(1, 30 * _SECOND)
            result: AdvanceResult = {}
            for name in chosen:
                n_up = updates.get(name, 0) if isinstance(updates, Mapping) else updates
                n_cr = creates.get(name, 0) if isinstance(creates, Mapping) else creates
                n_del = deletes.get(name, 0) if isinstance(deletes, Mapping) else deletes
                if n_up or n_cr or n_del:
                    result[name] = self._advance_table(
                        self._tables[name], rng, start, n_up, n_cr, n_del, late_visibility
                    )
            self.version += 1
            return result

    def delete(self, resource: str, ids: Iterable[str]) -> list[str]:
        """Delete these records of ``resource`` now (a test's chosen record: one in the middle
        of a tie group, a parent); return their ids. The clock does not move.

        All or nothing: an id that is no record of ``resource`` (never was, or already deleted)
        is a KeyError naming it, and a repeated id a ValueError; then nothing is deleted.
        """
        if isinstance(ids, str):
            raise TypeError("ids is a list of ids, not one string")
        wanted = list(ids)
        repeated = sorted(rid for rid, n in collections.Counter(wanted).items() if n > 1)
        if repeated:
            raise ValueError(f"ids repeated: {repeated}")
        with self._lock:
            table = self._table(resource)
            gone = [rid for rid in wanted if rid in table.deleted]
            unknown = [rid for rid in wanted if rid not in table.rows and rid not in table.deleted]
            if gone or unknown:
                raise KeyError(f"no {resource} records {gone + unknown}: "
                               f"already deleted {gone}, never existed {unknown}")
            self._delete_rows(table, wanted)
            self.version += 1
            return wanted

    def _delete_rows(self, table: _Table, ids: list[str]) -> None:
        table.delete(ids)
        self._id_pool.pop(table.name, None)  # new records must not point at a deleted one
        table.changed()

    def _advance_table(
        self, table: _Table, rng: random.Random, start: int, n_up: int, n_cr: int, n_del: int,
        late: bool,
    ) -> dict[str, list[str]]:
        deleted: list[str] = []
        if n_del:
            deleted = rng.sample(list(table.rows), min(n_del, len(table.rows)))
            self._delete_rows(table, deleted)
        end = self._clock_us

        def stamp() -> int:
            if late and rng.random() < 0.2:
                return start - rng.randrange(0, _LATE_US)
            return rng.randrange(start + 1, end + 1)

        chosen = rng.sample(list(table.rows), min(n_up, len(table.rows)))
        stamps = [stamp() for _ in chosen]
        if len(chosen) >= 25:
            # A bulk change: one stamp for more records than fit on a page.
            size = min(len(chosen), rng.randint(25, 60))
            shared = rng.randrange(start + 1, end + 1)
            stamps[:size] = [shared] * size
        elif len(chosen) >= 3:
            stamps[1] = stamps[0]
        for rid, when in zip(chosen, stamps, strict=True):
            row = table.rows[rid]
            when = max(when, row.updated_us + 1)
            _EVOLVE[table.name](self, rng, row.record, when, True)
            evolve(self.profile, self.seed, table.name, row.record, when)
            self._stamp(row, when)
        created = []
        for _ in range(n_cr):
            when = stamp()
            row = self._new_row(table, rng, when, when, evolved=True)
            created.append(row.record["id"])
        table.changed()
        return {"updated": chosen, "created": created, "deleted": deleted}

    # -- generation ----------------------------------------------------------------------

    def _table(self, resource: str) -> _Table:
        try:
            return self._tables[resource]
        except KeyError:
            raise KeyError(f"unknown resource {resource!r}; known: {RESOURCES}") from None

    def _stamp(self, row: _Row, when: int) -> None:
        row.updated_us = when
        row.record["updated_at"] = format_timestamp(when)
        row.raw = None

    def _new_id(self, rng: random.Random, resource: str) -> str:
        # ``_ids`` holds every id ever issued, deleted ones too: the contract never reuses one.
        deleted = self._tables[resource].deleted
        while True:
            rid = _PREFIX[resource] + "_" + "".join(rng.choices(_ID_ALPHABET, k=12))
            if rid not in self._ids and rid not in deleted:
                self._ids.add(rid)
                return rid

    def _new_row(
        self, table: _Table, rng: random.Random, created: int, updated: int, *, evolved: bool
    ) -> _Row:
        record: Record = {"id": self._new_id(rng, table.name)}
        _MAKE[table.name](self, rng, record, created, evolved)
        enrich(self.profile, self.seed, table.name, record)
        record["created_at"] = format_timestamp(created)
        record["updated_at"] = format_timestamp(updated)
        row = _Row(record, created, updated)
        table.rows[record["id"]] = row
        return row

    def _random_id(self, rng: random.Random, resource: str) -> str | None:
        ids = self._id_pool.get(resource)
        if ids is None or len(ids) != len(self._tables[resource].rows):
            ids = self._id_pool[resource] = list(self._tables[resource].rows)
        return rng.choice(ids) if ids else None

    def _generate(self, rng: random.Random) -> None:
        self._id_pool: dict[str, list[str]] = {}
        history_end = _BASE_US + _HISTORY_US
        for name in RESOURCES:  # dependencies first: deals point at users and tags
            table = self._tables[name]
            for _ in range(self.counts[name]):
                created = _BASE_US + rng.randrange(_HISTORY_US)
                updated = created
                if rng.random() < 0.65:
                    updated = rng.randrange(created, history_end)
                self._new_row(table, rng, created, updated, evolved=False)
            self._bulk_changes(table, rng)
            _SHOWCASE[name](table, rng)
            table.changed()

    def _bulk_changes(self, table: _Table, rng: random.Random) -> None:
        # Several bulk changes, each stamping 25-60 records alike: more than a page holds.
        rows = list(table.rows.values())
        if len(rows) < 2:
            return
        for _ in range(1 + len(rows) // 2000):
            when = _BASE_US + rng.randrange(_HISTORY_US // 2, _HISTORY_US)
            candidates = [r for r in rows if r.updated_us < when]
            size = min(rng.randint(25, 60), len(rows) // 2, len(candidates))
            for row in rng.sample(candidates, size):
                _EVOLVE[table.name](self, rng, row.record, when, False)
                self._stamp(row, when)


# -- per-resource record makers -------------------------------------------------------------

_UNICODE_NAMES: Final = (
    "Café Zürich",
    "東京オフィス",
    "深圳合作伙伴",
    "🚀 Launch",
    "Team 👩‍💻 Berlin",
    "صفقة الرياض",
    "עסקה בתל אביב",
    "Ελληνική συμφωνία",
    "Москва сделка",
    "한국 거래",
    "naïve façade",
    "Zoë O'Brien",
    'Quote "and" \\backslash',
    "tab\tand newline\nname",
    "Ünïcödé ß ø å",
)
_WORDS: Final = (
    "alpha", "bright", "cedar", "delta", "ember", "falcon", "granite", "harbor",
    "indigo", "juniper", "kestrel", "lumen", "maple", "nimbus", "orbit", "pioneer",
)  # fmt: skip
_STAGES: Final = ("lead", "qualified", "proposal", "negotiation", "won", "lost")
_CURRENCIES: Final = ("USD", "EUR", "GBP", "JPY", "CHF", "BRL")
_ROLES: Final = ("admin", "member", "viewer")
_STATUSES: Final = ("open", "in_progress", "done")
_CUSTOM_KEYS: Final = (
    "region", "score", "vip", "notes", "source", "tier", "employees", "renewal", "history",
)  # fmt: skip
_AMOUNT_SHOWCASE: Final = (
    100,
    RawNumber("1e2"),
    RawNumber("-2.5E+3"),
    RawNumber("1234e-2"),
    RawNumber("7.5e6"),
    9999999999999.99,
    -9999999999999.99,
    9999999999999,
    -0.01,
    100.0,
)


def _put(rng: random.Random, record: Record, key: str, value: Any, omit: float = 0.4) -> None:
    """Set ``key``; a null is sometimes left out instead, which the contract says is the same."""
    if value is None and rng.random() < omit:
        record.pop(key, None)
    else:
        record[key] = value


def _maybe(rng: random.Random, value: Any, null: float = 0.15) -> Any:
    return None if rng.random() < null else value


def _name(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"{rng.choice(_UNICODE_NAMES)} {rng.randrange(1000)}"
    return f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)} {rng.randrange(10000)}"


def _time_between(rng: random.Random, lo: int, hi: int) -> str:
    return format_timestamp(rng.randrange(lo, max(hi, lo + 1)))


def _amount(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.25:
        return rng.randrange(-1000, 1_000_000)
    if r < 0.55:
        return round(rng.uniform(-5_000, 1_000_000), 2)
    if r < 0.70:
        sign = "-" if rng.random() < 0.2 else ""
        letter = rng.choice("eE")
        if rng.random() < 0.5:
            exp = rng.randint(-2, 6)
            plus = "+" if exp >= 0 and rng.random() < 0.3 else ""
            return RawNumber(f"{sign}{rng.randrange(1, 100_000)}{letter}{plus}{exp}")
        return RawNumber(f"{sign}{rng.randrange(100, 1000) / 100:.2f}{letter}{rng.randint(2, 6)}")
    if r < 0.73:
        return rng.choice(
            (9999999999999.99, -9999999999999.99, 9_999_999_999_999, 1234567890123.45)
        )
    if r < 0.85:
        return round(-rng.uniform(0.01, 5_000), 2)
    return float(rng.randrange(1, 10_000))


def _probability(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.35:
        return rng.randint(0, 100)
    if r < 0.7:
        return round(rng.random(), 2)
    if r < 0.9:
        return rng.choice(("high", "medium", "low"))
    return None


def _custom_value(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(_WORDS)
    if kind == 1:
        return rng.randrange(-100, 100_000)
    if kind == 2:
        return round(rng.uniform(0, 100), 3)
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return None
    if kind == 5:
        return [rng.randrange(10), rng.choice(_WORDS), [rng.random() < 0.5, None]]
    return {"nested": rng.choice(_WORDS), "level": rng.randrange(3)}


def _custom_fields(rng: random.Random) -> dict[str, Any] | None:
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.2:
        return {}
    keys = rng.sample(_CUSTOM_KEYS, rng.randint(1, 4))
    return {key: _custom_value(rng) for key in keys}


def _tag_ids(world: World, rng: random.Random) -> list[str] | None:
    if rng.random() < 0.05:
        return None
    if rng.random() < 0.3:
        return []
    ids = {world._random_id(rng, "tags") for _ in range(rng.randint(1, 4))}
    return sorted(i for i in ids if i is not None)


_Maker = Callable[[World, random.Random, Record, int, bool], None]


def _make_tag(world: World, rng: random.Random, rec: Record, created: int, evolved: bool) -> None:
    rec["name"] = _name(rng)
    _put(rng, rec, "color", _maybe(rng, f"#{rng.randrange(0x1000000):06x}", 0.25))


def _make_user(world: World, rng: random.Random, rec: Record, created: int, evolved: bool) -> None:
    rec["name"] = _name(rng)
    rec["email"] = f"{rng.choice(_WORDS)}.{rng.randrange(10**6)}@example.com"
    _put(rng, rec, "role", _maybe(rng, rng.choice(_ROLES)))
    rec["active"] = rng.random() < 0.8
    _put(rng, rec, "last_login_at", _maybe(rng, _time_between(rng, created, world._clock_us), 0.3))
    if rng.random() < 0.4:
        # Undocumented 64-bit integer: a float-parsing client loses its last digits.
        rec["external_id"] = rng.randrange(2**53, _INT64_MAX)


def _make_deal(world: World, rng: random.Random, rec: Record, created: int, evolved: bool) -> None:
    rec["name"] = _name(rng)
    _put(rng, rec, "amount", _maybe(rng, _amount(rng), 0.1))
    _put(rng, rec, "currency", _maybe(rng, rng.choice(_CURRENCIES)))
    stage = _maybe(rng, rng.choice(_STAGES))
    _put(rng, rec, "stage", stage)
    _put(rng, rec, "owner_id", _maybe(rng, world._random_id(rng, "users"), 0.1))
    _put(rng, rec, "tag_ids", _tag_ids(world, rng))
    _put(rng, rec, "custom_fields", _custom_fields(rng))
    closed = _time_between(rng, created, world._clock_us) if stage in ("won", "lost") else None
    _put(rng, rec, "closed_at", closed)
    if rng.random() < 0.7:
        rec["probability"] = _probability(rng)
    if rng.random() < 0.3:
        rec["legacy_id"] = rng.randrange(2**40, _INT64_MAX)
    if evolved and rng.random() < 0.5:
        rec["priority"] = rng.choice(("low", "normal", "high", 1, 2, None))


def _make_page(world: World, rng: random.Random, rec: Record, created: int, evolved: bool) -> None:
    rec["name"] = _name(rng)
    rec["url"] = f"https://example.com/{rng.choice(_WORDS)}/{rng.randrange(10**6)}"
    rec["views"] = rng.randrange(0, 1_000_000)
    rec["published"] = rng.random() < 0.7


def _make_task(world: World, rng: random.Random, rec: Record, created: int, evolved: bool) -> None:
    rec["name"] = _name(rng)
    status = _maybe(rng, rng.choice(_STATUSES), 0.1)
    _put(rng, rec, "status", status)
    due = (_EPOCH + created * _US + timedelta(days=rng.randrange(-30, 120))).date()
    _put(rng, rec, "due_date", _maybe(rng, due.isoformat(), 0.2))
    _put(rng, rec, "deal_id", _maybe(rng, world._random_id(rng, "deals")))
    _put(rng, rec, "assignee_id", _maybe(rng, world._random_id(rng, "users")))
    done = _time_between(rng, created, world._clock_us) if status == "done" else None
    _put(rng, rec, "completed_at", done)
    if evolved and rng.random() < 0.5:
        rec["labels"] = rng.sample(_WORDS, rng.randint(0, 3))


_MAKE: Final[dict[str, _Maker]] = {
    "tags": _make_tag,
    "users": _make_user,
    "deals": _make_deal,
    "pages": _make_page,
    "tasks": _make_task,
}


# -- per-resource updates: ``when`` is the new updated_at; ``evolved`` lets new fields appear --


def _evolve_tag(world: World, rng: random.Random, rec: Record, when: int, evolved: bool) -> None:
    if rng.random() < 0.5:
        rec["name"] = _name(rng)
    _put(rng, rec, "color", _maybe(rng, f"#{rng.randrange(0x1000000):06x}", 0.3))


def _evolve_user(world: World, rng: random.Random, rec: Record, when: int, evolved: bool) -> None:
    rec["active"] = not rec["active"] if rng.random() < 0.3 else rec["active"]
    if rng.random() < 0.7:
        _put(rng, rec, "last_login_at", format_timestamp(when))
    if rng.random() < 0.3:
        _put(rng, rec, "role", _maybe(rng, rng.choice(_ROLES)))


def _evolve_deal(world: World, rng: random.Random, rec: Record, when: int, evolved: bool) -> None:
    if rng.random() < 0.6:
        _put(rng, rec, "amount", _maybe(rng, _amount(rng), 0.1))
    if rng.random() < 0.5:
        stage = rng.choice(_STAGES)
        rec["stage"] = stage
        _put(rng, rec, "closed_at", format_timestamp(when) if stage in ("won", "lost") else None)
    tags = rec.get("tag_ids")
    if tags and rng.random() < 0.7:
        # Lists shrink, and sometimes empty: a merge must not keep the old elements.
        keep = 0 if rng.random() < 0.3 else rng.randrange(len(tags))
        rec["tag_ids"] = tags[:keep]
    elif rng.random() < 0.3:
        _put(rng, rec, "tag_ids", _tag_ids(world, rng))
    if rng.random() < 0.4:
        _put(rng, rec, "custom_fields", _custom_fields(rng))
    if rng.random() < 0.3:
        rec["probability"] = _probability(rng)
    if evolved and rng.random() < 0.5:
        rec["priority"] = rng.choice(("low", "normal", "high", 1, 2, None))


def _evolve_page(world: World, rng: random.Random, rec: Record, when: int, evolved: bool) -> None:
    rec["views"] = min(rec["views"] + rng.randrange(1, 5000), _INT64_MAX)
    if rng.random() < 0.3:
        rec["published"] = not rec["published"]
    if rng.random() < 0.2:
        rec["name"] = _name(rng)


def _evolve_task(world: World, rng: random.Random, rec: Record, when: int, evolved: bool) -> None:
    status = rng.choice(_STATUSES)
    rec["status"] = status
    _put(rng, rec, "completed_at", format_timestamp(when) if status == "done" else None)
    if rng.random() < 0.3:
        _put(rng, rec, "assignee_id", _maybe(rng, world._random_id(rng, "users")))
    if evolved and rng.random() < 0.6:
        labels = rec.get("labels") or rng.sample(_WORDS, rng.randint(1, 3))
        rec["labels"] = labels[: rng.randrange(len(labels) + 1)]


_EVOLVE: Final[dict[str, _Maker]] = {
    "tags": _evolve_tag,
    "users": _evolve_user,
    "deals": _evolve_deal,
    "pages": _evolve_page,
    "tasks": _evolve_task,
}


# -- showcase: rare cases forced onto a few records, so every world size has them ----------


def _pick(table: _Table, rng: random.Random, k: int) -> list[Record]:
    rows = list(table.rows.values())
    return [row.record for row in rng.sample(rows, min(k, len(rows)))]


def _showcase_deals(table: _Table, rng: random.Random) -> None:
    records = _pick(table, rng, len(_AMOUNT_SHOWCASE) + 4)
    for record, amount in zip(records, _AMOUNT_SHOWCASE, strict=False):
        record["amount"] = amount
    for record, probability in zip(records[::-1], (7, 0.35, "high", 42), strict=False):
        record["probability"] = probability


def _showcase_pages(table: _Table, rng: random.Random) -> None:
    for record, views in zip(
        _pick(table, rng, 3), (_INT64_MAX, _INT64_MAX - 1, 2**53 + 1), strict=False
    ):
        record["views"] = views


def _showcase_none(table: _Table, rng: random.Random) -> None:
    return None


_SHOWCASE: Final[dict[str, Callable[[_Table, random.Random], None]]] = {
    "tags": _showcase_none,
    "users": _showcase_none,
    "deals": _showcase_deals,
    "pages": _showcase_pages,
    "tasks": _showcase_none,
}

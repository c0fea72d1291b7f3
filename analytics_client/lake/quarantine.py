"""The quarantine: records set aside instead of a stuck pipeline, kept exactly as received.

A record that breaks its resource's declared types (frames.py says which and why) would
otherwise fail its batch on every run and block every record behind it. It goes to one Delta
table, ``<lake>/_quarantine``, and the run goes on:

    pipeline, resource, key (the primary key as text, or null), field, reason,
    record (the record as JSON text: ``jsontext.loads`` reads back exactly what was received),
    record_hash, run_id, quarantined_at (UTC)

Rows are merged on (pipeline, resource, record_hash): a record set aside again by a rerun is one
row, with the latest run and reason. They are committed before the data commit that carries the
resource's mark, so a mark never covers a record that is in neither table.

``replay`` re-ingests a resource's quarantined records through its current config (after a
columns hint was added, say) and removes those that land. It writes no mark: the records are
older than the mark.

A quarantined record never goes back in time (merge tables; docs/data-model.md, Quarantine).
Its key's *newer version* is a row of the table that the API served after it:

* When a merge commits a batch, the quarantined records of the keys it brought are dropped
  (``superseded``), unless that batch set them aside itself: a read pages forward and a
  resource's runs take turns (its lock), so a version served in a later batch or run is the
  newer one. Where both have a cursor, the row's must also be at least the record's (the
  slices of a walk read cursor ranges side by side, not one after another). Rows the merge left
  unchanged count too: the API served them again, after the record.
* ``replay`` skips (and counts, and drops) a record whose key's row is newer: its cursor is
  greater (equal: written later), or, without a cursor on both, it was written (``_synced_at``,
  its run's start) or marked deleted after the record was last set aside (``quarantined_at``).
  This catches what the first rule could not see (a drop that failed after its data commit,
  records set aside before it existed). The merge's cursor guard stays the last word.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from deltalake import DeltaTable, write_deltalake

from analytics_client.core import jsontext
from analytics_client.core.errors import LakeError
from analytics_client.core.lock import table_write_lock
from analytics_client.core.summary import WriteResult
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.lake.frames import DELETED_AT, SYNCED_AT, Rejected
from analytics_client.lake.lakes import QUARANTINE, Lake, lake_errors
from analytics_client.lake.tables import TableWriter

__all__ = ["QUARANTINE_SCHEMA", "Quarantine", "Replayed", "render"]

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "pipeline": pl.String(),
    "resource": pl.String(),
    "key": pl.String(),
    "field": pl.String(),
    "reason": pl.String(),
    "record": pl.String(),
    "record_hash": pl.String(),
    "run_id": pl.String(),
    "quarantined_at": pl.Datetime("us", "UTC"),
}
_MATCH = ("t.pipeline = s.pipeline AND t.resource = s.resource "
          "AND t.record_hash = s.record_hash")


def _fingerprint(record: object) -> tuple[str, str]:
    """The record's exact text, and the digest that identifies it in the table."""
    text = jsontext.record_text(record)
    return text, hashlib.blake2b(text.encode("ascii"), digest_size=16).hexdigest()


def _key_text(key: object) -> str | None:
    if key is None:
        return None
    return key if isinstance(key, str) else jsontext.record_text(key)


@dataclass(frozen=True)
class Replayed:
    """What a replay did: the write's counts, how many records landed, and how many were
    skipped as stale (the table held a newer version of their key). Both kinds leave the
    quarantine; ``result.quarantined`` still do not fit and stay."""

    result: WriteResult
    landed: int
    stale: int

    def __str__(self) -> str:
        return (f"{self.landed:,} replayed record(s) landed ({self.result.inserted:,} inserted, "
                f"{self.result.updated:,} updated); {self.stale:,} skipped as stale (the table "
                "holds a newer version of their key) and dropped; "
                f"{self.result.quarantined:,} still set aside")


class Quarantine:
    """The quarantine table of one lake, for one pipeline's run."""

    def __init__(self, lake: Lake, pipeline: str, run_id: str = "") -> None:
        self.lake = lake
        self.pipeline = pipeline
        self.run_id = run_id
        self.uri = lake.quarantine_uri()
        self._seen: set[str] = set()  # digests this instance set aside (a run's, one resource)
        self.dropped = 0  # records dropped because a newer version of their key landed
        self._waiting: dict[str, pl.DataFrame] = {}  # per resource: its records, keyed

    def add(self, resource: str, rejected: Sequence[Rejected]) -> int:
        """Commit ``rejected`` records of ``resource``; raises LakeError.

        Returns how many of them this instance had not set aside before: a record read again
        (a tie group re-read, a page edge) counts once in a run's summary.
        """
        if not rejected:
            return 0
        now = dt.datetime.now(dt.UTC)
        rows = {}
        for item in rejected:
            text, digest = _fingerprint(item.record)
            rows[digest] = {
                "pipeline": self.pipeline, "resource": resource, "key": _key_text(item.key),
                "field": item.field, "reason": item.reason, "record": text,
                "record_hash": digest, "run_id": self.run_id, "quarantined_at": now,
            }
        frame = pl.DataFrame(list(rows.values()), schema=QUARANTINE_SCHEMA)
        with table_write_lock(self.uri), lake_errors(resource, f"setting aside records in "
                                                                f"{self.uri}"):
            table = self.lake._open(resource, self.uri)
            if table is None:
                self.lake._prepare(self.uri)
                write_deltalake(self.uri, frame, mode="append",
                                storage_options=self.lake.storage_options)
            else:
                (table.merge(frame, predicate=_MATCH, source_alias="s", target_alias="t")
                 .when_matched_update(updates={"reason": "s.reason", "field": "s.field",
                                               "run_id": "s.run_id",
                                               "quarantined_at": "s.quarantined_at"})
                 .when_not_matched_insert_all()
                 .execute())
        self._waiting.pop(resource, None)  # read again when next needed
        new = rows.keys() - self._seen
        self._seen.update(new)
        for digest in new:
            log.warning("%s: set aside record %r in the quarantine: %s", resource,
                        rows[digest]["key"], rows[digest]["reason"])
        return len(new)

    def read(self, resource: str | None = None) -> pl.DataFrame:
        """This pipeline's quarantined records (of one resource, or all), oldest first."""
        table = self.lake._open(resource or QUARANTINE, self.uri)
        if table is None:
            return pl.DataFrame(schema=QUARANTINE_SCHEMA)
        with lake_errors(resource or QUARANTINE, f"reading {self.uri}"):
            scan = pl.scan_delta(table).filter(pl.col("pipeline") == self.pipeline)
            if resource is not None:
                scan = scan.filter(pl.col("resource") == resource)
            return scan.collect().sort("quarantined_at", "resource", "key")

    def superseded(self, writer: TableWriter, frame: pl.DataFrame,
                   rejected: list[Rejected]) -> None:
        """``tables.Landed``: drop the writer's resource's quarantined records that the rows
        of ``frame``, just committed, supersede (the module docstring's first rule); those in
        ``rejected`` (set aside by the same batch) stay. A failure is logged, not raised:
        the data is committed, and replay judges what is left."""
        try:
            self._drop_superseded(writer, frame, rejected)
        except (LakeError, pl.exceptions.PolarsError) as exc:
            log.warning("%s: could not drop the quarantined records this batch superseded "
                        "(`quarantine replay` will skip them as stale): %s", writer.resource, exc)

    def _drop_superseded(self, writer: TableWriter, frame: pl.DataFrame,
                         rejected: list[Rejected]) -> None:
        resource = writer.resource
        cursor = frame.schema.get(writer.cursor_field) if writer.cursor_field else None
        waiting = self._waiting.get(resource)
        if waiting is None:
            waiting = self._waiting[resource] = _keyed(self.read(resource), writer, cursor)
        if waiting.is_empty():
            return
        fresh = [_fingerprint(r.record)[1] for r in rejected]
        hit = (waiting.filter(~pl.col("record_hash").is_in(fresh))
               .join(frame.select(_row_keys(writer, frame.schema)), on=_key_names(writer))
               .filter(pl.col("_cursor").is_null() | pl.col("_row_cursor").is_null()
                       | (pl.col("_row_cursor") >= pl.col("_cursor"))))
        hashes = hit["record_hash"].unique().to_list()
        if not hashes:
            return
        self._remove(resource, hashes)
        self._waiting[resource] = waiting.filter(~pl.col("record_hash").is_in(hashes))
        self.dropped += len(hashes)
        log.info("%s: dropped %d quarantined record(s): a newer version of their key landed",
                 resource, len(hashes))

    def replay(self, writer: TableWriter) -> Replayed:
        """Write the writer's resource's quarantined records again; drop those that landed,
        and those the table holds a newer version of (stale: skipped, counted, dropped).

        A ``replace`` resource is refused (the replay would swap its table for these records
        alone): its next run reads everything again anyway. Records that still do not fit stay
        (``writer.set_aside`` re-adds them, with today's reason).
        """
        if writer.write_disposition == "replace":
            raise LakeError(writer.resource, "write_disposition replace: quarantined records "
                            "are not replayed (that would replace the table with them); the "
                            "next run reads everything again through the current config")
        waiting = self.read(writer.resource)
        if waiting.is_empty():
            return Replayed(WriteResult(0, 0, None), 0, 0)
        stale = self._stale(writer, waiting)
        fresh = waiting.filter(~pl.col("record_hash").is_in(stale))
        records = [jsontext.loads(text) for text in fresh["record"]]
        still: set[str] = set()

        def keep(resource: str, rejected: list[Rejected]) -> int:
            still.update(_fingerprint(r.record)[1] for r in rejected)
            return self.add(resource, rejected)

        writer.set_aside = keep
        writer.landed = None  # this replay judges its own records
        result = writer.write(records, commit_metadata={"analytics_sync.operation":
                                                        "quarantine replay"})
        writer.finish()
        landed = [h for h in fresh["record_hash"] if h not in still]
        self._remove(writer.resource, [*landed, *stale])
        if stale:
            log.info("%s: %d quarantined record(s) skipped as stale: the table holds a newer "
                     "version of their key", writer.resource, len(stale))
        return Replayed(result, len(landed), len(stale))

    def _stale(self, writer: TableWriter, waiting: pl.DataFrame) -> list[str]:
        """The digests of ``waiting`` whose key the writer's table holds in a newer version
        (the module docstring's second rule). Only a merge table replaces rows."""
        if writer.write_disposition != "merge":
            return []
        resource = writer.resource
        table = self.lake._open(resource, writer.uri)
        if table is None:
            return []
        with lake_errors(resource, f"reading the keys of {writer.uri}"):
            scan = pl.scan_delta(table)
            names = scan.collect_schema()
            if any(c not in names for c in (writer.primary_key, *writer.parent_key, SYNCED_AT)):
                return []  # not our table's columns: nothing to compare with
            keyed = _keyed(waiting, writer, names.get(writer.cursor_field or ""))
            if keyed.is_empty():
                return []
            deleted = pl.col(DELETED_AT) if DELETED_AT in names \
                else pl.lit(None, dtype=pl.Datetime("us", "UTC"))
            rows = (scan.select(*_row_keys(writer, names), pl.col(SYNCED_AT).alias("_synced"),
                                deleted.alias("_deleted"))
                    .filter(pl.col("_k0").is_in(keyed["_k0"].unique().to_list()))
                    .collect())
        at, ours, theirs = pl.col("quarantined_at"), pl.col("_cursor"), pl.col("_row_cursor")
        both = ours.is_not_null() & theirs.is_not_null()
        newer = ((pl.col("_deleted").is_not_null() & (pl.col("_deleted") > at))
                 | (both & ((theirs > ours) | ((theirs == ours) & (pl.col("_synced") > at))))
                 | (~both & (pl.col("_synced") > at)))
        joined = keyed.join(rows, on=_key_names(writer)).filter(newer)
        return list(dict.fromkeys(joined["record_hash"].to_list()))

    def _remove(self, resource: str, hashes: list[str]) -> None:
        if not hashes:
            return
        quoted = ", ".join(f"'{h}'" for h in hashes)  # hex digests: nothing to escape
        with table_write_lock(self.uri), lake_errors(resource, f"removing replayed records "
                                                                f"from {self.uri}"):
            DeltaTable(self.uri, storage_options=self.lake.storage_options).delete(
                f"pipeline = '{self.pipeline.replace(chr(39), chr(39) * 2)}' AND "
                f"resource = '{resource}' AND record_hash IN ({quoted})")


def _key_names(writer: TableWriter) -> list[str]:
    """The columns a record's key is compared in: ``_k0`` (primary key), ``_k1``... (a child's
    parent key), as text."""
    return [f"_k{i}" for i in range(1 + len(writer.parent_key))]


def _row_keys(writer: TableWriter, schema: Any) -> list[pl.Expr]:
    """A table's (or a batch's) key as ``_key_names`` and its cursor in µs (``_row_cursor``,
    null without one): text and integers compare alike on both sides."""
    key = (writer.primary_key, *writer.parent_key)
    exprs = [pl.col(c).cast(pl.String).alias(n) for c, n in zip(key, _key_names(writer),
                                                                 strict=True)]
    field = writer.cursor_field
    dtype = schema.get(field) if field else None
    cursor = pl.lit(None, dtype=pl.Int64())
    if field is not None and isinstance(dtype, pl.Datetime):
        cursor = pl.col(field).dt.epoch("us")
    elif field is not None and dtype == pl.Int64():
        cursor = pl.col(field)
    return [*exprs, cursor.cast(pl.Int64()).alias("_row_cursor")]


def _keyed(waiting: pl.DataFrame, writer: TableWriter, cursor: Any) -> pl.DataFrame:
    """Quarantined rows with their record's key as text (``_key_names``) and cursor in µs
    (``_cursor``, null when it has none the table's ``cursor`` type can compare); records
    without their whole key are left out (nothing can supersede them)."""
    key = (writer.primary_key, *writer.parent_key)
    names = _key_names(writer)
    rows = []
    for text, digest, when in waiting.select("record", "record_hash",
                                             "quarantined_at").iter_rows():
        record = jsontext.loads(text)
        if not isinstance(record, dict) or any(record.get(c) is None for c in key):
            continue
        value = record.get(writer.cursor_field) if writer.cursor_field else None
        rows.append({"record_hash": digest, "quarantined_at": when,
                     **{n: _key_text(record[c]) for n, c in zip(names, key, strict=True)},
                     "_cursor": _cursor_us(value, cursor)})
    return pl.DataFrame(rows, schema={"record_hash": pl.String(),
                                      "quarantined_at": pl.Datetime("us", "UTC"),
                                      **dict.fromkeys(names, pl.String()),
                                      "_cursor": pl.Int64()})


def _cursor_us(value: object, dtype: Any) -> int | None:
    """A record's cursor as the table compares it (µs, or the integer); None if it has none
    such (the cursor may be what set it aside)."""
    if isinstance(dtype, pl.Datetime) and isinstance(value, str):
        try:
            return parse_cursor(value)
        except ValueError:
            return None
    if dtype == pl.Int64() and isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**63 else None
    return None


def render(frame: pl.DataFrame) -> str:
    """Quarantined records as lines for a terminal: resource, key, field, when, and why."""
    if frame.is_empty():
        return "no quarantined records"
    lines = [f"{frame.height:,} quarantined record(s):"]
    for row in frame.iter_rows(named=True):
        when = row["quarantined_at"].isoformat(timespec="seconds")
        lines.append(f"  {row['resource']}  key {row['key']!r}  field {row['field']!r}  {when}  "
                     f"run {row['run_id'] or '-'}\n      {row['reason']}")
    return "\n".join(lines)

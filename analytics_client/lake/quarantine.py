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
older than the mark, and the merge's cursor guard keeps them from overwriting newer versions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence

import polars as pl
from deltalake import DeltaTable, write_deltalake

from analytics_client.core import jsontext
from analytics_client.core.errors import LakeError
from analytics_client.core.lock import table_write_lock
from analytics_client.core.summary import WriteResult
from analytics_client.lake.frames import Rejected
from analytics_client.lake.tables import QUARANTINE, Lake, TableWriter, _lake_errors

__all__ = ["QUARANTINE_SCHEMA", "Quarantine", "render"]

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


class Quarantine:
    """The quarantine table of one lake, for one pipeline's run."""

    def __init__(self, lake: Lake, pipeline: str, run_id: str = "") -> None:
        self.lake = lake
        self.pipeline = pipeline
        self.run_id = run_id
        self.uri = lake.quarantine_uri()
        self._seen: set[str] = set()  # digests this instance set aside (a run's, one resource)

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
        with table_write_lock(self.uri), _lake_errors(resource, f"setting aside records in "
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
        with _lake_errors(resource or QUARANTINE, f"reading {self.uri}"):
            frame = pl.read_delta(self.uri, storage_options=self.lake.storage_options)
        frame = frame.filter(pl.col("pipeline") == self.pipeline)
        if resource is not None:
            frame = frame.filter(pl.col("resource") == resource)
        return frame.sort("quarantined_at", "resource", "key")

    def replay(self, writer: TableWriter) -> tuple[WriteResult, int]:
        """Write the writer's resource's quarantined records again; drop those that landed.

        A ``replace`` resource is refused (the replay would swap its table for these records
        alone): its next run reads everything again anyway.

        Returns the write's result and how many records landed. Records that still do not fit
        stay (``writer.set_aside`` re-adds them, with today's reason).
        """
        if writer.write_disposition == "replace":
            raise LakeError(writer.resource, "write_disposition replace: quarantined records "
                            "are not replayed (that would replace the table with them); the "
                            "next run reads everything again through the current config")
        waiting = self.read(writer.resource)
        if waiting.is_empty():
            return WriteResult(0, 0, None), 0
        records = [jsontext.loads(text) for text in waiting["record"]]
        still: set[str] = set()

        def keep(resource: str, rejected: list[Rejected]) -> int:
            still.update(_fingerprint(r.record)[1] for r in rejected)
            return self.add(resource, rejected)

        writer.set_aside = keep
        result = writer.write(records, commit_metadata={"analytics_sync.operation":
                                                        "quarantine replay"})
        writer.finish()
        landed = [h for h in waiting["record_hash"] if h not in still]
        self._remove(writer.resource, landed)
        return result, len(landed)

    def _remove(self, resource: str, hashes: list[str]) -> None:
        if not hashes:
            return
        quoted = ", ".join(f"'{h}'" for h in hashes)  # hex digests: nothing to escape
        with table_write_lock(self.uri), _lake_errors(resource, f"removing replayed records "
                                                                f"from {self.uri}"):
            DeltaTable(self.uri, storage_options=self.lake.storage_options).delete(
                f"pipeline = '{self.pipeline.replace(chr(39), chr(39) * 2)}' AND "
                f"resource = '{resource}' AND record_hash IN ({quoted})")


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

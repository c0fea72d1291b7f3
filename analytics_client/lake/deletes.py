"""Rows whose records the API no longer has: the table's side of delete capture.

Which rows those are is found by the run (``run/deletes.py``: reads that saw everything, and
counts); here they are marked or removed, in one Delta commit that says why:

    soft: ``_deleted_at`` set to the instant the run found out; the row keeps its last values.
          A record that comes back clears it (``tables.TableWriter``'s merge).
    hard: the row is removed (Delta ``merge ... when matched delete``).

Readers of a soft table filter ``_deleted_at IS NULL`` (docs/deletes.md). With the Change Data
Feed on (tables we create), a downstream job sees a soft delete as an update and a hard one as
a delete, in the run's version range (the summary's ``versions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl
from deltalake import DeltaTable, write_deltalake

from analytics_client.core.errors import DeleteGuardError
from analytics_client.core.lock import table_write_lock
from analytics_client.core.summary import WriteResult
from analytics_client.lake.frames import DELETED_AT
from analytics_client.lake.lakes import Lake, lake_errors
from analytics_client.lake.merging import quoted
from analytics_client.lake.tables import TableSpec, _commit

__all__ = ["check_share", "live_rows", "mark_deleted"]

_DELETED_TYPE = pl.Datetime("us", "UTC")


def live_rows(lake: Lake, table: TableSpec, columns: Sequence[str]) -> pl.DataFrame | None:
    """``columns`` of the table's live rows (``_deleted_at`` null); None without a table.

    A column the table lacks comes back as nulls; a timestamp column as epoch µs (Int64), the
    unit every cursor of a run is kept in.
    """
    if lake.version(table.name) is None:
        return None
    uri = lake.table_uri(table.name)
    with lake_errors(table.name, f"reading the keys of {uri}"):
        scan = pl.scan_delta(uri, storage_options=lake.storage_options)
        names = scan.collect_schema()
        if DELETED_AT in names:
            scan = scan.filter(pl.col(DELETED_AT).is_null())
        wanted = list(dict.fromkeys(columns))
        present = [c for c in wanted if c in names]
        frame = scan.select(present).collect()
    for column in wanted:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(column))
        elif isinstance(frame.schema[column], pl.Datetime):
            frame = frame.with_columns(
                pl.col(column).dt.convert_time_zone("UTC").dt.epoch("us").alias(column))
    return frame.select(wanted)


def check_share(table: TableSpec, missing: int, live: int) -> None:
    """Refuse a read that would delete more than ``table.max_delete_share`` of its live rows.

    Raises ``DeleteGuardError`` (naming the share and the setting); the caller then deletes
    nothing.
    """
    if missing and missing > table.max_delete_share * live:
        raise DeleteGuardError(table.name, missing=missing, live=live,
                               max_share=table.max_delete_share)


def mark_deleted(lake: Lake, table: TableSpec, keys: pl.DataFrame, *, reason: str,
                 run_id: str = "", mode: str | None = None) -> WriteResult:
    """Delete (hard) or mark (soft) the live rows whose key columns match a row of ``keys``.

    ``keys``' columns name the table columns matched on: the table's key, or a child's parent
    key column when a parent's deletes cascade. ``mode`` defaults to ``table.delete_missing``.
    One Delta commit, its metadata saying ``reason``; nothing matching, no commit.
    Returns ``deleted``: the rows deleted or marked; ``version``: the commit's.
    """
    mode = mode or table.delete_missing
    if mode == "off" or keys.is_empty():
        return WriteResult(inserted=0, updated=0, version=None)
    uri = lake.table_uri(table.name)
    with table_write_lock(uri), lake_errors(table.name, f"marking deletes in {uri}"):
        target = lake._open(table.name, uri)
        if target is None:
            return WriteResult(inserted=0, updated=0, version=None)
        schema = dict(pl.scan_delta(target).collect_schema())
        on = list(keys.columns)
        source = keys.unique().cast({c: schema[c] for c in on if c in schema}, strict=False)
        source = source.drop_nulls()
        if source.is_empty() or any(c not in schema for c in on):
            return WriteResult(inserted=0, updated=0, version=None)
        metadata = {"analytics_sync.operation": f"{mode} delete", "analytics_sync.reason": reason,
                    "analytics_sync.run_id": run_id}
        if mode == "soft" and DELETED_AT not in schema:
            _add_deleted_at(target)
        before = target.version()
        merge = target.merge(
            source.with_columns(pl.lit(datetime.now(UTC)).cast(_DELETED_TYPE).alias(DELETED_AT))
            if mode == "soft" else source,
            predicate=" AND ".join(f"t.{quoted(c)} = s.{quoted(c)}" for c in on),
            source_alias="s", target_alias="t", streamed_exec=False,
            commit_properties=_commit(metadata))
        live = f"t.{quoted(DELETED_AT)} IS NULL" if DELETED_AT in schema or mode == "soft" \
            else None
        if mode == "hard":
            metrics = merge.when_matched_delete().execute()
            count = int(metrics["num_target_rows_deleted"])
        else:
            metrics = merge.when_matched_update(
                {DELETED_AT: f"s.{quoted(DELETED_AT)}"}, predicate=live).execute()
            count = int(metrics["num_target_rows_updated"])
        after = target.version()
    return WriteResult(inserted=0, updated=0, version=after if after != before else None,
                       deleted=count)


def _add_deleted_at(table: DeltaTable) -> None:
    """Give a table made before delete capture its ``_deleted_at`` column (an empty append,
    as the writer evolves schemas: never inside a merge)."""
    write_deltalake(table, pl.DataFrame({DELETED_AT: []}, schema={DELETED_AT: _DELETED_TYPE}),
                    mode="append", schema_mode="merge",
                    commit_properties=_commit({"analytics_sync.operation": "add columns"}))
    table.update_incremental()

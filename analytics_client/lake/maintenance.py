"""Table maintenance: compact small files, checkpoint the log, vacuum what no version needs.

Every sync commit adds a small Parquet file (or rewrites a few) and one JSON file to the log.
Left alone, reads slow down with the file count and the log replay. ``maintain_table`` runs,
in this order:

1. ``optimize.compact`` -- rewrites small files into files of ``target_size`` bytes. It changes
   no row (a Delta ``OPTIMIZE`` commit with ``dataChange=false``) and commits with Delta's
   optimistic concurrency: a sync merge that touched the same files meanwhile makes one of the
   two fail cleanly, never both succeed. With ``z_order`` columns, ``optimize.z_order`` instead:
   it rewrites the whole table into files clustered by those columns. By the primary key, each
   file then holds a narrow key range, and a merge (whose predicate bounds the key to its
   batch's range: merging.py) rewrites only the files of the keys it touches when those keys
   cluster (ids that grow with time, a backfill of one range). It costs a rewrite of the whole
   table each time it runs, so it belongs in an occasional maintenance run, not every one.
2. ``create_checkpoint`` -- a Parquet snapshot of the log, so readers stop replaying every JSON
   commit; then ``cleanup_metadata`` drops log files older than the table's
   ``delta.logRetentionDuration`` (30 days by default).
3. ``vacuum`` -- deletes data files that no version within ``retention_hours`` references.
   The default, 168 hours (7 days, Delta's own default), keeps a week of time travel and never
   deletes a file a reader or writer that started within the week may still open. A shorter
   retention is refused unless ``enforce_retention=False`` (tests, or a table nobody reads).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from deltalake import DeltaTable

from analytics_client.core.errors import LakeError
from analytics_client.lake.lakes import Lake, lake_errors

__all__ = ["DEFAULT_RETENTION_HOURS", "DEFAULT_TARGET_SIZE", "MaintenanceResult", "maintain_table"]

log = logging.getLogger(__name__)

DEFAULT_RETENTION_HOURS = 168
DEFAULT_TARGET_SIZE = 128 * 1024 * 1024


@dataclass(frozen=True)
class MaintenanceResult:
    """What maintenance did to one table: versions, active files and data files removed."""

    resource: str
    version_before: int | None
    version_after: int | None
    files_before: int
    files_after: int
    files_compacted: int
    files_vacuumed: int
    checkpoint_version: int | None
    status: str = "ok"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def maintain_table(
    lake: Lake,
    resource: str,
    *,
    target_size: int = DEFAULT_TARGET_SIZE,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    enforce_retention: bool = True,
    z_order: Sequence[str] = (),
) -> MaintenanceResult:
    """Compact (or z-order by ``z_order``'s columns), checkpoint and vacuum one resource's
    table; a missing table is skipped. Raises LakeError naming a ``z_order`` column the table
    lacks, before anything is rewritten."""
    uri = lake.table_uri(resource)
    table = lake._open(resource, uri)
    if table is None:
        log.info("%s: no table at %s, nothing to maintain", resource, uri)
        return MaintenanceResult(resource, None, None, 0, 0, 0, 0, None, status="no table")
    version_before, files_before = table.version(), len(table.file_uris())
    columns = list(z_order)
    missing = [c for c in columns if c not in table.schema().to_arrow().names]
    if missing:
        raise LakeError(resource, f"cannot z-order {uri} by {missing}: the table has "
                                  f"no such column; name columns of its schema (its primary key "
                                  f"is the usual choice)")
    with lake_errors(resource, f"{'z-ordering' if columns else 'compacting'} {uri}"):
        metrics = (table.optimize.z_order(columns, target_size=target_size) if columns
                   else table.optimize.compact(target_size=target_size))
    compacted = int(metrics.get("numFilesRemoved", 0))
    with lake_errors(resource, f"checkpointing {uri}"):
        table = _reopen(lake, uri)
        table.create_checkpoint()
        table.cleanup_metadata()
        checkpoint_version = table.version()
    with lake_errors(resource, f"vacuuming {uri}"):
        vacuumed = table.vacuum(
            retention_hours=retention_hours,
            dry_run=False,
            enforce_retention_duration=enforce_retention,
        )
        table = _reopen(lake, uri)
    result = MaintenanceResult(
        resource=resource,
        version_before=version_before,
        version_after=table.version(),
        files_before=files_before,
        files_after=len(table.file_uris()),
        files_compacted=compacted,
        files_vacuumed=len(vacuumed),
        checkpoint_version=checkpoint_version,
    )
    log.info(
        "%s: %d files -> %d (compacted %d), checkpoint at version %d, vacuumed %d files "
        "older than %d h",
        resource, result.files_before, result.files_after, compacted, checkpoint_version,
        result.files_vacuumed, retention_hours,
    )  # fmt: skip
    return result


def _reopen(lake: Lake, uri: str) -> DeltaTable:
    return DeltaTable(uri, storage_options=lake.storage_options)

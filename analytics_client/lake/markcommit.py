"""A mark recorded in a table by a commit that holds no rows.

A read that changes nothing commits nothing (delta-rs skips a merge without changes), so its
mark would have no commit to travel in. That is harmless while the table already holds a mark
as high; it is not after ``state reset`` or over a table another pipeline wrote: every later
run would find no mark and read everything again, forever. The table holds every record the
read covered (the merge found them all unchanged), so the mark may be recorded on its own:
an empty append whose only payload is the app transaction.
"""

from __future__ import annotations

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from analytics_client.core.errors import LakeError
from analytics_client.core.lock import table_write_lock
from analytics_client.lake.tables import Lake, TableMark

__all__ = ["record_mark"]


def record_mark(lake: Lake, resource: str, mark: TableMark,
                metadata: dict[str, str] | None = None) -> int | None:
    """Commit ``mark`` to ``resource``'s table with no rows; its new version (None: no table).

    Call it only once every record below the mark is in the table. Nothing is written when
    the table already records a higher mark, or this one with the same API clock or a later
    one (``TableMark.clock_us``: for one mark, a later clock proves at least what an earlier
    one does).
    """
    uri = lake.table_uri(resource)
    with table_write_lock(uri):
        try:
            if not DeltaTable.is_deltatable(uri, storage_options=lake.storage_options):
                return None
            table = DeltaTable(uri, storage_options=lake.storage_options)
            recorded = table.transaction_version(mark.app_id)
            if recorded is not None and int(recorded) > mark.cursor_us:
                return None
            if recorded is not None and int(recorded) == mark.cursor_us:
                clock = table.transaction_version(mark.clock_app_id)
                if mark.clock_us is None or (clock is not None and int(clock) >= mark.clock_us):
                    return None
            empty = pl.DataFrame(schema=pl.scan_delta(table).collect_schema())
            write_deltalake(
                table, empty, mode="append",
                commit_properties=CommitProperties(
                    custom_metadata={**(metadata or {}), "analytics_sync.operation": "mark"},
                    app_transactions=mark.transactions()),
            )
            table.update_incremental()
            return table.version()
        except (DeltaError, OSError, pl.exceptions.PolarsError) as exc:
            raise LakeError(resource, f"recording the mark in {uri} failed: {exc}") from exc

"""Mark policy: where a resource's read starts, which mark each commit may record, and when the
state store hears of it.

The one rule behind all of it: a mark is never ahead of the data committed to Delta. A read
starts at the lower of the state block's and the table's mark (``state.effective_start``),
``lag`` seconds earlier; a commit records the mark its pages allow, never below the start; the
state store (a Prefect block: API round trips) gets a committed mark at most every
``MARK_SAVE_EVERY_SECONDS`` and at the end, and a successful run last. A block that lags its
table is safe (a run starts from the lower of the two); one ahead of it cannot happen, since
only committed marks reach the store.

Marks are epoch microseconds here; ``timestamps.py`` turns them into the text the store keeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from analytics_client.config.model import Incremental, ResourceConfig
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timestamps import MIN_US
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.lake.markcommit import record_mark
from analytics_client.lake.tables import Lake, TableMark
from analytics_client.read.window import backfill
from analytics_client.state.marks import Mark, MarkStore, Start, app_id, effective_start

__all__ = ["MARK_SAVE_EVERY_SECONDS", "ResourceMarks", "read_from"]

# The state store gets a resource's mark at most this often during a run, and at its end; the
# table holds the exact mark of every commit meanwhile.
MARK_SAVE_EVERY_SECONDS = 30.0

Log = logging.Logger | logging.LoggerAdapter[Any]


def read_from(mark_us: int | None, incremental: Incremental) -> int | None:
    """Where a walk starting at ``mark_us`` sends its first cursor filter: ``lag`` seconds
    earlier, because the contract lets a change become visible up to 5 s late (None: all).
    Never before year 1: no cursor lies there, and the filter must stay writable."""
    if mark_us is None:
        return None
    return max(MIN_US, mark_us - round(incremental.lag * 1_000_000))


class ResourceMarks:
    """The marks of one read of one resource: its start, its commits' marks, its saves."""

    def __init__(self, lake: Lake, resource: ResourceConfig, pipeline: str,
                 store: MarkStore | None, *, full_refresh: bool) -> None:
        incremental = resource.endpoint.incremental
        window = backfill(incremental)
        if window is not None:
            store = None  # a backfill neither reads nor moves the mark (dlt's end_value)
        self.lake, self.resource, self.pipeline, self.store = lake, resource.name, pipeline, store
        self.block = store.load(pipeline, resource.name) \
            if store is not None and incremental is not None else None
        if incremental is None:
            self.start = Start(None, "not incremental: full read")
        elif window is not None:
            self.start = Start(window.start_us, f"backfill [{incremental.initial_value}, "
                               f"{incremental.end_value}): the mark is neither read nor moved")
        elif full_refresh:
            self.start = Start(None, "full refresh requested: reading everything")
        else:
            self.start = effective_start(lake, resource.name, pipeline, self.block,
                                         incremental.initial_value)
        self.latest: Mark | None = None  # the last committed mark handed to the store
        self._saved_at = time.monotonic()
        self._pending = False

    def allowed(self, covered: int | None) -> int | None:
        """The mark a commit may record: what its pages allow, never below where we started."""
        if covered is None or self.start.mark_us is None:
            return covered
        return max(covered, self.start.mark_us)

    def table_mark(self, mark: int | None) -> TableMark | None:
        """The mark as the table keeps it, in the commit of the rows it covers."""
        return TableMark(app_id(self.pipeline), mark) if mark is not None else None

    def committed(self, mark: int, version: int | None) -> str:
        """A commit carrying ``mark`` landed as table ``version``: the store may hear of it.

        Saved now only if the last save is ``MARK_SAVE_EVERY_SECONDS`` old. Returns the mark as
        text, for the summary.
        """
        fields = self.block.model_dump(
            exclude={"cursor", "table_version", "pipeline", "resource"}) \
            if self.block is not None else {}
        self.latest = Mark(pipeline=self.pipeline, resource=self.resource,
                           cursor=format_cursor(mark), table_version=version, **fields)
        self._pending = True
        if time.monotonic() - self._saved_at >= MARK_SAVE_EVERY_SECONDS:
            self.flush()
        return self.latest.cursor  # type: ignore[return-value]

    def settle(self, mark: int | None, run_id: str, summary: ResourceSummary) -> None:
        """After a complete read, record its final mark even if no commit carried it.

        A read that changed nothing commits nothing; after ``state reset`` that left the
        resource without a mark, and every later run read it all again (``markcommit.py``).
        """
        if mark is None or (self.start.mark_us is not None and mark <= self.start.mark_us):
            return  # the read found nothing newer than where it began
        if summary.mark is not None and parse_cursor(summary.mark) >= mark:
            return  # the last data commit carried it
        version = record_mark(self.lake, self.resource, TableMark(app_id(self.pipeline), mark),
                              {"analytics_sync.run_id": run_id})
        summary.mark = self.committed(
            mark, version if version is not None else self.lake.version(self.resource))

    def flush(self) -> None:
        """Hand the last committed mark to the store, if it has not had it yet."""
        if self.store is not None and self._pending and self.latest is not None:
            self.store.save(self.latest)
            self._saved_at, self._pending = time.monotonic(), False

    def flush_quietly(self, log: Log) -> None:
        """On failure: the failure is what the caller reports, not a failed save."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001
            log.exception("%s: could not save the mark of the last commit to the state store "
                          "(the table keeps it; the next run starts from there)", self.resource)

    def succeeded(self, summary: ResourceSummary) -> None:
        """Record the successful run; the cursor is the last committed one, never more."""
        if self.store is None:
            return
        latest = self.latest or self.block
        start = self.start.mark_us
        cursor = latest.cursor if latest is not None else (
            format_cursor(start) if start is not None else None)
        self.store.save(Mark(
            pipeline=self.pipeline, resource=self.resource, cursor=cursor,
            table_version=latest.table_version if latest is not None else summary.table_version,
            last_success_at=dt.datetime.now(dt.UTC), rows_fetched=summary.rows_fetched,
            inserted=summary.inserted, updated=summary.updated,
        ))

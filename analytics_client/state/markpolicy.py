"""Mark policy: where a resource's read starts, which mark each commit may record, and when the
state store hears of it.

The one rule behind all of it: a mark is never ahead of the data committed to Delta. A read
starts at the lower of the state block's and the table's mark (``state.effective_start``),
``lag`` seconds earlier; a commit records the mark its pages allow, never below the start; the
state store (a Prefect block: API round trips) gets a committed mark at most every
``Timing.mark_save_every`` seconds and at the end, and a successful run last. A block that lags its
table is safe (a run starts from the lower of the two); one ahead of it cannot happen, since
only committed marks reach the store.

Marks are epoch microseconds here; ``timestamps.py`` turns them into the text the store keeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.core.window import Window
from analytics_client.lake.markcommit import record_mark
from analytics_client.lake.tables import Lake, TableMark
from analytics_client.state.marks import Mark, MarkStore, Start, app_id, effective_start

__all__ = ["MarkPolicy", "MarkSpec", "ParentVersionMarks", "ResourceMarks", "mark_policy",
           "parent_app_id"]

Log = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class MarkSpec:
    """How a resource's marks are kept, from its plan: ``incremental`` resources keep a cursor
    mark (table and store); a backfill (``window``) neither reads nor moves it (dlt's
    ``end_value``); a ``child`` keeps the parent version its children were read for."""

    resource: str
    incremental: bool = False
    initial_value: str | None = None
    end_value: str | None = None
    window: Window | None = None
    child: bool = False


class MarkPolicy(Protocol):
    """What the sync loop asks of a resource's marks (``ResourceMarks``, ``ParentVersionMarks``)."""

    start: Start

    def allowed(self, covered: int | None) -> int | None: ...
    def table_mark(self, mark: int | None) -> TableMark | None: ...
    def committed(self, mark: int, version: int | None) -> str | None: ...
    def settle(self, mark: int | None, run_id: str, summary: ResourceSummary) -> None: ...
    def flush(self) -> None: ...
    def flush_quietly(self, log: Log) -> None: ...
    def succeeded(self, summary: ResourceSummary) -> None: ...


def mark_policy(lake: Lake, spec: MarkSpec, pipeline: str, store: MarkStore | None, *,
                full_refresh: bool, timing: Timing = DEFAULT_TIMING) -> MarkPolicy:
    """The marks of one read of the resource ``spec`` describes."""
    if spec.child:
        return ParentVersionMarks(lake, spec.resource, pipeline, full_refresh=full_refresh)
    return ResourceMarks(lake, spec, pipeline, store, full_refresh=full_refresh, timing=timing)


class ResourceMarks:
    """The marks of one read of one resource: its start, its commits' marks, its saves."""

    def __init__(self, lake: Lake, spec: MarkSpec, pipeline: str,
                 store: MarkStore | None, *, full_refresh: bool,
                 timing: Timing = DEFAULT_TIMING) -> None:
        window = spec.window
        if window is not None:
            store = None  # a backfill neither reads nor moves the mark (dlt's end_value)
        self.lake, self.resource, self.pipeline, self.store = lake, spec.resource, pipeline, store
        self.save_every = timing.mark_save_every
        self.block = store.load(pipeline, spec.resource) \
            if store is not None and spec.incremental else None
        if not spec.incremental:
            self.start = Start(None, "not incremental: full read")
        elif window is not None:
            self.start = Start(window.start_us, f"backfill [{spec.initial_value}, "
                               f"{spec.end_value}): the mark is neither read nor moved")
        elif full_refresh:
            self.start = Start(None, "full refresh requested: reading everything")
        else:
            self.start = effective_start(lake, spec.resource, pipeline, self.block,
                                         spec.initial_value)
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

        Saved now only if the last save is ``Timing.mark_save_every`` old. Returns the mark as
        text, for the summary.
        """
        fields = self.block.model_dump(
            exclude={"cursor", "table_version", "pipeline", "resource"}) \
            if self.block is not None else {}
        self.latest = Mark(pipeline=self.pipeline, resource=self.resource,
                           cursor=format_cursor(mark), table_version=version, **fields)
        self._pending = True
        if time.monotonic() - self._saved_at >= self.save_every:
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


def parent_app_id(pipeline: str) -> str:
    """Under which app id a child table records the parent version it was read for."""
    return f"{app_id(pipeline)}:parent-version"


class ParentVersionMarks:
    """A child's marks (read/children.py): the parent table's version whose changed rows its
    children were read for, kept in the child table as the app transaction
    ``<pipeline app id>:parent-version``. Its start is that version (None: every parent, as on
    the first run or a full refresh); the read's end mark is the parent version it read for,
    recorded with the last children's rows (or alone) once every child of the list is
    committed: like every mark here, never ahead of the data. No state store: the child
    table is the only place, as a full refresh of the child is the only reset."""

    def __init__(self, lake: Lake, resource: str, pipeline: str, *, full_refresh: bool) -> None:
        self.lake, self.resource, self.app = lake, resource, parent_app_id(pipeline)
        since = None if full_refresh else lake.mark(resource, self.app)
        self.start = Start(since, "full refresh: the children of every parent" if full_refresh
                           else "the children of every parent" if since is None
                           else f"the children of parents changed since version {since}")
        self._recorded: int | None = None

    def allowed(self, covered: int | None) -> int | None:
        return covered

    def table_mark(self, mark: int | None) -> TableMark | None:
        return TableMark(self.app, mark) if mark is not None else None

    def committed(self, mark: int, version: int | None) -> str | None:
        self._recorded = mark
        return None  # a parent version is no cursor: the summary shows none

    def settle(self, mark: int | None, run_id: str, summary: ResourceSummary) -> None:
        """Record the version read for if no commit carried it (a run with no children)."""
        if mark is None or mark == self._recorded:
            return
        record_mark(self.lake, self.resource, TableMark(self.app, mark),
                    {"analytics_sync.run_id": run_id})
        self._recorded = mark

    def flush(self) -> None:
        return None

    def flush_quietly(self, log: Log) -> None:
        return None

    def succeeded(self, summary: ResourceSummary) -> None:
        return None

"""Syncing one resource: its pages into bounded batches into Delta commits.

A batch is committed when it reaches ``batch_rows`` records, so memory is bounded by the batch,
not by the resource. When a page fails (after its retries), the records fetched before it are
still committed, then the resource fails (``ResourceFailed``): a rerun resumes from a table that
holds everything the API served until then.

Pages come from one ``pages.PageSource`` whatever walks the API: a keyset walk (``keyset.py``,
several at once with ``slices.py``) for incremental resources whose API filters by the cursor
and pages by number, a lagged re-read or a backfill (``window.py``) with any other paginator
that filters, else the paginator's read (``extract.py``). Each commit records the mark its pages
allow in the same Delta commit; ``markpolicy.py`` decides where a read starts and when the state
store hears of a mark. A whole run of resources: ``run.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from analytics_client.config.model import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_PIPELINE,
    ResourceConfig,
    parent_of,
)
from analytics_client.core.errors import ConfigError, ResourceFailed
from analytics_client.core.stop import until_stopped
from analytics_client.core.summary import ResourceSummary, WriteResult
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.responses import apply_steps
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.tables import Lake, TableWriter
from analytics_client.read.keyset import KeysetWalk
from analytics_client.read.paged import PaginatedRead, api_count
from analytics_client.read.pages import Page, PageSource
from analytics_client.read.slices import SlicedWalk
from analytics_client.read.window import (
    BackfillRead,
    LaggedRead,
    Window,
    backfill,
    filtered,
    keyset_capable,
    table_max_cursor,
)
from analytics_client.run.budget import RowBudget
from analytics_client.run.progress import expected_total, progress_line
from analytics_client.state.markpolicy import ResourceMarks, read_from
from analytics_client.state.marks import MarkStore

__all__ = ["page_source", "replay_quarantine", "sync_resource", "table_writer"]

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[Any]

PROGRESS_EVERY_SECONDS = 10.0


def sync_resource(
    client: ApiClient,
    lake: Lake,
    resource: ResourceConfig,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    run_id: str = "",
    log: Log | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    marks: MarkStore | None = None,
    full_refresh: bool = False,
    budget: RowBudget | None = None,
) -> ResourceSummary:
    """Fetch ``resource`` (what changed since its mark, if incremental) into its table.

    Raises ``ResourceFailed`` on failure: its ``summary`` says how far the resource got, the
    cause is chained. ``marks`` is where marks are kept besides the table (None: the table's
    alone). ``budget`` bounds the records (and their bytes) all resources of the run hold at once
    (``budget.py``).
    """
    log = log or logger
    summary = ResourceSummary(resource.name)
    progress = _Progress(log, summary)

    def count_retry(event: RetryEvent) -> None:
        summary.retries += 1

    try:
        if parent_of(resource) is not None:  # its path needs a parent record
            raise ConfigError([f"{resource.name}: a child resource is read for its parent's "
                               "records by SyncRun.sync / run_sync (children.py), not alone"])
        policy = ResourceMarks(lake, resource, pipeline, marks, full_refresh=full_refresh)
        source = page_source(client, resource, policy.start.mark_us, count_retry, lake)
        batch = _Batch(lake, resource, run_id, policy, budget or RowBudget(batch_rows), summary,
                       batch_rows, Quarantine(lake, pipeline, run_id))
    except Exception as exc:
        raise _failed(summary, exc) from exc
    if resource.endpoint.incremental is not None:
        log.info("%s: %s", resource.name, policy.start.reason)
    # Ctrl-C / SIGTERM (stop.py): the page in hand is still committed, no further one is read.
    pages = until_stopped(iter(source), client.stop)
    try:
        for page in _committing_on_failure(pages, batch, log):
            batch.add(page)
            progress.page(source)
        batch.commit(source.end_mark())  # the read's last word, if it ran to its end
        if client.stop.requested:
            return _stopped(summary, policy, client.stop.reason)
        _finish(client, lake, resource, source, policy, batch, run_id, log)
        return summary
    except Exception as exc:
        policy.flush_quietly(log)
        raise _failed(summary, exc) from exc
    finally:
        pages.close()  # a sliced walk's threads end here, whatever ended the loop
        summary.reread = source.reread
        batch.leave()  # and what a failure left uncommitted
        summary.seconds = time.monotonic() - progress.started
        log.info("%s: %s in %.1f s: %s pages, %s fetched, %s inserted, %s updated, %s retries",
                 resource.name, summary.status, summary.seconds, f"{summary.pages:,}",
                 f"{summary.rows_fetched:,}", f"{summary.inserted:,}", f"{summary.updated:,}",
                 summary.retries)


def page_source(client: ApiClient, resource: ResourceConfig, mark_us: int | None,
                on_retry: Callable[[RetryEvent], None], lake: Lake | None = None) -> PageSource:
    """The read of ``resource`` from ``mark_us``: keyset walks when the API filters by the
    cursor and pages by number (several at once if ``endpoint.concurrency`` says so), a lagged
    re-read (``window.py``) with any other paginator that filters (its mark bounded by
    ``lake``'s table), a backfill's window, else the paginator's read."""
    incremental = resource.endpoint.incremental
    if incremental is None or not filtered(resource):
        return PaginatedRead(client, resource, on_retry=on_retry)
    window = backfill(incremental)
    if window is not None:  # read exactly, without lag; no mark read or moved
        exact: PageSource = (
            KeysetWalk(client, resource, start_us=window.start_us, stop_us=window.end_us,
                       on_retry=on_retry) if keyset_capable(resource)
            else LaggedRead(client, resource, window, below_start_us=None, on_retry=on_retry))
        return BackfillRead(exact, window, incremental.cursor_path)
    begin = read_from(mark_us, incremental)
    if not keyset_capable(resource):
        below = None if lake is None else table_max_cursor(lake, resource.name,
                                                           incremental.cursor_path)
        return LaggedRead(client, resource, Window(begin), below_start_us=below,
                          on_retry=on_retry)
    if resource.endpoint.concurrency > 1:
        return SlicedWalk(client, resource, start_us=begin, slices=resource.endpoint.concurrency,
                          on_retry=on_retry)
    return KeysetWalk(client, resource, start_us=begin, on_retry=on_retry)


class _Batch:
    """The records fetched and not yet committed, and how a commit lands: rows and their mark
    in one Delta commit, then the mark to the state store (never the other way round)."""

    def __init__(self, lake: Lake, resource: ResourceConfig, run_id: str, policy: ResourceMarks,
                 budget: RowBudget, summary: ResourceSummary, rows: int,
                 quarantine: Quarantine) -> None:
        self.writer = table_writer(lake, resource, quarantine)
        self.resource = resource
        self.run_id, self.policy, self.summary = run_id, policy, summary
        self.rows = rows
        self.records: list[Any] = []
        self.covered: int | None = None  # the mark the pages consumed so far allow
        self.share = budget.join()

    def add(self, page: Page) -> None:
        """Hold a page's records; commit once the batch is full or the run's budget is."""
        self.covered = page.mark
        self.summary.pages += 1
        self.summary.rows_fetched += len(page.records)
        # After the read and its mark have seen them: a filtered record counts as read.
        kept = apply_steps(self.resource.processing_steps, page.records)
        self.records.extend(kept)
        over_budget = self.share.take(kept)
        if len(self.records) >= self.rows or over_budget:
            self.commit()

    def commit(self, covered: int | None = None) -> None:
        """Commit what is held (if anything), with the mark ``covered`` (else the last page's)
        allows."""
        if covered is not None:
            self.covered = covered
        if not self.records:
            return
        mark = self.policy.allowed(self.covered)
        with self.share.budget.committing():
            result = self.writer.write(self.records,
                                       commit_metadata={"analytics_sync.run_id": self.run_id},
                                       mark=self.policy.table_mark(mark))
        self.summary.add_write(result)
        self.share.committed()
        self.records.clear()
        if result.version is not None and mark is not None:
            # Only now that the rows it covers are committed.
            self.summary.mark = self.policy.committed(mark, result.version)

    def leave(self) -> None:
        self.share.leave()


def _committing_on_failure(pages: Iterable[Page], batch: _Batch, log: Log) -> Iterable[Page]:
    """``pages``; when one fails, the records fetched before it are committed, then it raises."""
    try:
        yield from pages
    except Exception:
        try:
            batch.commit()
        except Exception:  # the page's failure is the one to report
            log.exception("%s: could not commit the records fetched before the failure",
                          batch.summary.resource)
        raise


class _Progress:
    """A progress line at most every ``PROGRESS_EVERY_SECONDS`` (``progress.py``)."""

    def __init__(self, log: Log, summary: ResourceSummary) -> None:
        self.log, self.summary = log, summary
        self.started = self.logged = time.monotonic()

    def page(self, source: PageSource) -> None:
        if time.monotonic() - self.logged < PROGRESS_EVERY_SECONDS:
            return
        self.logged = time.monotonic()
        summary = self.summary
        self.log.info("%s: %s", summary.resource, progress_line(
            summary.rows_fetched, source.reread, expected_total(source),
            self.logged - self.started, summary.pages, summary.commits))


def _finish(client: ApiClient, lake: Lake, resource: ResourceConfig, source: PageSource,
            policy: ResourceMarks, batch: _Batch, run_id: str, log: Log) -> None:
    """A read that ran to its end: the writer's last word, notes, the final mark, success."""
    summary = batch.summary
    summary.add_write(batch.writer.finish())
    summary.status = "ok"
    if summary.quarantined:
        summary.notes.append(
            f"{summary.quarantined:,} record(s) set aside in {lake.quarantine_uri()}: "
            "`quarantine show` says why; after changing the config, `quarantine replay` "
            "writes them again; once the API's data is fixed, --full-refresh re-reads them")
    if not source.keyset:
        return
    if resource.write_disposition != "replace":
        policy.settle(policy.allowed(batch.covered), run_id, summary)
    # A filter keeps fewer rows than the API counts: no count to compare with.
    full_read = policy.start.mark_us is None and not resource.processing_steps
    _compare_with_total(client, resource, source,
                        lake.row_count(resource.name) if full_read else None, summary, log)
    policy.succeeded(summary)


def _failed(summary: ResourceSummary, exc: Exception) -> ResourceFailed:
    summary.status = "failed"
    summary.error = str(exc) or type(exc).__name__
    return ResourceFailed(summary, exc)


def _stopped(summary: ResourceSummary, policy: ResourceMarks,
             reason: str | None) -> ResourceSummary:
    """A stopped resource: its commits stand, the state store gets their mark, no success."""
    policy.flush()
    summary.status = "stopped"
    summary.error = (f"stopped by {reason or 'request'} after {summary.pages:,} pages; what was "
                     "fetched is committed and the next run resumes from "
                     + (summary.mark or "the previous mark"))
    return summary


def table_writer(lake: Lake, resource: ResourceConfig, quarantine: Quarantine) -> TableWriter:
    """The writer of a resource's table as its config says: types, key, cursor, bad records."""
    incremental = resource.endpoint.incremental
    return TableWriter(lake, resource.name, write_disposition=resource.write_disposition,
                       primary_key=resource.primary_key,
                       # Without a cursor the merge is an upsert on the key (dlt's too).
                       cursor_field=incremental.cursor_path if incremental else None,
                       columns=resource.columns,
                       set_aside=quarantine.add if resource.on_bad_record == "quarantine"
                       else None)


def replay_quarantine(lake: Lake, resource: ResourceConfig, pipeline: str,
                      run_id: str = "") -> tuple[WriteResult, int]:
    """Re-ingest ``resource``'s quarantined records through its current config (quarantine.py).

    Returns the write's counts and how many records landed (and left the quarantine).
    """
    quarantine = Quarantine(lake, pipeline, run_id)
    return quarantine.replay(table_writer(lake, resource, quarantine))


def _compare_with_total(client: ApiClient, resource: ResourceConfig,
                        walk: PageSource, rows: int | None,
                        summary: ResourceSummary,
                        log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """After a full read, the table should hold as many rows as the API counted.

    The table's count, not a set of the ids read: that would grow with the resource. Records
    created during the read explain a table between the API's count at the start and its count
    now (the API deletes nothing); anything else is not blamed on them: rows are missing, or the
    table keeps rows the API no longer lists. Only then is one more request spent, for the count.
    """
    if walk.recovered:
        summary.notes.append(f"re-reading tie groups found {walk.recovered} record(s) that records "
                             "changing during paging had shifted past a page boundary")
    started = walk.total_count
    if rows is None or started is None or rows == started:
        return
    try:
        now = api_count(client, resource)
    except Exception as exc:  # noqa: BLE001 - a note must not fail a finished resource
        log.warning("%s: could not ask the API for its count again: %s", resource.name, exc)
        now = None
    if now is not None and min(started, now) <= rows <= max(started, now):
        summary.notes.append(
            f"after a full read the table holds {rows:,} rows; the API counted {started:,} when "
            f"the read began and {now:,} now (records created during the run explain the "
            "difference)")
        return
    counted = f"{started:,} when the read began" + (f" and {now:,} now" if now is not None else "")
    verdict = ("rows may be missing: run again with --full-refresh, and check primary_key if it "
               "persists" if rows < started else
               "the table keeps rows the API no longer lists, or ids that changed")
    note = (f"after a full read the table holds {rows:,} rows; the API counted {counted}: a gap "
            f"that records created during the run cannot explain; {verdict}")
    summary.notes.append(note)
    log.warning("%s: %s", resource.name, note)



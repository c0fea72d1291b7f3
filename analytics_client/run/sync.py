"""Syncing one resource: its pages into bounded batches into Delta commits. The one loop.

A batch is committed when it reaches ``batch_rows`` records, so memory is bounded by the batch,
not by the resource. When a page fails (after its retries), the records fetched before it are
still committed, then the resource fails (``ResourceFailed``): a rerun resumes from a table that
holds everything the API served until then.

The resource's plan (``read/plan.py``, resolved once from its config) names its read, and
pages come from one ``pages.PageSource`` whatever walks the API: a keyset walk
(``keyset.py``, several at once with ``slices.py``) for incremental resources whose API
filters by the cursor and pages by number, a lagged re-read or a backfill (``window.py``) with
any other paginator that filters, a child's reads per changed parent (``children.py``), else
the paginator's read (``paged.py``). Each commit records the mark its pages allow in the same
Delta commit; the mark policy (``state/markpolicy.py``) decides where a read starts and when
the state store hears of a mark. A whole run of resources: ``session.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from analytics_client.config.model import DEFAULT_BATCH_ROWS, DEFAULT_PIPELINE, ResourceConfig
from analytics_client.core.errors import ContractError, ResourceFailed
from analytics_client.core.lock import pipeline_lock
from analytics_client.core.stop import until_stopped
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.core.window import Window
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.responses import apply_steps
from analytics_client.lake.quarantine import Quarantine, Replayed
from analytics_client.lake.tables import Lake, TableSpec, TableWriter
from analytics_client.read.children import ChildRead
from analytics_client.read.keyset import FilterFallback, KeysetWalk
from analytics_client.read.paged import PaginatedRead, api_count
from analytics_client.read.pages import Page, PageSource
from analytics_client.read.plan import ResourcePlan, plan_resource
from analytics_client.read.resume import resume_of
from analytics_client.read.slices import SlicedWalk
from analytics_client.read.window import BackfillRead, LaggedRead, table_max_cursor
from analytics_client.run.budget import DEFAULT_MERGE_BYTES, RowBudget
from analytics_client.run.deletes import SeenKeys, capture_deletes
from analytics_client.run.progress import expected_total, progress_line
from analytics_client.state.markpolicy import FutureRecords, MarkPolicy, mark_policy
from analytics_client.state.marks import MarkStore

__all__ = ["page_source", "replay_quarantine", "sync_resource", "table_writer"]

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[Any]


def sync_resource(
    client: ApiClient,
    lake: Lake,
    plan: ResourcePlan,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    run_id: str = "",
    log: Log | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    marks: MarkStore | None = None,
    full_refresh: bool = False,
    budget: RowBudget | None = None,
    timing: Timing = DEFAULT_TIMING,
    children: Sequence[ResourcePlan] = (),
) -> ResourceSummary:
    """Fetch the resource ``plan`` describes (what changed since its mark, if incremental; a
    child's children of the parents changed since they were last read) into its table.

    Raises ``ResourceFailed`` on failure: its ``summary`` says how far the resource got, the
    cause is chained. ``marks`` is where marks are kept besides the table (None: the table's
    alone). ``budget`` bounds the records (and their bytes) all resources of the run hold at once
    (``budget.py``). ``timing``: the run's intervals (``core/timing.py``). ``children``: the
    plans of the resources read per row of this one, whose rows follow a deleted parent's
    (``deletes.py``).
    """
    log = log or logger
    summary = ResourceSummary(plan.name)
    progress = _Progress(log, summary, timing.progress_every)

    def count_retry(event: RetryEvent) -> None:
        summary.retries += 1

    try:
        clock = client.watch_clock(plan.name)  # the API's clock, as this read's answers show it
        policy = mark_policy(lake, plan.marks, pipeline, marks, full_refresh=full_refresh,
                             timing=timing, clock=clock)
        plan = plan.starting(policy.start)
        source = page_source(client, plan, count_retry, lake, notes=summary.notes, log=log)
        batch = _Batch(lake, plan, run_id, policy, budget or RowBudget(batch_rows), summary,
                       batch_rows, Quarantine(lake, pipeline, run_id), timing)
        if plan.cursor is not None and plan.cursor.codec.clocked:
            batch.future = FutureRecords(plan.cursor.path, plan.primary_key, clock)
        batch.seen = _seen_keys(plan, policy)
    except Exception as exc:
        raise _failed(summary, exc) from exc
    if plan.incremental:
        log.info("%s: %s", plan.name, policy.start.reason)  # where it starts, and why
    # Ctrl-C / SIGTERM (stop.py): the page in hand is still committed, no further one is read.
    # A keyset read's pages already fetched are committed too: its next needs a request.
    pages = until_stopped(iter(source), client.stop, drain=source.keyset)
    try:
        for page in _committing_on_failure(pages, batch, log):
            batch.add(page)
            progress.page(source)
        end = source.end_mark()  # the read's last word, if it ran to its end
        batch.commit(end, final=end is not None)
        if client.stop.requested:
            return _stopped(summary, policy, client.stop.reason)
        _finish(client, lake, plan, source, policy, batch, run_id, log, children, count_retry,
                pipeline)
        return summary
    except Exception as exc:
        policy.flush_quietly(log)
        raise _failed(summary, exc) from exc
    finally:
        pages.close()  # a sliced walk's threads end here, whatever ended the loop
        summary.reread = source.reread
        batch.leave()  # and what a failure left uncommitted
        summary.seconds = time.monotonic() - progress.started
        log.info("%s: %s in %.1f s: %s pages, %s fetched, %s inserted, %s updated, %s deleted, "
                 "%s retries", plan.name, summary.status, summary.seconds, f"{summary.pages:,}",
                 f"{summary.rows_fetched:,}", f"{summary.inserted:,}", f"{summary.updated:,}",
                 f"{summary.deleted:,}", summary.retries)


def page_source(client: ApiClient, plan: ResourcePlan, on_retry: Callable[[RetryEvent], None],
                lake: Lake | None = None, *, notes: list[str] | None = None,
                log: Log = logger) -> PageSource:
    """The read ``plan.mode`` names, from ``plan.start`` (a cursor in epoch µs, a child's
    parent version; no start: everything). A lagged read's mark is bounded by ``lake``'s
    table; a child reads the parent's table in ``lake``; ``notes`` gets what the summary says.
    """
    cursor = plan.cursor
    start = plan.start.mark_us if plan.start is not None else None
    if plan.mode == "child":
        if lake is None:
            raise ValueError(f"{plan.name}: a child is read for its parent's table: give lake")
        below = None if cursor is None else table_max_cursor(lake, plan.name, cursor.path,
                                                             cursor.codec)
        return ChildRead(client, plan, lake, since=start if cursor is None else None,
                         notes=notes if notes is not None else [], log=log, on_retry=on_retry,
                         begin=cursor.begin(plan.start) if cursor is not None else None,
                         below_start=below)
    if plan.mode == "paged" or cursor is None:
        return PaginatedRead(client, plan.request, on_retry=on_retry)
    if plan.mode == "backfill":  # read exactly, without lag; no mark read or moved
        window = plan.window
        assert window is not None
        exact: PageSource = (
            FilterFallback(KeysetWalk(client, plan, start_us=window.start_us,
                                      stop_us=window.end_us, on_retry=on_retry),
                           client, plan, window, on_retry=on_retry) if plan.walk == "keyset"
            else LaggedRead(client, plan, window, below_start_us=None, on_retry=on_retry))
        return BackfillRead(exact, window, cursor.path, cursor.codec)
    begin = cursor.begin(plan.start)
    if plan.mode == "lagged":
        below = None if lake is None else table_max_cursor(lake, plan.name, cursor.path,
                                                           cursor.codec)
        return LaggedRead(client, plan, Window(begin), below_start_us=below, on_retry=on_retry,
                          unfiltered=not plan.api_filters)
    # An API that turns out to ignore the filter is read on as dlt reads it (FilterFallback).
    walk: PageSource = (
        # A stopped read's resume walks only what it left (resume.py).
        SlicedWalk(client, plan, start_us=begin, slices=plan.concurrency, on_retry=on_retry,
                   resume=resume_of(cursor, plan.start) if plan.start else None)
        if plan.mode == "sliced" else KeysetWalk(client, plan, start_us=begin, on_retry=on_retry))
    return FilterFallback(walk, client, plan, Window(begin), lake=lake, on_retry=on_retry)


class _Batch:
    """The records fetched and not yet committed, and how a commit lands: rows and their mark
    in one Delta commit, then the mark to the state store (never the other way round).

    A merge table's full batches are staged (``TableWriter.stage``), and merged in one commit
    with the mark at ``commit``: at the read's end or failure, or once ``merge_bytes`` are
    staged or ``Timing.merge_every`` passed (budget.py). Other tables commit each batch."""

    def __init__(self, lake: Lake, plan: ResourcePlan, run_id: str, policy: MarkPolicy,
                 budget: RowBudget, summary: ResourceSummary, rows: int,
                 quarantine: Quarantine, timing: Timing = DEFAULT_TIMING) -> None:
        self.writer = table_writer(lake, plan.table, quarantine)
        self.quarantine = quarantine
        self.steps = plan.steps
        self.run_id, self.policy, self.summary = run_id, policy, summary
        self.rows = rows
        self.records: list[Any] = []
        self.covered: int | None = None  # the mark the pages consumed so far allow
        self.ahead: tuple[tuple[int, int], ...] = ()  # and the ranges read above it
        self.share = budget.join()
        self.seen: SeenKeys | None = None  # the keys served, where deletes are captured
        self.future: FutureRecords | None = None  # records stamped past the API's clock
        self.merge_bytes, self.merge_every = DEFAULT_MERGE_BYTES, timing.merge_every
        self.merged_at = time.monotonic()
        # yield_map rows that would collapse into one: sharing a merge key, or an append's
        # version (key and cursor: lake/versions.py) (``_distinct``).
        self.yielded_key = _identity(plan) if any(
            step.yield_map is not None for step in plan.steps) else None
        self.name = plan.name
        # A nested cursor, which lands in a column of its own (``_with_cursor_column``).
        self.cursor = plan.cursor if plan.cursor is not None and plan.cursor.nested else None

    def add(self, page: Page) -> None:
        """Hold a page's records; commit once the batch is full or the run's budget is."""
        self.covered, self.ahead = page.mark, page.ahead
        self.summary.pages += 1
        self.summary.rows_fetched += len(page.records)
        if self.seen is not None:  # every key served, also those kept out on our side
            self.seen.add(page.all_served)
        if self.future is not None:
            self.future.see(page.records)
        # After the read and its mark have seen them: a filtered record counts as read.
        # dlt's order for a child too: parent fields first, then the resource's steps.
        kept = apply_steps(self.steps, self._with_cursor_column(page.records))
        if self.yielded_key is not None:
            _distinct(self.name, self.yielded_key, kept)
        self.records.extend(kept)
        over_budget = self.share.take(kept)
        if len(self.records) >= self.rows or over_budget:
            if not self.writer.stages:
                self.commit()
                return
            self._stage()
            if (self.writer.staged_bytes >= self.merge_bytes
                    or time.monotonic() - self.merged_at >= self.merge_every):
                self.commit()

    def _with_cursor_column(self, records: list[Any]) -> list[Any]:
        """A nested cursor (``cursor_path: properties.hs_lastmodifieddate``) copied to its
        column (``properties__hs_lastmodifieddate``, dlt's name), which the merge compares."""
        cursor = self.cursor
        if cursor is None:
            return records
        column = cursor.column
        out = []
        for record in records:
            if isinstance(record, dict) and column not in record:
                value = cursor.value(record)
                if value is not None:
                    record = {**record, column: value}
            out.append(record)
        return out

    def _stage(self) -> None:
        """Stage the records held (a merge table): off the budget, not yet in the table."""
        if not self.records:
            return
        with self.share.budget.committing():
            self.summary.add_write(self.writer.stage(self.records))
        self.share.committed()
        self.records.clear()

    def commit(self, covered: int | None = None, *, final: bool = False) -> None:
        """Commit what is held and staged (if anything), with the mark ``covered`` (else the
        last page's) allows; ``final``: the mark of a read that ran to its end (it carries the
        API's clock)."""
        if covered is not None:
            self.covered = covered
        staging = self.writer.stages
        if staging:
            self._stage()
            self.merged_at = time.monotonic()
        if not self.records and not self.writer.staged_rows:
            return
        mark = self.policy.table_mark(self.policy.allowed(self.covered), final=final,
                                      ahead=() if final else self.ahead)
        metadata = {"analytics_sync.run_id": self.run_id}
        with self.share.budget.committing():
            result = self.writer.flush(commit_metadata=metadata, mark=mark) if staging \
                else self.writer.write(self.records, commit_metadata=metadata, mark=mark)
        self.summary.add_write(result)
        self.share.committed()
        self.records.clear()
        if result.version is not None and mark is not None:
            # Only now that the rows it covers are committed.
            self.summary.mark = self.policy.committed(mark, result.version)

    def leave(self) -> None:
        """The resource is done: what it holds leaves the budget, what it staged and did not
        merge (after a failure) is removed; its mark did not move, so the next run reads it."""
        self.share.leave()
        self.writer.close()


def _identity(plan: ResourcePlan) -> tuple[str, ...] | None:
    """The columns that make rows one row in ``plan``'s table: a merge's key; an append's
    version, key and cursor (lake/versions.py); None where every row lands."""
    table = plan.table
    if table.write_disposition == "merge":
        return table.key
    if table.write_disposition == "append" and table.cursor_field is not None:
        return (*table.key, table.cursor_field)
    return None


def _distinct(resource: str, key: tuple[str, ...], rows: list[Any]) -> None:
    """Raise ``ContractError`` when a ``yield_map`` made rows that share their table's
    identity (``_identity``): all but one would be lost without a word."""
    seen: set[str] = set()
    for row in rows:
        values = tuple(row.get(column) for column in key) if isinstance(row, dict) else (row,)
        text = repr(values)
        if text in seen:
            raise ContractError(
                resource, f"its yield_map made several rows with the key {values!r} "
                f"({', '.join(key)}); all but one would be lost (a merge keeps one row per key, "
                "an incremental append one per key and cursor): give each row a key of its own "
                "(primary_key: a list naming the column that tells them apart), or, without "
                "incremental, set write_disposition: append (a child is merged per parent: key "
                "its rows)")
        seen.add(text)


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
    """A progress line at most every ``every`` seconds (``progress.py``)."""

    def __init__(self, log: Log, summary: ResourceSummary, every: float) -> None:
        self.log, self.summary, self.every = log, summary, every
        self.started = self.logged = time.monotonic()

    def page(self, source: PageSource) -> None:
        if time.monotonic() - self.logged < self.every:
            return
        self.logged = time.monotonic()
        summary = self.summary
        self.log.info("%s: %s", summary.resource, progress_line(
            summary.rows_fetched, source.reread, expected_total(source),
            self.logged - self.started, summary.pages, summary.commits))


def _finish(client: ApiClient, lake: Lake, plan: ResourcePlan, source: PageSource,
            policy: MarkPolicy, batch: _Batch, run_id: str, log: Log,
            children: Sequence[ResourcePlan], on_retry: Callable[[RetryEvent], None],
            pipeline: str) -> None:
    """A read that ran to its end: the writer's last word, notes, the final mark, the
    deletes the read shows, success."""
    summary = batch.summary
    summary.add_write(batch.writer.finish())
    for remark in [*policy.remarks(), *([batch.future.note()] if batch.future else [])]:
        if remark is not None:
            summary.notes.append(remark)
            log.warning("%s: %s", plan.name, remark)
    if summary.quarantined:
        summary.notes.append(
            f"{summary.quarantined:,} record(s) set aside in {lake.quarantine_uri()}: "
            "`quarantine show` says why; after changing the config, `quarantine replay` "
            "writes them again; once the API's data is fixed, --full-refresh re-reads them")
    if batch.quarantine.dropped:
        summary.notes.append(
            f"{batch.quarantine.dropped:,} quarantined record(s) dropped: a newer version of "
            "their key landed")
    mark = policy.allowed(batch.covered)
    if plan.table.write_disposition != "replace":
        # A read without marks allows none (None): nothing to settle.
        policy.settle(mark, run_id, summary)
    if batch.seen is not None:
        cursor = plan.cursor
        # The verification read is the next run's read: from where the marks now say it starts.
        begin_us, walked = (None, []) if source.served_everything else _served(plan, policy)
        capture_deletes(client, lake, plan, batch.seen, begin_us=begin_us, walked=walked,
                        next_begin_us=cursor.begin(policy.next_start()) if cursor else None,
                        run_id=run_id, pipeline=pipeline, summary=summary,
                        children=children, on_retry=on_retry, log=log)
    summary.status = "ok"
    if not source.keyset:
        return
    # A filter keeps fewer rows than the API counts: no count to compare with.
    full_read = policy.start.mark_us is None and not plan.steps
    _compare_with_total(client, plan, source,
                        lake.row_count(plan.name, live=True) if full_read else None, summary,
                        log)
    policy.succeeded(summary)


def _served(plan: ResourcePlan,
            policy: MarkPolicy) -> tuple[int | None, list[tuple[int | None, int]]]:
    """Where a complete read served every record: from a cursor on (None: everywhere), and in
    ranges below it (a resume's walks between the ranges a stopped run had read: resume.py)."""
    cursor = plan.cursor
    resume = resume_of(cursor, policy.start) if cursor and plan.mode == "sliced" else None
    if resume is None:
        return _read_start(plan, policy), []
    return resume.walks[-1][0], [(a, b) for a, b in resume.walks if b is not None]


def _read_start(plan: ResourcePlan, policy: MarkPolicy) -> int | None:
    """The cursor the read began at: every record at or after it was served (None: all)."""
    if plan.mode in ("paged", "child") or plan.cursor is None or policy.start.mark_us is None:
        return None  # a read of everything (a child here: of every parent's children)
    return plan.cursor.begin(policy.start)


def _seen_keys(plan: ResourcePlan, policy: MarkPolicy) -> SeenKeys | None:
    """Where the keys served must be kept: a merge table that captures deletes, read whole
    or from a cursor on (a backfill's window and a child's changed parents are neither)."""
    table = plan.table
    if table.write_disposition != "merge" or table.delete_missing == "off":
        return None
    if plan.window is not None \
            or (plan.mode == "child" and policy.start.mark_us is not None):
        return None  # a backfill's window, or a child's changed parents: not the whole
    return SeenKeys(table.key)


def _failed(summary: ResourceSummary, exc: Exception) -> ResourceFailed:
    summary.status = "failed"
    summary.error = str(exc) or type(exc).__name__
    return ResourceFailed(summary, exc)


def _stopped(summary: ResourceSummary, policy: MarkPolicy,
             reason: str | None) -> ResourceSummary:
    """A stopped resource: its commits stand, the state store gets their mark, no success."""
    policy.flush()
    summary.status = "stopped"
    summary.error = (f"stopped by {reason or 'request'} after {summary.pages:,} pages; what was "
                     "fetched is committed and the next run resumes from "
                     + (summary.mark or "the previous mark"))
    return summary


def table_writer(lake: Lake, table: TableSpec, quarantine: Quarantine) -> TableWriter:
    """The writer of a resource's table as its plan says: types, keys, cursor, bad records
    (set aside, and dropped once a merge lands a newer version of their key)."""
    return TableWriter(lake, table.name, write_disposition=table.write_disposition,
                       primary_key=table.primary_key, cursor_field=table.cursor_field,
                       columns=table.columns, parent_key=table.parent_key,
                       set_aside=quarantine.add if table.quarantine else None,
                       delete_missing=table.delete_missing,
                       max_delete_share=table.max_delete_share, hard_delete=table.hard_delete,
                       landed=quarantine.superseded if table.write_disposition == "merge"
                       else None,
                       cursor_nullable=table.cursor_nullable)


def replay_quarantine(lake: Lake, resource: ResourceConfig, pipeline: str,
                      run_id: str = "") -> Replayed:
    """Re-ingest ``resource``'s quarantined records through its current config, as its plan
    writes them (quarantine.py), holding the resource's lock (``PipelineBusyError`` while a
    run of it goes on: a row it lands meanwhile could make a replayed record stale).

    Returns how many landed and how many were stale (both left the quarantine).
    """
    with pipeline_lock(pipeline, [resource.name]):
        quarantine = Quarantine(lake, pipeline, run_id)
        return quarantine.replay(table_writer(lake, plan_resource(resource).table, quarantine))


def _compare_with_total(client: ApiClient, plan: ResourcePlan,
                        walk: PageSource, rows: int | None,
                        summary: ResourceSummary,
                        log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """After a full read, the table should hold as many rows as the API counted.

    The table's live rows, counted after delete capture (``deletes.py``). Records created or
    deleted during the read explain a table between the API's count at the start and its count
    now; anything else is not blamed on them: rows are missing, or the table keeps rows the API
    no longer lists. Only then is one more request spent, for the count.
    """
    if walk.recovered:
        summary.notes.append(f"re-reading tie groups found {walk.recovered} record(s) that records "
                             "changing during paging had shifted past a page boundary")
    started = walk.total_count
    if rows is None or started is None or rows == started:
        return
    try:
        now = api_count(client, plan.request)
    except Exception as exc:  # noqa: BLE001 - a note must not fail a finished resource
        log.warning("%s: could not ask the API for its count again: %s", plan.name, exc)
        now = None
    if now is not None and min(started, now) <= rows <= max(started, now):
        summary.notes.append(
            f"after a full read the table holds {rows:,} rows; the API counted {started:,} when "
            f"the read began and {now:,} now (records created or deleted during the run explain "
            "the difference)")
        return
    counted = f"{started:,} when the read began" + (f" and {now:,} now" if now is not None else "")
    verdict = ("rows may be missing: run again with --full-refresh, and check primary_key if it "
               "persists" if rows < started else
               "the table keeps rows the API no longer lists, or ids that changed")
    note = (f"after a full read the table holds {rows:,} rows; the API counted {counted}: a gap "
            f"that records created during the run cannot explain; {verdict}")
    summary.notes.append(note)
    log.warning("%s: %s", plan.name, note)



"""Syncing: pages into bounded batches into Delta commits, one resource or a whole run.

A batch is committed when it reaches ``batch_rows`` records, so memory is bounded by the batch,
not by the resource. When a page fails (after its retries), the records fetched before it are
still committed, then the resource fails: a rerun resumes from a table that holds everything
the API served until then.

Incremental resources read from their mark (``state.effective_start``) through a keyset walk
(``keyset.py``). Each batch commit stores the mark it covers in the same Delta commit; the state
store gets it afterwards (at most every ``MARK_SAVE_EVERY_SECONDS``, and at the end): state
never runs ahead of the data.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .budget import RowBudget
from .client import ApiClient, RetryEvent
from .config import PageNumberPaginator, ResourceConfig, SourceConfig
from .errors import ConfigError
from .extract import api_count, iter_pages
from .keyset import KeysetWalk, format_cursor, parse_cursor
from .slices import SlicedWalk
from .lake import Lake, TableMark, TableWriter, WriteResult
from .lock import pipeline_lock
from .markcommit import record_mark
from .progress import expected_total, progress_line
from .quarantine import Quarantine
from .state import Mark, MarkStore, Start, app_id, effective_start
from .redaction import install_log_filter, redact, remove_log_filter
from .secrets import Credentials
from .stop import until_stopped
from .summary import ResourceSummary

__all__ = ["DEFAULT_BATCH_ROWS", "full_refresh_set", "replay_quarantine", "run_sync",
           "sync_resource", "table_writer"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 10_000
PROGRESS_EVERY_SECONDS = 10.0
# The state store (a Prefect block: API round trips) gets a resource's mark at most this often
# during a run, and at its end; the table holds the exact mark of every commit meanwhile.
MARK_SAVE_EVERY_SECONDS = 30.0


def sync_resource(
    client: ApiClient,
    lake: Lake,
    resource: ResourceConfig,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    run_id: str = "",
    log: logging.Logger | logging.LoggerAdapter[Any] = logger,
    pipeline: str = "analytics",
    marks: MarkStore | None = None,
    full_refresh: bool = False,
    budget: RowBudget | None = None,
) -> ResourceSummary:
    """Fetch ``resource`` (what changed since its mark, if incremental) into its table.

    Raises on failure; the exception carries the partial summary as ``exc.summary``.
    ``marks`` is where marks are kept besides the table (None: the table's alone).
    ``budget`` bounds the records all resources of the run hold at once (``budget.py``).
    """
    budget = budget or RowBudget(batch_rows)
    summary = ResourceSummary(resource.name)
    started = last_progress = time.monotonic()
    incremental = resource.endpoint.incremental
    writer = table_writer(lake, resource, Quarantine(lake, pipeline, run_id))
    batch: list[Any] = []
    block = marks.load(pipeline, resource.name) if marks is not None and incremental else None
    start = _start(lake, resource, pipeline, block, full_refresh)
    if incremental is not None:
        log.info("%s: %s", resource.name, start.reason)
    saver = _MarkSaver(marks)

    def count_retry(event: RetryEvent) -> None:
        summary.retries += 1

    walk = _walk(client, resource, start, count_retry)

    covered: list[int | None] = [None]  # the mark the records consumed so far allow

    def commit() -> None:
        mark = _mark_after(covered[0], start)
        table_mark = TableMark(app_id(pipeline), mark) if mark is not None else None
        with budget.committing():
            result = writer.write(batch, commit_metadata={"analytics_sync.run_id": run_id},
                                  mark=table_mark)
        _add(summary, result)
        budget.give_back(len(batch))
        batch.clear()
        if result.version is not None and mark is not None:
            summary.mark = format_cursor(mark)
            # Only now that the rows it covers are committed.
            saver.committed(_block(block, pipeline, resource.name, mark, result.version))

    # Ctrl-C / SIGTERM (stop.py): the page in hand is still committed, no further one is read.
    pages = until_stopped(_pages(client, resource, walk, count_retry), client.stop)
    full_read = walk is not None and start.mark_us is None
    budget.join()
    try:
        while True:
            try:
                records, covered[0] = next(pages)
            except StopIteration:
                break
            except Exception:
                if batch:  # a page failed: keep what was fetched before it
                    try:
                        commit()
                    except Exception:  # the page's failure is the one to report
                        log.exception("%s: could not commit the records fetched before the "
                                      "failure", resource.name)
                raise
            if records is None:  # the walk's last word: its final mark
                continue
            summary.pages += 1
            summary.rows_fetched += len(records)
            batch.extend(records)
            over_budget = budget.take(len(records), holding=len(batch))
            if len(batch) >= batch_rows or over_budget:
                commit()
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                last_progress = time.monotonic()
                log.info("%s: %s", resource.name, progress_line(
                    summary.rows_fetched, walk.reread if walk is not None else 0,
                    expected_total(walk), last_progress - started, summary.pages,
                    summary.commits))
        if batch:
            commit()
        if client.stop.requested:
            return _stopped(summary, saver, client.stop.reason)
        _add(summary, writer.finish())
        summary.status = "ok"
        if summary.quarantined:
            summary.notes.append(
                f"{summary.quarantined:,} record(s) set aside in {lake.quarantine_uri()}: "
                "`quarantine show` says why; after changing the config, `quarantine replay` "
                "writes them again; once the API's data is fixed, --full-refresh re-reads them")
        if walk is not None and resource.write_disposition != "replace":
            _settle_mark(lake, resource.name, pipeline, _mark_after(covered[0], start), start,
                         run_id, summary, saver, block)
        if walk is not None:
            _compare_with_total(client, resource, walk,
                                lake.row_count(resource.name) if full_read else None, summary, log)
            if marks is not None:
                _save_success(marks, saver.latest or block, pipeline, resource.name, summary,
                              start)
        return summary
    except Exception as exc:
        saver.flush_quietly(log, resource.name)
        summary.status = "failed"
        summary.error = str(exc) or type(exc).__name__
        exc.summary = summary  # type: ignore[attr-defined]
        raise
    finally:
        pages.close()  # a sliced walk's threads end here, whatever ended the loop
        summary.reread = walk.reread if walk is not None else 0
        budget.leave(len(batch))  # and what a failure left uncommitted
        summary.seconds = time.monotonic() - started
        log.info("%s: %s in %.1f s: %s pages, %s fetched, %s inserted, %s updated, %s retries",
                 resource.name, summary.status, summary.seconds, f"{summary.pages:,}",
                 f"{summary.rows_fetched:,}", f"{summary.inserted:,}", f"{summary.updated:,}",
                 summary.retries)


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


def _start(lake: Lake, resource: ResourceConfig, pipeline: str, block: Mark | None,
           full_refresh: bool) -> Start:
    incremental = resource.endpoint.incremental
    if incremental is None:
        return Start(None, "not incremental: full read")
    if full_refresh:
        return Start(None, "full refresh requested: reading everything")
    return effective_start(lake, resource.name, pipeline, block, incremental.initial_value)


def _walk(client: ApiClient, resource: ResourceConfig, start: Start,
          count_retry: Callable[[RetryEvent], None]) -> KeysetWalk | SlicedWalk | None:
    """Keyset walks when the API can filter by the cursor (several at once if configured)."""
    incremental = resource.endpoint.incremental
    if (incremental is None or not incremental.start_param
            or not isinstance(resource.endpoint.paginator, PageNumberPaginator)):
        return None
    begin = None if start.mark_us is None else start.mark_us - round(incremental.lag * 1_000_000)
    if resource.endpoint.concurrency > 1:
        return SlicedWalk(client, resource, start_us=begin, slices=resource.endpoint.concurrency,
                          on_retry=count_retry)
    return KeysetWalk(client, resource, start_us=begin, on_retry=count_retry)


Pages = Iterator[tuple[list[Any] | None, int | None]]


def _pages(client: ApiClient, resource: ResourceConfig, walk: KeysetWalk | SlicedWalk | None,
           count_retry: Callable[[RetryEvent], None]) -> Pages:
    """Pages with the mark each allows once consumed; ``(None, mark)`` closes a keyset read."""
    if isinstance(walk, SlicedWalk):
        yield from walk
    elif isinstance(walk, KeysetWalk):
        for records in walk:
            yield records, walk.safe_mark
        yield None, walk.safe_mark
    else:
        for _, records in iter_pages(client, resource, on_retry=count_retry):
            yield records, None


def _mark_after(covered: int | None, start: Start) -> int | None:
    """The mark a commit now covers: what the walk allows, never below where we started."""
    if covered is None:
        return None
    if start.mark_us is None:
        return covered
    return max(covered, start.mark_us)


def _stopped(summary: ResourceSummary, saver: _MarkSaver, reason: str | None) -> ResourceSummary:
    """A stopped resource: its commits stand, the state store gets their mark, no success."""
    saver.flush()
    summary.status = "stopped"
    summary.error = (f"stopped by {reason or 'request'} after {summary.pages:,} pages; what was "
                     "fetched is committed and the next run resumes from "
                     + (summary.mark or "the previous mark"))
    return summary


def _settle_mark(lake: Lake, resource: str, pipeline: str, mark: int | None, start: Start,
                 run_id: str, summary: ResourceSummary, saver: _MarkSaver,
                 block: Mark | None) -> None:
    """After a complete read, record its final mark even if no commit carried it.

    A read that changed nothing commits nothing; after ``state reset`` that left the resource
    without a mark, and every later run read it all again (``markcommit.py``).
    """
    if mark is None or (start.mark_us is not None and mark <= start.mark_us):
        return  # the read found nothing newer than where it began
    if summary.mark is not None and parse_cursor(summary.mark) >= mark:
        return  # the last data commit carried it
    version = record_mark(lake, resource, TableMark(app_id(pipeline), mark),
                          {"analytics_sync.run_id": run_id})
    summary.mark = format_cursor(mark)
    saver.committed(_block(block, pipeline, resource, mark,
                           version if version is not None else lake.version(resource)))


def _block(previous: Mark | None, pipeline: str, resource: str, mark: int,
           version: int | None) -> Mark:
    fields = previous.model_dump(exclude={"cursor", "table_version", "pipeline", "resource"}) \
        if previous is not None else {}
    return Mark(pipeline=pipeline, resource=resource, cursor=format_cursor(mark),
                    table_version=version, **fields)


class _MarkSaver:
    """Hands committed marks to the store, at most every MARK_SAVE_EVERY_SECONDS.

    A block that lags its table is safe (a run starts from the lower of the two marks); one
    that ran ahead would not be, and cannot happen: only committed marks come here.
    """

    def __init__(self, marks: MarkStore | None) -> None:
        self.marks = marks
        self.latest: Mark | None = None
        self._saved_at = time.monotonic()
        self._pending = False

    def committed(self, mark: Mark) -> None:
        self.latest, self._pending = mark, True
        if time.monotonic() - self._saved_at >= MARK_SAVE_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.marks is not None and self._pending and self.latest is not None:
            self.marks.save(self.latest)
            self._saved_at, self._pending = time.monotonic(), False

    def flush_quietly(self, log: logging.Logger | logging.LoggerAdapter[Any],
                      resource: str) -> None:
        """On failure: the failure is what the caller reports, not a failed save."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001
            log.exception("%s: could not save the mark of the last commit to the state store "
                          "(the table keeps it; the next run starts from there)", resource)


def _save_success(marks: MarkStore, latest: Mark | None, pipeline: str, resource: str,
                  summary: ResourceSummary, start: Start) -> None:
    """Record the successful run; the cursor is the last committed one, never more."""
    cursor = latest.cursor if latest is not None else (
        format_cursor(start.mark_us) if start.mark_us is not None else None)
    marks.save(Mark(
        pipeline=pipeline, resource=resource, cursor=cursor,
        table_version=latest.table_version if latest is not None else summary.table_version,
        last_success_at=dt.datetime.now(dt.UTC), rows_fetched=summary.rows_fetched,
        inserted=summary.inserted, updated=summary.updated,
    ))


def _compare_with_total(client: ApiClient, resource: ResourceConfig,
                        walk: KeysetWalk | SlicedWalk, rows: int | None,
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


def _add(summary: ResourceSummary, result: WriteResult) -> None:
    summary.inserted += result.inserted
    summary.updated += result.updated
    summary.quarantined += result.quarantined
    if result.version is not None:
        summary.commits += 1
        summary.table_version = result.version


def run_sync(
    config: SourceConfig,
    credentials: Credentials,
    lake_uri: str,
    *,
    resources: Iterable[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    run_id: str = "",
    transport: httpx.BaseTransport | None = None,
    storage_options: dict[str, str] | None = None,
    on_done: Callable[[ResourceSummary], None] | None = None,
    pipeline: str = "analytics",
    marks: MarkStore | None = None,
    full_refresh: bool | Iterable[str] = False,
) -> list[ResourceSummary]:
    """Sync the selected resources concurrently, without Prefect; never raises for one resource.

    Holds the pipeline's lock for the run (``PipelineBusyError`` if another run has it).
    Returns one summary per resource, in config order; failed ones have ``status == "failed"``.
    """
    selected = config.select(resources).resources
    lake = Lake(lake_uri, storage_options=storage_options)
    refresh = full_refresh_set(full_refresh, selected)
    secret_filter = install_log_filter(credentials.values())
    budget = RowBudget.for_batches(batch_rows)
    try:
        with pipeline_lock(pipeline), ApiClient(config, credentials, transport=transport) as client, \
                ThreadPoolExecutor(max_workers=len(selected)) as pool:
            futures = [pool.submit(_sync_one, client, lake, r, batch_rows, run_id, credentials,
                                   pipeline, marks, r.name in refresh, budget)
                       for r in selected]
            summaries = [f.result() for f in futures]
    finally:
        remove_log_filter(secret_filter)
    for summary in summaries:
        if on_done:
            on_done(summary)
    return summaries


def full_refresh_set(full_refresh: bool | Iterable[str] | None,
                     selected: list[ResourceConfig]) -> set[str]:
    """``True`` means every selected resource; a list names some (unknown names are an error)."""
    if not full_refresh:
        return set()
    names = {r.name for r in selected}
    if full_refresh is True:
        return names
    wanted = set(full_refresh)  # type: ignore[arg-type]
    unknown = wanted - names
    if unknown:
        raise ConfigError([f"full_refresh: {sorted(unknown)} not among the resources of this run "
                           f"({', '.join(sorted(names))})"])
    return wanted


def _sync_one(client: ApiClient, lake: Lake, resource: ResourceConfig, batch_rows: int,
              run_id: str, credentials: Credentials, pipeline: str, marks: MarkStore | None,
              full_refresh: bool, budget: RowBudget) -> ResourceSummary:
    try:
        return sync_resource(client, lake, resource, batch_rows=batch_rows, run_id=run_id,
                             pipeline=pipeline, marks=marks, full_refresh=full_refresh,
                             budget=budget)
    except Exception as exc:
        summary: ResourceSummary = getattr(exc, "summary", ResourceSummary(resource.name, "failed"))
        summary.error = redact(summary.error or str(exc), credentials.values())
        logger.error("%s failed: %s", resource.name, summary.error)
        return summary

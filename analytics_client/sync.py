"""Syncing: pages into bounded batches into Delta commits, one resource or a whole run.

A batch is committed when it reaches ``batch_rows`` records, so memory is bounded by the batch,
not by the resource. When a page fails (after its retries), the records fetched before it are
still committed, then the resource fails: a rerun resumes from a table that holds everything
the API served until then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .client import ApiClient, RetryEvent
from .config import ResourceConfig, SourceConfig
from .extract import iter_pages
from .lake import Lake, TableWriter, WriteResult
from .redaction import install_log_filter, redact, remove_log_filter
from .secrets import Credentials
from .summary import ResourceSummary

__all__ = ["DEFAULT_BATCH_ROWS", "run_sync", "sync_resource"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 10_000
PROGRESS_EVERY_SECONDS = 10.0


def sync_resource(
    client: ApiClient,
    lake: Lake,
    resource: ResourceConfig,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    run_id: str = "",
    log: logging.Logger | logging.LoggerAdapter[Any] = logger,
) -> ResourceSummary:
    """Fetch every page of ``resource`` and write it to its table; raises on failure.

    The exception raised carries the partial summary as ``exc.summary``.
    """
    summary = ResourceSummary(resource.name)
    started = last_progress = time.monotonic()
    writer = TableWriter(lake, resource.name, write_disposition=resource.write_disposition,
                         primary_key=resource.primary_key, cursor_field="updated_at")
    batch: list[Any] = []

    def count_retry(event: RetryEvent) -> None:
        summary.retries += 1

    def commit() -> None:
        result = writer.write(batch, commit_metadata={"analytics_sync.run_id": run_id})
        _add(summary, result)
        batch.clear()

    try:
        try:
            for _, records in iter_pages(client, resource, on_retry=count_retry):
                summary.pages += 1
                summary.rows_fetched += len(records)
                batch.extend(records)
                if len(batch) >= batch_rows:
                    commit()
                if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                    last_progress = time.monotonic()
                    log.info("%s: %s pages, %s rows fetched, %s commits so far", resource.name,
                             f"{summary.pages:,}", f"{summary.rows_fetched:,}", summary.commits)
        except Exception:
            if batch:  # keep what was fetched before the failing page
                try:
                    commit()
                except Exception:  # the original failure is the one to report
                    log.exception("%s: could not commit the records fetched before the failure",
                                  resource.name)
            raise
        if batch:
            commit()
        _add(summary, writer.finish())
        summary.status = "ok"
        return summary
    except Exception as exc:
        summary.status = "failed"
        summary.error = str(exc) or type(exc).__name__
        exc.summary = summary  # type: ignore[attr-defined]
        raise
    finally:
        summary.seconds = time.monotonic() - started
        log.info("%s: %s in %.1f s: %s pages, %s fetched, %s inserted, %s updated, %s retries",
                 resource.name, summary.status, summary.seconds, f"{summary.pages:,}",
                 f"{summary.rows_fetched:,}", f"{summary.inserted:,}", f"{summary.updated:,}",
                 summary.retries)


def _add(summary: ResourceSummary, result: WriteResult) -> None:
    summary.inserted += result.inserted
    summary.updated += result.updated
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
) -> list[ResourceSummary]:
    """Sync the selected resources concurrently, without Prefect; never raises for one resource.

    Returns one summary per resource, in config order; failed ones have ``status == "failed"``.
    """
    selected = config.select(resources).resources
    lake = Lake(lake_uri, storage_options=storage_options)
    secret_filter = install_log_filter(credentials.values())
    try:
        with ApiClient(config, credentials, transport=transport) as client, \
                ThreadPoolExecutor(max_workers=len(selected)) as pool:
            futures = [pool.submit(_sync_one, client, lake, r, batch_rows, run_id, credentials)
                       for r in selected]
            summaries = [f.result() for f in futures]
    finally:
        remove_log_filter(secret_filter)
    for summary in summaries:
        if on_done:
            on_done(summary)
    return summaries


def _sync_one(client: ApiClient, lake: Lake, resource: ResourceConfig, batch_rows: int,
              run_id: str, credentials: Credentials) -> ResourceSummary:
    try:
        return sync_resource(client, lake, resource, batch_rows=batch_rows, run_id=run_id)
    except Exception as exc:
        summary: ResourceSummary = getattr(exc, "summary", ResourceSummary(resource.name, "failed"))
        summary.error = redact(summary.error or str(exc), credentials.values())
        logger.error("%s failed: %s", resource.name, summary.error)
        return summary

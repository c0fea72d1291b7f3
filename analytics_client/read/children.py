"""Parent/child resources (dlt's ``resolve`` and ``include_from_parent``): a child endpoint read
once per parent record, only for the parents that changed since the children were last read.

Which parents changed is read from the parent's Delta table, not from the run's memory: the
rows of the parent table now whose (key, row hash) the table did not hold at the version the
children were last read for (Delta time travel). That is exactly the parents inserted or
updated since (a row re-read unchanged keeps its hash and is not rewritten by the merge), it
survives a failed child read (the version only moves once every child of the list is
committed), and it needs the parent synced in the same run only to see that run's changes.

The version read for is kept in the child table itself, as a Delta app transaction of
``<pipeline app id>:parent-version`` committed after the children's rows: like every mark here,
never ahead of the data. No table yet, a full refresh, or a parent version no longer readable
(vacuumed) means every parent.

A child table is keyed on the child's ``primary_key`` plus a column per parent field its
request resolves (``_<parent>_<field>``, dlt's ``make_parent_key_name``): a child id need only be
unique per parent. Those columns are always written; ``include_from_parent`` adds more, named
the same way (dlt/sources/rest_api/config_setup.py: ``build_parent_record``).

Limit (dlt's too): a child that changes while its parent does not is read again only when its
parent changes, or on a full refresh of the child (docs/incremental.md, Parent/child).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import polars as pl
from deltalake import DeltaTable

from analytics_client.config.model import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_PIPELINE,
    ResourceConfig,
    parent_bindings,
)
from analytics_client.core.errors import ContractError, ResourceFailed
from analytics_client.core.placeholders import expand
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.responses import apply_steps
from analytics_client.lake.frames import ROW_HASH
from analytics_client.lake.markcommit import record_mark
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.tables import Lake, TableMark, TableWriter
from analytics_client.read.paged import iter_pages
from analytics_client.run.budget import RowBudget, Share
from analytics_client.state.marks import app_id

__all__ = ["changed_parents", "parent_app_id", "parent_column", "sync_children"]

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[Any]

ParentRow = dict[str, Any]


def parent_column(parent: str, field: str) -> str:
    """dlt's name for a parent field in a child record: ``_deals_id``."""
    return f"_{parent}_{field}"


def parent_app_id(pipeline: str) -> str:
    """Under which app id a child table records the parent version it was read for."""
    return f"{app_id(pipeline)}:parent-version"


def sync_children(client: ApiClient, lake: Lake, parent: ResourceConfig, child: ResourceConfig,
                  *, pipeline: str = DEFAULT_PIPELINE, run_id: str = "",
                  batch_rows: int = DEFAULT_BATCH_ROWS, full_refresh: bool = False,
                  budget: RowBudget | None = None, log: Log = logger) -> ResourceSummary:
    """Read ``child`` for each ``parent`` record changed since its last read, into its table.

    Raises ``ResourceFailed`` on failure, with the partial summary (what was committed stands;
    the parent version does not move), as ``sync.sync_resource`` does. ``budget`` bounds the
    records all resources of the run hold at once (``budget.py``).
    """
    summary = ResourceSummary(child.name)
    started = time.monotonic()
    budget = budget or RowBudget(batch_rows)
    held: list[Any] = []
    share = budget.join()
    try:
        fields = _parent_fields(child)
        writer = TableWriter(lake, child.name, write_disposition="merge",
                             primary_key=child.primary_key, cursor_field=None,
                             columns=child.columns, parent_key=_key_columns(child),
                             set_aside=Quarantine(lake, pipeline, run_id).add
                             if child.on_bad_record == "quarantine" else None)
        version = lake.version(parent.name)
        if version is None:
            summary.status = "ok"
            summary.notes.append(f"the parent {parent.name!r} has no table yet: no children read")
            return summary
        since = None if full_refresh else lake.mark(child.name, parent_app_id(pipeline))
        parents = changed_parents(lake, parent, version, since, fields, summary)
        log.info("%s: %s changed %s record(s) since %s: reading their children", child.name,
                 f"{len(parents):,}", parent.name,
                 "the start" if since is None else f"version {since}")
        for records in _children(client, child, parent.name, parents, summary):
            summary.pages += 1
            summary.rows_fetched += len(records)
            # dlt's order: parent fields first, then the resource's steps (responses.py).
            kept = apply_steps(child.processing_steps, records)
            held.extend(kept)
            over_budget = share.take(kept)
            if len(held) >= batch_rows or over_budget:
                _write(writer, held, run_id, summary, share)
        if held:
            _write(writer, held, run_id, summary, share)
        if client.stop.requested:
            summary.status = "stopped"
            summary.error = (f"stopped by {client.stop.reason or 'request'}; the children "
                             "committed stand, the next run reads the same parents again")
            return summary
        # Every child of the list is committed: only now may the version move.
        record_mark(lake, child.name, TableMark(parent_app_id(pipeline), version),
                    {"analytics_sync.run_id": run_id})
        summary.status = "ok"
        return summary
    except Exception as exc:
        summary.status = "failed"
        summary.error = str(exc) or type(exc).__name__
        raise ResourceFailed(summary, exc) from exc
    finally:
        share.leave()
        summary.seconds = time.monotonic() - started
        log.info("%s: %s in %.1f s: %s pages, %s fetched, %s inserted, %s updated",
                 child.name, summary.status, summary.seconds, f"{summary.pages:,}",
                 f"{summary.rows_fetched:,}", f"{summary.inserted:,}", f"{summary.updated:,}")


def changed_parents(lake: Lake, parent: ResourceConfig, version: int, since: int | None,
                    fields: list[str], summary: ResourceSummary | None = None
                    ) -> list[ParentRow]:
    """The parent rows at ``version`` that the table did not hold, with the same content, at
    ``since`` (every row when ``since`` is None or no longer readable), with ``fields``."""
    uri = lake.table_uri(parent.name)
    options = lake.storage_options
    key = parent.primary_key
    columns = list(dict.fromkeys([key, *fields]))
    schema = DeltaTable(uri, version=version, storage_options=options).schema()
    names = {f.name for f in schema.fields}
    missing = [c for c in columns if c not in names]
    if missing and f"{missing[0]}__json" in names:
        raise ContractError(parent.name, f"its field {missing[0]!r} is kept as JSON text "
                            f"({missing[0]}__json: objects, lists or mixed types), which a child "
                            "cannot resolve or include yet; include_from_parent and resolve take "
                            "plain fields (text, numbers, booleans, timestamps): remove it")
    if missing:
        raise ContractError(parent.name, f"its table has no column {missing[0]!r}, which a "
                            "child resolves or includes (resolve field / include_from_parent)")
    hashed = ROW_HASH in names
    now = pl.read_delta(uri, version=version, storage_options=options,
                        columns=columns + ([ROW_HASH] if hashed else []))
    if since is not None and hashed and since <= version:
        try:
            before = pl.read_delta(uri, version=since, storage_options=options,
                                   columns=[key, ROW_HASH])
        except Exception as exc:  # noqa: BLE001 - vacuumed or unreadable: read all, say so
            if summary is not None:
                summary.notes.append(f"{parent.name} version {since} is no longer readable "
                                     f"({type(exc).__name__}): children of every parent read")
        else:
            now = now.join(before, on=[key, ROW_HASH], how="anti")
    return now.select(columns).to_dicts()


def _children(client: ApiClient, child: ResourceConfig, parent: str,
              parents: list[ParentRow], summary: ResourceSummary) -> Iterator[list[Any]]:
    """Each parent's child pages, ``endpoint.concurrency`` parents at a time; requests in flight
    across the run stay within ``client.max_concurrency`` (the client's own bound)."""
    def count_retry(event: RetryEvent) -> None:
        summary.retries += 1

    def read(row: ParentRow) -> list[list[Any]]:
        resolved, extra = _request_for(child, parent, row)
        return [[{**record, **extra} if isinstance(record, dict) else record
                 for record in page.records]
                for page in iter_pages(client, resolved, on_retry=count_retry)]

    workers = child.endpoint.concurrency
    chunk = workers * 4  # bounded memory: a few parents' pages at a time
    with ThreadPoolExecutor(max_workers=workers,
                            thread_name_prefix=f"{child.name}-children") as pool:
        for start in range(0, len(parents), chunk):
            if client.stop.requested:
                return
            for pages in pool.map(read, parents[start:start + chunk]):
                yield from pages


def _request_for(child: ResourceConfig, parent: str,
                 row: ParentRow) -> tuple[ResourceConfig, dict[str, Any]]:
    """The child's endpoint for one parent row, and the parent columns its records get."""
    path_values: dict[str, str | None] = {}
    param_values: dict[str, str | None] = {}
    extra: dict[str, Any] = {}
    for name, _, field in parent_bindings(child):
        value = _json_value(parent, field, row[field])
        if value is None:
            raise ContractError(child.name, f"a {parent} record has no {field!r} (null) for "
                                f"{{{name}}}; the child cannot be requested for it")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        path_values[name] = quote(text, safe="")  # a value is one path segment
        param_values[name] = text
        extra[parent_column(parent, field)] = value
    for field in child.include_from_parent:
        extra[parent_column(parent, field)] = _json_value(parent, field, row[field])
    path = expand(child.endpoint.path, path_values)
    params = {k: expand(v, param_values) if isinstance(v, str) else v
              for k, v in child.endpoint.params.items()}
    endpoint = child.endpoint.model_copy(update={
        "path": path, "resolve": {},
        "params": {k: v for k, v in params.items() if v is not None}})
    return child.model_copy(update={"endpoint": endpoint}), extra


def _json_value(parent: str, field: str, value: Any) -> Any:
    """A parent column's value as the API wrote it (the contract's forms)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.datetime):
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return format_cursor(delta // dt.timedelta(microseconds=1))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise ContractError(parent, f"field {field!r} is a {type(value).__name__} in its table; "
                        "only plain values can be resolved or included in a child")


def _parent_fields(child: ResourceConfig) -> list[str]:
    return list(dict.fromkeys([*(f for _, _, f in parent_bindings(child)),
                               *child.include_from_parent]))


def _key_columns(child: ResourceConfig) -> list[str]:
    return list(dict.fromkeys(parent_column(p, f) for _, p, f in parent_bindings(child)))


def _write(writer: TableWriter, batch: list[Any], run_id: str, summary: ResourceSummary,
           share: Share) -> None:
    with share.budget.committing():
        result = writer.write(batch, commit_metadata={"analytics_sync.run_id": run_id})
    share.committed()
    summary.add_write(result)
    batch.clear()

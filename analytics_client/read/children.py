"""Parent/child resources (dlt's ``resolve`` and ``include_from_parent``): a child endpoint read
once per parent record, only for the parents that changed since the children were last read.

Which parents changed is read from the parent's Delta table, not from the run's memory: the
rows of the parent table now whose (key, row hash) the table did not hold at the version the
children were last read for (Delta time travel). That is exactly the parents inserted or
updated since (a row re-read unchanged keeps its hash and is not rewritten by the merge), it
survives a failed child read (the version only moves once every child of the list is
committed), and it needs the parent synced in the same run only to see that run's changes.

The version read for is kept in the child table itself, as a Delta app transaction of
``<pipeline app id>:parent-version`` committed with the last children's rows
(``state/markpolicy.ParentVersionMarks``): like every mark here, never ahead of the data. The
read is one more ``PageSource`` of the one sync loop (``run/sync.py``): batches, budget,
processing steps and commits are the same as every other resource's.
No table yet, a full refresh, or a parent version no longer readable
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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import polars as pl
from deltalake import DeltaTable

from analytics_client.core.errors import APIError, ContractError
from analytics_client.core.placeholders import expand
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.template import RequestTemplate
from analytics_client.lake.frames import DELETED_AT, ROW_HASH
from analytics_client.lake.tables import Lake
from analytics_client.read.paged import iter_pages
from analytics_client.read.pages import Page
from analytics_client.read.plan import Parent, ResourcePlan

__all__ = ["ChildRead", "changed_parents"]

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[Any]

ParentRow = dict[str, Any]


class ChildRead:
    """A child resource's read, as a ``pages.PageSource``: each changed parent's child pages,
    every record with its parent columns, ``endpoint.concurrency`` parents at a time.

    ``since``: the parent version the children were last read for (None: every parent).
    ``notes`` receives what the summary should say (no parent table, a vacuumed version).
    Pages carry no mark; once every parent's children were yielded, ``end_mark`` is the parent
    version read for, which the sync loop commits with the last rows.
    """

    keyset = False
    total_count: int | None = None
    reread = 0
    recovered = 0

    def __init__(self, client: ApiClient, plan: ResourcePlan, lake: Lake, *,
                 since: int | None, notes: list[str], log: Log = logger,
                 on_retry: Callable[[RetryEvent], None] | None = None) -> None:
        if plan.parent is None:
            raise ValueError(f"{plan.name} is not a child resource")
        self.client, self.plan, self.parent, self.lake = client, plan, plan.parent, lake
        self.since, self.notes, self.log, self.on_retry = since, notes, log, on_retry
        self.version: int | None = None
        self.complete = False
        self.gone: list[tuple[object, APIError]] = []  # parents whose child path answered 404

    def __iter__(self) -> Iterator[Page]:
        parent, name = self.parent, self.plan.name
        self.version = self.lake.version(parent.name)
        if self.version is None:
            self.notes.append(f"the parent {parent.name!r} has no table yet: no children read")
            return
        rows = changed_parents(self.lake, parent, self.version, self.since, self.notes)
        self.log.info("%s: %s changed %s record(s) since %s: reading their children", name,
                      f"{len(rows):,}", parent.name,
                      "the start" if self.since is None else f"version {self.since}")
        workers = self.plan.concurrency
        chunk = workers * 4  # bounded memory: a few parents' pages at a time
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"{name}-children") as pool:
            for start in range(0, len(rows), chunk):
                if self.client.stop.requested:
                    return
                for pages in pool.map(self._read, rows[start:start + chunk]):
                    for records in pages:
                        yield Page(records)
        self._judge_gone(len(rows))
        self.complete = not self.client.stop.requested

    def _judge_gone(self, parents: int) -> None:
        """A parent deleted after its row was read answers 404 for its children (the contract
        deletes at any moment): it is skipped and named; its child rows follow once the
        parent's own run finds the delete (run/deletes.py). Every parent answering 404 is a
        wrong path, not deletes: that fails the read as before."""
        if not self.gone:
            return
        if len(self.gone) == parents:
            raise self.gone[0][1]
        keys = ", ".join(repr(k) for k, _ in self.gone[:5])
        more = f" and {len(self.gone) - 5:,} more" if len(self.gone) > 5 else ""
        self.notes.append(f"{len(self.gone):,} {self.parent.name} record(s) answered 404 for "
                          f"their {self.plan.name} ({keys}{more}): deleted since their rows "
                          "were read, so skipped; their rows follow the parent's delete")

    def end_mark(self) -> int | None:
        """The parent version read for, once every changed parent's children were yielded."""
        return self.version if self.complete else None

    def _read(self, row: ParentRow) -> list[list[Any]]:
        request, extra = request_for(self.plan.request, self.parent, row, self.plan.name)
        try:
            return [[{**record, **extra} if isinstance(record, dict) else record
                     for record in page.records]
                    for page in iter_pages(self.client, request, on_retry=self.on_retry)]
        except APIError as exc:
            if exc.status != 404:
                raise
            self.gone.append((row.get(self.parent.primary_key), exc))
            return []


def changed_parents(lake: Lake, parent: Parent, version: int, since: int | None,
                    notes: list[str] | None = None) -> list[ParentRow]:
    """The parent rows at ``version`` that the table did not hold, with the same content, at
    ``since`` (every row when ``since`` is None or no longer readable), with the fields a
    child needs."""
    uri = lake.table_uri(parent.name)
    options = lake.storage_options
    key = parent.primary_key
    columns = list(dict.fromkeys([key, *parent.fields]))
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
                        columns=columns + ([ROW_HASH] if hashed else [])
                        + ([DELETED_AT] if DELETED_AT in names else []))
    if DELETED_AT in names:  # a parent the API deleted has no children to read
        now = now.filter(pl.col(DELETED_AT).is_null()).drop(DELETED_AT)
    if since is not None and hashed and since <= version:
        try:
            before = pl.read_delta(uri, version=since, storage_options=options,
                                   columns=[key, ROW_HASH])
        except Exception as exc:  # noqa: BLE001 - vacuumed or unreadable: read all, say so
            if notes is not None:
                notes.append(f"{parent.name} version {since} is no longer readable "
                             f"({type(exc).__name__}): children of every parent read")
        else:
            now = now.join(before, on=[key, ROW_HASH], how="anti")
    return now.select(columns).to_dicts()


def request_for(template: RequestTemplate, parent: Parent, row: ParentRow,
                child: str) -> tuple[RequestTemplate, dict[str, Any]]:
    """The child's request for one parent row, and the parent columns its records get."""
    path_values: dict[str, str | None] = {}
    param_values: dict[str, str | None] = {}
    extra: dict[str, Any] = {}
    for name, field in parent.bindings:
        value = _json_value(parent.name, field, row[field])
        if value is None:
            raise ContractError(child, f"a {parent.name} record has no {field!r} (null) for "
                                f"{{{name}}}; the child cannot be requested for it")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        path_values[name] = quote(text, safe="")  # a value is one path segment
        param_values[name] = text
        extra[parent.column(field)] = value
    for field in parent.include:
        extra[parent.column(field)] = _json_value(parent.name, field, row[field])
    path = expand(template.path, path_values)
    assert path is not None  # every binding has a value (checked above)
    params = {k: expand(v, param_values) if isinstance(v, str) else v
              for k, v in template.params.items()}
    return template.filled(path, {k: v for k, v in params.items() if v is not None}), extra


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

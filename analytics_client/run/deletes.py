"""Delete capture: which rows of a resource's table the API no longer has, found each run.

The contract's API deletes without a tombstone: a deleted record leaves every listing and
every ``total_count``. Two ways find them, and one check keeps live records safe.

**Reads that saw a whole range.** A read that ran to its end saw every record of its range
(the keyset argument, ``read/keyset.py``): a full read (first run, ``--full-refresh``, a
resource whose API cannot filter) saw the whole resource; an incremental read saw every record
whose cursor is at or after its start. A live row of the table inside that range whose key the
read did not serve is a candidate.

**Counts, for what lies below an incremental read's start.** Let ``D(c)`` be the table's live
rows with cursor ``>= c`` minus the API's ``total_count`` for ``filter >= c`` (one one-record
request). Every live row's record is still in the API with a cursor at or above the row's (a
record's cursor only grows), so the API counts it for every ``c`` the table does; records
created since only raise the API's count. So for ``a < b``, ``D(a) - D(b)`` is at least the
number of deleted records with a table cursor in ``[a, b)``, less whatever changed in the API
*between the two probes* (a change moves a record to the newest cursor, which every probe
below it counts: it lowers every later ``D`` alike). Suffix counts are used, never range
counts: an update moves a record out of a range, but never out of a suffix. We bisect
``[oldest, start)`` by the table's own cursors (so each half holds half the rows), probing
only where ``D`` says records were lost, and re-read a range (a keyset walk of ``[a, b)``)
once it is small or mostly lost. ``D(start)`` needs no request: the run's read served every
record at or after its start, so the API's count there is the number of distinct records it
served. With ``k`` deletes among ``n`` rows that is about ``k log2(n/k)`` one-record probes
plus ``k`` short re-reads; with none, one probe (the API's whole count). A delete hidden by
changes made during the run is found by the next run: by then those changes are in the
table, and deletes never come back.

**No live record is marked.** A candidate is deleted only if a second read does not serve it
either: the read the next run would make (from ``mark - lag``, or strictly after the mark once
the API's clock has proven it, ``state/markpolicy.py``; a second full read where there is no
mark). A live record the first read did not serve changed after that read passed it, and
the incremental invariant (everything with a cursor below the next start is in the table as
the API has it) puts its new cursor in the second read. Then the guard: a run that would delete
more than ``max_delete_share`` of the table's live rows fails the resource and deletes nothing.
A read that failed or was stopped deletes nothing. Records this run's read served, and records
waiting in the quarantine, were served: never deleted for that (their rows may hold an older
version whose cursor lies below where the next run starts, where the second read cannot see
them).

Children follow their parents: the rows of a deleted parent's children are deleted the same way
(matched on the parent key columns the child carries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analytics_client.config.model import DEFAULT_PAGE_SIZE, PageNumberPaginator
from analytics_client.core.errors import RunStopped
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.window import Window
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.paginators import first_request
from analytics_client.lake.deletes import check_share, live_rows, mark_deleted
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.tables import Lake
from analytics_client.read.children import ChildRead
from analytics_client.read.keyset import FilterFallback, KeysetWalk
from analytics_client.read.paged import PaginatedRead, count_at
from analytics_client.read.pages import Page
from analytics_client.read.plan import ResourcePlan
from analytics_client.read.window import LaggedRead, windowed_request

__all__ = ["MAX_PROBES", "SeenKeys", "capture_deletes"]

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[Any]

# Requests one run may spend bisecting; past it the ranges not yet narrowed wait for the next.
MAX_PROBES = 2_000


class SeenKeys:
    """The keys of the records a read served (before processing steps: a record a filter
    drops was still served, so it was not deleted)."""

    def __init__(self, key: Sequence[str]) -> None:
        self.key = tuple(key)
        self._values: list[list[Any]] = [[] for _ in self.key]

    def add(self, records: Iterable[Any]) -> None:
        for record in records:
            if isinstance(record, dict):
                for values, name in zip(self._values, self.key, strict=True):
                    values.append(_hashable(record.get(name)))

    def __len__(self) -> int:
        return len(self._values[0])

    def frame(self, schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
        """The keys as columns typed like the table's (``schema``), one row each."""
        columns = [pl.Series(name, values, strict=False, dtype=None)
                   for name, values in zip(self.key, self._values, strict=True)]
        frame = pl.DataFrame(columns) if columns and len(self) else pl.DataFrame(
            {name: [] for name in self.key})
        return frame.cast({n: schema[n] for n in self.key if n in schema}, strict=False).unique()


@dataclass
class _Cost:
    """Requests delete capture spent: the summary's ``delete_requests``."""

    requests: int = 0
    notes: list[str] = field(default_factory=list)


def capture_deletes(client: ApiClient, lake: Lake, plan: ResourcePlan, seen: SeenKeys, *,
                    begin_us: int | None, next_begin_us: int | None, run_id: str,
                    pipeline: str, summary: ResourceSummary,
                    walked: Sequence[tuple[int | None, int]] = (),
                    children: Sequence[ResourcePlan] = (),
                    on_retry: Callable[[RetryEvent], None] | None = None,
                    log: Log = logger) -> None:
    """After a read of ``plan``'s resource ran to its end: find the table's rows whose records
    the API deleted (see the module docstring) and delete or mark them, then their children's.

    ``begin_us``: the cursor the read started at (None: it read everything); ``next_begin_us``:
    where the next run's read will start (None: from the beginning); ``walked``: ranges
    ``[from, to)`` below ``begin_us`` the read walked in full too (a resume's walks between
    ranges read before, read/resume.py): their rows are candidates alike, the bisection
    counts the rows left, and the API's count at ``begin_us`` costs a request. Adds to
    ``summary``
    (``deleted``, ``delete_requests``, notes). Raises ``DeleteGuardError`` when the share is
    too large (nothing deleted), and whatever a request raises (nothing deleted either).
    """
    table = plan.table
    if table.write_disposition != "merge" or table.delete_missing == "off":
        return
    if any(step.map is not None or step.yield_map is not None for step in plan.steps):
        summary.notes.append("deletes are not captured: a map or yield_map step may change the "
                             "keys the API serves (remove it, or set delete_missing: off to "
                             "silence this)")
        return
    cursor = table.cursor_field if begin_us is not None else None
    if begin_us is not None and cursor is None:
        return  # a read from a start, and no cursor column to say what lies after it
    try:
        fields = _parent_fields(plan, children)
        live = live_rows(lake, table, [*table.key, *([cursor] if cursor else []), *fields])
        if live is None or live.is_empty():
            return
        cost = _Cost()
        keys = live.select(table.key)
        seen_keys = seen.frame(keys.schema)
        in_range = live if cursor is None else live.filter(_within(cursor, begin_us, walked))
        candidates = in_range.join(seen_keys, on=list(table.key), how="anti")
        if cursor is not None and begin_us is not None and _can_bisect(plan, cost):
            # Rows already candidates are left out of the counts: D then shows the others.
            rest = live.join(candidates, on=list(table.key), how="anti")
            below = rest.filter(pl.col(cursor) < begin_us)
            lost = _bisect(client, plan, rest.get_column(cursor), below, begin_us,
                           None if walked else seen_keys.height, cost, on_retry)
            candidates = pl.concat([candidates, lost], how="vertical_relaxed")
        # Served by this run's read, or waiting in the quarantine: alive (their rows may be an
        # older version, below where the next run starts, so the second read cannot say).
        candidates = _set_aside_kept(lake, pipeline, plan, candidates.join(
            seen_keys, on=list(table.key), how="anti"))
        if not candidates.is_empty():
            again = _read_again(client, lake, plan, next_begin_us, table.key, cost, on_retry)
            candidates = candidates.join(again.frame(keys.schema), on=list(table.key), how="anti")
        summary.delete_requests += cost.requests
        summary.notes.extend(cost.notes)
        if candidates.is_empty() or client.stop.requested:
            return
        check_share(table, candidates.height, live.height)
        reason = (f"the API no longer lists {candidates.height:,} record(s) "
                  + ("a full read did not serve" if begin_us is None else
                     "that a read of their cursor range and a second read did not serve"))
        result = mark_deleted(lake, table, candidates.select(table.key), reason=reason,
                              run_id=run_id)
        summary.add_write(result)
        log.info("%s: %s %d row(s) whose records the API deleted", plan.name,
                 "marked" if table.delete_missing == "soft" else "deleted", result.deleted)
        for child in children:
            _cascade(lake, plan, child, candidates, run_id, summary, log)
    except RunStopped:
        summary.notes.append("stopped while looking for deletes: nothing was deleted; "
                             "the next complete run looks again")


def _within(cursor: str, begin_us: int | None,
            walked: Sequence[tuple[int | None, int]]) -> pl.Expr:
    """Rows whose cursor lies where the read served every record: from ``begin_us`` on
    (None: everywhere), and in the ranges ``walked`` below it."""
    if begin_us is None:
        return pl.lit(True)
    column = pl.col(cursor)
    inside = column >= begin_us
    for start, end in walked:
        inside = inside | ((column < end) if start is None else column.is_between(
            start, end, closed="left"))
    return inside


def _set_aside_kept(lake: Lake, pipeline: str, plan: ResourcePlan,
                    candidates: pl.DataFrame) -> pl.DataFrame:
    """``candidates`` less the keys the quarantine holds records of: the API served those
    records (the issue's rule: set aside is seen), so they are not deleted for that."""
    if candidates.is_empty():
        return candidates
    waiting = Quarantine(lake, pipeline).read(plan.name)
    if waiting.is_empty():
        return candidates
    keys = waiting.get_column("key").drop_nulls().unique().to_list()
    return candidates.filter(~pl.col(plan.table.primary_key).cast(pl.String).is_in(keys))


def _can_bisect(plan: ResourcePlan, cost: _Cost) -> bool:
    """Counts below the read's start need the API to filter by the cursor and re-reads of a
    range that stop at its end: a keyset walk (or an API that takes an end filter). A filter
    step keeps fewer rows than the API counts, so counts cannot be compared."""
    cursor = plan.cursor
    if cursor is None or not cursor.start_param:
        return False
    if plan.steps:
        cost.notes.append("deletes below this run's start are found by full reads only: "
                          "processing_steps keep fewer rows than the API counts")
        return False
    return plan.walk in ("keyset", "sliced") or cursor.end_param is not None


def _bisect(client: ApiClient, plan: ResourcePlan, all_cursors: pl.Series, below: pl.DataFrame,
            begin_us: int, served_from_begin: int | None, cost: _Cost,
            on_retry: Callable[[RetryEvent], None] | None) -> pl.DataFrame:
    """The live rows below ``begin_us`` whose records a re-read of their range did not serve,
    in the ranges where counts show records were lost (module docstring).

    ``served_from_begin``: the distinct records the run's read served, all at or after
    ``begin_us``: the API's count there as the read saw it, so ``D(begin)`` costs no request
    (None: the read served others too, and it costs one).
    """
    cursor = plan.table.cursor_field
    assert cursor is not None
    table_cursors = all_cursors.drop_nulls().sort()
    ordered = below.drop_nulls(cursor).sort(cursor)
    values = ordered.get_column(cursor)
    leaf = _page_size(plan)
    lost: list[pl.DataFrame] = []

    def table_at_or_after(c: int | None) -> int:
        if c is None:
            return table_cursors.len()
        return table_cursors.len() - int(table_cursors.search_sorted(c, side="left"))

    def gap(c: int | None) -> int | None:
        count = _api_count(client, plan, c, cost, on_retry)
        return None if count is None else table_at_or_after(c) - count

    top = gap(begin_us) if served_from_begin is None else \
        table_at_or_after(begin_us) - served_from_begin
    bottom = gap(None)
    if top is None or bottom is None:
        cost.notes.append("the API reports no total_count: deletes below this run's start are "
                          "found by full reads only (--full-refresh; docs/deletes.md)")
        return ordered.clear()
    stack: list[tuple[int, int, int, int]] = [(0, values.len(), bottom, top)]
    while stack:
        start, end, d_lo, d_hi = stack.pop()
        missing = d_lo - d_hi
        rows = end - start
        if missing <= 0 or rows == 0:
            continue
        mid = _split(values, start, end)
        if rows <= leaf or 2 * missing >= rows or mid is None or cost.requests >= MAX_PROBES:
            if cost.requests >= MAX_PROBES:
                cost.notes.append(f"delete capture stopped after {MAX_PROBES:,} requests; the "
                                  "ranges left are narrowed by the next run")
                break
            lo = int(values[start]) if start > 0 else None
            hi = int(values[end]) if end < values.len() else begin_us
            served = SeenKeys(plan.table.key)
            for page in _reads(KeysetWalk(client, plan, start_us=lo, stop_us=hi,
                                          on_retry=on_retry), cost):
                served.add(page.records)
            part = ordered.slice(start, rows)
            lost.append(part.join(served.frame(part.schema), on=list(plan.table.key), how="anti"))
            continue
        d_mid = gap(int(values[mid]))
        if d_mid is None:
            continue
        stack.append((mid, end, d_mid, d_hi))
        stack.append((start, mid, d_lo, d_mid))
    return pl.concat(lost, how="vertical_relaxed") if lost else ordered.clear()


def _split(values: pl.Series, start: int, end: int) -> int | None:
    """An index in ``(start, end)`` near the middle where the cursor changes (ties are one
    range: a probe cannot split them); None if every row in the range shares one cursor."""
    middle = (start + end) // 2
    low, high = values[start], values[end - 1]
    if low == high:
        return None
    at = values[middle]
    if at == low:  # the first row of the next higher cursor
        return start + int(values.slice(start, end - start).search_sorted(low, side="right"))
    return start + int(values.slice(start, end - start).search_sorted(at, side="left"))


def _api_count(client: ApiClient, plan: ResourcePlan, at_or_after: int | None, cost: _Cost,
               on_retry: Callable[[RetryEvent], None] | None) -> int | None:
    """The API's ``total_count`` of the records with a cursor at or after ``at_or_after``
    (None: all), from a one-record page."""
    template = windowed_request(plan, Window(at_or_after))
    _, request = first_request(template, probe=True)
    cost.requests += 1
    return count_at(client.get_page(template, request, on_retry=on_retry).body)


def _read_again(client: ApiClient, lake: Lake, plan: ResourcePlan, begin_us: int | None,
                key: Sequence[str], cost: _Cost,
                on_retry: Callable[[RetryEvent], None] | None) -> SeenKeys:
    """The keys the read the next run would make serves now (everything without a mark)."""
    served = SeenKeys(key)
    source: Iterable[Page]
    if plan.mode == "child":
        source = ChildRead(client, plan, lake, since=None, notes=[], log=logger,
                           on_retry=on_retry)
    elif plan.cursor is None or plan.mode == "paged":
        source = PaginatedRead(client, plan.request, on_retry=on_retry)
    elif plan.walk in ("keyset", "sliced"):
        source = FilterFallback(KeysetWalk(client, plan, start_us=begin_us, on_retry=on_retry),
                                client, plan, Window(begin_us), on_retry=on_retry)
    else:
        source = LaggedRead(client, plan, Window(begin_us), below_start_us=None,
                            on_retry=on_retry, unfiltered=not plan.api_filters)
    for page in _reads(source, cost):
        served.add(page.all_served)
    return served


def _reads(pages: Iterable[Page], cost: _Cost) -> Iterable[Page]:
    for page in pages:
        cost.requests += 1
        yield page


def _page_size(plan: ResourcePlan) -> int:
    paginator = plan.request.paginator
    if isinstance(paginator, PageNumberPaginator) and paginator.limit is not None:
        return paginator.limit
    size = plan.request.params.get("page[size]")
    return int(size) if isinstance(size, int | str) and str(size).isdigit() else DEFAULT_PAGE_SIZE


def _parent_fields(plan: ResourcePlan, children: Sequence[ResourcePlan]) -> list[str]:
    """The fields of this resource that its children bind (their parent key columns)."""
    fields: list[str] = []
    for child in children:
        if child.parent is not None:
            fields.extend(f for _, f in child.parent.bindings)
    return [f for f in dict.fromkeys(fields) if f not in plan.table.key]


def _cascade(lake: Lake, plan: ResourcePlan, child: ResourcePlan, parents: pl.DataFrame,
             run_id: str, summary: ResourceSummary, log: Log) -> None:
    """Delete (or mark) the rows of ``child`` read for the parents in ``parents``."""
    parent = child.parent
    if parent is None or child.table.delete_missing == "off":
        return
    pairs = dict.fromkeys((parent.column(f), f) for _, f in parent.bindings)
    keys = parents.select([pl.col(f).alias(column) for column, f in pairs])
    result = mark_deleted(lake, child.table, keys, run_id=run_id,
                          reason=f"their {plan.name} record was deleted")
    if result.deleted:
        summary.notes.append(f"{result.deleted:,} row(s) of {child.name} followed their "
                             f"deleted {plan.name} record")
        log.info("%s: %d row(s) of %s followed their deleted parent", plan.name,
                 result.deleted, child.name)


def _hashable(value: Any) -> Any:
    """A key as a column value: one the API sent as an object or list is kept by its text."""
    return value if isinstance(value, str | int | float | bool | None) else repr(value)

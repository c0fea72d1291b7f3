"""Incremental reads with any paginator: the window a read covers and the mark it may save.

The keyset walk (``keyset.py``) needs page numbers and an API sorted by the cursor. Every other
incremental read that the API filters (``start_param``, or dlt's ``{incremental.start_value}``
placeholders) is a *lagged re-read*: it reads the window ``[start, end)`` with the endpoint's
own paginator and sort, and the merge's version guard (``lake/tables.py``: a row is replaced only by
an equal or newer cursor) makes reading a record twice, or an old version late, harmless.

Which mark such a read may save. Paging by position or by a server's cursor does not tell us
that everything below some cursor was read while records changed, so the mark must come from
elsewhere. Let ``L0`` be the highest cursor the API held when the read began. A change is
stamped by the API's clock when it is made, up to 5 s earlier when it becomes visible late,
and nothing visible then lies past that clock (a record stamped in the future moves no mark:
``state/markpolicy.py``), so every record changed during or after the read carries a cursor
of at least ``L0 - 5 s``; the next run reads from ``mark - lag`` (``lag`` >= 5 s), so any mark
at or below ``L0`` misses none of them. Records unchanged during the read were read, provided the
paginator never skips an unchanged record (docs/incremental.md, per paginator). We never know
``L0``, but two values are at or below it:

* the highest cursor in the table before the read: every row came from the API earlier, a
  record's cursor only grows, and a change is stamped by the API's clock (a deleted record's
  cursor, too, was the clock of its last change);
* the highest cursor on the read's first page, served when the read began.

So a complete read saves ``min(highest seen, max(table's highest, first page's highest))``, and
never less than the mark it started from. The mark lags one run behind the data; the price is
that the next run reads again what changed during this one. A read that ends early (failure,
stop) saves nothing (``end_mark`` is None until the read is complete); a backfill
(``end_value``) never moves the mark (dlt's rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import polars as pl

from analytics_client.core.cursors import (
    TIMESTAMP,
    CursorCodec,
    KindMismatch,
    cursor_column,
    cursor_value,
)
from analytics_client.core.errors import ContractError
from analytics_client.core.placeholders import expand, expand_tree, fill
from analytics_client.core.window import Window
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.paginators import PageResponse
from analytics_client.http.template import RequestTemplate
from analytics_client.lake.tables import Lake
from analytics_client.read.paged import iter_pages
from analytics_client.read.pages import Page, PageSource
from analytics_client.read.plan import ResourcePlan

__all__ = ["BackfillRead", "LaggedRead", "check_readable", "highest_cursor", "in_window",
           "lagged_mark", "table_max_cursor", "windowed_request"]

def windowed_request(plan: ResourcePlan, window: Window) -> RequestTemplate:
    """``plan``'s request set for ``window``: start_param, end_param and every
    ``{incremental.*}`` placeholder filled in (a parameter whose value is None is dropped).
    """
    cursor = plan.cursor
    assert cursor is not None
    codec = cursor.codec
    start = codec.format(window.start_us) if window.start_us is not None else None
    end = codec.format(window.end_us) if window.end_us is not None else None
    lag = int(cursor.lag) if float(cursor.lag).is_integer() else cursor.lag
    # A JSON body's lone placeholder keeps the value's type (dlt): an integer cursor's values
    # are integers there, a timestamp's the text sent anywhere else.
    typed: dict[str, Any] = {
        "incremental.start_value": window.start_us if codec.kind == "integer" else start,
        "incremental.initial_value": cursor.initial_value,
        "incremental.end_value": window.end_us if codec.kind == "integer" else end,
        "incremental.lag": lag}
    typed["incremental.last_value"] = typed["incremental.start_value"]
    values = {name: None if value is None else str(value) for name, value in typed.items()}
    # A child's request keeps its {resources.*} placeholders (and escapes) for its parents.
    substitute = fill if plan.parent is not None else expand
    params: dict[str, Any] = {}
    for name, value in plan.request.params.items():
        text = substitute(value, values) \
            if isinstance(value, str) and not plan.request.final_params else value
        if text is not None:
            params[name] = text
    if cursor.start_param and start is not None:
        params[cursor.start_param] = start
    if cursor.end_param and end is not None:
        params[cursor.end_param] = end
    path = substitute(plan.request.path, values)
    if path is None:  # config checks make the path's values present; say so if not
        raise ValueError(f"{plan.name}: endpoint.path needs a value this read lacks")
    request = plan.request
    return request.filled(path, params, json=expand_tree(request.json, values, typed),
                          data=expand_tree(request.data, values),
                          headers=expand_tree(request.headers, values))


def in_window(records: list[Any], cursor_path: str, window: Window,
              codec: CursorCodec = TIMESTAMP) -> list[Any]:
    """The records inside ``[start, end)``, as dlt's incremental filters them (closed start,
    open end). A record without a readable cursor is kept: the typing step judges it."""
    if window.start_us is None and window.end_us is None:
        return records
    kept = []
    for record in records:
        cursor = _cursor(record, cursor_path, codec)
        if cursor is None or ((window.start_us is None or cursor >= window.start_us)
                              and (window.end_us is None or cursor < window.end_us)):
            kept.append(record)
    return kept


def table_max_cursor(lake: Lake, resource: str, cursor_path: str,
                     codec: CursorCodec = TIMESTAMP) -> int | None:
    """The highest cursor in ``resource``'s table (epoch µs, or the integer), None without a
    table or rows.

    Scans one column; a cursor stored as anything but the ``codec``'s kind gives None (no
    lower bound).
    """
    if lake.version(resource) is None:
        return None
    frame = pl.scan_delta(lake.table_uri(resource), storage_options=lake.storage_options)
    column = cursor_column(cursor_path)
    if column not in frame.collect_schema().names():
        return None
    top = frame.select(pl.col(column).max()).collect().item()
    if codec.kind == "integer":
        return top if isinstance(top, int) and not isinstance(top, bool) else None
    if top is None or not hasattr(top, "tzinfo"):
        return None
    return codec.parse(top.isoformat())


class LaggedRead:
    """One read of ``window`` with the endpoint's own paginator, as a ``pages.PageSource``:
    pages without marks, and once the read ran to its end the mark it allows (``end_mark``,
    see the module docstring). A backfill window allows none.

    ``below_start_us``: a cursor known to be at or below the API's highest when the read begins
    (the table's highest before it), or None. ``unfiltered``: the API applies no filter of
    ours (``served_everything``). ``first``: the first request's answer, already in hand.
    """

    # A lagged read's one mark is its end mark; it has no count or tie groups of its own.
    reread = 0
    recovered = 0
    total_count: int | None = None
    first_total: int | None = None

    def __init__(self, client: ApiClient, plan: ResourcePlan, window: Window, *,
                 below_start_us: int | None,
                 on_retry: Callable[[RetryEvent], None] | None = None,
                 first: PageResponse | None = None, unfiltered: bool = False) -> None:
        if plan.cursor is None:
            raise ValueError("a lagged read needs endpoint.incremental")
        self.client = client
        self.request = windowed_request(plan, window)
        self.cursor_path = plan.cursor.path
        self.codec = plan.cursor.codec
        self.resource = plan.name
        self.window = window
        self.below_start_us = below_start_us
        self.on_retry = on_retry
        self.first = first  # the first request's answer, already in hand (keyset.py)
        # No filter of the API's own: every record it holds is served (the plan's lagged read
        # of an API that cannot filter, or a keyset walk's fallback: keyset.py).
        self.served_everything = unfiltered and not window.backfill
        self.first_page_max: int | None = None
        self.seen_max: int | None = None
        self.requests = 0
        self.complete = False  # the read ran to its end: ``end_mark`` is final

    @property
    def keyset(self) -> bool:
        """Its end carries a mark (``sync`` settles and records it), unless a backfill's."""
        return not self.window.backfill

    def __iter__(self) -> Iterator[Page]:
        for page in iter_pages(self.client, self.request, on_retry=self.on_retry,
                               first=self.first):
            self.requests += 1
            try:
                top = highest_cursor(page.records, self.cursor_path, self.codec)
            except KindMismatch as exc:
                raise ContractError(self.resource, str(exc)) from None
            if self.requests == 1:
                self.first_page_max = top
                check_readable(self.resource, page.records, self.cursor_path, self.codec)
            if top is not None and (self.seen_max is None or top > self.seen_max):
                self.seen_max = top
            yield Page(in_window(page.records, self.cursor_path, self.window, self.codec),
                       page.number, served=page.records)
        self.complete = True

    def end_mark(self) -> int | None:
        """The mark this complete read allows (None: no advance, or not complete), before the
        caller's floor (``markpolicy.ResourceMarks.allowed`` keeps it at or above the start)."""
        if not self.complete or self.window.backfill:
            return None
        return lagged_mark(self.seen_max, self.first_page_max, self.below_start_us)


class BackfillRead:
    """A backfill's read (``[initial_value, end_value)``): another read's pages kept to the
    window, without marks, neither settled nor counted (dlt: ``end_value`` leaves the state
    alone)."""

    keyset = False
    served_everything = False
    total_count: int | None = None

    def __init__(self, source: PageSource, window: Window, cursor_path: str,
                 codec: CursorCodec = TIMESTAMP) -> None:
        self.source, self.window, self.cursor_path = source, window, cursor_path
        self.codec = codec

    @property
    def reread(self) -> int:
        return self.source.reread

    @property
    def recovered(self) -> int:
        return self.source.recovered

    def __iter__(self) -> Iterator[Page]:
        pages = iter(self.source)
        try:
            for page in pages:
                yield Page(in_window(page.records, self.cursor_path, self.window, self.codec),
                           page.number)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def end_mark(self) -> int | None:
        return None


def _cursor(record: Any, cursor_path: str, codec: CursorCodec, *,
            strict: bool = False) -> int | None:
    """A record's cursor as a mark; None where it has none readable (the typing step judges
    the record). ``strict``: a value of the other kind raises ``KindMismatch``, naming the
    config to fix."""
    value = cursor_value(record, cursor_path)
    if value is None:
        return None
    try:
        return codec.parse(value)
    except KindMismatch:
        if strict:
            raise KindMismatch(codec.mismatch(cursor_path, value)) from None
        return None
    except ValueError:
        return None


def lagged_mark(seen_max: int | None, first_page_max: int | None,
                below_start: int | None) -> int | None:
    """The mark a complete lagged read allows (the module docstring):
    ``min(highest seen, max(table's highest before, first answer's highest))``."""
    if seen_max is None:
        return None
    bounds = [b for b in (first_page_max, below_start) if b is not None]
    return min(seen_max, max(bounds)) if bounds else None


def check_readable(resource: str, records: list[Any], cursor_path: str,
                   codec: CursorCodec) -> None:
    """Raise ``ContractError`` when a read's first page holds no cursor of an instant's form
    (``CursorCodec.unreadable``): every record would be set aside and the run end ok."""
    why = codec.unreadable(cursor_path, [cursor_value(r, cursor_path) for r in records])
    if why is not None:
        raise ContractError(resource, why)


def highest_cursor(records: list[Any], cursor_path: str, codec: CursorCodec) -> int | None:
    """The highest readable cursor of ``records`` (None: none); a value of the other kind
    raises ``KindMismatch`` naming the config to fix."""
    cursors = [c for c in (_cursor(r, cursor_path, codec, strict=True) for r in records)
               if c is not None]
    return max(cursors) if cursors else None

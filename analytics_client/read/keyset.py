"""Keyset extraction: read every record changed since a mark, while the API changes under us.

Plain page-number paging over a result set that changes while we read it loses records: an
update moves a record out of an early page and every record behind it shifts one position
towards the front, so one of them slides from the next page onto the page already read. So we
page through the API's cursor filter instead: requests are ``filter[updated_at][gte]=lo``,
``sort=updated_at`` (ties by ``id``, the contract promises it), and after each page ``lo`` moves
up to the last ``updated_at`` on it, starting again at page 1.

Why nothing is missed. Invariant: *every record whose cursor is below ``lo`` has been read*.

* A page is the first ``L`` records of ``{r : cursor(r) >= lo}`` in (cursor, id) order at the
  moment it is served, so every record with ``lo <= cursor < last`` (``last``, the page's
  highest cursor) was on it; moving ``lo`` to ``last`` keeps the invariant. Records at exactly
  ``last`` are read again by the next request (``gte``), so ties at a page edge are safe.
* Records never move below ``lo`` later: an update moves a record's cursor forward, to the
  API's clock at the change, so it is found again further on; a new record carries a current
  cursor too. The one exception the contract allows is a change that becomes visible up to
  5 s late, so stamped up to 5 s before the API's clock when the walk passed it: the mark
  never passes the API's clock when the read began, and the next run starts ``lag`` (10 s)
  before it (``state/markpolicy.py``), or strictly after it once that clock shows that nothing
  stamped at or below it can still appear.
* When more records share one cursor value than fit on a page, ``lo`` cannot move; we read the
  tie group by page number (2, 3, ...). Here a shift can happen: a record of the group read on
  page 1 is updated, leaves the group, and the group's later records move up one position,
  so one slides past the page boundary unseen. So once the walk leaves a group that spanned
  pages, it reads the group again from page 1 until a whole pass brings no id it has not seen.
  A record skipped in a pass is found by a later pass unless every pass is disturbed the same
  way; the walk then stops with an error rather than move past the group.

The mark a run may save is ``lo`` (``safe_mark``, each ``Page.mark``): by the invariant
everything below it was read, and the caller saves it only once those records are committed,
capped at the API's clock (a record stamped in the future moves ``lo``, never the mark). At
the end of a complete walk the tie group at ``lo`` has been read whole too (the last page was
short, or the group was read by page and read again): what lets a proven mark's next run
start strictly after it. It is never our clock. Every request a keyset read sends (walks,
slice probes, ``check``) is built by ``keyset_request``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from analytics_client.config.model import PageNumberPaginator
from analytics_client.core.cursors import KindMismatch
from analytics_client.core.errors import ContractError, FilterIgnored, PaginationLoopError
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.core.window import Window
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.paginators import PageNumberPaginator as PageNumberPages
from analytics_client.http.paginators import (
    PageRequest,
    PageResponse,
    make_paginator,
    page_signals,
)
from analytics_client.lake.tables import Lake
from analytics_client.read.paged import check_page_size, count_at, select_records
from analytics_client.read.pages import Page, PageSource
from analytics_client.read.plan import Cursor, ResourcePlan
from analytics_client.read.window import LaggedRead, check_readable, table_max_cursor

__all__ = ["FilterFallback", "KeysetWalk", "format_cursor", "keyset_request", "parse_cursor"]

MAX_GROUP_PASSES = 20

logger = logging.getLogger(__name__)


def keyset_request(plan: ResourcePlan, lo: int | None, page: int, *,
                   limit: int | None = None, end: int | None = None) -> PageRequest:
    """Page ``page`` of the records whose cursor is at or after ``lo`` (epoch µs; None: all)
    and, with ``end``, before it (a backfill's ``end_value``, sent as ``end_param``).

    The paginator builds the page request (``paginators.PageNumberPaginator.page_request``),
    then the cursor filter ``incremental.start_param`` is added.
    """
    incremental = plan.cursor
    if incremental is None or not incremental.start_param:
        raise ValueError("a keyset read needs endpoint.incremental.start_param")
    pages = make_paginator(plan.name, plan.request.paginator)
    if not isinstance(pages, PageNumberPages):
        raise ValueError("a keyset read needs a page_number paginator")
    request = pages.page_request(plan.request.params, page, limit=limit)
    if lo is not None:
        request.params[incremental.start_param] = incremental.codec.format(lo)
    if end is not None and incremental.end_param:
        request.params[incremental.end_param] = incremental.codec.format(end)
    return request


class KeysetWalk:
    """Iterates over pages of records changed at or after ``start_us`` (everything if None)."""

    def __init__(
        self,
        client: ApiClient,
        plan: ResourcePlan,
        *,
        start_us: int | None,
        stop_us: int | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        incremental = plan.cursor
        paginator = plan.request.paginator
        if incremental is None or not incremental.start_param:
            raise ValueError("a keyset walk needs endpoint.incremental.start_param")
        if not isinstance(paginator, PageNumberPaginator):
            raise ValueError("a keyset walk needs a page_number paginator")
        self.client = client
        self.plan = plan
        self.incremental: Cursor = incremental
        self.paginator = paginator
        self.on_retry = on_retry
        self.start_us = start_us
        self.stop_us = stop_us  # a slice ends here: records from this cursor on are another's
        self.lo = start_us
        self.requests = 0
        self.group_passes = 0
        self.recovered = 0  # ids a tie-group re-read found that a shifting page had hidden
        # Records served again that this walk had already yielded: the records at ``lo`` that
        # start each next page (``gte``) and tie groups read again. The run's summary says so.
        self.reread = 0
        self.first_total: int | None = None  # the API's count of the range when the walk began
        self.page_number: int | None = None  # of the page last fetched
        self.complete = False  # the walk ran to its end: ``end_mark`` is final
        self.first_response: PageResponse | None = None  # the walk's first answer

    keyset = True
    served_everything = False

    @property
    def total_count(self) -> int | None:
        """The API's count when a full read began (None for an incremental walk)."""
        return self.first_total if self.start_us is None else None

    @property
    def safe_mark(self) -> int | None:
        """Every record with a cursor below this (epoch µs) has been yielded."""
        return self.lo

    def __iter__(self) -> Iterator[Page]:
        """Pages with ``lo`` as their mark: everything below it has been yielded. Raises
        ``FilterIgnored`` when a page shows the API ignores the filter (``FilterFallback``)."""
        for records in self._records():
            yield Page(records, self.page_number, self.lo)
        self.complete = True

    def end_mark(self) -> int | None:
        """``lo`` once the walk ran to its end (None before)."""
        return self.lo if self.complete else None

    def _records(self) -> Iterator[list[Any]]:
        page = self.paginator.base_page
        group: set[object] = set()  # ids at cursor == lo (or of unreadable-cursor pages)
        spanned = False  # the group at lo was read over more than one page
        while True:
            records, body, cursors = self._fetch(self.lo, page)
            if group and self.lo is not None:
                self.reread += len(group.intersection(self._ids_at(records, cursors, self.lo)))
            yield records
            last_page = self._is_last(body, records, page)
            if not records:
                if spanned:
                    yield from self._reread_group(group)
                return
            top = self._top(cursors)
            if top is None or (self.lo is not None and top == self.lo):
                # The page says nothing beyond lo: it all shares lo (a tie group), or no record
                # on it has a readable cursor (those are set aside when typed). Read on by page.
                ids = self._ids_at(records, cursors, top)
                if page > self.paginator.base_page and set(ids) <= group:
                    where = self._text(self.lo) if self.lo is not None else "the start"
                    raise PaginationLoopError(
                        self.plan.name,
                        f"page {page} of the records at {where} brought no new "
                        f"record: the API seems to ignore {self.paginator.page_param!r}; "
                        "check paginator.page_param",
                    )
                group.update(ids)
                spanned = self.lo is not None
                page += 1
                if last_page:
                    if spanned:
                        yield from self._reread_group(group)
                    return
                continue
            if spanned:
                group.update(self._ids_at(records, cursors, self.lo))  # the group's tail
                yield from self._reread_group(group)
            stop = self.stop_us  # read once: another thread may narrow it (slices.py)
            if stop is not None and top >= stop:
                # Every record in [lo, stop) preceded ``top`` on this page: the slice is read.
                # Those from ``stop`` on belong to the next slice, which reads them too. A stop
                # set below ``lo`` meanwhile leaves ``lo`` where it is: below it all was read.
                self.reread += sum(c is not None and c >= stop for c in cursors)
                self.lo = stop if self.lo is None else max(self.lo, stop)
                return
            self.lo, page = top, self.paginator.base_page
            group, spanned = set(self._ids_at(records, cursors, top)), False
            if last_page:
                return

    def _reread_group(self, known: set[object]) -> Iterator[list[Any]]:
        """Read the tie group at ``lo`` again until a whole pass brings no new id."""
        assert self.lo is not None
        for _ in range(MAX_GROUP_PASSES):
            self.group_passes += 1
            seen: set[object] = set()  # ids at lo this pass
            paged: set[object] = set()  # every id this pass (unreadable cursors follow lo's)
            page = self.paginator.base_page
            while True:
                records, body, cursors = self._fetch(self.lo, page)
                ids = set(self._ids_at(records, cursors, self.lo))
                self.reread += len(ids & known)
                yield records
                top = self._top(cursors)
                if (not records or (top is not None and top > self.lo)
                        or self._is_last(body, records, page)):
                    seen |= ids
                    break
                # A loop shows in every id of the page, not only those at lo: a page of
                # records whose cursor does not parse (set aside when typed) has none at lo.
                on_page = {self._id(r) for r in records}
                if page > self.paginator.base_page and on_page <= paged:
                    raise PaginationLoopError(
                        self.plan.name,
                        f"page {page} of the records at {self._text(self.lo)} brought no new "
                        f"record: the API seems to ignore {self.paginator.page_param!r}",
                    )
                seen |= ids
                paged |= on_page
                page += 1
            if seen <= known:
                return
            self.recovered += len(seen - known)
            known |= seen
        raise ContractError(
            self.plan.name,
            f"the records sharing {self.incremental.path} {self._text(self.lo)} kept "
            f"changing over {MAX_GROUP_PASSES} reads; stopped before this point so nothing is "
            "skipped (the mark stays below it); run again later",
        )

    def _fetch(self, lo: int | None, page: int) -> tuple[list[Any], Any, list[int | None]]:
        response = self.client.get_page(
            self.plan.request, keyset_request(self.plan, lo, page, end=self._end()),
            page=page, on_retry=self.on_retry)
        body = response.body
        self.requests += 1
        if self.requests == 1:
            self.first_response = response
        self.page_number = page
        records = select_records(self.plan.request, body, page)
        check_page_size(self.plan.request, records, page)
        if self.requests == 1:
            self.first_total = count_at(body)
            check_readable(self.plan.name, records, self.incremental.path,
                           self.incremental.codec)
        cursors = self._cursors(records, lo, page)
        return records, body, cursors

    def _cursors(self, records: list[Any], lo: int | None, page: int) -> list[int | None]:
        """Each record's cursor (None where it does not parse); the page must honour the filter
        and be sorted by it.

        A record whose cursor does not parse is no reason to stop the walk: it is set aside by
        name when its batch is typed (frames.py), and it never moves ``lo``, so never a mark.
        """
        field = self.incremental.path
        cursors: list[int | None] = []
        for record in records:
            value = self.incremental.value(record)
            try:
                cursors.append(self.incremental.codec.parse(value))
            except KindMismatch:
                raise ContractError(self.plan.name,
                                    self.incremental.codec.mismatch(field, value)) from None
            except ValueError:
                cursors.append(None)
        known = [c for c in cursors if c is not None]
        if lo is not None and known and known[0] < lo:
            raise FilterIgnored(
                self.plan.name,
                f"page {page} has {field} {self._text(known[0])} below the requested "
                f"{self.incremental.start_param}={self._text(lo)}: the API ignores the filter; "
                "check incremental.start_param",
            )
        if any(a > b for a, b in itertools.pairwise(known)):
            raise ContractError(
                self.plan.name,
                f"page {page} is not sorted by {field}: incremental reads need the API to sort "
                f"by the cursor; set endpoint.params (e.g. sort: {field})",
            )
        return cursors

    def _end(self) -> int | None:
        """The end a backfill's requests send (``end_param``); a slice's bound is ours alone."""
        return self.stop_us if self.plan.mode == "backfill" else None

    def _text(self, mark: int | None) -> str:
        return "none" if mark is None else self.incremental.codec.format(mark)

    def _top(self, cursors: list[int | None]) -> int | None:
        """The page's highest readable cursor, where ``lo`` may move; None: none is readable."""
        known = [c for c in cursors if c is not None]
        return known[-1] if known else None

    def _ids_at(self, records: list[Any], cursors: list[int | None],
                cursor: int | None) -> list[object]:
        """Ids of the records at ``cursor`` (None: of the records whose cursor is unreadable)."""
        return [self._id(r) for r, c in zip(records, cursors, strict=True) if c == cursor]

    def _id(self, record: Any) -> object:
        """A record's identity: its primary key's value, or the tuple of a composite key's."""
        key = self.plan.record_key
        if not isinstance(record, dict):
            return None
        if len(key) == 1:
            return _hashable(record.get(key[0]))
        return tuple(_hashable(record.get(k)) for k in key)

    def _is_last(self, body: Any, records: list[Any], page: int) -> bool:
        """Each keyset request is a fresh result set, so a short page is its end.

        A full page is never taken as the last one, whatever totals or links claim: they may
        lag behind records created meanwhile, and one more request settles it. Only without a
        known page size do the totals and links decide.
        """
        if not records:
            return True
        if self.paginator.limit is not None:
            return len(records) < self.paginator.limit
        total, next_link = page_signals(body, self.paginator.total_path)
        if total is not None:
            return page - self.paginator.base_page + 1 >= total
        return next_link is None


class FilterFallback:
    """A keyset read (a walk, or a sliced walk's) that goes on as dlt reads an API that ignores
    the cursor filter, once a page shows it does (``FilterIgnored``): every page of ``window``
    with the endpoint's own paginator, records below its start dropped on our side, the mark a
    lagged read's (``window.LaggedRead``). Pages already yielded are yielded again; the merge
    (or an append's versions) makes that harmless. The requests still carry the filter (dlt
    sends it too), so deletes are judged from the start, as after any filtered read."""

    keyset = True
    served_everything = False

    def __init__(self, primary: PageSource, client: ApiClient, plan: ResourcePlan,
                 window: Window, *, lake: Lake | None = None,
                 on_retry: Callable[[RetryEvent], None] | None = None) -> None:
        """``lake``: where the table's highest cursor bounds the fallback's mark (window.py),
        read only if the fallback happens."""
        self.primary, self.client, self.plan, self.window = primary, client, plan, window
        self.lake, self.on_retry = lake, on_retry
        self.fallback: LaggedRead | None = None

    @property
    def total_count(self) -> int | None:
        return self.primary.total_count if self.fallback is None else None

    @property
    def reread(self) -> int:
        return self.primary.reread

    @property
    def recovered(self) -> int:
        return self.primary.recovered

    @property
    def walks(self) -> object:  # progress (run/progress.py) reads a sliced walk's
        return getattr(self.primary, "walks", None)

    @property
    def first_total(self) -> object:
        return getattr(self.primary, "first_total", None)

    def __iter__(self) -> Iterator[Page]:
        pages = iter(self.primary)
        try:
            yield from pages
            return
        except FilterIgnored as exc:
            ignored = exc
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # a sliced walk's threads end here
        cursor = self.plan.cursor
        assert cursor is not None
        start = "the start" if self.window.start_us is None \
            else f"{cursor.start_param}={cursor.codec.format(self.window.start_us)}"
        logger.warning("%s; reading every page and keeping the records at or after %s on our "
                       "side, as dlt does (every run reads the whole endpoint): set "
                       "incremental.start_param to a filter the API applies, or drop it",
                       ignored, start)
        # A walk stopped at its first answer asked what the read asks first (the same filter,
        # page and end): that answer is the read's first page, not asked for twice.
        primary = self.primary
        first = primary.first_response if isinstance(primary, KeysetWalk) \
            and primary.requests == 1 and primary.lo == self.window.start_us else None
        below = None if self.lake is None else table_max_cursor(
            self.lake, self.plan.name, cursor.path, cursor.codec)
        self.fallback = LaggedRead(self.client, self.plan, self.window, below_start_us=below,
                                   on_retry=self.on_retry, first=first)
        yield from self.fallback

    def end_mark(self) -> int | None:
        return self.primary.end_mark() if self.fallback is None else self.fallback.end_mark()


def _hashable(key: object) -> object:
    """A key fit for a set: a key the API sent as an object or list is kept by its text."""
    return key if isinstance(key, str | int | float | None) else repr(key)

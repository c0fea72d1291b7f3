"""Concurrent extraction within one resource: K keyset walks over disjoint cursor ranges.

Against a slow API one walk is bound by latency (page after page). Fetching page numbers out of
order is not safe (a record created in the middle shifts every later page; an unchanged record
is then skipped for good), so we split by the cursor instead:

1. The first walk's first page is a normal data page; its ``total_count`` says how many
   records lie at or after the start. Only when the API is slow (its first pages took at least
   ``SLOW_PAGE`` each) or the process mostly waited while they came (its CPU was busy less
   than ``max_busy`` of the time: the API's latency, not our parsing, bounds the pace; against
   a fast API more threads cost more CPU than they save waiting) and the total makes at
   least ``min_pages`` pages per range do ``K - 1`` requests with ``page[size]=1`` at evenly
   spaced page numbers return the cursor values ``b_1 <= ... <= b_{K-1}`` found there: the
   range bounds. (So a small incremental run costs no extra request.)
2. K keyset walks (``keyset.py``) run concurrently, walk ``i`` over ``[b_i, b_{i+1})`` (the last
   one without an end). Each is a complete keyset walk of its range: a walk stops once a page
   shows a cursor at or past its end, and every record of the range came before that on the
   page. Ranges are half-open, so a tie group at a bound belongs wholly to the later walk.
3. A record updated during the run moves past every bound (its new cursor is the newest), so
   the last walk, which runs to the end, or the next run finds it. A probe that raced with such
   a change only moves a bound; the ranges still cover everything from the start on.

The mark may only move to a cursor below which every range has been read: the lowest progress
among unfinished walks (a finished walk counts as read to its end). ``progress`` gives it, as
each ``Page.mark``; the caller commits first and saves the mark after, as for a single walk.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .client import ApiClient, RetryEvent
from .config import DEFAULT_PAGE_SIZE, PageNumberPaginator, ResourceConfig
from .extract import select_records
from .keyset import KeysetWalk, keyset_request
from .pages import Page
from .timestamps import parse as parse_cursor

__all__ = ["MAX_BUSY", "SLOW_PAGE", "SlicedWalk", "plan_bounds", "waits_for_the_api"]

# Share of the wall time this process spent on CPU (all threads) while the first pages came,
# above which more walks cannot help: the run is bound by parsing, not by the API's latency
# (measured on 2 cores against a loopback API: 4 walks per resource took ~20 % longer than one).
MAX_BUSY = 0.5
# Seconds per page from which more walks always pay: far above what parsing a page costs here
# (under 1 ms), even with every resource's thread waiting for the interpreter.
SLOW_PAGE = 0.02
# Pages timed before deciding; the first request of a resource may also open a connection.
_TIMED_PAGES = 3

class SlicedWalk:
    """Runs up to ``slices`` keyset walks of one resource at once."""

    def __init__(self, client: ApiClient, resource: ResourceConfig, *, start_us: int | None,
                 slices: int, min_pages_per_slice: int = 20, max_busy: float = MAX_BUSY,
                 on_retry: Callable[[RetryEvent], None] | None = None,
                 split: bool | None = None) -> None:
        """``split`` None decides from the first pages' timing (``waits_for_the_api``); True or
        False decides up front, so that a caller (or a test on a busy machine) gets the same
        walks whatever the clock says. The total must still make enough pages per range."""
        self.client, self.resource = client, resource
        self.split = split
        self.start_us, self.slices = start_us, max(1, slices)
        self.min_pages = min_pages_per_slice
        self.max_busy = max_busy
        self.busy: float | None = None  # CPU share of the process while the first pages came
        self.latency: float | None = None  # median seconds per page of the first pages
        self.on_retry = on_retry
        self.walks: list[KeysetWalk] = []
        self.finished: list[bool] = []
        self.probes = 0
        self.complete = False  # every walk ran to its end: ``end_mark`` is final
        self._lock = threading.RLock()  # the sink may ask for progress() while holding it

    keyset = True

    @property
    def requests(self) -> int:
        return self.probes + sum(w.requests for w in self.walks)

    @property
    def total_count(self) -> int | None:
        """The API's count when a full read began."""
        return self.walks[0].total_count if self.walks else None

    @property
    def recovered(self) -> int:
        return sum(w.recovered for w in self.walks)

    @property
    def reread(self) -> int:
        return sum(w.reread for w in self.walks)

    def progress(self) -> int | None:
        """Every record with a cursor below this has been handed to the sink."""
        with self._lock:
            for walk, done in zip(self.walks, self.finished, strict=True):
                if not done:
                    return walk.safe_mark
            return self.walks[-1].safe_mark if self.walks else self.start_us

    def end_mark(self) -> int | None:
        """The final progress once every walk ran to its end (None before)."""
        return self.progress() if self.complete else None

    def __iter__(self) -> Iterator[Page]:
        """Pages whose mark says: once consumed, everything below it has been seen.

        The first walk's first pages say how many records there are and how slow the API is;
        only when that is enough to split are the other bounds probed and the other walks
        started. They run in threads and hand pages over through a bounded queue; each page is
        queued with the progress taken at that moment, so the mark never covers a page still
        waiting in the queue.
        """
        yield from self._pages()  # closing this closes the walks' threads too
        self.complete = True

    def _pages(self) -> Iterator[Page]:
        first = KeysetWalk(self.client, self.resource, start_us=self.start_us,
                           on_retry=self.on_retry)
        self.walks, self.finished = [first], [False]
        pages = iter(first)
        wall_before, cpu_before = time.monotonic(), time.process_time()
        timings: list[float] = []
        for _ in range(_TIMED_PAGES):
            began = time.monotonic()
            page = next(pages, None)
            if page is None:
                self.finished[0] = True
                return
            timings.append(time.monotonic() - began)
            yield page
        wall = max(time.monotonic() - wall_before, 1e-9)
        self.busy = (time.process_time() - cpu_before) / wall
        self.latency = statistics.median(timings)
        waits = waits_for_the_api(self.latency, self.busy, self.max_busy) \
            if self.split is None else self.split
        slices = self.slices if waits else 1
        bounds = plan_bounds(self.client, self.resource, self.start_us, first.first_total,
                             slices, self.min_pages, self._count_probe)
        if not bounds:
            yield from pages
            self.finished[0] = True
            return
        first.stop_us = bounds[0]
        ends: list[int | None] = [*bounds[1:], None]
        self.walks += [KeysetWalk(self.client, self.resource, start_us=a, stop_us=b,
                                  on_retry=self.on_retry) for a, b in zip(bounds, ends, strict=True)]
        self.finished = [False] * len(self.walks)
        yield from self._concurrently([pages, *(iter(w) for w in self.walks[1:])])

    def _concurrently(self, iterators: list[Iterator[Page]]) -> Iterator[Page]:
        handover: queue.Queue[Page | None | BaseException] = \
            queue.Queue(maxsize=2 * len(iterators))
        stop = threading.Event()
        threads = [threading.Thread(target=self._drive, args=(i, it, handover, stop), daemon=True,
                                    name=f"{self.resource.name}-slice-{i}")
                   for i, it in enumerate(iterators)]
        for thread in threads:
            thread.start()
        try:
            running = len(threads)
            while running:
                item = handover.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:  # a walk ran to its end
                    running -= 1
                    continue
                yield item
        finally:
            stop.set()
            for thread in threads:
                while thread.is_alive():  # unblock a walk waiting to hand over a page
                    try:
                        handover.get_nowait()
                    except queue.Empty:
                        thread.join(0.05)

    def _drive(self, index: int, pages: Iterator[Page], handover: queue.Queue[Any],
               stop: threading.Event) -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                with self._lock:  # progress and queue order agree
                    handover.put(Page(page.records, page.number, self.progress()))
            with self._lock:
                self.finished[index] = True
                handover.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            handover.put(exc)

    def _count_probe(self) -> None:
        self.probes += 1


def waits_for_the_api(latency: float, busy: float, max_busy: float = MAX_BUSY) -> bool:
    """Whether more walks would pay, from the first pages' median seconds and CPU share.

    A slow API is worth more walks whatever else the process is doing (a run's start keeps
    the CPU busy for a moment); a faster one only when the process mostly waits.
    """
    return latency >= SLOW_PAGE or busy < max_busy


def plan_bounds(client: ApiClient, resource: ResourceConfig, start_us: int | None,
                total: int | None, slices: int, min_pages: int,
                on_probe: Callable[[], None] | None = None) -> list[int]:
    """Cursor values splitting the ``total`` records from ``start_us`` on into up to ``slices``.

    Empty when the API gave no total or there is too little to split (fewer than
    ``min_pages`` pages per range).
    """
    paginator = resource.endpoint.paginator
    incremental = resource.endpoint.incremental
    if (slices <= 1 or total is None or incremental is None
            or not isinstance(paginator, PageNumberPaginator)):
        return []
    k = min(slices, total // ((paginator.limit or DEFAULT_PAGE_SIZE) * min_pages))
    bounds: list[int] = []
    for i in range(1, k):
        position = i * total // k + 1
        request = keyset_request(resource, start_us, position - 1 + paginator.base_page, limit=1)
        records = select_records(
            resource, client.get_page(resource, request, page=position).body, position)
        if on_probe:
            on_probe()
        value = records[0].get(incremental.cursor_path) if records and isinstance(records[0], dict) else None
        try:
            cursor = parse_cursor(value)  # type: ignore[arg-type]
        except ValueError:  # no usable boundary here: fewer slices, same records
            continue
        if (start_us is None or cursor > start_us) and (not bounds or cursor > bounds[-1]):
            bounds.append(cursor)
    return bounds

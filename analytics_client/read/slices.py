"""Concurrent extraction within one resource: keyset walks over disjoint cursor ranges.

Against a slow API one walk is bound by latency (page after page). Fetching page numbers out of
order is not safe (a record created in the middle shifts every later page; an unchanged record
is then skipped for good), so we split by the cursor instead:

1. The first walk's first page is a normal data page; its ``total_count`` says how many
   records lie at or after the start. When its thread waited at least ``Timing.slow_page`` for that
   page (wall time less its own CPU) the API is slow (one page shows it) and the split is
   decided at once; otherwise two more pages are timed and the split is made only when the
   process mostly waited while they came (its CPU was busy less than ``max_busy`` of the
   time: the API's latency, not our parsing, bounds the pace; against a fast API more
   threads cost more CPU than they save waiting). The total
   must also make at least ``min_pages`` pages per range. Then ``K - 1`` requests with
   ``page[size]=1`` at evenly spaced page numbers, sent at once (as many threads as the
   client's in-flight limit allows), return the cursor values found there, and the bounds
   ``b_1 < ... < b_{K-1}`` are taken from them in position order, as one probe after the
   other would (each probe is an independent read; only the order they are read in, not
   the order they are answered in, decides). (So a small incremental run costs no extra
   request.)
2. K keyset walks (``keyset.py``) run concurrently, walk ``i`` over ``[b_i, b_{i+1})`` (the last
   one without an end). Each is a complete keyset walk of its range: a walk stops once a page
   shows a cursor at or past its end, and every record of the range came before that on the
   page. Ranges are half-open, so a tie group at a bound belongs wholly to the later walk.
3. A record updated during the run moves past every bound (its new cursor is the newest), so
   the last walk, which runs to the end, or the next run finds it. A probe that raced with such
   a change only moves a bound; the ranges still cover everything from the start on.

Work stealing. The run's walks share one client and its in-flight limit
(``client.max_concurrency``, a ``WalkPool`` per client). When fewer walks run than the limit
allows (other resources have finished) and the run is still waiting for the API, the running
walk with the most records left (its range's count from the API's totals, less what it has
yielded; across every resource of the run) is split: one ``page[size]=1`` request at
``filter >= lo`` returns the cursor ``m`` of the record half-way through what is left, and
when ``lo < m < end`` a new walk takes ``[m, end)`` while the running one's end becomes ``m``.
"Still waiting" is measured again before every split (``Pace``: the median wait of the run's
last pages and the process's CPU share over the last seconds, judged by ``steal_pays``: pages
slower than ``Timing.slow_page`` and a process not near a full core): against a fast API idle slots
stay idle, since more threads would cost CPU and save nothing. (Nor once the API has
answered 429: its rate limit then bounds the run, not the latency.) The gate only decides
whether a split happens, never how one is made, so it does not enter the argument below.
Why nothing is lost, whatever the timing:

* The ranges always partition the cursor axis from the start on: ``[lo_0, end)`` becomes
  ``[lo_0, m)`` and ``[m, end)``, both half-open, boundaries read inclusively by the later walk
  (``gte``) exactly as the planned bounds are. The new walk is registered, in range order,
  before the old walk's end moves, so no instant exists at which ``[m, end)`` is nobody's.
* The old walk stops at the first page showing a cursor ``>= m``; every record of ``[lo, m)``
  preceded it on that page (keyset invariant). Had it already passed ``m`` when its end moved
  (the probe and the move are not atomic with its paging), it stops at its next page, keeps
  ``lo`` (all below was read by it) and the new walk reads ``[m, end)`` again: records twice,
  never none; the table's merge on the key keeps one.
* A probe that lands on ``lo`` itself (a tie group wider than half) or at or past ``end`` (the
  count was stale) splits nothing; that walk is not probed again until its ``lo`` moves.

The mark may only move to a cursor below which every range has been read: the end of what
the walks have read (a walk ``[start, lo)``, a finished one to its end) contiguously from the
start. ``progress`` gives it, as each ``Page.mark``, and what the walks above it have read as
``Page.ahead``; the caller commits both first and saves the mark after, as for a single walk.
A stopped read's resume (``resume.py``) walks only the ranges those left out.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor

from analytics_client.config.model import DEFAULT_PAGE_SIZE, PageNumberPaginator
from analytics_client.core.errors import RunStopped
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.read.keyset import KeysetWalk, keyset_request
from analytics_client.read.paged import select_records
from analytics_client.read.pages import Page
from analytics_client.read.plan import ResourcePlan
from analytics_client.read.resume import Resume, covered

__all__ = ["MAX_BUSY", "MIN_STEAL_PAGES", "Pace", "SlicedWalk", "WalkPool",
           "plan_bounds", "pool_for", "probe_cursors", "steal_pays", "waits_for_the_api"]

# Share of the wall time this process spent on CPU (all threads) while the first pages came (or
# over the last PACE_WINDOW seconds, when a split is weighed) above which more walks cannot
# help, unless the pages were slow: the run is bound by parsing, not by the API's latency
# (measured on 2 cores against a loopback API: 4 walks per resource took ~20 % longer than one).
MAX_BUSY = 0.5
# Seconds a page's thread waits (wall time less its own CPU: ``_waited``) from which more walks
# always pay, and the CPU share above which no steal pays: ``Timing.slow_page`` and
# ``Timing.max_busy_steal`` (core/timing.py), values the run's client carries.
# A running walk is split only when each half keeps at least this many pages: the probe costs
# one request (and the old walk re-reads one page edge), the split saves half of what is left.
MIN_STEAL_PAGES = 3
# Pages timed before deciding from the CPU share (a slow first page decides at once).
_TIMED_PAGES = 3
# What "recent" means when a split is weighed: the median of the run's last PACE_PAGES page
# times, and the CPU share over about the last PACE_WINDOW seconds (at least PACE_MIN_SPAN, else
# the pages' times decide alone). Long enough to smooth one commit or one slow answer, short
# enough to see a run turn from waiting to parsing as its walks multiply.
PACE_PAGES = 32
PACE_WINDOW = 2.0
PACE_MIN_SPAN = 0.2
_THREADS = object()  # _walks' word that the walks now run in threads


class Pace:
    """What the run's recent pages say bounds it: the API's latency, or this process's CPU.

    Walks report each page's wait (from asking for it to having it, less the CPU their thread
    spent meanwhile, and without the time spent handing it over); ``measure`` gives the median
    of the last ``pages`` of them and the CPU share of the process (all threads, from ``cpu``)
    over about the last ``window`` seconds of ``clock`` (both injectable: tests need no wall
    clock). Thread-safe.
    """

    def __init__(self, *, pages: int = PACE_PAGES, window: float = PACE_WINDOW,
                 clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time,
                 timing: Timing = DEFAULT_TIMING) -> None:
        self.window, self.timing = window, timing
        self._clock, self._cpu = clock, cpu
        self._times: deque[float] = deque(maxlen=pages)
        self._samples: deque[tuple[float, float]] = deque()  # (clock, cpu) at each page
        self._lock = threading.Lock()

    def page(self, seconds: float) -> None:
        """One page came after ``seconds``."""
        sample = (self._clock(), self._cpu())
        with self._lock:
            self._times.append(seconds)
            self._samples.append(sample)
            self._forget(sample[0])

    def measure(self) -> tuple[float | None, float | None]:
        """(median seconds per recent page, CPU share over the recent window); None: unknown
        (no page yet; a window shorter than ``PACE_MIN_SPAN``)."""
        now, cpu = self._clock(), self._cpu()
        with self._lock:
            self._forget(now)
            latency = statistics.median(self._times) if self._times else None
            if not self._samples or now - self._samples[0][0] < PACE_MIN_SPAN:
                return latency, None
            then, cpu_then = self._samples[0]
        return latency, (cpu - cpu_then) / (now - then)

    def waits(self) -> bool:
        """Whether the run waits for the API now (``steal_pays`` on ``measure``); with no page
        measured yet, no."""
        latency, busy = self.measure()
        return latency is not None and steal_pays(latency, busy, self.timing)

    def _forget(self, now: float) -> None:
        """Keep the newest sample at or before the window's start, and those after it."""
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()


class WalkPool:
    """The walks of one run (one client) and how many may run at once.

    ``active`` counts walks being driven; when it is below ``capacity`` and ``waits()`` says
    the run waits for the API, the pool splits the largest range left among its members
    (``rebalance``). ``waits`` is the run's ``pace`` measured at that moment; a caller (or a
    test, which must not depend on the clock) may set another decision. Its lock is never held
    while a request is made or another lock is taken.
    """

    def __init__(self, capacity: int, *, waits: Callable[[], bool] | None = None,
                 timing: Timing = DEFAULT_TIMING) -> None:
        self.capacity = max(1, capacity)
        self.active = 0
        self.peak = 0  # most walks driven at once
        self.splits = 0
        self.declined = 0  # splits not made: the run was not waiting for the API
        self.pace = Pace(timing=timing)
        self.waits: Callable[[], bool] = waits or self.pace.waits
        self._members: list[SlicedWalk] = []
        self._lock = threading.Lock()

    def join(self, member: SlicedWalk) -> None:
        with self._lock:
            self._members.append(member)

    def leave(self, member: SlicedWalk) -> None:
        with self._lock:
            if member in self._members:
                self._members.remove(member)

    def started(self, walks: int = 1) -> None:
        with self._lock:
            self.active += walks
            self.peak = max(self.peak, self.active)

    def ended(self) -> None:
        with self._lock:
            self.active -= 1

    def idle(self) -> bool:
        return self.active < self.capacity

    def rebalance(self) -> None:
        """Split the largest ranges left until every slot runs a walk or none is worth it, as
        long as the run waits for the API (asked before each split, once there is a range to
        split: each split changes the answer)."""
        while True:
            if not self._members or not self.idle():  # no lock: a cheap first look
                return
            with self._lock:
                best = self._largest()
            if best is None:
                return
            if not self.waits():  # outside the lock: it measures, under the pace's own
                with self._lock:
                    self.declined += 1
                return
            _, member, walk, remaining = best
            with self._lock:
                if self.active >= self.capacity:
                    return
                if walk in member.splitting:  # another slot took it meanwhile: look again
                    continue
                member.splitting.add(walk)
                self.active += 1  # the slot is the new walk's from now on, or given back
                self.peak = max(self.peak, self.active)
            try:
                split = member.split(walk, remaining)
            finally:
                with self._lock:
                    member.splitting.discard(walk)
            if split:
                with self._lock:
                    self.splits += 1
            else:
                self.ended()

    def _largest(self) -> tuple[float, SlicedWalk, KeysetWalk, int] | None:
        """(pages left, member, walk, records left) of the largest splittable range; None if
        none is worth a split. Caller holds the lock."""
        best: tuple[float, SlicedWalk, KeysetWalk, int] | None = None
        for member in self._members:
            for walk, remaining in member.splittable():
                pages = remaining / member.page_size
                if best is None or pages > best[0]:
                    best = (pages, member, walk, remaining)
        return best


_POOLS: weakref.WeakKeyDictionary[ApiClient, WalkPool] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def pool_for(client: ApiClient) -> WalkPool:
    """The run's pool: one per client, sized by its in-flight limit."""
    with _POOLS_LOCK:
        pool = _POOLS.get(client)
        if pool is None:
            pool = _POOLS[client] = WalkPool(client.max_concurrency, timing=client.timing)
        return pool


class SlicedWalk:
    """Runs keyset walks of one resource at once: ``slices`` planned, more by work stealing."""

    def __init__(self, client: ApiClient, plan: ResourcePlan, *, start_us: int | None,
                 slices: int, min_pages_per_slice: int = 20, max_busy: float = MAX_BUSY,
                 on_retry: Callable[[RetryEvent], None] | None = None,
                 split: bool | None = None, steal: bool = True,
                 min_steal_pages: int = MIN_STEAL_PAGES, resume: Resume | None = None) -> None:
        """``split`` None decides from the first pages' timing (``waits_for_the_api``); True or
        False decides up front, so that a caller (or a test on a busy machine) gets the same
        walks whatever the clock says. The total must still make enough pages per range.
        ``steal`` lets idle slots of the run split this resource's ranges further (only once
        it was split at all, and only while the run's pool says the run waits for the API:
        ``WalkPool.waits``). ``resume``: the walks of a stopped read's resume, run at once."""
        self.client, self.plan, self.resume = client, plan, resume
        self.timing = client.timing
        self.split_decision = split
        self.start_us, self.slices = start_us, max(1, slices)
        self.min_pages = min_pages_per_slice
        self.max_busy = max_busy
        self.busy: float | None = None  # CPU share of the process while the first pages came
        self.latency: float | None = None  # median wait per page of the first pages (_waited)
        self.timed = 0  # first pages timed before the decision (1 when the first was slow)
        self.on_retry = on_retry
        self.steal = steal
        paginator = plan.request.paginator
        self.page_size = (paginator.limit if isinstance(paginator, PageNumberPaginator)
                          and paginator.limit else DEFAULT_PAGE_SIZE)
        self.min_steal = 2 * min_steal_pages * self.page_size  # records left, to split a walk
        self.walks: list[KeysetWalk] = []  # in range order: each one's start is the previous end
        self.probes = 0
        self.stolen = 0  # walks added by splitting a running one
        self.splitting: set[KeysetWalk] = set()  # walks a probe is under way for (pool's lock)
        self._finished: set[KeysetWalk] = set()
        self._yielded: dict[KeysetWalk, int] = {}
        self._no_split: dict[KeysetWalk, int | None] = {}  # a probe found nothing at this lo
        self._threads: list[threading.Thread] = []
        self._handover: queue.Queue[Page | None | BaseException] | None = None
        self._stop = threading.Event()
        self._closed = False
        self._pool: WalkPool | None = None
        self.complete = False  # every walk ran to its end: ``end_mark`` is final
        self._lock = threading.RLock()  # the sink may ask for progress() while holding it

    keyset = True
    served_everything = False

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

    @property
    def finished(self) -> list[bool]:
        """Per walk, in range order: whether it has read its whole range."""
        return [w in self._finished for w in self.walks]

    def ranges(self) -> list[tuple[int | None, int | None]]:
        """``[start, end)`` of each walk in order (None: from the beginning / to the end)."""
        with self._lock:
            return [(w.start_us, w.stop_us) for w in self.walks]

    def progress(self) -> int | None:
        """Every record with a cursor below this has been handed to the sink."""
        return self.read()[0]

    def read(self) -> tuple[int | None, tuple[tuple[int, int], ...]]:
        """(``progress``, the ranges above it whose every record was handed over too)."""
        with self._lock:
            spans = [(w.start_us, (w.stop_us if w.stop_us is not None else w.lo)
                      if w in self._finished else w.lo) for w in self.walks]
            return covered(self.start_us, [*(self.resume.done if self.resume else ()), *spans])

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
        self._pool = pool_for(self.client)
        self._pool.started()  # the first walk holds a slot from now on
        driven = False
        inner = self._walks()
        try:
            for item in inner:
                if not isinstance(item, Page):  # _THREADS
                    driven = True  # the threads' walks give their slots back themselves
                    continue
                yield item
            self.complete = True
        finally:
            inner.close()  # closing this closes the walks' threads too
            if not driven:
                self._pool.ended()
                if not self.client.stop.requested:
                    self._pool.rebalance()  # this resource is read: others may take its slot

    def _walks(self) -> Generator[Page | object, None, None]:
        assert self._pool is not None
        if self.resume is not None:  # the ranges a stopped read left: all of them at once
            self.walks = [KeysetWalk(self.client, self.plan, start_us=a, stop_us=b,
                                     on_retry=self.on_retry) for a, b in self.resume.walks]
            yield _THREADS
            yield from self._concurrently(iter(self.walks[0]))
            return
        first = KeysetWalk(self.client, self.plan, start_us=self.start_us,
                           on_retry=self.on_retry)
        self.walks = [first]
        self._yielded[first] = 0
        pages = iter(first)
        wall_before, cpu_before = time.monotonic(), time.process_time()
        timings: list[float] = []
        waits = self.split_decision
        while True:  # the first page always: its total says whether there is enough to split
            began = _clocks()
            page = next(pages, None)
            if page is None:
                self._finished.add(first)
                return
            timings.append(_waited(began))
            self._pool.pace.page(timings[-1])
            self._yielded[first] += len(page.records)
            yield page
            if waits is None and timings[0] >= self.timing.slow_page:
                waits = True  # a slow API shows on its first page; no need to wait for more
            if waits is True or len(timings) >= _TIMED_PAGES:
                break
        wall = max(time.monotonic() - wall_before, 1e-9)
        self.busy = (time.process_time() - cpu_before) / wall
        self.latency = statistics.median(timings)
        self.timed = len(timings)
        if waits is None:  # fast pages: whether the process mostly waited for them decides
            waits = waits_for_the_api(self.latency, self.busy, self.max_busy,
                                      self.timing.slow_page)
        slices = self.slices if waits else 1
        bounds = plan_bounds(self.client, self.plan, self.start_us, first.first_total,
                             slices, self.min_pages, self._count_probe)
        if not bounds:
            yield from pages
            self._finished.add(first)
            return
        first.stop_us = bounds[0]
        ends: list[int | None] = [*bounds[1:], None]
        self.walks += [KeysetWalk(self.client, self.plan, start_us=a, stop_us=b,
                                  on_retry=self.on_retry)
                       for a, b in zip(bounds, ends, strict=True)]
        yield _THREADS
        yield from self._concurrently(pages)

    # --- the walks' threads -----------------------------------------------------------------

    def _concurrently(self, first_pages: Iterator[Page]) -> Iterator[Page]:
        assert self._pool is not None
        handover: queue.Queue[Page | None | BaseException] = \
            queue.Queue(maxsize=2 * max(len(self.walks), self._pool.capacity))
        self._handover = handover
        self._pool.started(len(self.walks) - 1)  # the first walk's slot is already counted
        with self._lock:
            for i, walk in enumerate(self.walks):
                self._start(walk, first_pages if i == 0 else iter(walk))
        if self.steal:
            self._pool.join(self)
        ended = 0  # walks whose last word came: each hands its pages over before it
        stopped: RunStopped | None = None  # a stop: the others' pages still come, then it
        try:
            while True:
                item = handover.get()
                if isinstance(item, RunStopped):
                    stopped, item = stopped or item, None
                elif isinstance(item, BaseException):
                    raise item
                if item is None:  # a walk ran to its end (or was stopped)
                    # No lock (a walk may hold it, waiting for room in the queue). A split
                    # needs an unfinished walk, so once every walk listed has ended, none
                    # can be added; and every page they queued has been consumed.
                    ended += 1
                    if ended == len(self.walks):
                        break
                    continue
                yield item
            if stopped is not None:
                raise stopped
        finally:
            self._pool.leave(self)
            self._closed = True  # a split checks it under the lock before adding a walk
            self._stop.set()
            joined = 0
            while joined < len(self._threads):  # a split that passed the check adds one more
                thread = self._threads[joined]
                while thread.is_alive():  # unblock a walk waiting to hand over a page
                    try:
                        handover.get_nowait()
                    except queue.Empty:
                        thread.join(0.05)
                joined += 1

    def _start(self, walk: KeysetWalk, pages: Iterator[Page]) -> None:
        """Drive ``walk`` in a thread of its own (caller holds the lock; the slot is counted)."""
        self._yielded.setdefault(walk, 0)
        thread = threading.Thread(target=self._drive, args=(walk, pages), daemon=True,
                                  name=f"{self.plan.name}-slice-{len(self._threads)}")
        self._threads.append(thread)
        thread.start()

    def _drive(self, walk: KeysetWalk, pages: Iterator[Page]) -> None:
        assert self._handover is not None and self._pool is not None
        handover, pool = self._handover, self._pool
        try:
            try:
                began = _clocks()
                for page in pages:
                    pool.pace.page(_waited(began))
                    if self._stop.is_set():
                        return
                    with self._lock:  # progress and queue order agree
                        self._yielded[walk] += len(page.records)
                        handover.put(Page(page.records, page.number, *self.read()))
                    if pool.idle() and not self._stop.is_set():
                        pool.rebalance()  # a walk's first page may make its neighbour's count known
                    began = _clocks()  # a page's time: not the handover's, nor a split's
                with self._lock:
                    self._finished.add(walk)
                    handover.put(None)
            finally:
                pool.ended()
            if not self._stop.is_set():
                pool.rebalance()  # this slot is free: the largest range left of the run takes it
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            handover.put(exc)

    # --- work stealing ------------------------------------------------------------------------

    def remaining(self, walk: KeysetWalk) -> int | None:
        """Records left in ``walk``'s range (estimate from the API's totals), None: unknown.

        A walk's first page counts the records at or after its start; the next walk's counts
        those at or after its end; the difference is the range, less the records the walk
        yielded for the first time (each keyset page starts again at ``lo``: counting those
        re-reads as progress made a long walk look nearly done, and left it unsplit while
        slots idled at the end of a run).
        """
        walks = list(self.walks)
        try:
            i = walks.index(walk)
        except ValueError:
            return None
        total = walk.first_total
        if total is None:
            return None
        if i + 1 < len(walks):
            after = walks[i + 1].first_total
            if after is None or walk.stop_us != walks[i + 1].start_us:
                return None  # unknown, or a range read before lies between (resume.py)
            total -= after
        return total - (self._yielded.get(walk, 0) - walk.reread)

    def splittable(self) -> list[tuple[KeysetWalk, int]]:
        """Running walks worth splitting now, with their estimates (no lock: read-only).

        None once the API has set a pace (a 429): the rate limit then bounds the run, and
        more walks would only add probes and crowd the pace."""
        if (self._closed or self._stop.is_set() or self.client.stop.requested
                or self.client.limiter.rate is not None):
            return []
        out = []
        for walk in list(self.walks):
            if walk in self._finished or walk in self.splitting or walk.lo is None:
                continue
            if walk in self._no_split and self._no_split[walk] == walk.lo:
                continue
            left = self.remaining(walk)
            if left is not None and left >= self.min_steal:
                out.append((walk, left))
        return out

    def split(self, walk: KeysetWalk, remaining: int) -> bool:
        """Give the upper half of ``walk``'s remaining range to a new walk; False if none."""
        lo, end = walk.lo, walk.stop_us
        try:
            cursor = _cursor_at(self.client, self.plan, lo, remaining // 2 + 1)
        except Exception:  # noqa: BLE001 - a failed probe only means no split; walks go on
            cursor = None
        self._count_probe()
        with self._lock:
            if (cursor is None or lo is None or cursor <= lo or (end is not None and cursor >= end)
                    or self._closed or walk in self._finished or walk.stop_us != end
                    or cursor <= walk.lo):  # type: ignore[operator]
                self._no_split[walk] = lo
                return False
            new = KeysetWalk(self.client, self.plan, start_us=cursor, stop_us=end,
                             on_retry=self.on_retry)
            self.walks.insert(self.walks.index(walk) + 1, new)
            walk.stop_us = cursor  # only now: [cursor, end) already has its walk
            self.stolen += 1
            self._start(new, iter(new))
        return True

    def _count_probe(self) -> None:
        self.probes += 1


def _clocks() -> tuple[float, float]:
    """(monotonic seconds, this thread's CPU seconds): where ``_waited`` counts from."""
    return time.monotonic(), time.thread_time()


def _waited(since: tuple[float, float]) -> float:
    """Seconds since ``since`` this thread did not run: a page's wait for the API (and for the
    interpreter), without the CPU it spent itself (a first call's warm-up, parsing)."""
    wall, cpu = _clocks()
    return max(0.0, (wall - since[0]) - (cpu - since[1]))


def steal_pays(latency: float, busy: float | None, timing: Timing = DEFAULT_TIMING) -> bool:
    """Whether one more walk would pay now, from the recent pages' median wait (seconds) and
    the process's recent CPU share (None: too short a window to tell).

    Stricter than the first decision (``waits_for_the_api``): only pages slower than
    ``timing.slow_page`` count. Fast pages with the process half idle were measured to be the CPU of
    a server on the same cores, not latency (sandbox at 0 ms, 2 cores: a run whose CPU share
    dipped under ``MAX_BUSY`` grew 24 walks by stealing and took 5.7 s instead of 3.5-3.9 s).
    And with the process at ``timing.max_busy_steal`` or more, a slow page is a wait for the
    interpreter.
    """
    return latency >= timing.slow_page and (busy is None or busy < timing.max_busy_steal)


def waits_for_the_api(latency: float, busy: float, max_busy: float = MAX_BUSY,
                      slow_page: float = DEFAULT_TIMING.slow_page) -> bool:
    """Whether more walks would pay, from the first pages' median seconds and CPU share.

    A slow API is worth more walks whatever else the process is doing (a run's start keeps
    the CPU busy for a moment); a faster one only when the process mostly waits.
    """
    return latency >= slow_page or busy < max_busy


def plan_bounds(client: ApiClient, plan: ResourcePlan, start_us: int | None,
                total: int | None, slices: int, min_pages: int,
                on_probe: Callable[[], None] | None = None) -> list[int]:
    """Cursor values splitting the ``total`` records from ``start_us`` on into up to ``slices``.

    Empty when the API gave no total or there is too little to split (fewer than
    ``min_pages`` pages per range). The ``K - 1`` probes are sent at once (``probe_cursors``)
    and read in position order: the bounds are those one probe after the other would give.
    Raises what the first failed probe (in position order) raised, once every probe ended.
    """
    paginator = plan.request.paginator
    incremental = plan.cursor
    if (slices <= 1 or total is None or incremental is None
            or not isinstance(paginator, PageNumberPaginator)):
        return []
    k = min(slices, total // ((paginator.limit or DEFAULT_PAGE_SIZE) * min_pages))
    positions = [i * total // k + 1 for i in range(1, k)]
    bounds: list[int] = []
    for cursor in probe_cursors(client, plan, start_us, positions, on_probe):
        if cursor is None:  # no usable boundary here: fewer slices, same records
            continue
        if (start_us is None or cursor > start_us) and (not bounds or cursor > bounds[-1]):
            bounds.append(cursor)
    return bounds


def probe_cursors(client: ApiClient, plan: ResourcePlan, start_us: int | None,
                  positions: list[int],
                  on_probe: Callable[[], None] | None = None) -> list[int | None]:
    """``_cursor_at`` of each position (1-based, from ``start_us`` on), in the order given.

    The requests run at once in up to ``client.max_concurrency`` threads (the client's own
    limit holds them to it too), so planning costs about one latency, not one per bound; the
    threads end before this returns. ``on_probe`` is called once per answered probe, in this
    thread. Raises the first failure in position order.
    """
    if len(positions) <= 1:
        cursors = [_cursor_at(client, plan, start_us, p) for p in positions]
    else:
        workers = min(len(positions), client.max_concurrency)
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"{plan.name}-probe") as executor:
            futures = [executor.submit(_cursor_at, client, plan, start_us, p)
                       for p in positions]
            cursors = [f.result() for f in futures]  # the with block waits for all of them
    if on_probe:
        for _ in cursors:
            on_probe()
    return cursors


def _cursor_at(client: ApiClient, plan: ResourcePlan, start_us: int | None,
               position: int) -> int | None:
    """The cursor of the ``position``-th record (1-based) at or after ``start_us``, in cursor
    order: one request of one record. None when there is none or it does not parse."""
    paginator = plan.request.paginator
    incremental = plan.cursor
    assert isinstance(paginator, PageNumberPaginator) and incremental is not None
    request = keyset_request(plan, start_us, position - 1 + paginator.base_page, limit=1)
    records = select_records(
        plan.request, client.get_page(plan.request, request, page=position).body, position)
    value = incremental.value(records[0]) if records else None
    try:
        return incremental.codec.parse(value)
    except ValueError:
        return None

"""Mark policy: where a resource's read starts, which mark each commit may record, and when the
state store hears of it.

The one rule behind all of it: a mark is never ahead of the data committed to Delta. A read
starts at the lower of the state block's and the table's mark (``state.effective_start``),
``lag`` seconds earlier, or strictly after it once the API's clock has proven it (below); a
commit records the mark its pages allow, never below the start; the state store (a Prefect
block: API round trips) gets a committed mark at most every ``Timing.mark_save_every`` seconds
and at the end, and a successful run last. A block that lags its table is safe (a run starts
from the lower of the two); one ahead of it cannot happen, since only committed marks reach the
store.

**The API's clock.** A cursor is a moment on the API's clock, and every answer says what time it
is there: its ``Date`` (RFC 9110 §6.6.1; ``http/serverclock.py`` keeps a read's earliest and
latest). Let ``D`` be the clock at the read's first answer. We rely on what the contract says,
measured on that clock: a change becomes visible at most 5 s after the ``updated_at`` it
carries. So a record version not visible at a moment ``t`` carries a cursor after ``t - 5 s``.

* *No mark passes the clock.* Every mark a read records is at most ``D`` (airbyte's fix in PR
  #27498 and the Singer SDK's signpost cap it at the sync's start alike). One record stamped in
  2030 once moved the mark to 2030, and every later run read only from there, missing every real
  change; now such a record lands, is named in the summary (``FutureRecords``: stamped more
  than ``FUTURE_TOLERANCE_US`` past the latest ``Date``), and the next run reads on from the
  clock. It is also what makes ``lag`` enough however long the read: a version the read did not
  see was not visible when the read passed its cursor, after ``D``, so its cursor is after
  ``D - 5 s``; the next run starts at ``mark - lag <= D - lag``, and ``lag`` is at least 5 s.
* *A proven mark.* Suppose the read ran to its end at mark ``M`` and ``D >= M + 6 s``
  (``marks.proves``: the contract's 5 s, and 1 s because a ``Date`` is truncated to the second
  and dates an answer made from the API's store a moment earlier). Every version stamped at
  or before ``M`` was visible from ``M + 5 s`` on, so before the read's first answer: the read
  saw it (a keyset walk reads everything below ``lo`` and, at its end, the whole tie group at
  ``lo``; a lagged read every record that did not change, docs/incremental.md), or it changed
  during the read, and its new version is stamped after ``D - 5 s > M``. Records below where
  the read began were in the table already (the same argument for the run before, or its
  ``lag``). So every version with a cursor at or below ``M`` that will ever exist is in the
  table: the next run starts strictly after ``M``, with no lag and without re-reading the tie
  group at ``M``, and a resource that did not change costs one request. The proof is kept
  with the mark, in the same commit (``TableMark.clock_us``: ``D`` for the final mark of a
  complete read, 0 for the marks of a read still under way, which prove nothing).

Without a ``Date`` neither rule applies: marks are as the pages allow and every run starts
``lag`` before the mark.

Marks are integers in the cursor's units here: epoch microseconds for an instant, the value
itself for an integer cursor; the spec's ``codec`` (``core/cursors.py``) turns them into the
text the store keeps. The API's clock caps and proves instants only: an integer cursor (Unix
seconds, an id) is not known to be a moment on that clock, so its marks are as its pages allow
and every run starts ``lag`` units before the mark (a declared epoch kind could be capped too;
not built: ``core/cursors.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from analytics_client.core.cursors import TIMESTAMP, CursorCodec, cursor_value
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timestamps import MAX_US, MIN_US
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.core.window import Window
from analytics_client.http.serverclock import ServerClock
from analytics_client.lake.markcommit import record_mark
from analytics_client.lake.tablemark import Ranges
from analytics_client.lake.tables import Lake, TableMark
from analytics_client.state.marks import Mark, MarkStore, Start, app_id, effective_start, proves

__all__ = ["FUTURE_TOLERANCE_US", "FutureRecords", "MarkPolicy", "MarkSpec", "ParentVersionMarks",
           "ResourceMarks", "mark_policy", "parent_app_id"]

Log = logging.Logger | logging.LoggerAdapter[Any]

# How far past the API's latest Date a record's cursor may lie before the summary names it:
# the skew between the clock that stamps records and the one that dates answers.
FUTURE_TOLERANCE_US = 60_000_000
_NAMED = 5  # future records named in a note; the rest are counted


@dataclass(frozen=True)
class MarkSpec:
    """How a resource's marks are kept, from its plan: ``incremental`` resources keep a cursor
    mark (table and store); a backfill (``window``) neither reads nor moves it (dlt's
    ``end_value``); a ``child`` keeps the parent version its children were read for."""

    resource: str
    incremental: bool = False
    initial_value: str | int | None = None
    end_value: str | int | None = None
    window: Window | None = None
    child: bool = False
    codec: CursorCodec = TIMESTAMP


class MarkPolicy(Protocol):
    """What the sync loop asks of a resource's marks (``ResourceMarks``, ``ParentVersionMarks``)."""

    start: Start

    def allowed(self, covered: int | None) -> int | None: ...
    def table_mark(self, mark: int | None, *, final: bool = False,
                   ahead: Ranges = ()) -> TableMark | None: ...
    def committed(self, mark: TableMark, version: int | None) -> str | None: ...
    def settle(self, mark: int | None, run_id: str, summary: ResourceSummary) -> None: ...
    def next_start(self) -> Start: ...
    def remarks(self) -> list[str]: ...
    def flush(self) -> None: ...
    def flush_quietly(self, log: Log) -> None: ...
    def succeeded(self, summary: ResourceSummary) -> None: ...


def mark_policy(lake: Lake, spec: MarkSpec, pipeline: str, store: MarkStore | None, *,
                full_refresh: bool, timing: Timing = DEFAULT_TIMING,
                clock: ServerClock | None = None) -> MarkPolicy:
    """The marks of one read of the resource ``spec`` describes; ``clock``: the API's clock
    as the read's answers show it (None: unknown)."""
    if spec.child:
        return ParentVersionMarks(lake, spec.resource, pipeline, full_refresh=full_refresh)
    return ResourceMarks(lake, spec, pipeline, store, full_refresh=full_refresh, timing=timing,
                         clock=clock)


class ResourceMarks:
    """The marks of one read of one resource: its start, its commits' marks, its saves."""

    def __init__(self, lake: Lake, spec: MarkSpec, pipeline: str,
                 store: MarkStore | None, *, full_refresh: bool,
                 timing: Timing = DEFAULT_TIMING, clock: ServerClock | None = None) -> None:
        window = spec.window
        if window is not None:
            store = None  # a backfill neither reads nor moves the mark (dlt's end_value)
        self.lake, self.resource, self.pipeline, self.store = lake, spec.resource, pipeline, store
        self.spec = spec
        # The API's clock caps and proves instants only (the module docstring).
        self.clock = clock if clock is not None and spec.codec.clocked else ServerClock()
        self.save_every = timing.mark_save_every
        self.block = store.load(pipeline, spec.resource) \
            if store is not None and spec.incremental else None
        if not spec.incremental:
            self.start = Start(None, "not incremental: full read")
        elif window is not None:
            self.start = Start(window.start_us, f"backfill [{spec.initial_value}, "
                               f"{spec.end_value}): the mark is neither read nor moved")
        elif full_refresh:
            self.start = Start(None, "full refresh requested: reading everything")
        else:
            self.start = effective_start(lake, spec.resource, pipeline, self.block,
                                         spec.initial_value, spec.codec)
        self.latest: Mark | None = None  # the last committed mark handed to the store
        self._last: TableMark | None = None  # the last mark this run committed to the table
        self._saved_at = time.monotonic()
        self._pending = False

    def allowed(self, covered: int | None) -> int | None:
        """The mark a commit may record: what its pages allow, never past the API's clock when
        the read began (the module docstring), never below where we started."""
        if covered is None:
            return None
        start = self.start.mark_us
        if start is not None and self.start.proven and covered == start + 1:
            covered = start  # the read began just after a proven mark and found nothing past it
        cap = self.clock.earliest_us
        if cap is not None and covered > cap:
            covered = cap
        return covered if start is None else max(covered, start)

    def proves(self, mark: int) -> bool:
        """Whether this read, once complete at ``mark``, proves it (``marks.proves``)."""
        return proves(mark, self.clock.earliest_us)

    def table_mark(self, mark: int | None, *, final: bool = False,
                   ahead: Ranges = ()) -> TableMark | None:
        """The mark as the table keeps it, in the commit of the rows it covers: with the API's
        clock when ``final`` (the mark of a read that ran to its end), else with none (0); and
        the ranges ``ahead`` of it the read has covered too (lake/tablemark.py), capped like the
        mark at the API's clock when the read began (read/resume.py says why)."""
        if mark is None:
            return None
        clock = self.clock.earliest_us if final else None
        cap = self.clock.earliest_us
        kept = tuple((a, x if cap is None else min(x, cap)) for a, x in ahead
                     if a > mark and (cap is None or a < cap))
        return TableMark(app_id(self.pipeline), mark, clock or 0, kept)

    def committed(self, mark: TableMark, version: int | None) -> str:
        """A commit carrying ``mark`` landed as table ``version``: the store may hear of it.

        Saved now only if the last save is ``Timing.mark_save_every`` old. Returns the mark as
        text, for the summary.
        """
        self._last = mark
        fields = self.block.model_dump(
            exclude={"cursor", "table_version", "pipeline", "resource", "ahead"}) \
            if self.block is not None else {}
        self.latest = Mark(pipeline=self.pipeline, resource=self.resource,
                           cursor=self.spec.codec.format(mark.cursor_us), table_version=version,
                           ahead=[[self.spec.codec.format(a), self.spec.codec.format(b)]
                                  for a, b in mark.ahead or ()], **fields)
        self._pending = True
        if time.monotonic() - self._saved_at >= self.save_every:
            self.flush()
        return self.latest.cursor  # type: ignore[return-value]

    def settle(self, mark: int | None, run_id: str, summary: ResourceSummary) -> None:
        """After a complete read, record its final mark (and the API's clock, which may prove
        it) even if no commit carried them.

        A read that changed nothing commits nothing; after ``state reset`` that left the
        resource without a mark, and every later run read it all again (``markcommit.py``).
        A read that found nothing newer records the mark it began at only when its clock
        proves that mark and nothing had before: once, not on every run.
        """
        if mark is None:
            return
        start = self.start.mark_us
        if start is not None and mark < start:
            return
        final = self.table_mark(mark, final=True)
        assert final is not None
        new_proof = self.proves(mark)
        if self._last is not None and self._last.cursor_us == mark:
            if not new_proof or proves(mark, self._last.clock_us):
                return  # the last data commit carried it, and a proof if there is one
        elif start is not None and mark == start and (self.start.proven or not new_proof):
            return  # nothing newer, and nothing newly proven
        version = record_mark(self.lake, self.resource, final, {"analytics_sync.run_id": run_id})
        summary.mark = self.committed(
            final, version if version is not None else self.lake.version(self.resource))

    def next_start(self) -> Start:
        """Where the next run will start, as the table and the store hold the marks now that
        this run has recorded its own (and ``succeeded`` saves them): ``effective_start``
        read again, so that a read made now on the next run's behalf (``run/deletes.py``) is
        exactly the read the next run will make."""
        if not self.spec.incremental or self.spec.window is not None:
            return self.start
        block = self._next_block() if self.store is not None else None
        return effective_start(self.lake, self.resource, self.pipeline, block,
                               self.spec.initial_value, self.spec.codec)

    def remarks(self) -> list[str]:
        """What the summary must say about the marks: a start ahead of the API's clock."""
        start, clock = self.start.mark_us, self.clock.earliest_us
        initial = self.spec.initial_value
        if start is None or clock is None or start <= clock + FUTURE_TOLERANCE_US \
                or self.spec.window is not None \
                or (initial is not None and start == self.spec.codec.read(initial)):
            return []  # no mark, no clock, none ahead of it, or the user's own initial_value
        return [f"the mark {format_cursor(start)} is ahead of the API's clock "
                f"({format_cursor(clock)}, its Date): an earlier version saved it from a record "
                "stamped in the future, and records changed since were not read; run once with "
                f"--full-refresh {self.resource}"]

    def flush(self) -> None:
        """Hand the last committed mark to the store, if it has not had it yet."""
        if self.store is not None and self._pending and self.latest is not None:
            self.store.save(self.latest)
            self._saved_at, self._pending = time.monotonic(), False

    def flush_quietly(self, log: Log) -> None:
        """On failure: the failure is what the caller reports, not a failed save."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001
            log.exception("%s: could not save the mark of the last commit to the state store "
                          "(the table keeps it; the next run starts from there)", self.resource)

    def succeeded(self, summary: ResourceSummary) -> None:
        """Record the successful run; the cursor is the last committed one, never more."""
        if self.store is None:
            return
        block = self._next_block()
        self.store.save(block.model_copy(update={
            "last_success_at": dt.datetime.now(dt.UTC), "rows_fetched": summary.rows_fetched,
            "inserted": summary.inserted, "updated": summary.updated,
            "table_version": block.table_version if block.table_version is not None
            else summary.table_version}))

    def _next_block(self) -> Mark:
        """The block ``succeeded`` saves, before its counts: the last committed cursor."""
        latest = self.latest or self.block
        start = self.start.mark_us
        cursor = latest.cursor if latest is not None else (
            self.spec.codec.format(start) if start is not None else None)
        return Mark(pipeline=self.pipeline, resource=self.resource, cursor=cursor,
                    table_version=latest.table_version if latest is not None else None)


class FutureRecords:
    """The records of a read stamped past the API's clock: more than ``FUTURE_TOLERANCE_US``
    after the latest ``Date`` its answers carried when they came. They land like any record;
    the summary names them once (the mark never follows them: the module docstring)."""

    def __init__(self, cursor_path: str, key: str, clock: ServerClock) -> None:
        self.cursor_path, self.key, self.clock = cursor_path, key, clock
        self.found: dict[object, int] = {}  # key -> cursor, each record once

    def see(self, records: list[Any]) -> None:
        latest = self.clock.latest_us
        if latest is None:
            return
        bound = latest + FUTURE_TOLERANCE_US
        # "YYYY-MM-DD" orders as the instants do; two days cover any offset. Only texts that
        # may lie past the bound are parsed (the rest cost a slice).
        below = format_cursor(min(MAX_US, max(MIN_US, bound - 2 * 86_400_000_000)))[:10]
        for record in records:
            value = cursor_value(record, self.cursor_path)
            if not isinstance(value, str) or value[:10] < below:
                continue
            try:
                cursor = parse_cursor(value)
            except ValueError:
                continue  # an unreadable cursor is the typing step's to judge
            if cursor > bound:
                key = record.get(self.key)
                self.found[key if isinstance(key, str | int) else repr(key)] = cursor

    def note(self) -> str | None:
        """The summary's sentence about them, or None."""
        if not self.found:
            return None
        named = sorted(self.found.items(), key=lambda item: (-item[1], str(item[0])))
        listed = ", ".join(f"{key} ({format_cursor(cursor)})" for key, cursor in named[:_NAMED])
        more = f" and {len(named) - _NAMED:,} more" if len(named) > _NAMED else ""
        clock = self.clock.latest_us
        assert clock is not None
        return (f"{len(named):,} record(s) carry {self.cursor_path} past the API's clock "
                f"({format_cursor(clock)}, its Date): {listed}{more}; they landed, but the mark "
                "stays at the API's clock, so later changes are still read (and these are "
                f"read again by each run until then): check the clock that stamps "
                f"{self.cursor_path} at the source")


def parent_app_id(pipeline: str) -> str:
    """Under which app id a child table records the parent version it was read for."""
    return f"{app_id(pipeline)}:parent-version"


class ParentVersionMarks:
    """A child's marks (read/children.py): the parent table's version whose changed rows its
    children were read for, kept in the child table as the app transaction
    ``<pipeline app id>:parent-version``. Its start is that version (None: every parent, as on
    the first run or a full refresh); the read's end mark is the parent version it read for,
    recorded with the last children's rows (or alone) once every child of the list is
    committed: like every mark here, never ahead of the data. No state store: the child
    table is the only place, as a full refresh of the child is the only reset."""

    def __init__(self, lake: Lake, resource: str, pipeline: str, *, full_refresh: bool) -> None:
        self.lake, self.resource, self.app = lake, resource, parent_app_id(pipeline)
        since = None if full_refresh else lake.mark(resource, self.app)
        self.start = Start(since, "full refresh: the children of every parent" if full_refresh
                           else "the children of every parent" if since is None
                           else f"the children of parents changed since version {since}")
        self._recorded: int | None = None

    def allowed(self, covered: int | None) -> int | None:
        return covered

    def table_mark(self, mark: int | None, *, final: bool = False,
                   ahead: Ranges = ()) -> TableMark | None:
        return TableMark(self.app, mark) if mark is not None else None

    def committed(self, mark: TableMark, version: int | None) -> str | None:
        self._recorded = mark.cursor_us
        return None  # a parent version is no cursor: the summary shows none

    def settle(self, mark: int | None, run_id: str, summary: ResourceSummary) -> None:
        """Record the version read for if no commit carried it (a run with no children)."""
        if mark is None or mark == self._recorded:
            return
        record_mark(self.lake, self.resource, TableMark(self.app, mark),
                    {"analytics_sync.run_id": run_id})
        self._recorded = mark

    def next_start(self) -> Start:
        return self.start  # a child's next run reads by parent version, never by a cursor

    def remarks(self) -> list[str]:
        return []

    def flush(self) -> None:
        return None

    def flush_quietly(self, log: Log) -> None:
        return None

    def succeeded(self, summary: ResourceSummary) -> None:
        return None

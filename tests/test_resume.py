"""A stopped or killed run's resume starts where the work stopped, every slice's (issue 23, 4).

Before, a sliced read committed only the progress of its first unfinished walk, and its resume
read again whatever the other walks had read: a stopped run had fetched 2,097 pages, its resume
8,701 of a full read's 9,323. The acceptance: Ctrl-C at any point, then a resume, the two runs'
requests together at most 1.15 times one full read, and the tables equal to the truth
(tests/groundtruth.py, the sandbox's own records). Requests are counted where they leave the
client (a transport), every one of them: pages, slice probes, delete capture's probes.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_client import Lake
from analytics_client.core.stop import on_signals
from analytics_client.core.timing import Timing
from analytics_client.lake.tablemark import MAX_RANGES
from analytics_client.lake.tables import TableMark, TableWriter
from analytics_client.read.keyset import format_cursor, parse_cursor
from analytics_client.read.plan import Cursor
from analytics_client.read.resume import covered, resume_of
from analytics_client.state.marks import MemoryMarkStore, Start, app_id, effective_start
from analytics_sandbox import SandboxSettings, World, serve
from tests.groundtruth import fetch_truth
from tests.support import assert_lake_equals_truth, sync

# Two sliced resources, about 130 and 80 pages of 10: a stop lands among several walks.
COUNTS = {"tags": 20, "users": 20, "deals": 1300, "pages": 20, "tasks": 800}
READ = ("deals", "tasks")
# Split whatever the machine's pace (a busy shared machine must not decide the walks).
TIMING = Timing(slow_page=0.0, max_busy_steal=float("inf"))
BATCH = 100  # records per commit: a killed run keeps what its commits hold
ACCEPTED = 1.15  # the bound on (stopped run + resume) / full read


class Counting(httpx.HTTPTransport):
    """Counts the API's requests; sets a stop flag as request ``stop_at`` leaves (Ctrl-C
    then), or from ``kill_at`` on fails every request with ``Killed`` (a SIGKILL: nothing
    after it is committed, no stop is handled)."""

    def __init__(self, *, stop_at: int | None = None, flag: Any = None,
                 kill_at: int | None = None) -> None:
        super().__init__()
        self.sent, self.stop_at, self.flag, self.kill_at = 0, stop_at, flag, kill_at
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/"):
            with self._lock:
                self.sent += 1
                if self.kill_at is not None and self.sent >= self.kill_at:
                    raise Killed
                if self.sent == self.stop_at:
                    self.flag.request("a test's Ctrl-C")
        return super().handle_request(request)


class Killed(BaseException):
    """What a SIGKILL leaves: no handler runs, no except Exception catches it."""


def _run(sandbox: Any, lake: Path, transport: Counting,
         marks: MemoryMarkStore | None = None) -> dict[str, Any]:
    """One run of ``READ``; ``marks``: the state store besides the tables (a Prefect block's
    stand-in; it hears of a mark at most every 30 s, so after a stop it is behind)."""
    return sync(sandbox, lake, marks or MemoryMarkStore(), resources=list(READ),
                transport=transport, timing=TIMING, batch_rows=BATCH)


def _full_read(seed: int) -> int:
    with serve(World(seed=seed, counts=COUNTS), SandboxSettings(late_visibility=False)) as api, \
            tempfile.TemporaryDirectory() as lake:
        counting = Counting()
        assert all(s.status == "ok" for s in _run(api, Path(lake), counting).values())
        return counting.sent


FULL: dict[int, int] = {}


def full_read(seed: int) -> int:
    """Requests of one full read of ``READ`` (the walks' pace may vary a few requests)."""
    if seed not in FULL:
        FULL[seed] = _full_read(seed)
    return FULL[seed]


def _stop_then_resume(seed: int, share: float, *, kill: bool = False,
                      between: dict[str, int] | None = None,
                      mutate: bool = False) -> tuple[int, int, int]:
    """(full read, run 1, resume) requests, run 1 stopped (or killed) at ``share`` of a full
    read; ``between``: an advance of the API between the runs; ``mutate``: records change
    (and some are deleted) while run 1 pages. Asserts the resume ends ok and equal to the
    truth. The resume's count leaves out delete capture's requests when records were deleted
    (its probes and second reads: ``run/deletes.py``, what any run pays for deletes below
    where it reads)."""
    full = full_read(seed)
    at = max(1, round(share * full))
    settings_ = SandboxSettings(late_visibility=False)
    with serve(World(seed=seed, counts=COUNTS), settings_) as api, \
            tempfile.TemporaryDirectory() as directory:
        lake, marks = Path(directory), MemoryMarkStore()
        if mutate:
            api.configure(mutate_every_n_requests=7, mutate_updates=2, mutate_creates=1,
                          mutate_deletes=1)
        if kill:
            first = Counting(kill_at=at)
            with pytest.raises(Killed):
                _run(api, lake, first, marks)
            first.sent = min(first.sent, at - 1)  # the refused ones never left
        else:
            with on_signals() as flag:
                first = Counting(stop_at=at, flag=flag)
                stopped = _run(api, lake, first, marks)
            assert all(s.status in ("stopped", "ok") for s in stopped.values()), stopped
            _the_block_copies_the_tables_ranges(lake, marks)
        api.configure(mutate_every_n_requests=0)  # a resume must end equal to what it read
        if between:
            api.advance(**between)
        resume = Counting()
        summaries = _run(api, lake, resume, marks)
        assert all(s.status == "ok" for s in summaries.values()), summaries
        probes = sum(s.delete_requests for s in summaries.values())
        if mutate or (between and between.get("deletes")):
            resume.sent -= probes
        assert_lake_equals_truth(api, lake, READ)
        _after_the_resume(api, lake, marks)
    print(f"\nseed {seed}, {'killed' if kill else 'stopped'} at request {at} of {full}: "
          f"{first.sent} + {resume.sent} = {first.sent + resume.sent} requests "
          f"({(first.sent + resume.sent) / full:.3f} x a full read); delete capture {probes}")
    return full, first.sent, resume.sent


def _the_block_copies_the_tables_ranges(lake: Path, marks: MemoryMarkStore) -> None:
    """A stop hands the last committed mark to the state store, with a copy of its ranges."""
    for resource in READ:
        recorded = Lake(str(lake)).recorded(resource, app_id("analytics"))
        block = marks.load("analytics", resource)
        if recorded is None or block is None:
            continue  # nothing committed yet
        assert block.cursor == format_cursor(recorded.cursor_us)
        assert block.ahead == [[format_cursor(a), format_cursor(b)] for a, b in recorded.ahead]


def _after_the_resume(api: Any, lake: Path, marks: MemoryMarkStore) -> None:
    """After the resume no range is left recorded and the mark is the read's end: the newest
    cursor the API serves (at most the API's clock when the read began:
    ``state/markpolicy.py``), and the next run finds nothing to change (the incremental
    invariant holds from the mark)."""
    for resource in READ:
        recorded = Lake(str(lake)).recorded(resource, app_id("analytics"))
        assert recorded is not None and recorded.ahead == (), (resource, recorded)
        assert marks.load("analytics", resource).ahead == []  # type: ignore[union-attr]
        newest = max(parse_cursor(r["updated_at"]) for r in fetch_truth(api.base_url, resource))
        # The newest record, unless stamped past the API's clock (the mark's cap).
        assert recorded.cursor_us == min(newest, recorded.clock_us or newest), resource
    summaries = _run(api, lake, Counting(), marks)
    assert all(s.status == "ok" for s in summaries.values()), summaries
    assert all(s.inserted == s.updated == s.deleted == 0 for s in summaries.values())
    assert_lake_equals_truth(api, lake, READ)


# --- end to end: the acceptance -------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=8)
@given(share=st.floats(min_value=0.0, max_value=0.97))
def test_ctrl_c_at_any_point_then_a_resume_costs_at_most_115_percent_of_a_full_read(
        share: float) -> None:
    """The request the stop comes at, generated: before the walks split, while they run,
    near the end (a share of a full read's requests)."""
    full, first, resume = _stop_then_resume(5, share)
    assert first + resume <= ACCEPTED * full


def test_ctrl_c_mid_run_then_a_resume_costs_about_one_full_read() -> None:
    """The sweep's quick case: a stop half-way, while every walk runs."""
    full, first, resume = _stop_then_resume(5, 0.5)
    assert first + resume <= ACCEPTED * full


@pytest.mark.parametrize("deletes", [0, 6])
@pytest.mark.parametrize("share", [0.1, 0.6])
def test_a_resume_after_records_changed_between_the_runs_is_exact(share: float,
                                                                  deletes: int) -> None:
    """Updates, creates and deletes between the runs: the resume reads their new versions,
    delete capture finds the deleted records (also inside ranges it did not read again)."""
    full, first, resume = _stop_then_resume(
        6, share, between={"updates": 40, "creates": 10, "deletes": deletes})
    assert first + resume <= ACCEPTED * full


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_a_resume_after_records_changed_while_the_stopped_run_paged_is_exact(
        share: float) -> None:
    """The sandbox's mutate mode: records change (and some are deleted) while run 1 pages; its
    ranges stay true (what changed after a walk passed moved past it, or was deleted: delete
    capture finds it), and the resume ends equal to the truth."""
    full, first, resume = _stop_then_resume(7, share, mutate=True)
    assert first + resume <= ACCEPTED * full


@pytest.mark.parametrize("shares", [(0.3, 0.3), (0.15, 0.5)])
def test_a_stopped_resume_keeps_the_ranges_it_skipped_and_its_own(
        shares: tuple[float, float]) -> None:
    """Ctrl-C, then Ctrl-C during the resume too, then a third run: the second stop commits
    the first run's ranges it had not reached and its own walks' progress; the three runs
    together stay within the bound, and the tables equal the truth."""
    full = full_read(5)
    sent = []
    with serve(World(seed=5, counts=COUNTS), SandboxSettings(late_visibility=False)) as api, \
            tempfile.TemporaryDirectory() as directory:
        lake, marks = Path(directory), MemoryMarkStore()
        for share in shares:
            with on_signals() as flag:
                run = Counting(stop_at=max(1, round(share * full)), flag=flag)
                _run(api, lake, run, marks)
            sent.append(run.sent)
            _the_block_copies_the_tables_ranges(lake, marks)
        last = Counting()
        assert all(s.status == "ok" for s in _run(api, lake, last, marks).values())
        sent.append(last.sent)
        assert_lake_equals_truth(api, lake, READ)
        _after_the_resume(api, lake, marks)
    print(f"\nstopped twice: {' + '.join(map(str, sent))} = {sum(sent)} requests "
          f"({sum(sent) / full:.3f} x a full read of {full})")
    assert sum(sent) <= ACCEPTED * full


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_a_killed_runs_commits_are_where_its_resume_starts(share: float) -> None:
    """A kill (nothing handled, nothing flushed): the resume starts from what the commits
    recorded, every slice's, and reads at most what the kill lost besides (the pages
    fetched after the last commit of each resource: under a batch, with its queue)."""
    full, first, resume = _stop_then_resume(8, share, kill=True)
    lost = len(READ) * (BATCH // 10 + 2 * 16)  # a batch of pages and a full queue each
    assert first + resume <= ACCEPTED * full + lost


# --- the parts: what a read covered, what a resume walks, what a commit records ----------------

LAG = 10.0
LAG_US = 10_000_000
spans = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 60)), st.integers(0, 60)),
                 max_size=8)


@given(begin=st.one_of(st.none(), st.integers(0, 60)), ranges=spans)
def test_what_a_read_covered_is_the_union_of_its_ranges(
        begin: int | None, ranges: list[tuple[int | None, int]]) -> None:
    """An oracle over single cursors: the mark is the first cursor from ``begin`` on that no
    range covers; ``ahead`` the maximal runs of covered cursors above it."""
    points = {p for s, e in ranges for p in range(-1 if s is None else s, e)}
    mark = -1 if begin is None else begin
    while mark in points:
        mark += 1
    runs: list[tuple[int, int]] = []
    for p in sorted(q for q in points if q > mark):
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    got_mark, got_ahead = covered(begin, ranges)
    assert (got_mark if got_mark is not None else -1) == mark
    assert list(got_ahead) == runs


@given(mark=st.integers(0, 100), proven=st.booleans(),
       cuts=st.lists(st.integers(1, 60), min_size=0, max_size=10))
def test_a_resume_walks_everything_but_what_was_read_before_its_last_lag(
        mark: int, proven: bool, cuts: list[int]) -> None:
    """Every cursor from the read's start on is walked, or lies in a range read before and at
    least ``lag`` below that range's end (in seconds here: one unit is one second)."""
    bounds, at = [], mark
    for cut in cuts:  # disjoint ranges above the mark, with gaps
        at += cut
        bounds.append(at)
    ahead = tuple((bounds[i] * 1_000_000, bounds[i + 1] * 1_000_000)
                  for i in range(0, len(bounds) - 1, 2))
    start = Start(mark * 1_000_000, "test", proven=proven, ahead=ahead)
    cursor = Cursor("updated_at", "filter[updated_at][gte]", lag=LAG)
    resume = resume_of(cursor, start)
    begin = cursor.begin(start)
    assert begin is not None
    if resume is None:
        assert all(x - LAG_US <= a for a, x in ahead), "a range worth skipping was not"
        return
    walks = resume.walks
    assert walks[0][0] == begin and walks[-1][1] is None
    assert all(a is not None and (b is None or a < b) for a, b in walks)
    for c in range(begin, (bounds[-1] + 20 if bounds else mark + 20) * 1_000_000, 500_000):
        walked = any(a <= c and (b is None or c < b) for a, b in walks)  # type: ignore[operator]
        trusted = any(a <= c < x - LAG_US for a, x in ahead)
        assert walked or trusted, f"cursor {c} is neither walked nor read before"


def test_the_ranges_travel_in_the_marks_commit_and_only_with_that_mark(tmp_path: Path) -> None:
    """Written with a mark, read back with it; a later commit of another mark without them
    (an older version of this code) leaves none; at most MAX_RANGES are kept."""
    lake = Lake(str(tmp_path))
    writer = TableWriter(lake, "deals", write_disposition="merge", primary_key="id")
    app = app_id("p")
    ranges = tuple((100 * i + 50, 100 * i + 60) for i in range(1, MAX_RANGES + 5))
    writer.write([{"id": "a", "updated_at": "2026-01-01T00:00:00Z"}],
                 mark=TableMark(app, 10, 0, ranges))
    recorded = lake.recorded("deals", app)
    assert recorded is not None and recorded.ahead == ranges[:MAX_RANGES]
    start = effective_start(lake, "deals", "p", None, None)
    assert start.mark_us == 10 and start.ahead == ranges[:MAX_RANGES]
    writer.write([{"id": "b", "updated_at": "2026-01-02T00:00:00Z"}], mark=TableMark(app, 20, 0))
    recorded = lake.recorded("deals", app)
    assert recorded is not None and recorded.cursor_us == 20 and recorded.ahead == ()
    writer.write([{"id": "c", "updated_at": "2026-01-03T00:00:00Z"}],
                 mark=TableMark(app, 30, 0, ((40, 50),)))
    writer.write([{"id": "d", "updated_at": "2026-01-04T00:00:00Z"}],
                 mark=TableMark(app, 35, 0, ()))
    recorded = lake.recorded("deals", app)
    assert recorded is not None and recorded.ahead == ()


# --- a real SIGKILL -----------------------------------------------------------------------------

_RUN = f"""
import copy, sys
from analytics_client import DEFAULT_CONFIG, Credentials, load_config, run_sync
from analytics_client.core.timing import Timing
source = load_config(copy.deepcopy(DEFAULT_CONFIG), base_url=sys.argv[1])
run_sync(source, Credentials(sys.argv[2], sys.argv[3]), sys.argv[4], resources=sys.argv[5:],
         batch_rows={BATCH}, timing=Timing(slow_page=0.0, max_busy_steal=float("inf")))
"""


@pytest.mark.slow
def test_a_sigkilled_runs_commits_are_where_its_resume_starts(tmp_path: Path) -> None:
    """A real process, killed with SIGKILL once its commits record ranges ahead of their
    marks: the resume starts from those commits alone and ends equal to the truth, having read
    about what the killed run had not committed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    settings_ = SandboxSettings(late_visibility=False, latency_ms=15)
    with serve(World(seed=9, counts=COUNTS), settings_) as api:
        full = Counting()
        _run(api, tmp_path / "full", full)
        before = api.stats()["total_requests"]
        lake = tmp_path / "lake"
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN, api.base_url, api.api_key, api.organization_id,
             str(lake), *READ], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120  # a limit for a broken run, not a speed
            while not all(_ranges(lake, r) for r in READ):  # every resource, mid-way
                assert process.poll() is None, process.communicate()[0][-3000:]
                assert time.monotonic() < deadline, "no commit recorded ranges within 120 s"
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
        assert process.returncode == -signal.SIGKILL
        first = api.stats()["total_requests"] - before
        committed = sum(Lake(str(lake)).row_count(r) or 0 for r in READ)
        resume = Counting()
        summaries = _run(api, lake, resume)
        assert all(s.status == "ok" for s in summaries.values()), summaries
        assert_lake_equals_truth(api, lake, READ)
    print(f"\nSIGKILL after {first} requests, {committed} rows committed; resume "
          f"{resume.sent}; full read {full.sent}: {(first + resume.sent) / full.sent:.3f} x")
    # What the commits hold is not read again, but for each walk's first page and the lag.
    assert resume.sent <= full.sent - committed // 10 + 8 * len(READ)


def _ranges(lake: Path, resource: str) -> tuple[tuple[int, int], ...]:
    try:
        recorded = Lake(str(lake)).recorded(resource, app_id("analytics"))
    except Exception:  # noqa: BLE001 - the table is being created: no ranges yet
        return ()
    return recorded.ahead if recorded is not None and recorded.ahead else ()

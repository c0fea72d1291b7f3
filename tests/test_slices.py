"""Concurrent keyset walks within a resource: faster against a slow API, and still lossless."""

from __future__ import annotations

import copy
import datetime as dt
import threading
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Credentials, Lake, load_config
from analytics_client.core.timing import Timing
from analytics_client.http.client import ApiClient
from analytics_client.read import slices
from analytics_client.read.keyset import parse_cursor
from analytics_client.read.slices import SlicedWalk, waits_for_the_api
from analytics_client.state.marks import MemoryMarkStore, app_id
from analytics_sandbox import SandboxSettings, World, serve
from tests.groundtruth import fetch_truth
from tests.plans import plan_of
from tests.recordserver import RecordServer
from tests.support import RESOURCES, assert_lake_equals_truth, sync

COUNTS = {"tags": 30, "users": 60, "deals": 1500, "pages": 400, "tasks": 900}
SLICED = copy.deepcopy(DEFAULT_CONFIG)
SLICED["resource_defaults"]["endpoint"]["concurrency"] = 4
# A little latency, so that the walks really overlap; the decision to split does not depend on
# it (tests on a busy machine must not depend on how long a page took).
SLOW_MS = 8.0


@pytest.fixture
def always_split() -> Timing:
    """A run's timing that splits whenever the total allows, whatever the pages' timing and
    however busy the (shared) machine keeps this process."""
    return Timing(slow_page=0.0, max_busy_steal=float("inf"))


def test_a_resource_is_read_by_several_walks_over_disjoint_ranges(
        tmp_path: Path, always_split: Timing) -> None:
    """deals is split in 4 ranges read at once; every record arrives, none twice in the table."""
    settings = SandboxSettings(late_visibility=False, latency_ms=SLOW_MS)
    with serve(World(seed=4, counts=COUNTS), settings) as sandbox:
        source = load_config(SLICED, base_url=sandbox.base_url)
        deals = source.resource("deals")
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id), timing=always_split) as client:
            walk = SlicedWalk(client, plan_of(deals), start_us=None, slices=4, split=True, steal=False)
            seen = {r["id"] for page in walk for r in page.records}
        assert len(walk.walks) == 4
        starts = [w.start_us for w in walk.walks]
        assert starts[0] is None and starts[1:] == sorted(starts[1:])
        assert seen == {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}
        summaries = sync(sandbox, tmp_path, MemoryMarkStore(), config=SLICED, timing=always_split)
        assert all(s.status == "ok" for s in summaries.values())
        assert_lake_equals_truth(sandbox, tmp_path)


@pytest.mark.parametrize(("latency", "busy", "split"), [
    (0.001, 0.9, False),  # fast API, parsing fills the process: more walks cost CPU
    (0.001, 0.2, True),  # fast pages but the process mostly waits
    (0.05, 0.9, True),  # a slow API pays whatever the CPU does
    (0.02, 1.0, True),
])
def test_the_split_decision_follows_the_measured_pages(latency: float, busy: float,
                                                        split: bool) -> None:
    """The decision is a pure function of what the first pages measured."""
    assert waits_for_the_api(latency, busy) is split


def test_a_walk_told_not_to_split_is_read_by_one_walk(tmp_path: Path) -> None:
    """split=False: one walk, no probe; the first pages are still measured."""
    with serve(World(seed=4, counts=COUNTS), SandboxSettings(late_visibility=False)) as sandbox:
        source = load_config(SLICED, base_url=sandbox.base_url)
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id)) as client:
            fast = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=4,
                              split=False)
            fast_ids = [r["id"] for page in fast for r in page.records]
        assert len(fast.walks) == 1 and fast.probes == 0
        assert fast.busy is not None and fast.latency is not None
        assert set(fast_ids) == {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sliced_walks_lose_nothing_while_records_change(tmp_path: Path, seed: int,
                                                        always_split: Timing) -> None:
    """Under mutation, below the committed mark everything is in; one more run is exact."""
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=seed, latency_ms=SLOW_MS)
    with serve(World(seed=seed, counts=COUNTS), settings) as sandbox:
        marks = MemoryMarkStore()
        first = sync(sandbox, tmp_path, marks, config=SLICED, batch_rows=100, timing=always_split)
        assert all(s.status == "ok" for s in first.values()), {r: s.error for r, s in first.items()}
        lake = Lake(str(tmp_path))
        for resource in RESOURCES:
            mark = lake.mark(resource, app_id("analytics"))
            assert mark is not None
            rows = {r["id"]: r for r in lake.read(resource).select("id", "updated_at").to_dicts()}
            for record in fetch_truth(sandbox.base_url, resource):
                if parse_cursor(record["updated_at"]) < mark:
                    assert record["id"] in rows, \
                        f"{resource} {record['id']} below the mark is missing"
                    assert rows[record["id"]]["updated_at"] == dt.datetime.fromisoformat(
                        record["updated_at"].replace("Z", "+00:00"))
        sandbox.configure(mutate_every_n_requests=0)
        sync(sandbox, tmp_path, marks, config=SLICED, timing=always_split)
        assert_lake_equals_truth(sandbox, tmp_path)


def test_a_run_stopped_mid_way_leaves_no_mark_ahead_of_any_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, always_split: Timing
) -> None:
    """Killed after a few commits, the table's mark is below every range still being read."""
    from analytics_client.state.marks import Mark

    timing = Timing(slow_page=0.0, max_busy_steal=float("inf"),
                    mark_save_every=0.0,  # a save per commit
                    merge_every=0.0)  # and a commit per batch, not one staged merge per run

    class DiesOnThirdSave(MemoryMarkStore):
        saves = 0

        def save(self, mark: Mark) -> None:
            DiesOnThirdSave.saves += 1
            if DiesOnThirdSave.saves == 3:
                raise SystemExit("killed mid-run")
            super().save(mark)

    settings = SandboxSettings(late_visibility=False, latency_ms=SLOW_MS)
    with serve(World(seed=6, counts=COUNTS), settings) as sandbox:
        with pytest.raises(SystemExit):
            sync(sandbox, tmp_path, DiesOnThirdSave(), config=SLICED, resources=["deals"],
                 batch_rows=100, timing=timing)
        lake = Lake(str(tmp_path))
        mark = lake.mark("deals", app_id("analytics"))
        assert mark is not None
        rows = set(lake.read("deals")["id"])
        below = [r["id"] for r in fetch_truth(sandbox.base_url, "deals")
                 if parse_cursor(r["updated_at"]) < mark]
        assert below and set(below) <= rows
        assert len(rows) < COUNTS["deals"]  # it really stopped mid-way
        sync(sandbox, tmp_path, MemoryMarkStore(), config=SLICED, resources=["deals"], timing=timing)
        assert_lake_equals_truth(sandbox, tmp_path, ("deals",))


def _partition(walk: SlicedWalk) -> None:
    """The walks' ranges cover the cursor axis from the start on, in order, without overlap."""
    ranges = walk.ranges()
    assert ranges[0][0] == walk.start_us and ranges[-1][1] is None
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert end is not None and end == start
    starts = [s for s, _ in ranges[1:]]
    assert starts == sorted(set(starts))
    assert all(walk.finished)


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[slices.WalkPool]:
    """Every run's pool, to see whether idle slots split running walks."""
    made: list[slices.WalkPool] = []
    real = slices.pool_for

    def recording(client: ApiClient) -> slices.WalkPool:
        pool = real(client)
        if pool not in made:
            made.append(pool)
        return pool

    monkeypatch.setattr(slices, "pool_for", recording)
    return made


def test_idle_slots_split_the_largest_range_left_and_every_id_lands_once(
        tmp_path: Path, always_split: Timing, pools: list[slices.WalkPool]) -> None:
    """Small resources finish first; their slots split deals' running walks (work stealing).

    With the sandbox changing records all along: below the committed mark everything is in
    the table, once; a second, quiet run makes the table equal the truth.
    """
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=7, latency_ms=SLOW_MS)
    with serve(World(seed=7, counts=COUNTS), settings) as sandbox:
        marks = MemoryMarkStore()
        first = sync(sandbox, tmp_path, marks, config=SLICED, batch_rows=100, timing=always_split)
        assert all(s.status == "ok" for s in first.values()), {r: s.error for r, s in first.items()}
        assert sum(p.splits for p in pools) > 0, "no running walk was split"
        lake = Lake(str(tmp_path))
        for resource in RESOURCES:
            mark = lake.mark(resource, app_id("analytics"))
            assert mark is not None
            ids = lake.read(resource)["id"].to_list()
            assert len(ids) == len(set(ids)), f"{resource}: an id landed twice"
            present = set(ids)
            for record in fetch_truth(sandbox.base_url, resource):
                if parse_cursor(record["updated_at"]) < mark:
                    assert record["id"] in present, f"{resource} {record['id']} below the mark"
        sandbox.configure(mutate_every_n_requests=0)
        sync(sandbox, tmp_path, marks, config=SLICED, timing=always_split)
        assert_lake_equals_truth(sandbox, tmp_path)


def test_a_split_walk_gives_its_upper_half_to_a_new_walk(always_split: Timing) -> None:
    """One resource alone: its walks are split until the in-flight limit is used."""
    with serve(World(seed=4, counts=COUNTS), SandboxSettings(late_visibility=False,
                                                             latency_ms=SLOW_MS)) as sandbox:
        source = load_config(SLICED, base_url=sandbox.base_url)
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id), timing=always_split) as client:
            walk = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=2,
                              split=True)
            seen = [r["id"] for page in walk for r in page.records]
            assert slices.pool_for(client).active == 0  # every slot given back
            peak = slices.pool_for(client).peak
        assert walk.stolen > 0 and len(walk.walks) > 2
        assert peak <= source.client.max_concurrency
        _partition(walk)
        assert set(seen) == {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}


_T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
_T0_US = parse_cursor("2026-03-01T00:00:00Z")


@settings(max_examples=20)
@given(
    steps=st.lists(st.sampled_from([0, 0, 0, 1, 1, 7, 3600_000_000]), min_size=60, max_size=400),
    capacity=st.integers(2, 8),
    planned=st.integers(1, 4),
)
def test_ranges_always_partition_the_cursor_space(steps: list[int], capacity: int,
                                                  planned: int) -> None:
    """Whatever the cursors' distribution (long tie groups, gaps, bursts), after the walks and
    their splits every range starts where the previous ended, and every id was read."""
    config = copy.deepcopy(SLICED)
    config["client"]["max_concurrency"] = capacity
    records = _deals(_cursors_from_steps(steps))
    with RecordServer() as server:
        server.put("deals", records)
        source = load_config(config, base_url=server.base_url)
        with ApiClient(source, Credentials("any-key", "any-org")) as client:
            slices.pool_for(client).waits = lambda: True  # the run waits for the API: steal
            walk = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=planned,
                              split=True, min_pages_per_slice=1, min_steal_pages=1)
            seen = {r["id"] for page in walk for r in page.records}
            pool = slices.pool_for(client)
    assert pool.active == 0  # every slot given back
    assert pool.peak <= max(capacity, planned)  # splits only fill idle slots
    event(f"running walks split: {walk.stolen > 0}")
    _partition(walk)
    assert seen == {f"d{i:04d}" for i in range(len(steps))}


def _cursors_from_steps(steps: list[int]) -> list[int]:
    """Cursors (µs after _T0) growing by each step in turn: 0 makes a tie, a big step a gap."""
    cursor, cursors = 0, []
    for step in steps:
        cursor += step
        cursors.append(cursor)
    return cursors


def _deals(cursors: list[int]) -> list[str]:
    """deals records as raw JSON text, ``d0000``, ``d0001``, ... at ``_T0`` + each cursor (µs)."""
    out = []
    for i, cursor in enumerate(cursors):
        at = (_T0 + dt.timedelta(microseconds=cursor)).isoformat().replace("+00:00", "Z")
        out.append(f'{{"id":"d{i:04d}","name":"deal {i}","created_at":"2026-03-01T00:00:00Z",'
                   f'"updated_at":"{at}"}}')
    return out


class _Answers:
    """An injected split gate: answers ``yes`` times yes, then no; counts what it was asked."""

    def __init__(self, yes: int) -> None:
        self.yes, self.asked = yes, 0
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            self.asked += 1
            return self.asked <= self.yes


@pytest.mark.parametrize("waits", [False, True])
def test_idle_slots_split_a_walk_only_while_the_run_waits_for_the_api(waits: bool) -> None:
    """The gate decides each steal: told the API does not bound the pace, the planned walks
    read everything alone though slots are free; told it does, idle slots split them."""
    config = copy.deepcopy(SLICED)
    config["client"]["max_concurrency"] = 8
    with RecordServer() as server:
        server.put("deals", _deals([i * 1_000_000 for i in range(600)]))
        source = load_config(config, base_url=server.base_url)
        with ApiClient(source, Credentials("any-key", "any-org")) as client:
            pool = slices.pool_for(client)
            gate = _Answers(yes=10**6 if waits else 0)
            pool.waits = gate
            walk = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=2,
                              split=True, min_pages_per_slice=1, min_steal_pages=1)
            seen = [r["id"] for page in walk for r in page.records]
    assert gate.asked > 0  # the gate was consulted with a range worth splitting
    if waits:
        assert walk.stolen > 0 and pool.splits == walk.stolen and len(walk.walks) > 2
        assert pool.peak <= 8
    else:
        assert walk.stolen == 0 and pool.splits == 0 and len(walk.walks) == 2
        assert pool.declined == gate.asked
    assert pool.active == 0
    _partition(walk)
    assert set(seen) == {f"d{i:04d}" for i in range(600)}


def test_the_gate_is_asked_before_every_split() -> None:
    """Two yes, then no: at most two splits, however many slots stay idle (the run's pace
    changes with every walk added, so one yes is not a licence to fill every slot)."""
    config = copy.deepcopy(SLICED)
    config["client"]["max_concurrency"] = 16
    with RecordServer() as server:
        server.put("deals", _deals([i * 1_000_000 for i in range(800)]))
        source = load_config(config, base_url=server.base_url)
        with ApiClient(source, Credentials("any-key", "any-org")) as client:
            pool = slices.pool_for(client)
            gate = _Answers(yes=2)
            pool.waits = gate
            walk = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=2,
                              split=True, min_pages_per_slice=1, min_steal_pages=1)
            seen = {r["id"] for page in walk for r in page.records}
    assert gate.asked > 2 and pool.declined > 0
    assert pool.splits == walk.stolen <= 2 and len(walk.walks) <= 4
    _partition(walk)
    assert seen == {f"d{i:04d}" for i in range(800)}


@pytest.mark.parametrize(("latency", "busy", "pays"), [
    (0.001, 0.2, False),  # fast pages, the process half idle: a local server's CPU, not latency
    (0.001, 0.95, False),
    (0.05, 0.3, True),  # a slow API, CPU to spare
    (0.05, None, True),  # too short a window to know the CPU: the pages decide
    (0.05, 0.95, False),  # slow pages, but the interpreter is what they wait for
    (0.02, 0.0, True),
])
def test_a_steal_pays_only_for_slow_pages_and_cpu_to_spare(
        latency: float, busy: float | None, pays: bool) -> None:
    """The split-time decision is a pure function of what the recent pages measured."""
    assert slices.steal_pays(latency, busy) is pays


@pytest.mark.parametrize(("pages", "cpu", "waits"), [
    # (page seconds, CPU seconds the process spends per second of clock) -> waits for the API
    ([0.001] * 40, 0.9, False),  # fast answers, the process busy: more walks cost CPU
    ([0.001] * 40, 0.1, False),  # fast answers, the process half idle: not the API's latency
    ([0.05] * 40, 0.5, True),  # a slow API
    ([0.05] * 40, 0.95, False),  # slow pages, but waiting for the interpreter
    ([0.05] * 8 + [0.001] * 32, 0.1, False),  # it was slow; the last pages say it is not now
])
def test_the_pace_judges_the_recent_pages_and_cpu_share(
        pages: list[float], cpu: float, waits: bool) -> None:
    """Pace.measure: the median of the last PACE_PAGES page times and the CPU share over the
    last PACE_WINDOW seconds, on injected clocks (one page every 0.1 s)."""
    now = [0.0]
    pace = slices.Pace(clock=lambda: now[0], cpu=lambda: now[0] * cpu)
    for seconds in pages:
        now[0] += 0.1
        pace.page(seconds)
    latency, busy = pace.measure()
    assert latency == pytest.approx(pages[-1])
    assert busy == pytest.approx(cpu)
    assert pace.waits() is waits


def test_the_pace_forgets_cpu_older_than_its_window() -> None:
    """Busy for a long while, then idle for a window: the share is the recent one; with no page
    yet the run is not taken as waiting, and a window too short says nothing of the CPU."""
    now, spent = [0.0], [0.0]
    pace = slices.Pace(window=2.0, clock=lambda: now[0], cpu=lambda: spent[0])
    assert pace.measure() == (None, None) and pace.waits() is False
    for _ in range(50):  # 5 s at a full core
        now[0] += 0.1
        spent[0] += 0.1
        pace.page(0.001)
    for _ in range(30):  # 3 s waiting
        now[0] += 0.1
        pace.page(0.001)
    latency, busy = pace.measure()
    assert busy == pytest.approx(0.0)
    fresh = slices.Pace(clock=lambda: now[0], cpu=lambda: spent[0])
    fresh.page(0.001)
    assert fresh.measure() == (0.001, None)  # one instant: no span to share over
    assert fresh.waits() is False  # a fast page and nothing known of the CPU


def _bounds_by_definition(cursors: list[int], start: int | None, total: int,
                          k: int) -> list[int]:
    """plan_bounds written from the contract: the cursor of record ``i * total // k + 1`` (in
    cursor order, from ``start`` on) for i = 1..k-1, kept when above the start and the previous
    bound, one after the other."""
    ordered = sorted(c for c in cursors if start is None or c >= start)
    bounds: list[int] = []
    for i in range(1, k):
        position = i * total // k + 1
        if position > len(ordered):
            continue
        cursor = ordered[position - 1]
        if (start is None or cursor > start) and (not bounds or cursor > bounds[-1]):
            bounds.append(cursor)
    return bounds


@settings(max_examples=15)
@given(
    steps=st.lists(st.sampled_from([0, 0, 1, 7, 3600_000_000]), min_size=20, max_size=200),
    slices_=st.integers(2, 12),
    capacity=st.integers(1, 6),
    start_at=st.integers(0, 10),
)
def test_concurrent_bound_probes_give_the_sequential_bounds(
        steps: list[int], slices_: int, capacity: int, start_at: int) -> None:
    """The K-1 probes sent at once give the bounds one probe after the other would, in the same
    order, against a real loopback server; no more than the in-flight limit are out at once,
    and as many as it allows are (the server holds each probe until they all came)."""
    config = copy.deepcopy(SLICED)
    config["client"]["max_concurrency"] = capacity
    cursors = _cursors_from_steps(steps)
    start = _T0_US + cursors[min(start_at, len(cursors) - 1)] if start_at else None
    total = sum(1 for c in cursors if start is None or _T0_US + c >= start)
    k = min(slices_, total // 10)  # min_pages 1, 10 records a page
    expected_out = min(max(k - 1, 0), capacity) if k - 1 > 1 else 0
    lock, all_out = threading.Lock(), threading.Event()
    out, peak = [0], [0]

    def hold_probes(_n: int, params: dict[str, str]) -> None:
        if params.get("page[size]") != "1":
            return
        with lock:
            out[0] += 1
            peak[0] = max(peak[0], out[0])
            if out[0] >= expected_out:
                all_out.set()
        all_out.wait(timeout=30)  # a deadlock guard only: sequential probes never get here
        with lock:
            out[0] -= 1

    with RecordServer(on_request=hold_probes) as server:
        server.put("deals", _deals(cursors))
        source = load_config(config, base_url=server.base_url)
        deals = source.resource("deals")
        with ApiClient(source, Credentials("any-key", "any-org")) as client:
            probes = [0]
            bounds = slices.plan_bounds(client, plan_of(deals), start, total, slices_, 1,
                                        lambda: probes.__setitem__(0, probes[0] + 1))
    assert bounds == [_T0_US + c for c in _bounds_by_definition(
        cursors, None if start is None else start - _T0_US, total, k)]
    assert probes[0] == max(k - 1, 0)
    assert peak[0] <= capacity
    if expected_out:
        assert peak[0] == expected_out
    assert not any(t.name.startswith("deals-probe") for t in threading.enumerate())


def test_a_slow_first_page_decides_the_split_at_once() -> None:
    """A first page at ``Timing.slow_page`` or slower splits after that one page; a faster one is followed
    by two more timed pages before the CPU share decides (the threshold moved, not the clock)."""
    with RecordServer() as server:
        server.put("deals", _deals([i * 1_000_000 for i in range(400)]))
        source = load_config(SLICED, base_url=server.base_url)
        every_page_slow = Timing(slow_page=0.0)
        no_page_slow = Timing(slow_page=float("inf"))
        with ApiClient(source, Credentials("any-key", "any-org"), timing=every_page_slow) as slow_c, \
                ApiClient(source, Credentials("any-key", "any-org"), timing=no_page_slow) as client:
            slow = SlicedWalk(slow_c, plan_of(source.resource("deals")), start_us=None, slices=4,
                              min_pages_per_slice=1, steal=False)
            slow_ids = {r["id"] for page in slow for r in page.records}
            fast = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=4,
                              min_pages_per_slice=1, steal=False)
            fast_ids = {r["id"] for page in fast for r in page.records}
    assert slow.timed == 1 and len(slow.walks) == 4
    assert fast.timed == 3 and fast.busy is not None
    assert slow_ids == fast_ids == {f"d{i:04d}" for i in range(400)}


def test_a_walks_estimate_of_records_left_does_not_count_re_reads_as_progress() -> None:
    """Once a quiet read is over, every walk's estimate of what is left is exactly 0, though
    each of its pages began with a record it had already read (so a walk mid-way is not taken
    for nearly done, and stays worth splitting)."""
    with RecordServer() as server:
        server.put("deals", _deals([i * 1_000_000 for i in range(500)]))
        source = load_config(SLICED, base_url=server.base_url)
        with ApiClient(source, Credentials("any-key", "any-org")) as client:
            walk = SlicedWalk(client, plan_of(source.resource("deals")), start_us=None, slices=3,
                              split=True, min_pages_per_slice=1, steal=False)
            seen = [r["id"] for page in walk for r in page.records]
    assert len(walk.walks) == 3 and walk.reread > 0 and len(seen) > 500
    assert [walk.remaining(w) for w in walk.walks] == [0, 0, 0]

"""Concurrent keyset walks within a resource: faster against a slow API, and still lossless."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Credentials, Lake, load_config, slices
from analytics_client.client import ApiClient
from analytics_client.keyset import parse_cursor
from analytics_client.sandbox import SandboxSettings, World, serve
from analytics_client.slices import SlicedWalk, waits_for_the_api
from analytics_client.state import MemoryMarkStore, app_id
from tests.groundtruth import fetch_truth
from tests.recordserver import RecordServer
from tests.support import RESOURCES, assert_lake_equals_truth, sync

COUNTS = {"tags": 30, "users": 60, "deals": 1500, "pages": 400, "tasks": 900}
SLICED = copy.deepcopy(DEFAULT_CONFIG)
SLICED["resource_defaults"]["endpoint"]["concurrency"] = 4
# A little latency, so that the walks really overlap; the decision to split does not depend on
# it (tests on a busy machine must not depend on how long a page took).
SLOW_MS = 8.0


@pytest.fixture
def always_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs through sync() split whenever the total allows, whatever the pages' timing."""
    monkeypatch.setattr(slices, "SLOW_PAGE", 0.0)


def test_a_resource_is_read_by_several_walks_over_disjoint_ranges(
        tmp_path: Path, always_split: None) -> None:
    """deals is split in 4 ranges read at once; every record arrives, none twice in the table."""
    settings = SandboxSettings(late_visibility=False, latency_ms=SLOW_MS)
    with serve(World(seed=4, counts=COUNTS), settings) as sandbox:
        source = load_config(SLICED, base_url=sandbox.base_url)
        deals = source.resource("deals")
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id)) as client:
            walk = SlicedWalk(client, deals, start_us=None, slices=4, split=True, steal=False)
            seen = {r["id"] for page in walk for r in page.records}
        assert len(walk.walks) == 4
        starts = [w.start_us for w in walk.walks]
        assert starts[0] is None and starts[1:] == sorted(starts[1:])
        assert seen == {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}
        summaries = sync(sandbox, tmp_path, MemoryMarkStore(), config=SLICED)
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
            fast = SlicedWalk(client, source.resource("deals"), start_us=None, slices=4,
                              split=False)
            fast_ids = [r["id"] for page in fast for r in page.records]
        assert len(fast.walks) == 1 and fast.probes == 0
        assert fast.busy is not None and fast.latency is not None
        assert set(fast_ids) == {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sliced_walks_lose_nothing_while_records_change(tmp_path: Path, seed: int,
                                                        always_split: None) -> None:
    """Under mutation, below the committed mark everything is in; one more run is exact."""
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=seed, latency_ms=SLOW_MS)
    with serve(World(seed=seed, counts=COUNTS), settings) as sandbox:
        marks = MemoryMarkStore()
        first = sync(sandbox, tmp_path, marks, config=SLICED, batch_rows=100)
        assert all(s.status == "ok" for s in first.values()), {r: s.error for r, s in first.items()}
        lake = Lake(str(tmp_path))
        for resource in RESOURCES:
            mark = lake.mark(resource, app_id("analytics"))
            assert mark is not None
            rows = {r["id"]: r for r in lake.read(resource).select("id", "updated_at").to_dicts()}
            for record in fetch_truth(sandbox.base_url, resource):
                if parse_cursor(record["updated_at"]) < mark:
                    assert record["id"] in rows, f"{resource} {record['id']} below the mark is missing"
                    assert rows[record["id"]]["updated_at"] == dt.datetime.fromisoformat(
                        record["updated_at"].replace("Z", "+00:00"))
        sandbox.configure(mutate_every_n_requests=0)
        sync(sandbox, tmp_path, marks, config=SLICED)
        assert_lake_equals_truth(sandbox, tmp_path)


def test_a_run_stopped_mid_way_leaves_no_mark_ahead_of_any_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, always_split: None
) -> None:
    """Killed after a few commits, the table's mark is below every range still being read."""
    from analytics_client import markpolicy
    from analytics_client.state import Mark

    monkeypatch.setattr(markpolicy, "MARK_SAVE_EVERY_SECONDS", 0.0)  # a save per commit

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
                 batch_rows=100)
        lake = Lake(str(tmp_path))
        mark = lake.mark("deals", app_id("analytics"))
        assert mark is not None
        rows = set(lake.read("deals")["id"])
        below = [r["id"] for r in fetch_truth(sandbox.base_url, "deals")
                 if parse_cursor(r["updated_at"]) < mark]
        assert below and set(below) <= rows
        assert len(rows) < COUNTS["deals"]  # it really stopped mid-way
        sync(sandbox, tmp_path, MemoryMarkStore(), config=SLICED, resources=["deals"])
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
        tmp_path: Path, always_split: None, pools: list[slices.WalkPool]) -> None:
    """Small resources finish first; their slots split deals' running walks (work stealing).

    With the sandbox changing records all along: below the committed mark everything is in
    the table, once; a second, quiet run makes the table equal the truth.
    """
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=7, latency_ms=SLOW_MS)
    with serve(World(seed=7, counts=COUNTS), settings) as sandbox:
        marks = MemoryMarkStore()
        first = sync(sandbox, tmp_path, marks, config=SLICED, batch_rows=100)
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
        sync(sandbox, tmp_path, marks, config=SLICED)
        assert_lake_equals_truth(sandbox, tmp_path)


def test_a_split_walk_gives_its_upper_half_to_a_new_walk(always_split: None) -> None:
    """One resource alone: its walks are split until the in-flight limit is used."""
    with serve(World(seed=4, counts=COUNTS), SandboxSettings(late_visibility=False,
                                                             latency_ms=SLOW_MS)) as sandbox:
        source = load_config(SLICED, base_url=sandbox.base_url)
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id)) as client:
            walk = SlicedWalk(client, source.resource("deals"), start_us=None, slices=2,
                              split=True)
            seen = [r["id"] for page in walk for r in page.records]
            assert slices.pool_for(client).active == 0  # every slot given back
            peak = slices.pool_for(client).peak
        assert walk.stolen > 0 and len(walk.walks) > 2
        assert peak <= source.client.max_concurrency
        _partition(walk)
        assert set(seen) == {r["id"] for r in fetch_truth(sandbox.base_url, "deals")}


_T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


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
    cursor, records = 0, []
    for i, step in enumerate(steps):
        cursor += step
        at = (_T0 + dt.timedelta(microseconds=cursor)).isoformat().replace("+00:00", "Z")
        records.append(f'{{"id":"d{i:04d}","name":"deal {i}","created_at":"2026-03-01T00:00:00Z",'
                       f'"updated_at":"{at}"}}')
    with RecordServer() as server:
        server.put("deals", records)
        source = load_config(config, base_url=server.base_url)
        with ApiClient(source, Credentials("any-key", "any-org")) as client:
            walk = SlicedWalk(client, source.resource("deals"), start_us=None, slices=planned,
                              split=True, min_pages_per_slice=1, min_steal_pages=1)
            seen = {r["id"] for page in walk for r in page.records}
            pool = slices.pool_for(client)
    assert pool.active == 0  # every slot given back
    assert pool.peak <= max(capacity, planned)  # splits only fill idle slots
    event(f"running walks split: {walk.stolen > 0}")
    _partition(walk)
    assert seen == {f"d{i:04d}" for i in range(len(steps))}

"""Incremental sync: marks that never run ahead of the data, and no row lost while the API changes."""

from __future__ import annotations

import copy
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics_client import DEFAULT_CONFIG, Lake
from analytics_client.core.errors import AnalyticsSyncError
from analytics_client.core.lock import PipelineBusyError, pipeline_lock
from analytics_client.core.timing import Timing
from analytics_client.read.keyset import format_cursor, parse_cursor
from analytics_client.state.marks import Mark, MemoryMarkStore, app_id, block_name
from analytics_sandbox import RunningSandbox, SandboxSettings, World, serve, serve_subprocess
from flows.main import main
from tests.groundtruth import fetch_truth
from tests.support import PLAIN, RESOURCES, SMALL, assert_lake_equals_truth, sync

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with serve(World(seed=11, counts=SMALL)) as running:
        yield running


def test_marks_are_committed_with_the_data_and_saved_after(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Each table carries its mark in its own commit; the block holds the same cursor and version."""
    marks = MemoryMarkStore()
    summaries = sync(sandbox, tmp_path, marks)
    lake = Lake(str(tmp_path))
    for resource in RESOURCES:
        truth = fetch_truth(sandbox.base_url, resource)
        newest = max(parse_cursor(r["updated_at"]) for r in truth)
        table_mark = lake.mark(resource, app_id("analytics"))
        assert table_mark == newest  # below it every record is committed; never the wall clock
        block = marks.load("analytics", resource)
        assert block is not None and block.cursor == format_cursor(newest)
        assert block.table_version == lake.version(resource)
        assert block.last_success_at is not None
        assert (block.inserted, block.rows_fetched) == (summaries[resource].inserted,
                                                        summaries[resource].rows_fetched)
        # A still API hides nothing: re-reading tie groups must not report recovered records.
        assert summaries[resource].notes == []


def test_the_block_store_gets_a_mark_at_the_end_and_on_failure_not_per_commit(
        sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks are API round trips: the table holds each commit's mark, the block the last one."""
    from analytics_client.core.errors import LakeError
    from analytics_client.lake.tables import TableWriter

    class CountingStore(MemoryMarkStore):
        saves = 0

        def save(self, mark: Mark) -> None:
            CountingStore.saves += 1
            super().save(mark)

    marks = CountingStore()
    lake = Lake(str(tmp_path))
    # Every batch merged as it comes (merge_every 0), so that the read commits many times.
    first = sync(sandbox, tmp_path, marks, resources=["deals"], batch_rows=10,
                 timing=Timing(merge_every=0))
    assert first["deals"].commits > 3 and CountingStore.saves == 1
    block = marks.load("analytics", "deals")
    assert block is not None
    assert block.cursor == format_cursor(lake.mark("deals", app_id("analytics")))  # type: ignore[arg-type]

    sandbox.world.advance(updates=60, creates=20, seed=5, late_visibility=False)
    flush, writes = TableWriter.flush, []

    def fails_on_the_third_write(self: TableWriter, *args: object, **kwargs: object) -> object:
        writes.append(1)
        if len(writes) == 3:
            raise LakeError("deals", "the disk is full (a test)")
        return flush(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TableWriter, "flush", fails_on_the_third_write)
    again = sync(sandbox, tmp_path, marks, resources=["deals"], batch_rows=10,
                 timing=Timing(merge_every=0))
    assert again["deals"].status == "failed" and again["deals"].commits == 2
    table_mark = lake.mark("deals", app_id("analytics"))
    assert table_mark is not None and format_cursor(table_mark) > block.cursor  # type: ignore[operator]
    # The failure handed the last committed mark to the block: not behind, never ahead.
    assert marks.load("analytics", "deals").cursor == format_cursor(table_mark)  # type: ignore[union-attr]
    monkeypatch.undo()
    sync(sandbox, tmp_path, marks)
    assert_lake_equals_truth(sandbox, tmp_path)


def test_one_percent_of_changes_costs_requests_in_proportion(tmp_path: Path) -> None:
    """After a full run, 1 % changed records are read with a handful of requests and land exactly."""
    counts = {"tags": 250, "users": 2000, "deals": 3000, "pages": 2000, "tasks": 3000}
    with serve(World(seed=5, counts=counts), SandboxSettings(late_visibility=False)) as sandbox:
        marks = MemoryMarkStore()
        full = sync(sandbox, tmp_path, marks)
        full_requests = sandbox.stats()["total_requests"]
        changed = {r: max(1, n // 100) for r, n in counts.items()}
        changes = sandbox.world.advance(updates=changed, seed=2, late_visibility=False)
        sandbox.app.reset_stats()  # type: ignore[union-attr]
        incremental = sync(sandbox, tmp_path, marks)
        requests = sandbox.stats()["requests"]
        for resource, n in changed.items():
            got = sum(requests[resource].values())
            # Keyset pages move on by at least page_size - 1 records; plus the lag re-read and
            # the last, short page. Tie groups of the bulk change add one re-read pass.
            bound = -(-n // 9) + 3 + (-(-n // 10) + 1 if n >= 25 else 0)
            assert got <= bound, (resource, got, bound)
            assert incremental[resource].updated == len(set(changes[resource]["updated"]))
            assert incremental[resource].inserted == 0
        assert sum(s.pages for s in incremental.values()) < full_requests / 20
        assert_lake_equals_truth(sandbox, tmp_path)
        del full


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_records_changing_during_paging_are_never_lost(tmp_path: Path, seed: int) -> None:
    """Under mutation every few requests, a run then one more run equal the truth exactly.

    Between the runs, everything below the committed mark is already in the table: the mark
    never ran ahead of the data, even while records shifted between pages.
    """
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=seed)
    with serve(World(seed=seed, counts=SMALL), settings) as sandbox:
        marks = MemoryMarkStore()
        first = sync(sandbox, tmp_path, marks, batch_rows=40)
        assert all(s.status == "ok" for s in first.values())
        # Records created while the full read ran: the summary says the counts differ.
        assert any("rows; the API counted" in n for s in first.values() for n in s.notes)
        lake = Lake(str(tmp_path))
        for resource in RESOURCES:
            mark = lake.mark(resource, app_id("analytics"))
            assert mark is not None
            table = {r["id"]: r for r in lake.read(resource).to_dicts()}
            for record in fetch_truth(sandbox.base_url, resource):
                if parse_cursor(record["updated_at"]) < mark:
                    row = table.get(record["id"])
                    assert row is not None, f"{resource} {record['id']} below the mark is missing"
                    assert row["updated_at"] == dt.datetime.fromisoformat(
                        record["updated_at"].replace("Z", "+00:00"))
        sandbox.configure(mutate_every_n_requests=0)
        second = sync(sandbox, tmp_path, marks)
        assert all(s.status == "ok" for s in second.values())
        assert_lake_equals_truth(sandbox, tmp_path)


def test_a_naive_page_loop_would_have_lost_records(tmp_path: Path) -> None:
    """The same mutation against plain page-number paging skips records a mark would then pass."""
    lost = 0
    for seed in (1, 2, 3):
        settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                                   late_visibility=False, fault_seed=seed)
        with serve(World(seed=seed, counts=SMALL), settings) as sandbox:
            lake_dir = tmp_path / str(seed)
            sync(sandbox, lake_dir, None, config=PLAIN, resources=["deals", "tasks"])
            for resource in ("deals", "tasks"):
                table = Lake(str(lake_dir)).read(resource)
                seen = set(table["id"])
                newest_seen = table["updated_at"].max()
                for record in fetch_truth(sandbox.base_url, resource):
                    when = dt.datetime.fromisoformat(record["updated_at"].replace("Z", "+00:00"))
                    # A naive incremental mark (the newest updated_at seen) has passed it.
                    if record["id"] not in seen and when < newest_seen:
                        lost += 1
    assert lost > 0


def test_crash_after_commit_before_the_block_save_loses_and_duplicates_nothing(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The process dies right after a Delta commit; the next run resumes from the table's mark."""

    class CrashingStore(MemoryMarkStore):
        def save(self, mark: Mark) -> None:
            raise SystemExit("killed between the Delta commit and the state save")

    sync(sandbox, tmp_path, MemoryMarkStore())
    sandbox.world.advance(updates=30, creates=10, seed=3, late_visibility=False)
    with pytest.raises(SystemExit):
        sync(sandbox, tmp_path, CrashingStore(), resources=["deals"], batch_rows=10)
    lake = Lake(str(tmp_path))
    assert lake.read("deals").height == len(set(lake.read("deals")["id"]))
    survivor = MemoryMarkStore()  # what the block store holds: nothing from the crashed run
    again = sync(sandbox, tmp_path, survivor)
    assert all(s.status == "ok" for s in again.values())
    assert_lake_equals_truth(sandbox, tmp_path)


def test_a_deleted_table_is_rebuilt_although_its_block_remains(
        sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With the table gone, the block's mark is not trusted: the resource is read in full."""
    marks = MemoryMarkStore()
    sync(sandbox, tmp_path, marks)
    shutil.rmtree(tmp_path / "deals")
    caplog.set_level("INFO")
    again = sync(sandbox, tmp_path, marks)
    assert again["deals"].inserted == SMALL["deals"]
    assert again["tags"].inserted == 0
    assert "the table is missing although the state says" in caplog.text
    assert_lake_equals_truth(sandbox, tmp_path)


def test_a_mark_edited_forward_cannot_skip_data(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A block cursor moved into the future is ignored in favour of the table's own mark."""
    marks = MemoryMarkStore()
    sync(sandbox, tmp_path, marks)
    changes = sandbox.world.advance(updates=10, creates=5, seed=9, late_visibility=False)
    block = marks.load("analytics", "deals")
    assert block is not None
    block.cursor = "2030-01-01T00:00:00.000000Z"
    marks.save(block)
    again = sync(sandbox, tmp_path, marks)
    assert again["deals"].inserted == len(changes["deals"]["created"])
    assert_lake_equals_truth(sandbox, tmp_path)


def test_reset_and_full_refresh_read_everything(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A reset block (no cursor) and full_refresh both re-read a resource in full."""
    marks = MemoryMarkStore()
    sync(sandbox, tmp_path, marks)
    block = marks.load("analytics", "users")
    assert block is not None
    block.cursor = None
    marks.save(block)
    again = sync(sandbox, tmp_path, marks, full_refresh=["tags"])
    assert again["users"].rows_fetched >= SMALL["users"]
    assert again["tags"].rows_fetched >= SMALL["tags"]
    assert again["deals"].rows_fetched < SMALL["deals"] / 2
    assert all(s.inserted == s.updated == 0 for s in again.values())


def test_a_failed_resource_keeps_its_mark_while_the_others_advance(
        sandbox: RunningSandbox, tmp_path: Path) -> None:
    """deals fails on its next run; its mark stays, the other marks move on."""
    marks = MemoryMarkStore()
    sync(sandbox, tmp_path, marks)
    before = {r: marks.load("analytics", r).cursor for r in RESOURCES}  # type: ignore[union-attr]
    sandbox.world.advance(updates=5, creates=5, seed=4, late_visibility=False)
    sandbox.set_faults([{"kind": "status", "status": 500, "resource": "deals", "times": 100}])
    again = sync(sandbox, tmp_path, marks)
    assert again["deals"].status == "failed"
    after = {r: marks.load("analytics", r).cursor for r in RESOURCES}  # type: ignore[union-attr]
    assert after["deals"] == before["deals"]
    assert all(after[r] > before[r] for r in RESOURCES if r != "deals")  # type: ignore[operator]
    sandbox.set_faults([])
    sync(sandbox, tmp_path, marks)
    assert_lake_equals_truth(sandbox, tmp_path)


def test_a_late_arriving_record_within_the_lag_is_picked_up(tmp_path: Path) -> None:
    """A change stamped up to 5 s before the mark is read because each run starts 10 s back.

    The same change is missed with no lag: the window is what saves it. The newest deal is
    changed seconds before the API's clock (its Date) first, so no run's clock proves the mark
    (state/markpolicy.py): a late change can still land below it, and only the lag reads it.
    """
    no_lag = copy.deepcopy(DEFAULT_CONFIG)
    no_lag["resource_defaults"]["endpoint"]["incremental"]["lag"] = 0
    with serve(World(seed=8, counts=SMALL)) as sandbox:
        sandbox.world.advance(updates={"deals": 20}, resources=["deals"], seed=1,
                              late_visibility=False)
        marks = MemoryMarkStore()
        sync(sandbox, tmp_path / "lag", marks, resources=["deals"])
        sync(sandbox, tmp_path / "no-lag", marks, config=no_lag, pipeline="nolag",
             resources=["deals"])
        mark = parse_cursor(marks.load("analytics", "deals").cursor)  # type: ignore[arg-type, union-attr]
        changes = sandbox.world.advance(updates={"deals": 20}, resources=["deals"], seed=12,
                                  late_visibility=True)
        truth = {r["id"]: r for r in fetch_truth(sandbox.base_url, "deals")}
        late = [i for i in changes["deals"]["updated"] if parse_cursor(truth[i]["updated_at"]) < mark]
        assert late, "the sandbox stamped no change before the mark; pick another seed"
        sync(sandbox, tmp_path / "lag", marks, resources=["deals"])
        assert_lake_equals_truth(sandbox, tmp_path / "lag", ("deals",))
        sync(sandbox, tmp_path / "no-lag", marks, config=no_lag, pipeline="nolag",
             resources=["deals"])
        stale = Lake(str(tmp_path / "no-lag")).read("deals")
        rows = {r["id"]: r for r in stale.to_dicts()}
        assert any(rows[i]["_row_hash"] != Lake(str(tmp_path / "lag")).read("deals")
                   .filter(id=i)["_row_hash"][0] for i in late)


def test_two_runs_of_one_pipeline_never_overlap(tmp_path: Path) -> None:
    """A second run fails at once naming the first; the first finishes with nothing lost.

    "At once" without a clock: the first run is held inside its lock (its first mark load
    waits) until the second has failed, so a second run that waited for the lock would never
    return in time and the first could not have finished before the refusal.
    """
    errors: list[Exception] = []
    inside, release = threading.Event(), threading.Event()

    class HeldStore(MemoryMarkStore):
        def load(self, pipeline: str, resource: str) -> Mark | None:
            inside.set()
            assert release.wait(120), "the second run never came back"
            return super().load(pipeline, resource)

    with serve(World(seed=2, counts=SMALL)) as sandbox:
        def first() -> None:
            try:
                sync(sandbox, tmp_path, HeldStore(), pipeline="shared")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        runner = threading.Thread(target=first)
        runner.start()
        try:
            assert inside.wait(120)
            busy = r"pipeline 'shared' resource '\w+' is already running"
            with pytest.raises(PipelineBusyError, match=busy):
                sync(sandbox, tmp_path / "other-lake", MemoryMarkStore(), pipeline="shared")
            assert runner.is_alive()
        finally:
            release.set()
            runner.join()
        assert not errors
        assert_lake_equals_truth(sandbox, tmp_path)


def test_the_command_line_refuses_a_second_run_before_starting_prefect(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`python flows/main.py` exits 2 when the pipeline is busy, before any flow run starts."""
    import flows.main

    def no_flow(**kwargs: object) -> None:
        raise AssertionError("the flow (and Prefect's server) started although the pipeline is busy")

    monkeypatch.setattr(flows.main, "analytics_sync", no_flow)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with pipeline_lock("busy"):
            holding.set()
            release.wait(120)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(120)
    try:
        code = main(["--pipeline", "busy", "--base-url", "http://127.0.0.1:9", "--api-key-block", "",
                     "--organization-block", ""])
    finally:
        release.set()
        holder.join()
    assert code == 2
    assert "pipeline 'busy' is already running" in capsys.readouterr().err


_KILLABLE = textwrap.dedent("""
    import sys
    from analytics_client import Credentials, load_config, run_sync
    from analytics_client.core.timing import Timing
    base_url, key, org, lake = sys.argv[1:5]
    # Every batch merged as it comes, so that a first deals commit shows the run is mid-way.
    run_sync(load_config(base_url=base_url), Credentials(key, org), lake, pipeline="killed",
             batch_rows=20, timing=Timing(merge_every=0))
""")


def test_a_run_killed_with_sigkill_does_not_keep_the_lock(tmp_path: Path) -> None:
    """SIGKILL mid-run frees the lock; the next run proceeds and ends equal to the truth.

    Mid-run is checked, not hoped for: the victim holds the lock and has committed a first
    batch of deals but not all of them, and it has not exited, when the signal is sent.
    """
    with serve_subprocess(counts=SMALL, seed=4, latency_ms=10) as sandbox:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        victim = subprocess.Popen(
            [sys.executable, "-c", _KILLABLE, sandbox.base_url, sandbox.api_key,
             sandbox.organization_id, str(tmp_path)], env=env)
        try:
            lock = Path(os.environ["ANALYTICS_SYNC_LOCK_DIR"]) / "killed.lock"
            deals = tmp_path / "deals"
            deadline = time.monotonic() + 120  # a limit for a hung run, not a speed
            # A first commit of deals (20 of its 230 rows): killed now, the victim is mid-run.
            while not (lock.exists() and lock.read_text() and (deals / "_delta_log").exists()):
                assert victim.poll() is None, "the victim ended before its first deals commit"
                assert time.monotonic() < deadline, "no deals commit within 120 s"
                time.sleep(0.01)
            assert victim.poll() is None
            victim.send_signal(signal.SIGKILL)
            assert victim.wait() == -signal.SIGKILL
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait()
        committed = Lake(str(tmp_path)).read("deals").height
        served = sum(sandbox.stats()["requests"]["deals"].values())
        assert 0 < committed < SMALL["deals"], f"{committed} deals committed: not mid-extraction"
        assert served < -(-SMALL["deals"] // 10), f"{served} deals pages served: the read had ended"
        summaries = sync(sandbox, tmp_path, None, pipeline="killed")
        assert all(s.status == "ok" for s in summaries.values())
        assert_lake_equals_truth(sandbox, tmp_path)


def test_block_names_keep_pipelines_apart() -> None:
    """Two pipelines (organizations, lakes) never share a block document."""
    assert block_name("analytics", "deals") == "analytics--deals"
    assert block_name("EU_org", "deals") != block_name("US_org", "deals")
    assert app_id("eu") != app_id("us")
    with pytest.raises(AnalyticsSyncError):
        with pipeline_lock("x"):
            raise PipelineBusyError("x")

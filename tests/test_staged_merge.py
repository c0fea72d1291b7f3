"""A merge table's batches are staged and merged once (issue 24): real Delta tables under
tmp_path, read back and compared with an oracle written from the rules (docs/data-model.md:
per key the newest cursor wins, on a tie the later record; an older version never replaces a
newer row), not with the writer's own code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client.config.schemas import contract_columns
from analytics_client.lake.tables import Lake, TableMark, TableWriter

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def stamp(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deal(n: int, minutes: int, name: str) -> dict[str, object]:
    return {"id": f"deal_{n:04d}", "created_at": stamp(0), "updated_at": stamp(minutes),
            "name": name}


def writer(lake: Lake) -> TableWriter:
    return TableWriter(lake, "deals", columns=contract_columns("deals"))


def oracle(table: dict[str, tuple[int, str]],
           batches: list[list[dict[str, object]]]) -> dict[str, tuple[str, str]]:
    """{id: (updated_at, name)} after the batches land on ``table``, by the rules alone."""
    found = {k: (stamp(m), name) for k, (m, name) in table.items()}
    for batch in batches:
        for record in batch:
            key, cursor = str(record["id"]), str(record["updated_at"])
            if key not in found or cursor >= found[key][0]:  # same-format stamps sort as time
                found[key] = (cursor, str(record["name"]))
    return found


def read_back(lake: Lake) -> dict[str, tuple[str, str]]:
    frame = lake.read("deals")
    return {r["id"]: (r["updated_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), r["name"])
            for r in frame.to_dicts()}


def operations(lake: Lake) -> list[str]:
    return [h["operation"] for h in reversed(DeltaTable(lake.table_uri("deals")).history())]


records = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 50), st.sampled_from(["a", "b", "c"])),
    min_size=1, max_size=25)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=st.dictionaries(st.integers(0, 30), st.tuples(st.integers(0, 50),
                                                               st.sampled_from(["x", "y"])),
                                max_size=10),
       batches=st.lists(records, min_size=1, max_size=4))
def test_staged_batches_land_as_the_rules_say_in_one_commit(
        tmp_path_factory: object, existing: dict[int, tuple[int, str]],
        batches: list[list[tuple[int, int, str]]]) -> None:
    """Batches staged one by one (keys repeated within and across them, older and newer than
    the table's) land in one commit: per key the newest cursor, on a tie the later record."""
    lake = Lake(str(tmp_path_factory.mktemp("lake")))  # type: ignore[attr-defined]
    if existing:
        first = writer(lake)
        first.write([deal(n, m, name) for n, (m, name) in existing.items()])
    as_records = [[deal(n, m, name) for n, m, name in batch] for batch in batches]
    before = DeltaTable(lake.table_uri("deals")).version() if existing else -1
    staged = writer(lake)
    for batch in as_records:
        assert staged.stage(batch).version is None
    assert DeltaTable(lake.table_uri("deals")).version() == before if existing \
        else not DeltaTable.is_deltatable(lake.table_uri("deals"))
    result = staged.flush(mark=TableMark("p", 7))
    table = DeltaTable(lake.table_uri("deals"))
    assert table.version() <= before + 1  # one commit at most (none if nothing changed)
    if result.version is not None:
        assert table.transaction_version("p") == 7  # the mark rides on that commit
    want = oracle({f"deal_{n:04d}": v for n, v in existing.items()}, as_records)
    assert read_back(lake) == want
    assert staged.staged_rows == 0
    staged.close()


def test_a_first_load_appends_and_a_later_one_merges(tmp_path: Path) -> None:
    """Into a new table, and with none of the staged keys in the table, the staged batches are
    appended (no scan, no rewrite); once a staged key is in the table, they are merged."""
    lake = Lake(str(tmp_path / "lake"))
    first = writer(lake)
    for start in (0, 10):
        first.stage([deal(n, 1, "a") for n in range(start, start + 10)])
    first.flush()
    second = writer(lake)
    second.stage([deal(n, 1, "a") for n in range(20, 30)])
    second.flush()  # all new keys: appended
    third = writer(lake)
    third.stage([deal(n, 2, "b") for n in (3, 25)] + [deal(40, 2, "b")])
    result = third.flush()
    assert operations(lake) == ["WRITE", "WRITE", "MERGE"]
    assert (result.inserted, result.updated) == (1, 2)
    assert len(read_back(lake)) == 31


_VICTIM = textwrap.dedent("""
    import os, signal, sys
    from analytics_client.config.schemas import contract_columns
    from analytics_client.lake.tables import Lake, TableMark, TableWriter
    sys.path.insert(0, sys.argv[2])
    from tests.test_staged_merge import deal
    writer = TableWriter(Lake(sys.argv[1]), "deals", columns=contract_columns("deals"))
    writer.stage([deal(n, 5, "new") for n in range(0, 20)])
    writer.stage([deal(n, 5, "new") for n in range(20, 40)])
    os.kill(os.getpid(), signal.SIGKILL)  # staged, not merged
""")


def test_sigkill_after_staging_loses_only_the_staged_batches(tmp_path: Path) -> None:
    """Killed with batches staged: the table and its mark are as before, the parts are left;
    the next writer removes them, and reading again lands everything."""
    lake = Lake(str(tmp_path / "lake"))
    first = writer(lake)
    first.write([deal(n, 1, "old") for n in range(30)], mark=TableMark("p", 1))
    version = DeltaTable(lake.table_uri("deals")).version()
    victim = subprocess.run([sys.executable, "-c", _VICTIM, lake.uri, str(ROOT)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
    table = DeltaTable(lake.table_uri("deals"))
    assert (table.version(), table.transaction_version("p")) == (version, 1)
    parts = Path(lake.uri) / "_staging" / "deals.parts"
    assert len(list(parts.glob("*/*.parquet"))) == 2  # what the kill left
    rerun = writer(lake)  # the mark did not move: the read starts where it did
    rerun.stage([deal(n, 5, "new") for n in range(0, 40)])
    assert list(parts.glob("*/*.parquet")) and len(list(parts.iterdir())) == 1  # only its own
    rerun.flush(mark=TableMark("p", 5))
    rerun.close()
    assert read_back(lake) == {f"deal_{n:04d}": (stamp(5), "new") for n in range(40)}
    assert DeltaTable(lake.table_uri("deals")).transaction_version("p") == 5
    assert not parts.parent.exists()  # nothing staged is left, nor the staging directories


def test_a_stage_being_opened_is_never_taken_for_abandoned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers of one lake: the other's sweep of abandoned stages runs while this one is
    between creating its lock and holding it (CI found it: the sweep removed a live stage, and
    its first part failed "No such file"). The sweep leaves it; its parts land."""
    import fcntl

    import polars as pl

    from analytics_client.lake import staging

    parent = tmp_path / "_staging" / "deals.parts"
    real_flock = fcntl.flock
    swept = []

    def flock_after_a_sweep(fd: int, operation: int) -> None:
        if not swept:  # the other writer's sweep, in the window before this lock is held
            swept.append(True)
            staging._remove_abandoned(parent)
        real_flock(fd, operation)

    monkeypatch.setattr(staging.fcntl, "flock", flock_after_a_sweep)
    stage = staging.Stage(parent)
    try:
        stage.append(pl.DataFrame({"id": ["a", "b"]}), [])
        assert swept and stage.frame()["id"].to_list() == ["a", "b"]
    finally:
        stage.close()
    assert not parent.exists()

"""A quarantined record never goes back in time (quarantine.py; docs/data-model.md, Quarantine).

Against a loopback API (tests/recordserver.py) and real Delta tables: a run that lands a newer
version of a quarantined record's key drops the record (with a cursor and without, even when
the merge changes nothing), and a replay skips, counts and drops a record older than the row
it would replace, judged by the cursor where both have one, else by when each was written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, Lake, load_config, run_sync
from analytics_client.config.schemas import ColumnHint
from analytics_client.core.summary import ResourceSummary
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.tables import TableWriter
from analytics_client.read.plan import plan_resource
from analytics_client.run.sync import replay_quarantine, table_writer
from tests.recordserver import RecordServer
from tests.support import CONTRACT_PAGES, SANDBOX_AUTH

T0, T1, T2 = "2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z", "2026-03-01T10:00:02Z"
# name may not be null: a record with a null name is set aside.
CURSOR: dict[str, Any] = {
    "client": {"base_url": "http://placeholder", "auth": SANDBOX_AUTH},
    "resources": [{
        "name": "events",
        "columns": {"name": {"data_type": "text", "nullable": False}},
        "endpoint": {
            "path": "/v1/events",
            "params": {"sort": "updated_at"},
            "paginator": {**CONTRACT_PAGES, "limit": 10},
            "incremental": {"cursor_path": "updated_at",
                            "start_param": "filter[updated_at][gte]"},
        },
    }],
}
NO_CURSOR = copy.deepcopy(CURSOR)
NO_CURSOR["resources"][0]["endpoint"]["incremental"] = None
CONFIGS = {"cursor": CURSOR, "no cursor": NO_CURSOR}


def event(key: str, at: str, name: str | None) -> str:
    return json.dumps({"id": key, "updated_at": at, "name": name})


def relaxed(config: dict[str, Any]) -> Any:
    """The resource with name nullable: what replay writes through."""
    raw = copy.deepcopy(config)
    raw["resources"][0]["columns"]["name"]["nullable"] = True
    return load_config(raw).resources[0]


def sync(server: RecordServer, lake: Path, config: dict[str, Any]) -> ResourceSummary:
    [summary] = run_sync(load_config(config, base_url=server.base_url), Credentials("k", "o"),
                         str(lake))
    assert summary.status == "ok", summary.error
    return summary


def waiting(lake: Path) -> list[str]:
    """The keys in the quarantine."""
    return Quarantine(Lake(str(lake)), "analytics").read("events")["key"].to_list()


def names(lake: Path) -> dict[str, str | None]:
    return dict(Lake(str(lake)).read("events").select("id", "name").iter_rows())


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_a_run_landing_a_newer_version_drops_the_quarantined_record(tmp_path: Path,
                                                                     kind: str) -> None:
    """e3 is set aside (null name); the API then serves it fixed: the run that lands it drops
    the quarantined e3 and says so; replay has nothing left to write."""
    config = CONFIGS[kind]
    with RecordServer() as server:
        server.put("events", [event("e1", T0, "a"), event("e3", T1, None)])
        assert sync(server, tmp_path, config).quarantined == 1
        assert waiting(tmp_path) == ["e3"]
        server.put("events", [event("e1", T0, "a"), event("e3", T2, "fixed")])
        second = sync(server, tmp_path, config)
    assert "1 quarantined record(s) dropped: a newer version of their key landed" in second.notes
    assert waiting(tmp_path) == []
    replayed = replay_quarantine(Lake(str(tmp_path)), relaxed(config), "analytics")
    assert (replayed.landed, replayed.stale) == (0, 0)
    assert names(tmp_path) == {"e1": "a", "e3": "fixed"}


def test_without_a_cursor_a_version_served_again_unchanged_supersedes_too(
        tmp_path: Path) -> None:
    """No cursor: e3 v0 lands, v1 (null name) is set aside, then the API serves v0 again. The
    merge changes nothing (same hash, ``_synced_at`` stays older than v1's quarantine), yet
    v1 is dropped: a replay must not write it over the API's current v0."""
    with RecordServer() as server:
        server.put("events", [event("e3", T0, "v0")])
        sync(server, tmp_path, NO_CURSOR)
        server.put("events", [event("e3", T1, None)])
        assert sync(server, tmp_path, NO_CURSOR).quarantined == 1
        server.put("events", [event("e3", T0, "v0")])
        third = sync(server, tmp_path, NO_CURSOR)
    assert (third.inserted, third.updated) == (0, 0)
    assert waiting(tmp_path) == []
    replay_quarantine(Lake(str(tmp_path)), relaxed(NO_CURSOR), "analytics")
    assert names(tmp_path) == {"e3": "v0"}


def _rewrite_e3(lake: Path, config: dict[str, Any], at: str) -> None:
    """Write e3 to the table as a writer that drops nothing from the quarantine would (one made
    before this rule, or whose drop failed after its data commit): a row written now."""
    spec = plan_resource(relaxed(config)).table
    TableWriter(Lake(str(lake)), "events", cursor_field=spec.cursor_field,
                columns=spec.columns).write([json.loads(event("e3", at, "row"))])


@pytest.mark.parametrize(("kind", "row_at", "stale"), [
    ("cursor", T2, True),       # a greater cursor
    ("cursor", T1, True),       # an equal cursor, written after the record was set aside
    ("cursor", T0, False),      # a smaller cursor: the record is newer, whenever written
    ("no cursor", T0, True),    # written after the record was set aside
])
def test_replay_skips_counts_and_drops_a_record_older_than_its_row(
        tmp_path: Path, kind: str, row_at: str, stale: bool) -> None:
    """e3 (T1, null name) is set aside, then its row is rewritten: replay skips and counts the
    record when the row is newer (and drops it from the quarantine), else writes it."""
    config = CONFIGS[kind]
    with RecordServer() as server:
        server.put("events", [event("e1", T0, "a"), event("e3", T1, None)])
        sync(server, tmp_path, config)
    _rewrite_e3(tmp_path, config, row_at)
    replayed = replay_quarantine(Lake(str(tmp_path)), relaxed(config), "analytics")
    assert (replayed.stale, replayed.landed) == ((1, 0) if stale else (0, 1))
    assert "1 skipped as stale" in str(replayed) if stale else "0 skipped as stale" in str(replayed)
    assert names(tmp_path)["e3"] == ("row" if stale else None)
    assert waiting(tmp_path) == []


def test_replay_writes_a_record_newer_than_the_row_it_replaces(tmp_path: Path) -> None:
    """No cursor: e3 v0 was written before v1 was set aside: v1 is the newer one, and replay
    writes it over v0."""
    with RecordServer() as server:
        server.put("events", [event("e3", T0, "v0")])
        sync(server, tmp_path, NO_CURSOR)
        server.put("events", [event("e3", T1, None)])
        sync(server, tmp_path, NO_CURSOR)
    replayed = replay_quarantine(Lake(str(tmp_path)), relaxed(NO_CURSOR), "analytics")
    assert (replayed.landed, replayed.stale) == (1, 0)
    assert names(tmp_path) == {"e3": None}


def test_a_row_from_the_same_batch_or_with_an_older_cursor_does_not_drop_a_record(
        tmp_path: Path) -> None:
    """The batch that sets a record aside does not drop it, whatever order its versions came
    in; a later batch with an older cursor (another slice's range) does not either; a later
    one with a cursor at least the record's does."""
    lake = Lake(str(tmp_path))
    quarantine = Quarantine(lake, "analytics")
    writer = table_writer(lake, plan_resource(load_config(CURSOR).resources[0]).table,
                          quarantine)
    bad, good = json.loads(event("e3", T1, None)), json.loads(event("e3", T1, "good"))
    writer.write([bad, good])
    assert waiting(tmp_path) == ["e3"]
    writer.write([json.loads(event("e3", T0, "older"))])
    assert waiting(tmp_path) == ["e3"]
    writer.write([json.loads(event("e3", T1, "same cursor, later batch"))])
    assert waiting(tmp_path) == [] and quarantine.dropped == 1


# -- generated: any history of one key, then a replay ---------------------------------------

# A version the API serves of e3: good (a name) or bad (a null name), told apart by ``note``.
VERSION = st.tuples(st.booleans(), st.integers(0, 2))


@settings(max_examples=30)  # real tables: ~0.1 s an example
@given(st.sampled_from(list(CONFIGS)), st.lists(VERSION, min_size=1, max_size=4))
# A version served again unchanged after a bad one was set aside: the merge leaves the row (and
# its _synced_at) as it was, so only the drop at landing knows the bad one is older.
@example("no cursor", [(True, 0), (False, 0), (True, 0)])
def test_after_any_history_a_replay_leaves_the_version_the_api_served_last(
        tmp_path_factory: pytest.TempPathFactory, kind: str,
        history: list[tuple[bool, int]]) -> None:
    """Runs one after another, each served e3's version of the moment (with a cursor, a change
    moves it; without, the API sends none, so a version served again is byte for byte an
    earlier one), some bad and set aside; then a replay through a config that takes them all.
    e3 is then what the API served last, and nothing of it waits in the quarantine."""
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    config = CONFIGS[kind]
    spec = plan_resource(load_config(config).resources[0]).table
    served: list[dict[str, Any]] = []
    second = 0
    for run, (good, note) in enumerate(history):
        version = {"id": "e3", "name": f"v{note}" if good else None, "note": note}
        if served and {k: v for k, v in served[-1].items() if k != "updated_at"} != version:
            second += 1  # the API stamps every change
        served.append({**version, "updated_at": f"2026-03-01T10:00:{second:02d}Z"}
                      if kind == "cursor" else version)
        quarantine = Quarantine(lake, "analytics", f"run {run}")
        writer = table_writer(lake, spec, quarantine)
        writer.write([dict(served[-1])])
        writer.finish()
    replay_quarantine(lake, relaxed(config), "analytics")
    [row] = lake.read("events").select("name", "note").to_dicts()
    assert row == {"name": served[-1]["name"], "note": served[-1]["note"]}
    assert Quarantine(lake, "analytics").read("events").is_empty()


def test_a_key_is_its_whole_key_whatever_its_type(tmp_path: Path) -> None:
    """An integer id matches its row's integer, and a child's key includes its parent's: the
    same task under another deal supersedes nothing."""
    lake = Lake(str(tmp_path))
    quarantine = Quarantine(lake, "analytics")
    strict = {"name": ColumnHint(data_type="text", nullable=False)}
    numbers = TableWriter(lake, "numbers", cursor_field=None, columns=strict,
                          set_aside=quarantine.add, landed=quarantine.superseded)
    numbers.write([{"id": 5, "name": None}, {"id": 6, "name": "x"}])
    numbers.write([{"id": 5, "name": "later"}])
    assert quarantine.read("numbers").is_empty()

    tasks = TableWriter(lake, "deal_tasks", cursor_field=None, columns=strict,
                        parent_key=["_deals_id"], set_aside=quarantine.add,
                        landed=quarantine.superseded)
    tasks.write([{"id": "t1", "_deals_id": "d1", "name": None}])
    tasks.write([{"id": "t1", "_deals_id": "d2", "name": "under d2"}])
    assert quarantine.read("deal_tasks")["key"].to_list() == ["t1"]
    tasks.write([{"id": "t1", "_deals_id": "d1", "name": "under d1"}])
    assert quarantine.read("deal_tasks").is_empty() and quarantine.dropped == 2

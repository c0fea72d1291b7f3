"""A bad parent is one record, never the child resource (children.py, ``on_bad_parent``).

A parent whose resolve field names no child (null, empty, ``.`` or ``..``) or whose child
endpoint answers 404 is named and skipped (or, with ``fail``, fails the child once every other
parent's children are committed); every parent answering 404 is a wrong path. Against the real
sandbox: each task's deal's tasks (``/v1/deals/{deal_id}/tasks`` resolving ``tasks.deal_id``):
the sandbox's tasks include some without a deal, and deleting deals makes their tasks' child
requests answer 404.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Credentials, Lake, load_config, run_sync
from analytics_client.config.schemas import CONTRACT_COLUMNS, ColumnHint
from analytics_client.lake.tables import TableWriter
from analytics_client.read.children import request_for, unresolvable
from analytics_client.read.plan import Parent, plan_resource
from analytics_client.state.markpolicy import parent_app_id
from analytics_sandbox import SandboxTransport, World, serve
from tests.groundtruth import fetch_truth
from tests.support import CONTRACT_PAGES, SANDBOX_CLIENT, sync

COUNTS = {"tags": 5, "users": 10, "deals": 30, "pages": 5, "tasks": 80}
CHILD = "deal_siblings"


def config(path: str = "/v1/deals/{deal_id}/tasks", **child: Any) -> dict[str, Any]:
    """The seed's tasks (incremental) and, per task, the tasks of its deal."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resources"] = [r for r in raw["resources"] if r["name"] == "tasks"]
    raw["resources"].append({
        "name": CHILD,
        "endpoint": {"path": path,
                     "params": {"deal_id": {"type": "resolve", "resource": "tasks",
                                            "field": "deal_id"}},
                     "paginator": {**CONTRACT_PAGES, "limit": 5}, "incremental": None},
        "columns": copy.deepcopy(CONTRACT_COLUMNS["tasks"]), **child})
    return raw


def child_requests(sandbox: Any) -> int:
    return sum(sandbox.stats()["requests"].get("deals/tasks", {}).values())


def world_with_bad_parents(sandbox: Any) -> tuple[set[str], set[str]]:
    """Deletes two deals that tasks name. Returns the ids of the tasks without a deal and of
    the tasks whose deal is gone (their child requests answer 404)."""
    tasks = fetch_truth(sandbox.base_url, "tasks")
    named = sorted({t["deal_id"] for t in tasks if t.get("deal_id")})
    gone = set(sandbox.delete("deals", named[:2]))
    assert len(gone) == 2
    return ({t["id"] for t in tasks if not t.get("deal_id")},
            {t["id"] for t in tasks if t.get("deal_id") in gone})


def truth(sandbox: Any) -> set[tuple[str, str]]:
    """(task id, deal id) of every task of a deal that a task names and that still exists."""
    deals = {d["id"] for d in fetch_truth(sandbox.base_url, "deals")}
    return {(t["id"], t["deal_id"]) for t in fetch_truth(sandbox.base_url, "tasks")
            if t.get("deal_id") in deals}


def keys(lake: Path) -> set[tuple[str, str]]:
    table = Lake(str(lake)).read(CHILD)
    return set(table.select("id", "_tasks_deal_id").iter_rows())


def test_bad_parents_among_many_are_skipped_and_named_and_the_good_children_land(
        tmp_path: Path) -> None:
    """Tasks without a deal and tasks of deleted deals are skipped, each kind counted and named
    in the summary; every other task's deal's tasks land; the parent version moves, so a rerun
    with nothing changed asks no child."""
    with serve(World(seed=31, counts=COUNTS)) as sandbox:
        no_deal, deal_gone = world_with_bad_parents(sandbox)
        assert no_deal and deal_gone
        result = sync(sandbox, tmp_path, config=config())
        child = result[CHILD]
        assert child.status == "ok", child.error
        assert keys(tmp_path) == truth(sandbox) != set()
        [note] = [n for n in child.notes if n.startswith("skipped")]
        bad = len(no_deal) + len(deal_gone)
        assert f"skipped {bad} tasks record(s) whose {CHILD} could not be read" in note
        assert f"{len(no_deal)} whose 'deal_id' names no {CHILD}" in note
        assert f"{len(deal_gone)} whose {CHILD} answered 404" in note
        assert repr(sorted(deal_gone)[0]) in note or len(deal_gone) > 5
        assert "on_bad_parent: skip" in note and f"--full-refresh {CHILD}" in note
        lake = Lake(str(tmp_path))
        assert lake.mark(CHILD, parent_app_id("analytics")) == lake.version("tasks")

        seen = child_requests(sandbox)
        again = sync(sandbox, tmp_path, config=config())
        assert again[CHILD].status == "ok"
        assert child_requests(sandbox) == seen  # skipped parents wait for a change too


def test_on_bad_parent_fail_commits_the_good_children_and_reads_the_same_parents_again(
        tmp_path: Path) -> None:
    """``fail``: the child fails naming the bad parents and the setting; the good children are
    committed; the parent version stays, so the next run (skip) reads every parent again."""
    with serve(World(seed=32, counts=COUNTS)) as sandbox:
        no_deal, deal_gone = world_with_bad_parents(sandbox)
        result = sync(sandbox, tmp_path, config=config(on_bad_parent="fail"))
        assert result["tasks"].status == "ok"
        child = result[CHILD]
        assert child.status == "failed"
        error = child.error or ""
        assert "on_bad_parent is 'fail'" in error and "set on_bad_parent: skip" in error
        assert f"{len(no_deal) + len(deal_gone)} tasks record(s)" in error
        assert repr(sorted(no_deal | deal_gone)[0]) in error or len(no_deal | deal_gone) > 5
        assert keys(tmp_path) == truth(sandbox)  # the good children were committed
        assert Lake(str(tmp_path)).mark(CHILD, parent_app_id("analytics")) is None

        asked = child_requests(sandbox)
        again = sync(sandbox, tmp_path, config=config())
        assert again[CHILD].status == "ok", again[CHILD].error
        assert child_requests(sandbox) - asked == asked  # the same parents, read again
        assert keys(tmp_path) == truth(sandbox)


def test_every_parent_answering_404_is_a_wrong_path_whatever_on_bad_parent_says(
        tmp_path: Path) -> None:
    """A path the API does not have: the child fails saying the path is likely wrong, how
    ``response_actions`` ignore a 404 and what on_bad_parent does; with that response action
    every parent simply has no children."""
    with serve(World(seed=33, counts=COUNTS)) as sandbox:
        wrong = config("/v1/deals/{deal_id}/taskz")
        child = sync(sandbox, tmp_path, config=wrong)[CHILD]
        assert child.status == "failed"
        error = child.error or ""
        assert "HTTP 404" in error and "'/v1/deals/{deal_id}/taskz' is likely wrong" in error
        assert "response_actions: [{status_code: 404, action: ignore}]" in error
        assert "on_bad_parent" in error
        wrong["resources"][1]["endpoint"]["response_actions"] = [
            {"status_code": 404, "action": "ignore"}]
        ignored = sync(sandbox, tmp_path, config=wrong)[CHILD]
        assert (ignored.status, ignored.inserted) == ("ok", 0), ignored.error


# -- generated: which parents are bad, and how ---------------------------------------------

WORLD = World(seed=34, counts={"tags": 3, "users": 5, "deals": 12, "pages": 3, "tasks": 40})
DEALS = sorted(d["id"] for d in WORLD.truth("deals"))
GONE = WORLD.delete("deals", DEALS[:3])
LIVE = DEALS[3:]
# What a parent's ``ref`` may be: a live deal, a deleted one (404), or a value naming no child.
REF = st.sampled_from([*LIVE, *GONE, None, "", ".", ".."])


def _child_config(on_bad_parent: str) -> dict[str, Any]:
    return {"client": {**SANDBOX_CLIENT, "base_url": "http://sandbox"},
            "resources": [
                {"name": "refs", "endpoint": {"path": "/v1/refs"}},
                {"name": "ref_tasks", "on_bad_parent": on_bad_parent,
                 "endpoint": {"path": "/v1/deals/{resources.refs.ref}/tasks",
                              "paginator": {**CONTRACT_PAGES, "limit": 10}}}]}


@settings(max_examples=40)  # a sync each (~50 ms): the suite's budget on 2 cores
@given(st.lists(REF, min_size=1, max_size=8), st.sampled_from(["skip", "fail"]))
def test_any_mix_of_bad_parents_lands_the_good_children_and_names_the_bad(
        tmp_path_factory: pytest.TempPathFactory, refs: list[str | None],
        on_bad_parent: str) -> None:
    """A parent table of records whose ``ref`` names a live deal, a deleted one, or nothing
    (null, empty, '.', '..': '/v1/deals/../tasks' would be every task): the child's table holds
    exactly the live deals' tasks, each under its parent; the bad parents are counted in the
    note or the error; two or more parents asked that all answer 404 are a wrong path."""
    lake = tmp_path_factory.mktemp("lake")
    parents = [{"id": f"p{n}", "ref": ref} for n, ref in enumerate(refs)]
    TableWriter(Lake(str(lake)), "refs", cursor_field=None,
                columns={"ref": ColumnHint(data_type="text")}).write(list(parents))
    transport = SandboxTransport(world=WORLD)
    settings = transport.app.settings  # type: ignore[attr-defined]
    source = load_config(_child_config(on_bad_parent))
    [summary] = run_sync(source, Credentials(settings.api_key, settings.organization_id),
                         str(lake), resources=["ref_tasks"], transport=transport)
    unresolved = [p for p in parents if p["ref"] in (None, "", ".", "..")]
    missing = [p for p in parents if p["ref"] in GONE]
    asked = len(parents) - len(unresolved)
    tasks = WORLD.truth("tasks")
    want = {(t["id"], p["ref"]) for p in parents if p["ref"] in LIVE
            for t in tasks if t.get("deal_id") == p["ref"]}
    table = Lake(str(lake))
    got = set(table.read("ref_tasks").select("id", "_refs_ref").iter_rows()) \
        if table.version("ref_tasks") is not None else set()
    assert got == want
    if len(missing) >= 2 and len(missing) == asked:
        assert summary.status == "failed" and "is likely wrong" in (summary.error or "")
    elif not unresolved and not missing:
        assert summary.status == "ok" and not summary.notes
    elif on_bad_parent == "fail":
        assert summary.status == "failed"
        assert f"{len(unresolved) + len(missing)} refs record(s)" in (summary.error or "")
    else:
        assert summary.status == "ok", summary.error
        [note] = summary.notes
        assert note.startswith(f"skipped {len(unresolved) + len(missing)} refs record(s)")
        assert all(repr(p["id"]) in note for p in (unresolved + missing)[:5])


def test_a_resolve_field_without_a_column_fails_saying_to_check_or_declare_it(
        tmp_path: Path) -> None:
    """Every parent so far sent ``ref`` as null (or not at all), undeclared: the parent table
    has no such column, which is also what a misspelt field looks like; the child fails naming
    the column and both ways out."""
    TableWriter(Lake(str(tmp_path)), "refs", cursor_field=None).write(
        [{"id": "p0", "ref": None}, {"id": "p1"}])
    [summary] = run_sync(load_config(_child_config("skip")), Credentials("k", "o"),
                         str(tmp_path), resources=["ref_tasks"],
                         transport=SandboxTransport(world=WORLD))
    assert summary.status == "failed"
    error = summary.error or ""
    assert "its table has no column 'ref'" in error and "Check the field's name" in error
    assert "declare it in refs's columns (e.g. ref: {data_type: text})" in error


# -- one parent value, one request -----------------------------------------------------------

_KIDS = plan_resource(load_config({
    "client": {**SANDBOX_CLIENT, "base_url": "http://api.test"},
    "resources": [{"name": "deals", "endpoint": {"path": "/v1/deals"}},
                  {"name": "kids", "endpoint": {
                      "path": "/v1/deals/{deal_id}/kids",
                      "params": {"deal_id": {"type": "resolve", "resource": "deals",
                                             "field": "id"},
                                 "of": "{resources.deals.x}"}}}]}).resources[1])
TEMPLATE = _KIDS.request
assert _KIDS.parent is not None
PARENT: Parent = _KIDS.parent
VALUE = st.one_of(st.none(), st.text(), st.integers(), st.booleans(),
                  st.sampled_from(["", ".", "..", "a/b", "%2F", "?q=1", "#x", " "]))


@given(VALUE, VALUE)
def test_a_parent_value_is_one_path_segment_or_names_no_child(path_value: Any,
                                                              param_value: Any) -> None:
    """Whatever a parent row holds, its request is one path segment that decodes to the value
    (and the query parameter its text), or the row names no child: null or empty anywhere, '.'
    or '..' in the path (a URL resolves them away)."""
    row = {"id": "d1", "x": param_value}
    row["id"] = path_value
    field = unresolvable(TEMPLATE, PARENT, row)
    texts = {k: None if v is None else str(v).lower() if isinstance(v, bool) else str(v)
             for k, v in row.items()}
    if texts["id"] in (None, "", ".", ".."):
        assert field == "id"
        return
    if texts["x"] in (None, ""):
        assert field == "x"
        return
    assert field is None
    request, extra = request_for(TEMPLATE, PARENT, row, "kids")
    url = httpx.URL("http://api.test" + request.path)
    segments = url.raw_path.decode("ascii").split("?")[0].split("/")
    assert segments[:3] == ["", "v1", "deals"] and segments[4:] == ["kids"]
    assert unquote(segments[3]) == texts["id"]
    assert request.params == {"of": texts["x"]}
    assert extra == {"_deals_id": path_value, "_deals_x": param_value}

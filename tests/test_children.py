"""Parent/child resources (children.py): deals and their tasks from the real sandbox into Delta.

The child endpoint is ``/v1/deals/{deal_id}/tasks``; the truth is tests/groundtruth.py's
independent view (the tasks whose ``deal_id`` names each deal). Request counts come from the
sandbox's own per-endpoint stats.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Lake, load_config
from analytics_client.config.model import parent_bindings, parent_of
from analytics_client.config.schemas import CONTRACT_COLUMNS
from analytics_client.core.errors import ConfigError
from analytics_sandbox import World, serve
from tests.groundtruth import assert_children_equal_truth, fetch_truth
from tests.support import (
    CONTRACT_PAGES,
    SANDBOX_CLIENT,
    assert_lake_equals_truth,
    sync,
)

COUNTS = {"tags": 20, "users": 30, "deals": 120, "pages": 5, "tasks": 300}
RESOLVE = {"deal_id": {"type": "resolve", "resource": "deals", "field": "id"}}


def config(path: str = "/v1/deals/{deal_id}/tasks", params: dict[str, Any] | None = None,
           **child: Any) -> dict[str, Any]:
    """The seed's deals (incremental, keyset walk) and a dlt-style child of them."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resources"] = [r for r in raw["resources"] if r["name"] == "deals"]
    raw["resources"].append({
        "name": "deal_tasks",
        "endpoint": {"path": path, "params": RESOLVE if params is None else params,
                     "paginator": {**CONTRACT_PAGES, "limit": 5}, "incremental": None},
        # dlt column hints, as the seed gives its resources: the contract's types for tasks
        "columns": copy.deepcopy(CONTRACT_COLUMNS["tasks"]),
        "include_from_parent": ["name"], **child})
    return raw


def child_requests(sandbox: Any) -> int:
    return sum(sandbox.stats()["requests"].get("deals/tasks", {}).values())


def assert_children_match(sandbox: Any, lake: Path) -> None:
    assert_children_equal_truth(Lake(str(lake)).read("deal_tasks"),
                                fetch_truth(sandbox.base_url, "deals"),
                                fetch_truth(sandbox.base_url, "tasks"),
                                parent="deals", child="tasks", link="deal_id",
                                included=("name",))


def pages_per_deal(sandbox: Any, deal_ids: set[str]) -> int:
    """The child requests reading ``deal_ids`` take: one per 5 tasks, at least one each."""
    tasks = fetch_truth(sandbox.base_url, "tasks")
    per = {d: 0 for d in deal_ids}
    for task in tasks:
        if task.get("deal_id") in per:
            per[task["deal_id"]] += 1
    return sum(max(1, -(-n // 5)) for n in per.values())


@pytest.mark.parametrize("form", ["resolve", "resources placeholder"])
def test_an_incremental_run_reads_the_children_of_changed_deals_only(tmp_path: Path,
                                                                     form: str) -> None:
    """First run: every deal's tasks; a rerun without changes: no child request; after N deals
    change: exactly their children. The tables equal the truth after each run."""
    raw = config() if form == "resolve" else config("/v1/deals/{resources.deals.id}/tasks", {})
    with serve(World(seed=21, counts=COUNTS)) as sandbox:
        deals = {d["id"] for d in fetch_truth(sandbox.base_url, "deals")}
        first = sync(sandbox, tmp_path, config=raw)
        assert first["deal_tasks"].status == "ok", first
        assert child_requests(sandbox) == pages_per_deal(sandbox, deals)
        assert_lake_equals_truth(sandbox, tmp_path, ("deals",))
        assert_children_match(sandbox, tmp_path)

        seen = child_requests(sandbox)
        again = sync(sandbox, tmp_path, config=raw)
        # The API's clock proved the deals' mark: one request, nothing read again, no child.
        assert (again["deals"].pages, again["deals"].rows_fetched) == (1, 0)
        assert child_requests(sandbox) - seen == 0

        changed = sandbox.advance(updates={"deals": 7}, resources=["deals"],
                                  seed=5)["deals"]["updated"]
        seen = child_requests(sandbox)
        third = sync(sandbox, tmp_path, config=raw)
        assert third["deals"].updated == 7
        assert child_requests(sandbox) - seen == pages_per_deal(sandbox, set(changed))
        assert_lake_equals_truth(sandbox, tmp_path, ("deals",))
        assert_children_match(sandbox, tmp_path)


def test_a_child_changed_without_its_parent_waits_for_a_full_refresh(tmp_path: Path) -> None:
    """The documented limit (dlt's too): tasks changed alone are read again only when their
    deal changes or on a full refresh of the child, which then equals the truth."""
    raw = config()
    with serve(World(seed=22, counts=COUNTS)) as sandbox:
        sync(sandbox, tmp_path, config=raw)
        sandbox.advance(updates={"tasks": 20}, resources=["tasks"], seed=6)
        seen = child_requests(sandbox)
        sync(sandbox, tmp_path, config=raw)
        assert child_requests(sandbox) - seen == 0
        with pytest.raises(AssertionError):
            assert_children_match(sandbox, tmp_path)
        refreshed = sync(sandbox, tmp_path, config=raw, full_refresh=["deal_tasks"])
        assert refreshed["deal_tasks"].updated > 0
        assert_children_match(sandbox, tmp_path)


def test_a_failed_child_read_reads_the_same_parents_again(tmp_path: Path) -> None:
    """The parent version moves only after every child is committed: a failure, then a fixed
    config, and the next run reads every parent's children."""
    with serve(World(seed=23, counts=COUNTS)) as sandbox:
        broken = config(include_from_parent=["tag_ids"])  # a list: cannot go into a column name
        result = sync(sandbox, tmp_path, config=broken)
        assert result["deals"].status == "ok"
        assert result["deal_tasks"].status == "failed"
        assert "tag_ids" in (result["deal_tasks"].error or "")
        seen = child_requests(sandbox)
        sync(sandbox, tmp_path, config=config())
        deals = {d["id"] for d in fetch_truth(sandbox.base_url, "deals")}
        assert child_requests(sandbox) - seen == pages_per_deal(sandbox, deals)
        assert_children_match(sandbox, tmp_path)


def test_including_a_json_field_of_the_parent_fails_the_child_saying_what_to_do(
        tmp_path: Path) -> None:
    """Without column hints, custom_fields (objects) is kept as JSON text in the parent's
    table (custom_fields__json): not includable yet, and the error says so (not 'no
    column'); the parent's rows stand."""
    raw = config(include_from_parent=["custom_fields"])
    del raw["resources"][0]["columns"]  # a user's own resource: types inferred
    with serve(World(seed=29, counts=COUNTS)) as sandbox:
        result = sync(sandbox, tmp_path, config=raw)
        assert result["deals"].status == "ok"
        assert result["deal_tasks"].status == "failed"
        error = result["deal_tasks"].error or ""
        assert "'custom_fields' is kept as JSON text" in error and "remove it" in error
        assert len(Lake(str(tmp_path)).read("deals")) == COUNTS["deals"]


def test_a_child_id_repeated_under_two_parents_is_two_rows(tmp_path: Path) -> None:
    """The child table's key is (id, _deals_id): the same task under another deal stays."""
    from analytics_client.lake.tables import TableWriter

    writer = TableWriter(Lake(str(tmp_path)), "deal_tasks", primary_key="id", cursor_field=None,
                         parent_key=["_deals_id"])
    rows = [{"id": "t1", "_deals_id": "d1", "v": 1}, {"id": "t1", "_deals_id": "d2", "v": 2}]
    writer.write(rows)
    writer.write([{"id": "t1", "_deals_id": "d2", "v": 3}])
    table = Lake(str(tmp_path)).read("deal_tasks").sort("_deals_id")
    assert table.select("_deals_id", "v").rows() == [("d1", 1), ("d2", 3)]


# -- config parsing -------------------------------------------------------------------------

NAME = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)


def _source(child: dict[str, Any]) -> dict[str, Any]:
    return {"client": {**SANDBOX_CLIENT, "base_url": "https://api.example.com"},
            "resources": [{"name": "deals", "endpoint": {"path": "/v1/deals"}},
                          {"name": "kids", **child}]}


@given(NAME, NAME, st.booleans())
def test_both_dlt_forms_bind_the_same_parent_field(param: str, field: str,
                                                  in_params: bool) -> None:
    """``{param}`` with a resolve param and ``{resources.deals.<field>}`` name the same
    (parent, field); the resolve param is not sent as a query parameter."""
    resolve = load_config(_source({"endpoint": {
        "path": f"/v1/deals/{{{param}}}/kids",
        "params": {param: {"type": "resolve", "resource": "deals", "field": field}}}}))
    kid = resolve.resources[1]
    assert parent_bindings(kid) == [(param, "deals", field)]
    assert kid.endpoint.params == {}
    placeholder_text = f"{{resources.deals.{field}}}"
    endpoint: dict[str, Any] = ({"path": "/v1/kids", "params": {"of": placeholder_text}}
                                if in_params else {"path": f"/v1/deals/{placeholder_text}/kids"})
    placeholder = load_config(_source({"endpoint": endpoint})).resources[1]
    assert parent_bindings(placeholder) == [(f"resources.deals.{field}", "deals", field)]
    assert parent_of(kid) == parent_of(placeholder) == "deals"


@pytest.mark.parametrize(("child", "named"), [
    ({"endpoint": {"path": "/v1/kids", "params": {"d": {"type": "resolve", "resource": "deals",
                                                       "field": "id"}}}},
     "a resolve param must be bound in the path"),
    ({"endpoint": {"path": "/v1/{resources.nope.id}/kids"}},
     "parent resource 'nope' is not configured"),
    ({"endpoint": {"path": "/v1/{resources.deals.id}/{resources.users.id}"}},
     "several parent resources"),
    ({"endpoint": {"path": "/v1/kids"}, "include_from_parent": ["id"]},
     "has no parent resource"),
    ({"endpoint": {"path": "/v1/deals/{resources.deals.id}/kids"},
      "write_disposition": "append"}, "is not supported for it"),
    ({"endpoint": {"path": "/v1/deals/{deal}/kids"}}, "{deal} is not a known placeholder"),
    ({"endpoint": {"path": "/v1/kids", "params": {"x": {"type": "lookup"}}}},
     "must be resolve or incremental"),
])
def test_parent_child_config_mistakes_are_named(child: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_source(child))
    assert any(named in p for p in caught.value.problems), caught.value.problems


def test_check_does_not_ask_a_child_alone() -> None:
    """A child's path needs a parent record: check says so instead of asking a broken URL."""
    from analytics_client import Credentials
    from analytics_client.run.check import check_source

    with serve(World(seed=24, counts=COUNTS)) as sandbox:
        source = load_config(config(), base_url=sandbox.base_url)
        results = check_source(source, Credentials(sandbox.api_key, sandbox.organization_id))
        assert [(r.resource, r.ok) for r in results] == [("deals", True), ("deal_tasks", True)]
        assert "read once per deals record" in results[1].message
        assert child_requests(sandbox) == 0


class _PairingTransport(httpx.BaseTransport):
    """Counts child requests in flight; holds each until three are in flight (or 0.2 s), so
    requests overlap as far as the client lets them, and a limit above two shows."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.now = self.most = 0
        self.changed = threading.Condition()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/tasks"):
            return self.inner.handle_request(request)
        with self.changed:
            self.now += 1
            self.most = max(self.most, self.now)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.now >= 3, timeout=0.2)
        try:
            return self.inner.handle_request(request)
        finally:
            with self.changed:
                self.now -= 1


def test_children_are_read_in_parallel_within_client_max_concurrency(tmp_path: Path) -> None:
    """Eight child threads, ``client.max_concurrency`` 2: never more than two in flight."""
    from analytics_client import Credentials, run_sync
    from analytics_sandbox import SandboxTransport

    world = World(seed=25, counts={"tags": 5, "users": 10, "deals": 24, "pages": 5, "tasks": 60})
    transport = _PairingTransport(SandboxTransport(world=world))
    raw = config()
    raw["resources"][1]["endpoint"]["concurrency"] = 8
    raw["client"]["max_concurrency"] = 2
    source = load_config(raw, base_url="http://sandbox")
    app = transport.inner.app  # type: ignore[attr-defined]
    credentials = Credentials(app.settings.api_key, app.settings.organization_id)
    summaries = run_sync(source, credentials, str(tmp_path), transport=transport)
    assert [s.status for s in summaries] == ["ok", "ok"], summaries
    assert 1 <= transport.most <= 2


def test_processing_steps_run_on_child_records_after_the_parent_fields(tmp_path: Path) -> None:
    """dlt's order: a child's records get their parent fields, then its steps run. A filter on
    an included parent field and a map that reads it: the table holds exactly the truth's
    tasks of deals whose name sorts before "m", each with the map's column."""
    raw = config()
    raw["resources"][1]["processing_steps"] = [
        {"filter": lambda task: str(task["_deals_name"]).lower() < "m"},
        {"map": lambda task: {**task, "deal_initial": str(task["_deals_name"])[:1]}},
    ]
    with serve(World(seed=22, counts=COUNTS)) as sandbox:
        result = sync(sandbox, tmp_path, config=raw)
        assert result["deal_tasks"].status == "ok", result
        deals = {d["id"]: d for d in fetch_truth(sandbox.base_url, "deals")}
        want = {(t["id"], t["deal_id"]) for t in fetch_truth(sandbox.base_url, "tasks")
                if t.get("deal_id") in deals and str(deals[t["deal_id"]]["name"]).lower() < "m"}
        table = Lake(str(tmp_path)).read("deal_tasks")
        got = {(r["id"], r["_deals_id"]): r for r in table.to_dicts()}
        assert want and set(got) == want
        assert all(r["deal_initial"] == str(deals[d]["name"])[:1] for (_, d), r in got.items())
        assert result["deal_tasks"].rows_fetched > len(want)  # the filter dropped some


def test_a_stop_while_children_are_read_keeps_them_and_the_rerun_completes(tmp_path: Path) -> None:
    """Ctrl-C during a child read (the flag on_signals sets): the children fetched so far are
    committed, the resource ends "stopped" (README, Stopping a run), the parent version does not
    move, and the next run reads the same parents again and ends equal to the truth."""
    from analytics_client.core.stop import on_signals
    from analytics_client.state.markpolicy import parent_app_id

    with serve(World(seed=24, counts=COUNTS)) as sandbox:
        assert sync(sandbox, tmp_path, config=config(), resources=["deals"])["deals"].status == "ok"
        with on_signals() as flag:
            asked = [0]

            class StopsAfter30ChildRequests(httpx.HTTPTransport):
                def handle_request(self, request: httpx.Request) -> httpx.Response:
                    if request.url.path.endswith("/tasks"):
                        asked[0] += 1
                        if asked[0] == 30:
                            flag.request("a test's Ctrl-C")
                    return super().handle_request(request)

            stopped = sync(sandbox, tmp_path, config=config(), resources=["deal_tasks"],
                           transport=StopsAfter30ChildRequests())["deal_tasks"]
        assert stopped.status == "stopped", stopped.error
        lake = Lake(str(tmp_path))
        assert 0 < stopped.inserted == lake.row_count("deal_tasks")
        assert lake.mark("deal_tasks", parent_app_id("analytics")) is None
        again = sync(sandbox, tmp_path, config=config())
        assert again["deal_tasks"].status == "ok", again["deal_tasks"].error
        assert_children_match(sandbox, tmp_path)

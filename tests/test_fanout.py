"""The fan-out deployment end to end: a real `prefect server`, TWO process workers, the sandbox.

`prefect deployment run analytics-sync-fanout/fanout --watch` starts one flow run of
`analytics-sync/per-resource` per resource; both workers (each capped at two runs with
`--limit 2`, so that neither can take everything) must run some. The tables must equal the
sandbox's truth, the marks must be exactly one block per pipeline and resource, a second
fan-out after an advance must be incremental, and a fan-out with a failing child must fail
naming it. Each worker locks in its own directory, as on two machines: a resource held by
another flow run (or by two fan-outs at once) is kept apart by the Prefect server's global
concurrency limit per pipeline and resource alone, and a child resource's run starts after its
parent's ended. Every server, worker and flow-run process is stopped with its process group.

FANOUT_TEST_SCALE=N multiplies the sandbox's record counts (for measuring, not for CI).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from analytics_client import DEFAULT_CONFIG
from analytics_client.orchestration.locks import limit_name
from tests.prefect_stack import Stack, background, deployed_stack, report
from tests.support import assert_lake_equals_truth
from tests.test_children import assert_children_match
from tests.test_children import config as child_config

SCALE = int(os.environ.get("FANOUT_TEST_SCALE", "1"))
COUNTS = {name: n * SCALE for name, n in
          {"tags": 20, "users": 20, "deals": 60, "pages": 30, "tasks": 40}.items()}
WORKERS = [("worker-a", ("--limit", "2")), ("worker-b", ("--limit", "2"))]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[Stack]:
    started = time.monotonic()
    with deployed_stack(tmp_path_factory.mktemp("fanout"), COUNTS, WORKERS) as s:
        yield s
    report(request, f"fan-out test wall time: {time.monotonic() - started:.1f} s "
                    "(server, 2 workers, fan-outs)")


def _api(s: Stack, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{s.env['PREFECT_API_URL']}/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _children(s: Stack) -> list[dict[str, Any]]:
    """Flow runs of the per-resource deployment (tagged fanout-child in prefect.yaml)."""
    return list(_api(s, "flow_runs/filter", {
        "flow_runs": {"tags": {"all_": ["fanout-child"]}}, "limit": 200}))


def _fanout(s: Stack, *params: str, check: bool = True) -> tuple[int, float, int]:
    """One watched fan-out; returns sandbox requests, seconds and the command's exit status."""
    started, before = time.monotonic(), s.requests()
    result = s.prefect("deployment", "run", "analytics-sync-fanout/fanout", *params, "--watch",
                       "--watch-timeout", "600", timeout=700, check=check)
    return s.requests() - before, time.monotonic() - started, result.returncode


def _ran(s: Stack, worker: str) -> set[str]:
    """Flow run ids a worker's log says it started: submitted and not aborted.

    Both workers may try the same scheduled run ("Worker 'w' submitting flow run 'id'"); the
    server lets one move it to Pending and the other logs "Aborted submission of flow run
    'id'" (or fails to update its state): prefect/workers/base.py.
    """
    text = s.worker_log_path(worker).read_text(errors="replace")
    run_id = r"'([0-9a-f-]{36})'"
    submitted = set(re.findall(rf"submitting flow run {run_id}", text))
    lost = set(re.findall(rf"(?:Aborted submission of|Failed to update state of) flow run "
                          rf"{run_id}", text))
    return submitted - lost


def _marks(s: Stack) -> list[tuple[str, str, str]]:
    """(block name, pipeline, resource) of every Analytics Sync Mark block document."""
    documents = _api(s, "block_documents/filter", {
        "block_types": {"slug": {"any_": ["analytics-sync-mark"]}}, "limit": 200})
    return sorted((d["name"], d["data"]["pipeline"], d["data"]["resource"]) for d in documents)


def test_fanout_spreads_over_two_workers_and_matches_the_truth(
        stack: Stack, request: pytest.FixtureRequest) -> None:
    """Run 1 reads all five resources on both workers; run 2, after an advance, is incremental."""
    lake = stack.checkout / "data" / "lake"
    first, fanout_seconds, _ = _fanout(stack)
    assert_lake_equals_truth(stack.sandbox, lake, tuple(COUNTS))
    children = _children(stack)
    assert sorted(c["parameters"]["resources"][0] for c in children) == sorted(COUNTS)
    assert all(c["state_type"] == "COMPLETED" for c in children), children
    ids = {c["id"] for c in children}
    by_worker = {name: _ran(stack, name) & ids for name, _ in WORKERS}
    assert all(by_worker.values()), f"a worker ran no child run: {by_worker}"
    assert set().union(*by_worker.values()) == ids, (by_worker, stack.worker_log())
    assert not set.intersection(*by_worker.values()), (by_worker, stack.worker_log())
    expected = sorted((f"analytics--{r}", "analytics", r) for r in COUNTS)
    assert _marks(stack) == expected

    summary = _api(stack, "artifacts/filter", {
        "artifacts": {"key": {"any_": ["analytics-sync-fanout-summary"]}}})
    assert summary, "the fan-out left no summary artifact"
    rows = [line for line in summary[0]["data"].splitlines() if line.startswith("| analytics |")]
    assert sorted(line.split(" | ")[2] for line in rows) == sorted(COUNTS), summary[0]["data"]

    stack.sandbox.advance(updates=4, creates=3, seed=7)
    second, seconds, _ = _fanout(stack)
    assert_lake_equals_truth(stack.sandbox, lake, tuple(COUNTS))
    assert 0 < second < first / 2, (first, second)
    assert _marks(stack) == expected  # the same five blocks, moved on: none added

    report(request, f"{sum(COUNTS.values()):,} records, 5 resources: fan-out "
                    f"{fanout_seconds:.1f} s ({first} requests), incremental fan-out "
                    f"{seconds:.1f} s ({second} requests); child runs per worker: "
                    f"{', '.join(f'{k} {len(v)}' for k, v in by_worker.items())}")


@pytest.mark.skipif(not os.environ.get("FANOUT_TEST_MEASURE"),
                    reason="a measurement: FANOUT_TEST_MEASURE=1 (with FANOUT_TEST_SCALE=N)")
def test_measure_fanout_against_one_flow_run(stack: Stack, request: pytest.FixtureRequest) -> None:
    """Full reads into fresh pipelines and lakes: the fan-out, then one run of the same work."""
    times = {}
    for name, deployment in (("fanout", "analytics-sync-fanout/fanout"),
                             ("single", "analytics-sync/incremental")):
        started = time.monotonic()
        stack.prefect("deployment", "run", deployment, "--param", f"pipeline=measure-{name}",
                      "--param", f"lake_uri=./data/measure-{name}", "--watch",
                      "--watch-timeout", "1800", timeout=1900)
        times[name] = time.monotonic() - started
        assert_lake_equals_truth(stack.sandbox, stack.checkout / "data" / f"measure-{name}",
                                 tuple(COUNTS))
    report(request, f"measured: {sum(COUNTS.values()):,} records, 5 resources: fan-out over "
                    f"2 workers {times['fanout']:.1f} s, one flow run {times['single']:.1f} s")


def test_a_failing_child_fails_the_fanout_naming_it(stack: Stack) -> None:
    """Per organization: one organization's secret block is missing; the fan-out fails, names it."""
    organizations = ('organizations=[{"pipeline": "org-ok", "lake_uri": "./data/org-ok"}, '
                     '{"pipeline": "org-bad", "lake_uri": "./data/org-bad", '
                     '"api_key_block": "no-such-block"}]')
    _, _, status = _fanout(stack, "--param", "per=organization", "--param", organizations,
                           check=False)
    assert status == 1
    runs = _api(stack, "flow_runs/filter", {
        "flows": {"name": {"any_": ["analytics-sync-fanout"]}},
        "sort": "EXPECTED_START_TIME_DESC", "limit": 1})
    message = runs[0]["state"]["message"]
    assert runs[0]["state_type"] == "FAILED" and "1 of 2 child flow runs" in message, message
    assert "org-bad" in message and "org-ok" not in message, message
    assert_lake_equals_truth(stack.sandbox, stack.checkout / "data" / "org-ok", tuple(COUNTS))


def test_organizations_sharing_a_lake_are_refused_before_any_child_starts(stack: Stack) -> None:
    before = len(_children(stack))
    organizations = ('organizations=[{"pipeline": "a", "lake_uri": "./data/same"}, '
                     '{"pipeline": "b", "lake_uri": "./data/same"}]')
    _, _, status = _fanout(stack, "--param", organizations, check=False)
    assert status == 1
    assert len(_children(stack)) == before


def _limits(s: Stack) -> dict[str, int]:
    """Active slots of every global concurrency limit, as the server has them."""
    return {limit["name"]: limit["active_slots"]
            for limit in _api(s, "v2/concurrency_limits/filter", {"limit": 200})}


def _latest(s: Stack, pipeline: str) -> dict[str, dict[str, Any]]:
    """The last child flow run of each name (``<pipeline>-<resource>``) of ``pipeline``."""
    runs = sorted((r for r in _children(s) if r["parameters"]["pipeline"] == pipeline),
                  key=lambda r: r["created"])
    return {r["name"]: r for r in runs}


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _assert_after(parent: dict[str, Any], child: dict[str, Any]) -> None:
    """The child's flow run was created, and started, after the parent's ended."""
    assert parent["end_time"] and child["start_time"], (parent, child)
    assert _time(child["created"]) >= _time(parent["end_time"]), (parent, child)
    assert _time(child["start_time"]) >= _time(parent["end_time"]), (parent, child)


def _with_child() -> dict[str, Any]:
    """The seed's five resources and deal_tasks, a child of deals (tests/test_children.py)."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resources"] += [r for r in child_config()["resources"] if r["name"] == "deal_tasks"]
    return raw


def test_a_resource_held_elsewhere_is_refused_a_failed_one_gives_its_slot_back_and_a_child_waits(
        stack: Stack) -> None:
    """Another machine's run holds held/deals (its limit's one slot, set with the operator's
    `prefect gcl` commands); pages fails (HTTP 400). The deals child fails naming pipeline,
    resource and limit, and reads nothing; pages' slot is free again; deal_tasks starts after
    the deals run ended, failed as it is. Once the slot is reset, the next fan-out completes
    and every table, the child's too, equals the truth."""
    lake = stack.checkout / "data" / "held"
    params = ("--param", "pipeline=held", "--param", "lake_uri=./data/held",
              "--param", f"config={json.dumps(_with_child())}")
    held = limit_name("held", "deals")
    stack.prefect("gcl", "create", held, "--limit", "1")
    stack.prefect("gcl", "update", held, "--active-slots", "1")
    stack.sandbox.set_faults([{"kind": "status", "status": 400, "resource": "pages"}])
    deals_requests = stack.sandbox.stats()["requests"].get("deals", {})
    try:
        _, _, status = _fanout(stack, *params, check=False)
    finally:
        stack.sandbox.set_faults([])
    assert status == 1
    runs = _latest(stack, "held")
    assert {n: r["state_type"] for n, r in runs.items()} == {
        "held-tags": "COMPLETED", "held-users": "COMPLETED", "held-deals": "FAILED",
        "held-pages": "FAILED", "held-tasks": "COMPLETED", "held-deal_tasks": "COMPLETED"}, runs
    refused = runs["held-deals"]["state"]["message"]
    assert "pipeline 'held' resource 'deals' is already running in another flow run" in refused
    assert repr(held) in refused and "this run did nothing" in refused, refused
    assert stack.sandbox.stats()["requests"].get("deals", {}) == deals_requests
    assert not (lake / "deals").exists()
    limits = _limits(stack)
    assert limits[held] == 1  # still the other run's
    assert {r: limits[limit_name("held", r)] for r in ("tags", "users", "pages", "tasks",
                                                       "deal_tasks")} == dict.fromkeys(
        ("tags", "users", "pages", "tasks", "deal_tasks"), 0)
    _assert_after(runs["held-deals"], runs["held-deal_tasks"])

    stack.prefect("gcl", "inspect", held)  # the docs' commands: see it, then free it
    stack.prefect("gcl", "update", held, "--active-slots", "0")
    _fanout(stack, *params)
    runs = _latest(stack, "held")
    assert all(r["state_type"] == "COMPLETED" for r in runs.values()), runs
    _assert_after(runs["held-deals"], runs["held-deal_tasks"])
    assert_lake_equals_truth(stack.sandbox, lake, tuple(COUNTS))
    assert_children_match(stack.sandbox, lake)
    assert all(n not in _limits(stack) or _limits(stack)[n] == 0
               for n in (limit_name("held", r) for r in (*COUNTS, "deal_tasks")))


def test_two_fanouts_of_one_pipeline_at_once_never_sync_a_resource_at_the_same_time(
        stack: Stack, request: pytest.FixtureRequest) -> None:
    """Two fan-outs of pipeline `twice` started together (`python flows/fanout.py`, beside the
    deployment's one-at-a-time limit): the server's task runs of each resource never overlap,
    every child that did not complete was refused by a lock before reading, and the lake
    equals the truth with one mark per resource."""
    parameters = json.dumps({"pipeline": "twice", "lake_uri": "./data/twice"})
    # The first requests stall: a sync holds its slot for seconds, so the other fan-out's run
    # of the resource is likely to meet it (the assertions hold either way).
    stack.sandbox.set_faults([{"kind": "stall", "seconds": 8.0, "times": 10}])
    with contextlib.ExitStack() as started:
        started.callback(stack.sandbox.set_faults, [])
        fanouts = [started.enter_context(background(
            [sys.executable, "flows/fanout.py", parameters], stack.env, stack.checkout,
            stack.logs / f"fanout-{n}.log")) for n in (1, 2)]
        for fanout in fanouts:
            fanout.wait(timeout=900)
    runs = [r for r in _children(stack) if r["parameters"]["pipeline"] == "twice"]
    assert len(runs) == 2 * len(COUNTS), [r["name"] for r in runs]
    tasks = _api(stack, "task_runs/filter", {
        "flow_runs": {"id": {"any_": [r["id"] for r in runs]}}, "limit": 200})
    spans: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for task in tasks:
        assert task["start_time"] and task["end_time"], task
        spans[task["name"].removeprefix("sync-")].append(
            (_time(task["start_time"]), _time(task["end_time"])))
    for resource, held in spans.items():
        held.sort()
        for (_, end), (start, _) in zip(held, held[1:], strict=False):
            assert end <= start, (resource, held)
    refused = [r for r in runs if r["state_type"] != "COMPLETED"]
    for run in refused:
        resource = run["parameters"]["resources"][0]
        # the limit's refusal, or the file lock's when both ran on one worker ("machine")
        assert (f"pipeline 'twice' resource '{resource}' is already running"
                in run["state"]["message"]), run["state"]
        assert not [t for t in tasks if t["flow_run_id"] == run["id"]]  # it read nothing
    assert sorted(spans) == sorted(COUNTS)  # each resource synced, by one run at a time
    assert_lake_equals_truth(stack.sandbox, stack.checkout / "data" / "twice", tuple(COUNTS))
    assert [m for m in _marks(stack) if m[1] == "twice"] == sorted(
        (f"twice--{r}", "twice", r) for r in COUNTS)
    report(request, f"two fan-outs at once: {len(runs)} child runs, {len(refused)} refused "
                    "while the other fan-out's run of the same resource held it")

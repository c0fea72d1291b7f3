"""The fan-out deployment end to end: a real `prefect server`, TWO process workers, the sandbox.

`prefect deployment run analytics-sync-fanout/fanout --watch` starts one flow run of
`analytics-sync/per-resource` per resource; both workers (each capped at two runs with
`--limit 2`, so that neither can take everything) must run some. The tables must equal the
sandbox's truth, the marks must be exactly one block per pipeline and resource, a second
fan-out after an advance must be incremental, and a fan-out with a failing child must fail
naming it. Every server, worker and flow-run process is stopped with its process group.

FANOUT_TEST_SCALE=N multiplies the sandbox's record counts (for measuring, not for CI).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.prefect_stack import Stack, deployed_stack, report
from tests.support import assert_lake_equals_truth

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

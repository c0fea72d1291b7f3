"""The ``analytics-sync-fanout`` flow: one run spread over the workers of a work pool.

Orchestration only. It starts one flow run of the per-resource deployment (default
``analytics-sync/per-resource``: the ``analytics-sync`` flow with ``resources=[name]``) per
resource, or per organization, as subflow runs on the work pool; Prefect hands them to whichever
workers poll the pool (a child resource's run starts after its parent's ended). It waits for
all of them, ends with their per-resource rows in one summary, and fails naming every child
that did not complete. Marks and locks stay one per pipeline and resource, across machines
too (analytics_client/orchestration/locks.py; analytics_client/run/fanout.py says what an
organization is).

    prefect deployment run analytics-sync-fanout/fanout --watch
    prefect deployment run analytics-sync-fanout/fanout --param per=organization \\
        --param 'organizations=[{"pipeline": "org-a", "lake_uri": "s3://lake/org-a", ...}]'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, cast

# First, before Prefect is imported: importing from this package sets Prefect's environment
# (its server.PREFECT_DEFAULTS).
from analytics_client.orchestration import (
    API_KEY_BLOCK,
    ORGANIZATION_BLOCK,
    ChildOutcome,
    Organization,
    Per,
    SyncMark,
    Unit,
    parent_of,
    plan_fanout,
    prefect_api,
    quiet_expected_tracebacks,
    render_fanout_markdown,
)

# isort: split
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from prefect.states import Failed, State

from analytics_client import AnalyticsSyncError, SourceConfig, load_config

PER_RESOURCE_DEPLOYMENT = "analytics-sync/per-resource"
_PAGE = 200  # flow runs per API read (the server's default page limit)

quiet_expected_tracebacks()  # an expected failure is its message, without a traceback


class FanoutFailed(AnalyticsSyncError):
    """Raised at the end of a fan-out in which at least one child flow run did not complete."""


@flow(name="analytics-sync-fanout", log_prints=True)
def analytics_sync_fanout(
    pipeline: str = "analytics",
    lake_uri: str = "./data/lake",
    resources: list[str] | None = None,
    organizations: list[Organization] | None = None,
    per: Per = "resource",
    config: dict[str, Any] | str | None = None,
    base_url: str | None = None,
    api_key_block: str | None = API_KEY_BLOCK,
    organization_id_block: str | None = ORGANIZATION_BLOCK,
    batch_rows: int = 10_000,
    full_refresh: bool | list[str] = False,
    storage_block: str | None = None,
    deployment: str = PER_RESOURCE_DEPLOYMENT,
    poll_seconds: float = 2.0,
) -> list[dict[str, Any]] | State:
    """Sync like ``analytics-sync``, as one child flow run of ``deployment`` per unit.

    ``organizations`` (default: one, from ``pipeline`` and ``lake_uri``) lists pipelines to
    sync; their left-out fields take this run's parameters. ``per="resource"`` starts one child
    per resource of each organization, ``per="organization"`` one per organization.
    ``resources`` selects resources (default: all in each organization's config). Children
    start at once, except that a child resource's (children.py) starts when its parent's run
    ended; any worker of the pool picks them up (cap each worker with
    ``prefect worker start --limit N`` so that one worker does not take them all). This run
    holds no lock: each child holds its pipeline's and resources' (the file lock on its
    machine, a Prefect global concurrency limit per resource across machines:
    analytics_client/orchestration/locks.py).

    Returns one dict per child (pipeline, resources, flow run, state); a child that did not
    complete makes this run Failed, naming it. Raises ConfigError for an unknown resource or
    two organizations sharing a pipeline or lake, before any child starts.
    """
    logger = get_run_logger()
    defaults = dict(config=config, base_url=base_url, api_key_block=api_key_block,
                    organization_id_block=organization_id_block, batch_rows=batch_rows,
                    full_refresh=full_refresh, storage_block=storage_block)
    orgs = organizations or [Organization(pipeline=pipeline, lake_uri=lake_uri)]

    sources: dict[int, SourceConfig] = {}

    def source_of(org: Organization) -> SourceConfig:
        if id(org) not in sources:
            sources[id(org)] = load_config(org.config if "config" in org.model_fields_set
                                           else config)
        return sources[id(org)]

    def resource_names(org: Organization) -> list[str]:
        return [r.name for r in source_of(org).select(resources).resources]

    def parent(org: Organization, name: str) -> str | None:
        return parent_of(source_of(org).resource(name))

    units = plan_fanout(orgs, defaults, resources, per, resource_names, parent)
    # Once, before the children start: their concurrent first saves of an unregistered block
    # type would collide (409), as tasks in one run did (shared/notes/field-notes.md).
    prefect_api.call("-", SyncMark.register_type_and_schema)
    fanout_id = str(flow_run.get_id() or "local")
    children = _run_all(units, lambda u: _start(deployment, u, f"{fanout_id}:{u.name}"),
                        poll_seconds)
    outcomes = [_outcome(u, children[i]) for i, u in enumerate(units)]
    title = f"analytics-sync fan-out: {', '.join(o.pipeline for o in orgs)}"
    markdown = render_fanout_markdown(outcomes, title)
    logger.info("summary\n%s", markdown)
    create_markdown_artifact(key="analytics-sync-fanout-summary", markdown=markdown,
                             description="Each child flow run's rows per resource")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        message = (f"{len(failed)} of {len(outcomes)} child flow runs did not complete: "
                   + "; ".join(f"{o.flow_run_name} ({o.state}: {o.message})" for o in failed))
        return Failed(message=message, data=FanoutFailed(message))
    return [{"pipeline": o.unit.pipeline, "resources": list(o.unit.resources),
             "flow_run": o.flow_run_name, "state": o.state} for o in outcomes]


def _run_all(units: Sequence[Unit], start: Callable[[Unit], FlowRun],
             poll_seconds: float) -> list[FlowRun]:
    """Start every unit's flow run and wait until all are final; their final runs, in order.

    A unit with ``after`` (a child resource) starts only once its parent's run is final,
    whether that run completed or failed: the parent's commits stand, as in one flow run
    (flows/main.py's ``wait_for`` with ``allow_failure``). The others start at once.
    """
    logger = get_run_logger()
    index = {(u.pipeline, u.resources): i for i, u in enumerate(units)}
    waits_on = {i: index[(u.pipeline, (u.after,))] for i, u in enumerate(units) if u.after}
    started: dict[int, FlowRun] = {}
    final: dict[int, FlowRun] = {}

    def start_ready() -> None:
        ready = [i for i in range(len(units))
                 if i not in started and (i not in waits_on or waits_on[i] in final)]
        for i in ready:
            started[i] = start(units[i])
        if ready:
            logger.info("started %d flow run(s): %s", len(ready),
                        ", ".join(started[i].name for i in ready))

    start_ready()
    with get_client(sync_client=True) as client:
        while len(final) < len(units):
            final.update(_final(client, started, final))
            start_ready()
            if len(final) < len(units):
                time.sleep(poll_seconds)
    return [final[i] for i in range(len(units))]


def _final(client: SyncPrefectClient, started: dict[int, FlowRun],
           final: dict[int, FlowRun]) -> dict[int, FlowRun]:
    """The started runs that are final now (the server's view, one read per page of runs)."""
    pending = {run.id: i for i, run in started.items() if i not in final}
    ids = sorted(pending, key=str)
    done = {}
    for first in range(0, len(ids), _PAGE):
        page = ids[first:first + _PAGE]
        for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=page)), limit=len(page)):
            if run.state is not None and run.state.is_final():
                done[pending[run.id]] = run
    return done


def _start(deployment: str, unit: Unit, idempotency_key: str) -> FlowRun:
    """A flow run of ``deployment`` for ``unit``, scheduled now, linked as a subflow run.

    Not waited for here (``timeout=0``). The idempotency key (the fan-out's run id and the
    unit) makes a retried fan-out find its children instead of starting more.
    """
    run = run_deployment(deployment, parameters=unit.parameters, timeout=0,
                         flow_run_name=unit.name, idempotency_key=idempotency_key)
    return cast(FlowRun, run)  # the synchronous call's result (the stub also allows a coroutine)


def _outcome(unit: Unit, run: FlowRun) -> ChildOutcome:
    """A finished child and the summary artifact it created (our markdown table), if any."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
            type=ArtifactFilterType(any_=["markdown"])))
    markdown = next((str(a.data) for a in artifacts if a.key and a.key.endswith("-summary")), None)
    state = run.state
    name = (state.name or state.type.value.title()) if state else "Unknown"
    return ChildOutcome(unit=unit, flow_run_name=run.name, state=name,
                        message=(state.message or "") if state else "",
                        summary_markdown=markdown)


if __name__ == "__main__":
    import json
    import sys

    # python flows/fanout.py '{"resources": ["deals"]}': parameters as JSON, against PREFECT_API_URL
    state = analytics_sync_fanout(**json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"),
                                  return_state=True)
    print(state.message or state.name)
    sys.exit(0 if state.is_completed() else 1)

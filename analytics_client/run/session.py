"""A sync run: what every resource of one run shares, held for the run's length.

The pipeline's lock, one API client, the lake, the row budget, the mark store, the full-refresh
set and the filter that keeps the credentials out of logs belong to the run, not to a resource.
``run_sync`` (the library: a thread per resource) and the Prefect flow (``flows/main.py``: a task
per resource) both open a ``SyncRun`` and call ``run.sync(resource)``: one path through the code.
Each resource's plan (``read/plan.py``) is resolved once, when the run is made; a child resource
(``children.py``) is one more read of the same loop and starts once its parent's sync ended, if
the parent is in the run (``SyncRun.waits_for``): in a thread here, by Prefect's ``wait_for``
in the flow.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from analytics_client.config.model import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_PIPELINE,
    ResourceConfig,
    SourceConfig,
    parent_of,
)
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import ConfigError, ResourceFailed
from analytics_client.core.lock import pipeline_lock
from analytics_client.core.summary import ResourceSummary
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.http.client import ApiClient
from analytics_client.http.redaction import install_log_filter, redact, remove_log_filter
from analytics_client.lake.preflight import ensure_lake_writable
from analytics_client.lake.tables import Lake
from analytics_client.read.plan import ResourcePlan, plan_resource
from analytics_client.run.budget import RowBudget
from analytics_client.run.sync import sync_resource
from analytics_client.state.marks import MarkStore

__all__ = ["SyncRun", "full_refresh_set", "run_sync"]

logger = logging.getLogger(__name__)


class SyncRun:
    """One run over the resources of ``config`` (already selected), as a context manager.

    Entering installs the log filter, takes the pipeline's lock (``PipelineBusyError`` if
    another run has it) and opens the client; leaving undoes all three. ``full_refresh`` is
    True (every resource) or names some (``ConfigError`` for a name not in ``config``).
    ``marks`` may be set after entering, before the first ``sync`` (a Prefect store is made
    under the lock and the flow's bounded retries). ``source``: the whole config ``config`` was
    selected from, where a child's parent is found when the run does not sync it (default:
    ``config``). ``timing``: the run's intervals (``core/timing.py``; tests pass their own).
    """

    def __init__(self, config: SourceConfig, credentials: Credentials, lake: Lake, *,
                 pipeline: str = DEFAULT_PIPELINE, batch_rows: int = DEFAULT_BATCH_ROWS,
                 run_id: str = "", marks: MarkStore | None = None,
                 full_refresh: bool | Iterable[str] = False,
                 transport: httpx.BaseTransport | None = None,
                 source: SourceConfig | None = None, timing: Timing = DEFAULT_TIMING) -> None:
        self.config, self.credentials, self.lake = config, credentials, lake
        self.source = source or config
        self.resources = config.resources
        self.pipeline, self.batch_rows, self.run_id = pipeline, batch_rows, run_id
        self.marks = marks
        self.plans: dict[str, ResourcePlan] = {
            r.name: plan_resource(r, self.source) for r in self.resources}
        self.refresh = full_refresh_set(full_refresh, list(self.plans))
        self.timing = timing
        self.budget = RowBudget.for_batches(batch_rows)  # records held at once, whole run
        self.transport = transport
        self._open = contextlib.ExitStack()
        self._client: ApiClient | None = None

    def __enter__(self) -> SyncRun:
        with contextlib.ExitStack() as opening:
            opening.callback(remove_log_filter, install_log_filter(self.credentials.values()))
            # per resource: a fan-out's runs of other resources of the pipeline go on meanwhile
            opening.enter_context(pipeline_lock(self.pipeline, [r.name for r in self.resources]))
            self._client = opening.enter_context(
                ApiClient(self.config, self.credentials, transport=self.transport,
                          timing=self.timing))
            self._open = opening.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._client = None
        self._open.__exit__(*exc_info)

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            raise RuntimeError("a SyncRun syncs only inside its `with` block")
        return self._client

    def ordered(self) -> list[ResourceConfig]:
        """The run's resources, parents before their children, children before theirs
        (chains: dlt's grandchildren)."""
        known = {r.name: r for r in self.source.resources}

        def depth(resource: ResourceConfig) -> int:
            hops, current = 0, resource
            while (name := parent_of(current)) is not None and name in known and hops < 64:
                hops, current = hops + 1, known[name]
            return hops

        return sorted(self.resources, key=depth)

    def waits_for(self, resource: ResourceConfig) -> str | None:
        """The resource of this run whose sync must end before ``resource``'s starts: a
        child's parent, whose committed rows say which children to read (None: no wait)."""
        parent = self.plans[resource.name].parent
        return parent.name if parent is not None and parent.name in self.plans else None

    def sync(self, resource: ResourceConfig, *,
             log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> ResourceSummary:
        """Sync one resource of the run by its plan (``sync.sync_resource``; a child: for the
        parent rows its table holds now).

        Raises ``ResourceFailed`` with the partial summary, its error free of credentials; the
        cause is chained.
        """
        plan = self.plans.get(resource.name) or plan_resource(resource, self.source)
        # Whatever of the source reads this resource's rows as parents: its deletes follow.
        children = tuple(plan_resource(r, self.source) for r in self.source.resources
                         if parent_of(r) == plan.name)
        try:
            return sync_resource(self.client, self.lake, plan, batch_rows=self.batch_rows,
                                 run_id=self.run_id, log=log, pipeline=self.pipeline,
                                 marks=self.marks, full_refresh=plan.name in self.refresh,
                                 budget=self.budget, timing=self.timing, children=children)
        except ResourceFailed as failed:
            summary = failed.summary
            summary.error = redact(summary.error or str(failed), self.credentials.values())
            raise ResourceFailed(summary, failed.cause) from failed.cause


def run_sync(
    config: SourceConfig,
    credentials: Credentials,
    lake_uri: str,
    *,
    resources: Iterable[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    run_id: str = "",
    transport: httpx.BaseTransport | None = None,
    storage_options: dict[str, str] | None = None,
    on_done: Callable[[ResourceSummary], None] | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    marks: MarkStore | None = None,
    full_refresh: bool | Iterable[str] = False,
    timing: Timing = DEFAULT_TIMING,
) -> list[ResourceSummary]:
    """Sync the selected resources concurrently, without Prefect; never raises for one resource
    once it started (``LakeNotWritableError``, ``UnsupportedTableFeature``: before any request).

    Holds the pipeline's lock for the run (``PipelineBusyError`` if another run has it).
    Returns one summary per resource, in config order; failed ones have ``status == "failed"``.
    A child resource starts once its parent's sync ended, failed or not (its commits stand).
    """
    selected = config.select(resources)
    lake = Lake(lake_uri, storage_options=storage_options)
    ensure_lake_writable(lake, [r.name for r in selected.resources])  # before any request
    with SyncRun(selected, credentials, lake, pipeline=pipeline, batch_rows=batch_rows,
                 run_id=run_id, marks=marks, full_refresh=full_refresh,
                 transport=transport, source=config, timing=timing) as run, \
            ThreadPoolExecutor(max_workers=len(selected.resources)) as pool:
        # A thread per resource, parents submitted first: a waiting child never starves them.
        futures: dict[str, Future[ResourceSummary]] = {}
        for resource in run.ordered():
            after = futures.get(run.waits_for(resource) or "")
            futures[resource.name] = pool.submit(_summary, run, resource.name, after)
        summaries = [futures[r.name].result() for r in selected.resources]
    for summary in summaries:
        if on_done:
            on_done(summary)
    return summaries


def _summary(run: SyncRun, name: str,
             after: Future[ResourceSummary] | None = None) -> ResourceSummary:
    """A resource's summary, failed or not: one failure does not end the run. ``after``: the
    parent's sync, which must end first."""
    if after is not None:
        wait([after])
    try:
        summary = run.sync(run.config.resource(name))
    except ResourceFailed as failed:
        logger.error("%s failed: %s", name, failed.summary.error)
        summary = failed.summary
    parent = after.result() if after is not None else None
    if parent is not None and parent.status != "ok":
        # Not "ok with 0 rows" and nothing said: the child read only the parents committed.
        summary.notes.append(f"its parent {parent.resource} {parent.status}: children were read "
                             "for the parent rows committed so far; the next run reads the rest")
    return summary


def full_refresh_set(full_refresh: bool | Iterable[str] | None,
                     selected: Iterable[str]) -> set[str]:
    """``True`` means every selected resource (by name); a list names some (unknown names are
    an error)."""
    if not full_refresh:
        return set()
    names = set(selected)
    if full_refresh is True:
        return names
    wanted = set(full_refresh)
    unknown = wanted - names
    if unknown:
        raise ConfigError([f"full_refresh: {sorted(unknown)} not among the resources of this run "
                           f"({', '.join(sorted(names))})"])
    return wanted

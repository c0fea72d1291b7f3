"""The ``analytics-sync`` Prefect flow and its task; ``python flows/main.py`` runs it locally.

Orchestration only: one task per resource, all concurrent, a child resource's after its parent's;
the library does the work. The command line (run, check, secrets, state, quarantine) is
``analytics_client/orchestration/cli.py``, handed this flow:

    python flows/main.py --sandbox    # against the bundled sandbox API, into ./data/sandbox-lake
    python flows/main.py              # against client.base_url with the configured secrets
    python flows/main.py check        # validate config + secrets, one request per resource
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

# First, before Prefect is imported: importing from this package sets Prefect's environment
# (its server.PREFECT_DEFAULTS: no telemetry, our library's logs in the flow run's logs).
from analytics_client.orchestration import (
    API_KEY_BLOCK,
    DEFAULT_BATCH_ROWS,
    DEFAULT_LAKE,
    DEFAULT_PIPELINE,
    ORGANIZATION_BLOCK,
    Credentials,
    PrefectMarkStore,
    PrefectUnavailableError,
    PrefectWentAway,
    again_inside_the_flow_run,
    cli,
    current_stop,
    debugging,
    ensure_lake_writable,
    failed_message,
    failure_reason,
    prefect_api,
    quiet_expected_tracebacks,
    redact,
    resolve_credentials,
    resolve_storage_options,
    resource_slots,
)

# isort: split
from prefect import allow_failure, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed, State

from analytics_client import (
    Lake,
    ResourceConfig,
    ResourceFailed,
    ResourceSummary,
    SyncFailed,
    SyncRun,
    load_config,
    render_markdown,
    render_table,
)


class _SaidOnce(logging.Filter):
    """Drops Prefect's "Task run failed with state: Failed(...)" for a task that returned its
    Failed state: the next line, "Finished in state Failed('...')", says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Task run failed with state:")


logging.getLogger("prefect.task_runs").addFilter(_SaidOnce())
quiet_expected_tracebacks()  # an expected failure is its message, without a traceback


@task(task_run_name="sync-{resource_name}", cache_policy=NO_CACHE, retries=0)
def sync_resource_task(resource_name: str, resource: ResourceConfig,
                       run: SyncRun) -> ResourceSummary:
    """One resource, start to end (``run.sync``); retries happen per request inside the client.

    A failed resource ends in a Failed state whose message is the error, said once: no
    traceback (the error says what and where; ``--debug`` adds it), and the summary stays the
    task's result for the run's table.
    """
    log = get_run_logger()
    try:
        return run.sync(resource, log=log)
    except ResourceFailed as failed:
        if _outage(failed) is not None:
            raise  # the flow tells a lost Prefect API apart by this failure's cause
        if debugging():  # the cause's traceback: where it failed, once
            log.error("%s: traceback (--debug)", resource_name, exc_info=failed.cause or failed)
        # The failure itself is the result: the flow's state message groups its cause
        # (failures.py) and takes the summary from it (``_summary_of``).
        return Failed(message=failed.summary.error, data=failed)  # type: ignore[return-value]


@flow(name="analytics-sync", log_prints=True)
def analytics_sync(
    pipeline: str = DEFAULT_PIPELINE,
    lake_uri: str = DEFAULT_LAKE,
    resources: list[str] | None = None,
    config: dict[str, Any] | str | None = None,
    base_url: str | None = None,
    api_key_block: str | None = API_KEY_BLOCK,
    organization_id_block: str | None = ORGANIZATION_BLOCK,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    full_refresh: bool | list[str] = False,
    storage_block: str | None = None,
) -> list[dict[str, Any]] | State:
    """Sync the selected resources (all by default) into Delta tables at ``<lake_uri>/<resource>``.

    Incremental resources read only what changed since their committed mark (kept in
    ``SyncMark`` blocks (analytics_client/orchestration/blocks.py) named
    ``<pipeline>--<resource>`` and in the tables); ``full_refresh`` (true, or a list of
    resources) re-reads everything and merges it. ``config`` is a dlt ``rest_api_source`` dict
    or a JSON/YAML file path (default: the seed). Secrets come from the named Prefect Secret
    blocks stored for this run's API, else ANALYTICS_API_KEY / ANALYTICS_ORGANIZATION_ID; a
    block stored for another API is never sent (analytics_client/orchestration/secrets.py); a
    block name of null reads the environment only. Two runs of one pipeline never overlap.
    An object-store lake (s3://, gs://, abfss://) takes its credentials from the Analytics Lake
    Storage block ``storage_block``, else the standard environment variables.
    """
    with again_inside_the_flow_run():  # Prefect's engine replaced our SIGTERM handler
        return _sync(pipeline, lake_uri, resources, config, base_url, api_key_block,
                     organization_id_block, batch_rows, full_refresh, storage_block)


def _sync(pipeline: str, lake_uri: str, resources: list[str] | None,
          config: dict[str, Any] | str | None, base_url: str | None, api_key_block: str | None,
          organization_id_block: str | None, batch_rows: int, full_refresh: bool | list[str],
          storage_block: str | None) -> list[dict[str, Any]] | State:
    logger = get_run_logger()
    whole = load_config(config, base_url=base_url or os.environ.get("ANALYTICS_BASE_URL"))
    source = whole.select(resources)
    credentials = resolve_credentials(api_key_block, organization_id_block,
                                      base_url=source.client.base_url,
                                      needs=source.secret_names(), log=logger)
    lake = Lake(lake_uri, storage_options=resolve_storage_options(lake_uri, storage_block))
    run = SyncRun(source, credentials, lake, pipeline=pipeline, batch_rows=batch_rows,
                  run_id=str(flow_run.get_id() or ""), full_refresh=full_refresh, source=whole)
    ensure_lake_writable(lake, [r.name for r in source.resources])  # before any request
    logger.info("pipeline %r: syncing %s from %s into %s", pipeline,
                ", ".join(r.name for r in source.resources), source.client.base_url, lake_uri)
    # The file lock (in `run`) on this machine, then the Prefect server's across machines.
    with run, prefect_api.bounded_retries(), \
            resource_slots(pipeline, [r.name for r in source.resources], run.run_id):
        run.marks = PrefectMarkStore()  # registers the block type once, before the fan-out
        futures = _submit(run)
        wait(list(futures.values()))
    summaries = [_summary_of(r.name, futures[r.name].state, credentials)
                 for r in source.resources]
    _show_summary(render_table(summaries))
    outage = next((e for f in futures.values()
                   if (e := _outage(f.state.result(raise_on_failure=False)))), None)
    try:
        prefect_api.call("-", lambda: create_markdown_artifact(
            key=f"{_artifact_key(pipeline)}-summary",
            markdown=render_markdown(summaries, title=f"analytics-sync: {pipeline}"),
            description="Rows fetched, inserted and updated per resource",
        ))
    except PrefectUnavailableError as exc:
        outage = outage or exc
    if outage is not None:
        raise PrefectWentAway(redact(prefect_api.outage_message(outage), credentials.values()))
    stopped = [s for s in summaries if s.status == "stopped"]
    if stopped:  # Ctrl-C / SIGTERM (stop.py): an end the operator asked for, not a failure
        return Cancelled(message=f"stopped by {current_stop().reason or 'request'}: "
                         f"{len(stopped)} of {len(summaries)} resources stopped early; what "
                         "was fetched is committed with its mark, the next run resumes from it",
                         data=[s.to_dict() for s in summaries])
    failed = [(s.resource, failure_reason(s.resource, s.error, _cause_of(futures[s.resource])))
              for s in summaries if s.status != "ok"]
    if failed:
        # The cause, grouped, where the operator and the alert look (failures.py); no traceback
        # (a returned state, not a raised exception).
        message = redact(failed_message(failed, len(summaries)), credentials.values())
        return Failed(message=message, data=SyncFailed(message))
    return [s.to_dict() for s in summaries]


def _submit(run: SyncRun) -> dict[str, PrefectFuture[ResourceSummary]]:
    """A task per resource; a child's waits for its parent's task (``run.waits_for``) to end,
    failed or not (the parent's commits stand), as ``run_sync`` does."""
    futures: dict[str, PrefectFuture[ResourceSummary]] = {}
    for resource in run.ordered():
        parent = run.waits_for(resource)
        futures[resource.name] = sync_resource_task.submit(
            resource.name, resource, run,
            wait_for=[allow_failure(futures[parent])] if parent is not None else None)
    return futures


def _show_summary(table: str) -> None:
    """On stdout, once: the run's answer, apart from its log on stderr. The flow run's logs get
    it too, but not the terminal a second time (``log_prints`` would turn a print into a log)."""
    sys.stdout.write("\n" + table + "\n")
    sys.stdout.flush()
    flow_run_log = logging.getLogger("analytics_sync.flow_run_log")
    if not flow_run_log.handlers:
        from prefect.logging.handlers import APILogHandler

        flow_run_log.addHandler(APILogHandler())
        flow_run_log.propagate = False  # not to the console: stdout has it
        flow_run_log.setLevel(logging.INFO)
    flow_run_log.info("summary\n%s", table)


def _summary_of(name: str, state: Any, credentials: Credentials) -> ResourceSummary:
    """A task's summary: its result, a failure's partial summary, else one made of its error."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, ResourceSummary):
        return result
    if isinstance(result, ResourceFailed):
        return result.summary
    return ResourceSummary(name, status="failed",
                           error=redact(str(result) or state.message or "", credentials.values()))


def _cause_of(future: PrefectFuture[ResourceSummary]) -> BaseException | None:
    """The exception a resource's task failed with (its result when failed), if any."""
    result = future.state.result(raise_on_failure=False)
    return result if isinstance(result, BaseException) else None


def _outage(result: object) -> BaseException | None:
    """The lost Prefect API behind a task's result, if that is what it is (prefect_api.py)."""
    cause = result.cause if isinstance(result, ResourceFailed) else result
    return cause if isinstance(cause, BaseException) and prefect_api.is_outage(cause) else None


def _artifact_key(pipeline: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    key = "".join(c if c.isalnum() else "-" for c in pipeline.lower()).strip("-")
    return f"analytics-sync-{key or 'default'}"


def main(argv: list[str] | None = None) -> int:
    """``python flows/main.py ARGS``: the command line, running this module's flow."""
    return cli.main(argv, flow=analytics_sync)


if __name__ == "__main__":
    raise SystemExit(main())

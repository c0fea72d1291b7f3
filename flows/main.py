"""The ``analytics-sync`` Prefect flow, and the command line that runs it locally.

Orchestration only: one task per resource, all concurrent, a child resource's after its parent's;
the library does the work.

    python flows/main.py --sandbox    # against the bundled sandbox API, into ./data/sandbox-lake
    python flows/main.py              # against client.base_url with the configured secrets
    python flows/main.py check        # validate config + secrets, one request per resource
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

# First, before Prefect is imported: importing this module sets Prefect's environment
# (prefect_process.PREFECT_DEFAULTS: no telemetry, our library's logs in the flow run's logs).
from analytics_client.orchestration.server import start_temporary_server_in_its_own_session

# isort: split
from prefect import allow_failure, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed, State

from analytics_client import (
    AnalyticsSyncError,
    ConfigError,
    Credentials,
    Lake,
    LakeNotWritableError,
    MarkStore,
    PrefectStartError,
    PrefectUnavailableError,
    PrefectWentAway,
    ResourceConfig,
    ResourceFailed,
    ResourceSummary,
    SourceConfig,
    SyncFailed,
    SyncRun,
    check_source,
    load_config,
    render_markdown,
    render_table,
)
from analytics_client.config import DEFAULT_BATCH_ROWS, DEFAULT_PIPELINE
from analytics_client.core.debugging import debugging, set_debugging
from analytics_client.core.lock import pipeline_lock
from analytics_client.core.stop import again_inside_the_flow_run, on_signals
from analytics_client.core.stop import current as current_stop
from analytics_client.http.redaction import redact
from analytics_client.lake.preflight import ensure_lake_writable
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.quarantine import render as render_quarantine
from analytics_client.orchestration import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
    CommandMarkStore,
    PrefectMarkStore,
    resolve_credentials,
    store_credentials,
)
from analytics_client.orchestration import api as prefect_api
from analytics_client.orchestration.locks import resource_slots
from analytics_client.orchestration.storage import resolve_storage_options
from analytics_client.run.sync import replay_quarantine
from analytics_client.state.marks import describe, reset

DEFAULT_LAKE = "./data/lake"
SANDBOX_LAKE = "./data/sandbox-lake"


class _SaidOnce(logging.Filter):
    """Drops Prefect's "Task run failed with state: Failed(...)" for a task that returned its
    Failed state: the next line, "Finished in state Failed('...')", says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Task run failed with state:")


logging.getLogger("prefect.task_runs").addFilter(_SaidOnce())


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
        summary = failed.summary
        return Failed(message=summary.error, data=summary)  # type: ignore[return-value]


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
    ``SyncMark`` blocks (analytics_client/blocks.py) named ``<pipeline>--<resource>`` and in
    the tables); ``full_refresh`` (true, or a list of resources) re-reads everything and
    merges it. ``config`` is a dlt
    ``rest_api_source`` dict or a JSON/YAML file path (default: the seed). Secrets come from the
    named Prefect Secret blocks, else ANALYTICS_API_KEY / ANALYTICS_ORGANIZATION_ID; a block
    name of null reads the environment only. Two runs of one pipeline never overlap.
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
                                      needs=source.secret_names())
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
    failed = [s for s in summaries if s.status != "ok"]
    if failed:
        # Each error was said once, by its task, and is in the summary: named here, not repeated,
        # and no traceback (a returned state, not a raised exception).
        message = (f"{len(failed)} of {len(summaries)} resources failed: "
                   f"{', '.join(s.resource for s in failed)} (errors above and in the summary)")
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


def _outage(result: object) -> BaseException | None:
    """The lost Prefect API behind a task's result, if that is what it is (prefect_api.py)."""
    cause = result.cause if isinstance(result, ResourceFailed) else result
    return cause if isinstance(cause, BaseException) and prefect_api.is_outage(cause) else None


def _artifact_key(pipeline: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    key = "".join(c if c.isalnum() else "-" for c in pipeline.lower()).strip("-")
    return f"analytics-sync-{key or 'default'}"


# --- command line -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see python flows/main.py --help)\n")


def _positive_int(text: str) -> int:
    """An option value that counts something: ``--batch-rows 0`` would commit empty batches."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python flows/main.py",
        description="Sync tags, deals, pages, tasks and users from the analytics API into Delta "
        "Lake tables (one Prefect flow run).",
        epilog="Secrets: the Prefect Secret blocks 'analytics-api-key' and "
        "'analytics-organization-id', else ANALYTICS_API_KEY and ANALYTICS_ORGANIZATION_ID. "
        "Exit status: 0 when every resource synced, 1 when any failed, 2 for bad usage or config, "
        "3 when the Prefect API went away during the run (the data is safe; run again).",
    )
    parser.add_argument("command", nargs="?",
                        choices=("run", "check", "secrets", "state", "quarantine"),
                        default="run",
                        help="run (default): sync; check: validate config and secrets and make "
                        "one request per resource, writing nothing; secrets: create or update "
                        "the two Prefect Secret blocks from ANALYTICS_API_KEY / "
                        "ANALYTICS_ORGANIZATION_ID or a prompt; state show: print every "
                        "resource's mark; state reset RESOURCE... | --all: force full reads; "
                        "quarantine show [RESOURCE]: records set aside; quarantine replay "
                        "[RESOURCE...]: write them again through the current config")
    parser.add_argument("args", nargs="*", help="for state: show, or reset and resource names")
    parser.add_argument("--all", action="store_true", help="with state reset: every resource")
    parser.add_argument("--full-refresh", action="store_true",
                        help="ignore the marks: re-read everything (with --resources, just those)")
    parser.add_argument("--sandbox", action="store_true",
                        help="start the bundled sandbox API on a free loopback port and use it "
                        f"(its own credentials; lake defaults to {SANDBOX_LAKE})")
    parser.add_argument("--base-url", default=os.environ.get("ANALYTICS_BASE_URL"),
                        help="API base URL (env ANALYTICS_BASE_URL; default: client.base_url)")
    parser.add_argument("--lake", default=os.environ.get("ANALYTICS_LAKE_URI"),
                        help="lake path or URI, tables at <lake>/<resource> "
                        "(env ANALYTICS_LAKE_URI; "
                        f"default {DEFAULT_LAKE})")
    parser.add_argument("--resources", help="comma-separated subset, e.g. deals,users")
    parser.add_argument("--config", help="dlt rest_api_source config as a JSON or YAML file "
                        "(default: the seed configuration)")
    parser.add_argument("--pipeline", default=None,
                        help="pipeline name: marks are kept per pipeline (default analytics; "
                        "sandbox with --sandbox, so demo marks never mix with real ones)")
    parser.add_argument("--api-key-block", default=API_KEY_BLOCK,
                        help=f"Prefect Secret block holding the API key (default {API_KEY_BLOCK})")
    parser.add_argument("--organization-block", default=ORGANIZATION_BLOCK,
                        help="Prefect Secret block holding the organization id "
                        f"(default {ORGANIZATION_BLOCK})")
    parser.add_argument("--storage-block", default=os.environ.get("ANALYTICS_STORAGE_BLOCK"),
                        help="Analytics Lake Storage block with the object store's credentials "
                        "(env ANALYTICS_STORAGE_BLOCK; default: the standard AWS_/GOOGLE_/AZURE_ "
                        "environment variables)")
    parser.add_argument("--batch-rows", type=_positive_int, default=DEFAULT_BATCH_ROWS,
                        help="records per Delta commit (bounds memory; default "
                        f"{DEFAULT_BATCH_ROWS})")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks besides the one-line errors "
                        "(env ANALYTICS_SYNC_DEBUG=1)")
    parser.add_argument("--sandbox-scale", type=_positive_float, default=1.0,
                        help="with --sandbox: dataset size factor (1 = 27,250 records)")
    return parser


@contextlib.contextmanager
def _sandbox(enabled: bool, scale: float) -> Iterator[str | None]:
    """Start the sandbox and point this process's environment at it for the run only."""
    if not enabled:
        yield None
        return
    from analytics_sandbox import serve_subprocess

    with serve_subprocess(scale=scale, own_session=True) as server:
        saved = {k: os.environ.get(k) for k in (API_KEY_ENV, ORGANIZATION_ENV)}
        os.environ[API_KEY_ENV] = server.api_key
        os.environ[ORGANIZATION_ENV] = server.organization_id
        print(f"sandbox API serving at {server.base_url}", flush=True)
        try:
            yield server.base_url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    """The command line: a usage, config or environment problem is one line and exit 2."""
    args = _parser().parse_args(argv)
    set_debugging(args.debug)
    args.pipeline = args.pipeline or ("sandbox" if args.sandbox else DEFAULT_PIPELINE)
    try:
        return _dispatch(args)
    except ConfigError as exc:  # one problem, one line; several, one line each
        if len(exc.problems) == 1:
            print(f"error: invalid source configuration: {exc.problems[0]}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except AnalyticsSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Prefect raises a bare RuntimeError (and 35 lines of traceback) when its temporary
        # server does not answer in time; the user needs one sentence and a way out.
        if isinstance(exc, RuntimeError) and "ephemeral Prefect API server" in str(exc):
            print(f"error: {PrefectStartError(_startup_timeout())}", file=sys.stderr)
            return 2
        if not prefect_api.is_outage(exc):  # the flow engine itself lost the Prefect API
            raise
        print(f"error: {prefect_api.outage_message(exc)}", file=sys.stderr)
        return prefect_api.EXIT_STATUS


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "secrets":
        return _store_secrets(args.api_key_block, args.organization_block)
    if args.command == "state":
        return _state(args)
    if args.command == "quarantine":
        return _quarantine(args)
    if args.args:
        print(f"error: unexpected arguments {args.args}", file=sys.stderr)
        return 2
    resources = ([r.strip() for r in args.resources.split(",") if r.strip()]
                 if args.resources else None)
    lake_uri = _lake_uri(args)
    # With --sandbox the secrets are the sandbox's, from the environment, never a real block.
    key_block = None if args.sandbox else args.api_key_block
    org_block = None if args.sandbox else args.organization_block
    with _sandbox(args.sandbox, args.sandbox_scale) as sandbox_url:
        base_url = sandbox_url or args.base_url
        source = load_config(args.config, base_url=base_url).select(resources)
        lake = Lake(lake_uri, storage_options=resolve_storage_options(lake_uri, args.storage_block))
        if args.command == "check":
            return _check(source, lake, key_block, org_block)
        # Everything a run can know before its first request is checked before Prefect starts.
        ensure_lake_writable(lake, [r.name for r in source.resources])
        start_temporary_server_in_its_own_session()  # Ctrl-C must not kill Prefect's API
        # a second run fails now, not after Prefect starts
        with pipeline_lock(args.pipeline, [r.name for r in source.resources]), \
                prefect_api.bounded_retries(), \
                on_signals() as stop:
            # Ctrl-C / SIGTERM stop the run after the current page of each resource (stop.py).
            resolve_credentials(key_block, org_block, needs=source.secret_names())
            state = analytics_sync(
                pipeline=args.pipeline, lake_uri=lake_uri, resources=resources,
                config=args.config, base_url=base_url, api_key_block=key_block,
                organization_id_block=org_block, batch_rows=args.batch_rows,
                full_refresh=args.full_refresh, storage_block=args.storage_block,
                return_state=True,
            )
    if state.is_cancelled() or stop.requested:
        print(f"stopped: {state.message}", file=sys.stderr)
        return 128 + (stop.signum or signal.SIGINT)
    if state.is_completed():
        print(f"done: tables under {lake.uri}")
        return 0
    result = state.result(raise_on_failure=False)
    if isinstance(result, PrefectWentAway) or prefect_api.is_outage(result):
        message = str(result) if isinstance(result, PrefectWentAway) else \
            prefect_api.outage_message(result)
        print(f"error: {message}", file=sys.stderr)
        return prefect_api.EXIT_STATUS
    print(f"error: {state.message}", file=sys.stderr)
    return 1


def _lake_uri(args: argparse.Namespace) -> str:
    """One answer for run, check and state: `state --sandbox` must look where the run wrote."""
    return args.lake or (SANDBOX_LAKE if args.sandbox else DEFAULT_LAKE)


def _startup_timeout() -> int | None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    return PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()


def _store_secrets(key_block: str, org_block: str) -> int:
    """Secrets come from the environment or a hidden prompt, never from arguments (shell
    history)."""
    import getpass

    values = {}
    for env, what in ((API_KEY_ENV, "API key"), (ORGANIZATION_ENV, "organization id")):
        value = os.environ.get(env, "").strip()
        if not value and not sys.stdin.isatty():
            print(f"error: no {what}: set {env} (there is no terminal to prompt on)",
                  file=sys.stderr)
            return 2
        if not value:
            try:
                value = getpass.getpass(f"{what} (input hidden): ").strip()
            except EOFError:
                value = ""
        if not value:
            print(f"error: no {what} given (set {env} or type it at the prompt)", file=sys.stderr)
            return 2
        values[env] = value
    with prefect_api.command_api() as api:  # two block documents: no temporary server
        store_credentials(Credentials(values[API_KEY_ENV], values[ORGANIZATION_ENV]),
                          key_block, org_block, api=api)
    print(f"saved Prefect Secret blocks {key_block!r} and {org_block!r}")
    return 0


_STATE_USAGE = "use `state show`, `state reset RESOURCE...` or `state reset --all`"


def _state(args: argparse.Namespace) -> int:
    """Show or reset marks; usage and resource names are checked before Prefect is asked."""
    action, *names = args.args or ["show"]
    valid = (action == "show" and not names and not args.all) or (
        action == "reset" and bool(names) != args.all)
    if not valid:
        print(f"error: {_STATE_USAGE}", file=sys.stderr)
        return 2
    source = load_config(args.config, base_url=args.base_url)
    known = [r.name for r in source.resources]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: state reset: no resource named {', '.join(map(repr, unknown))}; "
              f"configured: {', '.join(known)}", file=sys.stderr)
        return 2
    uri = _lake_uri(args)
    lake = Lake(uri, storage_options=resolve_storage_options(uri, args.storage_block))
    with prefect_api.command_api() as api:  # a few block documents: no temporary server
        store = CommandMarkStore(api)
        return _show(args.pipeline, source, lake, store) if action == "show" else \
            _reset(args.pipeline, known if args.all else list(dict.fromkeys(names)), store)


def _show(pipeline: str, source: SourceConfig, lake: Lake, store: MarkStore) -> int:
    print(f"pipeline {pipeline!r}, lake {lake.uri}")
    for resource in source.resources:
        incremental = resource.endpoint.incremental
        info = describe(lake, pipeline, resource.name, store,
                        incremental.initial_value if incremental else None)
        print(f"  {resource.name}: block cursor {info['block_cursor'] or '-'}, table cursor "
              f"{info['table_cursor'] or '-'} (version {info['table_version']}), last success "
              f"{info['last_success_at'] or '-'}\n      next run: {info['next_run']}")
    return 0


def _reset(pipeline: str, names: list[str], store: MarkStore) -> int:
    for name in names:
        reset(store, pipeline, name)
        print(f"reset {pipeline}/{name}: the next run reads it in full")
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    action, *names = args.args or ["show"]
    uri = _lake_uri(args)
    lake = Lake(uri, storage_options=resolve_storage_options(uri, args.storage_block))
    if action == "show" and len(names) <= 1:
        print(render_quarantine(Quarantine(lake, args.pipeline).read(*names)))
        return 0
    if action == "replay":
        source = load_config(args.config, base_url=args.base_url).select(names or None)
        for resource in source.resources:
            result, landed = replay_quarantine(lake, resource, args.pipeline)
            print(f"{resource.name}: {landed:,} replayed record(s) landed ({result.inserted:,} "
                  f"inserted, {result.updated:,} updated); {result.quarantined:,} still set aside")
        return 0
    print("error: use `quarantine show [RESOURCE]` or `quarantine replay [RESOURCE...]`",
          file=sys.stderr)
    return 2


def _check(source: SourceConfig, lake: Lake, key_block: str | None, org_block: str | None) -> int:
    if key_block or org_block:
        with prefect_api.command_api() as api:  # Secret blocks, no temporary server
            credentials = resolve_credentials(key_block, org_block, api=api,
                                              needs=source.secret_names())
    else:
        credentials = resolve_credentials(None, None, needs=source.secret_names())
    print(f"config ok: {len(source.resources)} resources at {source.client.base_url}; "
          "secrets found")
    try:
        ensure_lake_writable(lake, [r.name for r in source.resources])
        lake_ok, lake_line = True, f"lake: {lake.uri} can be written"
    except LakeNotWritableError as exc:
        lake_ok, lake_line = False, f"lake: FAIL {exc}"
    print(lake_line)
    results = check_source(source, credentials)
    for result in results:
        print(f"  {result.resource:<12} {'ok  ' if result.ok else 'FAIL'} {result.message}")
    return 0 if lake_ok and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

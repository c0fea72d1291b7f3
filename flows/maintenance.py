"""The ``analytics-maintenance`` Prefect flow: compact, checkpoint and vacuum each table.

    python flows/maintenance.py --lake ./data/lake            # once, locally
    prefect deployment run analytics-maintenance/weekly       # as deployed by prefect.yaml

Orchestration only; the work is ``analytics_client.lake.maintenance.maintain_table``. It holds the
pipeline's lock, so it never runs on a machine while a sync of the same pipeline does.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# First, before Prefect is imported: importing from this package sets Prefect's environment
# (its server.PREFECT_DEFAULTS).
from analytics_client.orchestration import (
    DEFAULT_PIPELINE,
    DEFAULT_RETENTION_HOURS,
    DEFAULT_TARGET_SIZE,
    maintain_table,
    pipeline_lock,
    quiet_expected_tracebacks,
    resolve_storage_options,
)

# isort: split
from prefect import flow, get_run_logger

from analytics_client import (
    AnalyticsSyncError,
    Lake,
    MaintenanceFailed,
    load_config,
)

quiet_expected_tracebacks()  # an expected failure is its message, without a traceback


@flow(name="analytics-maintenance", log_prints=True)
def analytics_maintenance(
    pipeline: str = DEFAULT_PIPELINE,
    lake_uri: str = "./data/lake",
    resources: list[str] | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    target_size: int = DEFAULT_TARGET_SIZE,
    enforce_retention: bool = True,
    storage_block: str | None = None,
    z_order: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Compact, checkpoint and vacuum the tables of ``resources`` (default: every configured one).

    ``retention_hours`` (default 168, a week) is how long vacuum keeps files that the current
    version no longer uses; shorter needs ``enforce_retention=False``. ``z_order``: resource ->
    columns its table is z-ordered by instead of compacted (a whole rewrite; its primary key
    lets merges of clustered keys rewrite only their files: lake/maintenance.py).
    """
    logger = get_run_logger()
    names = resources or [r.name for r in load_config(None).resources]
    lake = Lake(lake_uri, storage_options=resolve_storage_options(lake_uri, storage_block))
    results, failures = [], []
    with pipeline_lock(pipeline):
        for name in names:
            try:
                result = maintain_table(lake, name, target_size=target_size,
                                        retention_hours=retention_hours,
                                        enforce_retention=enforce_retention,
                                        z_order=(z_order or {}).get(name, ()))
            except AnalyticsSyncError as exc:
                logger.error("%s", exc)
                failures.append(str(exc))
                continue
            results.append(result.to_dict())
    for r in results:
        print(f"{r['resource']:<8} {r['status']:<8} files {r['files_before']:>5} -> "
              f"{r['files_after']:<5} vacuumed {r['files_vacuumed']:>5}  version "
              f"{r['version_before']} -> {r['version_after']}")
    if failures:
        raise MaintenanceFailed(failures, len(names))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python flows/maintenance.py",
        description="Compact, checkpoint and vacuum the lake's tables.")
    parser.add_argument("--lake", default=os.environ.get("ANALYTICS_LAKE_URI", "./data/lake"))
    parser.add_argument("--pipeline", default=DEFAULT_PIPELINE)
    parser.add_argument("--resources", help="comma-separated subset (default: all)")
    parser.add_argument("--retention-hours", type=int, default=DEFAULT_RETENTION_HOURS)
    parser.add_argument("--storage-block", default=os.environ.get("ANALYTICS_STORAGE_BLOCK"))
    parser.add_argument("--z-order", action="append", default=[], metavar="RESOURCE=COL[,COL]",
                        help="z-order RESOURCE's table by these columns instead of compacting it "
                             "(a whole rewrite), e.g. --z-order deals=id; repeatable")
    args = parser.parse_args(argv)
    resources = [r.strip() for r in args.resources.split(",")] if args.resources else None
    z_order = {}
    for given in args.z_order:
        resource, _, columns = given.partition("=")
        names = [c.strip() for c in columns.split(",") if c.strip()]
        if not resource.strip() or not names:
            parser.error(f"--z-order {given!r}: write RESOURCE=COLUMN[,COLUMN], e.g. deals=id")
        z_order[resource.strip()] = names
    state = analytics_maintenance(pipeline=args.pipeline, lake_uri=args.lake, resources=resources,
                                  retention_hours=args.retention_hours,
                                  storage_block=args.storage_block, z_order=z_order or None,
                                  return_state=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())

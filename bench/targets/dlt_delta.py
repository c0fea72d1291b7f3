"""Benchmark target: dlt's ``rest_api_source`` into Delta tables (filesystem destination).

    python bench/targets/dlt_delta.py --base-url URL --lake DIR --pipeline NAME \
        [--max-table-nesting N]

The closest configuration to the seed that dlt accepts (it rejects the seed's ``error_handler``
and has no ``limit_param`` on ``page_number``): paginator ``page_number`` with ``base_page: 1``
and ``total_path: meta.page.total_pages``, ``page[size]: 10`` as a fixed param, the
organization header, merge on ``id``; retries are dlt's own settings, 5 attempts and backoff
factor 2 (``RUNTIME__REQUEST_MAX_ATTEMPTS`` / ``RUNTIME__REQUEST_BACKOFF_FACTOR``).
``--max-table-nesting N`` is dlt's source setting of that name (default 1000): below depth N
nested objects are kept as JSON and lists no longer become nested tables of their own.
Secrets come from ANALYTICS_API_KEY / ANALYTICS_ORGANIZATION_ID. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

STARTED = time.perf_counter()

RESOURCES = ("tags", "deals", "pages", "tasks", "users")


def dlt_config(base_url: str, api_key: str, organization_id: str,
               resources: list[str], page_size: int = 10) -> dict:
    """The seed configuration, changed only where dlt would refuse it."""
    return {
        "client": {
            "base_url": base_url,
            "auth": {"type": "api_key", "name": "api_key", "api_key": api_key,
                     "location": "header"},
            "headers": {"X-Organization-Id": organization_id},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {
                "data_selector": "data",
                "params": {"page[size]": page_size},
                "paginator": {
                    "type": "page_number",
                    "page_param": "page[number]",
                    "base_page": 1,
                    "total_path": "meta.page.total_pages",
                },
            },
        },
        "resources": [{"name": name, "endpoint": {"path": f"/v1/{name}"}} for name in resources],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--lake", required=True, help="bucket_url of the filesystem destination")
    parser.add_argument("--pipeline", default="bench_dlt")
    parser.add_argument("--dataset", default="analytics")
    parser.add_argument("--resources", default=",".join(RESOURCES))
    parser.add_argument("--max-table-nesting", type=int, default=None,
                        help="dlt's max_table_nesting for the source (default: dlt's, 1000)")
    args = parser.parse_args()

    # dlt's retry settings, telemetry off; set before dlt reads its configuration.
    os.environ.setdefault("RUNTIME__REQUEST_MAX_ATTEMPTS", "5")
    os.environ.setdefault("RUNTIME__REQUEST_BACKOFF_FACTOR", "2")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

    import dlt
    from dlt.sources.rest_api import rest_api_source

    imported, cpu_before = time.perf_counter(), time.process_time()
    resources = [r for r in args.resources.split(",") if r]
    source = rest_api_source(dlt_config(
        args.base_url, os.environ["ANALYTICS_API_KEY"], os.environ["ANALYTICS_ORGANIZATION_ID"],
        resources))
    if args.max_table_nesting is not None:
        source.max_table_nesting = args.max_table_nesting
    pipelines_dir = os.path.join(os.path.dirname(os.path.abspath(args.lake)),
                                 f".dlt-{args.pipeline}")
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline,
        destination=dlt.destinations.filesystem(bucket_url=os.path.abspath(args.lake)),
        dataset_name=args.dataset,
        pipelines_dir=pipelines_dir,
    )
    info = pipeline.run(source, table_format="delta")
    done, cpu_after = time.perf_counter(), time.process_time()
    rows = {}
    trace = pipeline.last_trace
    if trace is not None and trace.last_normalize_info is not None:
        rows = {k: v for k, v in trace.last_normalize_info.row_counts.items()
                if not k.startswith("_dlt")}
    print(json.dumps({
        "target": "dlt",
        "ok": not info.has_failed_jobs,
        "import_seconds": imported - STARTED,
        "sync_seconds": done - imported,
        # CPU of this process (all threads) during the sync, imports excluded
        "sync_cpu_seconds": cpu_after - cpu_before,
        "rows_normalized": rows,
        "tables_dir": os.path.join(os.path.abspath(args.lake), args.dataset),
    }), flush=True)
    return 0 if not info.has_failed_jobs else 1


if __name__ == "__main__":
    sys.exit(main())

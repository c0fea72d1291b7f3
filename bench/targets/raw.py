"""Benchmark target: the raw limit, a plain httpx loop over every page of every resource.

    python bench/targets/raw.py --base-url URL [--page-size 10] [--threads 5]

No storage, no schema, no state: one pooled ``httpx.Client`` and one thread per resource
(the library's concurrency), each paging ``page[number]`` = 1, 2, ... until an empty page or
``meta.page.total_pages``. Only what finishing needs is handled: a 429 waits its
``Retry-After``; a 5xx or a dropped connection is retried at once (at most 5 attempts).
Secrets come from ANALYTICS_API_KEY / ANALYTICS_ORGANIZATION_ID. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

STARTED = time.perf_counter()

import httpx  # noqa: E402

RESOURCES = ("tags", "deals", "pages", "tasks", "users")
ATTEMPTS = 5


def fetch_all(client: httpx.Client, resource: str, page_size: int) -> dict[str, int]:
    counts = {"rows": 0, "pages": 0, "retries": 0, "rate_limited": 0}
    page = 1
    while True:
        params = {"page[number]": page, "page[size]": page_size}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = client.get(f"/v1/{resource}", params=params)
            except httpx.TransportError:
                if attempt == ATTEMPTS:
                    raise
                counts["retries"] += 1
                continue
            if response.status_code == 429:
                counts["rate_limited"] += 1
                time.sleep(float(response.headers.get("retry-after", "1")))
                continue
            if response.status_code >= 500 and attempt < ATTEMPTS:
                counts["retries"] += 1
                continue
            response.raise_for_status()
            try:
                body = response.json()
            except ValueError:
                if attempt == ATTEMPTS:
                    raise
                counts["retries"] += 1
                continue
            break
        data = body["data"]
        counts["pages"] += 1
        counts["rows"] += len(data)
        total_pages = ((body.get("meta") or {}).get("page") or {}).get("total_pages")
        if not data or (total_pages is not None and page >= total_pages):
            return counts
        page += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--threads", type=int, default=len(RESOURCES))
    parser.add_argument("--resources", default=",".join(RESOURCES))
    args = parser.parse_args()
    resources = [r for r in args.resources.split(",") if r]
    headers = {"api_key": os.environ["ANALYTICS_API_KEY"],
               "X-Organization-Id": os.environ["ANALYTICS_ORGANIZATION_ID"]}
    imported, cpu_before = time.perf_counter(), time.process_time()
    limits = httpx.Limits(max_connections=args.threads, max_keepalive_connections=args.threads)
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=30,
                      limits=limits) as client, ThreadPoolExecutor(args.threads) as pool:
        results = dict(zip(resources, pool.map(
            lambda r: fetch_all(client, r, args.page_size), resources)))
    done, cpu_after = time.perf_counter(), time.process_time()
    print(json.dumps({
        "target": "raw",
        "ok": True,
        "import_seconds": imported - STARTED,
        "sync_seconds": done - imported,
        # CPU of this process (all threads) during the sync, imports excluded
        "sync_cpu_seconds": cpu_after - cpu_before,
        "rows_fetched": sum(c["rows"] for c in results.values()),
        "pages": sum(c["pages"] for c in results.values()),
        "retries": sum(c["retries"] for c in results.values()),
        "resources": results,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

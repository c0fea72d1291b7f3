"""Cost of a full run and of a run after 1 % of records changed, on the default sandbox.

    uv run python bench/incremental.py [--scale 1.0]

Prints requests and wall time of each run; nothing is asserted (timing goals live here).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from analytics_client import Credentials, load_config, run_sync
from analytics_client.sandbox import DEFAULT_COUNTS, serve_subprocess
from analytics_client.state import MemoryMarkStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--changed", type=float, default=0.01, help="share of records updated")
    args = parser.parse_args()
    with serve_subprocess(scale=args.scale, late_visibility=False) as sandbox, \
            tempfile.TemporaryDirectory() as lake:
        config = load_config(base_url=sandbox.base_url)
        creds = Credentials(sandbox.api_key, sandbox.organization_id)
        marks = MemoryMarkStore()
        for label in ("full", "incremental"):
            if label == "incremental":
                updates = {r: max(1, round(n * args.scale * args.changed))
                           for r, n in DEFAULT_COUNTS.items()}
                sandbox.advance(updates=updates, seed=1)
            before = sandbox.stats()["total_requests"]
            started = time.perf_counter()
            summaries = run_sync(config, creds, lake, marks=marks, pipeline="bench")
            seconds = time.perf_counter() - started
            requests = sandbox.stats()["total_requests"] - before
            rows = sum(s.rows_fetched for s in summaries)
            changed = sum(s.inserted + s.updated for s in summaries)
            print(f"{label:<12} {requests:>6,} requests  {rows:>7,} rows read  "
                  f"{changed:>6,} rows written  {seconds:6.1f} s")
            for s in summaries:
                print(f"    {s.resource:<6} {s.pages:>5,} pages {s.inserted:>6,} ins {s.updated:>5,} upd")


if __name__ == "__main__":
    main()

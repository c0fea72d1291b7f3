"""Benchmark target: our sync through the library (fetch, frames, Delta merge), no Prefect.

    python bench/targets/library.py --base-url URL --lake DIR --pipeline NAME [--profile FILE]

``run_sync`` with the seed configuration (page size 10, incremental on ``updated_at``); marks
live in the Delta tables only (no Prefect block store), so a second run on the same lake and
pipeline is incremental. Secrets come from ANALYTICS_API_KEY / ANALYTICS_ORGANIZATION_ID.
``--profile FILE`` writes a cProfile of the run (every thread) for ``pstats``.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

STARTED = time.perf_counter()

from analytics_client import Credentials, load_config, run_sync  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--pipeline", default="bench")
    parser.add_argument("--resources", default=None)
    parser.add_argument("--profile", default=None, help="write a cProfile of the run here")
    args = parser.parse_args()
    config = load_config(base_url=args.base_url)
    credentials = Credentials(os.environ["ANALYTICS_API_KEY"],
                              os.environ["ANALYTICS_ORGANIZATION_ID"])
    resources = args.resources.split(",") if args.resources else None
    imported, cpu_before = time.perf_counter(), time.process_time()
    if args.profile:
        import cProfile
        import pstats

        from analytics_client.run import session as run_module

        # cProfile sees one thread: profile each resource's worker thread separately and add
        # them to the main thread's profile.
        profiler = cProfile.Profile()

        original = run_module._summary
        profiles: list[cProfile.Profile] = []

        def profiled(*a, **kw):  # type: ignore[no-untyped-def]
            p = cProfile.Profile()
            profiles.append(p)
            return p.runcall(original, *a, **kw)

        run_module._summary = profiled  # the bench only: the library is unchanged on disk
        summaries = profiler.runcall(run_sync, config, credentials, args.lake,
                                     resources=resources, pipeline=args.pipeline)
        stats = pstats.Stats(profiler)
        for p in profiles:
            stats.add(p)
        stats.dump_stats(args.profile)
    else:
        summaries = run_sync(config, credentials, args.lake, resources=resources,
                             pipeline=args.pipeline)
    done, cpu_after = time.perf_counter(), time.process_time()
    print(json.dumps({
        "target": "library",
        "ok": all(s.status == "ok" for s in summaries),
        "import_seconds": imported - STARTED,
        "sync_seconds": done - imported,
        # CPU of this process (all threads) during the sync, imports excluded
        "sync_cpu_seconds": cpu_after - cpu_before,
        "rows_fetched": sum(s.rows_fetched for s in summaries),
        "inserted": sum(s.inserted for s in summaries),
        "updated": sum(s.updated for s in summaries),
        "rows_written": sum(s.inserted + s.updated for s in summaries),
        "pages": sum(s.pages for s in summaries),
        "retries": sum(s.retries for s in summaries),
        "errors": [s.error for s in summaries if s.error],
    }), flush=True)
    return 0 if all(s.status == "ok" for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())

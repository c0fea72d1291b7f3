"""What delete capture costs an incremental run (issue 21): extra requests with 0 and k deletes.

    uv run python bench/deletes.py --scale 1                    # k = 0, 1, 10, 100
    uv run python bench/deletes.py --scale 10 --ks 0,10
    uv run python bench/deletes.py --scale 0.01 --ks 0,1 --out DIR   # the smoke test's

Per scale: one full load with the library (``run_sync``, the default configuration as
``bench/targets/library.py`` loads it, page size 10) against the sandbox in its own process
(``serve_subprocess``, as ``bench/run.py`` starts it: no late stamps, fault seed 0), into a
lake kept aside. Then for each k: a fresh sandbox with the same world (the same seed and
counts, so it serves exactly what the lake holds), a copy of that lake, one advance deleting k
records of each resource (picked at random among all of them, so nearly all below the
incremental read's start) and updating a few (``--updates-share`` of each resource, at least
one: what an incremental run usually sees), the sandbox's request counts reset, and one
incremental run. Every k starts from the same lake and the same world: runs are independent.

Per resource: rows n before the run, k, ``delete_requests`` (the summary's: count probes,
re-reads of lost ranges, the verification read), the resource's requests in the run (the
sandbox's ``/_admin/stats``), ``deleted`` (rows marked), whether the live rows
(``_deleted_at IS NULL``) hold exactly the sandbox's truth ids (``/_admin/truth``) and every
marked row's id is in ``/_admin/deleted``, and the issue's goal ``k log2(n/k)`` beside it (two
probes for k = 0: the module docstring of ``analytics_client/run/deletes.py``).
``delete_requests`` is split into count probes, re-reads of lost ranges and the verification
read (``Breakdown``: two functions of that module wrapped in memory for the run). Per run: wall
seconds of ``run_sync`` and the other processes' load meanwhile (as ``bench/run.py`` measures
it). The library runs in this process; the sandbox in its own.

``max_delete_share`` is raised to 1.0 for every resource (``--max-delete-share``): with the
default 0.1, k = 100 among 1x's 250 tags trips the guard, which fails the resource and marks
nothing (by design; tests/test_deletes.py), and there is no cost to measure then.

Writes ``<out>/deletes-<timestamp>.json`` and ``.md``; prints the markdown. Nothing here
asserts a time or a cost.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import inspect
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from analytics_client import DEFAULT_CONFIG, Credentials, load_config, run_sync  # noqa: E402
from analytics_client.run import deletes as deletes_module  # noqa: E402
from analytics_sandbox import serve_subprocess  # noqa: E402
from bench.run import (  # noqa: E402
    RESOURCES,
    busy_cpu_seconds,
    machine,
    process_cpu_seconds,
    sandbox_admin,
    warm_sandbox,
)

PIPELINE = "bench-deletes"
KS = (0, 1, 10, 100)


def config(base_url: str, max_delete_share: float) -> Any:
    """The default configuration against ``base_url``, the delete guard at ``max_delete_share``."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    for resource in raw["resources"]:
        resource["max_delete_share"] = max_delete_share
    return load_config(raw, base_url=base_url)


def sandbox(scale: float) -> Any:
    return serve_subprocess(scale=scale, late_visibility=False, fault_seed=0)


class Breakdown:
    """Which of delete capture's requests were count probes and which the verification read,
    per resource (the rest are re-reads of lost ranges): the bench wraps two functions of
    ``analytics_client/run/deletes.py`` for the run (in memory only, as
    ``bench/targets/library.py --profile`` does; the library is unchanged on disk)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.probes: dict[str, int] = {}
        self.verification: dict[str, int] = {}

    def _wrap(self, name: str, into: dict[str, int]) -> Callable[..., Any]:
        original = getattr(deletes_module, name)
        signature = inspect.signature(original)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs).arguments
            cost, resource = bound["cost"], bound["plan"].name
            before = cost.requests
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    into[resource] = into.get(resource, 0) + cost.requests - before

        return wrapped

    @contextlib.contextmanager
    def installed(self) -> Iterator[Breakdown]:
        saved = {n: getattr(deletes_module, n) for n in ("_api_count", "_read_again")}
        deletes_module._api_count = self._wrap("_api_count", self.probes)
        deletes_module._read_again = self._wrap("_read_again", self.verification)
        try:
            yield self
        finally:
            for name, original in saved.items():
                setattr(deletes_module, name, original)


def sync(sb: Any, lake: Path, max_delete_share: float,
         breakdown: Breakdown | None = None) -> tuple[list[Any], dict[str, float]]:
    """One library run into ``lake``; its summaries, wall seconds and CPU figures: this
    process's (the run), the sandbox's, and the other processes' on the machine as cores kept
    busy (``bench/run.py``'s "other load": well above 0 means the wall time is disturbed)."""
    cfg = config(sb.base_url, max_delete_share)
    credentials = Credentials(sb.api_key, sb.organization_id)
    busy, own, served = busy_cpu_seconds(), sum(os.times()[:2]), process_cpu_seconds(sb.process.pid)
    started = time.perf_counter()
    with breakdown.installed() if breakdown else contextlib.nullcontext():
        summaries = run_sync(cfg, credentials, str(lake), pipeline=PIPELINE)
    wall = time.perf_counter() - started
    own = sum(os.times()[:2]) - own
    served = process_cpu_seconds(sb.process.pid) - served
    other = max(0.0, busy_cpu_seconds() - busy - own - served)
    return summaries, {"wall_seconds": round(wall, 3), "cpu_seconds": round(own, 2),
                       "sandbox_cpu_seconds": round(served, 2),
                       "other_load": round(other / wall, 2) if wall else 0.0}


def table_ids(lake: Path, resource: str) -> tuple[set[str], set[str]]:
    """The ids of the table's live rows and of its rows marked deleted."""
    frame = pl.read_delta(str(lake / resource))
    if "_deleted_at" not in frame.columns:
        return set(frame["id"].cast(pl.String).to_list()), set()
    live = frame.filter(pl.col("_deleted_at").is_null())
    marked = frame.filter(pl.col("_deleted_at").is_not_null())
    return (set(live["id"].cast(pl.String).to_list()),
            set(marked["id"].cast(pl.String).to_list()))


def goal(n: int, k: int) -> float:
    """The issue's goal figure ``k log2(n/k)``; 0 for k = 0 (the docstring says two probes)."""
    return k * math.log2(n / k) if k and n > k else 0.0


def run_k(scale: float, k: int, base_lake: Path, work: Path, counts: dict[str, int],
          updates_share: float, max_delete_share: float, seed: int) -> dict[str, Any]:
    """One incremental run after k deletes per resource, on a copy of the full-loaded lake."""
    lake = work / f"lake-k{k}"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(base_lake, lake)
    with sandbox(scale) as sb:
        health = sandbox_admin(sb, "GET", "health")["counts"]
        if health != counts:
            raise RuntimeError(f"the fresh sandbox's counts {health} differ from the full "
                               f"load's {counts}")
        for resource in RESOURCES:
            warm_sandbox(sb, resource)
        updates = {r: max(1, round(counts[r] * updates_share)) for r in RESOURCES}
        deletes = {r: min(k, counts[r]) for r in RESOURCES}
        touched = sb.advance(updates=updates, deletes=deletes, seed=f"deletes-bench:{seed}:{k}")
        sandbox_admin(sb, "DELETE", "stats")
        breakdown = Breakdown()
        summaries, timing = sync(sb, lake, max_delete_share, breakdown)
        stats = sb.stats()
        rows = []
        for s in summaries:
            r = s.resource
            requests = sum(stats["requests"].get(r, {}).values())
            truth = {str(rec["id"]) for rec in sb.truth(r)}
            gone = set(sb.deleted(r))
            live, marked = table_ids(lake, r)
            n, kk = counts[r], deletes[r]
            rows.append({
                "resource": r, "n": n, "k": kk, "updates": updates[r],
                "deleted_by_sandbox": len(touched.get(r, {}).get("deleted", [])),
                "status": s.status, "error": s.error,
                "delete_requests": s.delete_requests,
                "probes": breakdown.probes.get(r, 0),
                "verification_read": breakdown.verification.get(r, 0),
                "range_rereads": (s.delete_requests - breakdown.probes.get(r, 0)
                                  - breakdown.verification.get(r, 0)),
                "requests": requests,
                "read_requests": requests - s.delete_requests,
                "pages": s.pages, "deleted": s.deleted, "inserted": s.inserted,
                "updated": s.updated,
                "live_equals_truth": live == truth,
                "live_missing": len(truth - live), "live_extra": len(live - truth),
                "marked_alive": len(marked & truth), "marked_not_deleted": len(marked - gone),
                "goal": round(goal(n, kk), 1),
                "notes": list(s.notes),
            })
        total = stats["total_requests"]
    shutil.rmtree(lake, ignore_errors=True)
    return {"scale": scale, "k": k, **timing, "total_requests": total, "resources": rows}


def run_scale(scale: float, ks: list[int], work: Path, updates_share: float,
              max_delete_share: float, seed: int) -> dict[str, Any]:
    base_lake = work / f"lake-{scale:g}x-full"
    shutil.rmtree(base_lake, ignore_errors=True)
    with sandbox(scale) as sb:
        counts = sandbox_admin(sb, "GET", "health")["counts"]
        counts = {r: int(counts[r]) for r in RESOURCES}
        for resource in RESOURCES:
            warm_sandbox(sb, resource)
        print(f"scale {scale:g}x: {sum(counts.values()):,} records {counts}; full load",
              flush=True)
        sandbox_admin(sb, "DELETE", "stats")
        summaries, timing = sync(sb, base_lake, max_delete_share)
        wall = timing["wall_seconds"]
        full_requests = sb.stats()["total_requests"]
    failed = [f"{s.resource}: {s.error}" for s in summaries if s.status != "ok"]
    if failed:
        raise RuntimeError(f"the full load failed: {failed}")
    print(f"  full load {wall:.1f} s, {full_requests:,} requests", flush=True)
    runs = []
    for k in ks:
        result = run_k(scale, k, base_lake, work, counts, updates_share, max_delete_share, seed)
        runs.append(result)
        print(f"  k={k}: {result['wall_seconds']:.2f} s, {result['total_requests']:,} requests, "
              f"other load {result['other_load']:.2f}", flush=True)
        for r in result["resources"]:
            print(f"    {r['resource']:<6} n={r['n']:>7,} k={r['k']:>3} "
                  f"delete_requests={r['delete_requests']:>4} (probes {r['probes']}, "
                  f"re-reads {r['range_rereads']}, verification {r['verification_read']}) "
                  f"requests={r['requests']:>5} "
                  f"deleted={r['deleted']:>3} live==truth={r['live_equals_truth']} "
                  f"goal={r['goal']} {r['status']}"
                  + (f" {r['error']}" if r["error"] else ""), flush=True)
    shutil.rmtree(base_lake, ignore_errors=True)
    return {"scale": scale, "counts": counts, "full_load_seconds": wall,
            "full_load_other_load": timing["other_load"],
            "full_load_requests": full_requests, "runs": runs}


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    machine_ = meta["machine"]
    lines = [f"Command: `{meta['command']}`; started {meta['started']}; commit "
             f"{machine_['commit']}"
             + (" (uncommitted: " + ", ".join(machine_["uncommitted"]) + ")"
                if machine_["uncommitted"] else "")
             + f"; {machine_['cpus']} cores; updates {meta['updates_share']:g} of each "
             f"resource (at least 1) beside the deletes; max_delete_share "
             f"{meta['max_delete_share']:g}.", "",
             "delete requests = the summary's `delete_requests` = count probes + re-reads of "
             "lost ranges + the verification read; run requests = all the resource's requests "
             "in the incremental run (the sandbox's count), the incremental read's in "
             "brackets; live = truth: the live rows' ids are the sandbox's truth ids and every "
             "marked id is one the sandbox deleted. The **all** row: the whole run (its "
             "requests, wall seconds, and other load: cores kept busy by other processes "
             "meanwhile).", ""]
    for scale in result["scales"]:
        lines += [f"### {scale['scale']:g}x ({sum(scale['counts'].values()):,} records; full "
                  f"load {scale['full_load_seconds']:.1f} s, {scale['full_load_requests']:,} "
                  f"requests, other load {scale['full_load_other_load']:.2f})", "",
                  "| k | resource | n | delete requests | probes / re-reads / verification "
                  "| goal k·log2(n/k) | run requests (read) | deleted | live = truth |",
                  "|---:|---|---:|---:|---|---:|---:|---:|---|"]
        for run in scale["runs"]:
            for r in run["resources"]:
                ok = "yes" if r["live_equals_truth"] and not r["marked_not_deleted"] else (
                    f"**no** (missing {r['live_missing']}, extra {r['live_extra']}, marked "
                    f"alive {r['marked_alive']}, marked not deleted {r['marked_not_deleted']})")
                if r["status"] != "ok":
                    ok += f" ({r['status']}: {r['error']})"
                lines.append(
                    f"| {r['k']} | {r['resource']} | {r['n']:,} | {r['delete_requests']:,} | "
                    f"{r['probes']} / {r['range_rereads']} / {r['verification_read']} | "
                    f"{r['goal']:,.1f} | {r['requests']:,} ({r['read_requests']:,}) | "
                    f"{r['deleted']:,} | {ok} |")
            rs = run["resources"]
            lines.append(
                f"| {run['k']} | **all** | {sum(scale['counts'].values()):,} | "
                f"{sum(r['delete_requests'] for r in rs):,} | "
                f"{sum(r['probes'] for r in rs)} / {sum(r['range_rereads'] for r in rs)} / "
                f"{sum(r['verification_read'] for r in rs)} | "
                f"{sum(r['goal'] for r in rs):,.1f} | {run['total_requests']:,} "
                f"({sum(r['read_requests'] for r in rs):,}) | "
                f"{sum(r['deleted'] for r in rs):,} | run {run['wall_seconds']:.2f} s wall, "
                f"other load {run['other_load']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/deletes.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="1",
                        help="comma-separated scales (1 = 27,250 records; 10 = 10x)")
    parser.add_argument("--ks", default=",".join(map(str, KS)),
                        help="comma-separated deletes per resource")
    parser.add_argument("--updates-share", type=float, default=0.001,
                        help="share of each resource updated beside the deletes (at least 1)")
    parser.add_argument("--max-delete-share", type=float, default=1.0,
                        help="every resource's max_delete_share (the default config's is 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the advance's picks")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"),
                        help="directory for deletes-<timestamp>.json and .md")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scale.split(",") if s.strip()]
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    started = dt.datetime.now(dt.UTC)
    command = "uv run python bench/deletes.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    meta = {"command": command.strip(), "started": started.isoformat(timespec="seconds"),
            "ks": ks, "updates_share": args.updates_share,
            "max_delete_share": args.max_delete_share, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="analytics-bench-deletes-") as tmp:
        os.environ["ANALYTICS_SYNC_LOCK_DIR"] = str(Path(tmp) / "locks")  # as bench/run.py's
        results = [run_scale(scale, ks, Path(tmp), args.updates_share, args.max_delete_share,
                             args.seed) for scale in scales]
    meta["elapsed_seconds"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    result = {"meta": meta, "scales": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    json_path = out / f"deletes-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    markdown = render(result)
    json_path.with_suffix(".md").write_text(markdown)
    print("\n" + markdown)
    print(f"results: {json_path} and {json_path.with_suffix('.md')}", flush=True)
    ok = all(r["status"] == "ok" and r["live_equals_truth"] and not r["marked_not_deleted"]
             for s in results for run in s["runs"] for r in run["resources"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""What landing one resource costs as its table grows (issue 24): 10k, 300k, 3M rows.

    uv run python bench/scale.py --sizes 10000,300000            # this machine's default
    uv run python bench/scale.py --sizes 10000,300000,3000000    # 3M: minutes, ~GBs of disk
    uv run python bench/scale.py --sizes 300000 --per-batch      # as before issue 24
    uv run python bench/scale.py --sizes 10000,300000 --record-baseline   # the merge guard's

Per size N: a full load of N ``deals`` into a new table, then an incremental run in which a
share (``--change-share``, 1 %) of the rows changed, keys picked at random (so spread over every
file, the worst case for a merge). Both run the library's own writer as ``run/sync.py`` drives
it: batches of ``--batch-rows`` records are staged (``TableWriter.stage``) and landed in one
commit with a mark (``flush``) at the end of the read, or whenever ``DEFAULT_MERGE_BYTES`` are
staged. ``--per-batch`` merges every batch in its own commit (``TableWriter.write``), as every
run did before issue 24. The HTTP read is left out: its cost per record is flat (bench/run.py's
raw target); what grows with the table is the landing.

The records are the sandbox's (``analytics_sandbox.World``'s deals, 1,000 of them as
templates), each with its own random-looking id and cursor, generated batch by batch in the
measuring process (so memory holds one batch); the time spent generating them is measured and
subtracted. Each run is its own process; it reports its wall and CPU seconds (generation
subtracted), its peak RSS (the kernel's ``VmHWM``), the wall seconds spent in landing commits,
and from the table's history (Delta's commit metrics) for the versions it committed: commits,
operations, rows written (``num_added_rows`` / ``num_output_rows``) and rows rewritten (a
merge's ``num_target_rows_copied + num_target_rows_updated``: the rows of the files it replaced).

The merge guard: ``--record-baseline`` stores each size's incremental landing wall seconds and
peak RSS in ``--baseline`` (bench/scale-baseline.json); later runs fail (exit 1) if either is
above ``--guard`` (1.5) times the recorded figure: a deltalake upgrade that makes merges slower
or hungrier shows here. Figures from a shared machine are rough; record the baseline on a quiet
one. Nothing here is a test: no timing is asserted in tests/.

Writes ``<out>/scale-<timestamp>.json`` and ``.md``; prints the markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = ROOT / "bench" / "scale-baseline.json"
TEMPLATES = 1_000
BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MIB = 1024 * 1024


def _stamp(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _id(n: int) -> str:
    """A random-looking, stable id: sorted ids spread rows over every file, as real ones do."""
    return "deal_" + hashlib.blake2b(n.to_bytes(8, "little"), digest_size=6).hexdigest()


def _templates() -> list[dict[str, Any]]:
    from analytics_sandbox import World

    counts = {"deals": TEMPLATES, "tags": 0, "users": 0, "pages": 0, "tasks": 0}
    return [dict(r) for r in World(seed=24, counts=counts).truth("deals")]


def _records(numbers: list[int] | range, templates: list[dict[str, Any]], *, version: int,
             batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of deals numbered ``numbers``; ``version`` > 0: changed (later cursor, name)."""
    for start in range(0, len(numbers), batch_rows):
        batch = []
        for n in numbers[start:start + batch_rows]:
            record = dict(templates[n % len(templates)])
            record["id"] = _id(n)
            record["updated_at"] = _stamp(BASE_US + n * 1_000 + version * 10**12)
            if version:
                record["name"] = f"{record['name']} v{version}"
            batch.append(record)
        yield batch


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _history_since(uri: str, version: int) -> dict[str, Any]:
    """Commits after ``version``: operations, rows written and rewritten (Delta's metrics)."""
    from deltalake import DeltaTable

    found: dict[str, Any] = {"commits": 0, "operations": [], "rows_written": 0,
                             "rows_rewritten": 0, "files_removed": 0}
    for entry in DeltaTable(uri).history():
        if entry["version"] <= version:
            continue
        metrics = entry.get("operationMetrics", {})
        found["commits"] += 1
        found["operations"].append(entry["operation"])
        found["rows_written"] += int(metrics.get("num_added_rows", 0)) \
            + int(metrics.get("num_output_rows", 0))
        found["rows_rewritten"] += int(metrics.get("num_target_rows_copied", 0)) \
            + int(metrics.get("num_target_rows_updated", 0))
        found["files_removed"] += int(metrics.get("num_target_files_removed", 0)) \
            + int(metrics.get("num_removed_files", 0))
    return found


def child(phase: str, lake_dir: str, size: int, batch_rows: int, change_share: float,
          per_batch: bool, seed: int) -> dict[str, Any]:
    """One run (``phase`` full or incremental) in this process; its figures."""
    from deltalake import DeltaTable

    from analytics_client.config.schemas import contract_columns
    from analytics_client.lake.tables import Lake, TableMark, TableWriter
    from analytics_client.run.budget import DEFAULT_MERGE_BYTES

    templates = _templates()
    lake = Lake(lake_dir)
    uri = lake.table_uri("deals")
    before = DeltaTable(uri).version() if DeltaTable.is_deltatable(uri) else -1
    if phase == "full":
        numbers: list[int] | range = range(size)
        version = 0
    else:
        changed = max(1, round(size * change_share))
        numbers = sorted(random.Random(seed).sample(range(size), changed))
        version = 1
    writer = TableWriter(lake, "deals", columns=contract_columns("deals"))
    generating = generating_cpu = landing = 0.0
    cpu = time.process_time()  # every thread of the process: delta-rs' too
    started = time.perf_counter()
    batches = _records(numbers, templates, version=version, batch_rows=batch_rows)
    mark = 0
    while True:
        t, c = time.perf_counter(), time.process_time()
        batch = next(batches, None)
        generating += time.perf_counter() - t
        generating_cpu += time.process_time() - c
        if batch is None:
            break
        mark = max(mark, BASE_US) + len(batch)
        t = time.perf_counter()
        if per_batch:
            writer.write(batch, mark=TableMark("bench", mark))
            landing += time.perf_counter() - t
            continue
        writer.stage(batch)
        if writer.staged_bytes >= DEFAULT_MERGE_BYTES:
            t = time.perf_counter()
            writer.flush(mark=TableMark("bench", mark))
            landing += time.perf_counter() - t
    t = time.perf_counter()
    writer.flush(mark=TableMark("bench", mark))
    landing += time.perf_counter() - t
    writer.close()
    wall = time.perf_counter() - started - generating
    cpu_seconds = time.process_time() - cpu - generating_cpu
    rows = len(numbers)
    return {"phase": phase, "size": size, "rows": rows, "per_batch": per_batch,
            "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu_seconds, 3),
            "landing_wall_seconds": round(landing, 3),
            "generate_seconds": round(generating, 3),
            "us_per_row": round(wall / rows * 1e6, 2), "cpu_us_per_row": round(
                cpu_seconds / rows * 1e6, 2),
            "peak_rss_mib": round(_peak_rss_mib(), 1), **_history_since(uri, before)}


def _run_child(phase: str, lake: Path, size: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--lake",
               str(lake), "--sizes", str(size), "--batch-rows", str(args.batch_rows),
               "--change-share", str(args.change_share), "--seed", str(args.seed)]
    if args.per_batch:
        command.append("--per-batch")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"{phase} at {size:,} rows failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _markdown(results: list[dict[str, Any]], notes: list[str]) -> str:
    lines = ["| rows | run | mode | wall s | µs/row | CPU µs/row | landing wall s | commits | "
             "operations | rows written | rows rewritten | peak RSS MiB |",
             "|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['phase']} ({r['rows']:,} rows) | "
            f"{'per batch' if r['per_batch'] else 'staged'} | {r['wall_seconds']:.2f} | "
            f"{r['us_per_row']:.1f} | {r['cpu_us_per_row']:.1f} | "
            f"{r['landing_wall_seconds']:.2f} | {r['commits']} | "
            f"{', '.join(sorted(set(r['operations'])))} | {r['rows_written']:,} | "
            f"{r['rows_rewritten']:,} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def _guard(results: list[dict[str, Any]], baseline: dict[str, Any], limit: float) -> list[str]:
    """The merge guard: incremental landing wall and peak RSS within ``limit`` x the baseline."""
    failed = []
    for r in results:
        if r["phase"] != "incremental" or r["per_batch"]:
            continue
        recorded = baseline.get(str(r["size"]))
        if recorded is None:
            continue
        for key in ("landing_wall_seconds", "peak_rss_mib"):
            if r[key] > limit * recorded[key]:
                failed.append(f"{r['size']:,} rows: {key} {r[key]} is over {limit}x the "
                              f"baseline's {recorded[key]} (recorded {baseline['recorded']})")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/scale.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,300000",
                        help="table sizes in rows, comma-separated (3000000 is optional)")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument("--per-batch", action="store_true",
                        help="merge each batch in its own commit, as before issue 24")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--record-baseline", action="store_true")
    parser.add_argument("--guard", type=float, default=1.5)
    parser.add_argument("--child", choices=("full", "incremental"), help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps(child(args.child, args.lake, sizes[0], args.batch_rows,
                               args.change_share, args.per_batch, args.seed)))
        return 0
    results = []
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        for size in sizes:
            lake = work / f"lake-{size}"
            for phase in ("full", "incremental"):
                results.append(_run_child(phase, lake, size, args))
                print(json.dumps(results[-1]), file=sys.stderr)
            shutil.rmtree(lake, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = [f"batches of {args.batch_rows:,} records; incremental: {args.change_share:.0%} of "
             "the rows changed, keys at random", f"load average at the end: {os.getloadavg()}"]
    failed: list[str] = []
    if args.record_baseline:
        recorded = {"recorded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        recorded.update({str(r["size"]): {"landing_wall_seconds": r["landing_wall_seconds"],
                                          "peak_rss_mib": r["peak_rss_mib"]}
                         for r in results if r["phase"] == "incremental" and not r["per_batch"]})
        args.baseline.write_text(json.dumps(recorded, indent=2) + "\n")
        notes.append(f"baseline recorded in {args.baseline}")
    elif args.baseline.exists():
        failed = _guard(results, json.loads(args.baseline.read_text()), args.guard)
        notes.append("merge guard: " + ("; ".join(failed) if failed else
                                        f"within {args.guard}x of {args.baseline.name}"))
    markdown = _markdown(results, notes)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"scale-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}"
    (args.out / f"{name}.json").write_text(json.dumps({"results": results, "notes": notes},
                                                      indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown)
    print(markdown)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

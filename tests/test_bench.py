"""The benchmark harness (bench/run.py) runs end to end on a tiny scale; no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics_client.sandbox import DEFAULT_COUNTS
from tests.support import DEFAULT_RECORDS

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = bench  # dataclasses look their module up while the class is built
_spec.loader.exec_module(bench)

DLT_INSTALLED = importlib.util.find_spec("dlt") is not None
PAGES_OF_10 = DEFAULT_RECORDS // 10  # requests of one full read of the default world


@pytest.mark.slow
def test_harness_runs_on_a_tiny_scale_and_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "results"
    report = tmp_path / "RESULTS.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--scale", "0.01", "--repeat", "1",
         "--targets", "raw,library,dlt", "--scenarios", "full,incremental", "--out", str(out),
         "--results-md", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    [json_path] = out.glob("*.json")
    result = json.loads(json_path.read_text())
    summary = {(r["scenario"], r["target"], r["phase"]): r for r in result["summary"]}
    expected = {("full", "raw", "full"), ("full", "library", "full"),
                ("incremental", "library", "full"), ("incremental", "library", "incremental")}
    if DLT_INSTALLED:
        expected.add(("full", "dlt", "full"))
    else:  # never a failure: skipped with a message saying how to install it
        assert any("dlt skipped" in note for note in result["meta"]["notes"])
        assert "dlt skipped" in completed.stdout
    assert set(summary) == expected
    records = sum(round(n * 0.01) for n in DEFAULT_COUNTS.values())
    for key in expected - {("incremental", "library", "incremental")}:
        row = summary[key]
        assert row["runs"] == 1 and row["failed"] == 0
        assert row["rows"] == records, key
        assert row["requests"] > 0 and row["wall_seconds"] > 0 and row["peak_rss_mib"] > 0
    incremental = summary[("incremental", "library", "incremental")]
    assert 0 < incremental["rows"] < records  # 1% changed: a handful rewritten, not everything
    assert incremental["requests"] < summary[("incremental", "library", "full")]["requests"]
    assert result["targets"] and all("met" in t for t in result["targets"])

    [md_path] = out.glob("*.md")
    markdown = md_path.read_text()
    assert markdown == report.read_text()
    assert "| scale | scenario | target |" in markdown
    assert "| 0.01x | full | raw |" in markdown and "| 0.01x | full | library |" in markdown
    assert "library (incremental)" in markdown
    assert "## Targets" in markdown and "python bench/run.py --scale 0.01" in markdown

    # --report re-renders saved results without running anything
    rendered = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--report",
                               str(json_path)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert rendered.returncode == 0 and rendered.stdout == markdown


def test_targets_are_marked_met_or_not_from_the_medians() -> None:
    def run(scale: float, scenario: str, target: str, wall: float, rss: float = 100,
            phase: str = "full", ok_requests: int = PAGES_OF_10, requests: int = PAGES_OF_10,
            rate_limited: int = 0) -> dict:
        return {"scale": scale, "scenario": scenario, "target": target, "phase": phase,
                "rep": 1, "ok": True, "wall_seconds": wall, "work_seconds": wall - 1,
                "peak_rss_mib": rss, "requests": requests, "rate_limited": rate_limited,
                "server_errors": 0, "resets": 0, "ok_requests": ok_requests, "rows": DEFAULT_RECORDS}

    runs = [
        run(1, "full", "raw", 2.0), run(1, "full", "library", 2.4, rss=200),
        run(1, "full", "library", 9.0, rss=200), run(1, "full", "library", 2.5, rss=200),
        run(10, "full", "raw", 20.0), run(10, "full", "library", 30.0, rss=260),
        run(10, "full", "flow", 40.0, rss=500), run(10, "full", "dlt", 100.0, rss=450),
        run(1, "rate50", "library", 57.0, ok_requests=PAGES_OF_10, requests=PAGES_OF_10 + 15,
            rate_limited=15),
    ]
    summary = bench.summarise(runs)
    library_1x = bench._find(summary, 1, "full", "library")
    assert library_1x is not None and library_1x["wall_seconds"] == 2.5  # the median of 3
    status = {t["target"]: t["met"] for t in bench.evaluate(summary)}
    assert status["full load 1x: library sync <= 1.3x raw"] is True      # 1.25x
    assert status["full load 10x: library sync <= 1.3x raw"] is False    # 1.5x
    assert status["full load 10x: whole flow <= 0.6x dlt's whole process"] is True
    assert status["peak RSS of library sync at 10x <= 1.2x its peak at 1x"] is False
    assert status["flow process tree at 10x below dlt's 450 MiB"] is False
    assert status["rate limit 50 req/s 1x: library >= 95% of allowed rate, 429s < 1%"] is True
    assert status["50 ms latency 1x: library >= 6x faster than dlt"] is None  # not measured


def test_process_tree_rss_counts_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); "
                              "time.sleep(30)"])
    try:
        deadline = 50
        while deadline and bench.tree_rss(child.pid) < 60 << 20:
            deadline -= 1
            import time
            time.sleep(0.1)
        alone = bench.tree_rss(child.pid)
        assert alone >= 60 << 20
        assert bench.tree_rss(os.getpid()) >= alone  # the child is in this process's tree
    finally:
        child.kill()
        child.wait()

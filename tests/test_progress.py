"""Progress of a long read against the API's total_count: share, rate, time left (defect 12)."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import pytest

from analytics_client import DEFAULT_CONFIG
from analytics_client.core.timing import Timing
from analytics_client.run.progress import progress_line
from analytics_client.state.marks import MemoryMarkStore
from analytics_sandbox import SandboxSettings, World, serve
from tests.support import sync

COUNTS = {"tags": 30, "users": 60, "deals": 600, "pages": 90, "tasks": 150}


@pytest.mark.parametrize(("rows", "reread", "total", "seconds", "expected"), [
    (4_500, 0, 10_000, 10.0, "45 % (4,500 of 10,000 rows), 450 rows/s, about 12 s left"),
    (5_500, 1_000, 9_000, 3.0, "50 % (4,500 of 9,000 rows), 1,500 rows/s, about 3 s left"),
    (10_500, 0, 10_000, 5.0, "99 % (10,500 of 10,000 rows)"),  # created meanwhile: never 100
    (100, 0, 360_100, 1.0, "about 1 h 00 min left"),
    (250, 0, None, 2.0, "250 rows, 125 rows/s"),  # no count from the API
])
def test_the_progress_line_says_share_rate_and_time_left(
        rows: int, reread: int, total: int | None, seconds: float, expected: str) -> None:
    """Pure arithmetic on counts and an elapsed time the caller measured."""
    assert expected in progress_line(rows, reread, total, seconds, pages=7, commits=1)


@pytest.mark.parametrize("walks", [1, 4])
def test_a_run_logs_progress_against_the_apis_total_count(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, walks: int) -> None:
    """Every page (the interval set to 0 here) logs the share of total_count read so far, with
    one walk and with four (split whatever the pages' timing: ``slow_page`` 0)."""
    timing = Timing(progress_every=0.0, slow_page=0.0)
    caplog.set_level(logging.INFO, logger="analytics_client.run.sync")
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["resource_defaults"]["endpoint"]["concurrency"] = walks
    with serve(World(seed=5, counts=COUNTS), SandboxSettings(late_visibility=False)) as sandbox:
        sync(sandbox, tmp_path, MemoryMarkStore(), resources=["deals"], config=config,
             timing=timing)
    lines = [r.getMessage() for r in caplog.records if "rows/s" in r.getMessage()]
    assert lines and all(line.startswith("deals: ") for line in lines)
    shares = [int(m.group(1)) for line in lines if (m := re.search(r"(\d+) % \(", line))]
    assert len(shares) == len(lines) and all(f"of {COUNTS['deals']:,} rows" in x for x in lines)
    assert shares[-1] >= 90 and "left" in lines[-1]
    if walks == 1:  # one walk: records read twice are known as they come, the share only grows
        assert shares == sorted(shares)

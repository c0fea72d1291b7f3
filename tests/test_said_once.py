"""A failure is said once, the summary is on stdout and explains itself (issue 12, defects 8, 9).

Real process, real Prefect API (the harness), real sandbox on loopback; lines are counted.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from analytics_client import Credentials, load_config
from analytics_client.core.summary import ResourceSummary, render_table
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_sandbox import RunningSandbox, serve_subprocess
from tests.plans import request_of
from tests.support import RESOURCES, SMALL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def api() -> Iterator[RunningSandbox]:
    with serve_subprocess(counts=SMALL, seed=3) as sandbox:
        yield sandbox


def _run(api: RunningSandbox, lake: Path, *extra: str, key: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "ANALYTICS_API_KEY": key or api.api_key,
           "ANALYTICS_ORGANIZATION_ID": api.organization_id}
    env.pop("ANALYTICS_SYNC_DEBUG", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "flows" / "main.py"), "--base-url", api.base_url, "--lake",
         str(lake), "--pipeline", f"said-once-{len(extra)}", "--api-key-block", "",
         "--organization-block", "", *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_wrong_api_key_is_said_once_per_resource_without_tracebacks(
        harness: None, api: RunningSandbox, tmp_path: Path) -> None:
    """Before: 318 lines, 6 tracebacks, each message 4-5 times. Now: one line per resource,
    the summary (with the error again as its footnote), one closing line; --debug adds tracebacks."""
    done = _run(api, tmp_path / "lake", key="sk-wrong-key")
    assert done.returncode == 1
    terminal = done.stdout + done.stderr
    print(f"\nwrong key: {len(terminal.splitlines())} lines")
    assert "Traceback" not in terminal
    for resource in RESOURCES:
        said = [line for line in terminal.splitlines()
                if f"{resource}: HTTP 401" in line and "5 of 5 resources failed" not in line]
        # once where it happened (the task's final state), once in the summary's footnotes
        assert len(said) == 2, "\n".join(said)
        assert sum(line.startswith(f"failed: {resource}: HTTP 401") for line in said) == 1
    assert "HTTP 401" not in done.stdout.split("total")[0]  # the table's rows hold no errors
    # the run's end: every resource's cause, alike ones grouped (issue 23, item 8)
    assert ("5 of 5 resources failed: tags, deals, pages, tasks, users: HTTP 401 from "
            f"{api.base_url.removeprefix('http://')}: check the API key") in done.stderr
    assert len(terminal.splitlines()) <= 40

    debug = _run(api, tmp_path / "lake", "--debug", key="sk-wrong-key")
    assert debug.returncode == 1
    assert (debug.stdout + debug.stderr).count("Traceback") == len(RESOURCES)


@pytest.mark.slow
def test_the_summary_is_printed_on_stdout_once_and_explains_fetched_versus_written(
        harness: None, api: RunningSandbox, tmp_path: Path) -> None:
    """stdout holds the table; stderr (the log) does not repeat it; the footnote accounts for
    every fetched row not inserted or updated."""
    first = _run(api, tmp_path / "lake")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "total     ok" in first.stdout and "total     ok" not in first.stderr
    # Incremental after changes (a quiet run reads nothing: the API's clock proved the marks):
    # page edges and tie groups are read twice.
    api.advance(updates=30, creates=5, seed="said-once")
    second = _run(api, tmp_path / "lake")
    assert second.returncode == 0, second.stderr[-3000:]
    lines = second.stdout.splitlines()
    [total] = [line for line in lines if line.startswith("total ")]
    fetched, inserted, updated = (int(v.replace(",", "")) for v in total.split()[3:6])
    start = next(i for i, line in enumerate(lines) if line.startswith("fetched "))
    why = " ".join([lines[start], *(x.strip() for x in lines[start + 1:] if x.startswith("  "))])
    assert fetched > inserted + updated
    numbers = [int(w.replace(",", "")) for w in why.split() if w.replace(",", "").isdigit()]
    assert numbers[0] == fetched and numbers[1] + numbers[2] + numbers[3] == fetched
    assert "read twice at page edges" in why and "already in the table" in why


def test_every_reread_row_is_accounted_for_in_the_footnote() -> None:
    """fetched = inserted + updated + read twice + unchanged, always."""
    s = ResourceSummary("deals", status="ok", pages=3, rows_fetched=30, inserted=20, updated=2,
                        reread=5)
    table = render_table([s])
    assert "fetched 30 = 22 inserted or updated + 5 read twice" in table and "+ 3 already" in table
    assert "read twice" not in render_table([ResourceSummary("x", "ok", 1, 10, 10)])


@respx.mock
def test_each_retry_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Our retry line, and not stamina's default hook as well."""
    config = load_config(base_url="https://api.test")
    respx.get("https://api.test/v1/tags").mock(side_effect=[
        httpx.Response(503), httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(200, json={"data": [], "meta": {"page": {"total_pages": 1}}})])
    events: list[RetryEvent] = []
    caplog.set_level(logging.DEBUG)
    with ApiClient(config, Credentials("k", "o")) as client:
        client.get(request_of(config.resource("tags")), {}, page=1, on_retry=events.append)
    retry_lines = [r for r in caplog.records if "retry" in r.getMessage().lower()]
    assert len(events) == 2
    assert [r.name for r in retry_lines] == ["analytics_client.http.client"] * 2, \
        [(r.name, r.getMessage()) for r in retry_lines]


def test_the_readme_samples_are_what_render_table_prints() -> None:
    """The README's summaries (copied from real runs) are re-rendered from their own numbers and
    must come out identical: the sample cannot drift from the code's format."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0].strip("\n") for b in readme.split("```\nresource  status")[1:]]
    assert len(blocks) >= 2
    for block in blocks:
        text = "resource  status" + block
        rows = [line.split() for line in text.splitlines()[2:]
                if line and not line.startswith(("-", "total", "fetched", " "))]
        summaries = []
        for name, status, *numbers in rows:
            pages, fetched, inserted, updated, deleted, quarantined, retries, commits = (
                int(n.replace(",", "")) for n in numbers[:8])
            summary = ResourceSummary(name, status, pages, fetched, inserted, updated,
                                      quarantined, retries, commits, deleted=deleted,
                                      seconds=float(numbers[9]))
            if numbers[8] != "-":  # versions: "first-last" or one version
                first, _, last = numbers[8].partition("-")
                summary.first_version, summary.table_version = int(first), int(last or first)
            summaries.append(summary)
        why = " ".join(line.strip() for line in text.splitlines()
                       if line.startswith(("fetched", "  ")))
        # A run that fetched nothing prints no footnote: nothing was read twice.
        reread = int(why.split(" + ")[1].split()[0].replace(",", "")) if " + " in why else 0
        summaries[0].reread = reread  # the footnote's total is all the table keeps of it
        assert render_table(summaries) == text

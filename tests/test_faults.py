"""The fault matrix: every fault ends one of two ways, and no row is ever lost.

Either the run completes with tables equal to the API, or it fails with a clear message while
everything committed before stays and no mark runs ahead of its table's data. After each case
the fault is lifted and one more run must leave every table equal to the API: rows lost = 0.

Each case is recorded; ``python docs/make_reliability.py`` runs this file and writes the table
to docs/reliability.md.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import polars as pl
import pytest

from analytics_client import Credentials, Lake, LakeNotWritableError, load_config, run_sync
from analytics_client.core.errors import ConfigError
from analytics_client.core.summary import ResourceSummary
from analytics_client.lake.quarantine import Quarantine
from analytics_client.read.keyset import parse_cursor
from analytics_client.state.marks import JsonFileMarkStore, MemoryMarkStore, app_id
from analytics_sandbox import RunningSandbox, SandboxSettings, World, serve
from tests.groundtruth import differences, expected, fetch_truth
from tests.support import PLAIN, RESOURCES, sync

# The seed with the key in the query string, as some APIs want it.
QUERY_AUTH: dict[str, Any] = copy.deepcopy(PLAIN)
QUERY_AUTH["client"]["auth"] = {**QUERY_AUTH["client"]["auth"], "location": "query"}
SMALL = {"tags": 30, "users": 40, "deals": 120, "pages": 60, "tasks": 80}
ROOT = Path(__file__).resolve().parents[1]
REPORT: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    faults: list[dict[str, Any]] = field(default_factory=list)
    fails: str | None = None  # the message a failing resource must carry; None: completes
    sets_aside: str | None = None  # completes, the bad records quarantined with this reason
    failing: tuple[str, ...] = ("deals",)
    config: dict[str, Any] | None = None
    client: dict[str, Any] = field(default_factory=dict)
    api_key: str = "sk-fault-matrix-4242"
    # A pause announced for the whole run also fails the resources still reading, by timing.
    others_may_fail: bool = False

    @property
    def outcome(self) -> str:
        if self.sets_aside:
            return "completes, record set aside"
        return "fails clearly" if self.fails else "completes"


def rule(kind: str, resource: str = "deals", times: int = 1, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "resource": resource, "times": times, **extra}


def status(code: int, times: int = 2, **extra: Any) -> dict[str, Any]:
    return rule("status", status=code, times=times, **extra)


def mangle(what: str, resource: str = "deals", **extra: Any) -> dict[str, Any]:
    return rule("mangle", resource=resource, mangle=what, **extra)


CASES = [
    # throttling (stamina's test mode: the waits are computed and counted, not slept)
    *(Case(f"429 burst, Retry-After {ra}", "throttling", [status(429, 3, retry_after=ra)])
      for ra in ("0", "1", "3", "7")),
    Case("429, Retry-After as an HTTP date", "throttling",
         [status(429, 2, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")]),
    Case("429, Retry-After above max_wait", "throttling", [status(429, 1, retry_after="3600")],
         fails="longer than error_handler.max_wait"),
    Case("429 on every attempt", "throttling", [status(429, 50, retry_after="1")],
         fails="gave up after 5 attempts"),
    # server faults
    *(Case(f"{code} burst", "server", [status(code, 3)]) for code in (500, 502, 503, 504)),
    Case("fault on the first page", "server", [status(503, 3, page=1)]),
    Case("fault on the last page", "server", [status(502, 3, page=12)], config=PLAIN),
    Case("connection reset mid-body", "server", [rule("reset", times=3)]),
    Case("stalled response (read timeout)", "server", [rule("stall", seconds=1.0)],
         client={"timeout": 0.3}),
    Case("body cut off mid-JSON", "server", [rule("truncate", times=2)]),
    Case("5xx outlasting max_retries", "server", [status(503, 100)],
         fails="gave up after 5 attempts"),
    # bad payloads
    Case("HTML error page with status 200, once", "payload", [rule("html200")]),
    Case("HTML error page with status 200, always", "payload", [rule("html200", times=100)],
         fails="unparseable body"),
    Case("empty body, always", "payload", [rule("empty200", times=100)], fails="unparseable body"),
    Case("data not a list", "payload", [rule("data_not_list")], fails="expected a list of records"),
    Case("a record that is not an object", "payload", [mangle("record_not_object")],
         sets_aside="not an object"),
    Case("id missing", "payload", [mangle("id_missing")], sets_aside="has no 'id'"),
    Case("id null", "payload", [mangle("id_null")], sets_aside="has no 'id'"),
    Case("updated_at missing", "payload", [mangle("updated_at_missing")],
         sets_aside="'updated_at' of record"),
    Case("updated_at unparseable", "payload", [mangle("updated_at_garbage")],
         sets_aside="not an ISO-8601 timestamp"),
    Case("views turns into a string", "payload", [mangle("views_string", "pages")],
         sets_aside="field 'views'", failing=("pages",)),
    Case("page larger than requested", "payload", [mangle("oversize")],
         fails="more than the 10 asked for"),
    Case("total_pages grows during the run", "payload", [mangle("total_pages", value=99, times=3)]),
    Case("total_pages shrinks during the run", "payload", [mangle("total_pages", value=1, times=3)]),
    Case("response above client.max_response_bytes", "limits", client={"max_response_bytes": 400},
         fails="larger than client.max_response_bytes=400", failing=RESOURCES),
    Case("API ignores page[number]", "payload", [rule("same_page", times=100)], config=PLAIN,
         fails="has exactly the records of page 1"),
    # real servers (issue 11): what public APIs send that our contract does not
    *(Case(f"quota exhausted, reset announced as {style}", "real servers",
           [rule("quota_exhausted", seconds=3, style=style)])
      for style in ("unix", "delta", "ietf", "ietf_dict")),
    Case("quota exhausted, X-RateLimit-Reset an hour ahead (Unix time)", "real servers",
         [rule("quota_exhausted", seconds=3600, style="unix")],
         fails="X-RateLimit-Reset", others_may_fail=True),
    Case("429, Retry-After as an HTTP date, server clock 10 min ahead", "real servers",
         [rule("retry_after_date", seconds=5, skew=600, times=2)]),
    Case("Content-Encoding: gzip on a plain body, once", "real servers",
         [rule("lying_encoding")]),
    Case("Content-Encoding: gzip on a plain body, always", "real servers",
         [rule("lying_encoding", times=100)], fails="Content-Encoding: gzip"),
    Case("total_pages 0 on pages with records (page-number read)", "real servers",
         [mangle("total_pages", value=0, times=100)], config=PLAIN),
    Case("an empty page mid-stream while links.next says more", "real servers",
         [mangle("empty_data", page=3)], config=PLAIN),
    Case("empty pages while links.next says more, always", "real servers",
         [mangle("empty_data", times=100)], config=PLAIN,
         fails="came back empty 3 times in a row while links.next says there is more"),
    Case("a 400 echoing the URL with a query-string key, percent-encoded", "real servers",
         [rule("echo_url", page=2)], config=QUERY_AUTH, fails="HTTP 400",
         api_key="Ab+c/d=e%f&g?h#1"),
]


@pytest.fixture(scope="module", autouse=True)
def _write_report() -> Iterator[None]:
    yield
    path = os.environ.get("ANALYTICS_FAULT_REPORT")
    if path:
        Path(path).write_text(json.dumps(REPORT, indent=1))


def mismatches(lake: Path, sandbox: RunningSandbox, resource: str) -> list[str]:
    """Records of the API missing from the table or different in any field, plus extra rows.

    Every field of every row is compared with the independent truth (groundtruth.differences:
    documented fields by contract type, decimals as Decimal, objects and undocumented fields
    decoded from their JSON text). A record set aside in the quarantine is accounted for, not
    lost (the table may hold its previous version): by its key, or (a record that had no key
    or was no object) one keyless quarantine row for one record missing or left at its
    previous version (an incremental read that starts just after its proven mark meets a
    changed record first, and a fault on the first record sets that one aside).
    """
    truth = fetch_truth(sandbox.base_url, resource)
    aside = Quarantine(Lake(str(lake)), "analytics").read(resource) if lake.exists() else None
    set_aside = set(aside["key"].drop_nulls()) if aside is not None else set()
    keyless = aside["key"].null_count() if aside is not None else 0
    try:
        table = Lake(str(lake)).read(resource)
    except Exception:  # noqa: BLE001 - no table: everything is missing
        return [f"{resource}: no table"] * max(0, len(truth) - len(set_aside) - keyless)
    rows = {r["id"]: r for r in table.to_dicts()}
    missing = [f"{resource} {record['id']}: missing" for record in truth
               if record["id"] not in rows and record["id"] not in set_aside]
    wrong = [f"{resource} {record['id']}: " + "; ".join(diff) for record in truth
             if (row := rows.get(record["id"])) is not None and record["id"] not in set_aside
             and (diff := differences(row, record, resource))]
    extra = [f"{resource}: {n} rows more than the API's ids"
             for n in [table.height - len({r["id"] for r in truth} & set(rows))] if n]
    return (missing + wrong)[keyless:] + extra


def assert_no_mark_ahead(lake: Path, sandbox: RunningSandbox, marks: Any) -> None:
    """Below each table's mark every record is committed; the block is never past the table."""
    for resource in RESOURCES:
        mark = Lake(str(lake)).mark(resource, app_id("analytics")) if (lake / resource).exists() else None
        block = marks.load("analytics", resource) if marks is not None else None
        if block is not None and block.cursor is not None:
            assert mark is not None and parse_cursor(block.cursor) <= mark, resource
        if mark is None:
            continue
        rows = {r["id"]: r for r in Lake(str(lake)).read(resource).select("id", "updated_at").to_dicts()}
        # A version set aside is committed too: to the quarantine, before the mark moved; one
        # set aside without its key (no id, no object) stands for one record (``mismatches``).
        quarantined = Quarantine(Lake(str(lake)), "analytics").read(resource)["key"]
        aside, keyless = set(quarantined.drop_nulls()), quarantined.null_count()
        behind = [record["id"] for record in fetch_truth(sandbox.base_url, resource)
                  if parse_cursor(record["updated_at"]) < mark and record["id"] not in aside
                  and ((row := rows.get(record["id"])) is None
                       or row["updated_at"] != expected("ts", record["updated_at"]))]
        assert len(behind) <= keyless, (
            f"{resource}: {behind} below the mark but not committed ({keyless} set aside "
            "without a key)")


def encoded_forms(secret: str) -> set[str]:
    """The spellings a secret travels in, written independently of redaction.py."""
    percent = {quote(secret, safe=""), quote(secret), quote_plus(secret),
               str(httpx.QueryParams({"k": secret}))[2:]}
    lower = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in percent}
    raw = secret.encode()
    return {secret, *percent, *lower, json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}


def assert_no_secret(text: str, sandbox: RunningSandbox, where: str) -> None:
    for form in encoded_forms(sandbox.api_key) | encoded_forms(sandbox.organization_id):
        assert form not in text, f"{form!r} found in {where}"


def assert_no_secret_in_lake(lake: Path, sandbox: RunningSandbox) -> None:
    for path in lake.rglob("*.json"):
        assert_no_secret(path.read_text(errors="replace"), sandbox, str(path))
    for table in (p for p in lake.iterdir() if (p / "_delta_log").exists()):
        frame = pl.read_delta(str(table))
        for column in frame.columns:
            if frame.schema[column] == pl.String:
                for form in encoded_forms(sandbox.api_key):
                    assert not frame[column].str.contains(form, literal=True).any()


# The inner-loop tier (-m 'not slow') runs one case of each kind; the whole suite runs all.
FAST = {"429 burst, Retry-After 1", "500 burst", "connection reset mid-body",
        "body cut off mid-JSON", "5xx outlasting max_retries", "id null",
        "updated_at unparseable", "total_pages shrinks during the run",
        "quota exhausted, reset announced as delta",
        "an empty page mid-stream while links.next says more",
        "a 400 echoing the URL with a query-string key, percent-encoded"}


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.name, marks=() if c.name in FAST else pytest.mark.slow) for c in CASES])
def test_fault(case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One fault: the promised outcome, committed data kept, marks behind the data, 0 rows lost."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="analytics_client")
    settings = SandboxSettings(late_visibility=False, api_key=case.api_key)
    with serve(World(seed=3, counts=SMALL), settings) as sandbox:
        lake, marks = tmp_path / "lake", MemoryMarkStore()
        if case.config is None:  # an incremental case protects what an earlier run committed
            sync(sandbox, lake, marks)
            sandbox.world.advance(updates=8, creates=4, seed=1, late_visibility=False)  # type: ignore[union-attr]
        before = {r: set(Lake(str(lake)).read(r)["id"]) for r in RESOURCES if (lake / r).exists()}
        sandbox.set_faults(case.faults)
        summaries = sync(sandbox, lake, marks, config=case.config, client=case.client)
        failed = {r for r, s in summaries.items() if s.status != "ok"}
        if case.sets_aside:
            assert not failed, {r: summaries[r].error for r in failed}
            for resource in case.failing:
                assert summaries[resource].quarantined >= 1, resource
                reasons = Quarantine(Lake(str(lake)), "analytics").read(resource)["reason"]
                assert any(case.sets_aside in reason for reason in reasons), list(reasons)
        elif case.fails:
            if case.others_may_fail:
                assert failed >= set(case.failing), {r: s.error for r, s in summaries.items()}
            else:
                assert failed == set(case.failing), {r: s.error for r, s in summaries.items()}
            for resource in failed:
                assert case.fails in (summaries[resource].error or "")
                assert summaries[resource].error.startswith(f"{resource}: ")  # type: ignore[union-attr]
        else:
            assert not failed, {r: summaries[r].error for r in failed}
        for resource, ids in before.items():  # nothing committed is lost
            assert ids <= set(Lake(str(lake)).read(resource)["id"])
        assert_no_mark_ahead(lake, sandbox, marks)
        behind = [] if case.fails else [m for r in RESOURCES for m in mismatches(lake, sandbox, r)]
        sandbox.set_faults([])
        sync(sandbox, lake, marks, config=case.config)
        wrong = [m for r in RESOURCES for m in mismatches(lake, sandbox, r)]
        assert wrong == []
        assert_no_secret_in_lake(lake, sandbox)
        for summary in summaries.values():
            assert_no_secret(summary.error or "", sandbox, f"{summary.resource}'s error")
        assert_no_secret(caplog.text, sandbox, "the log")
        REPORT.append({"category": case.category, "fault": case.name, "outcome": case.outcome,
                       "message": next((s.error for s in summaries.values() if s.error), ""),
                       "retries": sum(s.retries for s in summaries.values()),
                       "behind_after_run": len(behind), "rows_lost": len(wrong)})
        assert behind == []


# --- bad configuration: rejected before any write ------------------------------------------

@pytest.mark.parametrize(("name", "change", "message"), [
    ("unreachable base_url", {"base_url": "http://127.0.0.1:9"}, "ConnectError"),
    ("path that 404s", {"path": "/v2/deals"}, "HTTP 404"),
    ("wrong API key", {"api_key": "sk-wrong-key-0000"}, "HTTP 401"),
    ("wrong organization", {"organization_id": "org_somebody_else"}, "HTTP 403"),
])
def test_bad_configuration_fails_clearly_before_any_write(
        tmp_path: Path, name: str, change: dict[str, str], message: str) -> None:
    """Each mistake fails every affected resource with its cause, and writes nothing."""
    with serve(World(seed=3, counts=SMALL)) as sandbox:
        raw = copy.deepcopy(PLAIN)
        raw["resources"] = raw["resources"][1:2]
        if "path" in change:
            raw["resources"][0]["endpoint"]["path"] = change["path"]
        source = load_config(raw, base_url=change.get("base_url", sandbox.base_url))
        creds = Credentials(change.get("api_key", sandbox.api_key),
                            change.get("organization_id", sandbox.organization_id))
        [summary] = run_sync(source, creds, str(tmp_path / "lake"))
        assert summary.status == "failed" and message in (summary.error or "")
        assert not (tmp_path / "lake" / "deals").exists()
        REPORT.append({"category": "configuration", "fault": name, "outcome": "fails clearly",
                       "message": summary.error, "retries": summary.retries,
                       "behind_after_run": 0, "rows_lost": 0})


@pytest.mark.parametrize("name", ["../x", "/etc", "", "a/b", "_staging"])
def test_resource_names_that_escape_the_lake_are_rejected(name: str) -> None:
    """A table name is a directory: anything that could leave the lake is a config error."""
    raw = copy.deepcopy(PLAIN)
    raw["resources"][0]["name"] = name
    with pytest.raises(ConfigError, match=r"resources\[0\]\.name"):
        load_config(raw)


# --- storage faults ---------------------------------------------------------------------------

def test_lake_that_cannot_be_written_fails_every_resource_clearly(tmp_path: Path) -> None:
    """A lake path under a regular file: the run fails naming the path before any request
    (the library preflights as the command line does); no mark is kept."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with serve(World(seed=3, counts=SMALL)) as sandbox:
        marks = MemoryMarkStore()
        with pytest.raises(LakeNotWritableError) as caught:
            sync(sandbox, blocker / "lake", marks)
        assert str(blocker) in str(caught.value)
        assert sandbox.stats()["total_requests"] == 0
        for resource in SMALL:
            assert marks.load("analytics", resource) is None
        REPORT.append({"category": "storage", "fault": "lake path not writable",
                       "outcome": "fails clearly, before any request",
                       "message": str(caught.value), "retries": 0, "behind_after_run": 0,
                       "rows_lost": 0})


def test_a_table_written_with_another_schema_fails_that_resource_only(tmp_path: Path) -> None:
    """deals.amount stored as text by someone else: deals fails naming the column; others sync."""
    lake = tmp_path / "lake"
    pl.DataFrame({"id": ["x"], "amount": ["12.50"]}).write_delta(str(lake / "deals"))
    with serve(World(seed=3, counts=SMALL)) as sandbox:
        summaries = sync(sandbox, lake, MemoryMarkStore())
        assert {r for r, s in summaries.items() if s.status != "ok"} == {"deals"}
        assert "amount" in (summaries["deals"].error or "")
        assert Lake(str(lake)).read("deals")["id"].to_list() == ["x"]
        REPORT.append({"category": "storage", "fault": "table written with another schema",
                       "outcome": "fails clearly", "message": summaries["deals"].error,
                       "retries": 0, "behind_after_run": 0, "rows_lost": 0})


def test_two_writers_committing_to_one_table_lose_nothing(tmp_path: Path) -> None:
    """Two pipelines write one lake at once, creating then merging: both complete, nothing lost.

    A table created by the other writer in between is written into; a commit refused because
    the other committed first is retried against the new version.
    """
    lake = tmp_path / "lake"
    with serve(World(seed=3, counts=SMALL), SandboxSettings(late_visibility=False)) as sandbox:
        def race() -> list[ResourceSummary]:
            results: dict[str, dict[str, ResourceSummary]] = {}

            def run(pipeline: str) -> None:
                results[pipeline] = sync(sandbox, lake, MemoryMarkStore(), pipeline=pipeline,
                                         batch_rows=10)

            threads = [threading.Thread(target=run, args=(p,)) for p in ("one", "two")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return [s for r in results.values() for s in r.values()]

        created = race()  # both find no table and create it
        sandbox.world.advance(updates=30, creates=10, seed=2, late_visibility=False)  # type: ignore[union-attr]
        merged = race()  # both merge the same changes into the same files
        failures = [s.error for s in created + merged if s.status != "ok"]
        assert not failures, failures
        assert [m for r in RESOURCES for m in mismatches(lake, sandbox, r)] == []
        for resource in RESOURCES:
            ids = Lake(str(lake)).read(resource)["id"]
            assert ids.n_unique() == len(ids)
        REPORT.append({"category": "storage", "fault": "two writers creating, then merging into, "
                       "the same tables at once", "outcome": "completes", "message": "",
                       "retries": 0, "behind_after_run": 0, "rows_lost": 0})


# --- process faults: SIGKILL at random points ------------------------------------------------

_VICTIM = textwrap.dedent("""
    import os, random, signal, sys, threading
    from analytics_client import Credentials, load_config, run_sync
    from analytics_client.http import client as client_module
    from analytics_client.lake import tables as lake_module
    from analytics_client.state import marks as state
    base_url, key, org, lake, marks_path, point, seed = sys.argv[1:8]
    rng = random.Random(int(seed))
    n = rng.randint(1, {"fetch": 20, "stage": 3, "merge": 1, "save": 5}[point])
    calls = {"count": 0}

    def die_on_nth(original, delay=False):
        def wrapper(*args, **kwargs):
            calls["count"] += 1
            if calls["count"] == n:
                if delay:  # somewhere inside the Delta write, maybe mid-commit
                    threading.Timer(rng.uniform(0, 0.03), os.kill,
                                    (os.getpid(), signal.SIGKILL)).start()
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapper

    if point == "fetch":
        client_module.ApiClient.get_page = die_on_nth(client_module.ApiClient.get_page)
    elif point == "stage":  # a merge table's batch being staged (lake/staging.py)
        lake_module.TableWriter.stage = die_on_nth(lake_module.TableWriter.stage, delay=True)
    elif point == "merge":  # the staged batches' one merge, with the mark
        lake_module.TableWriter.flush = die_on_nth(lake_module.TableWriter.flush, delay=True)
    else:  # after the Delta commit, before the state is saved
        state.JsonFileMarkStore.save = die_on_nth(state.JsonFileMarkStore.save)
    run_sync(load_config(base_url=base_url), Credentials(key, org), lake,
             marks=state.JsonFileMarkStore(marks_path), batch_rows=15)
""")


@pytest.mark.parametrize("point", ["fetch", "stage", "merge", "save"])
@pytest.mark.parametrize("seed", [1, *(pytest.param(s, marks=pytest.mark.slow) for s in (2, 3, 4, 5))])
def test_sigkill_at_a_random_point_then_rerun_loses_nothing(
        tmp_path: Path, point: str, seed: int) -> None:
    """Killed while fetching, while staging a batch, inside the merge of the staged batches, or
    between commit and state save: a rerun is exact."""
    lake, marks_path = tmp_path / "lake", tmp_path / "marks.json"
    with serve(World(seed=seed, counts=SMALL), SandboxSettings(late_visibility=False)) as sandbox:
        marks = JsonFileMarkStore(marks_path)
        sync(sandbox, lake, marks)  # a committed state to protect
        sandbox.world.advance(updates=20, creates=10, seed=seed, late_visibility=False)  # type: ignore[union-attr]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        victim = subprocess.run(
            [sys.executable, "-c", _VICTIM, sandbox.base_url, sandbox.api_key,
             sandbox.organization_id, str(lake), str(marks_path), point, str(seed)],
            env=env, capture_output=True, text=True, timeout=120)
        # Killed by its own hand at the n-th call, so mid-run by construction; a victim that
        # finished first would test nothing.
        assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
        assert_no_mark_ahead(lake, sandbox, marks)
        for resource in RESOURCES:
            ids = Lake(str(lake)).read(resource)["id"]
            assert ids.n_unique() == len(ids), f"{resource}: duplicates after the kill"
        rerun = sync(sandbox, lake, marks)
        assert all(s.status == "ok" for s in rerun.values())
        wrong = [m for r in RESOURCES for m in mismatches(lake, sandbox, r)]
        assert wrong == []
        assert_no_mark_ahead(lake, sandbox, marks)
        REPORT.append({"category": "process", "fault": f"SIGKILL during {point}, seed {seed}",
                       "outcome": "completes on rerun",
                       "message": "", "retries": 0, "behind_after_run": 0, "rows_lost": len(wrong)})

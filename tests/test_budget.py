"""The run-wide memory budget (budget.py): records and bytes held until their commit."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import Credentials, Lake, load_config
from analytics_client.core.timing import Timing
from analytics_client.http.client import ApiClient
from analytics_client.run.budget import DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_ROWS, RowBudget, Share
from analytics_client.run.sync import sync_resource
from analytics_sandbox import World, serve
from tests.plans import plan_of
from tests.support import assert_lake_equals_truth

# --- an independent measure, from the JSON contract (RFC 8259), not from our estimator --------


def json_size(record: Any) -> int:
    """Bytes of the record's JSON text in UTF-8 without spaces (what an API sends, about)."""
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def record_of(size: int, key: int) -> dict[str, Any]:
    """A record whose compact JSON text is exactly ``size`` bytes (at least 24)."""
    base = {"id": f"{key:06d}", "pad": ""}
    pad = max(0, size - json_size(base))
    return {"id": f"{key:06d}", "pad": "x" * pad}


@dataclass
class Resource:
    """A simulated resource: its pages (record sizes in bytes), what it read and committed."""

    pages: list[list[int]]
    share: Share | None = None
    held: list[dict[str, Any]] = field(default_factory=list)
    read_pages: int = 0
    read: int = 0  # records of the pages it read
    commits: list[int] = field(default_factory=list)  # records per commit


def simulate(budget: RowBudget, pages: list[list[list[int]]], order: list[int],
             batch_rows: int) -> list[Resource]:
    """The sync loop of ``sync.py`` without HTTP or Delta: hold a page, commit when the batch
    is full or the budget says so. Every resource joins first; ``order`` picks which one
    reads its next page."""
    resources = [Resource(p) for p in pages]
    for r in resources:
        r.share = budget.join()
    key = 0
    for turn in order:
        r = resources[turn % len(resources)]
        if r.read_pages >= len(r.pages):
            continue
        records = [record_of(size, key + n) for n, size in enumerate(r.pages[r.read_pages])]
        r.read_pages += 1
        key += len(records)
        r.read += len(records)
        r.held.extend(records)
        assert r.share is not None
        if r.share.take(records) or len(r.held) >= batch_rows:
            r.commits.append(len(r.held))
            r.held.clear()
            r.share.committed()
    for r in resources:
        if r.held:
            r.commits.append(len(r.held))
        assert r.share is not None
        r.share.leave()
    return resources


PAGE = st.lists(st.integers(30, 4000), min_size=1, max_size=12)
SMALL_PAGE = st.lists(st.integers(30, 500), min_size=1, max_size=12)


@given(pages=st.lists(st.lists(PAGE, max_size=40), min_size=1, max_size=5),
       order=st.lists(st.integers(0, 4), max_size=200),
       limit=st.integers(1, 60), max_bytes=st.integers(1, 40_000))
def test_the_run_holds_at_most_one_and_a_half_budgets_plus_a_page(
        pages: list[list[list[int]]], order: list[int], limit: int, max_bytes: int) -> None:
    """Whatever the record sizes and the order resources read in, the records held (counted
    when taken) stay within 1.5x the limit plus a page, in records and in JSON bytes; nothing
    is counted after the run and every record read is in exactly one commit."""
    budget = RowBudget(limit, max_bytes=max_bytes)
    resources = simulate(budget, pages, order, batch_rows=10**9)
    taken = [p for r in resources for p in r.pages[:r.read_pages]]
    biggest_rows = max((len(p) for p in taken), default=0)
    # the estimate of a page: its middle record's JSON size times its records
    biggest_bytes = max((p[len(p) // 2] * len(p) for p in taken), default=0)
    assert budget.peak <= limit + limit // 2 + biggest_rows
    assert budget.peak_bytes <= max_bytes + max_bytes // 2 + biggest_bytes
    assert budget.held == 0 and budget.held_bytes == 0
    for r in resources:
        assert sum(r.commits) == r.read  # whole pages only: nothing lost, nothing twice


@given(pages=st.lists(st.lists(SMALL_PAGE, max_size=40), min_size=1, max_size=5),
       order=st.lists(st.integers(0, 4), max_size=200),
       limit=st.integers(100, 400))
def test_records_of_the_default_profiles_size_commit_as_with_a_record_budget_alone(
        pages: list[list[list[int]]], order: list[int], limit: int) -> None:
    """At the default budget's bytes per record, records of at most 500 bytes of JSON (the
    sandbox's default ones are 150-360) never reach the byte budget before the record budget:
    the same commits as without one. Scaled down from 20,000 records to ``limit``."""
    per_record = DEFAULT_BUFFER_BYTES // DEFAULT_BUFFER_ROWS
    with_bytes = simulate(RowBudget(limit, max_bytes=per_record * limit), pages, order,
                          batch_rows=50)
    records_only = simulate(RowBudget(limit, max_bytes=10**12), pages, order, batch_rows=50)
    assert [r.commits for r in with_bytes] == [r.commits for r in records_only]


@given(st.lists(st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=30), min_size=1, max_size=20))
def test_a_page_is_estimated_from_its_middle_record_as_json(records: list[Any]) -> None:
    """``page_bytes``: the middle record's compact JSON, times the records (strings counted
    in UTF-8; values JSON has no text for are still counted, never raised)."""
    from analytics_client.run.budget import page_bytes

    middle = records[len(records) // 2]
    try:
        want = json_size(middle) * len(records)
    except UnicodeEncodeError:  # a lone surrogate: no JSON text, but still some bytes
        assert page_bytes(records) > 0
        return
    assert page_bytes(records) == want


def test_values_without_plain_json_are_estimated_without_raising() -> None:
    from analytics_client.core.jsontext import loads
    from analytics_client.run.budget import page_bytes

    odd = loads('{"big": 123456789012345678901234567890, "nan": NaN, "dec": 1.10}')
    assert page_bytes([odd]) >= len("123456789012345678901234567890")
    assert page_bytes([{"s": "\ud83d"}]) > 0
    assert page_bytes([]) == 0


def test_a_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        RowBudget(0)
    with pytest.raises(ValueError, match="byte"):
        RowBudget(10, max_bytes=0)


RICH = {"tags": 10, "users": 20, "deals": 500, "pages": 30, "tasks": 60}


def joining_bound(limit: int, members: int, page: int) -> int:
    """The most a run of ``members`` resources may hold, counted when taken, if they join one
    by one while it is over ``limit``: each holds less than the share it last saw
    (``limit // (2 * i)``), plus the page that made it commit, until its commit ends."""
    return limit + sum(limit // (2 * i) for i in range(1, members + 1)) + members * page


def test_a_rich_sync_commits_by_bytes_and_lands_every_record(tmp_path: Path) -> None:
    """Rich records (about 2.7 KB of JSON each) over loopback, five resources at once, a
    budget of 30 KB and no record limit to speak of: the byte budget cuts the batches (10,000
    records would otherwise make one commit per resource), the run never holds more than the
    budget allows, and the tables equal the API's records, judged by the independent
    decoder."""
    from tests.support import PLAIN

    max_bytes = 30_000
    budget = RowBudget(10**6, max_bytes=max_bytes)
    with serve(World(seed=5, counts=RICH, profile="rich")) as sandbox:
        source = load_config(PLAIN, base_url=sandbox.base_url)
        lake = Lake(str(tmp_path))
        with ApiClient(source, Credentials(sandbox.api_key, sandbox.organization_id)) as client, \
                ThreadPoolExecutor(5) as pool:
            summaries = {s.resource: s for s in pool.map(
                # Every cut merged as it comes (merge_every 0): the commits count the cuts.
                lambda r: sync_resource(client, lake, plan_of(r), batch_rows=10_000, budget=budget,
                                        timing=Timing(merge_every=0)),
                source.resources)}
        assert all(s.status == "ok" for s in summaries.values()), summaries
        sizes = {r: [json_size(x) for x in httpx.get(
            f"{sandbox.base_url}/_admin/truth/{r}", timeout=60).json()] for r in RICH}
        # the seed config's pages: 10 records; decimals are estimated as quoted strings
        page = 11 * max(max(s) for s in sizes.values())
        most = joining_bound(max_bytes, len(RICH), page)
        assert budget.peak_bytes <= most
        assert budget.held == 0 and budget.held_bytes == 0
        deals = sum(sizes["deals"])
        assert deals > 3 * most  # so the deals cannot have landed in fewer than 3 commits
        assert summaries["deals"].commits >= deals // most
        assert_lake_equals_truth(sandbox, tmp_path)


def test_larger_batches_asked_for_get_proportionally_more_bytes() -> None:
    """``--batch-rows`` above the default raises both budgets alike; the default keeps both."""
    default = RowBudget.for_batches(10_000)
    assert (default.limit, default.max_bytes) == (DEFAULT_BUFFER_ROWS, DEFAULT_BUFFER_BYTES)
    big = RowBudget.for_batches(100_000)
    assert (big.limit, big.max_bytes) == (200_000, 10 * DEFAULT_BUFFER_BYTES)

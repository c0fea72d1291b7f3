"""Stop signals that contradict each other: never finish ok with rows missing (issue 11, input 3)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Credentials, load_config, run_sync
from analytics_client.config.model import PageNumberPaginator as Config
from analytics_client.core.errors import ContractError
from analytics_client.http.paginators import (
    MAX_EMPTY_PAGES,
    PageNumberPaginator,
    PageResponse,
)
from analytics_sandbox import SandboxSettings, World, serve
from tests.support import CONTRACT_PAGES, PLAIN, assert_lake_equals_truth, sync


def update(p: PageNumberPaginator, body: dict, data: list) -> None:
    """One page through dlt's contract: read its state."""
    p.update_state(PageResponse(body), data)

NEXT = "/v1/deals?page[number]=9"


def paginator() -> PageNumberPaginator:
    return PageNumberPaginator("deals", Config(**{**CONTRACT_PAGES, "limit": 10}))


def body(total_pages: int | None, next_link: Any = "absent") -> dict[str, Any]:
    doc: dict[str, Any] = {"data": []}
    if total_pages is not None:
        doc["meta"] = {"page": {"total_pages": total_pages}}
    if next_link != "absent":
        doc["links"] = {"next": next_link}
    return doc


def rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"id": f"d{start + i}"} for i in range(n)]


def test_total_pages_zero_on_a_page_with_records_reads_on() -> None:
    """``total_pages: 0`` beside records is a contradiction: it does not end the read."""
    p = paginator()
    update(p, body(0), rows(10))
    assert p.has_next and p.page == 2 and p.conflict is not None
    update(p, body(0), rows(10, 10))
    assert p.has_next
    update(p, body(0), [])  # an empty page, no links to contradict it: the end
    assert not p.has_next


def test_empty_page_while_next_says_more_is_asked_again() -> None:
    """An empty page whose links.next points on is requested again, not skipped."""
    p = paginator()
    update(p, body(5, NEXT), rows(10))
    update(p, body(5, NEXT), [])
    assert p.has_next and p.page == 2
    update(p, body(5, NEXT), rows(10, 10))
    assert p.page == 3


def test_empty_page_that_stays_empty_while_next_says_more_fails_naming_the_conflict() -> None:
    p = paginator()
    update(p, body(5, NEXT), rows(10))
    with pytest.raises(ContractError, match="came back empty 3 times .* links.next says there is more"):
        for _ in range(MAX_EMPTY_PAGES):
            update(p, body(5, NEXT), [])


def test_after_a_conflict_only_an_empty_page_with_next_null_ends_the_read() -> None:
    """Stale total_pages (1) with links.next present: records go on until empty + null agree."""
    p = paginator()
    update(p, body(1, NEXT), rows(10))  # total says done, next says more
    assert p.has_next
    update(p, body(1, None), rows(10, 10))  # next null, but after a conflict: not enough alone
    assert p.has_next
    update(p, body(1, None), [])
    assert not p.has_next


@pytest.mark.parametrize(("total", "next_link"), [(3, "absent"), (None, None), (3, None)])
def test_agreeing_signals_stop_as_before(total: int | None, next_link: Any) -> None:
    """No contradiction: the last page ends the read without an extra request."""
    p = paginator()
    for n in range(2):
        update(p, body(total, NEXT if next_link is None else next_link), rows(10, 10 * n))
    update(p, body(total, next_link), rows(10, 20))
    assert not p.has_next and p.conflict is None


@given(st.lists(st.integers(0, 10), min_size=1, max_size=8),
       st.lists(st.one_of(st.none(), st.integers(0, 12)), min_size=8, max_size=8),
       st.lists(st.sampled_from(["absent", None, NEXT]), min_size=8, max_size=8))
def test_never_stops_before_the_records_end_whatever_the_signals(
        sizes: list[int], totals: list[int | None], links: list[Any]) -> None:
    """Pages of ``sizes`` records (0 at the end), any total_pages and links on each: a read stops
    before the first empty page only when no signal ever contradicted another, and never on a
    page with records while a conflict is open."""
    p = paginator()
    sizes = [*[s for s in sizes if s], 0]
    served = 0
    for size, total, link in zip(sizes, totals + [None] * 8, links + [None] * 8):
        update(p, body(total, link), rows(size, served))
        served += size
        if not p.has_next:
            assert p.conflict is None or size == 0
            break


# --- over loopback HTTP ------------------------------------------------------------------------

SMALL = {"tags": 20, "users": 20, "deals": 25, "pages": 20, "tasks": 20}


def test_page_number_read_with_total_pages_zero_finishes_with_every_row(tmp_path: Path) -> None:
    """Issue 11, input 3: incremental null, 25 records, page size 10, total_pages 0: all 25 rows."""
    with serve(World(seed=4, counts=SMALL), SandboxSettings(late_visibility=False)) as sandbox:
        sandbox.set_faults([{"kind": "mangle", "mangle": "total_pages", "value": 0,
                             "resource": "deals", "times": 100}])
        summaries = sync(sandbox, tmp_path, config=PLAIN, resources=["deals"])
        assert summaries["deals"].status == "ok", summaries["deals"].error
        assert_lake_equals_truth(sandbox, tmp_path, ("deals",))


def test_count_gap_too_large_for_changes_is_not_blamed_on_them(tmp_path: Path) -> None:
    """A full keyset read of 5 records where the API counts 100: the note says rows may be
    missing instead of blaming records changed during the run."""
    def handler(request: httpx.Request) -> httpx.Response:
        records = [{"id": f"t{i}", "name": "x", "created_at": "2026-01-01T00:00:00.000000Z",
                    "updated_at": f"2026-01-0{i + 1}T00:00:00.000000Z"} for i in range(5)]
        gte = request.url.params.get("filter[updated_at][gte]")
        if gte:
            records = [r for r in records if r["updated_at"] >= gte]
        return httpx.Response(200, json={"data": records, "meta": {"page": {
            "number": 1, "size": 10, "total_pages": 10, "total_count": 100}},
            "links": {"next": None}})

    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resource_defaults"]["endpoint"]["concurrency"] = 1
    source = load_config(raw, base_url="http://api.test").select(["tags"])
    [summary] = run_sync(source, Credentials("test-key", "test-org"), str(tmp_path),
                         transport=httpx.MockTransport(handler))
    assert summary.status == "ok", summary.error
    note = " ".join(summary.notes)
    assert "cannot explain" in note and "rows may be missing" in note
    assert "explain the difference" not in note

"""Never "ok" with rows missing, never a hang: generated paging shapes against a loopback API.

Issue 22, item 4. ``tests/pagingserver.py`` pages one record set in each of dlt's styles and
lies as public bug reports show APIs lie (clamped page sizes, totals too low, too high or
counting what is left, empty pages mid-stream that still say there is more, cursors that never
end). Each generated config is the one a dlt user writes for that style. The oracle is the
server's own record set: a run either lands every record in the Delta table, or fails the
resource with a message naming the signal it could not trust; and it stays within the
server's request budget (past it the server answers 400, which would fail the run, so a read
that would not end is seen as such). Shapes where every signal is honest must end ok.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, load_config, run_sync
from tests.pagingserver import PagingServer, Shape

SIGNALS = ("total", "has_more", "stop_after_empty_page", "links.next", "says there is more",
           "next", "cursor")


def paginator_for(shape: Shape, limit: int, *, reads_flag: bool, stop_after_empty: bool,
                  odata_path: str) -> tuple[Any, dict[str, Any]]:
    """The paginator (and params) a dlt user writes for ``shape``'s style."""
    flag = {"has_more_path": "has_more"} if reads_flag and shape.has_more else {}
    if shape.style == "offset":
        return ({"type": "offset", "limit": limit,
                 "total_path": None if shape.total == "none" else "total", **flag}, {})
    if shape.style == "page_number":
        return ({"type": "page_number", "page_param": "page", "base_page": 1, "limit": limit,
                 "limit_param": "size",
                 "total_path": None if shape.total == "none" else "total_pages", **flag}, {})
    params = {"limit": limit}
    if shape.style == "cursor":
        return ({"type": "cursor", "cursor_path": "cursors.next", "cursor_param": "cursor",
                 "stop_after_empty_page": stop_after_empty, **flag}, params)
    if shape.style == "stripe":
        return ({"type": "cursor", "cursor_path": "data[-1].id",
                 "cursor_param": "starting_after",
                 **({"has_more_path": "has_more"} if reads_flag else {})}, params)
    if shape.style == "json_link":
        return {"type": "json_link", "next_url_path": "next"}, params
    if shape.style == "odata":
        return {"type": "json_link", "next_url_path": odata_path}, params
    return {"type": "header_link"}, params


def run(server: PagingServer, lake: Path, paginator: Any, params: dict[str, Any]) -> Any:
    endpoint: dict[str, Any] = {"path": "/items", "data_selector": "data", "params": params}
    if paginator is not None:  # None: no paginator key, dlt's auto
        endpoint["paginator"] = paginator
    config = {"client": {"base_url": server.base_url},
              "resources": [{"name": "items", "primary_key": "id", "endpoint": endpoint}]}
    source = load_config(config)
    [summary] = run_sync(source, Credentials("any-key", "any-org"), str(lake),
                         run_id="run", pipeline="paging")
    return summary


def landed(lake: Path) -> set[str]:
    path = lake / "items"
    if not path.exists():
        return set()
    return set(pl.read_delta(str(path))["id"].to_list())


@st.composite
def shapes(draw: st.DrawFn) -> tuple[Shape, int, bool, bool, str, bool]:
    style = draw(st.sampled_from(["offset", "page_number", "cursor", "stripe", "json_link",
                                  "odata", "header_link"]))
    records = draw(st.integers(0, 60))
    limit = draw(st.integers(3, 15))
    clamp = draw(st.none() | st.integers(1, limit))
    total = draw(st.sampled_from(["none", "honest", "low", "high", "remaining"])
                 if style in ("offset", "page_number", "cursor") else st.just("none"))
    has_more = draw(st.booleans())
    links = style == "page_number" and draw(st.booleans())
    # A mid-stream empty page is only told apart from the end when something on it says more:
    # a total above the records read, a has_more flag, a next link/cursor (always, below).
    says_more_on_empty = (total in ("honest", "high") or has_more or links
                          or style not in ("offset", "page_number"))
    glitch = draw(st.none() | st.integers(1, 8)) if says_more_on_empty else None
    empty_tail = style == "cursor" and draw(st.booleans())
    shape = Shape(style=style, records=records, page_size=limit, clamp=clamp, total=total,
                  total_off=draw(st.integers(1, 12)), has_more=has_more, links=links,
                  glitch=glitch, empty_tail=empty_tail)
    return (shape, limit, draw(st.booleans()), draw(st.booleans()),
            draw(st.sampled_from(["@odata.nextLink", "$['@odata.nextLink']"])),
            draw(st.booleans()))


def honest(shape: Shape) -> bool:
    """Every signal tells the truth and every page holds what was asked."""
    return (shape.clamp is None and shape.total in ("none", "honest") and shape.glitch is None
            and not shape.empty_tail)


@pytest.mark.slow
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=shapes())
# Found by CI: auto over a page-number API whose first answer lost its one record for once
# (total_pages 1, empty): it ended ok with the record missing.
@example(drawn=(Shape(style="page_number", records=1, page_size=3, clamp=None, total="honest",
                      total_off=1, has_more=False, links=False, glitch=1, empty_tail=False,
                      max_requests=400), 3, False, False, "@odata.nextLink", True))
def test_a_read_lands_every_record_or_fails_naming_the_signal(tmp_path_factory: Any,
                                                               drawn: Any) -> None:
    shape, limit, reads_flag, stop_after_empty, odata_path, auto = drawn
    # auto decides from the first page: an offset or page-number API that says nothing about
    # more on it (no total, flag or link) is one page to dlt's detector too; not this test's.
    assume(not auto or shape.style not in ("offset", "page_number")
           or shape.total in ("honest", "high", "remaining") or shape.has_more or shape.links)
    # page_number trusts total_pages when it is reached on a page nothing contradicts (as
    # tests/test_paginators.py requires): a total_pages too low with no links or has_more
    # beside it is indistinguishable from the truth without a request more per read.
    assume(shape.style != "page_number" or shape.total not in ("low", "remaining")
           or shape.links or (shape.has_more and reads_flag))
    # auto follows a page-number API's links.next as json_link: a link to page n+1 from a
    # page n that lost its records for one answer is, to a link follower, the truth.
    assume(not (auto and shape.style == "page_number" and shape.links
                and shape.glitch is not None))
    # stop_after_empty_page: true is the user saying an empty page is the end (1Password's
    # feed sends a fresh cursor on every empty page): a cursor on it is then no signal.
    assume(not (shape.style == "cursor" and stop_after_empty and shape.glitch is not None
                and not shape.has_more))
    lake = tmp_path_factory.mktemp("lake")
    paginator, params = paginator_for(shape, limit, reads_flag=reads_flag,
                                      stop_after_empty=stop_after_empty, odata_path=odata_path)
    with PagingServer(shape) as server:
        summary = run(server, lake, None if auto else paginator, params)
        requests, truth = server.requests, server.ids
    assert requests <= shape.max_requests, f"{requests} requests: the read did not end"
    if summary.status == "ok":
        missing = truth - landed(lake)
        assert not missing, f"ok with {len(missing)} of {len(truth)} rows missing: {shape}"
    else:
        assert summary.status == "failed", summary
        assert summary.error and any(s in summary.error for s in SIGNALS), summary.error
        if not auto:
            assert not honest(shape), f"an honest API failed: {summary.error}"


@pytest.mark.parametrize("path", ["@odata.nextLink", "$['@odata.nextLink']"])
def test_ms_graph_next_link_reads_every_page(tmp_path: Path, path: str) -> None:
    """Microsoft Graph's ``@odata.nextLink`` as dlt users write it (dlt-hub/dlt#2505)."""
    shape = Shape(style="odata", records=25, page_size=10, total="none")
    with PagingServer(shape) as server:
        summary = run(server, tmp_path, {"type": "json_link", "next_url_path": path},
                      {"limit": 10})
        assert summary.status == "ok", summary.error
        assert landed(tmp_path) == server.ids and server.requests == 3


@pytest.mark.parametrize("has_more_path", [None, "has_more"])
def test_stripe_cursor_at_the_last_record_reads_all_230(tmp_path: Path,
                                                        has_more_path: str | None) -> None:
    """Stripe's list: ``data[-1].id`` sent back as ``starting_after`` (issue 22: 100 of 230)."""
    shape = Shape(style="stripe", records=230, page_size=100, total="none", has_more=True)
    paginator = {"type": "cursor", "cursor_path": "data[-1].id",
                 "cursor_param": "starting_after"}
    if has_more_path:
        paginator["has_more_path"] = has_more_path
    with PagingServer(shape) as server:
        summary = run(server, tmp_path, paginator, {"limit": 100})
        assert summary.status == "ok", summary.error
        assert len(landed(tmp_path)) == 230 and landed(tmp_path) == server.ids
        # has_more false on the third page ends it; without has_more_path one empty page does.
        assert server.requests == (3 if has_more_path else 4)


def test_auto_on_stripe_fails_naming_has_more(tmp_path: Path) -> None:
    """auto finds no paging dlt's detector knows, but the page says has_more: true."""
    shape = Shape(style="stripe", records=230, page_size=100, total="none", has_more=True)
    with PagingServer(shape) as server:
        summary = run(server, tmp_path, None, {"limit": 100})
    assert summary.status == "failed"
    assert "'has_more' is True" in summary.error and "paginator auto" in summary.error


def test_offset_over_a_clamped_page_size_reads_every_record(tmp_path: Path) -> None:
    """Asked 100, served 25 (github/docs#45189): offset steps by the records received."""
    for total in ("none", "honest"):
        shape = Shape(style="offset", records=130, page_size=100, clamp=25, total=total)
        lake = tmp_path / total
        with PagingServer(shape) as server:
            summary = run(server, lake, {"type": "offset", "limit": 100,
                                         "total_path": None if total == "none" else "total"}, {})
            assert summary.status == "ok", summary.error
            assert landed(lake) == server.ids


def test_offset_total_counting_what_is_left_reads_every_record(tmp_path: Path) -> None:
    """A total that is the count after the offset (oasisprotocol/nexus#489): 53 of 53."""
    shape = Shape(style="offset", records=53, page_size=10, total="remaining")
    with PagingServer(shape) as server:
        summary = run(server, tmp_path, {"type": "offset", "limit": 10}, {})
        assert summary.status == "ok", summary.error
        assert landed(tmp_path) == server.ids


def test_page_number_over_a_clamped_page_size_without_totals_reads_every_record(
        tmp_path: Path) -> None:
    """page_number without totals: a page short of limit is not the end when it is as long
    as the pages before it (asked 100, served 25: 130 of 130, not 25)."""
    shape = Shape(style="page_number", records=130, page_size=100, clamp=25, total="none")
    with PagingServer(shape) as server:
        summary = run(server, tmp_path, {"type": "page_number", "page_param": "page",
                                         "base_page": 1, "limit": 100, "limit_param": "size",
                                         "total_path": None}, {})
        assert summary.status == "ok", summary.error
        assert landed(tmp_path) == server.ids


def test_cursor_with_fresh_cursors_on_empty_pages_fails_naming_stop_after_empty_page(
        tmp_path: Path) -> None:
    """1Password-like (dlt-hub/dlt#3358): no hang; the message names the key; with the key set
    the read ends ok at the first empty page."""
    shape = Shape(style="cursor", records=20, page_size=10, total="none", empty_tail=True)
    config = {"type": "cursor", "cursor_path": "cursors.next", "cursor_param": "cursor"}
    with PagingServer(shape) as server:
        summary = run(server, tmp_path / "a", config, {"limit": 10})
        assert summary.status == "failed" and "stop_after_empty_page" in summary.error
        assert server.requests < 20
    with PagingServer(shape) as server:
        summary = run(server, tmp_path / "b", {**config, "stop_after_empty_page": True},
                      {"limit": 10})
        assert summary.status == "ok", summary.error
        assert landed(tmp_path / "b") == server.ids

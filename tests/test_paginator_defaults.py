"""dlt's paginator defaults when keys are omitted, JSONPath path keys, body paths (issue 22).

The expected values are dlt's, as its reference documents them
(https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced and the docstrings of
``dlt/sources/helpers/rest_client/paginators.py``), written here as the spec, not read from
our models.
"""

from __future__ import annotations

from typing import Any

import pytest

from analytics_client import load_config
from analytics_client.core.errors import ConfigError, ContractError, PaginationLoopError
from analytics_client.core.jsonpath import MISSING, lookup, set_at
from analytics_client.http.paginators import (
    AutoDetectPaginator,
    BasePaginator,
    PageRequest,
    PageResponse,
    make_paginator,
)

BASE = "https://api.example.com"


def paginator_config(paginator: Any, **endpoint: Any) -> Any:
    raw = {"client": {"base_url": BASE},
           "resources": [{"name": "items", "endpoint": {"path": "/items", **endpoint,
                                                        **({"paginator": paginator}
                                                           if paginator is not None else {})}}]}
    return load_config(raw).resources[0].endpoint.paginator


def build(paginator: Any) -> BasePaginator:
    return make_paginator("items", paginator_config(paginator))


def first(p: BasePaginator) -> PageRequest:
    request = PageRequest()
    p.init_request(request)
    return request


_ids = iter(range(10**9))


def step(p: BasePaginator, body: Any, n: int, headers: dict[str, str] | None = None,
         request: PageRequest | None = None, start: int | None = None) -> PageRequest:
    """One page of ``n`` records (new ids each call unless ``start`` is given)."""
    request = request or PageRequest()
    data = [{"id": next(_ids) if start is None else start + i} for i in range(n)]
    p.update_state(PageResponse(body, headers or {}, f"{BASE}/items"), data)
    p.update_request(request)
    return request


# -- defaults as dlt documents them -------------------------------------------------------------

def test_no_paginator_key_is_auto_as_in_dlt() -> None:
    assert paginator_config(None).type == "auto"


@pytest.mark.parametrize(("paginator", "expected"), [
    ("page_number", {"page_param": "page", "base_page": 0, "page": None, "total_path": "total",
                     "maximum_page": None, "stop_after_empty_page": True,
                     "has_more_path": None, "page_body_path": None}),
    ({"type": "offset", "limit": 10},
     {"offset": 0, "offset_param": "offset", "limit_param": "limit", "total_path": "total",
      "maximum_offset": None, "stop_after_empty_page": True, "has_more_path": None,
      "offset_body_path": None, "limit_body_path": None}),
    ("cursor", {"cursor_path": "cursors.next", "cursor_param": "cursor",
                "cursor_body_path": None, "stop_after_empty_page": False,
                "has_more_path": None}),
    ("json_link", {"next_url_path": "next"}),
    ("header_link", {"links_next_key": "next"}),
    ("header_cursor", {"cursor_key": "next", "cursor_param": "cursor"}),
])
def test_omitted_keys_take_dlts_defaults(paginator: Any, expected: dict[str, Any]) -> None:
    config = paginator_config(paginator)
    assert {k: getattr(config, k) for k in expected} == expected


def test_page_number_by_dlts_defaults_asks_page_0_then_1() -> None:
    p = build("page_number")
    assert first(p).params == {"page": 0}
    assert step(p, {"total": 3}, 5).params == {"page": 1}


def test_page_key_is_the_first_page_and_base_page_counts_the_total() -> None:
    """dlt: ``page`` is the first page asked for; the total counts from ``base_page``."""
    p = build({"type": "page_number", "base_page": 1, "page": 2, "total_path": "pages"})
    assert first(p).params == {"page": 2}
    step(p, {"pages": 3}, 5)
    assert p.has_next_page
    step(p, {"pages": 3}, 5)
    assert not p.has_next_page


def test_body_paths_put_the_value_in_the_json_body() -> None:
    """dlt's ``*_body_path``: a dot-separated place in the request's JSON body."""
    p = build({"type": "offset", "limit": 5, "offset_body_path": "paging.offset",
               "limit_body_path": "paging.limit", "total_path": None})
    request = first(p)
    assert request.params == {} and request.json == {"paging": {"offset": 0, "limit": 5}}
    assert step(p, {}, 5, request=request).json == {"paging": {"offset": 5, "limit": 5}}
    c = build({"type": "cursor", "cursor_path": "next_token", "cursor_body_path": "token"})
    assert step(c, {"next_token": "abc"}, 1).json == {"token": "abc"}
    n = build({"type": "page_number", "page_body_path": "page", "base_page": 1})
    assert first(n).json == {"page": 1} and first(n).params == {}


def test_a_body_path_pages_in_a_copy_of_the_endpoints_json_body() -> None:
    """A POST search: the cursor goes into this read's copy of ``endpoint.json``; the
    template's body stays as configured for the next read."""
    from analytics_client.http.paginators import first_request
    from analytics_client.read.plan import plan_resource

    raw = {"client": {"base_url": BASE}, "resources": [{"name": "items", "endpoint": {
        "path": "/search", "method": "POST", "json": {"query": "x", "limit": 2},
        "paginator": {"type": "cursor", "cursor_path": "paging.next.after",
                      "cursor_body_path": "after"}}}]}
    template = plan_resource(load_config(raw).resources[0]).request
    paginator, request = first_request(template)
    assert request.json == {"query": "x", "limit": 2}
    step(paginator, {"paging": {"next": {"after": "a2"}}}, 2, request=request)
    assert request.json == {"query": "x", "limit": 2, "after": "a2"}
    assert template.json == {"query": "x", "limit": 2}


@pytest.mark.parametrize(("paginator", "problem"), [
    ({"type": "page_number", "page_param": "p", "page_body_path": "p"}, "not both"),
    ({"type": "page_number", "total_path": None, "stop_after_empty_page": False},
     "cannot tell when to stop"),
    ({"type": "page_number", "limit": 10}, "limit_param is empty"),
    ({"type": "page_number", "base_page": 2, "page": 1}, "before base_page"),
    ({"type": "json_link", "next_url_path": "$[?(@.x"}, "next_url_path: "),
])
def test_dlts_validation_rules_name_the_key(paginator: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        paginator_config(paginator)
    assert any(problem in p for p in info.value.problems), info.value.problems


# -- JSONPath path keys ---------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "expected"), [
    ("meta.page.total_pages", {"meta": {"page": {"total_pages": 4}}}, 4),
    ("$.meta.total", {"meta": {"total": 9}}, 9),
    ("data[-1].id", {"data": [{"id": "a"}, {"id": "b"}]}, "b"),
    ("$.data[-1].id", {"data": []}, MISSING),
    ("$['@odata.nextLink']", {"@odata.nextLink": "https://x/2"}, "https://x/2"),
    ("@odata.nextLink", {"@odata.nextLink": "https://x/2"}, "https://x/2"),
    ("pagination.has_more", {"pagination": {"has_more": False}}, False),
    ("$.items[*].id", {"items": [{"id": 1}, {"id": 2}]}, 1),  # dlt: the first match
    ("next", {"next": None}, None),
])
def test_lookup_reads_paths_as_dlt_does(path: str, body: Any, expected: Any) -> None:
    assert lookup(body, path) == expected if expected is not MISSING \
        else lookup(body, path) is MISSING


def test_set_at_builds_the_body() -> None:
    body: dict[str, Any] = {"query": "x", "paging": "not a mapping"}
    set_at(body, "paging.cursor", "c1")
    set_at(body, "a.b.c", 1)
    assert body == {"query": "x", "paging": {"cursor": "c1"}, "a": {"b": {"c": 1}}}


def test_stripe_cursor_path_follows_the_last_id_until_has_more_is_false() -> None:
    p = build({"type": "cursor", "cursor_path": "data[-1].id",
               "cursor_param": "starting_after", "has_more_path": "has_more"})
    body = {"data": [{"id": "cus_1"}, {"id": "cus_2"}], "has_more": True}
    assert step(p, body, 2).params == {"starting_after": "cus_2"}
    step(p, {"data": [{"id": "cus_3"}], "has_more": False}, 1)
    assert not p.has_next_page


def test_has_more_true_without_a_cursor_fails_naming_it() -> None:
    p = build({"type": "cursor", "cursor_path": "data[-1].id", "cursor_param": "after"})
    with pytest.raises(ContractError, match=r"'has_more' is True"):
        step(p, {"data": [], "has_more": True}, 0)


def test_has_more_path_missing_or_not_a_boolean_is_a_contract_error() -> None:
    p = build({"type": "offset", "limit": 2, "total_path": None, "has_more_path": "more"})
    with pytest.raises(ContractError, match=r"has_more_path 'more' holds nothing"):
        step(p, {}, 2)
    q = build({"type": "offset", "limit": 2, "total_path": None, "has_more_path": "more"})
    step(q, {"more": "false"}, 2)  # dlt's str2bool
    assert not q.has_next_page


# -- header_cursor, auto ----------------------------------------------------------------------

def test_header_cursor_sends_the_header_back_until_it_is_gone() -> None:
    p = build("header_cursor")
    assert step(p, [], 3, {"next": "abc"}).params == {"cursor": "abc"}
    step(p, [], 3, {})
    assert not p.has_next_page


def test_header_cursor_named_twice_is_a_loop() -> None:
    p = build({"type": "header_cursor", "cursor_key": "X-Next"})
    step(p, [], 3, {"x-next": "a"})
    with pytest.raises(PaginationLoopError):
        step(p, [], 3, {"X-Next": "a"})


def test_auto_detects_total_pages_and_an_api_counting_from_one() -> None:
    """dlt's detector picks page_number (page from 0) from total_pages; an API counting from 1
    answers page 1 with the first page again: dropped, the read goes on from page 2."""
    p = build("auto")
    assert isinstance(p, AutoDetectPaginator)
    first_page = {"data": [{"id": 0}], "total_pages": 3}
    assert step(p, first_page, 1, start=0).params == {"page": 1}
    request = step(p, first_page, 1, start=0)
    assert p.discard and request.params == {"page": 2}
    step(p, {"total_pages": 3}, 2)
    assert not p.discard and p.has_next_page
    step(p, {"total_pages": 3}, 3)
    assert not p.has_next_page


# -- stop signals the messages name ------------------------------------------------------------

def test_an_empty_page_repeating_a_cursor_names_stop_after_empty_page() -> None:
    """1Password's feed with the same cursor on its empty last page (dlt-hub/dlt#3358)."""
    p = build("cursor")
    step(p, {"cursors": {"next": "c1"}}, 2)
    with pytest.raises(PaginationLoopError, match=r"items: .*stop_after_empty_page: true"):
        step(p, {"cursors": {"next": "c1"}}, 0)


def test_a_run_of_empty_pages_with_fresh_links_ends_in_an_error_not_a_hang() -> None:
    p = build("json_link")
    with pytest.raises(ContractError, match=r"items: 10 empty pages in a row"):
        for i in range(50):
            step(p, {"next": f"{BASE}/items?after={i}"}, 0)


def test_offset_empty_page_below_the_total_fails_naming_total_path() -> None:
    p = build({"type": "offset", "limit": 10})
    step(p, {"total": 30}, 10)
    with pytest.raises(ContractError, match=r"items: the page at offset=10 is empty but total "
                                            r"is 30 .* paginator\.total_path"):
        step(p, {"total": 30}, 0)


def test_offset_steps_by_the_records_received_when_the_page_size_is_clamped() -> None:
    p = build({"type": "offset", "limit": 100})
    assert step(p, {"total": 60}, 25).params == {"offset": 25, "limit": 100}
    assert step(p, {"total": 60}, 25).params == {"offset": 50, "limit": 100}
    step(p, {"total": 60}, 10)
    assert not p.has_next_page


def test_offset_total_below_the_records_served_is_read_past() -> None:
    """A total counting what is left after the offset (oasisprotocol/nexus#489)."""
    p = build({"type": "offset", "limit": 10})
    step(p, {"total": 25}, 10)
    step(p, {"total": 15}, 10)  # 20 read, total says 15: contradicted, read on
    assert p.has_next_page
    step(p, {"total": 5}, 5)
    assert p.has_next_page
    step(p, {"total": 0}, 0)
    assert not p.has_next_page

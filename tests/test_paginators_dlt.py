"""dlt's paginators: stop rules, loop guards, and Link headers and next URLs from outside."""

from __future__ import annotations

import string
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client.config import load_config
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import (
    ConfigError,
    ContractError,
    ForeignHostError,
    PaginationLoopError,
)
from analytics_client.http.client import ApiClient
from analytics_client.http.link_header import next_link, parse_link_header
from analytics_client.http.paginators import (
    PAGINATORS,
    AutoDetectPaginator,
    BasePaginator,
    PageRequest,
    PageResponse,
    make_paginator,
)
from tests.plans import request_of

BASE = "https://api.example.com"


def build(paginator: Any) -> BasePaginator:
    source = load_config({"client": {"base_url": BASE, "paginator": paginator},
                          "resources": [{"name": "deals", "endpoint": {"path": "/v1/deals"}}]})
    return make_paginator("deals", source.resources[0].endpoint.paginator)


def page(p: BasePaginator, body: Any, data: list[Any], headers: dict[str, str] | None = None,
         url: str = f"{BASE}/v1/deals") -> PageRequest:
    """One page through dlt's contract; returns the next request."""
    request = PageRequest()
    p.update_state(PageResponse(body, headers or {}, url), data)
    p.update_request(request)
    return request


def rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"id": f"d{start + i}"} for i in range(n)]


def test_every_dlt_type_name_is_registered() -> None:
    """The registry answers dlt's type names (and the issue's json_response_cursor)."""
    assert {"page_number", "single_page", "offset", "cursor", "json_response_cursor",
            "json_link", "json_response", "header_link", "auto"} <= set(PAGINATORS)


# -- offset --------------------------------------------------------------------------------


def test_offset_first_request_and_steps_by_limit() -> None:
    """offset starts at 0 with the limit and grows by it, dlt's defaults."""
    p = build({"type": "offset", "limit": 10})
    first = PageRequest()
    p.init_request(first)
    assert first.params == {"offset": 0, "limit": 10}
    assert page(p, {"total": 30}, rows(10)).params == {"offset": 10, "limit": 10}


@pytest.mark.parametrize(("paginator", "pages", "more"), [
    # A full page reaching the total may be a stale total: one more request tells (issue 22).
    ({"type": "offset", "limit": 10}, [({"total": 20}, 10), ({"total": 20}, 10)], True),
    ({"type": "offset", "limit": 10}, [({"total": 20}, 10), ({"total": 20}, 10),
                                       ({"total": 20}, 0)], False),
    ({"type": "offset", "limit": 10}, [({"total": 15}, 10), ({"total": 15}, 5)], False),
    # Without a total a short page may be a clamped page size: the empty page ends the read.
    ({"type": "offset", "limit": 10, "total_path": None}, [({}, 10), ({}, 9)], True),
    ({"type": "offset", "limit": 10, "total_path": None}, [({}, 10), ({}, 9), ({}, 0)], False),
    ({"type": "offset", "limit": 10, "total_path": None}, [({}, 10), ({}, 10)], True),
    ({"type": "offset", "limit": 10, "maximum_offset": 20}, [({"total": 99}, 10),
                                                             ({"total": 99}, 10)], False),
    ({"type": "offset", "limit": 10, "total_path": "meta.total"},
     [({"meta": {"total": "25"}}, 10)], True),
])
def test_offset_stops_on_empty_short_total_or_maximum(paginator: Any, pages: list[Any],
                                                        more: bool) -> None:
    """Empty page, total reached, maximum_offset, or a short page when there is no total."""
    p = build(paginator)
    for i, (body, n) in enumerate(pages):
        page(p, body, rows(n, 10 * i))
    assert p.has_next_page is more


def test_offset_without_the_configured_total_is_a_contract_error() -> None:
    """A missing total is named with its key rather than guessed."""
    p = build({"type": "offset", "limit": 10})
    with pytest.raises(ContractError, match="deals: .*no total at 'total'.*paginator.total_path"):
        page(p, {"count": 3}, rows(10))


def test_offset_ignored_by_the_api_is_a_loop_error() -> None:
    """The same records at the next offset: the API ignores offset_param."""
    p = build({"type": "offset", "limit": 10, "total_path": None})
    page(p, {}, rows(10))
    with pytest.raises(PaginationLoopError, match="ignore 'offset'"):
        page(p, {}, rows(10))


# -- cursor --------------------------------------------------------------------------------


def test_cursor_goes_back_as_its_param_and_stops_when_null() -> None:
    """dlt's defaults: cursors.next read, cursor sent; null or empty ends the read."""
    p = build("cursor")
    assert page(p, {"cursors": {"next": "abc"}}, rows(3)).params == {"cursor": "abc"}
    page(p, {"cursors": {"next": ""}}, rows(3))
    assert not p.has_next_page


def test_a_cursor_seen_before_is_a_loop_error() -> None:
    """A cycle of any length (a, b, a) is caught, not followed forever."""
    p = build({"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "after"})
    page(p, {"next_cursor": "a"}, rows(1))
    page(p, {"next_cursor": "b"}, rows(1))
    with pytest.raises(PaginationLoopError, match="deals: .*already followed.*cursor_path"):
        page(p, {"next_cursor": "a"}, rows(1))


# -- links ---------------------------------------------------------------------------------


def test_json_link_resolves_relative_urls_and_replaces_the_query() -> None:
    """A relative next link is resolved against the page's URL; its query is the server's."""
    p = build({"type": "json_link", "next_url_path": "pagination.next"})
    request = page(p, {"pagination": {"next": "?page=2"}}, rows(1),
                   url=f"{BASE}/v1/deals?sort=id")
    assert (request.url, request.params) == (f"{BASE}/v1/deals?page=2", {})


def test_a_next_url_seen_before_is_a_loop_error() -> None:
    """A server whose next link points back at the first page is caught at once."""
    p = build("json_link")
    with pytest.raises(PaginationLoopError, match="already followed.*next_url_path"):
        page(p, {"next": f"{BASE}/v1/deals"}, rows(1))


def test_a_next_url_that_is_not_http_is_a_contract_error() -> None:
    """Only http(s) links are followed."""
    p = build("json_link")
    with pytest.raises(ContractError, match="not an http"):
        page(p, {"next": "ftp://api.example.com/v1/deals?page=2"}, rows(1))


def test_header_link_follows_rel_next() -> None:
    """GitHub's shape: several links, the one whose rel is next is followed."""
    p = build("header_link")
    link = (f'<{BASE}/v1/deals?page=3>; rel="last", <{BASE}/v1/deals?page=2>; rel="next"')
    assert page(p, {}, rows(1), {"Link": link}).url == f"{BASE}/v1/deals?page=2"
    page(p, {}, rows(1), {"Link": f'<{BASE}/v1/deals?page=1>; rel="prev"'})
    assert not p.has_next_page


# -- Link headers from outside -------------------------------------------------------------

_URI_CHARS = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%"
uris = st.text(_URI_CHARS, min_size=1, max_size=40).map(lambda s: "https://h.example/" + s)
rels = st.lists(st.sampled_from(["next", "prev", "last", "first", "NEXT", "alternate"]),
                min_size=1, max_size=3)
extras = st.dictionaries(st.sampled_from(["title", "type", "hreflang", "anchor"]),
                         st.text(string.printable.replace("\x0b", "").replace("\x0c", ""),
                                 max_size=20), max_size=2)


@st.composite
def links(draw: st.DrawFn) -> list[tuple[str, list[str], dict[str, str]]]:
    return draw(st.lists(st.tuples(uris, rels, extras), max_size=4))


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(links(), st.sampled_from([", ", ",", " ,\t"]), st.sampled_from(["; ", ";", " ; "]),
       st.booleans())
def test_link_headers_parse_back_to_what_was_written(
        written: list[tuple[str, list[str], dict[str, str]]], comma: str, semicolon: str,
        rel_first: bool) -> None:
    """Any well-formed Link value (RFC 8288: targets with commas and semicolons, quoted
    parameters with escapes, several rels) parses back to its targets and parameters."""
    parts = []
    for target, rel_list, params in written:
        rel = semicolon + "rel=" + _quoted(" ".join(rel_list))
        other = "".join(f"{semicolon}{k}={_quoted(v)}" for k, v in params.items())
        parts.append(f"<{target}>" + (rel + other if rel_first else other + rel))
    parsed = parse_link_header(comma.join(parts))
    assert [t for t, _ in parsed] == [t for t, _, _ in written]
    for (_, rel_list, params), (_, got) in zip(written, parsed, strict=True):
        assert got["rel"] == " ".join(rel_list)
        assert {k: got[k] for k in params} == params
    wanted = next((t for t, r, _ in written if "next" in [x.lower() for x in r]), None)
    assert next_link(comma.join(parts)) == wanted


@given(st.text(max_size=200))
def test_any_link_header_text_parses_without_raising(value: str) -> None:
    """A header is input from outside: garbage yields fewer links, never an exception."""
    parse_link_header(value)
    next_link(value)


next_values = st.one_of(
    st.none(), st.integers(), st.booleans(), st.lists(st.text(max_size=5), max_size=2),
    st.text(max_size=60),
    st.builds(lambda scheme, rest: f"{scheme}{rest}",
              st.sampled_from(["http://", "https://", "//", "/", "?", "ftp://", "javascript:",
                               "HTTPS://", " http://", "http:/"]),
              st.text(string.ascii_letters + string.digits + "/?=&.:%#[]@-", max_size=40)),
)


@given(next_values)
def test_any_next_value_is_followed_as_an_http_url_or_refused_by_name(value: Any) -> None:
    """A next link is input from outside: either an absolute http(s) URL is followed, or the
    read ends (nothing there) or fails with a ContractError naming next_url_path."""
    p = build({"type": "json_link", "next_url_path": "links.next"})
    try:
        request = page(p, {"links": {"next": value}}, rows(1))
    except ContractError as exc:
        assert str(exc).startswith("deals: ") and "next_url_path" in str(exc)
        return
    if p.has_next_page:
        assert request.url is not None
        url = httpx.URL(request.url)
        assert url.scheme in ("http", "https") and url.host
    else:
        assert value is None or value == ""


# -- credentials never leave the API's host ------------------------------------------------


SOURCE = load_config({"client": {"base_url": "https://api.example.com:443"},
                      "resources": [{"name": "deals", "endpoint": {"path": "/v1/deals"}}]})


def _client(calls: list[httpx.Request]) -> ApiClient:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"data": []})

    return ApiClient(SOURCE, Credentials("k3y-secret-value", "org_1"),
                     transport=httpx.MockTransport(answer))


origins = st.tuples(st.sampled_from(["http", "https"]),
                    st.sampled_from(["api.example.com", "API.EXAMPLE.COM", "evil.example",
                                     "api.example.com.evil.example", "127.0.0.1"]),
                    st.sampled_from([None, 443, 80, 8443]))


@given(origins, st.text(string.ascii_letters + "/?=&", max_size=20))
def test_a_next_url_is_sent_only_to_the_apis_origin(origin: tuple[str, str, int | None],
                                                    rest: str) -> None:
    """Scheme, host (case-insensitive) and port (default ports filled in) must all match;
    otherwise nothing is sent and the error names both origins and the resource."""
    scheme, host, port = origin
    url = f"{scheme}://{host}{f':{port}' if port else ''}/v1/deals?{rest}"
    same = scheme == "https" and host.lower() == "api.example.com" and port in (None, 443)
    calls: list[httpx.Request] = []
    with _client(calls) as client:
        resource = SOURCE.resources[0]
        if same:
            client.get_page(request_of(resource), PageRequest(url=url))
            assert len(calls) == 1
        else:
            with pytest.raises(ForeignHostError) as info:
                client.get_page(request_of(resource), PageRequest(url=url))
            assert calls == []
            message = str(info.value)
            assert message.startswith("deals: ") and "https://api.example.com:443" in message
            assert "k3y-secret-value" not in message


# -- auto ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "headers", "detected"), [
    ({"data": []}, {"link": f'<{BASE}/v1/deals?page=2>; rel="next"'}, "header_link"),
    ({"data": [], "links": {"next": "/v1/deals?page[number]=2"}}, {}, "json_link"),
    ({"data": [], "paging": {"next": {"href": f"{BASE}/x?p=2"}}}, {}, "json_link"),
    ({"data": [], "meta": {"next_cursor": "eyJpZCI6M30"}}, {}, "cursor"),
    ({"data": [], "meta": {"total_pages": 3}}, {}, "page_number"),  # dlt's detector too
    ({"data": []}, {}, "single_page"),
])
def test_auto_detects_in_dlts_order(body: Any, headers: dict[str, str], detected: str) -> None:
    """Link header, next URL in the body, a cursor, else one page (dlt's detector.py)."""
    p = build("auto")
    assert isinstance(p, AutoDetectPaginator)
    page(p, body, rows(1), headers)
    assert p.detected is not None and detected in p.detected.type_names


def test_auto_falling_back_to_one_page_over_records_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    """An API whose paging auto cannot see is read in part: the log says so, as dlt's does."""
    p = build("auto")
    with caplog.at_level("WARNING", logger="analytics_client.http.paginators"):
        page(p, {"data": rows(10)}, rows(10))
    assert not p.has_next_page
    assert "deals: paginator auto found no paging" in caplog.text


def test_auto_falling_back_to_one_page_while_the_page_says_more_fails() -> None:
    """A record total above the page read: one page would leave rows out (issue 22, item 4)."""
    p = build("auto")
    with pytest.raises(ContractError, match=r"deals: .*'total' is 500 but 10 records"):
        page(p, {"data": rows(10), "total": 500}, rows(10))


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(("paginator", "problem"), [
    ("offset", "resources[0].endpoint.paginator.limit: is required"),
    ({"type": "offset", "limit": 5, "limit_param": "n", "limit_body_path": "x"},
     "resources[0].endpoint.paginator: give either limit_param or limit_body_path, not both"),
    ({"type": "cursor", "cursor_param": "c", "cursor_body_path": "x"},
     "resources[0].endpoint.paginator: give either cursor_param or cursor_body_path"),
    ({"type": "offset", "limit": 5, "total_path": None, "stop_after_empty_page": False},
     "resources[0].endpoint.paginator: cannot tell when to stop"),
    ({"type": "header_cursor", "cursor_path": "x"},
     "resources[0].endpoint.paginator.cursor_path: unknown key; allowed here: type, cursor_key"),
    ({"type": "cursor", "cursor_path": "$[?("}, "resources[0].endpoint.paginator.cursor_path: "),
])
def test_config_problems_name_the_key(paginator: Any, problem: str) -> None:
    """Every key is known; what dlt has and we do not yet is refused by name, not ignored."""
    with pytest.raises(ConfigError) as info:
        load_config({"client": {"base_url": BASE},
                     "resources": [{"name": "deals",
                                    "endpoint": {"path": "/v1/deals", "paginator": paginator}}]})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_start_param_with_a_paginator_without_page_numbers_is_a_lagged_read() -> None:
    """Any paginator filters by the cursor now (window.py; proven in test_incremental_window)."""
    from analytics_client.read.plan import plan_resource

    resource = load_config({"client": {"base_url": BASE},
                            "resources": [{"name": "deals", "endpoint": {
                                "path": "/v1/deals", "paginator": "cursor",
                                "incremental": {"cursor_path": "updated_at",
                                                "start_param": "updated_since"}}}]}).resources[0]
    assert plan_resource(resource).mode == "lagged"

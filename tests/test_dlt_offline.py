"""dlt's offline rest_api tests, ported: dlt's configs, run through our library against dlt's mock
API served over loopback (tests/dltmock.py), asserting what dlt asserts against our Delta tables
and the requests the API received.

Source: dlt-hub/dlt ``tests/sources/rest_api/integration/test_offline.py`` (test names below are
dlt's; a case id is dlt's ``pytest.param`` id) and
``tests/sources/rest_api/test_rest_api_source.py`` (its one offline test). Issue 22, acceptance
point 1.

A case that fails on main today is ``xfail(strict=True)`` with the cause (the ``X_*`` reasons,
grouped by cause): when the fix lands it passes, strict turns that into a failure, and the mark
comes off. A case we refuse by name for a reason the README gives asserts the refusal message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.dltmock import COMMENTS, PAGE_SIZE, POSTS, DltMockApi, single_params
from tests.dltport_support import (
    X_AUTO,
    X_BODY_PATH,
    X_BRACES,
    X_CHILD_INC_CASE,
    X_CHILD_INCREMENTAL,
    X_CHILD_WINDOW,
    X_COUNT_PROBE,
    X_DATA,
    X_FILTER_IGNORED,
    X_HEADERS,
    X_INT_INITIAL,
    X_INT_INITIAL_DONE,
    X_JSON,
    X_OBJECT,
    X_PAGE_NUMBER,
    X_PARALLEL,
    X_POST,
    X_REDACT,
    assert_ok,
    column,
    live,
    refusal,
    run,
    still_open,
    xfail,
)

BASE = "https://api.example.com"  # dlt's MOCK_BASE_URL; each run points it at the loopback API

X_AUTO_OBJECT = f"{X_AUTO}; then {X_OBJECT}"
POSTS_ONLY = {"client": {"base_url": BASE}, "resources": ["posts"]}
RESOLVE_POST_ID = {"type": "resolve", "resource": "posts", "field": "id"}
PAGE_NUMBER_TOTAL = {"type": "page_number", "base_page": 1, "total_path": "total_pages"}


@pytest.fixture
def api() -> Any:
    with DltMockApi() as server:
        yield server


def xcase(config: Any, *, id: str, reason: str | None = None) -> Any:  # noqa: A002
    marks = [xfail(reason=reason)] if reason and still_open(reason) else []
    return pytest.param(config, id=id, marks=marks)


# ---- test_load_mock_api ------------------------------------------------------------------------

LOAD_MOCK = [
    xcase([
        "posts",
        {"name": "post_comments", "endpoint": {"path": "posts/{post_id}/comments",
                                               "params": {"post_id": RESOLVE_POST_ID}}},
        {"name": "post_details", "endpoint": {"path": "posts/{post_id}",
                                              "params": {"post_id": RESOLVE_POST_ID}}},
    ], id="resolve_params_in_path", reason=f"{X_AUTO}; then {X_OBJECT}"),
    xcase([
        "posts",
        {"name": "post_comments", "endpoint": "posts/{resources.posts.id}/comments"},
        {"name": "post_details", "endpoint": "posts/{resources.posts.id}"},
    ], id="interpolated_params_in_path", reason=f"{X_AUTO}; then {X_OBJECT}"),
    xcase([
        "posts",
        {"name": "post_comments", "endpoint": {"path": "post_comments",
                                               "params": {"post_id": "{resources.posts.id}"}}},
        {"name": "post_details", "endpoint": {"path": "post_detail",
                                              "params": {"post_id": "{resources.posts.id}"}}},
    ], id="interpolated_params_in_query_string", reason=f"{X_AUTO}; then {X_OBJECT}"),
    xcase([
        "posts",
        {"name": "post_comments", "endpoint": {"path": "post_comments", "method": "POST",
                                               "json": {"post_id": "{resources.posts.id}"}}},
        {"name": "post_details", "endpoint": {"path": "post_detail", "method": "POST",
                                              "json": {"post_id": "{resources.posts.id}"}}},
    ], id="interpolated_params_in_json_string", reason=f"{X_POST}; {X_AUTO}; {X_OBJECT}"),
    xcase([
        "posts",
        {"name": "post_comments", "endpoint": {"path": "post_comments_via_headers",
                                               "headers": {"post_id": "{resources.posts.id}"}}},
        {"name": "post_details", "endpoint": {"path": "post_detail_via_headers",
                                              "headers": {"post_id": "{resources.posts.id}"}}},
    ], id="interpolated_params_in_the_headers", reason=f"{X_HEADERS}; {X_AUTO}; {X_OBJECT}"),
]


@pytest.mark.parametrize("resources", LOAD_MOCK)
def test_load_mock_api(api: DltMockApi, tmp_path: Path, resources: list[Any]) -> None:
    """Posts, their comments and their details: 25, 1,250 and 25 rows, dlt's columns."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE},
                                             "resources": resources})
    assert_ok(summaries)
    assert set(summaries) == {"posts", "post_comments", "post_details"}
    assert live(tmp_path, "posts").height == POSTS
    assert live(tmp_path, "post_details").height == POSTS
    assert live(tmp_path, "post_comments").height == COMMENTS * POSTS
    assert column(tmp_path, "posts", "title") == [f"Post {i}" for i in range(POSTS)]
    assert column(tmp_path, "post_details", "body") == [f"Post body {i}" for i in range(POSTS)]
    assert column(tmp_path, "post_comments", "body", order=("post_id", "id"))[:5] == [
        f"Comment {i} for post 0" for i in range(5)]


TYPEDDICT = [
    xcase(["posts", {"name": "post_comments",
                     "endpoint": {"path": "posts/{post_id}/comments",
                                  "params": {"post_id": RESOLVE_POST_ID}}}],
          id="resolve", reason=X_AUTO),
    xcase(["posts", {"name": "post_comments",
                     "endpoint": {"path": "posts/{resources.posts.id}/comments"}}],
          id="interpolated", reason=X_AUTO),
]


@pytest.mark.parametrize("resources", TYPEDDICT)
def test_load_mock_api_typeddict_config(api: DltMockApi, tmp_path: Path,
                                        resources: list[Any]) -> None:
    """dlt's RESTAPIConfig/EndpointResource typed dicts are dicts: posts and comments."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE},
                                             "resources": resources})
    assert_ok(summaries)
    assert live(tmp_path, "posts").height == POSTS
    assert live(tmp_path, "post_comments").height == POSTS * COMMENTS


# ---- query strings sent ------------------------------------------------------------------------

INCREMENTAL_ID = {"start_param": "since", "end_param": "until", "cursor_path": "id",
                  "initial_value": 1, "end_value": 10}
SINGLE_QS = [
    xcase(({"path": "posts", "params": {"sort": "desc", "locale": "en"}},
           {"sort": ["desc"], "locale": ["en"]}), id="static_params", reason=X_PAGE_NUMBER),
    xcase(({"path": "posts", "params": {}}, {}), id="empty_params", reason=X_PAGE_NUMBER),
    xcase(({"path": "posts", "params": {"sort": "desc", "locale": ""}},
           {"sort": ["desc"], "locale": [""]}), id="one_empty_param", reason=X_PAGE_NUMBER),
    xcase(({"path": "posts", "params": {"sort": "desc", "locale": "en", "page": "100"}},
           {"sort": ["desc"], "locale": ["en"]}), id="explicit_page_param",
          reason=X_PAGE_NUMBER),
    xcase(({"path": "posts", "incremental": INCREMENTAL_ID}, {"since": ["1"], "until": ["10"]}),
          id="incremental_in_endpoint",
          reason=f"{X_INT_INITIAL}; {X_PAGE_NUMBER}; {X_FILTER_IGNORED}"),
    xcase(({"path": "posts", "params": {"sort": "desc", "locale": "en"},
            "incremental": INCREMENTAL_ID},
           {"sort": ["desc"], "locale": ["en"], "since": ["1"], "until": ["10"]}),
          id="incremental_in_endpoint_mixed_with_static",
          reason=f"{X_INT_INITIAL}; {X_PAGE_NUMBER}; {X_FILTER_IGNORED}"),
    xcase(({"path": "posts", "params": {"sort": "desc", "since": {
        "type": "incremental", "cursor_path": "id", "initial_value": 1}}},
           {"since": ["1"], "sort": ["desc"]}), id="incremental_in_params",
          reason=f"{X_INT_INITIAL}; {X_PAGE_NUMBER}; {X_FILTER_IGNORED}; {X_COUNT_PROBE}"),
    xcase(({"path": "posts", "params": {
        "sort": "desc", "param_with_braces": "{{not_this}}",
        "param_with_nested_braces": "{{not_this {{and}} {{not_that}}}}"}},
           {"sort": ["desc"], "param_with_braces": ["{not_this}"],
            "param_with_nested_braces": ["{not_this {and} {not_that}}"]}),
          id="escaped_braces_in_params", reason=f"{X_PAGE_NUMBER}; {X_BRACES}"),
]


@pytest.mark.parametrize("case", SINGLE_QS)
def test_single_resource_query_string_params(api: DltMockApi, tmp_path: Path,
                                             case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Five requests, each with the static params, the incremental ones and ``page=i`` only."""
    endpoint, expected = case
    summaries = run(api.base_url, tmp_path, {
        "client": {"base_url": BASE, "paginator": PAGE_NUMBER_TOTAL},
        "resources": [{"name": "posts", "endpoint": endpoint}]})
    assert_ok(summaries)
    assert [r.params for r in api.history] == [{**expected, "page": [str(i)]}
                                               for i in range(1, 6)]


DEPENDENT_QS = [
    xcase(({"path": "posts/{post_id}/comments",
            "params": {"post_id": RESOLVE_POST_ID, "sort": "desc", "locale": "en"}},
           {"sort": ["desc"], "locale": ["en"]}), id="static_params", reason=X_PAGE_NUMBER),
    xcase(({"path": "posts/{post_id}/comments", "params": {"post_id": RESOLVE_POST_ID}}, {}),
          id="empty_params", reason=X_PAGE_NUMBER),
    xcase(({"path": "posts/{post_id}/comments",
            "params": {"post_id": RESOLVE_POST_ID, "sort": "desc", "locale": ""}},
           {"sort": ["desc"], "locale": [""]}), id="one_empty_param", reason=X_PAGE_NUMBER),
    xcase(({"path": "posts/{post_id}/comments",
            "params": {"post_id": RESOLVE_POST_ID, "sort": "desc", "locale": "en",
                       "page": "100"}},
           {"sort": ["desc"], "locale": ["en"]}), id="explicit_page_param",
          reason=X_PAGE_NUMBER),
    xcase(({"path": "posts/{post_id}/comments", "params": {"post_id": RESOLVE_POST_ID},
            "incremental": INCREMENTAL_ID}, {"since": ["1"], "until": ["10"]}),
          id="incremental_in_endpoint",
          reason=f"{X_CHILD_INC_CASE}; {X_FILTER_IGNORED}; {X_CHILD_WINDOW}"),
    xcase(({"path": "posts/{post_id}/comments",
            "params": {"post_id": RESOLVE_POST_ID, "sort": "desc", "locale": "en"},
            "incremental": INCREMENTAL_ID},
           {"sort": ["desc"], "locale": ["en"], "since": ["1"], "until": ["10"]}),
          id="incremental_in_endpoint_mixed_with_static",
          reason=f"{X_CHILD_INC_CASE}; {X_FILTER_IGNORED}; {X_CHILD_WINDOW}"),
    xcase(({"path": "posts/{post_id}/comments",
            "params": {"post_id": RESOLVE_POST_ID, "since": {
                "type": "incremental", "cursor_path": "id", "initial_value": 1}}},
           {"since": ["1"]}), id="incremental_in_params", reason=X_CHILD_INC_CASE),
    xcase(({"path": "posts/{post_id}/comments",
            "params": {"post_id": RESOLVE_POST_ID, "since": {
                "type": "incremental", "cursor_path": "id", "initial_value": 1},
                "sort": "desc", "locale": "en"}},
           {"since": ["1"], "sort": ["desc"], "locale": ["en"]}),
          id="incremental_in_params_with_static", reason=X_CHILD_INC_CASE),
]


@pytest.mark.parametrize("case", DEPENDENT_QS)
def test_dependent_resource_query_string_params(
        api: DltMockApi, tmp_path: Path, case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Every comments request: the static and incremental params and ``page`` in 1..10 only.

    dlt reads one page of posts (``add_limit(1)``: 5 parents, 50 requests); we read all 25."""
    endpoint, expected = case
    summaries = run(api.base_url, tmp_path, {
        "client": {"base_url": BASE, "paginator": PAGE_NUMBER_TOTAL},
        "resources": ["posts", {"name": "post_comments", "endpoint": endpoint}]})
    assert_ok(summaries)
    calls = api.calls(r"/posts/\d+/comments")
    assert len(calls) == POSTS * COMMENTS // PAGE_SIZE
    for call in calls:
        assert set(call.params) == set(expected) | {"page"}
        for key, values in expected.items():
            assert call.params[key] == values
        assert 1 <= int(call.params["page"][0]) <= COMMENTS // PAGE_SIZE


INTERPOLATE_QS = [
    xcase(({"path": "post_detail", "params": {"post_id": "{resources.posts.id}"}}, {}),
          id="interpolate_param_only", reason=X_AUTO_OBJECT),
    xcase(({"path": "post_detail", "params": {"post_id": "{resources.posts.id}",
                                              "sort": "desc"}}, {"sort": ["desc"]}),
          id="interpolate_param_with_static", reason=X_AUTO_OBJECT),
    xcase(({"path": "post_detail", "params": {"post_id": "{resources.posts.id}", "sort": "desc",
                                              "locale": ""}},
           {"sort": ["desc"], "locale": [""]}), id="one_static_param_is_empty",
          reason=X_AUTO_OBJECT),
    xcase(({"path": "post_detail", "params": {"post_id": "{resources.posts.id}", "sort": "desc",
                                              "param_with_braces": "{{not_this}}"}},
           {"sort": ["desc"], "param_with_braces": ["{not_this}"]}),
          id="escaped_braces_in_params", reason=X_AUTO_OBJECT),
]


@pytest.mark.parametrize("case", INTERPOLATE_QS)
def test_interpolate_params_in_query_string(
        api: DltMockApi, tmp_path: Path, case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """One detail request per post, ``post_id`` its id, the static params beside it."""
    endpoint, expected = case
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_details", "endpoint": endpoint}]})
    assert_ok(summaries)
    calls = api.calls("/post_detail")
    assert sorted(int(c.params["post_id"][0]) for c in calls) == list(range(POSTS))
    for call in calls:
        assert set(call.params) == set(expected) | {"post_id"}
        for key, values in expected.items():
            assert call.params[key] == values


@pytest.mark.parametrize("case", [
    xcase(({"path": "posts/{resources.posts.id}/comments"}, b""), id="no_json_get",
          reason=X_AUTO),
    xcase(({"path": "posts/{resources.posts.id}/comments", "method": "GET", "json": {}}, b"{}"),
          id="empty_json_get", reason=f"{X_JSON}; {X_AUTO}"),
])
def test_request_json_body(api: DltMockApi, tmp_path: Path,
                           case: tuple[dict[str, Any], bytes]) -> None:
    """A GET sends no body, unless the config gives ``json`` (then its JSON, ``{}`` too)."""
    endpoint, body = case
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "posts_comments", "endpoint": endpoint}]})
    assert_ok(summaries)
    calls = api.calls(r"/posts/\d+/comments")
    assert len(calls) == POSTS * COMMENTS // PAGE_SIZE
    assert calls[0].body == body


# ---- refused configs ---------------------------------------------------------------------------

def test_raises_error_for_unused_resolve_params() -> None:
    """A resolve param not bound in the path is an error naming it and the path."""
    message = refusal({"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_details", "endpoint": {
            "path": "posts", "params": {"post_id": RESOLVE_POST_ID}}}]})
    assert "resources[1].endpoint.params.post_id" in message and "bound in the path" in message


@pytest.mark.parametrize("case", [
    xcase(({"name": "post_detail", "endpoint": {
        "path": "post_detail", "params": {"post_id": "{unknown.posts.id}"}}}, "params"),
          id="query_params"),
    xcase(({"name": "search_by_id", "endpoint": {
        "path": "posts/search_by_id/{resources.posts.id}", "method": "POST",
        "json": {"post_id": "{unknown.posts.id}"}}}, "json"), id="json_body"),
])
def test_raises_error_for_incorrect_interpolation(case: tuple[dict[str, Any], str]) -> None:
    """A placeholder outside ``resources.`` / ``incremental.`` is an error naming it and where."""
    resource, location = case
    message = refusal({"client": {"base_url": BASE}, "resources": ["posts", resource]})
    assert "unknown.posts.id" in message and location in message
    assert "method" not in message  # refused for the placeholder, not for the key


def test_data_and_json_mutual_exclusivity() -> None:
    """``json`` and ``data`` together: dlt raises "Cannot use both 'json' and 'data'"."""
    message = refusal({"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts/search", "method": "POST",
                                      "json": {"search_term": "test"},
                                      "data": {"should_be_ignored": "yes"}}}]})
    assert "json" in message and "data" in message and "both" in message


def test_rest_api_data_json_mutual_exclusivity() -> None:
    """test_rest_api_source.py's offline case: the same, with ``single_page``."""
    message = refusal({"client": {"base_url": BASE}, "resources": [{
        "name": "invalid_test", "endpoint": {"path": "post", "method": "POST",
                                             "json": {"key": "value"}, "data": {"other": "data"},
                                             "paginator": "single_page"}}]})
    assert "json" in message and "data" in message and "both" in message


@pytest.mark.parametrize("incremental", [
    pytest.param({"start_param": "since", "end_param": "until", "cursor_path": "updated_at",
                  "initial_value": "1", "end_value": "86401", "convert": str},
                 id="test_posts_with_incremental_date_conversion"),
    pytest.param({"cursor_path": "updated_at", "initial_value": "1", "end_value": "86401",
                  "convert": str}, id="test_incremental_values_in_param_template_with_conversion"),
    pytest.param({"cursor_path": "id", "initial_value": 1600000000, "convert": int},
                 id="incremental_interpolated_in_params"),
    pytest.param({"start_param": "since", "cursor_path": "id", "initial_value": 1600000000,
                  "convert": int}, id="incremental_in_endpoint"),
])
def test_incremental_convert_is_refused_by_name(incremental: dict[str, Any]) -> None:
    """dlt's ``incremental.convert`` (test_incremental_convert_without_end_value and the two
    date-conversion tests): refused by name, as the README's dlt keys table says."""
    message = refusal({"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts", "incremental": incremental}}]})
    assert "convert" in message


def test_incremental_convert_in_params_is_refused_by_name() -> None:
    """test_incremental_convert_without_end_value[incremental_in_params]: the param form."""
    message = refusal({"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts", "params": {"since": {
            "type": "incremental", "cursor_path": "id", "initial_value": 1600000000,
            "convert": int}}}}]})
    assert "convert" in message


def test_custom_session_is_refused_by_name() -> None:
    """test_custom_session_is_used: ``client.session`` (a requests.Session) is refused by name:
    we run on httpx (README, dlt config keys)."""
    message = refusal({"client": {"base_url": BASE, "session": object()},
                       "resources": [{"name": "posts", "endpoint": "posts"}]})
    assert "session" in message


# ---- POST bodies -------------------------------------------------------------------------------

@xfail(reason=f"{X_POST}; {X_BODY_PATH}")
def test_source_with_post_request(api: DltMockApi, tmp_path: Path) -> None:
    """A search endpoint paged by the body's ``page``. dlt's test passes a custom paginator
    instance (the next page from ``next_page`` into the JSON body's ``page``); as a config that is
    dlt's cursor paginator with ``cursor_body_path``. 49 posts, ids 51..99."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "search_posts", "endpoint": {
            "path": "/posts/search", "method": "POST",
            "json": {"ids_greater_than": 50, "page_size": 25, "page_count": 4},
            "paginator": {"type": "cursor", "cursor_path": "next_page",
                          "cursor_body_path": "page"}}}]})
    assert_ok(summaries)
    assert column(tmp_path, "search_posts", "id") == list(range(51, 100))
    assert column(tmp_path, "search_posts", "title") == [f"Post {i}" for i in range(51, 100)]


@pytest.mark.parametrize("case", [
    xcase(({"initial_value": "{incremental.initial_value}", "escaped_braces": "{{not_this}}",
            "nested": {"initial_value": "{incremental.initial_value}",
                       "escaped": "{{not_this_either}}"},
            "array_values": ["{incremental.initial_value}", "{{not_array_either}}"]},
           {"initial_value": 1, "escaped_braces": "{not_this}",
            "nested": {"initial_value": 1, "escaped": "{not_this_either}"},
            "array_values": [1, "{not_array_either}"]}), id="complex_nested_json",
          reason=f"{X_POST}; {X_INT_INITIAL}; {X_FILTER_IGNORED}"),
    xcase(({}, {}), id="empty_json", reason=f"{X_POST}; {X_INT_INITIAL_DONE}"),
])
def test_json_body_in_top_level_resource(api: DltMockApi, tmp_path: Path,
                                         case: tuple[Any, Any]) -> None:
    """The first request's JSON body: placeholders filled (typed), ``{{ }}`` unescaped."""
    body, expected = case
    run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts/search", "method": "POST", "json": body,
                                      "incremental": {"cursor_path": "id", "initial_value": 1}}}]})
    assert api.history and api.history[0].method == "POST"
    assert api.history[0].json() == expected


@xfail(reason=f"{X_POST}; {X_AUTO}; {X_OBJECT}")
def test_interpolate_parent_values_in_path_and_json_body(api: DltMockApi, tmp_path: Path) -> None:
    """A POST per parent, parent fields in the path and nested in the body; one object each."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_details", "endpoint": {
            "path": "posts/search_by_id/{resources.posts.id}", "method": "POST",
            "json": {"post_id": "{resources.posts.id}", "limit": 5,
                     "more": {"title": "{resources.posts.title}"},
                     "more_array": ["{resources.posts.id}"],
                     "escaped_braces": "{{ string in escaped braces }}"}}}]})
    assert_ok(summaries)
    assert live(tmp_path, "posts").height == POSTS
    assert live(tmp_path, "post_details").height == POSTS
    assert column(tmp_path, "posts", "title") == [f"Post {i}" for i in range(POSTS)]
    assert column(tmp_path, "post_details", "body") == [f"Post body {i}" for i in range(POSTS)]
    assert column(tmp_path, "post_details", "title") == [f"Post {i}" for i in range(POSTS)]
    assert column(tmp_path, "post_details", "more") == [
        f"More is equale to id: {i}" for i in range(POSTS)]


DATA_BODY = [
    xcase(({"path": "post_form_data", "method": "POST", "data": {}}, None, b""),
          id="empty_data_dict"),
    xcase(({"path": "post_form_data", "method": "POST",
            "data": {"key1": "value1", "key2": "value2"}},
           "application/x-www-form-urlencoded", b"key1=value1&key2=value2"),
          id="data_as_dict"),
    xcase(({"path": "post_form_data", "method": "POST",
            "data": [("key1", "value1"), ("key2", "value2"), ("key1", "another_value")]},
           "application/x-www-form-urlencoded", b"key1=value1&key2=value2&key1=another_value"),
          id="data_as_list_of_tuples"),
    xcase(({"path": "post_raw_data", "method": "POST", "data": "raw string data"}, None,
           b"raw string data"), id="data_as_string"),
    xcase(({"path": "post_form_data", "method": "POST"}, None, b""), id="no_data_post"),
]


@pytest.mark.parametrize("case", DATA_BODY)
def test_request_data_body(api: DltMockApi, tmp_path: Path,
                           case: tuple[dict[str, Any], str | None, bytes]) -> None:
    """``data`` sent as a form (dict, list of pairs) or raw text; no Content-Type otherwise."""
    endpoint, content_type, body = case
    run(api.base_url, tmp_path, {"client": {"base_url": BASE},
                                 "resources": [{"name": "test_data", "endpoint": endpoint}]})
    assert api.history
    assert api.history[0].headers.get("content-type") == content_type
    assert api.history[0].body == body


@xfail(reason=f"{X_POST}; {X_AUTO} (the parent 'posts')")
def test_dependent_resource_post_data_param(api: DltMockApi, tmp_path: Path) -> None:
    """A form per parent: ``post_id`` filled, constants kept, ``{{ }}`` unescaped."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_comments", "endpoint": {
            "path": "post_comments_via_form_data", "method": "POST",
            "data": {"post_id": "{resources.posts.id}", "static_value": "constant",
                     "escaped_braces": "{{not_interpolated}}"},
            "paginator": "single_page"}}]})
    assert_ok(summaries)
    calls = api.calls("/post_comments_via_form_data")
    assert sorted((single_params(c.body.decode()) for c in calls),
                  key=lambda f: int(f["post_id"])) == [
        {"post_id": str(i), "static_value": "constant", "escaped_braces": "{not_interpolated}"}
        for i in range(POSTS)]


@xfail(reason=f"{X_POST}; {X_INT_INITIAL_DONE}")
def test_post_data_param_with_incremental_values(api: DltMockApi, tmp_path: Path) -> None:
    """The form carries the incremental's initial, start and end values."""
    run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "posts_form_data_incremental", "endpoint": {
            "path": "/posts_form_data_incremental", "method": "POST",
            "data": {"initial_value": "{incremental.initial_value}",
                     "start_value": "{incremental.start_value}",
                     "end_value": "{incremental.end_value}", "escaped": "{{not_this}}"},
            "incremental": {"cursor_path": "id", "initial_value": 100, "end_value": 200},
            "paginator": "single_page"}}]})
    assert len(api.history) == 1
    assert single_params(api.history[0].body.decode()) == {
        "initial_value": "100", "start_value": "100", "end_value": "200", "escaped": "{not_this}"}


@xfail(reason=f"{X_POST}; {X_AUTO} (the parent 'posts')")
def test_post_data_param_with_raw_data(api: DltMockApi, tmp_path: Path) -> None:
    """A raw body that is the parent's id; no Content-Type."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_comments", "endpoint": {
            "path": "post_comments_via_form_data", "method": "POST",
            "data": "{resources.posts.id}", "paginator": "single_page"}}]})
    assert_ok(summaries)
    calls = api.calls("/post_comments_via_form_data")
    assert sorted(int(c.body) for c in calls) == list(range(POSTS))
    assert all(c.headers.get("content-type") is None for c in calls)


@xfail(reason=f"{X_POST}; {X_AUTO} (the parent 'posts')")
def test_post_data_param_with_list_of_tuples(api: DltMockApi, tmp_path: Path) -> None:
    """A form of pairs with a repeated key, filled per parent."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_comments", "endpoint": {
            "path": "post_comments_via_form_data", "method": "POST",
            "data": [("post_id", "{resources.posts.id}"), ("action", "comment"),
                     ("post_id", "{resources.posts.id}_duplicate"),
                     ("title", "{resources.posts.title}"), ("escaped", "{{literal_braces}}")],
            "paginator": "single_page"}}]})
    assert_ok(summaries)
    forms = sorted((parse_qs(c.body.decode()) for c in api.calls("/post_comments_via_form_data")),
                   key=lambda f: int(f["post_id"][0]))
    assert forms == [{"post_id": [str(i), f"{i}_duplicate"], "action": ["comment"],
                      "title": [f"Post {i}"], "escaped": ["{literal_braces}"]}
                     for i in range(POSTS)]


# ---- errors and auth ---------------------------------------------------------------------------

def test_unauthorized_access_to_protected_endpoint_name_is_refused() -> None:
    """dlt names a resource by its path string ("/protected/posts/..."); our names are table
    directories (letters, digits, ``_``, ``-``: README), so that name is refused by name."""
    message = refusal({"client": {"base_url": BASE},
                       "resources": ["/protected/posts/bearer-token-plain-text-error"]})
    assert "resources[0]" in message and "name" in message


def test_unauthorized_access_to_protected_endpoint(api: DltMockApi, tmp_path: Path) -> None:
    """The same endpoint under a legal name: a 401 (plain-text body) fails the resource."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "protected", "endpoint": "/protected/posts/bearer-token-plain-text-error"}]})
    assert summaries["protected"].status == "failed"
    assert "401" in (summaries["protected"].error or "")


def test_posts_under_results_key(api: DltMockApi, tmp_path: Path) -> None:
    """``data_selector: many-results`` with ``json_link``: posts 0..4 land.

    ``json_link`` reads ``next`` (dlt's default ``next_url_path``); the page has ``next_page``, so
    dlt reads one page (its ``add_limit(1)`` changes nothing). The run's status is not asserted:
    issue 22 item 4 may fail a read that leaves a next-page signal unused."""
    run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts_under_a_different_key",
                                      "data_selector": "many-results", "paginator": "json_link"}}]})
    assert column(tmp_path, "posts", "id") == [0, 1, 2, 3, 4]
    assert column(tmp_path, "posts", "title") == [f"Post {i}" for i in range(5)]
    assert [r.query for r in api.history] == [""]


def test_posts_without_key(api: DltMockApi, tmp_path: Path) -> None:
    """No ``data_selector``: dlt finds the list under the key ``null``; header_link without a
    Link header is one page: posts 0..4."""
    run(api.base_url, tmp_path, {"client": {"base_url": BASE, "paginator": "header_link"},
                                 "resources": [{"name": "posts_no_key",
                                                "endpoint": {"path": "posts_no_key"}}]})
    assert column(tmp_path, "posts_no_key", "id")[:5] == [0, 1, 2, 3, 4]


# ---- incremental -------------------------------------------------------------------------------

@xfail(reason=f"{X_INT_INITIAL}; {X_AUTO}; {X_FILTER_IGNORED}")
def test_incremental_object_interpolation(api: DltMockApi, tmp_path: Path) -> None:
    """``{incremental.initial_value|lag|start_value|end_value}`` in params, integer values."""
    run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {
            "path": "posts",
            "params": {"initial_value": "{incremental.initial_value}",
                       "lag": "{incremental.lag}", "since": "{incremental.start_value}",
                       "until": "{incremental.end_value}"},
            "incremental": {"cursor_path": "id", "initial_value": 1600000000,
                            "end_value": 1700000000, "lag": 3600}}}]})
    assert len(api.history) == 5
    assert api.history[0].params == {"initial_value": ["1600000000"], "lag": ["3600"],
                                     "since": ["1600000000"], "until": ["1700000000"]}


@xfail(reason=f"{X_INT_INITIAL}; {X_AUTO}; {X_FILTER_IGNORED}")
def test_incremental_implicitly_filters_out_data(api: DltMockApi, tmp_path: Path) -> None:
    """Integer cursor ``id`` from 1, no ``start_param``: the first run loads (ids >= 1), the
    second loads nothing (dlt: no load package; here: no commit)."""
    config = {"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts",
                                      "incremental": {"cursor_path": "id", "initial_value": 1}}}]}
    first = run(api.base_url, tmp_path, config, run_id="one")
    assert_ok(first)
    assert first["posts"].commits >= 1
    assert column(tmp_path, "posts", "id") == list(range(1, POSTS))
    second = run(api.base_url, tmp_path, config, run_id="two")
    assert_ok(second)
    assert (second["posts"].commits, second["posts"].inserted, second["posts"].updated) == (0, 0, 0)


# ---- headers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [
    xcase(({"X-Custom-Header": "test-value", "X-Another-Header": "another-value"},
           {"X-Custom-Header": "test-value", "X-Another-Header": "another-value"}),
          id="basic"),
    xcase(({"X-Custom-Header": "test-value with {{escaped}} braces", "X-Another-Header": ""},
           {"X-Custom-Header": "test-value with {escaped} braces", "X-Another-Header": ""}),
          id="empty-header-and-escaped-braces"),
])
def test_headers_in_top_level_resource(api: DltMockApi, tmp_path: Path,
                                       case: tuple[dict[str, str], dict[str, str]]) -> None:
    """Endpoint headers on every request, ``{{ }}`` unescaped in names and values. (dlt also
    asserts its ``User-Agent: dlt/...``; ours is not dlt's.)"""
    headers, expected = case
    run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {"path": "posts", "headers": headers}}]})
    assert api.history
    for request in api.history:
        for name, value in expected.items():
            assert request.headers.get(name.lower()) == value


DEPENDENT_HEADERS = {"X-Static-Header": "test-value", "X-Double-Braces-{{Escaped}}": "name-escaped",
                     "X-Post-ID": "{resources.posts.id}",
                     "X-Post-Title": "{resources.posts.title}", "X-Escaped": "{{value_escaped}}"}


def dependent_headers(headers: dict[str, str]) -> dict[str, Any]:
    return {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_details", "endpoint": {
            "path": "post_detail", "params": {"post_id": "{resources.posts.id}"},
            "headers": headers}}]}


@pytest.mark.parametrize("config", [
    pytest.param({"client": {"base_url": BASE}, "resources": [{"name": "posts", "endpoint": {
        "path": "posts", "headers": {"X-Double-Braces-{{escaped}}": "test-value"}}}]},
        id="top-level"),
    pytest.param(dependent_headers(DEPENDENT_HEADERS), id="dependent")])
def test_a_header_name_with_braces_is_refused_by_name(config: dict[str, Any]) -> None:
    """dlt's ``braces-in-header-name`` case and the name in its dependent case: requests sends
    ``X-Double-Braces-{escaped}``; '{' is no token character (RFC 9110 §5.6.2) and httpx
    refuses it, so the config is refused naming the header, before any request (README)."""
    message = refusal(config)
    assert "X-Double-Braces-{" in message and "RFC 9110" in message, message


def test_headers_in_dependent_resource(api: DltMockApi, tmp_path: Path) -> None:
    """Parent fields in a child's headers, escapes unescaped (the header name with braces is
    refused: ``test_a_header_name_with_braces_is_refused_by_name``)."""
    headers = {k: v for k, v in DEPENDENT_HEADERS.items() if "{{" not in k}
    summaries = run(api.base_url, tmp_path, dependent_headers(headers))
    assert_ok(summaries)
    calls = api.calls("/post_detail")
    assert sorted(int(c.headers["x-post-id"]) for c in calls) == list(range(POSTS))
    for call in calls:
        assert call.headers["x-post-title"] == f"Post {call.headers['x-post-id']}"
        assert call.headers["x-escaped"] == "{value_escaped}"


@xfail(reason=f"{X_HEADERS}; {X_INT_INITIAL_DONE}; {X_AUTO}")
def test_headers_with_incremental_values(api: DltMockApi, tmp_path: Path) -> None:
    """Incremental values in endpoint headers."""
    run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "posts", "endpoint": {
            "path": "posts",
            "headers": {"X-Initial-Value": "{incremental.initial_value}",
                        "X-Start-Value": "{incremental.start_value}",
                        "X-End-Value": "{incremental.end_value}", "X-Escaped": "{{not_this}}"},
            "incremental": {"cursor_path": "id", "initial_value": 1600000000,
                            "end_value": 1700000000}}}]})
    assert len(api.history) == 5
    first = api.history[0].headers
    assert (first["x-initial-value"], first["x-start-value"], first["x-end-value"],
            first["x-escaped"]) == ("1600000000", "1600000000", "1700000000", "{not_this}")


@xfail(reason=X_AUTO)
def test_client_headers_are_not_interpolated(api: DltMockApi, tmp_path: Path) -> None:
    """``client.headers`` go as written: placeholders and double braces kept literally."""
    summaries = run(api.base_url, tmp_path, {
        "client": {"base_url": BASE, "headers": {"X-Static-Header": "static-value",
                                                 "X-Not-Interpolated": "{resources.posts.id}",
                                                 "X-Escaped": "{{literal_braces}}"}},
        "resources": ["posts"]})
    assert_ok(summaries)
    for request in api.history:
        assert request.headers["x-static-header"] == "static-value"
        assert request.headers["x-not-interpolated"] == "{resources.posts.id}"
        assert request.headers["x-escaped"] == "{{literal_braces}}"


# ---- secrets in URLs ---------------------------------------------------------------------------

@xfail(reason=f"{X_DATA} (a top-level list); {X_AUTO}")
def test_secret_redaction_in_logs_and_errors(api: DltMockApi, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Secret-like query params never reach a log line; the others do, masked by name."""
    api.add_route("GET", "/data", [{"id": 1, "data": "test"}])
    caplog.set_level(logging.DEBUG)
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "protected_resource", "endpoint": {
            "path": "data", "params": {"api_key": "super_secret_key_12345",
                                       "token": "another_secret_token",
                                       "public_param": "visible_value"}}}]})
    assert_ok(summaries)
    assert column(tmp_path, "protected_resource", "data") == ["test"]
    text = caplog.text
    assert "super_secret_key_12345" not in text and "another_secret_token" not in text


@xfail(reason=f"{X_REDACT}; {X_AUTO} (page[number] added); the 404's body text ('Resource not "
              "found') is in our error message, dlt's test asserts it is not (seen on "
              "i22-paginators)")
def test_secret_redaction_in_http_errors(api: DltMockApi, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A 404's error names the URL with ``api_key``/``access_token`` masked and the other
    params kept, never the secrets nor the body."""
    api.add_route("GET", "/missing", b"Resource not found", status=404)
    caplog.set_level(logging.DEBUG)
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [{
        "name": "error_resource", "endpoint": {
            "path": "missing", "params": {"api_key": "secret_api_key_xyz",
                                          "access_token": "secret_token_abc",
                                          "normal_param": "public_value"}}}]})
    error = summaries["error_resource"].error or ""
    assert summaries["error_resource"].status == "failed" and "404" in error
    assert "api_key=" in error and "access_token=" in error
    assert "normal_param=public_value" in error
    for secret in ("secret_api_key_xyz", "secret_token_abc"):
        assert secret not in error and secret not in caplog.text
    assert "Resource not found" not in error


# ---- children ----------------------------------------------------------------------------------

@xfail(
                   reason=f"{X_AUTO} (the parent 'posts'); then {X_PAGE_NUMBER} (the child's)")
def test_dependent_resource_paginated_child(api: DltMockApi, tmp_path: Path) -> None:
    """A child paged by number with a total (dlt#3772): every page of every parent."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_comments", "endpoint": {
            "path": "posts/{resources.posts.id}/comments", "paginator": PAGE_NUMBER_TOTAL}}]})
    assert_ok(summaries)
    assert live(tmp_path, "posts").height == POSTS
    assert live(tmp_path, "post_comments").height == POSTS * COMMENTS


@xfail(reason=f"{X_PARALLEL}; {X_AUTO}")
def test_dependent_resource_parallelized(api: DltMockApi, tmp_path: Path) -> None:
    """``parallelized: true`` on a child: the same rows."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_comments", "parallelized": True,
                  "endpoint": {"path": "posts/{resources.posts.id}/comments"}}]})
    assert_ok(summaries)
    assert live(tmp_path, "posts").height == POSTS
    assert live(tmp_path, "post_comments").height == POSTS * COMMENTS


@xfail(reason=f"{X_PARALLEL}; {X_AUTO}")
def test_dependent_resource_parallelized_with_include_from_parent(api: DltMockApi,
                                                                  tmp_path: Path) -> None:
    """``include_from_parent: [id, title]``: ``_posts_id`` and ``_posts_title`` on each row."""
    summaries = run(api.base_url, tmp_path, {"client": {"base_url": BASE}, "resources": [
        "posts", {"name": "post_comments", "parallelized": True,
                  "endpoint": {"path": "posts/{resources.posts.id}/comments"},
                  "include_from_parent": ["id", "title"]}]})
    assert_ok(summaries)
    assert live(tmp_path, "post_comments").height == POSTS * COMMENTS
    order = ("_posts_id", "id")
    assert column(tmp_path, "post_comments", "_posts_id", order=order)[:5] == [0] * 5
    assert column(tmp_path, "post_comments", "_posts_title", order=order)[:5] == ["Post 0"] * 5
    frame = live(tmp_path, "post_comments")
    assert set(frame.filter(frame["_posts_id"] == 3)["_posts_title"].to_list()) == {"Post 3"}


@xfail(
                   reason=f"{X_PARALLEL}; {X_INT_INITIAL}; {X_CHILD_INCREMENTAL}; {X_PAGE_NUMBER}")
def test_dependent_resource_parallelized_with_incremental(api: DltMockApi,
                                                          tmp_path: Path) -> None:
    """A child's own integer incremental from 45: the API ignores ``since``, the records below
    45 are dropped: ids 45..49 of each post."""
    summaries = run(api.base_url, tmp_path, {
        "client": {"base_url": BASE, "paginator": PAGE_NUMBER_TOTAL},
        "resources": ["posts", {"name": "post_comments", "parallelized": True, "endpoint": {
            "path": "posts/{resources.posts.id}/comments",
            "incremental": {"start_param": "since", "cursor_path": "id", "initial_value": 45}}}]})
    assert_ok(summaries)
    assert live(tmp_path, "posts").height == POSTS
    comments = live(tmp_path, "post_comments")
    assert comments.height < POSTS * COMMENTS
    assert min(comments["id"].to_list()) == 45


"""dlt's request keys over a real loopback API and real Delta tables (issue 22, items 3 and 5).

``method: POST`` with a JSON body holding the incremental filter (HubSpot's search endpoint,
``POST /crm/v3/objects/contacts/search``: filterGroups on ``hs_lastmodifieddate``, ``after``
paging), per-endpoint ``headers`` and ``auth``, a composite ``primary_key``, a detail endpoint
read once per parent (``/posts/{post_id}``, one JSON object each), ``yield_map`` and
``parallelized``. Each expected table is computed here from what the server holds (the oracle),
never by the library's code.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics_client import Credentials, load_config, run_sync
from analytics_client.core.summary import ResourceSummary
from tests.routeserver import Request, RouteServer

TOKEN = "hs-private-app-token-1234"
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def run(server: RouteServer, lake: Path, config: dict[str, Any], *,
        run_id: str = "run") -> dict[str, ResourceSummary]:
    source = load_config(config, base_url=server.base_url)
    return {s.resource: s for s in run_sync(source, Credentials(api_key=TOKEN), str(lake),
                                            run_id=run_id, pipeline="keys-test")}


def live(lake: Path, resource: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / resource)).filter(pl.col("_deleted_at").is_null())


# ---- HubSpot's search: POST, the filter and the paging in a JSON body --------------------------


class Contacts:
    """HubSpot's CRM search as its docs shape it: ``filterGroups[].filters[]`` with ``GTE`` on
    ``hs_lastmodifieddate`` (epoch ms or ISO-8601), ``sorts``, ``limit`` and ``after`` (an
    opaque offset, here the position in the sorted result) in the body; the answer is
    ``{total, results: [{id, properties, updatedAt}], paging: {next: {after}}}``."""

    def __init__(self, count: int) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        for n in range(count):
            self.put(str(100 + n), T0 + dt.timedelta(minutes=n // 3), f"c{n}@example.com")

    def put(self, id_: str, when: dt.datetime, email: str) -> None:
        stamp = _iso(when)
        self.rows[id_] = {"id": id_, "properties": {"email": email, "hs_lastmodifieddate": stamp},
                          "updatedAt": stamp, "archived": False}

    def search(self, request: Request) -> tuple[int, Any]:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "authentication required"}
        body = request.json
        if not isinstance(body, dict):
            return 400, {"message": "a JSON body is required"}
        since = None
        for group in body.get("filterGroups", []):
            for rule in group["filters"]:
                assert rule["propertyName"] == "hs_lastmodifieddate" and rule["operator"] == "GTE"
                since = _instant(rule["value"])
        rows = sorted((r for r in self.rows.values()
                       if since is None or _instant(r["updatedAt"]) >= since),
                      key=lambda r: (r["updatedAt"], int(r["id"])))
        after = int(body.get("after") or request.query.get("after") or 0)
        limit = int(body.get("limit", 10))
        page = rows[after:after + limit]
        more = after + limit < len(rows)
        return 200, {"total": len(rows), "results": page,
                     "paging": {"next": {"after": str(after + limit)}} if more else None}


def hubspot_config(initial_value: str) -> dict[str, Any]:
    """As a dlt user writes HubSpot's incremental search."""
    return {
        "client": {"base_url": "https://api.hubapi.com",
                   "auth": {"type": "bearer", "token": 'dlt.secrets["api_key"]'}},
        "resources": [{
            "name": "contacts",
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {
                "path": "/crm/v3/objects/contacts/search",
                "method": "POST",
                "json": {
                    "filterGroups": [{"filters": [{
                        "propertyName": "hs_lastmodifieddate", "operator": "GTE",
                        "value": "{incremental.start_value}"}]}],
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    "limit": 7,
                },
                "data_selector": "results",
                "paginator": {"type": "cursor", "cursor_path": "paging.next.after",
                              "cursor_param": "after"},
                "incremental": {"cursor_path": "updatedAt", "initial_value": initial_value,
                                "lag": 0},
            },
        }],
    }


def test_hubspot_search_by_post_lands_every_contact_and_a_second_run_is_exact(
        tmp_path: Path) -> None:
    """A full run lands all 40 contacts; after 5 changes and 3 new ones, the next run's body
    carries the mark as its filter, and the table equals the server's contacts exactly."""
    contacts = Contacts(40)
    route = ("POST", r"/crm/v3/objects/contacts/search")
    with RouteServer({route: contacts.search}) as server:
        first = run(server, tmp_path, hubspot_config("2020-01-01T00:00:00Z"))["contacts"]
        assert first.status == "ok", first.error
        sent = server.to(route[1])
        assert all(r.method == "POST" and r.headers["content-type"] == "application/json"
                   for r in sent)
        assert sent[0].json["filterGroups"][0]["filters"][0]["value"].startswith("2020-01-01")
        _assert_table_is(tmp_path, contacts)

        later = T0 + dt.timedelta(hours=2)
        for n, id_ in enumerate(["100", "117", "125", "131", "139"]):
            contacts.put(id_, later + dt.timedelta(seconds=n), f"changed{n}@example.com")
        for n in range(3):
            contacts.put(str(900 + n), later + dt.timedelta(seconds=10 + n), f"new{n}@x.com")
        asked = len(server.requests)
        second = run(server, tmp_path, hubspot_config("2020-01-01T00:00:00Z"),
                     run_id="run2")["contacts"]
        assert second.status == "ok", second.error
        again = server.requests[asked:]
        # The second run's filter starts at the first run's mark (a lagged read's: at most the
        # first page's highest cursor, docs/incremental.md), not at initial_value.
        value = _instant(again[0].json["filterGroups"][0]["filters"][0]["value"])
        assert T0 < value <= T0 + dt.timedelta(minutes=13)
        assert len(again) < len(sent)
        _assert_table_is(tmp_path, contacts)


def test_hubspot_search_appended_keeps_each_contact_version_once(tmp_path: Path) -> None:
    """An append table read by the lagged POST search: the second run re-reads from the mark
    (the unchanged contacts at and after it) and appends only the 2 changed ones."""
    contacts = Contacts(40)
    config = hubspot_config("2020-01-01T00:00:00Z")
    config["resources"][0]["write_disposition"] = "append"
    served: set[tuple[str, dt.datetime]] = set()
    with RouteServer({("POST", r"/crm/v3/objects/contacts/search"): contacts.search}) as server:
        for run_id in ("run1", "run2"):
            served |= {(i, _instant(r["updatedAt"])) for i, r in contacts.rows.items()}
            summary = run(server, tmp_path, config, run_id=run_id)["contacts"]
            assert summary.status == "ok", summary.error
            if run_id == "run1":
                for n, id_ in enumerate(["100", "139"]):
                    contacts.put(id_, T0 + dt.timedelta(hours=2, seconds=n), f"v2-{n}@x.com")
    assert summary.inserted == 2
    rows = pl.read_delta(str(tmp_path / "contacts")).select("id", "updatedAt").rows()
    got = [(i, u.replace(tzinfo=dt.UTC)) for i, u in rows]
    assert len(got) == len(set(got)) == 42
    assert set(got) == served


def _assert_table_is(lake: Path, contacts: Contacts) -> None:
    rows = live(lake, "contacts").to_dicts()
    assert len(rows) == len({r["id"] for r in rows})
    got = {r["id"]: r for r in rows}
    assert set(got) == set(contacts.rows)
    for id_, row in contacts.rows.items():
        stamp = got[id_]["updatedAt"]
        assert stamp.replace(tzinfo=dt.UTC) == _instant(row["updatedAt"])
        assert row["properties"]["email"] in got[id_]["properties__json"]


def test_a_paginator_writing_the_json_body_is_sent_that_body(tmp_path: Path) -> None:
    """``PageRequest.json`` is the body a page is sent with (what ``*_body_path`` paginators
    write into); ``None`` sends the template's own body."""
    from analytics_client.http.client import ApiClient
    from analytics_client.http.paginators import PageRequest, first_request
    from analytics_client.read.plan import plan_resource

    contacts = Contacts(3)
    route = ("POST", r"/crm/v3/objects/contacts/search")
    with RouteServer({route: contacts.search}) as server:
        raw = hubspot_config("2020-01-01T00:00:00Z")
        endpoint = raw["resources"][0]["endpoint"]
        del endpoint["incremental"]
        endpoint["json"]["filterGroups"][0]["filters"][0]["value"] = "2020-01-01T00:00:00Z"
        source = load_config(raw, base_url=server.base_url)
        template = plan_resource(source.resources[0], source).request
        with ApiClient(source, Credentials(api_key=TOKEN)) as client:
            _, request = first_request(template)
            assert request.json == template.json and request.json is not template.json
            request.json["after"] = "2"
            client.get_page(template, request)
            client.get_page(template, PageRequest({}))
    first, second = (r.json for r in server.requests)
    assert first["after"] == "2" and "after" not in second
    assert first["sorts"] == second["sorts"] == template.json["sorts"]


# ---- endpoint headers and auth reach only their resource ---------------------------------------


def test_endpoint_headers_and_auth_reach_only_their_resource(tmp_path: Path) -> None:
    """``reports`` sends its own header and its key in the query (``endpoint.auth``); ``users``
    sends the client's bearer token and headers only."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"id": f"{request.path}-{n}"} for n in range(3)]

    config = {
        "client": {"base_url": "https://api.example.com", "headers": {"X-Client": "all"},
                   "auth": {"type": "bearer", "token": 'dlt.secrets["api_key"]'}},
        "resource_defaults": {"endpoint": {"data_selector": "$", "paginator": "single_page"}},
        "resources": [
            {"name": "reports", "parallelized": True, "endpoint": {
                "path": "/reports", "headers": {"X-Report-Version": "3", "x-client": "mine"},
                "auth": {"type": "api_key", "name": "key", "location": "query",
                         "api_key": 'dlt.secrets["api_key"]'}}},
            {"name": "users", "endpoint": {"path": "/users"}},
        ],
    }
    with RouteServer({("GET", r"/reports"): listing, ("GET", r"/users"): listing}) as server:
        summaries = run(server, tmp_path, config)
        assert {s.status for s in summaries.values()} == {"ok"}, summaries
        reports, users = server.to("/reports"), server.to("/users")
    assert reports and users
    for r in reports:
        assert r.headers["x-report-version"] == "3" and r.headers["x-client"] == "mine"
        assert r.query["key"] == TOKEN and "authorization" not in r.headers
    for r in users:
        assert "x-report-version" not in r.headers and r.headers["x-client"] == "all"
        assert r.headers["authorization"] == f"Bearer {TOKEN}" and "key" not in r.query
    assert sorted(live(tmp_path, "reports")["id"]) == [f"/reports-{n}" for n in range(3)]


def test_a_config_without_the_organization_header_sends_none(tmp_path: Path) -> None:
    """Item 5: only a config that declares ``X-Organization-Id`` sends it (and needs the id);
    only one that declares ``client.auth`` sends the API key (none is dlt's default too: an
    analytics key stored for one API never reaches another that did not ask for it)."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, {"data": [{"id": "1"}]}

    plain = {"client": {"base_url": "https://api.example.com"},
             "resources": [{"name": "things", "endpoint": {"path": "/things",
                                                            "paginator": "single_page"}}]}
    declared = {**plain, "client": {**plain["client"], "headers": {
        "X-Organization-Id": 'dlt.secrets["organization_id"]'}}}
    assert load_config(plain).secret_names() == ()
    assert load_config(declared).secret_names() == ("organization_id",)
    with RouteServer({("GET", r"/things"): listing}) as server:
        source = load_config(plain, base_url=server.base_url)
        assert run_sync(source, Credentials(api_key=TOKEN), str(tmp_path / "a"))[0].status == "ok"
        source = load_config(declared, base_url=server.base_url)
        creds = Credentials(api_key=TOKEN, organization_id="org_77")
        assert run_sync(source, creds, str(tmp_path / "b"))[0].status == "ok"
    first, second = server.requests
    assert "x-organization-id" not in first.headers
    assert second.headers["x-organization-id"] == "org_77"
    for request in (first, second):  # no auth configured: the key given is never sent
        assert TOKEN not in str(request.headers) + request.target, request


# ---- a composite primary key: merged, deleted and deduplicated on every column -----------------


def test_composite_primary_key_merges_and_deletes_on_every_column(tmp_path: Path) -> None:
    """Ids repeat across accounts; the key is ``[account, id]``. A change of one (account, id)
    updates that row only, a record gone from the API marks that row only, and the table is
    the server's records exactly after each run."""
    served: dict[tuple[str, int], dict[str, Any]] = {
        (account, n): {"account": account, "id": n, "value": f"{account}-{n}-v1"}
        for account, n in itertools.product(("a", "b", "c"), range(1, 8))}

    def listing(request: Request) -> tuple[int, Any]:
        return 200, {"items": sorted(served.values(), key=lambda r: (r["id"], r["account"]))}

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [{"name": "balances", "primary_key": ["account", "id"],
                             "write_disposition": "merge", "max_delete_share": 0.5,
                             "endpoint": {"path": "/balances", "data_selector": "items",
                                          "paginator": "single_page"}}]}
    with RouteServer({("GET", r"/balances"): listing}) as server:
        assert run(server, tmp_path, config)["balances"].status == "ok"
        _assert_balances(tmp_path, served)
        served[("b", 3)] = {"account": "b", "id": 3, "value": "b-3-v2"}
        del served[("c", 5)]
        second = run(server, tmp_path, config, run_id="run2")["balances"]
        assert second.status == "ok", second.error
        assert (second.updated, second.deleted) == (1, 1)
        _assert_balances(tmp_path, served)
    everything = pl.read_delta(str(tmp_path / "balances"))
    gone = everything.filter(pl.col("_deleted_at").is_not_null())
    assert gone.select("account", "id").rows() == [("c", 5)]


def _assert_balances(lake: Path, served: dict[tuple[str, int], dict[str, Any]]) -> None:
    rows = live(lake, "balances").to_dicts()
    got = {(r["account"], r["id"]): r["value"] for r in rows}
    assert len(got) == len(rows)
    assert got == {k: v["value"] for k, v in served.items()}


def test_a_record_without_one_key_column_is_set_aside(tmp_path: Path) -> None:
    """A record missing one column of a composite key cannot be merged: it goes to the
    quarantine, the others land."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"account": "a", "id": 1}, {"account": None, "id": 2}, {"id": 3}]

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [{"name": "pairs", "primary_key": ["account", "id"],
                             "endpoint": {"path": "/pairs", "data_selector": "$",
                                          "paginator": "single_page"}}]}
    with RouteServer({("GET", r"/pairs"): listing}) as server:
        summary = run(server, tmp_path, config)["pairs"]
    assert summary.status == "ok" and summary.quarantined == 2
    assert live(tmp_path, "pairs").select("account", "id").rows() == [("a", 1)]


# ---- a detail endpoint: one JSON object per parent ---------------------------------------------


def test_a_detail_endpoint_child_lands_one_record_per_parent(tmp_path: Path) -> None:
    """``/posts/{post_id}`` answers one object (no list, no wrapper): with ``data_selector``
    and ``paginator`` omitted (dlt's guess for a detail path) each is one record."""
    posts = {n: {"id": n, "title": f"post {n}", "body": "x" * n} for n in range(1, 6)}

    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"id": n} for n in posts]

    def detail(request: Request) -> tuple[int, Any]:
        assert request.match is not None
        return 200, posts[int(request.match.group(1))]

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [
                  {"name": "posts", "endpoint": {"path": "/posts", "data_selector": "$",
                                                 "paginator": "single_page"}},
                  {"name": "post_details", "endpoint": {
                      "path": "/posts/{post_id}",
                      "params": {"post_id": {"type": "resolve", "resource": "posts",
                                             "field": "id"}}}}]}
    with RouteServer({("GET", r"/posts"): listing,
                      ("GET", r"/posts/(\d+)"): detail}) as server:
        summaries = run(server, tmp_path, config)
        assert summaries["post_details"].status == "ok", summaries["post_details"].error
        assert len(server.to(r"/posts/\d+")) == len(posts)  # one request each: no paging
    rows = live(tmp_path, "post_details").sort("id").to_dicts()
    assert [(r["id"], r["title"], r["_posts_id"]) for r in rows] == \
        [(n, p["title"], n) for n, p in posts.items()]


def test_a_post_child_carries_its_parent_value_typed_in_the_body(tmp_path: Path) -> None:
    """dlt's ``preserve_value_type``: a body value that is one placeholder alone keeps the
    parent field's type (an integer stays an integer); in text it is formatted."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"id": 7}, {"id": 8}]

    def search(request: Request) -> tuple[int, Any]:
        body = request.json
        return 200, {"results": [{"id": f"{body['post']}-c", "post": body["post"],
                                  "label": body["label"]}]}

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [
                  {"name": "posts", "endpoint": {"path": "/posts", "data_selector": "$",
                                                 "paginator": "single_page"}},
                  {"name": "comments", "endpoint": {
                      "path": "/comments/search", "method": "POST",
                      "json": {"post": "{resources.posts.id}",
                               "label": "post #{resources.posts.id} {{literal}}"},
                      "data_selector": "results", "paginator": "single_page"}}]}
    with RouteServer({("GET", r"/posts"): listing,
                      ("POST", r"/comments/search"): search}) as server:
        assert run(server, tmp_path, config)["comments"].status == "ok"
        bodies = sorted((r.json for r in server.to("/comments/search")),
                        key=lambda b: b["post"])
    assert bodies == [{"post": 7, "label": "post #7 {literal}"},
                      {"post": 8, "label": "post #8 {literal}"}]
    assert sorted(live(tmp_path, "comments")["id"]) == ["7-c", "8-c"]


# ---- processing steps: yield_map ---------------------------------------------------------------


def test_yield_map_turns_one_record_into_several(tmp_path: Path) -> None:
    """dlt's ``yield_map``: a record becomes the records the callable yields, after filter and
    map of the same step."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"id": "o1", "lines": [1, 2]}, {"id": "o2", "lines": [3]},
                     {"id": "skip", "lines": [9]}]

    def lines(order: dict[str, Any]) -> Any:
        for n in order["lines"]:
            yield {"id": f"{order['id']}-{n}", "order": order["id"], "tagged": order["tagged"]}

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [{"name": "lines", "processing_steps": [
                  {"filter": lambda r: r["id"] != "skip",
                   "map": lambda r: {**r, "tagged": True}, "yield_map": lines}],
                  "endpoint": {"path": "/orders", "data_selector": "$",
                               "paginator": "single_page"}}]}
    with RouteServer({("GET", r"/orders"): listing}) as server:
        assert run(server, tmp_path, config)["lines"].status == "ok"
    rows = live(tmp_path, "lines").sort("id").select("id", "order", "tagged").rows()
    assert rows == [("o1-1", "o1", True), ("o1-2", "o1", True), ("o2-3", "o2", True)]


@pytest.mark.parametrize("key", ["session"])
def test_what_stays_refused_is_named_with_a_reason(key: str) -> None:
    from analytics_client.core.errors import ConfigError

    config = {"client": {"base_url": "https://api.example.com", key: object()},
              "resources": ["things"]}
    with pytest.raises(ConfigError, match=rf"client.{key}: dlt's '{key}' is not supported yet: "
                                          r"remove it; the client is httpx"):
        load_config(config)


def test_basic_auth_never_reaches_a_message_in_base64() -> None:
    """An ``Authorization: Basic`` value in any text is masked whole (redaction.py)."""
    from analytics_client.http.redaction import redact

    token = base64.b64encode(b"user:hunter2-password").decode()
    assert token not in redact(f"sent Authorization: Basic {token} to the API", [])


# ---- records without a data_selector: dlt's detection -------------------------------------------


@pytest.mark.parametrize(("body", "records"), [
    ([{"id": 1}, {"id": 2}], [{"id": 1}, {"id": 2}]),                   # a top-level list
    (None, []),
    ({"data": [{"id": 1}], "meta": {"page": {"total_pages": 3}}, "links": {"next": "x"}},
     [{"id": 1}]),                                                       # the contract's page
    ({"meta": {"tags": ["a"]}, "results": [{"id": 1}]}, [{"id": 1}]),   # a record key wins
    ({"total": 2, "page": {"rows": [{"id": 5}]}}, [{"id": 5}]),         # nested, dlt's depth
    ({"data": None, "meta": {"page": {"total_pages": 3}}}, []),         # an empty last page
    ({"id": 7, "title": "t", "content": None}, [{"id": 7, "title": "t", "content": None}]),
    ({"id": 7, "author": {"name": "a"}}, [{"id": 7, "author": {"name": "a"}}]),  # one object
])
def test_omitted_data_selector_finds_records_as_dlt_does(body: Any, records: Any) -> None:
    from analytics_client.core.jsonpath import find_records

    assert find_records(body) == records


def test_a_child_answering_one_object_lands_without_a_data_selector(tmp_path: Path) -> None:
    """``/posts/{post_id}/author`` answers one object (no list in it): one record per post."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, {"items": [{"id": 1}, {"id": 2}], "next": None}

    def author(request: Request) -> tuple[int, Any]:
        assert request.match is not None
        return 200, {"id": f"a{request.match.group(1)}", "name": "someone"}

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [
                  {"name": "posts", "endpoint": {"path": "/posts", "paginator": "single_page"}},
                  {"name": "authors", "endpoint": {
                      "path": "/posts/{resources.posts.id}/author",
                      "paginator": "single_page"}}]}
    with RouteServer({("GET", r"/posts"): listing,
                      ("GET", r"/posts/(\d+)/author"): author}) as server:
        summaries = run(server, tmp_path, config)
    assert {s.status for s in summaries.values()} == {"ok"}
    assert sorted(live(tmp_path, "authors").select("id", "_posts_id").rows()) == \
        [("a1", 1), ("a2", 2)]


def test_a_declared_organization_header_without_its_id_is_named(tmp_path: Path) -> None:
    """A config that declares ``X-Organization-Id: dlt.secrets["organization_id"]`` run with
    credentials lacking it fails before any request, naming the secret and where it is read."""
    from analytics_client.core.errors import SecretNotFoundError

    declared = {"client": {"base_url": "http://127.0.0.1:9", "headers": {
        "X-Organization-Id": 'dlt.secrets["organization_id"]'}}, "resources": ["things"]}
    with pytest.raises(SecretNotFoundError, match="ANALYTICS_ORGANIZATION_ID"):
        run_sync(load_config(declared), Credentials(api_key=TOKEN), str(tmp_path))


def test_a_child_whose_parent_failed_says_so_instead_of_a_silent_ok(tmp_path: Path) -> None:
    """The parent's second page answers 401 after its first page was committed: the child reads
    the children of the committed parents and its summary names the failed parent, never a bare
    "ok" (a first run had ended ok with 0 rows and said nothing)."""
    posts = [{"id": n} for n in range(1, 5)]

    def listing(request: Request) -> tuple[int, Any]:
        page = int(request.query.get("page", "1"))
        if page > 1:
            return 401, {"error": "token expired"}
        return 200, {"data": posts[:2], "next_page": 2}

    def comments(request: Request) -> tuple[int, Any]:
        assert request.match is not None
        return 200, [{"id": int(request.match.group(1)) * 10}]

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [
                  {"name": "posts", "endpoint": {
                      "path": "/posts", "data_selector": "data",
                      "paginator": {"type": "page_number", "page_param": "page",
                                    "base_page": 1, "total_path": None}}},
                  {"name": "comments", "endpoint": {
                      "path": "/posts/{post_id}/comments", "data_selector": "$",
                      "paginator": "single_page",
                      "params": {"post_id": {"type": "resolve", "resource": "posts",
                                             "field": "id"}}}}]}
    with RouteServer({("GET", r"/posts"): listing,
                      ("GET", r"/posts/(\d+)/comments"): comments}) as server:
        summaries = run(server, tmp_path, config)
    assert summaries["posts"].status == "failed"
    child = summaries["comments"]
    assert any("parent posts failed" in note for note in child.notes), child.notes
    committed = set(live(tmp_path, "posts").get_column("id").to_list())
    assert set(live(tmp_path, "comments").get_column("id").to_list()) == \
        {n * 10 for n in committed}


@pytest.mark.parametrize("disposition", ["merge", None])
def test_yield_map_rows_sharing_a_merge_key_fail_instead_of_collapsing(
        tmp_path: Path, disposition: str | None) -> None:
    """A ``yield_map`` that copies its record's ``id`` into every row: merged on ``id``, all
    but one row would be lost silently. Merge (given) fails naming the fix; omitted, the
    resource appends (dlt's default) and every row lands."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"id": "o1", "lines": [1, 2, 3]}, {"id": "o2", "lines": [4]}]

    def lines(order: dict[str, Any]) -> Any:
        for n in order["lines"]:
            yield {"id": order["id"], "line": n}

    resource: dict[str, Any] = {
        "name": "lines", "processing_steps": [{"yield_map": lines}],
        "endpoint": {"path": "/orders", "data_selector": "$", "paginator": "single_page"}}
    if disposition is not None:
        resource["write_disposition"] = disposition
    config = {"client": {"base_url": "https://api.example.com"}, "resources": [resource]}
    with RouteServer({("GET", r"/orders"): listing}) as server:
        summary = run(server, tmp_path, config)["lines"]
    if disposition == "merge":
        assert summary.status == "failed"
        assert "yield_map made several rows with the key ('o1',)" in (summary.error or "")
        assert "write_disposition: append" in (summary.error or "")
    else:
        assert summary.status == "ok", summary.error
        rows = sorted(live(tmp_path, "lines").select("id", "line").rows())
        assert rows == [("o1", 1), ("o1", 2), ("o1", 3), ("o2", 4)]


def test_yield_map_rows_sharing_an_incremental_appends_version_fail_instead_of_collapsing(
        tmp_path: Path) -> None:
    """An incremental append keeps each (key, cursor) once (re-reads are not new versions):
    ``yield_map`` rows that copy both would collapse into one, so the resource fails naming
    the fix; keyed apart (``primary_key: [id, part]``) every row lands."""
    def listing(request: Request) -> tuple[int, Any]:
        return 200, [{"id": f"r{i}", "updated_at": f"2026-01-0{i + 1}T00:00:00Z"}
                     for i in range(3)]

    def parts(record: dict[str, Any]) -> Any:
        yield {**record, "part": "a"}
        yield {**record, "part": "b"}

    resource: dict[str, Any] = {
        "name": "parts", "processing_steps": [{"yield_map": parts}],
        "endpoint": {"path": "/records", "data_selector": "$", "paginator": "single_page",
                     "incremental": {"cursor_path": "updated_at"}}}
    with RouteServer({("GET", r"/records"): listing}) as server:
        summary = run(server, tmp_path / "one", {
            "client": {"base_url": "https://api.example.com"}, "resources": [resource]})["parts"]
        assert summary.status == "failed"
        assert "yield_map made several rows with the key ('r0'," in (summary.error or "")
        keyed = {**resource, "primary_key": ["id", "part"]}
        summary = run(server, tmp_path / "two", {
            "client": {"base_url": "https://api.example.com"}, "resources": [keyed]})["parts"]
    assert summary.status == "ok", summary.error
    assert live(tmp_path / "two", "parts").height == 6


@pytest.mark.parametrize(("headers", "named"), [
    ({"X-Since-{incremental.start_value}": "1"}, "Illegal header name"),
    ({"X-Title": "{resources.parents.title}"}, "Illegal header value")])
def test_a_header_no_request_may_carry_fails_at_once_without_retries(
        tmp_path: Path, headers: dict[str, str], named: str) -> None:
    """A header filled per request into something HTTP forbids (a name with ':', a value with
    a line break from a parent record): the request cannot be sent, so it is not sent five
    times; the resource fails at once naming the header (a new user's trial: 30 s of retries,
    then advice to raise max_retries)."""
    def parents(request: Request) -> tuple[int, Any]:
        return 200, [{"id": "p1", "title": "two\nlines", "updated_at": "2026-01-01T00:00:00Z"}]

    def children(request: Request) -> tuple[int, Any]:
        return 200, []

    child = {"name": "children", "endpoint": {
        "path": "/parents/{resources.parents.id}/children", "data_selector": "$",
        "paginator": "single_page", "headers": headers}}
    if "{incremental" in next(iter(headers)):
        child = {"name": "children", "endpoint": {
            "path": "/children", "data_selector": "$", "paginator": "single_page",
            "headers": headers, "incremental": {"cursor_path": "updated_at",
                                                "initial_value": "2026-01-01T00:00:00Z"}}}
    config = {"client": {"base_url": "https://api.example.com"}, "resources": [
        {"name": "parents", "endpoint": {"path": "/parents", "data_selector": "$",
                                         "paginator": "single_page"}}, child]}
    with RouteServer({("GET", r"/parents"): parents,
                      ("GET", r"/(parents/p1/)?children"): children}) as server:
        summary = run(server, tmp_path, config)["children"]
    assert summary.status == "failed" and summary.retries == 0, summary
    assert "could not be sent" in (summary.error or "") and named in (summary.error or "")
    assert "endpoint.headers" in (summary.error or "")


@pytest.mark.parametrize("hint", [{"partition": True}, {"data_type": "text", "partition": True},
                                  {"data_type": "timestamp", "partition": False}])
def test_dlts_partition_hint_is_refused_naming_what_to_do_instead(hint: dict[str, object]) -> None:
    """dlt writes ``columns: {col: {partition: true}}``; delta-rs cannot maintain partitioned
    merges of ours (docs/data-model.md), so the hint is refused naming the way that works."""
    from analytics_client.core.errors import ConfigError

    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [{"name": "deals", "endpoint": "deals",
                             "columns": {"created_at": hint}}]}
    with pytest.raises(ConfigError, match=r"deals|resources\[0\]") as raised:
        load_config(config)
    [problem] = raised.value.problems
    assert problem.startswith("resources[0].columns.created_at.partition: dlt's 'partition' is "
                              "not supported yet: remove it"), problem
    assert "--z-order RESOURCE=id" in problem

"""The sandbox API against the contract in docs/api-contract.md (docs/sandbox.md)."""

from __future__ import annotations

import base64
import collections
import email.utils
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from analytics_sandbox import (
    DEFAULT_COUNTS,
    RESOURCES,
    SandboxApp,
    SandboxSettings,
    SandboxTransport,
    World,
    parse_timestamp,
    serve,
    serve_subprocess,
)
from analytics_sandbox.__main__ import main

SMALL = {"tags": 20, "users": 30, "deals": 120, "pages": 40, "tasks": 60}
AUTH = {"api_key": "sandbox-key", "X-Organization-Id": "org_sandbox"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def make_client(world: World | None = None, **settings: Any) -> httpx.Client:
    world = world if world is not None else World(7, counts=SMALL)
    transport = SandboxTransport(world=world, settings=SandboxSettings(**settings))
    return httpx.Client(transport=transport, base_url="http://sandbox", headers=AUTH)


def app_of(client: httpx.Client) -> SandboxApp:
    transport = client._transport
    assert isinstance(transport, SandboxTransport)
    return transport.app


def fetch_all(client: httpx.Client, resource: str, **params: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    number = 1
    while True:
        body = client.get(f"/v1/{resource}", params={**params, "page[number]": number}).json()
        if not body["data"]:
            return records
        records += body["data"]
        number += 1


@pytest.fixture(scope="module")
def default_world() -> World:
    return World()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client() as c:
        yield c


# -- requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Organization-Id": "org_sandbox"}, 401),
        ({"api_key": "wrong", "X-Organization-Id": "org_sandbox"}, 401),
        ({"api_key": "sandbox-key"}, 400),
        ({"api_key": "sandbox-key", "X-Organization-Id": "org_other"}, 403),
    ],
)
def test_auth_errors(headers: dict[str, str], status: int) -> None:
    """A missing or wrong key is 401, a missing organization 400, another organization 403."""
    world = World(1, counts=SMALL)
    with httpx.Client(transport=SandboxTransport(world=world), base_url="http://s") as c:
        response = c.get("/v1/tags", headers=headers)
    assert response.status_code == status
    (error,) = response.json()["errors"]
    assert error["status"] == str(status) and error["title"] and error["detail"]
    assert "sandbox-key" not in response.text


@pytest.mark.parametrize(
    "auth",
    [
        {"params": {"api_key": "sandbox-key"}},
        {"headers": {"Authorization": "Bearer sandbox-key"}},
        {"auth": ("anyone", "sandbox-key")},
    ],
)
def test_alternative_auth(auth: dict[str, Any]) -> None:
    """As an extension the key is also accepted as query parameter, Bearer token or Basic password."""
    world = World(1, counts=SMALL)
    with httpx.Client(transport=SandboxTransport(world=world), base_url="http://s") as c:
        kwargs: dict[str, Any] = {
            "headers": {"X-Organization-Id": "org_sandbox", **auth.get("headers", {})}
        }
        kwargs |= {k: v for k, v in auth.items() if k != "headers"}
        assert c.get("/v1/tags", **kwargs).status_code == 200


def test_configured_credentials() -> None:
    """The key and organization are settings."""
    settings = SandboxSettings(api_key="k2", organization_id="org_2")
    transport = SandboxTransport(world=World(1, counts=SMALL), settings=settings)
    with httpx.Client(transport=transport, base_url="http://s") as c:
        assert c.get("/v1/tags", headers={"api_key": "k2", "X-Organization-Id": "org_2"}).is_success
        assert c.get("/v1/tags", headers=AUTH).status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"page[number]": "0"},
        {"page[number]": "-1"},
        {"page[number]": "1.5"},
        {"page[number]": "x"},
        {"page[number]": ""},
        {"page[size]": "0"},
        {"page[size]": "101"},
        {"page[size]": "ten"},
        {"sort": "name"},
        {"sort": "-id"},
        {"filter[updated_at][gte]": "yesterday"},
        {"filter[updated_at][gte]": ""},
    ],
)
def test_bad_parameters(client: httpx.Client, params: dict[str, str]) -> None:
    """Each invalid parameter is a 400 whose detail names the parameter."""
    response = client.get("/v1/deals", params=params)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert next(iter(params)) in error["detail"]


@pytest.mark.parametrize("path", ["/v1/widgets", "/v2/deals", "/v1/deals/extra", "/"])
def test_unknown_path_is_404(client: httpx.Client, path: str) -> None:
    """A path that is not a resource is 404 with an error document."""
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["errors"][0]["status"] == "404"


def test_page_past_the_end(client: httpx.Client) -> None:
    """A page past the last one is 200 with no data and no next link."""
    body = client.get("/v1/deals", params={"page[number]": 99}).json()
    assert body["data"] == []
    assert body["meta"]["page"]["total_count"] == SMALL["deals"]
    assert body["links"]["next"] is None


def test_totals_and_links(client: httpx.Client) -> None:
    """Meta and links describe the result set, and following next visits every record once."""
    truth_ids = [r["id"] for r in app_of(client).world.truth("deals")]
    url: str | None = "/v1/deals?page[number]=1&page[size]=25"
    seen: list[str] = []
    while url is not None:
        body = client.get(url).json()
        assert body["meta"]["page"]["total_count"] == 120
        assert body["meta"]["page"]["total_pages"] == 5
        assert body["meta"]["page"]["size"] == 25
        assert body["links"]["last"] == "/v1/deals?page[number]=5&page[size]=25"
        assert body["links"]["self"] == url
        seen += [r["id"] for r in body["data"]]
        url = body["links"]["next"]
    assert seen == truth_ids


def test_links_keep_filter_and_sort(client: httpx.Client) -> None:
    """Links carry the filter (encoded) and sort, so a client following them keeps its query."""
    params = {"filter[updated_at][gte]": "2026-01-01T00:00:00+00:00", "sort": "-updated_at"}
    body = client.get("/v1/tasks", params=params).json()
    following = client.get(body["links"]["next"]).json()
    assert following["meta"]["page"]["number"] == 2
    second = client.get("/v1/tasks", params={**params, "page[number]": 2}).json()
    assert following["data"] == second["data"]


def test_default_page_size_and_records_format(client: httpx.Client) -> None:
    """The default page holds 10 records with microsecond UTC timestamps, updated_at >= created_at."""
    body = client.get("/v1/tasks").json()
    assert body["meta"]["page"] == {"number": 1, "size": 10, "total_pages": 6, "total_count": 60}
    for record in body["data"]:
        assert TIMESTAMP.match(record["created_at"]) and TIMESTAMP.match(record["updated_at"])
        assert record["updated_at"] >= record["created_at"]


@pytest.mark.parametrize("sort", ["id", "updated_at", "-updated_at"])
def test_sort_breaks_ties_by_id(sort: str) -> None:
    """Every sort orders the whole result with ties broken by id ascending."""
    with make_client(World(3, counts={"deals": 300})) as c:
        records = fetch_all(c, "deals", sort=sort, **{"page[size]": 7})
        truth = app_of(c).world.truth("deals")
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "id": lambda r: r["id"],
        "updated_at": lambda r: (r["updated_at"], r["id"]),
        "-updated_at": lambda r: (-parse_timestamp(r["updated_at"]), r["id"]),
    }
    key = keys[sort]
    assert records == sorted(truth, key=key)
    assert max(collections.Counter(r["updated_at"] for r in records).values()) > 7


@pytest.mark.parametrize("offset", ["Z", "+00:00", "+02:00", ""])
def test_updated_at_filter(client: httpx.Client, offset: str) -> None:
    """The gte filter keeps records updated at or after the instant, in any UTC offset form."""
    truth = app_of(client).world.truth("deals")
    pivot = sorted(r["updated_at"] for r in truth)[60]
    moment = parse_timestamp(pivot)
    text = pivot[:-1] + offset
    if offset == "+02:00":
        hour = int(pivot[11:13])
        text = f"{pivot[:11]}{hour + 2:02d}{pivot[13:-1]}+02:00" if hour < 22 else pivot
    records = fetch_all(client, "deals", **{"filter[updated_at][gte]": text, "sort": "updated_at"})
    expected = [r for r in truth if parse_timestamp(r["updated_at"]) >= moment]
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in expected)
    assert records[0]["updated_at"] == pivot


def test_omit_meta() -> None:
    """With omit_meta the body carries only data."""
    with make_client(omit_meta=True) as c:
        assert set(c.get("/v1/users").json()) == {"data"}
        assert len(fetch_all(c, "users")) == SMALL["users"]


# -- the world ---------------------------------------------------------------------------------


def test_world_is_deterministic() -> None:
    """The same seed gives the same records and the same advances; another seed does not."""
    a, b, c = World(11, counts=SMALL), World(11, counts=SMALL), World(12, counts=SMALL)
    assert all(a.truth_bytes(r) == b.truth_bytes(r) for r in RESOURCES)
    assert a.truth_bytes("deals") != c.truth_bytes("deals")
    assert a.advance(updates=5, creates=2) == b.advance(updates=5, creates=2)
    assert a.truth_bytes("tasks") == b.truth_bytes("tasks")


def test_default_world_size(default_world: World) -> None:
    """The default world holds 27,250 records: 2,725 pages of 10."""
    assert sum(DEFAULT_COUNTS.values()) == 27_250
    assert {r: default_world.count(r) for r in RESOURCES} == dict(DEFAULT_COUNTS)
    assert World(0, counts=dict.fromkeys(RESOURCES, 10), scale=3).count("tags") == 30


def test_tie_groups_larger_than_a_page(default_world: World) -> None:
    """Every resource has bulk changes stamping 25 or more records with one updated_at."""
    for resource in RESOURCES:
        ties = collections.Counter(r["updated_at"] for r in default_world.truth(resource))
        big = [n for n in ties.values() if n >= 25]
        assert big and max(big) <= 60, resource
    assert sum(n >= 25 for n in collections.Counter(
        r["updated_at"] for r in default_world.truth("deals")).values()) >= 3  # fmt: skip


def test_undocumented_field_changes_type(default_world: World) -> None:
    """deals.probability is sometimes an int, a float, a string; legacy_id is a 64-bit integer."""
    deals = default_world.truth("deals")
    kinds = {type(r["probability"]) for r in deals if "probability" in r}
    assert {int, float, str, type(None)} <= kinds
    assert any(r.get("legacy_id", 0) > 2**53 for r in deals)


def test_amounts_in_every_number_form(default_world: World) -> None:
    """Raw bytes hold amounts as ints, decimals, exponent forms, negatives and near 10^13."""
    raw = default_world.truth_bytes("deals")
    amounts = re.findall(rb'"amount":(-?[0-9][0-9.eE+-]*)', raw)
    assert any(re.fullmatch(rb"-?[0-9.]+[eE][+-]?[0-9]+", a) for a in amounts)
    assert b'"amount":1e2' in raw and b'"amount":100,' in raw and b'"amount":100.0,' in raw
    values = [r["amount"] for r in default_world.truth("deals") if r.get("amount") is not None]
    assert min(values) < 0 and max(abs(v) for v in values) < 10**13
    assert max(abs(v) for v in values) > 10**12
    assert all(round(v, 2) == v for v in values)


def test_values_the_contract_allows(default_world: World) -> None:
    """Nulls written and left out, empty lists, varying custom_fields, unicode, int64 extremes."""
    deals = default_world.truth("deals")
    assert any(r.get("currency", "x") is None for r in deals)
    assert any("currency" not in r for r in deals)
    assert any(r.get("tag_ids") == [] for r in deals)
    custom = [r["custom_fields"] for r in deals if r.get("custom_fields")]
    assert len({tuple(sorted(c)) for c in custom}) > 20
    types = collections.defaultdict(set)
    for fields in custom:
        for key, value in fields.items():
            types[key].add(type(value))
    assert max(len(t) for t in types.values()) >= 4
    assert max(r["views"] for r in default_world.truth("pages")) == 2**63 - 1
    names = " ".join(r["name"] for r in default_world.truth("tags") + deals)
    assert re.search(r"[\u4e00-\u9fff]", names) and re.search(r"[\u0590-\u06ff]", names)
    assert "🚀" in names or "👩" in names
    assert all(r["name"] for r in deals) and "priority" not in json.dumps(deals)


def test_references_and_enums(default_world: World) -> None:
    """Referential ids point to real records, enums hold contract values, due_date is a date."""
    ids = {r: {x["id"] for x in default_world.truth(r)} for r in ("users", "tags", "deals")}
    for deal in default_world.truth("deals"):
        assert deal.get("owner_id") is None or deal["owner_id"] in ids["users"]
        assert set(deal.get("tag_ids") or []) <= ids["tags"]
    for task in default_world.truth("tasks"):
        assert task.get("deal_id") is None or task["deal_id"] in ids["deals"]
        assert task.get("status") in (None, "open", "in_progress", "done")
        assert task.get("due_date") is None or re.fullmatch(r"\d{4}-\d\d-\d\d", task["due_date"])
    roles = {u.get("role") for u in default_world.truth("users")}
    assert roles == {None, "admin", "member", "viewer"}
    all_ids = [x["id"] for x in default_world.truth("deals")]
    created = [x["id"] for x in sorted(default_world.truth("deals"), key=lambda x: x["created_at"])]
    assert all_ids != created  # ids say nothing about creation order


def test_advance_changes_truth() -> None:
    """Updates move updated_at forward and change fields, creates add ids, lists shrink."""
    world = World(5, counts=SMALL)
    before = {r["id"]: r for r in world.truth("deals")}
    result = world.advance(updates=80, creates=10, resources=["deals"], late_visibility=False)
    after = {r["id"]: r for r in world.truth("deals")}
    assert set(result) == {"deals"}
    assert set(after) - set(before) == set(result["deals"]["created"])
    assert len(after) == SMALL["deals"] + 10
    latest = max(r["updated_at"] for r in before.values())
    for rid in result["deals"]["updated"]:
        assert after[rid]["updated_at"] > before[rid]["updated_at"]
        assert after[rid]["updated_at"] > latest
        assert after[rid]["created_at"] == before[rid]["created_at"]
    shrunk = [
        rid
        for rid in result["deals"]["updated"]
        if len(after[rid].get("tag_ids") or []) < len(before[rid].get("tag_ids") or [])
    ]
    assert shrunk
    assert any("priority" in r for r in after.values())
    ties = collections.Counter(after[rid]["updated_at"] for rid in result["deals"]["updated"])
    assert max(ties.values()) >= 25


def test_late_visibility_stamps_some_changes_in_the_past() -> None:
    """With late_visibility some changes carry an updated_at up to 5 s before the clock stood
    when they were made (the time the API's Date showed until then): the contract's delay."""
    world = World(5, counts=SMALL)
    before = world.clock_us
    result = world.advance(updates=40, creates=20, resources=["tasks"], seed=1)
    stamps = {r["id"]: parse_timestamp(r["updated_at"]) for r in world.truth("tasks")}
    touched = [stamps[i] for i in result["tasks"]["updated"] + result["tasks"]["created"]]
    late = [s for s in touched if s <= before]
    assert late and all(before - s < 5_000_000 for s in late)
    assert all(s <= world.clock_us for s in touched)
    assert any("labels" in r for r in world.truth("tasks"))


def test_answers_are_dated_by_the_world_clock_in_process_and_over_loopback() -> None:
    """The Date header is the world's clock (the one that stamps records) when the request
    came, to the second: never later than a record on the page, moved by an advance; a
    loopback server sends the same."""
    world = World(7, counts=SMALL)
    with make_client(world) as c:
        first = c.get("/v1/tasks", params={"sort": "-updated_at"})
        dated = email.utils.parsedate_to_datetime(first.headers["date"]).timestamp()
        assert dated == world.clock_us // 1_000_000
        newest = parse_timestamp(first.json()["data"][0]["updated_at"])
        assert newest <= world.clock_us and dated * 1_000_000 <= world.clock_us
        world.advance(updates=5, resources=["tasks"], seed=1)
        later = email.utils.parsedate_to_datetime(c.get("/v1/tasks").headers["date"])
        assert later.timestamp() == world.clock_us // 1_000_000
    with serve(world) as sandbox, httpx.Client(base_url=sandbox.base_url, headers=AUTH) as c:
        answer = c.get("/v1/deals")
        assert email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp() == \
            world.clock_us // 1_000_000


def test_mutate_mode_shifts_records_between_pages() -> None:
    """With mutate mode on, the world changes while a client pages, deterministically."""

    def extract() -> tuple[list[str], list[int]]:
        with make_client(World(9, counts=SMALL), mutate_every_n_requests=2) as c:
            ids: list[str] = []
            totals: list[int] = []
            number = 1
            while True:
                body = c.get("/v1/deals", params={"page[number]": number}).json()
                if not body["data"]:
                    return ids, totals
                ids += [r["id"] for r in body["data"]]
                totals.append(body["meta"]["page"]["total_count"])
                number += 1

    ids, totals = extract()
    assert totals[0] == SMALL["deals"] and totals[-1] > totals[0]
    assert extract() == (ids, totals)
    assert ids != sorted(set(ids)) or len(ids) != totals[-1]


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after", ["2", "0", "-1", "soon", "Wed, 21 Oct 2026 07:28:00 GMT", None]
)
def test_scripted_status(client: httpx.Client, retry_after: str | None) -> None:
    """A status rule answers its status and Retry-After verbatim, `times` times, only where it matches."""
    app_of(client).set_faults(
        [{"kind": "status", "status": 503, "resource": "deals", "page": 3, "times": 2, "retry_after": retry_after}]
    )  # fmt: skip
    assert client.get("/v1/deals").status_code == 200
    assert client.get("/v1/tasks", params={"page[number]": 3}).status_code == 200
    for _ in range(2):
        response = client.get("/v1/deals", params={"page[number]": 3})
        assert response.status_code == 503
        assert response.headers.get("retry-after") == retry_after
        assert response.json()["errors"][0]["status"] == "503"
    assert client.get("/v1/deals", params={"page[number]": 3}).status_code == 200


def test_scripted_reset(client: httpx.Client) -> None:
    """A reset rule drops the connection mid-body."""
    app_of(client).set_faults([{"kind": "reset"}])
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/deals")
    assert client.get("/v1/deals").status_code == 200


def test_scripted_truncate(client: httpx.Client) -> None:
    """A truncate rule answers 200 with a body cut mid-JSON."""
    app_of(client).set_faults([{"kind": "truncate"}])
    response = client.get("/v1/deals")
    assert response.status_code == 200 and response.content.startswith(b'{"data":[')
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize(
    ("kind", "content_type"), [("html200", "text/html"), ("empty200", "application/json")]
)
def test_scripted_bad_200(client: httpx.Client, kind: str, content_type: str) -> None:
    """html200 and empty200 answer 200 with a body that is no page at all."""
    app_of(client).set_faults([{"kind": kind}])
    response = client.get("/v1/deals")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    expected = b"" if kind == "empty200" else response.content
    assert response.content == expected and b'"data"' not in response.content


def test_scripted_stall(client: httpx.Client) -> None:
    """A stall rule delays the answer; beyond the read timeout the client times out."""
    app = app_of(client)
    app.set_faults([{"kind": "stall", "seconds": 0.2}, {"kind": "stall", "seconds": 5}])
    # The app says how long to hold the answer; the transports (uvicorn, SandboxTransport) wait.
    headers = {k.lower(): v for k, v in AUTH.items()}
    reply = app.handle("GET", "/v1/deals", "", headers)
    assert (reply.status, reply.delay) == (200, 0.2)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/deals", timeout=0.1)


def test_scripted_data_not_list_and_same_page(client: httpx.Client) -> None:
    """data_not_list serves an object as data; same_page serves page 1 whatever was asked."""
    app_of(client).set_faults([{"kind": "data_not_list"}, {"kind": "same_page", "page": 3}])
    assert isinstance(client.get("/v1/deals").json()["data"], dict)
    first = client.get("/v1/deals").json()["data"]
    third = client.get("/v1/deals", params={"page[number]": 3}).json()
    assert third["data"] == first and third["meta"]["page"]["number"] == 3


def test_bad_fault_rule_is_rejected(client: httpx.Client) -> None:
    """An unknown kind or key is refused with its name, by Python and by the admin endpoint."""
    with pytest.raises(ValueError, match="kind"):
        app_of(client).set_faults([{"kind": "explode"}])
    response = client.post("/_admin/faults", json=[{"kind": "status", "colour": "red"}])
    assert response.status_code == 400 and "colour" in response.text


def test_random_faults_are_seeded() -> None:
    """fault_rate and reset_rate inject faults reproducibly from fault_seed."""

    def outcomes() -> list[str]:
        found = []
        with make_client(fault_rate=0.3, reset_rate=0.2, fault_seed=4) as c:
            for _ in range(40):
                try:
                    found.append(str(c.get("/v1/tags").status_code))
                except httpx.RemoteProtocolError:
                    found.append("reset")
        return found

    first = outcomes()
    assert first == outcomes()
    assert {"200", "reset"} <= set(first) and set(first) & {"500", "502", "503", "504"}


def test_rate_limit(client: httpx.Client) -> None:
    """Past rate_limit requests per second the answer is 429 with an integer Retry-After."""
    app_of(client).configure(rate_limit=2)
    statuses = [client.get("/v1/tags") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["retry-after"] == "1"
    assert app_of(client).stats()["rate_limited"] == 1


# -- admin -----------------------------------------------------------------------------------


def test_admin_endpoints(client: httpx.Client) -> None:
    """Health, truth, advance, stats, faults and settings work without credentials."""
    admin = httpx.Client(transport=client._transport, base_url="http://sandbox")
    assert admin.get("/_admin/health").json()["counts"]["deals"] == 120
    truth = admin.get("/_admin/truth/tags").json()
    assert [r["id"] for r in truth] == sorted(r["id"] for r in truth)
    result = admin.post("/_admin/advance", json={"updates": 2, "creates": 1, "resources": ["tags"]})
    assert len(result.json()["tags"]["created"]) == 1
    assert len(admin.get("/_admin/truth/tags").json()) == SMALL["tags"] + 1
    client.get("/v1/tags")
    client.get("/v1/tags", headers={"api_key": "no"})
    stats = admin.get("/_admin/stats").json()
    assert stats["requests"]["tags"] == {"200": 1, "401": 1} and stats["total_requests"] == 2
    settings = admin.post("/_admin/settings", json={"omit_meta": True, "latency_ms": 0}).json()
    assert settings["omit_meta"] is True
    assert set(client.get("/v1/tags").json()) == {"data"}
    assert admin.post("/_admin/settings", json={"api_key": "x"}).status_code == 400
    assert admin.post("/_admin/faults", json={"faults": [{"kind": "reset"}]}).is_success
    assert admin.get("/_admin/faults").json()["faults"][0]["kind"] == "reset"
    assert admin.get("/_admin/truth/widgets").status_code == 404


# -- real servers ----------------------------------------------------------------------------


@pytest.mark.slow
def test_uvicorn_server_faults() -> None:
    """Over real loopback HTTP a reset breaks the body and a 429 carries Retry-After."""
    settings = SandboxSettings(rate_limit=1)
    with serve(World(2, counts=SMALL), settings) as sandbox, sandbox.client() as c:
        sandbox.set_faults([{"kind": "reset", "resource": "deals"}])
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/v1/deals")
        limited = c.get("/v1/deals")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        time.sleep(int(limited.headers["retry-after"]))  # as the server asked, no more
        body = c.get("/v1/deals").json()
        assert [r["id"] for r in body["data"]] == [r["id"] for r in sandbox.truth("deals")[:10]]
        assert sandbox.stats()["resets"] == 1
        assert sandbox.world is not None and sandbox.world.count("deals") == 120


@pytest.mark.slow
def test_subprocess_server() -> None:
    """The CLI server announces its URL, serves the contract and obeys admin calls."""
    counts = {"tags": 5, "users": 5, "deals": 30, "pages": 5, "tasks": 5}
    with serve_subprocess(counts=counts, seed=3, omit_meta=True) as sandbox, sandbox.client() as c:
        assert set(c.get("/v1/deals").json()) == {"data"}
        sandbox.advance(creates=2, resources=["deals"])
        assert len(sandbox.truth("deals")) == 32
    assert sandbox.process is not None and sandbox.process.poll() is not None


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` explains the commands and `serve --help` every switch."""
    for argv in (["--help"], ["serve", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "truth" in out and "--rate-limit" in out and "--mutate-every-n-requests" in out


def test_basic_auth_header_decoding() -> None:
    """A malformed Basic header is a 401, not a crash."""
    with make_client() as c:
        c.headers.pop("api_key")
        bad = c.get("/v1/tags", headers={"Authorization": "Basic !!!"})
        good = c.get(
            "/v1/tags",
            headers={"Authorization": "Basic " + base64.b64encode(b":sandbox-key").decode()},
        )
    assert bad.status_code == 401 and good.status_code == 200

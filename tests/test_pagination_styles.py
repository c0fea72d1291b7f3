"""dlt-style configs of every paginator sync the real sandbox (loopback HTTP) into Delta.

Each style serves the same world; the sandbox changes records while the first run reads. What
a style promises under change is checked against the truth snapshots taken before and after
that run (docs/pagination.md); the runs after it must equal the truth exactly.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics_client import Credentials, Lake, load_config
from analytics_client.run.check import check_source
from analytics_sandbox import (
    RunningSandbox,
    SandboxSettings,
    SandboxTransport,
    World,
    serve,
)
from tests.groundtruth import fetch_truth
from tests.support import PLAIN, SMALL, assert_lake_equals_truth, sync

READ = ("deals", "tasks")

# The paginator as dlt's docs write it, adapted to the sandbox's style of the same name
# (https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/basic#pagination).
STYLES: dict[str, tuple[str, Any]] = {
    "offset": ("offset", {"type": "offset", "limit": 10, "offset_param": "offset",
                          "limit_param": "limit", "total_path": "total"}),
    "cursor": ("cursor", {"type": "cursor", "cursor_path": "cursors.next",
                          "cursor_param": "cursor"}),
    "header_link": ("header_link", {"type": "header_link", "links_next_key": "next"}),
    "json_link": ("json_link", {"type": "json_link", "next_url_path": "pagination.next"}),
    "auto over cursor": ("cursor", "auto"),
    "auto over header_link": ("header_link", "auto"),
    "auto over json_link": ("json_link", "auto"),
    "auto over page_number": ("page_number", "auto"),  # follows links.next (json_link)
}


def config(style: str, paginator: Any, sort: str = "id") -> dict[str, Any]:
    """The seed's resources, paged by ``paginator`` against the sandbox's ``style``."""
    raw = copy.deepcopy(PLAIN)
    for resource in raw["resources"]:
        resource["endpoint"]["paginator"] = paginator
        resource["endpoint"]["params"] = {"pagination": style, "sort": sort}
    return raw


def timestamps(records: list[dict[str, Any]]) -> dict[str, dt.datetime]:
    return {r["id"]: dt.datetime.fromisoformat(r["updated_at"].replace("Z", "+00:00"))
            for r in records}


def assert_nothing_older_than_before(sandbox: RunningSandbox, lake: Path,
                                     before: dict[str, dict[str, dt.datetime]]) -> None:
    """No loss: every record the API held when the run began is in the table, at the version
    it had then or a newer one; and nothing is in the table that the API does not hold."""
    for resource in READ:
        table = timestamps([{"id": r["id"], "updated_at": r["updated_at"].isoformat()}
                            for r in Lake(str(lake)).read(resource).to_dicts()])
        after = timestamps(fetch_truth(sandbox.base_url, resource))
        assert set(table) <= set(after), f"{resource}: ids the API never served"
        for record_id, when in before[resource].items():
            assert record_id in table, f"{resource} {record_id} was lost"
            assert table[record_id] >= when, f"{resource} {record_id} went back in time"


@pytest.mark.parametrize("name", list(STYLES))
def test_dlt_config_syncs_equal_to_the_truth_twice_with_changes_during_the_first(
        tmp_path: Path, name: str) -> None:
    """Under changes while reading nothing is lost; the next two runs equal the truth."""
    style, paginator = STYLES[name]
    settings = SandboxSettings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=7)
    raw = config(style, paginator)
    with serve(World(seed=7, counts=SMALL), settings) as sandbox:
        before = {r: timestamps(fetch_truth(sandbox.base_url, r)) for r in READ}
        first = sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert all(s.status == "ok" for s in first.values()), first
        assert sandbox.stats()["mutations"] > 0
        assert_nothing_older_than_before(sandbox, tmp_path, before)

        sandbox.configure(mutate_every_n_requests=0)
        sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert_lake_equals_truth(sandbox, tmp_path, READ)

        sandbox.advance(updates=15, creates=5, seed=3)
        sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert_lake_equals_truth(sandbox, tmp_path, READ)


def test_single_page_syncs_equal_to_the_truth_twice_with_changes_during_the_first(
        tmp_path: Path) -> None:
    """One response per resource (dlt's single_page), the sandbox changing after it."""
    settings = SandboxSettings(mutate_every_n_requests=1, mutate_updates=4, mutate_creates=1,
                               late_visibility=False, fault_seed=3)
    raw = copy.deepcopy(PLAIN)
    for resource in raw["resources"]:
        resource["endpoint"]["paginator"] = "single_page"
        resource["endpoint"]["params"] = {"page[size]": 100}
    small = ("tags", "users")  # each fits one page of 100
    with serve(World(seed=3, counts=SMALL), settings) as sandbox:
        before = {r: timestamps(fetch_truth(sandbox.base_url, r)) for r in small}
        sync(sandbox, tmp_path, config=raw, resources=list(small))
        assert sandbox.stats()["total_requests"] == len(small)
        for resource in small:
            table = set(Lake(str(tmp_path)).read(resource)["id"])
            assert set(before[resource]) == table  # the snapshot it was served, exactly
        sandbox.configure(mutate_every_n_requests=0)
        for _ in range(2):
            sync(sandbox, tmp_path, config=raw, resources=list(small))
            assert_lake_equals_truth(sandbox, tmp_path, small)
            sandbox.advance(updates=5, creates=3, seed=4)


def test_a_server_keyset_cursor_loses_nothing_sorted_by_the_changing_field(
        tmp_path: Path) -> None:
    """Sorted by updated_at, an updated record moves past the cursor and is read again."""
    settings = SandboxSettings(mutate_every_n_requests=2, mutate_updates=6, mutate_creates=2,
                               late_visibility=False, fault_seed=5)
    raw = config("cursor", STYLES["cursor"][1], sort="updated_at")
    with serve(World(seed=5, counts=SMALL), settings) as sandbox:
        before = {r: timestamps(fetch_truth(sandbox.base_url, r)) for r in READ}
        sync(sandbox, tmp_path, config=raw, resources=list(READ))
        assert_nothing_older_than_before(sandbox, tmp_path, before)


def test_offset_sorted_by_the_changing_field_can_lose_records(tmp_path: Path) -> None:
    """The documented limit of position paging: an update moves a record from an unread page
    to the end, everything behind it slides one place forward, and one record is skipped."""
    lost = 0
    for seed in (1, 2, 3):
        settings = SandboxSettings(mutate_every_n_requests=2, mutate_updates=6,
                                   mutate_creates=0, late_visibility=False, fault_seed=seed)
        raw = config("offset", STYLES["offset"][1], sort="updated_at")
        with serve(World(seed=seed, counts=SMALL), settings) as sandbox:
            before = fetch_truth(sandbox.base_url, "deals")
            sync(sandbox, tmp_path / str(seed), config=raw, resources=["deals"])
            seen = set(Lake(str(tmp_path / str(seed))).read("deals")["id"])
            lost += sum(1 for r in before if r["id"] not in seen)
    assert lost > 0


@pytest.mark.parametrize("style", ["offset", "cursor", "header_link", "json_link"])
def test_check_asks_each_style_for_its_first_page(style: str) -> None:
    """check builds its one request through the paginator's own init_request."""
    with serve(World(seed=2, counts=SMALL)) as sandbox:
        source = load_config(config(style, STYLES[style][1]), base_url=sandbox.base_url)
        results = check_source(source, Credentials(sandbox.api_key, sandbox.organization_id))
        assert all(r.ok for r in results), results
        assert sandbox.stats()["total_requests"] == len(source.resources)  # one each


def test_a_next_link_to_another_host_is_refused_over_real_http(tmp_path: Path) -> None:
    """The server builds its next links from the Host it was asked for; a client that sent
    another Host gets links elsewhere, which the run refuses, naming both origins."""
    with serve(World(seed=2, counts=SMALL)) as sandbox:
        raw = config("json_link", STYLES["json_link"][1])
        raw["client"]["headers"] = {**raw["client"].get("headers", {}), "Host": "elsewhere.example"}
        summaries = sync(sandbox, tmp_path, config=raw, resources=["tags"])
        tags = summaries["tags"]
        assert tags.status == "failed"
        assert "elsewhere.example:80" in (tags.error or "")
        assert sandbox.base_url.removeprefix("http://") in (tags.error or "")
        assert "endpoint.paginator" in (tags.error or "")
        assert sandbox.stats()["total_requests"] == 1  # nothing was sent to the link


@pytest.mark.parametrize(("query", "detail"), [
    ({"pagination": "pages"}, "pagination must be one of"),
    ({"pagination": "cursor", "cursor": "not-ours"}, "cursor is not one this API issued"),
    ({"pagination": "offset", "offset": "-1"}, "offset must be an integer >= 0"),
    ({"pagination": "offset", "limit": "101"}, "limit must be an integer between 1 and 100"),
    ({"pagination": "header_link", "per_page": "0"}, "per_page must be an integer"),
])
def test_the_sandbox_styles_refuse_bad_parameters_by_name(query: dict[str, str],
                                                          detail: str) -> None:
    """Each style's parameters are checked like the contract's: a 400 naming the parameter."""
    client = httpx.Client(base_url="http://sandbox", transport=SandboxTransport(
        world=World(seed=1, counts=SMALL)), headers={"api_key": "sandbox-key",
                                                     "X-Organization-Id": "org_sandbox"})
    with client:
        response = client.get("/v1/tags", params=query)
    assert response.status_code == 400
    assert detail in response.json()["errors"][0]["detail"]


def test_the_pagination_setting_selects_the_style_without_a_query() -> None:
    """SandboxSettings.pagination serves every request in that style."""
    client = httpx.Client(base_url="http://sandbox", transport=SandboxTransport(
        world=World(seed=1, counts=SMALL), settings=SandboxSettings(pagination="header_link")),
        headers={"api_key": "sandbox-key", "X-Organization-Id": "org_sandbox"})
    with client:
        response = client.get("/v1/tags", params={"per_page": 5})
    assert response.links["next"]["url"] == "http://sandbox/v1/tags?page=2&per_page=5"
    assert len(response.json()["data"]) == 5

"""The sandbox deletes records as the contract says: gone from every listing and count, ids never
reused, no tombstone, also while a client pages (docs/api-contract.md, docs/sandbox.md)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_sandbox import RESOURCES, SandboxSettings, SandboxTransport, World, parse_timestamp
from analytics_sandbox.__main__ import _parser, main
from analytics_sandbox.world import Sort

TINY = {"tags": 3, "users": 6, "deals": 40, "pages": 3, "tasks": 30}
SMALL = {"tags": 20, "users": 30, "deals": 120, "pages": 40, "tasks": 60}
AUTH = {"api_key": "sandbox-key", "X-Organization-Id": "org_sandbox"}
STYLES = ("page_number", "offset", "cursor", "header_link", "json_link")
KEYSET = ("cursor", "json_link")
Record = dict[str, Any]


def make_client(world: World, **settings: Any) -> httpx.Client:
    transport = SandboxTransport(world=world, settings=SandboxSettings(**settings))
    return httpx.Client(transport=transport, base_url="http://sandbox", headers=AUTH)


def admin_of(client: httpx.Client) -> httpx.Client:
    return httpx.Client(transport=client._transport, base_url="http://sandbox")


def order(world: World, resource: str, sort: str) -> list[Record]:
    """The records of ``resource`` in ``sort`` order, ties by id, as the API serves them."""
    keys: dict[str, Callable[[Record], Any]] = {
        "id": lambda r: r["id"],
        "updated_at": lambda r: (parse_timestamp(r["updated_at"]), r["id"]),
        "-updated_at": lambda r: (-parse_timestamp(r["updated_at"]), r["id"]),
    }
    return sorted(world.truth(resource), key=keys[sort])


def walk(client: httpx.Client, resource: str, style: str, *, size: int, sort: str = "id",
         before: Callable[[], None] = lambda: None,
         after: Callable[[int, dict[str, Any]], None] = lambda n, body: None,
         max_pages: int = 1000) -> list[list[Record]]:
    """Every page of one read in ``style``, as a client of that style pages: ``before`` runs
    before each request, ``after`` after each page (its 1-based number and body)."""
    pages: list[list[Record]] = []
    params: dict[str, Any] | None = {"pagination": style, "sort": sort}
    assert params is not None
    if style == "page_number":
        params |= {"page[number]": 1, "page[size]": size}
    elif style == "header_link":
        params |= {"page": 1, "per_page": size}
    else:
        params |= {"limit": size} | ({"offset": 0} if style == "offset" else {})
    url: str | None = f"/v1/{resource}"
    while url is not None and len(pages) < max_pages:
        before()
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["data"]:
            break
        pages.append(body["data"])
        after(len(pages), body)
        if style == "page_number":
            url, params = body["links"]["next"], None  # the link is the whole request
        elif style == "offset":
            assert params is not None
            params["offset"] += size
        elif style == "cursor":
            cursor = body["cursors"]["next"]
            url = None if cursor is None else url
            params = {**(params or {}), "cursor": cursor}
        elif style == "header_link":
            url, params = response.links.get("next", {}).get("url"), None
        else:
            url, params = body["pagination"]["next"], None
    return pages


def ids(records: list[Record]) -> list[str]:
    return [r["id"] for r in records]


def parse_json(raw: bytes) -> Record:
    record: Record = json.loads(raw)
    return record


# -- the world -------------------------------------------------------------------------------


def test_deletes_leave_every_listing_and_count() -> None:
    """A deleted record is gone from truth, count, every page view, exists and child listings."""
    world = World(7, counts=SMALL)
    tasks_of = {d["id"]: world.children("tasks", "deal_id", d["id"], size=100)
                for d in world.truth("deals")}
    parent = next(deal for deal, listing in tasks_of.items() if listing.records)
    task_id = parse_json(tasks_of[parent].records[0])["id"]
    version = world.version
    result = world.advance(deletes=5, resources=["deals"])
    world.delete("tasks", [task_id])
    gone = result["deals"]["deleted"]
    assert len(gone) == 5 and result["deals"]["updated"] == result["deals"]["created"] == []
    assert world.version == version + 2
    assert world.count("deals") == SMALL["deals"] - 5
    assert not set(gone) & set(ids(world.truth("deals")))
    for sort in ("id", "updated_at", "-updated_at"):
        page = world.page("deals", size=100, number=1, sort=sort)
        rest = world.page_at("deals", offset=100, size=100, sort=sort)
        keyset, _ = world.page_after("deals", after=None, size=200, sort=sort)
        served = [parse_json(r)["id"] for r in page.records + rest.records]
        walked = [parse_json(r)["id"] for r in keyset.records]
        assert served == walked == ids(order(world, "deals", sort))
        assert page.total_count == rest.total_count == keyset.total_count == SMALL["deals"] - 5
    assert not any(world.exists("deals", rid) for rid in gone)
    listing = world.children("tasks", "deal_id", parent, size=100)
    assert listing.total_count == tasks_of[parent].total_count - 1
    assert task_id not in [parse_json(r)["id"] for r in listing.records]
    assert world.deleted("deals") == sorted(gone) and world.deleted("tasks") == [task_id]


def test_delete_names_what_it_cannot_delete_and_deletes_nothing_then() -> None:
    """An unknown or deleted id is a KeyError naming it, a repeat a ValueError; all or nothing."""
    world = World(1, counts=TINY)
    first, second = ids(world.truth("deals"))[:2]
    assert world.delete("deals", [first]) == [first]
    with pytest.raises(KeyError, match=f"already deleted \\['{first}'\\]"):
        world.delete("deals", [second, first])
    with pytest.raises(KeyError, match="never existed \\['deal_nope'\\]"):
        world.delete("deals", ["deal_nope"])
    with pytest.raises(ValueError, match="repeated"):
        world.delete("deals", [second, second])
    with pytest.raises(TypeError):
        world.delete("deals", second)
    with pytest.raises(KeyError, match="unknown resource"):
        world.delete("widgets", [second])
    with pytest.raises(ValueError, match=">= 0"):
        world.advance(deletes=-1)
    assert world.exists("deals", second) and world.deleted("deals") == [first]


def test_deletes_are_seeded_and_clamped() -> None:
    """The same advances delete the same ids; more deletes than records empty the resource."""
    a, b = World(4, counts=TINY), World(4, counts=TINY)
    steps: list[dict[str, Any]] = [{"deletes": 3}, {"deletes": 1},
                                   {"updates": 2, "creates": 1, "deletes": {"deals": 4}}]
    for step in steps:
        assert a.advance(**step) == b.advance(**step)
    assert a.truth_bytes("deals") == b.truth_bytes("deals")
    live = a.count("users")
    result = a.advance(deletes=1000, resources=["users"])
    assert a.count("users") == 0 and a.truth("users") == []
    assert len(result["users"]["deleted"]) == live
    nothing: dict[str, list[str]] = {"updated": [], "created": [], "deleted": []}
    assert a.advance(deletes=1, resources=["users"]) == {"users": nothing}


class _Offering:
    """A generator whose id choices offer ``first`` before anything else."""

    def __init__(self, first: str) -> None:
        self.offers = [first.split("_", 1)[1], "z" * 12]

    def choices(self, population: str, k: int) -> list[str]:
        return list(self.offers.pop(0))


def test_a_deleted_id_offered_again_is_not_issued() -> None:
    """When the generator draws a deleted id again, the world draws another instead."""
    world = World(2, counts=TINY)
    victim = ids(world.truth("deals"))[0]
    world.delete("deals", [victim])
    offering: Any = _Offering(victim)
    assert world._new_id(offering, "deals") == "deal_" + "z" * 12


steps = st.lists(
    st.tuples(st.sampled_from(RESOURCES), st.integers(0, 6), st.integers(0, 4), st.integers(0, 6)),
    min_size=1, max_size=12,
)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**16), steps=steps, chosen=st.integers(0, 3))
def test_ids_are_never_reused_and_deleted_is_what_left_truth(
        seed: int, steps: list[tuple[str, int, int, int]], chosen: int) -> None:
    """Over any sequence of updates, creates and deletes, an id once gone never returns and
    ``deleted`` is exactly the set of ids that left truth."""
    world = World(seed, counts=TINY)
    ever = {r: set(ids(world.truth(r))) for r in RESOURCES}
    left: dict[str, set[str]] = {r: set() for r in RESOURCES}
    rng = random.Random(seed)
    for resource, n_up, n_cr, n_del in steps:
        before = set(ids(world.truth(resource)))
        result = world.advance(n_up, n_cr, n_del, resources=[resource]).get(resource)
        live = ids(world.truth(resource))
        pick = rng.sample(live, min(chosen, len(live)))  # a test's chosen records
        world.delete(resource, pick)
        after = set(ids(world.truth(resource)))
        touched = result or {"updated": [], "created": [], "deleted": []}
        created, deleted = set(touched["created"]), set(touched["deleted"]) | set(pick)
        assert not created & set().union(*ever.values())  # never an id any resource ever had
        assert len(deleted) == min(n_del, len(before)) + len(pick)
        assert not set(touched["updated"]) & set(touched["deleted"])
        assert set(touched["deleted"]) <= before
        assert after == (before | created) - deleted
        ever[resource] |= created
        left[resource] |= (before | created) - after
        assert world.deleted(resource) == sorted(left[resource])
        assert world.count(resource) == len(after)
    for resource in RESOURCES:
        assert not left[resource] & set(ids(world.truth(resource)))


def test_new_records_never_point_at_a_deleted_record() -> None:
    """Records created after a delete point at live records only (owner, assignee, deal, tags)."""
    world = World(5, counts=SMALL)
    # As many users created as deleted: the pool of ids to point at keeps its length.
    result = world.advance(creates={"users": 10, "deals": 60, "tasks": 60},
                           deletes={"users": 10, "tags": 10, "deals": 60})
    live = {r: set(ids(world.truth(r))) for r in ("users", "tags", "deals")}
    new = set(result["deals"]["created"]) | set(result["tasks"]["created"])
    for record in world.truth("deals") + world.truth("tasks"):
        if record["id"] in new:
            assert record.get("owner_id") is None or record["owner_id"] in live["users"]
            assert record.get("assignee_id") is None or record["assignee_id"] in live["users"]
            assert record.get("deal_id") is None or record["deal_id"] in live["deals"]
            assert set(record.get("tag_ids") or []) <= live["tags"]


def test_late_stamps_follow_the_clock_whatever_was_deleted() -> None:
    """Deleting the newest records moves no change's stamp: each lies after the clock when the
    advance began (the time the API's Date showed until then) less 5 s, and none after the
    clock once it ends."""
    world = World(5, counts=SMALL)
    world.delete("tasks", ids(order(world, "tasks", "-updated_at")[:5]))
    before = world.clock_us
    result = world.advance(updates=40, creates=20, resources=["tasks"], seed=1)
    stamps = {r["id"]: parse_timestamp(r["updated_at"]) for r in world.truth("tasks")}
    touched = [stamps[i] for i in result["tasks"]["updated"] + result["tasks"]["created"]]
    assert any(s <= before for s in touched)
    assert all(before - 5_000_000 < s <= world.clock_us for s in touched)


@pytest.mark.parametrize("sort", ["id", "updated_at", "-updated_at"])
def test_a_keyset_continues_after_the_key_of_a_deleted_record(sort: Sort) -> None:
    """``page_after`` from a deleted record's key (mid tie group) serves the records after it."""
    world = World(3, counts={"deals": 300})
    rows = order(world, "deals", sort)
    stamps = [r["updated_at"] for r in rows]
    middle = next(i for i in range(1, len(rows) - 1)
                  if sort == "id" or stamps[i - 1] == stamps[i] == stamps[i + 1])
    key = _key(rows[middle], sort)
    world.delete("deals", [rows[middle]["id"], rows[middle + 1]["id"]])
    page, _ = world.page_after("deals", after=key, size=5, sort=sort)
    assert [parse_json(r)["id"] for r in page.records] == ids(rows[middle + 2:middle + 7])


def _key(record: Record, sort: str) -> tuple[Any, ...]:
    if sort == "id":
        return (record["id"],)
    stamp = parse_timestamp(record["updated_at"])
    return (stamp if sort == "updated_at" else -stamp, record["id"])


# -- paging while records are deleted ---------------------------------------------------------


@pytest.mark.parametrize("sort", ["id", "updated_at", "-updated_at"])
@pytest.mark.parametrize("style", STYLES)
def test_each_style_pages_against_the_records_there_are_now(style: str, sort: str) -> None:
    """After a delete mid-read a cursor continues after its key (its own row deleted, mid tie
    group); a position shifts onto the current records, skipping the one that slid forward."""
    world = World(3, counts={"deals": 300})
    size = 7
    rows = ids(order(world, "deals", sort))
    stamps = [r["updated_at"] for r in order(world, "deals", sort)]
    # The last record of a page, in the middle of a tie group when sorted by updated_at.
    last = next(p for p in range(2 * size - 1, len(rows) - 2, size)
                if sort == "id" or stamps[p - 1] == stamps[p] == stamps[p + 1] == stamps[p + 2])
    gone = [rows[last], rows[last + 1]]  # the row a cursor names, and the one after it

    def delete(number: int, body: dict[str, Any]) -> None:
        if number == (last + 1) // size:
            world.delete("deals", gone)

    with make_client(world) as client:
        served = ids(sum(walk(client, "deals", style, size=size, sort=sort, after=delete), []))
    now = ids(order(world, "deals", sort))
    assert served[:last + 1] == rows[:last + 1]
    if style in KEYSET:
        assert served[last + 1:] == [i for i in rows[last + 1:] if i not in gone]
    else:  # the contract's consequence for position paging: rows[last + 2] slid onto a read page
        assert served[last + 1:] == now[last + 1:] and rows[last + 2] not in served
    assert set(served) - set(gone) <= set(now)


@settings(max_examples=25)
@given(
    seed=st.integers(0, 1000),
    style=st.sampled_from(STYLES),
    sort=st.sampled_from(["id", "updated_at", "-updated_at"]),
    size=st.integers(1, 15),
    every=st.integers(1, 3),
    mutate=st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(1, 4)),
)
def test_a_read_in_mutate_mode_serves_only_current_records(
        seed: int, style: str, sort: str, size: int, every: int,
        mutate: tuple[int, int, int]) -> None:
    """With mutate_deletes every page holds only records live when it was served, exactly as they
    were, and counts what there was; no deleted id is ever served again."""
    updates, creates, deletes = mutate
    world = World(seed, counts=TINY)
    snapshot: dict[str, Record] = {}
    deleted: set[str] = set()

    def before() -> None:
        snapshot.clear()
        snapshot.update({r["id"]: r for r in world.truth("deals")})
        deleted.update(world.deleted("deals"))

    def after(number: int, body: dict[str, Any]) -> None:
        assert all(snapshot.get(r["id"]) == r for r in body["data"])
        assert not deleted & set(ids(body["data"]))
        total = body.get("total", body.get("meta", {}).get("page", {}).get("total_count"))
        assert total in (None, len(snapshot))

    with make_client(world, mutate_every_n_requests=every, mutate_updates=updates,
                     mutate_creates=creates, mutate_deletes=deletes, fault_seed=seed) as client:
        walk(client, "deals", style, size=size, sort=sort, before=before, after=after,
             max_pages=200)
    assert world.deleted("deals") and world.count("deals") == len(world.truth("deals"))


def test_a_page_number_walk_in_mutate_mode_shifts_and_misses_live_records() -> None:
    """The page-number walk a client makes under mutate_deletes skips records that stay live: what
    a client has to survive (the next run reads them)."""
    world = World(9, counts=SMALL)
    totals: list[int] = []
    with make_client(world, mutate_every_n_requests=1, mutate_updates=0, mutate_creates=0,
                     mutate_deletes=2) as client:
        pages = walk(client, "deals", "page_number", size=10, before=lambda: totals.append(
            world.count("deals")))
    served = set(ids(sum(pages, [])))
    assert set(ids(world.truth("deals"))) - served  # live, never served
    assert totals == [SMALL["deals"] - 2 * n for n in range(len(totals))]
    assert len(world.deleted("deals")) == 2 * len(totals)  # after every page served


# -- admin, settings, CLI ---------------------------------------------------------------------


def test_admin_advance_delete_and_deleted() -> None:
    """POST /_admin/advance deletes, POST /_admin/delete deletes chosen ids, GET /_admin/deleted
    lists them all, and truth, health and the API agree."""
    world = World(7, counts=SMALL)
    with make_client(world) as client, admin_of(client) as admin:
        advanced = admin.post("/_admin/advance", json={"deletes": {"tags": 2}, "updates": 1,
                                                       "resources": ["tags"]}).json()
        assert len(advanced["tags"]["deleted"]) == 2 and len(advanced["tags"]["updated"]) == 1
        chosen = ids(admin.get("/_admin/truth/tags").json())[:3]
        assert admin.post("/_admin/delete", json={"resource": "tags", "ids": chosen}).json() == {
            "deleted": chosen}
        gone = admin.get("/_admin/deleted/tags").json()
        assert gone == sorted(advanced["tags"]["deleted"] + chosen) == world.deleted("tags")
        truth = ids(admin.get("/_admin/truth/tags").json())
        assert len(truth) == SMALL["tags"] - 5 and not set(truth) & set(gone)
        assert admin.get("/_admin/health").json()["counts"]["tags"] == SMALL["tags"] - 5
        body = client.get("/v1/tags", params={"page[size]": 100}).json()
        assert ids(body["data"]) == truth and body["meta"]["page"]["total_count"] == len(truth)
        assert admin.get("/_admin/deleted/deals").json() == []


@pytest.mark.parametrize(("body", "named"), [
    ({"resource": "tags", "ids": ["tag_nope"]}, "tag_nope"),
    ({"resource": "tags", "ids": "tag_x"}, "list of id strings"),
    ({"resource": "tags"}, "resource and ids"),
    ({"resource": "widgets", "ids": []}, "widgets"),
])
def test_admin_delete_errors_name_the_problem(body: dict[str, Any], named: str) -> None:
    """A bad POST /_admin/delete is a 400 whose detail names what is wrong, and deletes nothing."""
    with make_client(World(7, counts=SMALL)) as client, admin_of(client) as admin:
        response = admin.post("/_admin/delete", json=body)
        assert response.status_code == 400 and named in response.json()["errors"][0]["detail"]
        assert admin.get("/_admin/deleted/tags").json() == []
        assert admin.get("/_admin/deleted/widgets").status_code == 404


def test_child_endpoint_of_a_deleted_parent_is_404_and_lists_no_deleted_child() -> None:
    """A deleted deal's tasks are a 404; a deleted task leaves its deal's listing and total."""
    world = World(7, counts=SMALL)
    deals = [d["id"] for d in world.truth("deals")
             if world.children("tasks", "deal_id", d["id"]).total_count >= 2]
    parent, other = deals[:2]
    with make_client(world) as client:
        tasks = ids(client.get(f"/v1/deals/{other}/tasks").json()["data"])
        world.delete("deals", [parent])
        world.delete("tasks", tasks[:1])
        assert client.get(f"/v1/deals/{parent}/tasks").status_code == 404
        body = client.get(f"/v1/deals/{other}/tasks").json()
    assert ids(body["data"]) == tasks[1:] and body["meta"]["page"]["total_count"] == len(tasks) - 1


def test_mutate_deletes_setting() -> None:
    """mutate_deletes is validated, public, changeable at runtime and a serve flag of its name."""
    with pytest.raises(ValueError, match="mutate_deletes"):
        SandboxSettings(mutate_deletes=-1)
    assert SandboxSettings().public()["mutate_deletes"] == 0
    with make_client(World(7, counts=SMALL)) as client, admin_of(client) as admin:
        changed = admin.post("/_admin/settings", json={"mutate_deletes": 2,
                                                       "mutate_every_n_requests": 1}).json()
        assert changed["mutate_deletes"] == 2
        client.get("/v1/deals")
        assert len(admin.get("/_admin/deleted/deals").json()) == 2
    args = _parser().parse_args(["serve", "--mutate-deletes", "3"])
    assert args.mutate_deletes == 3


def test_cli_advance_and_deleted(capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --help` shows --mutate-deletes; `advance --deletes` and `deleted` exist."""
    for argv in (["--help"], ["serve", "--help"], ["advance", "--help"], ["deleted", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--mutate-deletes" in out and "--deletes" in out and "deleted from one resource" in out

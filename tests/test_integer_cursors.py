"""Integer cursors (Unix seconds, ids) with ``start_param``, a child's own incremental and a
chain of parents, over loopback APIs shaped as Stripe and GitHub document them
(tests/cursorapis.py), into real Delta tables.

The oracle is the server's record set (``CursorApi.records``): after each run the table holds
exactly those records, whatever the library's marks say.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, Lake, load_config, run_sync
from analytics_client.core.errors import ConfigError
from analytics_client.core.jsonpath import MISSING, lookup
from analytics_client.state.marks import MemoryMarkStore, app_id
from tests.cursorapis import CursorApi

CLIENT = {"base_url": "http://127.0.0.1:1", "auth": {
    "type": "api_key", "name": "api_key", "api_key": 'dlt.secrets["api_key"]',
    "location": "header"}}
CREDS = Credentials("test-key", "test-org")
T0 = 1_700_000_000  # Unix seconds


def source(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"client": copy.deepcopy(CLIENT), "resources": [copy.deepcopy(r) for r in resources]}


def sync(api: CursorApi, lake: Path, raw: dict[str, Any], marks: MemoryMarkStore,
         **kwargs: Any) -> dict[str, Any]:
    config = load_config(raw, base_url=api.base_url)
    return {s.resource: s for s in run_sync(config, CREDS, str(lake), marks=marks, **kwargs)}


def table(lake: Path, name: str, *columns: str) -> set[tuple[Any, ...]]:
    if Lake(str(lake)).version(name) is None:
        return set()  # nothing was ever served: no table
    frame = Lake(str(lake)).read(name)
    if "_deleted_at" in frame.columns:
        frame = frame.filter(frame["_deleted_at"].is_null())
    return set(frame.select(list(columns)).iter_rows())


def truth(api: CursorApi, collection: str, *fields: str) -> set[tuple[Any, ...]]:
    return {tuple(r[f] for f in fields) for r in api.records(collection)}


EVENTS = {  # page numbers over a list sorted by the cursor: the keyset walk
    "name": "events",
    "endpoint": {"path": "/events", "data_selector": "data",
                 "paginator": {"type": "page_number", "page_param": "page",
                               "limit_param": "per_page", "limit": 10, "base_page": 1,
                               "total_path": "total_pages"},
                 "incremental": {"cursor_path": "created", "start_param": "created[gte]",
                                 "initial_value": 0}},
}
USERS = {  # GitHub's GET /users: since=<id>, Link header: a lagged read
    "name": "users",
    "endpoint": {"path": "/users", "data_selector": "$", "params": {"per_page": 10},
                 "paginator": {"type": "header_link"},
                 "incremental": {"cursor_path": "id", "start_param": "since"}},
    "columns": {"id": {"data_type": "bigint"}},
}
CHARGES = {  # Stripe's list: newest first, starting_after=<last id>, created[gte]
    "name": "charges",
    "endpoint": {"path": "/v1/charges", "data_selector": "data", "params": {"limit": 10},
                 "paginator": {"type": "cursor", "cursor_path": "data[-1].id",
                               "cursor_param": "starting_after", "has_more_path": "has_more"},
                 "incremental": {"cursor_path": "created", "start_param": "created[gte]",
                                 "initial_value": 0}},
}


def events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"e{i:04d}", "created": T0 + i // 3, "amount": i}
            for i in range(start, start + n)]


def test_an_integer_cursor_with_start_param_keeps_an_integer_mark(tmp_path: Path) -> None:
    """The issue's case: ``created`` in Unix seconds with ``created[gte]``. The first run reads
    everything and saves an integer mark; after new records the second run asks from the mark
    less ``lag`` seconds, in a few requests, and the table equals the server's records."""
    marks = MemoryMarkStore()
    with CursorApi() as api:
        api.put("events", events(95))
        first = sync(api, tmp_path, source(EVENTS), marks)["events"]
        assert first.status == "ok", first
        assert table(tmp_path, "events", "id", "created", "amount") \
            == truth(api, "events", "id", "created", "amount")
        top = max(r["created"] for r in api.records("events"))
        assert Lake(str(tmp_path)).mark("events", app_id("analytics")) == top
        block = marks.load("analytics", "events")
        assert block is not None and block.cursor == str(top)

        first_reads = sum(1 for p, _ in api.queries if p == "/events")
        api.put("events", [*api.records("events"), *events(7, start=95)])
        api.queries.clear()
        second = sync(api, tmp_path, source(EVENTS), marks)["events"]
        assert second.status == "ok", second
        assert table(tmp_path, "events", "id", "created", "amount") \
            == truth(api, "events", "id", "created", "amount")
        reads = [q for p, q in api.queries if p == "/events" and q["per_page"] != "1"]
        # (per_page=1: delete capture's one-record count probes, docs/deletes.md.)
        # From the mark less lag (10, in the cursor's units: seconds), never below it.
        assert int(reads[0]["created[gte]"]) == top - 10
        assert all(int(q["created[gte]"]) >= top - 10 for q in reads), reads
        window = sum(1 for r in api.records("events") if r["created"] >= top - 10)
        assert second.rows_fetched <= 2 * window < len(api.records("events")), second
        assert len(reads) < first_reads, (len(reads), first_reads)
        new_top = max(r["created"] for r in api.records("events"))
        assert Lake(str(tmp_path)).mark("events", app_id("analytics")) == new_top


def test_an_integer_initial_value_is_where_the_first_read_starts(tmp_path: Path) -> None:
    """An integer ``initial_value`` declares the cursor an integer and starts the first read
    there less ``lag``: only records from it on land."""
    cut = T0 + 20
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": {
        **EVENTS["endpoint"]["incremental"], "initial_value": cut, "lag": 0}}})
    with CursorApi() as api:
        api.put("events", events(120))
        result = sync(api, tmp_path, raw, MemoryMarkStore())["events"]
        assert result.status == "ok", result
        first = next(q for p, q in api.queries if p == "/events")
        assert first["created[gte]"] == str(cut)
        want = {(r["id"], r["created"]) for r in api.records("events") if r["created"] >= cut}
        assert table(tmp_path, "events", "id", "created") == want


@pytest.mark.parametrize("resource", ["events", "users"])
def test_an_integer_backfill_reads_its_window_and_moves_no_mark(tmp_path: Path,
                                                                 resource: str) -> None:
    """``[initial_value, end_value)`` as integers (dlt's backfill): exactly the records in it,
    by the keyset walk (events) and by a lagged read (users), no mark in table or state."""
    marks = MemoryMarkStore()
    # GitHub's since is exclusive (id > since): a window from 70 on is written from 69 there.
    lo, hi = (T0 + 5, T0 + 11) if resource == "events" else (69, 150)
    base = EVENTS if resource == "events" else USERS
    field = "created" if resource == "events" else "id"
    raw = source({**base, "endpoint": {**base["endpoint"], "incremental": {
        **base["endpoint"]["incremental"], "initial_value": lo, "end_value": hi}}})
    with CursorApi() as api:
        api.put("events", events(60))
        api.put("users", [{"id": i * 7, "login": f"u{i}"} for i in range(1, 44)])
        assert sync(api, tmp_path, raw, marks)[resource].status == "ok"
        want = {r["id"] for r in api.records(resource) if lo <= r[field] < hi}
        assert {row[0] for row in table(tmp_path, resource, "id")} == want
        assert Lake(str(tmp_path)).mark(resource, app_id("analytics")) is None
        assert marks.load("analytics", resource) is None


def test_an_integer_start_in_a_placeholder_is_its_digits(tmp_path: Path) -> None:
    """dlt's ``{incremental.start_value}`` with an integer cursor: the digits of the start (a
    lagged read: the page-number paginator without start_param; a first run starts at
    ``initial_value`` itself, dlt's rule: the lag never takes a read below it), and an integer
    mark."""
    marks = MemoryMarkStore()
    endpoint = {**EVENTS["endpoint"], "params": {"created[gte]": "{incremental.start_value}"},
                "incremental": {"cursor_path": "created", "initial_value": T0 + 3}}
    raw = source({**EVENTS, "endpoint": endpoint})
    with CursorApi() as api:
        api.put("events", events(40))
        assert sync(api, tmp_path, raw, marks)["events"].status == "ok"
        asked = {q.get("created[gte]") for p, q in api.queries if p == "/events"}
        assert asked == {str(T0 + 3)}
        assert table(tmp_path, "events", "id", "created") == {
            (i, c) for i, c in truth(api, "events", "id", "created") if c >= T0 + 3}
        assert isinstance(Lake(str(tmp_path)).mark("events", app_id("analytics")), int)


def test_github_users_since_an_integer_id(tmp_path: Path) -> None:
    """GitHub's ``since=<id>`` (exclusive) with Link-header paging: an integer id as the cursor
    (declared by its bigint hint), read as a lagged re-read (window.py): its mark is at most the
    first page's highest id on the first run, the table's highest after that, and each run
    asks from the mark less ``lag`` ids."""
    marks = MemoryMarkStore()
    with CursorApi() as api:
        api.put("users", [{"id": i * 7, "login": f"u{i}"} for i in range(1, 44)])
        assert sync(api, tmp_path, source(USERS), marks)["users"].status == "ok"
        assert table(tmp_path, "users", "id", "login") == truth(api, "users", "id", "login")
        first = Lake(str(tmp_path)).mark("users", app_id("analytics"))
        assert first == 10 * 7  # the first page's highest: the read began there

        api.put("users", [*api.records("users"), {"id": 400, "login": "new"}])
        api.queries.clear()
        assert sync(api, tmp_path, source(USERS), marks)["users"].status == "ok"
        assert table(tmp_path, "users", "id", "login") == truth(api, "users", "id", "login")
        assert next(q["since"] for p, q in api.queries if p == "/users") == str(first - 10)
        # The table's highest before this read: 301 (what was read while 400 came is re-read).
        assert Lake(str(tmp_path)).mark("users", app_id("analytics")) == 301

        api.queries.clear()  # nothing changed: one request from the mark less lag
        assert sync(api, tmp_path, source(USERS), marks)["users"].status == "ok"
        assert [q["since"] for p, q in api.queries if p == "/users"] == [str(301 - 10)]
        assert Lake(str(tmp_path)).mark("users", app_id("analytics")) == 400
        assert marks.load("analytics", "users").cursor == "400"  # type: ignore[union-attr]


@pytest.mark.skipif(lookup({"data": [{"id": 1}]}, "data[-1].id") is MISSING,
                    reason="paginator.cursor_path as JSONPath (data[-1].id) comes with the "
                           "i22-paginators branch")
def test_stripe_list_filtered_by_created_gte(tmp_path: Path) -> None:
    """Stripe's list shape end to end: ``created[gte]`` in Unix seconds, newest first,
    ``starting_after`` the last id. Second run: few requests, table equal to the server."""
    marks = MemoryMarkStore()
    with CursorApi() as api:
        api.put("charges", [{"id": f"ch_{i:04d}", "object": "charge", "created": T0 + i // 2}
                            for i in range(230)])
        assert sync(api, tmp_path, source(CHARGES), marks)["charges"].status == "ok"
        assert table(tmp_path, "charges", "id", "created") == truth(api, "charges", "id",
                                                                     "created")
        api.put("charges", [*api.records("charges"),
                            *({"id": f"ch_n{i}", "object": "charge", "created": T0 + 200 + i}
                              for i in range(5))])
        api.queries.clear()
        assert sync(api, tmp_path, source(CHARGES), marks)["charges"].status == "ok"
        assert table(tmp_path, "charges", "id", "created") == truth(api, "charges", "id",
                                                                     "created")
        assert len(api.queries) <= 3, api.queries


def test_an_integer_cursor_the_config_does_not_declare_is_named(tmp_path: Path) -> None:
    """No hint and no integer initial_value: the cursor is a timestamp, and a page of integers
    fails the resource naming the two ways to declare it (not a silent full read each run)."""
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": {
        "cursor_path": "created", "start_param": "created[gte]"}}})
    with CursorApi() as api:
        api.put("events", events(12))
        result = sync(api, tmp_path, raw, MemoryMarkStore())["events"]
        assert result.status == "failed"
        message = result.error or ""
        assert "data_type: bigint" in message and "initial_value" in message, message
        assert Lake(str(tmp_path)).mark("events", app_id("analytics")) is None


@pytest.mark.parametrize("base", [EVENTS, USERS])
def test_check_asks_what_the_first_run_asks_with_an_integer_initial_value(
        base: dict[str, Any]) -> None:
    """``check``'s first request is the run's: the integer start (``initial_value``: the lag
    never crosses it), as digits."""
    from analytics_client.read.plan import plan_resource
    from analytics_client.run.check import first_page

    param = base["endpoint"]["incremental"]["start_param"]
    raw = source({**base, "endpoint": {**base["endpoint"], "incremental": {
        **base["endpoint"]["incremental"], "initial_value": 1234}}})
    _, _, request = first_page(plan_resource(load_config(raw).resources[0]))
    assert request.params[param] == "1234"


@pytest.mark.parametrize(("incremental", "columns", "named"), [
    ({"initial_value": "2026-01-01T00:00:00Z"}, {"created": {"data_type": "bigint"}},
     "is not an integer"),
    ({"initial_value": 5}, {"created": {"data_type": "timestamp"}}, "is not an ISO-8601"),
    ({"initial_value": 5, "end_value": "2026-01-01T00:00:00Z"}, {},
     "must both be timestamps or both integers"),
    ({"initial_value": 9, "end_value": 3}, {}, "must be after initial_value"),
])
def test_a_cursor_kind_that_contradicts_itself_is_refused(
        incremental: dict[str, Any], columns: dict[str, Any], named: str) -> None:
    raw = source({**EVENTS, "columns": columns, "endpoint": {**EVENTS["endpoint"], "incremental": {
        "cursor_path": "created", "start_param": "created[gte]", **incremental}}})
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert any(named in p for p in caught.value.problems), caught.value.problems


# ---- a child with its own incremental, and a grandchild ---------------------------------------

REPOS = {"name": "repos", "endpoint": {"path": "/repos", "data_selector": "$",
                                       "paginator": {"type": "single_page"}},
         "columns": {"id": {"data_type": "bigint"}}}
ISSUES = {"name": "issues", "primary_key": "number",
          "endpoint": {"path": "/repos/{resources.repos.id}/issues", "data_selector": "$",
                       "paginator": {"type": "single_page"},
                       "incremental": {"cursor_path": "updated", "start_param": "updated[gte]",
                                       "initial_value": 0}}}
COMMENTS = {"name": "comments",
            "endpoint": {"path": "/repos/{resources.issues._repos_id}/issues/"
                                 "{resources.issues.number}/comments",
                         "data_selector": "$", "paginator": {"type": "single_page"}}}


def world(api: CursorApi, repos: int, issues: int, comments: int, at: int = T0) -> None:
    api.put("repos", [{"id": r, "name": f"repo{r}"} for r in range(1, repos + 1)])
    for r in range(1, repos + 1):
        api.put(f"repos/{r}/issues", [{"number": n, "title": f"i{r}.{n}", "updated": at + n}
                                      for n in range(1, issues + 1)])
        for n in range(1, issues + 1):
            api.put(f"repos/{r}/issues/{n}/comments",
                    [{"id": r * 1000 + n * 10 + c, "body": f"c{c}"} for c in range(comments)])


def all_issues(api: CursorApi, repos: int) -> set[tuple[Any, ...]]:
    return {(r, i["number"], i["updated"], i["title"]) for r in range(1, repos + 1)
            for i in api.records(f"repos/{r}/issues")}


def all_comments(api: CursorApi, repos: int, issues: int) -> set[tuple[Any, ...]]:
    return {(r, n, c["id"], c["body"]) for r in range(1, repos + 1)
            for n in range(1, issues + 1)
            for c in api.records(f"repos/{r}/issues/{n}/comments")}


def test_a_child_with_its_own_integer_incremental(tmp_path: Path) -> None:
    """Issues of every repo, each request filtered by ``updated[gte]`` from the child's own
    integer mark: an issue changed while its repo did not is read by the next run."""
    marks = MemoryMarkStore()
    raw = source(REPOS, ISSUES)
    with CursorApi() as api:
        world(api, repos=3, issues=4, comments=0)
        result = sync(api, tmp_path, raw, marks)
        assert all(s.status == "ok" for s in result.values()), result
        assert table(tmp_path, "issues", "_repos_id", "number", "updated", "title") \
            == all_issues(api, 3)
        mark = Lake(str(tmp_path)).mark("issues", app_id("analytics"))
        assert mark is not None and mark <= T0 + 4

        # One issue of repo 2 changes; repo 2 itself does not.
        changed = api.records("repos/2/issues")
        changed[0] = {**changed[0], "title": "edited", "updated": T0 + 50}
        api.put("repos/2/issues", changed)
        api.queries.clear()
        result = sync(api, tmp_path, raw, marks)
        assert all(s.status == "ok" for s in result.values()), result
        assert table(tmp_path, "issues", "_repos_id", "number", "updated", "title") \
            == all_issues(api, 3)
        asked = [q for p, q in api.queries if p.endswith("/issues")]
        assert len(asked) == 3 and {q["updated[gte]"] for q in asked} == {str(mark - 10)}


def test_a_child_backfill_reads_its_window_per_parent_and_keeps_the_rest(
        tmp_path: Path) -> None:
    """dlt's child ``incremental`` with ``end_value``: every parent's issues in
    ``[initial_value, end_value)``, each request sending both ends; the issues outside the
    window that an earlier run landed stay live (a window is not the whole: no deletes), and
    the child's mark is where the earlier run left it."""
    marks = MemoryMarkStore()
    with CursorApi() as api:
        world(api, repos=2, issues=6, comments=0)
        assert all(s.status == "ok" for s in sync(api, tmp_path, source(REPOS, ISSUES),
                                                   marks).values())
        mark = Lake(str(tmp_path)).mark("issues", app_id("analytics"))
        changed = [{**i, "title": f"edited {i['number']}"} for i in api.records("repos/1/issues")]
        api.put("repos/1/issues", changed)
        window = {**ISSUES["endpoint"]["incremental"], "end_param": "updated[lt]",
                  "initial_value": T0 + 2, "end_value": T0 + 4}
        backfill = {**ISSUES, "endpoint": {**ISSUES["endpoint"], "incremental": window}}
        api.queries.clear()
        result = sync(api, tmp_path, source(REPOS, backfill), marks)
        assert all(s.status == "ok" for s in result.values()), result
        asked = [q for p, q in api.queries if p.endswith("/issues")]
        assert len(asked) == 2 and all(
            (q["updated[gte]"], q["updated[lt]"]) == (str(T0 + 2), str(T0 + 4)) for q in asked)
        rows = table(tmp_path, "issues", "_repos_id", "number", "title")
        edited = {(1, n, f"edited {n}") for n in (2, 3)}  # the window's: numbers 2 and 3
        kept = {(1, n, f"i1.{n}") for n in (1, 4, 5, 6)} | {(2, n, f"i2.{n}") for n in range(1, 7)}
        assert rows == edited | kept
        assert Lake(str(tmp_path)).mark("issues", app_id("analytics")) == mark


def test_a_grandchild_reads_the_children_of_each_changed_child(tmp_path: Path) -> None:
    """repos -> issues -> comments: the grandchild binds the child's number and the repo id
    the child carries (``_repos_id``); a second run with one issue changed (its repo did not:
    the issues' own incremental finds it) asks for that issue's comments only."""
    marks = MemoryMarkStore()
    raw = source(COMMENTS, ISSUES, REPOS)  # any order: parents run first
    with CursorApi() as api:
        world(api, repos=2, issues=3, comments=2)
        result = sync(api, tmp_path, raw, marks)
        assert all(s.status == "ok" for s in result.values()), result
        assert table(tmp_path, "comments", "_issues__repos_id", "_issues_number", "id", "body") \
            == all_comments(api, 2, 3)

        edited = api.records("repos/1/issues")
        edited[1] = {**edited[1], "title": "edited", "updated": T0 + 99}
        api.put("repos/1/issues", edited)
        api.put("repos/1/issues/2/comments", [{"id": 1020, "body": "new body"},
                                              {"id": 1029, "body": "new comment"}])
        api.queries.clear()
        result = sync(api, tmp_path, raw, marks)
        assert all(s.status == "ok" for s in result.values()), result
        # 1021 left the API: a read for changed parents captures no deletes (docs/deletes.md),
        # so its row stays until a full read of comments.
        assert table(tmp_path, "comments", "_issues__repos_id", "_issues_number", "id", "body") \
            == all_comments(api, 2, 3) | {(1, 2, 1021, "c1")}
        assert [p for p, _ in api.queries if p.endswith("/comments")] \
            == ["/repos/1/issues/2/comments"]


def test_a_cycle_of_parents_is_refused_by_name() -> None:
    a = {"name": "a", "endpoint": {"path": "/a/{resources.b.id}"}}
    b = {"name": "b", "endpoint": {"path": "/b/{resources.a.id}"}}
    with pytest.raises(ConfigError) as caught:
        load_config(source(a, b))
    assert any("form a cycle" in p for p in caught.value.problems), caught.value.problems


# ---- generated integer cursor distributions ---------------------------------------------------

CURSORS = st.one_of(
    st.integers(0, 3),                          # ties: groups larger than a page
    st.integers(-(2**40), 2**40),               # spread, negatives included
    st.sampled_from([-(2**62), 2**62, 0]),       # outliers
)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(first=st.lists(CURSORS, max_size=40), moved=st.lists(st.integers(0, 39), max_size=8),
       created=st.integers(0, 12), step=st.integers(0, 3), deleted=st.sets(st.integers(0, 39)),
       counts=st.booleans())
@pytest.mark.slow
def test_generated_integer_cursors_land_exactly(
        tmp_path_factory: pytest.TempPathFactory, first: list[int], moved: list[int],
        created: int, step: int, deleted: set[int], counts: bool) -> None:
    """Any distribution of integer cursors (ties past a page, negatives, 2**62): after a full
    run, and after records move up (an update), are created at or past the highest cursor
    (the API's rule: a cursor only grows) or are deleted, the table's live rows equal the
    server's records. With ``counts`` the API also gives its total: the walk is split in
    slices, and deletes below the read's start are found by bisecting the integer cursor
    (without a count they wait for a full read: docs/deletes.md, so none are generated)."""
    lake = tmp_path_factory.mktemp("lake")
    marks = MemoryMarkStore()
    records = [{"id": f"e{i:03d}", "created": c, "amount": i} for i, c in enumerate(first)]
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": {
        "cursor_path": "created", "start_param": "created[gte]"}},
        "columns": {"created": {"data_type": "bigint"}},
        "max_delete_share": 1.0})  # the generated deletes may be most of a small table
    with CursorApi(counts=counts) as api:
        api.put("events", records)
        assert sync(api, lake, raw, marks)["events"].status == "ok"
        assert table(lake, "events", "id", "created", "amount") \
            == truth(api, "events", "id", "created", "amount")
        top = max([r["created"] for r in records], default=0)
        for n, index in enumerate(moved):
            if index < len(records):
                records[index] = {**records[index], "created": top + step * n, "amount": -n}
        records += [{"id": f"n{i:03d}", "created": top + step * i, "amount": 1000 + i}
                    for i in range(created)]
        if counts:  # without the API's count, deletes below a read's start wait for a full read
            records = [r for i, r in enumerate(records) if i not in deleted]
        api.put("events", records)
        assert sync(api, lake, raw, marks)["events"].status == "ok"
        assert table(lake, "events", "id", "created", "amount") \
            == truth(api, "events", "id", "created", "amount")


# ---- cursor_path as JSONPath ------------------------------------------------------------------

CONTACTS = {  # HubSpot-shaped; the cursor nested in properties, as dlt users write it
    "name": "contacts",
    "endpoint": {"path": "/crm/v3/objects/contacts", "data_selector": "results",
                 "params": {"limit": 10, "since": "{incremental.start_value}"},
                 "paginator": {"type": "cursor", "cursor_path": "paging.next.after",
                               "cursor_param": "after"},
                 "incremental": {"cursor_path": "properties.hs_lastmodifieddate",
                                 "initial_value": "2026-01-01T00:00:00Z"}},
}


def contacts(n: int, minute: int = 0) -> list[dict[str, Any]]:
    return [{"id": str(i), "properties": {
        "email": f"c{i}@example.com",
        "hs_lastmodifieddate": f"2026-03-01T10:{(minute + i) % 60:02d}:00.000Z"}}
        for i in range(1, n + 1)]


def test_a_nested_cursor_path_reads_filters_and_merges(tmp_path: Path) -> None:
    """``cursor_path: properties.hs_lastmodifieddate`` (dlt's JSONPath): the read's mark and
    filter come from the nested value, which lands in dlt's column for it
    (``properties__hs_lastmodifieddate``) and guards the merge."""
    marks = MemoryMarkStore()
    with CursorApi() as api:
        api.put("contacts", contacts(25))
        assert sync(api, tmp_path, source(CONTACTS), marks)["contacts"].status == "ok"
        frame = Lake(str(tmp_path)).read("contacts")
        assert set(frame["id"]) == {r["id"] for r in api.records("contacts")}
        assert str(frame.schema["properties__hs_lastmodifieddate"]).startswith("Datetime")
        assert Lake(str(tmp_path)).mark("contacts", app_id("analytics")) is not None

        edited = api.records("contacts")
        edited[3] = {**edited[3], "properties": {"email": "new@example.com",
                                                 "hs_lastmodifieddate": "2026-03-01T11:30:00Z"}}
        api.put("contacts", edited)
        api.queries.clear()
        assert sync(api, tmp_path, source(CONTACTS), marks)["contacts"].status == "ok"
        since = next(q["since"] for p, q in api.queries if p.startswith("/crm"))
        assert since > "2026-03-01T10:00"  # from the mark, not from initial_value
        frame = Lake(str(tmp_path)).read("contacts")
        row = frame.filter(frame["id"] == edited[3]["id"]).to_dicts()[0]
        assert "new@example.com" in str(row)


@pytest.mark.parametrize("path", ["$.created", "$['created']", "created"])
def test_a_top_level_cursor_written_as_jsonpath_is_the_field(tmp_path: Path, path: str) -> None:
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": {
        **EVENTS["endpoint"]["incremental"], "cursor_path": path}}})
    with CursorApi() as api:
        api.put("events", events(15))
        assert sync(api, tmp_path, raw, MemoryMarkStore())["events"].status == "ok"
        assert Lake(str(tmp_path)).mark("events", app_id("analytics")) == T0 + 14 // 3
        assert "created" in Lake(str(tmp_path)).read("events").columns


@pytest.mark.parametrize("path", ["items[0].ts", "properties.*", "$..updated", "a[?b>1]"])
def test_a_cursor_path_that_picks_among_values_is_refused(path: str) -> None:
    raw = source({**EVENTS, "endpoint": {**EVENTS["endpoint"], "incremental": {
        **EVENTS["endpoint"]["incremental"], "cursor_path": path}}})
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert any("cursor_path" in p and "name the one field" in p
               for p in caught.value.problems), caught.value.problems


# ---- the codec and the state's view of integer marks -----------------------------------------


@given(st.integers(-(2**63), 2**63 - 1))
def test_an_integer_mark_reads_back_from_its_text(value: int) -> None:
    from analytics_client.core.cursors import INTEGER

    assert INTEGER.read(INTEGER.format(value)) == value == INTEGER.parse(value)
    assert INTEGER.format(value) == str(value)  # the state block's text: plain digits


@pytest.mark.parametrize("value", [True, 1.5, "12", None, 2**63])
def test_an_integer_cursor_takes_json_integers_only(value: object) -> None:
    from analytics_client.core.cursors import INTEGER

    with pytest.raises(ValueError):
        INTEGER.parse(value)


def test_state_show_and_a_cursor_that_changed_kind(tmp_path: Path) -> None:
    """``state show`` writes an integer mark as digits; a block saved as an instant before the
    config declared an integer cursor is refused by name (``state reset``), never misread."""
    from analytics_client.core.cursors import INTEGER
    from analytics_client.core.errors import StateError
    from analytics_client.state.marks import Mark, describe, effective_start

    marks = MemoryMarkStore()
    with CursorApi() as api:
        api.put("events", events(12))
        assert sync(api, tmp_path, source(EVENTS), marks)["events"].status == "ok"
    lake = Lake(str(tmp_path))
    shown = describe(lake, "analytics", "events", marks, 0, INTEGER)
    top = T0 + 11 // 3
    assert shown["table_cursor"] == shown["block_cursor"] == str(top)
    assert f"resuming from {top}" in str(shown["next_run"])

    marks.save(Mark(pipeline="analytics", resource="events", cursor="2026-01-01T00:00:00Z"))
    with pytest.raises(StateError) as caught:
        effective_start(lake, "events", "analytics", marks.load("analytics", "events"), 0,
                        INTEGER)
    assert "state reset events" in str(caught.value)
    assert "refused" in str(describe(lake, "analytics", "events", marks, 0, INTEGER)["next_run"])

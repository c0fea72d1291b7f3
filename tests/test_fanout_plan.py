"""The fan-out's units and summary (analytics_client/fanout.py) and the per-resource lock.

Fast: no Prefect. The end-to-end run over two workers is tests/test_fanout.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import ConfigError, ResourceSummary, render_markdown
from analytics_client.core.errors import PipelineBusyError
from analytics_client.core.lock import pipeline_lock
from analytics_client.core.summary import markdown_rows
from analytics_client.run.fanout import ChildOutcome, Organization, Per, Unit, plan
from analytics_client.run.fanout import render_markdown as render_fanout

NAMES = ["tags", "deals", "users"]


def _names(org: Organization) -> list[str]:
    return list(NAMES)


def test_one_unit_per_resource_of_each_organization_with_its_own_parameters() -> None:
    orgs = [Organization(pipeline="org-a", lake_uri="s3://lake/a"),
            Organization(pipeline="org-b", lake_uri="s3://lake/b", api_key_block="b-key")]
    defaults = {"api_key_block": "default-key", "base_url": None, "full_refresh": ["deals"]}
    units = plan(orgs, defaults, None, "resource", _names)
    assert [u.name for u in units] == [f"{o}-{r}" for o in ("org-a", "org-b") for r in NAMES]
    deals_b = units[4]
    assert deals_b.parameters == {"api_key_block": "b-key", "base_url": None,
                                  "full_refresh": ["deals"], "pipeline": "org-b",
                                  "lake_uri": "s3://lake/b", "resources": ["deals"]}
    assert units[0].parameters["full_refresh"] == []  # tags: not among full_refresh
    assert units[0].parameters["api_key_block"] == "default-key"


def test_one_unit_per_organization_holds_all_its_resources() -> None:
    orgs = [Organization(pipeline="org-a", lake_uri="a"), Organization(pipeline="b", lake_uri="b")]
    units = plan(orgs, {"full_refresh": True}, None, "organization", _names)
    assert [(u.name, u.parameters["resources"], u.parameters["full_refresh"]) for u in units] == [
        ("org-a", NAMES, True), ("b", NAMES, True)]


def test_a_child_resources_unit_comes_after_its_parents_when_both_are_in_the_fanout() -> None:
    """deal_tasks reads deals' table (children.py): its run waits for deals' run; not when
    deals is not selected, nor per organization (one flow run orders them by wait_for)."""
    orgs = [Organization(pipeline="org-a", lake_uri="s3://lake/a")]
    parents = {"deal_tasks": "deals"}

    def parent(org: Organization, name: str) -> str | None:
        return parents.get(name)

    def units(names: list[str], per: Per) -> list[Unit]:
        return plan(orgs, {}, None, per, lambda org: names, parent)

    assert [(u.resources, u.after) for u in units(["deals", "deal_tasks", "tags"],
                                                  "resource")] == [
        (("deals",), None), (("deal_tasks",), "deals"), (("tags",), None)]
    assert [u.after for u in units(["deal_tasks", "tags"], "resource")] == [None, None]
    assert [u.after for u in units(["deals", "deal_tasks"], "organization")] == [None]


@pytest.mark.parametrize("field", ["pipeline", "lake_uri"])
def test_organizations_sharing_a_pipeline_or_lake_are_refused_naming_both(field: str) -> None:
    values = {"pipeline": ["x", "y", "z"], "lake_uri": ["a", "b", "c"]}
    values[field][2] = values[field][0]
    orgs = [Organization(pipeline=p, lake_uri=u) for p, u in zip(*values.values(), strict=True)]
    called: list[Organization] = []

    def names(org: Organization) -> list[str]:
        called.append(org)
        return NAMES

    with pytest.raises(ConfigError) as caught:
        plan(orgs, {}, None, "resource", names)
    assert f"organizations[2].{field}" in str(caught.value)
    assert "organizations[0]" in str(caught.value)
    assert not called  # refused before anything else


def test_a_full_refresh_of_an_unknown_resource_is_refused() -> None:
    with pytest.raises(ConfigError, match="full_refresh: \\['dealz'\\]"):
        plan([Organization(pipeline="a", lake_uri="a")], {"full_refresh": ["dealz"]}, None,
             "resource", _names)


def test_an_organization_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="api_key"):
        Organization.model_validate({"pipeline": "a", "lake_uri": "b", "api_key": "secret"})


_name = st.one_of(st.sampled_from(["total", "resource", "status"]),
                  st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True))
_summary = st.builds(
    ResourceSummary, resource=_name, status=st.sampled_from(["ok", "failed", "stopped"]),
    pages=st.integers(0, 10**6), rows_fetched=st.integers(0, 10**9),
    inserted=st.integers(0, 10**9), seconds=st.floats(0, 10**5, allow_nan=False))


@given(st.lists(_summary, max_size=6))
def test_markdown_rows_reads_back_every_resource_row(summaries: list[ResourceSummary]) -> None:
    """Written from the format's documented columns: name, status, pages, fetched, inserted."""
    rows = markdown_rows(render_markdown(summaries, title="t"))
    assert [r[:5] for r in rows] == [
        [s.resource, s.status, f"{s.pages:,}", f"{s.rows_fetched:,}", f"{s.inserted:,}"]
        for s in summaries]


def _outcome(pipeline: str, resource: str, state: str, summary: str | None,
             message: str = "") -> ChildOutcome:
    unit = Unit(pipeline, (resource,), {})
    return ChildOutcome(unit, f"{pipeline}-{resource}", state, message, summary)


def test_the_fanout_summary_has_every_childs_rows_and_names_each_failure() -> None:
    deals = render_markdown([ResourceSummary("deals", "ok", rows_fetched=60, inserted=60)])
    tags = render_markdown([ResourceSummary("tags", "failed", error="tags: HTTP 401")])
    markdown = render_fanout([
        _outcome("a", "deals", "Completed", deals),
        _outcome("a", "tags", "Failed", tags, "1 of 1 resources failed: tags"),
        _outcome("a", "users", "Crashed", None, "worker process exited 1"),
    ], title="fan-out")
    lines = markdown.splitlines()
    assert "| a | a-deals | deals | ok | 0 | 60 | 60 |" in markdown
    assert "| a | a-tags | tags | failed |" in markdown
    assert any(line.startswith("| a | a-users | users | crashed |") for line in lines)
    assert "- a-tags: Failed: 1 of 1 resources failed: tags" in lines
    assert "- a-users: Crashed: worker process exited 1" in lines
    assert not any("a-deals:" in line for line in lines)


# --- locks: one run per pipeline and resource ---------------------------------------------


def _held_elsewhere(lock: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
    """Hold ``lock()`` in another thread (flock is per open file: a second one conflicts)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock():
            holding.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(60)
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.fixture
def deals_held() -> Iterator[None]:
    yield from _held_elsewhere(lambda: pipeline_lock("p", ["deals"]))


def test_runs_of_other_resources_of_the_pipeline_go_on_meanwhile(deals_held: None) -> None:
    with pipeline_lock("p", ["users", "tags"]), pipeline_lock("other", ["deals"]):
        pass


def test_a_second_run_of_a_resource_is_refused_naming_it(deals_held: None) -> None:
    with pytest.raises(PipelineBusyError, match="pipeline 'p' resource 'deals' is already running"):
        with pipeline_lock("p", ["users", "deals"]):
            pass
    with pytest.raises(PipelineBusyError, match="pipeline 'p' is already running"):
        with pipeline_lock("p"):  # the whole pipeline (maintenance) waits for every resource
            pass


def test_a_whole_pipeline_hold_refuses_every_resource() -> None:
    for _ in _held_elsewhere(lambda: pipeline_lock("p")):
        with pytest.raises(PipelineBusyError, match="pipeline 'p' is already running"):
            with pipeline_lock("p", ["users"]):
                pass


def test_the_lock_is_reentrant_within_a_thread() -> None:
    with pipeline_lock("p", ["deals", "users"]), pipeline_lock("p", ["deals"]):
        pass
    with pipeline_lock("p"), pipeline_lock("p"):
        pass

"""data_selector as JSONPath, response_actions and processing_steps, read as dlt reads them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Credentials, Lake, load_config
from analytics_client.config.model import ResponseAction
from analytics_client.core.errors import ConfigError, ContractError
from analytics_client.core.jsonpath import MISSING, select
from analytics_client.http.responses import ignored_by
from analytics_client.read.paged import select_records
from analytics_client.run.check import check_source
from analytics_sandbox import SandboxSettings, World, serve
from tests.groundtruth import fetch_truth
from tests.plans import request_of
from tests.support import SANDBOX_CLIENT, sync

KEYS = st.sampled_from(["data", "items", "results", "meta", "a_b", "x-y"])
SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS, inner, max_size=4), max_leaves=20)
# A selector as a list of steps: a key, an index, or "*" (every element or value).
STEPS = st.lists(KEYS | st.integers(0, 3) | st.just("*"), min_size=1, max_size=4)


def spelled(steps: list[Any]) -> str:
    out = "$"
    for step in steps:
        out += "[*]" if step == "*" else f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def independent(body: Any, steps: list[Any]) -> list[Any]:
    """RFC 9535's reading of name, index and wildcard segments, written from the RFC."""
    nodes = [body]
    for step in steps:
        out: list[Any] = []
        for node in nodes:
            if step == "*":
                out.extend(node if isinstance(node, list) else
                           node.values() if isinstance(node, dict) else [])
            elif isinstance(step, int):
                if isinstance(node, list) and step < len(node):
                    out.append(node[step])
            elif isinstance(node, dict) and step in node:
                out.append(node[step])
        nodes = out
    return nodes


def dlt_rule(values: list[Any]) -> list[Any]:
    """dlt's ``extract_response``: one match is itself, null is empty, one object one record."""
    data = values[0] if len(values) == 1 else values
    if data is None:
        return []
    return data if isinstance(data, list) else [data]


@given(body=JSON, steps=STEPS)
def test_a_jsonpath_selector_selects_what_the_rfc_says(body: Any, steps: list[Any]) -> None:
    """Over generated bodies, a JSONPath selector gives dlt's records of the RFC's matches."""
    selector = spelled(steps)
    if all(isinstance(s, str) and s != "*" for s in steps):
        found = independent(body, steps)
        assert select(body, selector) == (found[0] if found else MISSING)
    else:
        assert select(body, selector) == dlt_rule(independent(body, steps))


@given(body=st.dictionaries(KEYS, JSON, max_size=4), key=KEYS)
def test_a_dotted_selector_is_strict(body: dict[str, Any], key: str) -> None:
    """``data`` must be present and a list, or null (an empty page: dlt-hub/dlt#2932); dlt's
    ``$.data`` and ``data`` read the same."""
    source = load_config({"client": {**SANDBOX_CLIENT, "base_url": "http://h"}, "resources": [
        {"name": "r", "endpoint": {"path": "r", "data_selector": key}}]})
    value = body.get(key, MISSING)
    if isinstance(value, list):
        assert select_records(request_of(source.resources[0]), body, 1) == value
        assert select(body, f"$.{key}") == value
    elif value is None:
        assert select_records(request_of(source.resources[0]), body, 1) == []
    else:
        with pytest.raises(ContractError, match="data_selector|expected a list"):
            select_records(request_of(source.resources[0]), body, 1)


ACTIONS = st.lists(st.tuples(st.none() | st.sampled_from([200, 404, 500]),
                             st.none() | st.sampled_from(["gone", "Not found", "x"]))
                   .filter(lambda pair: pair != (None, None))
                   .map(lambda pair: ResponseAction(status_code=pair[0], content=pair[1],
                                                    action="ignore")), max_size=4)


@given(actions=ACTIONS, status=st.sampled_from([200, 404, 500]),
       text=st.sampled_from(["", "gone", "Not found here", "xyz", "nothing"]))
def test_response_actions_match_as_dlts_hooks(actions: list[ResponseAction], status: int,
                                               text: str) -> None:
    """The first action whose every given condition holds ignores the response (dlt's
    ``_handle_response_action``: status equal, content a substring)."""
    expected = next((a for a in actions
                     if (a.status_code is None or a.status_code == status)
                     and (a.content is None or a.content in text)), None)
    assert ignored_by(actions, status, lambda: text) is expected


def test_a_404_ignored_ends_the_read_with_nothing_and_no_error(tmp_path: Path) -> None:
    """dlt's ``{"status_code": 404, "action": "ignore"}`` on a path the API does not have."""
    raw = {"client": {**SANDBOX_CLIENT, "base_url": "http://h"}, "resources": [
        {"name": "gone", "endpoint": {"path": "/v1/nothing",
                                      "response_actions": [{"status_code": 404,
                                                            "action": "ignore"}]}}]}
    with serve(World(seed=1, counts={"tags": 5, "users": 5, "deals": 5, "pages": 5,
                                     "tasks": 5})) as sandbox:
        [summary] = sync(sandbox, tmp_path, config=raw).values()
        [checked] = check_source(load_config(raw, base_url=sandbox.base_url),
                                 Credentials(sandbox.api_key, sandbox.organization_id))
    assert summary.status == "ok" and summary.rows_fetched == 0
    assert checked.ok and "ignored by response_actions" in checked.message


def test_response_actions_with_a_keyset_walk_are_refused() -> None:
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resource_defaults"]["endpoint"]["response_actions"] = [{"status_code": 404,
                                                                 "action": "ignore"}]
    with pytest.raises(Exception, match="response_actions: not supported yet with"):
        load_config(raw)


def test_response_actions_with_a_lagged_read_by_placeholder_are_refused() -> None:
    """dlt's ``{incremental.start_value}`` form (window.py's lagged re-read, offset paging): an
    ignored page would end it early and save a mark all the same."""
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resource_defaults"]["endpoint"].pop("incremental", None)  # the seed's start_param
    raw["resources"] = [{"name": "deals", "endpoint": {
        "path": "/v1/deals", "paginator": {"type": "offset", "limit": 10},
        "params": {"filter[updated_at][gte]": "{incremental.start_value}"},
        "incremental": {"cursor_path": "updated_at"},
        "response_actions": [{"status_code": 404, "action": "ignore"}]}}]
    with pytest.raises(Exception, match="response_actions: not supported yet with"):
        load_config(raw)
    del raw["resources"][0]["endpoint"]["response_actions"]
    assert load_config(raw).resources[0].endpoint.incremental is not None


_NAMES = st.sampled_from(["data", "items", "results", "records"])
# What RFC 9535 calls selectors that pick some members of a list (filter, index, slice), with
# spaces as users write them: written here from the RFC, not from our pattern.
_SOME = st.one_of(
    st.builds(lambda f, v: f"[?(@.{f} == '{v}')]", _NAMES, st.text("abc", min_size=1)),
    st.builds(lambda f: f"[?(@.{f})]", _NAMES),
    st.builds(lambda i, sp: f"[{sp}{i}{sp}]", st.integers(-5, 50), st.sampled_from(["", " "])),
    st.builds(lambda a, b: f"[{a}:{b}]", st.integers(0, 9).map(str) | st.just(""),
              st.integers(0, 9).map(str) | st.just("")),
    st.builds(lambda a, b: f"[{a},{b}]", st.integers(0, 9), st.integers(0, 9)),
)
_ALL = st.sampled_from(["[*]", ".*", ""])


def _with_selector(selector: str) -> dict[str, Any]:
    return {"client": {**SANDBOX_CLIENT, "base_url": "http://h"}, "resources": [
        {"name": "deals", "endpoint": {"path": "/v1/deals", "data_selector": selector}}]}


@given(_NAMES, _SOME)
def test_a_selector_that_keeps_some_records_is_refused_naming_the_fix(name: str,
                                                                     some: str) -> None:
    """A filter, index or slice makes paginators and keyset walks see fewer records than the
    API served: they would stop early or skip (rows lost with status ok), so it is refused."""
    with pytest.raises(ConfigError) as caught:
        load_config(_with_selector(f"$.{name}{some}"))
    message = str(caught.value)
    assert "data_selector" in message and "processing_steps" in message


@given(_NAMES, _ALL)
def test_a_selector_that_takes_the_whole_list_is_accepted(name: str, every: str) -> None:
    source = load_config(_with_selector(f"$.{name}{every}"))
    assert source.resources[0].endpoint.data_selector == f"$.{name}{every}"


def test_processing_steps_filter_and_map_in_order_twice_with_changes(tmp_path: Path) -> None:
    """dlt's steps on an incremental resource: the table holds the filtered, mapped truth;
    the records a filter drops still count as read, so no run reads them as missing."""
    def keep(record: dict[str, Any]) -> bool:
        return int(record["id"].rsplit("_", 1)[-1], 36) % 3 != 0

    def mark(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "name": f"<{record.get('name')}>"}

    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["resources"] = [r for r in raw["resources"] if r["name"] == "tags"]
    raw["resources"][0]["processing_steps"] = [{"filter": keep}, {"map": mark}]
    settings = SandboxSettings(mutate_every_n_requests=2, mutate_updates=3, mutate_creates=2,
                               late_visibility=False, fault_seed=4)
    with serve(World(seed=4, counts={"tags": 120, "users": 5, "deals": 5, "pages": 5,
                                     "tasks": 5}), settings) as sandbox:
        first = sync(sandbox, tmp_path, config=raw)
        assert first["tags"].status == "ok"
        # A full read whose filter dropped rows: the API's count is not the table's to match.
        assert not any("rows may be missing" in note for note in first["tags"].notes)
        sandbox.configure(mutate_every_n_requests=0)
        for seed in (1, 2):
            sync(sandbox, tmp_path, config=raw)
            truth = {r["id"]: r for r in fetch_truth(sandbox.base_url, "tags") if keep(r)}
            table = Lake(str(tmp_path)).read("tags").to_dicts()
            assert sorted(r["id"] for r in table) == sorted(truth)
            assert all(r["name"] == f"<{truth[r['id']]['name']}>" for r in table)
            sandbox.advance(updates=8, creates=4, seed=seed)

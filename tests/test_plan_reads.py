"""Which read a resource gets: the code picks the read the documented rules pick.

The rules (docs/incremental.md, README "Incremental runs"), written here from the docs and not
from the code, so that the redesign of the library (issue 20) cannot change a read unnoticed:

* a resource whose path or params name a parent (``resolve``, ``{resources.<p>.<f>}``) is read
  once per parent record: ``child``;
* no ``incremental``, or an API that cannot filter by the cursor (no ``start_param`` and no
  ``{incremental.*}`` placeholder): the paginator's plain read, ``paged``;
* a filter with page numbers and ``start_param``: the keyset walk, ``keyset``, or ``sliced``
  when ``endpoint.concurrency`` > 1;
* a filter with any other paginator (or placeholders without ``start_param``): ``lagged``;
* ``end_value`` set: a ``backfill`` of ``[initial_value, end_value)``, walked by the keyset or
  the lagged read as above.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, ConfigError, Credentials, load_config
from tests.read_choice import read_of

def expected_read(resource: dict[str, Any]) -> str:
    """The read the docs promise for one resource of a *loaded* config (its model dump)."""
    endpoint = resource["endpoint"]
    texts = [endpoint["path"], *(v for v in endpoint["params"].values() if isinstance(v, str))]
    if endpoint.get("resolve") or any("{resources." in t for t in texts):
        return "child"
    incremental = endpoint.get("incremental")
    if incremental is None:
        return "paged"
    # No filter the API applies (no start_param, no placeholder): every page, kept to the
    # start on our side (dlt's incremental) -- a lagged read, as every non-keyset one.
    keyset = bool(incremental.get("start_param")) \
        and endpoint["paginator"]["type"] == "page_number"
    walk = ("sliced" if endpoint["concurrency"] > 1 else "keyset") if keyset else "lagged"
    if incremental.get("end_value") is not None:
        return f"backfill/{'keyset' if keyset else 'lagged'}"
    return walk


def _loaded(raw: dict[str, Any]) -> list[dict[str, Any]]:
    config = load_config(raw, base_url="http://127.0.0.1:9")
    return [r.model_dump() for r in config.resources]


def _check(raw: dict[str, Any], tmp: Path) -> None:
    config = load_config(raw, base_url="http://127.0.0.1:9")
    for resource, dumped in zip(config.resources, _loaded(raw), strict=True):
        got = read_of(config, resource, Credentials("k", "o"), tmp)
        assert got == expected_read(dumped), resource.name


def test_the_default_config_reads_every_resource_by_the_sliced_keyset_walk(tmp_path: Path) -> None:
    """The seed plus incremental reads: page numbers and start_param, several walks at once."""
    _check(DEFAULT_CONFIG, tmp_path)
    assert {expected_read(r) for r in _loaded(DEFAULT_CONFIG)} == {"sliced"}


def test_the_seed_as_written_pages_plainly(tmp_path: Path) -> None:
    """Without the default incremental block, every resource is the paginator's plain read."""
    plain = copy.deepcopy(DEFAULT_CONFIG)
    del plain["resource_defaults"]["endpoint"]
    _check(plain, tmp_path)
    assert {expected_read(r) for r in _loaded(plain)} == {"paged"}


_PAGINATORS = [
    {"type": "page_number", "page_param": "page[number]", "base_page": 1, "total_path": None},
    {"type": "offset", "limit": 10, "total_path": None},
    {"type": "cursor", "cursor_path": "meta.next", "cursor_param": "cursor"},
    {"type": "json_link", "next_url_path": "links.next"},
    {"type": "header_link"},
    {"type": "single_page"},
]


@st.composite
def _resources(draw: st.DrawFn, i: int) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"path": f"things{i}",
                                "paginator": draw(st.sampled_from(_PAGINATORS)),
                                "concurrency": draw(st.integers(1, 4))}
    kind = draw(st.sampled_from(["none", "start_param", "placeholder", "unfiltered", "child"]))
    if kind == "child" and i > 0:
        endpoint["path"] = "things0/{id}/parts"
        endpoint["params"] = {"id": {"type": "resolve", "resource": "r0", "field": "id"}}
        return {"name": f"r{i}", "endpoint": endpoint}
    incremental: dict[str, Any] = {"cursor_path": "updated_at"}
    if kind == "start_param":
        incremental["start_param"] = draw(st.sampled_from(["since", "filter[updated_at][gte]"]))
    elif kind == "placeholder":
        endpoint["params"] = {"since": "{incremental.start_value}"}
    if kind != "none" and draw(st.booleans()):
        incremental["initial_value"] = "2024-01-01T00:00:00Z"
        if draw(st.booleans()):
            incremental["end_value"] = "2025-01-01T00:00:00Z"
    if kind != "none":
        endpoint["incremental"] = incremental
    return {"name": f"r{i}", "endpoint": endpoint}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_configs_get_the_documented_read(tmp_path: Path, data: st.DataObject) -> None:
    """Any paginator, filter, window, concurrency and parent: the read the rules name."""
    resources = [data.draw(_resources(i)) for i in range(data.draw(st.integers(1, 3)))]
    raw = {"client": {"base_url": "http://127.0.0.1:9"}, "resources": resources}
    try:
        load_config(raw, base_url="http://127.0.0.1:9")
    except ConfigError:
        assume(False)
    _check(raw, tmp_path)


@pytest.mark.parametrize("module", ["test_pagination_styles", "test_incremental_window",
                                    "test_children"])
def test_configs_the_suite_uses_get_the_documented_read(module: str, tmp_path: Path) -> None:
    """Every module-level config dict of the suite's config-heavy tests reads as documented."""
    namespace = __import__(f"tests.{module}", fromlist=["*"])
    found = 0
    for value in vars(namespace).values():
        if isinstance(value, dict) and isinstance(value.get("resources"), list):
            raw = copy.deepcopy(value)
            try:
                load_config(raw, base_url="http://127.0.0.1:9")
            except (ConfigError, TypeError):
                continue
            _check(raw, tmp_path)
            found += 1
    if found == 0:
        pytest.skip(f"tests.{module} keeps no module-level config")

"""Helpers the end-to-end tests share: run a sync against a sandbox, compare the lake to it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from analytics_client import DEFAULT_CONFIG, Credentials, Lake, load_config, run_sync
from analytics_client.core.summary import ResourceSummary
from analytics_sandbox import DEFAULT_COUNTS, RunningSandbox
from tests.groundtruth import assert_table_equals_truth, fetch_truth

# The five resources, in the seed config's order (the order messages list them in).
RESOURCES: tuple[str, ...] = tuple(
    r if isinstance(r, str) else r["name"] for r in DEFAULT_CONFIG["resources"])
assert set(RESOURCES) == set(DEFAULT_COUNTS), "the seed config and the sandbox disagree"
# The bundled sandbox's default world (27,250 records; test_sandbox pins the figure once).
DEFAULT_RECORDS = sum(DEFAULT_COUNTS.values())
# A world small enough for end-to-end tests, with a tie group and pages to spare in each resource.
SMALL: dict[str, int] = {"tags": 40, "users": 60, "deals": 230, "pages": 90, "tasks": 150}
# The contract's page-number paging, as the seed writes it out (dlt's page_number defaults are
# page=, from 0, total at "total": not the contract's); tests add their own limit.
CONTRACT_PAGES: dict[str, Any] = {
    k: v for k, v in DEFAULT_CONFIG["resources"][0]["endpoint"]["paginator"].items()
    if k != "limit"}
# The contract's organization header as the seed declares it (issue 22, item 5: a config sends
# it only when it declares it); for own configs run against the sandbox, which requires it.
ORG_HEADERS: dict[str, str] = {"X-Organization-Id": 'dlt.secrets["organization_id"]'}
# What a config for the contract's API (the sandbox) sends: the seed's api_key header (a config
# without client.auth sends none, as dlt) and its organization header.
SANDBOX_AUTH: dict[str, str] = {"type": "api_key", "name": "api_key",
                                "api_key": 'dlt.secrets["api_key"]', "location": "header"}
SANDBOX_CLIENT: dict[str, Any] = {"headers": ORG_HEADERS, "auth": SANDBOX_AUTH}
# The seed exactly as written: plain page-number paging, no incremental reads.
PLAIN: dict[str, Any] = copy.deepcopy(DEFAULT_CONFIG)
del PLAIN["resource_defaults"]["endpoint"]


def sync(sandbox: RunningSandbox, lake: Path, marks: Any = None, *,
         config: dict[str, Any] | None = None, client: dict[str, Any] | None = None,
         credentials: Credentials | None = None, **kwargs: Any) -> dict[str, ResourceSummary]:
    """One library run against ``sandbox`` (default config: the seed plus incremental reads)."""
    raw = copy.deepcopy(config or DEFAULT_CONFIG)
    raw["client"] = {**raw["client"], **(client or {})}
    source = load_config(raw, base_url=sandbox.base_url)
    creds = credentials or Credentials(sandbox.api_key, sandbox.organization_id)
    return {s.resource: s for s in run_sync(source, creds, str(lake), marks=marks, **kwargs)}


def assert_lake_equals_truth(sandbox: RunningSandbox, lake: Path,
                             resources: tuple[str, ...] = RESOURCES) -> None:
    for resource in resources:
        table = Lake(str(lake)).read(resource)
        assert_table_equals_truth(table, fetch_truth(sandbox.base_url, resource), resource)

"""Which read the library picks for a resource, asked of the library's own entry point.

The one place test_plan_reads.py meets the code: before the redesign it asked ``page_source``;
now it asks the resolved plan.
"""

from __future__ import annotations

from pathlib import Path

from analytics_client import Credentials, Lake
from analytics_client.config.model import ResourceConfig, SourceConfig, parent_of
from analytics_client.http.client import ApiClient
from analytics_client.read.window import BackfillRead, LaggedRead
from analytics_client.run.sync import page_source

_NAMES = {"PaginatedRead": "paged", "KeysetWalk": "keyset", "SlicedWalk": "sliced",
          "LaggedRead": "lagged"}


def read_of(config: SourceConfig, resource: ResourceConfig, credentials: Credentials,
            lake: Path) -> str:
    if parent_of(resource) is not None:
        return "child"
    with ApiClient(config, credentials) as client:
        source = page_source(client, resource, None, lambda event: None, Lake(str(lake)))
        if isinstance(source, BackfillRead):
            inner = "lagged" if isinstance(source.source, LaggedRead) else "keyset"
            return f"backfill/{inner}"
        return _NAMES[type(source).__name__]

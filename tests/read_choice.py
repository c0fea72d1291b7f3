"""Which read the library picks for a resource, asked of the library's own entry points.

The one place test_plan_reads.py meets the code: before the redesign it asked the sync loop's
``page_source``; now it asks the plan resolved from the config (``read/plan.py``) and checks
that the read the sync loop opens for that plan is the one the plan names.
"""

from __future__ import annotations

from pathlib import Path

from analytics_client import Credentials, Lake
from analytics_client.config.model import ResourceConfig, SourceConfig
from analytics_client.http.client import ApiClient
from analytics_client.read.keyset import FilterFallback
from analytics_client.read.plan import plan_resource
from analytics_client.read.window import BackfillRead, LaggedRead
from analytics_client.run.sync import page_source

_OPENED = {"PaginatedRead": "paged", "KeysetWalk": "keyset", "SlicedWalk": "sliced",
           "LaggedRead": "lagged", "ChildRead": "child"}


def read_of(config: SourceConfig, resource: ResourceConfig, credentials: Credentials,
            lake: Path) -> str:
    plan = plan_resource(resource, config)
    named = f"backfill/{plan.walk}" if plan.mode == "backfill" else plan.mode
    with ApiClient(config, credentials) as client:
        source = page_source(client, plan, lambda event: None, Lake(str(lake)))
        if isinstance(source, BackfillRead):
            opened = f"backfill/{'lagged' if isinstance(source.source, LaggedRead) else 'keyset'}"
        else:
            if isinstance(source, FilterFallback):  # a keyset read, ready for an API that
                source = source.primary             # turns out to ignore its filter
            opened = _OPENED[type(source).__name__]
    assert opened == named, f"{resource.name}: the plan says {named}, the loop opened {opened}"
    return named

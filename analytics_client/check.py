"""``check``: prove config, secrets and API access with one small request per resource."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .client import ApiClient
from .config import PageNumberPaginator, SourceConfig
from .errors import AnalyticsSyncError
from .extract import select_records
from .paginators import lookup
from .secrets import Credentials

__all__ = ["CheckResult", "check_source"]


@dataclass(frozen=True)
class CheckResult:
    resource: str
    ok: bool
    message: str


def check_source(
    config: SourceConfig, credentials: Credentials, *, transport: httpx.BaseTransport | None = None
) -> list[CheckResult]:
    """Ask each resource for its first record; writes nothing and never retries for long."""
    results = []
    with ApiClient(config, credentials, transport=transport) as client:
        for resource in config.resources:
            paginator = resource.endpoint.paginator
            params: dict[str, str | int | float | bool] = dict(resource.endpoint.params)
            if isinstance(paginator, PageNumberPaginator):
                params[paginator.page_param] = paginator.base_page
                if paginator.limit_param:
                    params[paginator.limit_param] = 1
            try:
                body = client.get(resource, params, page=1)
                select_records(resource, body, 1)
            except AnalyticsSyncError as exc:
                results.append(CheckResult(resource.name, False, str(exc)))
                continue
            total = lookup(body, "meta.page.total_count")
            count = f"{total:,} records" if isinstance(total, int) else "reachable"
            results.append(CheckResult(resource.name, True, f"ok: {count}"))
    return results

"""``check``: prove config, secrets, lake and API access by asking what the run will ask first.

Why the run's own first page: a check that asks for one record passes a page size the API
refuses (``page[size]`` 500), and a check that passes what the run then fails is worse than none.
Why fail fast on connection errors: an unresolvable or refusing host does not heal within a
check's patience, and retrying it resource after resource took minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from analytics_client.config.model import (
    PageNumberPaginator,
    ResourceConfig,
    SourceConfig,
    parent_of,
)
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import AnalyticsSyncError, UnreachableError
from analytics_client.core.timestamps import parse as parse_cursor
from analytics_client.http.client import ApiClient
from analytics_client.http.paginators import PageRequest, first_request
from analytics_client.read.keyset import keyset_request
from analytics_client.read.paged import check_page_size, count_at, select_records
from analytics_client.read.window import (
    Window,
    backfill,
    filtered,
    keyset_capable,
    windowed_resource,
)
from analytics_client.state.markpolicy import read_from

__all__ = ["CheckResult", "check_source", "first_page"]


@dataclass(frozen=True)
class CheckResult:
    resource: str
    ok: bool
    message: str


def first_page(resource: ResourceConfig) -> tuple[int | None, PageRequest]:
    """The page number and request of the first request a full read of ``resource`` sends.

    Built where the run builds it: an ``initial_value`` makes it the keyset walk's first
    request (``keyset_request``, from ``lag`` seconds earlier), else the paginator's first.
    """
    incremental = resource.endpoint.incremental
    paginator = resource.endpoint.paginator
    if (incremental is not None and incremental.start_param and incremental.initial_value
            and isinstance(paginator, PageNumberPaginator)):
        start = read_from(parse_cursor(incremental.initial_value), incremental)
        return paginator.base_page, keyset_request(resource, start, paginator.base_page)
    pages, request = first_request(resource)
    return pages.page, request


def _as_first_run(resource: ResourceConfig) -> ResourceConfig:
    """A lagged read's request as its first run sends it: dlt's placeholders and start_param
    filled from ``initial_value`` (less ``lag``), or left out without one (window.py)."""
    incremental = resource.endpoint.incremental
    if incremental is None or keyset_capable(resource) or not filtered(resource):
        return resource
    start = None if incremental.initial_value is None else (
        read_from(parse_cursor(incremental.initial_value), incremental))
    return windowed_resource(resource, backfill(incremental) or Window(start))


def check_source(
    config: SourceConfig, credentials: Credentials, *, transport: httpx.BaseTransport | None = None
) -> list[CheckResult]:
    """Ask each resource for the first page the run would ask for; writes nothing.

    A host that cannot be reached (DNS, refused) fails at once, and the other resources are
    not asked: they share the host.
    """
    results = []
    unreachable: str | None = None
    with ApiClient(config, credentials, transport=transport, probe=True) as client:
        for resource in config.resources:
            if unreachable is not None:
                results.append(CheckResult(resource.name, False, unreachable))
                continue
            if (parent := parent_of(resource)) is not None:
                results.append(CheckResult(resource.name, True, f"not asked: read once per "
                                           f"{parent} record during a run"))
                continue
            asked = _as_first_run(resource)
            page, request = first_page(asked)
            try:
                response = client.get_page(asked, request, page=page)
                if response.ignored:
                    results.append(CheckResult(resource.name, True,
                                               "ok: its answer is ignored by response_actions"))
                    continue
                body = response.body
                check_page_size(resource, select_records(resource, body, page), page)
            except UnreachableError as exc:
                unreachable = f"not asked: {exc.host} cannot be reached"
                results.append(CheckResult(resource.name, False, str(exc)))
                continue
            except AnalyticsSyncError as exc:
                results.append(CheckResult(resource.name, False, str(exc)))
                continue
            total = count_at(body)
            count = f"{total:,} records" if total is not None else "reachable"
            results.append(CheckResult(resource.name, True, f"ok: {count}"))
    return results

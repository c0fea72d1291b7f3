"""``check``: prove config, secrets, lake and API access by asking what the run will ask first.

Why the run's own first page: a check that asks for one record passes a page size the API
refuses (``page[size]`` 500), and a check that passes what the run then fails is worse than none.
Why fail fast on connection errors: an unresolvable or refusing host does not heal within a
check's patience, and retrying it resource after resource took minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .client import ApiClient, Params
from .config import PageNumberPaginator, ResourceConfig, SourceConfig
from .errors import AnalyticsSyncError, UnreachableError
from .extract import check_page_size, select_records
from .keyset import format_cursor, parse_cursor
from .paginators import first_request, lookup
from .secrets import Credentials

__all__ = ["CheckResult", "check_source", "first_page"]


@dataclass(frozen=True)
class CheckResult:
    resource: str
    ok: bool
    message: str


def first_page(resource: ResourceConfig) -> tuple[int | None, Params]:
    """The page number and query of the first request a full read of ``resource`` sends.

    The paginator builds it (as in every walk); an ``initial_value`` adds the cursor filter the
    keyset walk starts from, ``lag`` seconds earlier.
    """
    paginator, request = first_request(resource)
    params: Params = request.params
    incremental = resource.endpoint.incremental
    if (incremental is not None and incremental.start_param and incremental.initial_value
            and isinstance(resource.endpoint.paginator, PageNumberPaginator)):
        begin = parse_cursor(incremental.initial_value) - round(incremental.lag * 1_000_000)
        params[incremental.start_param] = format_cursor(begin)
    return paginator.page, params


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
            page, params = first_page(resource)
            try:
                body = client.get(resource, params, page=page)
                check_page_size(resource, select_records(resource, body, page), page)
            except UnreachableError as exc:
                unreachable = f"not asked: {exc.host} cannot be reached"
                results.append(CheckResult(resource.name, False, str(exc)))
                continue
            except AnalyticsSyncError as exc:
                results.append(CheckResult(resource.name, False, str(exc)))
                continue
            total = lookup(body, "meta.page.total_count")
            count = f"{total:,} records" if isinstance(total, int) else "reachable"
            results.append(CheckResult(resource.name, True, f"ok: {count}"))
    return results

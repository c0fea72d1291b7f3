"""``check``: prove config, secrets, lake and API access by asking what the run will ask first.

Why the run's own first page: a check that asks for one record passes a page size the API
refuses (``page[size]`` 500), and a check that passes what the run then fails is worse than none.
Why fail fast on connection errors: an unresolvable or refusing host does not heal within a
check's patience, and retrying it resource after resource took minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from analytics_client.config.model import PageNumberPaginator, SourceConfig
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import AnalyticsSyncError, UnreachableError
from analytics_client.core.window import Window
from analytics_client.http.client import ApiClient
from analytics_client.http.paginators import PageRequest, first_request
from analytics_client.http.template import RequestTemplate
from analytics_client.read.keyset import keyset_request
from analytics_client.read.paged import check_page_size, count_at, select_records
from analytics_client.read.plan import ResourcePlan, plan_resource
from analytics_client.read.window import windowed_request

__all__ = ["CheckResult", "check_source", "first_page"]


@dataclass(frozen=True)
class CheckResult:
    resource: str
    ok: bool
    message: str


def first_page(plan: ResourcePlan) -> tuple[int | None, RequestTemplate, PageRequest]:
    """The page number, request template and request of the first request a full read of the
    resource ``plan`` describes sends, built where the run builds it.

    A keyset walk (or its backfill) with an ``initial_value`` starts at the walk's first
    request from ``lag`` seconds before it (``keyset_request``); a lagged read fills its
    placeholders and ``start_param`` from ``initial_value`` less ``lag``, or leaves them out
    (``window.windowed_request``); else the paginator's first request.
    """
    cursor = plan.cursor
    if cursor is not None and plan.walk in ("keyset", "sliced") and cursor.initial_value:
        paginator = plan.request.paginator
        assert isinstance(paginator, PageNumberPaginator)  # a keyset walk pages by number
        start = cursor.read_from(cursor.initial_mark)
        return paginator.base_page, plan.request, keyset_request(plan, start, paginator.base_page)
    template = plan.request
    if cursor is not None and plan.walk == "lagged":
        start = None if cursor.initial_value is None else (
            cursor.read_from(cursor.initial_mark))
        template = windowed_request(plan, plan.window or Window(start))
    pages, request = first_request(template)
    return pages.page, template, request


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
            plan = plan_resource(resource, config)  # the run's own plan: its requests
            if unreachable is not None:
                results.append(CheckResult(resource.name, False, unreachable))
                continue
            if plan.parent is not None:
                results.append(CheckResult(resource.name, True, f"not asked: read once per "
                                           f"{plan.parent.name} record during a run"))
                continue
            page, asked, request = first_page(plan)
            try:
                response = client.get_page(asked, request, page=page)
                if response.ignored:
                    results.append(CheckResult(resource.name, True,
                                               "ok: its answer is ignored by response_actions"))
                    continue
                body = response.body
                check_page_size(asked, select_records(asked, body, page), page)
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

"""Extraction: the pages of one resource as lists of records, with the contract checked."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from .client import ApiClient, RetryEvent
from .config import OffsetPaginator, PageNumberPaginator, ResourceConfig
from .errors import ContractError
from .paginators import _MISSING, first_request, lookup

__all__ = ["Page", "api_count", "check_page_size", "iter_pages", "select_records"]

logger = logging.getLogger(__name__)

Page = tuple[int | None, list[Any]]  # (page number, records)


def iter_pages(
    client: ApiClient,
    resource: ResourceConfig,
    *,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> Iterator[Page]:
    """Every page of ``resource``, in order, until the paginator says stop (dlt's loop:
    send, select records, update state, next request)."""
    paginator, request = first_request(resource)
    while True:
        number = paginator.page
        response = client.get_page(resource, request, page=number, on_retry=on_retry)
        records = select_records(resource, response.body, number)
        check_page_size(resource, records, number)
        paginator.update_state(response, records)
        paginator.update_request(request)
        logger.debug("%s: %s", resource.name, paginator)
        yield number, records
        if not paginator.has_next_page:
            return


def select_records(resource: ResourceConfig, body: Any, page: int | None) -> list[Any]:
    """The list at ``data_selector``; anything else breaks the contract."""
    selector = resource.endpoint.data_selector
    where = f"page {page}" if page is not None else "the response"
    records = lookup(body, selector)
    if records is _MISSING:
        keys = ", ".join(sorted(body)[:10]) if isinstance(body, dict) else type(body).__name__
        raise ContractError(
            resource.name,
            f"{where} has no {selector!r} (found: {keys or 'nothing'}); check endpoint.data_selector",
        )
    if not isinstance(records, list):
        raise ContractError(
            resource.name,
            f"{where}: {selector!r} is {type(records).__name__}, expected a list of records",
        )
    return records


def check_page_size(resource: ResourceConfig, records: list[Any], page: int | None) -> None:
    """More records than asked for means the API ignores the page size: paging would be wrong."""
    paginator = resource.endpoint.paginator
    if isinstance(paginator, PageNumberPaginator | OffsetPaginator) \
            and paginator.limit is not None and len(records) > paginator.limit:
        raise ContractError(
            resource.name,
            f"page {page} has {len(records)} records, more than the {paginator.limit} asked for "
            f"with {paginator.limit_param!r}; check paginator.limit_param",
        )


def api_count(client: ApiClient, resource: ResourceConfig) -> int | None:
    """How many records the API counts now (``meta.page.total_count`` of a one-record page).

    One request, spent only to judge a count that did not match: whether records created
    during the read explain the difference, or rows are missing.
    """
    _, request = first_request(resource, probe=True)
    total = lookup(client.get_page(resource, request, page=None).body, "meta.page.total_count")
    return total if isinstance(total, int) and not isinstance(total, bool) else None

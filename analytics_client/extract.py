"""Extraction: the pages of one resource as lists of records, with the contract checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .client import ApiClient, RetryEvent
from .config import PageNumberPaginator, ResourceConfig
from .errors import ContractError
from .paginators import _MISSING, lookup, make_paginator

__all__ = ["Page", "api_count", "check_page_size", "iter_pages", "select_records"]

Page = tuple[int | None, list[Any]]  # (page number, records)


def iter_pages(
    client: ApiClient,
    resource: ResourceConfig,
    *,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> Iterator[Page]:
    """Every page of ``resource``, in order, until the paginator says stop."""
    paginator = make_paginator(resource.name, resource.endpoint.paginator)
    while paginator.has_next:
        number = paginator.page
        params = {**resource.endpoint.params, **paginator.request_params()}
        body = client.get(resource, params, page=number, on_retry=on_retry)
        records = select_records(resource, body, number)
        check_page_size(resource, records, number)
        paginator.update(body, records)
        yield number, records


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
    if isinstance(paginator, PageNumberPaginator) and paginator.limit is not None \
            and len(records) > paginator.limit:
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
    paginator = resource.endpoint.paginator
    params: dict[str, str | int | float | bool] = dict(resource.endpoint.params)
    if isinstance(paginator, PageNumberPaginator):
        params[paginator.page_param] = paginator.base_page
        if paginator.limit_param:
            params[paginator.limit_param] = 1
    total = lookup(client.get(resource, params, page=None), "meta.page.total_count")
    return total if isinstance(total, int) and not isinstance(total, bool) else None

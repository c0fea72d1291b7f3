"""Extraction: the pages of one resource as its paginator reads them, with the contract checked.

``iter_pages`` is dlt's loop (send, select records, update state, next request); a
``PaginatedRead`` is that loop as a ``pages.PageSource`` (no cursor, so no marks). The checks
every read applies to a response (``select_records``, ``check_page_size``) live here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from analytics_client.config.model import TOTAL_COUNT_PATH, OffsetPaginator, PageNumberPaginator
from analytics_client.core.errors import ContractError
from analytics_client.core.jsonpath import MISSING, find_records, lookup, select
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.paginators import PageResponse, first_request
from analytics_client.http.template import RequestTemplate
from analytics_client.read.pages import Page

__all__ = ["PaginatedRead", "api_count", "check_page_size", "count_at", "iter_pages",
           "select_records"]

logger = logging.getLogger(__name__)


def iter_pages(
    client: ApiClient,
    template: RequestTemplate,
    *,
    on_retry: Callable[[RetryEvent], None] | None = None,
    first: PageResponse | None = None,
) -> Iterator[Page]:
    """Every page of ``resource``, in order, until the paginator says stop (dlt's loop:
    send, select records, update state, next request). ``first``: the first request's answer,
    already in hand (not asked for again)."""
    paginator, request = first_request(template)
    while True:
        number = paginator.page
        response = first if first is not None else \
            client.get_page(template, request, page=number, on_retry=on_retry)
        first = None
        if response.ignored:  # dlt's IgnoreResponseException: the read ends, nothing from it
            return
        records = select_records(template, response.body, number)
        check_page_size(template, records, number)
        paginator.update_state(response, records)
        paginator.update_request(request)
        logger.debug("%s: %s", template.resource, paginator)
        if not paginator.discard:
            yield Page(records, number)
        if not paginator.has_next_page:
            return


class PaginatedRead:
    """A read driven by the resource's paginator alone: every page, no cursor, no marks."""

    keyset = False
    served_everything = False  # a read without a cursor: ``_read_start`` says it is everything
    total_count: int | None = None
    reread = 0
    recovered = 0

    def __init__(self, client: ApiClient, template: RequestTemplate, *,
                 on_retry: Callable[[RetryEvent], None] | None = None) -> None:
        self.client, self.template, self.on_retry = client, template, on_retry

    def __iter__(self) -> Iterator[Page]:
        return iter_pages(self.client, self.template, on_retry=self.on_retry)

    def end_mark(self) -> int | None:
        return None


def select_records(template: RequestTemplate, body: Any, page: int | None) -> list[Any]:
    """The records at ``data_selector`` (JSONPath, read as dlt does, ``core.jsonpath.select``);
    a dotted path that is missing or holds neither a list nor null breaks the contract (a null
    is an empty page, dlt's reading: dlt-hub/dlt#2932, an API's last page). Without a
    ``data_selector``, the records dlt's detection finds (``core.jsonpath.find_records``)."""
    selector = template.data_selector
    if selector is None:  # omitted: dlt's detection (core.jsonpath.find_records)
        return find_records(body)
    where = f"page {page}" if page is not None else "the response"
    records = select(body, selector)
    if records is MISSING:
        keys = ", ".join(sorted(body)[:10]) if isinstance(body, dict) else type(body).__name__
        raise ContractError(
            template.resource,
            f"{where} has no {selector!r} (found: {keys or 'nothing'}); "
            "check endpoint.data_selector",
        )
    if records is None:
        return []  # the paginator judges an empty page: an end, or a contradiction it names
    if not isinstance(records, list):
        raise ContractError(
            template.resource,
            f"{where}: {selector!r} is {type(records).__name__}, expected a list of records",
        )
    return records


def check_page_size(template: RequestTemplate, records: list[Any], page: int | None) -> None:
    """More records than asked for means the API ignores the page size: paging would be wrong."""
    paginator = template.paginator
    if isinstance(paginator, PageNumberPaginator | OffsetPaginator) \
            and paginator.limit is not None and len(records) > paginator.limit:
        raise ContractError(
            template.resource,
            f"page {page} has {len(records)} records, more than the {paginator.limit} asked for "
            f"with {paginator.limit_param or getattr(paginator, 'limit_body_path', None)!r}; "
            "check paginator.limit_param",
        )


def api_count(client: ApiClient, template: RequestTemplate) -> int | None:
    """How many records the API counts now (``TOTAL_COUNT_PATH`` of a one-record page).

    One request, spent only to judge a count that did not match: whether records created
    during the read explain the difference, or rows are missing.
    """
    _, request = first_request(template, probe=True)
    return count_at(client.get_page(template, request, page=None).body)


def count_at(body: Any) -> int | None:
    """The API's record count in a response body (``TOTAL_COUNT_PATH``), None if it has none."""
    total = lookup(body, TOTAL_COUNT_PATH)
    return total if isinstance(total, int) and not isinstance(total, bool) else None

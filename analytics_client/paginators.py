"""Paginators: which page to ask for next, and when to stop.

Each request is built here from the page number, never from ``links.next``: a server's next link
may drop our filter or sort. While the stop signals agree, paging stops on the first of: an empty
page, ``links.next: null``, ``total_pages`` reached, ``maximum_page`` reached. A short page alone
ends paging only when the API gives neither totals nor links, because a page one record short
mid-stream is a known way to lose rows. A page identical to the previous one means the API ignores
the page parameter: we fail instead of looping forever.

Real servers send signals that contradict each other (stale or zero ``total_pages``, an empty page
mid-stream while ``links.next`` says more, as the trackers of dlt, Airbyte and the Singer SDK
record). Trusting any one of them then finishes "ok" with rows missing. So once two signals
disagree, none of them alone ends the read: paging goes on until an empty page arrives whose
``links.next`` (if the API sends links) is null. An empty page whose ``links.next`` says more is
asked for again, and the read fails naming the conflict when it stays empty ``MAX_EMPTY_PAGES``
times. Only ``maximum_page``, the user's own cap, still ends it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

from .config import PageNumberPaginator as PageNumberConfig
from .config import SinglePagePaginator as SinglePageConfig
from .errors import ContractError, PaginationLoopError

__all__ = ["PageNumberPaginator", "Paginator", "SinglePagePaginator", "lookup", "make_paginator",
           "page_signals"]

logger = logging.getLogger(__name__)


class Paginator(Protocol):
    page: int | None
    has_next: bool

    def request_params(self) -> dict[str, int]: ...

    def update(self, body: Any, records: list[Any]) -> None: ...


_MISSING = object()
MAX_EMPTY_PAGES = 3  # answers of one empty page claiming more before the read fails


def lookup(body: Any, dotted: str) -> Any:
    """The value at a dotted path (``meta.page.total_pages``), or ``_MISSING``."""
    node = body
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def page_signals(body: Any, total_path: str | None) -> tuple[int | None, Any]:
    """What a page says about the end: total pages (None if absent), ``links.next``
    (``_MISSING`` if there are no links)."""
    total = lookup(body, total_path) if total_path else _MISSING
    links = body.get("links") if isinstance(body, dict) else None
    next_link = links.get("next", _MISSING) if isinstance(links, dict) else _MISSING
    return (total if isinstance(total, int) and not isinstance(total, bool) else None), next_link


class PageNumberPaginator:
    def __init__(self, resource: str, config: PageNumberConfig) -> None:
        self.resource = resource
        self.config = config
        self.page: int | None = config.base_page
        self.has_next = True
        self.total_pages: int | None = None
        self.conflict: str | None = None  # the first contradiction seen; then only agreement stops
        self._empty_claiming_more = 0
        self._last_fingerprint: bytes | None = None

    def request_params(self) -> dict[str, int]:
        assert self.page is not None
        params = {self.config.page_param: self.page}
        if self.config.limit is not None and self.config.limit_param:
            params[self.config.limit_param] = self.config.limit
        return params

    def update(self, body: Any, records: list[Any]) -> None:
        assert self.page is not None
        self._check_not_repeated(records)
        pages_read = self.page - self.config.base_page + 1
        total, next_link = page_signals(body, self.config.total_path)
        if total is not None:
            self.total_pages = total
        if self.config.maximum_page is not None and self.page >= self.config.maximum_page:
            self.has_next = False
            return
        conflict = _contradiction(self.page, pages_read, bool(records), total, next_link)
        if conflict is not None and self.conflict is None:
            self.conflict = conflict
            logger.warning("%s: %s; reading on until an empty page and links.next: null agree",
                           self.resource, conflict)
        if self.conflict is not None:
            self._after_conflict(records, next_link)
            return
        if (
            not records
            or (total is not None and pages_read >= total)
            or (next_link is None)
            or (total is None and next_link is _MISSING and self._short(records))
        ):
            self.has_next = False
            return
        self.page += 1

    def _after_conflict(self, records: list[Any], next_link: Any) -> None:
        """Once signals disagree: stop only on an empty page ``links.next`` does not contradict.

        An empty page whose ``links.next`` still points on is asked for again: skipping it would
        skip its records, and a server that lost them for one response usually serves them on
        the next. Empty ``MAX_EMPTY_PAGES`` times in a row, it fails the read.
        """
        assert self.page is not None
        if records:
            self._empty_claiming_more = 0
        elif next_link is None or next_link is _MISSING:
            self.has_next = False
            return
        else:
            self._empty_claiming_more += 1
            if self._empty_claiming_more >= MAX_EMPTY_PAGES:
                raise ContractError(
                    self.resource,
                    f"page {self.page} came back empty {MAX_EMPTY_PAGES} times in a row while "
                    f"links.next says there is more ({self.conflict}): the API's stop signals "
                    "contradict each other, so the read cannot tell it is complete, and skipping "
                    "the page would skip its records. Run again later, or report it to the API's "
                    "owner",
                )
            return  # the same page again
        self.page += 1

    def _short(self, records: list[Any]) -> bool:
        return self.config.limit is not None and len(records) < self.config.limit

    def _check_not_repeated(self, records: list[Any]) -> None:
        """Two identical non-empty pages in a row: the API ignores the page parameter."""
        if not records:
            return
        fingerprint = hashlib.blake2b(
            json.dumps(records, sort_keys=True, default=str).encode(), digest_size=16
        ).digest()
        if fingerprint == self._last_fingerprint:
            raise PaginationLoopError(
                self.resource,
                f"page {self.page} has exactly the records of page {self.page - 1}: the API seems "
                f"to ignore {self.config.page_param!r}; check paginator.page_param",
            )
        self._last_fingerprint = fingerprint

    def __str__(self) -> str:
        total = f" of {self.total_pages}" if self.total_pages is not None else ""
        return f"page {self.page}{total}"


def _contradiction(page: int, pages_read: int, has_records: bool, total: int | None,
                   next_link: Any) -> str | None:
    """What the signals of one page disagree about, or None when they agree."""
    more_by_total = total is not None and pages_read < total
    if has_records and total is not None and pages_read > total:
        return f"page {page} has records but total_pages says {total}"
    if not has_records and more_by_total:
        return f"page {page} is empty but total_pages says {total}"
    if not has_records and isinstance(next_link, str):
        return f"page {page} is empty but links.next says there is more"
    if has_records and next_link is None and more_by_total:
        return f"links.next is null on page {page} but total_pages says {total}"
    if has_records and total is not None and pages_read >= total and isinstance(next_link, str):
        return f"total_pages says {total} but page {page} has links.next"
    return None


class SinglePagePaginator:
    def __init__(self, resource: str, config: SinglePageConfig) -> None:
        self.resource = resource
        self.page: int | None = None
        self.has_next = True

    def request_params(self) -> dict[str, int]:
        return {}

    def update(self, body: Any, records: list[Any]) -> None:
        self.has_next = False

    def __str__(self) -> str:
        return "single page"


def make_paginator(resource: str, config: PageNumberConfig | SinglePageConfig) -> Paginator:
    if isinstance(config, PageNumberConfig):
        return PageNumberPaginator(resource, config)
    return SinglePagePaginator(resource, config)

"""Paginators: which page to ask for next, and when to stop.

Each request is built here from the page number, never from ``links.next``: a server's next link
may drop our filter or sort. Paging stops on the first of: an empty page, ``links.next: null``,
``total_pages`` reached, ``maximum_page`` reached. A short page alone ends paging only when the API
gives neither totals nor links, because a page one record short mid-stream is a known way to lose
rows. A page identical to the previous one means the API ignores the page parameter: we fail
instead of looping forever.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from .config import PageNumberPaginator as PageNumberConfig
from .config import SinglePagePaginator as SinglePageConfig
from .errors import PaginationLoopError

__all__ = ["PageNumberPaginator", "Paginator", "SinglePagePaginator", "lookup", "make_paginator",
           "page_signals"]


class Paginator(Protocol):
    page: int | None
    has_next: bool

    def request_params(self) -> dict[str, int]: ...

    def update(self, body: Any, records: list[Any]) -> None: ...


_MISSING = object()


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
        if (
            not records
            or (self.config.maximum_page is not None and self.page >= self.config.maximum_page)
            or (total is not None and pages_read >= total)
            or (next_link is None)
            or (total is None and next_link is _MISSING and self._short(records))
        ):
            self.has_next = False
            return
        self.page += 1

    def _short(self, records: list[Any]) -> bool:
        return self.config.limit is not None and len(records) < self.config.limit

    def _check_not_repeated(self, records: list[Any]) -> None:
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

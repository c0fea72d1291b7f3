"""Paginators whose next page the server names: a cursor (in the body or a header) or a URL
(in the body or the ``Link`` header): dlt's ``cursor``, ``header_cursor``, ``json_link`` and
``header_link``. Their guards (a reference followed twice, empty runs) are in
``_ReferencePaginator``; ``http/paginators.py`` has the overview.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from analytics_client.config.model import CursorPaginator as CursorConfig
from analytics_client.config.model import HeaderCursorPaginator as HeaderCursorConfig
from analytics_client.config.model import HeaderLinkPaginator as HeaderLinkConfig
from analytics_client.config.model import JSONLinkPaginator as JSONLinkConfig
from analytics_client.core.errors import ContractError, PaginationLoopError
from analytics_client.core.jsonpath import MISSING, lookup
from analytics_client.http.link_header import link_values, next_link
from analytics_client.http.paging import (
    EMPTY_RUN_LIMIT,
    BasePaginator,
    PageRequest,
    PageResponse,
    put_value,
    read_has_more,
    register_paginator,
)

__all__ = ["HeaderCursorPaginator", "HeaderLinkPaginator", "JSONLinkPaginator",
           "JSONResponseCursorPaginator"]


class _ReferencePaginator(BasePaginator):
    """A paginator whose next page is named by the server (a cursor or a URL).

    Every reference of the read is remembered: a server that names one twice would otherwise
    be followed round its cycle forever (meltano's SDK and dlt's trackers both record it). An
    empty page naming a fresh reference is followed, but ``EMPTY_RUN_LIMIT`` of them in a row
    fail the read: a server that always names a next page ends no other way.
    """

    key: ClassVar[str] = ""  # the config key that names where the reference is read

    def __init__(self, resource: str) -> None:
        super().__init__(resource)
        self.next_reference: str | None = None
        self._seen: set[str] = set()
        self._empty_run = 0

    def _follow(self, reference: str | None, what: str, *, empty: bool = False,
                body: Any = None, heeded: str | None = None) -> None:
        if reference is None:
            self.next_reference = None
            self._end(body, f"{what} is missing or null", heeded=heeded)
            return
        self._empty_run = self._empty_run + 1 if empty else 0
        if reference in self._seen:
            hint = (" A page that is empty and names a cursor already followed usually means "
                    "the API has no more: set paginator.stop_after_empty_page: true"
                    if empty and self.key == "cursor_path" else "")
            raise PaginationLoopError(
                self.resource,
                f"page {self.page} names {what} {_shown(reference)} that this read already "
                f"followed: the server pages in a circle; check paginator.{self.key} (a read "
                f"that went on would never end).{hint}",
            )
        if self._empty_run >= EMPTY_RUN_LIMIT:
            raise ContractError(
                self.resource,
                f"{EMPTY_RUN_LIMIT} empty pages in a row, each naming a new {what}: the API "
                "never says the end, so the read would not end. If an empty page means the API "
                "has no more (an events feed that has caught up), set "
                "paginator.stop_after_empty_page: true"
                + ("" if self.key == "cursor_path" else
                   " (a cursor paginator's key; for links, report it to the API's owner)"),
            )
        self._seen.add(reference)
        self.next_reference = reference
        self.page = (self.page or 0) + 1


def _shown(reference: str) -> str:
    """A reference for a message: a URL without its query values (they may echo a key)."""
    if "://" not in reference and not reference.startswith("/"):
        return repr(reference[:60])
    url = httpx.URL(reference)
    names = "&".join(f"{k}=…" for k in dict.fromkeys(url.params.keys()))
    return repr(f"{url.copy_with(query=None)}{'?' + names if names else ''}")


@register_paginator
class JSONResponseCursorPaginator(_ReferencePaginator):
    """dlt's ``cursor``: the cursor at ``cursor_path`` (JSONPath, first match) goes back as
    ``cursor_param`` (or at ``cursor_body_path`` of the JSON body).

    The first request carries no cursor. As in dlt: a missing, null or empty cursor ends the
    read, so does ``has_more_path`` false, and with ``stop_after_empty_page`` an empty page.
    Ours: ``has_more`` true with no cursor, or on an empty page that ends the read, fails
    naming it; so does a has-more flag the config does not read (``more_signal``).
    """

    type_names = ("cursor", "json_response_cursor")
    key = "cursor_path"

    def __init__(self, resource: str, config: CursorConfig) -> None:
        super().__init__(resource)
        self.config = config

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        value = lookup(response.body, self.config.cursor_path)
        if value is MISSING or value is None or value == "" or value is False:
            reference = None
        elif isinstance(value, str | int) and not isinstance(value, bool):
            reference = str(value)
        else:
            raise ContractError(
                self.resource,
                f"page {self.page}: the cursor at {self.config.cursor_path!r} is "
                f"{type(value).__name__}, not a string or number; check paginator.cursor_path",
            )
        has_more = (read_has_more(self.resource, response.body, self.config.has_more_path,
                                  self.page, empty=not data)
                    if self.config.has_more_path else None)
        what = f"cursor at {self.config.cursor_path!r}"
        if has_more is True and (reference is None
                                 or (not data and self.config.stop_after_empty_page)):
            why = "no cursor" if reference is None else "an empty page (stop_after_empty_page)"
            raise ContractError(
                self.resource,
                f"page {self.page}: {self.config.has_more_path!r} says there is more, but the "
                f"read would stop here ({why}): rows would be missing; check "
                "paginator.cursor_path (a JSONPath such as 'data[-1].id' for the last record's "
                "id) and paginator.stop_after_empty_page",
            )
        if has_more is False:
            self.next_reference = None
            self._has_next_page = False
            return
        if self.config.stop_after_empty_page and not data:
            self.next_reference = None
            self._end(response.body, "an empty page (stop_after_empty_page)",
                      heeded=self.config.has_more_path)
            return
        self._follow(reference, what, empty=not data, body=response.body,
                     heeded=self.config.has_more_path)

    def update_request(self, request: PageRequest) -> None:
        if self.next_reference is not None:
            put_value(request, self.config.cursor_param, self.config.cursor_body_path,
                 self.next_reference, self.resource)

    def __str__(self) -> str:
        where = self.config.cursor_param or self.config.cursor_body_path
        return f"cursor page {self.page} ({where}={self.next_reference!r})"


@register_paginator
class HeaderCursorPaginator(_ReferencePaginator):
    """dlt's ``header_cursor``: the cursor in the response header ``cursor_key`` goes back as
    the query parameter ``cursor_param``; no header ends the read."""

    type_names = ("header_cursor",)
    key = "cursor_key"

    def __init__(self, resource: str, config: HeaderCursorConfig) -> None:
        super().__init__(resource)
        self.config = config

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        value = _header(response.headers, self.config.cursor_key)
        self._follow(value or None, f"cursor in header {self.config.cursor_key!r}",
                     empty=not data, body=response.body)

    def update_request(self, request: PageRequest) -> None:
        if self.next_reference is not None:
            request.params[self.config.cursor_param] = self.next_reference

    def __str__(self) -> str:
        return f"header_cursor page {self.page} ({self.config.cursor_param}=" \
               f"{self.next_reference!r})"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name (HTTP field names are, RFC 9110 §5.1)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value.strip() if isinstance(value, str) else None


class _NextUrlPaginator(_ReferencePaginator):
    """Follows a URL the server gives; relative ones are resolved against the page's URL
    (RFC 3986 §5, as dlt's ``BaseNextUrlPaginator``). Only http(s) URLs are followed."""

    def _follow_url(self, value: Any, what: str, response: PageResponse, *,
                    empty: bool) -> None:
        if value is MISSING or value is None or value == "":
            self._follow(None, what, body=response.body)
            return
        if not isinstance(value, str):
            raise ContractError(
                self.resource,
                f"page {self.page}: the next URL at {what} is {type(value).__name__}, not a "
                f"string; check paginator.{self.key}",
            )
        try:
            url = httpx.URL(response.url).join(value.strip()) if response.url else \
                httpx.URL(value.strip())
        except httpx.InvalidURL as exc:
            raise ContractError(
                self.resource,
                f"page {self.page}: the next URL at {what} is not a URL ({exc}); check "
                f"paginator.{self.key}",
            ) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ContractError(
                self.resource,
                f"page {self.page}: the next URL at {what} is not an http(s) URL "
                f"({_shown(str(url))}); check paginator.{self.key}",
            )
        if not self._seen and response.url:
            self._seen.add(str(httpx.URL(response.url)))  # the first page, built by us
        self._follow(str(url), f"the next URL at {what}", empty=empty, body=response.body)

    def update_request(self, request: PageRequest) -> None:
        if self.next_reference is not None:
            request.url = self.next_reference
            request.params = {}


@register_paginator
class JSONLinkPaginator(_NextUrlPaginator):
    """dlt's ``json_link``: the next page's URL at ``next_url_path`` in the body."""

    type_names = ("json_link", "json_response")
    key = "next_url_path"

    def __init__(self, resource: str, config: JSONLinkConfig) -> None:
        super().__init__(resource)
        self.config = config

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        self._follow_url(lookup(response.body, self.config.next_url_path),
                         repr(self.config.next_url_path), response, empty=not data)

    def __str__(self) -> str:
        return f"json_link page {self.page}"


@register_paginator
class HeaderLinkPaginator(_NextUrlPaginator):
    """dlt's ``header_link``: the ``Link`` header's target whose relation is
    ``links_next_key`` (RFC 8288; GitHub's API pages this way)."""

    type_names = ("header_link",)
    key = "links_next_key"

    def __init__(self, resource: str, config: HeaderLinkConfig) -> None:
        super().__init__(resource)
        self.config = config

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        target = next_link(link_values(response.headers), self.config.links_next_key)
        self._follow_url(MISSING if target is None else target,
                         f'the Link header (rel="{self.config.links_next_key}")', response,
                         empty=not data)

    def __str__(self) -> str:
        return f"header_link page {self.page}"

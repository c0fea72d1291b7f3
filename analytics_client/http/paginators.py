"""Paginators: which request comes next, and when to stop, behind dlt's small contract.

A paginator is built per read from its config (``make_paginator``, a registry by ``type`` name
as dlt's ``PAGINATOR_MAP``) and driven by one short loop (``read/paged.py``: ``iter_pages``)::

    request = first_request(template)        # the template's params + init_request
    while True:
        response = client.get_page(template, request)
        paginator.update_state(response, records)
        paginator.update_request(request)
        if not paginator.has_next_page: break

The contract is dlt's ``BasePaginator`` (``init_request``, ``update_state(response, data)``,
``update_request(request)``, ``has_next_page``, ``__str__`` for logs), so a paginator reads like
its dlt namesake; names, defaults and meanings of the config keys are dlt's
(https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/basic#pagination). Where we
differ it is to fail instead of finishing "ok" with rows missing or running forever:

* **Loop guard.** The same page (page number, offset), cursor or next URL twice is a
  ``PaginationLoopError``, not a hang: cursors and URLs are remembered for the whole read, so a
  cycle of any length is caught.
* **Credentials stay home.** A next URL is followed only on the scheme, host and port of
  ``client.base_url``; anything else is a ``ForeignHostError`` (the client checks it before a
  request is built, see ``client.py``). We refuse rather than drop the credentials: an API that
  pages onto another host answers 401 there anyway, and a refusal names the problem.
* **Page number.** Each request is built here from the page number, never from ``links.next``:
  a server's next link may drop our filter or sort. While the stop signals agree, paging stops
  on the first of: an empty page, ``links.next: null``, ``total_pages`` reached,
  ``maximum_page`` reached. A short page alone ends paging only when the API gives neither
  totals nor links, because a page one record short mid-stream is a known way to lose rows.

Real servers send signals that contradict each other (stale or zero ``total_pages``, an empty
page mid-stream while ``links.next`` says more, as the trackers of dlt, Airbyte and the Singer
SDK record). Trusting any one of them then finishes "ok" with rows missing. So once two signals
disagree, none of them alone ends a page-number read: paging goes on until an empty page
arrives whose ``links.next`` (if the API sends links) is null. An empty page whose ``links.next``
says more is asked for again, and the read fails naming the conflict when it stays empty
``MAX_EMPTY_PAGES`` times. Only ``maximum_page``, the user's own cap, still ends it.

What each paginator guarantees when records change during a read: docs/pagination.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from analytics_client.config.model import AutoPaginator as AutoConfig
from analytics_client.config.model import CursorPaginator as CursorConfig
from analytics_client.config.model import HeaderLinkPaginator as HeaderLinkConfig
from analytics_client.config.model import JSONLinkPaginator as JSONLinkConfig
from analytics_client.config.model import OffsetPaginator as OffsetConfig
from analytics_client.config.model import PageNumberPaginator as PageNumberConfig
from analytics_client.config.model import SinglePagePaginator as SinglePageConfig
from analytics_client.core.errors import ContractError, PaginationLoopError
from analytics_client.core.jsonpath import MISSING, lookup
from analytics_client.http.link_header import link_values, next_link

if TYPE_CHECKING:
    from analytics_client.http.template import RequestTemplate

__all__ = [
    "PAGINATORS",
    "AutoDetectPaginator",
    "BasePaginator",
    "HeaderLinkPaginator",
    "JSONLinkPaginator",
    "JSONResponseCursorPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "PageResponse",
    "SinglePagePaginator",
    "first_request",
    "make_paginator",
    "page_number_params",
    "page_signals",
    "register_paginator",
]

logger = logging.getLogger(__name__)

Params = dict[str, str | int | float | bool]
MAX_EMPTY_PAGES = 3  # answers of one empty page claiming more before the read fails


@dataclass
class PageRequest:
    """The next request of a read: the endpoint's path with ``params``, or ``url``.

    ``url`` is an absolute URL a server gave (a next link); when set it replaces the path and
    every parameter, as dlt's link paginators do (the link carries the query the server wants);
    the method and body stay the template's (``json`` as this request holds it).
    """

    params: Params = field(default_factory=dict)
    url: str | None = None
    # The JSON body of this request (a POST's, dlt's ``json``): a copy of the template's, so a
    # paginator that pages in the body (dlt's ``*_body_path`` keys) writes its values here.
    # None: the template's body (``RequestTemplate.json``) is sent as it is.
    json: Any = None


@dataclass(frozen=True)
class PageResponse:
    """What a paginator may look at: the parsed body, the headers, and the URL asked for
    (without credentials), against which a relative next link is resolved."""

    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    # A response_actions "ignore" matched (responses.py): no records, and the read ends here.
    ignored: bool = False


def page_signals(body: Any, total_path: str | None) -> tuple[int | None, Any]:
    """What a page says about the end: total pages (None if absent), ``links.next``
    (``MISSING`` if there are no links)."""
    total = lookup(body, total_path) if total_path else MISSING
    links = body.get("links") if isinstance(body, dict) else None
    next_link_ = links.get("next", MISSING) if isinstance(links, dict) else MISSING
    return (total if isinstance(total, int) and not isinstance(total, bool) else None), next_link_


def _fingerprint(records: list[Any]) -> bytes:
    return hashlib.blake2b(json.dumps(records, sort_keys=True, default=str).encode(),
                           digest_size=16).digest()


class BasePaginator(ABC):
    """dlt's paginator contract, plus the resource name every error must carry.

    ``page`` labels the next page in logs and errors: the page number for ``page_number``,
    else the 1-based count of pages asked for (None for ``single_page``).
    """

    type_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self._has_next_page = True
        self.page: int | None = 1

    @property
    def has_next_page(self) -> bool:
        return self._has_next_page

    def init_request(self, request: PageRequest) -> None:  # noqa: B027 - optional, as dlt's
        """Set what the first request needs (page 1, offset 0, the page size)."""

    def probe(self, request: PageRequest) -> None:  # noqa: B027 - optional
        """Shrink a first request to one record, where the paginator sets a page size
        (``check`` and count probes spend one small request, not a full page)."""

    @abstractmethod
    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        """Read the end signals and the next reference from a page."""

    @abstractmethod
    def update_request(self, request: PageRequest) -> None:
        """Turn ``request`` into the next page's request."""

    def __str__(self) -> str:
        return f"{self.type_names[0] if self.type_names else type(self).__name__} page {self.page}"


PAGINATORS: dict[str, type[BasePaginator]] = {}


def register_paginator(cls: type[BasePaginator]) -> type[BasePaginator]:
    """Add a paginator class to the registry under each of its ``type_names`` (dlt's
    ``register_paginator``). Its config model must be in ``config.Paginator`` too."""
    for name in cls.type_names:
        PAGINATORS[name] = cls
    return cls


def make_paginator(resource: str, config: Any) -> BasePaginator:
    """A fresh paginator for one read of ``resource``, by the config's ``type``."""
    try:
        cls = PAGINATORS[config.type]
    except KeyError:
        raise ContractError(resource, f"no paginator registered for type {config.type!r}; "
                            f"known: {', '.join(sorted(PAGINATORS))}") from None
    return cls(resource, config)  # type: ignore[call-arg]


def first_request(template: RequestTemplate, *, probe: bool = False) -> tuple[BasePaginator,
                                                                             PageRequest]:
    """The paginator of a read and its first request: the template's params plus what the
    paginator's ``init_request`` adds; with ``probe``, asking for one record where it can."""
    paginator = make_paginator(template.resource, template.paginator)
    request = PageRequest(dict(template.params), json=copy.deepcopy(template.json))
    paginator.init_request(request)
    if probe:
        paginator.probe(request)
    return paginator, request


# -- numbered pages ------------------------------------------------------------------------


def page_number_params(config: PageNumberConfig, page: int, limit: int | None = None) -> Params:
    """The query of page ``page`` (the one builder every page-number walk uses)."""
    params: Params = {config.page_param: page}
    size = limit if limit is not None else config.limit
    if size is not None and config.limit_param:
        params[config.limit_param] = size
    return params


@register_paginator
class PageNumberPaginator(BasePaginator):
    """dlt's ``page_number`` with the contract's defaults (see the module docstring)."""

    type_names = ("page_number",)

    def __init__(self, resource: str, config: PageNumberConfig) -> None:
        super().__init__(resource)
        self.config = config
        self.page = config.base_page
        self.total_pages: int | None = None
        self.conflict: str | None = None  # the first contradiction seen; then only agreement stops
        self._empty_claiming_more = 0
        self._last_fingerprint: bytes | None = None

    @property
    def has_next(self) -> bool:
        return self._has_next_page

    def init_request(self, request: PageRequest) -> None:
        self.update_request(request)

    def probe(self, request: PageRequest) -> None:
        request.params.update(page_number_params(self.config, self.config.base_page, limit=1))

    def page_request(self, params: Mapping[str, Any], page: int, *,
                     limit: int | None = None) -> PageRequest:
        """The request of page ``page`` over ``params`` (the endpoint's): how a keyset walk, a
        slice probe (``limit=1``) and ``check`` ask for a page, as this read loop does."""
        self.page = page
        return PageRequest({**params, **page_number_params(self.config, page, limit)})

    def update_request(self, request: PageRequest) -> None:
        assert self.page is not None
        request.params.update(page_number_params(self.config, self.page))

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        assert self.page is not None
        records = data
        self._check_not_repeated(records)
        pages_read = self.page - self.config.base_page + 1
        total, next_link_ = page_signals(response.body, self.config.total_path)
        if total is not None:
            self.total_pages = total
        if self.config.maximum_page is not None and self.page >= self.config.maximum_page:
            self._has_next_page = False
            return
        conflict = _contradiction(self.page, pages_read, bool(records), total, next_link_)
        if conflict is not None and self.conflict is None:
            self.conflict = conflict
            logger.warning("%s: %s; reading on until an empty page and links.next: null agree",
                           self.resource, conflict)
        if self.conflict is not None:
            self._after_conflict(records, next_link_)
            return
        if (
            not records
            or (total is not None and pages_read >= total)
            or (next_link_ is None)
            or (total is None and next_link_ is MISSING and self._short(records))
        ):
            self._has_next_page = False
            return
        self.page += 1

    def _after_conflict(self, records: list[Any], next_link_: Any) -> None:
        """Once signals disagree: stop only on an empty page ``links.next`` does not contradict.

        An empty page whose ``links.next`` still points on is asked for again: skipping it would
        skip its records, and a server that lost them for one response usually serves them on
        the next. Empty ``MAX_EMPTY_PAGES`` times in a row, it fails the read.
        """
        assert self.page is not None
        if records:
            self._empty_claiming_more = 0
        elif next_link_ is None or next_link_ is MISSING:
            self._has_next_page = False
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
        fingerprint = _fingerprint(records)
        if fingerprint == self._last_fingerprint:
            assert self.page is not None
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
                   next_link_: Any) -> str | None:
    """What the signals of one page disagree about, or None when they agree."""
    more_by_total = total is not None and pages_read < total
    if has_records and total is not None and pages_read > total:
        return f"page {page} has records but total_pages says {total}"
    if not has_records and more_by_total:
        return f"page {page} is empty but total_pages says {total}"
    if not has_records and isinstance(next_link_, str):
        return f"page {page} is empty but links.next says there is more"
    if has_records and next_link_ is None and more_by_total:
        return f"links.next is null on page {page} but total_pages says {total}"
    if has_records and total is not None and pages_read >= total and isinstance(next_link_, str):
        return f"total_pages says {total} but page {page} has links.next"
    return None


@register_paginator
class SinglePagePaginator(BasePaginator):
    """One request, no paging (dlt's ``single_page``)."""

    type_names = ("single_page",)

    def __init__(self, resource: str, config: SinglePageConfig | None = None) -> None:
        super().__init__(resource)
        self.page = None

    @property
    def has_next(self) -> bool:
        return self._has_next_page

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        self._has_next_page = False

    def update_request(self, request: PageRequest) -> None:
        return

    def __str__(self) -> str:
        return "single page"


@register_paginator
class OffsetPaginator(BasePaginator):
    """dlt's ``offset``: ``offset`` grows by ``limit`` after each page.

    Stops, as dlt does, on an empty page (``stop_after_empty_page``), on ``offset`` reaching the
    total at ``total_path`` or ``maximum_offset``. Ours: without a total (``total_path: null``)
    a page shorter than ``limit`` also ends the read (dlt asks once more for an empty page);
    a configured ``total_path`` missing from a page is a contract error, as in dlt, because
    guessing would end the read early or never. A page with exactly the previous page's
    records means the API ignores ``offset_param``: a ``PaginationLoopError``.
    """

    type_names = ("offset",)

    def __init__(self, resource: str, config: OffsetConfig) -> None:
        super().__init__(resource)
        self.config = config
        self.offset = config.offset
        self.total: int | None = None
        self._last_fingerprint: bytes | None = None

    def init_request(self, request: PageRequest) -> None:
        self.offset = self.config.offset
        self.update_request(request)

    def probe(self, request: PageRequest) -> None:
        request.params[self.config.limit_param] = 1

    def update_request(self, request: PageRequest) -> None:
        request.params[self.config.offset_param] = self.offset
        request.params[self.config.limit_param] = self.config.limit

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        if data:
            fingerprint = _fingerprint(data)
            if fingerprint == self._last_fingerprint:
                raise PaginationLoopError(
                    self.resource,
                    f"the page at {self.config.offset_param}={self.offset} has exactly the records "
                    f"of the page before it: the API seems to ignore {self.config.offset_param!r};"
                    " check paginator.offset_param",
                )
            self._last_fingerprint = fingerprint
        if self.config.stop_after_empty_page and not data:
            self._has_next_page = False
            return
        total = self._total(response.body)
        self.offset += self.config.limit
        self.page = (self.page or 0) + 1
        if (total is not None and self.offset >= total) or (
            self.config.maximum_offset is not None and self.offset >= self.config.maximum_offset
        ) or (self.config.total_path is None and len(data) < self.config.limit):
            self._has_next_page = False

    def _total(self, body: Any) -> int | None:
        if self.config.total_path is None:
            return None
        value = lookup(body, self.config.total_path)
        if value is MISSING or value is None or isinstance(value, bool) \
                or not isinstance(value, int | str):
            found = "nothing" if value is MISSING else type(value).__name__
            raise ContractError(
                self.resource,
                f"page {self.page} has no total at {self.config.total_path!r} (found {found}); "
                "check paginator.total_path, or set it to null when the API sends no total",
            )
        try:
            self.total = int(value)
        except ValueError:
            raise ContractError(
                self.resource,
                f"the total at {self.config.total_path!r} is {value!r}, not an integer; check "
                "paginator.total_path",
            ) from None
        return self.total

    def __str__(self) -> str:
        total = f" of {self.total}" if self.total is not None else ""
        return f"offset {self.offset}{total} (limit {self.config.limit})"


class _ReferencePaginator(BasePaginator):
    """A paginator whose next page is named by the server (a cursor or a URL).

    Every reference of the read is remembered: a server that names one twice would otherwise
    be followed round its cycle forever (meltano's SDK and dlt's trackers both record it).
    """

    key: ClassVar[str] = ""  # the config key that names where the reference is read

    def __init__(self, resource: str) -> None:
        super().__init__(resource)
        self.next_reference: str | None = None
        self._seen: set[str] = set()

    def _follow(self, reference: str | None, what: str) -> None:
        if reference is None:
            self._has_next_page = False
            self.next_reference = None
            return
        if reference in self._seen:
            raise PaginationLoopError(
                self.resource,
                f"page {self.page} names {what} {_shown(reference)} that this read already "
                f"followed: the server pages in a circle; check paginator.{self.key} (a read "
                "that went on would never end)",
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
    """dlt's ``cursor``: the cursor at ``cursor_path`` goes back as ``cursor_param``.

    The first request carries no cursor. A missing, null or empty cursor ends the read (dlt's
    rule); with ``stop_after_empty_page`` so does an empty page.
    """

    type_names = ("cursor", "json_response_cursor")
    key = "cursor_path"

    def __init__(self, resource: str, config: CursorConfig) -> None:
        super().__init__(resource)
        self.config = config

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        value = lookup(response.body, self.config.cursor_path)
        if value is MISSING or value is None or value == "":
            reference = None
        elif isinstance(value, str | int) and not isinstance(value, bool):
            reference = str(value)
        else:
            raise ContractError(
                self.resource,
                f"page {self.page}: the cursor at {self.config.cursor_path!r} is "
                f"{type(value).__name__}, not a string or number; check paginator.cursor_path",
            )
        if self.config.stop_after_empty_page and not data:
            reference = None
        self._follow(reference, f"cursor {self.config.cursor_path!r}")

    def update_request(self, request: PageRequest) -> None:
        if self.next_reference is not None:
            request.params[self.config.cursor_param] = self.next_reference

    def __str__(self) -> str:
        return f"cursor page {self.page} ({self.config.cursor_param}={self.next_reference!r})"


class _NextUrlPaginator(_ReferencePaginator):
    """Follows a URL the server gives; relative ones are resolved against the page's URL
    (RFC 3986 §5, as dlt's ``BaseNextUrlPaginator``). Only http(s) URLs are followed."""

    def _follow_url(self, value: Any, what: str, response: PageResponse) -> None:
        if value is MISSING or value is None or value == "":
            self._follow(None, what)
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
        self._follow(str(url), f"the next URL at {what}")

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
                         repr(self.config.next_url_path), response)

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
                         f'the Link header (rel="{self.config.links_next_key}")', response)

    def __str__(self) -> str:
        return f"header_link page {self.page}"


# -- detection -----------------------------------------------------------------------------

_NEXT_KEYS = re.compile(r"^next", re.IGNORECASE)  # dlt's NEXT_PAGE_KEY_PATTERNS, re.match
_NEXT_DICT_KEYS = ("href", "url")


def find_next_page_path(body: Any, path: tuple[str, ...] = ()) -> tuple[str, Any] | None:
    """dlt's ``find_next_page_path``: the first key starting with ``next`` (depth first) whose
    value is a scalar or a mapping with ``href``/``url``; ``(dotted path, value)`` or None."""
    if not isinstance(body, dict):
        return None
    for key, value in body.items():
        if isinstance(key, str) and _NEXT_KEYS.match(key):
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    if str(sub).lower() in _NEXT_DICT_KEYS \
                            and isinstance(sub_value, str | int | float):
                        return ".".join((*path, key, sub)), sub_value
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                return ".".join((*path, key)), value
        if isinstance(value, dict):
            found = find_next_page_path(value, (*path, key))
            if found is not None:
                return found
    return None


@register_paginator
class AutoDetectPaginator(BasePaginator):
    """dlt's ``auto``: decide from the first response, then behave as the paginator found.

    In dlt's order (``detector.py``): a ``Link`` header with ``rel="next"``, a next URL in the
    body (a ``next`` key whose value starts with ``http`` or ``/``), a cursor (a ``next`` key
    holding anything else), else a single page. dlt also guesses ``page_number`` from a
    ``total_pages`` key; we do not, because the guess (``page`` from 0) cannot be checked
    against a first request that sent no page parameter, and a wrong guess reads page 1 twice
    or skips it. The choice is logged at INFO; the detected paginator's loop guard applies.
    """

    type_names = ("auto",)

    def __init__(self, resource: str, config: AutoConfig | None = None) -> None:
        super().__init__(resource)
        self.detected: BasePaginator | None = None

    @property
    def has_next_page(self) -> bool:
        return self.detected.has_next_page if self.detected is not None else True

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        if self.detected is None:
            self.detected = detect(self.resource, response)
            if isinstance(self.detected, SinglePagePaginator) and data:
                # dlt warns here too: a fallback over a list may be a paged API read in part.
                logger.warning("%s: paginator auto found no paging in the first response "
                               "(no Link rel=next, no next URL or cursor): reading one page; "
                               "set endpoint.paginator if the API pages", self.resource)
            else:
                logger.info("%s: paginator auto detected %s", self.resource, self.detected)
        self.detected.update_state(response, data)
        self.page = self.detected.page

    def update_request(self, request: PageRequest) -> None:
        if self.detected is not None:
            self.detected.update_request(request)

    def __str__(self) -> str:
        return f"auto ({self.detected})" if self.detected is not None else "auto (undecided)"


def detect(resource: str, response: PageResponse) -> BasePaginator:
    """The paginator a first response implies (see ``AutoDetectPaginator``)."""
    if next_link(link_values(response.headers)) is not None:
        return HeaderLinkPaginator(resource, HeaderLinkConfig(type="header_link"))
    found = find_next_page_path(response.body)
    if found is not None:
        path, value = found
        if isinstance(value, str) and value.startswith(("http", "/")):
            return JSONLinkPaginator(resource, JSONLinkConfig(type="json_link",
                                                              next_url_path=path))
        return JSONResponseCursorPaginator(resource, CursorConfig(type="cursor", cursor_path=path))
    return SinglePagePaginator(resource)

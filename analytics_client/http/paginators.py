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
* **More said, read stopped.** A read that would stop while its last page says there is more
  (``has_more: true``, a total above what was read, a next link or cursor not followed) fails
  naming that signal instead: ``ContractError`` with the resource, the config key and what to
  set. The user's own caps (``maximum_page``, ``maximum_offset``) still end a read quietly.
* **Empty runs end.** A run of ``EMPTY_RUN_LIMIT`` empty pages, each naming a fresh cursor or
  link, fails naming ``stop_after_empty_page`` (1Password's events API, dlt-hub/dlt#3358, pages
  forever that way); an empty page claiming more is asked again ``MAX_EMPTY_PAGES`` times.
* **Clamped page sizes.** An API that serves fewer records than ``limit`` asked (GitHub caps
  ``per_page``): ``offset`` steps by the records received, ``page_number`` reads on until a
  page shorter than the pages before it, an empty page, or its totals or links say the end.
* **Page number.** Each request is built here from the page number, never from ``links.next``:
  a server's next link may drop our filter or sort. While the stop signals agree, paging stops
  on the first of: an empty page, ``links.next: null``, ``total_pages`` reached,
  ``maximum_page`` reached, ``has_more_path`` false. A short page alone ends paging only when
  the API gives neither totals nor links and the page is shorter than one served before,
  because a page one record short mid-stream is a known way to lose rows.

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
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from analytics_client.config.model import AutoPaginator as AutoConfig
from analytics_client.config.model import CursorPaginator as CursorConfig
from analytics_client.config.model import HeaderLinkPaginator as HeaderLinkConfig
from analytics_client.config.model import JSONLinkPaginator as JSONLinkConfig
from analytics_client.config.model import OffsetPaginator as OffsetConfig
from analytics_client.config.model import PageNumberPaginator as PageNumberConfig
from analytics_client.config.model import SinglePagePaginator as SinglePageConfig
from analytics_client.core.errors import ContractError, PaginationLoopError
from analytics_client.core.jsonpath import MISSING, lookup
from analytics_client.http.detector import find_next_page_path, find_total_pages_path, unnamed_next
from analytics_client.http.link_header import link_values, next_link
from analytics_client.http.paging import (
    EMPTY_RUN_LIMIT,
    MAX_EMPTY_PAGES,
    PAGINATORS,
    BasePaginator,
    PageRequest,
    PageResponse,
    Params,
    more_signal,
    page_fingerprint,
    page_signals,
    put_value,
    read_has_more,
    register_paginator,
)
from analytics_client.http.references import (
    HeaderCursorPaginator,
    HeaderLinkPaginator,
    JSONLinkPaginator,
    JSONResponseCursorPaginator,
)

if TYPE_CHECKING:
    from analytics_client.http.template import RequestTemplate

__all__ = [
    "PAGINATORS",
    "AutoDetectPaginator",
    "BasePaginator",
    "HeaderCursorPaginator",
    "HeaderLinkPaginator",
    "JSONLinkPaginator",
    "JSONResponseCursorPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "PageResponse",
    "SinglePagePaginator",
    "find_next_page_path",
    "find_total_pages_path",
    "first_request",
    "make_paginator",
    "more_signal",
    "page_number_params",
    "page_signals",
    "read_has_more",
    "register_paginator",
]

logger = logging.getLogger(__name__)

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
    """The query of page ``page`` (the one builder every page-number walk uses); the page goes
    in the body instead when ``page_body_path`` is set (``PageNumberPaginator.update_request``)."""
    params: Params = {config.page_param: page} if config.page_param else {}
    size = limit if limit is not None else config.limit
    if size is not None and config.limit_param:
        params[config.limit_param] = size
    return params


@register_paginator
class PageNumberPaginator(BasePaginator):
    """dlt's ``page_number`` with dlt's keys and defaults (see the module docstring).

    ``has_more_path``, when set, speaks where ``links.next`` would: ``false`` ends the read,
    ``true`` on an empty page is a contradiction. With ``stop_after_empty_page: false`` an
    empty page does not end the read (dlt), but ``EMPTY_RUN_LIMIT`` of them in a row fail it.
    """

    type_names = ("page_number",)

    def __init__(self, resource: str, config: PageNumberConfig) -> None:
        super().__init__(resource)
        self.config = config
        self.page = config.first_page
        self.total_pages: int | None = None
        self.conflict: str | None = None  # the first contradiction seen; then only agreement stops
        self._empty_claiming_more = 0
        self._empty_run = 0
        self._served_most = 0  # the most records one page held: the API's own page size
        self._clamp_logged = False
        self._last_fingerprint: bytes | None = None

    @property
    def has_next(self) -> bool:
        return self._has_next_page

    def init_request(self, request: PageRequest) -> None:
        self.update_request(request)

    def probe(self, request: PageRequest) -> None:
        request.params.update(page_number_params(self.config, self.config.first_page, limit=1))

    def page_request(self, params: Mapping[str, Any], page: int, *,
                     limit: int | None = None) -> PageRequest:
        """The request of page ``page`` over ``params`` (the endpoint's): how a keyset walk, a
        slice probe (``limit=1``) and ``check`` ask for a page, as this read loop does."""
        self.page = page
        return PageRequest({**params, **page_number_params(self.config, page, limit)})

    def update_request(self, request: PageRequest) -> None:
        assert self.page is not None
        request.params.update(page_number_params(self.config, self.page))
        if self.config.page_body_path:
            put_value(request, None, self.config.page_body_path, self.page, self.resource)

    def _claim(self, response: PageResponse, empty: bool) -> tuple[Any, str]:
        """What the page says about more: ``has_more_path`` when set (True/False), else
        ``links.next`` (a link, None, or ``MISSING``); and the name of that signal."""
        if self.config.has_more_path:
            more = read_has_more(self.resource, response.body, self.config.has_more_path,
                                 self.page, empty=empty)
            claim = MISSING if more is None else ("more" if more else None)
            return claim, f"has_more_path {self.config.has_more_path!r}"
        return page_signals(response.body, None)[1], "links.next"

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        assert self.page is not None
        records = data
        self._check_not_repeated(records)
        pages_read = self.page - self.config.base_page + 1
        total, _ = page_signals(response.body, self.config.total_path)
        next_link_, signal = self._claim(response, not records)
        if total is not None:
            self.total_pages = total
        # dlt's meaning: maximum_page is the first page not fetched (pages before it are).
        if self.config.maximum_page is not None and self.page + 1 >= self.config.maximum_page:
            self._has_next_page = False
            return
        conflict = _contradiction(self.page, pages_read, bool(records), total, next_link_,
                                  signal)
        if conflict is not None and self.conflict is None:
            self.conflict = conflict
            logger.warning("%s: %s; reading on until an empty page and %s agree",
                           self.resource, conflict, signal)
        if self.conflict is not None:
            # An empty page within the total should have held records (page T of T too).
            more_by_total = total is not None and (pages_read < total if records
                                                   else pages_read <= total)
            self._after_conflict(records, next_link_, signal, more_by_total)
            return
        self._empty_run = self._empty_run + 1 if not records else 0
        if not records and not self.config.stop_after_empty_page:
            if self._empty_run >= EMPTY_RUN_LIMIT:
                raise ContractError(
                    self.resource,
                    f"pages {self.page - EMPTY_RUN_LIMIT + 1}..{self.page} were all empty and "
                    "nothing said the read is over (paginator.stop_after_empty_page is false): "
                    "set stop_after_empty_page: true if an empty page is the end, or "
                    "total_path, has_more_path or maximum_page so the read can tell",
                )
        elif not records:
            self._end(response.body, "an empty page", heeded=self.config.has_more_path)
            return
        if (
            (total is not None and pages_read >= total)
            or (next_link_ is None)
            or (total is None and next_link_ is MISSING and self._short(records))
        ):
            self._end(response.body, "the totals, links or a short page say it is the last",
                      heeded=self.config.has_more_path)
            return
        self.page += 1

    def _after_conflict(self, records: list[Any], next_link_: Any, signal: str,
                        more_by_total: bool) -> None:
        """Once signals disagree: stop only on an empty page the claim does not contradict.

        An empty page whose ``links.next`` (or has-more flag) still points on is asked for
        again: skipping it would skip its records, and a server that lost them for one
        response usually serves them on the next. Empty ``MAX_EMPTY_PAGES`` times in a row, it
        fails the read. An empty page within ``total_pages`` with nothing else to say (no
        links, no flag) is asked ``MAX_EMPTY_PAGES`` times too, then read past, page by page up
        to the total: a page lost for one response is not skipped, a stale total costs those
        requests, and ``EMPTY_RUN_LIMIT`` pages empty in a row fail the read naming
        ``total_path``.
        """
        assert self.page is not None
        if records:
            self._empty_claiming_more = 0
            self._empty_run = 0
        elif next_link_ is MISSING and more_by_total:
            self._empty_claiming_more += 1
            if self._empty_claiming_more < MAX_EMPTY_PAGES:
                return  # the same page again: a page lost for one response comes back
            self._empty_claiming_more = 0
            self._empty_run += 1
            if self._empty_run >= EMPTY_RUN_LIMIT:
                raise ContractError(
                    self.resource,
                    f"pages {self.page - EMPTY_RUN_LIMIT + 1}..{self.page} were all empty while "
                    f"total_pages (paginator.total_path {self.config.total_path!r}) says "
                    f"{self.total_pages}: the read cannot tell whether records are missing. Run "
                    "again later; if the total is not a page count, set total_path: null",
                )
        elif next_link_ is None or next_link_ is MISSING:
            self._has_next_page = False
            return
        else:
            self._empty_claiming_more += 1
            if self._empty_claiming_more >= MAX_EMPTY_PAGES:
                raise ContractError(
                    self.resource,
                    f"page {self.page} came back empty {MAX_EMPTY_PAGES} times in a row while "
                    f"{signal} says there is more ({self.conflict}): the API's stop signals "
                    "contradict each other, so the read cannot tell it is complete, and skipping "
                    "the page would skip its records. Run again later, or report it to the API's "
                    "owner",
                )
            return  # the same page again
        self.page += 1

    def _short(self, records: list[Any]) -> bool:
        """Whether a page shorter than ``limit`` is the last one.

        An API may serve fewer than asked on every page (a clamped page size: asked 100,
        served 25, github/docs#45189). So a short page ends the read only when it is also
        shorter than a page served before; the first short page is followed by one more
        request, which is empty when it was the last.
        """
        if self.config.limit is None or len(records) >= self.config.limit:
            self._served_most = max(self._served_most, len(records))
            return False
        if len(records) < self._served_most:
            return True
        if self._served_most and not self._clamp_logged:
            self._clamp_logged = True
            logger.warning("%s: pages hold %d records although paginator.limit asks for %d: "
                           "the API clamps the page size; reading on until a shorter page",
                           self.resource, len(records), self.config.limit)
        self._served_most = max(self._served_most, len(records))
        return False

    def _check_not_repeated(self, records: list[Any]) -> None:
        """Two identical non-empty pages in a row: the API ignores the page parameter."""
        if not records:
            return
        fingerprint = page_fingerprint(records)
        if fingerprint == self._last_fingerprint:
            assert self.page is not None
            where = self.config.page_param or self.config.page_body_path
            raise PaginationLoopError(
                self.resource,
                f"page {self.page} has exactly the records of page {self.page - 1}: the API seems "
                f"to ignore {where!r}; check paginator.page_param (and base_page: dlt counts "
                "from 0 unless it is set)",
            )
        self._last_fingerprint = fingerprint

    def __str__(self) -> str:
        total = f" of {self.total_pages}" if self.total_pages is not None else ""
        return f"page {self.page}{total}"


def _contradiction(page: int, pages_read: int, has_records: bool, total: int | None,
                   next_link_: Any, signal: str = "links.next") -> str | None:
    """What the signals of one page disagree about, or None when they agree. ``next_link_``
    is the claim of ``signal``: a value (more), None (the end) or ``MISSING`` (not sent)."""
    more_by_total = total is not None and pages_read < total
    says_more = next_link_ is not None and next_link_ is not MISSING
    if has_records and total is not None and pages_read > total:
        return f"page {page} has records but total_pages says {total}"
    if not has_records and total is not None and pages_read <= total:
        return f"page {page} is empty but total_pages says {total}"
    if not has_records and says_more:
        return f"page {page} is empty but {signal} says there is more"
    if has_records and next_link_ is None and more_by_total:
        return f"{signal} says the end on page {page} but total_pages says {total}"
    if has_records and total is not None and pages_read >= total and says_more:
        return f"total_pages says {total} but page {page} has {signal} saying more"
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
    """dlt's ``offset``: the next page starts where the records received end.

    dlt steps ``offset`` by ``limit``; we step by the records received, which is the same for
    a full page and right for an API that clamps the page size (asked 100, served 25: a step
    of 100 would skip 75 records). Stops, as dlt does, on an empty page
    (``stop_after_empty_page``), on ``has_more_path`` false, on ``offset`` reaching the total
    at ``total_path`` or ``maximum_offset``; without a total a short page no longer ends the
    read (it may be a clamp): the next, empty, page does.

    Where the signals contradict, we read on or fail rather than stop with rows missing:
    records past the total (a total that counts what is left, or a stale one:
    oasisprotocol/nexus#489) read on until an empty page; an empty page below the total, or
    with ``has_more`` true, fails naming the signal. A configured ``total_path`` missing from
    a page is a contract error, as in dlt. A page with exactly the previous page's records
    means the API ignores ``offset_param``: a ``PaginationLoopError``.
    """

    type_names = ("offset",)

    def __init__(self, resource: str, config: OffsetConfig) -> None:
        super().__init__(resource)
        self.config = config
        self.offset = config.offset
        self.total: int | None = None
        self.past_total = False  # records were served past the total: it is not the end
        self._served_most = 0  # the most records one page held (the API's page size if clamped)
        self._clamp_logged = False
        self._last_fingerprint: bytes | None = None

    @property
    def _where(self) -> str:
        return self.config.offset_param or str(self.config.offset_body_path)

    def init_request(self, request: PageRequest) -> None:
        self.offset = self.config.offset
        self.update_request(request)

    def probe(self, request: PageRequest) -> None:
        put_value(request, self.config.limit_param, self.config.limit_body_path, 1, self.resource)

    def update_request(self, request: PageRequest) -> None:
        put_value(request, self.config.offset_param, self.config.offset_body_path, self.offset,
             self.resource)
        put_value(request, self.config.limit_param, self.config.limit_body_path, self.config.limit,
             self.resource)

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        if data:
            fingerprint = page_fingerprint(data)
            if fingerprint == self._last_fingerprint:
                raise PaginationLoopError(
                    self.resource,
                    f"the page at {self._where}={self.offset} has exactly the records "
                    f"of the page before it: the API seems to ignore {self._where!r};"
                    " check paginator.offset_param",
                )
            self._last_fingerprint = fingerprint
        if not data:
            self._empty_page(response)
            return
        has_more = (read_has_more(self.resource, response.body, self.config.has_more_path,
                                  self.page) if self.config.has_more_path else None)
        total = self._total(response.body)
        # Short only against a page served before: a first page below limit may be a clamp.
        full = len(data) >= min(self.config.limit, self._served_most or len(data))
        self._served_most = max(self._served_most, len(data))
        self.offset += len(data)
        self.page = (self.page or 0) + 1
        if len(data) < self.config.limit and not self._clamp_logged:
            self._clamp_logged = True
            logger.info("%s: a page held %d of the %d records asked for: the next page starts "
                        "after the records received (a clamped page size is read whole)",
                        self.resource, len(data), self.config.limit)
        if self.config.maximum_offset is not None and self.offset >= self.config.maximum_offset:
            self._has_next_page = False  # the user's own cap
            return
        if has_more is False:
            self._has_next_page = False
            return
        if total is not None and self.offset > total and not self.past_total:
            self.past_total = True
            logger.warning("%s: %d records read but %s says %d: reading on until an empty page",
                           self.resource, self.offset, self.config.total_path, total)
        # Reaching the total with a full page may be a stale total (or one counting what is
        # left): one more request tells, and is empty when the total was right.
        if total is not None and self.offset == total and not self.past_total \
                and has_more is not True and not full:
            self._end(response.body, f"{self.config.total_path} is {total}",
                      heeded=self.config.has_more_path)

    def _empty_page(self, response: PageResponse) -> None:
        """An empty page ends the read unless a signal on it says there is more (a total above
        the records read, ``has_more`` true): then the read fails, because the same offset
        would come back empty again and stopping would leave rows out. (A total missing from
        an empty page is no signal: some APIs drop it there.)"""
        what = None
        total = lookup(response.body, self.config.total_path) if self.config.total_path \
            else MISSING
        if isinstance(total, int) and not isinstance(total, bool) and self.offset < total:
            what = f"{self.config.total_path} is {total}"
        elif self.config.has_more_path and read_has_more(
                self.resource, response.body, self.config.has_more_path, self.page, empty=True):
            what = f"{self.config.has_more_path} is true"
        if what is None:
            self._end(response.body, "an empty page", heeded=self.config.has_more_path)
            return
        raise ContractError(
            self.resource,
            f"the page at {self._where}={self.offset} is empty but {what} after "
            f"{self.offset - self.config.offset} records: the API stopped serving before the "
            "end it announced, so rows would be missing. Run again later; if the total is not "
            "a count of records, set paginator.total_path: null",
        )

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


@register_paginator
class AutoDetectPaginator(BasePaginator):
    """dlt's ``auto`` (and the paginator of an endpoint that names none): decide from the
    first response, then behave as the paginator found.

    In dlt's order (``detector.py``): a ``Link`` header with ``rel="next"``, a next URL in the
    body (a ``next`` key whose value starts with ``http`` or ``/``), total pages (a
    ``total_pages``/``pages`` key: ``page_number`` with dlt's defaults and that
    ``total_path``), a cursor (a ``next`` key holding anything else), else a single page.

    Ours: the single-page fallback fails when the first page says there is more (a has-more
    flag, a record total above the page, a next link under a name dlt does not look for such
    as ``@odata.nextLink``): reading one page would finish with rows missing. A detected
    ``page_number`` asks for page ``base_page + 1`` (dlt's 0) after the first response, which
    sent no page number; an API that counts from 1 answers it with the first page again, so
    that answer is dropped (``discard``) and the read goes on from page 2. The choice is
    logged at INFO; the detected paginator's guards apply.
    """

    type_names = ("auto",)

    def __init__(self, resource: str, config: AutoConfig | None = None) -> None:
        super().__init__(resource)
        self.detected: BasePaginator | None = None
        self._first: bytes | None = None
        self._pages = 0
        self._asked_again = False

    @property
    def has_next_page(self) -> bool:
        return self.detected.has_next_page if self.detected is not None else True

    def update_state(self, response: PageResponse, data: list[Any]) -> None:
        self._pages += 1
        self.discard = False
        if self.detected is None:
            self.detected = detect(self.resource, response)
            self._first = page_fingerprint(data) if data else None
            if isinstance(self.detected, SinglePagePaginator):
                self._single(response, data)
            elif isinstance(self.detected, PageNumberPaginator) and not data \
                    and not self._asked_again and _counts_pages(response.body):
                # Empty, yet a page count: an empty list, or a first answer that lost its
                # records for once. The same first request again tells them apart.
                self.detected, self._pages, self._asked_again = None, 0, True
                return
            elif isinstance(self.detected, PageNumberPaginator) and not data:
                # Nothing on the first page, asked without a page number: there is nothing to
                # page (many APIs say total_pages 1 for an empty list), and asking it again
                # would name a page number the first request never sent.
                self.detected = SinglePagePaginator(self.resource)
            else:
                logger.info("%s: paginator auto detected %s", self.resource, self.detected)
        elif self._pages == 2 and isinstance(self.detected, PageNumberPaginator) and data \
                and page_fingerprint(data) == self._first:
            self._rebase_to_one()
            return
        self.detected.update_state(response, data)
        self.page = self.detected.page

    def _single(self, response: PageResponse, data: list[Any]) -> None:
        signal = more_signal(response.body, read=len(data)) or unnamed_next(response.body)
        if signal is not None:
            raise ContractError(
                self.resource,
                f"paginator auto found no paging it knows in the first response, but the "
                f"response says there is more ({signal}): reading one page would leave rows "
                "out. Set endpoint.paginator (docs/pagination.md: cursor with cursor_path and "
                "has_more_path, json_link with next_url_path, offset with total_path)",
            )
        if data:
            # dlt warns here too: a fallback over a list may be a paged API read in part.
            logger.warning("%s: paginator auto found no paging in the first response "
                           "(no Link rel=next, no next URL, cursor or total pages): reading "
                           "one page; set endpoint.paginator if the API pages", self.resource)

    def _rebase_to_one(self) -> None:
        """Page ``base_page + 1`` repeated the first answer: the API counts from 1."""
        assert isinstance(self.detected, PageNumberPaginator)
        config = self.detected.config.model_copy(update={"base_page": 1, "page": 2})
        logger.info("%s: page 1 repeats the first answer: the API counts pages from 1; "
                    "reading on from page 2", self.resource)
        self.detected = PageNumberPaginator(self.resource, config)
        self.detected._last_fingerprint = self._first
        self.page = self.detected.page
        self.discard = True

    def update_request(self, request: PageRequest) -> None:
        if self.detected is not None:
            self.detected.update_request(request)

    def __str__(self) -> str:
        return f"auto ({self.detected})" if self.detected is not None else "auto (undecided)"


def _counts_pages(body: Any) -> bool:
    """Whether the body gives a total page count of at least 1 (dlt's total-pages keys)."""
    found = find_total_pages_path(body)
    try:
        return found is not None and int(found[1]) >= 1
    except (TypeError, ValueError):
        return False


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
    pages = find_total_pages_path(response.body)
    if pages is not None:
        try:
            int(pages[1])
        except (TypeError, ValueError):
            pass
        else:
            return PageNumberPaginator(resource, PageNumberConfig(type="page_number",
                                                                  total_path=pages[0]))
    if found is not None:
        return JSONResponseCursorPaginator(resource, CursorConfig(type="cursor",
                                                                  cursor_path=found[0]))
    return SinglePagePaginator(resource)

"""The paginator contract (dlt's ``BasePaginator``), its request and response, the registry,
and the stop signals every paginator reads (``http/paginators.py`` has the module overview).

A page says "there is more" in ways a paginator may not be configured to read: a has-more
flag, a record total above what was read (``more_signal``); ``has_more_path`` reads the flag
dlt's way (``read_has_more``). ``put_value`` sends a value as a query parameter or at a dlt
``*_body_path`` of the JSON body.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from analytics_client.core.errors import ContractError
from analytics_client.core.jsonpath import MISSING, lookup, set_at

__all__ = ["EMPTY_RUN_LIMIT", "MAX_EMPTY_PAGES", "PAGINATORS", "BasePaginator", "PageRequest",
           "PageResponse", "Params", "more_signal", "norm_key", "page_fingerprint",
           "page_signals", "put_value", "read_has_more", "register_paginator", "walk_keys"]

logger = logging.getLogger(__name__)

Params = dict[str, str | int | float | bool]
MAX_EMPTY_PAGES = 3  # answers of one empty page claiming more before the read fails
EMPTY_RUN_LIMIT = 10  # empty pages in a row, each pointing on, before the read fails


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


def page_fingerprint(records: list[Any]) -> bytes:
    return hashlib.blake2b(json.dumps(records, sort_keys=True, default=str).encode(),
                           digest_size=16).digest()


# Flags APIs use to say "there is more" (Stripe's has_more, GraphQL's pageInfo.hasNextPage,
# ...), compared lower case without "_": read on a page where the paginator would stop.
_MORE_FLAGS = frozenset({"hasmore", "hasnext", "hasnextpage", "hasmoreitems", "hasmorepages",
                         "moreitems", "morepages", "moreresults"})
# Record totals (not page totals: those are dlt's total-pages keys, detected as page_number).
_TOTAL_KEYS = frozenset({"total", "totalcount", "totalrecords", "totalresults", "totalitems",
                         "totalsize"})


def norm_key(key: Any) -> str:
    return str(key).lower().replace("_", "").replace("-", "")


def walk_keys(body: Any, depth: int = 2) -> list[tuple[str, Any]]:
    """``(dotted path, value)`` of every key down to ``depth`` levels (dlt's detector looks
    as deep), breadth first so a top-level flag is named before a nested one."""
    found: list[tuple[str, Any]] = []
    level: list[tuple[str, Any]] = [("", body)]
    for _ in range(depth):
        nested: list[tuple[str, Any]] = []
        for prefix, node in level:
            if isinstance(node, dict):
                for key, value in node.items():
                    path = f"{prefix}.{key}" if prefix else str(key)
                    found.append((path, value))
                    nested.append((path, value))
        level = nested
    return found


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def more_signal(body: Any, *, read: int | None = None) -> str | None:
    """What in ``body`` says the API has more than what was read, or None.

    A has-more flag that is true, always; with ``read`` (records read so far), also a record
    total above it. Used where a read is about to stop on a rule of its own (a missing
    cursor, a null link, a single page): stopping then would finish with rows missing.
    """
    for path, value in walk_keys(body):
        if norm_key(path.rsplit(".", 1)[-1]) in _MORE_FLAGS and _truthy(value):
            return f"{path!r} is {value!r}"
    if read is not None:
        for path, value in walk_keys(body):
            if norm_key(path.rsplit(".", 1)[-1]) in _TOTAL_KEYS and isinstance(value, int) \
                    and not isinstance(value, bool) and value > read:
                return f"{path!r} is {value} but {read} records were read"
    return None


def read_has_more(resource: str, body: Any, path: str, page: int | None, *,
                  empty: bool = False) -> bool | None:
    """The boolean at ``has_more_path`` (dlt's reading: ``true``/``false`` or their text).

    Missing or not a boolean is a ``ContractError``, as in dlt (``_handle_missing_has_more``):
    guessing would end the read early or never. On an ``empty`` page a missing flag is None
    (dlt stops at an empty page before it reads the flag; some APIs drop it there).
    """
    value = lookup(body, path)
    if value is MISSING and empty:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes",
                                                          "no"):
        return value.strip().lower() in ("true", "1", "yes")
    found = "nothing" if value is MISSING else repr(value)[:40]
    raise ContractError(resource, f"page {page}: has_more_path {path!r} holds {found}, not true "
                        "or false; check paginator.has_more_path")


def put_value(request: PageRequest, param: str | None, body_path: str | None, value: Any,
         resource: str = "") -> None:
    """Send ``value`` as query parameter ``param``, or at ``body_path`` of the JSON body (the
    template's ``json``, copied per read; dlt sends it with any method, as we do)."""
    if body_path:
        if request.json is None:
            request.json = {}
        if not isinstance(request.json, dict):
            raise ContractError(resource, f"a *_body_path ({body_path!r}) needs endpoint.json "
                                f"to be a mapping, not {type(request.json).__name__}")
        set_at(request.json, body_path, value)
    elif param:
        request.params[param] = value


class BasePaginator(ABC):
    """dlt's paginator contract, plus the resource name every error must carry.

    ``page`` labels the next page in logs and errors: the page number for ``page_number``,
    else the 1-based count of pages asked for (None for ``single_page``).
    """

    type_names: ClassVar[tuple[str, ...]] = ()
    # Set by update_state when the page just read repeats one already yielded (auto's
    # page-number base, see AutoDetectPaginator): the read loop drops it.
    discard: bool = False

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

    def _end(self, body: Any, why: str, *, heeded: str | None = None) -> None:
        """Stop here, unless the page says there is more: then fail naming that signal.

        ``why`` is the rule that stops (for the message); ``heeded`` names the config key that
        already read the API's own has-more flag (then that flag has had its say).
        """
        signal = None if heeded else more_signal(body)
        if signal is not None:
            raise ContractError(
                self.resource,
                f"page {self.page}: the read would stop here ({why}), but the page says there is "
                f"more ({signal}): stopping would leave rows out. Set paginator.has_more_path "
                "to that flag (or fix the paginator's path keys) so the read follows it",
            )
        self._has_next_page = False

    def __str__(self) -> str:
        return f"{self.type_names[0] if self.type_names else type(self).__name__} page {self.page}"


PAGINATORS: dict[str, type[BasePaginator]] = {}


def register_paginator(cls: type[BasePaginator]) -> type[BasePaginator]:
    """Add a paginator class to the registry under each of its ``type_names`` (dlt's
    ``register_paginator``). Its config model must be in ``config.Paginator`` too."""
    for name in cls.type_names:
        PAGINATORS[name] = cls
    return cls



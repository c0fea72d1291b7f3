"""A loopback API that pages one record set in any of dlt's paging styles, and lies as told.

Written from the shapes public APIs document, not from our paginators: ``offset``
(``offset``/``limit`` and ``total``, dlt's defaults), ``page_number`` (``page``/``size``,
1-based, ``total_pages``, optionally ``links.next``), an opaque ``cursor`` (``cursors.next``
sent back as ``cursor``), Stripe's list (``has_more`` and ``starting_after=<last id>``:
https://docs.stripe.com/api/pagination), ``json_link`` (``next``, or Microsoft Graph's
``@odata.nextLink``: https://learn.microsoft.com/graph/paging) and ``header_link`` (RFC 8288
``Link``, as GitHub pages).

A ``Shape`` says how the server misbehaves, each a kind seen in public bug reports:
``clamp`` serves at most that many records whatever was asked (github/docs#45189);
``total`` lies (``low``/``high`` by ``total_off`` records, or ``remaining``: the count after the
offset, oasisprotocol/nexus#489); ``glitch`` answers that request (1-based) with an empty page
that still carries every honest signal (has_more, total, a fresh cursor or link to the same
place); ``empty_tail`` answers a cursor past the end with an empty page and a fresh cursor,
forever (1Password's events API, dlt-hub/dlt#3358). Past ``max_requests`` every answer is a 400,
so a read that would never end fails instead, and the test sees ``requests``.

Built on ``tests/loopback.py`` (``LoopbackServer``): a context manager on a free loopback port,
its threads joined on exit, every request kept in ``received``. Only ``GET`` is served (any other
method is answered 501 and not counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from tests.loopback import LoopbackServer, Reply, Request

__all__ = ["PagingServer", "Shape"]

Style = Literal["offset", "page_number", "cursor", "stripe", "json_link", "odata", "header_link"]


@dataclass(frozen=True)
class Shape:
    """How the server pages and where it lies (see the module docstring)."""

    style: Style
    records: int
    page_size: int = 10  # served when the request names no size
    clamp: int | None = None
    total: Literal["none", "honest", "low", "high", "remaining"] = "honest"
    total_off: int = 5
    has_more: bool = False  # the body carries an honest has_more flag
    links: bool = False  # page_number: links.next as well
    glitch: int | None = None
    empty_tail: bool = False
    max_requests: int = 400


def _size(shape: Shape, asked: str | None) -> int:
    size = int(asked) if asked else shape.page_size
    return min(size, shape.clamp) if shape.clamp else size


def _ids(shape: Shape) -> list[str]:
    return [f"r{i:04d}" for i in range(shape.records)]


def _record(rid: str) -> dict[str, Any]:
    return {"id": rid, "name": f"record {rid}", "updated_at": "2026-03-01T10:00:00Z"}


def _total(shape: Shape, start: int, count_of: int) -> int | None:
    """The total a page reports (records, or pages for page_number's ``count_of``)."""
    true = count_of
    if shape.total == "none":
        return None
    if shape.total == "low":
        return max(0, true - shape.total_off)
    if shape.total == "high":
        return true + shape.total_off
    if shape.total == "remaining":
        return max(0, true - start)
    return true


def _answer(shape: Shape, params: dict[str, str], number: int,
            base: str) -> tuple[int, Any, dict[str, str]]:
    ids = _ids(shape)
    glitch = shape.glitch == number
    headers: dict[str, str] = {}
    if shape.style == "offset":
        start = int(params.get("offset", "0"))
        size = _size(shape, params.get("limit"))
        page = [] if glitch else ids[start:start + size]
        body: dict[str, Any] = {"data": [_record(i) for i in page]}
        total = _total(shape, start, len(ids))
        if total is not None:
            body["total"] = total
        if shape.has_more:  # honest: records exist past what this answer served
            body["has_more"] = start + len(page) < len(ids)
        return 200, body, headers
    if shape.style == "page_number":
        n = int(params.get("page", "1"))
        if n < 1:
            return 400, {"error": "page is 1-based"}, headers
        size = _size(shape, params.get("size"))
        start = (n - 1) * size
        page = [] if glitch else ids[start:start + size]
        body = {"data": [_record(i) for i in page]}
        pages = (len(ids) + size - 1) // size
        total = _total(shape, n - 1, pages)  # remaining: pages after this one's start
        if total is not None:
            body["total_pages"] = total
        more = start + len(page) < len(ids)
        if shape.has_more:
            body["has_more"] = more
        if shape.links:
            body["links"] = {"next": f"/items?page={n + 1}&size={size}" if more else None}
        return 200, body, headers
    # Reference styles: the position is carried in the cursor or link.
    if shape.style == "stripe":
        after = params.get("starting_after")
        start = ids.index(after) + 1 if after in ids else 0
    else:
        token = params.get("cursor") or params.get("pos")
        start = int(token.split("-")[0]) if token else 0
    size = _size(shape, params.get("limit"))
    page = [] if glitch else ids[start:start + size]
    end = start + len(page)
    more = end < len(ids) or glitch
    body = {"data": [_record(i) for i in page]}
    if shape.has_more or shape.style == "stripe":
        body["has_more"] = more
    total = _total(shape, start, len(ids))
    if total is not None and shape.style != "stripe":
        body["total_count"] = total
    fresh = f"{end}-{number}"  # a new token for the same place on every answer
    if shape.style == "cursor":
        tail = shape.empty_tail  # a cursor on every page, past the end too
        body["cursors"] = {"next": fresh if more or tail else None}
    elif shape.style in ("json_link", "odata"):
        link = f"{base}/items?{urlencode({'pos': fresh, 'limit': size})}" if more else None
        if shape.style == "json_link":
            body["next"] = link
        elif link is not None:
            body["@odata.nextLink"] = link
    elif shape.style == "header_link" and more:
        headers["Link"] = f'<{base}/items?{urlencode({"pos": fresh, "limit": size})}>; rel="next"'
    return 200, body, headers


class PagingServer(LoopbackServer):
    """Serves ``shape`` on ``base_url`` at ``/items``; ``requests`` counts the GETs answered."""

    methods = ("GET",)

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self._shape = shape
        self._requests = 0

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def ids(self) -> set[str]:
        """The oracle: every record the API holds."""
        return set(_ids(self.shape))

    @property
    def requests(self) -> int:
        return self._requests

    def answer(self, request: Request) -> Reply:
        """The page for ``request``, numbered 1, 2, ... as received; past the budget a 400."""
        with self.lock:
            self._requests += 1
            number = self._requests
        shape = self.shape
        if number > shape.max_requests:
            return _reply(400, {"error": f"more than {shape.max_requests} requests"})
        status, body, headers = _answer(shape, request.params, number, self.base_url)
        return _reply(status, body, headers)


def _reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    """``json.dumps``'s default spacing, as this server has always sent (not ``Reply.json``'s)."""
    return Reply(status, json.dumps(body).encode(), headers or {})

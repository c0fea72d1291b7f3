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

Like ``recordserver.py``: a context manager; handler threads are joined on exit.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

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


@dataclass
class _State:
    shape: Shape
    requests: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    owner: PagingServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        owner = self.server.owner
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        number = owner._count(params)
        shape = owner.shape
        if number > shape.max_requests:
            return self._send(400, {"error": f"more than {shape.max_requests} requests"})
        status, body, headers = _answer(shape, params, number, owner.base_url)
        self._send(status, body, headers)


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


class PagingServer:
    """Serves ``shape`` on ``base_url`` at ``/items``; set ``shape`` before each read."""

    def __init__(self, shape: Shape) -> None:
        self._state = _State(shape)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def shape(self) -> Shape:
        return self._state.shape

    @property
    def ids(self) -> set[str]:
        """The oracle: every record the API holds."""
        return set(_ids(self.shape))

    @property
    def requests(self) -> int:
        return self._state.requests

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use PagingServer as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _count(self, params: dict[str, str]) -> int:
        with self._lock:
            self._state.requests += 1
            self._state.queries.append(params)
            return self._state.requests

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="pagingserver", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "paging server thread did not stop"

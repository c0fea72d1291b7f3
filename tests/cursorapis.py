"""Loopback APIs with integer cursors, shaped as public APIs document their lists.

Written from the public docs' shapes, not from our library (its own filter and sort, with
Python integers):

* ``/v1/charges`` -- Stripe's list API (https://docs.stripe.com/api/pagination,
  https://docs.stripe.com/api/charges/list): ``limit`` (1-100, default 10), ``starting_after``
  (an object id: the page after it), ``created[gte|gt|lte|lt]`` (Unix seconds); newest first;
  the body ``{"object": "list", "url", "has_more", "data"}``.
* ``/events`` -- a page-number list sorted by its integer cursor ascending (``page`` from 1,
  ``per_page`` 1-100, ``created[gte]``), answering ``{"data": [...], "total_pages": n}``: what
  the keyset walk reads; with ``counts``, also ``meta.page.total_count`` (the analytics
  contract's count, which slices and delete capture's probes read).
* ``/users`` -- GitHub's ``GET /users`` (https://docs.github.com/rest/users/users): ``since``
  (an integer id: users with a greater id), ``per_page``; a top-level list; the next page in a
  ``Link: <...>; rel="next"`` header (RFC 8288).
* ``/crm/v3/objects/contacts`` -- HubSpot's CRM list
  (https://developers.hubspot.com/docs/api/crm/contacts): ``limit``, ``after``; the body
  ``{"results": [...], "paging": {"next": {"after": "<token>"}}}``; each record's
  ``properties.hs_lastmodifieddate`` an ISO-8601 instant. ``since`` (ours: HubSpot filters
  by date through its POST search) keeps the records modified at or after it.
* ``/repos``, ``/repos/{id}/issues``, ``/repos/{id}/issues/{number}/comments`` -- a parent,
  child and grandchild, GitHub-shaped top-level lists in one page; issues filter by
  ``updated[gte]`` (Unix seconds), comments by ``id[gte]``.

Every request is kept (``queries``: path and params, in order). Records are dicts the test
owns; ``put`` replaces a collection, ``put_children`` a parent's children.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["CursorApi"]

Record = dict[str, Any]
_RANGE = {"gte": lambda v, b: v >= b, "gt": lambda v, b: v > b,
          "lte": lambda v, b: v <= b, "lt": lambda v, b: v < b}


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    owner: CursorApi


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
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
        owner._log(url.path, params)
        try:
            status, body, headers = owner._answer(url.path, params)
        except (ValueError, KeyError) as exc:
            status, body, headers = 400, {"error": {"message": str(exc)}}, {}
        self._send(status, body, headers)


class CursorApi:
    """The APIs of the module docstring on ``base_url``; a context manager that stops them."""

    def __init__(self, *, counts: bool = False) -> None:
        self.counts = counts  # /events answers meta.page.total_count too
        self._lock = threading.Lock()
        self._data: dict[str, list[Record]] = {}
        self.queries: list[tuple[str, dict[str, str]]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use CursorApi as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def put(self, collection: str, records: list[Record]) -> None:
        """Serve ``records`` at ``collection`` (``charges``, ``events``, ``users``, ``repos``,
        ``repos/1/issues``, ``repos/1/issues/7/comments``)."""
        with self._lock:
            self._data[collection] = [dict(r) for r in records]

    def records(self, collection: str) -> list[Record]:
        with self._lock:
            return [dict(r) for r in self._data.get(collection, [])]

    def requests_to(self, pattern: str) -> int:
        """How many requests asked a path matching ``pattern`` (a regex, whole path)."""
        with self._lock:
            return sum(1 for path, _ in self.queries if re.fullmatch(pattern, path))

    def _log(self, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.queries.append((path, params))

    def _answer(self, path: str, params: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        if path == "/v1/charges":
            return self._stripe(params)
        if path == "/events":
            return self._events(params)
        if path == "/users":
            return self._github_users(params)
        if path == "/crm/v3/objects/contacts":
            return self._hubspot(params)
        match = re.fullmatch(r"/(repos(?:/\d+/issues(?:/\d+/comments)?)?)", path)
        if match is None or match.group(1) not in self._data:
            return 404, {"message": "Not Found"}, {}
        records = self.records(match.group(1))
        field = "updated" if path.endswith("/issues") else "id"
        return 200, _ranged(records, field, params), {}

    def _stripe(self, params: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        limit = int(params.get("limit", "10"))
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        records = _ranged(self.records("charges"), "created", params)
        records.sort(key=lambda r: (r["created"], r["id"]), reverse=True)  # newest first
        after = params.get("starting_after")
        if after is not None:
            ids = [r["id"] for r in records]
            if after not in ids:
                return 400, {"error": {"message": f"No such charge: {after}"}}, {}
            records = records[ids.index(after) + 1:]
        return 200, {"object": "list", "url": "/v1/charges", "has_more": len(records) > limit,
                     "data": records[:limit]}, {}

    def _events(self, params: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        page, size = int(params.get("page", "1")), int(params.get("per_page", "10"))
        if page < 1 or not 1 <= size <= 100:
            raise ValueError("page >= 1, per_page in 1..100")
        records = _ranged(self.records("events"), "created", params)
        records.sort(key=lambda r: (r["created"], r["id"]))
        pages = (len(records) + size - 1) // size
        body: dict[str, Any] = {"data": records[(page - 1) * size: page * size],
                                "total_pages": pages}
        if self.counts:  # the count a sliced walk and delete capture read (the contract's)
            body["meta"] = {"page": {"total_count": len(records)}}
        return 200, body, {}

    def _hubspot(self, params: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        limit, after = int(params.get("limit", "10")), int(params.get("after", "0"))
        records = sorted(self.records("contacts"), key=lambda r: int(r["id"]))
        if "since" in params:
            since = dt.datetime.fromisoformat(params["since"])
            records = [r for r in records if dt.datetime.fromisoformat(
                r["properties"]["hs_lastmodifieddate"]) >= since]
        page = records[after:after + limit]
        body: dict[str, Any] = {"results": page}
        if after + limit < len(records):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return 200, body, {}

    def _github_users(self, params: dict[str, str]) -> tuple[int, object, dict[str, str]]:
        since, size = int(params.get("since", "0")), int(params.get("per_page", "30"))
        records = sorted((r for r in self.records("users") if r["id"] > since),
                         key=lambda r: r["id"])
        page = records[:size]
        headers = {}
        if len(records) > size:
            query = urlencode({"per_page": size, "since": page[-1]["id"]})
            headers["Link"] = f'<{self.base_url}/users?{query}>; rel="next"'
        return 200, page, headers

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name="cursorapi",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "cursor API thread did not stop"


def _ranged(records: list[Record], field: str, params: dict[str, str]) -> list[Record]:
    """Stripe's range filter ``field[gte|gt|lte|lt]=<integer>`` on an integer field."""
    for op, holds in _RANGE.items():
        raw = params.get(f"{field}[{op}]")
        if raw is None:
            continue
        if not re.fullmatch(r"-?\d+", raw):
            raise ValueError(f"{field}[{op}] must be an integer, got {raw!r}")
        bound = int(raw)
        records = [r for r in records if holds(r[field], bound)]
    return records

"""Stripe-, GitHub- and HubSpot-shaped APIs over loopback, written from their public docs' shapes.

Each serves one kind of record a test puts (``put``), pages and filters it the way the real API
documents, and keeps every request (``history``). Only what a sync touches is modelled; every
other path is 404. No wall clock: records carry the timestamps the test gives (answers are
``Date``-stamped by the stdlib handler, now, so the test's timestamps must be in the past).

* ``StripeApi`` (https://docs.stripe.com/api/pagination, /api/customers/list): ``GET
  /v1/customers`` lists newest first (``created`` descending, then id), ``limit`` 1..100 (default
  10, else 400), ``starting_after=<id>`` continues after that object (an unknown id: 400),
  ``created[gte|gt|lte|lt]`` integer Unix seconds. Body ``{"object": "list", "url":
  "/v1/customers", "has_more": bool, "data": [...]}``. Auth: ``Authorization: Bearer <key>``.
* ``GitHubApi`` (https://docs.github.com/rest/issues/issues#list-repository-issues, /rest/using-
  the-rest-api/using-pagination-in-the-rest-api): ``GET /repos/{owner}/{repo}/issues`` with
  ``per_page`` (default 30, at most 100), ``page`` (1-based), ``sort`` (``created`` |
  ``updated``), ``direction`` (``asc`` | ``desc``, default desc), ``since`` (ISO 8601: issues
  updated at or after it); ``GET /repos/{owner}/{repo}/issues/{number}/comments``. Bodies are
  top-level JSON lists; the next page is the ``Link`` header's ``rel="next"`` (with ``last``,
  ``first``, ``prev`` as GitHub sends them). Auth: ``Authorization: Bearer`` or ``token``.
* ``HubSpotApi`` (https://developers.hubspot.com/docs/api/crm/contacts, /crm/search): ``GET
  /crm/v3/objects/contacts`` with ``limit`` (default 10, at most 100) and ``after`` (an opaque
  cursor): ``{"results": [...], "paging": {"next": {"after": "...", "link": "..."}}}``, no
  ``paging`` on the last page; ``POST /crm/v3/objects/contacts/search`` with JSON ``filterGroups``
  (filters ``propertyName``/``operator``/``value``: ``GTE``, ``GT``, ``LTE``, ``LT``, ``EQ`` on a
  property; dates as epoch milliseconds or ISO 8601), ``sorts``, ``limit`` (at most 100, else 400)
  and ``after``: ``{"total": n, "results": [...], "paging": ...}``. Records ``{"id", "properties":
  {..., "hs_lastmodifieddate", "createdate"}, "createdAt", "updatedAt", "archived"}``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["GitHubApi", "HubSpotApi", "Request", "StripeApi", "iso", "iso_instant"]

Reply = tuple[int, Any, dict[str, str]]


def iso(seconds: int) -> str:
    """Unix seconds as GitHub/HubSpot write instants: ``2026-01-02T03:04:05Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_instant(text: str) -> float:
    """An ISO 8601 instant with a zone (``Z``, ``+00:00``, fractions) as Unix seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # keys lower-cased
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query, keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every handler thread
    owner: LoopbackApi


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        url = urlsplit(self.path)
        req = Request(self.command, url.path, url.query,
                      {k.lower(): v for k, v in self.headers.items()},
                      self.rfile.read(length) if length else b"")
        with owner.lock:
            owner.history.append(req)
            try:
                status, body, headers = owner.answer(req)
            except (ValueError, KeyError, TypeError) as exc:
                status, body, headers = 400, {"error": {"message": f"bad request: {exc}"}}, {}
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle


class LoopbackApi:
    """A context manager serving ``answer`` on ``base_url``; its thread is joined at exit."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.history: list[Request] = []
        self.records: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def answer(self, req: Request) -> Reply:
        raise NotImplementedError

    def put(self, records: list[dict[str, Any]]) -> None:
        """Serve exactly these records from now on."""
        with self.lock:
            self.records = [json.loads(json.dumps(r)) for r in records]

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use the API as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.history if path is None or r.path == path]

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"{type(self).__name__} thread did not stop"


def _bounded(text: str | None, default: int, high: int, name: str) -> int:
    value = default if text is None else int(text)
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be between 1 and {high}")
    return value


class StripeApi(LoopbackApi):
    """Stripe's list API for customers (records: ``{"id", "object", "created", ...}``)."""

    KEY = "sk_test_loopback"

    def answer(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.KEY}":
            return 401, {"error": {"type": "invalid_request_error",
                                   "message": "Invalid API Key provided"}}, {}
        if req.method != "GET" or req.path != "/v1/customers":
            return 404, {"error": {"message": f"Unrecognized request URL ({req.path})"}}, {}
        p = req.params
        limit = _bounded(p.get("limit"), 10, 100, "limit")
        rows = sorted(self.records, key=lambda r: (-r["created"], r["id"]))
        bounds: dict[str, Callable[[int, int], bool]] = {
            "gte": lambda v, b: v >= b, "gt": lambda v, b: v > b,
            "lte": lambda v, b: v <= b, "lt": lambda v, b: v < b}
        for op, test in bounds.items():
            if f"created[{op}]" in p:
                bound = int(p[f"created[{op}]"])  # integer seconds; anything else is a 400
                rows = [r for r in rows if test(r["created"], bound)]
        if "starting_after" in p:
            ids = [r["id"] for r in rows]
            if p["starting_after"] not in ids:
                return 400, {"error": {"message": f"No such customer: '{p['starting_after']}'",
                                       "param": "starting_after"}}, {}
            rows = rows[ids.index(p["starting_after"]) + 1:]
        return 200, {"object": "list", "url": "/v1/customers", "has_more": len(rows) > limit,
                     "data": rows[:limit]}, {}


class GitHubApi(LoopbackApi):
    """GitHub's repository issues and their comments (``comments``: issue number -> list)."""

    TOKEN = "ghp_loopback"
    REPO = "/repos/acme/widgets"

    def __init__(self) -> None:
        super().__init__()
        self.comments: dict[int, list[dict[str, Any]]] = {}

    def answer(self, req: Request) -> Reply:
        if req.headers.get("authorization") not in (f"Bearer {self.TOKEN}", f"token {self.TOKEN}"):
            return 401, {"message": "Bad credentials"}, {}
        p = req.params
        per_page = min(int(p.get("per_page", "30")), 100)
        page = int(p.get("page", "1"))
        if per_page < 1 or page < 1:
            return 422, {"message": "Validation Failed"}, {}
        if req.method == "GET" and req.path == f"{self.REPO}/issues":
            rows = list(self.records)
            if "since" in p:
                since = iso_instant(p["since"])
                rows = [r for r in rows if iso_instant(r["updated_at"]) >= since]
            key = "updated_at" if p.get("sort") == "updated" else "created_at"
            rows.sort(key=lambda r: (iso_instant(r[key]), r["id"]),
                      reverse=p.get("direction", "desc") == "desc")
        elif (m := re.fullmatch(rf"{self.REPO}/issues/(\d+)/comments", req.path)) is not None:
            rows = list(self.comments.get(int(m.group(1)), []))
        else:
            return 404, {"message": "Not Found"}, {}
        return 200, rows[(page - 1) * per_page: page * per_page], self._links(req, page, per_page,
                                                                              len(rows))

    def _links(self, req: Request, page: int, per_page: int, count: int) -> dict[str, str]:
        last = max(1, (count + per_page - 1) // per_page)

        def url(n: int) -> str:
            return f"{self.base_url}{req.path}?" + urlencode({**req.params, "page": n})

        links = []
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
        return {"Link": ", ".join(links)} if links else {}


class HubSpotApi(LoopbackApi):
    """HubSpot CRM v3 contacts: the list (cursor ``after``) and the search (POST)."""

    TOKEN = "pat-loopback"
    LIST = "/crm/v3/objects/contacts"
    SEARCH = "/crm/v3/objects/contacts/search"

    def answer(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.TOKEN}":
            return 401, {"status": "error", "category": "INVALID_AUTHENTICATION"}, {}
        if req.method == "GET" and req.path == self.LIST:
            limit = _bounded(req.params.get("limit"), 10, 100, "limit")
            rows = sorted(self.records, key=lambda r: int(r["id"]))
            return 200, self._page(rows, req.params.get("after"), limit), {}
        if req.method == "POST" and req.path == self.SEARCH:
            body = req.json() or {}
            limit = _bounded(str(body.get("limit", 10)), 10, 100, "limit")
            rows = [r for r in self.records if self._matches(r, body.get("filterGroups") or [])]
            for sort in reversed(body.get("sorts") or []):
                rows.sort(key=partial(self._value, name=sort["propertyName"]),
                          reverse=sort.get("direction") == "DESCENDING")
            after = body.get("after")
            page = self._page(rows, None if after in (None, "", 0, "0") else str(after), limit)
            return 200, {"total": len(rows), **page}, {}
        return 404, {"status": "error", "message": f"no route {req.method} {req.path}"}, {}

    @staticmethod
    def _page(rows: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
        """``after`` is the index of the first record to send (opaque to clients)."""
        start = int(after) if after else 0
        body: dict[str, Any] = {"results": rows[start:start + limit]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit),
                                       "link": f"?after={start + limit}"}}
        return body

    @staticmethod
    def _value(record: dict[str, Any], name: str) -> Any:
        value = record["properties"].get(name)
        if name in ("hs_lastmodifieddate", "createdate") and value is not None:
            return iso_instant(value)
        return value

    @classmethod
    def _matches(cls, record: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
        """Any group whose filters all hold (HubSpot: groups are OR-ed, filters AND-ed)."""
        if not groups:
            return True
        return any(all(cls._holds(record, f) for f in g.get("filters", [])) for g in groups)

    @classmethod
    def _holds(cls, record: dict[str, Any], flt: dict[str, Any]) -> bool:
        actual = cls._value(record, flt["propertyName"])
        wanted: Any = flt.get("value")
        if isinstance(actual, float):  # a date: epoch milliseconds or ISO 8601
            text = str(wanted)
            wanted = int(text) / 1000 if text.isdigit() else iso_instant(text)
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "GTE": lambda a, b: a >= b, "GT": lambda a, b: a > b, "LTE": lambda a, b: a <= b,
            "LT": lambda a, b: a < b, "EQ": lambda a, b: a == b}
        return actual is not None and ops[flt["operator"]](actual, wanted)

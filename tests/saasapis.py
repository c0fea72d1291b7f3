"""Stripe-, GitHub- and HubSpot-shaped APIs over loopback, written from their public docs' shapes.

Each serves one kind of record a test puts (``put``), pages and filters it the way the real API
documents, and keeps every request (``history``). Only what a sync touches is modelled; every
other path is 404. No wall clock: records carry the timestamps the test gives (answers are
``Date``-stamped now by ``tests/loopback.py``, so the test's timestamps must be in the past).

* ``StripeApi`` (https://docs.stripe.com/api/pagination, /api/customers/list): ``GET
  /v1/customers`` lists newest first (``created`` descending, then id), ``limit`` 1..100 (default
  10, else 400), ``starting_after=<id>`` continues after that object (an unknown id: 400),
  ``created[gte|gt|lte|lt]`` integer Unix seconds. Body ``{"object": "list", "url":
  "/v1/customers", "has_more": bool, "data": [...]}``. Auth: ``Authorization: Bearer <key>``.
  The list itself is ``stripe_list`` (``tests/cursorapis.py`` serves ``/v1/charges`` with it).
* ``GitHubApi`` (https://docs.github.com/rest/issues/issues#list-repository-issues, /rest/using-
  the-rest-api/using-pagination-in-the-rest-api): ``GET /repos/{owner}/{repo}/issues`` with
  ``per_page`` (default 30, at most 100), ``page`` (1-based), ``sort`` (``created`` |
  ``updated``), ``direction`` (``asc`` | ``desc``, default desc), ``since`` (ISO 8601: issues
  updated at or after it); ``GET /repos/{owner}/{repo}/issues/{number}/comments``. Bodies are
  top-level JSON lists; the next page is the ``Link`` header's ``rel="next"`` (with ``last``,
  ``first``, ``prev`` as GitHub sends them: ``github_links``). Auth: ``Authorization: Bearer``
  or ``token``.
* ``HubSpotApi`` (https://developers.hubspot.com/docs/api/crm/contacts, /crm/search): ``GET
  /crm/v3/objects/contacts`` with ``limit`` (default 10, at most 100) and ``after`` (an opaque
  cursor): ``{"results": [...], "paging": {"next": {"after": "...", "link": "..."}}}``, no
  ``paging`` on the last page (``hubspot_page``); ``POST /crm/v3/objects/contacts/search`` with
  JSON ``filterGroups``
  (filters ``propertyName``/``operator``/``value``: ``GTE``, ``GT``, ``LTE``, ``LT``, ``EQ`` on a
  property; dates as epoch milliseconds or ISO 8601), ``sorts``, ``limit`` (at most 100, else 400)
  and ``after``: ``{"total": n, "results": [...], "paging": ...}``. Records ``{"id", "properties":
  {..., "hs_lastmodifieddate", "createdate"}, "createdAt", "updatedAt", "archived"}``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlencode

from tests.loopback import LoopbackServer, Reply, Request

__all__ = ["GitHubApi", "HubSpotApi", "Request", "StripeApi", "github_links", "hubspot_page",
           "iso", "iso_instant", "ranged", "stripe_list"]

Record = dict[str, Any]
_RANGE: dict[str, Callable[[int, int], bool]] = {
    "gte": lambda v, b: v >= b, "gt": lambda v, b: v > b,
    "lte": lambda v, b: v <= b, "lt": lambda v, b: v < b}


def iso(seconds: int) -> str:
    """Unix seconds as GitHub/HubSpot write instants: ``2026-01-02T03:04:05Z``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_instant(text: str) -> float:
    """An ISO 8601 instant with a zone (``Z``, ``+00:00``, fractions) as Unix seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _bounded(text: str | None, default: int, high: int, name: str) -> int:
    value = default if text is None else int(text)
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be between 1 and {high}")
    return value


def ranged(records: list[Record], field: str, params: dict[str, str]) -> list[Record]:
    """Stripe's range filter ``field[gte|gt|lte|lt]=<integer>`` on an integer field.

    Raises ValueError (the server answers 400) when a bound is not an integer.
    """
    for op, holds in _RANGE.items():
        raw = params.get(f"{field}[{op}]")
        if raw is None:
            continue
        if not re.fullmatch(r"-?\d+", raw):
            raise ValueError(f"{field}[{op}] must be an integer, got {raw!r}")
        bound = int(raw)
        records = [r for r in records if holds(r[field], bound)]
    return records


def stripe_list(records: list[Record], params: dict[str, str], url: str, noun: str) -> Reply:
    """One page of a Stripe list (https://docs.stripe.com/api/pagination): newest first
    (``created`` descending, then id), ``created[...]`` ranges, ``limit`` 1..100 (default 10),
    ``starting_after`` an id of the list (unknown: 400 naming the ``noun``), ``has_more``.

    Raises ValueError (the server answers 400) for a bad ``limit`` or range bound.
    """
    limit = _bounded(params.get("limit"), 10, 100, "limit")
    rows = sorted(ranged(records, "created", params), key=lambda r: (-r["created"], r["id"]))
    after = params.get("starting_after")
    if after is not None:
        ids = [r["id"] for r in rows]
        if after not in ids:
            return Reply.json(400, {"error": {"message": f"No such {noun}: '{after}'",
                                              "param": "starting_after"}})
        rows = rows[ids.index(after) + 1:]
    return Reply.json(200, {"object": "list", "url": url, "has_more": len(rows) > limit,
                            "data": rows[:limit]})


def github_links(rels: list[tuple[str, str]]) -> dict[str, str]:
    """GitHub's paging header (RFC 8288): ``{"Link": '<url>; rel="next", ...'}``, or no header
    when there is no other page. ``rels`` are ``(rel, absolute url)`` in the order sent."""
    return {"Link": ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rels)} if rels else {}


def hubspot_page(rows: list[Record], after: str | None, limit: int) -> dict[str, Any]:
    """A HubSpot CRM list page: ``{"results": [...], "paging": {"next": {"after", "link"}}}``,
    no ``paging`` on the last page. ``after`` is the index of the first record to send (opaque
    to clients)."""
    start = int(after) if after else 0
    body: dict[str, Any] = {"results": rows[start:start + limit]}
    if start + limit < len(rows):
        body["paging"] = {"next": {"after": str(start + limit),
                                   "link": f"?after={start + limit}"}}
    return body


class LoopbackApi(LoopbackServer):
    """Serves ``reply`` for the records a test ``put``; a request it cannot read is a 400."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Record] = []

    def reply(self, req: Request) -> Reply:
        raise NotImplementedError

    def answer(self, request: Request) -> Reply:
        with self.lock:
            try:
                return self.reply(request)
            except (ValueError, KeyError, TypeError) as exc:
                return Reply.json(400, {"error": {"message": f"bad request: {exc}"}})

    def put(self, records: list[Record]) -> None:
        """Serve exactly these records from now on."""
        with self.lock:
            self.records = [json.loads(json.dumps(r)) for r in records]

    @property
    def history(self) -> list[Request]:
        """Every request, in the order received."""
        with self.lock:
            return list(self.received)

    def requests(self, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]


class StripeApi(LoopbackApi):
    """Stripe's list API for customers (records: ``{"id", "object", "created", ...}``)."""

    KEY = "sk_test_loopback"

    def reply(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.KEY}":
            return Reply.json(401, {"error": {"type": "invalid_request_error",
                                              "message": "Invalid API Key provided"}})
        if req.method != "GET" or req.path != "/v1/customers":
            return Reply.json(404, {"error": {"message": f"Unrecognized request URL ({req.path})"}})
        return stripe_list(self.records, req.params, "/v1/customers", "customer")


class GitHubApi(LoopbackApi):
    """GitHub's repository issues and their comments (``comments``: issue number -> list)."""

    TOKEN = "ghp_loopback"
    REPO = "/repos/acme/widgets"

    def __init__(self) -> None:
        super().__init__()
        self.comments: dict[int, list[Record]] = {}

    def reply(self, req: Request) -> Reply:
        if req.headers.get("authorization") not in (f"Bearer {self.TOKEN}", f"token {self.TOKEN}"):
            return Reply.json(401, {"message": "Bad credentials"})
        p = req.params
        per_page = min(int(p.get("per_page", "30")), 100)
        page = int(p.get("page", "1"))
        if per_page < 1 or page < 1:
            return Reply.json(422, {"message": "Validation Failed"})
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
            return Reply.json(404, {"message": "Not Found"})
        return Reply.json(200, rows[(page - 1) * per_page: page * per_page],
                          self._links(req, page, per_page, len(rows)))

    def _links(self, req: Request, page: int, per_page: int, count: int) -> dict[str, str]:
        last = max(1, (count + per_page - 1) // per_page)

        def url(n: int) -> str:
            return f"{self.base_url}{req.path}?" + urlencode({**req.params, "page": n})

        rels: list[tuple[str, str]] = []
        if page < last:
            rels += [("next", url(page + 1)), ("last", url(last))]
        if page > 1:
            rels += [("first", url(1)), ("prev", url(page - 1))]
        return github_links(rels)


class HubSpotApi(LoopbackApi):
    """HubSpot CRM v3 contacts: the list (cursor ``after``) and the search (POST)."""

    TOKEN = "pat-loopback"
    LIST = "/crm/v3/objects/contacts"
    SEARCH = "/crm/v3/objects/contacts/search"

    def reply(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.TOKEN}":
            return Reply.json(401, {"status": "error", "category": "INVALID_AUTHENTICATION"})
        if req.method == "GET" and req.path == self.LIST:
            limit = _bounded(req.params.get("limit"), 10, 100, "limit")
            rows = sorted(self.records, key=lambda r: int(r["id"]))
            return Reply.json(200, hubspot_page(rows, req.params.get("after"), limit))
        if req.method == "POST" and req.path == self.SEARCH:
            body = req.json() or {}
            limit = _bounded(str(body.get("limit", 10)), 10, 100, "limit")
            rows = [r for r in self.records if self._matches(r, body.get("filterGroups") or [])]
            for sort in reversed(body.get("sorts") or []):
                rows.sort(key=partial(self._value, name=sort["propertyName"]),
                          reverse=sort.get("direction") == "DESCENDING")
            after = body.get("after")
            page = hubspot_page(rows, None if after in (None, "", 0, "0") else str(after), limit)
            return Reply.json(200, {"total": len(rows), **page})
        return Reply.json(404, {"status": "error", "message": f"no route {req.method} {req.path}"})
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

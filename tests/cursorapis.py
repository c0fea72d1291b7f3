"""Loopback APIs with integer cursors, shaped as public APIs document their lists.

Written from the public docs' shapes, not from our library (its own filter and sort, with
Python integers):

* ``/v1/charges`` -- Stripe's list API (https://docs.stripe.com/api/pagination,
  https://docs.stripe.com/api/charges/list): ``limit`` (1-100, default 10), ``starting_after``
  (an object id: the page after it), ``created[gte|gt|lte|lt]`` (Unix seconds); newest first;
  the body ``{"object": "list", "url", "has_more", "data"}`` (``saasapis.stripe_list``).
* ``/events`` -- a page-number list sorted by its integer cursor ascending (``page`` from 1,
  ``per_page`` 1-100, ``created[gte]``), answering ``{"data": [...], "total_pages": n}``: what
  the keyset walk reads; with ``counts``, also ``meta.page.total_count`` (the analytics
  contract's count, which slices and delete capture's probes read); with ``ignore_filters``,
  ``created[gte]`` is ignored and every record served (an API without that filter, as dlt's
  own mock API: dlt filters on its side); with ``coarse_filter=N`` it is applied to its
  multiple of N below (an API filtering by the day of an instant).
* ``/users`` -- GitHub's ``GET /users`` (https://docs.github.com/rest/users/users): ``since``
  (an integer id: users with a greater id), ``per_page``; a top-level list; the next page in a
  ``Link: <...>; rel="next"`` header (RFC 8288, ``saasapis.github_links``).
* ``/crm/v3/objects/contacts`` -- HubSpot's CRM list
  (https://developers.hubspot.com/docs/api/crm/contacts): ``limit``, ``after``; the body
  ``{"results": [...], "paging": {"next": {"after": "<token>", "link"}}}``
  (``saasapis.hubspot_page``); each record's
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
import re
from typing import Any
from urllib.parse import urlencode

from tests.loopback import LoopbackServer, Reply, Request
from tests.saasapis import github_links, hubspot_page, ranged, stripe_list

__all__ = ["CursorApi"]

Record = dict[str, Any]


class CursorApi(LoopbackServer):
    """The APIs of the module docstring on ``base_url``; a context manager that stops them."""

    methods = ("GET",)

    def __init__(self, *, counts: bool = False, ignore_filters: bool = False,
                 coarse_filter: int = 1) -> None:
        super().__init__()
        self.counts = counts  # /events answers meta.page.total_count too
        self.ignore_filters = ignore_filters  # /events serves every record, whatever it is asked
        # /events applies created[gte] to its bucket: floored to a multiple of this (an API
        # that filters by the day of an instant serves the whole day)
        self.coarse_filter = coarse_filter
        self._data: dict[str, list[Record]] = {}
        self.queries: list[tuple[str, dict[str, str]]] = []

    def put(self, collection: str, records: list[Record]) -> None:
        """Serve ``records`` at ``collection`` (``charges``, ``events``, ``users``, ``repos``,
        ``repos/1/issues``, ``repos/1/issues/7/comments``)."""
        with self.lock:
            self._data[collection] = [dict(r) for r in records]

    def records(self, collection: str) -> list[Record]:
        with self.lock:
            return [dict(r) for r in self._data.get(collection, [])]

    def requests_to(self, pattern: str) -> int:
        """How many requests asked a path matching ``pattern`` (a regex, whole path)."""
        with self.lock:
            return sum(1 for path, _ in self.queries if re.fullmatch(pattern, path))

    def answer(self, request: Request) -> Reply:
        params = request.params
        with self.lock:
            self.queries.append((request.path, params))
        try:
            return self._answer(request.path, params)
        except (ValueError, KeyError) as exc:
            return Reply.json(400, {"error": {"message": str(exc)}})

    def _answer(self, path: str, params: dict[str, str]) -> Reply:
        if path == "/v1/charges":
            return stripe_list(self.records("charges"), params, "/v1/charges", "charge")
        if path == "/events":
            return self._events(params)
        if path == "/users":
            return self._github_users(params)
        if path == "/crm/v3/objects/contacts":
            return self._hubspot(params)
        match = re.fullmatch(r"/(repos(?:/\d+/issues(?:/\d+/comments)?)?)", path)
        if match is None or match.group(1) not in self._data:
            return Reply.json(404, {"message": "Not Found"})
        records = self.records(match.group(1))
        field = "updated" if path.endswith("/issues") else "id"
        return Reply.json(200, ranged(records, field, params))

    def _events(self, params: dict[str, str]) -> Reply:
        page, size = int(params.get("page", "1")), int(params.get("per_page", "10"))
        if page < 1 or not 1 <= size <= 100:
            raise ValueError("page >= 1, per_page in 1..100")
        if "created[gte]" in params and self.coarse_filter > 1:
            floor = int(params["created[gte]"]) // self.coarse_filter * self.coarse_filter
            params = {**params, "created[gte]": str(floor)}
        records = self.records("events") if self.ignore_filters \
            else ranged(self.records("events"), "created", params)
        records.sort(key=lambda r: (r["created"], r["id"]))
        pages = (len(records) + size - 1) // size
        body: dict[str, Any] = {"data": records[(page - 1) * size: page * size],
                                "total_pages": pages}
        if self.counts:  # the count a sliced walk and delete capture read (the contract's)
            body["meta"] = {"page": {"total_count": len(records)}}
        return Reply.json(200, body)

    def _hubspot(self, params: dict[str, str]) -> Reply:
        limit = int(params.get("limit", "10"))
        records = sorted(self.records("contacts"), key=lambda r: int(r["id"]))
        if "since" in params:
            since = dt.datetime.fromisoformat(params["since"])
            records = [r for r in records if dt.datetime.fromisoformat(
                r["properties"]["hs_lastmodifieddate"]) >= since]
        return Reply.json(200, hubspot_page(records, params.get("after"), limit))

    def _github_users(self, params: dict[str, str]) -> Reply:
        since, size = int(params.get("since", "0")), int(params.get("per_page", "30"))
        records = sorted((r for r in self.records("users") if r["id"] > since),
                         key=lambda r: r["id"])
        page = records[:size]
        rels = []
        if len(records) > size:
            query = urlencode({"per_page": size, "since": page[-1]["id"]})
            rels.append(("next", f"{self.base_url}/users?{query}"))
        return Reply.json(200, page, github_links(rels))

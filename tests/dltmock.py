"""dlt's rest_api mock API, as a real HTTP server over loopback.

dlt tests its ``rest_api_source`` offline against a mock API that ``requests_mock`` answers
inside the process (dlt-hub/dlt, ``tests/sources/rest_api/conftest.py``, fixture
``mock_api_server``; ``tests/sources/helpers/rest_client/conftest.py`` re-exports it; the page
arithmetic is in ``tests/sources/helpers/rest_client/paginators.py``). Our library talks HTTP
through httpx, so this module serves the same API on a loopback port instead: the same routes,
records, ids, page sizes and paging signals, written here from dlt's rules (no dlt code). Each
route's docstring names the dlt route it reproduces.

The rules (dlt's conftest, constants ``DEFAULT_PAGE_SIZE = 5``, ``DEFAULT_TOTAL_PAGES = 5``,
``DEFAULT_LIMIT = 10``, ``DEFAULT_REACTIONS_COUNT = 5``, ``DEFAULT_COMMENTS_COUNT = 50``):

* posts: 25 records ``{"id": i, "title": "Post i"}``, i = 0..24 (``generate_posts``);
  with reactions: each also has ``reactions``, 5 records ``{"id": j, "title": "Reaction j for
  post i"}`` (``generate_posts_with_reactions``).
* comments of post p: 50 records ``{"id": i, "post_id": p, "body": "Comment i for post p"}``
  (``generate_comments``).
* page-number paging (``paginate_by_page_number`` with ``PageNumberPaginator``): 5 records a
  page, the page from the ``page`` query parameter (default: the base page, 1 or 0), the body
  ``{<records key>: [...], "page": n, "total_pages": t}`` plus ``"next_page"``, the URL of the
  next page (its query is ``page=n+1`` alone, absolute unless the route says relative), only
  while ``n + 1 < t + base``. A records key of ``None`` is serialised as the JSON key ``"null"``
  (dlt serialises with orjson's ``OPT_NON_STR_KEYS``).
* offset paging (``OffsetPaginator``): ``offset`` (default 0), ``limit`` (default 10); body
  ``{"data": [...], "total_records", "offset", "limit"}``.
* cursor paging (``CursorPaginator``): ``cursor`` is the index of the first record (default 0),
  5 a page; body ``{"data": [...], "next_cursor": index or null}``.

requests_mock answers only URLs a route matches; any other raises ``NoMockAddress`` in the
client (a connection error). Here such a request is answered 404 ``{"error": "no route ..."}``.
dlt's route patterns also fix which query a route takes (``/posts_no_key(\\?page=\\d+)?$``
takes ``page`` alone, ``/posts_under_a_different_key$`` no query at all); those rules are kept.
Where dlt's pattern fixes the order of two parameters (``?offset=\\d+&limit=\\d+``), any order is
accepted: a query's order carries no meaning in HTTP.

A test can add a route (dlt's tests do, with ``mock_api_server.get(url, json=...,
status_code=...)``)
with ``add_route``. Every request is kept in ``history`` (method, path, query, headers, body), as
requests_mock's ``request_history``. The server's thread stops and is joined when the ``with``
block ends.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

from tests import loopback

__all__ = ["COMMENTS", "PAGE_SIZE", "POSTS", "REACTIONS", "TOTAL_PAGES", "DltMockApi",
           "Request", "comments", "posts"]

PAGE_SIZE = 5
TOTAL_PAGES = 5
POSTS = PAGE_SIZE * TOTAL_PAGES  # 25
COMMENTS = 50  # per post
REACTIONS = 5  # per post
LIMIT = 10  # offset paging's default limit


def posts(count: int = POSTS) -> list[dict[str, Any]]:
    """dlt's ``generate_posts``: ids 0..count-1, titles ``Post <id>``."""
    return [{"id": i, "title": f"Post {i}"} for i in range(count)]


def posts_with_reactions() -> list[dict[str, Any]]:
    """dlt's ``generate_posts_with_reactions``: each post carries 5 reactions."""
    return [{**p, "reactions": [{"id": j, "title": f"Reaction {j} for post {p['id']}"}
                                for j in range(REACTIONS)]} for p in posts()]


def comments(post_id: int) -> list[dict[str, Any]]:
    """dlt's ``generate_comments``: 50 comments of one post."""
    return [{"id": i, "post_id": post_id, "body": f"Comment {i} for post {post_id}"}
            for i in range(COMMENTS)]


@dataclass(frozen=True)
class Request(loopback.Request):
    """One request as the server received it; ``params`` keeps every value of a name (as
    requests_mock's ``qs``)."""

    @property
    def params(self) -> dict[str, list[str]]:  # type: ignore[override]
        return parse_qs(self.query, keep_blank_values=True)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are, or None for no body
    headers: dict[str, str] = field(default_factory=dict)


class _NoRoute(Exception):
    pass


def _int(params: dict[str, list[str]], key: str, default: int) -> int:
    values = params.get(key)
    return default if not values else int(values[0])


class _Api:
    """The routes. ``origin`` is the scheme and host the client used (for absolute next URLs)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    # -- paging rules ---------------------------------------------------------------------

    def by_page_number(self, req: Request, records: list[dict[str, Any]], *,
                       key: str | None = "data", base: int = 1,
                       absolute: bool = True) -> dict[str, Any]:
        """``paginate_by_page_number``: 5 a page, ``next_page`` while ``n + 1 < t + base``."""
        number = _int(req.params, "page", base)
        start = (number - base) * PAGE_SIZE
        total_pages = (len(records) + PAGE_SIZE - 1) // PAGE_SIZE
        body: dict[str, Any] = {"null" if key is None else key: records[start:start + PAGE_SIZE],
                                "page": number, "total_pages": total_pages}
        if number + 1 < total_pages + base:
            query = urlencode({"page": number + 1})
            body["next_page"] = (f"{self.origin}{req.path}?{query}" if absolute
                                 else f"{req.path}?{query}")
        return body

    @staticmethod
    def only(req: Request, *allowed: str) -> None:
        """dlt's route pattern admits only these query parameters (each an integer)."""
        for name, values in req.params.items():
            if name not in allowed or not all(v.isdigit() for v in values):
                raise _NoRoute

    # -- routes -------------------------------------------------------------------------------

    def route(self, req: Request) -> Reply:  # noqa: C901, PLR0911, PLR0912 - one table of routes
        m, p = req.method, req.path
        if m == "GET":
            if p == "/posts_no_key":  # posts_no_key: the list under the key "null"
                self.only(req, "page")
                return Reply(body=self.by_page_number(req, posts(), key=None))
            if p == "/posts":  # posts: any query
                return Reply(body=self.by_page_number(req, posts()))
            if p == "/posts_zero_based":  # posts_zero_based: base page 0
                self.only(req, "page")
                return Reply(body=self.by_page_number(req, posts(), base=0))
            if p == "/posts_header_link":  # posts_header_link: a top-level list, Link rel=next
                self.only(req, "page")
                body = self.by_page_number(req, posts())
                headers = ({"Link": f'<{body["next_page"]}>; rel="next"'}
                           if "next_page" in body else {})
                return Reply(body=body["data"], headers=headers)
            if p == "/posts_header_cursor":  # posts_header_cursor: the next page in `cursor`
                self.only(req, "page")
                body = self.by_page_number(req, posts())
                headers = {"cursor": str(body["page"] + 1)} if "next_page" in body else {}
                return Reply(body=body["data"], headers=headers)
            if p == "/posts_relative_next_url":  # posts_relative_next_url
                self.only(req, "page")
                return Reply(body=self.by_page_number(req, posts(), absolute=False))
            if p == "/posts_offset_limit":  # posts_offset_limit (OffsetPaginator)
                self.only(req, "offset", "limit")
                if set(req.params) not in (set(), {"offset", "limit"}):
                    raise _NoRoute
                offset = _int(req.params, "offset", 0)
                limit = _int(req.params, "limit", LIMIT)
                records = posts()
                return Reply(body={"data": records[offset:offset + limit],
                                   "total_records": len(records), "offset": offset,
                                   "limit": limit})
            if p == "/posts_cursor":  # posts_cursor (CursorPaginator): cursor = first index
                self.only(req, "cursor")
                cursor = _int(req.params, "cursor", 0)
                records = posts()
                nxt = cursor + PAGE_SIZE
                return Reply(body={"data": records[cursor:nxt],
                                   "next_cursor": nxt if nxt < len(records) else None})
            if (match := re.fullmatch(r"/posts/(\d+)/comments", p)) is not None:  # post_comments
                return Reply(body=self.by_page_number(req, comments(int(match.group(1)))))
            if p == "/post_comments":  # post_comments_via_query_param
                return Reply(body=self.by_page_number(
                    req, comments(_int(req.params, "post_id", 0))))
            if p == "/post_comments_via_headers":  # post_comments_via_header
                return Reply(body=self.by_page_number(
                    req, comments(int(req.headers["post_id"]))))
            if (match := re.fullmatch(r"/posts/(\d+)", p)) is not None:  # post_detail
                return Reply(body=self.detail(int(match.group(1))))
            if p == "/post_detail":  # post_detail_via_query_param
                return Reply(body=self.detail(_int(req.params, "post_id", 0)))
            if p == "/post_detail_via_headers":  # post_detail_via_header
                return Reply(body=self.detail(int(req.headers["post_id"])))
            if (match := re.match(r"/posts/(\d+)/some_details_", p)) is not None:
                return self.some_details(int(match.group(1)), p[match.end():])
            if p == "/posts_under_a_different_key":  # posts_with_results_key: no query admitted
                if req.query:
                    raise _NoRoute
                return Reply(body=self.by_page_number(req, posts(), key="many-results"))
            if p.startswith("/protected/posts/"):
                return self.protected(req, p.removeprefix("/protected/posts/"))
            if p == "/posts_cursor_null_terminated":  # posts_cursor_null_terminated (#2932)
                return Reply(body=self.null_terminated(req))
            if p == "/posts_with_reactions":  # posts_with_reactions
                return Reply(body=self.by_page_number(req, posts_with_reactions()))
        if m == "POST":
            if p == "/posts_offset_limit_via_json_body":  # offset and limit in the JSON body
                body = req.json() or {}
                offset, limit = int(body.get("offset", 0)), int(body.get("limit", LIMIT))
                records = posts()
                return Reply(body={"data": records[offset:offset + limit],
                                   "total_records": len(records), "offset": offset,
                                   "limit": limit})
            if p == "/post_comments":  # post_comments_via_json_param
                post_id = int((req.json() or {}).get("post_id", 0))
                return Reply(body=self.by_page_number(req, comments(post_id)))
            if p == "/post_comments_via_form_data":  # form fields, or the raw body an integer
                return Reply(body=self.by_page_number(req, comments(self.form_post_id(req))))
            if p == "/post_detail":  # post_detail_via_json_param
                return Reply(body=self.detail(int((req.json() or {}).get("post_id", 0))))
            if p == "/posts/search":  # search_posts
                return Reply(body=self.search(req.json() or {}))
            if (re.fullmatch(r"/posts/search_by_id/\d+", p)) is not None:  # search_posts_by_id
                body = req.json() or {}
                post_id = body.get("post_id", 0)
                return Reply(body={"id": int(post_id),
                                   "title": body.get("more", {}).get("title", 0),
                                   "body": f"Post body {post_id}",
                                   "more": "More is equale to id: "
                                           f"{body.get('more_array', [])[0]}"})
            if p in ("/oauth/token", "/oauth/token-expires-now"):
                if not self.oauth_authorized(req):
                    return Reply(401, {"error": "Unauthorized"})
                return Reply(body={"access_token": "test-token",
                                   "expires_in": 3600 if p == "/oauth/token" else 0})
            if p == "/auth/refresh":
                if (req.json() or {}).get("refresh_token") == "valid-refresh-token":
                    return Reply(body={"access_token": "new-valid-token"})
                return Reply(401, {"error": "Invalid refresh token"})
            if p == "/post_form_data":  # echoes form fields (parsed) or the raw text
                if req.headers.get("content-type") == "application/x-www-form-urlencoded":
                    return Reply(body={"data": parse_qs(req.body.decode())})
                return Reply(body={"error": "Unsupported content type: "
                                            f"{req.headers.get('content-type')}",
                                   "data": req.body.decode()})
            if p == "/post_raw_data":
                return Reply(body={"data": req.body.decode()})
            if p == "/posts_form_data_incremental":
                return Reply(body=self.by_page_number(req, posts()))
        raise _NoRoute

    @staticmethod
    def detail(post_id: int) -> dict[str, Any]:
        """post_detail (all three forms): one JSON object, not a list."""
        return {"id": post_id, "body": f"Post body {post_id}"}

    def some_details(self, post_id: int, kind: str) -> Reply:
        """post_detail_404 / _404_422 / _204: post 0 answers its detail; the others fail.

        dlt's patterns have no ``$``, so ``some_details_404_others_422`` is its own route
        (registered later, matched first) and ``some_details_404<anything>`` is the 404 route.
        """
        if post_id < 1:
            return Reply(body=self.detail(post_id))
        if kind.startswith("404_others_422"):
            if post_id == 1:
                return Reply(404, {"error": f"Post with id {post_id} not found"})
            return Reply(422, None)
        if kind.startswith("404"):
            return Reply(404, {"error": f"Post with id {post_id} not found"})
        if kind.startswith("204"):
            return Reply(204, None)
        raise _NoRoute

    def protected(self, req: Request, kind: str) -> Reply:
        """protected_basic_auth (user:password), _bearer_token (test-token), _api_key."""
        auth = req.headers.get("authorization")
        good = {
            "basic-auth": auth == "Basic " + base64.b64encode(b"user:password").decode(),
            "bearer-token": auth == "Bearer test-token",
            "bearer-token-plain-text-error": auth == "Bearer test-token",
            "api-key": req.headers.get("x-api-key") == "test-api-key",
        }
        if kind not in good:
            raise _NoRoute
        if good[kind]:
            return Reply(body=self.by_page_number(req, posts()))
        if kind == "bearer-token-plain-text-error":
            return Reply(401, b"Unauthorized")
        return Reply(401, {"error": "Unauthorized"})

    @staticmethod
    def null_terminated(req: Request) -> dict[str, Any]:
        """posts_cursor_null_terminated: 10 users, then 4, then ``users: null`` (dlt#2932)."""
        cursor = req.params.get("cursor", [None])[0]
        if cursor is None:
            return {"users": [{"id": i, "name": f"User {i}"} for i in range(10)],
                    "next_token": "cursor_page_2"}
        if cursor == "cursor_page_2":
            return {"users": [{"id": i, "name": f"User {i}"} for i in range(10, 14)],
                    "next_token": "cursor_final"}
        if cursor == "cursor_final":
            return {"users": None, "next_token": None}
        raise _NoRoute

    @staticmethod
    def search(body: dict[str, Any]) -> dict[str, Any]:
        """search_posts: page_size x page_count posts, ids above ``ids_greater_than``, paged by
        the body's ``page`` (1-based); ``next_page`` the next number or null."""
        size = int(body.get("page_size", PAGE_SIZE))
        count = int(body.get("page_count", TOTAL_PAGES))
        number = int(body.get("page") or 1)
        records = [r for r in posts(size * count) if r["id"] > int(body.get("ids_greater_than", 0))]
        pages = (len(records) + size - 1) // size
        return {"data": records[(number - 1) * size: number * size],
                "next_page": number + 1 if number < pages else None, "total_pages": count}

    @staticmethod
    def form_post_id(req: Request) -> int:
        """post_comments_via_form_data: a form's ``post_id``, or the raw body as the integer."""
        ctype = req.headers.get("content-type")
        if ctype and ctype.lower() == "application/x-www-form-urlencoded":
            form = parse_qs(req.body.decode()) if req.body else {}
            return int(form.get("post_id", ["0"])[0])
        if not ctype:
            return int(req.body.decode())
        raise ValueError(f"Unsupported content type: {ctype}")

    @staticmethod
    def oauth_authorized(req: Request) -> bool:
        form = parse_qs(req.body.decode())
        grant = form.get("grant_type", [""])[0]
        if "jwt-bearer" in grant:
            return True
        return ("client_credentials" in grant
                and form.get("client_secret") == ["test-client-secret"]
                and form.get("client_id") == ["test-client-id"])


class DltMockApi(loopback.LoopbackServer):
    """dlt's mock API on ``base_url`` (``http://127.0.0.1:<port>``); a context manager."""

    def __init__(self) -> None:
        super().__init__()
        self._extra: dict[tuple[str, str], Reply] = {}

    @property
    def history(self) -> list[Request]:
        """Every request, in the order received (requests_mock's ``request_history``)."""
        with self.lock:
            return [Request(**vars(r)) for r in self.received]

    def add_route(self, method: str, path: str, body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> None:
        """A route a test adds (dlt: ``mock_api_server.get(url, json=..., status_code=...)``)."""
        self._extra[(method, path)] = Reply(status, body, headers or {})

    def calls(self, pattern: str) -> list[Request]:
        """The requests whose path matches ``pattern`` from its start (dlt's
        ``_filter_by_path_pattern``), in the order received."""
        compiled = re.compile(pattern)
        return [r for r in self.history if compiled.match(r.path)]

    def answer(self, request: loopback.Request) -> loopback.Reply:
        req = Request(**vars(request))
        extra = self._extra.get((req.method, req.path))
        try:
            reply = extra if extra is not None else _Api(self.base_url).route(req)
        except _NoRoute:
            reply = Reply(404, {"error": f"no route for {req.method} {req.target}"})
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # the callback raised
            reply = Reply(500, {"error": f"mock route failed: {exc!r}"})
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body, separators=(",", ":")).encode()
        return loopback.Reply(reply.status, data, reply.headers)


def single_params(query: str) -> dict[str, str]:
    """A query (or form body) as one value per key (dlt's ``_parse_single_valued_qs``)."""
    return dict(parse_qsl(query, keep_blank_values=True))



"""A small loopback API whose routes a test writes: any method, any path, JSON bodies.

``tests/recordserver.py`` serves the contract's paged ``GET /v1/<resource>``; APIs shaped like
HubSpot's search (``POST`` with a JSON body), detail endpoints (``/posts/{id}``) or APIs that
want their own headers need routes of their own. A route is a function of the request that
returns ``(status, body)`` (the body as a JSON-able value, sent as JSON) ::

    def search(request: Request) -> tuple[int, Any]:
        return 200, {"results": [...], "paging": None}

    with RouteServer({("POST", r"/crm/v3/objects/contacts/search"): search}) as server:
        ... run_sync against server.base_url ...
    server.requests   # every request as received: method, path, query, headers, body

A request no route matches is answered 404 with the path in its body (as many APIs echo it).
Nothing here imports the library: it is the other side of the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests import loopback

__all__ = ["Request", "RouteServer"]


@dataclass(frozen=True)
class Request:
    """One request as the server received it (``query`` decoded; ``json`` the parsed body)."""

    method: str
    path: str
    target: str  # path and query exactly as sent
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names
    body: bytes
    match: re.Match[str] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, request: loopback.Request, match: re.Match[str] | None = None) -> Request:
        return cls(request.method, request.path, request.target, request.params,
                   request.headers, request.body, match)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Route = Callable[[Request], tuple[int, Any]]


class RouteServer(loopback.LoopbackServer):
    """The routes ``{(method, path regex): route}`` served on a free loopback port."""

    def __init__(self, routes: Mapping[tuple[str, str], Route]) -> None:
        super().__init__()
        self.routes = dict(routes)

    @property
    def requests(self) -> list[Request]:
        """Every request as received, in order."""
        with self.lock:
            return [Request.of(r) for r in self.received]

    def answer(self, request: loopback.Request) -> loopback.Reply:
        for (method, pattern), route in self.routes.items():
            match = re.fullmatch(pattern, request.path)
            if method == request.method and match is not None:
                return loopback.Reply.json(*route(Request.of(request, match)))
        return loopback.Reply.json(404, {"errors": [{"detail": f"no route for {request.target}"}]})

    def to(self, path_pattern: str) -> list[Request]:
        """The requests whose path matched ``path_pattern``, in order."""
        return [r for r in self.requests if re.fullmatch(path_pattern, r.path)]

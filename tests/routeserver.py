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
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

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

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Route = Callable[[Request], tuple[int, Any]]


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    owner: RouteServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no thread waits on keep-alive
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, url.path, self.path,
                          dict(parse_qsl(url.query, keep_blank_values=True)),
                          {k.lower(): v for k, v in self.headers.items()}, body)
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(request)
        status, answer = 404, {"errors": [{"detail": f"no route for {self.path}"}]}
        for (method, pattern), route in owner.routes.items():
            match = re.fullmatch(pattern, url.path)
            if method == self.command and match is not None:
                status, answer = route(Request(**{**request.__dict__, "match": match}))
                break
        data = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle


class RouteServer:
    """The routes ``{(method, path regex): route}`` served on a free loopback port."""

    def __init__(self, routes: Mapping[tuple[str, str], Route]) -> None:
        self.routes = dict(routes)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def to(self, path_pattern: str) -> list[Request]:
        """The requests whose path matched ``path_pattern``, in order."""
        with self.lock:
            return [r for r in self.requests if re.fullmatch(path_pattern, r.path)]

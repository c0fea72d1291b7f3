"""The one loopback HTTP server scaffold the test APIs build on (the other side of the wire).

``tests/recordserver.py``, ``tests/routeserver.py``, ``tests/dltmock.py``, ``tests/saasapis.py``
and ``tests/cursorapis.py`` each answer requests their own way; the plumbing is here, once:

* a ``ThreadingHTTPServer`` on a free ``127.0.0.1`` port, bound when the ``with`` block starts;
  its serving thread is joined when the block ends, and so is every handler thread
  (``block_on_close``, no daemon handlers): no thread outlives its test;
* ``GET`` and ``POST`` (``methods``), one request per connection (HTTP/1.0), so no handler
  thread waits on a keep-alive socket;
* every request kept, as received, in ``received`` (method, target, path, query, headers, body);
* answers as ``Reply``: a status, a body (JSON text; empty sends no ``Content-Type``) and
  headers (``Link``, ``cursor``...). Each answer carries a ``Date`` from ``clock`` (Unix time,
  read as the request comes; ``None`` sends no ``Date``).

A server subclasses ``LoopbackServer`` and writes ``answer(request) -> Reply``. Nothing here
imports the library.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = ["LoopbackServer", "Reply", "Request"]


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    query: str  # the query string as sent, undecoded
    headers: dict[str, str]  # names lower-cased
    body: bytes
    target: str = ""  # path and query exactly as sent
    raw_headers: tuple[tuple[str, str], ...] = ()  # names as sent, in order

    @property
    def params(self) -> dict[str, str]:
        """The query decoded, one value per name (the last one sent), blanks kept."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def json(self) -> Any:
        """The body parsed as JSON; None when there is no body."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    """An answer: ``body`` is sent as it is (JSON text), ``b""`` sends no body at all."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """``value`` serialised as compact JSON (as orjson and most APIs send it)."""
        return cls(status, json.dumps(value, separators=(",", ":")).encode(), headers or {})


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every handler thread
    owner: LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no thread waits on keep-alive
    timeout = 30
    dated: float | None = None  # the Date of the answer under way (Unix time)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        """As the stdlib's, but dated by the owner's clock (or not at all)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        if self.dated is not None:
            self.send_header("Date", self.date_time_string(self.dated))

    def _handle(self) -> None:
        owner = self.server.owner
        self.dated = owner.clock()  # as the request comes, before the answer is worked out
        if self.command not in owner.methods:  # as the stdlib answers a method it lacks
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = tuple(self.headers.items())
        request = Request(self.command, url.path, url.query, {k.lower(): v for k, v in raw},
                          self.rfile.read(length) if length else b"", self.path, raw)
        with owner.lock:
            owner.received.append(request)
        reply = owner.answer(request)
        self.send_response(reply.status)
        if reply.body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = _handle


class LoopbackServer:
    """Serves ``answer`` on ``base_url`` inside a ``with`` block; a subclass writes ``answer``."""

    methods: tuple[str, ...] = ("GET", "POST")  # any other method is answered 501, unlogged

    def __init__(self, *, clock: Callable[[], float | None] = time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()  # guards ``received`` and a subclass's own state
        self.received: list[Request] = []  # every request, in the order received
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, while the ``with`` block runs."""
        assert self._server is not None, f"use {type(self).__name__} as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

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
        self._server.server_close()  # joins the handler threads (block_on_close)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"{type(self).__name__} thread did not stop"

"""Request handling: one core handler behind both the ASGI app and the sync httpx transport.

``SandboxApp.handle`` is a plain function of method, path, query, headers and body that
returns a ``Reply``: status, headers, body bytes, plus what to do on the wire (wait
first, or drop the connection part-way). The ASGI app and ``SandboxTransport`` only
carry a ``Reply`` out, so the loopback server and in-process tests cannot drift apart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import email.utils
import http
import json
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args
from urllib.parse import parse_qsl, quote, unquote, unquote_plus

import httpx

from .world import RESOURCES, Sort, World, parse_timestamp

__all__ = [
    "DeliberateReset",
    "FaultKind",
    "Mangle",
    "FaultRule",
    "Reply",
    "SandboxApp",
    "SandboxSettings",
    "SandboxTransport",
]

Headers = tuple[tuple[str, str], ...]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
FaultKind = Literal[
    "status", "reset", "truncate", "html200", "empty200", "stall", "data_not_list", "same_page",
    "mangle",
    # Real servers, not our contract (issue 11): each is what some public API really sends.
    "quota_exhausted",  # a good page announcing an exhausted quota, reset in ``seconds``
    "retry_after_date",  # 429, Retry-After as an HTTP-date ``seconds`` ahead on a skewed clock
    "lying_encoding",  # a plain JSON page declaring Content-Encoding: gzip
    "echo_url",  # a 400 whose detail echoes the request URL as received (query encoded)
]
# How kind "quota_exhausted" announces the reset (``FaultRule.style``).
QuotaStyle = Literal[
    "unix",  # X-RateLimit-Remaining: 0, X-RateLimit-Reset: <Unix time of the reset> (GitHub)
    "delta",  # X-RateLimit-Remaining: 0, X-RateLimit-Reset: <seconds>
    "ietf",  # RateLimit: "default";r=0;t=<seconds> (draft-ietf-httpapi-ratelimit-headers-08+)
    "ietf_dict",  # RateLimit: limit=100, remaining=0, reset=<seconds> (drafts -06/-07)
]
# Payloads that break the contract, for kind "mangle" (``FaultRule.mangle`` names one).
Mangle = Literal[
    "record_not_object",  # the first record is a string
    "id_missing",  # the first record has no id
    "id_null",  # the first record's id is null
    "updated_at_missing",  # the first record has no updated_at
    "updated_at_garbage",  # the first record's updated_at is not a timestamp
    "views_string",  # every record's views is a string (a field changing type)
    "oversize",  # the page holds more records than page[size] asked for
    "total_pages",  # meta.page.total_pages is replaced by ``FaultRule.value``
    "empty_data",  # the page's data is [] while meta and links still say there is more
]

# How pages are served (``SandboxSettings.pagination``, or per request ``?pagination=``):
# the same world and the same filter and sort, through the styles real APIs use.
Pagination = Literal[
    "page_number",  # the contract: page[number], page[size], meta.page, links (JSON:API)
    "offset",  # offset, limit; {"data", "total"} (dlt's offset defaults)
    "cursor",  # cursor, limit; {"data", "cursors": {"next"}} (an opaque server-side keyset)
    "header_link",  # page, per_page; Link: <...>; rel="next" (RFC 8288, as GitHub pages)
    "json_link",  # cursor, limit; {"data", "pagination": {"next": <absolute URL>}}
]
PAGINATIONS: Final[tuple[str, ...]] = get_args(Pagination)
_JSON: Final = (("content-type", "application/json"),)
_SORTS: Final[tuple[Sort, ...]] = ("id", "updated_at", "-updated_at")
# Child endpoints, ``/v1/<parent>/{id}/<child>``: the child records whose field names the parent.
CHILDREN: Final[dict[tuple[str, str], str]] = {("deals", "tasks"): "deal_id"}
_TRANSIENT: Final = (500, 502, 503, 504)
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
_HTML: Final = (
    b"<!DOCTYPE html><html><head><title>Scheduled maintenance</title></head>"
    b"<body><h1>We'll be back soon</h1><p>The API is under maintenance.</p></body></html>"
)
# Settings an admin call may change at runtime; credentials and seeds stay fixed.
_RUNTIME_SETTINGS: Final = frozenset(
    {
        "latency_ms",
        "rate_limit",
        "fault_rate",
        "reset_rate",
        "omit_meta",
        "late_visibility",
        "mutate_every_n_requests",
        "mutate_rate",
        "mutate_updates",
        "mutate_creates",
        "mutate_deletes",
        "pagination",
        "oauth_token_ttl",
        "oauth_token_uses",
    }
)
TOKEN_PATH: Final = "/oauth/token"


class DeliberateReset(Exception):
    """Raised inside the ASGI app to make the server drop a connection mid-body, on purpose."""


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How the sandbox behaves: credentials, speed, and the faults it injects.

    Rates are probabilities per API request, drawn from a generator seeded with
    ``fault_seed``, so a given request sequence meets the same faults every run.
    """

    api_key: str = "sandbox-key"
    organization_id: str = "org_sandbox"
    latency_ms: float = 0.0
    # Requests per second per key, as a token bucket holding one second of requests.
    rate_limit: float = 0.0
    fault_rate: float = 0.0
    reset_rate: float = 0.0
    omit_meta: bool = False
    late_visibility: bool = True
    # Mutate mode: a small advance of the requested resource after every n-th page
    # served, and/or after any page with probability mutate_rate.
    mutate_every_n_requests: int = 0
    mutate_rate: float = 0.0
    mutate_updates: int = 3
    mutate_creates: int = 1
    mutate_deletes: int = 0
    fault_seed: int = 0
    pagination: Pagination = "page_number"
    # OAuth2 client credentials (RFC 6749 §4.4) at POST /oauth/token, on when a client id is
    # set: its tokens are accepted as ``Authorization: Bearer`` besides the API key. A token
    # lives ``oauth_token_ttl`` seconds, and (when > 0) serves ``oauth_token_uses`` API
    # requests, after which it is refused with a 401 as an expired one is (a test's expiry
    # that does not depend on the clock).
    oauth_client_id: str = ""
    oauth_client_secret: str = ""
    oauth_token_ttl: float = 3600.0
    oauth_token_uses: int = 0

    def __post_init__(self) -> None:
        if self.pagination not in PAGINATIONS:
            raise ValueError(f"pagination must be one of {PAGINATIONS}, got {self.pagination!r}")
        for name in ("fault_rate", "reset_rate", "mutate_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {value!r}")
        for name in ("latency_ms", "rate_limit", "mutate_every_n_requests", "oauth_token_ttl",
                     "oauth_token_uses"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.mutate_updates < 0 or self.mutate_creates < 0 or self.mutate_deletes < 0:
            raise ValueError("mutate_updates, mutate_creates and mutate_deletes must be >= 0")

    def public(self) -> dict[str, Any]:
        """The settings as JSON, for the admin endpoint."""
        return dataclasses.asdict(self)


@dataclass(slots=True)
class FaultRule:
    """A scripted fault: the next ``times`` API requests that match get ``kind`` instead.

    ``resource`` and ``page`` narrow the match (None matches any). ``status`` and
    ``retry_after`` (the header's literal text, sent only when set) serve kind
    ``status``; ``seconds`` serves kind ``stall`` (the stall), ``quota_exhausted`` and
    ``retry_after_date`` (the wait announced); ``mangle`` names what kind ``mangle`` breaks in
    an otherwise correct page. ``skew`` sets how far the server's clock (its ``Date`` header
    and the times it announces) runs ahead of the real one; ``style`` is how
    ``quota_exhausted`` announces its reset.
    """

    kind: FaultKind
    resource: str | None = None
    page: int | None = None
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    seconds: float = 1.0
    mangle: Mangle | None = None
    value: int = 1  # for mangle "total_pages": the count to claim
    skew: float = 0.0
    style: QuotaStyle = "unix"

    def __post_init__(self) -> None:
        if (self.kind == "mangle") != (self.mangle in get_args(Mangle)):
            raise ValueError(f"kind 'mangle' needs mangle, one of {get_args(Mangle)}")
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; kinds: {get_args(FaultKind)}")
        if self.style not in get_args(QuotaStyle):
            raise ValueError(f"unknown style {self.style!r}; styles: {get_args(QuotaStyle)}")
        if self.resource is not None and self.resource not in RESOURCES:
            raise ValueError(f"unknown resource {self.resource!r}; resources: {RESOURCES}")
        if self.times < 1:
            raise ValueError(f"times must be >= 1, got {self.times}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status, got {self.status}")

    @classmethod
    def parse(cls, data: FaultRule | Mapping[str, Any]) -> FaultRule:
        """Build a rule from its JSON form, naming any key it does not know."""
        if isinstance(data, FaultRule):
            return data
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def matches(self, resource: str, page: int) -> bool:
        return (self.resource is None or self.resource == resource) and (
            self.page is None or self.page == page
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """What the sandbox answers, and how: wait ``delay`` seconds, and with ``cut_at``
    send only that many body bytes (after announcing the full length), then drop the
    connection."""

    status: int
    headers: Headers
    body: bytes
    delay: float = 0.0
    cut_at: int | None = None


class _BadRequest(Exception):
    pass


def _error(status: int, detail: str, headers: Headers = ()) -> Reply:
    title = http.HTTPStatus(status).phrase
    doc = {"errors": [{"status": str(status), "title": title, "detail": detail}]}
    return Reply(status, _JSON + headers, json.dumps(doc).encode())


def _http_date(unix: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7), as a ``Date`` or ``Retry-After`` header carries it."""
    return email.utils.formatdate(unix, usegmt=True)


def _quota_headers(rule: FaultRule, server_now: float) -> Headers:
    """An exhausted quota, announced as ``rule.style`` says, resetting in ``rule.seconds``;
    ``server_now`` is the server's clock (Unix time, skew included)."""
    seconds = max(1, math.ceil(rule.seconds))
    if rule.style == "unix":
        return (("date", _http_date(server_now)), ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", str(math.ceil(server_now) + seconds)))
    if rule.style == "delta":
        return (("x-ratelimit-limit", "100"), ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", str(seconds)))
    if rule.style == "ietf":
        return (("ratelimit-policy", '"default";q=100;w=60'),
                ("ratelimit", f'"default";r=0;t={seconds}'))
    return (("ratelimit", f"limit=100, remaining=0, reset={seconds}"),)


def _oauth_error(status: int, error: str, description: str) -> Reply:
    """An RFC 6749 §5.2 error answer (with ``WWW-Authenticate`` for a client that failed)."""
    headers = (("www-authenticate", 'Basic realm="sandbox"'),) if status == 401 else ()
    return Reply(status, (*_JSON, *headers, ("cache-control", "no-store")),
                 json.dumps({"error": error, "error_description": description}).encode())


def _json(status: int, value: Any) -> Reply:
    return Reply(status, _JSON, json.dumps(value, ensure_ascii=False).encode())


def _page_param(params: Mapping[str, str], name: str, default: int, high: int | None) -> int:
    text = params.get(name)
    if text is None:
        return default
    bound = f"between 1 and {high}" if high else ">= 1"
    digits = text.strip()
    value = int(digits) if digits.isascii() and digits.isdigit() else 0
    if value < 1 or (high is not None and value > high):
        raise _BadRequest(f"{name} must be an integer {bound}; got {text!r}.")
    return value


def _offset_param(params: Mapping[str, str]) -> int:
    text = params.get("offset", "0").strip()
    if not (text.isascii() and text.isdigit()):
        raise _BadRequest(f"offset must be an integer >= 0; got {params.get('offset')!r}.")
    return int(text)


def _encode_cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _cursor_param(params: Mapping[str, str]) -> tuple[Any, ...] | None:
    """The sort key a cursor names; a cursor this sandbox did not issue is a 400."""
    text = params.get("cursor")
    if text is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(key, list) or not 1 <= len(key) <= 2:
            raise ValueError(key)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _BadRequest(f"cursor is not one this API issued; got {text[:40]!r}.") from None
    return tuple(key)


_KEPT_PARAMS: Final = ("filter[updated_at][gte]", "sort", "pagination")


def _next_url(headers: Mapping[str, str], resource: str, params: Mapping[str, str],
              paging: Mapping[str, str]) -> str:
    """An absolute next URL on the host asked (as GitHub's and most link APIs' are), with the
    request's filter, sort and style kept; never a key."""
    kept = [(k, params[k]) for k in _KEPT_PARAMS if k in params]
    query = "&".join(f"{quote(k, safe='[]')}={quote(v, safe=':')}"
                     for k, v in (*paging.items(), *kept))
    host = headers.get("host", "127.0.0.1")
    return f"http://{host}/v1/{resource}?{query}"


def _presented_key(headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """The API key from the contract's header or, as a sandbox extension, the query, Bearer or
    Basic."""
    if "api_key" in headers:
        return headers["api_key"]
    if "api_key" in params:
        return params["api_key"]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return None


class _TokenBucket:
    """Requests per second per key; a full bucket allows one second's worth at once."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float) -> int | None:
        """Spend a token; when none is left, return the whole seconds until there is one."""
        now = time.monotonic()
        capacity = max(1.0, rate)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))


class SandboxApp:
    """The sandbox API: an ASGI app whose work is done by the transport-neutral ``handle``."""

    def __init__(self, world: World | None = None, settings: SandboxSettings | None = None) -> None:
        self.world = world if world is not None else World()
        self._settings = settings if settings is not None else SandboxSettings()
        self._lock = threading.Lock()
        self._faults: list[FaultRule] = []
        self._rng = random.Random(self._settings.fault_seed)
        self._bucket = _TokenBucket()
        self._served = 0
        self._mutations = 0
        self._stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._resets = 0
        # (Unix time, monotonic time) of the first and last API request since the last reset
        self._first_request: tuple[float, float] | None = None
        self._last_request: tuple[float, float] | None = None
        self._tokens: dict[str, tuple[float, int]] = {}  # token -> (expires at, uses left)
        self._issued = 0

    # -- Python API ----------------------------------------------------------------------

    @property
    def settings(self) -> SandboxSettings:
        return self._settings

    def configure(self, **changes: Any) -> SandboxSettings:
        """Change runtime settings (latency, rates, mutate mode, omit_meta, late_visibility)."""
        unknown = set(changes) - _RUNTIME_SETTINGS
        if unknown:
            raise ValueError(
                f"cannot change {sorted(unknown)} at runtime; can: {sorted(_RUNTIME_SETTINGS)}"
            )
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            return self._settings

    def set_faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Replace the scripted fault queue; rules are tried in order, first match wins."""
        parsed = [FaultRule.parse(rule) for rule in rules]
        with self._lock:
            self._faults = parsed

    def faults(self) -> list[dict[str, Any]]:
        """The scripted rules not used up yet."""
        with self._lock:
            return [dataclasses.asdict(rule) for rule in self._faults]

    def stats(self) -> dict[str, Any]:
        """Request counts by resource and status, since start or the last ``reset_stats``.

        ``first_request_at`` / ``last_request_at`` (Unix seconds) and ``request_span_seconds``
        (monotonic, last minus first) say when API requests arrived, so a client's rate can be
        read over its requests alone, without its process's start-up; None before any request.
        """
        with self._lock:
            by_resource = {r: dict(s) for r, s in self._stats.items()}
            first, last = self._first_request, self._last_request
            return {
                "total_requests": sum(sum(s.values()) for s in by_resource.values()),
                "rate_limited": sum(s.get("429", 0) for s in by_resource.values()),
                "resets": self._resets,
                "mutations": self._mutations,
                "requests": by_resource,
                "first_request_at": first[0] if first else None,
                "last_request_at": last[0] if last else None,
                "request_span_seconds": last[1] - first[1] if first and last else None,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
            self._resets = 0
            self._first_request = self._last_request = None

    def _count(self, name: str, reply: Reply) -> None:
        """Count one answered API request and when it came; the caller holds ``_lock``."""
        self._stats[name][str(reply.status)] += 1
        self._last_request = (time.time(), time.monotonic())
        if self._first_request is None:
            self._first_request = self._last_request

    # -- the core handler ----------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        client_host: str | None = None,
    ) -> Reply:
        """Answer one request; ``headers`` has lower-case names, ``query`` is the raw string.

        Every answer is dated (``Date``) by the world's clock as the request came, before the
        page was read (a change while paging moves the clock after it): an answer is never
        dated later than the records it holds, and records are stamped on that clock.
        """
        dated = self.world.clock_us
        reply = self._answer(method, path, query, headers or {}, body, client_host)
        if any(name == "date" for name, _ in reply.headers):
            return reply  # a scripted fault with a skewed clock of its own
        return dataclasses.replace(reply, headers=(*reply.headers,
                                                   ("date", _http_date(dated / 1e6))))

    def _answer(self, method: str, path: str, query: str, headers: Mapping[str, str],
                body: bytes, client_host: str | None) -> Reply:
        if path.startswith("/_admin/"):
            if client_host is not None and client_host not in _LOOPBACK:
                return _error(403, "Admin endpoints answer loopback clients only.")
            try:
                return self._admin(method, path, body)
            except (ValueError, TypeError, KeyError) as exc:
                # A KeyError's str() is its message in quotes: say the message itself.
                detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                return _error(400, f"Bad admin request: {detail}")
        if path == TOKEN_PATH:
            with self._lock:
                reply = self._token(method, headers, body)
                self._count("oauth_token", reply)
            return reply
        parts = path.split("/")
        if len(parts) == 5 and parts[1] == "v1" and (parts[2], parts[4]) in CHILDREN:
            if method not in ("GET", "HEAD"):
                return _error(405, f"{method} is not allowed on {path}; use GET.",
                              (("allow", "GET"),))
            name = f"{parts[2]}/{parts[4]}"
            with self._lock:
                reply = self._child(parts[2], unquote(parts[3]), parts[4],
                                    dict(parse_qsl(query, keep_blank_values=True)), headers)
                self._count(name, reply)
            return reply
        if len(parts) != 3 or parts[1] != "v1" or parts[2] not in RESOURCES:
            known = ", ".join(f"/v1/{r}" for r in RESOURCES)
            return _error(404, f"No resource at {path!r}; resources are {known}.")
        resource = parts[2]
        if method not in ("GET", "HEAD"):
            return _error(405, f"{method} is not allowed on {path}; use GET.", (("allow", "GET"),))
        with self._lock:
            reply = self._api(resource, dict(parse_qsl(query, keep_blank_values=True)), headers,
                              f"{path}?{query}" if query else path)
            self._count(resource, reply)
            if reply.cut_at is not None:
                self._resets += 1
        return reply

    def _child(self, parent: str, parent_id: str, child: str, params: dict[str, str],
               headers: Mapping[str, str]) -> Reply:
        """``/v1/deals/{deal_id}/tasks``: page-number paging of one parent's children, by id."""
        denied = self._denied(params, headers)
        if denied is not None:
            return denied
        try:
            number = _page_param(params, "page[number]", 1, None)
            size = _page_param(params, "page[size]", 10, 100)
        except _BadRequest as exc:
            return _error(400, str(exc))
        if not self.world.exists(parent, parent_id):
            return _error(404, f"No {parent} record {parent_id!r}.")
        page = self.world.children(child, CHILDREN[(parent, child)], parent_id, number=number,
                                   size=size)
        total_pages = -(-page.total_count // size)
        base = f"/v1/{parent}/{quote(parent_id, safe='')}/{child}?page[size]={size}"
        tail = {"meta": {"page": {"number": number, "size": size, "total_pages": total_pages,
                                  "total_count": page.total_count}},
                "links": {"next": f"{base}&page[number]={number + 1}"
                          if number < total_pages else None}}
        body = (b'{"data":[' + b",".join(page.records) + b"],"
                + json.dumps(tail, separators=(",", ":")).encode()[1:])
        return Reply(200, _JSON, body, self._settings.latency_ms / 1000)

    def _denied(self, params: dict[str, str], headers: Mapping[str, str]) -> Reply | None:
        """The key, organization and rate-limit checks every API request passes first."""
        settings = self._settings
        key = _presented_key(headers, params)
        if not key:
            return _error(401, "Missing API key: send it in the `api_key` header.")
        if key != settings.api_key and not self._spend_token(key):
            return _error(401, "The API key is not valid; check the `api_key` header.")
        organization = headers.get("x-organization-id")
        if organization is None:
            return _error(400, "Missing `X-Organization-Id` header: name the organization.")
        if organization != settings.organization_id:
            return _error(403, f"The API key has no access to organization {organization!r}.")
        if settings.rate_limit > 0:
            wait = self._bucket.take(key, settings.rate_limit)
            if wait is not None:
                detail = (
                    f"Rate limit of {settings.rate_limit:g} requests per second exceeded; "
                    f"retry after {wait} s."
                )
                return _error(429, detail, (("retry-after", str(wait)),))
        return None

    def _api(self, resource: str, params: dict[str, str], headers: Mapping[str, str],
             target: str = "") -> Reply:
        settings = self._settings
        denied = self._denied(params, headers)
        if denied is not None:
            return denied
        try:
            style = params.get("pagination", settings.pagination)
            if style not in PAGINATIONS:
                raise _BadRequest(f"pagination must be one of {', '.join(PAGINATIONS)}; "
                                  f"got {style!r}.")
            if style == "header_link":
                number = _page_param(params, "page", 1, None)
                size = _page_param(params, "per_page", 10, 100)
            elif style == "page_number":
                number = _page_param(params, "page[number]", 1, None)
                size = _page_param(params, "page[size]", 10, 100)
            else:
                size = _page_param(params, "limit", 10, 100)
                offset = _offset_param(params) if style == "offset" else 0
                number = offset // size + 1 if style == "offset" else 0
                after = _cursor_param(params) if style in ("cursor", "json_link") else None
            sort = params.get("sort", "id")
            if sort not in _SORTS:
                raise _BadRequest(f"sort must be one of {', '.join(_SORTS)}; got {sort!r}.")
            gte_text = params.get("filter[updated_at][gte]")
            gte = None
            if gte_text is not None:
                try:
                    gte = parse_timestamp(gte_text)
                except ValueError:
                    raise _BadRequest(
                        "filter[updated_at][gte] must be an ISO-8601 UTC timestamp such as "
                        f"2026-03-01T10:00:00.000000Z; got {gte_text!r}."
                    ) from None
        except _BadRequest as exc:
            return _error(400, str(exc))

        delay = settings.latency_ms / 1000
        rule = self._take_fault(resource, number)
        if rule is None:
            if settings.fault_rate and self._rng.random() < settings.fault_rate:
                status = self._rng.choice(_TRANSIENT)
                return dataclasses.replace(_error(status, "Injected transient fault."), delay=delay)
        elif rule.kind == "status":
            extra: Headers = ((("retry-after", rule.retry_after),)
                              if rule.retry_after is not None else ())
            reply = _error(rule.status, f"Scripted fault: status {rule.status}.", extra)
            return dataclasses.replace(reply, delay=delay)
        elif rule.kind == "html200":
            return Reply(200, (("content-type", "text/html; charset=utf-8"),), _HTML, delay)
        elif rule.kind == "empty200":
            return Reply(200, _JSON, b"", delay)
        elif rule.kind == "stall":
            delay += rule.seconds
        elif rule.kind == "retry_after_date":
            server_now = self.world.clock_us / 1e6 + rule.skew
            extra = (("date", _http_date(server_now)),
                     ("retry-after", _http_date(server_now + rule.seconds)))
            reply = _error(429, "Scripted fault: rate limited (Retry-After as a date).", extra)
            return dataclasses.replace(reply, delay=delay)
        elif rule.kind == "echo_url":
            # Like many real APIs: the request line, as received, in the error detail.
            return dataclasses.replace(_error(400, f"Bad request: GET {target}"), delay=delay)

        if style != "page_number":
            if style in ("cursor", "json_link"):
                body, extra = self._cursor_body(resource, style, params, headers, after, size,
                                                sort, gte)
            elif style == "offset":
                body, extra = self._offset_body(resource, offset, size, sort, gte), ()
            else:
                body, extra = self._link_body(resource, params, headers, number, size, sort, gte)
            self._maybe_mutate(resource)
            return Reply(200, _JSON + extra, body, delay)
        body = self._page_body(
            resource,
            1 if rule is not None and rule.kind == "same_page" else number,
            number,
            size,
            sort,
            gte,
            gte_text,
            data_not_list=rule is not None and rule.kind == "data_not_list",
        )
        if rule is not None and rule.kind == "mangle":
            body = self._mangled(body, rule, resource, number, size, sort, gte)
        self._maybe_mutate(resource)
        if rule is not None and rule.kind == "truncate":
            return Reply(200, _JSON, body[: len(body) // 2], delay)
        if rule is not None and rule.kind == "lying_encoding":
            return Reply(200, (*_JSON, ("content-encoding", "gzip")), body, delay)
        if rule is not None and rule.kind == "quota_exhausted":
            return Reply(200, _JSON + _quota_headers(rule, self.world.clock_us / 1e6 + rule.skew),
                         body, delay)
        cut_at = None
        if rule is not None and rule.kind == "reset":
            cut_at = len(body) // 2
        elif rule is None and settings.reset_rate and self._rng.random() < settings.reset_rate:
            cut_at = self._rng.randrange(len(body))
        return Reply(200, _JSON, body, delay, cut_at)

    def _mangled(self, body: bytes, rule: FaultRule, resource: str, number: int, size: int,
                 sort: Sort, gte: int | None) -> bytes:
        doc = json.loads(body)
        data = doc["data"]
        first = data[0] if data and isinstance(data[0], dict) else {}
        if rule.mangle == "record_not_object" and data:
            data[0] = "not a record"
        elif rule.mangle == "id_missing":
            first.pop("id", None)
        elif rule.mangle == "id_null":
            first["id"] = None
        elif rule.mangle == "updated_at_missing":
            first.pop("updated_at", None)
        elif rule.mangle == "updated_at_garbage":
            first["updated_at"] = "yesterday at noon"
        elif rule.mangle == "views_string":
            for record in data:
                if isinstance(record, dict) and "views" in record:
                    record["views"] = f"{record['views']} views"
        elif rule.mangle == "oversize":
            more = self.world.page(resource, number=number + 1, size=size, sort=sort,
                                   updated_gte=gte).records
            data.extend(json.loads(r) for r in more[:5])
        elif rule.mangle == "total_pages" and "meta" in doc:
            doc["meta"]["page"]["total_pages"] = rule.value
        elif rule.mangle == "empty_data":
            data.clear()
        return json.dumps(doc, separators=(",", ":")).encode()

    def _take_fault(self, resource: str, page: int) -> FaultRule | None:
        for index, rule in enumerate(self._faults):
            if rule.matches(resource, page):
                rule.times -= 1
                if rule.times == 0:
                    del self._faults[index]
                return rule
        return None

    def _page_body(
        self,
        resource: str,
        data_page: int,
        number: int,
        size: int,
        sort: Sort,
        gte: int | None,
        gte_text: str | None,
        *,
        data_not_list: bool,
    ) -> bytes:
        page = self.world.page(resource, number=data_page, size=size, sort=sort, updated_gte=gte)
        if data_not_list:
            data = page.records[0] if page.records else b"{}"
        else:
            data = b"[" + b",".join(page.records) + b"]"
        if self._settings.omit_meta:
            return b'{"data":' + data + b"}"
        total_pages = -(-page.total_count // size)
        extra = ""
        if gte_text is not None:
            extra += "&filter[updated_at][gte]=" + quote(gte_text, safe=":")
        if sort != "id":
            extra += f"&sort={quote(sort)}"

        def link(n: int) -> str:
            return f"/v1/{resource}?page[number]={n}&page[size]={size}{extra}"

        meta = {
            "page": {
                "number": number,
                "size": size,
                "total_pages": total_pages,
                "total_count": page.total_count,
            }
        }
        links = {
            "self": link(number),
            "next": link(number + 1) if number < total_pages else None,
            "last": link(max(total_pages, 1)),
        }
        tail = json.dumps({"meta": meta, "links": links}, separators=(",", ":")).encode()
        return b'{"data":' + data + b"," + tail[1:]

    # -- other pagination styles -------------------------------------------------------
    # Each serves the world's query (filter, sort) through another style; a next reference
    # keeps the filter, the sort and a ``pagination`` given in the query. They never echo a key.

    def _offset_body(self, resource: str, offset: int, size: int, sort: Sort,
                     gte: int | None) -> bytes:
        page = self.world.page_at(resource, offset=offset, size=size, sort=sort, updated_gte=gte)
        return b'{"data":[' + b",".join(page.records) + b'],"total":' + \
            str(page.total_count).encode() + b"}"

    def _cursor_body(self, resource: str, style: str, params: Mapping[str, str],
                     headers: Mapping[str, str], after: tuple[Any, ...] | None, size: int,
                     sort: Sort, gte: int | None) -> tuple[bytes, Headers]:
        page, last = self.world.page_after(resource, after=after,
                                           size=size, sort=sort, updated_gte=gte)
        cursor = _encode_cursor(last) if last is not None else None
        data = b"[" + b",".join(page.records) + b"]"
        if style == "cursor":
            tail = json.dumps({"cursors": {"next": cursor}}, separators=(",", ":")).encode()
        else:
            url = None if cursor is None else _next_url(
                headers, resource, params, {"cursor": cursor, "limit": str(size)})
            tail = json.dumps({"pagination": {"next": url}}, separators=(",", ":")).encode()
        return b'{"data":' + data + b"," + tail[1:], ()

    def _link_body(self, resource: str, params: Mapping[str, str], headers: Mapping[str, str],
                   number: int, size: int, sort: Sort, gte: int | None) -> tuple[bytes, Headers]:
        page = self.world.page(resource, number=number, size=size, sort=sort, updated_gte=gte)
        last = max(1, -(-page.total_count // size))

        def link(n: int, rel: str) -> str:
            paging = {"page": str(n), "per_page": str(size)}
            return f'<{_next_url(headers, resource, params, paging)}>; rel="{rel}"'

        links = [link(number + 1, "next")] if number < last else []
        links.append(link(last, "last"))
        return b'{"data":[' + b",".join(page.records) + b"]}", (("link", ", ".join(links)),)

    def _maybe_mutate(self, resource: str) -> None:
        settings = self._settings
        self._served += 1
        every = settings.mutate_every_n_requests
        due = bool(every) and self._served % every == 0
        if settings.mutate_rate and self._rng.random() < settings.mutate_rate:
            due = True
        if due:
            self._mutations += 1
            self.world.advance(
                updates=settings.mutate_updates,
                creates=settings.mutate_creates,
                deletes=settings.mutate_deletes,
                resources=[resource],
                seed=f"{settings.fault_seed}:mutate:{self._mutations}",
                late_visibility=settings.late_visibility,
            )

    # -- OAuth2 client credentials --------------------------------------------------------

    def _token(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """RFC 6749 §4.4: a form ``grant_type=client_credentials``; the client authenticates
        with HTTP Basic or ``client_id``/``client_secret`` in the body (§2.3.1); errors as §5.2.
        """
        settings = self._settings
        if not settings.oauth_client_id:
            return _error(404, "OAuth2 is off: set oauth_client_id to serve tokens.")
        if method != "POST":
            return _error(405, f"{method} is not allowed on {TOKEN_PATH}; use POST.",
                          (("allow", "POST"),))
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error(400, "invalid_request",
                                "send the form as application/x-www-form-urlencoded")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error(401, "invalid_client", "malformed Basic credentials")
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, client_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        if (client_id, client_secret) != (settings.oauth_client_id, settings.oauth_client_secret):
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type",
                                "only grant_type=client_credentials is served")
        self._issued += 1
        token = f"sbx-{self._issued}-{random.Random().getrandbits(64):016x}"
        self._tokens[token] = (time.monotonic() + settings.oauth_token_ttl,
                               settings.oauth_token_uses)
        ttl = settings.oauth_token_ttl
        return _json(200, {"access_token": token, "token_type": "Bearer",
                           "expires_in": int(ttl) if float(ttl).is_integer() else ttl})

    def _spend_token(self, token: str) -> bool:
        """Whether ``token`` is a live token; spends one of its uses (caller holds the lock)."""
        expires_at, uses = self._tokens.get(token, (0.0, 0))
        if time.monotonic() >= expires_at:
            self._tokens.pop(token, None)
            return False
        if self._settings.oauth_token_uses > 0:
            if uses <= 0:
                return False
            self._tokens[token] = (expires_at, uses - 1)
        return True

    def expire_tokens(self) -> None:
        """Make every issued token invalid at once (the next API request with one gets a 401)."""
        with self._lock:
            self._tokens.clear()

    # -- admin ---------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> Reply:
        route = path.removeprefix("/_admin/")
        payload: Any = json.loads(body) if body.strip() else {}
        if method == "GET" and route == "health":
            counts = {r: self.world.count(r) for r in RESOURCES}
            return _json(200, {"status": "ok", "clock": self.world.clock, "counts": counts})
        if method == "GET" and route.startswith("truth/"):
            resource = route.removeprefix("truth/")
            if resource not in RESOURCES:
                return _error(404, f"Unknown resource {resource!r}; resources: {RESOURCES}.")
            return Reply(200, _JSON, self.world.truth_bytes(resource))
        if method == "GET" and route.startswith("deleted/"):
            resource = route.removeprefix("deleted/")
            if resource not in RESOURCES:
                return _error(404, f"Unknown resource {resource!r}; resources: {RESOURCES}.")
            return _json(200, self.world.deleted(resource))
        if method == "POST" and route == "delete":
            unknown = set(payload) - {"resource", "ids"}
            if unknown or "resource" not in payload or "ids" not in payload:
                raise ValueError(f"expected keys resource and ids, got {sorted(payload)}")
            ids = payload["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError(f"ids must be a list of id strings, got {ids!r}")
            return _json(200, {"deleted": self.world.delete(payload["resource"], ids)})
        if method == "POST" and route == "advance":
            unknown = set(payload) - {"updates", "creates", "deletes", "resources", "seed"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            result = self.world.advance(
                updates=payload.get("updates", 0),
                creates=payload.get("creates", 0),
                deletes=payload.get("deletes", 0),
                resources=payload.get("resources"),
                seed=payload.get("seed"),
                late_visibility=self._settings.late_visibility,
            )
            return _json(200, result)
        if route == "stats" and method == "GET":
            return _json(200, self.stats())
        if route == "stats" and method == "DELETE":
            self.reset_stats()
            return _json(200, self.stats())
        if route == "tokens" and method == "DELETE":
            self._tokens.clear()
            return _json(200, {"tokens": 0})
        if route == "faults" and method == "GET":
            return _json(200, {"faults": self.faults()})
        if route == "faults" and method == "POST":
            rules = payload.get("faults", []) if isinstance(payload, dict) else payload
            self.set_faults(rules)
            return _json(200, {"faults": self.faults()})
        if route == "settings" and method == "GET":
            return _json(200, self._settings.public())
        if route == "settings" and method == "POST":
            return _json(200, self.configure(**payload).public())
        return _error(404, f"No admin endpoint {method} {path}.")

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        if scope["method"] not in ("GET", "HEAD"):
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        reply = self.handle(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            headers,
            body,
            client[0] if client else None,
        )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        raw_headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        if reply.cut_at is not None:
            partial = reply.body[: reply.cut_at]
            await send({"type": "http.response.body", "body": partial, "more_body": True})
            raise DeliberateReset(f"sandbox reset the connection after {reply.cut_at} bytes")
        await send({"type": "http.response.body", "body": reply.body})


class _CutStream(httpx.SyncByteStream):
    def __init__(self, partial: bytes, expected: int, request: httpx.Request) -> None:
        self._partial = partial
        self._expected = expected
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        if self._partial:
            yield self._partial
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {len(self._partial)} bytes, expected {self._expected})",
            request=self._request,
        )


class SandboxTransport(httpx.BaseTransport):
    """Serve an ``httpx.Client`` in-process from a ``SandboxApp``: same behaviour, no sockets.

    A reset fails while reading the body with ``httpx.RemoteProtocolError``, and a stall
    longer than the request's read timeout raises ``httpx.ReadTimeout``, as over a socket.
    """

    def __init__(
        self,
        app: SandboxApp | None = None,
        *,
        world: World | None = None,
        settings: SandboxSettings | None = None,
    ) -> None:
        if app is not None and (world is not None or settings is not None):
            raise ValueError("pass either an app or a world and settings, not both")
        self.app = app if app is not None else SandboxApp(world, settings)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.multi_items()}
        reply = self.app.handle(
            request.method,
            request.url.path,
            request.url.query.decode("ascii"),
            headers,
            request.read(),
        )
        if reply.delay:
            timeout = request.extensions.get("timeout", {}).get("read")
            if timeout is not None and reply.delay > timeout:
                time.sleep(timeout)
                raise httpx.ReadTimeout(f"sandbox stalled for {reply.delay} s", request=request)
            time.sleep(reply.delay)
        if reply.cut_at is None:
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)
        stream = _CutStream(reply.body[: reply.cut_at], len(reply.body), request)
        headers_out = (*reply.headers, ("content-length", str(len(reply.body))))
        return httpx.Response(reply.status, headers=headers_out, stream=stream)

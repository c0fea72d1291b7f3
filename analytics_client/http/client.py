"""The HTTP client of a run: one pooled ``httpx.Client``, retries in exactly one place (stamina).

Why sync httpx in threads and not ``AsyncClient``: measured on the 2-core machines we run on,
async httpx costs about twice the CPU per request, and the CPU is what limits a fast API.

What is retried, and how long we wait (the contract's fault table):

* the resource's ``retry_on_status_codes`` (429 in the seed) and 500/502/503/504;
* transport faults: connect/read timeouts, resets, bodies cut off, a 200 whose JSON does not parse.

They share ``max_retries`` (4 means at most 5 attempts). The wait before retry ``n`` (from 0) is
``backoff_factor * 2**n``, capped at ``max_wait``, plus up to 10 % jitter, and never shorter than
the server's ``Retry-After``. Faults the configuration does not list (a reset, a 502 when only
429 is configured) are retried the first time after ``FIRST_TRANSIENT_WAIT`` instead: a single
blip usually passes at once, and with the seed's factor of 2 each one would stall its walk for
2 s; a fault that persists gets the configured backoff from the second retry on.

A ``Retry-After`` longer than ``max_wait`` fails at once: waiting is pointless when the server
has said it will not serve us within our limit. 400/401/403/404 (and anything else unexpected)
fail at once with the API's own ``errors[].detail``.
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import stamina

from analytics_client.config.model import ALWAYS_RETRY, ErrorHandler, SourceConfig, secret_ref
from analytics_client.core import jsontext
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import (
    APIError,
    ForeignHostError,
    LimitExceededError,
    RetriesExhaustedError,
    RunStopped,
    TokenRequestError,
    TransportError,
    UnreachableError,
)
from analytics_client.core.stop import StopFlag, current
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.http import ratelimit_headers
from analytics_client.http.auth import ConfiguredAuth, NoAuth, build_auth
from analytics_client.http.oauth2 import OAuth2ClientCredentials
from analytics_client.http.origin import origin, origin_text
from analytics_client.http.paginators import PageRequest, PageResponse
from analytics_client.http.ratelimit import RateLimiter
from analytics_client.http.redaction import (
    SecretFilter,
    redact,
    redact_url,
    sensitive_values,
)
from analytics_client.http.responses import ignored_by
from analytics_client.http.serverclock import ServerClock
from analytics_client.http.template import RequestTemplate

__all__ = ["FIRST_TRANSIENT_WAIT", "ApiClient", "RetryEvent"]

FIRST_TRANSIENT_WAIT = 0.25  # seconds

# stamina's default hooks log every retry a second time (and count it for prometheus when
# installed): _RetryPolicy logs and counts each retry once, with the resource and page.
stamina.instrumentation.set_on_retry_hooks([])

logger = logging.getLogger(__name__)

Params = dict[str, str | int | float | bool]

_HINTS = {
    401: "check the API key (Prefect Secret block or ANALYTICS_API_KEY)",
    403: "check the organization id (Prefect Secret block or ANALYTICS_ORGANIZATION_ID) "
    "belongs to the API key",
    404: "check the resource's endpoint.path and client.base_url",
    400: "check the resource's endpoint.params and paginator settings",
}


@dataclass(frozen=True)
class RetryEvent:
    """One scheduled retry, as logged and counted in the run summary."""

    resource: str
    page: int | None
    reason: str  # "HTTP 429", "ReadTimeout", "unparseable body", ...
    retry: int  # 1-based: the first retry is 1
    wait: float
    retry_after: float | None


class _RetryableFault(Exception):
    """Raised inside an attempt for a fault that another attempt may fix."""

    def __init__(self, reason: str, *, status: int | None = None, detail: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class ApiClient:
    """Sends every request of a run; thread-safe, so resources may share it."""

    def __init__(
        self,
        config: SourceConfig,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        probe: bool = False,
        stop: StopFlag | None = None,
        timing: Timing = DEFAULT_TIMING,
    ) -> None:
        # A probe (``check``) answers in seconds: a host that cannot be resolved or refuses the
        # connection fails at once, and its messages say nothing of commits (it makes none).
        self._probe = probe
        self._config = config
        # Set by Ctrl-C / SIGTERM (stop.py): no request is sent or retried after it, and the
        # waits below wake at once.
        self.stop = stop or current()
        self._max_bytes = config.client.max_response_bytes
        # The walks of a resource (slices) run in threads of their own and share its budget:
        # every read-and-add of these two is made under ``_charge_lock``.
        self._waited: dict[str, float] = {}  # waits per resource this run (max_total_wait)
        self._paused_for: dict[str, float] = {}  # monotonic end of the last pause charged
        self._charge_lock = threading.Lock()
        # ``on_retry`` callbacks run one at a time, so that a callback counting retries
        # (``summary.retries += 1``) needs no lock of its own.
        self._on_retry_lock = threading.Lock()
        # One pace for every resource of the run; it sleeps as stamina does (not in test mode).
        self.timing = timing  # the run's intervals (core/timing.py); slices read it too
        self.limiter = RateLimiter(sleep=timing.sleep or _sleep)
        self._in_flight = threading.BoundedSemaphore(config.client.max_concurrency)
        self._credentials = credentials
        auth = build_auth(config.client.auth, credentials)
        # dlt's endpoint.auth: a resource's own auth, used instead of the client's.
        self._auths: dict[str, ConfiguredAuth] = {
            r.name: build_auth(r.endpoint.auth, credentials)
            for r in config.resources if r.endpoint.auth is not None}
        self._secret_params = tuple(dict.fromkeys(
            [*auth.secret_params, *(p for a in self._auths.values() for p in a.secret_params)]))
        # Values the config sends under a secret-like name (params: {api_key: ...}, a body's
        # password, an X-Api-Key header) are masked as secrets in every message the client
        # makes and every line httpx logs (an API may echo them), besides by name in every URL
        # shown (redaction.py, dlt's rule).
        literal = [v for r in config.resources
                   for v in sensitive_values([r.endpoint.params, r.endpoint.json_body,
                                              r.endpoint.data, r.endpoint.headers,
                                              config.client.headers])
                   if secret_ref(v) is None]
        self._secrets = (*credentials.values(), *dict.fromkeys(literal))
        # httpx logs every request URL at INFO; with ``auth.location: query`` the key is in it.
        # A library user gets no run's filter (redaction.install_log_filter), so the client
        # brings its own for as long as it is open.
        self._log_filter = SecretFilter(self._secrets)
        logging.getLogger("httpx").addFilter(self._log_filter)
        timeout = config.client.timeout
        self.http = httpx.Client(
            base_url=config.client.base_url,
            # httpx runs the auth flow, every step of it (a token request, a retry after 401).
            auth=auth,
            # client.headers, a dlt.secrets[...] value resolved (the seed's X-Organization-Id:
            # only a config that declares it sends it).
            headers={
                "Accept": "application/json",
                **self._resolved(config.client.headers),
            },
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=config.client.max_concurrency,
                                max_keepalive_connections=config.client.max_concurrency),
            transport=transport,
            follow_redirects=False,
            # No cookies kept or sent: a page is its URL and credentials, never what an earlier
            # answer set (as when pages went straight to the transport).
            cookies=_NoCookies(),
        )
        self._urls: dict[str, str] = {}
        self._clocks: dict[str, ServerClock] = {}  # per resource: the clock of its read

    def _resolved(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with each ``dlt.secrets[...]`` value replaced by the secret."""
        out = {}
        for name, value in headers.items():
            ref = secret_ref(value)
            out[name] = self._credentials.value(ref) if ref is not None else value
        return out

    @property
    def max_concurrency(self) -> int:
        """Requests this client lets be in flight at once (``client.max_concurrency``)."""
        return self._config.client.max_concurrency

    def close(self) -> None:
        self.http.close()
        logging.getLogger("httpx").removeFilter(self._log_filter)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def watch_clock(self, resource: str) -> ServerClock:
        """From now on, every page answered for ``resource`` (a 200 whose body parsed) shows
        its ``Date`` to the clock returned, which replaces any earlier one of the resource: one
        clock per read (``serverclock.py``)."""
        clock = ServerClock()
        self._clocks[resource] = clock
        return clock

    def show(self, url: httpx.URL | str) -> str:
        """A URL with every secret masked, fit for logs and errors."""
        return redact_url(url, self._secrets, self._secret_params)

    def get(
        self,
        template: RequestTemplate,
        params: Params,
        *,
        page: int | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> Any:
        """GET one page of ``resource`` and return its parsed JSON body, retrying what may pass."""
        return self.get_page(template, PageRequest(params), page=page, on_retry=on_retry).body

    def get_page(
        self,
        template: RequestTemplate,
        request: PageRequest,
        *,
        page: int | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> PageResponse:
        """GET the page ``request`` names (built by the resource's paginator): body and headers.

        A next URL from the server is sent only to ``client.base_url``'s scheme, host and port
        (``ForeignHostError`` otherwise), before any credential is attached. ``on_retry`` is
        called once per retry, before its wait, and never by two threads at once.

        Raises ``APIError`` (a status a retry cannot fix), ``RetriesExhaustedError`` (a retried
        status to the last attempt), ``TransportError`` (no usable answer to the last attempt),
        ``UnreachableError`` (``probe`` only), ``LimitExceededError``, ``ForeignHostError`` and
        ``RunStopped``.
        """
        if request.url is not None:
            self._check_same_origin(template, request.url)
        self.stop.check(template.resource)
        handler = template.policy.error_handler
        configured = set(handler.retry_on_status_codes)
        policy = _RetryPolicy(self, template.resource, page, handler, configured, on_retry)
        retry_on = configured | ALWAYS_RETRY
        try:
            # The policy is stamina's backoff hook: it decides, logs, counts and waits itself
            # (on the stop flag), then tells stamina to wait 0 s more; so stamina's own
            # wait_initial/wait_max/wait_jitter would never apply and are not given.
            for attempt in stamina.retry_context(
                on=policy, attempts=handler.max_retries + 1, timeout=None,
            ):
                with attempt:
                    return self._attempt(template, request, page, retry_on, handler.max_wait)
        except _RetryableFault as fault:
            if self.stop.requested:
                raise RunStopped(template.resource, self.stop.reason or "stop requested") from None
            if policy.over_budget is not None:
                with self._charge_lock:
                    spent = self._waited.get(template.resource, 0.0)
                raise LimitExceededError(
                    template.resource,
                    f"retries have waited {spent:.0f} s this run and "
                    f"the next wait ({policy.over_budget:.0f} s, after {fault.reason} on page "
                    f"{page}) would pass error_handler.max_total_wait="
                    f"{handler.max_total_wait:.0f} s; raise it or run again later",
                ) from None
            raise self._exhausted(template, request, page, fault, policy.retries) from None
        raise AssertionError("unreachable: stamina yields at least one attempt")

    def _check_same_origin(self, template: RequestTemplate, url: str) -> None:
        """Credentials go to the API's origin only (RFC 6454: scheme, host and port)."""
        target, base = httpx.URL(url), self.http.base_url
        if origin(target) != origin(base):
            raise ForeignHostError(template.resource, next_origin=origin_text(target),
                                   api_origin=origin_text(base), key="endpoint.paginator")

    def _attempt(self, template: RequestTemplate, request: PageRequest, page: int | None,
                 retry_on: set[int], max_wait: float) -> PageResponse:
        self._wait_turn(template, page)
        try:
            with self._in_flight:
                response, content = self._receive(template, request, page)
        except httpx.ConnectError as exc:
            if self._probe:
                raise UnreachableError(template.resource, host=self.http.base_url.host or "the API",
                                       detail=self._clean(str(exc))) from None
            raise _RetryableFault(type(exc).__name__, detail=self._clean(str(exc))) from None
        except httpx.LocalProtocolError as exc:
            # Our request itself breaks HTTP/1.1 (a header name or value h11 refuses, such
            # as one filled from a record with a line break): sending it again cannot help.
            raise TransportError(template.resource, (
                f"the request{'' if page is None else f' for page {page}'} could not be sent: "
                f"{self._clean(str(exc))}; "
                "check endpoint.headers and the values filled into them (no line breaks; "
                "names of letters, digits and !#$%&'*+-.^_`|~)")) from None
        except httpx.TransportError as exc:
            raise _RetryableFault(type(exc).__name__, detail=self._clean(str(exc))) from None
        except TokenRequestError as exc:
            if exc.status in retry_on:
                raise _RetryableFault(f"token endpoint HTTP {exc.status}", status=exc.status,
                                      detail=exc.detail) from None
            raise APIError(template.resource, status=exc.status, detail=exc.detail,
                           url=self.show(exc.url), page=page,
                           hint="the OAuth2 token endpoint refused: check auth.access_token_url "
                           "and the client id and secret (Prefect Secret blocks "
                           "analytics-client-id / analytics-client-secret, or ANALYTICS_CLIENT_ID "
                           "/ ANALYTICS_CLIENT_SECRET)") from None
        wall = self.timing.clock() if self.timing.clock is not None else None
        asked = ratelimit_headers.retry_after(response.headers, wall)
        retry_after = asked.seconds if asked is not None else None
        # A Retry-After beyond max_wait fails the resource below; it must not stall the others.
        pause = self.limiter.observe(
            response.status_code, response.headers,
            retry_after if retry_after is None or retry_after <= max_wait else None, wall)
        if pause is not None:
            logger.warning("%s: page %s: %s: every request of the run pauses %.1f s",
                           template.resource, page, pause.source, pause.seconds)
        actions = template.policy.response_actions
        if actions and (action := ignored_by(actions, response.status_code,
                                             lambda: content.decode("utf-8", "replace"))):
            logger.info("%s: page %s: HTTP %d ignored by response_actions %s; the read ends here",
                        template.resource, page, response.status_code,
                        action.model_dump(exclude_none=True))
            return PageResponse(None, response.headers, self.target(template, request),
                                ignored=True)
        if response.status_code == 200:
            try:
                body = jsontext.loads(content)
            except (ValueError, UnicodeDecodeError):
                excerpt = self._clean(content[:80].decode("utf-8", "replace"))
                raise _RetryableFault("unparseable body",
                                      detail=f"body starts {excerpt!r}") from None
            clock = self._clocks.get(template.resource)
            if clock is not None:
                clock.observe(response.headers)
            return PageResponse(body, response.headers, self.target(template, request))
        detail = self._detail(response, content)
        if response.status_code in retry_on:
            if retry_after is not None and retry_after > max_wait:
                raise APIError(
                    template.resource, status=response.status_code, detail=detail,
                    url=self.show(response.request.url), page=page,
                    hint=f"the API asks to wait {retry_after:.0f} s "
                    f"({asked.source if asked else 'Retry-After'}), longer than "
                    f"error_handler.max_wait={max_wait:.0f} s; raise max_wait or run later",
                )
            raise _RetryableFault(f"HTTP {response.status_code}", status=response.status_code,
                                  detail=detail, retry_after=retry_after)
        raise APIError(
            template.resource, status=response.status_code, detail=detail,
            url=self.show(response.request.url), page=page,
            hint=self._hint(response.status_code),
        )

    def _charge(self, resource: str, seconds: float, max_total_wait: float) -> bool:
        """Count a retry's wait toward the resource's ``max_total_wait``; False if it would pass."""
        with self._charge_lock:
            spent = self._waited.get(resource, 0.0)
            if spent + seconds > max_total_wait:
                return False
            self._waited[resource] = spent + seconds
            return True

    def _hint(self, status: int) -> str:
        """What to check after a status a retry cannot fix; OAuth2's flow has already retried
        a 401 once with a fresh token, so the key hint would send the user the wrong way."""
        if status == 401 and isinstance(self.http.auth, OAuth2ClientCredentials):
            return ("the API refused a fresh OAuth2 token too: check that the client may read "
                    "this API (auth.access_token_request_data, e.g. its scope)")
        if status == 403 and "x-organization-id" not in self.http.headers:
            return "check that the credentials may read this resource (client.auth)"
        if status == 401 and all(isinstance(a, NoAuth)
                                 for a in (self.http.auth, *self._auths.values())):
            return ("check the credentials this API needs: the config names no API key "
                    "(client.auth, endpoint.auth, or a token in endpoint.params)")
        return _HINTS.get(status, "not retried: a retry cannot fix this")

    def _wait_turn(self, template: RequestTemplate, page: int | None) -> None:
        """Take this request's turn from the limiter, unless the pause ahead breaks a limit.

        A pause the API announced (an exhausted quota, a long Retry-After) is bounded like a
        retry wait: beyond ``max_wait`` the resource fails at once, naming the header; it
        counts once per resource toward ``max_total_wait``.
        """
        handler = template.policy.error_handler
        pause = self.limiter.ahead()
        if pause is not None:
            if pause.seconds > handler.max_wait:
                raise LimitExceededError(
                    template.resource,
                    f"page {page}: the API asks every request to wait {pause.seconds:.0f} s "
                    f"({self._clean(pause.source)}), longer than error_handler.max_wait="
                    f"{handler.max_wait:.0f} s; raise max_wait or run later (what was committed "
                    "so far is kept)",
                )
            with self._charge_lock:
                now = time.monotonic()
                until = now + pause.seconds
                charge = max(0.0, until - max(now, self._paused_for.get(template.resource, 0.0)))
                spent = self._waited.get(template.resource, 0.0)
                if charge and spent + charge > handler.max_total_wait:
                    raise LimitExceededError(
                        template.resource,
                        f"page {page}: waits have taken {spent:.0f} s this run and the API asks "
                        f"for {pause.seconds:.0f} s more ({self._clean(pause.source)}), past "
                        f"error_handler.max_total_wait={handler.max_total_wait:.0f} s; raise it or "
                        "run again later",
                    )
                self._waited[template.resource] = spent + charge
                self._paused_for[template.resource] = max(until,
                                                      self._paused_for.get(template.resource, 0.0))
        self.limiter.acquire()

    def url(self, template: RequestTemplate, params: Params) -> str:
        """The full URL of one page, query included (secrets in it are not masked)."""
        path = template.path
        base = self._urls.get(path)
        if base is None:
            base = self._urls[path] = f"{str(self.http.base_url).rstrip('/')}/{path.lstrip('/')}"
        if not params:
            return base
        return f"{base}?{urlencode([(k, _query_value(v)) for k, v in params.items()])}"

    def target(self, template: RequestTemplate, request: PageRequest) -> str:
        """The URL a page request asks for, before credentials (secrets in it not masked)."""
        return request.url if request.url is not None else self.url(template, request.params)

    def _receive(self, template: RequestTemplate, page_request: PageRequest,
                 page: int | None) -> tuple[httpx.Response, bytes]:
        """Stream the body so that one oversized response cannot exhaust memory.

        The request is built here, not by ``Client.build_request``: the URL is complete already
        (``target``) and merging it with ``base_url`` again costs CPU on every page.
        """
        headers = self.http.headers
        if template.headers:
            headers = headers.copy()
            headers.update(self._resolved(template.headers))
        body = page_request.json if page_request.json is not None else template.json
        form = template.data
        if isinstance(form, list):  # pairs, a key maybe repeated: encoded as given
            headers = headers.copy()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            form = urlencode([(k, _query_value(v)) for k, v in form])
        request = httpx.Request(template.method, self.target(template, page_request),
                                headers=headers, json=body,
                                data=form if isinstance(form, Mapping) else None,
                                content=form if isinstance(form, str) else None)
        auth = self._auths.get(template.resource)
        response = (self.http.send(request, stream=True) if auth is None
                    else self.http.send(request, stream=True, auth=auth))
        try:
            declared = response.headers.get("content-length", "")
            size = int(declared) if declared.isdigit() else 0
            chunks, size_read = [], 0
            if size <= self._max_bytes:
                try:
                    for chunk in response.iter_bytes():
                        size_read += len(chunk)
                        if size_read > self._max_bytes:
                            break
                        chunks.append(chunk)
                except httpx.DecodingError as exc:
                    # A body that is not what Content-Encoding says is a damaged body, like a
                    # cut-off one: retried, then reported with the encoding it claimed.
                    encoding = response.headers.get("content-encoding", "")
                    raise _RetryableFault(
                        f"body not decodable as Content-Encoding: {encoding}",
                        detail=self._clean(str(exc).splitlines()[0] if str(exc) else
                                           type(exc).__name__)) from None
            if max(size, size_read) > self._max_bytes:
                raise LimitExceededError(
                    template.resource,
                    f"page {page}: the response is larger than client.max_response_bytes="
                    f"{self._max_bytes:,} bytes; lower paginator.limit or raise the limit",
                )
            return response, b"".join(chunks)
        finally:
            response.close()

    def _exhausted(self, template: RequestTemplate, request: PageRequest, page: int | None,
                   fault: _RetryableFault, retries: int) -> Exception:
        url = self.show(self.target(template, request))
        attempts = retries + 1
        hint = (f"gave up after {attempts} attempts; raise error_handler.max_retries or run "
                "again later")
        if not self._probe:
            hint += " (what was committed so far is kept)"
        if fault.status is not None:
            return RetriesExhaustedError(template.resource, status=fault.status,
                                         detail=fault.detail, url=url, page=page, hint=hint)
        where = f" on page {page}" if page is not None else ""
        detail = fault.detail or "no detail"
        return TransportError(template.resource,
                              f"{fault.reason}{where} from {url}: {detail}; {hint}")

    def _detail(self, response: httpx.Response, content: bytes) -> str:
        """The API's ``errors[].detail`` (JSON:API), or a short excerpt of the body."""
        try:
            errors = json.loads(content).get("errors")
            details = [str(e.get("detail") or e.get("title"))
                       for e in errors if isinstance(e, dict)]
            text = "; ".join(d for d in details if d and d != "None")
        except (ValueError, AttributeError, TypeError):
            text = content[:120].decode("utf-8", "replace").strip()
        return self._clean(text or response.reason_phrase or "no detail")

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)


class _RetryPolicy:
    """The stamina backoff hook of one request: decides whether to retry and waits the wait.

    One log line per retry (WARNING, with the resource, page, reason and wait): stamina's own
    retry hooks are off (module top), so nothing else logs it.
    """

    def __init__(self, client: ApiClient, resource: str, page: int | None,
                 handler: ErrorHandler, configured: set[int],
                 on_retry: Callable[[RetryEvent], None] | None) -> None:
        self.client, self.resource, self.page = client, resource, page
        self.factor, self.cap = handler.backoff_factor, handler.max_wait
        self.max_retries, self.max_total_wait = handler.max_retries, handler.max_total_wait
        self.configured = configured
        self.on_retry = on_retry
        self.over_budget: float | None = None
        self.retries = 0

    def __call__(self, exc: Exception) -> bool | float:
        stop = self.client.stop
        if (not isinstance(exc, _RetryableFault) or self.retries >= self.max_retries
                or stop.requested):
            return False  # stamina re-raises; get() turns it into a clear error
        if self.retries == 0 and exc.status not in self.configured:
            wait = backoff(0, FIRST_TRANSIENT_WAIT, self.cap, exc.retry_after)
        else:
            wait = backoff(self.retries, self.factor, self.cap, exc.retry_after)
        if not self.client._charge(self.resource, wait, self.max_total_wait):
            self.over_budget = wait
            return False
        self.retries += 1
        event = RetryEvent(self.resource, self.page, exc.reason, self.retries, wait,
                           exc.retry_after)
        asked = f" (Retry-After {exc.retry_after:g} s)" if exc.retry_after is not None else ""
        logger.warning("%s: page %s: %s, retry %d in %.1f s%s", self.resource, self.page,
                       exc.reason, self.retries, wait, asked)
        if self.on_retry is not None:
            with self.client._on_retry_lock:
                self.on_retry(event)
        # We wait here, on the stop flag, so that Ctrl-C ends a 16 s backoff at once; stamina
        # is told to wait no more.
        if stop.sleep(wait):
            return False
        return 0.0


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing, so that no request carries what an answer set."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _query_value(value: str | int | float | bool) -> str:
    """A parameter as httpx writes it: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sleep(seconds: float) -> None:
    """The limiter's pauses: none in stamina's test mode, as its waits; woken by a stop."""
    current().sleep(seconds)


def backoff(retry: int, factor: float, cap: float, retry_after: float | None,
            rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (from 0).

    ``factor * 2**retry`` capped at ``cap``, plus up to 10 % jitter, never less than
    ``retry_after`` (the module docstring gives the policy).
    """
    try:
        computed = min(cap, factor * 2.0**retry)
    except OverflowError:
        computed = cap
    computed += (rng.uniform if rng is not None else random.uniform)(0, computed * 0.1)
    return max(computed, retry_after) if retry_after is not None else computed


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value alone (no ``Date``); see ``ratelimit_headers``."""
    if value is None:
        return None
    wait = ratelimit_headers.retry_after({"retry-after": value},
                                         now.timestamp() if now is not None else None)
    return wait.seconds if wait is not None else None

"""The HTTP client: what is retried, how long it waits, and how it fails (respx, no sleeping)."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging

import httpx
import pytest
import respx

from analytics_client.config import load_config
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import (
    APIError,
    LimitExceededError,
    RetriesExhaustedError,
    TransportError,
)
from analytics_client.core.timing import DEFAULT_TIMING, Timing
from analytics_client.http.client import ApiClient, RetryEvent, backoff, parse_retry_after
from tests.plans import request_of

BASE = "https://api.test"
KEY = "sk-live-3f9a1b7c"
ORG = "org_9a8b7c"
CREDS = Credentials(api_key=KEY, organization_id=ORG)
PAGE = {"data": [{"id": "t1"}], "meta": {"page": {"number": 1, "total_pages": 1}}, "links": {"next": None}}


def make_client(timing: Timing = DEFAULT_TIMING, **client: object) -> tuple[ApiClient, object]:
    config = load_config(base_url=BASE)
    if client:
        raw = {"client": {"base_url": BASE, **client},
               "resources": [{"name": "tags", "endpoint": {"path": "/v1/tags"}}]}
        config = load_config(raw)
    resource = config.resources[0]
    return ApiClient(config, CREDS, timing=timing), resource


def get(client: ApiClient, resource: object, events: list[RetryEvent] | None = None) -> object:
    return client.get(request_of(resource), {"page[number]": 1}, page=1,  # type: ignore[arg-type]
                      on_retry=events.append if events is not None else None)


def error_doc(status: int, detail: str) -> dict:
    return {"errors": [{"status": str(status), "title": "t", "detail": detail}]}


@respx.mock
def test_sends_key_and_organization_headers() -> None:
    """Every request carries the api_key header and X-Organization-Id from the secrets."""
    route = respx.get(f"{BASE}/v1/tags").respond(json=PAGE)
    client, resource = make_client()
    assert get(client, resource) == PAGE
    request = route.calls.last.request
    assert request.headers["api_key"] == KEY
    assert request.headers["X-Organization-Id"] == ORG
    assert request.url.params["page[number]"] == "1"


@respx.mock
def test_429_waits_at_least_retry_after_then_succeeds() -> None:
    """A 429's Retry-After is honoured even when it is longer than the backoff."""
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}, json=error_doc(429, "slow down")),
        httpx.Response(200, json=PAGE),
    ])
    events: list[RetryEvent] = []
    client, resource = make_client()
    assert get(client, resource, events) == PAGE
    assert [(e.reason, e.retry, e.retry_after) for e in events] == [("HTTP 429", 1, 7.0)]
    assert 7.0 <= events[0].wait


@respx.mock
def test_retry_after_as_http_date_is_honoured() -> None:
    """Retry-After may be an HTTP date; without a Date header, our clock says how far off it is."""
    # The clock is a value the run is given (Timing.clock): a fixed "now", so the wait is exact
    # whatever the machine's speed.
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    fixed = Timing(clock=now.timestamp)
    when = now + dt.timedelta(seconds=30)
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)}),
        httpx.Response(200, json=PAGE),
    ])
    events: list[RetryEvent] = []
    client, resource = make_client(fixed)
    assert get(client, resource, events) == PAGE
    assert [(e.retry_after, e.wait) for e in events] == [(30.0, 30.0)]


@pytest.mark.parametrize("value", ["0", "-3", "soon", "", "nan"])
@respx.mock
def test_useless_retry_after_falls_back_to_backoff(value: str) -> None:
    """Retry-After of 0, negative or garbage does not burn attempts: the backoff applies."""
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": value}), httpx.Response(200, json=PAGE)])
    events: list[RetryEvent] = []
    client, resource = make_client()
    get(client, resource, events)
    assert events[0].retry_after is None
    assert 2.0 <= events[0].wait <= 2.2  # backoff_factor 2 * 2**0, plus at most 10 % jitter


@respx.mock
def test_retry_after_above_max_wait_fails_at_once() -> None:
    """A server that asks for a longer wait than max_wait fails the resource without waiting."""
    route = respx.get(f"{BASE}/v1/tags").respond(429, headers={"Retry-After": "3600"},
                                                  json=error_doc(429, "quota exhausted"))
    client, resource = make_client()
    with pytest.raises(APIError, match=r"wait 3600 s \(Retry-After: 3600\), longer than error_handler.max_wait=300"):
        get(client, resource)
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize(("status", "waits"), [(429, [2, 4, 8, 16]), (503, [0.25, 4, 8, 16])])
def test_backoff_doubles_from_the_factor_and_attempts_are_max_retries_plus_one(
    status: int, waits: list[float]
) -> None:
    """max_retries 4 means 5 attempts, waiting about 2, 4, 8 and 16 s, then a clear error.

    A fault the config does not list (503 here; the seed lists only 429) is retried the first
    time after 0.25 s: one blip should not stall a walk for the configured 2 s.
    """
    route = respx.get(f"{BASE}/v1/tags").respond(status, json=error_doc(status, "maintenance"))
    events: list[RetryEvent] = []
    client, resource = make_client()
    with pytest.raises(RetriesExhaustedError) as info:
        get(client, resource, events)
    assert route.call_count == 5
    for event, base in zip(events, waits, strict=True):
        assert base <= event.wait <= base * 1.1  # jitter adds at most 10 %
    message = str(info.value)
    assert message.startswith(f"tags: HTTP {status} on page 1")
    assert "maintenance" in message and "gave up after 5 attempts" in message


def test_computed_backoff_is_capped_but_retry_after_is_not() -> None:
    """The cap limits our own backoff; a server's Retry-After is never shortened."""
    assert backoff(10, 2, 60, None) <= 66
    assert backoff(10, 2, 60, 120.0) == 120.0
    assert backoff(0, 2, 60, 0.5) >= 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@respx.mock
def test_server_faults_are_retried(status: int) -> None:
    """5xx is retried even though the config lists only 429."""
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[httpx.Response(status), httpx.Response(200, json=PAGE)])
    client, resource = make_client()
    assert get(client, resource) == PAGE


@pytest.mark.parametrize("fault", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   httpx.RemoteProtocolError("peer closed connection"),
                                   httpx.ReadError("connection reset by peer")])
@respx.mock
def test_transport_faults_are_retried(fault: Exception) -> None:
    """Resets, timeouts and cut-off bodies get another attempt."""
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[fault, httpx.Response(200, json=PAGE)])
    events: list[RetryEvent] = []
    client, resource = make_client()
    assert get(client, resource, events) == PAGE
    assert events[0].reason == type(fault).__name__


@respx.mock
def test_transport_faults_share_max_retries_with_statuses() -> None:
    """A mix of faults counts against one budget of 5 attempts."""
    route = respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(503), httpx.ReadTimeout("slow"), httpx.Response(429), httpx.Response(502),
        httpx.ConnectError("refused"), httpx.Response(200, json=PAGE)])
    client, resource = make_client()
    with pytest.raises(TransportError, match="ConnectError on page 1 .* gave up after 5 attempts"):
        get(client, resource)
    assert route.call_count == 5


@respx.mock
def test_unparseable_200_is_retried_then_fails() -> None:
    """A 200 whose body is cut off mid-JSON is retried like a transport fault."""
    route = respx.get(f"{BASE}/v1/tags").respond(200, content=b'{"data": [{"id": "t1"')
    client, resource = make_client()
    with pytest.raises(TransportError, match="unparseable body on page 1"):
        get(client, resource)
    assert route.call_count == 5


@respx.mock
def test_html_200_then_good_page_succeeds() -> None:
    """One garbage body followed by a good one loses nothing."""
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(200, text="<html>Bad gateway</html>"), httpx.Response(200, json=PAGE)])
    client, resource = make_client()
    assert get(client, resource) == PAGE


@pytest.mark.parametrize(("status", "hint"), [
    (400, "endpoint.params"), (401, "API key"), (403, "organization id"), (404, "endpoint.path")])
@respx.mock
def test_client_errors_fail_at_once_with_the_api_detail(status: int, hint: str) -> None:
    """400/401/403/404 are never retried and quote errors[].detail."""
    route = respx.get(f"{BASE}/v1/tags").respond(status, json=error_doc(status, f"detail-{status}"))
    client, resource = make_client()
    with pytest.raises(APIError) as info:
        get(client, resource)
    assert route.call_count == 1
    assert info.value.status == status
    assert f"detail-{status}" in str(info.value) and hint in str(info.value)
    assert str(info.value).startswith("tags: ")


@respx.mock
def test_query_key_never_shows_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    """With auth.location: query the key is in the URL; logs and errors show *** instead."""
    from analytics_client.http.redaction import install_log_filter, remove_log_filter

    respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(503), httpx.Response(401, json=error_doc(401, "bad key"))])
    client, resource = make_client(auth={"type": "api_key", "location": "query"})
    caplog.set_level(logging.DEBUG)
    secret_filter = install_log_filter(CREDS.values())
    try:
        with pytest.raises(APIError) as info:
            get(client, resource)
    finally:
        remove_log_filter(secret_filter)
    assert respx.calls.last.request.url.params["api_key"] == KEY
    assert "api_key=***" in str(info.value)
    everything = caplog.text + str(info.value) + repr(info.value) + repr(client.http.auth)
    assert KEY not in everything and ORG not in everything
    assert "HTTP Request" in caplog.text  # the request was logged, its URL masked


def test_parse_retry_after() -> None:
    """Seconds and HTTP dates parse; zero, negative, past and garbage give None."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60.0
    for value in (None, "0", "-1", "soon", "Wed, 31 Dec 2025 23:00:00 GMT", "inf"):
        assert parse_retry_after(value, now) is None


def limited_client(**limits: object) -> tuple[ApiClient, object]:
    handler = {k: v for k, v in limits.items() if k == "max_total_wait"}
    client = {k: v for k, v in limits.items() if k == "max_response_bytes"}
    raw = {"client": {"base_url": BASE, **client},
           "resources": [{"name": "tags", "endpoint": {"path": "/v1/tags",
                                                       "error_handler": handler}}]}
    config = load_config(raw)
    return ApiClient(config, CREDS), config.resources[0]


@respx.mock
def test_a_response_above_max_response_bytes_fails_without_retrying() -> None:
    """A body larger than client.max_response_bytes fails its resource at once, clearly."""
    big = {"data": [{"id": f"t{i}", "name": "x" * 50} for i in range(50)]}
    route = respx.get(f"{BASE}/v1/tags").respond(json=big)
    client, resource = limited_client(max_response_bytes=1000)
    with pytest.raises(LimitExceededError, match=r"tags: page 1: the response is larger than "
                       r"client.max_response_bytes=1,000 bytes"):
        get(client, resource)
    assert route.call_count == 1


@respx.mock
def test_retry_waits_of_a_resource_stop_at_max_total_wait() -> None:
    """When the next wait would pass error_handler.max_total_wait the resource fails, saying so."""
    route = respx.get(f"{BASE}/v1/tags").respond(503)
    client, resource = limited_client(max_total_wait=4)
    events: list[RetryEvent] = []
    with pytest.raises(LimitExceededError, match=r"would pass error_handler.max_total_wait=4 s"):
        get(client, resource, events)
    # waited ~0.25 s (first retry of a fault the config does not list), the next ~4 s is refused
    assert len(events) == 1 and route.call_count == 2


def test_body_that_is_not_its_content_encoding_is_retried_then_named() -> None:
    """``Content-Encoding: gzip`` on plain JSON: retried like a cut-off body, then a TransportError
    naming the resource, page, masked URL and the encoding declared (issue 11, input 4)."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, headers={"Content-Encoding": "gzip"},
                              stream=httpx.ByteStream(b'{"data": []}'))

    config = load_config({"client": {"base_url": BASE, "auth": {
        "type": "api_key", "name": "api_key", "location": "query"}},
        "resources": [{"name": "tags", "endpoint": {"path": "/v1/tags"}}]})
    client = ApiClient(config, CREDS, transport=httpx.MockTransport(handler))
    events: list[RetryEvent] = []
    with pytest.raises(TransportError) as failure:
        get(client, config.resources[0], events)
    message = str(failure.value)
    assert message.startswith("tags: ") and "page 1" in message
    assert "Content-Encoding: gzip" in message and f"{BASE}/v1/tags" in message
    assert KEY not in message
    assert len(calls) == 5 and len(events) == 4


@respx.mock
def test_auth_flow_of_several_steps_is_driven_by_httpx() -> None:
    """A registered auth type that asks for a token, and again after a 401, works page by page."""
    from types import SimpleNamespace

    from analytics_client.http.auth import AUTH_TYPES, ConfiguredAuth, build_auth

    class RefreshingToken(ConfiguredAuth):
        type = "test_refreshing_token"

        def __init__(self) -> None:
            self.tokens = 0

        @classmethod
        def from_config(cls, config: object, credentials: Credentials) -> RefreshingToken:
            return cls()

        def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
            if not self.tokens:
                yield from self._refresh(request)
            request.headers["Authorization"] = f"Bearer t{self.tokens}"
            response = yield request
            if response.status_code == 401:
                yield from self._refresh(request)
                request.headers["Authorization"] = f"Bearer t{self.tokens}"
                yield request

        def _refresh(self, request: httpx.Request):  # type: ignore[no-untyped-def]
            self.tokens += 1
            yield httpx.Request("POST", request.url.copy_with(path="/token", query=None))

    try:
        auth = build_auth(SimpleNamespace(type="test_refreshing_token"), CREDS)
        assert isinstance(auth, RefreshingToken)
        respx.post(f"{BASE}/token").respond(json={})
        route = respx.get(f"{BASE}/v1/tags").mock(side_effect=lambda request: httpx.Response(
            200 if request.headers["Authorization"] == "Bearer t2" else 401, json=PAGE))
        client, resource = make_client()
        client.http.auth = auth
        assert get(client, resource) == PAGE
        assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer t1",
                                                                           "Bearer t2"]
    finally:
        AUTH_TYPES.pop("test_refreshing_token", None)


@respx.mock
def test_each_retry_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Two retries make two log lines, both ours (stamina's own retry hooks are off)."""
    respx.get(f"{BASE}/v1/tags").mock(side_effect=[
        httpx.Response(503), httpx.Response(429), httpx.Response(200, json=PAGE)])
    client, resource = make_client()
    caplog.set_level(logging.DEBUG)
    assert get(client, resource) == PAGE
    retries = [r for r in caplog.records if "retry" in r.getMessage().lower()]
    assert [(r.name, r.levelno) for r in retries] == [
        ("analytics_client.http.client", logging.WARNING)] * 2
    assert [r.getMessage().split(" in ")[0] for r in retries] == [
        "tags: page 1: HTTP 503, retry 1", "tags: page 1: HTTP 429, retry 2"]

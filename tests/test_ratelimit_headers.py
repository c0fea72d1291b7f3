"""Rate-limit headers: read as the RFC and drafts say, checked against a decoder written here."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_client.config import load_config
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import APIError, LimitExceededError
from analytics_client.core.timing import Timing
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.ratelimit_headers import quota_wait, retry_after
from analytics_sandbox import SandboxSettings, World, serve
from tests.plans import request_of
from tests.support import SANDBOX_CLIENT, sync

NOW = 1_790_000_000.0  # our clock in these tests, Unix time
BASE = "https://api.test"
PAGE = {"data": [{"id": "t1"}], "meta": {"page": {"number": 1, "total_pages": 1}},
        "links": {"next": None}}
SMALL = {"tags": 20, "users": 20, "deals": 40, "pages": 20, "tasks": 20}
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()


# --- an independent decoder: the rules as the RFC and drafts state them -------------------------

def imf_fixdate(unix: float) -> str:
    """RFC 9110 §5.6.7: ``Sun, 06 Nov 1994 08:49:37 GMT``, written by hand."""
    t = dt.datetime.fromtimestamp(unix, dt.UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


def read_imf_fixdate(text: str) -> float:
    match = re.fullmatch(r"\w{3}, (\d\d) (\w{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT", text)
    assert match, text
    day, month, year, hh, mm, ss = match.groups()
    when = dt.datetime(int(year), _MONTHS.index(month) + 1, int(day), int(hh), int(mm), int(ss),
                       tzinfo=dt.UTC)
    return when.timestamp()


def expected_retry_after(headers: dict[str, str], now: float) -> float | None:
    value = headers["retry-after"]
    if value.isdigit():
        seconds = float(value)
    else:
        reference = read_imf_fixdate(headers["date"]) if "date" in headers else now
        seconds = read_imf_fixdate(value) - reference
    return seconds if seconds > 0 else None


def expected_quota(headers: dict[str, str], now: float) -> float | None:
    waits = []
    for prefix in ("x-", ""):
        remaining = headers.get(f"{prefix}ratelimit-remaining")
        reset = headers.get(f"{prefix}ratelimit-reset")
        if remaining is None or reset is None or int(remaining) > 0:
            continue
        value = int(reset)
        if value > 10**11:
            value_s = value / 1000
        elif value > 10**9:
            value_s = float(value)
        else:
            waits.append(float(value))
            continue
        reference = read_imf_fixdate(headers["date"]) if "date" in headers else now
        waits.append(value_s - reference)
    field = headers.get("ratelimit")
    if field is not None:
        for item in field.split(","):
            params = dict(p.split("=") for p in item.strip().split(";")[1:])
            if "r" in params and "t" in params and int(params["r"]) <= 0:
                waits.append(float(params["t"]))
    waits = [w for w in waits if w > 0]
    return max(waits) if waits else None


# --- strategies -------------------------------------------------------------------------------

unix_times = st.integers(int(NOW) - 10**8, int(NOW) + 10**8).map(float)
skews = st.integers(-3 * 86_400, 3 * 86_400)


@st.composite
def retry_after_headers(draw: st.DrawFn) -> dict[str, str]:
    if draw(st.booleans()):
        return {"retry-after": str(draw(st.integers(0, 10**12)))}
    server_now = NOW + draw(skews)
    headers = {"retry-after": imf_fixdate(server_now + draw(st.integers(-10**6, 10**6)))}
    if draw(st.booleans()):
        headers["date"] = imf_fixdate(server_now)
    return headers


@st.composite
def quota_headers(draw: st.DrawFn) -> dict[str, str]:
    headers: dict[str, str] = {}
    server_now = NOW + draw(skews)
    if draw(st.booleans()):
        headers["date"] = imf_fixdate(server_now)
    for prefix in draw(st.sets(st.sampled_from(["x-", ""]))):
        headers[f"{prefix}ratelimit-remaining"] = str(draw(st.integers(0, 3)))
        headers[f"{prefix}ratelimit-reset"] = str(draw(st.one_of(
            st.integers(0, 10**6),  # delta seconds
            st.integers(int(server_now) - 10**4, int(server_now) + 10**7),  # Unix time
            st.integers(int(server_now) * 1000 - 10**6, int(server_now) * 1000 + 10**9),  # ms
        )))
    if draw(st.booleans()):
        items = draw(st.lists(st.tuples(st.sampled_from(["default", "daily", "burst"]),
                                        st.integers(0, 3), st.integers(0, 10**6)),
                              min_size=1, max_size=3, unique_by=lambda i: i[0]))
        headers["ratelimit"] = ", ".join(f'"{n}";r={r};t={t}' for n, r, t in items)
    return headers


# --- parsing ----------------------------------------------------------------------------------

@given(retry_after_headers())
def test_retry_after_matches_the_rfc(headers: dict[str, str]) -> None:
    """Delay-seconds as given; an HTTP-date minus the response's Date, else minus our clock."""
    wait = retry_after(headers, NOW)
    expected = expected_retry_after(headers, NOW)
    assert (wait.seconds if wait else None) == pytest.approx(expected)
    if wait is not None:
        assert "Retry-After" in wait.source


@given(quota_headers())
def test_quota_wait_matches_the_drafts(headers: dict[str, str]) -> None:
    """An exhausted quota's reset, delta or Unix time (s or ms) or IETF ``t``; the longest wins."""
    wait = quota_wait(headers, NOW)
    expected = expected_quota(headers, NOW)
    assert (wait.seconds if wait else None) == pytest.approx(expected)
    if wait is not None:
        assert "RateLimit" in wait.source


@pytest.mark.parametrize(("headers", "seconds", "named"), [
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3)}, 3, "X-RateLimit-Reset"),
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3),
      "date": imf_fixdate(NOW + 600)}, None, None),  # the server's clock says the reset is past
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 603),
      "date": imf_fixdate(NOW + 600)}, 3, "X-RateLimit-Reset"),
    ({"ratelimit-remaining": "0", "ratelimit-reset": "7"}, 7, "RateLimit-Reset: 7"),
    ({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "7"}, None, None),
    ({"ratelimit": '"default";r=0;t=3', "ratelimit-policy": '"default";q=100;w=60'}, 3, "RateLimit"),
    ({"ratelimit": '"default";r=0', "ratelimit-policy": '"default";q=100;w=60'}, 60, "RateLimit"),
    ({"ratelimit": "limit=100, remaining=0, reset=5"}, 5, "RateLimit"),
    ({"ratelimit": '"default";r=5;t=3'}, None, None),
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "soon"}, None, None),
    ({"ratelimit": 'garbage;;;', "x-ratelimit-remaining": "0", "x-ratelimit-reset": "nan"}, None, None),
])
def test_quota_examples(headers: dict[str, str], seconds: float | None, named: str | None) -> None:
    """The forms public APIs send, one example each."""
    wait = quota_wait(headers, NOW)
    assert (wait.seconds if wait else None) == pytest.approx(seconds, abs=1)
    if named is not None:
        assert wait is not None and named in wait.source


def test_retry_after_date_is_read_on_the_servers_clock() -> None:
    """Issue 11, input 2: a server 10 minutes ahead asking for 5 s means 5 s, not 605."""
    server_now = NOW + 600
    wait = retry_after({"date": imf_fixdate(server_now),
                        "retry-after": imf_fixdate(server_now + 5)}, NOW)
    assert wait is not None and wait.seconds == pytest.approx(5)
    without_date = retry_after({"retry-after": imf_fixdate(server_now + 5)}, NOW)
    assert without_date is not None and without_date.seconds == pytest.approx(605)


# --- the client: never a pause beyond max_wait, never a hang ----------------------------------

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
any_headers = st.dictionaries(
    st.sampled_from(["retry-after", "date", "x-ratelimit-remaining", "x-ratelimit-reset",
                     "ratelimit-remaining", "ratelimit-reset", "ratelimit", "ratelimit-policy"]),
    header_text, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.one_of(any_headers, retry_after_headers(), quota_headers()),
       st.sampled_from([200, 429, 503]))
def test_no_pause_beyond_max_wait_whatever_the_headers(
        headers: dict[str, str], status: int) -> None:
    """Two requests; any header values: every pause and every retry wait is <= max_wait."""
    slept: list[float] = []
    answers = iter([(status, headers)] * 3 + [(200, {})] * 10)

    def handler(request: httpx.Request) -> httpx.Response:
        code, extra = next(answers)
        return httpx.Response(code, headers=extra, json=PAGE if code == 200 else {"errors": []})

    raw = {"client": {**SANDBOX_CLIENT, "base_url": BASE},
           "resources": [{"name": "tags", "endpoint": {
               "path": "/v1/tags", "error_handler": {"retry_on_status_codes": [429],
                                                      "max_wait": 30, "max_retries": 2}}}]}
    config = load_config(raw)
    resource = config.resources[0]
    events: list[RetryEvent] = []
    with ApiClient(config, Credentials("sk-test-key-1234", "org_test"),
                   transport=httpx.MockTransport(handler),
                   timing=Timing(sleep=slept.append)) as client:
        for page in (1, 2):
            try:
                client.get(request_of(resource), {"page": page}, page=page, on_retry=events.append)
            except (LimitExceededError, APIError) as exc:
                assert "max_wait" in str(exc) or "gave up" in str(exc) or "HTTP" in str(exc)
    assert all(0 <= s <= 30 for s in slept), slept
    assert all(e.wait <= 30 * 1.1 + 1e-9 for e in events), events


# --- over loopback HTTP: the inputs of issue 11 -----------------------------------------------

@pytest.fixture
def slept() -> Iterator[list[float]]:
    """The limiter's pauses, recorded instead of slept (the run is given ``recording``)."""
    yield []


def recording(slept: list[float]) -> Timing:
    """A run's timing whose limiter records its pauses in ``slept`` instead of sleeping."""
    return Timing(sleep=slept.append)


def test_unix_time_reset_pauses_seconds_not_decades(
        tmp_path: Path, slept: list[float], caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11, input 1: X-RateLimit-Reset = now + 3 as a Unix time pauses about 3 s, logged."""
    caplog.set_level(logging.INFO, logger="analytics_client")
    with serve(World(seed=5, counts=SMALL), SandboxSettings(late_visibility=False)) as sandbox:
        sandbox.set_faults([{"kind": "quota_exhausted", "resource": "deals", "seconds": 3,
                             "style": "unix"}])
        summaries = sync(sandbox, tmp_path / "lake", timing=recording(slept))
    assert all(s.status == "ok" for s in summaries.values())
    assert slept and max(slept) <= 5, slept
    assert "X-RateLimit-Reset" in caplog.text and "pauses" in caplog.text


def test_reset_beyond_max_wait_fails_at_once_naming_the_header(
        tmp_path: Path, slept: list[float]) -> None:
    """A reset an hour away, max_wait 300 s: the resource fails at once, header and wait named."""
    with serve(World(seed=5, counts=SMALL), SandboxSettings(late_visibility=False)) as sandbox:
        sandbox.set_faults([{"kind": "quota_exhausted", "resource": "deals", "seconds": 3600,
                             "style": "unix"}])
        summaries = sync(sandbox, tmp_path / "lake", resources=["deals"],
                         timing=recording(slept))
    error = summaries["deals"].error or ""
    assert summaries["deals"].status == "failed"
    assert "X-RateLimit-Reset" in error and "wait 36" in error and "max_wait=300" in error
    assert not slept or max(slept) <= 300


def test_skewed_server_clock_retry_after_date(tmp_path: Path) -> None:
    """Issue 11, input 2, over HTTP: 429 with Retry-After = server now + 5 s, server 10 min ahead."""
    events: list[Any] = []
    with serve(World(seed=5, counts=SMALL), SandboxSettings(late_visibility=False)) as sandbox:
        sandbox.set_faults([{"kind": "retry_after_date", "resource": "deals", "seconds": 5,
                             "skew": 600}])
        summaries = sync(sandbox, tmp_path / "lake", resources=["deals"])
        events = summaries["deals"].retries, summaries["deals"].status  # type: ignore[assignment]
    assert events == (1, "ok"), summaries["deals"].error


def test_a_pause_counts_its_own_length_toward_max_total_wait(slept: list[float]) -> None:
    """A 3 s quota pause adds 3 s to the resource's waits, once, however many requests wait."""
    answers = iter([{"x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"}] + [{}] * 5)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=next(answers), json=PAGE)

    config = load_config({"client": {**SANDBOX_CLIENT, "base_url": BASE},
                          "resources": [{"name": "tags", "endpoint": {"path": "/v1/tags"}}]})
    resource = config.resources[0]
    with ApiClient(config, Credentials("sk-test-key-1234", "org_test"),
                   transport=httpx.MockTransport(handler), timing=recording(slept)) as client:
        for page in (1, 2, 3):
            client.get(request_of(resource), {"page": page}, page=page)
        assert client._waited["tags"] == pytest.approx(3, abs=0.5)
    assert len(slept) >= 1 and max(slept) <= 3

"""Query parameters with secret-like names never show their values (issue 22, item 6).

dlt's test: a 404 on a URL carrying ``api_key=...&access_token=...`` from the config's params
must not show the values in the exception, nor in any log line. We run the whole library
against a loopback API that answers 404 and echoes the request line back, as many do, and look
at everything a user sees: the resource's summary, every log record at every level (message
and traceback), in each spelling a value travels in (as typed, percent-encoded either way,
form-encoded, JSON-escaped, base64). The oracle is the list of spellings, written here.
"""

from __future__ import annotations

import base64
import json
import logging
import tempfile
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, load_config, run_sync
from tests.routeserver import Request, RouteServer

# dlt's SENSITIVE_PARAMS (dlt/sources/helpers/rest_client/redaction.py), written out here.
DLT_SENSITIVE = ["api_key", "token", "key", "access_token", "apikey", "api-key",
                 "access-token", "secret", "password", "pwd", "client_secret"]
EXTRA = ["signature", "auth", "refresh_token"]


def spellings(value: str) -> list[str]:
    raw = value.encode()
    forms = [value, quote(value, safe=""), quote(value), quote_plus(value),
             urlencode({"k": value})[2:], json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1],
             base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return list(dict.fromkeys(forms))


def echo_404(request: Request) -> tuple[int, Any]:
    """A 404 that quotes the request line and every query value, as a careless API does."""
    values = ", ".join(request.query.values())
    return 404, {"errors": [{"detail": f"GET {request.target} not found (given: {values})"}]}


def run_once(server: RouteServer, params: dict[str, str], caplog: pytest.LogCaptureFixture
             ) -> tuple[str, list[str]]:
    config = {"client": {"base_url": "https://api.example.com"},
              "resources": [{"name": "things", "endpoint": {
                  "path": "/v1/things", "params": params, "paginator": "single_page"}}]}
    caplog.clear()
    with tempfile.TemporaryDirectory() as lake, caplog.at_level(logging.DEBUG):
        source = load_config(config, base_url=server.base_url)
        [summary] = run_sync(source, Credentials(api_key="the-header-key"), lake)
    assert summary.status == "failed"
    lines = [r.getMessage() for r in caplog.records]
    lines += [logging.Formatter().formatException(r.exc_info) for r in caplog.records
              if r.exc_info]
    lines += [r.exc_text for r in caplog.records if r.exc_text]
    return summary.error or "", lines


def assert_nowhere(values: list[str], error: str, lines: list[str]) -> None:
    for value in values:
        for form in spellings(value):
            assert form not in error, (form, error)
            for line in lines:
                assert form not in line, (form, line)


def test_dlt_case_api_key_and_access_token_never_shown(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    """dlt's own case: the 404's message, the summary and the log name the URL with ***."""
    with RouteServer({("GET", r"/v1/things"): echo_404}) as server:
        error, lines = run_once(server, {"api_key": "sk_live_abc123XYZ",
                                         "access_token": "tok/with+odd=chars&more",
                                         "page_size": "5"}, caplog)
    assert "404" in error and "api_key=***" in error and "access_token=***" in error
    assert "page_size=5" in error  # other parameters stay readable
    assert_nowhere(["sk_live_abc123XYZ", "tok/with+odd=chars&more"], error, lines)
    assert any("api_key=***" in line for line in lines)  # the request line was logged, masked


def _cased(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title()])


names = st.sampled_from(DLT_SENSITIVE + EXTRA).flatmap(_cased)
# Braces are placeholders in params (dlt: str.format); a literal one is written {{ or }}.
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs"),
                               exclude_characters="{}"),
                 min_size=8, max_size=24)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(names, values), min_size=1, max_size=3,
                unique_by=lambda pair: pair[0].lower()))
def test_any_secret_like_param_value_is_never_shown(caplog: pytest.LogCaptureFixture,
                                                    pairs: list[tuple[str, str]]) -> None:
    """Whatever the sensitive name (any case) and value (any characters), no spelling of the
    value is in the summary or any log record of the failed run."""
    assume(all("***" not in v for _, v in pairs))
    params = {**dict(pairs), "page_size": "5"}
    with RouteServer({("GET", r"/v1/things"): echo_404}) as server:
        error, lines = run_once(server, params, caplog)
    assert "404" in error
    assert_nowhere([v for _, v in pairs], error, lines)

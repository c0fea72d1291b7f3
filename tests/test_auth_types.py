"""Every dlt auth type syncs the real sandbox (loopback HTTP) into Delta equal to the truth.

The auth blocks are quoted from the shapes dlt documents
(https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/basic#authentication), with
each secret written as the ``dlt.secrets[...]`` placeholder our configs require. The sandbox
changes records while the first run reads; the two runs after it must equal the truth.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import DEFAULT_CONFIG, Credentials, load_config
from analytics_client.core.errors import (
    APIError,
    ConfigError,
    SecretNotFoundError,
    TokenRequestError,
)
from analytics_client.http.client import ApiClient
from analytics_client.http.oauth2 import OAuth2ClientCredentials
from analytics_client.orchestration.secrets import resolve_credentials
from analytics_sandbox import SandboxSettings, World, serve
from analytics_sandbox.app import TOKEN_PATH
from tests.plans import request_of
from tests.support import ORG_HEADERS, assert_lake_equals_truth, sync

SMALL = {"tags": 40, "users": 60, "deals": 230, "pages": 90, "tasks": 150}
READ = ("deals", "tasks")
CLIENT_ID = "sandbox-client-7f3a"
CLIENT_SECRET = "s3cr3t-client-value-91be"


def auth_config(kind: str, token_url: str) -> dict[str, Any]:
    """dlt's documented ``client.auth`` block of each type."""
    return {
        "bearer": {"type": "bearer", "token": 'dlt.secrets["api_key"]'},
        "api_key header": {"type": "api_key", "name": "api_key",
                           "api_key": 'dlt.secrets["api_key"]', "location": "header"},
        "api_key query": {"type": "api_key", "name": "api_key",
                          "api_key": 'dlt.secrets["api_key"]', "location": "query"},
        "http_basic": {"type": "http_basic", "username": "sync",
                       "password": 'dlt.secrets["api_key"]'},
        "oauth2_client_credentials": {
            "type": "oauth2_client_credentials",
            "access_token_url": token_url,
            "client_id": 'dlt.secrets["client_id"]',
            "client_secret": 'dlt.secrets["client_secret"]',
            "access_token_request_data": {"scope": "read"},
            "default_token_expiration": 3600,
        },
    }[kind]


def oauth_settings(**changes: Any) -> SandboxSettings:
    return SandboxSettings(oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET,
                           **changes)


def credentials(sandbox: Any) -> Credentials:
    return Credentials(sandbox.api_key, sandbox.organization_id, client_id=CLIENT_ID,
                       client_secret=CLIENT_SECRET)


@pytest.mark.parametrize("kind", ["bearer", "api_key header", "api_key query", "http_basic",
                                  "oauth2_client_credentials"])
def test_each_auth_type_syncs_equal_to_the_truth_twice_with_changes_during_the_first(
        tmp_path: Path, kind: str) -> None:
    """Changes while the first run reads; the next two runs equal the truth."""
    # A token serves 40 API requests: the first run meets expired tokens mid-read, on
    # several threads at once, and each gets one retry with a fresh one.
    settings = oauth_settings(mutate_every_n_requests=3, mutate_updates=4, mutate_creates=1,
                              late_visibility=False, fault_seed=11, oauth_token_uses=40)
    with serve(World(seed=11, counts=SMALL), settings) as sandbox:
        raw = copy.deepcopy(DEFAULT_CONFIG)
        raw["client"]["auth"] = auth_config(kind, sandbox.base_url + TOKEN_PATH)
        first = sync(sandbox, tmp_path, config=raw, credentials=credentials(sandbox),
                     resources=list(READ))
        assert all(s.status == "ok" for s in first.values()), first
        assert sandbox.stats()["mutations"] > 0
        sandbox.configure(mutate_every_n_requests=0)
        for seed in (1, 2):
            summaries = sync(sandbox, tmp_path, config=raw, credentials=credentials(sandbox),
                             resources=list(READ))
            assert all(s.status == "ok" for s in summaries.values()), summaries
            assert_lake_equals_truth(sandbox, tmp_path, READ)
            sandbox.advance(updates=10, creates=3, seed=seed)
        tokens = sandbox.stats()["requests"].get("oauth_token", {})
        if kind == "oauth2_client_credentials":
            assert tokens.get("200", 0) > 3  # expired tokens were replaced mid-run
            assert "401" not in tokens
        else:
            assert tokens == {}


def oauth_source(base_url: str, **auth: Any) -> Any:
    raw = {"client": {"headers": ORG_HEADERS, "base_url": base_url,
                      "auth": {**auth_config("oauth2_client_credentials",
                                             base_url + TOKEN_PATH), **auth}},
           "resources": [{"name": "tags", "endpoint": {"path": "/v1/tags"}}]}
    return load_config(raw)


def test_a_token_is_refreshed_before_it_expires() -> None:
    """A token is replaced once its life minus the margin has passed, before a request is sent
    with it; until then it is reused."""
    now = [1000.0]
    with serve(World(seed=1, counts=SMALL), oauth_settings(oauth_token_ttl=100)) as sandbox:
        auth = OAuth2ClientCredentials(sandbox.base_url + TOKEN_PATH, CLIENT_ID, CLIENT_SECRET,
                                       clock=lambda: now[0])
        headers = {"X-Organization-Id": sandbox.organization_id}
        with httpx.Client(base_url=sandbox.base_url, auth=auth, headers=headers) as client:
            for _ in range(3):
                assert client.get("/v1/tags").status_code == 200
            assert sandbox.stats()["requests"]["oauth_token"] == {"200": 1}
            now[0] += 89.0  # the token lives 100 s; it is replaced 10 s (a tenth) early
            assert client.get("/v1/tags").status_code == 200
            assert sandbox.stats()["requests"]["oauth_token"] == {"200": 1}
            now[0] += 1.0
            assert client.get("/v1/tags").status_code == 200
            assert sandbox.stats()["requests"]["oauth_token"] == {"200": 2}


def test_a_revoked_token_gets_one_retry_with_a_fresh_one() -> None:
    """The server forgets its tokens: the next request is answered 401, a new token is asked
    for, and the same request is sent again and succeeds."""
    with serve(World(seed=1, counts=SMALL), oauth_settings()) as sandbox:
        source = oauth_source(sandbox.base_url)
        with ApiClient(source, credentials(sandbox)) as client:
            resource = source.resources[0]
            assert client.get(request_of(resource), {})["data"]
            assert sandbox.app is not None
            sandbox.app.expire_tokens()
            assert client.get(request_of(resource), {})["data"]
        stats = sandbox.stats()["requests"]
        assert stats["oauth_token"] == {"200": 2}
        assert stats["tags"] == {"200": 2, "401": 1}


def test_a_second_401_is_the_answer_not_retried_again() -> None:
    """Tokens that serve no request: one fresh token is tried, then the 401 fails the
    resource with a hint, naming neither the secret nor a token."""
    with serve(World(seed=1, counts=SMALL), oauth_settings(oauth_token_ttl=0)) as sandbox:
        source = oauth_source(sandbox.base_url)
        with ApiClient(source, credentials(sandbox)) as client, \
                pytest.raises(APIError) as caught:
            client.get(request_of(source.resources[0]), {})
        assert sandbox.stats()["requests"]["oauth_token"] == {"200": 2}
    assert caught.value.status == 401
    assert caught.value.resource == "tags"
    assert "access_token_request_data" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)
    assert "sbx-" not in str(caught.value)


def test_a_refused_client_fails_with_the_endpoint_error_and_no_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    """A wrong client secret: the resource fails naming the token URL and RFC 6749's error
    code; neither secret appears in the error or the logs."""
    caplog.set_level(logging.DEBUG)
    with serve(World(seed=1, counts=SMALL), oauth_settings()) as sandbox:
        source = oauth_source(sandbox.base_url)
        wrong = Credentials(sandbox.api_key, sandbox.organization_id, client_id=CLIENT_ID,
                            client_secret="not-the-secret-4411")
        with ApiClient(source, wrong) as client, pytest.raises(APIError) as caught:
            client.get(request_of(source.resources[0]), {})
    message = str(caught.value)
    assert "invalid_client" in message and TOKEN_PATH in message
    assert "access_token_url" in message
    for text in (message, caplog.text):
        assert "not-the-secret-4411" not in text
        assert CLIENT_SECRET not in text


def test_a_token_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """An API error echoing the bearer token is shown with the token masked."""
    caplog.set_level(logging.DEBUG)
    with serve(World(seed=1, counts=SMALL), oauth_settings()) as sandbox:
        source = oauth_source(sandbox.base_url)
        auth = OAuth2ClientCredentials(sandbox.base_url + TOKEN_PATH, CLIENT_ID, CLIENT_SECRET)
        with httpx.Client(base_url=sandbox.base_url, auth=auth) as plain:
            token = plain.get("/v1/tags").request.headers["authorization"].split()[1]
        with ApiClient(source, credentials(sandbox)) as client:
            client.get(request_of(source.resources[0]), {})
            assert token not in client._clean(f"the API said: token {token} is odd")
    assert token not in caplog.text


def test_the_sandbox_takes_client_credentials_in_basic_auth_or_the_body() -> None:
    """RFC 6749 §2.3.1 allows both; a wrong grant or client gets §5.2's error codes."""
    with serve(World(seed=1, counts=SMALL), oauth_settings(oauth_token_ttl=30)) as sandbox:
        url = sandbox.base_url + TOKEN_PATH
        basic = httpx.post(url, data={"grant_type": "client_credentials"},
                           auth=(CLIENT_ID, CLIENT_SECRET))
        body = httpx.post(url, data={"grant_type": "client_credentials",
                                     "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        for answer in (basic, body):
            assert answer.status_code == 200
            assert answer.json()["token_type"] == "Bearer"
            assert answer.json()["expires_in"] == 30
        grant = httpx.post(url, data={"grant_type": "password", "client_id": CLIENT_ID,
                                      "client_secret": CLIENT_SECRET})
        assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
        client = httpx.post(url, data={"grant_type": "client_credentials"},
                            auth=(CLIENT_ID, "wrong"))
        assert (client.status_code, client.json()["error"]) == (401, "invalid_client")
        token = basic.json()["access_token"]
        api = httpx.get(sandbox.base_url + "/v1/tags", headers={
            "Authorization": f"Bearer {token}", "X-Organization-Id": sandbox.organization_id})
        assert api.status_code == 200


def test_the_token_request_is_dlts_form() -> None:
    """grant_type, client_id, client_secret and access_token_request_data, form-encoded."""
    auth = OAuth2ClientCredentials("https://auth.example.com/token", "id-1", "secret-1",
                                   access_token_request_data={"scope": "read write"})
    request = auth.build_access_token_request()
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert httpx.QueryParams(request.read().decode()) == httpx.QueryParams(
        {"client_id": "id-1", "client_secret": "secret-1", "grant_type": "client_credentials",
         "scope": "read write"})
    assert "secret-1" not in repr(auth)


def test_an_apis_own_grant_type_is_sent_as_dlt_sends_it() -> None:
    """dlt lets access_token_request_data override the grant (Zoom's account_credentials with
    an account_id); only the credentials may never be set there."""
    from analytics_client.http.auth import build_auth

    source = oauth_source("https://api.example.com", access_token_request_data={
        "grant_type": "account_credentials", "account_id": "acc-1"})
    creds = Credentials("", "org-1", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    auth = build_auth(source.client.auth, creds)
    assert isinstance(auth, OAuth2ClientCredentials)
    sent = httpx.QueryParams(auth.build_access_token_request().read().decode())
    assert (sent["grant_type"], sent["account_id"]) == ("account_credentials", "acc-1")
    assert (sent["client_id"], sent["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)


def test_the_token_request_waits_no_longer_than_the_page_would() -> None:
    """httpx puts the client's timeouts on the request it is given, not on the requests an auth
    flow yields: the token request takes the page's, else a silent token endpoint would hold
    the run forever."""
    seen: dict[str, Any] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen[request.method] = request.extensions.get("timeout")
        if request.method == "POST":
            return httpx.Response(200, json={"access_token": "tok-1234567890", "expires_in": 60})
        return httpx.Response(200, json={"data": []})

    auth = OAuth2ClientCredentials("https://auth.example.com/token", "id-1", "secret-1")
    timeout = httpx.Timeout(7.0, connect=2.0)
    with httpx.Client(auth=auth, timeout=timeout, transport=httpx.MockTransport(answer)) as http:
        assert http.get("https://api.example.com/v1/tags").status_code == 200
    assert seen["POST"] == seen["GET"] == timeout.as_dict()


def test_oauth2_is_registered_by_its_dlt_type_name() -> None:
    """issue-13surface's registry builds it from the config; the package exports it."""
    import analytics_client
    from analytics_client.http.auth import AUTH_TYPES, build_auth

    assert AUTH_TYPES["oauth2_client_credentials"] is OAuth2ClientCredentials
    assert analytics_client.OAuth2ClientCredentials is OAuth2ClientCredentials
    source = oauth_source("https://api.example.com")
    creds = Credentials("", "org-1", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    auth = build_auth(source.client.auth, creds)
    assert isinstance(auth, OAuth2ClientCredentials)
    assert auth.access_token_url == "https://api.example.com" + TOKEN_PATH
    assert CLIENT_SECRET not in repr(auth)
    with pytest.raises(SecretNotFoundError):
        build_auth(source.client.auth, Credentials("key-123456789", "org-1"))


@pytest.mark.parametrize(("auth", "problem"), [
    ({"client_secret": "literal-secret"}, "auth.client_secret: must not hold a secret"),
    ({"access_token_url": "/oauth/token"}, "auth.access_token_url: must be an absolute"),
    ({"access_token_request_data": {"client_secret": 'x'}}, "access_token_request_data: sets"),
    ({"session": {}}, "auth.session: dlt's 'session' is not supported yet"),
])
def test_an_oauth2_config_mistake_is_named(auth: dict[str, Any], problem: str) -> None:
    """Each mistake names its key and what to do."""
    with pytest.raises(ConfigError) as caught:
        oauth_source("http://127.0.0.1:9", **auth)
    assert problem in str(caught.value)


def test_the_secrets_an_oauth2_config_needs_are_named() -> None:
    source = oauth_source("http://127.0.0.1:9")
    assert source.secret_names() == ("client_id", "client_secret", "organization_id")
    # The seed declares X-Organization-Id: dlt.secrets["organization_id"] (issue 22, item 5).
    assert load_config(None).secret_names() == ("api_key", "organization_id")


def test_an_oauth2_source_reads_its_client_from_the_environment_and_needs_no_api_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The client id and secret come from ANALYTICS_CLIENT_ID / ANALYTICS_CLIENT_SECRET (or
    their blocks); without the secret the error names where to put it."""
    needs = oauth_source("http://127.0.0.1:9").secret_names()
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", "org_1")
    monkeypatch.setenv("ANALYTICS_CLIENT_ID", CLIENT_ID)
    with pytest.raises(SecretNotFoundError, match="ANALYTICS_CLIENT_SECRET"):
        resolve_credentials(None, None, base_url="http://127.0.0.1:9", needs=needs)
    monkeypatch.setenv("ANALYTICS_CLIENT_SECRET", CLIENT_SECRET)
    found = resolve_credentials(None, None, base_url="http://127.0.0.1:9", needs=needs)
    assert (found.client_id, found.client_secret, found.api_key) == (CLIENT_ID, CLIENT_SECRET, "")
    assert CLIENT_SECRET not in repr(found)
    with pytest.raises(SecretNotFoundError, match="ANALYTICS_API_KEY"):
        resolve_credentials(None, None, base_url="http://127.0.0.1:9",
                            needs=load_config(None).secret_names())


TOKEN_BODIES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["access_token", "expires_in", "token_type", "error",
                         "error_description"]), inner, max_size=5),
    max_leaves=8)


@given(body=TOKEN_BODIES, status=st.sampled_from([200, 400, 401, 500]),
       echo=st.booleans())
def test_any_token_answer_gives_a_token_or_a_clean_error(body: Any, status: int,
                                                         echo: bool) -> None:
    """Whatever a token endpoint answers: a non-empty token with a lifetime >= 0, or a
    TokenRequestError that never quotes the client secret (even when the answer echoes it)."""
    if echo and isinstance(body, dict):
        body = {**body, "error": "invalid_client", "error_description": f"bad {CLIENT_SECRET}"}
    auth = OAuth2ClientCredentials("https://auth.example.com/token", CLIENT_ID, CLIENT_SECRET)
    response = httpx.Response(status, content=json.dumps(body).encode())
    try:
        token, lifetime = auth._parse(response)
    except TokenRequestError as exc:
        assert CLIENT_SECRET not in str(exc)
        return
    assert status == 200 and isinstance(body, dict)
    assert token == body["access_token"] and token
    assert lifetime >= 0


@pytest.mark.parametrize("auth", ["bearer", {"token": 'dlt.secrets["api_key"]'}, {}])
@pytest.mark.parametrize("where", ["client", "endpoint"])
def test_dlt_auth_shorthands_mean_bearer(auth: object, where: str) -> None:
    """dlt's ``create_auth``: a type name alone, and a mapping without ``type`` (``bearer``)."""
    from analytics_client.config.auth import BearerAuth

    config: dict[str, object] = {"client": {"base_url": "https://api.example.com"},
                                 "resources": [{"name": "r", "endpoint": {"path": "/r"}}]}
    if where == "client":
        config["client"]["auth"] = auth  # type: ignore[index]
    else:
        config["resources"][0]["endpoint"]["auth"] = auth  # type: ignore[index]
    source = load_config(config)
    found = source.client.auth if where == "client" else source.resources[0].endpoint.auth
    assert isinstance(found, BearerAuth) and found.token == "api_key"

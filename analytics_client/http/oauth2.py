"""OAuth 2.0 client credentials (RFC 6749 §4.4) as an ``httpx.Auth`` that httpx drives.

dlt's ``OAuth2ClientCredentials`` with its names and defaults: the token request is a form
``POST`` to ``access_token_url`` with ``grant_type=client_credentials``, ``client_id``,
``client_secret`` and ``access_token_request_data`` (RFC 6749 §2.3.1 allows the credentials in
the body); the answer's ``access_token`` goes out as ``Authorization: Bearer`` and lives
``expires_in`` seconds, else ``default_token_expiration``.

Where we differ from dlt, and why:

* the token is refreshed ``REFRESH_MARGIN`` before it expires (at most a tenth of its life),
  not after: a request sent with a token about to lapse would reach the API expired;
* a ``401`` from the API gets one retry with a fresh token: a server may revoke a token early
  (a key rotation, a restart that lost its sessions), and a second 401 is the real answer;
* threads share one token, so a refresh by one is seen by all; a 401 only refreshes when the
  token it was sent with is still the current one (no stampede of refreshes);
* every token issued is handed to ``redaction.remember``: it never appears in logs or errors.

The class does no I/O: ``auth_flow`` yields the token request and httpx sends it
(``ApiClient`` hands the auth to ``httpx.Client``). Only token responses need their body, so
instead of ``requires_response_body`` (which would read every API page into memory before
``max_response_bytes`` is checked) the two flow drivers read the bodies of the token responses
alone. The token request takes the page request's timeouts: httpx sets the client's timeouts on
the request it was given, not on the ones an auth flow yields, which would otherwise wait on a
silent token endpoint forever.

It registers as ``oauth2_client_credentials`` in ``auth.AUTH_TYPES`` (a ``ConfiguredAuth``);
``analytics_client`` imports this module, so the type is known wherever the package is used.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import TokenRequestError
from analytics_client.http.auth import ConfiguredAuth
from analytics_client.http.redaction import redact, remember

if TYPE_CHECKING:
    from analytics_client.config.model import OAuth2ClientCredentialsAuth

__all__ = ["REFRESH_MARGIN", "OAuth2ClientCredentials"]

REFRESH_MARGIN = 30.0  # seconds before expiry a token is replaced
TOKEN_REQUEST = "analytics_client.oauth2_token_request"  # extension marking a token request

Flow = Generator[httpx.Request, httpx.Response, None]


class OAuth2ClientCredentials(ConfiguredAuth):
    """Bearer tokens from a client-credentials grant, refreshed before expiry.

    ``clock`` returns monotonic seconds (tests pass a fake one). Raises ``TokenRequestError``
    (from the flow) when the token endpoint answers anything but a JSON ``access_token``.
    """

    type = "oauth2_client_credentials"

    def __init__(self, access_token_url: str, client_id: str, client_secret: str, *,
                 access_token_request_data: Mapping[str, Any] | None = None,
                 default_token_expiration: int = 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.access_token_url = access_token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.access_token_request_data = dict(access_token_request_data or {})
        self.default_token_expiration = default_token_expiration
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    @classmethod
    def from_config(cls, config: OAuth2ClientCredentialsAuth,
                    credentials: Credentials) -> OAuth2ClientCredentials:
        """dlt's keys of ``client.auth``; the client id and secret are ``dlt.secrets`` names."""
        return cls(config.access_token_url, credentials.value(config.client_id),
                   credentials.value(config.client_secret),
                   access_token_request_data=config.access_token_request_data,
                   default_token_expiration=config.default_token_expiration)

    def __repr__(self) -> str:
        return (f"OAuth2ClientCredentials(access_token_url={self.access_token_url!r}, "
                "client_id=***, client_secret=***)")

    def auth_flow(self, request: httpx.Request) -> Flow:
        timeout = request.extensions.get("timeout")
        token = self._valid_token()
        if token is None:
            token = yield from self._obtain_token(timeout)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        fresh = self._newer_than(token)
        if fresh is None:
            fresh = yield from self._obtain_token(timeout)
        request.headers["Authorization"] = f"Bearer {fresh}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Flow:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.extensions.get(TOKEN_REQUEST):
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(
            self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.extensions.get(TOKEN_REQUEST):
                await response.aread()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    def build_access_token_request(self, timeout: Any = None) -> httpx.Request:
        """dlt's request: form-encoded credentials and grant, plus ``access_token_request_data``.

        ``timeout`` is httpx's ``timeout`` request extension (the page request's), if any.
        """
        data = {"client_id": self._client_id, "client_secret": self._client_secret,
                "grant_type": "client_credentials", **self.access_token_request_data}
        extensions: dict[str, Any] = {TOKEN_REQUEST: True}
        if timeout is not None:
            extensions["timeout"] = timeout
        return httpx.Request("POST", self.access_token_url, data=data,
                             headers={"Accept": "application/json"}, extensions=extensions)

    def _obtain_token(self, timeout: Any) -> Generator[httpx.Request, httpx.Response, str]:
        response = yield self.build_access_token_request(timeout)
        token, lifetime = self._parse(response)
        remember(token)
        with self._lock:
            self._token = token
            self._refresh_at = self._clock() + lifetime - min(REFRESH_MARGIN, lifetime / 10)
        return token

    def _valid_token(self) -> str | None:
        with self._lock:
            return self._token if self._token and self._clock() < self._refresh_at else None

    def _newer_than(self, used: str) -> str | None:
        """The current token if another request has already replaced ``used``."""
        with self._lock:
            return self._token if self._token and self._token != used else None

    def _parse(self, response: httpx.Response) -> tuple[str, float]:
        """``access_token`` and its lifetime in seconds from a token response (RFC 6749 §5.1)."""
        secrets = (self._client_id, self._client_secret)
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            raise TokenRequestError(status=response.status_code,
                                    detail=redact(_error_text(body, response), secrets),
                                    url=self.access_token_url)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenRequestError(status=response.status_code,
                                    detail="the answer has no access_token string",
                                    url=self.access_token_url)
        expires_in = body.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None \
                else float(self.default_token_expiration)
        except (TypeError, ValueError):
            lifetime = float(self.default_token_expiration)
        return token, max(0.0, lifetime)


def _error_text(body: Any, response: httpx.Response) -> str:
    """RFC 6749 §5.2's ``error`` and ``error_description``, else the status's reason."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        description = body.get("error_description")
        return error + (f": {description}" if isinstance(description, str) else "")
    if response.status_code == 200:
        return "the answer is not a JSON object"
    return response.reason_phrase or "no detail"

"""httpx auth classes built from the config's ``client.auth``; they do no I/O and hide secrets."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from .config import ApiKeyAuth, BasicAuth, BearerAuth
from .secrets import Credentials

__all__ = ["APIKeyAuth", "BearerToken", "build_auth"]


class APIKeyAuth(httpx.Auth):
    """Puts the key in a header or a query parameter, as ``location`` says."""

    def __init__(self, name: str, key: str, location: str) -> None:
        self.name = name
        self._key = key
        self.location = location

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.location == "query":
            request.url = request.url.copy_merge_params({self.name: self._key})
        else:
            request.headers[self.name] = self._key
        yield request

    def __repr__(self) -> str:
        return f"APIKeyAuth(name={self.name!r}, location={self.location!r}, key=***)"


class BearerToken(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(token=***)"


def _secret(name: str, credentials: Credentials) -> str:
    return credentials.api_key if name == "api_key" else credentials.organization_id


def build_auth(config: ApiKeyAuth | BearerAuth | BasicAuth, credentials: Credentials) -> httpx.Auth:
    if isinstance(config, ApiKeyAuth):
        return APIKeyAuth(config.name, _secret(config.api_key, credentials), config.location)
    if isinstance(config, BearerAuth):
        return BearerToken(_secret(config.token, credentials))
    return httpx.BasicAuth(config.username, _secret(config.password, credentials))


def query_secret_params(config: ApiKeyAuth | BearerAuth | BasicAuth) -> tuple[str, ...]:
    """Query parameters that carry a secret, to mask in every URL we show."""
    if isinstance(config, ApiKeyAuth) and config.location == "query":
        return (config.name,)
    return ()

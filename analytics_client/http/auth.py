"""Auth of the API's requests: ``httpx.Auth`` classes that httpx drives, one per config ``type``.

The config's ``client.auth`` names a type as dlt's rest_api does (``api_key``, ``bearer``,
``http_basic``); ``AUTH_TYPES`` maps each name to its class. A new type is one class::

    class OAuth2ClientCredentials(ConfiguredAuth):
        type = "oauth2_client_credentials"          # registers the class under this name

        @classmethod
        def from_config(cls, config, credentials): ...

        def auth_flow(self, request): ...            # may yield a token request first

httpx itself runs ``auth_flow`` (``ApiClient`` passes the auth to ``httpx.Client``), so a flow of
several steps (fetch a token, retry once after a 401) works as httpx documents it
(https://www.python-httpx.org/advanced/authentication/#custom-authentication-schemes).
The classes do no I/O of their own and never show a secret in ``repr``. dlt's
``oauth2_client_credentials`` is such a class, ``oauth2.OAuth2ClientCredentials``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

import httpx

from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import ConfigError

__all__ = [
    "AUTH_TYPES",
    "APIKeyAuth",
    "BearerToken",
    "ConfiguredAuth",
    "HTTPBasicAuth",
    "build_auth",
]

AuthFlow = Generator[httpx.Request, httpx.Response, None]

AUTH_TYPES: dict[str, type[ConfiguredAuth]] = {}
"""Auth classes by the config's ``client.auth.type``; a ``ConfiguredAuth`` subclass adds itself."""


class ConfiguredAuth(httpx.Auth):
    """An ``httpx.Auth`` built from one ``client.auth`` config; subclasses register by ``type``.

    ``secret_params`` names the query parameters that carry a secret, masked in every URL shown
    (``redaction.redact_url``); secret *values* are masked everywhere regardless.
    """

    type: ClassVar[str]
    secret_params: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type")
        if isinstance(name, str):
            AUTH_TYPES[name] = cls

    @classmethod
    def from_config(cls, config: Any, credentials: Credentials) -> ConfiguredAuth:
        """The auth ``config`` (a ``client.auth`` model of this ``type``) describes."""
        raise NotImplementedError


class NoAuth(ConfiguredAuth):
    """No credentials at all: a config without ``client.auth`` sends none, as dlt's
    ``RESTClient`` without auth (the analytics API's key goes only where a config names it)."""

    def auth_flow(self, request: httpx.Request) -> AuthFlow:
        yield request

    def __repr__(self) -> str:
        return "NoAuth()"


class APIKeyAuth(ConfiguredAuth):
    """Puts the key in a header or a query parameter, as ``location`` says (dlt's ``api_key``)."""

    type = "api_key"

    def __init__(self, name: str, key: str, location: str) -> None:
        self.name = name
        self._key = key
        self.location = location
        self.secret_params = (name,) if location == "query" else ()

    @classmethod
    def from_config(cls, config: Any, credentials: Credentials) -> APIKeyAuth:
        return cls(config.name, credentials.value(config.api_key), config.location)

    def auth_flow(self, request: httpx.Request) -> AuthFlow:
        if self.location == "query":
            request.url = request.url.copy_merge_params({self.name: self._key})
        else:
            request.headers[self.name] = self._key
        yield request

    def __repr__(self) -> str:
        return f"APIKeyAuth(name={self.name!r}, location={self.location!r}, key=***)"


class BearerToken(ConfiguredAuth):
    """``Authorization: Bearer <token>`` (dlt's ``bearer``)."""

    type = "bearer"

    def __init__(self, token: str) -> None:
        self._token = token

    @classmethod
    def from_config(cls, config: Any, credentials: Credentials) -> BearerToken:
        return cls(credentials.value(config.token))

    def auth_flow(self, request: httpx.Request) -> AuthFlow:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(token=***)"


class HTTPBasicAuth(ConfiguredAuth, httpx.BasicAuth):
    """HTTP basic auth (RFC 7617; dlt's ``http_basic``): httpx's own, registered by name."""

    type = "http_basic"

    def __init__(self, username: str, password: str) -> None:
        httpx.BasicAuth.__init__(self, username, password)
        self.username = username

    @classmethod
    def from_config(cls, config: Any, credentials: Credentials) -> HTTPBasicAuth:
        return cls(config.username, credentials.value(config.password))

    def __repr__(self) -> str:
        return f"HTTPBasicAuth(username={self.username!r}, password=***)"


def build_auth(config: Any, credentials: Credentials) -> ConfiguredAuth:
    """The auth of ``client.auth``: the class registered for ``config.type``; ``NoAuth`` for
    none (``config`` None).

    Raises ``ConfigError`` naming ``client.auth.type`` for a type no class registered (config
    validation normally rejects it first).
    """
    if config is None:
        return NoAuth()
    cls = AUTH_TYPES.get(config.type)
    if cls is None:
        raise ConfigError([f"client.auth.type: unknown auth type {config.type!r}; use one of: "
                           + ", ".join(sorted(AUTH_TYPES))])
    return cls.from_config(config, credentials)

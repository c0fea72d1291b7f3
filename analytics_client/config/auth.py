"""How requests authenticate: dlt's auth config types (``client.auth``, ``endpoint.auth``).

dlt's names and defaults; the secret of each is a reference, resolved at run time
(fields.py). ``http/auth.py`` and ``http/oauth2.py`` apply them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from analytics_client.config.fields import (
    ApiKeyRef,
    ClientIdRef,
    ClientSecretRef,
    PositiveInt,
    Scalar,
    StrictModel,
)

__all__ = ["ApiKeyAuth", "BasicAuth", "BearerAuth", "OAuth2ClientCredentialsAuth"]


class ApiKeyAuth(StrictModel):
    """API key sent in a header (the contract's ``api_key``) or the query string."""

    type: Literal["api_key"]
    name: str = "api_key"
    api_key: ApiKeyRef = "api_key"
    location: Literal["header", "query"] = "header"


class BearerAuth(StrictModel):
    """``Authorization: Bearer <secret>``."""

    type: Literal["bearer"]
    token: ApiKeyRef = "api_key"


class BasicAuth(StrictModel):
    """HTTP basic auth; the password is the secret."""

    type: Literal["http_basic"]
    username: str
    password: ApiKeyRef = "api_key"


class OAuth2ClientCredentialsAuth(StrictModel):
    """OAuth 2.0 client credentials (RFC 6749 §4.4), dlt's ``OAuth2ClientCredentials``: same
    names and defaults. A token is asked of ``access_token_url`` (form-encoded
    ``grant_type=client_credentials``, ``client_id``, ``client_secret`` and
    ``access_token_request_data``) and sent as ``Authorization: Bearer``; it lives
    ``expires_in`` seconds from the answer, else ``default_token_expiration``. See ``oauth2.py``.
    """

    type: Literal["oauth2_client_credentials"]
    access_token_url: str = Field(min_length=1)
    client_id: ClientIdRef = "client_id"
    client_secret: ClientSecretRef = "client_secret"
    access_token_request_data: dict[str, Scalar] = Field(default_factory=dict)
    default_token_expiration: PositiveInt = 3600

    @field_validator("access_token_url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an absolute http:// or https:// URL (got {url!r})")
        return url

    @field_validator("access_token_request_data")
    @classmethod
    def _no_credentials_in_data(cls, data: dict[str, Scalar]) -> dict[str, Scalar]:
        # grant_type may be overridden, as in dlt (an API's own grant, e.g. Zoom's
        # account_credentials with an account_id); the credentials never live in a config.
        taken = sorted(set(data) & {"client_id", "client_secret"})
        if taken:
            raise ValueError(f"sets {taken}: they are sent from client_id and client_secret; "
                             "remove them (a secret never lives in a config)")
        return data

"""The secrets of a run (``Credentials``) and where they are looked for: block and variable names.

Plain data, below every layer that needs it (the HTTP client and its auth, a run, a check).
Reading them from Prefect Secret blocks or the environment is orchestration's
(``analytics_client.orchestration.secrets.resolve_credentials``); a run without Prefect builds
``Credentials`` itself. A stored secret is bound to the API it was stored for (its origin, see
``orchestration/secrets.py``); a value built here is the caller's to point at an API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics_client.core.errors import SecretNotFoundError

__all__ = [
    "API_KEY_BLOCK",
    "API_KEY_ENV",
    "CLIENT_ID_BLOCK",
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_BLOCK",
    "CLIENT_SECRET_ENV",
    "OPTIONAL_SECRETS",
    "ORGANIZATION_BLOCK",
    "ORGANIZATION_ENV",
    "Credentials",
]

API_KEY_BLOCK = "analytics-api-key"
ORGANIZATION_BLOCK = "analytics-organization-id"
API_KEY_ENV = "ANALYTICS_API_KEY"
ORGANIZATION_ENV = "ANALYTICS_ORGANIZATION_ID"
CLIENT_ID_BLOCK = "analytics-client-id"
CLIENT_SECRET_BLOCK = "analytics-client-secret"
CLIENT_ID_ENV = "ANALYTICS_CLIENT_ID"
CLIENT_SECRET_ENV = "ANALYTICS_CLIENT_SECRET"
# The secrets read only when the config's auth names them: name -> (what, block, env var).
OPTIONAL_SECRETS = {
    "client_id": ("OAuth2 client id", CLIENT_ID_BLOCK, CLIENT_ID_ENV),
    "client_secret": ("OAuth2 client secret", CLIENT_SECRET_BLOCK, CLIENT_SECRET_ENV),
}


@dataclass(frozen=True)
class Credentials:
    """The secrets of a run; ``repr`` never shows them. The OAuth2 pair is None unless needed.

    ``sources`` says where each came from, never a value (``API key from ANALYTICS_API_KEY;
    organization id from Prefect Secret block 'analytics-organization-id'``); empty when the
    caller built them.
    """

    api_key: str = field(repr=False)
    # Needed only by a config that names it (the seed's X-Organization-Id header); "" else.
    organization_id: str = field(default="", repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    sources: str = field(default="", repr=False, compare=False)

    def value(self, name: str) -> str:
        """The secret a config names (``dlt.secrets["client_id"]`` names ``client_id``).

        Config validation (``config.SECRET_NAMES``) admits only these four names; any other
        raises ``KeyError``. Raises ``SecretNotFoundError`` for an OAuth2 secret or an
        organization id that was not resolved (``resolve_credentials(needs=...)`` did not name
        it, or a caller built ``Credentials`` without it).
        """
        if name == "api_key":
            return self.api_key
        if name == "organization_id":
            if not self.organization_id:  # named by the config (its headers), never given
                raise SecretNotFoundError("organization id", ORGANIZATION_BLOCK, ORGANIZATION_ENV)
            return self.organization_id
        if name not in OPTIONAL_SECRETS:
            raise KeyError(name)
        value = self.client_id if name == "client_id" else self.client_secret
        if value is None:
            what, block, env = OPTIONAL_SECRETS[name]
            raise SecretNotFoundError(what, block, env)
        return value

    def values(self) -> tuple[str, ...]:
        """Every secret value, for redaction."""
        return tuple(v for v in (self.api_key, self.organization_id, self.client_id,
                                 self.client_secret) if v is not None)

    def __repr__(self) -> str:
        return "Credentials(api_key=***, organization_id=***)"

"""Where the run's secrets come from: Prefect Secret blocks, then the environment.

The API key and organization id are always read. The OAuth2 client id and secret
(``oauth2_client_credentials`` auth) are read only when the config's auth names them
(``SourceConfig.secret_names``), from the blocks ``analytics-client-id`` /
``analytics-client-secret`` or ``ANALYTICS_CLIENT_ID`` / ``ANALYTICS_CLIENT_SECRET``.

Config files and flow parameters never hold them (the Prefect UI shows parameters), so a run
resolves them itself. The block is preferred because it is what a deployment's worker can reach;
the environment variable keeps local runs and CI free of a Prefect server. ``Credentials`` and
the block and variable names are plain data in ``core.credentials``, for the layers below.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from analytics_client.core.credentials import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    OPTIONAL_SECRETS,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
    Credentials,
)
from analytics_client.core.errors import SecretNotFoundError

if TYPE_CHECKING:
    from analytics_client.orchestration.api import CommandApi

__all__ = ["resolve_credentials", "store_credentials"]

logger = logging.getLogger(__name__)


def resolve_credentials(
    api_key_block: str | None = API_KEY_BLOCK,
    organization_block: str | None = ORGANIZATION_BLOCK,
    *,
    api: CommandApi | None = None,
    needs: tuple[str, ...] | None = None,
) -> Credentials:
    """Read both secrets; a block name of ``None`` skips Prefect and reads the environment only.

    ``api`` reads the blocks without starting Prefect's temporary server (``check``).
    ``needs`` names the secrets the config's auth uses (``SourceConfig.secret_names()``): the
    OAuth2 ones are read only when named (from their own blocks, skipped as the others when
    ``api_key_block`` is ``None``), and the API key is left empty when not named, so an OAuth2
    source needs no API key. ``None`` reads the API key and organization id, as before.
    """
    api_key = _resolve("API key", api_key_block, API_KEY_ENV, api) \
        if needs is None or "api_key" in needs else ""
    needs = needs or ()
    organization_id = _resolve("organization id", organization_block, ORGANIZATION_ENV, api)
    optional = {name: _resolve(what, block if api_key_block else None, env, api)
                for name, (what, block, env) in OPTIONAL_SECRETS.items() if name in needs}
    return Credentials(api_key=api_key, organization_id=organization_id, **optional)


def _resolve(what: str, block_name: str | None, env_var: str, api: CommandApi | None) -> str:
    if block_name:
        value = _from_block(block_name) if api is None else _from_document(block_name, api)
        if value:
            logger.debug("%s read from Prefect Secret block %r", what, block_name)
            return value
    value = os.environ.get(env_var, "").strip()
    if value:
        logger.debug("%s read from %s", what, env_var)
        return value
    raise SecretNotFoundError(what, block_name, env_var)


def _from_block(name: str) -> str | None:
    # Imported here so that the library (and its tests) work without Prefect configured.
    from prefect.blocks.system import Secret

    try:
        # ``_sync`` is Prefect's switch for its sync-or-async methods; its stubs do not show it.
        value = Secret.load(name, _sync=True).get()  # type: ignore[call-arg,union-attr]
    except ValueError:  # Prefect: "Unable to find block document named ..."
        return None
    except RuntimeError as exc:
        # Prefect's temporary server did not start: the run could not start its flow either,
        # and "no API key found" would send the user looking in the wrong place.
        if "ephemeral Prefect API server" in str(exc):
            raise
        logger.warning("could not read Prefect Secret block %r (%s); trying the environment",
                       name, type(exc).__name__)
        return None
    except Exception as exc:  # the API may be unreachable: the environment may still have it
        logger.warning("could not read Prefect Secret block %r (%s); trying the environment",
                       name, type(exc).__name__)
        return None
    return str(value).strip() or None


def _from_document(name: str, api: CommandApi) -> str | None:
    try:
        data = api.block_data(name, "secret")
    except Exception as exc:  # as _from_block: the environment may still have it
        logger.warning("could not read Prefect Secret block %r (%s); trying the environment",
                       name, type(exc).__name__)
        return None
    value = (data or {}).get("value")
    return str(value).strip() or None if value is not None else None


def store_credentials(
    credentials: Credentials,
    api_key_block: str = API_KEY_BLOCK,
    organization_block: str = ORGANIZATION_BLOCK,
    *,
    api: CommandApi | None = None,
) -> None:
    """Create or update both Prefect Secret blocks (the Prefect API must be reachable)."""
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    for value, name in ((credentials.api_key, api_key_block),
                        (credentials.organization_id, organization_block)):
        block: Secret[Any] = Secret(value=SecretStr(value))
        if api is not None:
            api.save_block(block, name)
        else:
            block.save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]  # as above

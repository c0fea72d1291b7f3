"""Where the run's secrets come from, and the one API each may be sent to.

The API key is read unless the config's auth needs another secret; the organization id only
when the config names it (the seed declares ``X-Organization-Id: dlt.secrets["organization_id"]``
in ``client.headers``). The OAuth2 client id and secret
(``oauth2_client_credentials`` auth) are read only when the config's auth names them
(``SourceConfig.secret_names``), from the blocks ``analytics-client-id`` /
``analytics-client-secret`` or ``ANALYTICS_CLIENT_ID`` / ``ANALYTICS_CLIENT_SECRET``.

Config files and flow parameters never hold them (the Prefect UI shows parameters), so a run
resolves them itself, from Prefect Secret blocks (what a deployment's worker can reach) or
environment variables (local runs and CI, free of a Prefect server). ``Credentials`` and the
block and variable names are plain data in ``core.credentials``, for the layers below.

**Bound to their API.** ``store_credentials`` (the ``secrets`` command) saves each secret as a
Secret block whose value is ``{"host": "https://api.example.com:443", "value": "..."}``: the
origin (scheme, host, port: ``http/origin.py``) of the base URL it was stored for. A block
whose value is plain text (saved before secrets were bound, or typed into the UI) is *unbound*.
For each secret it needs, a run for the base URL ``B`` takes, in this order:

1. a block stored for ``B``'s origin (the variable, when set too, is named as not used);
2. else the environment variable, when set (a block for another API, or unbound, is named as
   not used);
3. else an unbound block, with a warning to store it again with ``secrets`` for ``B``;
4. else, a block stored for another origin (or whose value names no origin we can read):
   ``SecretHostMismatchError``, before any request;
5. else ``SecretNotFoundError``.

So a secret stored for one API is never sent to another, whatever the environment holds. An
unbound block cannot be checked: it is used as before rather than failing every deployment
that predates binding, but only where nothing better exists, and the warning says how to bind
it. The run says in one INFO line where each secret came from, never a value.

Values are read raw: Prefect's ``Secret.get()`` parses text as JSON, which turned a stored
``1.50`` into ``1.5`` and ``null`` into ``None``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from analytics_client.core.credentials import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    CLIENT_ID_BLOCK,
    CLIENT_SECRET_BLOCK,
    OPTIONAL_SECRETS,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
    Credentials,
)
from analytics_client.core.errors import SecretHostMismatchError, SecretNotFoundError
from analytics_client.http.origin import origin, origin_text

if TYPE_CHECKING:
    from analytics_client.orchestration.api import CommandApi

__all__ = ["Stored", "read_stored", "resolve_credentials", "store_credentials"]

logger = logging.getLogger(__name__)

Log = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class Stored:
    """What a Secret block holds: nothing, an unbound value, a value bound to an origin, or a
    value that names no origin we can read (``invalid``: never sent anywhere)."""

    kind: Literal["absent", "unbound", "bound", "invalid"]
    value: str = ""
    host: str = ""


_ABSENT = Stored("absent")


def read_stored(raw: object) -> Stored:
    """A Secret block's raw value (text, or what JSON gave: a dict, a number...) as ``Stored``.

    ``{"host": ..., "value": ...}``, as a dict or as its JSON text, is bound to the origin of
    its host; other text, and an integer, is unbound; anything else is invalid.
    """
    if raw is None:
        return _ABSENT
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return _ABSENT
        if not text.startswith("{"):
            return Stored("unbound", text)
        try:
            raw = json.loads(text)
        except ValueError:
            return Stored("unbound", text)
        if not isinstance(raw, dict):
            return Stored("unbound", text)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return Stored("unbound", str(raw))
    if not isinstance(raw, dict):
        return Stored("invalid")
    host, value = raw.get("host"), raw.get("value")
    if not isinstance(host, str) or not isinstance(value, str) or not value.strip():
        return Stored("invalid")
    try:
        scheme, name, port = origin(host.strip())
        bound_to = origin_text(host.strip())
    except Exception:  # httpx.InvalidURL: not an origin
        return Stored("invalid")
    if scheme not in ("http", "https") or not name or not 0 < (port or 0) < 65536:
        return Stored("invalid")
    return Stored("bound", value.strip(), bound_to)


@dataclass(frozen=True)
class _Choice:
    """Where one secret comes from (``value`` None: it cannot be resolved, ``outcome`` says
    why) and what the run says about it; never the value in ``said`` or ``warning``."""

    outcome: Literal["block", "environment", "unbound", "elsewhere", "missing"]
    what: str
    block: str | None
    env_var: str
    value: str | None = None
    said: str = ""
    warning: str = ""
    stored_for: str | None = None


def _choose(what: str, block: str | None, env_var: str, env_value: str, stored: Stored,
            here: str, command: str) -> _Choice:
    """The rules of the module docstring, for one secret of a run whose API is ``here``."""
    named = f"Prefect Secret block {block!r}"
    if stored.kind == "bound" and stored.host == here:
        also = f" ({env_var} is set too, not used)" if env_value else ""
        return _Choice("block", what, block, env_var, stored.value,
                       f"{what} from {named}{also}")
    if env_value:
        unused = {
            "absent": "",
            "unbound": f" ({named} names no API, not used)",
            "bound": f" ({named} is for {stored.host}, not used)",
            "invalid": f" ({named} names no API we can read, not used)",
        }[stored.kind]
        return _Choice("environment", what, block, env_var, env_value,
                       f"{what} from {env_var}{unused}")
    if stored.kind == "unbound":
        return _Choice("unbound", what, block, env_var, stored.value,
                       f"{what} from {named} (names no API)",
                       warning=f"the {named} ({what}) was stored without the API it is for, so "
                       f"it is sent to {here} unchecked: run `{command}` to bind it to this "
                       f"API, or set {env_var}")
    if stored.kind in ("bound", "invalid"):
        return _Choice("elsewhere", what, block, env_var, stored_for=stored.host or None)
    return _Choice("missing", what, block, env_var)


def resolve_credentials(
    api_key_block: str | None = API_KEY_BLOCK,
    organization_block: str | None = ORGANIZATION_BLOCK,
    *,
    base_url: str,
    api: CommandApi | None = None,
    needs: tuple[str, ...] | None = None,
    log: Log | None = logger,
) -> Credentials:
    """The secrets a run against ``base_url`` may send it (the rules of the module docstring).

    A block name of ``None`` skips Prefect and reads the environment only. ``api`` reads the
    blocks without starting Prefect's temporary server (``check``). ``needs`` names the
    secrets the config's auth uses (``SourceConfig.secret_names()``): the OAuth2 ones are read
    only when named (from their own blocks, skipped as the others when ``api_key_block`` is
    ``None``), and the API key is left empty when not named, so an OAuth2 source needs no API
    key; the organization id is read only when named. ``None`` reads the API key and
    organization id.

    ``log`` gets one INFO line naming each secret's source (also in ``Credentials.sources``)
    and a WARNING per unbound block used; ``None`` says nothing (a check before the run that
    will say it). Raises ``SecretHostMismatchError`` or ``SecretNotFoundError``, before any
    request.
    """
    here = origin_text(base_url)
    wanted = []
    # The organization id only where the config sends it (the seed's X-Organization-Id).
    if needs is None or "organization_id" in needs:
        wanted.append(("organization_id", "organization id", organization_block,
                       ORGANIZATION_ENV))
    if needs is None or "api_key" in needs:
        wanted.insert(0, ("api_key", "API key", api_key_block, API_KEY_ENV))
    wanted += [(name, what, block if api_key_block else None, env)
               for name, (what, block, env) in OPTIONAL_SECRETS.items() if name in (needs or ())]
    command = _store_command(here, api_key_block, organization_block,
                             oauth=any(name in OPTIONAL_SECRETS for name, *_ in wanted))
    choices = {
        name: _choose(what, block, env, os.environ.get(env, "").strip(),
                      read_stored(_read(block, api)) if block else _ABSENT, here, command)
        for name, what, block, env in wanted
    }
    elsewhere = [c for c in choices.values() if c.outcome == "elsewhere"]
    if elsewhere:
        raise SecretHostMismatchError(
            here, [(c.what, c.block or "", c.stored_for, c.env_var) for c in elsewhere], command)
    for choice in choices.values():
        if choice.value is None:
            raise SecretNotFoundError(choice.what, choice.block, choice.env_var, command)
    sources = "; ".join(c.said for c in choices.values())
    if log is not None:
        log.info("secrets for %s: %s", here, sources)
        for choice in choices.values():
            if choice.warning:
                log.warning("%s", choice.warning)
    values = {name: c.value or "" for name, c in choices.items()}
    return Credentials(api_key=values.pop("api_key", ""), sources=sources, **values)


def _store_command(here: str, api_key_block: str | None, organization_block: str | None, *,
                   oauth: bool) -> str:
    """The ``secrets`` command that stores this run's blocks for its API."""
    words = ["python flows/main.py secrets", "--base-url", shlex.quote(here)]
    if api_key_block and api_key_block != API_KEY_BLOCK:
        words += ["--api-key-block", shlex.quote(api_key_block)]
    if organization_block and organization_block != ORGANIZATION_BLOCK:
        words += ["--organization-block", shlex.quote(organization_block)]
    if oauth:
        words += ["--config", "<the run's config>"]
    return " ".join(words)


def _read(name: str, api: CommandApi | None) -> object:
    return _from_block(name) if api is None else _from_document(name, api)


def _from_block(name: str) -> object:
    # Imported here so that the library (and its tests) work without Prefect configured.
    from prefect.blocks.system import Secret

    try:
        # ``_sync`` is Prefect's switch for its sync-or-async methods; its stubs do not show it.
        block = Secret.load(name, _sync=True)  # type: ignore[call-arg]
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
    value: object = block.value.get_secret_value()  # type: ignore[union-attr]  # as above
    return value


def _from_document(name: str, api: CommandApi) -> object:
    try:
        data = api.block_data(name, "secret")
    except Exception as exc:  # as _from_block: the environment may still have it
        logger.warning("could not read Prefect Secret block %r (%s); trying the environment",
                       name, type(exc).__name__)
        return None
    return (data or {}).get("value")


def store_credentials(
    credentials: Credentials,
    api_key_block: str = API_KEY_BLOCK,
    organization_block: str = ORGANIZATION_BLOCK,
    *,
    base_url: str,
    api: CommandApi | None = None,
) -> list[str]:
    """Create or update a Secret block per secret, bound to ``base_url``'s origin; the names.

    The API key is stored when not empty, the OAuth2 pair when present (blocks
    ``analytics-client-id`` / ``analytics-client-secret``), the organization id always. The
    Prefect API must be reachable.
    """
    from prefect.blocks.system import Secret
    from pydantic import Secret as Hidden

    here = origin_text(base_url)
    pairs = [(credentials.api_key, api_key_block),
             (credentials.organization_id, organization_block),
             (credentials.client_id, CLIENT_ID_BLOCK),
             (credentials.client_secret, CLIENT_SECRET_BLOCK)]
    stored = []
    for value, name in pairs:
        if not value:
            continue
        block: Secret[Any] = Secret(value=Hidden[dict[str, str]]({"host": here, "value": value}))
        if api is not None:
            api.save_block(block, name)
        else:
            block.save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]  # as above
        stored.append(name)
    return stored

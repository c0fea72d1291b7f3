"""Object-store settings of a lake: from a Prefect block, else the standard environment variables.

A lake URI such as ``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``abfss://container@account
.dfs.core.windows.net/prefix`` needs credentials and sometimes an endpoint. They never travel as
flow parameters (the Prefect UI shows parameters): a run resolves them itself, in this order:

1. the named block of type *Analytics Lake Storage* (``LakeStorage``), whose ``options`` are a
   secret dict of delta-rs storage options (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...);
2. otherwise the standard environment variables of the URI's scheme (``AWS_*``, ``GOOGLE_*``,
   ``AZURE_*``; the list is ``ENV_KEYS``).

The same options go to delta-rs and to polars, so both see one store. Anything delta-rs and
polars find on their own (instance roles, workload identity) still applies underneath.

S3 commit safety: a Delta commit is "create ``_delta_log/<version>.json`` unless it exists".
delta-rs 1.x does this on S3 with a conditional PUT (``If-None-Match: *``), which AWS S3 (since
2024), MinIO, Cloudflare R2 and moto honour; it no longer offers a DynamoDB lock. We set
``AWS_CONDITIONAL_PUT=etag`` explicitly so the guarantee does not hang on a default, and we never
pass ``AWS_S3_ALLOW_UNSAFE_RENAME``.

    python -m analytics_client.orchestration.storage save NAME --scheme s3
    # (the block from the environment)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import Field

from analytics_client.core.errors import ConfigError

__all__ = [
    "CONDITIONAL_PUT",
    "ENV_KEYS",
    "LakeStorage",
    "resolve_storage_options",
    "scheme_family",
    "storage_options_from_env",
]

logger = logging.getLogger(__name__)

if __name__ == "__main__":
    # Run as `python -m`: hand over to the package module before this copy defines a second
    # LakeStorage class under the same block type.
    from analytics_client.orchestration.storage import main as _main

    sys.exit(_main())

StorageOptions = dict[str, str]

_FAMILIES = {
    "s3": "aws", "s3a": "aws",
    "gs": "google", "gcs": "google",
    "az": "azure", "azure": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure",
}  # fmt: skip

# Environment variables forwarded per store: delta-rs and polars (object_store) both know each
# of them; anything else (AWS_PROFILE, ~/.aws files) is left to their own credential chains.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "aws": (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
        "AWS_ALLOW_HTTP", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "AWS_CONDITIONAL_PUT",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_SSE_KMS_KEY_ID",
    ),
    "google": (
        "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ),
    "azure": (
        "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_TOKEN", "AZURE_STORAGE_CLIENT_ID", "AZURE_STORAGE_CLIENT_SECRET",
        "AZURE_STORAGE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USE_AZURE_CLI", "AZURE_STORAGE_USE_EMULATOR",
    ),
}  # fmt: skip

# Commits are put-if-absent through If-None-Match: *, never a copy-then-rename without a lock.
CONDITIONAL_PUT = "etag"
_UNSAFE = ("AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_S3_LOCKING_PROVIDER")


def scheme_family(uri: str) -> str | None:
    """``aws``, ``google`` or ``azure`` for an object-store URI; None for a local path."""
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme.lower() == "file":
        return None
    family = _FAMILIES.get(scheme.lower())
    if family is None:
        raise ConfigError([
            f"lake_uri: scheme {scheme!r} is not supported; use a local path, file://, "
            f"s3:// (or s3a://), gs://, az://, abfs:// or abfss://"
        ])
    return family


def storage_options_from_env(family: str,
                             environ: Mapping[str, str] | None = None) -> StorageOptions:
    """The standard variables of ``family`` that are set (and not empty) in the environment."""
    env = os.environ if environ is None else environ
    return {key: env[key] for key in ENV_KEYS[family] if env.get(key, "").strip()}


class LakeStorage(Block):
    """Object-store options of an analytics-sync lake (delta-rs ``storage_options``).

    Keys are the standard names: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    AWS_ENDPOINT_URL, AWS_ALLOW_HTTP; GOOGLE_SERVICE_ACCOUNT_KEY; AZURE_STORAGE_ACCOUNT_NAME,
    AZURE_STORAGE_ACCOUNT_KEY, ... Values are stored encrypted and never shown.
    """

    _block_type_name = "Analytics Lake Storage"
    _block_type_slug = "analytics-lake-storage"
    _description = (
        "Credentials and endpoint of the object store holding an analytics-sync Delta lake "
        "(delta-rs storage options such as AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL)."
    )

    options: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="delta-rs storage options, e.g. AWS_ACCESS_KEY_ID, AWS_REGION",
    )


def _from_block(name: str) -> StorageOptions:
    try:
        # ``_sync``: prefect's async_dispatch switch (a sync call in any context), not typed
        block: Any = LakeStorage.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError:  # "Unable to find block document named ..."
        raise ConfigError([
            f"storage_block: there is no Analytics Lake Storage block named {name!r}; create it "
            "with `python -m analytics_client.orchestration.storage save "
            f"{name} --scheme s3` (reads the standard environment variables) or in the Prefect UI"
        ]) from None
    options = block.options.get_secret_value()
    return {str(k): str(v) for k, v in options.items() if v is not None and str(v) != ""}


def resolve_storage_options(
    lake_uri: str, storage_block: str | None = None, *, environ: Mapping[str, str] | None = None
) -> StorageOptions | None:
    """The storage options for ``lake_uri``: the block's if named, else the environment's.

    None for a local lake. Logs which keys were found, never their values.
    """
    family = scheme_family(lake_uri)
    if family is None:
        return None
    if storage_block:
        options, source = _from_block(storage_block), f"block {storage_block!r}"
    else:
        options, source = storage_options_from_env(family, environ), "the environment"
    _check_safe(options, source)
    if family == "aws" and not any(k.upper() == "AWS_CONDITIONAL_PUT" for k in options):
        options["AWS_CONDITIONAL_PUT"] = CONDITIONAL_PUT
    logger.info("lake %s: storage options %s from %s", lake_uri,
                ", ".join(sorted(options)) or "(none)", source)
    return options


def _check_safe(options: Mapping[str, str], source: str) -> None:
    unsafe = [k for k in options if k.upper() in _UNSAFE]
    if unsafe:
        raise ConfigError([
            f"storage options from {source}: {', '.join(unsafe)} is not allowed; delta-rs commits "
            "to S3 with conditional puts (If-None-Match), which needs neither a lock nor unsafe "
            "renames (see docs/deployment.md)"
        ])


def _save(name: str, scheme: str) -> int:
    family = _FAMILIES.get(scheme.lower())
    if family is None:
        print(f"error: --scheme must be one of {sorted(_FAMILIES)}", file=sys.stderr)
        return 2
    options = storage_options_from_env(family)
    if not options:
        print(f"error: none of {', '.join(ENV_KEYS[family])} is set", file=sys.stderr)
        return 2
    LakeStorage(options=SecretDict(options)).save(  # type: ignore[call-arg]
        name, overwrite=True, _sync=True)
    print(f"saved Analytics Lake Storage block {name!r} with {', '.join(sorted(options))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_client.orchestration.storage",
        description="Create or update an Analytics Lake Storage block from the standard "
        "environment variables of a store (values are never taken from the command line).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    save = commands.add_parser("save", help="create or update the block NAME")
    save.add_argument("name", help="block name, e.g. analytics-lake-s3")
    save.add_argument("--scheme", default="s3", help="s3, gs or abfss (which variables to read)")
    args = parser.parse_args(argv)
    return _save(args.name, args.scheme)

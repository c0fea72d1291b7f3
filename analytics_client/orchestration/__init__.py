"""The Prefect side of analytics-sync, public for ``flows/``: the one sub-package importing Prefect.

Here: the run's secrets read from (and saved to) Prefect Secret blocks, the mark stores that keep
marks as ``SyncMark`` block documents, the block types and a lake's storage options from its
block. The library below never imports this package; ``analytics_client`` (the root) does not
either.

Importing this package does not import Prefect: the flows import
``analytics_client.orchestration.server`` before ``prefect`` so that its settings apply (server.py
says why), and that import runs this file first. ``SyncMark``, ``LakeStorage`` and
``resolve_storage_options`` import Prefect, so they are loaded when first asked for.
"""

import importlib
from typing import TYPE_CHECKING, Any

from analytics_client.core.credentials import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    CLIENT_ID_BLOCK,
    CLIENT_ID_ENV,
    CLIENT_SECRET_BLOCK,
    CLIENT_SECRET_ENV,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
)
from analytics_client.orchestration.marks import CommandMarkStore, PrefectMarkStore
from analytics_client.orchestration.secrets import resolve_credentials, store_credentials

if TYPE_CHECKING:
    from analytics_client.orchestration.blocks import SyncMark
    from analytics_client.orchestration.storage import LakeStorage, resolve_storage_options

# The names that import Prefect, and the module each is loaded from on first use.
_LAZY = {
    "SyncMark": "analytics_client.orchestration.blocks",
    "LakeStorage": "analytics_client.orchestration.storage",
    "resolve_storage_options": "analytics_client.orchestration.storage",
}

__all__ = [
    "API_KEY_BLOCK",
    "API_KEY_ENV",
    "CLIENT_ID_BLOCK",
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_BLOCK",
    "CLIENT_SECRET_ENV",
    "CommandMarkStore",
    "LakeStorage",
    "ORGANIZATION_BLOCK",
    "ORGANIZATION_ENV",
    "PrefectMarkStore",
    "resolve_credentials",
    "resolve_storage_options",
    "store_credentials",
    "SyncMark",
]


def __getattr__(name: str) -> Any:
    """``SyncMark``, ``LakeStorage`` and ``resolve_storage_options``, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

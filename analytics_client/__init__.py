"""analytics-sync: keep Delta Lake tables in step with a SaaS analytics API.

The library does the work and runs without Prefect; ``flows/`` only orchestrates it. Two imports
are public:

* ``analytics_client`` (this module): everything a user needs to configure, run, check and
  inspect a sync without Prefect, and every error it raises. Importing it never imports Prefect.
* ``analytics_client.orchestration``, for ``flows/``: the Prefect side (Secret blocks, the mark
  stores kept as Prefect blocks, the block types), the one sub-package that imports Prefect.

Every module below them (``analytics_client.core``, ``.config``, ``.http``, ``.lake``,
``.state``, ``.read``, ``.run``) is internal by convention: importable, but its names may move
between releases. ``analytics_client.config`` re-exports the config's models for those who need
more than ``SourceConfig`` and ``ResourceConfig``. The layers and their rules:
``[tool.importlinter]`` in pyproject.toml.
"""

# First: it configures jemalloc before any submodule loads polars or deltalake.
from analytics_client.core import allocator as _allocator  # noqa: F401

# isort: split

from analytics_client.config import (
    DEFAULT_CONFIG,
    ColumnHint,
    ResourceConfig,
    SourceConfig,
    load_config,
)
from analytics_client.core.credentials import Credentials
from analytics_client.core.errors import (
    AnalyticsSyncError,
    APIError,
    ConfigError,
    ContractError,
    ForeignHostError,
    LakeError,
    LakeNotWritableError,
    LimitExceededError,
    MaintenanceFailed,
    PaginationLoopError,
    PipelineBusyError,
    PrefectStartError,
    PrefectUnavailableError,
    PrefectWentAway,
    RecordTypeError,
    ResourceError,
    ResourceFailed,
    RetriesExhaustedError,
    RunStopped,
    SecretNotFoundError,
    StateError,
    SyncFailed,
    TokenRequestError,
    TransportError,
    UnreachableError,
)
from analytics_client.core.summary import ResourceSummary, render_markdown, render_table
from analytics_client.http.oauth2 import OAuth2ClientCredentials
from analytics_client.lake.tables import Lake
from analytics_client.run.check import CheckResult, check_source
from analytics_client.run.session import SyncRun, run_sync
from analytics_client.state.marks import JsonFileMarkStore, Mark, MarkStore, MemoryMarkStore

# Sorted as httpx sorts its own (case folded); tests/test_exported_members.py pins it.
__all__ = [
    "AnalyticsSyncError",
    "APIError",
    "check_source",
    "CheckResult",
    "ColumnHint",
    "ConfigError",
    "ContractError",
    "Credentials",
    "DEFAULT_CONFIG",
    "ForeignHostError",
    "JsonFileMarkStore",
    "Lake",
    "LakeError",
    "LakeNotWritableError",
    "LimitExceededError",
    "load_config",
    "MaintenanceFailed",
    "Mark",
    "MarkStore",
    "MemoryMarkStore",
    "OAuth2ClientCredentials",
    "PaginationLoopError",
    "PipelineBusyError",
    "PrefectStartError",
    "PrefectUnavailableError",
    "PrefectWentAway",
    "RecordTypeError",
    "render_markdown",
    "render_table",
    "ResourceConfig",
    "ResourceError",
    "ResourceFailed",
    "ResourceSummary",
    "RetriesExhaustedError",
    "run_sync",
    "RunStopped",
    "SecretNotFoundError",
    "SourceConfig",
    "StateError",
    "SyncFailed",
    "SyncRun",
    "TokenRequestError",
    "TransportError",
    "UnreachableError",
]

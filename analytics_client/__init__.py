"""analytics-sync: keep Delta Lake tables in step with a SaaS analytics API.

The library does the work and runs without Prefect; ``flows/`` only orchestrates it. This module
is the one import point of the library: everything a user needs to configure, run, check and
inspect a sync, and every error it raises, is here. Submodules hold the pieces behind it; the
few modules meant for a Prefect process of ours (``prefect_api``, ``prefect_process``,
``storage``, ``blocks``) import Prefect and are imported by name, not from here.
"""

from __future__ import annotations

# First: it configures jemalloc before any submodule loads polars or deltalake.
from . import allocator  # noqa: F401
from .auth import AUTH_TYPES, ConfiguredAuth, build_auth
from .budget import RowBudget
from .check import CheckResult, check_source
from .client import ApiClient, RetryEvent
from .config import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_CONFIG,
    DEFAULT_PIPELINE,
    ResourceConfig,
    SourceConfig,
    load_config,
)
from .errors import (
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
from .lake import Lake, TableWriter, WriteResult
from .lock import pipeline_lock
from .oauth2 import OAuth2ClientCredentials
from .preflight import ensure_lake_writable
from .quarantine import Quarantine
from .redaction import install_log_filter, redact, remember, remove_log_filter
from .run import SyncRun, full_refresh_set, run_sync
from .schemas import ColumnHint
from .secrets import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    CLIENT_ID_BLOCK,
    CLIENT_ID_ENV,
    CLIENT_SECRET_BLOCK,
    CLIENT_SECRET_ENV,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
    Credentials,
    resolve_credentials,
    store_credentials,
)
from .state import (
    CommandMarkStore,
    JsonFileMarkStore,
    Mark,
    MarkStore,
    MemoryMarkStore,
    PrefectMarkStore,
)
from .stop import StopFlag, on_signals
from .summary import ResourceSummary, render_markdown, render_table
from .sync import replay_quarantine, sync_resource

__all__ = [
    # configuration
    "DEFAULT_CONFIG",
    "ColumnHint",
    "ResourceConfig",
    "SourceConfig",
    "load_config",
    # secrets and auth
    "API_KEY_BLOCK",
    "API_KEY_ENV",
    "AUTH_TYPES",
    "CLIENT_ID_BLOCK",
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_BLOCK",
    "CLIENT_SECRET_ENV",
    "ORGANIZATION_BLOCK",
    "ORGANIZATION_ENV",
    "ConfiguredAuth",
    "Credentials",
    "OAuth2ClientCredentials",
    "build_auth",
    "resolve_credentials",
    "store_credentials",
    # running a sync
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_PIPELINE",
    "ApiClient",
    "CheckResult",
    "ResourceSummary",
    "RetryEvent",
    "RowBudget",
    "StopFlag",
    "SyncRun",
    "check_source",
    "ensure_lake_writable",
    "full_refresh_set",
    "on_signals",
    "pipeline_lock",
    "render_markdown",
    "render_table",
    "replay_quarantine",
    "run_sync",
    "sync_resource",
    # the lake and the marks
    "CommandMarkStore",
    "JsonFileMarkStore",
    "Lake",
    "Mark",
    "MarkStore",
    "MemoryMarkStore",
    "PrefectMarkStore",
    "Quarantine",
    "TableWriter",
    "WriteResult",
    # keeping secrets out of logs
    "install_log_filter",
    "redact",
    "remember",
    "remove_log_filter",
    # errors (errors.py draws the tree)
    "APIError",
    "AnalyticsSyncError",
    "ConfigError",
    "ContractError",
    "ForeignHostError",
    "LakeError",
    "LakeNotWritableError",
    "LimitExceededError",
    "MaintenanceFailed",
    "PaginationLoopError",
    "PipelineBusyError",
    "PrefectStartError",
    "PrefectUnavailableError",
    "PrefectWentAway",
    "RecordTypeError",
    "ResourceError",
    "ResourceFailed",
    "RetriesExhaustedError",
    "RunStopped",
    "SecretNotFoundError",
    "StateError",
    "SyncFailed",
    "TokenRequestError",
    "TransportError",
    "UnreachableError",
]

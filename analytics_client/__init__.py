"""analytics-sync: keep Delta Lake tables in step with a SaaS analytics API.

The library does the work and runs without Prefect; ``flows/`` only orchestrates it. This module
is the one import point of the library: everything a user needs to configure, run, check and
inspect a sync, and every error it raises, is here. Submodules hold the pieces behind it; the
few modules meant for a Prefect process of ours (``prefect_api``, ``prefect_process``,
``storage``, ``blocks``) import Prefect and are imported by name, not from here.
"""

from __future__ import annotations

# First: it configures jemalloc before any submodule loads polars or deltalake.
from analytics_client.core import allocator  # noqa: F401

# isort: split

from analytics_client.config import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_CONFIG,
    DEFAULT_PIPELINE,
    ColumnHint,
    ResourceConfig,
    SourceConfig,
    load_config,
)
from analytics_client.core.credentials import (
    API_KEY_BLOCK,
    API_KEY_ENV,
    CLIENT_ID_BLOCK,
    CLIENT_ID_ENV,
    CLIENT_SECRET_BLOCK,
    CLIENT_SECRET_ENV,
    ORGANIZATION_BLOCK,
    ORGANIZATION_ENV,
    Credentials,
)
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
from analytics_client.core.lock import pipeline_lock
from analytics_client.core.stop import StopFlag, on_signals
from analytics_client.core.summary import (
    ResourceSummary,
    WriteResult,
    render_markdown,
    render_table,
)
from analytics_client.http.auth import AUTH_TYPES, ConfiguredAuth, build_auth
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.oauth2 import OAuth2ClientCredentials
from analytics_client.http.redaction import install_log_filter, redact, remember, remove_log_filter
from analytics_client.lake.preflight import ensure_lake_writable
from analytics_client.lake.quarantine import Quarantine
from analytics_client.lake.tables import Lake, TableWriter
from analytics_client.orchestration.marks import CommandMarkStore, PrefectMarkStore
from analytics_client.orchestration.secrets import resolve_credentials, store_credentials
from analytics_client.run.budget import RowBudget
from analytics_client.run.check import CheckResult, check_source
from analytics_client.run.session import SyncRun, full_refresh_set, run_sync
from analytics_client.run.sync import replay_quarantine, sync_resource
from analytics_client.state.marks import JsonFileMarkStore, Mark, MarkStore, MemoryMarkStore

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

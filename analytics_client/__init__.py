"""analytics-sync: keep Delta Lake tables in step with a SaaS analytics API.

The library does the work and runs without Prefect; ``flows/`` only orchestrates it.
"""

from __future__ import annotations

from .check import CheckResult, check_source
from .client import ApiClient, RetryEvent
from .config import DEFAULT_CONFIG, ResourceConfig, SourceConfig, load_config
from .errors import (
    AnalyticsSyncError,
    APIError,
    ConfigError,
    ContractError,
    ForeignHostError,
    LakeError,
    PaginationLoopError,
    RecordTypeError,
    ResourceError,
    RetriesExhaustedError,
    SecretNotFoundError,
    TransportError,
)
from .lake import Lake, TableWriter, WriteResult
from .quarantine import Quarantine
from .schemas import ColumnHint
from .secrets import Credentials, resolve_credentials
from .summary import ResourceSummary, render_markdown, render_table
from .sync import DEFAULT_BATCH_ROWS, replay_quarantine, run_sync, sync_resource

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CONFIG",
    "APIError",
    "AnalyticsSyncError",
    "ApiClient",
    "CheckResult",
    "ColumnHint",
    "ConfigError",
    "ContractError",
    "ForeignHostError",
    "Credentials",
    "Lake",
    "LakeError",
    "PaginationLoopError",
    "Quarantine",
    "RecordTypeError",
    "ResourceConfig",
    "ResourceError",
    "ResourceSummary",
    "RetriesExhaustedError",
    "RetryEvent",
    "SecretNotFoundError",
    "SourceConfig",
    "TableWriter",
    "TransportError",
    "WriteResult",
    "check_source",
    "load_config",
    "render_markdown",
    "render_table",
    "replay_quarantine",
    "resolve_credentials",
    "run_sync",
    "sync_resource",
]

"""The library's Prefect side, and the one import point of ``flows/`` besides ``analytics_client``.

The modules here may import Prefect: ``api`` (calls with bounded retries, what an outage means),
``blocks`` (the SyncMark block type), ``locks`` (a Prefect global concurrency limit per
resource), ``secrets`` (Secret blocks, then the environment), ``server`` (Prefect's settings for
our processes, its temporary server; ``temporary_server`` runs in that server's process),
``storage`` (object-store credentials), ``cli`` (the command line of ``python flows/main.py``),
``failures`` (what a failed run says: its state message, no traceback for our own errors),
``alerting`` (the failure alert prefect.yaml deploys: a failed run's cause to a webhook).
The names below are what the flows use; a few live elsewhere in the library and are re-exported
here so that ``flows/`` imports from two places only (tests/test_flows_imports.py holds it to
that).

Names load on first use, and the first one loaded applies ``server.PREFECT_DEFAULTS`` before
anything imports Prefect: a flow imports from here before it imports ``prefect``. Loading them
lazily keeps ``import analytics_client`` (which reads ``secrets`` from this package) free of
Prefect and of any change to the environment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics_client.config import DEFAULT_BATCH_ROWS, DEFAULT_PIPELINE
    from analytics_client.config.model import parent_of
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
    from analytics_client.core.debugging import debugging
    from analytics_client.core.errors import PrefectUnavailableError, PrefectWentAway
    from analytics_client.core.lock import pipeline_lock
    from analytics_client.core.stop import again_inside_the_flow_run
    from analytics_client.core.stop import current as current_stop
    from analytics_client.http.redaction import redact
    from analytics_client.lake.maintenance import (
        DEFAULT_RETENTION_HOURS,
        DEFAULT_TARGET_SIZE,
        maintain_table,
    )
    from analytics_client.lake.preflight import ensure_lake_writable
    from analytics_client.orchestration import api as prefect_api
    from analytics_client.orchestration import cli
    from analytics_client.orchestration.alerting import (
        ALERT_WEBHOOK_BLOCK,
        describe_run,
        send_alert,
        webhook_url,
    )
    from analytics_client.orchestration.blocks import SyncMark
    from analytics_client.orchestration.cli import DEFAULT_LAKE
    from analytics_client.orchestration.failures import (
        failed_message,
        failure_reason,
        quiet_expected_tracebacks,
    )
    from analytics_client.orchestration.locks import resource_slots
    from analytics_client.orchestration.marks import CommandMarkStore, PrefectMarkStore
    from analytics_client.orchestration.secrets import resolve_credentials, store_credentials
    from analytics_client.orchestration.server import PREFECT_DEFAULTS
    from analytics_client.orchestration.storage import LakeStorage, resolve_storage_options
    from analytics_client.run.fanout import ChildOutcome, Organization, Per, Unit
    from analytics_client.run.fanout import plan as plan_fanout
    from analytics_client.run.fanout import render_markdown as render_fanout_markdown

__all__ = [
    # Prefect's settings and API
    "PREFECT_DEFAULTS",
    "prefect_api",
    "PrefectUnavailableError",
    "PrefectWentAway",
    # the command line
    "cli",
    "DEFAULT_LAKE",
    "debugging",
    # a flow run: defaults, secrets, marks, locks, the lake, storage, stop signals
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_PIPELINE",
    "API_KEY_BLOCK",
    "API_KEY_ENV",
    "CLIENT_ID_BLOCK",
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_BLOCK",
    "CLIENT_SECRET_ENV",
    "ORGANIZATION_BLOCK",
    "ORGANIZATION_ENV",
    "Credentials",
    "resolve_credentials",
    "store_credentials",
    "redact",
    "CommandMarkStore",
    "PrefectMarkStore",
    "SyncMark",
    "pipeline_lock",
    "resource_slots",
    "ensure_lake_writable",
    "LakeStorage",
    "resolve_storage_options",
    "again_inside_the_flow_run",
    "current_stop",
    # what a failed run says
    "failed_message",
    "failure_reason",
    "quiet_expected_tracebacks",
    # the failure alert
    "ALERT_WEBHOOK_BLOCK",
    "describe_run",
    "send_alert",
    "webhook_url",
    # the fan-out flow
    "ChildOutcome",
    "Organization",
    "Per",
    "Unit",
    "parent_of",
    "plan_fanout",
    "render_fanout_markdown",
    # the maintenance flow
    "DEFAULT_RETENTION_HOURS",
    "DEFAULT_TARGET_SIZE",
    "maintain_table",
]

# Each name: (module, attribute in it; None for the module itself).
_HOMES: dict[str, tuple[str, str | None]] = {
    "PREFECT_DEFAULTS": ("analytics_client.orchestration.server", "PREFECT_DEFAULTS"),
    "prefect_api": ("analytics_client.orchestration.api", None),
    "PrefectUnavailableError": ("analytics_client.core.errors", "PrefectUnavailableError"),
    "PrefectWentAway": ("analytics_client.core.errors", "PrefectWentAway"),
    "cli": ("analytics_client.orchestration.cli", None),
    "DEFAULT_LAKE": ("analytics_client.orchestration.cli", "DEFAULT_LAKE"),
    "debugging": ("analytics_client.core.debugging", "debugging"),
    "DEFAULT_BATCH_ROWS": ("analytics_client.config", "DEFAULT_BATCH_ROWS"),
    "DEFAULT_PIPELINE": ("analytics_client.config", "DEFAULT_PIPELINE"),
    **{name: ("analytics_client.core.credentials", name) for name in (
        "API_KEY_BLOCK", "API_KEY_ENV", "CLIENT_ID_BLOCK", "CLIENT_ID_ENV", "CLIENT_SECRET_BLOCK",
        "CLIENT_SECRET_ENV", "ORGANIZATION_BLOCK", "ORGANIZATION_ENV", "Credentials")},
    "resolve_credentials": ("analytics_client.orchestration.secrets", "resolve_credentials"),
    "store_credentials": ("analytics_client.orchestration.secrets", "store_credentials"),
    "redact": ("analytics_client.http.redaction", "redact"),
    "CommandMarkStore": ("analytics_client.orchestration.marks", "CommandMarkStore"),
    "PrefectMarkStore": ("analytics_client.orchestration.marks", "PrefectMarkStore"),
    "pipeline_lock": ("analytics_client.core.lock", "pipeline_lock"),
    "ensure_lake_writable": ("analytics_client.lake.preflight", "ensure_lake_writable"),
    "LakeStorage": ("analytics_client.orchestration.storage", "LakeStorage"),
    "SyncMark": ("analytics_client.orchestration.blocks", "SyncMark"),
    "resource_slots": ("analytics_client.orchestration.locks", "resource_slots"),
    "resolve_storage_options": ("analytics_client.orchestration.storage",
                                "resolve_storage_options"),
    "again_inside_the_flow_run": ("analytics_client.core.stop", "again_inside_the_flow_run"),
    "current_stop": ("analytics_client.core.stop", "current"),
    **{name: ("analytics_client.orchestration.alerting", name) for name in (
        "ALERT_WEBHOOK_BLOCK", "describe_run", "send_alert", "webhook_url")},
    **{name: ("analytics_client.orchestration.failures", name) for name in (
        "failed_message", "failure_reason", "quiet_expected_tracebacks")},
    "ChildOutcome": ("analytics_client.run.fanout", "ChildOutcome"),
    "Organization": ("analytics_client.run.fanout", "Organization"),
    "Per": ("analytics_client.run.fanout", "Per"),
    "Unit": ("analytics_client.run.fanout", "Unit"),
    "parent_of": ("analytics_client.config", "parent_of"),
    "plan_fanout": ("analytics_client.run.fanout", "plan"),
    "render_fanout_markdown": ("analytics_client.run.fanout", "render_markdown"),
    "DEFAULT_RETENTION_HOURS": ("analytics_client.lake.maintenance", "DEFAULT_RETENTION_HOURS"),
    "DEFAULT_TARGET_SIZE": ("analytics_client.lake.maintenance", "DEFAULT_TARGET_SIZE"),
    "maintain_table": ("analytics_client.lake.maintenance", "maintain_table"),
}


def __getattr__(name: str) -> Any:
    """A name of ``__all__``, loaded on first use (after Prefect's settings: see above)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module("analytics_client.orchestration.server")  # sets PREFECT_DEFAULTS
    module_name, attribute = _HOMES[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

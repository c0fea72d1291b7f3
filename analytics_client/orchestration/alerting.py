"""The failure alert the default deployment ships: a failed run's cause, posted to a webhook.

``prefect.yaml`` deploys ``analytics-sync/failure-alert`` with a deployment trigger (an
automation Prefect creates at ``prefect deploy``; docs.prefect.io, "Creating deployment
triggers"): when a flow run of analytics-sync, analytics-sync-fanout or analytics-maintenance
enters Failed or Crashed, it runs ``flows/alerts.py:analytics_failure_alert`` with that run's
id. Prefect 3.9's ``prefect.yaml`` has no key for other automations (a deployment trigger's
action is always "run a deployment"), hence a small flow that does the sending.

The only thing to set up is where to send: the Prefect Secret block
``analytics-sync-alert-webhook`` holding the webhook's URL (``python flows/alerts.py
--webhook``, or the UI: Blocks > Secret). The body is JSON with ``text`` (what Slack and
Microsoft Teams incoming webhooks show) and the fields one by one for any other receiver. The
URL (it usually carries a token) is never logged; only its host is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast
from urllib.parse import urlsplit
from uuid import UUID

from analytics_client.core.errors import AlertNotSent

__all__ = ["ALERT_WEBHOOK_BLOCK", "FailedRun", "alert_text", "describe_run", "send_alert",
           "webhook_url"]

ALERT_WEBHOOK_BLOCK = "analytics-sync-alert-webhook"
_TIMEOUT = 10.0  # seconds for the webhook to answer


@dataclass(frozen=True)
class FailedRun:
    """What an alert says about a run (read from the Prefect API)."""

    flow_run_id: str
    flow: str
    run: str
    deployment: str | None
    state: str
    message: str
    url: str | None


def run_id_of(resource_id: str) -> UUID:
    """The flow run's id from an event's resource id (``prefect.flow-run.<uuid>``) or the id."""
    return UUID(resource_id.removeprefix("prefect.flow-run."))


def describe_run(flow_run_id: str) -> FailedRun:
    """The run's flow, name, deployment, state and state message, and its UI link if a UI is
    configured (PREFECT_UI_URL)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_UI_URL

    run_id = run_id_of(flow_run_id)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        flow = client.read_flow(flow_run.flow_id)
        deployment = (client.read_deployment(flow_run.deployment_id).name
                      if flow_run.deployment_id else None)
    state = flow_run.state
    ui = PREFECT_UI_URL.value()
    return FailedRun(
        flow_run_id=str(run_id), flow=flow.name, run=flow_run.name,
        deployment=deployment, state=(state.name if state else None) or "unknown",
        message=(state.message if state else None) or "(no state message)",
        url=f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else None)


def alert_text(run: FailedRun) -> str:
    """One line a person reads first, then the link: ``analytics-sync run 'x'
    (analytics-sync/incremental) Failed: 5 of 5 resources failed: ...``."""
    where = f"{run.flow}/{run.deployment}" if run.deployment else "no deployment"
    text = f"{run.flow} run {run.run!r} ({where}) {run.state}: {run.message}"
    return f"{text}\n{run.url}" if run.url else text


def webhook_url(block: str = ALERT_WEBHOOK_BLOCK) -> str | None:
    """The webhook URL stored in the Secret block ``block``, or None when there is none."""
    from prefect.blocks.system import Secret

    try:
        secret = cast(Secret, Secret.load(block))  # sync here: Prefect's async_dispatch
        value = secret.get()
    except ValueError:  # Prefect: "Unable to find block document named ..."
        return None
    return str(value).strip() or None


def send_alert(url: str, run: FailedRun, block: str = ALERT_WEBHOOK_BLOCK) -> str:
    """POST the alert as JSON; returns the receiver's host for the log (never the URL's path
    or token). Raises ``AlertNotSent`` (naming the host, the status or fault, and ``block``)
    when the webhook does not answer 2xx."""
    import httpx

    host = urlsplit(url).hostname or "the webhook"
    body: dict[str, Any] = {"text": alert_text(run), **asdict(run)}
    try:
        response = httpx.post(url, json=body, timeout=_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:  # its text may hold the URL: named by type only
        raise AlertNotSent(host, type(exc).__name__, block) from None
    if not 200 <= response.status_code < 300:
        raise AlertNotSent(host, f"HTTP {response.status_code}", block)
    return host

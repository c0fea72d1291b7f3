"""Prefect automations that alert on analytics-sync, kept as code and applied by one command.

    python flows/alerts.py --notify-block slack-webhook/data-alerts --stale-after 1h

creates or replaces two automations on the Prefect API in PREFECT_API_URL:

* ``analytics-sync: run failed or crashed`` -- a flow run of analytics-sync or
  analytics-maintenance enters Failed or Crashed (reactive);
* ``analytics-sync: no completed run for <window>`` -- no analytics-sync run reached Completed
  for ``--stale-after`` (proactive): the schedule is paused, the work pool has no worker, runs
  are stuck in Pending/Late, or every run is being cancelled as a collision.

Both send through an existing Prefect notification block, named ``<block-type-slug>/<name>``
(Slack webhook, Microsoft Teams, PagerDuty, e-mail, custom webhook, ...). Running it again
replaces the automations of the same names, so this file is their source of truth.

The default deployment needs none of that: ``prefect deploy --all`` deploys
``analytics-sync/failure-alert``, whose trigger runs ``analytics_failure_alert`` below for every
failed or crashed run; point it at a webhook once:

    ANALYTICS_ALERT_WEBHOOK_URL=https://hooks.example.com/... python flows/alerts.py --webhook
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from datetime import timedelta
from uuid import UUID

# First, before Prefect is imported: importing from this package sets Prefect's environment
# (its server.PREFECT_DEFAULTS).
from analytics_client.orchestration import (
    ALERT_WEBHOOK_BLOCK,
    PREFECT_DEFAULTS,  # noqa: F401
    describe_run,
    quiet_expected_tracebacks,
    send_alert,
    webhook_url,
)

# isort: split
from prefect import flow, get_run_logger
from prefect.automations import (
    Automation,
    EventTrigger,
    Posture,
    ResourceSpecification,
    SendNotification,
)
from prefect.client.orchestration import get_client

quiet_expected_tracebacks()  # an expected failure is its message, without a traceback

SYNC_FLOW = "analytics-sync"
WEBHOOK_ENV = "ANALYTICS_ALERT_WEBHOOK_URL"
MAINTENANCE_FLOW = "analytics-maintenance"
FAILED_NAME = "analytics-sync: run failed or crashed"
STALE_PREFIX = "analytics-sync: no completed run for"

_FAILED_BODY = """\
Flow run {{ flow_run.name }} of {{ flow.name }} \
({{ deployment.name if deployment else 'no deployment' }}) \
entered {{ flow_run.state.name }}: {{ flow_run.state.message }}
Parameters: pipeline={{ flow_run.parameters.get('pipeline') }}, \
lake_uri={{ flow_run.parameters.get('lake_uri') }}
{{ flow_run|ui_url }}"""

_STALE_BODY = """\
No run of the analytics-sync flow has completed for {window}. Check that the deployments' \
schedules are active, that a worker polls the work pool, and the latest runs' states."""


def failure_automation(block_document_id: UUID,
                       flows: tuple[str, ...] = (SYNC_FLOW, MAINTENANCE_FLOW)) -> Automation:
    """Notify once per flow run of ``flows`` that fails or crashes."""
    return Automation(
        name=FAILED_NAME,
        description="A sync or maintenance run failed or crashed (flows/alerts.py).",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            for_each={"prefect.resource.id"},
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": list(flows)}
            ),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_document_id,
            subject="analytics-sync: {{ flow.name }} run {{ flow_run.name }} "
                    "{{ flow_run.state.name }}",
            body=_FAILED_BODY,
        )],
    )  # fmt: skip


def stale_automation(block_document_id: UUID, window: timedelta,
                     flow: str = SYNC_FLOW) -> Automation:
    """Notify when no run of ``flow`` completed within ``window`` (at least 10 s)."""
    text = _duration_text(window)
    return Automation(
        name=f"{STALE_PREFIX} {text}",
        description=f"No {flow} run completed for {text} (flows/alerts.py).",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Completed"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": flow}
            ),
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=[SendNotification(
            block_document_id=block_document_id,
            subject=f"analytics-sync: no completed run for {text}",
            body=_STALE_BODY.format(window=text),
        )],
    )  # fmt: skip


def apply(notify_block: str, stale_after: timedelta) -> list[Automation]:
    """Create the two automations, replacing any of the same names (and older stale windows)."""
    slug, sep, name = notify_block.partition("/")
    if not sep or not slug or not name:
        raise SystemExit("error: --notify-block must be BLOCK-TYPE-SLUG/NAME, "
                         "e.g. slack-webhook/alerts")
    with get_client(sync_client=True) as client:
        try:
            block = client.read_block_document_by_name(name=name, block_type_slug=slug)
        except Exception as exc:  # ObjectNotFound, or a slug that is no block type
            raise SystemExit(
                f"error: no notification block {notify_block!r} ({type(exc).__name__}); create "
                "it first (Prefect UI: Blocks, or its block class's .save())") from None
        wanted = [failure_automation(block.id), stale_automation(block.id, stale_after)]
        for existing in client.read_automations():
            if existing.name == FAILED_NAME or existing.name.startswith(STALE_PREFIX):
                client.delete_automation(existing.id)
    return [automation.create() for automation in wanted]


@flow(name="analytics-sync-alert")
def analytics_failure_alert(flow_run_id: str, webhook_block: str = ALERT_WEBHOOK_BLOCK) -> str:
    """Post a failed or crashed run's cause (its state message) to the webhook whose URL the
    Prefect Secret block ``webhook_block`` holds; ``flow_run_id`` is the run's id or its event
    resource id (``prefect.flow-run.<id>``). Run by prefect.yaml's ``failure-alert`` trigger.
    Without the block it sends nothing and says how to store one."""
    log = get_run_logger()
    run = describe_run(flow_run_id)
    url = webhook_url(webhook_block)
    if url is None:
        log.warning("no alert sent for %s run %r (%s): no Prefect Secret block %r holds a "
                    "webhook URL; store one with `%s=... python flows/alerts.py --webhook`",
                    run.flow, run.run, run.state, webhook_block, WEBHOOK_ENV)
        return "not sent: no webhook"
    host = send_alert(url, run, webhook_block)
    log.info("alert for %s run %r (%s) sent to %s", run.flow, run.run, run.state, host)
    return f"sent to {host}"


def store_webhook(block: str = ALERT_WEBHOOK_BLOCK) -> str:
    """Save the webhook URL (from ANALYTICS_ALERT_WEBHOOK_URL, else a hidden prompt: it holds
    a token) as the Prefect Secret block ``block``; returns the block's name."""
    from prefect.blocks.system import Secret

    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if not url and sys.stdin.isatty():
        url = getpass.getpass("webhook URL (input hidden): ").strip()
    if not url.startswith(("https://", "http://")):
        raise SystemExit(f"error: no webhook URL: set {WEBHOOK_ENV} to the http(s) URL the "
                         "alert is posted to")
    Secret(value=url).save(block, overwrite=True)
    return block


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use seconds or a number with s, m, h or d")
    number, unit = int(match[1]), match[2] or "s"
    window = timedelta(seconds=number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
    if window < timedelta(seconds=10):
        raise argparse.ArgumentTypeError("the window must be at least 10 s")
    return window


def _duration_text(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python flows/alerts.py",
                                     description=__doc__.split("\n\n")[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--webhook", action="store_true",
                     help=f"store the webhook URL ({WEBHOOK_ENV}, else a hidden prompt) for the "
                     f"deployed failure alert (Prefect Secret block {ALERT_WEBHOOK_BLOCK!r})")
    how.add_argument("--notify-block",
                     help="create the two automations sending through this notification block, "
                     "TYPE-SLUG/NAME, e.g. slack-webhook/data-alerts")
    parser.add_argument("--stale-after", type=parse_duration, default=timedelta(hours=1),
                        help="alert when no sync run completed for this long (default 1h; the "
                        "incremental schedule runs every 15m)")
    args = parser.parse_args(argv)
    if args.webhook:
        block = store_webhook()
        print(f"saved Prefect Secret block {block!r}: failed runs of the deployments are posted "
              "to it (analytics-sync/failure-alert)")
        return 0
    for automation in apply(args.notify_block, args.stale_after):
        print(f"automation {automation.name!r}: {automation.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 11, input 5 through Prefect: an echoed, percent-encoded key reaches no state, log or artifact."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from analytics_sandbox import SandboxSettings, World, serve
from flows.main import analytics_sync
from tests.support import ORG_HEADERS

pytestmark = pytest.mark.slow

KEY = "Ab+c/d=e%f&g?h#1"
SMALL = {"tags": 15, "users": 15, "deals": 30, "pages": 15, "tasks": 15}


def spellings(secret: str) -> set[str]:
    percent = {quote(secret, safe=""), quote(secret), quote_plus(secret),
               str(httpx.QueryParams({"k": secret}))[2:]}
    lower = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in percent}
    return {secret, *percent, *lower, json.dumps(secret)[1:-1],
            base64.b64encode(secret.encode()).decode()}


def test_echoed_query_key_is_masked_in_states_logs_and_artifacts(
        harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """The API's 400 echoes the URL with the key percent-encoded: every place Prefect keeps
    (flow and task run state messages, run logs, the summary artifact) and the console get
    ``***`` instead, in every spelling."""
    settings = SandboxSettings(api_key=KEY, late_visibility=False)
    with serve(World(seed=2, counts=SMALL), settings) as sandbox:
        sandbox.set_faults([{"kind": "echo_url", "resource": "deals", "times": 100}])
        monkeypatch.setenv("ANALYTICS_API_KEY", KEY)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
        config = {
            "client": {"headers": ORG_HEADERS, "base_url": sandbox.base_url,
                       "auth": {"type": "api_key", "name": "api_key", "location": "query"}},
            "resources": [{"name": n, "endpoint": {"path": f"/v1/{n}"}} for n in ("tags", "deals")],
        }
        state = analytics_sync(pipeline="echo-test", lake_uri=str(tmp_path), config=config,
                               api_key_block=None, organization_id_block=None, return_state=True)
    assert state.is_failed()
    assert "deals" in (state.message or "")  # the flow names it; the task state holds the error
    APILogHandler().flush()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    task_messages = [t.state.message or "" for t in task_runs if t.state is not None]
    assert any("Bad request: GET /v1/deals" in m for m in task_messages), task_messages
    artifact = Artifact.get("analytics-sync-echo-test-summary")
    captured = capfd.readouterr()
    everything = "\n".join([state.message or "", run.state.message if run.state else "",
                            *task_messages, "\n".join(log.message for log in logs),
                            str(artifact.data if artifact else ""), captured.out, captured.err])
    for form in spellings(KEY):
        assert form not in everything, form

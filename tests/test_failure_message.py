"""A failed run says why where the operator looks (issue 23, item 8).

Real parts: a real Prefect API (the test harness), the loopback sandbox answering 401 to a wrong
key, Prefect's own engine entry point in a subprocess (``python -m prefect.engine``, what a
worker starts for a deployment run), real log records through Prefect's loggers.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL

from analytics_client.core.errors import APIError, ConfigError
from analytics_client.orchestration.failures import (
    failed_message,
    failure_reason,
    quiet_expected_tracebacks,
)
from analytics_sandbox import RunningSandbox, World, serve
from flows.main import analytics_sync

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"tags": 3, "users": 3, "deals": 3, "pages": 3, "tasks": 3}
WRONG_KEY = "wrong-key-4b1d9e"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with serve(World(seed=5, counts=SMALL)) as running:
        yield running


def _expected_401(sandbox: RunningSandbox) -> str:
    """Written from the contract (401 for a key it does not know) and the README's promise."""
    host = sandbox.base_url.removeprefix("http://").rstrip("/")
    return ("5 of 5 resources failed: tags, deals, pages, tasks, users: HTTP 401 from "
            f"{host}: check the API key (Prefect Secret block or ANALYTICS_API_KEY)")


def _run_logs(flow_run_id: UUID) -> str:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


@pytest.mark.slow
def test_a_run_refused_with_401_ends_failed_naming_the_cause_once_without_a_traceback(
        harness: None, sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ANALYTICS_API_KEY", WRONG_KEY)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
    state = analytics_sync(pipeline="why-401", lake_uri=str(tmp_path / "lake"),
                           base_url=sandbox.base_url, api_key_block=None,
                           organization_id_block=None, return_state=True)
    assert state.is_failed()
    assert state.message == _expected_401(sandbox)
    logs = _run_logs(state.state_details.flow_run_id)
    said = capfd.readouterr()
    for text in (logs, said.out, said.err):
        assert "Traceback" not in text
        assert WRONG_KEY not in text
    assert _expected_401(sandbox) in logs  # "Finished in state Failed('...')"


@pytest.mark.slow
def test_a_deployed_run_refused_with_401_logs_no_traceback(
        harness: None, sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Prefect's engine, as a worker starts it, re-raises a Failed run's result and logs it
    with a traceback ("Engine execution exited with unexpected exception"): not ours."""
    parameters = {"pipeline": "why-401-deployed", "lake_uri": str(tmp_path / "lake"),
                  "base_url": sandbox.base_url, "api_key_block": None,
                  "organization_id_block": None}
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(analytics_sync, parameters=parameters)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env.update(PREFECT_API_URL=str(PREFECT_API_URL.value()),
               PREFECT__FLOW_ENTRYPOINT="flows/main.py:analytics_sync",
               ANALYTICS_API_KEY=WRONG_KEY, ANALYTICS_ORGANIZATION_ID=sandbox.organization_id,
               ANALYTICS_SYNC_LOCK_DIR=str(tmp_path / "locks"))
    done = subprocess.run([sys.executable, "-m", "prefect.engine", str(flow_run.id)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        final = client.read_flow_run(flow_run.id).state
    assert final is not None and final.is_failed(), output[-3000:]
    assert final.message == _expected_401(sandbox)
    logs = _run_logs(flow_run.id)
    assert "Traceback" not in logs
    assert "Traceback" not in output, output[-3000:]
    assert WRONG_KEY not in logs + output + (final.message or "")


def test_an_unexpected_exception_keeps_its_traceback_an_expected_one_loses_it() -> None:
    """Through Prefect's flow-run logger, as the engine logs a run's exception."""
    quiet_expected_tracebacks()
    logger = logging.getLogger("prefect.flow_runs")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        for exc in (APIError("deals", status=401, detail="no", url="http://h/v1/deals",
                             hint="check the API key"), ValueError("a bug")):
            try:
                raise exc
            except Exception:
                logger.error("Engine execution exited with unexpected exception", exc_info=True)
    finally:
        logger.removeHandler(handler)
    ours, bug = records
    assert ours.exc_info is None
    assert ours.getMessage() == ("Engine execution exited with unexpected exception: APIError: "
                                 "deals: HTTP 401 from http://h/v1/deals: no; check the API key")
    assert bug.exc_info is not None and isinstance(bug.exc_info[1], ValueError)
    assert "Traceback" in logging.Formatter().format(bug)


def test_an_api_error_reason_names_status_host_and_what_to_do_not_the_page() -> None:
    exc = APIError("deals", status=403, detail="wrong organization", page=7,
                   url="https://api.example.com/v1/deals?page%5Bnumber%5D=7&api_key=***",
                   hint="check the organization id")
    assert failure_reason("deals", str(exc), exc) == (
        "HTTP 403 from api.example.com: check the organization id")
    other = ConfigError(["resources[0].name: bad"])
    assert failure_reason("deals", f"deals: {other}", other).startswith(
        "invalid source configuration (1 problem): - resources[0].name: bad")


_RESOURCES = st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=8,
                      unique=True)


@given(data=st.data(), names=_RESOURCES)
def test_resources_failing_alike_are_named_together_each_once(
        data: st.DataObject, names: list[str]) -> None:
    reasons = data.draw(st.lists(st.sampled_from(["HTTP 401 from h: key", "HTTP 500 from h: x",
                                                  "cannot connect to h: refused"]),
                                 min_size=len(names), max_size=len(names)))
    extra = data.draw(st.integers(0, 5))
    message = failed_message(list(zip(names, reasons, strict=True)), len(names) + extra)
    head, _, causes = message.partition(" failed: ")
    assert head == f"{len(names)} of {len(names) + extra} resources"
    parts = causes.split("; ")
    assert len(parts) == len(set(reasons))  # one part per distinct cause
    seen: dict[str, str] = {}
    for part in parts:
        listed, _, reason = part.partition(": ")
        for name in listed.split(", "):
            assert name not in seen
            seen[name] = reason
    assert seen == dict(zip(names, reasons, strict=True))


class _Webhook:
    """A loopback webhook that records each JSON body and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict[str, object]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append(json.loads(body or b"{}"))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-5ecret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.mark.slow
def test_the_failure_alert_posts_the_cause_to_the_stored_webhook_and_never_its_url(
        harness: None, sandbox: RunningSandbox, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """prefect.yaml's failure-alert flow, handed the event's resource id of a failed run."""
    from prefect.blocks.system import Secret

    from flows.alerts import analytics_failure_alert

    monkeypatch.setenv("ANALYTICS_API_KEY", WRONG_KEY)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
    failed = analytics_sync(pipeline="alert-401", lake_uri=str(tmp_path / "lake"),
                            base_url=sandbox.base_url, api_key_block=None,
                            organization_id_block=None, return_state=True)
    resource_id = f"prefect.flow-run.{failed.state_details.flow_run_id}"
    block = "alert-test-webhook"
    # No webhook stored yet: nothing sent, and the run says how to store one.
    assert analytics_failure_alert(resource_id, webhook_block=block) == "not sent: no webhook"
    with _Webhook() as hook:
        Secret(value=hook.url).save(block, overwrite=True)
        assert analytics_failure_alert(resource_id, webhook_block=block) == "sent to 127.0.0.1"
    [body] = hook.received
    assert body["state"] == "Failed" and body["flow"] == "analytics-sync"
    assert body["message"] == _expected_401(sandbox)
    assert str(body["text"]).startswith("analytics-sync run ")
    assert _expected_401(sandbox) in str(body["text"])
    assert WRONG_KEY not in json.dumps(body)
    with _Webhook(status=500) as broken:
        Secret(value=broken.url).save(block, overwrite=True)
        state = analytics_failure_alert(resource_id, webhook_block=block, return_state=True)
    assert state.is_failed()
    said = (state.message or "") + _run_logs(state.state_details.flow_run_id)
    assert "the alert webhook at 127.0.0.1 did not take the alert (HTTP 500)" in said
    assert "T0KEN-5ecret" not in said and "Traceback" not in said


def test_prefect_yaml_alerts_on_every_flow_of_ours_but_the_alert_itself() -> None:
    """The trigger as `prefect deploy` reads it (its own validation), naming flows that exist."""
    import yaml
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers

    from flows.alerts import analytics_failure_alert
    from flows.fanout import analytics_sync_fanout
    from flows.maintenance import analytics_maintenance

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [alert] = [d for d in spec["deployments"] if d["name"] == "failure-alert"]
    assert alert["entrypoint"] == "flows/alerts.py:analytics_failure_alert"
    [trigger] = _initialize_deployment_triggers("failure-alert", alert["triggers"])
    assert set(trigger.expect) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    related = trigger.match_related
    assert not isinstance(related, list)
    names = set(related.root["prefect.resource.name"])  # type: ignore[union-attr]
    ours = {analytics_sync.name, analytics_sync_fanout.name, analytics_maintenance.name}
    assert names == ours and analytics_failure_alert.name not in names
    assert trigger.parameters == {"flow_run_id": "{{ event.resource.id }}"}


def test_the_readme_set_up_compiles_bytecode_before_the_first_command() -> None:
    """Item 9: compiling is part of the set-up, not an option; pyproject does not make every
    `uv run` check 10,762 files again (uv issue #12202)."""
    import tomllib

    readme = (ROOT / "README.md").read_text()
    start = readme.split("## Five-minute start", 1)[1]
    [first_block] = start.split("```bash\n", 1)[1:2]
    commands = [line.split("#")[0].strip() for line in first_block.split("```")[0].splitlines()]
    assert commands[0] == "uv sync --locked --compile-bytecode"
    assert all(c.startswith("uv run ") for c in commands[1:] if c)
    assert "half a second" not in readme
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert not uv.get("compile-bytecode")

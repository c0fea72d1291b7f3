"""The Prefect flow: real Prefect API (test harness), real sandbox, real Delta tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.artifacts import Artifact
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from analytics_client import Lake
from analytics_sandbox import RunningSandbox, World, serve
from flows.main import analytics_sync, main
from tests.groundtruth import assert_table_equals_truth, fetch_truth
from tests.support import ORG_HEADERS, RESOURCES

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"tags": 15, "users": 25, "deals": 60, "pages": 30, "tasks": 45}
pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with serve(World(seed=3, counts=SMALL)) as running:
        yield running


def test_flow_syncs_every_resource_and_publishes_a_summary(
        harness: None, sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Secrets from Prefect Secret blocks; five tables equal the API; a summary artifact."""
    Secret(value=sandbox.api_key).save("analytics-api-key", overwrite=True)
    Secret(value=sandbox.organization_id).save("analytics-organization-id", overwrite=True)
    result = analytics_sync(pipeline="flow-test", lake_uri=str(tmp_path), base_url=sandbox.base_url)
    assert {r["resource"]: r["inserted"] for r in result} == SMALL
    for resource in SMALL:
        assert_table_equals_truth(Lake(str(tmp_path)).read(resource),
                                  fetch_truth(sandbox.base_url, resource), resource)
    artifact = Artifact.get("analytics-sync-flow-test-summary")
    assert artifact is not None
    assert re.search(r"\| deals \| ok \| \d+ \| \d+ \| 60 \| 0 \| 0 \|", str(artifact.data))


def test_failed_resources_fail_the_run_and_no_secret_appears_anywhere(
        harness: None, sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A wrong organization with the key in the query string: the run fails by name, leaking nothing."""
    wrong_org = "org_secret_7f3e9d"
    monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", wrong_org)
    config = {
        "client": {"headers": ORG_HEADERS, "base_url": sandbox.base_url,
                   "auth": {"type": "api_key", "name": "api_key", "location": "query"}},
        "resources": [{"name": n, "endpoint": {"path": f"/v1/{n}"}} for n in ("tags", "deals")],
    }
    state = analytics_sync(pipeline="leak-test", lake_uri=str(tmp_path), config=config,
                           api_key_block=None, organization_id_block=None, return_state=True)
    assert state.is_failed()
    message = state.message or ""
    # Named in the run's message; each error itself is said once, by its task (below).
    assert "2 of 2 resources failed: tags, deals" in message
    APILogHandler().flush()  # ship queued run logs to the API before reading them
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    log_text = "\n".join(log.message for log in logs)
    assert "HTTP 403" in log_text and "api_key=***" in log_text
    artifact = Artifact.get("analytics-sync-leak-test-summary")
    exception = state.result(raise_on_failure=False)
    captured = capfd.readouterr()
    everything = "\n".join([message, log_text, str(artifact.data if artifact else ""), str(exception),
                            repr(exception), json.dumps(run.parameters, default=str),
                            captured.out, captured.err])
    assert sandbox.api_key not in everything
    assert wrong_org not in everything
    assert not any((tmp_path / r).exists() for r in RESOURCES)  # no table written


def test_check_command_validates_config_and_reaches_each_resource(
        sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`check` resolves secrets and makes one request per resource, writing nothing."""
    monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
    code = main(["check", "--base-url", sandbox.base_url, "--api-key-block", "",
                 "--organization-block", ""])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count(" ok ") == 5 and "60 records" in out
    assert sandbox.stats()["total_requests"] == 5


def test_bad_config_file_exits_2_listing_every_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid config file is rejected before anything runs, each problem on its own line."""
    path = tmp_path / "source.yaml"
    path.write_text("client:\n  base_url: http://x\nresources:\n  - name: deals\n    endpoint:\n"
                    "      path: /v1/deals\n      paginator: {type: page_number, limit: 0}\n"
                    "  - name: ../escape\n    endpoint: {path: /v1/x}\n")
    assert main(["--config", str(path), "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err
    assert "resources[0].endpoint.paginator.limit: must be an integer >= 1" in err
    assert "resources[1].name: '../escape' must be letters" in err
    assert not (tmp_path / "lake").exists()


def test_missing_secret_names_both_places_to_set_it(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a key anywhere the error says where to put it."""
    assert main(["check", "--base-url", "http://127.0.0.1:9", "--api-key-block", ""]) == 2
    err = capsys.readouterr().err
    assert "ANALYTICS_API_KEY" in err


def test_readme_sandbox_command_runs_end_to_end(tmp_path: Path) -> None:
    """`python flows/main.py --sandbox` starts the sandbox, syncs, prints the summary, exits 0."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    lake = tmp_path / "lake"
    done = subprocess.run(
        [sys.executable, "flows/main.py", "--sandbox", "--sandbox-scale", "0.02", "--lake", str(lake)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "total     ok" in done.stdout  # the summary table, on stdout (issue 12, defect 9)
    assert "total     ok" not in done.stderr  # once
    assert sorted(p.name for p in lake.iterdir()) == ["deals", "pages", "tags", "tasks", "users"]
    assert Lake(str(lake)).read("deals").height == 200


def test_secrets_command_stores_blocks_from_the_environment(
        harness: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`secrets` saves both Secret blocks from the environment, bound to the API they are for
    (here the seed config's client.base_url), and never prints them."""
    monkeypatch.setenv("ANALYTICS_API_KEY", "key-from-env-123")
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", "org-from-env-456")
    assert main(["secrets", "--api-key-block", "test-key", "--organization-block", "test-org"]) == 0
    host = "https://api.example.com:443"
    assert Secret.load("test-key").get() == {"host": host, "value": "key-from-env-123"}
    assert Secret.load("test-org").get() == {"host": host, "value": "org-from-env-456"}
    out = capsys.readouterr().out
    assert "key-from-env-123" not in out and "test-key" in out and host in out


def test_marks_live_in_prefect_blocks_and_the_state_commands_show_and_reset_them(
        harness: None, sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A second flow run reads only changes; `state show` and `state reset` work on the blocks."""
    from analytics_client.orchestration.blocks import SyncMark

    monkeypatch.setenv("ANALYTICS_API_KEY", sandbox.api_key)
    monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", sandbox.organization_id)
    monkeypatch.setenv("ANALYTICS_SYNC_LOCK_DIR", str(tmp_path / "locks"))
    params = dict(pipeline="state-test", lake_uri=str(tmp_path / "lake"), base_url=sandbox.base_url,
                  api_key_block=None, organization_id_block=None)
    analytics_sync(**params)
    block = SyncMark.load("state-test--deals")
    assert block.cursor is not None and block.table_version == 0
    assert block.inserted == SMALL["deals"] and block.last_success_at is not None
    sandbox.advance(updates=3, creates=2, seed=5)
    second = {r["resource"]: r for r in analytics_sync(**params)}
    assert second["deals"]["pages"] <= 3 and second["deals"]["inserted"] == 2
    common = ["--pipeline", "state-test", "--lake", str(tmp_path / "lake")]
    assert main(["state", "show", *common]) == 0
    shown = capsys.readouterr().out
    assert shown.count("block cursor 2026-") == 5 and "next run: resuming from" in shown
    assert main(["state", "reset", "deals", *common]) == 0
    assert SyncMark.load("state-test--deals").cursor is None
    assert main(["state", "show", *common]) == 0
    assert "the mark was reset: full read" in capsys.readouterr().out
    third = {r["resource"]: r for r in analytics_sync(**params)}
    assert third["deals"]["rows_fetched"] >= SMALL["deals"] + 2
    assert third["users"]["pages"] <= 2


def test_a_mark_document_from_an_older_block_version_still_loads(harness: None) -> None:
    """Documents saved before a field existed load with that field's default."""
    from analytics_client.orchestration.blocks import SyncMark

    SyncMark(pipeline="compat", resource="tags", cursor="2026-01-01T00:00:00.000000Z").save(
        "compat--tags", overwrite=True)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("compat--tags", "analytics-sync-mark")
        old = {k: v for k, v in document.data.items() if k not in ("inserted", "updated", "last_success_at")}
        client.update_block_document(document.id, BlockDocumentUpdate(data=old, merge_existing_data=False))
        assert set(client.read_block_document_by_name("compat--tags", "analytics-sync-mark").data) == set(old)
    loaded = SyncMark.load("compat--tags")
    assert loaded.cursor == "2026-01-01T00:00:00.000000Z"
    assert (loaded.inserted, loaded.updated, loaded.last_success_at) == (0, 0, None)

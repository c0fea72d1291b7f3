"""The lake on S3: a real S3-compatible server on loopback (moto's server mode), real Delta tables.

Credentials and endpoint come from the standard AWS_* variables or an Analytics Lake Storage
block, never from parameters; commits are conditional puts (If-None-Match), so a writer with a
stale view of the log cannot overwrite a commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from analytics_client import Lake
from analytics_client.core.errors import ConfigError
from analytics_client.orchestration.storage import LakeStorage, resolve_storage_options
from analytics_sandbox import RunningSandbox, SandboxSettings, World, serve
from flows.main import analytics_sync
from tests.groundtruth import assert_table_equals_truth, fetch_truth

COUNTS = {"tags": 15, "users": 20, "deals": 50, "pages": 25, "tasks": 30}
KEY_ID, SECRET = "AKIDLAKETEST", "s3cr3t-lake-key-9d1f"
pytestmark = pytest.mark.slow


class S3Server:
    def __init__(self, endpoint: str, recording: Path) -> None:
        self.endpoint = endpoint
        self.recording = recording

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def create_bucket(self, name: str) -> None:
        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID,
                     aws_secret_access_key=SECRET, region_name="us-east-1").create_bucket(Bucket=name)

    def record(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/recorder/reset-recording").raise_for_status()
        httpx.post(f"{self.endpoint}/moto-api/recorder/start-recording").raise_for_status()

    def recorded(self) -> list[dict[str, object]]:
        text = httpx.get(f"{self.endpoint}/moto-api/recorder/download-recording").text
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``python -m moto.server`` on a free loopback port, stopped (process group) at the end."""
    tmp = tmp_path_factory.mktemp("moto")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(tmp / "recording"))
    with (tmp / "moto.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp / "moto.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        yield S3Server(endpoint, tmp / "recording")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RunningSandbox]:
    with serve(World(seed=21, counts=COUNTS), SandboxSettings(late_visibility=False)) as running:
        monkeypatch.setenv("ANALYTICS_API_KEY", running.api_key)
        monkeypatch.setenv("ANALYTICS_ORGANIZATION_ID", running.organization_id)
        monkeypatch.setenv("ANALYTICS_SYNC_LOCK_DIR", str(tmp_path / "locks"))
        yield running


def _sync(sandbox: RunningSandbox, lake_uri: str, pipeline: str, **kwargs: object) -> list[dict[str, object]]:
    return analytics_sync(pipeline=pipeline, lake_uri=lake_uri, base_url=sandbox.base_url,
                          api_key_block=None, organization_id_block=None, **kwargs)


def _assert_equal_truth(lake: Lake, sandbox: RunningSandbox) -> None:
    for resource in COUNTS:
        assert_table_equals_truth(lake.read(resource), fetch_truth(sandbox.base_url, resource), resource)


def test_full_and_incremental_runs_on_s3_from_the_environment(
        harness: None, s3: S3Server, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_* variables only: a full run, an advance, an incremental run; S3 tables equal the truth."""
    started = time.monotonic()
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    s3.create_bucket("env-lake")
    uri = "s3://env-lake/analytics"
    first = _sync(sandbox, uri, "s3-env")
    assert {r["resource"]: r["inserted"] for r in first} == COUNTS
    lake = Lake(uri, storage_options=resolve_storage_options(uri))
    _assert_equal_truth(lake, sandbox)
    full_requests = sandbox.stats()["total_requests"]

    sandbox.world.advance(updates=5, creates=4, seed=3, late_visibility=False)
    second = _sync(sandbox, uri, "s3-env")
    incremental_requests = sandbox.stats()["total_requests"] - full_requests
    _assert_equal_truth(lake, sandbox)
    assert sum(r["inserted"] for r in second) == 4 * len(COUNTS)
    # delete capture's count probe (one per resource, docs/deletes.md) is not the read's cost
    probes = sum(int(r.get("delete_requests", 0)) for r in second)
    assert probes <= len(COUNTS), second
    reads = incremental_requests - probes
    assert 0 < reads < full_requests / 2, (full_requests, incremental_requests, probes)
    print(f"\nS3 full + incremental from the environment: {time.monotonic() - started:.1f} s "
          f"({full_requests} then {incremental_requests} requests)")


def test_storage_block_supplies_credentials_and_nothing_leaks(
        harness: None, s3: S3Server, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """No AWS_* in the environment: the block's options reach delta-rs; the secret is nowhere shown."""
    caplog.set_level(logging.INFO, logger="analytics_client.orchestration.storage")
    for key in s3.env():
        monkeypatch.delenv(key, raising=False)
    s3.create_bucket("block-lake")
    LakeStorage(options=s3.env()).save("ci-lake-s3", overwrite=True)
    uri = "s3://block-lake/org-a"
    state = analytics_sync(pipeline="s3-block", lake_uri=uri, base_url=sandbox.base_url,
                           api_key_block=None, organization_id_block=None,
                           storage_block="ci-lake-s3", return_state=True)
    assert state.is_completed(), state.message
    lake = Lake(uri, storage_options=resolve_storage_options(uri, "ci-lake-s3"))
    _assert_equal_truth(lake, sandbox)

    APILogHandler().flush()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    log_text = "\n".join(log.message for log in logs)
    assert "storage options AWS_ACCESS_KEY_ID, AWS_ALLOW_HTTP" in caplog.text  # names only
    shown = "\n".join([log_text, caplog.text, json.dumps(run.parameters, default=str), repr(lake),
                       *capfd.readouterr()])
    assert SECRET not in shown and KEY_ID not in shown
    with pytest.raises(ConfigError, match="no Analytics Lake Storage block named 'missing'"):
        resolve_storage_options(uri, "missing")


def test_commits_are_conditional_puts_and_a_stale_writer_cannot_overwrite(s3: S3Server) -> None:
    """Each log entry is PUT with If-None-Match: *; a writer behind the log commits after it."""
    s3.create_bucket("safety")
    options = resolve_storage_options("s3://safety/t", environ=s3.env())
    assert options is not None and options["AWS_CONDITIONAL_PUT"] == "etag"
    uri = "s3://safety/t"
    s3.record()
    write_deltalake(uri, pl.DataFrame({"id": [1, 2]}), storage_options=options)
    puts = [r for r in s3.recorded()
            if r["method"] == "PUT" and "/_delta_log/" in str(r["url"]) and str(r["url"]).endswith(".json")]
    assert puts and all(dict(r["headers"]).get("If-None-Match") == "*" for r in puts), puts  # type: ignore[arg-type]

    stale = DeltaTable(uri, storage_options=options)  # sees version 0
    write_deltalake(uri, pl.DataFrame({"id": [3]}), mode="append", storage_options=options)  # v1
    write_deltalake(stale, pl.DataFrame({"id": [4]}), mode="append")  # tries v1, must land at v2
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 2
    assert sorted(pl.read_delta(uri, storage_options=options)["id"].to_list()) == [1, 2, 3, 4]


@pytest.mark.parametrize("key", ["AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_S3_LOCKING_PROVIDER"])
def test_unsafe_commit_settings_are_refused(key: str) -> None:
    """A block asking for unsafe renames or the removed DynamoDB lock is an error, not a silent risk."""
    with pytest.raises(ConfigError, match=key):
        from analytics_client.orchestration import storage

        storage._check_safe({key: "true"}, "block 'x'")

"""prefect.yaml end to end: a real `prefect server start`, `prefect deploy`, a process worker.

Deployed from a fresh copy of the project (as a clean clone would be), with the docs' commands:
work pool, Secret blocks, `prefect deploy --all --no-prompt`, `prefect worker start`, then
`prefect deployment run analytics-sync/incremental --watch` twice around a sandbox advance. The
tables must equal the sandbox's truth each time, and the second run must be incremental.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.prefect_stack import Stack, deployed_stack, report
from tests.support import assert_lake_equals_truth

COUNTS = {"tags": 20, "users": 20, "deals": 60, "pages": 30, "tasks": 40}
pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[Stack]:
    started = time.monotonic()
    with deployed_stack(tmp_path_factory.mktemp("deployment"), COUNTS, [("ci-worker", ())]) as s:
        yield s
    report(request, f"deployment test wall time: {time.monotonic() - started:.1f} s "
                    "(server, worker, 4 runs)")


def _run_incremental(s: Stack) -> tuple[int, float]:
    """One watched deployment run; the lake must then equal the truth. Returns requests, seconds."""
    started, before = time.monotonic(), s.requests()
    s.prefect("deployment", "run", "analytics-sync/incremental", "--watch", "--watch-timeout", "240")
    requests = s.requests() - before
    assert_lake_equals_truth(s.sandbox, s.checkout / "data" / "lake", tuple(COUNTS))
    return requests, time.monotonic() - started


def test_deployments_carry_no_path_of_the_deploying_machine(stack: Stack) -> None:
    """Every deployment pulls through ANALYTICS_SYNC_HOME read on the worker; the schedule is UTC cron."""
    for name in ("analytics-sync/incremental", "analytics-sync/full-refresh", "analytics-maintenance/weekly"):
        text = stack.prefect("deployment", "inspect", name).stdout
        assert str(stack.checkout) not in text and "/deploying/machine/path" not in text, text
        assert "ANALYTICS_SYNC_HOME" in text and "'work_pool_name': 'analytics'" in text, text
    incremental = stack.prefect("deployment", "inspect", "analytics-sync/incremental").stdout
    assert "*/15 * * * *" in incremental and "'timezone': 'UTC'" in incremental
    assert "'collision_strategy': 'CANCEL_NEW'" in incremental
    refresh = stack.prefect("deployment", "inspect", "analytics-sync/full-refresh").stdout
    assert "'full_refresh': True" in refresh


def test_incremental_deployment_runs_twice_on_a_worker_and_matches_the_truth(stack: Stack) -> None:
    """Run 1 reads everything; after an advance, run 2 reads only the change; tables equal truth."""
    first, seconds = _run_incremental(stack)
    print(f"\nrun 1 (full read): {first} requests, {seconds:.1f} s")
    stack.sandbox.advance(updates=4, creates=3, seed=7)
    second, seconds = _run_incremental(stack)
    print(f"run 2 (incremental): {second} requests, {seconds:.1f} s")
    assert 0 < second < first / 2, (first, second)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_run_sends_the_failure_alert(stack: Stack) -> None:
    """flows/alerts.py creates both automations; a failing deployment run posts to the webhook."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        make_block = (
            "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
            f"B(name='ci', url='{hook_url}', json_data={{'subject': '{{{{subject}}}}', "
            "'body': '{{body}}'}).save('ci-alerts', overwrite=True)"
        )
        subprocess.run([sys.executable, "-c", make_block], env=stack.env, check=True, timeout=60)
        alerts = subprocess.run(
            [sys.executable, "flows/alerts.py", "--notify-block", "custom-webhook/ci-alerts",
             "--stale-after", "2h"], cwd=stack.checkout, env=stack.env, capture_output=True,
            text=True, timeout=60)
        assert alerts.returncode == 0, alerts.stdout + alerts.stderr
        assert "run failed or crashed" in alerts.stdout and "no completed run for 2h" in alerts.stdout

        failed = stack.prefect("deployment", "run", "analytics-sync/incremental", "--param",
                               'resources=["no-such-resource"]', "--watch", "--watch-timeout", "120",
                               check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        deadline = time.monotonic() + 60
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _Hook.received, "no notification within 60 s of the failed run"
        message = json.dumps(_Hook.received[0])
        assert "analytics-sync" in message and "Failed" in message, message
    finally:
        server.shutdown()
        server.server_close()


class _AlertHook(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _AlertHook.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_shipped_failure_alert_posts_a_failed_runs_cause_once_pointed_at_a_webhook(
        stack: Stack) -> None:
    """prefect deploy --all created analytics-sync/failure-alert and its trigger; storing a
    webhook URL is all the set-up. A failed deployment run's cause reaches the webhook, and
    the failed run's logs hold no traceback (an expected failure)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlertHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN"
        stored = subprocess.run([sys.executable, "flows/alerts.py", "--webhook"],
                                cwd=stack.checkout, env=dict(stack.env,
                                                             ANALYTICS_ALERT_WEBHOOK_URL=url),
                                capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        assert stored.returncode == 0, stored.stdout + stored.stderr
        assert "T0KEN" not in stored.stdout + stored.stderr
        failed = stack.prefect("deployment", "run", "analytics-sync/incremental", "--param",
                               'resources=["no-such-resource"]', "--watch", "--watch-timeout",
                               "120", check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        deadline = time.monotonic() + 180  # the trigger, then a worker runs the alert
        while not _AlertHook.received and time.monotonic() < deadline:
            time.sleep(1)
        assert _AlertHook.received, "no alert within 180 s of the failed run" + stack.worker_log()
        body = _AlertHook.received[0]
        assert body["flow"] == "analytics-sync" and body["deployment"] == "incremental", body
        assert body["state"] == "Failed" and "no-such-resource" in str(body["message"]), body
        assert "Traceback" not in stack.worker_log()
    finally:
        server.shutdown()
        server.server_close()

"""Shared fixtures: no real sleeping in retries, no secrets leaking in from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina
from hypothesis import HealthCheck, settings

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A command's temporary Prefect server ends with it, as before servers were shared: a shared
# one would outlive the test that started it. tests/test_shared_server.py tests sharing.
os.environ.setdefault("ANALYTICS_SYNC_SERVER_IDLE_SECONDS", "0")

# Property-based tests: `ci` (the default) is bounded for .ci/run on a busy 2-core machine;
# `long` searches much further: HYPOTHESIS_PROFILE=long uv run pytest tests/test_records_property.py
# Modules whose examples are expensive scale their own example counts by the profile's name.
settings.register_profile("ci", deadline=None, derandomize=False, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", settings.get_profile("ci"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _no_retry_sleep() -> Iterator[None]:
    """stamina's test mode: waits are skipped, the configured attempts still apply."""
    stamina.set_testing(True, attempts=1_000, cap=True)
    yield
    stamina.set_testing(False)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANALYTICS_API_KEY", "ANALYTICS_ORGANIZATION_ID", "ANALYTICS_BASE_URL",
                 "ANALYTICS_LAKE_URI", "ANALYTICS_CLIENT_ID", "ANALYTICS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipeline and table locks of one test never meet another test's."""
    monkeypatch.setenv("ANALYTICS_SYNC_LOCK_DIR", str(tmp_path / "locks"))


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    """A real Prefect API (a temporary local server) for the tests of one module."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# Threads our code starts; none may outlive the test that started it (a sliced walk's threads
# once kept retrying a stopped sandbox, and printed retry warnings after the suite had ended).
_OUR_THREADS = ("-slice-", "sandbox-uvicorn")


@pytest.fixture(autouse=True)
def _no_thread_outlives_its_test() -> Iterator[None]:
    import threading

    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate()
            if t not in before and t.is_alive() and any(n in t.name for n in _OUR_THREADS)]
    for thread in left:  # a thread at the very end of its work gets a moment, not a pass
        thread.join(5)
    left = [t.name for t in left if t.is_alive()]
    assert not left, f"threads outlived the test: {left}"

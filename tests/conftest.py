"""Shared fixtures: no real sleeping in retries, no secrets leaking in from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(autouse=True)
def _no_retry_sleep() -> Iterator[None]:
    """stamina's test mode: waits are skipped, the configured attempts still apply."""
    stamina.set_testing(True, attempts=1_000, cap=True)
    yield
    stamina.set_testing(False)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANALYTICS_API_KEY", "ANALYTICS_ORGANIZATION_ID", "ANALYTICS_BASE_URL",
                 "ANALYTICS_LAKE_URI"):
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

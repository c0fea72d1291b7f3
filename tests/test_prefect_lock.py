"""The cross-machine lock (analytics_client/orchestration/locks.py) against a real Prefect API.

Each ``resource_slots`` here stands for a flow run on another machine: they share nothing but
the Prefect server (the test harness's temporary one). What the server records is read back
with Prefect's client, not through our module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prefect.client.orchestration import get_client
from prefect.types.names import WITHOUT_BANNED_CHARACTERS

from analytics_client.core.errors import PipelineBusyError
from analytics_client.core.lock import pipeline_lock
from analytics_client.orchestration.locks import limit_name, resource_slots

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _api(harness: None) -> Iterator[None]:
    yield


def _slots(pipeline: str, resource: str) -> tuple[int, int]:
    """(active slots, limit) of the pair's limit as the server has it."""
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(pipeline, resource))
    return limit.active_slots, limit.limit


def _lease_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("analytics-sync-lease-")]


def test_a_second_holder_of_a_resource_is_refused_naming_it_and_others_go_on() -> None:
    """Limits are created with one slot; a second run of deals fails at once, naming the
    pipeline, the resource and its limit; users (another resource) is taken meanwhile."""
    with resource_slots("org-a", ["deals", "tags"], str(uuid.uuid4())):
        assert _slots("org-a", "deals") == (1, 1)
        assert _slots("org-a", "tags") == (1, 1)
        with pytest.raises(PipelineBusyError) as refused:
            with resource_slots("org-a", ["users", "deals"]):
                pytest.fail("a second holder of org-a/deals got in")
        message = str(refused.value)
        assert "pipeline 'org-a' resource 'deals' is already running" in message
        assert "'analytics-sync:org-a--deals'" in message and "this run did nothing" in message
        assert "'users'" not in message
        assert _slots("org-a", "users") == (0, 1)  # all or none: users was not kept
        with resource_slots("org-a", ["users"]), resource_slots("org-b", ["deals"]):
            assert _slots("org-a", "users") == (1, 1)
            assert _slots("org-b", "deals") == (1, 1)
    assert [_slots("org-a", r)[0] for r in ("deals", "tags", "users")] == [0, 0, 0]
    assert not _lease_threads()


def test_a_failing_block_gives_its_slots_back() -> None:
    with pytest.raises(RuntimeError, match="resource failed"):
        with resource_slots("org-c", ["pages"]):
            raise RuntimeError("resource failed")
    assert _slots("org-c", "pages") == (0, 1)
    with resource_slots("org-c", ["pages"]):  # the next run gets in
        assert _slots("org-c", "pages") == (1, 1)


def test_a_limit_set_to_zero_by_an_operator_is_refused_saying_what_to_do() -> None:
    with resource_slots("org-d", ["tasks"]):
        pass
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

        client.update_global_concurrency_limit(limit_name("org-d", "tasks"),
                                               GlobalConcurrencyLimitUpdate(limit=0))
    with pytest.raises(PipelineBusyError, match=r"prefect gcl update NAME --limit 1"):
        with resource_slots("org-d", ["tasks"]):
            pytest.fail("a limit of 0 let a run in")


def test_a_live_holder_is_never_taken_back() -> None:
    """A run of this machine that holds the slot and runs keeps it, even when the asker holds
    the file lock (here: the same process, as a flow inside its command line)."""
    with pipeline_lock("org-e", ["deals"]), resource_slots("org-e", ["deals"]):
        with pytest.raises(PipelineBusyError, match="resource 'deals' is already running"):
            with resource_slots("org-e", ["deals"]):
                pytest.fail("a live holder's slot was taken")
        assert _slots("org-e", "deals") == (1, 1)


def test_a_dead_holders_slot_is_taken_back_only_under_its_file_lock() -> None:
    """A holder killed with SIGKILL: a run without the resource's file lock is refused; with it,
    the run releases the dead holder's lease and gets in."""
    from prefect.settings import PREFECT_API_URL

    holder = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("lease_holder.py")), "hold", "org-f",
         "deals"], env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert holder.stdout is not None
        said = ""
        for line in holder.stdout:  # until it says it holds them, or ends (EOF)
            said += line
            if line.startswith("in after"):
                break
        assert "in after" in said, said
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(PipelineBusyError):
        with resource_slots("org-f", ["deals"]):
            pytest.fail("a slot was taken back without the file lock")
    assert _slots("org-f", "deals") == (1, 1)
    with pipeline_lock("org-f", ["deals"]), resource_slots("org-f", ["deals"]):
        assert _slots("org-f", "deals") == (1, 1)
    assert _slots("org-f", "deals") == (0, 1)


@given(pipeline=st.text(min_size=1, max_size=40), resource=st.text(min_size=1, max_size=40))
def test_every_pipeline_and_resource_name_makes_a_limit_name_prefect_accepts(
        pipeline: str, resource: str) -> None:
    """Prefect refuses limit names with / % & > < (prefect/types/names.py); ours never has one,
    and says which pipeline it is for when the pipeline's name is already a slug."""
    name = limit_name(pipeline, resource)
    assert re.fullmatch(WITHOUT_BANNED_CHARACTERS, name), name
    assert name.startswith("analytics-sync:")
    if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", pipeline):
        assert name.startswith(f"analytics-sync:{pipeline}--")

"""The sandbox's rich record profile: deterministic, and synced exactly like the default one."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics_client.state.marks import MemoryMarkStore
from analytics_sandbox import SandboxSettings, World, serve
from tests.support import assert_lake_equals_truth, sync

COUNTS = {"tags": 20, "users": 40, "deals": 300, "pages": 60, "tasks": 120}


def test_a_rich_world_is_the_same_for_the_same_seed_and_richer_than_the_default() -> None:
    one, two = World(3, counts=COUNTS, profile="rich"), World(3, counts=COUNTS, profile="rich")
    assert one.truth_bytes("deals") == two.truth_bytes("deals")
    plain = World(3, counts=COUNTS)
    rich_deal, plain_deal = one.truth("deals")[0], plain.truth("deals")[0]
    assert rich_deal["id"] == plain_deal["id"]  # the default stream of choices is untouched
    assert not any(k.startswith("x_") for k in plain_deal)
    assert {"x_score", "x_labels", "x_history", "x_address", "x_note"} <= set(rich_deal)
    scores = {type(r["x_score"]).__name__ for r in one.truth("deals")}
    assert len(scores) >= 4, scores  # one undocumented field, several types
    text = one.truth_bytes("deals").decode()
    assert any(ord(c) > 0xFFFF for c in text) and "東京" in text  # beyond the BMP, and CJK


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="profile"):
        World(1, counts=COUNTS, profile="lavish")


def test_a_rich_profile_sync_equals_the_truth_while_records_change(tmp_path: Path) -> None:
    """Nested custom_fields, varying types, long lists and unicode land exactly as served,
    judged by the independent decoder; updates change the extras' types between runs."""
    settings = SandboxSettings(mutate_every_n_requests=5, mutate_updates=3, mutate_creates=1,
                               late_visibility=False, fault_seed=2)
    with serve(World(seed=2, counts=COUNTS, profile="rich"), settings) as sandbox:
        marks = MemoryMarkStore()
        first = sync(sandbox, tmp_path, marks)
        assert all(s.status == "ok" for s in first.values()), {r: s.error for r, s in first.items()}
        assert not any(s.quarantined for s in first.values())
        sandbox.configure(mutate_every_n_requests=0)
        sync(sandbox, tmp_path, marks)
        assert_lake_equals_truth(sandbox, tmp_path)

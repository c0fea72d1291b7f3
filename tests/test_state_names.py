"""Pipelines and state blocks, one to one (issue 11, input 6): no run reads another's mark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client.core.errors import StateError
from analytics_client.lake.tables import Lake
from analytics_client.orchestration.marks import PrefectMarkStore
from analytics_client.state.marks import (
    JsonFileMarkStore,
    Mark,
    MarkStore,
    block_name,
    describe,
    legacy_block_name,
    reset,
)

names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)


@given(names, names)
def test_different_pipelines_get_different_blocks(one: str, other: str) -> None:
    """Two pipeline names that differ in any way (case, ``_``/``-``) never share a block."""
    if one != other:
        assert block_name(one, "deals") != block_name(other, "deals")
    assert all(c.isalnum() and c.islower() or c.isdigit() or c == "-"
               for c in block_name(one, "deals"))


@pytest.mark.parametrize(("pipeline", "name"), [("analytics", "analytics--deals"),
                                                ("sandbox", "sandbox--deals"),
                                                ("acme-prod-2", "acme-prod-2--deals")])
def test_names_already_fit_for_a_block_keep_their_block(pipeline: str, name: str) -> None:
    """Blocks written before this change by pipelines with simple names are found as before."""
    assert block_name(pipeline, "deals") == name


def check_two_pipelines(store: MarkStore) -> None:
    """``acme_prod`` and ``Acme-Prod``: each sees its own cursor; resetting one keeps the other."""
    store.save(Mark(pipeline="acme_prod", resource="deals", cursor="2026-01-01T00:00:00.000000Z"))
    store.save(Mark(pipeline="Acme-Prod", resource="deals", cursor="2026-02-02T00:00:00.000000Z"))
    first, second = store.load("acme_prod", "deals"), store.load("Acme-Prod", "deals")
    assert first is not None and first.cursor == "2026-01-01T00:00:00.000000Z"
    assert second is not None and second.cursor == "2026-02-02T00:00:00.000000Z"
    reset(store, "Acme-Prod", "deals")
    first = store.load("acme_prod", "deals")
    assert first is not None and first.cursor == "2026-01-01T00:00:00.000000Z"


def test_two_pipelines_whose_names_slug_alike_keep_their_own_marks(tmp_path: Path) -> None:
    check_two_pipelines(JsonFileMarkStore(tmp_path / "marks.json"))


def test_a_block_holding_another_pipelines_mark_is_refused(tmp_path: Path) -> None:
    """A block found under our name whose pipeline field is another's is never used."""
    path = tmp_path / "marks.json"
    foreign = Mark(pipeline="someone-else", resource="deals", cursor="2026-03-03T00:00:00.000000Z")
    path.write_text(json.dumps({block_name("analytics", "deals"): foreign.model_dump(mode="json")}))
    store = JsonFileMarkStore(path)
    with pytest.raises(StateError, match=r"deals: the state block 'analytics--deals' holds the "
                                         r"mark of pipeline 'someone-else'"):
        store.load("analytics", "deals")
    with pytest.raises(StateError):
        reset(store, "analytics", "deals")  # never overwrites the other pipeline's mark
    info = describe(Lake(str(tmp_path / "lake")), "analytics", "deals", store)
    assert str(info["next_run"]).startswith("refused: ")


def test_a_mark_under_the_old_name_is_still_read_when_it_is_ours(tmp_path: Path) -> None:
    """``acme_prod``'s mark saved as ``acme-prod--deals`` before this change is found once."""
    path = tmp_path / "marks.json"
    ours = Mark(pipeline="acme_prod", resource="deals", cursor="2026-01-01T00:00:00.000000Z")
    path.write_text(json.dumps({legacy_block_name("acme_prod", "deals"): ours.model_dump(mode="json")}))
    store = JsonFileMarkStore(path)
    assert store.load("acme_prod", "deals") == ours
    assert store.load("Acme-Prod", "deals") is None  # the old block is not Acme-Prod's


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
def test_prefect_blocks_one_per_pipeline(harness: None) -> None:
    """The same two pipelines on a real Prefect API: their own blocks, their own cursors."""
    store = PrefectMarkStore()
    check_two_pipelines(store)
    store.save(Mark(pipeline="intruder", resource="tags", cursor=None))
    from analytics_client.orchestration.blocks import SyncMark

    SyncMark(pipeline="intruder", resource="tags").save(block_name("analytics", "tags"),
                                                         overwrite=True)
    with pytest.raises(StateError, match="holds the mark of pipeline 'intruder'"):
        store.load("analytics", "tags")

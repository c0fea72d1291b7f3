"""The Prefect block type that holds high-water marks; imported only where Prefect is used.

Kept apart from ``state/marks.py`` so that the library (and every process that only syncs, checks
or benchmarks) does not pay for importing Prefect (~2 s here).
"""

from __future__ import annotations

import datetime as dt

from prefect.blocks.core import Block
from pydantic import Field

__all__ = ["SyncMark"]


class SyncMark(Block):
    """High-water mark of one resource of one analytics-sync pipeline.

    ``cursor`` is the value below which every record is committed to the Delta table; clear it
    to force a full read of the resource on the next run. Adding a field with a default keeps
    documents written by an earlier version loadable.
    """

    _block_type_name = "Analytics Sync Mark"
    _block_type_slug = "analytics-sync-mark"
    _description = (
        "High-water mark of one resource of an analytics-sync pipeline. Clear `cursor` to force "
        "a full read; moving it forward cannot skip data (the Delta table keeps its own mark)."
    )

    pipeline: str
    resource: str
    cursor: str | None = Field(default=None, description="ISO-8601 UTC; empty = full read next run")
    table_version: int | None = Field(default=None, description="Delta version that committed it")
    last_success_at: dt.datetime | None = None
    rows_fetched: int = 0
    inserted: int = 0
    updated: int = 0
    ahead: list[list[str]] = Field(
        default_factory=list,
        description="[from, to) ranges above the cursor a stopped run read in full (a copy: "
                    "the table's own are the ones the next run uses)")

"""High-water marks: how far each resource of a pipeline is known to be complete.

A mark lives in two places, and a run trusts the smaller:

* a Prefect block of our own type (``SyncMark``, orchestration/blocks.py; its stores are in
  orchestration/marks.py), one document per (pipeline, resource), visible and editable in the
  Prefect UI, with the cursor, the Delta version that committed it, and the last successful
  run's counts;
* the Delta table itself: each data commit carries the mark it covers as an app transaction
  (``analytics-sync:<pipeline>`` -> cursor in epoch µs), atomically with the rows, and beside
  it the API's clock when the complete read that reached it began
  (``analytics-sync:<pipeline>:api-clock``; 0 while a read is under way), which may prove the
  mark (``proves``; ``state/markpolicy.py``).

So a mark edited forward in the UI cannot skip data (the table's is lower), a table deleted,
restored or rebuilt is re-read (its mark is gone or lower), and a crash between the Delta
commit and the block save only means re-reading a little. ``state reset`` writes a block with
no cursor, which forces a full read; a missing block defers to the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from analytics_client.core.cursors import TIMESTAMP, CursorCodec
from analytics_client.core.errors import StateError
from analytics_client.lake.tablemark import Ranges
from analytics_client.lake.tables import Lake

__all__ = [
    "JsonFileMarkStore",
    "Mark",
    "MarkStore",
    "MemoryMarkStore",
    "DATE_MARGIN_US",
    "VISIBILITY_DELAY_US",
    "Start",
    "app_id",
    "block_name",
    "check_owner",
    "describe",
    "effective_start",
    "legacy_block_name",
    "load_named",
    "proves",
    "reset",
]

logger = logging.getLogger(__name__)


class Mark(BaseModel):
    """A resource's high-water mark as the stores keep it (the ``SyncMark`` block's fields).

    ``cursor`` is the value below which every record is committed to the Delta table; None
    forces a full read of the resource on the next run. ``ahead``: a copy of the ranges
    ``[from, to)`` above it that a stopped run read in full (the table's are the ones a resume
    uses: ``lake/tablemark.py``); empty after a complete run.
    """

    model_config = ConfigDict(validate_assignment=True)

    pipeline: str
    resource: str
    cursor: str | None = None
    table_version: int | None = None
    last_success_at: dt.datetime | None = None
    rows_fetched: int = 0
    inserted: int = 0
    updated: int = 0
    ahead: list[list[str]] = []


def app_id(pipeline: str) -> str:
    """The Delta app-transaction id under which a pipeline's marks are stored in its tables."""
    return f"analytics-sync:{pipeline}"


_SLUG_SAFE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def block_name(pipeline: str, resource: str) -> str:
    """The one block of a (pipeline, resource): ``<pipeline>--<resource>``.

    Block document names allow lowercase letters, digits and dashes only. A name that already
    is one (``analytics``, ``sandbox``, ``deals``) is kept as it is, so blocks written before
    stay found. Any other name is slugged and followed by 8 hex digits of a hash of the exact
    name: ``acme_prod`` and ``Acme-Prod`` slug alike but get blocks of their own. A name picked
    to equal another's hashed form, or a hash collision, is caught when the block is loaded:
    its ``pipeline`` field differs, and the load is refused (``check_owner``).
    """
    return f"{_name_part(pipeline)}--{_name_part(resource)}"


def legacy_block_name(pipeline: str, resource: str) -> str:
    """The name before pipelines had a block each: the slugs alone (``acme-prod--deals``)."""
    return f"{_slug(pipeline)}--{_slug(resource)}"


def _name_part(name: str) -> str:
    if _SLUG_SAFE.fullmatch(name):
        return name
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{_slug(name)}-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def check_owner(mark: Mark, pipeline: str, resource: str, name: str) -> Mark:
    """A block holding another pipeline's (or resource's) mark is refused, never used."""
    if mark.pipeline != pipeline or mark.resource != resource:
        raise StateError(
            resource,
            f"the state block {name!r} holds the mark of pipeline {mark.pipeline!r}, resource "
            f"{mark.resource!r}, not of pipeline {pipeline!r}: two pipeline names share one "
            "block. Nothing was read or written; rename one of the pipelines (--pipeline), or "
            "delete the block if it is stale",
        )
    return mark


def load_named(read: Callable[[str], Mark | None], pipeline: str, resource: str) -> Mark | None:
    """The block under its name; else, once, a block under the legacy name that is ours."""
    name = block_name(pipeline, resource)
    mark = read(name)
    if mark is not None:
        return check_owner(mark, pipeline, resource, name)
    legacy = legacy_block_name(pipeline, resource)
    if legacy == name:
        return None
    old = read(legacy)
    if old is None or old.pipeline != pipeline or old.resource != resource:
        return None  # another pipeline's, or none: the table's mark decides
    logger.info("%s: read the mark from the block %r (the name before %r)", resource, legacy,
                name)
    return old


class MarkStore(Protocol):
    def load(self, pipeline: str, resource: str) -> Mark | None: ...

    def save(self, mark: Mark) -> None: ...


class MemoryMarkStore:
    """Marks kept in memory: for the library without Prefect, and for tests."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], Mark] = {}

    def load(self, pipeline: str, resource: str) -> Mark | None:
        mark = self.marks.get((pipeline, resource))
        return mark.model_copy() if mark else None

    def save(self, mark: Mark) -> None:
        self.marks[(mark.pipeline, mark.resource)] = mark.model_copy()


class JsonFileMarkStore:
    """Marks in a local JSON file, for the library used without a Prefect API.

    Each save rewrites the file atomically (write, fsync, rename): a crash leaves the old
    marks or the new ones, never half a file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._guard = threading.Lock()

    def load(self, pipeline: str, resource: str) -> Mark | None:
        marks = self._read()

        def read(name: str) -> Mark | None:
            data = marks.get(name)
            return Mark.model_validate(data) if data is not None else None

        return load_named(read, pipeline, resource)

    def save(self, mark: Mark) -> None:
        with self._guard:
            marks = self._read()
            marks[block_name(mark.pipeline, mark.resource)] = mark.model_dump(mode="json")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(marks, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)

    def _read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
            return data
        except FileNotFoundError:
            return {}


@dataclass(frozen=True)
class Start:
    """Where a resource's read begins, and why.

    ``proven``: the API's clock showed that every record version with a cursor at or below
    ``mark_us`` that will ever exist is in the table (``proves``), so the read starts strictly
    after the mark; otherwise ``lag`` seconds before it (``read/plan.py``: ``Cursor.read_from``).
    ``ahead``: ranges ``[from, to)`` above the mark that a stopped read had read in full and
    committed (``lake/tablemark.py``), which a resume need not read again (``read/resume.py``).
    """

    mark_us: int | None  # None: full read; in the cursor's units (epoch µs, or the integer)
    reason: str
    proven: bool = False
    ahead: Ranges = ()


# The contract: a change becomes visible at most 5 s after the updated_at it carries.
VISIBILITY_DELAY_US = 5_000_000
# A Date is whole seconds, and the page it dates was read from the API's store a moment before.
DATE_MARGIN_US = 1_000_000


def proves(mark_us: int, clock_us: int | None) -> bool:
    """Whether a complete read that reached ``mark_us`` and whose first answer carried the
    API's clock ``clock_us`` (epoch µs; None or 0: unknown) proves the mark: it began at least
    the visibility delay (and the ``Date``'s margin) after it. ``state/markpolicy.py`` gives
    the argument."""
    if not clock_us:
        return False
    return clock_us >= mark_us + VISIBILITY_DELAY_US + DATE_MARGIN_US


def effective_start(
    lake: Lake, resource: str, pipeline: str, block: Mark | None,
    initial_value: str | int | None, codec: CursorCodec = TIMESTAMP,
) -> Start:
    """The smaller of the block's and the table's mark; no table means a full read.

    The start is proven when the table's mark is (its clock proves it): everything at or
    below the table's mark is in the table, so at or below the smaller one too. Marks are in
    the cursor's units (``codec``: epoch µs or the integer); only an instant can be proven.
    """
    fmt = codec.format
    if lake.version(resource) is None:
        why = "no table yet" if block is None or block.cursor is None else (
            f"the table is missing although the state says {block.cursor}: re-reading everything")
        return _initial(initial_value, why, codec)
    recorded = lake.recorded(resource, app_id(pipeline))
    if block is not None and block.cursor is None:
        return _initial(initial_value, "the mark was reset: full read", codec)
    if recorded is None:
        return _initial(initial_value, "the table records no mark for this pipeline: full read",
                        codec)
    table_mark = recorded.cursor_us
    proven = codec.clocked and proves(table_mark, recorded.clock_us)
    if block is None:
        return _resumed(_proven(Start(table_mark, "no state block; resuming from the table's "
                                      f"mark {fmt(table_mark)}"), proven, recorded.clock_us),
                        recorded.ahead)
    block_mark = _block_mark(block, codec, resource)
    if block_mark > table_mark:
        return _resumed(_proven(Start(table_mark, f"the state says {block.cursor} but the table "
                                      f"is complete only to {fmt(table_mark)} (restored, "
                                      "rebuilt or edited?): resuming from the table's"),
                                proven, recorded.clock_us), recorded.ahead)
    reason = f"resuming from {fmt(block_mark)}"
    if block_mark < table_mark:
        reason += f" (the table is ahead at {fmt(table_mark)}: a save was interrupted)"
    return _resumed(_proven(Start(block_mark, reason), proven, recorded.clock_us),
                    recorded.ahead)


def _block_mark(block: Mark, codec: CursorCodec, resource: str) -> int:
    """The block's cursor as a mark; a cursor of another kind (the config's cursor changed
    kind since it was saved) is refused by name."""
    try:
        return codec.read(block.cursor)
    except ValueError as exc:
        raise StateError(resource, f"the state block's cursor {block.cursor!r} is not a "
                         f"{codec.kind} cursor ({exc}), as the config now declares it: the "
                         f"cursor's kind changed. Run `state reset {resource}` (the next run "
                         "reads everything), or declare the cursor as before") from None


def _proven(start: Start, proven: bool, clock_us: int | None) -> Start:
    if not proven or clock_us is None:
        return start
    return Start(start.mark_us, f"{start.reason}, strictly after it: the API's clock read "
                 f"{TIMESTAMP.format(clock_us)} when the read that reached it began, past the "
                 "contract's visibility delay", proven=True)


def _resumed(start: Start, ahead: Ranges | None) -> Start:
    """``start`` with the ranges above it that a stopped read committed (the table's; they
    hold whatever mark the read starts from: below them every record was read too)."""
    kept = tuple(r for r in ahead or () if start.mark_us is None or r[0] > start.mark_us)
    if not kept:
        return start
    return replace(start, ahead=kept, reason=(
        f"{start.reason}; {len(kept)} range(s) above it were read in full by a run that "
        "stopped, and are not read again"))


def _initial(initial_value: str | int | None, why: str, codec: CursorCodec) -> Start:
    if initial_value is None:
        return Start(None, why)
    return Start(codec.read(initial_value), f"{why}; from initial_value {initial_value}")


def describe(lake: Lake, pipeline: str, resource: str, store: MarkStore,
             initial_value: str | int | None = None,
             codec: CursorCodec = TIMESTAMP) -> dict[str, object]:
    """Everything a person needs to judge a resource's mark: block, table, and the verdict."""
    try:
        block = store.load(pipeline, resource)
    except StateError as exc:
        return {"resource": resource, "block": block_name(pipeline, resource),
                "block_cursor": None, "table_version": lake.version(resource),
                "table_cursor": None, "last_success_at": None, "next_run": f"refused: {exc}"}
    table_mark = lake.mark(resource, app_id(pipeline))
    try:
        verdict = effective_start(lake, resource, pipeline, block, initial_value, codec).reason
    except StateError as exc:
        verdict = f"refused: {exc}"
    return {
        "resource": resource,
        "block": block_name(pipeline, resource) if block is not None else None,
        "block_cursor": block.cursor if block is not None else None,
        "table_version": lake.version(resource),
        "table_cursor": codec.format(table_mark) if table_mark is not None else None,
        "last_success_at": block.last_success_at.isoformat(timespec="seconds")
        if block is not None and block.last_success_at else None,
        "next_run": verdict,
    }


def reset(store: MarkStore, pipeline: str, resource: str) -> None:
    """Clear a resource's cursor so the next run reads everything (and merges it)."""
    previous = store.load(pipeline, resource)
    fields = previous.model_dump(exclude={"cursor", "pipeline", "resource", "ahead"}) \
        if previous else {}
    store.save(Mark(pipeline=pipeline, resource=resource, cursor=None, **fields))

"""Delta Lake tables, one per resource: merge, append or replace typed batches."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from analytics_client.config.model import (
    DEFAULT_CURSOR_PATH,
    DEFAULT_MAX_DELETE_SHARE,
)
from analytics_client.config.schemas import ColumnHint
from analytics_client.core.errors import DeleteGuardError, LakeError
from analytics_client.core.lock import table_write_lock
from analytics_client.core.summary import WriteResult
from analytics_client.lake.frames import (
    DELETED_AT,
    ROW_HASH,
    SYNCED_AT,
    Rejected,
    deduplicate,
    typed_batch,
)
from analytics_client.lake.lakes import (
    QUARANTINE,
    STAGING,
    Lake,
    TableMark,
    clock_app_id,
    lake_errors,
)
from analytics_client.lake.merging import merge_frame, quoted
from analytics_client.lake.staging import Stage, stage_parent
from analytics_client.lake.versions import new_versions

# Lake, TableMark, clock_app_id, QUARANTINE: lakes.py, re-exported for their importers.
__all__ = ["DELETE_MODES", "DISPOSITIONS", "QUARANTINE", "Lake", "Landed", "TableMark",
           "TableSpec", "TableWriter", "clock_app_id", "lake_errors"]

log = logging.getLogger(__name__)

Schema = dict[str, pl.DataType]
# Where a writer hands the records it set aside; it commits them before the data commit and
# returns how many it had not been handed before.
SetAside = Callable[[str, list[Rejected]], int]
# Who hears, after a merge's commit, of the rows its batch brought (changed or not; typed as
# the table holds them) and of the records the same batch set aside: the quarantine drops the
# records those rows supersede (quarantine.py).
Landed = Callable[["TableWriter", pl.DataFrame, list[Rejected]], None]

_COMMIT_ATTEMPTS = 3


def _conflict(exc: LakeError) -> bool:
    """Whether a refused commit lost a race with another writer (so writing again may work),
    not a table delta-rs cannot write ("Unsupported table features required": preflight.py)."""
    cause = exc.__cause__
    return isinstance(cause, CommitFailedError) and "Unsupported table features" not in str(cause)

DISPOSITIONS = ("merge", "append", "replace")
# What becomes of a row whose record the API no longer has (lake/deletes.py): marked with
# ``_deleted_at`` (soft), removed (hard), or left as it is (off: append tables, and opt-out).
DELETE_MODES = ("soft", "hard", "off")
DeleteMode = Literal["soft", "hard", "off"]
# Tables we create write Delta's Change Data Feed: a downstream job reads each run's inserts,
# updates and deletes (``DeltaTable.load_cdf``). docs/deletes.md says how to turn it on for a
# table made before.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BOOKKEEPING: Schema = {SYNCED_AT: pl.Datetime("us", "UTC"), ROW_HASH: pl.String(),
                        DELETED_AT: pl.Datetime("us", "UTC")}


def _schema_of(table: DeltaTable) -> Schema:
    return dict(pl.scan_delta(table).collect_schema())


def _conform(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Give the frame every column of ``schema`` (absent ones as typed nulls), in its order."""
    missing = [
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in schema.items()
        if name not in frame.columns
    ]
    extra = [c for c in frame.columns if c not in schema]
    return frame.with_columns(missing).select([*schema, *extra])


@dataclass(frozen=True)
class TableSpec:
    """A resource's table as its plan says (``read/plan.py``): dlt's ``write_disposition``,
    ``primary_key`` (plus ``parent_key`` columns for a child), the cursor column that orders
    versions (None: an upsert on the key), dlt's column hints, and whether records that break
    them are set aside in the quarantine (else they fail the batch).

    Deletes (docs/deletes.md): ``delete_missing`` says what a row whose record the API no
    longer has becomes; ``max_delete_share`` (0-1] is the share of live rows one read may
    delete; ``hard_delete`` is dlt's column hint of that name (a tombstone column: a record
    arriving with it true, or not null, deletes its row).

    ``cursor_nullable``: a record without its cursor lands, keyed, with a null cursor (dlt's
    ``on_cursor_value_missing: include``); else it is a bad record."""

    name: str
    write_disposition: str
    primary_key: str
    cursor_field: str | None
    columns: Mapping[str, ColumnHint]
    quarantine: bool
    parent_key: tuple[str, ...]
    delete_missing: DeleteMode
    max_delete_share: float
    hard_delete: str | None
    cursor_nullable: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        """Every key column of a row: the primary key, then a child's parent key."""
        return (self.primary_key, *self.parent_key)


class TableWriter:
    """Writes one resource's batches of one run to its table.

    merge:   upsert on the primary key; an older or identical row never replaces a newer one.
    append:  add each batch's new versions: a (key, cursor) already in the batch or the table is
             not added again (``_new_versions``); without a cursor, every row.
    replace: stage the run's batches, then swap them in with one commit in ``finish()``.
    """

    def __init__(
        self,
        lake: Lake,
        resource: str,
        *,
        write_disposition: str = "merge",
        primary_key: str = "id",
        cursor_field: str | None = DEFAULT_CURSOR_PATH,
        synced_at: datetime | None = None,
        columns: Mapping[str, ColumnHint] | None = None,
        set_aside: SetAside | None = None,
        parent_key: Sequence[str] = (),
        delete_missing: DeleteMode = "off",
        max_delete_share: float = DEFAULT_MAX_DELETE_SHARE,
        hard_delete: str | None = None,
        landed: Landed | None = None,
        cursor_nullable: bool = False,
    ) -> None:
        """``parent_key``: more key columns after ``primary_key`` (a child table is keyed on
        its own key and its parent's: children.py). ``columns``: the resource's type hints.
        ``set_aside`` takes the records that cannot be typed (committing them before the
        batch's data); without it such a record fails the write with its ``ContractError``
        and nothing of the batch is written. ``hard_delete``: a tombstone column (dlt's hint);
        a record with it set deletes (hard) or marks (soft) its row in the batch's commit.
        ``delete_missing`` and ``max_delete_share``: what a replace does with the rows its
        read did not see (kept marked ``_deleted_at``, or dropped), and how many it may; the
        writer alone captures no deletes ("off") unless its caller, the run, asks. ``landed``
        hears of each merged batch's committed rows. ``cursor_nullable``: as ``TableSpec``."""
        self.lake = lake
        self.resource = resource
        self.uri = lake.table_uri(resource)
        if write_disposition not in DISPOSITIONS:
            raise LakeError(
                resource, f"write_disposition {write_disposition!r} is not one of {DISPOSITIONS}"
            )
        for role, column in (("primary_key", primary_key), ("cursor_field", cursor_field),
                             *(("parent_key", c) for c in parent_key)):
            if column is not None and not _COLUMN_NAME.fullmatch(column):
                raise LakeError(
                    resource,
                    f"{role} {column!r} must be a plain column name ([A-Za-z_][A-Za-z0-9_]*)",
                )
        self.write_disposition = write_disposition
        self.primary_key = primary_key
        self.parent_key = tuple(parent_key)
        self.cursor_field = cursor_field
        self.columns = dict(columns or {})
        self.set_aside = set_aside
        self.landed = landed
        self._rejected: list[Rejected] = []  # what the batch being written set aside
        if delete_missing not in DELETE_MODES:
            raise LakeError(resource, f"delete_missing {delete_missing!r} is not one of "
                            f"{DELETE_MODES}")
        self.delete_missing = delete_missing
        self.max_delete_share = max_delete_share
        self.hard_delete = hard_delete
        self.cursor_nullable = cursor_nullable
        self._quarantined = 0
        # One stamp per run: every row this writer writes says when the run started.
        self.synced_at = synced_at or datetime.now(UTC)
        self._staging_uri = lake.staging_uri(resource) if write_disposition == "replace" else None
        self._staged = False
        self._commit_metadata: dict[str, str] | None = None
        self._mark: TableMark | None = None
        # A merge table's batches of a run, staged until ``flush`` (staging.py).
        self._stage = Stage(stage_parent(lake.uri, lake.is_local, resource, STAGING)) \
            if write_disposition == "merge" else None
        self._stage_schema: Schema | None = None  # the table's, when staging began

    @property
    def key(self) -> tuple[str, ...]:
        """Every key column of a row: the primary key, then a child's parent key."""
        return (self.primary_key, *self.parent_key)

    def write(
        self,
        records: list[object],
        *,
        commit_metadata: dict[str, str] | None = None,
        mark: TableMark | None = None,
    ) -> WriteResult:
        """Write one batch; for replace it is only staged, and ``version`` is None.

        ``mark`` is recorded in the same commit as the data (a Delta app transaction), so the
        table itself says how far it is complete, whatever happens to the state store.
        """
        self._mark = mark
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                with table_write_lock(self.uri):
                    self._quarantined = 0
                    result = self._write(records, commit_metadata)
                return WriteResult(result.inserted, result.updated, result.version,
                                   self._quarantined, result.deleted)
            except LakeError as exc:
                # A concurrent writer committed first: our commit was refused whole, so the
                # batch can simply be written again against the new table version.
                if not _conflict(exc) or attempt == _COMMIT_ATTEMPTS:
                    raise
                log.warning("%s: commit conflict with another writer, retrying (%d)",
                            self.resource, attempt)
        raise AssertionError("unreachable")

    def _write(self, records: list[object], commit_metadata: dict[str, str] | None) -> WriteResult:
        if not records:
            return WriteResult(inserted=0, updated=0, version=None)
        if self.write_disposition == "append":
            return self._append(records, commit_metadata)
        if self.write_disposition == "merge":
            return self._merge(self.uri, records, commit_metadata, check_table=True)
        assert self._staging_uri is not None
        self._commit_metadata = commit_metadata
        if not self._staged:
            # Whatever an earlier failed run left in staging is discarded here.
            result = self._create(self._staging_uri, records, None, mode="overwrite")
            self._staged = result.version is not None
        else:
            result = self._merge(self._staging_uri, records, None, check_table=False)
        return WriteResult(inserted=result.inserted, updated=result.updated, version=None)

    # ---- staged merges: one table rewrite per run (issue 24) -----------------------------

    @property
    def stages(self) -> bool:
        """Whether batches go through ``stage`` and ``flush`` (a merge table) rather than
        ``write``, each its own commit (append, replace)."""
        return self._stage is not None

    @property
    def staged_rows(self) -> int:
        """Rows staged and not yet merged (0 for append and replace)."""
        return self._stage.rows if self._stage is not None else 0

    @property
    def staged_bytes(self) -> int:
        """Their in-memory size (polars' estimate, bytes): what ``flush`` will read back."""
        return self._stage.bytes if self._stage is not None else 0

    def stage(self, records: list[object]) -> WriteResult:
        """Type a batch and stage it for the next ``flush`` (a merge table; the others write
        it at once, as ``write``). Records that cannot be typed are set aside now, as
        ``write`` does. Nothing reaches the table: ``version`` is None.

        Raises ``LakeError`` if the table's declared columns disagree (before staging).
        """
        if self._stage is None:
            raise ValueError(f"{self.resource}: a {self.write_disposition} table does not stage "
                             "its batches: use write()")
        if not records:
            return WriteResult(inserted=0, updated=0, version=None)
        with lake_errors(self.resource, f"staging a batch of {self.uri}"):
            if self._stage_schema is None:
                table = self.lake._open(self.resource, self.uri)
                self._stage_schema = {} if table is None else _schema_of(table)
                self._check_declared(self.uri, self._stage_schema)
            self._quarantined = 0
            # Typed against the table's and the earlier parts' columns: one type per column.
            frame = self._frame(records, {**self._stage_schema, **self._stage.schema},
                                dedupe=True)
            self._stage.append(frame, self._rejected)
        return WriteResult(0, 0, None, self._quarantined)

    def flush(
        self,
        *,
        commit_metadata: dict[str, str] | None = None,
        mark: TableMark | None = None,
    ) -> WriteResult:
        """Land what ``stage`` staged in one commit carrying ``mark``: the newest version of
        each key (``deduplicate``), appended when none of its keys is in the table (a first
        load: no scan, no rewrite), else merged (merging.py). The staged parts are removed
        once committed; on failure they stay for a retry of ``flush`` (or go with ``close``).
        Nothing staged: no commit, ``version`` None (the mark is not recorded either).
        """
        stage = self._stage
        if stage is None or stage.empty:
            if stage is not None:
                stage.clear()  # only set-aside records: they are in the quarantine
            return WriteResult(inserted=0, updated=0, version=None)
        self._mark = mark
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                with table_write_lock(self.uri):
                    result = self._flush(stage, commit_metadata)
                break
            except LakeError as exc:
                # As in ``write``: a conflicting commit was refused whole; merge again.
                if not _conflict(exc) or attempt == _COMMIT_ATTEMPTS:
                    raise
                log.warning("%s: commit conflict with another writer, retrying (%d)",
                            self.resource, attempt)
        stage.clear()
        self._stage_schema = None
        return result

    def close(self) -> None:
        """Remove what is staged and not merged (after a failure: the mark did not move, so
        the next run reads it again)."""
        if self._stage is not None:
            self._stage.close()
        self._stage_schema = None

    def _flush(self, stage: Stage, metadata: dict[str, str] | None) -> WriteResult:
        with lake_errors(self.resource, f"reading the {stage.rows} rows staged for {self.uri}"):
            frame = deduplicate(stage.frame(), primary_key=self.primary_key,
                                cursor_field=self.cursor_field, also=self.parent_key)
        self._rejected = stage.rejected
        table = self.lake._open(self.resource, self.uri)
        if table is None:
            created = self._create_frame(self.uri, frame, metadata, mode="error")
            if created is not None:
                return created
            table = self.lake._open(self.resource, self.uri)  # another writer's, just made
            assert table is not None
        with lake_errors(self.resource, f"reading the schema of {self.uri}"):
            schema = _schema_of(table)
        self._check_declared(self.uri, schema)
        if self._holds_any(table, frame):
            return self._merge_frame(table, self.uri, frame, schema, metadata, check_table=True)
        schema = self._evolved(table, self.uri, frame, schema)
        frame = self._insertable(_conform(frame, schema))
        if frame.is_empty():
            return WriteResult(inserted=0, updated=0, version=None)
        result = self._append_frame(table, frame, metadata)
        self._landed(frame)
        return WriteResult(result.inserted, 0, result.version, deleted=self._soft_deleted(frame))

    def _holds_any(self, table: DeltaTable, frame: pl.DataFrame) -> bool:
        """Whether the table has a row with any of the frame's primary keys (its key column
        alone is read, files outside the keys' range skipped)."""
        keys = frame.get_column(self.primary_key)
        with lake_errors(self.resource, f"reading the keys of {self.uri}"):
            scan = pl.scan_delta(table)
            if self.primary_key not in scan.collect_schema():
                return True  # not our table's keys: let the merge decide
            column = pl.col(self.primary_key)
            low, high = pl.lit(keys.min(), keys.dtype), pl.lit(keys.max(), keys.dtype)
            within = column.is_between(low, high) & column.is_in(keys.implode())
            found = scan.select(column).filter(within).head(1).collect()
        return not found.is_empty()

    def finish(self, *, commit_metadata: dict[str, str] | None = None) -> WriteResult:
        """For replace, swap the staged rows in with one commit; a no-op for merge and append.

        ``commit_metadata`` defaults to the last ``write()``'s. Nothing staged: the table is
        left as it was and ``version`` is None.
        """
        if self.write_disposition != "replace" or not self._staged:
            return WriteResult(inserted=0, updated=0, version=None)
        assert self._staging_uri is not None
        metadata = commit_metadata if commit_metadata is not None else self._commit_metadata
        with lake_errors(self.resource, f"replacing {self.uri} with {self._staging_uri}"):
            staged = pl.read_delta(self._staging_uri, storage_options=self.lake.storage_options)
            inserted = staged.height
            staged, deleted = self._missing_from(staged)
            self.lake._prepare(self.uri)
            existed = self.lake._open(self.resource, self.uri) is not None
            write_deltalake(
                self.uri,
                staged,
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=self.lake.storage_options,
                commit_properties=_commit(metadata, self._mark),
                configuration=None if existed else CHANGE_FEED,
            )
            table = self.lake._open(self.resource, self.uri)
            assert table is not None
            version = table.version()
        self.lake._remove(self._staging_uri)
        self._staged = False
        log.info("%s: replaced with %d rows, version %d", self.resource, staged.height, version)
        return WriteResult(inserted=inserted, updated=0, version=version, deleted=deleted)

    def _missing_from(self, staged: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """A replace read everything: the table's live rows it did not see are the API's
        deletes. Soft keeps them, marked (``_deleted_at``, the earliest instant we knew);
        hard and off drop them, as a replace always did. Guarded by ``max_delete_share``.

        Returns the rows to write and how many rows this replace deleted or marked.
        """
        old = self.lake._open(self.resource, self.uri)
        if old is None or self.delete_missing == "off":
            return staged, 0
        before = pl.read_delta(self.uri, storage_options=self.lake.storage_options)
        if any(k not in before.columns for k in (self.primary_key, *self.parent_key)):
            return staged, 0  # not our table's keys: nothing to compare
        key = [self.primary_key, *self.parent_key]
        seen = staged.select(key).cast(before.select(key).schema, strict=False)
        gone = before.join(seen, on=key, how="anti")
        live = before if DELETED_AT not in before.columns \
            else before.filter(pl.col(DELETED_AT).is_null())
        newly = gone.height if DELETED_AT not in gone.columns \
            else gone.filter(pl.col(DELETED_AT).is_null()).height
        if newly > self.max_delete_share * live.height:
            raise DeleteGuardError(self.resource, missing=newly, live=live.height,
                                   max_share=self.max_delete_share)
        if self.delete_missing == "hard" or gone.is_empty():
            return staged, newly
        now = pl.lit(datetime.now(UTC)).cast(_BOOKKEEPING[DELETED_AT])
        gone = gone.with_columns(
            pl.col(DELETED_AT).fill_null(now) if DELETED_AT in gone.columns
            else now.alias(DELETED_AT))
        return pl.concat([staged, gone], how="diagonal_relaxed"), newly

    # ---- internals ---------------------------------------------------------------------------

    def _frame(self, records: list[object], schema: Schema, *, dedupe: bool) -> pl.DataFrame:
        batch = typed_batch(
            self.resource,
            records,
            columns=self.columns,
            primary_key=self.primary_key,
            cursor_field=self.cursor_field,
            cursor_nullable=self.cursor_nullable,
            table_schema=schema,
            synced_at=self.synced_at, key_also=self.parent_key,
        )
        self._rejected = batch.rejected
        if batch.rejected:
            if self.set_aside is None:
                raise batch.rejected[0].error
            # Before the data commit: a mark recorded with the data covers these too.
            self._quarantined = self.set_aside(self.resource, batch.rejected)
        frame = batch.frame if not dedupe else deduplicate(
            batch.frame, primary_key=self.primary_key, cursor_field=self.cursor_field,
            also=self.parent_key)
        # Live unless the record is a tombstone (soft: it lands marked, the instant it came).
        deleted = pl.lit(None, dtype=_BOOKKEEPING[DELETED_AT])
        tombstone = self._tombstone(frame)
        if tombstone is not None and self.delete_missing == "soft":
            deleted = pl.when(tombstone).then(pl.lit(datetime.now(UTC))).otherwise(deleted)
        return frame.with_columns(deleted.cast(_BOOKKEEPING[DELETED_AT]).alias(DELETED_AT))

    def _landed(self, frame: pl.DataFrame) -> None:
        """Tell ``landed`` of a committed batch: even rows the merge left as they were are
        versions the API served now (docs/data-model.md, Quarantine)."""
        if self.landed is not None:
            self.landed(self, frame, self._rejected)

    def _tombstone(self, frame: pl.DataFrame) -> pl.Expr | None:
        """Which rows of ``frame`` are tombstones (dlt's ``hard_delete`` hint): the column is
        true when boolean, else not null. None without the hint or the column."""
        column = self.hard_delete
        if column is None or column not in frame.columns:
            return None
        if frame.schema[column] == pl.Boolean():
            return pl.col(column).fill_null(False)
        return pl.col(column).is_not_null()

    def _tombstone_sql(self, frame: pl.DataFrame) -> str | None:
        """``_tombstone`` as a merge predicate on the source ``s``."""
        column = self.hard_delete
        if column is None or column not in frame.columns:
            return None
        if frame.schema[column] == pl.Boolean():
            return f"coalesce(s.{quoted(column)}, false)"
        return f"s.{quoted(column)} IS NOT NULL"

    def _check_declared(self, uri: str, schema: Schema) -> None:
        declared = {**{n: h.dtype for n, h in self.columns.items()}, **_BOOKKEEPING}
        for column, dtype in declared.items():
            if column in schema and schema[column] != dtype:
                raise LakeError(
                    self.resource,
                    f"the Delta table at {uri} has column {column!r} of type {schema[column]}, "
                    f"but this pipeline writes it as {dtype}; nothing was written. It was made "
                    "by something else or an older version: rename or delete the table, or run "
                    "a full refresh (write_disposition='replace') to rewrite it",
                )
        cursor = schema.get(self.cursor_field) \
            if self.cursor_field is not None and self.cursor_field not in self.columns else None
        if cursor is not None and cursor not in (pl.Datetime("us", "UTC"), pl.Int64()):
            raise LakeError(
                self.resource,
                f"the Delta table at {uri} stores the cursor {self.cursor_field!r} as {cursor}; "
                "this pipeline compares cursors as instants or integers (an older version "
                "compared them as text). Nothing was written: delete the table (the next run "
                "reads the resource in full) or run once with write_disposition: replace",
            )

    def _create(
        self,
        uri: str,
        records: list[object],
        metadata: dict[str, str] | None,
        *,
        mode: Literal["error", "overwrite"],
    ) -> WriteResult:
        dedupe = self.write_disposition != "append"
        frame = self._frame(records, {}, dedupe=dedupe)
        if not dedupe and uri == self.uri:
            frame = self._new_versions(frame, None)
        created = self._create_frame(uri, frame, metadata, mode=mode)
        if created is not None:
            return created
        # Another writer created the table between our check and our write: write into
        # theirs as if it had been there all along.
        if self.write_disposition == "append":
            return self._append(records, metadata)
        return self._merge(uri, records, metadata, check_table=uri == self.uri)

    def _create_frame(self, uri: str, frame: pl.DataFrame, metadata: dict[str, str] | None,
                      *, mode: Literal["error", "overwrite"]) -> WriteResult | None:
        """Write the table at ``uri`` from ``frame``; None if another writer made it first."""
        frame = self._insertable(frame) if uri == self.uri else frame
        if frame.is_empty():  # every record was set aside: no table of nothing
            return WriteResult(inserted=0, updated=0, version=None)
        with lake_errors(self.resource, f"creating {uri}"):
            self.lake._prepare(uri)
            try:
                write_deltalake(
                    uri,
                    frame,
                    mode=mode,
                    schema_mode="overwrite" if mode == "overwrite" else None,
                    storage_options=self.lake.storage_options,
                    commit_properties=_commit(metadata, self._mark),
                    configuration=CHANGE_FEED if uri == self.uri else None,
                )
            except DeltaError as exc:
                if mode == "error" and "already exists" in str(exc):
                    return None
                raise
            table = self.lake._open(self.resource, uri)
            assert table is not None
        if uri == self.uri and self.write_disposition == "merge":
            self._landed(frame)
        return WriteResult(inserted=frame.height, updated=0, version=table.version(),
                           deleted=self._soft_deleted(frame))

    def _append(self, records: list[object], metadata: dict[str, str] | None) -> WriteResult:
        table = self.lake._open(self.resource, self.uri)
        if table is None:
            return self._create(self.uri, records, metadata, mode="error")
        with lake_errors(self.resource, f"reading the schema of {self.uri}"):
            schema = _schema_of(table)
        self._check_declared(self.uri, schema)
        frame = _conform(self._frame(records, schema, dedupe=False), schema)
        frame = self._new_versions(frame, table)
        if frame.is_empty():  # every record was set aside, or every version is in the table
            return WriteResult(inserted=0, updated=0, version=None)
        return self._append_frame(table, frame, metadata)

    def _new_versions(self, frame: pl.DataFrame, table: DeltaTable | None) -> pl.DataFrame:
        """The append batch's rows whose version is new (versions.py)."""
        return new_versions(frame, table, resource=self.resource, uri=self.uri,
                            key=list(self.key), primary_key=self.primary_key,
                            cursor=self.cursor_field)

    def _append_frame(self, table: DeltaTable, frame: pl.DataFrame,
                      metadata: dict[str, str] | None) -> WriteResult:
        with lake_errors(self.resource, f"appending to {self.uri}"):
            # No struct columns here, so adding columns within the append is safe and atomic.
            write_deltalake(
                table,
                frame,
                mode="append",
                schema_mode="merge",
                commit_properties=_commit(metadata, self._mark),
            )
            table.update_incremental()
        return WriteResult(inserted=frame.height, updated=0, version=table.version())

    def _merge(
        self,
        uri: str,
        records: list[object],
        metadata: dict[str, str] | None,
        *,
        check_table: bool,
    ) -> WriteResult:
        table = self.lake._open(self.resource, uri)
        if table is None:
            return self._create(uri, records, metadata, mode="error")
        with lake_errors(self.resource, f"reading the schema of {uri}"):
            schema = _schema_of(table)
        if check_table:
            self._check_declared(uri, schema)
        frame = self._frame(records, schema, dedupe=True)
        if frame.is_empty():  # every record was set aside
            return WriteResult(inserted=0, updated=0, version=None)
        return self._merge_frame(table, uri, frame, schema, metadata, check_table=check_table)

    def _evolved(self, table: DeltaTable, uri: str, frame: pl.DataFrame,
                 schema: Schema) -> Schema:
        """The table's schema once it has the frame's new columns (added first, empty)."""
        new_columns = {c: frame.schema[c] for c in frame.columns if c not in schema}
        if not new_columns:
            return schema
        # Evolve first with an empty append: adding columns inside a merge is where
        # delta-rs loses data (struct fields) or drops columns (docs/data-model.md).
        with lake_errors(self.resource, f"adding columns {list(new_columns)} to {uri}"):
            write_deltalake(
                table,
                frame.select(list(new_columns)).clear(),
                mode="append",
                schema_mode="merge",
                commit_properties=_commit({"analytics_sync.operation": "add columns"}),
            )
            table.update_incremental()
        log.info("%s: added columns %s to %s", self.resource, list(new_columns), uri)
        return {**schema, **new_columns}

    def _merge_frame(self, table: DeltaTable, uri: str, frame: pl.DataFrame, schema: Schema,
                     metadata: dict[str, str] | None, *, check_table: bool) -> WriteResult:
        """Merge a typed, deduplicated frame (merging.py); ``check_table``: the resource's
        table (tombstones apply, ``landed`` hears of it), not a replace's staging."""
        schema = self._evolved(table, uri, frame, schema)
        # A column this batch lacks must be null in the source, or matched rows keep stale values.
        frame = _conform(frame, schema)
        before = table.version()
        with lake_errors(self.resource, f"merging {frame.height} rows into {uri}"):
            metrics = merge_frame(
                table, frame, key=self.key, cursor_field=self.cursor_field,
                tombstone=self._tombstone_sql(frame) if check_table else None,
                hard_delete=self.delete_missing == "hard",
                commit=_commit(metadata, self._mark))
            after = table.version()
        inserted = int(metrics["num_target_rows_inserted"])
        updated = int(metrics["num_target_rows_updated"])
        deleted = int(metrics.get("num_target_rows_deleted", 0))
        if check_table and self.delete_missing == "soft" and self._tombstone(frame) is not None:
            deleted = self._soft_deleted(frame)
        # delta-rs commits nothing when no row is inserted or updated.
        version = after if after != before else None
        if check_table:  # the table's rows, not a replace's staging
            self._landed(frame)
        log.debug("%s: merged %d rows into %s: %d inserted, %d updated, version %s",
                  self.resource, frame.height, uri, inserted, updated, version)
        return WriteResult(inserted=inserted, updated=updated, version=version, deleted=deleted)

    def _insertable(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of a frame that land when none of its keys is in the table: all but a
        hard-deleting tombstone (dlt's hard_delete: it is never inserted)."""
        tombstone = self._tombstone(frame)
        if tombstone is None or self.delete_missing != "hard":
            return frame
        return frame.filter(~tombstone)

    def _soft_deleted(self, frame: pl.DataFrame) -> int:
        """The tombstones of a frame that land marked (soft): rows it deleted."""
        tombstone = self._tombstone(frame)
        if tombstone is None or self.delete_missing != "soft":
            return 0
        return int(frame.select(tombstone.sum()).item())


def _commit(
    metadata: Mapping[str, str] | None, mark: TableMark | None = None
) -> CommitProperties | None:
    if not metadata and mark is None:
        return None
    transactions = mark.transactions() if mark else None
    return CommitProperties(custom_metadata=dict(metadata or {}), app_transactions=transactions)

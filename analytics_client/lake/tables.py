"""Delta Lake tables, one per resource: merge, append or replace typed batches."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from analytics_client.config.model import (
    DEFAULT_CURSOR_PATH,
    DEFAULT_MAX_DELETE_SHARE,
)
from analytics_client.config.schemas import ColumnHint
from analytics_client.core.errors import (
    AnalyticsSyncError,
    ConfigError,
    DeleteGuardError,
    LakeError,
)
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

__all__ = ["DELETE_MODES", "DISPOSITIONS", "Lake", "Landed", "TableMark", "TableSpec",
           "TableWriter", "clock_app_id"]

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

DISPOSITIONS = ("merge", "append", "replace")
# What becomes of a row whose record the API no longer has (lake/deletes.py): marked with
# ``_deleted_at`` (soft), removed (hard), or left as it is (off: append tables, and opt-out).
DELETE_MODES = ("soft", "hard", "off")
DeleteMode = Literal["soft", "hard", "off"]
# Tables we create write Delta's Change Data Feed: a downstream job reads each run's inserts,
# updates and deletes (``DeltaTable.load_cdf``). docs/deletes.md says how to turn it on for a
# table made before.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
_TABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGING = "_staging"
QUARANTINE = "_quarantine"
_BOOKKEEPING: Schema = {SYNCED_AT: pl.Datetime("us", "UTC"), ROW_HASH: pl.String(),
                        DELETED_AT: pl.Datetime("us", "UTC")}


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return None if "://" in uri else uri


@dataclass(frozen=True)
class TableMark:
    """A high-water mark as stored in a table: app id (one per pipeline), cursor in epoch µs.

    ``clock_us``: the API's clock (epoch µs) when the complete read that reached ``cursor_us``
    began, kept beside it under ``clock_app_id`` (state/markpolicy.py says what it proves); 0 for
    a mark no complete read has reached yet (a commit in the middle of a read); None: no clock
    kept at all (a child's parent version), and an earlier one is left as it is.
    """

    app_id: str
    cursor_us: int
    clock_us: int | None = None

    @property
    def clock_app_id(self) -> str:
        return clock_app_id(self.app_id)

    def transactions(self) -> list[Transaction]:
        """The Delta app transactions that record this mark in a commit."""
        found = [Transaction(app_id=self.app_id, version=self.cursor_us)]
        if self.clock_us is not None:
            found.append(Transaction(app_id=self.clock_app_id, version=max(0, self.clock_us)))
        return found


def clock_app_id(app_id: str) -> str:
    """Under which app id a table keeps the API's clock of the mark kept under ``app_id``."""
    return f"{app_id}:api-clock"


class Lake:
    """A directory (local or object store) holding one Delta table per resource."""

    def __init__(self, uri: str, *, storage_options: dict[str, str] | None = None) -> None:
        if not uri or not uri.strip():
            raise ConfigError(["the lake URI is empty: give a local path or an s3://... URI"])
        local = _local_path(uri)
        # An absolute path keeps table URIs stable if the working directory changes.
        self.uri = os.path.abspath(local) if local is not None else uri.rstrip("/")
        self.is_local = local is not None
        self.storage_options = dict(storage_options) if storage_options else None

    def __repr__(self) -> str:
        # storage_options hold credentials: never shown.
        return f"Lake({self.uri!r})"

    def table_uri(self, resource: str) -> str:
        """The URI of a resource's table; names that could escape the lake are refused."""
        return f"{self.uri}/{self._checked(resource)}"

    def staging_uri(self, resource: str) -> str:
        """Where a replace run stages its batches until ``TableWriter.finish``."""
        return f"{self.uri}/{_STAGING}/{self._checked(resource)}"

    def version(self, resource: str) -> int | None:
        """The table's current version, or None if there is no table."""
        table = self._open(resource, self.table_uri(resource))
        return None if table is None else table.version()

    def mark(self, resource: str, app_id: str) -> int | None:
        """The cursor (epoch µs) the last data commit of ``app_id`` covered; None without one."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return None
        with _lake_errors(resource, f"reading the mark of {self.table_uri(resource)}"):
            version = table.transaction_version(app_id)
        return None if version is None else int(version)

    def recorded(self, resource: str, app_id: str) -> TableMark | None:
        """The mark and API clock the last commit of ``app_id`` recorded (a clock of 0: none,
        as for a mark recorded before clocks were kept); None without a mark."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return None
        with _lake_errors(resource, f"reading the mark of {self.table_uri(resource)}"):
            version = table.transaction_version(app_id)
            clock = table.transaction_version(clock_app_id(app_id))
        if version is None:
            return None
        return TableMark(app_id, int(version), int(clock) if clock is not None else 0)

    def row_count(self, resource: str, *, live: bool = False) -> int | None:
        """Rows in the table (from file metadata), or None if there is no table; ``live``:
        only rows not marked deleted (``_deleted_at`` null)."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return None
        with _lake_errors(resource, f"counting the rows of {self.table_uri(resource)}"):
            scan = pl.scan_delta(table)
            if live and DELETED_AT in scan.collect_schema():
                scan = scan.filter(pl.col(DELETED_AT).is_null())
            return int(scan.select(pl.len()).collect().item())

    def read(self, resource: str) -> pl.DataFrame:
        """The whole table (for tests and the CLI)."""
        uri = self.table_uri(resource)
        with _lake_errors(resource, f"reading {uri}"):
            if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                raise LakeError(resource, f"there is no Delta table at {uri}: sync it first")
            return pl.read_delta(uri, storage_options=self.storage_options)

    def _open(self, resource: str, uri: str) -> DeltaTable | None:
        """The Delta table at ``uri``, or None if there is none yet."""
        with _lake_errors(resource, f"opening {uri}"):
            if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                return None
            return DeltaTable(uri, storage_options=self.storage_options)

    def _prepare(self, uri: str) -> None:
        """Create a local table's parent directories (object stores need none)."""
        if self.is_local:
            os.makedirs(os.path.dirname(uri), exist_ok=True)

    def _remove(self, uri: str) -> None:
        """Delete a local staging table; on object stores the next run overwrites it instead."""
        if self.is_local:
            shutil.rmtree(uri, ignore_errors=True)

    def quarantine_uri(self) -> str:
        """The table of records set aside by every resource (quarantine.py)."""
        return f"{self.uri}/{QUARANTINE}"

    def _checked(self, resource: str) -> str:
        if not _TABLE_NAME.fullmatch(resource or "") or resource in (_STAGING, QUARANTINE):
            raise LakeError(
                resource,
                f"{resource!r} cannot name a table: use letters, digits, '_' and '-' only "
                f"(no '/', '\\', '..' or absolute paths), and not {_STAGING!r} or {QUARANTINE!r}, "
                "which hold the staged data of replace runs and the records set aside",
            )
        return resource


@contextmanager
def _lake_errors(resource: str, doing: str) -> Iterator[None]:
    """Turn a storage or Delta failure into a LakeError that says what was being done."""
    try:
        yield
    except AnalyticsSyncError:
        raise
    except (DeltaError, OSError, pl.exceptions.PolarsError) as exc:
        raise LakeError(resource, f"{doing} failed: {exc}") from exc


def _schema_of(table: DeltaTable) -> Schema:
    return dict(pl.scan_delta(table).collect_schema())


def _quoted(column: str) -> str:
    return f"`{column}`"


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
    append:  add every batch as is.
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
                if not isinstance(exc.__cause__, CommitFailedError) or attempt == _COMMIT_ATTEMPTS:
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

    def finish(self, *, commit_metadata: dict[str, str] | None = None) -> WriteResult:
        """For replace, swap the staged rows in with one commit; a no-op for merge and append.

        ``commit_metadata`` defaults to the last ``write()``'s. Nothing staged: the table is
        left as it was and ``version`` is None.
        """
        if self.write_disposition != "replace" or not self._staged:
            return WriteResult(inserted=0, updated=0, version=None)
        assert self._staging_uri is not None
        metadata = commit_metadata if commit_metadata is not None else self._commit_metadata
        with _lake_errors(self.resource, f"replacing {self.uri} with {self._staging_uri}"):
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
            return f"coalesce(s.{_quoted(column)}, false)"
        return f"s.{_quoted(column)} IS NOT NULL"

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
        if frame.is_empty():  # every record was set aside: no table of nothing
            return WriteResult(inserted=0, updated=0, version=None)
        with _lake_errors(self.resource, f"creating {uri}"):
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
                # Another writer created the table between our check and our write: write
                # into theirs as if it had been there all along.
                if mode == "error" and "already exists" in str(exc):
                    if self.write_disposition == "append":
                        return self._append(records, metadata)
                    return self._merge(uri, records, metadata, check_table=uri == self.uri)
                raise
            table = self.lake._open(self.resource, uri)
            assert table is not None
        if uri == self.uri and self.write_disposition == "merge":
            self._landed(frame)
        return WriteResult(inserted=frame.height, updated=0, version=table.version())

    def _append(self, records: list[object], metadata: dict[str, str] | None) -> WriteResult:
        table = self.lake._open(self.resource, self.uri)
        if table is None:
            return self._create(self.uri, records, metadata, mode="error")
        with _lake_errors(self.resource, f"reading the schema of {self.uri}"):
            schema = _schema_of(table)
        self._check_declared(self.uri, schema)
        frame = _conform(self._frame(records, schema, dedupe=False), schema)
        if frame.is_empty():  # every record was set aside
            return WriteResult(inserted=0, updated=0, version=None)
        with _lake_errors(self.resource, f"appending to {self.uri}"):
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
        with _lake_errors(self.resource, f"reading the schema of {uri}"):
            schema = _schema_of(table)
        if check_table:
            self._check_declared(uri, schema)
        frame = self._frame(records, schema, dedupe=True)
        if frame.is_empty():  # every record was set aside
            return WriteResult(inserted=0, updated=0, version=None)

        new_columns = {c: frame.schema[c] for c in frame.columns if c not in schema}
        if new_columns:
            # Evolve first with an empty append: adding columns inside a merge is where
            # delta-rs loses data (struct fields) or drops columns (docs/data-model.md).
            with _lake_errors(self.resource, f"adding columns {list(new_columns)} to {uri}"):
                write_deltalake(
                    table,
                    frame.select(list(new_columns)).clear(),
                    mode="append",
                    schema_mode="merge",
                    commit_properties=_commit({"analytics_sync.operation": "add columns"}),
                )
                table.update_incremental()
            log.info("%s: added columns %s to %s", self.resource, list(new_columns), uri)
            schema = {**schema, **new_columns}
        # A column this batch lacks must be null in the source, or matched rows keep stale values.
        frame = _conform(frame, schema)

        matched = " AND ".join(f"t.{_quoted(k)} = s.{_quoted(k)}"
                               for k in (self.primary_key, *self.parent_key))
        # IS DISTINCT FROM, not <>: a row without a hash (a table another tool wrote) still
        # updates; equal hashes mean identical content, which is neither rewritten nor counted.
        # A row marked deleted comes back with its record, even unchanged (it was seen again).
        changed = (f"((s.{_quoted(ROW_HASH)} IS DISTINCT FROM t.{_quoted(ROW_HASH)}) "
                   f"OR (t.{_quoted(DELETED_AT)} IS NOT NULL))")
        newer = "true"
        if self.cursor_field is not None:
            cursor = _quoted(self.cursor_field)
            # An older version never overwrites a newer one; an equal one with new content does.
            newer = f"(s.{cursor} >= t.{cursor} OR t.{cursor} IS NULL)"
            changed = f"{newer} AND {changed}"
        tombstone = self._tombstone_sql(frame) if check_table else None
        before = table.version()
        with _lake_errors(self.resource, f"merging {frame.height} rows into {uri}"):
            merge = table.merge(
                frame,
                predicate=matched,
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                # The source is one batch: materialized, it is the join's small side and
                # its id range prunes target files. Streamed (delta-rs' default), memory
                # grew with the table (+90 MiB at 10k rows, +150 MiB at 100k; measured).
                streamed_exec=False,
                commit_properties=_commit(metadata, self._mark),
            )
            if tombstone is not None and self.delete_missing == "hard":
                # dlt's hard_delete: the tombstone removes its row and is never inserted.
                merge = (merge.when_matched_delete(predicate=f"{newer} AND {tombstone}")
                         .when_matched_update_all(predicate=changed)
                         .when_not_matched_insert_all(predicate=f"NOT ({tombstone})"))
            else:
                merge = merge.when_matched_update_all(predicate=changed) \
                    .when_not_matched_insert_all()
            metrics = merge.execute()
            after = table.version()
        inserted = int(metrics["num_target_rows_inserted"])
        updated = int(metrics["num_target_rows_updated"])
        deleted = int(metrics.get("num_target_rows_deleted", 0))
        if tombstone is not None and self.delete_missing == "soft":
            marked = self._tombstone(frame)
            assert marked is not None
            deleted = int(frame.select(marked.sum()).item())
        # delta-rs commits nothing when no row is inserted or updated.
        version = after if after != before else None
        if check_table:  # the table's rows, not a replace's staging
            self._landed(frame)
        log.debug(
            "%s: merged %d rows into %s: %d inserted, %d updated, version %s",
            self.resource,
            frame.height,
            uri,
            inserted,
            updated,
            version,
        )
        return WriteResult(inserted=inserted, updated=updated, version=version, deleted=deleted)


def _commit(
    metadata: Mapping[str, str] | None, mark: TableMark | None = None
) -> CommitProperties | None:
    if not metadata and mark is None:
        return None
    transactions = mark.transactions() if mark else None
    return CommitProperties(custom_metadata=dict(metadata or {}), app_transactions=transactions)

"""The lake: a directory of Delta tables, one per resource, and the marks their commits keep.

Split from tables.py (which writes the tables) and re-exported there.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from analytics_client.core.errors import AnalyticsSyncError, ConfigError, LakeError
from analytics_client.lake.frames import DELETED_AT
from analytics_client.lake.tablemark import TableMark, clock_app_id, read_ahead

__all__ = ["QUARANTINE", "STAGING", "Lake", "TableMark", "clock_app_id", "lake_errors"]

_TABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")
STAGING = "_staging"
QUARANTINE = "_quarantine"


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return None if "://" in uri else uri


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
        return f"{self.uri}/{STAGING}/{self._checked(resource)}"

    def version(self, resource: str) -> int | None:
        """The table's current version, or None if there is no table."""
        table = self._open(resource, self.table_uri(resource))
        return None if table is None else table.version()

    def writer_features(self, resource: str) -> list[str]:
        """The Delta writer features the table's protocol requires (``[]`` without a table,
        or for a protocol older than table features: writer version < 7)."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return []
        with lake_errors(resource, f"reading the protocol of {self.table_uri(resource)}"):
            return list(table.protocol().writer_features or [])

    def mark(self, resource: str, app_id: str) -> int | None:
        """The cursor (epoch µs) the last data commit of ``app_id`` covered; None without one."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return None
        with lake_errors(resource, f"reading the mark of {self.table_uri(resource)}"):
            version = table.transaction_version(app_id)
        return None if version is None else int(version)

    def recorded(self, resource: str, app_id: str) -> TableMark | None:
        """The mark, API clock and ranges ahead the last commit of ``app_id`` recorded (a clock
        of 0: none, as for a mark recorded before clocks were kept); None without a mark."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return None
        with lake_errors(resource, f"reading the mark of {self.table_uri(resource)}"):
            version = table.transaction_version(app_id)
            clock = table.transaction_version(clock_app_id(app_id))
            if version is None:
                return None
            return TableMark(app_id, int(version), int(clock) if clock is not None else 0,
                             read_ahead(table, app_id, int(version)))

    def row_count(self, resource: str, *, live: bool = False) -> int | None:
        """Rows in the table (from file metadata), or None if there is no table; ``live``:
        only rows not marked deleted (``_deleted_at`` null)."""
        table = self._open(resource, self.table_uri(resource))
        if table is None:
            return None
        with lake_errors(resource, f"counting the rows of {self.table_uri(resource)}"):
            scan = pl.scan_delta(table)
            if live and DELETED_AT in scan.collect_schema():
                scan = scan.filter(pl.col(DELETED_AT).is_null())
            return int(scan.select(pl.len()).collect().item())

    def read(self, resource: str) -> pl.DataFrame:
        """The whole table (for tests and the CLI)."""
        uri = self.table_uri(resource)
        with lake_errors(resource, f"reading {uri}"):
            if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                raise LakeError(resource, f"there is no Delta table at {uri}: sync it first")
            return pl.read_delta(uri, storage_options=self.storage_options)

    def _open(self, resource: str, uri: str) -> DeltaTable | None:
        """The Delta table at ``uri``, or None if there is none yet."""
        with lake_errors(resource, f"opening {uri}"):
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
        if not _TABLE_NAME.fullmatch(resource or "") or resource in (STAGING, QUARANTINE):
            raise LakeError(
                resource,
                f"{resource!r} cannot name a table: use letters, digits, '_' and '-' only "
                f"(no '/', '\\', '..' or absolute paths), and not {STAGING!r} or {QUARANTINE!r}, "
                "which hold the staged data of replace and merge runs and the records set aside",
            )
        return resource


@contextmanager
def lake_errors(resource: str, doing: str) -> Iterator[None]:
    """Turn a storage or Delta failure into a LakeError that says what was being done."""
    try:
        yield
    except AnalyticsSyncError:
        raise
    except (DeltaError, OSError, pl.exceptions.PolarsError) as exc:
        raise LakeError(resource, f"{doing} failed: {exc}") from exc

"""Append-only staging of a merge table's batches, so that a run rewrites its table once.

Why: delta-rs writes no deletion vectors, so every merge rewrites every file holding a row it
matches (delta-io/delta-rs#4079); merging each 10,000-record batch rewrote a 3-million-row
table once per batch (issue 24). The writer instead types each batch (the quarantine takes
what does not fit, as before) and appends it here as one Parquet file; ``TableWriter.flush``
reads the parts back, keeps the newest version of each key and merges them in one commit, with
the run's mark. Nothing here is ever read as table data: a crash before that commit loses the
staged parts only, and the mark, which advances with the merge commit alone, makes the next
run read them again.

Where: beside the table for a local lake (``<lake>/_staging/<resource>.parts/<token>``, the
same disk), else a local temporary directory (object stores are written by the merge only).
Each stager holds an exclusive ``flock`` on a file in its directory; the kernel frees it when
the process dies (even by SIGKILL), so a stager that can take a sibling's lock knows its
writer is gone and removes what it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import polars as pl

from analytics_client.lake.frames import Rejected

__all__ = ["Stage", "stage_parent"]

log = logging.getLogger(__name__)

_LOCK = ".owner"


class Stage:
    """The typed batches of one writer not yet merged: Parquet parts in ``directory``.

    ``schema`` is the union of the parts' columns (the next batch is typed against it, so a
    column keeps one type across the parts); ``rows`` and ``bytes`` (polars' in-memory
    estimate of the parts, read back) tell the run when to merge; ``rejected`` holds the records
    the parts' batches set aside (the quarantine's ``landed`` hook needs them with the merge).
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.directory: Path | None = None
        self.schema: dict[str, pl.DataType] = {}
        self.rows = 0
        self.bytes = 0
        self.rejected: list[Rejected] = []
        self._parts: list[Path] = []
        self._lock_fd: int | None = None

    @property
    def empty(self) -> bool:
        return not self._parts

    def append(self, frame: pl.DataFrame, rejected: list[Rejected]) -> None:
        """Add a typed batch (already deduplicated within itself) as one part."""
        self.rejected.extend(rejected)
        if frame.is_empty():
            return
        directory = self._open()
        part = directory / f"{len(self._parts):06d}.parquet"
        # lz4: cheap to write and read back; the parts live minutes, not years.
        frame.write_parquet(part, compression="lz4", statistics=False)
        self._parts.append(part)
        self.schema.update(frame.schema)
        self.rows += frame.height
        self.bytes += int(frame.estimated_size())

    def frame(self) -> pl.DataFrame:
        """Every part, in staging order (later batches last), columns united; absent ones null."""
        if not self._parts:
            return pl.DataFrame()
        return pl.concat([pl.read_parquet(p) for p in self._parts], how="diagonal_relaxed")

    def clear(self) -> None:
        """The parts are committed (or abandoned): remove them; the stage can take more."""
        for part in self._parts:
            part.unlink(missing_ok=True)
        self._parts.clear()
        self.schema, self.rows, self.bytes, self.rejected = {}, 0, 0, []

    def close(self) -> None:
        """Remove the directory and free its lock (the writer is done, or failed); then the
        resource's and the lake's staging directories if nothing else is in them, so a lake
        after a run holds its tables only."""
        self.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        with contextlib.suppress(OSError):  # not empty: another writer's, or a replace's
            self.parent.rmdir()
            self.parent.parent.rmdir()

    def _open(self) -> Path:
        if self.directory is not None:
            return self.directory
        directory = self.parent / uuid.uuid4().hex
        for attempt in range(3):  # another writer's close may remove an empty parent between
            self.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned(self.parent)
            try:
                directory.mkdir()
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        # The lock appears under its name only once held: another writer's _remove_abandoned
        # that opened it between creation and flock took the directory for abandoned and
        # removed it under us (CI: two writers into one lake, "No such file ... 000000.parquet").
        fresh = directory / f"{_LOCK}.new"
        fd = os.open(fresh, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new and ours: cannot be held
        os.rename(fresh, directory / _LOCK)
        self.directory, self._lock_fd = directory, fd
        return directory


def stage_parent(lake_uri: str, is_local: bool, resource: str, staging: str) -> Path:
    """Where a resource's stagers make their directories (see the module docstring)."""
    if is_local:
        return Path(lake_uri) / staging / f"{resource}.parts"
    return Path(tempfile.gettempdir()) / "analytics-sync-staging" / f"{resource}.parts"


def _remove_abandoned(parent: Path) -> None:
    """Remove the directories of stagers whose process is gone (their lock is free)."""
    for directory in parent.iterdir():
        lock = directory / _LOCK
        if not directory.is_dir():
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            # A stager between mkdir and its lock, or one killed there: leave young ones.
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer's parts
        finally:
            os.close(fd)
        log.info("removing the staged parts a stopped run left in %s", directory)
        shutil.rmtree(directory, ignore_errors=True)

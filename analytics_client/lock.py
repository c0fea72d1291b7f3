"""One run per pipeline at a time on this machine, with a lock the kernel frees if we die.

Two runs of a pipeline would race on its marks (Prefect blocks have no compare-and-set) and
its tables. ``flock`` is released by the kernel when the holding process exits, even by
SIGKILL, so a crashed run can never hold the lock forever. Across machines, deployments carry
``concurrency_limit: 1`` with ``collision_strategy: CANCEL_NEW``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import PipelineBusyError

__all__ = ["lock_dir", "pipeline_lock", "table_write_lock"]


def lock_dir() -> Path:
    return Path(os.environ.get("ANALYTICS_SYNC_LOCK_DIR")
                or Path(tempfile.gettempdir()) / "analytics-sync-locks")


# (pipeline, thread) -> depth: the command line and the flow it runs (same thread) share one lock
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def pipeline_lock(pipeline: str) -> Iterator[None]:
    """Hold the pipeline's lock for the block, or fail at once naming the holder.

    Re-entrant within a process, so the command line can take it before Prefect starts (a
    second run then fails in a second, not after a server start) and the flow again inside.
    """
    key = (pipeline, threading.get_ident())
    with _held_guard:
        reentered = bool(_held.get(key))
        if reentered:
            _held[key] += 1
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    with _flock(pipeline):
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)


@contextlib.contextmanager
def _flock(pipeline: str) -> Iterator[None]:
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", pipeline) + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            raise PipelineBusyError(
                f"pipeline {pipeline!r} is already running (pid {holder.get('pid', '?')}, "
                f"since {holder.get('since', '?')}); this run did nothing. Wait for it to "
                "finish, or use another --pipeline name for another organization or lake"
            ) from None
        os.ftruncate(fd, 0)
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.write(fd, json.dumps({"pid": os.getpid(), "since": since}).encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        holder = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def table_write_lock(table_uri: str, timeout: float = 600.0) -> Iterator[None]:
    """Serialize commits to one table from this machine, waiting for the other writer.

    Delta's conflict checks let two concurrent merges insert the same new key twice (both
    see it missing, both append). Writers of one table on one machine take turns here; across
    machines, give each table one pipeline (deployments run with ``concurrency_limit: 1``).
    """
    directory = lock_dir() / "tables"
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(table_uri.encode()).hexdigest()[:32] + ".lock"
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PipelineBusyError(
                        f"another writer has held the table {table_uri} for {timeout:.0f} s"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)

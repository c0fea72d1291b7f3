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
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import AnalyticsSyncError

__all__ = ["PipelineBusyError", "lock_dir", "pipeline_lock"]


class PipelineBusyError(AnalyticsSyncError):
    """Another run of the same pipeline holds the lock."""


def lock_dir() -> Path:
    return Path(os.environ.get("ANALYTICS_SYNC_LOCK_DIR")
                or Path(tempfile.gettempdir()) / "analytics-sync-locks")


@contextlib.contextmanager
def pipeline_lock(pipeline: str) -> Iterator[None]:
    """Hold the pipeline's lock for the block, or fail at once naming the holder."""
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
        os.write(fd, json.dumps({"pid": os.getpid(),
                                 "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}).encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}

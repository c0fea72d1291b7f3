"""What a run proves before its first request: the lake can be written.

Why before: a lake on a read-only mount used to be found after every page had been fetched
(thousands of requests, then ``Read-only file system``). A probe file costs a millisecond.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from analytics_client.core.errors import LakeNotWritableError
from analytics_client.lake.tables import Lake

__all__ = ["ensure_lake_writable"]

_PROBE_PREFIX = ".analytics-sync-probe-"


def ensure_lake_writable(lake: Lake, resources: Iterable[str] = ()) -> None:
    """Raise ``LakeNotWritableError`` unless new files can be created where the run writes.

    Local lakes only: the lake directory (or, when it does not exist yet, the nearest existing
    parent, so that ``check`` creates nothing) and the ``_delta_log`` of each existing table of
    ``resources``. Object stores are not probed: a put needs their client, and their first
    commit reports a refusal with the store's own message.
    """
    if not lake.is_local:
        return
    _probe(_nearest_existing(lake.uri), lake.uri)
    for resource in resources:
        log_dir = os.path.join(lake.table_uri(resource), "_delta_log")
        if os.path.isdir(log_dir):
            _probe(log_dir, lake.uri)


def _nearest_existing(path: str) -> str:
    """``path`` itself, or its closest ancestor that exists."""
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _probe(directory: str, uri: str) -> None:
    """Create and delete one empty file in ``directory``."""
    if not os.path.isdir(directory):
        raise LakeNotWritableError(uri, f"{directory} is not a directory")
    try:
        handle, name = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=directory)
    except OSError as exc:
        raise LakeNotWritableError(uri, f"cannot create a file in {directory}: "
                                        f"{exc.strerror or exc}") from None
    os.close(handle)
    os.unlink(name)

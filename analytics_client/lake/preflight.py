"""What a run proves before its first request: the lake can be written.

Why before: a lake on a read-only mount used to be found after every page had been fetched
(thousands of requests, then ``Read-only file system``). A probe file costs a millisecond.
So is a table made elsewhere with a writer feature delta-rs refuses at commit ("Unsupported
table features required: [RowTracking, DomainMetadata]", measured with deltalake 1.6.6, as
for ``clustering``): its protocol is one log read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from analytics_client.core.errors import LakeNotWritableError, UnsupportedTableFeature
from analytics_client.lake.tables import Lake

__all__ = ["UNWRITABLE_FEATURES", "ensure_lake_writable"]

_PROBE_PREFIX = ".analytics-sync-probe-"

# Writer features of the Delta protocol (PROTOCOL.md, "Table Features") that the pinned
# deltalake cannot honour on write. Measured with deltalake 1.6.6: a commit to a table with
# rowTracking, domainMetadata, clustering, identityColumns or icebergCompatV1 fails
# ("Unsupported table features required"); columnMapping commits but polars cannot read it;
# deletionVectors commits, but delta-rs writes no deletion vector (delta-io/delta-rs#4079), so
# a table whose other writers rely on them is refused too rather than half-maintained.
UNWRITABLE_FEATURES = {
    "rowTracking": "row tracking",
    "domainMetadata": "domain metadata, which row tracking and liquid clustering use",
    "clustering": "liquid clustering",
    "deletionVectors": "deletion vectors, which delta-rs does not write",
    "identityColumns": "identity columns",
    "icebergCompatV1": "Iceberg compatibility (UniForm)",
    "columnMapping": "column mapping, which polars cannot read back (staged merges read it)",
}


def ensure_lake_writable(lake: Lake, resources: Iterable[str] = ()) -> None:
    """Raise ``LakeNotWritableError`` unless new files can be created where the run writes,
    and ``UnsupportedTableFeature`` when an existing table of ``resources`` needs a writer
    feature delta-rs cannot write (any store).

    Probe files on local lakes only: the lake directory (or, when it does not exist yet, the
    nearest existing parent, so that ``check`` creates nothing) and the ``_delta_log`` of each
    existing table of ``resources``. Object stores are not probed: a put needs their client,
    and their first commit reports a refusal with the store's own message.
    """
    resources = list(resources)
    if lake.is_local:
        _probe(_nearest_existing(lake.uri), lake.uri)
        for resource in resources:
            log_dir = os.path.join(lake.table_uri(resource), "_delta_log")
            if os.path.isdir(log_dir):
                _probe(log_dir, lake.uri)
    for resource in resources:
        _check_features(lake, resource)


def _check_features(lake: Lake, resource: str) -> None:
    """Raise ``UnsupportedTableFeature`` when ``resource``'s table (if any) needs a writer
    feature of ``UNWRITABLE_FEATURES``."""
    features = lake.writer_features(resource)
    refused = {name: UNWRITABLE_FEATURES[name] for name in features
               if name in UNWRITABLE_FEATURES}
    if refused:
        raise UnsupportedTableFeature(lake.table_uri(resource), resource, refused)


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

"""Native memory given back after each commit: the jemalloc inside polars and deltalake.

polars and deltalake each bundle jemalloc, configured from the ``_RJEM_MALLOC_CONF``
environment variable when their native library loads; polars' own import sets it to
``dirty_decay_ms:500,muzzy_decay_ms:1000`` followed by whatever the variable already held
(the later setting wins). With those delays the pages a Delta merge freed are not all given
back before the next merge, and a long run creeps: a 10x library run grew from about 225 to
345 MiB over its 48 commits, none of it returned by glibc's ``malloc_trim`` (it is not glibc's
heap), and peaked at 1.31x its 1x peak; with both delays at 0 it stayed near 250 MiB after
each commit and peaked at 300 MiB; any CPU cost was within the noise of the loaded machine it
was measured on (issue 15; bench/RESULTS.md). polars' issue #23128 and delta-rs' #2068
describe the same retention.

Importing this module (``analytics_client`` does, first) calls ``configure``, which sets both
delays to 0, only while neither library is loaded yet and only if the
variable is unset: a process that set ``_RJEM_MALLOC_CONF`` itself (even to an empty string)
keeps its choice, and one that imported polars or deltalake before us keeps theirs. The
variable is unset again once both are loaded, so processes we start are left alone.
"""

from __future__ import annotations

import os
import sys

__all__ = ["JEMALLOC_CONF", "configure", "configured"]

JEMALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"
_VARIABLE = "_RJEM_MALLOC_CONF"


def configure(conf: str = JEMALLOC_CONF) -> bool:
    """Ask polars' and deltalake's jemalloc to give freed pages back at once; True if set.

    Loads both (their allocators read the variable then), then unsets the variable again:
    processes started later decide for themselves.
    """
    if _VARIABLE in os.environ or "polars" in sys.modules or "deltalake" in sys.modules:
        return False
    os.environ[_VARIABLE] = conf
    try:
        import deltalake  # noqa: F401
        import polars  # noqa: F401
    finally:
        # Unset, as we found it (polars would leave its own setting there, and a process we
        # start, such as the bench's library target, would take that for the user's choice).
        os.environ.pop(_VARIABLE, None)
    return True


configured = configure()  # whether this import set them

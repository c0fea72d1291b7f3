"""The intervals and thresholds a run keeps time by, as one value a run is given.

Tests and benchmarks pass their own (``Timing(progress_every=0)``) instead of patching module
constants: stamina's ``set_testing`` is the model, a value instead of global state. The
defaults are the measured ones each field's comment names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_TIMING", "Timing"]


@dataclass(frozen=True)
class Timing:
    """Seconds unless said otherwise.

    ``progress_every``: between two progress lines of a resource (run/progress.py).
    ``mark_save_every``: between two saves of a committed mark to the state store; the table
    holds the exact mark of every commit meanwhile (state/markpolicy.py).
    ``slow_page``: a page that took at least this long means the read waits for the API, so
    more walks at once pay off (read/slices.py; a loopback page takes ~5 ms, a real one 50+).
    ``max_busy_steal``: the process's CPU share (cores) at or above which a slow page is the
    interpreter, not the API, and no walk is split further (read/slices.py, measured on 2 cores).
    ``sleep``: how the client's rate limiter pauses (None: on the run's stop flag, so that a
    stop wakes it, and not at all in stamina's test mode); a test records the pauses instead.
    ``clock``: the wall clock (epoch seconds) an HTTP date in ``Retry-After`` or a rate-limit
    reset is measured against when the response carries no ``Date`` (None: ``time.time``); a
    test fixes it, so a wait is exact whatever the machine's speed.
    ``merge_every``: the longest a merge table's staged batches wait for their merge (one
    table rewrite, with the mark: run/sync.py); a crash loses at most this much reading.
    """

    progress_every: float = 10.0
    merge_every: float = 600.0
    mark_save_every: float = 30.0
    slow_page: float = 0.02
    max_busy_steal: float = 0.9
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] | None = None


DEFAULT_TIMING = Timing()

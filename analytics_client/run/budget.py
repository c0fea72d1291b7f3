"""A run-wide bound on the records held in memory while waiting for their Delta commit.

Each resource commits when its batch reaches ``batch_rows``; alone that would let every
resource of a run hold a full batch at once, so a run over large resources would need several
times the memory of one over small ones. The budget caps the sum, in records and in bytes:
while the run holds more than ``limit`` records (or ``max_bytes``), a resource holding at
least its share (``limit / (2 * resources)``) commits at its next page. Some resource always
holds that much when the sum is over the limit, and a resource that reads on meanwhile holds
less than its share, so the run holds at most 1.5x the limit plus a page per resource
(counted when taken: the page that makes a resource commit is held until its commit ends; a
little more if resources join while the run is over the limit), whatever the size or number
of the resources, and a small resource does not commit page by page (tests/test_budget.py).

Records, not bytes, were the only measure until rich records (about 2.7 KB of JSON each, 14 KB
as Python objects) held up to 20,000 at once made a run peak at 617-655 MiB (bench/RESULTS.md,
issue 15). Bytes are estimated per page, not measured per record (``page_bytes``): what the
records take as JSON, about what the API sent; as Python objects they take 3 to 6 times that.
There is no option for it, as there is none for the record budget: both follow
``batch_rows`` (``RowBudget.for_batches``).

A commit briefly needs a few times its batch (records, typed frame, the merge's own copies),
so at most ``COMMIT_SLOTS`` resources of a run commit at once: on the 2-core machines we run
on, more at once would not finish sooner, only need more memory.

A merge table's batches are staged on disk, not merged one by one (lake/staging.py: each merge
rewrites every file it touches); they are merged, in one commit, at the end of the read, after
``Timing.merge_every`` seconds, or once ``DEFAULT_MERGE_BYTES`` of them are staged: the merge
reads them back whole, so this bounds its memory as the record budget bounds the batches'.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from analytics_client.core.jsontext import size_estimate

__all__ = ["DEFAULT_BUFFER_BYTES", "DEFAULT_BUFFER_ROWS", "DEFAULT_MERGE_BYTES", "RowBudget",
           "Share", "page_bytes"]

DEFAULT_BUFFER_ROWS = 20_000
# 16 MiB of JSON: 30,000 (1.5x the records) of the sandbox's default records (150-360 bytes
# each) stay below it, so their commits are as before; about 6,000 rich ones (~2.7 KB) reach it.
DEFAULT_BUFFER_BYTES = 16 * 2**20
COMMIT_SLOTS = 2
# Staged rows, as polars sizes them in memory, that one merge reads back at most: about 90,000
# of the sandbox's deals (185 bytes each). A 1 % change of a 3M-row table (5.5 MiB) is one
# merge; a full load lands in appends of this size, so its peak memory does not grow with it
# (bench/scale.py: 64 MiB made a 300k-row load peak at 364 MiB against 175 at 10k).
DEFAULT_MERGE_BYTES = 16 * 2**20


def page_bytes(records: Sequence[object]) -> int:
    """About how many bytes ``records`` take as JSON text: the middle one's, times their number.

    One record per page is written (``jsontext.size_estimate``: about 1 µs for a small record,
    7 µs for a rich one), never each record: the estimate bounds memory, it need not be exact.
    """
    if not records:
        return 0
    return size_estimate(records[len(records) // 2]) * len(records)


class RowBudget:
    """Thread-safe count of the records (and their bytes) the resources of one run hold.

    ``limit``: records; ``max_bytes``: bytes as ``page_bytes`` estimates them. Each resource
    takes its ``Share`` (``join``) and adds its pages to it. Raises ``ValueError`` for a limit
    below 1.
    """

    def __init__(self, limit: int = DEFAULT_BUFFER_ROWS, *,
                 max_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        if limit < 1 or max_bytes < 1:
            raise ValueError(f"the budget must be >= 1 record and >= 1 byte, got {limit} "
                             f"records and {max_bytes} bytes")
        self.limit, self.max_bytes = limit, max_bytes
        self._held = self._held_bytes = 0
        self.peak = self.peak_bytes = 0  # the most held at once: for logs and tests
        self._members = 0
        self._lock = threading.Lock()
        self._commit_slots = threading.BoundedSemaphore(COMMIT_SLOTS)

    @classmethod
    def for_batches(cls, batch_rows: int) -> RowBudget:
        """The default budget of a run whose resources commit every ``batch_rows`` records:
        larger batches asked for get proportionally more bytes too."""
        limit = max(DEFAULT_BUFFER_ROWS, 2 * batch_rows)
        return cls(limit, max_bytes=DEFAULT_BUFFER_BYTES * limit // DEFAULT_BUFFER_ROWS)

    @property
    def held(self) -> int:
        """Records held now by all resources of the run."""
        return self._held

    @property
    def held_bytes(self) -> int:
        """Their estimated bytes."""
        return self._held_bytes

    def join(self) -> Share:
        """A resource starts holding records: its share of the budget."""
        with self._lock:
            self._members += 1
        return Share(self)

    @contextmanager
    def committing(self) -> Iterator[None]:
        """Hold one of the run's commit slots for the duration of a commit."""
        with self._commit_slots:
            yield

    def _take(self, share: Share, rows: int, size: int) -> bool:
        with self._lock:
            share.rows += rows
            share.bytes += size
            self._held += rows
            self._held_bytes += size
            self.peak = max(self.peak, self._held)
            self.peak_bytes = max(self.peak_bytes, self._held_bytes)
            halves = 2 * max(1, self._members)
            return ((self._held > self.limit and share.rows >= self.limit // halves)
                    or (self._held_bytes > self.max_bytes
                        and share.bytes >= self.max_bytes // halves))

    def _give_back(self, share: Share, *, leaving: bool) -> None:
        with self._lock:
            self._held = max(0, self._held - share.rows)
            self._held_bytes = max(0, self._held_bytes - share.bytes)
            share.rows = share.bytes = 0
            if leaving:
                self._members = max(0, self._members - 1)


class Share:
    """What one resource of the run holds (``rows``, estimated ``bytes``) until it commits."""

    def __init__(self, budget: RowBudget) -> None:
        self.budget = budget
        self.rows = 0
        self.bytes = 0

    def take(self, records: Sequence[object]) -> bool:
        """Count a page's ``records``; True if the resource should commit what it holds now."""
        return self.budget._take(self, len(records), page_bytes(records))

    def committed(self) -> None:
        """What the resource held is committed: no longer held."""
        self.budget._give_back(self, leaving=False)

    def leave(self) -> None:
        """The resource is done; what it still holds (after a failure) is no longer held."""
        self.budget._give_back(self, leaving=True)

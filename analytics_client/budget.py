"""A run-wide bound on the records held in memory while waiting for their Delta commit.

Each resource commits when its batch reaches ``batch_rows``; alone that would let every
resource of a run hold a full batch at once, so a run over large resources would need several
times the memory of one over small ones. The budget caps the sum: while the run holds more than
``limit`` records, a resource holding at least its share (``limit / (2 * resources)``) commits
at its next page. Some resource always holds that much when the sum is over the limit, so
the run stays within about the limit plus a page per resource, whatever the size or number of
the resources, and a small resource does not commit page by page.

A commit briefly needs a few times its batch (records, typed frame, the merge's own copies),
so at most ``COMMIT_SLOTS`` resources of a run commit at once: on the 2-core machines we run
on, more at once would not finish sooner, only need more memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DEFAULT_BUFFER_ROWS", "RowBudget"]

DEFAULT_BUFFER_ROWS = 20_000
COMMIT_SLOTS = 2


class RowBudget:
    """Thread-safe count of the records the resources of one run are holding."""

    def __init__(self, limit: int = DEFAULT_BUFFER_ROWS) -> None:
        if limit < 1:
            raise ValueError(f"the row budget must be >= 1, got {limit}")
        self.limit = limit
        self._held = 0
        self._members = 0
        self._lock = threading.Lock()
        self._commit_slots = threading.BoundedSemaphore(COMMIT_SLOTS)

    @classmethod
    def for_batches(cls, batch_rows: int) -> RowBudget:
        """The default budget of a run whose resources commit every ``batch_rows`` records."""
        return cls(max(DEFAULT_BUFFER_ROWS, 2 * batch_rows))

    @property
    def held(self) -> int:
        return self._held

    def join(self) -> None:
        with self._lock:
            self._members += 1

    def leave(self, holding: int) -> None:
        """A resource is done; what it still holds (after a failure) is no longer held."""
        with self._lock:
            self._members = max(0, self._members - 1)
            self._held = max(0, self._held - holding)

    def take(self, rows: int, *, holding: int) -> bool:
        """Count ``rows`` more; True if the resource now ``holding`` records should commit."""
        with self._lock:
            self._held += rows
            share = self.limit // (2 * max(1, self._members))
            return self._held > self.limit and holding >= share

    @contextmanager
    def committing(self) -> Iterator[None]:
        """Hold one of the run's commit slots for the duration of a commit."""
        with self._commit_slots:
            yield

    def give_back(self, rows: int) -> None:
        with self._lock:
            self._held = max(0, self._held - rows)

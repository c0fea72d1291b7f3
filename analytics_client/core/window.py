"""What one read covers: a cursor range in epoch microseconds."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Window"]


@dataclass(frozen=True)
class Window:
    """What one read covers, in epoch µs: ``[start_us, end_us)``; None is open."""

    start_us: int | None
    end_us: int | None = None

    @property
    def backfill(self) -> bool:
        """A window with an end is a backfill: it neither reads nor moves the mark (dlt)."""
        return self.end_us is not None

"""How a table keeps a mark: app transactions of the commit that holds the rows it covers.

A mark (``TableMark``) is the pipeline's app transaction ``<app>`` -> cursor (epoch µs), beside
it the API's clock ``<app>:api-clock`` (state/markpolicy.py says what it proves), and the ranges
ahead of it that a stopped read had read in full.

**Ranges ahead of the mark.** A sliced read (read/slices.py) walks several cursor ranges at
once; its mark is the end of the part read contiguously from its start, but the walks above it
have read ranges of their own. Stopped (Ctrl-C, SIGTERM) or killed, a run that kept only the
mark made its resume read them all again (issue 23: a resume fetched 8,701 pages of a full
read's 9,323). So each commit that records a mark also records those ranges, ``[from, to)`` in
epoch µs, as app transactions of the same commit: atomic with the rows they cover, like the
mark itself (a commit's ``commitInfo`` would be as atomic, but is not part of the table's
snapshot: it would take a walk back through the log to find, and is gone once the log is
cleaned up). Under the pipeline's app id ``<app>``:

* ``<app>:ahead`` -> how many ranges this commit recorded (0: none);
* ``<app>:ahead-at`` -> the mark they were recorded with: ranges are used only while the
  table's mark is still that one (a commit of an older version of this code, or another
  writer, that moved the mark without them makes them stale);
* ``<app>:ahead:<i>:from`` and ``<app>:ahead:<i>:to`` for ``i < count``.

App transactions are never removed, only overwritten; entries past the count are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from deltalake import DeltaTable, Transaction

__all__ = ["MAX_RANGES", "Ranges", "TableMark", "ahead_transactions", "clock_app_id",
           "read_ahead"]

Ranges = tuple[tuple[int, int], ...]  # [from, to) in epoch µs, ascending, disjoint
# Ranges one commit records at most (the lowest ones; dropping a range only costs a re-read):
# one per walk of a resource, and a run has at most the client's in-flight limit of them.
MAX_RANGES = 64


@dataclass(frozen=True)
class TableMark:
    """A high-water mark as stored in a table: app id (one per pipeline), cursor in epoch µs.

    ``clock_us``: the API's clock (epoch µs) when the complete read that reached ``cursor_us``
    began, kept beside it under ``clock_app_id`` (state/markpolicy.py says what it proves); 0 for
    a mark no complete read has reached yet (a commit in the middle of a read); None: no clock
    kept at all (a child's parent version), and an earlier one is left as it is. ``ahead``:
    ranges above the mark a stopped read had read in full (below); None: none kept.
    """

    app_id: str
    cursor_us: int
    clock_us: int | None = None
    ahead: Ranges | None = None

    @property
    def clock_app_id(self) -> str:
        return clock_app_id(self.app_id)

    def transactions(self) -> list[Transaction]:
        """The Delta app transactions that record this mark in a commit."""
        found = [Transaction(app_id=self.app_id, version=self.cursor_us)]
        if self.clock_us is not None:
            found.append(Transaction(app_id=self.clock_app_id, version=max(0, self.clock_us)))
        if self.ahead is not None:
            found += ahead_transactions(self.app_id, self.cursor_us, self.ahead)
        return found


def clock_app_id(app_id: str) -> str:
    """Under which app id a table keeps the API's clock of the mark kept under ``app_id``."""
    return f"{app_id}:api-clock"


def ahead_transactions(app_id: str, mark_us: int, ahead: Ranges) -> list[Transaction]:
    """The app transactions recording ``ahead`` beside the mark ``mark_us`` of ``app_id``."""
    kept = ahead[:MAX_RANGES]
    found = [Transaction(app_id=f"{app_id}:ahead", version=len(kept)),
             Transaction(app_id=f"{app_id}:ahead-at", version=mark_us)]
    for i, (start, end) in enumerate(kept):
        found += [Transaction(app_id=f"{app_id}:ahead:{i}:from", version=start),
                  Transaction(app_id=f"{app_id}:ahead:{i}:to", version=end)]
    return found


def read_ahead(table: DeltaTable, app_id: str, mark_us: int) -> Ranges:
    """The ranges recorded with the table's mark ``mark_us``; () when none were, or when they
    were recorded with another mark (stale) or do not read as ascending disjoint ranges."""
    count, at = (table.transaction_version(f"{app_id}:{k}") for k in ("ahead", "ahead-at"))
    if not count or at is None or int(at) != mark_us:
        return ()
    ranges: list[tuple[int, int]] = []
    for i in range(min(int(count), MAX_RANGES)):
        start = table.transaction_version(f"{app_id}:ahead:{i}:from")
        end = table.transaction_version(f"{app_id}:ahead:{i}:to")
        if start is None or end is None or int(start) >= int(end) \
                or int(start) <= (ranges[-1][1] if ranges else mark_us):
            return ()  # not what this module writes: trust none of it
        ranges.append((int(start), int(end)))
    return tuple(ranges)

"""Progress of a long read: share of the API's ``total_count``, rate, time left.

The API says on a walk's first page how many records lie at or after its start
(``meta.page.total_count``); a walk reads them and, by design, a few twice (page edges and tie
groups, ``keyset.py``), so the records read once are what is compared with the count. Records
created during the run can push the share past 100 %: it is capped at 99 % until the read ends.
Without a count (plain paging without totals) the line gives rows and rate only.

Lines go to the run's logger: the terminal (Prefect's console) and the flow run's logs both get
them, every ``Timing.progress_every`` seconds. A redrawn bar (``rich``, which Prefect ships) would
fight Prefect's own log lines on the same terminal, and would not reach the flow run's logs.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["expected_total", "progress_line"]


class _Counted(Protocol):
    @property
    def first_total(self) -> int | None: ...


def expected_total(walk: object) -> int | None:
    """The API's count of the records this read will cover, when it gave one."""
    walks = getattr(walk, "walks", None)
    if walks:  # a sliced walk: its first walk asked for everything from the start
        walk = walks[0]
    total = getattr(walk, "first_total", None)
    return total if isinstance(total, int) else None


def progress_line(rows: int, reread: int, total: int | None, seconds: float, pages: int,
                  commits: int) -> str:
    """``45 % (4,500 of 10,000 rows), 1,230 rows/s, about 5 s left; 450 pages, 3 commits``."""
    distinct = max(0, rows - reread)
    rate = distinct / seconds if seconds > 0 else 0.0
    tail = f"{pages:,} pages, {commits:,} commits"
    if total is None or total <= 0:
        return f"{rows:,} rows, {rate:,.0f} rows/s; {tail}"
    share = min(99, int(100 * distinct / total))
    left = max(0, total - distinct)
    eta = _duration(left / rate) if rate > 0 else "unknown"
    return (f"{share} % ({distinct:,} of {total:,} rows), {rate:,.0f} rows/s, about {eta} left; "
            f"{tail}")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"

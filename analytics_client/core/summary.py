"""The per-resource summary every run ends with: what was fetched, written, retried, how long.

Also what one table write did (``WriteResult``, returned by lake.tables): the summary adds it up,
and a lower layer than the lake must own it for that.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

__all__ = [
    "HEADERS", "ResourceSummary", "WriteResult", "markdown_rows", "render_markdown", "render_table",
]


@dataclass(frozen=True)
class WriteResult:
    """Rows a write inserted and updated, and the Delta version it committed (None: no commit).

    ``quarantined``: records of the batch set aside (committed to the quarantine first).
    ``deleted``: rows it deleted or marked deleted (lake/deletes.py, tombstones).
    """

    inserted: int
    updated: int
    version: int | None
    quarantined: int = 0
    deleted: int = 0


@dataclass
class ResourceSummary:
    """Counters of one resource in one run; filled in as the run goes."""

    resource: str
    status: str = "running"  # "ok", "failed" or "stopped" (Ctrl-C / SIGTERM: committed so far)
    pages: int = 0
    rows_fetched: int = 0
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0  # records set aside in <lake>/_quarantine (quarantine.py)
    retries: int = 0
    commits: int = 0
    reread: int = 0  # records served again that the read had already seen (keyset page edges)
    deleted: int = 0  # rows deleted or marked _deleted_at: the API no longer has their records
    delete_requests: int = 0  # requests spent finding deletes (probes, re-reads: deletes.py)
    seconds: float = 0.0
    table_version: int | None = None
    first_version: int | None = None  # the run's first commit: a change feed reads from here
    mark: str | None = None  # the high-water mark committed by this run, if it moved
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def add_write(self, result: WriteResult) -> None:
        """Count one table write (lake.py) of this resource: rows, set aside, its commit."""
        self.inserted += result.inserted
        self.updated += result.updated
        self.deleted += result.deleted
        self.quarantined += result.quarantined
        if result.version is not None:
            self.commits += 1
            self.table_version = result.version
            if self.first_version is None:
                self.first_version = result.version

    @property
    def versions(self) -> str:
        """The Delta versions this run committed (``first-last``), for a change-feed reader:
        ``DeltaTable(uri).load_cdf(starting_version=first, ending_version=last)``."""
        if self.first_version is None or self.table_version is None:
            return "-"
        if self.first_version == self.table_version:
            return str(self.table_version)
        return f"{self.first_version}-{self.table_version}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


_COLUMNS = ("resource", "status", "pages", "rows_fetched", "inserted", "updated", "deleted",
            "quarantined", "retries", "commits", "versions", "seconds")
_HEADERS = ("resource", "status", "pages", "fetched", "inserted", "updated", "deleted",
            "quarantined", "retries", "commits", "versions", "seconds")
HEADERS = _HEADERS  # the columns of render_markdown's table, in order (for markdown_rows' readers)


def _cells(summary: ResourceSummary) -> list[str]:
    values = [getattr(summary, c) for c in _COLUMNS]
    return [f"{v:.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
            for v in values]


def _total(summaries: Sequence[ResourceSummary]) -> list[str]:
    failed = sum(s.status == "failed" for s in summaries)
    stopped = sum(s.status == "stopped" for s in summaries)
    status = ", ".join([f"{failed} failed"] * bool(failed) + [f"{stopped} stopped"] * bool(stopped))
    row = ["total", status or "ok"]
    for column in _COLUMNS[2:-1]:
        if column == "versions":  # one table's versions: no total
            row.append("")
            continue
        row.append(f"{sum(getattr(s, column) for s in summaries):,}")
    row.append(f"{max((s.seconds for s in summaries), default=0.0):.1f}")
    return row


def render_table(summaries: Sequence[ResourceSummary]) -> str:
    """A plain-text table for terminals and logs, failures explained below it."""
    rows = [list(_HEADERS), *(_cells(s) for s in summaries), _total(summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i < 2 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    # Wrapped for a terminal; an error stays on one line, so that it can be searched for whole.
    lines.extend(textwrap.fill(note, 100, subsequent_indent="  ") if note.startswith("fetched ")
                 else note for note in _footnotes(summaries))
    return "\n".join(lines)


def render_markdown(summaries: Sequence[ResourceSummary], title: str = "Sync summary") -> str:
    """The same table as markdown, for the Prefect artifact."""
    lines = [f"# {title}", "", "| " + " | ".join(_HEADERS) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(_HEADERS))) + "|"]
    for row in [*(_cells(s) for s in summaries), _total(summaries)]:
        lines.append("| " + " | ".join(row) + " |")
    notes = _footnotes(summaries)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def markdown_rows(markdown: str) -> list[list[str]]:
    """The resource rows of a table that ``render_markdown`` wrote, as cells in ``HEADERS`` order.

    For a run made of other runs (flows/fanout.py), which reads each child's summary artifact:
    header and total rows are left out (by position: a resource may be named "total"); a row of
    another width is not ours and is skipped. Cells are the rendered text ("1,234", "0.5").
    """
    rows = [[c.strip() for c in line[2:-2].split(" | ")] for line in markdown.splitlines()
            if line.startswith("| ") and line.endswith(" |")]
    rows = [cells for cells in rows if len(cells) == len(_HEADERS)]
    return rows[1:-1]  # render_markdown writes the header first and the total last


def _footnotes(summaries: Sequence[ResourceSummary]) -> list[str]:
    out = []
    for s in summaries:
        if s.error:
            # A resource's errors start with its name already ("deals: HTTP 401 ...").
            error = s.error if s.error.startswith(f"{s.resource}: ") else f"{s.resource}: {s.error}"
            out.append(f"{s.status}: {error}" if s.status == "stopped" else f"failed: {error}")
        out.extend(f"{s.resource}: {note}" for note in s.notes)
    out.extend(_why_fetched_exceeds_written(summaries))
    return out


def _why_fetched_exceeds_written(summaries: Sequence[ResourceSummary]) -> list[str]:
    """A user coming from dlt asks why fetched > inserted + updated: say it, with the numbers.

    Every record the API served counts as fetched; inserted and updated count rows a table
    changed. The rest were read twice (each keyset request starts again at the last cursor of
    the page before, and tie groups are read again) or were already in the table as served.
    """
    fetched = sum(s.rows_fetched for s in summaries)
    written = sum(s.inserted + s.updated for s in summaries)
    aside = min(sum(s.quarantined for s in summaries), max(0, fetched - written))
    if fetched <= written + aside:
        return []
    reread = min(sum(s.reread for s in summaries), fetched - written - aside)
    unchanged = fetched - written - aside - reread
    set_aside = f" + {aside:,} set aside (quarantined)" if aside else ""
    return [
        f"fetched {fetched:,} = {written:,} inserted or updated{set_aside} + {reread:,} read "
        f"twice at page edges, slice edges and in tie groups (each incremental request starts "
        f"again at the last "
        f"timestamp of the page before, so no record sharing it is missed) + {unchanged:,} "
        "already in the table as served or read again after a tie group (unchanged rows are not "
        "rewritten; an incremental run re-reads its lag window; a record changed while paging is "
        "read in both versions)"
    ]

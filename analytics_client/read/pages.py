"""Pages: the one shape every read of a resource yields, whatever walks the API.

A page-number read (``extract.PaginatedRead``), a keyset walk (``keyset.KeysetWalk``) and a
sliced walk (``slices.SlicedWalk``) are all a ``PageSource``: an iterable of ``Page`` s, each
with the mark its consumption allows, and, once the read ran to its end, the mark the whole
read allows (``end_mark``). The caller commits a page's records before it saves its mark
(``markpolicy.py``), so a mark never runs ahead of the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Page", "PageSource"]


@dataclass(frozen=True)
class Page:
    """One page of records.

    ``number`` labels it in logs and errors (the page number where there is one). ``mark``
    (epoch µs, None for reads without a cursor) is the cursor below which every record of the
    read has been yielded once this page is consumed. ``ahead``: ranges ``[from, to)`` above
    ``mark`` whose every record has been yielded too (a sliced read's other walks: resume.py).
    ``served``: every record the API served on the page, where the read kept fewer (a filter
    applied on our side); delete capture judges keys by what was served.
    """

    records: list[Any]
    number: int | None = None
    mark: int | None = None
    ahead: tuple[tuple[int, int], ...] = ()
    served: list[Any] | None = None  # what the API served, where we kept fewer (None: records)

    @property
    def all_served(self) -> list[Any]:
        """Every record the API served on the page (``served``, or the records kept)."""
        return self.records if self.served is None else self.served


class PageSource(Protocol):
    """What a resource's read offers the sync loop."""

    @property
    def keyset(self) -> bool:
        """Whether the read walks the cursor (its pages carry marks; a full read is counted)."""

    @property
    def served_everything(self) -> bool:
        """Whether the API served every record it holds (no filter of its own applied), so
        every key it holds is in the pages' ``served``: deletes need no count then."""

    @property
    def total_count(self) -> int | None:
        """The API's count when a full read began (None if unknown or incremental)."""

    @property
    def reread(self) -> int:
        """Records served again that the read had already yielded (page edges, tie groups)."""

    @property
    def recovered(self) -> int:
        """Records a tie-group re-read found that a shifting page had hidden."""

    def __iter__(self) -> Iterator[Page]: ...

    def end_mark(self) -> int | None:
        """The mark the whole read allows once it ran to its end; None before, or without one."""

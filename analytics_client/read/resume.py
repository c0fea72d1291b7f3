"""Resuming a stopped read where its work stopped: which ranges to walk, and what is read.

A sliced read (``slices.py``) that was stopped or killed committed, besides its mark, the
ranges above it that its other walks had read in full (``Start.ahead``, kept in the table:
``lake/tablemark.py``). A resume walks only what lies between them:

* from where the read begins (``Cursor.begin``: the mark less ``lag``) up to the first range,
* from ``lag`` before each range's end up to the next range, the last one to the end.

Why a range need not be read again, but its last ``lag`` seconds must: a walk that moved its
``lo`` to ``x`` at a moment ``t`` of the API's clock had been served every record of its range
below ``x`` that was visible then; the marks it committed are capped at the API's clock when
its read began (``state/markpolicy.py``), so ``x <= t``. A version it was not served was not
visible at ``t``, so (the contract: visible at most 5 s after its stamp) it is stamped after
``t - 5 s >= x - 5 s``; a record changed later is stamped later still (the API's clock moves
forward), above ``x - 5 s`` as well. So below ``x - lag`` (``lag`` >= 5 s, as for the mark) the
range holds in the table every version it ever will: exactly the argument that lets a run
start at ``mark - lag``, applied to each range's end. The resume's walks read from there.

What a run has read is the union of those ranges and of its own walks' ``[start, lo)`` (a
finished walk's: to its end); its mark is the end of the part of that union that is contiguous
from where the read began (``covered``), and the rest is what it commits as ``ahead``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from analytics_client.core.timestamps import MIN_US
from analytics_client.lake.tablemark import Ranges
from analytics_client.read.plan import Cursor
from analytics_client.state.marks import Start

__all__ = ["Resume", "covered", "resume_of"]

Bound = int | None  # a range's end in epoch µs; None: from the beginning / to the end
_BEFORE_ALL = MIN_US - 1  # below every cursor: a range from the beginning


@dataclass(frozen=True)
class Resume:
    """A resumed read: the ranges its walks read (``walks``, in cursor order, the last open),
    and the ranges between them already read in full (``done``)."""

    walks: tuple[tuple[Bound, Bound], ...]
    done: Ranges


def resume_of(cursor: Cursor, start: Start) -> Resume | None:
    """The walks a read from ``start`` makes, given the ranges ``start.ahead`` read before;
    None when none of them saves anything (no range, or each shorter than ``lag``)."""
    begin = cursor.begin(start)
    walks: list[tuple[Bound, Bound]] = []
    lo = begin
    for a, x in start.ahead:
        again = cursor.read_from(x)
        assert again is not None
        if again <= a or (lo is not None and again <= lo):
            continue  # too short to save a page: the walk reads on through it
        if lo is None or lo < a:
            walks.append((lo, a))
        lo = again
    if lo == begin:
        return None
    walks.append((lo, None))
    return Resume(tuple(walks), start.ahead)


def covered(begin: Bound, ranges: Iterable[tuple[Bound, Bound]]) -> tuple[Bound, Ranges]:
    """(mark, ahead): the end of the union of ``ranges`` (each ``[from, to)``; a ``from`` of
    None: the beginning) contiguous from ``begin`` (None: the beginning), and the union's
    disjoint ranges above it. The mark is ``begin`` when nothing from there on was read."""
    spans = sorted((_BEFORE_ALL if s is None else s, e) for s, e in ranges
                   if e is not None and (s is None or s < e))
    mark = _BEFORE_ALL if begin is None else begin
    ahead: list[tuple[int, int]] = []
    for s, e in spans:
        if not ahead and s <= mark:
            mark = max(mark, e)
        elif e > mark:
            s = max(s, mark + 1)
            if ahead and s <= ahead[-1][1]:
                ahead[-1] = (ahead[-1][0], max(ahead[-1][1], e))
            elif s < e:
                ahead.append((s, e))
    return (None if mark == _BEFORE_ALL else mark), tuple(ahead)

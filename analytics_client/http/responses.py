"""From a response to records, as dlt's config says: ``data_selector``, ``response_actions``
and ``processing_steps``.

``data_selector`` is JSONPath or a dotted path, read by ``core.jsonpath.select`` (dlt's rule for
the matches is told there). A plain dotted path keeps its stricter reading: the key must be
there and hold a list, because on a paged list endpoint a missing or non-list ``data`` is a
broken page, not an empty one (dlt would load nothing and say so only in a warning).

``response_actions`` (dlt's ``create_response_hooks``): each action is tried in order against
every response, before its status is judged; ``status_code`` must equal, ``content`` must be
a substring of the body text, both when both are given; the first match whose ``action`` is
``ignore`` drops the response and ends the read of the resource, as dlt's paginate loop does.

``processing_steps`` (dlt's ``add_filter`` / ``add_map`` / ``add_yield_map`` in list order,
Python configs only): applied to each page's records after its paginator and walk have seen
them, so paging and incremental marks count every record the API served: a record a filter
drops is covered by the read, not missing from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["apply_steps", "ignored_by"]


class Action(Protocol):
    """A ``response_actions`` entry (``config.ResponseAction``)."""

    @property
    def status_code(self) -> int | None: ...
    @property
    def content(self) -> str | None: ...
    @property
    def action(self) -> str: ...


class Step(Protocol):
    """A ``processing_steps`` entry (``config.ProcessingStep``)."""

    @property
    def filter(self) -> Callable[[Any], bool] | None: ...
    @property
    def map(self) -> Callable[[Any], Any] | None: ...
    @property
    def yield_map(self) -> Callable[[Any], Iterable[Any]] | None: ...


A = TypeVar("A", bound=Action)


def ignored_by(actions: Sequence[A], status: int, text: Callable[[], str]) -> A | None:
    """The first action that ignores this response, else None (``text`` is read only when an
    action asks for content)."""
    body: str | None = None
    for action in actions:
        if action.status_code is not None and action.status_code != status:
            continue
        if action.content is not None:
            body = text() if body is None else body
            if action.content not in body:
                continue
        if action.action == "ignore":
            return action
    return None


def apply_steps(steps: Iterable[Step], records: list[Any]) -> list[Any]:
    """``records`` through each step in order: its ``filter`` keeps a record when true, then
    its ``map`` replaces it, then its ``yield_map`` replaces it by the records it yields (dlt's
    order within one step)."""
    for step in steps:
        if step.filter is not None:
            keep = step.filter
            records = [r for r in records if keep(r)]
        if step.map is not None:
            records = [step.map(r) for r in records]
        if step.yield_map is not None:
            records = [out for r in records for out in step.yield_map(r)]
    return records

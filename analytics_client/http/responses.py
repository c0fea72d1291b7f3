"""From a response to records, as dlt's config says: ``data_selector``, ``response_actions``
and ``processing_steps``.

``data_selector`` is JSONPath, parsed by jsonpath-ng's extended grammar (dlt's choice, so a
selector means what it meant under dlt). dlt's rule for the matches
(``RESTClient.extract_response``): one match is the value itself, several are a list of them,
a null is an empty page and a single object is one record. A plain dotted path
(``data``, ``$.meta.items``) keeps its stricter reading: the key must be there and hold a list,
because on a paged list endpoint a missing or non-list ``data`` is a broken page, not an
empty one (dlt would load nothing and say so only in a warning). Dotted paths are looked up
without jsonpath-ng: a dict walk is about 50 times cheaper per page.

``response_actions`` (dlt's ``create_response_hooks``): each action is tried in order against
every response, before its status is judged; ``status_code`` must equal, ``content`` must be
a substring of the body text, both when both are given; the first match whose ``action`` is
``ignore`` drops the response and ends the read of the resource, as dlt's paginate loop does.

``processing_steps`` (dlt's ``add_filter`` / ``add_map`` in list order, Python configs only):
applied to each page's records after its paginator and walk have seen them, so paging and
incremental marks count every record the API served: a record a filter drops is covered by
the read, not missing from it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as _parse

from analytics_client.http.paginators import MISSING, lookup

__all__ = ["MISSING", "apply_steps", "compile_selector", "drops_records", "ignored_by", "is_dotted",
           "select"]

_DOTTED = re.compile(r"^(?:\$|(?:\$\.)?[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)$")


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


A = TypeVar("A", bound=Action)


def is_dotted(selector: str) -> bool:
    """Whether ``selector`` is a plain dotted path (``$`` alone is the whole body)."""
    return _DOTTED.match(selector) is not None


@functools.lru_cache(maxsize=256)
def compile_selector(selector: str) -> JSONPath:
    """The parsed JSONPath; raises ``ValueError`` naming what does not parse."""
    try:
        return _parse(selector)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        raise ValueError(f"is not a JSONPath expression ({exc})") from None


# A filter (``[?...]``), an index (``[0]``, ``[-1]``, ``[0,2]``) or a slice (``[1:]``): RFC 9535
# selectors that pick some members of a list, where a name or a wildcard takes all of them.
_PICKS_SOME = re.compile(r"\[\s*(?:\?|-?\d|:)")


def drops_records(selector: str) -> bool:
    """Whether a JSONPath ``selector`` may select some of a list's members but not others.

    Paginators and keyset walks decide from the selected records (short page, last cursor),
    as dlt's do: a selector that filters makes them see less than the API served.
    """
    return _PICKS_SOME.search(selector) is not None


def select(body: Any, selector: str) -> Any:
    """The records at ``selector``: a list, or ``MISSING`` when a dotted path is absent.

    A dotted path returns what is there (the caller insists on a list); a JSONPath follows
    dlt's rule for its matches (module docstring).
    """
    if is_dotted(selector):
        return lookup(body, selector)
    values = [match.value for match in compile_selector(selector).find(body)]
    data = values[0] if len(values) == 1 else values
    if data is None:
        return []
    return data if isinstance(data, list) else [data]


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
    its ``map`` replaces it (dlt's order within one step)."""
    for step in steps:
        if step.filter is not None:
            keep = step.filter
            records = [r for r in records if keep(r)]
        if step.map is not None:
            records = [step.map(r) for r in records]
    return records

"""Reading JSON bodies by path: dotted paths (``meta.page.total_pages``) and dlt's JSONPath.

Two readings, both dlt's: ``select`` for ``data_selector`` (below) and ``lookup`` for every
path key dlt reads as one value (paginator ``cursor_path``, ``next_url_path``, ``total_path``,
``has_more_path``): the first match's value (dlt's ``jsonpath.find_values(...)[0]``), so
Stripe's ``data[-1].id`` and ``$['@odata.nextLink']`` mean what they mean under dlt. One
addition: a path that matches nothing but is itself a key of the body (``@odata.nextLink``,
which JSONPath reads as ``@odata`` then ``nextLink``) is read as that key, because that is
what the user meant (dlt-hub/dlt#2505) and no other reading finds anything.

``data_selector`` is JSONPath, parsed by jsonpath-ng's extended grammar (dlt's choice, so a
selector means what it meant under dlt). dlt's rule for the matches
(``RESTClient.extract_response``): one match is the value itself, several are a list of them,
a null is an empty page and a single object is one record. A plain dotted path
(``data``, ``$.meta.items``) keeps its stricter reading: the key must be there and hold a list,
because on a paged list endpoint a missing or non-list ``data`` is a broken page, not an
empty one. Dotted paths are looked up without jsonpath-ng: a dict walk is about 50 times
cheaper per page.

Here, below the config and the HTTP layer, because both need it: the config checks a
``data_selector`` when it is loaded, and the paginators and reads follow paths in each page.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as _parse

__all__ = ["MISSING", "compile_selector", "drops_records", "is_dotted", "lookup", "select",
           "set_at"]

MISSING = object()  # what lookup returns for an absent path (None is a value a body may hold)
_DOTTED = re.compile(r"^(?:\$|(?:\$\.)?[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)$")


def lookup(body: Any, path: str) -> Any:
    """The value at ``path`` in ``body``, or ``MISSING`` when nothing matches.

    A dotted path (``meta.page.total_pages``, with or without a leading ``$.``; ``$`` alone is
    the whole body) is a dict walk, about 50 times cheaper per page than jsonpath-ng; any other
    path is JSONPath (jsonpath-ng's extended grammar, dlt's parser) and gives its first match,
    as dlt reads paginator paths. Then the literal-key rule of the module docstring.
    Raises ``ValueError`` for a path that does not parse (the config checks it at load time).
    """
    if is_dotted(path):
        value = _walk(body, path)
    else:
        matches = compile_selector(path).find(body)
        value = matches[0].value if matches else MISSING
    if value is MISSING and isinstance(body, dict) and path in body:
        return body[path]
    return value


def _walk(body: Any, dotted: str) -> Any:
    path = dotted.removeprefix("$.") if dotted != "$" else ""
    node = body
    for part in path.split(".") if path else ():
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def set_at(obj: dict[str, Any], dotted: str, value: Any) -> None:
    """Put ``value`` at a dot-separated ``dotted`` path of a JSON request body, creating the
    mappings on the way (dlt's ``set_value_at_path``, which the ``*_body_path`` paginator keys
    use: ``page_body_path: "paging.page"`` sends ``{"paging": {"page": 2}}``)."""
    parts = dotted.split(".")
    node = obj
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


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
        return _walk(body, selector)
    values = [match.value for match in compile_selector(selector).find(body)]
    data = values[0] if len(values) == 1 else values
    if data is None:
        return []
    return data if isinstance(data, list) else [data]

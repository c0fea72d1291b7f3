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
a null is an empty page and a single object is one record; ``$``, the whole body, is read by
that rule too (``whole_body``: a detail endpoint's object is one record). A plain dotted path
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

__all__ = ["MISSING", "compile_selector", "drops_records", "field_chain", "field_value",
           "find_records", "is_dotted", "lookup", "select", "set_at", "whole_body"]

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


def whole_body(body: Any) -> list[Any]:
    """The records of ``data_selector: $``, dlt's rule for the one match of the root
    (``RESTClient.extract_response``): a list is the records, null is none, and anything else,
    a JSON object above all (a detail endpoint's ``/posts/{id}``), is one record."""
    if body is None:
        return []
    return body if isinstance(body, list) else [body]


# dlt's detector (dlt/sources/helpers/rest_client/detector.py): the keys a page's list of
# records is found under, and those that hold something else.
RECORD_KEYS = frozenset({"data", "items", "results", "entries", "records", "rows", "entities",
                         "payload", "content", "objects", "values"})
_DEEPEST = 2  # dlt's find_all_lists looks into nested objects two levels down


def find_records(body: Any) -> list[Any]:
    """The records of a page when ``data_selector`` is omitted: dlt's detection
    (``find_response_page_data``), page by page.

    A list, null or scalar body is read as ``$`` is (``whole_body``). In an object, the lists
    are found depth first, two levels of nesting at most, in the body's key order; the first
    whose key is a record key (``data``, ``items``, ``results``, ...) holds the records, else the
    first list found. An object holding no list is one record (a detail endpoint), as dlt
    reads it, with one exception of ours: a page wrapper whose record key is null
    (``{"data": null, "meta": ...}``, an API's empty last page) and that carries no ``id`` of
    its own holds no records. dlt reaches the same end by keeping the path it detected on the
    first page; a rule that needs no memory serves reads of any shape (keyset, sliced, child).
    """
    if not isinstance(body, dict):
        return whole_body(body)
    lists: list[tuple[tuple[str, ...], list[Any]]] = []
    _lists_in(body, (), lists)
    for path, found in lists:
        if path[-1] in RECORD_KEYS:
            return found
    if lists:
        return lists[0][1]
    if "id" not in body and any(body.get(key, 0) is None for key in RECORD_KEYS):
        return []
    return [body]


def _lists_in(node: dict[str, Any], path: tuple[str, ...],
              found: list[tuple[tuple[str, ...], list[Any]]]) -> None:
    if len(path) > _DEEPEST:
        return
    for key, value in node.items():
        if isinstance(value, list):
            found.append(((*path, key), value))
        elif isinstance(value, dict):
            _lists_in(value, (*path, key), found)


def select(body: Any, selector: str) -> Any:
    """The records at ``selector``: a list, or ``MISSING`` when a dotted path is absent.

    A dotted path returns what is there (the caller insists on a list); a JSONPath follows
    dlt's rule for its matches (module docstring).
    """
    if selector == "$":
        return whole_body(body)
    if is_dotted(selector):
        return _walk(body, selector)
    values = [match.value for match in compile_selector(selector).find(body)]
    data = values[0] if len(values) == 1 else values
    if data is None:
        return []
    return data if isinstance(data, list) else [data]


@functools.lru_cache(maxsize=256)
def field_chain(path: str) -> tuple[str, ...] | None:
    """The field names a JSONPath walks when it is a plain chain of fields (``updated``,
    ``$.updated``, ``properties.hs_lastmodifieddate``, ``$['properties']['x']``): one value
    per record, as a cursor needs (dlt's ``incremental.cursor_path`` takes the first match).
    None for anything else (a filter, a wildcard, an index, several names, or no JSONPath)."""
    from jsonpath_ng.jsonpath import Child, Fields, Root

    try:
        node = compile_selector(path)
    except ValueError:
        return None
    names: list[str] = []

    def walk(part: object) -> bool:
        if isinstance(part, Root):
            return not names  # only at the start
        if isinstance(part, Child):
            return walk(part.left) and walk(part.right)
        if isinstance(part, Fields) and len(part.fields) == 1 and part.fields[0] != "*":
            names.append(part.fields[0])
            return True
        return False

    return tuple(names) if walk(node) and names else None


def field_value(record: Any, chain: tuple[str, ...]) -> Any:
    """The value at ``chain`` (``field_chain``) in ``record``; None where a step is missing
    or not an object (a cursor that is absent and one that is null are alike to a read)."""
    node = record
    for name in chain:
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node

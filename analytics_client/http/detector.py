"""What dlt's ``detector.py`` looks for in a first response: a next page key, total pages,
and (ours) a next link under a name dlt's patterns miss. ``AutoDetectPaginator`` uses them.
"""

from __future__ import annotations

import re
from typing import Any

from analytics_client.http.paging import norm_key, walk_keys

__all__ = ["find_next_page_path", "find_total_pages_path", "unnamed_next"]

_NEXT_KEYS = re.compile(r"^next", re.IGNORECASE)  # dlt's NEXT_PAGE_KEY_PATTERNS, re.match
_NEXT_DICT_KEYS = ("href", "url")


def find_next_page_path(body: Any, path: tuple[str, ...] = ()) -> tuple[str, Any] | None:
    """dlt's ``find_next_page_path``: the first key starting with ``next`` (depth first) whose
    value is a scalar or a mapping with ``href``/``url``; ``(dotted path, value)`` or None."""
    if not isinstance(body, dict):
        return None
    for key, value in body.items():
        if isinstance(key, str) and _NEXT_KEYS.match(key):
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    if str(sub).lower() in _NEXT_DICT_KEYS \
                            and isinstance(sub_value, str | int | float):
                        return ".".join((*path, key, sub)), sub_value
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                return ".".join((*path, key)), value
        if isinstance(value, dict):
            found = find_next_page_path(value, (*path, key))
            if found is not None:
                return found
    return None


_TOTAL_PAGES_KEYS = ("total_pages", "pages", "totalpages")  # dlt's TOTAL_PAGES_KEYS, exact


def find_total_pages_path(body: Any, path: tuple[str, ...] = ()) -> tuple[str, Any] | None:
    """dlt's ``find_total_pages_path``: the first key (depth first) named ``total_pages``,
    ``pages`` or ``totalpages`` (any case) holding a scalar; ``(dotted path, value)``."""
    if not isinstance(body, dict):
        return None
    for key, value in body.items():
        if str(key).lower() in _TOTAL_PAGES_KEYS and isinstance(value, str | int | float) \
                and not isinstance(value, bool):
            return ".".join((*path, str(key))), value
        if isinstance(value, dict):
            found = find_total_pages_path(value, (*path, str(key)))
            if found is not None:
                return found
    return None


def unnamed_next(body: Any) -> str | None:
    """A next link under a key dlt's detector does not match (``@odata.nextLink``)."""
    for path, value in walk_keys(body):
        key = norm_key(path.rsplit(".", 1)[-1])
        if "next" in key and ("link" in key or "url" in key) and isinstance(value, str) \
                and value:
            return f"{path!r} holds a next link"
    return None

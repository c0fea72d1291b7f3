"""The ``Link`` header (RFC 8288): the targets and relations a server pages with (GitHub's API,
dlt's ``header_link``). Scanned, not split, since targets may hold commas and semicolons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx

__all__ = ["link_values", "next_link", "parse_link_header"]


def link_values(headers: Mapping[str, str]) -> str:
    """Every ``Link`` field line as one list (RFC 9110 §5.3: lines combine with commas)."""
    if isinstance(headers, httpx.Headers):
        return ", ".join(headers.get_list("link"))
    return ", ".join(v for k, v in headers.items() if k.lower() == "link")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """The links of a ``Link`` field value: ``(target, params)`` per link, in order.

    RFC 8288 §3: ``<URI-Reference>`` then ``; name=value`` parameters, values a token or a
    quoted string (RFC 9110 §5.6.4, backslash escapes); parameter names are case-insensitive
    and only the first ``rel`` counts. A target may hold commas and semicolons, so the value
    is scanned, not split. Anything malformed is skipped up to the next link, never raised:
    a header is input from outside.
    """
    links: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value[i] != "<":
            i = _skip_link(value, i)
            continue
        end = value.find(">", i + 1)
        if end < 0:
            break
        target, i = value[i + 1:end].strip(), end + 1
        params: dict[str, str] = {}
        while True:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] != ";":
                break
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            name_match = _TOKEN.match(value, i)
            if name_match is None:
                break
            name, i = name_match.group().lower(), name_match.end()
            while i < n and value[i] in " \t":
                i += 1
            param_value = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                param_value, i = _param_value(value, i)
            params.setdefault(name, param_value)
        links.append((target, params))
        if i < n and value[i] not in ",":
            i = _skip_link(value, i)
    return links


def _param_value(value: str, i: int) -> tuple[str, int]:
    """A token or a quoted string starting at ``i``, and where it ends."""
    if i < len(value) and value[i] == '"':
        out, i = [], i + 1
        while i < len(value) and value[i] != '"':
            if value[i] == "\\" and i + 1 < len(value):
                i += 1
            out.append(value[i])
            i += 1
        return "".join(out), i + 1
    match = _TOKEN.match(value, i)
    return (match.group(), match.end()) if match else ("", i)


def _skip_link(value: str, i: int) -> int:
    """Past the next comma outside a quoted string (a malformed link is dropped whole)."""
    quoted = False
    while i < len(value):
        char = value[i]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and quoted:
            i += 1
        elif char == "," and not quoted:
            return i + 1
        i += 1
    return i


def next_link(value: str, rel: str = "next") -> str | None:
    """The first target whose ``rel`` lists ``rel`` (relation types are space-separated and
    compared case-insensitively, RFC 8288 §3.3), or None."""
    wanted = rel.lower()
    for target, params in parse_link_header(value):
        if wanted in params.get("rel", "").lower().split():
            return target
    return None

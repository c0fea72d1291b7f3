"""The origin a URL's requests go to (RFC 6454: scheme, host, port): where credentials may go.

The one definition for both guards: the client never follows a next-page URL to another origin
(``ForeignHostError``), and a stored secret is sent only to the origin it was stored for
(``orchestration/secrets.py``). It is httpx's reading of the URL, the same parser that sends
the requests, so the two cannot disagree on which host a URL names.
"""

from __future__ import annotations

import httpx

__all__ = ["Origin", "origin", "origin_text"]

# (scheme, host in lower case, port: the scheme's default when the URL leaves it out)
Origin = tuple[str, str, int | None]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | httpx.URL) -> Origin:
    """``https://API.example.com/v1`` and ``https://api.example.com:443`` are one origin.

    Raises ``httpx.InvalidURL`` for text httpx cannot read as a URL.
    """
    url = httpx.URL(url)
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)
    return url.scheme, url.host.lower(), port


def origin_text(url: str | httpx.URL) -> str:
    """The origin as one string with its port always written: ``https://api.example.com:443``
    (an IPv6 host in brackets, ``http://[::1]:80``); equal strings, equal origins."""
    scheme, host, port = origin(url)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"

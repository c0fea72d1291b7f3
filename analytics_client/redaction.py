"""Keep secrets out of everything a run writes: log records, messages, URLs.

Our own messages are built from redacted URLs, but other libraries log too: httpx logs every
request URL at INFO, and with ``auth.location: query`` the key is in it. A logging filter on
those loggers masks every known secret value before a handler sees the record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import httpx

__all__ = ["MASK", "SecretFilter", "install_log_filter", "redact", "redact_url"]

MASK = "***"
# Masking a one- or two-letter "secret" would shred every message and protect nothing.
MIN_SECRET_LENGTH = 4
_NOISY_LOGGERS = ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "stamina")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_url(url: httpx.URL | str, secrets: Iterable[str], param_names: Iterable[str] = ()) -> str:
    """A URL safe to show: named query parameters masked, and any secret value masked."""
    url = httpx.URL(str(url))
    names = set(param_names)
    if not names & set(url.params.keys()):
        return redact(str(url), secrets)
    query = "&".join(
        f"{k}={MASK}" if k in names else str(httpx.QueryParams({k: v}))
        for k, v in url.params.multi_items()
    )
    return redact(str(url.copy_with(query=None)) + "?" + query, secrets)


class SecretFilter(logging.Filter):
    """Masks secret values in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filter(secrets: Iterable[str]) -> SecretFilter:
    """Attach one filter to the loggers of libraries that log URLs; returns it for removal."""
    secret_filter = SecretFilter(secrets)
    for name in _NOISY_LOGGERS + ("analytics_client",):
        logging.getLogger(name).addFilter(secret_filter)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return secret_filter


def remove_log_filter(secret_filter: SecretFilter) -> None:
    for name in _NOISY_LOGGERS + ("analytics_client",):
        logging.getLogger(name).removeFilter(secret_filter)
    for handler in logging.getLogger().handlers:
        handler.removeFilter(secret_filter)

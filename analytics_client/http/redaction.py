"""Keep secrets out of everything a run writes: log records, messages, URLs.

Our own messages are built from redacted URLs, but other libraries log too: httpx logs every
request URL at INFO, and with ``auth.location: query`` the key is in it. A logging filter on
those loggers masks every known secret value before a handler sees the record.

A secret travels encoded, and servers echo it encoded: a key in a query string is
percent-encoded (RFC 3986 §2.1; upper- or lowercase hex, each library with its own set of
characters left alone, ``+`` for a space in form encoding, WHATWG URL §5), an error body quotes
it JSON-escaped (RFC 8259 §7), Basic auth carries it in base64 (RFC 7617). So a secret is masked
through one pattern that matches every character in any of those spellings, plus its base64
forms, and any ``Basic``/``Bearer`` credentials in a text are masked whole.

Short secrets are the reverse risk: an organization id ``2026`` replaced everywhere would mask
the year of every timestamp and leave the message unreadable.

Some secrets exist only at run time: an OAuth2 access token is issued mid-run and replaced
before it expires. ``remember`` adds one to a process-wide list that ``redact`` (and so every
filter, error and URL shown) masks along with the secrets it is given; the list keeps the
last ``REMEMBERED`` tokens, enough for every token a run can still hold. A secret shorter than
``SHORT_SECRET`` characters, or made of digits only, is masked only as a whole token: not inside
a run of letters, digits, ``_ - . : +``.

Values the config itself puts in a request under a secret-like name (``params: {api_key:
...}``, a JSON body's ``password``) are no run-time secrets we are told of, so they are masked
by name too, as dlt's ``sanitize_url`` does with its ``SENSITIVE_PARAMS``
(dlt/sources/helpers/rest_client/redaction.py): ``redact`` masks the value after every
``name=`` of such a query parameter in a text (the name and ``=`` in any spelling a URL carries
them, any case), and ``redact_url`` masks them in a URL it parses. ``sensitive_values`` picks
those values out of a config's params and bodies, for the caller to mask as secrets wherever
else they appear (an API echoing a bad key in its error).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import threading
from collections import deque
from collections.abc import Iterable

import httpx

__all__ = ["MASK", "SENSITIVE_PARAMS", "SecretFilter", "install_log_filter", "is_sensitive",
           "redact", "redact_url", "remember", "sensitive_values"]

MASK = "***"
# Masking a one- or two-letter "secret" would shred every message and protect nothing.
MIN_SECRET_LENGTH = 4
SHORT_SECRET = 8  # shorter secrets (and digits-only ones) are masked as whole tokens only
_TOKEN_CHARS = r"\w.:+\-"  # a short secret inside a run of these is part of another token
_AUTH_SCHEME = re.compile(r"(?i)\b(basic|bearer)(\s+)[A-Za-z0-9._~+/=-]{4,}")
_NOISY_LOGGERS = ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "stamina")
REMEMBERED = 64  # run-time secrets kept; a token lives minutes to hours, a run refreshes a few
_remembered: deque[str] = deque(maxlen=REMEMBERED)
# dlt's SENSITIVE_PARAMS (dlt/sources/helpers/rest_client/redaction.py), compared lowercased as
# dlt does, plus the names the issue (#22) and common APIs add: signatures, client secrets,
# auth and session tokens, refresh tokens.
SENSITIVE_PARAMS = frozenset({
    "api_key", "token", "key", "access_token", "apikey", "api-key", "access-token", "secret",
    "password", "pwd", "client_secret",
    "signature", "sig", "auth", "authorization", "client-secret", "refresh_token",
    "refresh-token", "id_token", "session_token", "x-api-key", "passwd", "private_key",
})
_remembered_lock = threading.Lock()


def remember(secret: str) -> None:
    """Mask ``secret`` from now on wherever ``redact`` runs (a token issued at run time)."""
    if len(secret) >= MIN_SECRET_LENGTH:
        with _remembered_lock:
            if secret not in _remembered:
                _remembered.append(secret)


def is_sensitive(name: str) -> bool:
    """Whether a query parameter or body key named ``name`` carries a secret (dlt's rule:
    its lowercased name is in ``SENSITIVE_PARAMS``)."""
    return name.lower() in SENSITIVE_PARAMS


def sensitive_values(tree: object, *, under_sensitive: bool = False) -> list[str]:
    """Every text value held under a sensitive name in ``tree`` (params, a JSON body: mappings
    and lists to any depth), for masking as secrets; numbers are written as text."""
    found: list[str] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += sensitive_values(value, under_sensitive=under_sensitive
                                      or (isinstance(key, str) and is_sensitive(key)))
    elif isinstance(tree, list | tuple):
        for value in tree:
            found += sensitive_values(value, under_sensitive=under_sensitive)
    elif under_sensitive and isinstance(tree, str | int | float) and not isinstance(tree, bool):
        found.append(str(tree))
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and every ``remember``ed one), in every encoded form,
    replaced by ``***``, and the value of every query parameter with a sensitive name."""
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _sensitive_query().sub(lambda m: f"{m.group(1)}{MASK}", text)
    with _remembered_lock:
        known = {*secrets, *_remembered}
    pattern = _pattern(tuple(sorted({s for s in known if len(s) >= MIN_SECRET_LENGTH})))
    return pattern.sub(MASK, text) if pattern is not None else text


@functools.lru_cache(maxsize=1)
def _sensitive_query() -> re.Pattern[str]:
    """``<sensitive name>=<value>`` after ``?``, ``&`` or ``;`` in any text: the name spelled
    literally or percent-encoded (any case), ``=`` literal or ``%3D``; the value runs to the
    next ``&``, ``#``, quote, space or bracket (its own ``&`` is percent-encoded in a URL)."""
    names = "|".join(_spelled(n) for n in sorted(SENSITIVE_PARAMS, key=len, reverse=True))
    return re.compile(rf"(?i)((?:[?&;]|&amp;|%3[fF]|%26)(?:{names})(?:=|%3[dD]))"
                      r"""[^&#\s"'<>]*""")


@functools.lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for all forms of all secrets, longest secret first."""
    alternatives = []
    for secret in sorted(secrets, key=len, reverse=True):
        forms = "|".join([_spelled(secret), *map(re.escape, _base64_forms(secret))])
        if len(secret) < SHORT_SECRET or secret.isdigit():
            forms = f"(?<![{_TOKEN_CHARS}])(?:{forms})(?![{_TOKEN_CHARS}])"
        alternatives.append(f"(?:{forms})")
    return re.compile("|".join(alternatives)) if alternatives else None


def _spelled(secret: str) -> str:
    """A regex matching ``secret`` with each character literal, percent-encoded or JSON-escaped."""
    return "".join(_char(c) for c in secret)


@functools.lru_cache(maxsize=1024)
def _char(char: str) -> str:
    options = [re.escape(char)]
    options.append("".join(f"%{_hex(f'{b:02X}')}" for b in char.encode("utf-8", "surrogatepass")))
    if char == " ":
        options.append(r"\+")
    escaped = json.dumps(char)[1:-1]  # \" \\ \n ... or \uXXXX (a pair beyond the BMP)
    if escaped != char:
        options.append(re.escape(escaped) if not escaped.startswith("\\u") else
                       "".join(rf"\\u{_hex(part)}" for part in escaped.split("\\u")[1:]))
    if char == "/":
        options.append(r"\\/")  # JSON may escape a solidus
    if ord(char) < 0x10000 and not escaped.startswith("\\u"):
        options.append(rf"\\u{_hex(f'{ord(char):04X}')}")
    return f"(?:{'|'.join(options)})"


def _hex(digits: str) -> str:
    """Hex digits matched in either case."""
    return "".join(f"[{d.upper()}{d.lower()}]" if d.isalpha() else d for d in digits)


def _base64_forms(secret: str) -> list[str]:
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return sorted(forms | {f.rstrip("=") for f in forms if len(f.rstrip("=")) >= SHORT_SECRET})


def redact_url(url: httpx.URL | str, secrets: Iterable[str],
               param_names: Iterable[str] = ()) -> str:
    """A URL safe to show: named query parameters masked, and any secret value masked."""
    url = httpx.URL(str(url))
    names = set(param_names)
    if not any(k in names or is_sensitive(k) for k in url.params.keys()):
        return redact(str(url), secrets)
    query = "&".join(
        f"{k}={MASK}" if k in names or is_sensitive(k) else str(httpx.QueryParams({k: v}))
        for k, v in url.params.multi_items()
    )
    return redact(str(url.copy_with(query=None)) + "?" + query, secrets)


class SecretFilter(logging.Filter):
    """Masks secret values in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # a traceback quotes exception messages
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info),
                                     self.secrets)
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

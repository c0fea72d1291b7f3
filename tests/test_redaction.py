"""Secret masking: every encoded spelling of any secret, and short secrets only as whole tokens."""

from __future__ import annotations

import base64
import json
import logging
import re
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from analytics_client.http.redaction import MASK, SHORT_SECRET, SecretFilter, redact, redact_url

secrets = st.text(st.characters(exclude_categories=("Cs",)), min_size=SHORT_SECRET, max_size=24)


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def spellings(secret: str) -> list[str]:
    """The ways a secret travels: written here without redaction.py's help."""
    percent = [quote(secret, safe=""), quote(secret), quote_plus(secret),
               quote(secret, safe="/:@!$&'()*+,;="), str(httpx.QueryParams({"k": secret}))[2:]]
    raw = secret.encode()
    return [secret, *percent, *map(lower_hex, percent), json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1], base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode()]


@given(secrets, st.sampled_from(range(13)))
def test_every_spelling_of_a_secret_is_masked(secret: str, which: int) -> None:
    """Whatever its characters, a secret is gone from a message in each spelling it travels in."""
    assume(MASK not in secret and "GET" not in secret)
    form = spellings(secret)[which]
    message = (f"GET /v1/deals?api_key={form}&page=1 failed at 2026-03-01T10:00:00Z: "
               f'{{"detail": "key {form} is not valid"}}')
    clean = redact(message, [secret])
    assert form not in clean
    assert "2026-03-01T10:00:00Z" in clean or "2026-03-01T10:00:00Z" in form


def test_the_key_of_issue_11_in_every_spelling() -> None:
    """The key ``Ab+c/d=e%f&g?h#1`` echoed percent-encoded by an API's 400 is masked."""
    key = "Ab+c/d=e%f&g?h#1"
    for form in spellings(key):
        assert form not in redact(f"Bad request: GET /v1/deals?api_key={form}", [key]), form


def test_short_secret_masked_only_as_a_whole_token() -> None:
    """Organization id ``2026``: masked where it stands alone, never inside a timestamp."""
    message = ("HTTP 403 from /v1/deals?org=2026&page=1: organization 2026 unknown "
               "at 2026-03-01T10:00:00.000000Z (X-Organization-Id: 2026)")
    clean = redact(message, ["2026"])
    assert clean == ("HTTP 403 from /v1/deals?org=***&page=1: organization *** unknown "
                     "at 2026-03-01T10:00:00.000000Z (X-Organization-Id: ***)")


def test_basic_and_bearer_credentials_are_masked_whole() -> None:
    """An Authorization header quoted anywhere loses its credentials, whoever they belong to."""
    basic = base64.b64encode(b"user:Ab+c/d=e%f&g?h#1").decode()
    clean = redact(f"sent Authorization: Basic {basic} and Bearer sk-live-123456", [])
    assert basic not in clean and "sk-live-123456" not in clean


def test_url_with_an_encoded_key_is_masked() -> None:
    key = "Ab+c/d=e%f&g?h#1"
    url = httpx.URL("https://api.test/v1/deals?page=2").copy_merge_params({"api_key": key})
    shown = redact_url(url, [key], ["api_key"])
    assert all(form not in shown for form in spellings(key))
    assert "page=2" in shown


def test_log_filter_masks_messages_and_tracebacks() -> None:
    """A traceback quoting an exception message is masked like the message."""
    key = "Ab+c/d=e%f&g?h#1"
    try:
        raise ValueError(f"echoed {quote(key, safe='')}")
    except ValueError:
        import sys
        record = logging.LogRecord("httpx", logging.ERROR, __file__, 1, "failed with %s",
                                   (quote_plus(key),), sys.exc_info())
    SecretFilter([key]).filter(record)
    text = logging.Formatter().format(record)
    assert all(form not in text for form in spellings(key)), text


@pytest.mark.parametrize("secret", ["abc", ""])
def test_very_short_values_are_not_masked(secret: str) -> None:
    """Masking one to three characters would shred every message and protect nothing."""
    assert redact("a b c abc", [secret]) == "a b c abc"


@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=4, max_size=SHORT_SECRET - 1),
       st.sampled_from(range(13)))
def test_short_secrets_are_masked_where_they_stand_alone(secret: str, which: int) -> None:
    """A short secret between separators is masked in every spelling; a timestamp keeps its digits."""
    assume(MASK not in secret)
    form = spellings(secret)[which]
    clean = redact(f"x={form}&y at 2026-03-01T10:00:00Z", [secret])
    assert f"={form}&" not in clean


def test_a_remembered_run_time_secret_is_masked_everywhere() -> None:
    """A token issued mid-run (oauth2.py remembers it) is masked with the given secrets."""
    from analytics_client.http.redaction import remember

    token = "tok-3f9a8b7c6d5e4f30"
    assert token in redact(f"token {token}", ())
    remember(token)
    assert redact(f"token {token} and %22{token}%22", ()) == "token *** and %22***%22"

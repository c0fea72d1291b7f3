"""Calls to the Prefect API, and what a run does when that API goes away mid-run.

The data never depends on Prefect: each Delta commit carries its own mark, and a run starts
from the table's mark when a state block is behind or missing (state.py). So an outage of the
Prefect API is an orchestration failure, not a data one, and should end the run soon with that
said. Prefect's client retries a call 5 times by default (``PREFECT_CLIENT_MAX_RETRIES``,
backoff 2**n s: about a minute per call), and a run makes many calls (task states, marks,
logs, the artifact): measured here, 165 s to 6.5 minutes before the run ended in a traceback.
Within ``bounded_retries()`` each call retries ``PREFECT_RETRIES`` times (2 + 4 s); an outage
becomes a ``PrefectUnavailableError`` naming the API and saying the data is safe.

Prefect is imported inside the functions: the library without Prefect must not pay for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from .errors import PrefectUnavailableError

__all__ = ["PREFECT_RETRIES", "bounded_retries", "call", "is_outage", "outage_message"]

PREFECT_RETRIES = 2  # Prefect client retries of one call while its API is unreachable: 2 + 4 s
EXIT_STATUS = 3  # the command line's exit status when the Prefect API went away (README)

_T = TypeVar("_T")


@contextlib.contextmanager
def bounded_retries() -> Iterator[None]:
    """Prefect API calls made in this context (and threads copying it) retry a bounded time."""
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    retries = min(PREFECT_RETRIES, PREFECT_CLIENT_MAX_RETRIES.value())
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: retries}):
        yield


def call(resource: str, function: Callable[[], _T]) -> _T:
    """``function()`` with bounded retries; an unreachable API raises PrefectUnavailableError."""
    try:
        with bounded_retries():
            return function()
    except Exception as exc:
        if not is_outage(exc):
            raise
        raise PrefectUnavailableError(resource, api_url(), _cause(exc)) from None


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the Prefect API cannot be reached (refused, reset, timeout, 5xx)."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    if isinstance(exc, PrefectUnavailableError | httpx.TransportError):
        return True
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, ConnectionError)


def api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or "the temporary local server"


def outage_message(exc: BaseException) -> str:
    """The one message a run ends with when the Prefect API went away."""
    cause = exc.cause if isinstance(exc, PrefectUnavailableError) else _cause(exc)
    return (f"the Prefect API ({api_url()}) went away during the run ({cause}); "
            f"{PrefectUnavailableError.MESSAGE}")


def _cause(exc: BaseException) -> str:
    from prefect.exceptions import PrefectHTTPStatusError

    if isinstance(exc, PrefectHTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return str(exc) or type(exc).__name__

"""Every call we make to the Prefect API, and what a run does when that API goes away mid-run.

The one home for code that talks to Prefect's API; how our process starts Prefect (its
settings, its temporary server) is ``orchestration/server.py``, which sends nothing to the API.

The data never depends on Prefect: each Delta commit carries its own mark, and a run starts
from the table's mark when a state block is behind or missing (state.py). So an outage of the
Prefect API is an orchestration failure, not a data one, and should end the run soon with that
said. Prefect's client retries a call 5 times by default (``PREFECT_CLIENT_MAX_RETRIES``,
backoff 2**n s: about a minute per call), and a run makes many calls (task states, marks,
logs, the artifact): measured here, 165 s to 6.5 minutes before the run ended in a traceback.
Within ``bounded_retries()`` each call retries ``PREFECT_RETRIES`` times (2 + 4 + 8 + 16 s); an
outage becomes a ``PrefectUnavailableError`` naming the API and saying the data is safe. Not
fewer: a Prefect server on SQLite answers 503 while its database is locked (Prefect's
``custom_internal_exception_handler``), and Prefect's client spends the same retries on those
as on a refused connection. With 2 retries (6 s) CI's fan-out of two flow runs on a busy 2-core
machine ended one run "the Prefect API went away" while the server was only busy; the price is
a longer wait when it is really gone (measured in test_prefect_outage: 63 s with 2, 213 s with 4).

Prefect is imported inside the functions: the library without Prefect must not pay for it.

Short commands (``state``, ``check``, ``secrets``) read and write block documents through
``command_api()``. Why: without ``PREFECT_API_URL``, Prefect answers any block read by starting
a temporary API server in a subprocess, which imports Prefect's server a second time and checks
or migrates its database before it answers (4 s on an idle 2-core machine, 20 s on a busy one),
then takes seconds to stop. Reading or writing a few block documents needs the database, not a
server: Prefect's API app answers in this process through the client's ASGI transport (Prefect
2's default), over the same SQLite file the temporary server uses. With ``PREFECT_API_URL`` set
the configured server is used, as everywhere else.

Documents are read with the client, not ``Block.load``: a block load emits a "loaded" event,
and Prefect's events worker starts the temporary server to send it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from analytics_client.core.errors import PrefectUnavailableError

if TYPE_CHECKING:
    from prefect.blocks.core import Block
    from prefect.client.orchestration import PrefectClient

__all__ = ["PREFECT_RETRIES", "CommandApi", "bounded_retries", "call", "command_api", "is_outage",
           "outage_message"]

PREFECT_RETRIES = 4  # Prefect client retries of one call: 2 + 4 + 8 + 16 s (module docstring)
EXIT_STATUS = 3  # the command line's exit status when the Prefect API went away (README)

_T = TypeVar("_T")


@contextlib.contextmanager
def bounded_retries() -> Iterator[None]:
    """Prefect API calls made in this context (and threads copying it) retry a bounded time.

    Already bounded (a run's tasks inherit the command's context): nothing to do. A new
    settings context builds Prefect's settings again from the environment, dotenv and profile
    files, 0.3-0.6 CPU s each: a no-op run's mark loads and saves spent 3 of its CPU s there.
    """
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    if PREFECT_CLIENT_MAX_RETRIES.value() <= PREFECT_RETRIES:
        yield
        return
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: PREFECT_RETRIES}):
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


# --- short commands: block documents without a temporary server ----------------------------


class CommandApi:
    """Block documents through one Prefect client, driven from synchronous code."""

    def __init__(self, client: PrefectClient,
                 run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._client = client
        self._run = run

    def block_data(self, name: str, block_type_slug: str) -> dict[str, Any] | None:
        """The fields of block document ``name`` (secrets included), or None if there is none."""
        from prefect.exceptions import ObjectNotFound

        try:
            document = self._run(self._client.read_block_document_by_name(name, block_type_slug))
        except ObjectNotFound:
            return None
        return dict(document.data)

    def save_block(self, block: Block, name: str) -> None:
        """Create or overwrite block document ``name`` (saving emits no event)."""
        self._run(block.asave(name, overwrite=True, client=self._client))


@contextlib.asynccontextmanager
async def _client() -> AsyncIterator[PrefectClient]:
    from prefect.client.orchestration import PrefectClient, get_client
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        async with get_client() as client:
            yield client
        return
    from prefect.server.api.server import create_app

    # The API alone: Prefect's background services (triggers, event persister, schedulers) have
    # nothing to do in a command that lasts a second, and one stopped before it finished
    # starting fails ("Reactive triggers not started").
    app = create_app(ephemeral=True, webserver_only=True)
    async with PrefectClient(api=app) as client:
        yield client


@contextlib.contextmanager
def command_api() -> Iterator[CommandApi]:
    """The configured Prefect API, else Prefect's database served inside this process."""
    with asyncio.Runner() as runner:
        context = _client()
        client = runner.run(context.__aenter__())
        try:
            yield CommandApi(client, runner.run)
        finally:
            # Closed as if all went well: handed our error, Prefect's in-process app passes it
            # into its lifespan, whose services then replace it with an error of their own.
            runner.run(context.__aexit__(None, None, None))

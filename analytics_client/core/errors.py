"""One exception hierarchy for the package: every failure a user can meet.

    AnalyticsSyncError
    ├── ConfigError            the source configuration is invalid (lists every problem)
    ├── SecretNotFoundError    a secret is in neither a Prefect Secret block nor the environment
    ├── SecretHostMismatchError  a Secret block was stored for another API: never sent to this one
    ├── LakeNotWritableError   the lake cannot be written (found before the first request)
    │   └── UnsupportedTableFeature  a table uses a Delta feature delta-rs cannot write
    ├── PrefectStartError      Prefect's temporary API server did not start in time
    ├── PipelineBusyError      another run holds the pipeline's lock (or a writer a table's)
    ├── MaintenanceFailed      the maintenance flow could not maintain some tables
    ├── AlertNotSent           the failure alert's webhook did not take the alert
    ├── ResourceFailed         one resource of a run failed: its partial ``summary``, ``cause``
    ├── TokenRequestError      the OAuth2 token endpoint refused or garbled a token request
    ├── SyncFailed             a run ended with at least one resource failed (the flow's end)
    │   └── PrefectWentAway    a run during which the Prefect API could not be reached
    └── ResourceError          one resource failed; carries ``resource``
        ├── APIError           the API answered with a status no retry can fix (``status``)
        │   └── RetriesExhaustedError   a retryable status answered every attempt
        ├── TransportError     no usable answer: timeout, reset, a body cut off or unparseable
        │   └── UnreachableError        DNS or connection refused, not retried (``check``)
        ├── ContractError      a response or record breaks the API contract
        │   ├── PaginationLoopError     the API served the same page, cursor or next URL twice
        │   ├── FilterIgnored           a page holds records below the cursor filter it was sent
        │   ├── ForeignHostError        a next-page URL points at another host (never followed)
        │   ├── RecordTypeError         a value does not fit its declared column type
        │   └── BadParentError          parents whose children cannot be read (on_bad_parent)
        ├── LimitExceededError a configured limit (response size, a wait, total wait) was hit
        ├── LakeError          a Delta table could not be written
        ├── DeleteGuardError   a read would delete more of a table than max_delete_share allows
        ├── StateError         a state block holds another pipeline's mark
        ├── PrefectUnavailableError    the Prefect API went away; the data and marks are safe
        └── RunStopped         the run was asked to stop (Ctrl-C, SIGTERM): no new request

Messages say what failed, where (resource, page, field, record id) and what to do.
They never contain a secret: callers pass redacted URLs and short body excerpts only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics_client.core.summary import ResourceSummary

__all__ = [
    "AlertNotSent",
    "AnalyticsSyncError",
    "APIError",
    "BadParentError",
    "ConfigError",
    "ContractError",
    "DeleteGuardError",
    "FilterIgnored",
    "ForeignHostError",
    "LakeError",
    "LakeNotWritableError",
    "LimitExceededError",
    "MaintenanceFailed",
    "PaginationLoopError",
    "PipelineBusyError",
    "PrefectStartError",
    "PrefectUnavailableError",
    "PrefectWentAway",
    "RecordTypeError",
    "ResourceError",
    "ResourceFailed",
    "RetriesExhaustedError",
    "RunStopped",
    "SecretHostMismatchError",
    "SecretNotFoundError",
    "StateError",
    "SyncFailed",
    "TokenRequestError",
    "TransportError",
    "UnreachableError",
    "UnsupportedTableFeature",
]


class AnalyticsSyncError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AnalyticsSyncError):
    """The source configuration is invalid; raised before any request is sent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"invalid source configuration ({len(self.problems)} {noun}):\n{lines}"
        )


class SecretNotFoundError(AnalyticsSyncError):
    """A secret could be found neither in its Prefect Secret block nor in the environment."""

    def __init__(self, secret: str, block_name: str | None, env_var: str,
                 command: str = "python flows/main.py secrets") -> None:
        self.secret = secret
        self.block_name = block_name
        self.env_var = env_var
        where = (
            f"create the Prefect Secret block {block_name!r} "
            f"(`{command}`, or the Prefect UI: Blocks > Secret) or set "
            if block_name
            else "set "
        )
        super().__init__(f"no {secret} found: {where}the environment variable {env_var}")


class SecretHostMismatchError(AnalyticsSyncError):
    """A Prefect Secret block holds a secret stored for another API than the run's.

    Raised before any request, when the environment offers no value instead: a secret is sent
    only to the API (origin) it was stored for. ``api_origin`` is the run's; ``blocks`` holds,
    per secret, ``(secret, block name, the origin it was stored for or None when the block
    names none that can be read, environment variable)``; ``command`` stores them for this API.
    """

    def __init__(self, api_origin: str, blocks: list[tuple[str, str, str | None, str]],
                 command: str) -> None:
        self.api_origin = api_origin
        self.blocks = list(blocks)
        self.command = command
        named = [f"{block!r} ({secret}, "
                 + (f"stored for {stored})" if stored else "naming no API it is for)")
                 for secret, block, stored, _ in self.blocks]
        one = len(named) == 1
        env_vars = [env for *_, env in self.blocks]
        super().__init__(
            f"the Prefect Secret block{'' if one else 's'} {_and(named)} "
            f"{'is' if one else 'are'} not for this run's API {api_origin}, so nothing was sent: "
            f"run `{command}` to store {'it' if one else 'them'} for this API, or set "
            f"{_and(env_vars)}"
        )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


class LakeNotWritableError(AnalyticsSyncError):
    """The lake (or a table in it) cannot be written: said before any request, not after them."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(
            f"the lake {uri} cannot be written ({reason}); give --lake (or ANALYTICS_LAKE_URI) "
            "a writable directory, or fix its permissions or mount"
        )


class UnsupportedTableFeature(LakeNotWritableError):
    """A resource's Delta table uses a feature delta-rs cannot write (row tracking, liquid
    clustering, ...): said before the first request, naming the feature and how to drop it,
    instead of a commit refused after every page was fetched."""

    def __init__(self, uri: str, resource: str, features: dict[str, str]) -> None:
        self.uri, self.resource, self.features = uri, resource, dict(features)
        self.reason = ", ".join(features)
        named = "; ".join(f"{name} ({why})" for name, why in features.items())
        AnalyticsSyncError.__init__(
            self,
            f"{resource}: its Delta table {uri} uses writer features this project's deltalake "
            f"(delta-rs) cannot write: {named}. Drop them where the table was made (Spark or "
            "Databricks: ALTER TABLE ... DROP FEATURE <name>, after turning its property off), "
            "or give the resource a new table (another --lake, or --full-refresh after moving "
            "this one away)")


class PrefectStartError(AnalyticsSyncError):
    """Prefect's temporary API server did not start: not in time (a busy machine, a fresh
    database), or it exited (``exited``: its exit status and log, e.g. a database it cannot
    open), or its home cannot be written."""

    def __init__(self, timeout_seconds: int | None, *, exited: str | None = None) -> None:
        self.timeout_seconds = timeout_seconds
        instead = ("run a long-lived one (`uv run prefect server start` in another terminal) and "
                   "point at it with PREFECT_API_URL=http://127.0.0.1:4200/api")
        if exited is not None:
            super().__init__(f"Prefect's temporary API server did not start: {exited}; fix what "
                             f"it says, or {instead}")
            return
        waited = f" within {timeout_seconds} s" if timeout_seconds is not None else ""
        super().__init__(
            f"Prefect's temporary API server did not start{waited}; raise "
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or {instead}"
        )


class PipelineBusyError(AnalyticsSyncError):
    """A lock this process needs is held by another (``lock.py``).

    Raised before anything is done when another run of the same pipeline holds the pipeline's
    lock, and at a commit when another writer on this machine has held a table's write lock
    longer than the timeout (default 600 s). The message names the holder or the table.
    """


class MaintenanceFailed(AnalyticsSyncError):
    """The maintenance flow could not maintain some tables; the others were maintained.

    ``failures`` holds one message per failed table (each names its resource); ``tables`` is how
    many were attempted.
    """

    def __init__(self, failures: list[str], tables: int) -> None:
        self.failures = list(failures)
        self.tables = tables
        super().__init__(f"{len(self.failures)} of {tables} tables failed: "
                         + "; ".join(self.failures))


class AlertNotSent(AnalyticsSyncError):
    """The failure alert's webhook (orchestration/alerting.py) did not answer 2xx. Names its
    host, never its URL (a webhook URL usually holds a token)."""

    def __init__(self, host: str, fault: str, block: str) -> None:
        self.host = host
        self.fault = fault
        super().__init__(f"the alert webhook at {host} did not take the alert ({fault}); check "
                         f"the URL in the Prefect Secret block {block!r}")


class ResourceError(AnalyticsSyncError):
    """One resource failed; the others carry on and what it committed stays."""

    def __init__(self, resource: str, message: str) -> None:
        self.resource = resource
        self.message = message
        super().__init__(f"{resource}: {message}")

    @property
    def headline(self) -> str:
        """The cause in one line without the resource's name, so that resources failing alike
        read alike (the flow run's state message groups them by it: orchestration/failures.py).
        """
        return self.message


class APIError(ResourceError):
    """The API answered with a status that another attempt cannot fix (``client.py``).

    400/401/403/404 and any other status outside the retried ones (a redirect is never followed)
    fail at once, quoting the API's ``errors[].detail``; so does a retried status whose
    ``Retry-After`` is longer than ``error_handler.max_wait``. Attributes: ``status``, ``detail``
    (redacted), ``url`` (redacted), ``page``.
    """

    def __init__(
        self,
        resource: str,
        *,
        status: int,
        detail: str,
        url: str,
        page: int | None = None,
        hint: str = "",
    ) -> None:
        self.status = status
        self.detail = detail
        self.url = url
        self.page = page
        self.hint = hint
        where = f" on page {page}" if page is not None else ""
        tail = f"; {hint}" if hint else ""
        super().__init__(resource, f"HTTP {status}{where} from {url}: {detail}{tail}")

    @property
    def headline(self) -> str:
        """``HTTP 401 from api.example.com: check the API key ...``: the status, the host (not
        the path, page or query, which differ per resource) and what to do (the hint, else the
        API's detail)."""
        return f"HTTP {self.status} from {_host(self.url)}: {self.hint or self.detail}"


def _host(url: str) -> str:
    """``host[:port]`` of a (redacted) URL; the URL itself when it has none."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return url
    if not host:
        return url
    return f"{host}:{port}" if port else host


class RetriesExhaustedError(APIError):
    """A retried status (``retry_on_status_codes``, 500/502/503/504) answered every attempt.

    Faults without a status that outlive their retries raise ``TransportError`` instead.
    """


class TransportError(ResourceError):
    """No usable answer after every attempt: connect or read timeout, a reset or refused
    connection, a body cut off or not decodable as its ``Content-Encoding``, or a 200 whose
    JSON does not parse. The message names the fault, the page and the (redacted) URL.
    """


class UnreachableError(TransportError):
    """The host could not be resolved or refused the connection; ``check`` stops asking it."""

    def __init__(self, resource: str, *, host: str, detail: str) -> None:
        self.host = host
        self.detail = detail
        super().__init__(
            resource,
            f"cannot connect to {host}: {detail}; check client.base_url (or --base-url), "
            "the network and that the API is up",
        )


class ContractError(ResourceError):
    """A response or a record breaks the API contract (see docs on the API)."""


class PaginationLoopError(ContractError):
    """The API served the same page, cursor or next-page URL again instead of the next one."""


class FilterIgnored(ContractError):
    """A page holds records below the ``incremental.start_param`` filter it was asked with: the
    API does not apply the filter. A keyset walk cannot page by it, so the read falls back to
    dlt's way (every page, records below the start dropped on our side: ``keyset.py``)."""


class ForeignHostError(ContractError):
    """A next-page URL from the server names another scheme, host or port than ``base_url``.

    Every request carries the API's credentials, so such a URL is never followed: a server
    (or whoever can write into its responses) would otherwise collect the key.
    """

    def __init__(self, resource: str, *, next_origin: str, api_origin: str, key: str) -> None:
        self.next_origin = next_origin
        self.api_origin = api_origin
        super().__init__(
            resource,
            f"the server's next page is on {next_origin}, not on the API's {api_origin}: "
            "credentials are never sent to another host, so the read stops here (what was "
            f"committed is kept). Check {key}, or client.base_url if the API moved",
        )


class RecordTypeError(ContractError):
    """A value does not fit its column's declared type (config ``columns``); never coerced."""

    def __init__(
        self, resource: str, *, field: str, record_id: object, expected: str, got: str,
        value: object,
    ) -> None:
        self.field = field
        self.record_id = record_id
        self.expected = expected
        self.got = got
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            resource,
            f"field {field!r} of record {record_id!r} is {got} ({shown}); the column is "
            f"declared as {expected}. Nothing of this batch was written (on_bad_record: fail). "
            "Fix the API's data or the resource's columns hint, or use on_bad_record: "
            "quarantine to set such records aside and go on",
        )


class BadParentError(ContractError):
    """A child's parent records whose children could not be read, with ``on_bad_parent:
    fail``: a resolve field that names no child (null, empty, ``.`` or ``..``) or a child
    endpoint that answered 404. ``parent``: the parent resource; ``keys``: those records'
    primary keys. The other parents' children were committed; the parent version did not move,
    so the next run reads the same parents again."""

    def __init__(self, resource: str, message: str, *, parent: str,
                 keys: tuple[object, ...]) -> None:
        self.parent = parent
        self.keys = keys
        super().__init__(resource, message)


class LimitExceededError(ResourceError):
    """A configured limit was reached (``client.py``); what was committed so far is kept.

    One of: a response larger than ``client.max_response_bytes``; a pause the API asks of every
    request (an exhausted quota) longer than ``error_handler.max_wait``; or the resource's
    waits this run (retries and pauses) going past ``error_handler.max_total_wait``.
    """


class LakeError(ResourceError):
    """A Delta table could not be read or written."""


class DeleteGuardError(ResourceError):
    """A complete read would delete (or mark deleted) more of a table than the resource's
    ``max_delete_share`` allows: nothing is deleted, the rows written stay, the resource fails.

    An API that suddenly serves half its records (a wrong filter, an outage answered with an
    empty list) looks exactly like mass deletion; this guard makes a person decide.
    """

    def __init__(self, resource: str, *, missing: int, live: int, max_share: float) -> None:
        self.missing, self.live, self.max_share = missing, live, max_share
        share = missing / live if live else 1.0
        super().__init__(
            resource,
            f"this read did not see {missing:,} of the table's {live:,} live rows "
            f"({share:.1%}), more than max_delete_share ({max_share:.0%}) allows, so nothing was "
            "deleted. If the API really deleted them, raise max_delete_share for this resource "
            "(up to 1.0) and run again; if not, check the API and the resource's params",
        )


class StateError(ResourceError):
    """A state block belongs to another pipeline or resource: it is refused, never used."""


class PrefectUnavailableError(ResourceError):
    """The Prefect API could not be reached (or answered 5xx) while a resource needed it.

    Nothing is lost: each Delta commit carries its own mark, and a run starts from the table's
    mark when the block is behind or missing (state.py).
    """

    MESSAGE = ("every row committed so far and each table's mark are safe in the Delta tables, "
               "and the next run resumes from the table's mark; run again once the Prefect API "
               "answers")

    def __init__(self, resource: str, api_url: str, cause: str) -> None:
        self.api_url = api_url
        self.cause = cause
        super().__init__(resource, f"the Prefect API ({api_url}) cannot be reached ({cause}); "
                                   f"{self.MESSAGE}")


class RunStopped(ResourceError):
    """The run was asked to stop (``stop.py``): a request was not sent, or not retried.

    Not a failure of the resource: what was fetched before is committed with its mark.
    """

    def __init__(self, resource: str, reason: str) -> None:
        self.reason = reason
        super().__init__(resource, f"stopped ({reason}) before the next request")


class ResourceFailed(AnalyticsSyncError):
    """One resource of a run failed; ``summary`` (a ``summary.ResourceSummary``) says how far it
    got and ``summary.error`` what went wrong; ``cause`` is the exception that failed it (an
    attribute, not only ``__cause__``, so it survives the pickling a task result may go through).

    What it committed before failing stays, with its mark: a rerun resumes from there.
    """

    def __init__(self, summary: ResourceSummary, cause: BaseException | None = None) -> None:
        self.summary = summary
        self.resource = summary.resource
        self.cause = cause
        super().__init__(summary.error or f"{summary.resource} failed")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.summary, self.cause)


class TokenRequestError(AnalyticsSyncError):
    """The OAuth2 token endpoint did not issue a token (RFC 6749 §5.2).

    Raised by the auth flow, which does not know the resource; the client re-raises it as the
    resource's ``APIError`` (or retries it, for 429 and 5xx). ``detail`` is already redacted:
    the endpoint's ``error`` and ``error_description``, never the request body.
    """

    def __init__(self, *, status: int, detail: str, url: str) -> None:
        self.status = status
        self.detail = detail
        self.url = url
        super().__init__(f"token request to {url} answered HTTP {status}: {detail}")


class SyncFailed(AnalyticsSyncError):
    """Raised by the flow at the end of a run in which at least one resource failed.

    Every resource ran to its end first; each failed one's error and partial summary are in
    the run's summary (what was committed before the failure stays, with its mark).
    """


class PrefectWentAway(SyncFailed):
    """Raised at the end of a run during which the Prefect API could not be reached.

    The data and the marks in the Delta commits are safe; a state block may lag behind the
    table, which the next run reads first (state.py).
    """

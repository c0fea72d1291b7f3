"""The source configuration: dlt's ``rest_api_source`` dict format, validated once at the boundary.

Users arrive with a dlt config, so we read that format rather than invent one, with dlt's
defaults where a key is omitted (the seed, ``loading.DEFAULT_CONFIG``, writes out the contract's
paging in full). We differ from dlt in being strict: every key is known, every value
is checked, and all problems are reported together in one ``ConfigError`` before any request.

Secrets never live in a config: ``api_key``, ``token`` and ``password`` must be omitted or written
as ``dlt.secrets["api_key"]`` (resolved at run time, see ``secrets.py``).

This module holds the models and the defaults they carry. Reading a config (a file, defaults
merged into each resource) is loading.py's, the checks across fields and resources checks.py's,
and the wording of pydantic's errors describe.py's; ``analytics_client.config`` offers them all.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from analytics_client.config.schemas import ColumnHint
from analytics_client.core import placeholders, timestamps
from analytics_client.core.cursors import INTEGER
from analytics_client.core.errors import ConfigError
from analytics_client.core.jsonpath import compile_selector, drops_records, field_chain, is_dotted

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CURSOR_PATH",
    "DEFAULT_DELETE_MISSING",
    "DEFAULT_MAX_DELETE_SHARE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PIPELINE",
    "TOTAL_COUNT_PATH",
    "Incremental",
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "ClientConfig",
    "OAuth2ClientCredentialsAuth",
    "Endpoint",
    "AutoPaginator",
    "CursorPaginator",
    "ErrorHandler",
    "HeaderCursorPaginator",
    "HeaderLinkPaginator",
    "JSONLinkPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "ResolveParam",
    "ResourceConfig",
    "SinglePagePaginator",
    "SourceConfig",
    "parent_bindings",
    "parent_of",
    "request_bodies",
    "secret_ref",
]

# -- defaults: one home each; every other module imports them from here ----------------------
DEFAULT_PIPELINE = "analytics"  # marks are kept per pipeline (state.py, the tables' app id)
DEFAULT_BATCH_ROWS = 10_000  # records per Delta commit: bounds a resource's memory (sync.py)
DEFAULT_CURSOR_PATH = "updated_at"  # the contract's change timestamp (dlt's incremental)
DEFAULT_PAGE_SIZE = 10  # records per page when page[size] is not sent (the API contract)
TOTAL_COUNT_PATH = "meta.page.total_count"  # the API's count of the records a read covers
# A row whose record the API no longer has keeps its values, marked _deleted_at (docs/deletes.md)
DEFAULT_DELETE_MISSING: Literal["soft", "hard", "off"] = "soft"
# One read may delete at most this share of a table's live rows; more fails the resource.
DEFAULT_MAX_DELETE_SHARE = 0.1

SECRET_NAMES = ("api_key", "organization_id", "client_id", "client_secret")
NEVER_RETRY = frozenset({400, 401, 403, 404})
ALWAYS_RETRY = frozenset({500, 502, 503, 504})
_PLACEHOLDER = re.compile(r"""^\s*dlt\.secrets\[\s*(['"])(?P<name>[A-Za-z0-9_.]+)\1\s*\]\s*$""")
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _positive_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail("positive_int", f"must be an integer >= 1 (got {value!r})")
    return value


def _non_negative_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail("non_negative_int", f"must be an integer >= 0 (got {value!r})")
    return value


def _non_negative_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _fail("non_negative_number", f"must be a number >= 0 (got {value!r})")
    return float(value)


def _positive_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail("positive_number", f"must be a number > 0 (got {value!r})")
    return float(value)


def _secret_ref(default: str) -> typing.Callable[[object], object]:
    def check(value: object) -> object:
        if value is None:
            return default
        if isinstance(value, str) and (match := _PLACEHOLDER.match(value)):
            name = match.group("name")
            if name not in SECRET_NAMES:
                raise _fail(
                    "secret_name",
                    f"unknown secret {name!r}; use one of: "
                    + ", ".join(f'dlt.secrets["{n}"]' for n in SECRET_NAMES),
                )
            return name
        raise _fail(
            "literal_secret",
            f'must not hold a secret: write dlt.secrets["{default}"] or leave it out; the value '
            "comes from the Prefect Secret block or the environment (see README, Secrets)",
        )

    return check


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
NonNegativeFloat = Annotated[float, BeforeValidator(_non_negative_number)]
PositiveFloat = Annotated[float, BeforeValidator(_positive_number)]
ApiKeyRef = Annotated[str, BeforeValidator(_secret_ref("api_key"))]
ClientIdRef = Annotated[str, BeforeValidator(_secret_ref("client_id"))]
ClientSecretRef = Annotated[str, BeforeValidator(_secret_ref("client_secret"))]
Scalar = Union[str, int, float, bool]  # noqa: UP007 - pydantic reads this at run time


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ApiKeyAuth(_Model):
    """API key sent in a header (the contract's ``api_key``) or the query string."""

    type: Literal["api_key"]
    name: str = "api_key"
    api_key: ApiKeyRef = "api_key"
    location: Literal["header", "query"] = "header"


class BearerAuth(_Model):
    """``Authorization: Bearer <secret>``."""

    type: Literal["bearer"]
    token: ApiKeyRef = "api_key"


class BasicAuth(_Model):
    """HTTP basic auth; the password is the secret."""

    type: Literal["http_basic"]
    username: str
    password: ApiKeyRef = "api_key"


class OAuth2ClientCredentialsAuth(_Model):
    """OAuth 2.0 client credentials (RFC 6749 §4.4), dlt's ``OAuth2ClientCredentials``: same
    names and defaults. A token is asked of ``access_token_url`` (form-encoded
    ``grant_type=client_credentials``, ``client_id``, ``client_secret`` and
    ``access_token_request_data``) and sent as ``Authorization: Bearer``; it lives
    ``expires_in`` seconds from the answer, else ``default_token_expiration``. See ``oauth2.py``.
    """

    type: Literal["oauth2_client_credentials"]
    access_token_url: str = Field(min_length=1)
    client_id: ClientIdRef = "client_id"
    client_secret: ClientSecretRef = "client_secret"
    access_token_request_data: dict[str, Scalar] = Field(default_factory=dict)
    default_token_expiration: PositiveInt = 3600

    @field_validator("access_token_url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an absolute http:// or https:// URL (got {url!r})")
        return url

    @field_validator("access_token_request_data")
    @classmethod
    def _no_credentials_in_data(cls, data: dict[str, Scalar]) -> dict[str, Scalar]:
        # grant_type may be overridden, as in dlt (an API's own grant, e.g. Zoom's
        # account_credentials with an account_id); the credentials never live in a config.
        taken = sorted(set(data) & {"client_id", "client_secret"})
        if taken:
            raise ValueError(f"sets {taken}: they are sent from client_id and client_secret; "
                             "remove them (a secret never lives in a config)")
        return data


def _value_path(path: str) -> str:
    """A paginator path key (``total_path``, ``cursor_path``, ...): JSONPath as dlt reads it
    (``core.jsonpath.lookup``), checked here so a typo fails at load time, not mid-read."""
    if not is_dotted(path):
        try:
            compile_selector(path)
        except ValueError as exc:
            raise _fail("json_path", f"{path!r} {exc}") from None
    return path


ValuePath = Annotated[str, Field(min_length=1), AfterValidator(_value_path)]


def _param_or_body(data: Any, param: str, body: str, default: str) -> Any:
    """dlt's rule for a value sent either as a query parameter or in the JSON body: with
    neither key given the parameter is ``default``; both given is an error (checked after)."""
    if isinstance(data, dict) and data.get(param) is None and data.get(body) is None:
        return {**data, param: default}
    return data


def _one_of(model: _Model, param: str, body: str) -> None:
    if bool(getattr(model, param)) == bool(getattr(model, body)):
        raise ValueError(f"give either {param} or {body}, not both (dlt's rule)")


class PageNumberPaginator(_Model):
    """dlt's ``page_number``, with dlt's names and defaults: ``page_param`` ``page`` (or
    ``page_body_path``), ``base_page`` 0, ``page`` (the first page asked for; default
    ``base_page``), ``total_path`` ``total`` (total pages, JSONPath; null when the API sends
    none), ``maximum_page``, ``stop_after_empty_page`` true, ``has_more_path``.
    Ours: ``limit`` records per page sent as ``limit_param`` (dlt users put the size in
    ``params``; a size we know lets a read tell a short page and probe one record).
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced#pagenumberpaginator
    """

    type: Literal["page_number"]
    page_param: str | None = None
    page_body_path: str | None = None
    base_page: NonNegativeInt = 0
    page: NonNegativeInt | None = None
    total_path: ValuePath | None = "total"
    maximum_page: PositiveInt | None = None
    stop_after_empty_page: bool = True
    has_more_path: ValuePath | None = None
    limit_param: str | None = None
    limit: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _dlt_default_param(cls, data: Any) -> Any:
        return _param_or_body(data, "page_param", "page_body_path", "page")

    @model_validator(mode="after")
    def _consistent(self) -> PageNumberPaginator:
        _one_of(self, "page_param", "page_body_path")
        if self.limit is not None and not self.limit_param:
            raise ValueError("limit is set but limit_param is empty: name the page-size parameter")
        if self.page is not None and self.page < self.base_page:
            raise ValueError(f"page {self.page} is before base_page {self.base_page}")
        if self.total_path is None and self.maximum_page is None \
                and self.has_more_path is None and not self.stop_after_empty_page:
            raise ValueError("cannot tell when to stop: set total_path, maximum_page, "
                             "has_more_path or stop_after_empty_page: true (dlt's rule)")
        return self

    @property
    def first_page(self) -> int:
        """The page a read asks for first: dlt's ``page``, else ``base_page``."""
        return self.base_page if self.page is None else self.page


class SinglePagePaginator(_Model):
    """One request, no paging."""

    type: Literal["single_page"]


class OffsetPaginator(_Model):
    """Offset paging (dlt's ``offset``, same names and defaults): ``offset`` grows by ``limit``
    (by the records received when the API serves fewer: a clamped page size).

    dlt's keys: ``limit``, ``offset`` 0, ``offset_param`` ``offset`` (or ``offset_body_path``),
    ``limit_param`` ``limit`` (or ``limit_body_path``), ``total_path`` ``total`` (records,
    JSONPath), ``maximum_offset``, ``stop_after_empty_page`` true, ``has_more_path``.
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced#offsetpaginator
    """

    type: Literal["offset"]
    limit: PositiveInt
    offset: NonNegativeInt = 0
    offset_param: str | None = None
    offset_body_path: str | None = None
    limit_param: str | None = None
    limit_body_path: str | None = None
    total_path: ValuePath | None = "total"
    maximum_offset: PositiveInt | None = None
    stop_after_empty_page: bool = True
    has_more_path: ValuePath | None = None

    @model_validator(mode="before")
    @classmethod
    def _dlt_default_params(cls, data: Any) -> Any:
        data = _param_or_body(data, "offset_param", "offset_body_path", "offset")
        return _param_or_body(data, "limit_param", "limit_body_path", "limit")

    @model_validator(mode="after")
    def _can_stop(self) -> OffsetPaginator:
        _one_of(self, "offset_param", "offset_body_path")
        _one_of(self, "limit_param", "limit_body_path")
        if self.total_path is None and self.maximum_offset is None \
                and self.has_more_path is None and not self.stop_after_empty_page:
            raise ValueError("cannot tell when to stop: set total_path, maximum_offset, "
                             "has_more_path or stop_after_empty_page: true (dlt's rule)")
        return self


class CursorPaginator(_Model):
    """A cursor from the body sent back as a query parameter (dlt's ``cursor``, i.e.
    ``JSONResponseCursorPaginator``; ``json_response_cursor`` is accepted as another name).

    dlt's keys: ``cursor_path`` ``cursors.next`` (JSONPath: Stripe's ``data[-1].id``),
    ``cursor_param`` ``cursor`` (or ``cursor_body_path``), ``stop_after_empty_page`` false,
    ``has_more_path``. Stops when the cursor is missing, null or empty, or has_more is false.
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced
    (#jsonresponsecursorpaginator)
    """

    type: Literal["cursor", "json_response_cursor"]
    cursor_path: ValuePath = "cursors.next"
    cursor_param: str | None = None
    cursor_body_path: str | None = None
    stop_after_empty_page: bool = False
    has_more_path: ValuePath | None = None

    @model_validator(mode="before")
    @classmethod
    def _dlt_default_param(cls, data: Any) -> Any:
        return _param_or_body(data, "cursor_param", "cursor_body_path", "cursor")

    @model_validator(mode="after")
    def _one_place(self) -> CursorPaginator:
        _one_of(self, "cursor_param", "cursor_body_path")
        return self


class HeaderCursorPaginator(_Model):
    """A cursor in a response header sent back as a query parameter (dlt's ``header_cursor``):
    ``cursor_key`` ``next`` (the header), ``cursor_param`` ``cursor``. Stops when the header
    is absent.
    """

    type: Literal["header_cursor"]
    cursor_key: str = Field(default="next", min_length=1)
    cursor_param: str = Field(default="cursor", min_length=1)


class JSONLinkPaginator(_Model):
    """The next page's URL in the body (dlt's ``json_link``; ``json_response``, dlt's old name,
    is accepted): ``next_url_path`` ``next`` (JSONPath: ``$['@odata.nextLink']``). Stops when
    the URL is missing, null or empty.
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced#jsonlinkpaginator
    """

    type: Literal["json_link", "json_response"]
    next_url_path: ValuePath = "next"


class HeaderLinkPaginator(_Model):
    """The next page's URL in the ``Link`` header (RFC 8288), by relation type (dlt's
    ``header_link``). Stops when no link has that relation.
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced#headerlinkpaginator
    """

    type: Literal["header_link"]
    links_next_key: str = Field(default="next", min_length=1)


class AutoPaginator(_Model):
    """Detect the paging from the first response, as dlt's ``auto`` (``detector.py``) does: a
    ``Link`` header with ``rel="next"``, a next URL in the body, total pages, a cursor in the
    body, else one page. Also what an endpoint without ``paginator`` gets (dlt's default).
    """

    type: Literal["auto"]


Paginator = Annotated[
    PageNumberPaginator | SinglePagePaginator | OffsetPaginator | CursorPaginator
    | JSONLinkPaginator | HeaderLinkPaginator | HeaderCursorPaginator | AutoPaginator,
    Field(discriminator="type"),
]
Auth = Annotated[ApiKeyAuth | BearerAuth | BasicAuth | OAuth2ClientCredentialsAuth,
                 Field(discriminator="type")]


class ErrorHandler(_Model):
    """Retry policy of one resource. 500/502/503/504 and transport faults are always retried."""

    retry_on_status_codes: list[int] = Field(default_factory=lambda: [429])
    max_retries: NonNegativeInt = 4
    backoff_factor: NonNegativeFloat = 2.0
    # Our addition: the computed backoff is capped here, and a Retry-After above it fails at once.
    max_wait: PositiveFloat = 300.0
    # Our addition: all retry waits of one resource in one run together stay below this.
    max_total_wait: PositiveFloat = 900.0

    @field_validator("retry_on_status_codes")
    @classmethod
    def _only_retryable_codes(cls, codes: list[int]) -> list[int]:
        bad = sorted(set(codes) & NEVER_RETRY)
        if bad:
            raise ValueError(
                f"lists {bad}: 400/401/403/404 are never retried, because a retry cannot fix a "
                "bad parameter, key, organization or path; remove them"
            )
        odd = [c for c in codes if not 100 <= c <= 599]
        if odd:
            raise ValueError(f"has {odd}: not HTTP status codes")
        return codes


def _cursor_value(value: object) -> object:
    """An ``initial_value`` / ``end_value``: an ISO-8601 timestamp with a zone, or an integer
    (dlt takes either; its type declares the cursor's kind: ``config/cursorkind.py``)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return INTEGER.parse(value)
        except ValueError as exc:
            raise _fail("cursor_value", f"must fit a 64-bit integer (got {value}: {exc})") \
                from None
    try:
        timestamps.parse(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail("cursor_value", f"must be an ISO-8601 timestamp with a zone, e.g. "
                    f"2026-01-01T00:00:00Z, or an integer (got {value!r}: {exc})") from None
    return value


def _as_mark(value: str | int) -> int:
    return value if isinstance(value, int) else timestamps.parse(value)


class Incremental(_Model):
    """Read only what changed since the last committed mark (dlt's ``endpoint.incremental``).

    ``lag`` re-reads that many seconds before the mark each run: the contract lets a change
    become visible up to 5 s after the ``updated_at`` it carries (none once the API's clock has
    proven the mark: state/markpolicy.py).

    ``on_cursor_value_missing`` (dlt's key and values): what a record whose cursor is missing
    or null becomes. ``raise``: a bad record, set aside in the quarantine or failing the batch
    as ``on_bad_record`` says (dlt raises); ``include``: it lands, keyed by its primary key,
    with a null cursor, moving no mark and never replacing a row that has a cursor;
    ``exclude``: it is dropped, as a processing step's filter drops a record.
    """

    cursor_path: str = DEFAULT_CURSOR_PATH
    start_param: str | None = None
    initial_value: Annotated[str | int | None, BeforeValidator(_cursor_value)] = None
    # dlt's backfill window: read [initial_value, end_value) and leave the mark where it is.
    end_value: Annotated[str | int | None, BeforeValidator(_cursor_value)] = None
    end_param: str | None = None
    lag: NonNegativeFloat = 10.0
    on_cursor_value_missing: Literal["raise", "include", "exclude"] = "raise"

    @model_validator(mode="after")
    def _window(self) -> Incremental:
        # dlt refuses end_value without initial_value too: a window needs both ends.
        if self.end_value is not None and self.initial_value is None:
            raise ValueError("end_value needs initial_value: a backfill reads "
                             "[initial_value, end_value)")
        if self.end_value is not None and self.initial_value is not None \
                and isinstance(self.end_value, int) != isinstance(self.initial_value, int):
            raise ValueError(f"initial_value {self.initial_value!r} and end_value "
                             f"{self.end_value!r} must both be timestamps or both integers")
        if self.end_value is not None and self.initial_value is not None \
                and _as_mark(self.end_value) <= _as_mark(self.initial_value):
            raise ValueError(f"end_value {self.end_value} must be after initial_value "
                             f"{self.initial_value}")
        if self.end_param is not None and self.end_value is None:
            raise ValueError("end_param is set but end_value is not: give the window's end")
        return self

    @field_validator("cursor_path")
    @classmethod
    def _chain_of_fields(cls, path: str) -> str:
        # dlt reads cursor_path as JSONPath and takes the first match; a chain of fields has
        # one (core/cursors.py: cursor_value, and the column it lands in: cursor_column).
        if field_chain(path) is None:
            raise ValueError(
                f"must be a field or a JSONPath of fields (updated_at, $.updated, "
                f"properties.hs_lastmodifieddate); got {path!r}: filters, wildcards and indexes "
                "pick among several values, which a cursor cannot be: name the one field "
                "that holds it")
        return path


class ResponseAction(_Model):
    """dlt's ``{"status_code": 404, "action": "ignore"}`` / ``{"content": "...", ...}``: a
    response that matches is dropped and ends the read (``responses.py``). dlt's callable
    actions are hooks on a ``requests.Response``, which we do not have: not accepted."""

    status_code: Annotated[int, BeforeValidator(_positive_int)] | None = None
    content: str | None = Field(default=None, min_length=1)
    action: Literal["ignore"]

    @model_validator(mode="after")
    def _matches_something(self) -> ResponseAction:
        if self.status_code is None and self.content is None:
            raise ValueError("matches every response: give status_code, content or both")
        return self


class ProcessingStep(_Model):
    """dlt's ``{"filter": callable}`` / ``{"map": callable}`` / ``{"yield_map": callable}``
    (Python configs only; a file cannot hold a callable). ``yield_map`` turns one record into
    any number (an iterable of records), as dlt's ``add_yield_map``; within one step dlt applies
    filter, then map, then yield_map (dlt/sources/rest_api/__init__.py: ``process``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              arbitrary_types_allowed=True)

    filter: typing.Callable[[Any], bool] | None = None
    map: typing.Callable[[Any], Any] | None = None
    yield_map: typing.Callable[[Any], typing.Iterable[Any]] | None = None

    @model_validator(mode="after")
    def _does_something(self) -> ProcessingStep:
        if self.filter is None and self.map is None and self.yield_map is None:
            raise ValueError("a step needs filter, map or yield_map (a callable)")
        return self


def _json_path(selector: str | None) -> str | None:
    if selector is not None and not is_dotted(selector):
        try:
            compile_selector(selector)
        except ValueError as exc:
            raise _fail("json_path", f"{selector!r} {exc}") from None
        if drops_records(selector):
            raise _fail("json_path", (
                f"{selector!r} keeps only some of a page's records (a filter, an index or a "
                "slice): paging and incremental marks would then see only those and could stop "
                "early or skip records. Point data_selector at the list (e.g. '$.data[*]') and "
                "keep records with processing_steps: [{filter: ...}] (Python configs)"))
    return selector


class ResolveParam(_Model):
    """dlt's ``params.<name>: {type: resolve, resource, field}``: ``{<name>}`` in the path is
    the ``field`` of each record of the parent ``resource`` (children.py)."""

    type: Literal["resolve"]
    resource: str = Field(min_length=1)
    field: str = Field(min_length=1)


def _pairs(value: object) -> object:
    """Form pairs as a file writes them (2-item lists) read as the pairs they are."""
    if isinstance(value, list):
        return [tuple(p) if isinstance(p, list) and len(p) == 2 else p for p in value]
    return value


def secret_ref(value: object) -> str | None:
    """The secret a header value names (``dlt.secrets["organization_id"]`` names
    ``organization_id``), None for a plain value."""
    match = _PLACEHOLDER.match(value) if isinstance(value, str) else None
    return match.group("name") if match else None


def _headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values are text or a ``dlt.secrets[...]`` naming a known secret (resolved at run
    time, like the auth's: the seed's ``X-Organization-Id`` is one)."""
    for name, value in headers.items():
        ref = secret_ref(value)
        if ref is not None and ref not in SECRET_NAMES:
            raise ValueError(f"{name}: unknown secret {ref!r}; use one of: "
                             + ", ".join(f'dlt.secrets["{n}"]' for n in SECRET_NAMES))
    return headers


Headers = Annotated[dict[str, str], AfterValidator(_headers)]


class Endpoint(_Model):
    path: str = Field(min_length=1)
    params: dict[str, Scalar] = Field(default_factory=dict)
    # dlt's request method and bodies (dlt's HTTPMethodBasic): ``json`` is sent as a JSON body,
    # ``data`` form-encoded (a mapping) or as is (text). Placeholders in them are filled like
    # params' (``{incremental.start_value}``, a parent's ``{resources.<p>.<f>}`` or resolve
    # name); in ``json`` a text that is one placeholder alone takes the value's own type (dlt's
    # ``preserve_value_type``). Paginators that page in the body write into the request's copy.
    method: Literal["GET", "POST"] = "GET"
    json_body: dict[str, Any] | list[Any] | None = Field(default=None, alias="json")
    # A form: a mapping, or pairs (a key may repeat; YAML writes a pair as a 2-item list).
    data: Annotated[dict[str, Scalar] | list[tuple[str, Scalar]] | str | None,
                    BeforeValidator(_pairs)] = None
    # dlt's per-endpoint headers and auth: sent on this resource's requests only, over
    # client.headers (a header of the same name, case-insensitive, wins) and instead of
    # client.auth.
    headers: Headers = Field(default_factory=dict)
    auth: Auth | None = None
    # dlt writes these among params; lifted here at load time (_lift_param_types) so params
    # hold only what is sent.
    resolve: dict[str, ResolveParam] = Field(default_factory=dict)
    # dlt's JSONPath (jsonpath-ng); a dotted path is read strictly (responses.py). Omitted
    # (None), the records are detected on each page as dlt detects them (jsonpath.find_records);
    # the seed names ``data``.
    data_selector: Annotated[str | None, AfterValidator(_json_path)] = None
    response_actions: list[ResponseAction] = Field(default_factory=list)
    paginator: Paginator = AutoPaginator(type="auto")  # dlt's default: detect
    error_handler: ErrorHandler = ErrorHandler()
    incremental: Incremental | None = None
    # Our addition: keyset walks of one resource run at once over disjoint cursor ranges
    # (slices.py). Measured: 3.2x faster at 50 ms of API latency, 20 % slower against a local
    # API with no latency (2 cores). Needs incremental with start_param; 1 turns it off.
    concurrency: PositiveInt = 4

    @model_validator(mode="before")
    @classmethod
    def _single_entity_pages_once(cls, data: Any) -> Any:
        """dlt's ``_setup_single_entity_endpoint``: a path ending in a placeholder
        (``/posts/{id}``) names one object, so without a paginator it is one request."""
        if isinstance(data, dict) and data.get("paginator") is None \
                and isinstance(data.get("path"), str) \
                and re.search(r"\{[A-Za-z0-9.\-_]+\}", data["path"].rstrip("/").rsplit("/", 1)[-1]):
            return {**data, "paginator": {"type": "single_page"}}
        return data

    @model_validator(mode="after")
    def _body_fits_the_method(self) -> Endpoint:
        if self.json_body is not None and self.data is not None:
            raise ValueError("sets both json and data: a request has one body; keep one")
        return self


class ResourceConfig(_Model):
    name: str
    endpoint: Endpoint
    # dlt's: one column, or a list of columns that together identify a record (a composite
    # key: merged, deduplicated, deleted and quarantined on all of them).
    primary_key: str | Annotated[list[str], Field(min_length=1)] = "id"
    # dlt's: run the resource in a thread. Accepted and changes nothing: every resource of a
    # run is read at once already (its own thread, bounded by client.max_concurrency).
    parallelized: bool = False
    # dlt's: parent fields copied into each child record as _<parent>_<field>.
    include_from_parent: list[str] = Field(default_factory=list)
    write_disposition: Literal["merge", "append", "replace"] = "merge"
    # dlt's column hints: declared types (schemas.py); undeclared fields are inferred.
    columns: dict[str, ColumnHint] = Field(default_factory=dict)
    # Ours: a record that breaks the declared types goes to the quarantine table and the run
    # goes on, or (fail) fails its resource with nothing of its batch written.
    on_bad_record: Literal["quarantine", "fail"] = "quarantine"
    # Ours, read by a child only (children.py): a parent record whose children cannot be read
    # (its resolve field null, empty or not a path segment; its child endpoint answering 404)
    # is skipped and named in the summary, or (fail) fails the child once every other
    # parent's children are committed. Either way the other parents' children land.
    on_bad_parent: Literal["skip", "fail"] = "skip"
    # dlt's filter/map steps, applied after paging and marks have seen the records.
    processing_steps: list[ProcessingStep] = Field(default_factory=list)
    # Ours (Sling's name; dlt has the hard_delete column hint for tombstones): what becomes of
    # a row whose record the API no longer lists (docs/deletes.md). None: soft for merge and
    # replace, off for append (a log keeps what it logged).
    delete_missing: Literal["soft", "hard", "off"] | None = None
    # Ours: a read that would delete more than this share of a table's live rows fails its
    # resource and deletes nothing (an API that suddenly serves half its records).
    max_delete_share: Annotated[float, Field(gt=0.0, le=1.0)] = DEFAULT_MAX_DELETE_SHARE

    @model_validator(mode="after")
    def _deletes_fit_the_disposition(self) -> ResourceConfig:
        if self.write_disposition == "append" and self.delete_missing not in (None, "off"):
            raise ValueError(
                f"delete_missing: {self.delete_missing!r} needs write_disposition merge or "
                "replace; an append table keeps every version it was given: drop "
                "delete_missing or use merge")
        tombstones = [n for n, hint in self.columns.items() if hint.hard_delete]
        if len(tombstones) > 1:
            raise ValueError(f"columns: {tombstones} all set hard_delete; one column can")
        if tombstones and self.write_disposition != "merge":
            raise ValueError(f"columns.{tombstones[0]}.hard_delete needs write_disposition "
                             "merge (dlt's rule too)")
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        """``primary_key`` as columns: one, or a composite key's in the order given."""
        return (self.primary_key,) if isinstance(self.primary_key, str) \
            else tuple(self.primary_key)

    @property
    def deletes(self) -> Literal["soft", "hard", "off"]:
        """``delete_missing`` as it applies: its default follows the disposition."""
        if self.delete_missing is not None:
            return self.delete_missing
        return "off" if self.write_disposition == "append" else DEFAULT_DELETE_MISSING

    @field_validator("name")
    @classmethod
    def _names_a_directory(cls, name: str) -> str:
        if name in ("_staging", "_quarantine"):
            raise ValueError(f"{name!r} is reserved for the lake's staging and quarantine "
                             "tables; pick another name")
        if not _RESOURCE_NAME.match(name):
            raise ValueError(
                f"{name!r} must be letters, digits, '_' or '-' only, because it names the "
                "table's directory in the lake"
            )
        return name


class ClientConfig(_Model):
    base_url: str = Field(min_length=1)
    auth: Auth = ApiKeyAuth(type="api_key")
    # Sent on every request; a value may be a dlt.secrets[...] (the seed's X-Organization-Id).
    headers: Headers = Field(default_factory=dict)
    paginator: Paginator | None = None
    # Our addition: seconds to wait for a response (connect waits at most 10 s of it).
    timeout: PositiveFloat = 30.0
    # Our addition: a larger response body fails its resource instead of filling memory.
    max_response_bytes: PositiveInt = 64 * 1024 * 1024
    # Our addition: requests in flight at once across all resources of a run. 16 lets every
    # walk of four resources split four ways wait on the API at once (at 50 ms per page, 8
    # left the largest resource alone on half the slots at the end: 30 s instead of 17 s).
    max_concurrency: PositiveInt = 16

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {url!r})")
        return url


class SourceConfig(_Model):
    """A validated source: resources already carry their merged defaults."""

    client: ClientConfig
    resources: list[ResourceConfig] = Field(min_length=1)

    def secret_names(self) -> tuple[str, ...]:
        """The secrets the config names (``dlt.secrets[...]``), for
        ``resolve_credentials(needs=)``: those of ``client.auth`` and every ``endpoint.auth``,
        and those in ``client.headers`` and every ``endpoint.headers`` (the seed's
        ``X-Organization-Id`` names ``organization_id``; a config without it needs none)."""
        names: list[str] = [*_auth_secrets(self.client.auth)]
        headers = [self.client.headers]
        for resource in self.resources:
            if resource.endpoint.auth is not None:
                names += _auth_secrets(resource.endpoint.auth)
            headers.append(resource.endpoint.headers)
        names += [ref for h in headers for v in h.values() if (ref := secret_ref(v))]
        return tuple(dict.fromkeys(names))

    def resource(self, name: str) -> ResourceConfig:
        for resource in self.resources:
            if resource.name == name:
                return resource
        known = ", ".join(r.name for r in self.resources)
        raise ConfigError([f"resources: no resource named {name!r}; configured: {known}"])

    def select(self, names: typing.Iterable[str] | None) -> SourceConfig:
        """The same source restricted to ``names`` (all when None), in config order."""
        if names is None:
            return self
        wanted = list(dict.fromkeys(names))
        known = {r.name for r in self.resources}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ConfigError(
                [f"resources: no resource named {n!r}; configured: {', '.join(sorted(known))}"
                 for n in unknown]
            )
        kept = [r for r in self.resources if r.name in wanted]
        return self.model_copy(update={"resources": kept})


def _auth_secrets(auth: Any) -> tuple[str, ...]:
    """The secrets one auth config names."""
    if isinstance(auth, OAuth2ClientCredentialsAuth):
        return (auth.client_id, auth.client_secret)
    if isinstance(auth, ApiKeyAuth):
        return (auth.api_key,)
    if isinstance(auth, BearerAuth):
        return (auth.token,)
    return (auth.password,)


# -- parent/child: dlt's resolve params and {resources.<parent>.<field>} (children.py reads) --


def parent_bindings(resource: ResourceConfig) -> list[tuple[str, str, str]]:
    """``(placeholder, parent, field)`` for each parent value the child's requests need:
    ``{deal_id}`` bound by a resolve param, and every ``{resources.deals.id}`` (in the path,
    params, body or headers)."""
    endpoint = resource.endpoint
    found = [(name, r.resource, r.field) for name, r in endpoint.resolve.items()]
    texts = [endpoint.path, *(v for v in endpoint.params.values() if isinstance(v, str)),
             *placeholders.texts(endpoint.json_body), *placeholders.texts(endpoint.data),
             *placeholders.texts(endpoint.headers)]
    for text in texts:
        for parent, field in placeholders.parents(text):
            entry = (f"resources.{parent}.{field}", parent, field)
            if entry not in found:
                found.append(entry)
    return found


def request_bodies(endpoint: Endpoint) -> tuple[Any, ...]:
    """What a request carries besides its path and params, where placeholders may stand: the
    JSON body, the form body and the headers."""
    return (endpoint.json_body, endpoint.data, endpoint.headers)


def parent_of(resource: ResourceConfig) -> str | None:
    """The resource a child is read for (None: not a child)."""
    bindings = parent_bindings(resource)
    return bindings[0][1] if bindings else None

"""The source configuration: dlt's ``rest_api_source`` dict format, validated once at the boundary.

Users arrive with a dlt config, so we read that format rather than invent one, with dlt's
defaults where a key is omitted (the seed, ``loading.DEFAULT_CONFIG``, writes out the contract's
paging in full). We differ from dlt in being strict: every key is known, every value
is checked, and all problems are reported together in one ``ConfigError`` before any request.

Secrets never live in a config: ``api_key``, ``token`` and ``password`` must be omitted or written
as ``dlt.secrets["api_key"]`` (resolved at run time, see ``secrets.py``).

This module holds the models and the defaults they carry (the field types they share are
fields.py's, the auth types auth.py's). Reading a config (a file, defaults
merged into each resource) is loading.py's, the checks across fields and resources checks.py's,
and the wording of pydantic's errors describe.py's; ``analytics_client.config`` offers them all.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from analytics_client.config.auth import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentialsAuth,
)
from analytics_client.config.fields import (
    SECRET_NAMES,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Scalar,
    StrictModel,
    fail,
    secret_ref,
)
from analytics_client.config.paginators import (
    AutoPaginator,
    CursorPaginator,
    HeaderCursorPaginator,
    HeaderLinkPaginator,
    JSONLinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    SinglePagePaginator,
)
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

NEVER_RETRY = frozenset({400, 401, 403, 404})
ALWAYS_RETRY = frozenset({500, 502, 503, 504})
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


Auth = Annotated[ApiKeyAuth | BearerAuth | BasicAuth | OAuth2ClientCredentialsAuth,
                 Field(discriminator="type")]


class ErrorHandler(StrictModel):
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
            raise fail("cursor_value", f"must fit a 64-bit integer (got {value}: {exc})") \
                from None
    try:
        timestamps.parse(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail("cursor_value", f"must be an ISO-8601 timestamp with a zone, e.g. "
                    f"2026-01-01T00:00:00Z, or an integer (got {value!r}: {exc})") from None
    return value


def _as_mark(value: str | int) -> int:
    return value if isinstance(value, int) else timestamps.parse(value)


# The lag's default (dlt's is 0), in the cursor's units: the contract's 5 s visibility, doubled.
# An integer cursor keeps it too: a filter that is exclusive (GitHub's ``since``) with no lag
# would leave the record at the mark unserved, and delete capture would take it for deleted.
DEFAULT_LAG_SECONDS = 10.0


class Incremental(StrictModel):
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
    lag: NonNegativeFloat = DEFAULT_LAG_SECONDS
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


class ResponseAction(StrictModel):
    """dlt's ``{"status_code": 404, "action": "ignore"}`` / ``{"content": "...", ...}``: a
    response that matches is dropped and ends the read (``responses.py``). dlt's callable
    actions are hooks on a ``requests.Response``, which we do not have: not accepted."""

    status_code: PositiveInt | None = None
    content: str | None = Field(default=None, min_length=1)
    action: Literal["ignore"]

    @model_validator(mode="after")
    def _matches_something(self) -> ResponseAction:
        if self.status_code is None and self.content is None:
            raise ValueError("matches every response: give status_code, content or both")
        return self


class ProcessingStep(StrictModel):
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
            raise fail("json_path", f"{selector!r} {exc}") from None
        if drops_records(selector):
            raise fail("json_path", (
                f"{selector!r} keeps only some of a page's records (a filter, an index or a "
                "slice): paging and incremental marks would then see only those and could stop "
                "early or skip records. Point data_selector at the list (e.g. '$.data[*]') and "
                "keep records with processing_steps: [{filter: ...}] (Python configs)"))
    return selector


class ResolveParam(StrictModel):
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


# RFC 9110 §5.6.2: a field name is a token of these characters; httpx (h11) refuses to send
# any other, and retrying would only repeat the refusal.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values are text or a ``dlt.secrets[...]`` naming a known secret (resolved at run
    time, like the auth's: the seed's ``X-Organization-Id`` is one). Names are RFC 9110 tokens
    once their ``{{ }}`` escapes are read as braces (dlt's expansion of a name)."""
    for name in headers:
        if _fills(name):
            continue  # a name with a placeholder is known once filled, per request
        sent = placeholders.expand_tree({name: ""}, {})
        if len(sent) == 1 and not _TOKEN.fullmatch(next(iter(sent))):
            raise ValueError(f"{name!r} is sent as {next(iter(sent))!r}, which is no valid "
                             "header name (RFC 9110 §5.6.2: letters, digits and "
                             "!#$%&'*+-.^_`|~ only; httpx refuses others, where dlt's requests "
                             "sends them): rename the header")
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"{name}: its value holds a line break or NUL, which no HTTP "
                             "header may carry (RFC 9110 §5.5); remove it")
        ref = secret_ref(value)
        if ref is not None and ref not in SECRET_NAMES:
            raise ValueError(f"{name}: unknown secret {ref!r}; use one of: "
                             + ", ".join(f'dlt.secrets["{n}"]' for n in SECRET_NAMES))
    return headers


def _fills(text: str) -> bool:
    try:
        return bool(placeholders.fields(text))
    except ValueError:  # a lone brace: placeholders' own check names it
        return False


Headers = Annotated[dict[str, str], AfterValidator(_headers)]


class Endpoint(StrictModel):
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


class ResourceConfig(StrictModel):
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
    def _yield_map_appends(self) -> ResourceConfig:
        """A ``yield_map`` makes several rows of one record, which share its key: merged on
        that key they would collapse into one, silently. So where ``write_disposition`` is
        not given, such a resource appends, as every dlt resource does by default (a child,
        merged per parent, keeps ``merge``)."""
        if "write_disposition" not in self.model_fields_set \
                and any(step.yield_map is not None for step in self.processing_steps) \
                and not parent_bindings(self):
            object.__setattr__(self, "write_disposition", "append")  # frozen: set once, here
        return self

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


class ClientConfig(StrictModel):
    base_url: str = Field(min_length=1)
    # dlt's: none unless given (the seed names its api_key header; no config sends our key
    # to an API that did not ask for it).
    auth: Auth | None = None
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


class SourceConfig(StrictModel):
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
    """The secrets one auth config names (none without one)."""
    if auth is None:
        return ()
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

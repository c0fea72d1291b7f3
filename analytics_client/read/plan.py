"""A resource's plan: everything one run of it needs, resolved once from its config.

dlt's rest_api turns each resource's config into a paginator, an incremental and hooks once
(``create_resources``) and hands those to its paging loop; this is our ``create_resources``.
The plan is a frozen value, not an object that does the work: the sync loop (``run/sync.py``)
opens the read its ``mode`` names, and each part goes to the code that needs it, never the
config itself:

* ``request`` (``http/template.py``): path, params, paginator, data selector and the HTTP
  policy (error handler, response actions) -- the client and every page read;
* ``cursor`` and ``window``: the incremental cursor and a backfill's window -- the readers;
* ``table`` (``lake/tables.py``): disposition, keys, cursor column, column hints, bad records
  -- the table writer;
* ``marks`` (``state/markpolicy.py``): how the resource's marks are kept -- the mark policy;
* ``steps``: dlt's processing steps, applied after paging and marks saw the records;
* ``parent``: a child's parent, the fields its requests and rows take from it, and what a
  parent whose children cannot be read does (``on_bad_parent``);
* ``start``: where this run's read begins and why, once the mark policy has read the lake's
  and the store's state (``starting``); None in a plan not yet started (``check``'s, which asks
  as a first run would).

Which read (the rules are in docs/incremental.md; tests/test_plan_reads.py checks them):

==========  ===========================================================================
``child``   the path or params name a parent: read once per changed parent record
``paged``   not incremental: the paginator alone
``keyset``  page numbers and ``start_param``: the keyset walk (``keyset.py``)
``sliced``  the same, ``endpoint.concurrency`` > 1: several walks at once (``slices.py``)
``lagged``  any other paginator, or an API that cannot filter (no ``start_param`` or
            placeholder: every page read, records below the start dropped on our side, as
            dlt's incremental does): a lagged re-read (``window.py``)
``backfill``  ``end_value`` set: ``[initial_value, end_value)`` by the keyset walk or the
            lagged read (``walk``), marks neither read nor moved
==========  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from analytics_client.config.cursorkind import cursor_kind
from analytics_client.config.model import (
    PageNumberPaginator,
    ProcessingStep,
    ResourceConfig,
    SourceConfig,
    parent_bindings,
    request_bodies,
)
from analytics_client.config.schemas import ColumnHint
from analytics_client.core.cursors import (
    TIMESTAMP,
    CursorCodec,
    codec_for,
    cursor_column,
    cursor_value,
)
from analytics_client.core.jsonpath import field_chain
from analytics_client.core.placeholders import expand_tree, fields, texts, used
from analytics_client.core.window import Window
from analytics_client.http.template import HttpPolicy, RequestTemplate
from analytics_client.lake.tables import TableSpec
from analytics_client.state.markpolicy import MarkSpec
from analytics_client.state.marks import Start

__all__ = ["BadParent", "Cursor", "HasCursor", "Parent", "ReadMode", "ResourcePlan",
           "plan_resource"]

ReadMode = Literal["paged", "keyset", "sliced", "lagged", "backfill", "child"]
# What a child does with a parent whose children cannot be read (``on_bad_parent``).
BadParent = Literal["skip", "fail"]


@dataclass(frozen=True)
class Cursor:
    """dlt's ``incremental`` as a read uses it: the cursor field (``cursor_path``), its kind
    (``codec``: an instant or an integer, as the config declares it: core/cursors.py), the
    filter parameters, the first run's start (``initial_value``), a backfill's end and the
    re-read ``lag`` (in the cursor's units: seconds for an instant)."""

    path: str
    start_param: str | None = None
    end_param: str | None = None
    initial_value: str | int | None = None
    end_value: str | int | None = None
    lag: float = 10.0
    codec: CursorCodec = TIMESTAMP

    @property
    def column(self) -> str:
        """The table column holding the cursor (``cursor_column``: the field, or dlt's
        ``properties__hs_lastmodifieddate`` for a nested one)."""
        return cursor_column(self.path)

    @property
    def nested(self) -> bool:
        """Whether the cursor lies below the record's top level (its column is then added to
        each record: run/sync.py)."""
        return len(field_chain(self.path) or ()) > 1

    def value(self, record: object) -> object:
        """The cursor value of ``record`` (None: absent), before ``codec.parse``."""
        return cursor_value(record, self.path)

    @property
    def initial_mark(self) -> int | None:
        """``initial_value`` as a mark (None: not given)."""
        return None if self.initial_value is None else self.codec.read(self.initial_value)

    def read_from(self, mark: int | None, *, proven: bool = False) -> int | None:
        """Where a read resuming at ``mark`` sends its first cursor filter: ``lag`` earlier,
        because the contract lets a change become visible up to 5 s late (None: all);
        strictly after the mark when the API's clock has ``proven`` it (state/markpolicy.py).
        Within what the cursor's kind holds: the filter must stay writable.

        The lag never takes a read below ``initial_value`` (dlt's ``apply_lag``: "applies lag
        to last_value but prevents it to cross initial_value"): a first run starts exactly at
        ``initial_value``, as docs/incremental.md says; a mark already below it (saved before
        ``initial_value`` was set) stays where it is."""
        if mark is None:
            return None
        if proven:
            return self.codec.clamp(mark + 1)  # cursors are whole microseconds or integers
        lagged = self.codec.clamp(mark - self.codec.offset(self.lag))
        initial = self.initial_mark
        if initial is not None and mark >= initial:
            lagged = max(lagged, initial)
        return lagged

    def begin(self, start: Start | None) -> int | None:
        """Where a read from ``start`` begins (None: everything)."""
        if start is None:
            return None
        return self.read_from(start.mark_us, proven=start.proven)


@dataclass(frozen=True)
class Parent:
    """A child's parent (dlt's ``resolve`` / ``{resources.<parent>.<field>}``): its name and
    key, the ``(placeholder, field)`` each request binds, the fields copied into each child
    record (``include_from_parent``), and what a parent record whose children cannot be read
    does (``on_bad``, the resource's ``on_bad_parent``: children.py)."""

    name: str
    primary_key: str
    bindings: tuple[tuple[str, str], ...]
    include: tuple[str, ...] = ()
    on_bad: BadParent = "skip"
    # The parent table's key: its primary key, and, when the parent is itself a child (a
    # chain: dlt's grandchildren), the columns that key its rows to its own parent.
    table_key: tuple[str, ...] = ()

    @property
    def keys(self) -> list[str]:
        """The columns that identify one parent row (its table's merge key)."""
        return list(self.table_key or (self.primary_key,))

    def column(self, field: str) -> str:
        """dlt's name for a parent field in a child record: ``_deals_id``
        (dlt/sources/rest_api/config_setup.py: ``make_parent_key_name``)."""
        return f"_{self.name}_{field}"

    @property
    def fields(self) -> list[str]:
        """The parent columns a child read needs, each once, in order."""
        return list(dict.fromkeys([*(f for _, f in self.bindings), *self.include]))

    @property
    def key_columns(self) -> list[str]:
        """The columns that key a child row to its parent (after the child's own key)."""
        return list(dict.fromkeys(self.column(f) for _, f in self.bindings))


@dataclass(frozen=True)
class ResourcePlan:
    """One resource's run, resolved (see the module docstring). ``walk`` is the read under a
    backfill's window (``keyset`` or ``lagged``); for every other mode it is ``mode``."""

    name: str
    mode: ReadMode
    walk: ReadMode
    request: RequestTemplate
    table: TableSpec
    marks: MarkSpec
    cursor: Cursor | None = None
    window: Window | None = None
    concurrency: int = 1
    steps: tuple[ProcessingStep, ...] = ()
    parent: Parent | None = None
    start: Start | None = None
    # The API filters by the cursor (``start_param`` or a placeholder); without, a read of
    # the resource serves every record and ours keeps those from its start (dlt's way).
    api_filters: bool = True

    @property
    def primary_key(self) -> str:
        """dlt's ``primary_key``: the field that identifies a record (the table's key)."""
        return self.table.primary_key

    @property
    def record_key(self) -> tuple[str, ...]:
        """The columns that identify a record as the API serves it: ``primary_key``, one
        column or a composite key's (a child's parent columns are added after the read)."""
        parent = len(self.parent.key_columns) if self.parent is not None else 0
        key = self.table.key
        return key[:len(key) - parent] if parent else key

    @property
    def incremental(self) -> bool:
        """Whether runs read only what changed since the mark (``endpoint.incremental``)."""
        return self.cursor is not None

    def starting(self, start: Start) -> ResourcePlan:
        """This plan for a run that starts at ``start`` (a cursor in epoch µs, or a child's
        parent version; None: everything), as the mark policy decided from the lake and store."""
        return replace(self, start=start)


def plan_resource(resource: ResourceConfig, source: SourceConfig | None = None) -> ResourcePlan:
    """The plan of ``resource``; ``source`` is the whole config, where a child's parent is
    found (its key defaults to ``id`` without it)."""
    endpoint = resource.endpoint
    incremental = endpoint.incremental
    codec = codec_for(cursor_kind(resource))
    cursor = None if incremental is None else Cursor(
        incremental.cursor_path, incremental.start_param, incremental.end_param,
        incremental.initial_value, incremental.end_value, incremental.lag, codec)
    window = None
    if incremental is not None and incremental.end_value is not None:
        assert incremental.initial_value is not None  # config.Incremental checks it
        window = Window(codec.read(incremental.initial_value), codec.read(incremental.end_value))
    parent = _parent(resource, source)
    walk = _walk(resource, parent)
    mode: ReadMode = "backfill" if window is not None and walk in ("keyset", "sliced", "lagged") \
        else walk
    if mode == "backfill" and walk == "sliced":
        walk = "keyset"  # a backfill's window is walked once (as before the plan)
    params, final = _params(endpoint.params, walk)
    request = RequestTemplate(
        resource.name, endpoint.path, params, endpoint.paginator,
        endpoint.data_selector, HttpPolicy(endpoint.error_handler,
                                           tuple(endpoint.response_actions)),
        method=endpoint.method, json=_unescaped(endpoint.json_body),
        data=_unescaped(endpoint.data), headers=_unescaped(dict(endpoint.headers)),
        auth=endpoint.auth, final_params=final)
    table = TableSpec(
        resource.name,
        write_disposition="merge" if parent is not None else resource.write_disposition,
        # A composite key's first column is the table's primary key, the others follow it as
        # more key columns, before a child's parent columns: merges, dedupes, deletes and the
        # quarantine match rows on all of them (TableSpec.key).
        primary_key=resource.key_columns[0],
        # Without a cursor the merge is an upsert on the key (dlt's too); a child has none.
        cursor_field=cursor.column if cursor is not None else None,
        columns=_columns(resource, cursor),
        quarantine=resource.on_bad_record == "quarantine",
        parent_key=(*resource.key_columns[1:],
                    *(parent.key_columns if parent is not None else ())),
        delete_missing=resource.deletes, max_delete_share=resource.max_delete_share,
        hard_delete=next((n for n, hint in resource.columns.items() if hint.hard_delete), None),
        cursor_nullable=incremental is not None
        and incremental.on_cursor_value_missing == "include")
    steps = tuple(resource.processing_steps)
    if incremental is not None and incremental.on_cursor_value_missing == "exclude":
        steps = (ProcessingStep(filter=HasCursor(incremental.cursor_path)), *steps)
    # A child with its own incremental keeps cursor marks (its children are read for every
    # parent, filtered by its cursor: children.py); without one, the parent version.
    marks = MarkSpec(resource.name, incremental=cursor is not None,
                     initial_value=cursor.initial_value if cursor else None,
                     end_value=cursor.end_value if cursor else None, window=window,
                     child=parent is not None and cursor is None, codec=codec)
    return ResourcePlan(resource.name, mode, walk, request, table, marks, cursor=cursor,
                        window=window, concurrency=endpoint.concurrency,
                        steps=steps, parent=parent, api_filters=_filters(resource))


def _columns(resource: ResourceConfig, cursor: Cursor | None) -> dict[str, ColumnHint]:
    """The declared column hints, and the cursor's own when the config declares it only by
    ``initial_value`` or not at all: the table's cursor column has the config's kind, never the
    first record's (core/cursors.py)."""
    columns = {n: hint for n, hint in resource.columns.items() if hint.data_type is not None}
    if cursor is not None and cursor.column not in columns:
        nullable = resource.endpoint.incremental is not None \
            and resource.endpoint.incremental.on_cursor_value_missing == "include"
        columns[cursor.column] = ColumnHint(data_type=cursor.codec.column_type, nullable=nullable)
    return columns
def _params(params: dict[str, Any], walk: ReadMode) -> tuple[dict[str, Any], bool]:
    """The query parameters as the plan's requests take them, and whether they are final:
    without placeholders, unescaped (``{{`` is ``{``, dlt's ``expand_placeholders``) for the
    reads that send them as they are; else as written, for the lagged read and a child's,
    which fill them per request and unescape them then (window.py, children.py)."""
    if walk not in ("paged", "keyset", "sliced") or any(fields(t) for t in texts(params)):
        return dict(params), False
    return expand_tree(dict(params), {}), True


def _unescaped(tree: Any) -> Any:
    """A body or headers without placeholders as sent: ``{{`` and ``}}`` read as braces, as
    dlt's ``expand_placeholders`` leaves every request text; one with placeholders is filled
    per read (window.py, children.py), which unescapes it then."""
    if any(fields(text) for text in texts(tree)):
        return tree
    return expand_tree(tree, {})


@dataclass(frozen=True)
class HasCursor:
    """dlt's ``on_cursor_value_missing: exclude`` as a processing step's filter: a record
    whose cursor is missing or null is dropped."""

    path: str

    def __call__(self, record: object) -> bool:
        return isinstance(record, dict) and cursor_value(record, self.path) is not None


def _filters(resource: ResourceConfig) -> bool:
    """Whether the request carries the cursor's filter: ``start_param`` or a placeholder."""
    endpoint = resource.endpoint
    return endpoint.incremental is not None and bool(
        endpoint.incremental.start_param
        or used(endpoint.path, endpoint.params, *request_bodies(endpoint)))


def _walk(resource: ResourceConfig, parent: Parent | None) -> ReadMode:
    endpoint = resource.endpoint
    incremental = endpoint.incremental
    if parent is not None:
        return "child"
    if incremental is None:
        return "paged"
    if not _filters(resource):
        # The API cannot filter by the cursor: every run reads everything and keeps what is
        # at or after its start on our side (dlt's incremental), by the lagged read.
        return "lagged"
    # A keyset walk sets the filter in the query itself; a body or header holding the mark's
    # placeholder is filled by the lagged read (window.py), which fills every placeholder.
    if incremental.start_param and isinstance(endpoint.paginator, PageNumberPaginator) \
            and not used("", {}, *request_bodies(endpoint)):
        return "sliced" if endpoint.concurrency > 1 else "keyset"
    return "lagged"


def _parent(resource: ResourceConfig, source: SourceConfig | None) -> Parent | None:
    bindings = parent_bindings(resource)
    if not bindings:
        return None
    name = bindings[0][1]
    known = {r.name: r for r in source.resources} if source is not None else {}
    key = known[name].key_columns[0] if name in known else "id"
    grand = _parent(known[name], source) if name in known else None
    table_key = (key, *grand.key_columns) if grand is not None else (key,)
    return Parent(name, key, tuple((placeholder, field) for placeholder, _, field in bindings),
                  tuple(resource.include_from_parent), resource.on_bad_parent, table_key)

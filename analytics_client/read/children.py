"""Parent/child resources (dlt's ``resolve`` and ``include_from_parent``): a child endpoint read
once per parent record, only for the parents that changed since the children were last read.

Which parents changed is read from the parent's Delta table, not from the run's memory: the
rows of the parent table now whose (key, row hash) the table did not hold at the version the
children were last read for (Delta time travel). That is exactly the parents inserted or
updated since (a row re-read unchanged keeps its hash and is not rewritten by the merge), it
survives a failed child read (the version only moves once every child of the list is
committed), and it needs the parent synced in the same run only to see that run's changes.

The version read for is kept in the child table itself, as a Delta app transaction of
``<pipeline app id>:parent-version`` committed with the last children's rows
(``state/markpolicy.ParentVersionMarks``): like every mark here, never ahead of the data. The
read is one more ``PageSource`` of the one sync loop (``run/sync.py``): batches, budget,
processing steps and commits are the same as every other resource's.
No table yet, a full refresh, or a parent version no longer readable
(vacuumed) means every parent.

A child table is keyed on the child's ``primary_key`` plus a column per parent field its
request resolves (``_<parent>_<field>``, dlt's ``make_parent_key_name``): a child id need only be
unique per parent. Those columns are always written; ``include_from_parent`` adds more, named
the same way (dlt/sources/rest_api/config_setup.py: ``build_parent_record``).

Limit (dlt's too): a child that changes while its parent does not is read again only when its
parent changes, or on a full refresh of the child (docs/incremental.md, Parent/child).

**A child with its own incremental** (dlt's ``incremental`` on a child endpoint) lifts that
limit: its children are read for *every* live parent, each request filtered from the child's
own mark less ``lag`` (``start_param`` or ``{incremental.*}`` placeholders, as a lagged read
fills them: ``window.windowed_request``), and the mark its complete read allows is a lagged
read's (``window.py``: the lowest of the highest cursor seen and the higher of the child
table's highest before the read and the first answer's highest), kept like any resource's
cursor mark (table and state store). A parent version is then not kept: every parent is asked,
which costs one request per parent per run, and dlt does the same.

Chains (dlt's grandchildren): a child is a parent like any other. Its table is keyed on its
own key plus its parent's key columns, and a grandchild binds fields of the child's rows
(``{resources.issues.number}``, or the grandparent's key the child carries as
``_repos_id``); which child rows changed is read from the child's table the same way.

A bad parent is one record, never the resource (``on_bad_parent``, docs/incremental.md). A
parent whose resolve field names no child (null, empty; in the path also ``.`` or ``..``, which
a URL resolves away: ``/v1/deals/../tasks`` is ``/v1/tasks``) is never asked; one whose child
endpoint answers 404 was deleted after its row was read (the contract deletes at any moment) or
has no children there. Every other parent's children are read and committed either way. Then:

* ``skip`` (the default): those parents are named in the summary (the first five, and a count)
  and the parent version moves as if they had been read. They are read again once their row
  changes (a new hash), or on a full refresh of the child: a null field cannot resolve until
  the row changes, and re-asking them every run would re-read every other changed parent too
  (the version is one number). A deleted parent's child rows follow its delete (run/deletes.py).
* ``fail``: the child fails naming them (``BadParentError``); the version does not move, so
  the next run reads the same parents again.
* Every parent asked (two or more) answering 404 is a wrong path, not deletes: the child fails
  with either setting, saying so (and how dlt's ``response_actions`` ignore a 404).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import polars as pl
from deltalake import DeltaTable

from analytics_client.core.cursors import KindMismatch
from analytics_client.core.errors import APIError, BadParentError, ContractError
from analytics_client.core.placeholders import expand, expand_tree, fields
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.core.window import Window
from analytics_client.http.client import ApiClient, RetryEvent
from analytics_client.http.template import RequestTemplate
from analytics_client.lake.frames import DELETED_AT, ROW_HASH
from analytics_client.lake.tables import Lake
from analytics_client.read.paged import iter_pages
from analytics_client.read.pages import Page
from analytics_client.read.plan import Parent, ResourcePlan
from analytics_client.read.window import highest_cursor, in_window, lagged_mark, windowed_request

__all__ = ["ChildRead", "changed_parents"]

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[Any]

ParentRow = dict[str, Any]
Pages = list[list[Any]]
_SHOWN = 5  # bad parents a note or an error names; the rest are counted


@dataclass(frozen=True)
class _BadParent:
    """A parent whose children could not be read: its key, and the resolve ``field`` that
    names no child, or the 404 (``error``) its child endpoint answered."""

    key: object
    field: str | None = None
    error: APIError | None = None


class ChildRead:
    """A child resource's read, as a ``pages.PageSource``: each changed parent's child pages,
    every record with its parent columns, ``endpoint.concurrency`` parents at a time.

    ``since``: the parent version the children were last read for (None: every parent).
    ``notes`` receives what the summary should say (no parent table, a vacuumed version, the
    parents skipped). Pages carry no mark; once every parent's children were yielded (or the
    parent skipped: module docstring), ``end_mark`` is the parent version read for, which the
    sync loop commits with the last rows.
    """

    keyset = False
    served_everything = False
    total_count: int | None = None
    reread = 0
    recovered = 0

    def __init__(self, client: ApiClient, plan: ResourcePlan, lake: Lake, *,
                 since: int | None, notes: list[str], log: Log = logger,
                 on_retry: Callable[[RetryEvent], None] | None = None,
                 begin: int | None = None, below_start: int | None = None) -> None:
        if plan.parent is None:
            raise ValueError(f"{plan.name} is not a child resource")
        self.client, self.plan, self.parent, self.lake = client, plan, plan.parent, lake
        self.since, self.notes, self.log, self.on_retry = since, notes, log, on_retry
        self.version: int | None = None
        self.complete = False
        # With the child's own incremental: every parent, each request from ``begin``, or
        # within a backfill's window (``[initial_value, end_value)``: no mark read or moved).
        self.window = (plan.window or Window(begin)) if plan.cursor is not None else None
        self.template = windowed_request(plan, self.window) if self.window is not None \
            else plan.request
        self.below_start = below_start
        self.first_max: int | None = None
        self.seen_max: int | None = None

    def __iter__(self) -> Iterator[Page]:
        parent, name = self.parent, self.plan.name
        self.version = self.lake.version(parent.name)
        if self.version is None:
            self.notes.append(f"the parent {parent.name!r} has no table yet: no children read")
            return
        since = None if self.window is not None else self.since
        rows = changed_parents(self.lake, parent, self.version, since, self.notes)
        self.log.info("%s: %s changed %s record(s) since %s: reading their children", name,
                      f"{len(rows):,}", parent.name,
                      "the start" if since is None else f"version {since}")
        workers = self.plan.concurrency
        chunk = workers * 4  # bounded memory: a few parents' pages at a time
        bad: list[_BadParent] = []
        asked = 0  # parents whose child endpoint was asked
        first: list[tuple[Pages, _BadParent | None]] = []
        if self.window is not None and rows:
            # The first parent alone, before any other request: its first page was served when
            # the read began, which is what bounds the mark (window.py's module docstring).
            first.append(self._read(rows[0]))
            pages = first[0][0]
            self.first_max = self._highest(pages[0]) if pages else None
            rows = rows[1:]
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"{name}-children") as pool:
            chunks = [rows[i:i + chunk] for i in range(0, len(rows), chunk)]
            for index in range(-1 if first else 0, len(chunks)):
                if self.client.stop.requested:
                    return
                answers = first if index < 0 else pool.map(self._read, chunks[index])
                for pages, failed in answers:
                    if failed is None or failed.error is not None:
                        asked += 1
                    if failed is not None:
                        bad.append(failed)
                    for records in pages:
                        yield Page(self._filtered(records))
        self._judge(bad, asked)
        self.complete = not self.client.stop.requested

    def _judge(self, bad: list[_BadParent], asked: int) -> None:
        """Skip (named in the notes) or fail on the parents whose children could not be read,
        as ``on_bad_parent`` says; every parent asked answering 404 fails whatever it says
        (the module docstring has the rules)."""
        parent, child = self.parent.name, self.plan.name
        missing = [b for b in bad if b.error is not None]
        if len(missing) >= 2 and len(missing) == asked:
            first = missing[0].error
            assert first is not None
            raise APIError(child, status=404, detail=first.detail, url=first.url, hint=(
                f"every one of the {asked:,} {parent} records asked answered 404 "
                f"({_named(b.key for b in missing)}): endpoint.path "
                f"{self.plan.request.path!r} is likely wrong. If the API answers 404 for a "
                f"{parent} record without {child}, add response_actions: "
                "[{status_code: 404, action: ignore}] to the endpoint (dlt's way: such a "
                "record then has none); on_bad_parent skips a record answering 404 only "
                "while others answer"))
        if not bad:
            return
        unresolved = [b for b in bad if b.error is None]
        said = []
        if unresolved:
            names = ", ".join(repr(f) for f in dict.fromkeys(b.field for b in unresolved))
            said.append(f"{len(unresolved):,} whose {names} names no {child} (null, empty, "
                        f"'.' or '..'): {_named(b.key for b in unresolved)}")
        if missing:
            said.append(f"{len(missing):,} whose {child} answered 404 (deleted since their row "
                        f"was read, or without {child}): {_named(b.key for b in missing)}")
        what = f"{len(bad):,} {parent} record(s) whose {child} could not be read: " \
            + "; ".join(said)
        if self.parent.on_bad == "fail":
            raise BadParentError(
                child, f"{what}. on_bad_parent is 'fail': the children of the other {parent} "
                f"records are committed and the next run reads the same {parent} records "
                "again. Fix those records or endpoint.path, or set on_bad_parent: skip to skip "
                "such records (each named in the summary) and go on",
                parent=parent, keys=tuple(b.key for b in bad))
        note = (f"skipped {what} (on_bad_parent: skip). Each is read again once its "
                f"{parent} row changes, or with --full-refresh {child}"
                + ("; the rows of a deleted one follow its delete" if missing else ""))
        self.notes.append(note)
        self.log.warning("%s: %s", child, note)

    def _filtered(self, records: list[Any]) -> list[Any]:
        """With the child's own incremental: the records in its window, the cursors seen."""
        cursor = self.plan.cursor
        if cursor is None or self.window is None:
            return records
        top = self._highest(records)
        if top is not None and (self.seen_max is None or top > self.seen_max):
            self.seen_max = top
        return in_window(records, cursor.path, self.window, cursor.codec)

    def _highest(self, records: list[Any]) -> int | None:
        cursor = self.plan.cursor
        assert cursor is not None
        try:
            return highest_cursor(records, cursor.path, cursor.codec)
        except KindMismatch as exc:
            raise ContractError(self.plan.name, str(exc)) from None

    def end_mark(self) -> int | None:
        """The parent version read for, once every changed parent's children were yielded;
        with the child's own incremental, the cursor mark a lagged read allows."""
        if not self.complete:
            return None
        if self.window is not None:
            if self.window.backfill:
                return None
            return lagged_mark(self.seen_max, self.first_max, self.below_start)
        return self.version

    def _read(self, row: ParentRow) -> tuple[Pages, _BadParent | None]:
        """One parent's child pages, or why it has none to read (a 404 or a field that names
        no child); any other failure raises."""
        key = row.get(self.parent.primary_key)
        field = unresolvable(self.plan.request, self.parent, row)
        if field is not None:
            return [], _BadParent(key, field=field)
        request, extra = request_for(self.template, self.parent, row, self.plan.name)
        try:
            return [[{**record, **extra} if isinstance(record, dict) else record
                     for record in page.records]
                    for page in iter_pages(self.client, request, on_retry=self.on_retry)], None
        except APIError as exc:
            if exc.status != 404:
                raise
            return [], _BadParent(key, error=exc)


def _named(keys: Iterable[object]) -> str:
    """The first few keys, and how many more."""
    listed = list(keys)
    shown = ", ".join(repr(k) for k in listed[:_SHOWN])
    return shown + (f" and {len(listed) - _SHOWN:,} more" if len(listed) > _SHOWN else "")


def changed_parents(lake: Lake, parent: Parent, version: int, since: int | None,
                    notes: list[str] | None = None) -> list[ParentRow]:
    """The parent rows at ``version`` that the table did not hold, with the same content, at
    ``since`` (every row when ``since`` is None or no longer readable), with the fields a
    child needs."""
    uri = lake.table_uri(parent.name)
    options = lake.storage_options
    key = parent.keys
    columns = list(dict.fromkeys([*key, *parent.fields]))
    schema = DeltaTable(uri, version=version, storage_options=options).schema()
    names = {f.name for f in schema.fields}
    missing = [c for c in columns if c not in names]
    if missing and f"{missing[0]}__json" in names:
        raise ContractError(parent.name, f"its field {missing[0]!r} is kept as JSON text "
                            f"({missing[0]}__json: objects, lists or mixed types), which a child "
                            "cannot resolve or include yet; include_from_parent and resolve take "
                            "plain fields (text, numbers, booleans, timestamps): remove it")
    if missing:
        raise ContractError(parent.name, f"its table has no column {missing[0]!r}, which a "
                            "child resolves or includes (resolve field / include_from_parent). "
                            "Check the field's name; a field every record so far sent as null "
                            "(or not at all) has no column yet either: declare it in "
                            f"{parent.name}'s columns (e.g. {missing[0]}: {{data_type: text}}) "
                            "so that such records are skipped by on_bad_parent")
    hashed = ROW_HASH in names
    now = pl.read_delta(uri, version=version, storage_options=options,
                        columns=columns + ([ROW_HASH] if hashed else [])
                        + ([DELETED_AT] if DELETED_AT in names else []))
    if DELETED_AT in names:  # a parent the API deleted has no children to read
        now = now.filter(pl.col(DELETED_AT).is_null()).drop(DELETED_AT)
    if since is not None and hashed and since <= version:
        try:
            before = pl.read_delta(uri, version=since, storage_options=options,
                                   columns=[*key, ROW_HASH])
        except Exception as exc:  # noqa: BLE001 - vacuumed or unreadable: read all, say so
            if notes is not None:
                notes.append(f"{parent.name} version {since} is no longer readable "
                             f"({type(exc).__name__}): children of every parent read")
        else:
            now = now.join(before, on=[*key, ROW_HASH], how="anti")
    return now.select(columns).to_dicts()


def unresolvable(template: RequestTemplate, parent: Parent, row: ParentRow) -> str | None:
    """The first field of ``row`` a child request binds that names no child: null, empty,
    or, in the path, ``.`` or ``..`` (a URL resolves those away: ``/v1/deals/../tasks`` would
    ask ``/v1/tasks``). None: every binding resolves."""
    in_path = set(fields(template.path))
    for name, field in parent.bindings:
        value = _json_value(parent.name, field, row[field])
        text = None if value is None else _text(value)
        if text in (None, "") or (name in in_path and text in (".", "..")):
            return field
    return None


def request_for(template: RequestTemplate, parent: Parent, row: ParentRow,
                child: str) -> tuple[RequestTemplate, dict[str, Any]]:
    """The child's request for one parent row, and the parent columns its records get.
    Raises ContractError for a row whose binding names no child (``unresolvable``)."""
    field = unresolvable(template, parent, row)
    if field is not None:
        raise ContractError(child, f"the {parent.name} record {row.get(parent.primary_key)!r} "
                            f"has {row[field]!r} as {field!r}, which names no child: the "
                            "child cannot be requested for it")
    path_values: dict[str, str | None] = {}
    param_values: dict[str, str | None] = {}
    typed: dict[str, Any] = {}  # a JSON body's lone placeholder keeps the value's type (dlt's)
    extra: dict[str, Any] = {}
    for name, field in parent.bindings:
        value = _json_value(parent.name, field, row[field])
        text = _text(value)
        path_values[name] = quote(text, safe="")  # a value is one path segment
        param_values[name] = text
        typed[name] = value
        extra[parent.column(field)] = value
    for field in parent.include:
        extra[parent.column(field)] = _json_value(parent.name, field, row[field])
    path = expand(template.path, path_values)
    assert path is not None  # every binding has a value (checked above)
    params = {k: expand(v, param_values) if isinstance(v, str) else v
              for k, v in template.params.items()}
    return template.filled(path, {k: v for k, v in params.items() if v is not None},
                           json=expand_tree(template.json, param_values, typed),
                           data=expand_tree(template.data, param_values),
                           headers=expand_tree(template.headers, param_values)), extra


def _text(value: Any) -> str:
    """A parent value as it goes into a child's path or params (booleans as JSON writes them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _json_value(parent: str, field: str, value: Any) -> Any:
    """A parent column's value as the API wrote it (the contract's forms)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.datetime):
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return format_cursor(delta // dt.timedelta(microseconds=1))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise ContractError(parent, f"field {field!r} is a {type(value).__name__} in its table; "
                        "only plain values can be resolved or included in a child")

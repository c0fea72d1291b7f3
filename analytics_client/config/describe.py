"""pydantic's validation errors as ``ConfigError`` lines a person can act on.

Each line names the place as the user wrote it (``resources[1].endpoint.paginator.limit``, no
pydantic union tags), blames ``resource_defaults`` when a resource took the bad value from
there, lists the keys allowed where an unknown one stands, and says what to do instead of a dlt
key we do not support yet.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel

from analytics_client.config.model import (
    ApiKeyAuth,
    AutoPaginator,
    BasicAuth,
    BearerAuth,
    CursorPaginator,
    HeaderCursorPaginator,
    HeaderLinkPaginator,
    JSONLinkPaginator,
    OAuth2ClientCredentialsAuth,
    OffsetPaginator,
    PageNumberPaginator,
    SinglePagePaginator,
    SourceConfig,
)

__all__ = ["blame_defaults", "describe"]


def blame_defaults(error: Any, raw: dict[str, Any]) -> Any:
    """Point an error at ``resource_defaults`` when the resource took the bad value from there."""
    loc = _strip_tags(error["loc"])
    resources, defaults = raw.get("resources"), raw.get("resource_defaults")
    if len(loc) < 3 or loc[0] != "resources" or not isinstance(defaults, dict):
        return error
    item = resources[loc[1]] if isinstance(resources, list) and loc[1] < len(resources) else None
    rest = loc[2:]
    if isinstance(item, str):
        item = {"name": item, "endpoint": {"path": item}}
    if isinstance(item, dict) and not _has(item, rest) and _has(defaults, rest):
        return {**error, "loc": ("resource_defaults", *rest)}
    return error


def _has(tree: Any, path: tuple[Any, ...]) -> bool:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts a tagged union's tag in the path; users never wrote it."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i and loc[i - 1] in ("paginator", "auth") and part in _TAG_MODELS:
            continue
        out.append(part)
    return tuple(out)


def describe(error: Any) -> str:
    loc = _strip_tags(error["loc"])
    path = _path(list(loc))
    kind = error["type"]
    if kind == "extra_forbidden":
        key = loc[-1] if loc else ""
        if key in _DLT_NOT_YET:
            return (f"{path}: dlt's {key!r} is not supported yet: {_DLT_NOT_YET[key]} "
                    "(README: dlt config keys)")
        allowed = _allowed_keys(error["loc"][:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key{hint}"
    if kind == "missing":
        return f"{path}: is required"
    if kind == "union_tag_invalid":
        tags = error.get("ctx", {}).get("expected_tags", "")
        return f"{path}.type: unknown type {error['ctx'].get('tag')!r}; supported: {tags}"
    if kind == "union_tag_not_found":
        tags = error.get("ctx", {}).get("expected_tags", "")
        return f"{path}.type: is required; supported: {tags}"
    if kind == "literal_error":
        return f"{path}: must be one of {error['ctx']['expected']} (got {error['input']!r})"
    if kind in ("string_type", "int_type", "dict_type", "list_type", "model_type", "float_type",
                "bool_type"):
        wanted = {"string_type": "a string", "int_type": "an integer", "dict_type": "a mapping",
                  "list_type": "a list", "model_type": "a mapping", "float_type": "a number",
                  "bool_type": "true or false"}[kind]
        return f"{path}: must be {wanted} (got {type(error['input']).__name__})"
    if kind == "too_short":
        return f"{path}: must not be empty"
    if kind == "string_too_short":
        return f"{path}: must not be empty"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}"


# dlt's keys we refuse for now, and what to do instead (README: dlt config keys). A key leaves
# this list when a model takes it (resolve, include_from_parent, end_value and end_param did;
# method, json, data, headers, auth, parallelized and yield_map did too).
_DLT_NOT_YET: dict[str, str] = {
    # A requests.Session object: our client is httpx, its pool shared by every resource of a
    # run (client.max_concurrency), so a session could only be ignored.
    "session": "remove it; the client is httpx, configured by client.timeout, "
               "client.max_concurrency and client.headers (a requests.Session cannot be used)",
    "merge_key": "remove it; merges are keyed on primary_key",
    "table_name": "remove it; the table is named after the resource",
    "max_table_nesting": "remove it; nested values are kept as JSON text",
    "nested_hints": "remove it; nested values are kept as JSON text",
    "references": "remove it",
    "parent_table_name": "remove it",
    "table_format": "remove it; every table is a Delta table",
    "file_format": "remove it; every table is a Delta table",
    "schema_contract": "remove it; columns hints declare types, on_bad_record handles misfits",
    "selected": "remove it; choose resources with --resources",
    "row_order": "remove it; the read's order comes from endpoint.params (sort)",
    "convert": "remove it; cursors are ISO-8601 timestamps or integers, as columns or "
               "initial_value declare",
    "range_start": "remove it; the start is inclusive, minus lag",
    "range_end": "remove it",
    "last_value_func": "remove it; the mark is the greatest cursor read",
    "allow_external_schedulers": "remove it",
    # A column hint: delta-rs 1.6 cannot merge into a table partitioned by a generated column
    # (docs/data-model.md, "Big tables: layout"), and by a raw column it would need the
    # partitions that already hold each staged key.
    "partition": "remove it; tables are not partitioned: z-order a big table by its primary "
                 "key instead (python flows/maintenance.py --z-order RESOURCE=id)",
}


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out or "(top level)"


_TAG_MODELS: dict[str, type[BaseModel]] = {
    "page_number": PageNumberPaginator,
    "single_page": SinglePagePaginator,
    "offset": OffsetPaginator,
    "cursor": CursorPaginator,
    "json_response_cursor": CursorPaginator,
    "json_link": JSONLinkPaginator,
    "json_response": JSONLinkPaginator,
    "header_link": HeaderLinkPaginator,
    "header_cursor": HeaderCursorPaginator,
    "auto": AutoPaginator,
    "api_key": ApiKeyAuth,
    "bearer": BearerAuth,
    "http_basic": BasicAuth,
    "oauth2_client_credentials": OAuth2ClientCredentialsAuth,
}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Walk the models along ``loc`` to name the keys a mapping may hold."""
    model: type[BaseModel] | None = SourceConfig
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        if part in _TAG_MODELS:
            model = _TAG_MODELS[part]
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field else None
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if found := _model_in(arg):
                return found
    return None

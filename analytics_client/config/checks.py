"""The checks a config passes after its models accept it: across fields and resources.

What one model cannot see alone: names unique across resources, placeholders that name what
dlt offers, parents that exist, parameters a paginator or the mark sets itself, key and cursor
types a merge can compare. Each problem is a ``ConfigError`` line, reported with the rest.
"""

from __future__ import annotations

from analytics_client.config.cursorkind import cursor_kind_problems
from analytics_client.config.model import (
    ResourceConfig,
    SourceConfig,
    parent_bindings,
    parent_of,
    request_bodies,
)
from analytics_client.core import placeholders
from analytics_client.core.cursors import cursor_column

__all__ = ["cross_checks"]


def cross_checks(config: SourceConfig) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for i, resource in enumerate(config.resources):
        if resource.name in seen:
            problems.append(
                f"resources[{i}].name: {resource.name!r} is already used by "
                f"resources[{seen[resource.name]}]; "
                "names must be unique (each names a table)"
            )
        seen.setdefault(resource.name, i)
        params = resource.endpoint.params
        incremental = resource.endpoint.incremental
        problems.extend(_window_checks(i, resource))
        if incremental is not None and resource.write_disposition == "replace":
            problems.append(
                f"resources[{i}].endpoint.incremental: write_disposition replace re-reads "
                "everything each run; use merge or append with incremental, or drop incremental"
            )
        if incremental is not None and incremental.start_param in params:
            problems.append(
                f"resources[{i}].endpoint.params.{incremental.start_param}: set from the mark by "
                "incremental.start_param; remove it here"
            )
        problems.extend(_key_and_cursor_checks(i, resource))
        problems.extend(_response_action_checks(i, resource))
        problems.extend(_parent_checks(i, resource, config))
        # A param the paginator also sets (dlt's test: the user's own ``page``) is not refused:
        # the paginator's value replaces it on every request, as in dlt (``update_request``).
    return problems


def _window_checks(i: int, resource: ResourceConfig) -> list[str]:
    """Placeholders name what dlt offers; a filter the API applies needs a cursor to filter."""
    endpoint = resource.endpoint
    problems = [f"resources[{i}].endpoint.path: {p}"
                for p in placeholders.problems(endpoint.path, tuple(endpoint.resolve))]
    for name, value in endpoint.params.items():
        if isinstance(value, str):
            problems.extend(f"resources[{i}].endpoint.params.{name}: {p}"
                            for p in placeholders.problems(value))
    for key, body in (("json", endpoint.json_body), ("data", endpoint.data),
                      ("headers", endpoint.headers)):
        for text in dict.fromkeys(placeholders.texts(body)):
            problems.extend(f"resources[{i}].endpoint.{key}: {p}"
                            for p in placeholders.problems(text, tuple(endpoint.resolve)))
    incremental = endpoint.incremental
    if incremental is None:
        if placeholders.used(resource.endpoint.path, resource.endpoint.params,
                                  *request_bodies(resource.endpoint)):
            problems.append(f"resources[{i}].endpoint: uses {{incremental.*}} placeholders but "
                            "has no incremental; add endpoint.incremental with its cursor_path")
        return problems
    if incremental.end_param is not None and incremental.end_param in endpoint.params:
        problems.append(f"resources[{i}].endpoint.params.{incremental.end_param}: set from "
                        "end_value by incremental.end_param; remove it here")
    if "{incremental." in endpoint.path and incremental.initial_value is None \
            and "start_value" in endpoint.path:
        problems.append(f"resources[{i}].endpoint.path: {{incremental.start_value}} in the path "
                        "needs initial_value (the first run has no mark to put there)")
    return problems


def _response_action_checks(i: int, resource: ResourceConfig) -> list[str]:
    """An ignored response ends a read early; a filtered read (a keyset walk, or window.py's
    lagged re-read) would take that for its end and save a mark."""
    endpoint = resource.endpoint
    if endpoint.response_actions and endpoint.incremental is not None and (
            endpoint.incremental.start_param
            or placeholders.used(endpoint.path, endpoint.params, *request_bodies(endpoint))):
        return [f"resources[{i}].endpoint.response_actions: not supported yet with "
                "incremental.start_param or {incremental.*} placeholders (an ignored page "
                "would end the read as if it had read everything, and move the mark past "
                "unread records); drop one of them"]
    return []


def _parent_checks(i: int, resource: ResourceConfig, config: SourceConfig) -> list[str]:
    """dlt's rules (one parent, which exists; resolve params bound in the path;
    include_from_parent only on a child) and ours for what is not supported yet."""
    where = f"resources[{i}]"
    bindings = parent_bindings(resource)
    if not bindings:
        if resource.include_from_parent:
            return [f"{where}.include_from_parent: {resource.name!r} has no parent resource; "
                    "include_from_parent needs a resolve param or {resources.<parent>.<field>}"]
        return []
    problems = []
    names = sorted({p for _, p, _ in bindings})
    if len(names) > 1:
        problems.append(f"{where}.endpoint: refers to several parent resources {names}; dlt "
                        "allows one parent per resource")
    parent = next((r for r in config.resources if r.name == names[0]), None)
    if parent is None:
        problems.append(f"{where}.endpoint: parent resource {names[0]!r} is not configured")
    else:
        problems.extend(_chain_problems(where, resource, config))
    path_names = placeholders.fields(resource.endpoint.path)
    for name in resource.endpoint.resolve:
        if name not in path_names:
            problems.append(f"{where}.endpoint.params.{name}: a resolve param must be bound in "
                            f"the path as {{{name}}}; in query params write "
                            "{resources.<parent>.<field>} (dlt's rule)")
    if resource.write_disposition != "merge":
        problems.append(f"{where}.write_disposition: a child is merged per parent; "
                        f"{resource.write_disposition!r} is not supported for it")
    return problems


def _chain_problems(where: str, resource: ResourceConfig, config: SourceConfig) -> list[str]:
    """A chain of parents (dlt's grandchildren) must end at a resource with no parent: a
    cycle has no first table to read."""
    seen = [resource.name]
    current = resource
    known = {r.name: r for r in config.resources}
    while (name := parent_of(current)) is not None and name in known:
        parent = known[name]
        if parent.name in seen:
            chain = " -> ".join([*seen, parent.name])
            return [f"{where}.endpoint: the parents form a cycle ({chain}); one resource of "
                    "the chain must read without a parent"]
        seen.append(parent.name)
        current = parent
    return []


def _key_and_cursor_checks(i: int, resource: ResourceConfig) -> list[str]:
    """The merge compares keys and cursors: their declared types must be comparable ones."""
    problems = []
    keys = resource.key_columns
    if len(set(keys)) != len(keys):
        problems.append(f"resources[{i}].primary_key: {list(keys)} names a column twice")
    for key in keys:
        key_hint = resource.columns.get(key)
        if key_hint is not None and key_hint.data_type not in ("text", "bigint"):
            problems.append(f"resources[{i}].columns.{key}.data_type: a primary key column "
                            "must be text or bigint")
    incremental = resource.endpoint.incremental
    column = cursor_column(incremental.cursor_path) if incremental else ""
    cursor_hint = resource.columns.get(column) if incremental else None
    if incremental is not None and cursor_hint is not None \
            and cursor_hint.data_type not in ("timestamp", "bigint"):
        problems.append(f"resources[{i}].columns.{column}.data_type: an "
                        "incremental cursor must be timestamp or bigint")
    problems.extend(cursor_kind_problems(i, resource))
    return problems

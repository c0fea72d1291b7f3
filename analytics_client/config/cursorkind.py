"""A resource's cursor kind, as its config declares it (``core/cursors.py`` says what differs).

The rule (dlt's sources of a cursor's type, never the first record's value):

1. a ``columns`` hint on the cursor's column (``cursor_column``: the field, or dlt's
   ``properties__hs_lastmodifieddate`` for a nested one): ``bigint`` is an integer cursor,
   ``timestamp`` an instant (other types are refused by ``checks.py``);
2. else ``initial_value`` or ``end_value`` given as a JSON integer: an integer cursor (dlt's
   ``Incremental`` types its ``last_value`` from ``initial_value`` the same way);
3. else a timestamp, the contract's ``updated_at``.

A hint and a value that disagree are refused by ``checks.py`` (``cursor_kind_problems``).
"""

from __future__ import annotations

from analytics_client.config.model import ResourceConfig
from analytics_client.core.cursors import CursorKind, cursor_column

__all__ = ["cursor_kind", "cursor_kind_problems"]


def cursor_kind(resource: ResourceConfig) -> CursorKind:
    """The kind of ``resource``'s incremental cursor (``timestamp`` without one)."""
    incremental = resource.endpoint.incremental
    if incremental is None:
        return "timestamp"
    hint = resource.columns.get(cursor_column(incremental.cursor_path))
    if hint is not None and hint.data_type in ("bigint", "timestamp"):
        return "integer" if hint.data_type == "bigint" else "timestamp"
    values = (incremental.initial_value, incremental.end_value)
    return "integer" if any(isinstance(v, int) for v in values) else "timestamp"


def cursor_kind_problems(i: int, resource: ResourceConfig) -> list[str]:
    """A ``columns`` hint and an ``initial_value``/``end_value`` of another kind."""
    incremental = resource.endpoint.incremental
    if incremental is None:
        return []
    column = cursor_column(incremental.cursor_path)
    hint = resource.columns.get(column)
    if hint is None or hint.data_type not in ("bigint", "timestamp"):
        return []
    problems = []
    for key in ("initial_value", "end_value"):
        value = getattr(incremental, key)
        if value is None or isinstance(value, int) == (hint.data_type == "bigint"):
            continue
        want = "an integer" if hint.data_type == "bigint" else "an ISO-8601 timestamp"
        problems.append(
            f"resources[{i}].endpoint.incremental.{key}: {value!r} is not {want}, but "
            f"columns.{column}.data_type declares the cursor "
            f"{hint.data_type}; write {key} as {want}, or change the hint")
    return problems

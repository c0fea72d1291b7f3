"""A sync spread over workers: which flow runs a fan-out starts, and the summary it ends with.

Prefect spreads the work: the fan-out flow (flows/fanout.py) starts one flow run of the
per-resource deployment for each *unit* here, on the work pool, and every worker polling the
pool takes some. A unit is one resource of one organization (``per="resource"``) or all
selected resources of one organization (``per="organization"``).

An *organization* is one pipeline: its own ``pipeline`` name (marks are the blocks
``<pipeline>--<resource>``, locks are per pipeline and resource), its own ``lake_uri`` (tables
are ``<lake_uri>/<resource>``), and optionally its own secrets (Secret block names), base URL,
object-store block and config. Two organizations may share neither a pipeline name nor a lake:
their marks or tables would mix. Nothing here imports Prefect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics_client.core.errors import ConfigError
from analytics_client.core.summary import HEADERS, markdown_rows

__all__ = ["ChildOutcome", "Organization", "Unit", "plan", "render_markdown"]

Per = Literal["resource", "organization"]


class Organization(BaseModel):
    """One organization's pipeline: its name, lake and (optionally) secrets, API and config.

    Fields left out take the fan-out's own parameters. ``api_key_block`` and
    ``organization_id_block`` name Prefect Secret blocks (never the secrets themselves);
    ``storage_block`` an Analytics Lake Storage block; ``config`` a dlt ``rest_api_source``
    dict or file path on the workers.
    """

    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(min_length=1, description="marks and locks are kept per pipeline")
    lake_uri: str = Field(min_length=1, description="tables at <lake_uri>/<resource>")
    api_key_block: str | None = None
    organization_id_block: str | None = None
    base_url: str | None = None
    storage_block: str | None = None
    config: dict[str, Any] | str | None = None


@dataclass(frozen=True)
class Unit:
    """One child flow run: its name and the parameters of the per-resource deployment.

    ``after``: the resource of the same pipeline whose unit's flow run must have ended before
    this one starts (a child resource's parent, children.py: it reads the parent's table);
    None when there is none in the fan-out.
    """

    pipeline: str
    resources: tuple[str, ...]
    parameters: dict[str, Any]
    after: str | None = None

    @property
    def name(self) -> str:
        """``<pipeline>-<resource>`` (or the pipeline alone for a whole organization)."""
        return self.pipeline if len(self.resources) != 1 else f"{self.pipeline}-{self.resources[0]}"


def plan(
    organizations: Sequence[Organization],
    defaults: dict[str, Any],
    resources: Sequence[str] | None,
    per: Per,
    resource_names: Callable[[Organization], list[str]],
    parent_of: Callable[[Organization, str], str | None] | None = None,
) -> list[Unit]:
    """The child runs of a fan-out, in order: organizations, then resources in config order.

    ``defaults`` are the parameters every child gets unless its organization sets them
    (``api_key_block``, ``base_url``, ``full_refresh``, ``batch_rows``, ...).
    ``resource_names(org)`` lists the organization's selected resources (all when
    ``resources`` is None; raises ConfigError for an unknown name). ``full_refresh`` may be a
    list of resource names: each child gets the part of it that is among its resources.
    ``parent_of(org, name)`` names a resource's parent (None: not a child); with
    ``per="resource"`` a child's unit is ordered after its parent's when the parent is
    selected too (``Unit.after``), as ``SyncRun.waits_for`` orders them within one run.

    Raises ConfigError when two organizations share a pipeline name or a lake, naming both, or
    when ``full_refresh`` names a resource no unit has.
    """
    problems = [*_shared("pipeline", [o.pipeline for o in organizations]),
                *_shared("lake_uri", [o.lake_uri for o in organizations])]
    if problems:
        raise ConfigError(problems)
    units = []
    for org in organizations:
        names = resource_names(org)
        groups = [(n,) for n in names] if per == "resource" else [tuple(names)]
        for group in groups:
            parameters = {**defaults, **org.model_dump(exclude_unset=True),
                          "resources": list(group)}
            refresh = parameters.get("full_refresh")
            if isinstance(refresh, list):
                parameters["full_refresh"] = [n for n in refresh if n in group]
            parent = parent_of(org, group[0]) if parent_of and len(group) == 1 else None
            after = parent if parent in names and parent not in group else None
            units.append(Unit(org.pipeline, group, parameters, after))
    refresh = defaults.get("full_refresh")
    unknown = sorted(set(refresh) - {n for u in units for n in u.resources}) \
        if isinstance(refresh, list) else []
    if unknown:
        raise ConfigError([f"full_refresh: {unknown} not among the resources of this fan-out"])
    return units


def _shared(field: str, values: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for n, value in enumerate(values):
        if value in seen:
            problems.append(
                f"organizations[{n}].{field}: {value!r} is also organizations[{seen[value]}]'s; "
                f"each organization needs its own {field} (marks are kept per pipeline, tables "
                "per lake and resource)")
        seen.setdefault(value, n)
    return problems


@dataclass(frozen=True)
class ChildOutcome:
    """How one child flow run ended, and the summary artifact it left (None if it left none)."""

    unit: Unit
    flow_run_name: str
    state: str  # Prefect's state name: "Completed", "Failed", "Crashed", "Cancelled", ...
    message: str
    summary_markdown: str | None

    @property
    def ok(self) -> bool:
        return self.state == "Completed"


def render_markdown(outcomes: Sequence[ChildOutcome], title: str) -> str:
    """One table of every child's per-resource rows (pipeline and flow run in front).

    A child that left no summary (it failed before syncing, or crashed) gets one row naming
    its resources, with its state; every child that did not complete is listed below the
    table with its state message.
    """
    headers = ("pipeline", "flow run", *HEADERS)
    lines = [f"# {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(headers))) + "|"]
    for o in outcomes:
        rows = markdown_rows(o.summary_markdown or "")
        if not rows:
            rows = [[", ".join(o.unit.resources), o.state.lower(), *[""] * (len(HEADERS) - 2)]]
        lines += ["| " + " | ".join([o.unit.pipeline, o.flow_run_name, *r]) + " |" for r in rows]
    failed = [o for o in outcomes if not o.ok]
    if failed:
        lines += ["", *(f"- {o.flow_run_name}: {o.state}: {o.message}" for o in failed)]
    return "\n".join(lines) + "\n"

"""The part of a resource's plan a test hands to the client or a reader (read/plan.py)."""

from __future__ import annotations

from analytics_client.config.model import ResourceConfig, SourceConfig
from analytics_client.http.template import RequestTemplate
from analytics_client.read.plan import ResourcePlan, plan_resource


def plan_of(resource: ResourceConfig, source: SourceConfig | None = None) -> ResourcePlan:
    return plan_resource(resource, source)


def request_of(resource: ResourceConfig) -> RequestTemplate:
    """The request template a run of ``resource`` sends (path, params, paginator, policy)."""
    return plan_resource(resource).request

"""A resource's requests as a run sends them: the part of the plan the HTTP layer reads.

Resolved once from the config (``read/plan.py``) so that the client, the paginators and the
page reads never look at the raw configuration: a request filled for a window or for one
parent record is a new template (``filled``), not a copy of the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from analytics_client.config.model import (
    Auth,
    ErrorHandler,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    ResponseAction,
)

__all__ = ["HttpPolicy", "RequestTemplate"]


@dataclass(frozen=True)
class HttpPolicy:
    """What the client does with a resource's answers: retries and waits (``error_handler``),
    and the answers that end a read quietly (dlt's ``response_actions``)."""

    error_handler: ErrorHandler
    response_actions: tuple[ResponseAction, ...]


@dataclass(frozen=True)
class RequestTemplate:
    """One resource's request before paging: ``path`` (relative to ``client.base_url``),
    ``params`` (sent as the query, placeholders already filled where the read fills them),
    the ``paginator`` config a read's paginator is built from (``paginators.make_paginator``),
    where the records are (``data_selector``, JSONPath) and the ``policy``. No defaults here:
    the config is the one home of each (``config/model.py``), and the plan fills every field.

    dlt's request keys of the endpoint: ``method`` (GET or POST), ``json`` (a JSON body) or
    ``data`` (a form body: a mapping or pairs, or text sent as is), placeholders filled like
    the params';
    ``headers`` sent over ``client.headers``; ``auth`` (a ``client.auth``-shaped config) used
    instead of the client's. The fields after ``policy`` take the values of a GET without them,
    so a template built for a GET reads as before."""

    resource: str
    path: str
    params: Mapping[str, Any]
    paginator: Paginator
    data_selector: str | None  # None: omitted, the records are detected (jsonpath.find_records)
    policy: HttpPolicy
    method: str = "GET"
    json: Any = None
    data: Mapping[str, Any] | list[Any] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: Auth | None = None
    # The params hold no placeholder and are unescaped (``{{`` already ``{``): sent as they
    # are, never expanded again (a read that fills placeholders skips them: window.py).
    final_params: bool = False

    @property
    def page_size(self) -> int | None:
        """Records asked for per page (``limit``), None where the paginator sends no size."""
        if isinstance(self.paginator, PageNumberPaginator | OffsetPaginator):
            return self.paginator.limit
        return None

    def filled(self, path: str, params: Mapping[str, Any], **request: Any) -> RequestTemplate:
        """This template with its path and params set for one read (a window, a parent), and
        any of ``json``, ``data`` and ``headers`` given in ``request``."""
        return replace(self, path=path, params=dict(params), **request)

"""The paginator configs: dlt's ``rest_api`` paginator keys, defaults and validation rules.

One model per dlt paginator type, with dlt's names, defaults and meanings
(``dlt/sources/helpers/rest_client/paginators.py``, ``rest_api/typing.py``); the paginators
that read them are ``http/paginators.py``. ``model.py`` re-exports them with the rest of the
config models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from analytics_client.config.fields import NonNegativeInt, PositiveInt, StrictModel, fail
from analytics_client.core.jsonpath import compile_selector, is_dotted

__all__ = [
    "AutoPaginator",
    "CursorPaginator",
    "HeaderCursorPaginator",
    "HeaderLinkPaginator",
    "JSONLinkPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "Paginator",
    "SinglePagePaginator",
]


def _value_path(path: str) -> str:
    """A paginator path key (``total_path``, ``cursor_path``, ...): JSONPath as dlt reads it
    (``core.jsonpath.lookup``), checked here so a typo fails at load time, not mid-read."""
    if not is_dotted(path):
        try:
            compile_selector(path)
        except ValueError as exc:
            raise fail("json_path", f"{path!r} {exc}") from None
    return path


ValuePath = Annotated[str, Field(min_length=1), AfterValidator(_value_path)]


def _param_or_body(data: Any, param: str, body: str, default: str) -> Any:
    """dlt's rule for a value sent either as a query parameter or in the JSON body: with
    neither key given the parameter is ``default``; both given is an error (checked after)."""
    if isinstance(data, dict) and data.get(param) is None and data.get(body) is None:
        return {**data, param: default}
    return data


def _one_of(model: StrictModel, param: str, body: str) -> None:
    if bool(getattr(model, param)) == bool(getattr(model, body)):
        raise ValueError(f"give either {param} or {body}, not both (dlt's rule)")


class PageNumberPaginator(StrictModel):
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


class SinglePagePaginator(StrictModel):
    """One request, no paging."""

    type: Literal["single_page"]


class OffsetPaginator(StrictModel):
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


class CursorPaginator(StrictModel):
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


class HeaderCursorPaginator(StrictModel):
    """A cursor in a response header sent back as a query parameter (dlt's ``header_cursor``):
    ``cursor_key`` ``next`` (the header), ``cursor_param`` ``cursor``. Stops when the header
    is absent.
    """

    type: Literal["header_cursor"]
    cursor_key: str = Field(default="next", min_length=1)
    cursor_param: str = Field(default="cursor", min_length=1)


class JSONLinkPaginator(StrictModel):
    """The next page's URL in the body (dlt's ``json_link``; ``json_response``, dlt's old name,
    is accepted): ``next_url_path`` ``next`` (JSONPath: ``$['@odata.nextLink']``). Stops when
    the URL is missing, null or empty.
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced#jsonlinkpaginator
    """

    type: Literal["json_link", "json_response"]
    next_url_path: ValuePath = "next"


class HeaderLinkPaginator(StrictModel):
    """The next page's URL in the ``Link`` header (RFC 8288), by relation type (dlt's
    ``header_link``). Stops when no link has that relation.
    https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/advanced#headerlinkpaginator
    """

    type: Literal["header_link"]
    links_next_key: str = Field(default="next", min_length=1)


class AutoPaginator(StrictModel):
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

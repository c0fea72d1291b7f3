"""The source configuration: dlt's ``rest_api_source`` format, validated once at the boundary.

``load_config`` reads one; the models it returns and the defaults are here too. Behind it:
model.py (the pydantic models and defaults), loading.py (reading, defaults merged), checks.py
(checks across fields and resources), describe.py (pydantic's errors worded), files.py (JSON and
YAML read strictly), schemas.py (column hints).
"""

from analytics_client.config.loading import DEFAULT_CONFIG, load_config
from analytics_client.config.model import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_CURSOR_PATH,
    DEFAULT_PAGE_SIZE,
    DEFAULT_PIPELINE,
    TOTAL_COUNT_PATH,
    ApiKeyAuth,
    AutoPaginator,
    BasicAuth,
    BearerAuth,
    ClientConfig,
    CursorPaginator,
    Endpoint,
    ErrorHandler,
    HeaderCursorPaginator,
    HeaderLinkPaginator,
    Incremental,
    JSONLinkPaginator,
    OAuth2ClientCredentialsAuth,
    OffsetPaginator,
    PageNumberPaginator,
    ResolveParam,
    ResourceConfig,
    SinglePagePaginator,
    SourceConfig,
    parent_bindings,
    parent_of,
)
from analytics_client.config.schemas import ColumnHint

__all__ = [
    "ApiKeyAuth",
    "AutoPaginator",
    "BasicAuth",
    "BearerAuth",
    "ClientConfig",
    "ColumnHint",
    "CursorPaginator",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CONFIG",
    "DEFAULT_CURSOR_PATH",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PIPELINE",
    "Endpoint",
    "ErrorHandler",
    "HeaderCursorPaginator",
    "HeaderLinkPaginator",
    "Incremental",
    "JSONLinkPaginator",
    "OAuth2ClientCredentialsAuth",
    "OffsetPaginator",
    "PageNumberPaginator",
    "ResolveParam",
    "ResourceConfig",
    "SinglePagePaginator",
    "SourceConfig",
    "TOTAL_COUNT_PATH",
    "load_config",
    "parent_bindings",
    "parent_of",
]

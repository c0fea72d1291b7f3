"""What the dlt-port tests share: one run of a dlt config against a loopback API, the tables read
as a user would (polars over Delta), and the reasons cases fail on main today.

dlt's tests run ``rest_api_source(config)`` and read the records (``list(source)``) or the
destination's tables; here the same config goes through ``load_config`` + ``run_sync`` (the
library's public run API, without Prefect) and the assertions read the Delta tables.

dlt's ``add_limit(1)`` (one page per resource) has no counterpart in a config: where a dlt test
uses it, the port reads everything and asserts dlt's claim on every request or on the first
page's records, never fewer than dlt asserts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from analytics_client import ConfigError, Credentials, load_config, run_sync
from analytics_client.core.summary import ResourceSummary

# ---- causes of the cases that fail on main today (one line each; the lead routes by these) ----
X_AUTO = ("paginator omitted: we page with page_number 'page[number]' where dlt detects (auto: "
          "the body's next_page URL -> json_link); fails 'page 2 has exactly the records of "
          "page 1'")
X_DATA = ("data_selector omitted: we require 'data'; dlt detects the records (a top-level list, "
          "or the list under another key)")
X_OBJECT = "a single JSON object response is not taken as one record (detail endpoint)"
X_POST = "endpoint.method POST (with json/data bodies) refused by name ('GET only')"
X_JSON = "endpoint.json / endpoint.data refused by name"
X_HEADERS = "endpoint.headers refused by name"
X_AUTH_EP = "endpoint.auth refused by name"
X_INT_INITIAL = "integer incremental.initial_value / end_value refused ('ISO-8601 timestamp')"
X_PAGE_NUMBER = ("page_number defaults differ from dlt's: page_param 'page[number]' (dlt: 'page') "
                 "and the user's own 'page' param is sent beside ours")
X_PARALLEL = "resource key 'parallelized' refused by name (issue 22 item 3: accept it)"
X_CHILD_INCREMENTAL = "a child's own endpoint.incremental refused by name"
X_BODY_PATH = "paginator key cursor_body_path (dlt's *_body_path) refused by name"
X_REDACT = "secret-like query params (api_key, access_token, token) not masked in messages/logs"
X_BRACES = "'{{ }}' escaping in params not unescaped as dlt does"
X_BOTH_BODIES = "json and data together: refused, but not with a message naming both"

X_CHILD_INC_CASE = f"{X_INT_INITIAL}; {X_CHILD_INCREMENTAL}; {X_PAGE_NUMBER}"

# Causes branch i22-keys removed: a case still failing names another cause beside these.
_FIXED = "[fixed on i22-keys] "
X_DATA, X_OBJECT, X_POST, X_JSON = (_FIXED + x for x in (X_DATA, X_OBJECT, X_POST, X_JSON))
X_HEADERS, X_AUTH_EP, X_PARALLEL = (_FIXED + x for x in (X_HEADERS, X_AUTH_EP, X_PARALLEL))
X_REDACT, X_BOTH_BODIES = _FIXED + X_REDACT, _FIXED + X_BOTH_BODIES

# Where a case with this cause passes on main (integer cursors merged), it names it so; the
# cases still failing with it fail for another cause (dlt's mock API ignores the filter, which
# our read refuses by name).
X_INT_INITIAL_DONE = "[fixed on main] " + X_INT_INITIAL
# Causes branch i22-paginators removed (dlt's paginator defaults and auto, body paths).
_FIXED_P = "[fixed on i22-paginators] "
X_AUTO, X_PAGE_NUMBER, X_BODY_PATH = (_FIXED_P + x for x in (X_AUTO, X_PAGE_NUMBER, X_BODY_PATH))
# Causes branch i22-cursors removed (integer cursors and initial values, a child's incremental).
_FIXED_C = "[fixed on i22-cursors] "
X_INT_INITIAL, X_CHILD_INCREMENTAL = (_FIXED_C + x for x in (X_INT_INITIAL, X_CHILD_INCREMENTAL))
X_CHILD_INC_CASE = f"{X_INT_INITIAL}; {X_CHILD_INCREMENTAL}; {X_PAGE_NUMBER}"
# Refused by design once the keys ran: dlt's mock API ignores the incremental filter (dlt drops
# what is below the start on its side); our read fails by name ('the API ignores the filter;
# check incremental.start_param') instead of trusting a filter the API does not apply.
X_FILTER_IGNORED = ("then: dlt's mock API ignores the incremental filter, and our read fails "
                    "naming it ('the API ignores the filter') where dlt filters client side")
# Fixed on main: a walk whose filter the API ignores reads every page and keeps the records
# from its start on our side, as dlt does (read/keyset.py: ``_read_all``); so are escapes.
_FIXED_M = "[fixed on main] "
X_FILTER_IGNORED, X_BRACES = _FIXED_M + X_FILTER_IGNORED, _FIXED_M + X_BRACES
# Open on main (X_CHILD_WINDOW fixed since: a child reads its window per parent).
X_COUNT_PROBE = ("delete capture (our default delete_missing) asks the API for one count after "
                 "an incremental read that the API filtered; dlt's test counts 5 requests, we "
                 "send 6 (set delete_missing: off for dlt's count)")
X_CHILD_WINDOW = _FIXED_M + ("a child's backfill window (incremental.end_value) is refused by name: its "
                  "children are read per parent, and a window's marks per parent are not kept")


_FIXED_CAUSES = (X_DATA, X_OBJECT, X_POST, X_JSON, X_HEADERS, X_AUTH_EP, X_PARALLEL, X_REDACT,
                 X_BOTH_BODIES, X_AUTO, X_PAGE_NUMBER, X_BODY_PATH)


def still_open(reason: str) -> bool:
    """Whether a cause in ``reason`` (causes joined by "; ", some with "then " before or a note
    in parentheses after) names no branch that fixed it."""
    for fragment in reason.split("; "):
        core = re.sub(r" \([^()]*\)$", "", fragment.strip().removeprefix("then "))
        if "[fixed on " in core or any(core in cause for cause in _FIXED_CAUSES):
            continue
        return True
    return False


def xfail(*, reason: str, strict: bool = True) -> Any:
    """A strict xfail while a cause in ``reason`` is still open; none (the test as it is) once
    each names the branch that fixed it: then the case must pass."""
    if still_open(reason):
        return pytest.mark.xfail(strict=strict, reason=reason)
    return lambda test: test


PIPELINE = "dltport"
# Our Credentials always carry an API key and an organization id; a dlt config that has no
# auth uses neither (issue 22, item 5: nothing of ours should reach another API).
CREDENTIALS = Credentials("port-api-key", "port-org")


def run(base_url: str, lake: Path, config: dict[str, Any], *, run_id: str = "run",
        resources: list[str] | None = None, credentials: Credentials = CREDENTIALS,
        ) -> dict[str, ResourceSummary]:
    """One library run of a dlt ``rest_api_source`` config against ``base_url``."""
    source = load_config(copy.deepcopy(config), base_url=base_url)
    summaries = run_sync(source, credentials, str(lake), resources=resources, run_id=run_id,
                         pipeline=PIPELINE)
    return {s.resource: s for s in summaries}


def assert_ok(summaries: dict[str, ResourceSummary], *names: str) -> None:
    """Every named resource (every one when none is named) ended ``ok``."""
    for name in names or tuple(summaries):
        summary = summaries[name]
        assert summary.status == "ok", f"{name}: {summary.status}: {summary.error}"


def refusal(config: dict[str, Any]) -> str:
    """The ``ConfigError`` message ``load_config`` raises for ``config`` (fails if none)."""
    with pytest.raises(ConfigError) as info:
        load_config(copy.deepcopy(config), base_url="http://127.0.0.1:9")
    return str(info.value)


def has_table(lake: Path, name: str) -> bool:
    return DeltaTable.is_deltatable(str(lake / name))


def live(lake: Path, name: str) -> pl.DataFrame:
    """The table's live rows (``_deleted_at`` null), as a user queries them; empty if none."""
    if not has_table(lake, name):
        return pl.DataFrame()
    frame = pl.read_delta(str(lake / name))
    if "_deleted_at" in frame.columns:
        frame = frame.filter(pl.col("_deleted_at").is_null())
    return frame


def column(lake: Path, name: str, field: str, *, order: tuple[str, ...] = ("id",)) -> list[Any]:
    """One column of the live rows, sorted by ``order`` (dlt's ``ORDER BY``)."""
    frame = live(lake, name)
    return frame.sort(list(order))[field].to_list()

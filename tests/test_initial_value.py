"""``initial_value`` is where a first run starts, not ``lag`` before it (issue 23, item 9).

dlt's rule (``dlt.extract.incremental.lag.apply_lag``): the lag is applied to the last value
and never takes it across ``initial_value``; docs/incremental.md says a first run's start is
``initial_value``. A hostile loopback server holds records just before and at the initial
value and logs every request's filter.
"""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics_client import Credentials, load_config, run_sync
from analytics_client.core.timestamps import format as format_cursor
from analytics_client.read.plan import Cursor
from tests.records_support import own_config, table
from tests.recordserver import RecordServer, instant_ns

INITIAL = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
GTE = "filter[updated_at][gte]"


def _stamp(seconds: float) -> str:
    return (INITIAL + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@settings(max_examples=6, deadline=None)
@given(lag=st.sampled_from([5, 10, 60, 3600]), before=st.floats(0.001, 3599, allow_nan=False))
def test_a_first_run_reads_from_initial_value_exactly_whatever_the_lag(
        tmp_path_factory, lag: int, before: float) -> None:
    lake = tmp_path_factory.mktemp("lake")
    filters: list[str] = []
    with RecordServer(on_request=lambda n, params: filters.append(params.get(GTE, ""))) \
            as server:
        server.put("events", [json.dumps({"id": "early", "updated_at": _stamp(-before)}),
                              json.dumps({"id": "at", "updated_at": _stamp(0)}),
                              json.dumps({"id": "after", "updated_at": _stamp(7)})])
        config = own_config(limit=10)
        config["resources"][0]["endpoint"]["incremental"].update(
            initial_value=INITIAL.isoformat(), lag=lag)
        source = load_config(config, base_url=server.base_url)
        [summary] = run_sync(source, Credentials("any-key", "any-org"), str(lake),
                             pipeline="initial", run_id="r1")
    assert summary.status == "ok", summary.error
    first = filters[0]
    assert instant_ns(first) == int(INITIAL.timestamp()) * 10**9, filters  # its own reader
    assert sorted(table(lake, "events")["id"].to_list()) == ["after", "at"]


_US = st.integers(0, 4 * 10**15)


@given(initial=_US, mark_offset=st.integers(-10**9, 10**10), lag=st.floats(0, 10**5))
def test_the_lag_never_takes_a_read_across_initial_value(
        initial: int, mark_offset: int, lag: float) -> None:
    """dlt's apply_lag: ``max(mark - lag, initial_value)`` for a mark at or above it; a mark
    already below it (saved before initial_value was set) is lagged as ever."""
    cursor = Cursor("updated_at", initial_value=format_cursor(initial), lag=lag)
    mark = max(0, initial + mark_offset)
    lagged = mark - round(lag * 1_000_000)
    want = max(lagged, initial) if mark >= initial else lagged
    assert cursor.read_from(mark) == want

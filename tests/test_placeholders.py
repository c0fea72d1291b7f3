"""dlt's incremental placeholders and parameter form, parsed from any config text.

Templates are generated as pieces (literal text, placeholder), so the expected expansion is
built here from the pieces, not by ``str.format`` or our parser.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client import load_config
from analytics_client.core.errors import ConfigError
from analytics_client.core.placeholders import NAMES, expand, fields, problems, used
from analytics_client.core.window import Window
from analytics_client.read.window import windowed_request
from tests.plans import plan_of
from tests.support import PLAIN

LITERAL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
PIECE = st.one_of(st.tuples(st.just("text"), LITERAL), st.tuples(st.just("name"),
                                                                  st.sampled_from(NAMES)))
VALUE = st.one_of(st.none(), st.text(max_size=30))


def template(pieces: list[tuple[str, str]]) -> str:
    """How a user writes the pieces: braces in literal text doubled, as str.format wants."""
    return "".join(p.replace("{", "{{").replace("}", "}}") if kind == "text"
                   else f"{{incremental.{p}}}" for kind, p in pieces)


@given(st.lists(PIECE, max_size=6), st.fixed_dictionaries({n: VALUE for n in NAMES}))
def test_expansion_equals_the_pieces_with_their_values(pieces: list[tuple[str, str]],
                                                       values: dict[str, str | None]) -> None:
    """Literal text comes back as written; each placeholder becomes its value, or the whole
    text is None when a value it uses is None."""
    text = template(pieces)
    assert problems(text) == []
    assert fields(text) == [f"incremental.{p}" for kind, p in pieces if kind == "name"]
    names = [p for kind, p in pieces if kind == "name"]
    want = None if any(values[n] is None for n in names) else "".join(
        p if kind == "text" else values[p] or "" for kind, p in pieces)
    assert expand(text, {f"incremental.{n}": v for n, v in values.items()}) == want
    assert used(text, {}) == bool(names)


@given(st.text(max_size=40))
def test_any_text_either_passes_or_is_named_without_raising(text: str) -> None:
    """Broken braces or unknown names are problems naming the text, never an exception."""
    found = problems(text)
    for problem in found:
        assert isinstance(problem, str) and problem
    if not found:
        values = {name: "v" for name in fields(text)}
        assert isinstance(expand(text, values), str)


@pytest.mark.parametrize(("text", "named"), [
    ("{since}", "{since} is not a known placeholder"),
    ("{incremental.start}", "{incremental.start} is not a known placeholder"),
    ("{incremental.start_value!r}", "format spec or conversion"),
    ("{incremental.start_value:>30}", "format spec or conversion"),
    ("{resources.deals}", "must be written {resources.<parent>.<field>}"),
    ("{deal_id}", "{deal_id} is not a known placeholder"),
    ("a{b", "not a valid placeholder text"),
    ("a}b", "not a valid placeholder text"),
])
def test_each_bad_placeholder_is_named(text: str, named: str) -> None:
    assert any(named in p for p in problems(text)), problems(text)


def _with(endpoint: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(PLAIN)
    raw["resources"] = [{"name": "deals", "endpoint": {"path": "/v1/deals", **endpoint}}]
    return raw


STAMP = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
    lambda d: d.isoformat().replace("+00:00", "Z"))
PARAM = st.from_regex(r"[a-z][a-z_\[\]]{0,20}", fullmatch=True)


@given(PARAM, st.one_of(st.none(), STAMP), st.sampled_from(["updated_at", "modified"]))
def test_the_param_form_is_the_start_param_form(name: str, initial: str | None,
                                                cursor: str) -> None:
    """dlt's ``{"type": "incremental"}`` parameter means incremental.start_param = its name."""
    spec: dict[str, Any] = {"type": "incremental", "cursor_path": cursor}
    if initial is not None:
        spec["initial_value"] = initial
    lifted = load_config(_with({"params": {name: spec}})).resources[0].endpoint
    plain = {"cursor_path": cursor, "start_param": name}
    if initial is not None:
        plain["initial_value"] = initial
    written = load_config(_with({"incremental": plain})).resources[0].endpoint
    assert lifted == written
    assert name not in lifted.params


@given(PARAM, st.one_of(st.none(), STAMP), STAMP)
def test_a_window_sets_the_params_dlt_would_send(name: str, start: str | None,
                                                 initial: str) -> None:
    """start_param carries the read's start (absent when there is none); placeholders too."""
    from analytics_client.core.timestamps import format as fmt
    from analytics_client.core.timestamps import parse

    raw = _with({"params": {"q": "since {incremental.start_value}", "keep": 3},
                 "incremental": {"cursor_path": "updated_at", "start_param": f"x{name}",
                                 "initial_value": initial}})
    resource = load_config(raw).resources[0]
    start_us = None if start is None else parse(start)
    params = windowed_request(plan_of(resource), Window(start_us)).params
    if start_us is None:
        assert params == {"keep": 3}
    else:
        assert params == {"keep": 3, "q": f"since {fmt(start_us)}", f"x{name}": fmt(start_us)}


@pytest.mark.parametrize(("endpoint", "named"), [
    ({"params": {"a": {"type": "incremental"}, "b": {"type": "incremental"}}},
     "allows one incremental parameter"),
    ({"params": {"a": {"type": "incremental", "end_value": "2026-01-01T00:00:00Z"}}},
     "endpoint.params.a.end_value: only cursor_path and initial_value"),
    ({"params": {"a": {"type": "incremental"}}, "incremental": {"cursor_path": "updated_at"}},
     "endpoint.params.a: incremental is also set"),
    ({"incremental": {"end_value": "2026-01-01T00:00:00Z"}}, "end_value needs initial_value"),
    ({"incremental": {"initial_value": "2026-02-01T00:00:00Z",
                      "end_value": "2026-01-01T00:00:00Z"}}, "must be after initial_value"),
    ({"incremental": {"end_param": "until"}}, "end_param is set but end_value is not"),
    ({"params": {"q": "{incremental.start_value}"}}, "has no incremental"),
    ({"path": "/v1/deals/{incremental.start_value}", "incremental": {}},
     "needs initial_value"),
    ({"params": {"q": "{since}"}, "incremental": {}}, "endpoint.params.q: {since} is not"),
])
def test_incremental_config_mistakes_are_named(endpoint: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_with(endpoint))
    assert any(named in p for p in caught.value.problems), caught.value.problems


def test_a_backfill_sends_end_param_and_end_value_placeholders() -> None:
    """end_param gets end_value; {incremental.end_value} and .initial_value are filled too."""
    raw = _with({"params": {"q": "{incremental.initial_value}..{incremental.end_value}"},
                 "incremental": {"cursor_path": "updated_at", "start_param": "since",
                                 "end_param": "until", "initial_value": "2026-01-01T00:00:00Z",
                                 "end_value": "2026-02-01T00:00:00Z"}})
    resource = load_config(raw).resources[0]
    window = plan_of(resource).window
    assert window is not None and window.backfill
    params = windowed_request(plan_of(resource), window).params
    assert params == {"since": "2026-01-01T00:00:00.000000Z",
                      "until": "2026-02-01T00:00:00.000000Z",
                      "q": "2026-01-01T00:00:00Z..2026-02-01T00:00:00.000000Z"}

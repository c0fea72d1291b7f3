"""Config files: a key given twice is a config error by key path; YAML errors keep their place."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics_client.config import load_config
from analytics_client.config.files import read_config_file
from analytics_client.core.errors import ConfigError

YAML_TWICE = textwrap.dedent("""\
    client:
      base_url: https://api.example.com
    resources:
      - name: deals
        endpoint:
          path: /v1/deals
          paginator: {type: page_number, limit: 10}
          error_handler: {max_retries: 4}
        endpoint:
          path: /v1/deals
      - name: tags
        endpoint: {path: /v1/tags, paginator: {type: page_number, limit: 0}}
    """)

JSON_TWICE = """{
  "client": {"base_url": "https://api.example.com"},
  "resources": [{"name": "deals", "endpoint": {
     "path": "/v1/deals",
     "paginator": {"type": "page_number", "limit": 10},
     "error_handler": {"max_retries": 4},
     "paginator": {"type": "page_number"}}}]
}"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_key_given_twice_is_listed_with_the_other_problems(tmp_path: Path) -> None:
    """Issue 11, input 7: ``endpoint:`` twice is an error by key path, beside tags' bad limit."""
    with pytest.raises(ConfigError) as failure:
        load_config(write(tmp_path, "c.yaml", YAML_TWICE))
    problems = failure.value.problems
    assert any(p.startswith("resources[0].endpoint: given more than once (lines 5 and 9)")
               for p in problems), problems
    assert any(p.startswith("resources[1].endpoint.paginator.limit") for p in problems), problems


def test_json_key_given_twice_is_a_config_error(tmp_path: Path) -> None:
    """Issue 11, input 7: ``paginator`` twice in a JSON object, by key path."""
    with pytest.raises(ConfigError, match=r"resources\[0\]\.endpoint\.paginator: given more than once"):
        load_config(write(tmp_path, "c.json", JSON_TWICE))


def test_yaml_merge_keys_are_overrides_not_duplicates(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        defaults: &page {type: page_number, limit: 10}
        paginator:
          <<: *page
          limit: 20
        """)
    document, problems = read_config_file(tmp_path / "c.yaml", text)
    assert problems == [] and document["paginator"]["limit"] == 20


def test_yaml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    """PyYAML's place of the error survives into the one-line problem."""
    text = "client:\n  base_url: x\n resources: [\n"
    with pytest.raises(ConfigError, match=r"not valid YAML: line \d+, column \d+: .*line \d+"):
        load_config(write(tmp_path, "bad.yaml", text))


keys = st.text("abcdefgh_", min_size=1, max_size=6)
trees = st.recursive(st.integers(0, 9) | st.text("xyz", max_size=3),
                     lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=4)
                     | st.lists(inner, min_size=1, max_size=3), max_leaves=12)


def dump_with_duplicate(node: Any, target: list[int], path: str, found: list[str]) -> str:
    """JSON text of ``node`` in which the ``target[0]``-th mapping repeats its first key."""
    if isinstance(node, dict):
        target[0] -= 1
        pairs = [f"{json.dumps(k)}: {dump_with_duplicate(v, target, f'{path}.{k}' if path else k, found)}"
                 for k, v in node.items()]
        if target[0] == -1:
            key, value = next(iter(node.items()))
            pairs.append(f"{json.dumps(key)}: {json.dumps(value)}")
            found.append(f"{path}.{key}" if path else key)
            target[0] = -2
        return "{" + ", ".join(pairs) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(dump_with_duplicate(v, target, f"{path}[{i}]", found)
                               for i, v in enumerate(node)) + "]"
    return json.dumps(node)


@given(st.dictionaries(keys, trees, min_size=1, max_size=4), st.integers(0, 6),
       st.sampled_from(["c.json", "c.yaml"]))
def test_any_duplicated_key_is_named_by_its_path(tree: dict[str, Any], which: int, name: str) -> None:
    """Whatever mapping repeats a key, in JSON or YAML, the problem names its key path."""
    found: list[str] = []
    text = dump_with_duplicate(tree, [which], "", found)
    document, problems = read_config_file(Path(name), text)
    assert document == tree
    assert [p.split(":")[0] for p in problems] == found

"""The source configuration: dlt's rest_api_source format, strictly validated."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from analytics_client.config import DEFAULT_CONFIG, PageNumberPaginator, load_config
from analytics_client.core.errors import ConfigError

SEED_DOC = Path(__file__).resolve().parents[2] / "shared" / "seed-source-config.md"


def test_default_is_the_seed_with_contract_defaults() -> None:
    """The default config has the five seed resources, paged 10 at a time from page 1."""
    config = load_config()
    assert [r.name for r in config.resources] == ["tags", "deals", "pages", "tasks", "users"]
    for resource in config.resources:
        paginator = resource.endpoint.paginator
        assert isinstance(paginator, PageNumberPaginator)
        assert (paginator.page_param, paginator.limit_param, paginator.limit) == (
            "page[number]", "page[size]", 10)
        assert paginator.base_page == 1
        assert paginator.total_path == "meta.page.total_pages"
        assert resource.endpoint.error_handler.max_retries == 4
        assert resource.endpoint.error_handler.retry_on_status_codes == [429]
        assert (resource.primary_key, resource.write_disposition) == ("id", "merge")
        incremental = resource.endpoint.incremental
        assert incremental is not None
        assert (incremental.cursor_path, incremental.start_param, incremental.lag) == (
            "updated_at", "filter[updated_at][gte]", 10.0)
        assert resource.endpoint.params == {"sort": "updated_at"}
    assert config.client.auth.api_key == "api_key"  # type: ignore[union-attr]


@pytest.mark.skipif(not SEED_DOC.exists(), reason="shared/seed-source-config.md not beside the repo")
def test_seed_document_config_is_accepted_as_written() -> None:
    """The dict in the seed document, dlt.secrets[...] and all, is our default minus incremental
    and the organization header the default declares (issue 22, item 5)."""
    text = SEED_DOC.read_text()
    code = re.search(r"rest_api_source\((\{.*\})\)\n```", text, re.S).group(1)  # type: ignore[union-attr]
    code = re.sub(r'dlt\.secrets\["(\w+)"\]', r"'dlt.secrets[\"\1\"]'", code)
    seed, default = load_config(ast.literal_eval(code)), load_config(DEFAULT_CONFIG)
    assert default.client.headers == {"X-Organization-Id": 'dlt.secrets["organization_id"]'}
    assert seed.client == default.client.model_copy(update={"headers": seed.client.headers})
    for ours, theirs in zip(default.resources, seed.resources, strict=True):
        assert theirs.endpoint.incremental is None and ours.endpoint.incremental is not None
        # The keys the seed leaves out take dlt's defaults (issue 22): pages from 0, the total
        # at "total". Ours writes the contract's out (1-based, meta.page.total_pages).
        assert (theirs.endpoint.paginator.base_page,  # type: ignore[union-attr]
                theirs.endpoint.paginator.total_path) == (0, "total")  # type: ignore[union-attr]
        paging = theirs.endpoint.paginator.model_copy(update={  # type: ignore[union-attr]
            "base_page": 1, "total_path": "meta.page.total_pages"})
        theirs = theirs.model_copy(update={
            "endpoint": theirs.endpoint.model_copy(update={"paginator": paging})})
        plain = ours.endpoint.model_copy(update={"incremental": None, "params": {}})
        assert theirs.columns == {}  # types are declared by our default config, not by names
        assert theirs == ours.model_copy(update={"endpoint": plain, "columns": {}})


def test_invalid_config_lists_every_problem_by_key_path() -> None:
    """One ConfigError names each problem with its path, before anything runs."""
    bad = {
        "client": {"base_url": "api.example.com", "timeot": 3},
        "resources": [
            {"name": "tags", "endpoint": {"path": "/v1/tags"}},
            {"name": "deals", "endpoint": {"path": "/v1/deals"}},
            {"name": "pages", "endpoint": {"path": "/v1/pages",
                                           "paginator": {"type": "page_number", "limit": 0}}},
            {"name": "tasks", "endpoint": {"paginator": {"type": "graphql_cursor"}}},
        ],
    }
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    problems = info.value.problems
    assert "resources[2].endpoint.paginator.limit: must be an integer >= 1 (got 0)" in problems
    assert any(p.startswith("client.base_url: must start with http") for p in problems)
    assert any(p.startswith("client.timeot: unknown key; allowed here: base_url") for p in problems)
    assert "resources[3].endpoint.path: is required" in problems
    assert any(p.startswith("resources[3].endpoint.paginator.type: unknown type 'graphql_cursor'")
               for p in problems)
    assert len(problems) == 5
    assert "5 problems" in str(info.value)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"client": {"auth": {"type": "api_key", "api_key": "sk-live-123"}}},
         "client.auth.api_key: must not hold a secret"),
        ({"client": {"auth": {"type": "bearer", "token": "abc"}}},
         "client.auth.token: must not hold a secret"),
        ({"client": {"auth": {"type": "api_key", "api_key": 'dlt.secrets["password"]'}}},
         "client.auth.api_key: unknown secret 'password'"),
        ({"client": {"headers": {"X-Organization-Id": 'dlt.secrets["org"]'}}},
         "client.headers: X-Organization-Id: unknown secret 'org'"),
        ({"resource_defaults": {"endpoint": {"error_handler": {"retry_on_status_codes": [429, 401]}}},
          "resources": ["tags", "deals"]},
         "resource_defaults.endpoint.error_handler.retry_on_status_codes: lists [401]"),
        ({"resource_defaults": {"write_disposition": "upsert"}},
         "resource_defaults.write_disposition: must be one of"),
        ({"resource_defaults": {"endpoint": {"paginator": {"type": "page_number", "limit": "10"}}},
          "resources": ["tags"]},
         "resource_defaults.endpoint.paginator.limit: must be an integer >= 1 (got '10')"),
        ({"resource_defaults": {"endpoint": {"data_selector": 3}}, "resources": ["tags"]},
         "resource_defaults.endpoint.data_selector: must be a string"),
        ({"resources": [{"name": "../x", "endpoint": {"path": "/v1/x"}}]},
         "resources[0].name: '../x' must be letters, digits"),
        ({"resources": [{"name": "", "endpoint": {"path": "/v1/x"}}]},
         "resources[0].name: '' must be letters"),
        ({"resources": ["tags", "tags"]}, "resources[1].name: 'tags' is already used"),
        ({"sources": []}, "sources: unknown key"),
    ],
)
def test_each_kind_of_mistake_is_named(patch: dict, expected: str) -> None:
    """Every mistake is reported with its key path and what to do."""
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_resource_defaults_are_deep_merged() -> None:
    """resource_defaults fill in nested keys a resource leaves out; the resource wins."""
    config = load_config({
        "client": {"base_url": "https://api.example.com",
                   "paginator": {"type": "page_number", "limit": 50, "limit_param": "n"}},
        "resource_defaults": {"endpoint": {"error_handler": {"max_retries": 7},
                                           "params": {"sort": "updated_at"}}},
        "resources": [
            "tags",
            {"name": "deals", "endpoint": {"path": "/v1/deals", "params": {"x": 1},
                                           "paginator": "single_page"}},
        ],
    })
    tags, deals = config.resources
    assert tags.endpoint.path == "tags"
    assert tags.endpoint.error_handler.max_retries == 7
    assert tags.endpoint.paginator.limit == 50  # type: ignore[union-attr]
    assert deals.endpoint.params == {"sort": "updated_at", "x": 1}
    assert deals.endpoint.paginator.type == "single_page"


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_config_is_read_from_a_file(tmp_path: Path, suffix: str) -> None:
    """A config file in JSON or YAML gives the same config as the dict."""
    import yaml

    path = tmp_path / f"source{suffix}"
    text = json.dumps(DEFAULT_CONFIG) if suffix == ".json" else yaml.safe_dump(DEFAULT_CONFIG)
    path.write_text(text)
    assert load_config(path) == load_config(DEFAULT_CONFIG)


def test_unreadable_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing or unparseable file is reported as such, with its path."""
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)


def test_base_url_override_and_selection() -> None:
    """--base-url replaces client.base_url; selecting an unknown resource is an error."""
    config = load_config(base_url="http://127.0.0.1:9")
    assert config.client.base_url == "http://127.0.0.1:9"
    assert [r.name for r in config.select(["users", "tags"]).resources] == ["tags", "users"]
    with pytest.raises(ConfigError, match="no resource named 'contacts'"):
        config.select(["contacts"])


def test_readme_example_config_is_valid() -> None:
    """The YAML example in the README validates, incremental reads included."""
    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"```yaml\n(client:.*?)```", readme, re.S).group(1)  # type: ignore[union-attr]
    config = load_config(yaml.safe_load(example))
    assert [r.name for r in config.resources] == ["deals", "tags"]
    assert all(r.endpoint.incremental is not None for r in config.resources)


def test_incremental_can_be_switched_off_per_resource() -> None:
    """`incremental: null` on a resource turns the default off; replace cannot be incremental."""
    raw = json.loads(json.dumps(DEFAULT_CONFIG))
    raw["resources"][0]["endpoint"]["incremental"] = None
    config = load_config(raw)
    assert config.resources[0].endpoint.incremental is None
    assert config.resources[1].endpoint.incremental is not None
    raw["resources"][1]["write_disposition"] = "replace"
    with pytest.raises(ConfigError, match=r"resources\[1\].endpoint.incremental: write_disposition replace"):
        load_config(raw)

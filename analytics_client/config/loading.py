"""Reading a source configuration: ``load_config`` and the seed's ``DEFAULT_CONFIG``.

A config (a dict, a JSON/YAML file, or None for the default) is read as dlt reads it: a
paginator named by its type alone, a resource by its name alone, dlt's parameter forms
(``{type: resolve}``, ``{type: incremental}``) lifted to where our models keep them, and
``client.paginator`` and ``resource_defaults`` deep-merged into every resource. The models
(model.py) then validate it, the checks across fields and resources (checks.py) run on what
they accept, and every problem found is raised together in one ``ConfigError`` (pydantic's
errors worded by describe.py).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from analytics_client.config.checks import cross_checks
from analytics_client.config.describe import blame_defaults, describe
from analytics_client.config.files import read_config_file
from analytics_client.config.model import DEFAULT_CURSOR_PATH, SourceConfig
from analytics_client.config.schemas import CONTRACT_COLUMNS
from analytics_client.core.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "load_config"]


def _seed_resource(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": {
            "path": f"/v1/{name}",
            "data_selector": "data",
            # The seed's paginator, written out in full: dlt's defaults for the keys the seed
            # leaves out (base_page 0, total_path "total") are not the contract's.
            "paginator": {
                "type": "page_number",
                "page_param": "page[number]",
                "limit_param": "page[size]",
                "limit": 10,
                "base_page": 1,
                "total_path": "meta.page.total_pages",
            },
            "error_handler": {"retry_on_status_codes": [429], "max_retries": 4,
                              "backoff_factor": 2},
        },
        # Ours, on top of the seed: the contract's column types as dlt hints.
        "columns": copy.deepcopy(CONTRACT_COLUMNS[name]),
    }


# The seed configuration of shared/seed-source-config.md (its dlt.secrets[...] kept as
# placeholders), plus incremental reads. base_url comes from --base-url / ANALYTICS_BASE_URL.
DEFAULT_CONFIG: dict[str, Any] = {
    "client": {
        "base_url": "https://api.example.com",
        "auth": {
            "type": "api_key",
            "name": "api_key",
            "api_key": 'dlt.secrets["api_key"]',
            "location": "header",
        },
        # The contract's organization header: the seed's own, resolved like the API key (a
        # config without it needs no organization id and sends none).
        "headers": {"X-Organization-Id": 'dlt.secrets["organization_id"]'},
    },
    "resource_defaults": {
        "primary_key": "id",
        "write_disposition": "merge",
        # Ours, on top of the seed: incremental reads keyed on updated_at (see keyset.py).
        "endpoint": {
            "params": {"sort": DEFAULT_CURSOR_PATH},
            "incremental": {
                "cursor_path": DEFAULT_CURSOR_PATH,
                "start_param": f"filter[{DEFAULT_CURSOR_PATH}][gte]",
                "lag": 10,
            },
        },
    },
    "resources": [_seed_resource(n) for n in ("tags", "deals", "pages", "tasks", "users")],
}


def load_config(
    source: dict[str, Any] | str | Path | None = None, *, base_url: str | None = None
) -> SourceConfig:
    """Validate a config given as a dict, a JSON/YAML file path, or None for the default.

    ``base_url`` (from ``--base-url`` or ``ANALYTICS_BASE_URL``) overrides ``client.base_url``.
    """
    raw, problems = _read(source)
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping with client and resources, got "
                           f"{type(raw).__name__}"])
    raw = copy.deepcopy(raw)
    if base_url:
        raw.setdefault("client", {})
        if isinstance(raw["client"], dict):
            raw["client"]["base_url"] = base_url
    merged = _apply_defaults(raw, problems)
    try:
        config = SourceConfig.model_validate(merged)
    except ValidationError as exc:
        described = (describe(blame_defaults(e, raw)) for e in exc.errors())
        # A bad default is reported once, not per resource.
        problems.extend(dict.fromkeys(described))
        config = None
    if config is not None:
        problems.extend(cross_checks(config))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _read(source: dict[str, Any] | str | Path | None) -> tuple[Any, list[str]]:
    """The raw config, and the problems of its file (keys given twice) to list with the rest."""
    if source is None:
        return DEFAULT_CONFIG, []
    if isinstance(source, dict):
        return source, []
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"(file) {path}: cannot be read: {exc.strerror}"]) from None
    try:
        raw, problems = read_config_file(path, text)
    except ValueError as exc:
        raise ConfigError([f"(file) {path}: {exc}"]) from None
    return raw, problems


_TOP_KEYS = ("client", "resource_defaults", "resources")


def _apply_defaults(raw: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Deep-merge ``client.paginator`` and ``resource_defaults`` into every resource."""
    for key in raw:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key; allowed here: {', '.join(_TOP_KEYS)}")
    defaults = raw.get("resource_defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("resource_defaults: must be a mapping")
        defaults = {}
    default_endpoint = defaults.get("endpoint")
    paged_by_default = isinstance(default_endpoint, dict) and "paginator" in default_endpoint
    if "name" in defaults:
        problems.append("resource_defaults.name: a name cannot be a default; set it per resource")
        defaults = {k: v for k, v in defaults.items() if k != "name"}
    client = raw.get("client")
    if isinstance(client, dict) and client.get("auth") is not None:
        client["auth"] = _expand_auth(client["auth"])
    if isinstance(defaults.get("endpoint"), dict) and defaults["endpoint"].get("auth") is not None:
        defaults["endpoint"]["auth"] = _expand_auth(defaults["endpoint"]["auth"])
    if isinstance(client, dict) and client.get("paginator") is not None:
        client["paginator"] = _expand_paginator(client["paginator"])
        defaults = _deep_merge({"endpoint": {"paginator": client["paginator"]}}, defaults)
    if isinstance(defaults.get("endpoint"), dict) and "paginator" in defaults["endpoint"]:
        defaults["endpoint"]["paginator"] = _expand_paginator(defaults["endpoint"]["paginator"])
    resources = raw.get("resources")
    if not isinstance(resources, list):
        return {k: v for k, v in raw.items() if k != "resource_defaults"}
    merged = []
    for item in resources:
        if isinstance(item, str):  # dlt shorthand: "tags" means name and path "tags"
            item = {"name": item, "endpoint": {"path": item}}
        if isinstance(item, dict) and isinstance(item.get("endpoint"), str):
            item = {**item, "endpoint": {"path": item["endpoint"]}}
        endpoint = item.get("endpoint") if isinstance(item, dict) else None
        if isinstance(endpoint, dict) and "paginator" in endpoint:
            endpoint["paginator"] = _expand_paginator(endpoint["paginator"])
        if isinstance(endpoint, dict) and endpoint.get("auth") is not None:
            endpoint["auth"] = _expand_auth(endpoint["auth"])
        paged = paged_by_default or (isinstance(endpoint, dict) and "paginator" in endpoint)
        merged.append(_single_entity(_deep_merge(defaults, item), paged)
                      if isinstance(item, dict) else item)
    for i, item in enumerate(merged):
        problems.extend(_lift_param_types(i, item))
        problems.extend(_lift_incremental_param(i, item))
    return {"client": raw.get("client"), "resources": merged}


def _single_entity(resource: dict[str, Any], paged: bool) -> dict[str, Any]:
    """dlt's guess for a detail endpoint (``/posts/{id}``: the path's last segment is a
    placeholder): one object, so ``data_selector`` ``$`` and ``single_page`` unless the resource
    (or ``resource_defaults``) says otherwise (``paged``: a paginator is given there).
    dlt/sources/rest_api/config_setup.py: ``_setup_single_entity_endpoint``;
    ``client.paginator`` is the client's there, so it does not count."""
    endpoint = resource.get("endpoint")
    path = endpoint.get("path") if isinstance(endpoint, dict) else None
    if not isinstance(path, str) or not _SINGLE_ENTITY.search(path.rstrip("/").rsplit("/")[-1]):
        return resource
    assert isinstance(endpoint, dict)
    if endpoint.get("data_selector") is None:
        endpoint["data_selector"] = "$"
    if not paged:
        endpoint["paginator"] = {"type": "single_page"}
    return resource


# dlt's detector.single_entity_path: an OpenAPI-style {name} in the last path segment.
_SINGLE_ENTITY = re.compile(r"\{([a-zA-Z0-9\.\-_]+)\}")


def _expand_paginator(value: Any) -> Any:
    """dlt lets a paginator be named by its type alone: ``"single_page"``."""
    return {"type": value} if isinstance(value, str) else value


def _expand_auth(value: Any) -> Any:
    """dlt's auth shorthands (dlt/sources/rest_api/config_setup.py, ``create_auth``): a type
    name alone (``"bearer"``), and a mapping without ``type``, which is ``bearer``
    (``{token: ...}``)."""
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, dict) and "type" not in value:
        return {"type": "bearer", **value}
    return value


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            # A paginator or auth of another type replaces the default instead of mixing keys.
            if "type" in value and value.get("type") != out[key].get("type"):
                out[key] = copy.deepcopy(value)
            else:
                out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- incremental windows: dlt's param form and placeholders (window.py does the reading) ------


def _raw_params(resource: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A raw resource's ``endpoint`` and its ``params``, when both are mappings."""
    endpoint = resource.get("endpoint") if isinstance(resource, dict) else None
    if not isinstance(endpoint, dict):
        return None, None
    params = endpoint.get("params")
    return endpoint, params if isinstance(params, dict) else None


def _lift_incremental_param(i: int, resource: Any) -> list[str]:
    """dlt's ``params: {since: {type: incremental, cursor_path, initial_value}}`` is
    ``incremental: {start_param: since, ...}``; rewritten here so one model holds both forms."""
    endpoint, params = _raw_params(resource)
    if endpoint is None or params is None:
        return []
    named = [k for k, v in params.items() if isinstance(v, dict) and v.get("type") == "incremental"]
    if not named:
        return []
    where = f"resources[{i}].endpoint.params"
    if len(named) > 1:
        return [f"{where}: {named} are all incremental; dlt allows one incremental parameter "
                "per endpoint"]
    name = named[0]
    if "incremental" in endpoint:
        return [f"{where}.{name}: incremental is also set at endpoint.incremental; keep one of "
                "the two forms"]
    spec = {k: v for k, v in params.pop(name).items() if k != "type"}
    for key in ("end_value", "end_param", "start_param"):
        if key in spec:
            # dlt's rule too: a window's end belongs to the resource-level form.
            return [f"{where}.{name}.{key}: only cursor_path and initial_value (and lag) are "
                    "allowed in a parameter's incremental; put a window in "
                    "endpoint.incremental"]
    endpoint["incremental"] = {**spec, "start_param": name}
    return []


def _lift_param_types(i: int, resource: Any) -> list[str]:
    """dlt's ``params.<name>: {type: resolve, ...}`` moves to ``endpoint.resolve``; a mapping
    param of another type than dlt's two is named (dlt: ``_validate_param_type``)."""
    endpoint, params = _raw_params(resource)
    if endpoint is None or params is None:
        return []
    problems: list[str] = []
    for name, value in list(params.items()):
        if not isinstance(value, dict):
            continue
        if value.get("type") == "resolve":
            endpoint.setdefault("resolve", {})[name] = params.pop(name)
        elif value.get("type") != "incremental":
            problems.append(f"resources[{i}].endpoint.params.{name}.type: must be resolve or "
                            f"incremental for a mapping (got {value.get('type')!r})")
            params.pop(name)
    return problems

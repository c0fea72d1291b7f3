"""Config files read strictly: a key given twice is a problem, and a YAML error keeps its place.

``json.loads`` and PyYAML's ``safe_load`` both keep the last of two equal keys and say nothing
(RFC 8259 §4 only says names "SHOULD be unique"; YAML 1.2 §3.2.1.1 says keys MUST be unique,
which PyYAML does not enforce). A resource whose ``endpoint:`` is given twice then silently
loses half of it. So both readers record every duplicate, by key path in the same notation as
the config's other problems (``resources[0].endpoint``), with YAML line numbers, and the caller
lists them with the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["read_config_file"]

Problems = list[str]


class _Mapping(dict[Any, Any]):
    """A mapping that remembers the keys it was given more than once (key, where)."""

    duplicates: list[tuple[Any, str]]


def read_config_file(path: Path, text: str) -> tuple[Any, Problems]:
    """The document in ``text`` (JSON for ``.json``, else YAML) and its duplicate-key problems.

    Raises ``ValueError`` with a one-line message (YAML: with line and column) when the text
    does not parse.
    """
    if path.suffix.lower() == ".json":
        try:
            document = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    else:
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {_yaml_error(exc)}") from None
    problems: Problems = []
    return _plain(document, "", problems), problems


def _json_object(pairs: list[tuple[str, Any]]) -> _Mapping:
    mapping = _Mapping()
    mapping.duplicates = []
    for key, value in pairs:
        if key in mapping:
            mapping.duplicates.append((key, ""))
        mapping[key] = value
    return mapping


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, recording keys given twice in one mapping (merge keys excepted)."""

    def construct_strict_map(self, node: yaml.MappingNode) -> Any:
        mapping = _Mapping()
        mapping.duplicates = []
        yield mapping
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` then a key of our own is an override, as YAML means
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable key: the config check reports it
                continue
            if first is None:
                lines[key] = line
            else:
                mapping.duplicates.append((key, f" (lines {first} and {line})"))
        mapping.update(self.construct_mapping(node))


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_strict_map)


def _plain(node: Any, path: str, problems: Problems) -> Any:
    """Plain dicts and lists again, collecting each duplicate as ``path.key: given twice``."""
    if isinstance(node, dict):
        for key, where in getattr(node, "duplicates", ()):
            at = f"{path}.{key}" if path else str(key)
            problems.append(f"{at}: given more than once{where}; a key may appear once, "
                            "otherwise all but the last are silently lost")
        return {k: _plain(v, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    return node


def _yaml_error(exc: yaml.YAMLError) -> str:
    """PyYAML's problem with its line and column (1-based), and its context, on one line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = []
        if exc.problem_mark is not None:
            parts.append(f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}:")
        parts.append(exc.problem or "")
        if exc.context:
            where = (f" at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
                     if exc.context_mark is not None else "")
            parts.append(f"({exc.context}{where})")
        return " ".join(p for p in parts if p)
    return " ".join(str(exc).split())

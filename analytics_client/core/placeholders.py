"""dlt's request placeholders: ``{incremental.start_value}`` in an endpoint's path and params.

dlt formats path and params with Python's ``str.format`` rules (``string.Formatter``) and an
``incremental`` object in scope, so ``{{`` and ``}}`` are literal braces and
``{incremental.start_value}`` is the value the read starts from
(dlt/sources/rest_api/config_setup.py: ``expand_placeholders``, ``_get_available_contexts``).
We offer the same four values, formatted as the contract writes timestamps:

* ``start_value`` and ``last_value``: where this read starts (the mark less ``lag``, or
  ``initial_value``); dlt's ``last_value`` equals ``start_value`` when a request is built.
* ``initial_value``, ``end_value`` and ``lag``: as configured (``lag`` in the cursor's units).

A value that is None (no mark yet and no ``initial_value``) drops the parameter that uses it,
as dlt's requests drop a None parameter; in a path it cannot be dropped, so config checks
require the value there. Format specs and conversions (``{x:>10}``, ``{x!r}``) are refused:
our values are written one way.

Parent/child (``children.py``): ``{resources.<parent>.<field>}`` is a field of the parent
record, in the path or params; a bare ``{name}`` in the path is bound by a ``params.<name>`` of
``type: resolve`` (dlt's ``_bind_path_params``, ``_expressions_to_resolved_params``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

__all__ = ["NAMES", "expand", "expand_tree", "fields", "fill", "parents", "problems", "texts",
           "used"]

NAMES = ("start_value", "last_value", "initial_value", "end_value", "lag")
_FORMATTER = string.Formatter()


def fields(text: str) -> list[str]:
    """The placeholder names in ``text`` (``incremental.start_value``), in order.

    Raises ``ValueError`` for text ``str.format`` cannot parse (a lone ``{`` or ``}``).
    """
    return [name for _, name, _, _ in _FORMATTER.parse(text) if name is not None]


def problems(text: str, bound: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with the placeholders of ``text`` (empty when nothing), for ConfigError.

    ``bound``: the bare names a path may use (its ``resolve`` parameters)."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        return [f"{text!r} is not a valid placeholder text ({exc}); write a literal brace as "
                "{{ or }}"]
    out = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            out.append(f"{{{name}}} has a format spec or conversion; write the placeholder "
                       "alone, e.g. {incremental.start_value}")
        context, _, value = name.partition(".")
        if name in bound:
            continue
        if context == "resources":
            parent, _, field = value.partition(".")
            if not parent or not field:
                out.append(f"{{{name}}} must be written {{resources.<parent>.<field>}}")
        elif context != "incremental" or value not in NAMES:
            out.append(f"{{{name}}} is not a known placeholder; use one of "
                       + ", ".join(f"{{incremental.{n}}}" for n in NAMES)
                       + ", {resources.<parent>.<field>}, or in a path a parameter of type "
                       "resolve (a literal brace is written {{ or }})")
    return out


def used(path: str, params: Mapping[str, object], *bodies: object) -> bool:
    """Whether the path, any string parameter or any text in ``bodies`` (a request's JSON or
    form body, its headers) holds an ``{incremental.*}`` placeholder."""
    found = [path, *(v for v in params.values() if isinstance(v, str))]
    found += [t for body in bodies for t in texts(body)]
    return any(_incremental(text) for text in found)


def texts(tree: object) -> list[str]:
    """Every text value in ``tree`` (a JSON body, form data or headers: mappings and lists to
    any depth, or one text), in order; keys are not placeholders' places."""
    if isinstance(tree, str):
        return [tree]
    if isinstance(tree, Mapping):
        return [t for value in tree.values() for t in texts(value)]
    if isinstance(tree, list | tuple):
        return [t for value in tree for t in texts(value)]
    return []


def expand_tree(tree: Any, values: Mapping[str, str | None],
                typed: Mapping[str, Any] | None = None) -> Any:
    """``tree`` (a JSON body, form data or headers) with every text expanded as ``expand``
    does; a text that expands to None (a placeholder without a value) drops its key or item,
    as a None parameter is dropped. With ``typed`` (a JSON body: dlt's
    ``preserve_value_type``), a text that is one placeholder alone becomes ``typed[name]``
    itself (an integer id stays an integer). Assumes ``problems`` was empty for every text."""
    if isinstance(tree, str):
        if typed is not None:
            parsed = list(_FORMATTER.parse(tree))
            if len(parsed) == 1 and parsed[0][0] == "" and parsed[0][1] is not None \
                    and parsed[0][1] in typed:
                return typed[parsed[0][1]]
        return expand(tree, values)
    if isinstance(tree, Mapping):
        out = {_key(k, values): (expand_tree(v, values, typed), v) for k, v in tree.items()}
        return {k: new for k, (new, old) in out.items() if new is not None or old is None}
    if isinstance(tree, list | tuple):
        items = [(expand_tree(v, values, typed), v) for v in tree]
        return [new for new, old in items if new is not None or old is None]
    return tree


def parents(text: str) -> list[tuple[str, str]]:
    """The ``(parent, field)`` of each ``{resources.<parent>.<field>}`` in ``text``."""
    try:
        names = fields(text)
    except ValueError:
        return []
    return [(p, f) for name in names if name.startswith("resources.")
            for p, _, f in [name.removeprefix("resources.").partition(".")] if p and f]


def expand(text: str, values: Mapping[str, str | None]) -> str | None:
    """``text`` with each placeholder replaced by ``values[<its name>]`` (e.g.
    ``values["incremental.start_value"]``); None when a placeholder's value is None. Text
    comes back unescaped (``{{`` → ``{``), as dlt's ``expand_placeholders`` returns it.
    Assumes ``problems(text)`` was empty."""
    out = []
    for literal, name, _, _ in _FORMATTER.parse(text):
        out.append(literal)
        if name is None:
            continue
        value = values[name]
        if value is None:
            return None
        out.append(value)
    return "".join(out)


def fill(text: str, values: Mapping[str, str | None]) -> str | None:
    """``text`` with the placeholders ``values`` names replaced, the others (a child's
    ``{resources.<parent>.<field>}``, filled per parent later) kept, and literal braces kept
    escaped: the result is still a template for ``expand``. None when a value is None."""
    out = []
    for literal, name, _, _ in _FORMATTER.parse(text):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name not in values:
            out.append("{" + name + "}")
            continue
        value = values[name]
        if value is None:
            return None
        out.append(value.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def _key(key: Any, values: Mapping[str, str | None]) -> Any:
    """A mapping's key expanded as dlt expands keys (``X-{{escaped}}`` is ``X-{escaped}``);
    kept as written when it names a placeholder without a value here."""
    if not isinstance(key, str):
        return key
    try:
        expanded = expand(key, values)
    except (KeyError, ValueError):
        return key
    return key if expanded is None else expanded


def _incremental(text: str) -> bool:
    try:
        return any(name.startswith("incremental.") for name in fields(text))
    except ValueError:
        return False

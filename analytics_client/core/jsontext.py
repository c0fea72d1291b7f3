"""Exact JSON: API bodies decoded without a binary float on the way, and written back exactly.

A JSON number is decimal text. Python's ``json`` (like orjson and ``pl.read_json``) turns every
number with a fraction or an exponent into a float64, which silently rounds
``12345678901234567.89`` and ``0.1234567890123456789``. Here they become ``Decimal`` and stay
exact until a column type decides (docs/data-model.md): a ``decimal`` or ``bigint`` column
checks the value fits, a ``double`` column takes the float by the user's choice, an
undocumented field keeps a float only where the float reads back as the same decimal.

``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259, section 6) but some servers send
them; they decode to a ``NotJson`` marker so the record holding one can be set aside by name
instead of failing its page. Lone UTF-16 surrogate escapes (``"\\ud83d"``) are valid JSON text
but no Unicode string: they decode as Python does and are found by ``problem``.
"""

from __future__ import annotations

import json
from decimal import Context, Decimal
from typing import Any

import orjson

__all__ = [
    "NotJson",
    "canonical_bytes",
    "canonical_json",
    "exact_float",
    "loads",
    "normalized",
    "number_text",
    "problem",
    "record_text",
    "size_estimate",
]


class NotJson:
    """A token some servers send that JSON does not have (``NaN``, ``Infinity``)."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return self.token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotJson) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


def loads(text: str | bytes) -> Any:
    """Decode JSON exactly: fractions and exponents as ``Decimal``, integers as ``int``.

    Raises ``ValueError`` (``json.JSONDecodeError``, or for nesting deeper than the
    interpreter's recursion limit) or ``UnicodeDecodeError`` for a body it cannot read.
    """
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=NotJson)
    except RecursionError:
        raise ValueError("JSON nested deeper than the decoder's recursion limit") from None


def exact_float(value: Decimal | int | float) -> float | None:
    """The float64 equal to ``value`` as a decimal number, or None if no float64 is.

    "Equal" as JSON readers mean it: the float's shortest text reads back as the same decimal
    (``0.1`` qualifies, ``12345678901234567.89`` does not). A finite float is itself.
    """
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, int):
        return float(value) if abs(value) <= 2**53 else None
    if not value.is_finite():
        return None
    text = str(value)
    if "E" not in text and len(text) - (text[0] == "-") - ("." in text) <= 15:
        # At most 15 digits, magnitude between 1e-6 and 1e15 (``str`` writes a decimal
        # without an exponent only there): every such decimal is the one nearest its float
        # among decimals of 15 digits (DBL_DIG = 15, IEEE 754 binary64), so no other one, and
        # no shorter text, reads back as that float: the float's shortest text is this
        # decimal. The general check below gives the same answer 3x slower (hot: every
        # fraction of every record is hashed and typed).
        return float(text)
    as_float = float(value)
    if as_float in (float("inf"), float("-inf")):
        return None
    return as_float if Decimal(repr(as_float)) == value else None


def number_text(value: Decimal) -> str:
    """One text per decimal value: the float's shortest form where exact, else the exact digits.

    So ``1.10`` and ``1.1`` hash alike, and values a float holds are written as before exact
    parsing (row hashes of existing tables stay the same).
    """
    as_float = exact_float(value)
    if as_float is not None:
        return repr(as_float)
    return str(normalized(value))


def normalized(value: Decimal) -> Decimal:
    """``value`` without trailing zeros, exactly.

    ``Decimal.normalize()`` (like ``abs``, ``+`` and ``quantize``) rounds to the context's
    precision, 28 digits by default: ``1613353.000000000000000007950608`` would lose digits.
    A context as precise as the value itself cannot round it.
    """
    if not value.is_finite():
        return value
    return value.normalize(Context(prec=max(1, len(value.as_tuple().digits))))


def _fragment(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(number_text(value))
    raise TypeError(f"not JSON: {value!r}")


def canonical_bytes(value: object) -> bytes:
    """UTF-8 canonical JSON: sorted keys, no spaces, unicode kept, numbers exact.

    Raises ``ValueError`` for a value no JSON text holds (``NotJson``, a lone surrogate).
    """
    try:
        return orjson.dumps(value, default=_fragment, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the slow writer takes them.
        return _write(value, sort_keys=True, ascii_only=False).encode("utf-8")


def canonical_json(value: object) -> str:
    """``canonical_bytes`` as text."""
    return canonical_bytes(value).decode("utf-8")


def record_text(value: object) -> str:
    """A record as received, as JSON text that ``loads`` reads back to an equal value.

    Key order kept; non-ASCII escaped, so lone surrogates survive as ``\\udXXX`` escapes and
    ``NotJson`` tokens are written as they came. For the quarantine: never raises.
    """
    return _write(value, sort_keys=False, ascii_only=True, exact_numbers=True)


def size_estimate(value: object) -> int:
    """About how many bytes ``value`` takes as JSON text, cheaply (memory budgets, budget.py).

    orjson's text with decimals and ``NotJson`` as strings; for what orjson cannot write (an
    integer beyond 64 bits, a lone surrogate) the length of the repr. Never raises.
    """
    try:
        return len(orjson.dumps(value, default=str))
    except TypeError:  # orjson.JSONEncodeError is one
        return len(repr(value))


def problem(value: object) -> str | None:
    """Why ``value`` has no JSON text (a NaN, a lone surrogate in a string or key), or None.

    Iterative, so no nesting depth can raise RecursionError (real APIs nest hundreds deep).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, NotJson):
            return f"{item.token}, which is not a JSON number (RFC 8259 section 6)"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string with a lone UTF-16 surrogate, which is no Unicode text"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


_CLOSE = object()  # marks the end of a container on the writer's stack


def _write(value: object, *, sort_keys: bool, ascii_only: bool,
           exact_numbers: bool = False) -> str:
    """JSON text of ``value``, written with an explicit stack (any depth, no recursion)."""
    def string(text: str) -> str:
        if not ascii_only:
            reason = problem(text)
            if reason:
                raise ValueError(reason)
        return json.dumps(text, ensure_ascii=ascii_only)

    def scalar(item: object) -> str:
        if item is None:
            return "null"
        if item is True:
            return "true"
        if item is False:
            return "false"
        if isinstance(item, int):
            return str(item)
        if isinstance(item, Decimal):
            return str(item) if exact_numbers else number_text(item)
        if isinstance(item, float):
            return repr(item)
        if isinstance(item, str):
            return string(item)
        if isinstance(item, NotJson):
            if not exact_numbers:
                raise ValueError(problem(item))
            return item.token
        raise ValueError(f"not a JSON value: {type(item).__name__}")

    out: list[str] = []
    # Each entry: (prefix to write, value to write); _CLOSE writes a closing bracket.
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        prefix, item = stack.pop()
        out.append(prefix)
        if item is _CLOSE:
            continue
        if isinstance(item, dict):
            keys = sorted(item) if sort_keys else list(item)
            out.append("{")
            stack.append(("}", _CLOSE))
            for n, key in reversed(list(enumerate(keys))):
                stack.append((("," if n else "") + string(key) + ":", item[key]))
        elif isinstance(item, list):
            out.append("[")
            stack.append(("]", _CLOSE))
            for n, element in reversed(list(enumerate(item))):
                stack.append(("," if n else "", element))
        else:
            out.append(scalar(item))
    return "".join(out)

"""``frames.row_hash`` is the documented canonical form, byte for byte, on any record.

The stored ``_row_hash`` decides whether a merge rewrites a row: a faster hash path that wrote
one byte differently would make every existing table see every row as updated after an
upgrade. So the hash is compared with the canonical form written out from the docstrings
(``row_hash``, ``jsontext.canonical_bytes``, ``jsontext.number_text``), with the stdlib's own
JSON writer for strings, never with our code path.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from analytics_client.core.jsontext import loads
from analytics_client.lake.frames import row_hash


def number_text(value: Decimal) -> str:
    """A decimal's text: the float's shortest form where that float reads back as this decimal,
    else the exact digits with trailing zeros dropped."""
    as_float = float(value)
    if not math.isinf(as_float) and Decimal(repr(as_float)) == value:
        return repr(as_float)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    while digits[-1] == 0:  # never all zeros here: a zero is a float
        digits, exponent = digits[:-1], exponent + 1
    return str(Decimal((sign, digits, exponent)))


def canonical(value: object, *, as_sent: bool = False) -> str:
    """Sorted keys, no spaces, unicode kept (the stdlib's escapes), numbers as above.

    ``as_sent``: keys in their order and decimals as written, as an API's body would be.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value) if as_sent else number_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v, as_sent=as_sent) for v in value) + "]"
    assert isinstance(value, dict)
    keys = list(value) if as_sent else sorted(value)
    return "{" + ",".join(f"{canonical(k)}:{canonical(value[k], as_sent=as_sent)}"
                          for k in keys) + "}"


def reference_hash(record: dict[str, object]) -> str:
    """blake2b-128 of the canonical JSON of the record without its null-valued keys."""
    content = {k: v for k, v in record.items() if v is not None}
    return hashlib.blake2b(canonical(content).encode("utf-8"), digest_size=16).hexdigest()


# Decimals as an API writes them: any digits, any exponent, trailing zeros included.
decimals = st.builds(lambda sign, digits, exponent: Decimal((sign, tuple(map(int, digits)),
                                                             exponent)),
                     st.integers(0, 1), st.text("0123456789", min_size=1, max_size=40),
                     st.integers(-40, 30))
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)  # any text but surrogates
# No Python floats: ``loads`` makes none (a fraction is a Decimal), and orjson writes a float
# its own way ("1e-7" where repr writes "1e-07"), which hashes already stored depend on.
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | decimals | text
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(text, inner, max_size=4), max_leaves=20)
records = st.dictionaries(text, values, max_size=8)


@given(records)
def test_any_record_hashes_as_its_canonical_form(record: dict[str, object]) -> None:
    """Unicode, big and small integers, exact decimals, floats, nesting and nulls."""
    assert row_hash(record) == reference_hash(record)


@given(st.dictionaries(text, values, min_size=1, max_size=8))
def test_a_decoded_body_hashes_as_its_canonical_form(record: dict[str, object]) -> None:
    """Records as ``jsontext.loads`` makes them from the JSON text an API sends."""
    decoded = loads(canonical(record, as_sent=True))
    assert row_hash(decoded) == reference_hash(decoded)


def test_the_hash_of_a_known_record_is_fixed() -> None:
    """Records with every kind of value: the digests tables already store for them (computed
    before the hash path was made cheaper), through orjson and through the writer for
    integers beyond 64 bits."""
    record = {"id": "d1", "amount": Decimal("12.50"), "tiny": Decimal("1E-40"),
              "exact": Decimal("12345678901234567.89"), "name": "Zoë 東京 🚀\n\t\"",
              "nested": {"b": [1, True, None], "a": {"z": Decimal("0.1")}}, "gone": None}
    assert row_hash(record) == reference_hash(record) == "0b773c9ebf336fa543670db1bb69fd12"
    big = {**record, "big": 2**70}
    assert row_hash(big) == reference_hash(big) == "99098ad0e5193c4beeff9d2c0342101d"

"""``jsontext.exact_float``'s fast path agrees with the definition on every decimal."""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from analytics_client.core.jsontext import exact_float


def reference(value: Decimal) -> float | None:
    """The definition, written out: the float whose shortest text reads back as ``value``."""
    if not value.is_finite():
        return None
    as_float = float(value)
    if math.isinf(as_float):
        return None
    return as_float if Decimal(repr(as_float)) == value else None


digits = st.integers(0, 10**20)
exponents = st.integers(-30, 30)


@given(st.builds(lambda sign, d, e: Decimal((sign, tuple(int(c) for c in str(d)), e)),
                 st.integers(0, 1), digits, exponents))
def test_any_decimal_is_judged_as_the_definition_says(value: Decimal) -> None:
    got, want = exact_float(value), reference(value)
    assert (got is None) == (want is None)
    if want is not None:
        assert got == want and math.copysign(1, got) == math.copysign(1, want)  # -0.0 too


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_the_text_of_any_float_is_that_float(number: float) -> None:
    assert exact_float(Decimal(repr(number))) == number


def test_sixteen_digits_take_the_slow_path_and_can_fail() -> None:
    assert exact_float(Decimal("1234567890123456")) == 1234567890123456.0
    assert exact_float(Decimal("9007199254740993")) is None  # 2**53 + 1: no float holds it
    assert exact_float(Decimal("0.1000000000000000055511151231257827")) is None
    assert exact_float(Decimal("-0")) == 0.0

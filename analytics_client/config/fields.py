"""The config's field types: a strict model base, validated numbers, and secret references.

Shared by the models of model.py and auth.py; a secret is never a value in a config, only a
reference (``dlt.secrets["api_key"]``) resolved at run time (core/credentials.py).
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

__all__ = ["SECRET_NAMES", "ApiKeyRef", "ClientIdRef", "ClientSecretRef", "NonNegativeFloat",
           "NonNegativeInt", "PositiveFloat", "PositiveInt", "Scalar", "StrictModel", "fail",
           "secret_ref"]

SECRET_NAMES = ("api_key", "organization_id", "client_id", "client_secret")
_PLACEHOLDER = re.compile(r"""^\s*dlt\.secrets\[\s*(['"])(?P<name>[A-Za-z0-9_.]+)\1\s*\]\s*$""")


def secret_ref(value: object) -> str | None:
    """The secret a header value names (``dlt.secrets["organization_id"]`` names
    ``organization_id``), None for a plain value."""
    match = _PLACEHOLDER.match(value) if isinstance(value, str) else None
    return match.group("name") if match else None


def fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _positive_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail("positive_int", f"must be an integer >= 1 (got {value!r})")
    return value


def _non_negative_int(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail("non_negative_int", f"must be an integer >= 0 (got {value!r})")
    return value


def _non_negative_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise fail("non_negative_number", f"must be a number >= 0 (got {value!r})")
    return float(value)


def _positive_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise fail("positive_number", f"must be a number > 0 (got {value!r})")
    return float(value)


def _secret_ref(default: str) -> typing.Callable[[object], object]:
    def check(value: object) -> object:
        if value is None:
            return default
        if isinstance(value, str) and (match := _PLACEHOLDER.match(value)):
            name = match.group("name")
            if name not in SECRET_NAMES:
                raise fail(
                    "secret_name",
                    f"unknown secret {name!r}; use one of: "
                    + ", ".join(f'dlt.secrets["{n}"]' for n in SECRET_NAMES),
                )
            return name
        raise fail(
            "literal_secret",
            f'must not hold a secret: write dlt.secrets["{default}"] or leave it out; the value '
            "comes from the Prefect Secret block or the environment (see README, Secrets)",
        )

    return check


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
NonNegativeFloat = Annotated[float, BeforeValidator(_non_negative_number)]
PositiveFloat = Annotated[float, BeforeValidator(_positive_number)]
ApiKeyRef = Annotated[str, BeforeValidator(_secret_ref("api_key"))]
ClientIdRef = Annotated[str, BeforeValidator(_secret_ref("client_id"))]
ClientSecretRef = Annotated[str, BeforeValidator(_secret_ref("client_secret"))]
Scalar = Union[str, int, float, bool]  # noqa: UP007 - pydantic reads this at run time


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

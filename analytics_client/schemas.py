"""Declared column types of the documented resources, read off the API contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

__all__ = [
    "DOCUMENTED",
    "EXPECTED",
    "FieldSpec",
    "Kind",
    "polars_schema",
]

Kind = Literal[
    "string", "timestamp", "date", "decimal", "integer", "boolean", "string_list", "json_object"
]


@dataclass(frozen=True)
class FieldSpec:
    """How one documented field is typed, and whether the contract allows null."""

    kind: Kind
    nullable: bool = True

    @property
    def dtype(self) -> pl.DataType:
        return _DTYPES[self.kind]


_DTYPES: dict[Kind, pl.DataType] = {
    "string": pl.String(),
    # The contract sends UTC with microseconds; Delta's `timestamp` is UTC microseconds.
    "timestamp": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    # |amount| < 10^13 with 2 decimals: 15 digits, so decimal(18, 2) holds every value exactly.
    "decimal": pl.Decimal(18, 2),
    "integer": pl.Int64(),
    "boolean": pl.Boolean(),
    "string_list": pl.List(pl.String()),
    # Keys vary per record and values change type: a struct column would break on the first
    # new key (see docs/data-model.md), canonical JSON text never does.
    "json_object": pl.String(),
}

# What the contract promises for each kind, quoted in RecordTypeError messages.
EXPECTED: dict[Kind, str] = {
    "string": "a string",
    "timestamp": "an ISO-8601 timestamp with a UTC offset or Z, at most microsecond precision",
    "date": "a date (YYYY-MM-DD)",
    "decimal": "a decimal number with at most 2 decimal places and an absolute value below 10^13",
    "integer": "an integer that fits 64 bits",
    "boolean": "a boolean (true or false)",
    "string_list": "a list of strings",
    "json_object": "a JSON object",
}

_S = FieldSpec

# Every record has these three.
_COMMON: dict[str, FieldSpec] = {
    "id": _S("string", nullable=False),
    "created_at": _S("timestamp", nullable=False),
    "updated_at": _S("timestamp", nullable=False),
}

# Enum fields (role, status, currency, stage) are plain strings: an API that adds a value
# must not break a sync.
DOCUMENTED: dict[str, dict[str, FieldSpec]] = {
    "tags": {
        **_COMMON,
        "name": _S("string", nullable=False),
        "color": _S("string"),
    },
    "users": {
        **_COMMON,
        "name": _S("string", nullable=False),
        "email": _S("string", nullable=False),
        "role": _S("string"),
        "active": _S("boolean", nullable=False),
        "last_login_at": _S("timestamp"),
    },
    "deals": {
        **_COMMON,
        "name": _S("string", nullable=False),
        "amount": _S("decimal"),
        "currency": _S("string"),
        "stage": _S("string"),
        "owner_id": _S("string"),
        "tag_ids": _S("string_list"),
        "custom_fields": _S("json_object"),
        "closed_at": _S("timestamp"),
    },
    "pages": {
        **_COMMON,
        "name": _S("string", nullable=False),
        "url": _S("string", nullable=False),
        "views": _S("integer", nullable=False),
        "published": _S("boolean", nullable=False),
    },
    "tasks": {
        **_COMMON,
        "name": _S("string", nullable=False),
        "status": _S("string"),
        "due_date": _S("date"),
        "deal_id": _S("string"),
        "assignee_id": _S("string"),
        "completed_at": _S("timestamp"),
    },
}


def polars_schema(resource: str) -> dict[str, pl.DataType]:
    """The declared polars types of a resource's documented columns ({} if undocumented)."""
    return {name: spec.dtype for name, spec in DOCUMENTED.get(resource, {}).items()}

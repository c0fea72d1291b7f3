"""Column type hints: dlt's ``columns`` (``data_type``, ``nullable``, ``precision``, ``scale``).

Types come from the config, never from a resource's name: the five contract resources get
theirs from hints in the default config (``CONTRACT_COLUMNS``, read off the API contract), and a
user's resource gets what its config declares, the rest inferred (docs/data-model.md).

dlt's data types and what each becomes in Delta (dlt docs, "Schema: data types"):

    text -> string          bigint -> long             double -> double
    bool -> boolean         timestamp -> timestamp (UTC, microseconds)
    date -> date            decimal -> decimal(precision, scale), dlt's default (38, 9)
    json -> string holding canonical JSON of an object or array
    text_list -> array<string>   (ours: dlt has no list type and would store json)
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CONTRACT_COLUMNS", "ColumnHint", "DataType", "contract_columns"]

DataType = Literal[
    "text", "bigint", "double", "bool", "timestamp", "date", "decimal", "json", "text_list"
]

# dlt's default decimal precision and scale (dlt.common.schema.typing / destination caps).
DEFAULT_PRECISION, DEFAULT_SCALE = 38, 9
MAX_PRECISION = 38  # Delta's decimal holds at most 38 digits


class ColumnHint(BaseModel):
    """One column's declared type; a value that does not fit it is set aside, never coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: the type is inferred, as for an undeclared field (a hint of hard_delete alone).
    data_type: DataType | None = None
    nullable: bool = True
    precision: int | None = Field(default=None, ge=1, le=MAX_PRECISION)
    scale: int | None = Field(default=None, ge=0, le=MAX_PRECISION)
    # dlt's hint: the column is a tombstone; a record with it true (a boolean column) or not
    # null (any other) deletes its row (docs/deletes.md).
    hard_delete: bool = False

    @model_validator(mode="after")
    def _decimal_only(self) -> ColumnHint:
        if self.data_type is None and not self.hard_delete:
            raise ValueError("a column hint needs data_type (or hard_delete: true alone)")
        if self.data_type != "decimal" and (self.precision is not None or self.scale is not None):
            raise ValueError("precision and scale apply to data_type decimal only")
        if self.digits < self.places:
            raise ValueError(f"scale {self.places} is larger than precision {self.digits}")
        return self

    @property
    def digits(self) -> int:
        return self.precision if self.precision is not None else DEFAULT_PRECISION

    @property
    def places(self) -> int:
        return self.scale if self.scale is not None else DEFAULT_SCALE

    @property
    def dtype(self) -> pl.DataType:
        if self.data_type == "decimal":
            return pl.Decimal(self.digits, self.places)
        if self.data_type is None:
            raise ValueError("a hint without data_type declares no type")  # plan drops them
        return _DTYPES[self.data_type]

    @property
    def expected(self) -> str:
        """What a fitting value is, for error and quarantine messages."""
        if self.data_type == "decimal":
            text = (f"a decimal number with at most {self.places} decimal places and an "
                    f"absolute value below 10^{self.digits - self.places}")
        else:
            text = _EXPECTED[self.data_type] if self.data_type else "any value"
        return text if self.nullable else f"{text}, not null"


_DTYPES: dict[str, pl.DataType] = {
    "text": pl.String(),
    # Delta's `timestamp` is UTC microseconds.
    "timestamp": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    "bigint": pl.Int64(),
    "double": pl.Float64(),
    "bool": pl.Boolean(),
    "text_list": pl.List(pl.String()),
    # Keys vary per record and values change type: a struct column would break on the first
    # new key (see docs/data-model.md), canonical JSON text never does.
    "json": pl.String(),
}

_EXPECTED: dict[str, str] = {
    "text": "a string",
    "timestamp": "an ISO-8601 timestamp with a UTC offset, at most microsecond precision, "
                 "in years 1-9999",
    "date": "a date (YYYY-MM-DD)",
    "bigint": "an integer that fits 64 bits",
    "double": "a number",
    "bool": "a boolean (true or false)",
    "text_list": "a list of strings",
    "json": "a JSON object or array",
}


def _hint(data_type: str, nullable: bool = True, **extra: Any) -> dict[str, Any]:
    return {"data_type": data_type, "nullable": nullable, **extra}


_COMMON = {
    "id": _hint("text", False),
    "created_at": _hint("timestamp", False),
    "updated_at": _hint("timestamp", False),
}

# The API contract's fields (docs/api-contract.md), as dlt column hints. Enum fields (role,
# status, currency, stage) are plain text: an API that adds a value must not break a sync.
# amount: at most 2 decimals, |amount| < 10^13; decimal(18, 2) holds every such value exactly.
CONTRACT_COLUMNS: dict[str, dict[str, dict[str, Any]]] = {
    "tags": {**_COMMON, "name": _hint("text", False), "color": _hint("text")},
    "users": {
        **_COMMON,
        "name": _hint("text", False),
        "email": _hint("text", False),
        "role": _hint("text"),
        "active": _hint("bool", False),
        "last_login_at": _hint("timestamp"),
    },
    "deals": {
        **_COMMON,
        "name": _hint("text", False),
        "amount": _hint("decimal", precision=18, scale=2),
        "currency": _hint("text"),
        "stage": _hint("text"),
        "owner_id": _hint("text"),
        "tag_ids": _hint("text_list"),
        "custom_fields": _hint("json"),
        "closed_at": _hint("timestamp"),
    },
    "pages": {
        **_COMMON,
        "name": _hint("text", False),
        "url": _hint("text", False),
        "views": _hint("bigint", False),
        "published": _hint("bool", False),
    },
    "tasks": {
        **_COMMON,
        "name": _hint("text", False),
        "status": _hint("text"),
        "due_date": _hint("date"),
        "deal_id": _hint("text"),
        "assignee_id": _hint("text"),
        "completed_at": _hint("timestamp"),
    },
}


def contract_columns(resource: str) -> dict[str, ColumnHint]:
    """The contract's hints of one of the five resources, validated ({} for any other)."""
    return {name: ColumnHint(**hint) for name, hint in CONTRACT_COLUMNS.get(resource, {}).items()}

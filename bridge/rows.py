"""Records read from the database: a dataclass built from a row by its field names."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_row(cls: type[T], row: Any, **values: Any) -> T:
    """An instance of the dataclass ``cls``: each field from the row's column of the same name
    (a ``bool`` field's 0 or 1 from SQLite made a bool), unless given in ``values``; a field
    without a column keeps its default."""
    columns = set(row.keys())
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in values or f.name not in columns:
            continue
        value = row[f.name]
        values[f.name] = bool(value) if f.type in ("bool", bool) else value
    return cls(**values)

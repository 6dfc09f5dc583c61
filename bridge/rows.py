"""Records read from the database: a dataclass built from a row by its field names."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import fields
from functools import cache
from typing import Any, TypeVar, cast

T = TypeVar("T")


def dataclass_from_row(cls: type[T], row: Any, **values: Any) -> T:
    """An instance of the dataclass ``cls``: each field from the row's column of the same name
    (a ``bool`` field's 0 or 1 from SQLite made a bool), unless given in ``values``; a field
    without a column keeps its default."""
    for name, index, is_bool in _columns(cast(Hashable, cls), tuple(row.keys())):
        if name not in values:
            value = row[index]
            values[name] = bool(value) if is_bool else value
    return cls(**values)


@cache
def _columns(cls: Any, columns: tuple[str, ...]) -> tuple[tuple[str, int, bool], ...]:
    """The fields of ``cls`` that a row with these columns has: name, column index, and
    whether it is a boolean (worked out once per class and query shape: lists of ten thousand
    rows are read this way)."""
    index = {name: i for i, name in enumerate(columns)}
    return tuple(
        (f.name, index[f.name], f.type in ("bool", bool)) for f in fields(cls) if f.name in index
    )

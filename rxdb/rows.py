"""Result rows: plain tuples that also answer to column names.

A row *is* a tuple, so ``rows == [(1, "a")]`` holds, rows hash and pickle like tuples, and
comparing two results (to decide whether a watch emits) costs what comparing tuples costs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, SupportsIndex, overload

__all__ = ("ExecuteResult", "Row", "row_class")


class Row(tuple[Any, ...]):
    """A tuple of column values; ``row["name"]`` (or ``row.name``) looks a column up by name.

    Name lookup is exact first, then ASCII case-insensitive, as SQLite treats column names.
    """

    __slots__ = ()
    _names: ClassVar[tuple[str, ...]] = ()
    _index: ClassVar[dict[str, int]] = {}

    @overload
    def __getitem__(self, key: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        if isinstance(key, str):
            try:
                position = self._index[key]
            except KeyError:
                position = self._lookup_folded(key)
            return tuple.__getitem__(self, position)
        return tuple.__getitem__(self, key)

    def __getattr__(self, name: str) -> Any:
        # Only reached when ordinary lookup fails: tuple's own names (count, index) and the
        # methods here win over columns of the same name; use row["count"] for those.
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"'Row' has no attribute or column {name!r}; columns are {list(self._names)}"
            ) from None

    def keys(self) -> tuple[str, ...]:
        """Return the column names, in order."""
        return self._names

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self._names, self, strict=True))

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._names, self, strict=False)
        )
        return f"Row({inner})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._names, tuple(self)))

    @classmethod
    def _lookup_folded(cls, key: str) -> int:
        folded = key.translate(_ASCII_LOWER)
        for position, name in enumerate(cls._names):
            if name.translate(_ASCII_LOWER) == folded:
                return position
        raise KeyError(f"no column named {key!r}; columns are {list(cls._names)}")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@functools.lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """Return the row type for one set of column names (shared by every result with them)."""
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": index})


def make_rows(description: Sequence[Sequence[Any]] | None, values: list[Any]) -> list[Row]:
    key = description or ()
    cls = _BY_DESCRIPTION.get(key)  # type: ignore[call-overload]
    if cls is None:
        cls = row_class(tuple(column[0] for column in key))
        if len(_BY_DESCRIPTION) < 1024:
            _BY_DESCRIPTION[key] = cls  # type: ignore[index]
    return list(map(cls, values))  # no comprehension frame (Python 3.11 makes one per call)


# sqlite3 builds a new (equal) description tuple per statement; keyed by it, the row type of
# a result costs one dict lookup on the hot path of every query.
_BY_DESCRIPTION: dict[tuple[Any, ...], type[Row]] = {}


def _rebuild(names: tuple[str, ...], values: tuple[Any, ...]) -> Row:
    return row_class(names)(values)


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    """What :meth:`rxdb.Database.execute` returns.

    :ivar rowcount: rows changed by an INSERT/UPDATE/DELETE (-1 for other statements).
    :ivar last_insert_rowid: the rowid of the last inserted row, or ``None`` if none.
    :ivar rows: rows returned (``RETURNING``, or a query run through ``execute``).
    """

    rowcount: int
    last_insert_rowid: int | None
    rows: list[Row]

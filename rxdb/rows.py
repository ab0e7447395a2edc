"""Result rows: plain tuples that also answer to column names.

A row *is* a tuple, so ``rows == [(1, "a")]`` holds, rows hash and pickle like tuples, and
comparing two results (to decide whether a watch emits) costs what comparing tuples costs.

A result is a :class:`RowList`: it stores each row as a plain tuple and hands it out as a
:class:`Row`. CPython's garbage collector stops tracking a plain tuple of atomic values (every
SQLite value is one) the first time it looks at it, but never a tuple subclass: a million
``Row`` objects would stay tracked, and every full collection anywhere in the process would
walk them all (measured: 100-190 ms each, several during each re-run of a 1e6-row watch).

The young collections that look at a new result's tuples, on the thread that builds it, are
~10 % of fetching it. Building with the collector off and then moving everything past them
(``gc.freeze()``, ``gc.unfreeze()``) saves that, but leaves the rows for the next full
collection, which then walks the whole result at once wherever it runs (300,000 rows, a
loaded machine: one such collection in 15 re-runs, 100 ms, against 65 ms without), and ages
every young object of the program with them. So rows are built with the collector as it is.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar, SupportsIndex, overload

__all__ = (
    "ExecuteResult",
    "FrozenRows",
    "Row",
    "RowList",
    "Rows",
    "release",
    "row_class",
    "same_rows",
)


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
        """Return ``{name: value}`` in column order; of columns sharing a name, the first
        (the one ``row[name]`` returns)."""
        if len(self._index) == len(self._names):
            return dict(zip(self._names, self, strict=True))
        return {name: tuple.__getitem__(self, position) for name, position in self._index.items()}

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


Rows = list[Row]
"""A query's result as rxdb hands it out: one list per emission or fetch."""


@functools.lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """Return the row type for one set of column names (shared by every result with them)."""
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": index})


class RowList(list[Row]):
    """A query's rows: a list that stores plain tuples and hands them out as :class:`Row`.

    Indexing, iteration, ``pop`` and ``sort(key=...)`` see rows; equality, ``in``, ``index``,
    ``count`` and ``sort()`` compare the stored tuples (a row equals the tuple of its values,
    so the outcome is the same). Items added afterwards read back as they were added.
    """

    __slots__ = ("_pure", "_row")

    def __init__(self, row: type[Row] = Row, values: Iterable[Any] = ()) -> None:
        super().__init__(values)
        self._row = row
        self._pure = True  # only the query's own tuples, all of them to be wrapped in _row

    def _wrap(self, item: Any) -> Any:
        return self._row(item) if type(item) is tuple else item

    @overload
    def __getitem__(self, key: SupportsIndex) -> Row: ...
    @overload
    def __getitem__(self, key: slice) -> RowList: ...
    def __getitem__(self, key: SupportsIndex | slice) -> Row | RowList:
        if isinstance(key, slice):
            return self._like(list.__getitem__(self, key))
        return self._wrap(list.__getitem__(self, key))  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Row]:
        return map(self._row if self._pure else self._wrap, list.__iter__(self))

    def __reversed__(self) -> Iterator[Row]:
        return map(self._row if self._pure else self._wrap, list.__reversed__(self))

    def __repr__(self) -> str:
        return f"[{', '.join(map(repr, self))}]"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_list, (self._row._names, list(list.__iter__(self)), self._pure))

    def copy(self) -> RowList:
        return self._like(list.__iter__(self))

    __copy__ = copy

    def pop(self, index: SupportsIndex = -1) -> Row:
        return self._wrap(list.pop(self, index))  # type: ignore[no-any-return]

    def sort(self, *, key: Callable[[Row], Any] | None = None, reverse: bool = False) -> None:
        if key is None:
            list.sort(self, reverse=reverse)
        else:
            list.sort(self, key=lambda item: key(self._wrap(item)), reverse=reverse)

    def __add__(self, other: list[Row]) -> RowList:  # type: ignore[override]
        new = self.copy()
        new.extend(other)
        return new

    def __radd__(self, other: list[Row]) -> RowList:
        new = self._like(other)
        new._pure = False
        list.extend(new, list.__iter__(self))
        return new

    def __mul__(self, times: SupportsIndex) -> RowList:
        return self._like(list.__mul__(self, times))

    __rmul__ = __mul__

    # Whatever is added from outside may not be one of this query's tuples.
    def append(self, item: Row) -> None:
        self._pure = False
        list.append(self, item)

    def insert(self, index: SupportsIndex, item: Row) -> None:
        self._pure = False
        list.insert(self, index, item)

    def extend(self, items: Iterable[Row]) -> None:
        self._pure = False
        list.extend(self, items)

    def __iadd__(self, items: Iterable[Row]) -> RowList:  # type: ignore[override]
        self.extend(items)
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pure = False
        list.__setitem__(self, key, value)

    def _like(self, values: Iterable[Any]) -> RowList:
        new = RowList(self._row, values)
        new._pure = self._pure
        return new


class FrozenRows:
    """A result kept to compare the next one with, and to hand out again.

    Its rows sit in a tuple: once the collector has seen that every item is an untracked
    tuple, it stops tracking the tuple itself, where a list of a million rows would be walked
    by every collection that includes it (~15 ms each). Nobody can change it; a maintained
    watch's result (:meth:`over`) is the exception, a list its patches change in place, each
    of them replacing the object that holds it.
    """

    __slots__ = ("_pure", "_row", "values")

    def __init__(self, rows: list[Row]) -> None:
        self.values: Sequence[Any] = tuple(list.__iter__(rows))
        self._row = rows._row if isinstance(rows, RowList) else None
        self._pure = rows._pure if isinstance(rows, RowList) else False

    def over(self, values: Sequence[Any]) -> FrozenRows:
        """``values`` (plain tuples of this result's columns) as a result of this one's row
        type, not copied: for the result a maintained watch patched from this one, whose
        list the watch's next patch changes in place and replaces this object then."""
        frozen = FrozenRows.__new__(FrozenRows)
        frozen.values = values
        frozen._row = self._row
        frozen._pure = self._pure
        return frozen

    def thaw(self) -> list[Row]:
        """Return a new list of these rows."""
        if self._row is None:
            return list(self.values)
        rows = RowList(self._row, self.values)
        rows._pure = self._pure
        return rows


def same_rows(new: list[Row], old: FrozenRows) -> bool:
    """Tell whether a result equals a frozen one, as ``==`` would, without allocating.

    Compared a slice at a time: a thread running this lets others (the event loop) take the
    GIL between slices, where one ``==`` over a million rows would hold it throughout.
    """
    if len(new) != len(old.values):
        return False
    left, right = list.__iter__(new), iter(old.values)
    for _ in range(0, len(new), _SLICE):
        if not all(map(operator.eq, islice(left, _SLICE), islice(right, _SLICE))):
            return False
    return True


def release(rows: list[Row]) -> None:
    """Empty ``rows`` a slice at a time. Run on a thread, the rows nobody else holds are
    freed there (a million of them: ~50 ms), and the loop can take the GIL between slices."""
    while rows:
        del rows[-_SLICE:]


_SLICE = 20_000  # rows per slice: well under a millisecond of work


def make_rows(description: Sequence[Sequence[Any]] | None, values: Iterable[Any]) -> RowList:
    """Return the rows of a statement, from its cursor's description and its value tuples
    (a list of them, or the cursor itself)."""
    key = description or ()
    cls = _BY_DESCRIPTION.get(key)  # type: ignore[call-overload]
    if cls is None:
        cls = row_class(tuple(column[0] for column in key))
        if len(_BY_DESCRIPTION) < 1024:
            _BY_DESCRIPTION[key] = cls  # type: ignore[index]
    return RowList(cls, values)


# sqlite3 builds a new (equal) description tuple per statement; keyed by it, the row type of
# a result costs one dict lookup on the hot path of every query.
_BY_DESCRIPTION: dict[tuple[Any, ...], type[Row]] = {}


def _rebuild(names: tuple[str, ...], values: tuple[Any, ...]) -> Row:
    return row_class(names)(values)


def _rebuild_list(names: tuple[str, ...], values: list[Any], pure: bool) -> RowList:
    rows = RowList(row_class(names), values)
    rows._pure = pure
    return rows


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

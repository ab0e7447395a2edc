"""What changed between two results of a watch: :class:`RowDiff`, made by :class:`Differ`.

A list widget wants to touch the rows that changed, not redraw them all; it needs each row's
identity for that, so a diff is keyed (a column, or a function of the row). Rows are matched
by key: a key that is new is an insertion, a key that is gone a removal, a key in both whose
row changed an update. For ordered results, ``moved`` names the rows kept in both whose order
changed relative to the others: every kept row outside one longest run of kept rows that
stayed in their old relative order (the fewest rows a list widget must move).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rxdb.errors import DuplicateKeyError, ProgrammingError
from rxdb.rows import Row

__all__ = ("Differ", "Key", "RowDiff", "key_function")

T = TypeVar("T")

Key = str | Callable[[Any], Hashable]
"""What ``diffs(key=...)`` takes: a column name, or a function of a row to a hashable key."""


@dataclass(frozen=True, slots=True)
class RowDiff(Generic[T]):
    """One emission of ``stream.diffs(key)``: how the new result differs from the last one.

    The first emission of a subscription lists every row as inserted (none, for an empty
    result), so a UI can leave its loading state on it.

    :ivar rows: the new result, in its order (the watch's own list: copy it to change it).
    :ivar inserted: rows whose key is new, in result order.
    :ivar updated: ``(old, new)`` for rows whose key stayed and whose values changed, in
        result order.
    :ivar removed: rows of the last result whose key is gone, in their old order.
    :ivar moved: rows (as they are now) whose key stayed but whose position relative to the
        other kept rows changed: the kept rows outside one longest run that kept its order.
        Always empty when rows were only inserted or removed.
    """

    rows: Sequence[T]
    inserted: tuple[T, ...] = ()
    updated: tuple[tuple[T, T], ...] = ()
    removed: tuple[T, ...] = ()
    moved: tuple[T, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything at all changed (an equal result re-emitted gives ``False``)."""
        return bool(self.inserted or self.updated or self.removed or self.moved)


def key_function(key: Key) -> Callable[[Any], Hashable]:
    """Return a function of a row to its key, for a column name or a key function.

    :raises rxdb.ProgrammingError: for a key that is neither (an empty name included).
    """
    if isinstance(key, str):
        if not key:
            raise ProgrammingError("diffs key is a column name or a function, not ''")
        return lambda row: _column(row, key)
    if callable(key):
        return key
    raise ProgrammingError(f"diffs key is a column name or a function of a row, not {key!r}")


def _column(row: Any, name: str) -> Hashable:
    try:
        if isinstance(row, Mapping | Row):
            value: Hashable = row[name]
        else:
            value = getattr(row, name)
    except (KeyError, AttributeError, IndexError, TypeError):
        raise ProgrammingError(
            f"diffs key {name!r} is not a column of the rows; a row is {row!r}"
        ) from None
    return value


class Differ(Generic[T]):
    """Turns each result of one subscription into a :class:`RowDiff` against the result it
    was called with before (none, the first time).

    :raises rxdb.DuplicateKeyError: (from a call) for a result in which two rows have the
        same key; the key is named.
    """

    def __init__(self, key: Key) -> None:
        self._key = key
        self._of = key_function(key)
        self._previous: dict[Hashable, tuple[int, T]] = {}

    def __call__(self, rows: Sequence[T]) -> RowDiff[T]:
        previous = self._previous
        keys = self._keys(rows)
        try:
            current: dict[Hashable, tuple[int, T]] = dict(
                zip(keys, zip(itertools.count(), rows, strict=False), strict=True)
            )
        except TypeError:  # an unhashable key (from a key function)
            bad = next(key for key in keys if not isinstance(key, Hashable))
            raise ProgrammingError(
                f"diffs key {_name(self._key)} gave {bad!r}: a key must be hashable"
            ) from None
        if len(current) != len(rows):
            self._duplicate(keys, rows)
        inserted: list[T] = []
        updated: list[tuple[T, T]] = []
        kept: list[tuple[int, T]] = []  # (old position, new row), in new order
        for row_key, (_, row) in current.items():
            before = previous.get(row_key)
            if before is None:
                inserted.append(row)
                continue
            kept.append((before[0], row))
            if before[1] != row:
                updated.append((before[1], row))
        removed = [row for row_key, (_, row) in previous.items() if row_key not in current]
        self._previous = current
        return RowDiff(rows, tuple(inserted), tuple(updated), tuple(removed), _moved(kept))

    def _keys(self, rows: Sequence[T]) -> list[Hashable]:
        """Each row's key, in order. For a column name and rxdb rows the column's position is
        looked up once, and read from the stored tuples (a name lookup per row costs several
        times more)."""
        if not isinstance(self._key, str) or not rows or not isinstance(rows[0], Row):
            return list(map(self._of, rows))
        first = rows[0]
        position = first._index.get(self._key)
        if position is None:
            _column(first, self._key)  # the error naming the columns, unless it folds
            position = first._lookup_folded(self._key)
        stored: Iterator[tuple[Any, ...]] = list.__iter__(rows)  # type: ignore[arg-type]
        return list(map(operator.itemgetter(position), stored))

    def _duplicate(self, keys: list[Hashable], rows: Sequence[T]) -> None:
        seen: dict[Hashable, T] = {}
        for key, row in zip(keys, rows, strict=True):
            if key in seen:
                raise DuplicateKeyError(
                    f"diffs key {_name(self._key)} is not unique: {key!r} is the key of"
                    f" {seen[key]!r} and of {row!r}"
                )
            seen[key] = row


def _name(key: Key) -> str:
    return repr(key) if isinstance(key, str) else getattr(key, "__name__", repr(key))


def _moved(kept: list[tuple[int, T]]) -> tuple[T, ...]:
    """The rows of ``kept`` (old position, row; in new order) outside one longest run whose
    old positions increase: those stayed in order, the others moved."""
    if all(a[0] < b[0] for a, b in itertools.pairwise(kept)):
        return ()  # nothing moved: the usual case, in one pass
    tails: list[int] = []  # tails[n]: the smallest old position ending a run of length n + 1
    ends: list[int] = []  # index in kept of that run's last row
    before: list[int] = [-1] * len(kept)  # index in kept of the row before, in its run
    for index, (old, _) in enumerate(kept):
        length = bisect.bisect_left(tails, old)
        if length == len(tails):
            tails.append(old)
            ends.append(index)
        else:
            tails[length] = old
            ends[length] = index
        before[index] = ends[length - 1] if length else -1
    stayed: set[int] = set()
    index = ends[-1] if ends else -1
    while index != -1:
        stayed.add(index)
        index = before[index]
    return tuple(row for index, (_, row) in enumerate(kept) if index not in stayed)

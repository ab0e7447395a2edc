"""Patching a maintained result with the rows one commit changed: :class:`MaintainedRows`.

A query of the shape :func:`parser.maintainable.maintainable` accepts returns one row per
table row, in a total order (its ``ORDER BY`` ended by the rowid). After a commit that
changed the rows with rowids ``R``, re-reading ``R`` through the query (the rows of ``R``
that still match its ``WHERE``, with their new values) and replacing the old rows of ``R``
with them, each at its place in the order, gives exactly what the whole query returns at
that commit. The order is SQLite's: values of different storage classes sort NULL <
numbers (integers and reals compared by value) < text (BINARY: UTF-8 bytes, the same order
as code points) < blobs (bytes), each term ascending or descending, NULLs first or last.

Finding an old row by rowid uses a dictionary built on the first patch (the order need not
lead with the rowid), kept up to date afterwards; placing a row is a binary search.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from parser.maintainable import OrderTerm

__all__ = ("MaintainedRows", "OutOfOrder", "compare_values")

Values = tuple[Any, ...]


def _rank(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int | float):
        return 1
    if isinstance(value, str):
        return 2
    return 3


def compare_values(left: object, right: object) -> int:
    """Compare two SQLite values as ``ORDER BY`` does with the BINARY collation: -1, 0, 1."""
    left_rank, right_rank = _rank(left), _rank(right)
    if left_rank != right_rank:
        return -1 if left_rank < right_rank else 1
    if left_rank == 0 or left == right:
        return 0
    return -1 if left < right else 1  # type: ignore[operator]


class OutOfOrder(Exception):
    """Raised when a row to remove is not where the order puts it: the result was not in
    the order the patch assumes. The caller runs the whole query instead."""


def _same(left: Values | None, right: Values | None) -> bool:
    """Equal and of the same types (``1 == 1.0``, but a full run would return the other)."""
    if left is None or right is None:
        return left is right
    return left == right and all(map(_same_type, left, right))


def _same_type(left: object, right: object) -> bool:
    return type(left) is type(right)


def _comparator(order: Sequence[OrderTerm]) -> Callable[[Values, Values], int]:
    terms = tuple((t.position, -1 if t.descending else 1, t.nulls_first) for t in order)

    def compare(left: Values, right: Values) -> int:
        for position, sign, nulls_first in terms:
            a, b = left[position], right[position]
            if a is None or b is None:
                if a is None and b is None:
                    continue
                return (-1 if a is None else 1) * (1 if nulls_first else -1)
            outcome = compare_values(a, b)
            if outcome:
                return outcome * sign
        return 0

    return compare


class MaintainedRows:
    """A maintained query's last result, as plain tuples in the query's total order.

    Not thread-safe: one owner at a time (the watch, on its loop, or a thread it hands the
    work to).
    """

    __slots__ = ("_by_rowid", "_key", "_rowid", "rows")

    def __init__(self, rows: Sequence[Values], order: Sequence[OrderTerm], rowid: int) -> None:
        self.rows: Sequence[Values] = rows
        self._rowid = rowid
        self._key = functools.cmp_to_key(_comparator(order))
        self._by_rowid: dict[Any, Values] | None = None

    def patch(self, changed: Iterable[Any], fresh: Iterable[Values]) -> list[Values] | None:
        """Apply one commit: ``changed`` are the rowids it changed (inserted, updated or
        deleted), ``fresh`` the rows of those the query returns now. Return the new result
        (a new list; :attr:`rows` becomes it), or ``None`` if the result did not change.

        :raises OutOfOrder: if :attr:`rows` was not in the query's order (then this object
            is left as it was, and the caller runs the whole query).
        """
        by_rowid = self._by_rowid
        if by_rowid is None:
            rowid = self._rowid
            by_rowid = self._by_rowid = {row[rowid]: row for row in self.rows}
        fresh_by_rowid = {row[self._rowid]: row for row in fresh}
        gone = []
        for rowid in changed:
            old = by_rowid.get(rowid)
            if old is not None and not _same(fresh_by_rowid.get(rowid), old):
                gone.append(old)
        added = [
            row for rowid, row in fresh_by_rowid.items() if not _same(by_rowid.get(rowid), row)
        ]
        if not gone and not added:
            return None
        key = self._key
        rows = list(self.rows)
        for old in gone:
            position = bisect_left(rows, key(old), key=key)
            if position == len(rows) or rows[position] is not old:
                self._by_rowid = None  # rebuilt from whatever rows the caller sets next
                raise OutOfOrder(f"row {old[self._rowid]!r} is not where the order puts it")
            del rows[position]
            del by_rowid[old[self._rowid]]
        for row in added:
            rows.insert(bisect_left(rows, key(row), key=key), row)
            by_rowid[row[self._rowid]] = row
        self.rows = rows
        return rows

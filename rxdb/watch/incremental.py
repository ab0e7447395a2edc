"""Patching a maintained result with the rows one commit changed: :class:`MaintainedRows`.

A query of the shape :func:`parser.maintainable.maintainable` accepts returns one row per
table row, in a total order (its ``ORDER BY`` ended by the rowid). After a commit that
changed the rows with rowids ``R``, re-reading ``R`` through the query (the rows of ``R``
that still match its ``WHERE``, with their new values) and replacing the old rows of ``R``
with them, each at its place in the order, gives exactly what the whole query returns at
that commit. The order is SQLite's: values of different storage classes sort NULL <
numbers (integers and reals compared by value) < text (BINARY: UTF-8 bytes, the same order
as code points) < blobs (bytes), each term ascending or descending, NULLs first or last.

A query that does not select its rowid or an ``ORDER BY`` column is maintained through a
rewrite that selects them after the user's columns (hidden columns): the full rows, with
them, order the result; the rows handed out are their leading user columns, kept in a
parallel list patched at the same positions.

Finding an old row by rowid uses a dictionary built on the first patch (the order need not
lead with the rowid), kept up to date afterwards; placing a row is a binary search. The rows
are copied into lists of their own at the first patch and patched in place from then on: a
patch costs the loop a search and a move of pointers, not a copy of the result (what the
subscribers get is a copy, made once per emission by the watch).
"""

from __future__ import annotations

import functools
import logging
import operator
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rxdb._types import Params
from rxdb.engines.seam import RowMaintenance
from rxdb.rows import RowList, row_class
from rxdb.updates import NotifyTablesUpdated

if TYPE_CHECKING:
    from parser.maintainable import Maintainable, OrderTerm

__all__ = ("MaintainedRows", "Maintenance", "OutOfOrder", "compare_values")

LOG = logging.getLogger("rxdb.watch")
Mark = tuple[int, int]

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


def _key(order: Sequence[OrderTerm], rowid: int) -> Callable[[Values], Any]:
    """A sort key for rows in ``order``. Ordered by the rowid alone (the common
    chronological list), a row's key is its rowid, an integer (negated when descending):
    compared natively, much faster than through the comparator."""
    if all(term.position == rowid for term in order):
        if order[0].descending:
            return lambda row: -row[rowid]
        return operator.itemgetter(rowid)
    return functools.cmp_to_key(_comparator(order))


class MaintainedRows:
    """A maintained query's last result, as plain tuples in the query's total order.

    :attr:`rows` are the rows handed out; ``full`` (if the query has hidden columns) the
    same rows with them, at the same positions, of which ``rows`` hold the first
    ``visible`` columns. Both are the caller's until the first patch, which copies them;
    from then on they are this object's lists, which each patch changes in place.

    Not thread-safe: one owner at a time (the watch, on its loop, or a thread it hands the
    work to).
    """

    __slots__ = ("_by_rowid", "_full", "_key", "_owned", "_rowid", "_visible", "rows")

    def __init__(
        self,
        rows: Sequence[Values],
        order: Sequence[OrderTerm],
        rowid: int,
        full: Sequence[Values] | None = None,
        visible: int = 0,
    ) -> None:
        self.rows: Sequence[Values] = rows
        self._full = full
        self._visible = visible
        self._rowid = rowid
        self._key = _key(order, rowid)
        self._by_rowid: dict[Any, Values] | None = None
        self._owned: tuple[list[Values], list[Values]] | None = None  # see _lists

    def patch(self, changed: Iterable[Any], fresh: Iterable[Values]) -> bool:
        """Apply one commit: ``changed`` are the rowids it changed (inserted, updated or
        deleted), ``fresh`` the rows of those the query returns now (with its hidden
        columns). Return whether the result changed; if it did, :attr:`rows` is the new
        result, a list the next patch changes (copy it to hand it out).

        :raises OutOfOrder: if :attr:`rows` was not in the query's order (then this object
            is left as it was, and the caller runs the whole query).
        """
        source = self.rows if self._full is None else self._full
        by_rowid = self._by_rowid
        if by_rowid is None:
            rowid = self._rowid
            by_rowid = self._by_rowid = {row[rowid]: row for row in source}
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
            return False
        key = self._key
        # Every old row found before any is moved: a result out of order is left as it was.
        positions = []
        for old in gone:
            position = bisect_left(source, key(old), key=key)
            if position == len(source) or source[position] is not old:
                self._by_rowid = None  # rebuilt from whatever rows the caller sets next
                raise OutOfOrder(f"row {old[self._rowid]!r} is not where the order puts it")
            positions.append(position)
        full, rows = self._lists()
        for position in sorted(positions, reverse=True):
            del by_rowid[full[position][self._rowid]]
            del full[position]
            if rows is not full:
                del rows[position]
        visible = self._visible
        for row in added:
            place = key(row)
            if full and key(full[-1]) < place:
                position = len(full)  # after the last row: where new rows mostly go
            else:
                position = bisect_left(full, place, key=key)
            full.insert(position, row)
            if rows is not full:
                rows.insert(position, row[:visible])
            by_rowid[row[self._rowid]] = row
        return True

    def _lists(self) -> tuple[list[Values], list[Values]]:
        """The lists to patch in place (full rows, visible rows; one list if no column is
        hidden): this object's own, copied from the caller's at the first patch."""
        owned = self._owned
        if owned is None:
            rows = list(self.rows)
            full = rows if self._full is None else list(self._full)
            self.rows = rows
            if self._full is not None:
                self._full = full
            owned = self._owned = (full, rows)
        return owned


class Maintenance:
    """One watch's side of a maintained query (on the watch's loop): the shape the engine
    accepted, the last result as :class:`MaintainedRows`, and the mark of the commit that
    result reflects, which decides whether a commit's patch applies to it.

    A run's result reflects a known commit only if the table's mark did not move while the
    run was out (:meth:`run_starts`, :meth:`run_ended`): then the result includes every
    patch up to that mark, and at most the next one (committed, not yet counted), which
    applied again changes nothing. A patch applies to a result of an earlier commit of the
    same epoch (a commit in between that the bus did not bring changed no column the watch
    reads); anything else makes the watch re-run.
    """

    __slots__ = (
        "_base",
        "_before",
        "_engine",
        "_full",
        "_params",
        "_rows",
        "_sql",
        "key",
        "patched",
        "shape",
    )

    def __init__(self, engine: RowMaintenance, sql: str, params: Params) -> None:
        self._engine = engine
        self._sql = sql
        self._params = params
        self.key: Hashable = object()
        self.shape: Maintainable | None = None
        self._rows: MaintainedRows | None = None
        self._base: Mark | None = None
        self._before: Mark | None = None
        self._full: tuple[Maintainable, list[Values]] | None = None  # the last run's rows
        self.patched = 0

    @property
    def sql(self) -> str:
        """What a run executes: the query with its rowid tie-break once maintained."""
        return self._sql if self.shape is None else self.shape.sql

    def submitted(self, done: Callable[[Any], None]) -> Callable[[Any], None]:
        """``done`` for a run of :attr:`sql`: handed what the user's query returns (without
        the hidden columns, kept to patch from)."""
        shape = self.shape
        if shape is None or not self._hides(shape):
            return done
        return functools.partial(self._strip, shape, done)

    def _strip(self, shape: Maintainable, done: Callable[[Any], None], result: Any) -> None:
        self._full = None
        if isinstance(result, list):
            full = list(list.__iter__(result))
            self._full = (shape, full)
            visible = shape.visible
            names = result._row._names[:visible] if isinstance(result, RowList) else None
            rows = [row[:visible] for row in full]
            result = rows if names is None else RowList(row_class(names), rows)
        done(result)

    @staticmethod
    def _hides(shape: Maintainable) -> bool:
        return any(term.position >= shape.visible for term in shape.order)

    async def start(self) -> None:
        """Ask the engine to maintain the query (again, after a schema change)."""
        self._rows = None
        try:
            self.shape = await self._engine.maintain(self.key, self._sql, self._params)
        except Exception:  # the database is closing, or another loop's: plain re-runs
            LOG.debug("a watch is not maintained", exc_info=True)
            self.shape = None

    def stop(self) -> None:
        self._engine.stop_maintaining(self.key)
        self.shape = None
        self._rows = None

    def _mark(self) -> Mark | None:
        return None if self.shape is None else self._engine.maintenance_mark(self.shape.table)

    def run_starts(self) -> None:
        self._before = self._mark()

    def run_ended(self, values: Sequence[Values]) -> None:
        """The run's result (or the equal one kept) is ``values``."""
        full, self._full = self._full, None
        if self._before is None:
            # No mark at the start (:meth:`forget`: an eager result; or nothing to maintain):
            # no base, whatever the mark now, so the engine is not asked for one.
            self._rows = None
            return
        after, shape = self._mark(), self.shape
        if shape is None or after is None or after != self._before:
            self._rows = None
            return
        if not self._hides(shape):
            self._rows = MaintainedRows(values, shape.order, shape.rowid)
        elif full is not None and full[0] is shape and len(full[1]) == len(values):
            self._rows = MaintainedRows(values, shape.order, shape.rowid, full[1], shape.visible)
        else:
            self._rows = None
            return
        self._base = after

    def forget(self) -> None:
        """The next result is not a base for patches (until a run says otherwise)."""
        self._rows = None
        self._before = None
        self._full = None

    def apply(self, message: NotifyTablesUpdated) -> Sequence[Values] | bool:
        """Patch the last result with ``message``'s patch: the new rows (patched in place by
        the next patch: copy them to hand them out); ``True`` if the result is the same
        (the patch changed nothing, or was in it already); ``False`` if the watch must
        re-run."""
        rows, base, patches = self._rows, self._base, message.patches
        if rows is None or base is None or patches is None or message.everything:
            return False
        patch = patches.get(self.key)
        # A sequence number skipped is a commit the bus did not bring: one that changed only
        # columns this watch does not read (rxdb.updates.Reads), which moved nothing here.
        if patch is None or patch.epoch != base[0]:
            return False
        if patch.sequence <= base[1]:
            return True
        try:
            changed = rows.patch(patch.changed, patch.rows)
        except OutOfOrder:
            LOG.warning("a maintained watch's result was out of order; it re-runs")
            self._rows = None
            return False
        self._base = (patch.epoch, patch.sequence)
        self.patched += 1
        return rows.rows if changed else True

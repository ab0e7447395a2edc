"""What a commit changed, as the bus carries it.

These types know nothing of SQLite or Rx, so that the bus, the engine and (later) the
cross-process hub can all speak them.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = (
    "NotifyTablesUpdated",
    "Reads",
    "RowPatch",
    "TableUpdate",
    "UpdateKind",
    "columns_read",
    "merge_updates",
    "union_reads",
)


class UpdateKind(enum.Enum):
    """The kind of change made to a table's rows."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class TableUpdate:
    """One table changed in one way.

    ``kind`` is ``None`` when the kind is unknown (for example a change announced with
    :meth:`rxdb.Database.notify_updates` by table name only); an unknown kind matches every
    kind filter, so announcing less never hides a change.

    ``columns`` names (folded) every column an ``UPDATE`` may have assigned, the writes of its
    triggers and foreign-key actions included; ``None`` means any column may have changed, and
    is what every other kind, and every writer that cannot tell, announces.
    """

    table: str
    kind: UpdateKind | None = None
    columns: frozenset[str] | None = None

    def matches(self, kinds: frozenset[UpdateKind] | None) -> bool:
        return kinds is None or self.kind is None or self.kind in kinds

    def touches(self, columns: frozenset[str] | None) -> bool:
        """Tell whether this change can move a result that reads ``columns`` of the table
        (``None``: any of them). Only an ``UPDATE`` with known columns can leave it alone:
        an insert or a delete adds or removes rows, whatever columns are read."""
        return (
            columns is None
            or self.columns is None
            or self.kind is not UpdateKind.UPDATE
            or not self.columns.isdisjoint(columns)
        )


def merge_updates(updates: Iterable[TableUpdate]) -> frozenset[TableUpdate]:
    """One update per (table, kind), its columns the union of theirs (``None`` wins), so a
    transaction that updates one table in several statements announces it once."""
    merged: dict[tuple[str, UpdateKind | None], frozenset[str] | None] = {}
    for update in updates:
        key = (update.table, update.kind)
        if key not in merged:
            merged[key] = update.columns
        else:
            known = merged[key]
            if known is not None:
                merged[key] = None if update.columns is None else known | update.columns
    return frozenset(TableUpdate(table, kind, columns) for (table, kind), columns in merged.items())


class Reads(frozenset[str]):
    """The tables a watch reads, and of some of them the columns.

    A set of table names like any other read set, so that whatever only cares about tables
    (the bus index, diagnostics, older callers) takes it unchanged. ``columns`` maps a table
    to the columns (folded) whose changes can move the result; a table it does not map may
    depend on every column.
    """

    __slots__ = ("columns",)
    columns: Mapping[str, frozenset[str]]

    def __new__(
        cls, tables: Iterable[str] = (), columns: Mapping[str, frozenset[str]] | None = None
    ) -> Reads:
        self = super().__new__(cls, tables)
        self.columns = {} if columns is None else {t: c for t, c in columns.items() if t in self}
        return self

    def columns_of(self, table: str) -> frozenset[str] | None:
        """The columns of ``table`` a result depends on; ``None``: maybe any."""
        return self.columns.get(table)

    def __repr__(self) -> str:
        return f"Reads({sorted(self)!r}, columns={dict(sorted(self.columns.items()))!r})"


def union_reads(read_sets: Iterable[frozenset[str]]) -> Reads:
    """What several read sets read together (``db.watch_many``): a table any of them reads
    with unknown columns has unknown columns; otherwise the union of their columns."""
    sets = tuple(read_sets)
    tables = frozenset[str]().union(*sets)
    columns: dict[str, frozenset[str]] = {}
    for table in tables:
        read = [columns_read(one, table) for one in sets]
        if None not in read:
            columns[table] = frozenset[str]().union(*(c for c in read if c is not None))
    return Reads(tables, columns)


def columns_read(tables: frozenset[str], table: str) -> frozenset[str] | None:
    """What ``tables`` (a read set) reads of ``table``: no column if it does not read the
    table, its known columns if it is :class:`Reads`, else ``None`` (every column)."""
    if table not in tables:
        return frozenset()
    return tables.columns_of(table) if isinstance(tables, Reads) else None


class RowPatch(NamedTuple):
    """What one commit did to one maintained query (:mod:`rxdb.watch.incremental`).

    :ivar changed: the rowids the commit changed in the query's table.
    :ivar rows: those of them the query returns after the commit, read at exactly that
        commit, in the query's order.
    :ivar epoch: moves whenever the engine saw a commit it has no rowids for (another
        connection's): patches of different epochs do not follow each other.
    :ivar sequence: counts the commits to the table within an epoch: a patch applies to a
        result of an earlier one only.
    """

    changed: frozenset[Any]
    rows: list[tuple[Any, ...]]
    epoch: int
    sequence: int


_table_of = operator.attrgetter("table")


@dataclass(frozen=True, slots=True)
class NotifyTablesUpdated:
    """The bus message: one committed transaction (or one announcement) on one database.

    ``everything`` means "anything may have changed" (a schema change, a foreign writer, a
    resync); then ``updates`` may be empty and every subscriber of ``database`` is told.
    ``origin`` names the writer that produced the message and ``sequence`` counts that
    origin's messages from 1, so a receiver can tell a gap from a duplicate. ``patches``, by
    maintained query, says which rows the commit changed and what they are now (this
    process's own commits only; never carried to other processes).
    """

    database: str
    origin: str
    sequence: int
    updates: frozenset[TableUpdate] = frozenset()
    everything: bool = False
    wal_changes: tuple[int, int] | None = None
    patches: Mapping[Hashable, RowPatch] | None = field(default=None, repr=False, compare=False)
    tables: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # map and attrgetter, not a generator: no Python frame per update, on the road from
        # a commit to its emissions (built on the writer's thread right after the commit).
        object.__setattr__(self, "tables", frozenset(map(_table_of, self.updates)))

    def affects(
        self, tables: Iterable[str] | None, kinds: frozenset[UpdateKind] | None = None
    ) -> bool:
        """Tell whether a reader of ``tables`` (``None``: all tables) must look again; with
        :class:`Reads`, an update of columns it does not read of a table leaves it alone."""
        if self.everything:
            return True
        if tables is None:
            return any(u.matches(kinds) for u in self.updates)
        if isinstance(tables, Reads):
            return any(
                u.table in tables and u.matches(kinds) and u.touches(tables.columns_of(u.table))
                for u in self.updates
            )
        wanted = tables if isinstance(tables, frozenset | set) else frozenset(tables)
        return any(u.table in wanted and u.matches(kinds) for u in self.updates)

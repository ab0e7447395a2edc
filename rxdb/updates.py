"""What a commit changed, as the bus carries it.

These types know nothing of SQLite or Rx, so that the bus, the engine and (later) the
cross-process hub can all speak them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ("NotifyTablesUpdated", "TableUpdate", "UpdateKind")


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
    """

    table: str
    kind: UpdateKind | None = None

    def matches(self, kinds: frozenset[UpdateKind] | None) -> bool:
        return kinds is None or self.kind is None or self.kind in kinds


@dataclass(frozen=True, slots=True)
class NotifyTablesUpdated:
    """The bus message: one committed transaction (or one announcement) on one database.

    ``everything`` means "anything may have changed" (a schema change, a foreign writer, a
    resync); then ``updates`` may be empty and every subscriber of ``database`` is told.
    ``origin`` names the writer that produced the message and ``sequence`` counts that
    origin's messages from 1, so a receiver can tell a gap from a duplicate.
    """

    database: str
    origin: str
    sequence: int
    updates: frozenset[TableUpdate] = frozenset()
    everything: bool = False
    wal_changes: tuple[int, int] | None = None
    tables: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", frozenset(u.table for u in self.updates))

    def affects(
        self, tables: Iterable[str] | None, kinds: frozenset[UpdateKind] | None = None
    ) -> bool:
        """Tell whether a reader of ``tables`` (``None``: all tables) must look again."""
        if self.everything:
            return True
        if tables is None:
            return any(u.matches(kinds) for u in self.updates)
        wanted = tables if isinstance(tables, frozenset | set) else frozenset(tables)
        return any(u.table in wanted and u.matches(kinds) for u in self.updates)

"""Write capture: which tables a statement may write, and which commits really wrote them.

SQLite's authorizer reports, while a statement is prepared, every table it may write —
including trigger bodies, foreign-key cascades, REPLACE's implicit deletes and INSTEAD OF
triggers — plus DDL and transaction control. The authorizer only fires on prepare, and the
writer keeps its statements prepared (the sqlite3 module's statement cache: preparing an
INSERT with its triggers every time cost ~20 µs of a ~50 µs write in the peer benchmark),
so what a statement may do is kept per SQL text, from its last prepare. That is never stale:
whatever would change what a statement may do makes SQLite prepare it again before it runs,
and report it again — a schema change by any connection (a new trigger, a dropped table, the
capture's own TEMP triggers), a pragma that changes the code it compiles to
(``foreign_keys``, ``recursive_triggers``), a new authorizer. A text the capture does not
know is made to be prepared afresh (see :meth:`WriteCapture.start`).

An ``UPDATE`` is announced with the columns it assigns (SQLite reports each, for the
statement, its triggers and its foreign-key actions), so that a watch reading none of them can
stay put; an assignment to the rowid (reported as ``ROWID`` whichever alias was written; an
``INTEGER PRIMARY KEY`` is reported by its own name) announces ``None`` (any column). What else
an UPDATE can move (generated columns, rows deleted by a ``REPLACE`` conflict) is the read
side's to account for: see :mod:`rxdb.engines.sqlite.read_columns`.

A ``PRAGMA name = value`` that changes the file for every connection (``user_version``...)
changes no row, yet moves what ``pragma_<name>`` reads: it is announced as a change to the
table ``pragma_<name>``, the name under which ``parser.dependencies`` lets a watch depend on it.

Effects are buffered per transaction (one level per savepoint) and handed on only when the
outermost transaction commits; a rollback drops them. So are the rowids that
:mod:`rxdb.engines.sqlite.changed_rows` captures for the tables in
:attr:`TransactionBuffer.row_tables`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from parser import fold_name
from parser.pragmas import SETTING_PRAGMAS
from rxdb.updates import TableUpdate, UpdateKind, merge_updates

__all__ = (
    "BufferCallback",
    "CommitCallback",
    "StatementEffects",
    "TransactionBuffer",
    "WriteCapture",
)

CommitCallback = Callable[[frozenset[TableUpdate], bool, tuple[int, int] | None], None]
"""Called with (updates, everything, wal_changes) once per committed transaction that changed
something; ``wal_changes`` as in :class:`rxdb.updates.NotifyTablesUpdated`."""
BufferCallback = Callable[[frozenset[TableUpdate], bool], None]
ChangedRowids = Mapping[str, frozenset[Any] | None]
"""Per table of :attr:`TransactionBuffer.row_tables` that a commit wrote, the rowids it
changed, or ``None`` when they are not known (too many, or a REPLACE that may have deleted
rows no trigger reported)."""

ROWIDS_LIMIT = 500
"""More rowids than this changed in one table by one transaction are not kept (``None``):
re-reading them would cost about what re-running a query does."""

_ROW_KINDS = {sqlite3.SQLITE_INSERT: UpdateKind.INSERT, sqlite3.SQLITE_DELETE: UpdateKind.DELETE}
# What SQLite reports for an assignment to the rowid, whichever alias; the other aliases too,
# in case a version reports the name written.
_ROWID_NAMES = frozenset({"rowid", "oid", "_rowid_"})
_SCHEMA_CODES = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_INDEX",
        "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW",
        "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW", "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE",
        "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_TABLE", "SQLITE_DROP_TEMP_TRIGGER",
        "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER", "SQLITE_DROP_VIEW", "SQLITE_ALTER_TABLE",
        "SQLITE_CREATE_VTABLE", "SQLITE_DROP_VTABLE", "SQLITE_ATTACH", "SQLITE_DETACH",
    )
)  # fmt: skip


def table_names(schema: str | None, table: str) -> tuple[str, ...]:
    """Name a written table the way ``parser.read_tables`` names a read one.

    A table outside ``main`` is also announced under its bare name, because an unqualified
    name in a query resolves through temp, main and attached schemas in turn.
    """
    bare = fold_name(table)
    if schema is None or fold_name(schema) == "main":
        return (bare,)
    return (f"{fold_name(schema)}.{bare}", bare)


class StatementEffects(NamedTuple):
    """What preparing one statement told the authorizer."""

    writes: frozenset[TableUpdate] = frozenset()
    schema: bool = False
    transaction: str | None = None  # BEGIN / COMMIT / ROLLBACK
    savepoint: tuple[str, str] | None = None  # (BEGIN | RELEASE | ROLLBACK, name)
    settings: frozenset[TableUpdate] = frozenset()  # pragma_<name> of a PRAGMA name = value
    diverges: bool = False  # see WriteCapture.diverged


_Event = tuple[int, str | None, str | None, str | None]
"""What the authorizer reported: (code, arg1, arg2, schema); the trigger does not matter."""

_RECORDED = frozenset(
    {
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_SAVEPOINT,
        sqlite3.SQLITE_PRAGMA,
        *_SCHEMA_CODES,
    }
)
"""The codes :func:`effects_of` can record something for; the others (reads, functions...)
are most of what SQLite reports, and are dropped at once."""

_NOTHING = StatementEffects()

_DIVERGING = frozenset(
    {sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_ATTACH}
)
"""A TEMP table or view, which a query's unqualified name finds before ``main``'s (a TEMP
trigger or index changes no query's rows), and an attached database."""
_CREATING = frozenset(
    {sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_VTABLE}
)
"""Reported with the schema ``temp`` for ``CREATE TABLE temp.t`` (the TEMP codes are for the
``TEMP`` keyword only), and for every virtual table."""

NEUTRAL_PRAGMAS = frozenset(
    {
        # Writes, durability, locking, memory: no query's rows.
        "busy_timeout", "cache_size", "cache_spill", "defer_foreign_keys", "foreign_keys",
        "journal_mode", "journal_size_limit", "mmap_size", "query_only", "recursive_triggers",
        "secure_delete", "synchronous", "wal_autocheckpoint", "wal_checkpoint",
        # The file's own, which every connection sees once committed.
        *SETTING_PRAGMAS,
        # Questions whose argument is no setting (PRAGMA table_info(t)).
        "foreign_key_check", "foreign_key_list", "index_info", "index_list", "index_xinfo",
        "integrity_check", "quick_check", "table_info", "table_xinfo",
    }
)  # fmt: skip
"""Pragmas whose ``PRAGMA name = value`` (or ``name(argument)``) on the writer leaves what a
query returns there the same as on a fresh connection of the file; any other one given a
value (``case_sensitive_like``, ``reverse_unordered_selects``, ``temp_store``...) makes
:attr:`WriteCapture.diverged` true."""

MEMO_LIMIT = 512
"""Distinct event sequences, and distinct statement texts, whose effects :class:`WriteCapture`
keeps; past that it starts afresh (a workload writes through few distinct statements)."""


class _Recorder:
    """What one statement's events record, built up event by event (a plain class, not a
    dataclass: defining one costs the import of every program ~0.4 ms)."""

    __slots__ = ("diverges", "savepoint", "schema", "settings", "transaction", "updated", "writes")

    def __init__(self) -> None:
        self.writes: set[TableUpdate] = set()
        # Table -> columns an UPDATE assigns; None: any column.
        self.updated: dict[str, set[str] | None] = {}
        self.schema = False
        self.transaction: str | None = None
        self.savepoint: tuple[str, str] | None = None
        self.settings: set[TableUpdate] = set()
        self.diverges = False

    def record(self, code: int, arg1: str | None, arg2: str | None, schema: str | None) -> None:
        kind = _ROW_KINDS.get(code)
        if kind is not None and arg1 is not None:
            self.writes.update(TableUpdate(name, kind) for name in table_names(schema, arg1))
        elif code == sqlite3.SQLITE_UPDATE and arg1 is not None:
            for name in table_names(schema, arg1):
                self.update(name, arg2)
        elif code in _SCHEMA_CODES:
            self.schema = True
            temp = schema is not None and fold_name(schema) == "temp"
            if code in _DIVERGING or (temp and code in _CREATING):
                self.diverges = True
        elif code == sqlite3.SQLITE_TRANSACTION:
            self.transaction = arg1
        elif code == sqlite3.SQLITE_SAVEPOINT and arg1 is not None and arg2 is not None:
            self.savepoint = (arg1, fold_name(arg2))
        elif code == sqlite3.SQLITE_PRAGMA and arg1 is not None and arg2 is not None:
            # arg2 is the value: "PRAGMA user_version" alone reads it.
            pragma = fold_name(arg1)
            if pragma not in NEUTRAL_PRAGMAS:
                self.diverges = True
            if pragma == "schema_version":
                self.schema = True  # every connection re-reads the schema
            elif pragma in SETTING_PRAGMAS:
                names = table_names(schema, f"pragma_{pragma}")
                self.settings.update(TableUpdate(name, UpdateKind.UPDATE) for name in names)

    def update(self, table: str, column: str | None) -> None:
        folded = None if not column else fold_name(column)
        known = self.updated.get(table, set())
        if known is None:
            return
        if folded is None or folded in _ROWID_NAMES:
            self.updated[table] = None
        else:
            known.add(folded)
            self.updated[table] = known

    def build(self) -> StatementEffects:
        writes = self.writes
        if self.updated:
            writes = writes | {
                TableUpdate(
                    table, UpdateKind.UPDATE, None if columns is None else frozenset(columns)
                )
                for table, columns in self.updated.items()
            }
        return StatementEffects(
            frozenset(writes),
            self.schema,
            self.transaction,
            self.savepoint,
            frozenset(self.settings),
            self.diverges,
        )


def effects_of(events: Iterable[_Event]) -> StatementEffects:
    """What a statement whose preparation reported ``events`` may do."""
    recorder = _Recorder()
    for event in events:
        recorder.record(*event)
    return recorder.build()


class WriteCapture:
    """The authorizer side: install :meth:`authorize` on the connection and bracket each
    statement with :meth:`start` and :meth:`finish`.

    The authorizer runs for every action SQLite checks, so it only keeps the events that
    record something; :meth:`finish` maps them to effects through a memo, since the same
    statement reports the same events each time (the effects depend on nothing else), and
    keeps them under the statement's text for its runs from the statement cache, which
    report nothing (see the module's docstring).

    What the authorizer reports outside a :meth:`start` ... :meth:`finish` bracket is
    dropped: it is rxdb's own statement run with the plain ``sqlite3.Connection.execute``
    (a watch's query re-run on the writer, a capture trigger), prepared with this authorizer
    in place, which records nothing and must not disturb the statement bracketed next."""

    __slots__ = ("_events", "_memo", "_open", "_texts", "diverged")

    def __init__(self) -> None:
        self._events: list[_Event] = []
        self._memo: dict[tuple[_Event, ...], StatementEffects] = {}
        self._texts: dict[str, StatementEffects] = {}
        self._open = False  # between start() and finish()
        self.diverged = False
        """Whether a bracketed statement may have made the connection see something else
        than a fresh connection to the same file would: a TEMP table or view (which an
        unqualified name finds before ``main``'s), an attached database, a pragma not in
        :data:`NEUTRAL_PRAGMAS` given a value. Once true, it stays true (dropping the object
        or resetting the pragma is not followed): the connection's reads of committed state
        go to a connection of their own (:meth:`TrackedConnection.fetch_committed
        <rxdb.engines.sqlite.connections.TrackedConnection.fetch_committed>`)."""

    def authorize(
        self,
        code: int,
        arg1: str | None,
        arg2: str | None,
        schema: str | None,
        _trigger: str | None,
    ) -> int:
        if self._open and code in _RECORDED:
            self._events.append((code, arg1, arg2, schema))
        return sqlite3.SQLITE_OK

    def start(self, sql: str) -> bool:
        """Start capturing for a statement of text ``sql``; ``False`` if what it may do is
        not known from an earlier prepare of that text (a statement of it may still be
        cached, prepared by rxdb's own untracked reads, say): the caller must then have it
        prepared afresh (installing an authorizer expires every prepared statement)."""
        self._events.clear()
        self._open = True
        return sql in self._texts

    def finish(self, sql: str) -> StatementEffects:
        """Return what the statement of text ``sql`` just run may do: what its prepare
        reported, or, run from the statement cache without a prepare (nothing reported),
        what its last prepare did. (A prepare that reports nothing after one that reported
        writes is taken for a cached run: a commit is announced too widely, never missed.)"""
        self._open = False
        effects = self._prepared() if self._events else self._texts.get(sql, _NOTHING)
        if effects.diverges:
            self.diverged = True
        texts = self._texts
        if sql not in texts and len(texts) >= MEMO_LIMIT:
            texts.clear()  # the next statement of each text is prepared afresh (start)
        texts[sql] = effects
        return effects

    def _prepared(self) -> StatementEffects:
        """What the events reported since :meth:`start` say, through the memo."""
        events = tuple(self._events)
        effects = self._memo.get(events)
        if effects is None:
            effects = effects_of(events)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[events] = effects
        return effects


class _Level:
    """One level of :class:`TransactionBuffer`: the transaction, or a savepoint in it (a
    plain class, as :class:`_Recorder`)."""

    __slots__ = ("name", "rowids", "schema", "updates")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.updates: set[TableUpdate] = set()
        self.schema = False
        self.rowids: dict[str, set[Any] | None] = {}

    def absorb(self, other: _Level) -> None:
        self.updates |= other.updates
        self.schema = self.schema or other.schema
        for table, rowids in other.rowids.items():
            _add_rowids(self.rowids, table, rowids)


def _add_rowids(into: dict[str, set[Any] | None], table: str, rowids: set[Any] | None) -> None:
    mine = into.get(table, set())
    if mine is None or rowids is None or len(mine) + len(rowids) > ROWIDS_LIMIT:
        into[table] = None
    else:
        into[table] = mine | rowids


def announced(updates: set[TableUpdate]) -> frozenset[TableUpdate]:
    """:func:`~rxdb.updates.merge_updates`, skipped for the usual commit, which wrote one
    table in one way: a single update is merged already."""
    if len(updates) == 1:
        return frozenset(updates)
    return merge_updates(updates)


class TransactionBuffer:
    """Changes of the open transaction, one level per savepoint, flushed on outermost commit."""

    def __init__(self, on_commit: BufferCallback) -> None:
        self._on_commit = on_commit
        self._levels: list[_Level] = [_Level(None)]
        self.row_tables: frozenset[str] = frozenset()
        """Tables whose changed rowids are captured (set on the writer's thread)."""
        self.rows_committed: Callable[[ChangedRowids, bool], None] | None = None
        """Called for each outermost commit that changed anything, before ``on_commit``,
        with the rowids it changed and whether it changed the schema."""

    def changed_rows(self, table: str, *rowids: Any) -> None:
        """Note that the statement running now changed rows ``rowids`` of ``table`` (one of
        :attr:`row_tables`). The capture triggers call it from SQLite, with one rowid (two
        for an UPDATE: the old and the new)."""
        level = self._levels[-1].rowids
        mine = level.setdefault(table, set())
        if mine is not None:
            mine.update(rowids)
            if len(mine) > ROWIDS_LIMIT:
                level[table] = None

    def record(
        self,
        effects: StatementEffects,
        *,
        changed: bool,
        failed: bool,
        was_in_transaction: bool,
        in_transaction: bool,
        replacing: bool = False,
    ) -> None:
        """Account for one statement, given SQLite's transaction state before and after;
        ``replacing``: the statement may resolve a conflict by REPLACE."""
        if effects.savepoint is not None and not failed:
            self._savepoint(*effects.savepoint)
        top = self._levels[-1]
        if changed:
            top.updates.update(effects.writes)
            if replacing:
                self._replaced(top, effects.writes)
        if not failed:
            top.updates.update(effects.settings)  # a setting changes no row: changed is False
            top.schema = top.schema or effects.schema
        if in_transaction:
            return
        rolled_back = (failed and was_in_transaction) or (
            not failed and effects.transaction == "ROLLBACK"
        )
        levels, self._levels = self._levels, [_Level(None)]
        if rolled_back:
            return
        if len(levels) == 1:
            merged = levels[0]  # no savepoint left open: nothing to absorb
        else:
            merged = _Level(None)
            for level in levels:
                merged.absorb(level)
        if not (merged.updates or merged.schema or merged.rowids):
            return
        if self.rows_committed is not None:
            committed: dict[str, frozenset[Any] | None] = {}
            for table, rowids in merged.rowids.items():  # no comprehension: no frame
                committed[table] = None if rowids is None else frozenset(rowids)
            self.rows_committed(committed, merged.schema)
        if merged.updates or merged.schema:
            self._on_commit(announced(merged.updates), merged.schema)

    def _replaced(self, top: _Level, writes: frozenset[TableUpdate]) -> None:
        """After a statement that may resolve a conflict by REPLACE, which deletes rows
        without firing DELETE triggers while recursive triggers are off (and the authorizer
        reports no DELETE for it): which rows of the captured tables it deleted is unknown."""
        for update in writes:
            if update.table in self.row_tables:
                top.rowids[update.table] = None

    def _savepoint(self, op: str, name: str) -> None:
        if op == "BEGIN":
            self._levels.append(_Level(name))
            return
        index = self._find(name)
        if index is None:
            return
        if op == "ROLLBACK":
            # ROLLBACK TO keeps the savepoint itself open, emptied.
            del self._levels[index + 1 :]
            self._levels[index] = _Level(name)
        elif op == "RELEASE":
            below = self._levels[index - 1]
            for level in self._levels[index:]:
                below.absorb(level)
            del self._levels[index:]

    def _find(self, name: str) -> int | None:
        for index in range(len(self._levels) - 1, 0, -1):
            if self._levels[index].name == name:
                return index
        return None

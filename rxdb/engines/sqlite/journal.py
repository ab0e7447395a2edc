"""Which tables a foreign writer touched: a journal kept by triggers in the file itself.

Without help, a commit by a program that is not rxdb says only "something changed", and every
watch of the database re-runs. With tracking on, ``AFTER INSERT/UPDATE/DELETE`` triggers on
every table count each written row into one small table::

    rxdb_journal(tbl, kind, seq)   -- one row per (table, kind of change), seq += 1 per row

so after a foreign commit the poller (:mod:`rxdb.engines.sqlite.foreign`) reads the journal and
re-runs only the watches of the tables whose counts moved. The triggers live in the file, so they
fire for every writer, rxdb included: each written row costs one upsert into the journal
(measured in ``docs/benchmarks.md``). Tracking is a property of the file: every rxdb
database opened on it uses the journal while the table exists, and keeps the triggers in
step with the schema (a new table gets its triggers, a dropped or renamed one loses them).

Why nothing is missed: each foreign commit is looked at in a snapshot taken after it. If, in
that snapshot, some table lacks its triggers, or the schema changed since the previous
snapshot, every watch re-runs (a table created and written before its triggers exist
leaves no trace in the journal, but it always shows as one or the other). Otherwise the
commit's rows are in the journal. Virtual tables cannot carry triggers: a foreign commit
always counts as having changed them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import NamedTuple

from parser import fold_name
from rxdb.engines.sqlite.engine import Engine
from rxdb.errors import ClosedError
from rxdb.updates import TableUpdate, UpdateKind

__all__ = ("JOURNAL_TABLE", "ForeignJournal")

LOG = logging.getLogger("rxdb.foreign")

JOURNAL_TABLE = "rxdb_journal"
_TRIGGER_PREFIX = "rxdb_journal_"
_CREATE_JOURNAL = (
    f"CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE}("
    "tbl TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tbl, kind)"
    ") WITHOUT ROWID"
)
_SCHEMA = "SELECT type, name, tbl_name, sql FROM main.sqlite_schema"
_KINDS = {kind.value: kind for kind in UpdateKind}

Snapshot = dict[tuple[str, str], int]


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trigger_sql(table: str, kind: UpdateKind) -> tuple[str, str]:
    """The name and exact ``CREATE TRIGGER`` text of ``table``'s journal trigger for ``kind``
    (SQLite keeps the text as written, so an existing trigger can be compared with it)."""
    name = f"{_TRIGGER_PREFIX}{kind.value}_{table}"
    sql = (
        f"CREATE TRIGGER {_identifier(name)} AFTER {kind.name} ON {_identifier(table)} "
        f"BEGIN INSERT INTO {JOURNAL_TABLE}(tbl, kind, seq) "
        f"VALUES ({_literal(fold_name(table))}, {_literal(kind.value)}, 1) "
        "ON CONFLICT(tbl, kind) DO UPDATE SET seq = seq + 1; END"
    )
    return name, sql


class _Schema(NamedTuple):
    """What the journal needs to know of one schema version."""

    tracked: bool  # the journal table exists
    complete: bool  # every ordinary table has exactly its triggers
    virtual: frozenset[str]  # virtual tables (no triggers possible)
    create: tuple[str, ...]  # DDL that would make it complete
    drop: tuple[str, ...]


def _plan(rows: Sequence[Sequence[str | None]]) -> _Schema:
    tables: list[str] = []
    virtual: set[str] = set()
    triggers: dict[str, str | None] = {}
    tracked = False
    for kind, name, _table, sql in rows:
        assert name is not None
        if kind == "table":
            if name == JOURNAL_TABLE:
                tracked = True
            elif (sql or "").upper().startswith("CREATE VIRTUAL"):
                virtual.add(fold_name(name))
            elif not fold_name(name).startswith("sqlite_"):
                tables.append(name)
        elif kind == "trigger" and fold_name(name).startswith(_TRIGGER_PREFIX):
            triggers[name] = sql
    # A virtual table's shadow tables (an FTS index's "docs_data", ...) are written by the
    # module itself; such a table is announced with the virtual ones on every foreign
    # commit instead of getting triggers (a look-alike name costs re-runs, never a miss).
    shadows = [t for t in tables if any(fold_name(t).startswith(v + "_") for v in virtual)]
    virtual.update(fold_name(t) for t in shadows)
    tables = [t for t in tables if t not in shadows]
    expected = dict(trigger_sql(table, kind) for table in tables for kind in UpdateKind)
    create = tuple(sql for name, sql in expected.items() if triggers.get(name) != sql)
    drop = tuple(
        f"DROP TRIGGER {_identifier(name)}"
        for name, sql in triggers.items()
        if expected.get(name) != sql
    )
    return _Schema(tracked, not create and not drop, frozenset(virtual), create, drop)


class ForeignJournal:
    """One engine's use of the journal: snapshots, diffs, and keeping triggers in step."""

    def __init__(self, engine: Engine, enabled: bool | None) -> None:
        self._engine = engine
        self._enabled = enabled  # False: never use; None: use when the file has a journal
        self._schemas: dict[int, _Schema] = {}
        self._previous: tuple[int, Snapshot] | None = None  # (schema_version, journal)
        self._reconciling: asyncio.Task[None] | None = None
        self.tracked = False
        """Whether the journal was there when last looked at (our own schema changes are
        followed by a trigger update only then)."""

    async def install(self) -> None:
        """Create the journal and the triggers (idempotent); use them from now on."""
        self._enabled = None
        async with self._engine.transaction("immediate"):
            created = await self._engine.fetch_all(
                "SELECT 1 FROM main.sqlite_schema WHERE name = ?", (JOURNAL_TABLE,)
            )
            if not created:
                await self._engine.execute(_CREATE_JOURNAL, ())
            await self._apply(_plan(await self._engine.fetch_all(_SCHEMA, ())), force=not created)
        self.tracked = True

    async def uninstall(self) -> None:
        """Drop the triggers and the journal: tracking ends for every rxdb on the file."""
        async with self._engine.transaction("immediate"):
            for (name,) in await self._engine.fetch_all(
                "SELECT name FROM main.sqlite_schema WHERE type = 'trigger' AND name LIKE ? "
                "ESCAPE '\\'",
                (_TRIGGER_PREFIX.replace("_", "\\_") + "%",),
            ):
                await self._engine.execute(f"DROP TRIGGER {_identifier(name)}", ())
            await self._engine.execute(f"DROP TABLE IF EXISTS {JOURNAL_TABLE}", ())
        self._previous = None
        self.tracked = False

    async def changes(self) -> frozenset[TableUpdate] | None:
        """What foreign commits up to now changed, or ``None`` for "anything may have"."""
        if self._enabled is False:
            return None
        async with self._engine.read(isolated=True) as session:
            version = (await session.fetch_all("PRAGMA schema_version"))[0][0]
            schema = self._schemas.get(version)
            if schema is None:
                schema = _plan(await session.fetch_all(_SCHEMA))
                self._schemas = {version: schema}  # only the latest is worth keeping
            journal: Snapshot | None = None
            if schema.tracked:
                rows = await session.fetch_all(f"SELECT tbl, kind, seq FROM {JOURNAL_TABLE}")
                journal = {(tbl, kind): seq for tbl, kind, seq in rows}
        previous = self._previous
        self._previous = None if journal is None else (version, journal)
        self.tracked = schema.tracked
        if schema.tracked and not schema.complete:
            self.reconcile_soon()
        if journal is None or previous is None or previous[0] != version or not schema.complete:
            return None
        updates = {
            TableUpdate(tbl, _KINDS.get(kind))
            for (tbl, kind), seq in journal.items()
            if previous[1].get((tbl, kind)) != seq
        }
        gone = previous[1].keys() - journal.keys()  # rows deleted by hand: announce them too
        updates.update(TableUpdate(tbl, _KINDS.get(kind)) for tbl, kind in gone)
        updates.update(TableUpdate(name) for name in schema.virtual)
        return frozenset(updates)

    def reconcile_soon(self) -> None:
        """Bring the triggers in step with the schema, in the background, once at a time."""
        if not self.tracked or (self._reconciling and not self._reconciling.done()):
            return
        self._reconciling = asyncio.get_running_loop().create_task(self._reconcile())

    async def stop(self) -> None:
        """Wait for a trigger update in flight (the database refuses new work by now, so it
        ends at its next statement)."""
        task, self._reconciling = self._reconciling, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _reconcile(self) -> None:
        try:
            schema = _plan(await self._engine.fetch_all(_SCHEMA, ()))
            if not schema.tracked or schema.complete:
                return
            async with self._engine.transaction("immediate"):
                schema = _plan(await self._engine.fetch_all(_SCHEMA, ()))  # again, under the lock
                if schema.tracked:
                    await self._apply(schema)
        except ClosedError:
            pass
        except Exception:
            # A read-only file, say: watches still re-run for every foreign commit while
            # the triggers are incomplete, so this only costs time.
            LOG.warning("could not update the journal triggers", exc_info=True)

    async def _apply(self, schema: _Schema, *, force: bool = False) -> None:
        """Run the DDL that completes ``schema`` (inside a transaction); if there was any,
        take the journal as it is now as the next diff's base. That is safe because our
        own DDL commit announces "everything": every commit before it is covered."""
        statements = (*schema.drop, *schema.create)
        for statement in statements:
            await self._engine.execute(statement, ())
        if statements or force:
            version = (await self._engine.fetch_all("PRAGMA schema_version", ()))[0][0]
            rows = await self._engine.fetch_all(f"SELECT tbl, kind, seq FROM {JOURNAL_TABLE}", ())
            self._previous = (version, {(tbl, kind): seq for tbl, kind, seq in rows})

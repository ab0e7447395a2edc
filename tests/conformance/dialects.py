"""What the engines spell differently under one contract, so that a conformance test states
one behaviour and checks it on every shape.

The contract leaves some things to the engine, and says so (rxdb/api.py, docs/postgres.md):
an auto-numbered key (SQLite's ``INTEGER PRIMARY KEY``, PostgreSQL's ``serial``), the rowid
of an insert (PostgreSQL has none), whether a script or a batch outside a transaction is all
or nothing (on PostgreSQL), whether each commit is exactly one message (on SQLite), the code
that names an error (SQLite's extended result code, PostgreSQL's SQLSTATE), how a table is
named in messages (PostgreSQL qualifies it with its schema, and names it bare too when the
schema is on the search path), and what a backup is (a SQLite file, a ``pg_dump`` script).
Everything else a test writes is the same text on every shape: typed columns, integer
values, error classes.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from rxdb.api import AsyncDatabase
from rxdb.engines.postgres.dsn import is_postgres_url
from rxdb.errors import DatabaseError
from rxdb.updates import TableUpdate, UpdateKind
from tests.conftest import WAIT
from tests.rxdb.postgres_worker import SERVER, scratch_database

Values = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Dialect:
    """One engine's spelling of what the contract leaves to it.

    :ivar key: the column definition of an auto-numbered integer primary key.
    :ivar has_rowid: whether ``ExecuteResult.last_insert_rowid`` names the inserted row
        (else it is ``None``).
    :ivar atomic_batches: whether ``execute_script`` and ``execute_many`` outside a
        transaction are all or nothing (else each statement, each set, commits on its own).
    :ivar one_message_per_commit: whether ``table_updates`` gives each commit exactly one
        message (PostgreSQL's listener hands a commit's notifications over together most of
        the time, and those of commits it hears together as one).
    :ivar update_columns: whether a message names the columns an ``UPDATE`` assigned (else
        any column may have changed).
    :ivar schema: the schema that qualifies table names in messages, if any.
    :ivar missing_table: the code of an error naming a table that does not exist.
    :ivar duplicate_key: the code of an error inserting a primary key that exists.
    :ivar code: the code an error of this engine carries.
    :ivar read_backup: the rows ``sql`` returns from the copy ``backup`` wrote into a file.
    """

    key: str
    has_rowid: bool
    atomic_batches: bool
    one_message_per_commit: bool
    update_columns: bool
    schema: str | None
    missing_table: str
    duplicate_key: str
    code: Callable[[DatabaseError], str | None]
    read_backup: Callable[[Path, str], Awaitable[Values]]

    def names(self, table: str) -> frozenset[str]:
        """Every name a message gives a table of the default schema."""
        return frozenset({table, f"{self.schema}.{table}"} if self.schema else {table})

    def updates(self, table: str, kind: UpdateKind, *columns: str) -> frozenset[TableUpdate]:
        """What a message of one write of ``kind`` to ``table`` holds; an ``UPDATE``
        assigned ``columns``."""
        named = frozenset(columns) if columns and self.update_columns else None
        return frozenset(TableUpdate(name, kind, named) for name in self.names(table))


async def read_sqlite_file(target: Path, sql: str) -> Values:
    def read() -> Values:
        copy = sqlite3.connect(target)
        try:
            return copy.execute(sql).fetchall()
        finally:
            copy.close()

    return await asyncio.to_thread(read)


async def read_pg_dump_script(target: Path, sql: str) -> Values:
    """Restore the script with ``psql`` into a database of its own, and query that: the
    contract promises a copy of the database, which is what the script must rebuild."""
    psql = shutil.which("psql")
    assert psql is not None, "the PostgreSQL client programs are installed"
    async with scratch_database() as name:
        restore = await asyncio.create_subprocess_exec(
            *(psql, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(target), f"{SERVER}/{name}"),
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await asyncio.wait_for(restore.wait(), WAIT) == 0
        copy = await asyncpg.connect(f"{SERVER}/{name}")
        try:
            return [tuple(record) for record in await copy.fetch(sql)]
        finally:
            await copy.close()


SQLITE = Dialect(
    key="INTEGER PRIMARY KEY",
    has_rowid=True,
    atomic_batches=False,
    one_message_per_commit=True,
    update_columns=True,
    schema=None,
    missing_table="SQLITE_ERROR",  # SQLite's code for every refusal at prepare time
    duplicate_key="SQLITE_CONSTRAINT_PRIMARYKEY",
    code=lambda error: error.sqlite_errorname,
    read_backup=read_sqlite_file,
)
POSTGRES = Dialect(
    key="serial PRIMARY KEY",
    has_rowid=False,
    atomic_batches=True,
    one_message_per_commit=False,
    update_columns=False,
    schema="public",
    missing_table="42P01",  # undefined_table
    duplicate_key="23505",  # unique_violation
    code=lambda error: error.sqlstate,
    read_backup=read_pg_dump_script,
)


def dialect(db: AsyncDatabase) -> Dialect:
    """The dialect of the engine under ``db``."""
    return POSTGRES if is_postgres_url(db.path) else SQLITE

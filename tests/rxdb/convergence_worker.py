"""Random writes to the tables of tests/rxdb/test_convergence.py, from another process: through
rxdb, or through a plain driver that has never heard of it (``sqlite3``, ``asyncpg``).

Run as ``python -m tests.rxdb.convergence_worker WRITER TARGET SEED COUNT FINAL``: ``WRITER``
is ``rxdb``, ``sqlite3`` or ``asyncpg``; ``TARGET`` a SQLite file or a PostgreSQL URL. It makes
``COUNT`` writes, some of them transactions of several statements, some rolled back; prints
``waiting``; reads a line from stdin; makes ``FINAL`` more, and exits 0. A deadlock or a
serialization failure (PostgreSQL, writers racing) loses that write only.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

import rxdb

Statement = tuple[str, tuple[Any, ...]]

TABLES = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)",
    "CREATE TABLE u (id {serial} PRIMARY KEY, tid INTEGER, w INTEGER)",
    "CREATE VIEW vt AS SELECT t.id, t.v, (SELECT count(*) FROM u WHERE u.tid = t.id) AS n FROM t",
)

_UPSERT = {
    "sqlite": "INSERT OR REPLACE INTO t (id, v, s) VALUES (?, ?, ?)",
    "postgres": "INSERT INTO t (id, v, s) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET v = excluded.v, s = excluded.s",
}


def schema(dialect: str) -> list[str]:
    serial = "SERIAL" if dialect == "postgres" else "INTEGER"
    return [statement.format(serial=serial) for statement in TABLES]


def statement(rng: random.Random, dialect: str) -> Statement:
    """One write, ``?`` placeholders: of a column some watches read and others do not, of the
    joined table, by key and by range, an upsert (a replace in SQLite), a delete."""
    i = rng.randrange(1, 40)
    return rng.choice(
        [
            (_UPSERT[dialect], (i, rng.randrange(100), "x")),
            ("UPDATE t SET v = ? WHERE id = ?", (rng.randrange(100), i)),
            ("DELETE FROM t WHERE id = ?", (i,)),
            ("UPDATE t SET s = ? WHERE id % 7 = ?", (str(rng.random()), rng.randrange(7))),
            ("INSERT INTO u (tid, w) VALUES (?, ?)", (i, rng.randrange(100))),
            ("DELETE FROM u WHERE tid = ?", (i,)),
            ("UPDATE u SET w = w + 1 WHERE tid = ?", (i,)),
            ("UPDATE t SET v = v + 1 WHERE id BETWEEN ? AND ?", (i, i + 5)),
        ]
    )


Run = Callable[[list[Statement], bool], Awaitable[None]]


async def write(rng: random.Random, dialect: str, count: int, run: Run) -> None:
    """``count`` writes through ``run(statements, commit)``: most of one statement, some of
    several in one transaction, a few of those rolled back."""
    for _ in range(count):
        several = rng.random() < 0.3
        statements = [statement(rng, dialect) for _ in range(rng.randrange(2, 4) if several else 1)]
        await run(statements, not several or rng.random() < 0.75)


class _Rollback(Exception):
    pass


def through(db: rxdb.Database) -> Run:
    """:func:`write`'s ``run`` on an rxdb database: a transaction per write, rolled back when
    told to; a deadlock or a serialization failure loses that write only."""

    async def run(statements: list[Statement], commit: bool) -> None:
        try:
            async with db.transaction():
                for sql, params in statements:
                    await db.execute(sql, params)
                if not commit:
                    raise _Rollback
        except (_Rollback, rxdb.BusyError):
            pass

    return run


@asynccontextmanager
async def writing(writer: str, target: str) -> AsyncIterator[tuple[str, Run]]:
    """``WRITER``'s connection to ``target``, open while the writes last: the dialect of its
    statements and the ``run`` that makes one write through it."""
    if writer == "rxdb":
        async with rxdb.open(target) as db:
            yield ("postgres" if target.startswith("postgresql://") else "sqlite"), through(db)
    elif writer == "sqlite3":
        conn = sqlite3.connect(target, isolation_level=None, timeout=30)
        try:

            async def run_sqlite3(statements: list[Statement], commit: bool) -> None:
                conn.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute("COMMIT" if commit else "ROLLBACK")
                await asyncio.sleep(0)  # a turn of the loop: this is no asyncio driver

            yield "sqlite", run_sqlite3
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(target)
        try:

            async def run_asyncpg(statements: list[Statement], commit: bool) -> None:
                transaction = pg.transaction()
                await transaction.start()
                try:
                    for sql, params in statements:
                        await pg.execute(_numbered(sql), *params)
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    await transaction.rollback()
                    return
                await (transaction.commit() if commit else transaction.rollback())

            yield "postgres", run_asyncpg
        finally:
            await pg.close()


def _numbered(sql: str) -> str:
    counter = iter(range(1, 100))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


async def main(writer: str, target: str, seed: int, count: int, final: int) -> None:
    """``count`` writes, ``waiting``, a line from stdin, ``final`` writes (see the module)."""
    rng = random.Random(seed)
    async with writing(writer, target) as (dialect, run):
        await write(rng, dialect, count, run)
        print("waiting", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await write(rng, dialect, final, run)


if __name__ == "__main__":
    writer, target, *numbers = sys.argv[1:6]
    seed, count, final = map(int, numbers)
    asyncio.run(main(writer, target, seed, count, final))

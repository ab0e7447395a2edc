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
from collections.abc import Awaitable, Callable
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


async def write_in_two_parts(rng: random.Random, dialect: str, run: Run) -> None:
    """``COUNT`` writes, then, once told to go on, ``FINAL`` more (see the module)."""
    await write(rng, dialect, int(sys.argv[4]), run)
    print("waiting", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await write(rng, dialect, int(sys.argv[5]), run)


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


async def through_rxdb(target: str, rng: random.Random, dialect: str) -> None:
    async with rxdb.open(target) as db:
        await write_in_two_parts(rng, dialect, through(db))


async def through_sqlite3(target: str, rng: random.Random) -> None:
    conn = sqlite3.connect(target, isolation_level=None, timeout=30)
    try:

        async def run(statements: list[Statement], commit: bool) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("COMMIT" if commit else "ROLLBACK")
            await asyncio.sleep(0)

        await write_in_two_parts(rng, "sqlite", run)
    finally:
        conn.close()


def _numbered(sql: str) -> str:
    counter = iter(range(1, 100))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


async def through_asyncpg(target: str, rng: random.Random) -> None:
    conn = await asyncpg.connect(target)
    try:

        async def run(statements: list[Statement], commit: bool) -> None:
            transaction = conn.transaction()
            await transaction.start()
            try:
                for sql, params in statements:
                    await conn.execute(_numbered(sql), *params)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                await transaction.rollback()
                return
            await (transaction.commit() if commit else transaction.rollback())

        await write_in_two_parts(rng, "postgres", run)
    finally:
        await conn.close()


async def main(writer: str, target: str, seed: int) -> None:
    rng = random.Random(seed)
    if writer == "rxdb":
        dialect = "postgres" if target.startswith("postgresql://") else "sqlite"
        await through_rxdb(target, rng, dialect)
    elif writer == "sqlite3":
        await through_sqlite3(target, rng)
    else:
        await through_asyncpg(target, rng)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))

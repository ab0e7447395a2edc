"""Child-process helpers for tests/rxdb/test_server.py.

``python -m tests.rxdb.server_worker hold HANDLE_JSON``: connect, open a transaction, insert
a row, print ``inside`` and wait inside the block until killed.

``python -m tests.rxdb.server_worker hold-read HANDLE_JSON``: the same inside a read block.

``python -m tests.rxdb.server_worker spin-read HANDLE_JSON`` / ``spin-transaction``: print
``inside`` from inside a read block (a transaction), then run a query that counts to 1e9 there
until killed.

``python -m tests.rxdb.server_worker lookup NAME``: find the server by name, print the rows of
``SELECT x FROM t ORDER BY x`` as JSON, and exit.

Also module-level functions that the tests pass to ``spawn`` and ``compute_with_database``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import rxdb
from rxdb.remote.handle import ServerHandle
from rxdb.remote.names import connect_named


async def insert_and_count(db: Any, first: int, count: int) -> dict[str, Any]:
    """For compute_with_database: insert ``count`` rows in one transaction, report back."""
    async with db.transaction():
        await db.execute_many("INSERT INTO t(x) VALUES (?)", [(first + i,) for i in range(count)])
    rows = await db.fetch_all("SELECT x FROM t ORDER BY x")
    return {"total": len(rows), "blob": b"\x00\xff", "last": rows[-1]}


async def fail_with_integrity_error(db: Any) -> None:
    await db.execute("INSERT INTO t(x) VALUES (1)")
    await db.execute("INSERT INTO t(x) VALUES (1)")


def not_async(db: Any) -> None:
    """What compute_with_database refuses: a function it could not await."""


async def make_memory_database() -> rxdb.Database:
    """A factory for spawn(): a :memory: database with table t ready."""
    db = await rxdb.open(":memory:")
    await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
    return db


async def hold(handle_json: str) -> None:
    remote = await ServerHandle.from_json(json.loads(handle_json)).connect()
    async with remote.transaction():
        await remote.execute("INSERT INTO t(x) VALUES (?)", ["ghost"])
        print("inside", flush=True)
        await asyncio.Event().wait()  # until killed


ENDLESS = (
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) "
    "SELECT count(*) FROM c"
)


async def hold_read(handle_json: str) -> None:
    remote = await ServerHandle.from_json(json.loads(handle_json)).connect()
    async with remote.read() as session:
        await session.fetch_all("SELECT count(*) FROM t")
        print("inside", flush=True)
        await asyncio.Event().wait()  # until killed


async def spin(handle_json: str, block: str) -> None:
    remote = await ServerHandle.from_json(json.loads(handle_json)).connect()
    async with remote.read() if block == "read" else remote.transaction():
        print("inside", flush=True)
        await remote.fetch_all(ENDLESS)  # until killed


async def lookup(name: str) -> None:
    async with await connect_named(name) as remote:
        rows = await remote.fetch_all("SELECT x FROM t ORDER BY x")
    print(json.dumps([list(r) for r in rows]), flush=True)


def main() -> None:
    command, argument = sys.argv[1:3]
    if command == "hold":
        asyncio.run(hold(argument))
    elif command == "hold-read":
        asyncio.run(hold_read(argument))
    elif command.startswith("spin-"):
        asyncio.run(spin(argument, command.removeprefix("spin-")))
    else:
        asyncio.run(lookup(argument))


if __name__ == "__main__":
    main()

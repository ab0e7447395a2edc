"""A process that is killed -9 (or writes while another is), for tests/rxdb/test_kill.py.

``TARGET`` is a database file, opened here, or a server's handle as JSON, connected to.

``python -m tests.rxdb.kill_worker hold TARGET``: commit three rows
(``who='held-committed'``), print ``ready ROLE`` (its hub role, or ``client``), then on
``begin`` from stdin open a transaction, insert three rows (``who='ghost'``), print
``inside`` and wait there until killed.

``python -m tests.rxdb.kill_worker write TARGET``: commit one row (``who='writer'``) per
transaction, printing ``committed N`` after each, until ``stop`` on stdin (or its end);
then print ``done N`` and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator

import rxdb
from rxdb.api import AsyncDatabase
from rxdb.engines.sqlite import SQLiteEngine
from rxdb.remote import hub
from rxdb.remote.handle import ServerHandle


def say(*words: object) -> None:
    print(*words, flush=True)


async def next_line() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


@contextlib.asynccontextmanager
async def opened(target: str) -> AsyncIterator[AsyncDatabase]:
    if not target.startswith("{"):
        async with rxdb.open(target, busy_timeout=30.0) as db:
            yield db
        return
    remote = await ServerHandle.from_json(json.loads(target)).connect()
    try:
        yield remote
    finally:
        await remote.close()


def role(db: AsyncDatabase) -> str:
    if not isinstance(db, rxdb.Database):
        return "client"
    engine = db._engine
    assert isinstance(engine, SQLiteEngine)
    membership = engine.membership
    assert isinstance(membership, hub.Membership)
    return str(membership.statistics().role)


async def hold(target: str) -> None:
    async with opened(target) as db:
        for n in range(3):
            await db.execute("INSERT INTO t(who, n) VALUES ('held-committed', ?)", (n,))
        say("ready", role(db))
        assert await next_line() == "begin"
        async with db.transaction():
            for n in range(3):
                await db.execute("INSERT INTO t(who, n) VALUES ('ghost', ?)", (n,))
            say("inside")
            await asyncio.Event().wait()  # until killed


async def write(target: str) -> None:
    async with opened(target) as db:
        stop = asyncio.create_task(next_line())
        count = 0
        while not stop.done():
            async with db.transaction():
                await db.execute("INSERT INTO t(who, n) VALUES ('writer', ?)", (count,))
            count += 1
            say("committed", count)
            await asyncio.sleep(0)  # let the stop command in between two transactions
        say("done", count)


if __name__ == "__main__":
    mode, target = sys.argv[1:3]
    asyncio.run(hold(target) if mode == "hold" else write(target))

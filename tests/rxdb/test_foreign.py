"""Commits by programs that are not rxdb (a plain sqlite3 connection) refresh watches."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import rxdb
import rxdb.engines.sqlite.walindex as walindex_module
from tests.conftest import WAIT, Recorder, sqlite_engine, subscribed

COUNT = "SELECT count(*) FROM t"

pytestmark = pytest.mark.usefixtures("foreign_detection")


def foreign_insert(path: Path, value: int = 1) -> None:
    """What another program does: its own connection, its own commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO t(x) VALUES (?)", (value,))
    finally:
        conn.close()


async def counted_polls(db: rxdb.Database, polls: int) -> asyncio.Event:
    """Count the poller's looks at the commit counter (one per poll); the event fires after
    ``polls`` more of them."""
    poller = sqlite_engine(db).poller
    assert poller is not None
    real = poller._read_counter
    seen = [0]
    enough = asyncio.Event()

    def counting() -> Any:
        counter = real()
        seen[0] += 1
        if seen[0] >= polls:
            enough.set()
        return counter

    poller._read_counter = counting
    return enough


@pytest.fixture
async def fast_db(db_path: Path) -> Any:
    async with rxdb.open(db_path, foreign_poll=0.002) as database:
        await database.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        yield database


async def test_foreign_commit_refreshes_watch(fast_db: rxdb.Database, db_path: Path) -> None:
    rec: Recorder[Any] = Recorder()
    with subscribed(fast_db.watch(COUNT), rec):
        await rec.wait_value([(0,)])
        await asyncio.to_thread(foreign_insert, db_path)
        await rec.wait_value([(1,)])


async def test_foreign_commit_is_announced_as_everything(
    fast_db: rxdb.Database, db_path: Path
) -> None:
    rec: Recorder[Any] = Recorder()
    with subscribed(fast_db.table_updates(), rec):
        await asyncio.to_thread(foreign_insert, db_path)
        await rec.wait_count(1)
        assert rec.values[0].everything
        assert rec.values[0].origin == f"{fast_db.origin}/foreign"


async def test_own_commits_cause_no_resync(fast_db: rxdb.Database) -> None:
    rec: Recorder[Any] = Recorder()
    with subscribed(fast_db.table_updates(), rec):
        for value in range(20):
            await fast_db.execute("INSERT INTO t(x) VALUES (?)", (value,))
        await rec.wait_count(20)
        enough = await counted_polls(fast_db, 5)
        await asyncio.wait_for(enough.wait(), WAIT)  # five polls after our last commit
        assert not any(message.everything for message in rec.values)
        assert len(rec.values) == 20


async def test_foreign_commit_during_our_transaction_is_seen_after_it(
    fast_db: rxdb.Database, db_path: Path
) -> None:
    rec: Recorder[Any] = Recorder()
    with subscribed(fast_db.watch(COUNT), rec):
        await rec.wait_value([(0,)])
        async with fast_db.transaction("deferred"):
            await fast_db.fetch_all(COUNT)
            # WAL: the other program may commit while we only read.
            await asyncio.to_thread(foreign_insert, db_path)
        await rec.wait_value([(1,)])


async def test_polling_can_be_turned_off(db_path: Path) -> None:
    async with rxdb.open(db_path, foreign_poll=None) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        assert sqlite_engine(db).poller is None
        rec: Recorder[Any] = Recorder()
        with subscribed(db.watch(COUNT), rec):
            await rec.wait_value([(0,)])
            await asyncio.to_thread(foreign_insert, db_path)
            await db.notify_updates("t")  # the remedy when polling is off
            await rec.wait_value([(1,)])


async def test_close_stops_polling(db_path: Path) -> None:
    db = await rxdb.open(db_path, foreign_poll=0.002)
    poller = sqlite_engine(db).poller
    assert poller is not None
    assert poller._task is not None
    task = poller._task
    await db.close()
    assert task.done()


async def test_memory_database_does_not_poll() -> None:
    async with rxdb.open(":memory:") as db:
        assert sqlite_engine(db).poller is None


async def test_an_idle_file_costs_no_sqlite_call(fast_db: rxdb.Database) -> None:
    """While the commit counter stands still the poller asks SQLite nothing; a commit of our
    own makes it ask data_version once or so, then it is quiet again."""
    poller = sqlite_engine(fast_db).poller
    assert poller is not None
    real = poller._read_state
    asked = [0]

    async def counting() -> tuple[int, int | None] | None:
        asked[0] += 1
        return await real()

    quiet = await counted_polls(fast_db, 5)
    await asyncio.wait_for(quiet.wait(), WAIT)  # the fixture's own commits are behind us
    poller._read_state = counting
    enough = await counted_polls(fast_db, 10)
    await asyncio.wait_for(enough.wait(), WAIT)
    assert asked[0] == 0
    await fast_db.execute("INSERT INTO t(x) VALUES (1)")
    enough = await counted_polls(fast_db, 10)
    await asyncio.wait_for(enough.wait(), WAIT)
    assert 1 <= asked[0] <= 3


async def test_a_foreign_commit_landing_during_a_poll_is_not_absorbed(
    fast_db: rxdb.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program commits just after the poller read the writer's data_version (as it
    does when it was waiting for rxdb's write lock, e.g. after a BusyError). That commit must
    count as foreign, not become part of the baseline the next poll compares with."""
    real = walindex_module.data_version
    armed = threading.Event()

    def version_then_foreign_commit(connection: sqlite3.Connection) -> int:
        version = real(connection)
        if armed.is_set():
            armed.clear()
            foreign_insert(db_path, 2)  # lands between this reading and the next
        return version

    monkeypatch.setattr(walindex_module, "data_version", version_then_foreign_commit)
    rec: Recorder[Any] = Recorder()
    with subscribed(fast_db.watch(COUNT), rec):
        await rec.wait_value([(0,)])
        armed.set()
        await fast_db.execute("INSERT INTO t(x) VALUES (1)")  # moves the counter: a poll asks
        await rec.wait_value([(2,)])
    assert not armed.is_set()

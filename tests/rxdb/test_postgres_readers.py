"""PostgreSQL readers lost while idle (a terminated backend, a server shutting down): the
next reads run on a new reader and succeed, whatever asyncpg had noticed of the loss when
the pool handed the old one out (nothing yet; the server's goodbye read but not the end of
the connection, when asyncpg refuses any statement with ``InternalClientError``; all of it).
"""

from __future__ import annotations

import asyncio
import select
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

import rxdb
from rxdb.engines.postgres.engine import PostgresEngine
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres

WAIT = 10.0
# Loop turns between the goodbye reaching the reader's socket and the next read. What asyncpg
# has made of the goodbye by then varies with how the server's packets arrive: nothing yet;
# the goodbye read but not the end of the connection (a statement is refused unsent with
# InternalClientError: most of these turns, as measured); all of it.
TURNS = (0, 1, 2, 3, 4)


@pytest.fixture
async def db() -> AsyncIterator[rxdb.Database]:
    """A database with ``t(x)`` holding 1 and 2, opened with one reader."""
    async with scratch_database() as name:
        url = f"{SERVER}/{name}"
        async with rxdb.open(url, readers=1) as db:
            await db.execute("CREATE TABLE t(x int)")
            await db.execute("INSERT INTO t(x) VALUES (1), (2)")
            yield db


def terminate_now(pid: int) -> None:
    """End backend ``pid`` from another thread, holding this one (and so its event loop)
    until it is done: the loop notices nothing of it meanwhile."""
    failures: list[BaseException] = []

    async def terminate() -> None:
        admin = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()

    def work() -> None:
        try:
            asyncio.run(terminate())
        except BaseException as error:  # handed to the test below
            failures.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not failures, failures


async def lose_the_idle_reader(db: rxdb.Database, turns: int) -> None:
    """Terminate the only reader's backend (idle in the pool) and let the loop run ``turns``
    times once the server's goodbye has reached its socket."""
    engine = db._engine
    assert isinstance(engine, PostgresEngine)
    await db.fetch_all("SELECT 1")  # the reader is open and idle
    (conn,) = engine._readers._idle
    reader: Any = conn
    sock = reader._transport.get_extra_info("socket")
    terminate_now(reader.get_server_pid())
    readable, _, _ = select.select([sock], [], [], WAIT)  # the loop is held meanwhile
    assert readable, "the server said nothing as it ended the reader's backend"
    for _ in range(turns):
        await asyncio.sleep(0)


def values(rows: list[rxdb.Row]) -> list[int]:
    return [row[0] for row in rows]


def not_refused_unsent(error: rxdb.DatabaseError) -> bool:
    """Whether ``error`` is anything but asyncpg refusing a statement on a connection that is
    not idle (the error this module is about): a lost connection, as a statement in flight
    meets it, is fine."""
    return isinstance(error, rxdb.OperationalError) and not isinstance(
        error.__cause__, asyncpg.exceptions.InternalClientError
    )


async def first_read(read: Callable[[], Awaitable[object]]) -> None:
    """``read`` right after the loss: it succeeds, or fails as a statement in flight does
    (if asyncpg sent it before it read the goodbye)."""
    failures: list[rxdb.DatabaseError] = []
    try:
        await read()
    except rxdb.DatabaseError as error:
        failures.append(error)
    assert all(not_refused_unsent(error) for error in failures), failures


@pytest.mark.parametrize("turns", TURNS)
async def test_a_read_after_its_reader_was_lost_runs_on_a_new_one(
    db: rxdb.Database, turns: int
) -> None:
    await lose_the_idle_reader(db, turns)
    await first_read(lambda: db.fetch_all("SELECT x FROM t ORDER BY x"))
    assert values(await db.fetch_all("SELECT x FROM t ORDER BY x")) == [1, 2]


@pytest.mark.parametrize("turns", TURNS)
async def test_watch_reruns_after_their_reader_was_lost_run_on_a_new_one(
    db: rxdb.Database, turns: int
) -> None:
    engine = db._engine
    assert isinstance(engine, PostgresEngine)
    await lose_the_idle_reader(db, turns)
    queries = [("SELECT x FROM t ORDER BY x", ()), ("SELECT count(*) FROM t", ())]
    first = await engine.fetch_many_committed(queries)
    assert all(not_refused_unsent(r) for r in first if isinstance(r, rxdb.DatabaseError))
    results = await engine.fetch_many_committed(queries)
    assert [r if isinstance(r, Exception) else values(r) for r in results] == [[1, 2], [2]]
    assert engine._readers.connections == 1


@pytest.mark.parametrize("turns", TURNS)
async def test_a_read_block_after_its_reader_was_lost_runs_on_a_new_one(
    db: rxdb.Database, turns: int
) -> None:
    await lose_the_idle_reader(db, turns)

    async def read() -> None:
        async with db.read() as r:
            assert values(await r.fetch_all("SELECT x FROM t ORDER BY x")) == [1, 2]

    await first_read(read)
    await read()

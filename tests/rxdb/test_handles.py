"""Handles: one database, used from other threads and event loops, sharing engine and bus."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import rxdb
from tests.conftest import WAIT, Recorder, subscribed

T = TypeVar("T")
COUNT = "SELECT count(*) FROM t"


async def in_other_loop(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` in a new thread with its own event loop; await its result here."""
    return await asyncio.to_thread(asyncio.run, work())  # type: ignore[arg-type]


async def make_t(db: rxdb.Database) -> None:
    await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")


async def test_handle_pickles_and_connects_to_the_same_database_on_its_loop(
    any_db: rxdb.Database,
) -> None:
    handle = await any_db.serializable_connection()
    assert pickle.loads(pickle.dumps(handle)) == handle
    assert await handle.connect() is any_db


async def test_writes_in_another_loop_refresh_watches_here_and_back(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()
    here: Recorder[Any] = Recorder()
    sub = any_db.watch(COUNT).subscribe(here)
    try:
        await here.wait_value([(0,)])

        async def there() -> tuple[list[Any], set[int]]:
            db = await handle.connect()
            assert isinstance(db, rxdb.BridgedDatabase)
            seen: Recorder[Any] = Recorder()
            threads: set[int] = set()

            def on_next(rows: Any) -> None:
                threads.add(threading.get_ident())
                seen.on_next(rows)

            inner = db.watch(COUNT).subscribe(on_next, seen.on_error)
            await seen.wait_value([(0,)])
            await db.execute("INSERT INTO t(x) VALUES (1)")  # refreshes the watch here
            await seen.wait_value([(1,)])
            inner.dispose()
            await db.close()
            return seen.values, threads

        values, threads = await in_other_loop(there)
        await here.wait_value([(1,)])
        assert values[-1] == [(1,)]
        assert threads
        assert threading.get_ident() not in threads  # delivered on that loop
    finally:
        sub.dispose()


async def test_bridged_transaction_is_atomic_and_serialised(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()
    inside = threading.Event()
    proceed = threading.Event()

    async def there() -> None:
        db = await handle.connect()

        async def rolled_back() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES ('gone')")
                async with db.transaction():  # nested: a savepoint, in the same transaction
                    await db.execute("INSERT INTO t(x) VALUES ('gone too')")
                inside.set()
                await asyncio.to_thread(proceed.wait, WAIT)
                assert await db.fetch_one(COUNT) == (2,)  # own writes visible inside
                raise RuntimeError("roll it all back")

        with pytest.raises(RuntimeError, match="roll it all back"):
            await rolled_back()
        async with db.transaction():
            await db.execute("INSERT INTO t(x) VALUES ('kept')")

    worker = asyncio.ensure_future(in_other_loop(there))
    assert await asyncio.to_thread(inside.wait, WAIT)
    # Our write waits for the other loop's transaction instead of slipping into it.
    mine = asyncio.ensure_future(any_db.execute("INSERT INTO t(x) VALUES ('mine')"))
    await asyncio.sleep(0)
    assert not mine.done()
    proceed.set()
    await asyncio.wait_for(asyncio.gather(worker, mine), WAIT)
    assert sorted(await any_db.fetch_all("SELECT x FROM t")) == [("kept",), ("mine",)]


async def test_memory_database_is_shared_across_loops() -> None:
    async with rxdb.open(":memory:") as db:
        await make_t(db)
        handle = await db.serializable_connection()

        async def there() -> Any:
            other = await handle.connect()
            await other.execute("INSERT INTO t(x) VALUES (1)")
            return await other.fetch_one(COUNT)

        assert await in_other_loop(there) == (1,)
        assert await db.fetch_one(COUNT) == (1,)


async def test_connect_sync_gives_the_blocking_facade(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()

    def there() -> list[Any]:
        sdb = handle.connect_sync()
        try:
            values = []
            for rows in sdb.watch(COUNT):  # leaving the loop releases the watch
                values.append(rows)
                if len(values) == 2:
                    break
                with sdb.transaction():
                    sdb.execute("INSERT INTO t(x) VALUES (1)")
            return values
        finally:
            sdb.close()  # detaches only

    assert await asyncio.to_thread(there) == [[(0,)], [(1,)]]
    assert not any_db.closed
    assert await any_db.fetch_one(COUNT) == (1,)


async def test_detaching_inside_a_transaction_rolls_it_back_and_frees_the_writer(
    any_db: rxdb.Database,
) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()

    async def bridged() -> None:
        db = await handle.connect()
        async with db.transaction():
            await db.execute("INSERT INTO t(x) VALUES ('bridged')")
            await db.close()

    def blocking() -> None:
        db = handle.connect_sync()
        with db.transaction():
            db.execute("INSERT INTO t(x) VALUES ('blocking')")
            db.close()

    with pytest.raises(rxdb.ClosedError):  # the block's end: it was rolled back
        await in_other_loop(bridged)
    with pytest.raises(rxdb.ClosedError):
        await asyncio.to_thread(blocking)
    await asyncio.wait_for(any_db.execute("INSERT INTO t(x) VALUES ('owner')"), WAIT)
    assert await any_db.fetch_all("SELECT x FROM t") == [("owner",)]


async def test_closing_a_bridge_completes_its_watches_only(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()
    mine: Recorder[Any] = Recorder()

    async def there() -> bool:
        db = await handle.connect()
        theirs: Recorder[Any] = Recorder()
        db.watch(COUNT).subscribe(theirs)
        await theirs.wait_count(1)
        await db.close()
        return theirs.completed

    with subscribed(any_db.watch(COUNT), mine):
        await mine.wait_count(1)
        assert await in_other_loop(there)
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        await mine.wait_value([(1,)])  # the owner's watch carries on
    assert not mine.completed


async def test_detaching_a_blocking_facade_ends_its_for_loops(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()

    def there() -> list[Any]:
        sdb = handle.connect_sync()
        values = []
        for rows in sdb.watch(COUNT):
            values.append(rows)
            sdb.close()  # ends this loop (another thread's too), not the owner's watches
        return values

    mine: Recorder[Any] = Recorder()
    with subscribed(any_db.watch(COUNT), mine):
        assert await asyncio.to_thread(there) == [[(0,)]]
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        await mine.wait_value([(1,)])


async def test_bridged_database_turns_foreign_write_tracking_on_and_off(db_path: Path) -> None:
    journal = "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'rxdb_journal%'"
    async with rxdb.open(db_path) as db:
        await make_t(db)
        handle = await db.serializable_connection()

        async def there() -> None:
            async with await handle.connect() as bridged:
                await bridged.track_foreign_writes()

        await in_other_loop(there)
        assert await db.fetch_one(journal) == (4,)  # the table and t's three triggers

        async def off() -> None:
            async with await handle.connect() as bridged:
                await bridged.untrack_foreign_writes()

        await in_other_loop(off)
        assert await db.fetch_one(journal) == (0,)


async def test_handle_after_close(db_path: Path) -> None:
    async with rxdb.open(db_path) as db:
        await make_t(db)
        handle = await db.serializable_connection()
    reopened = await handle.connect()
    try:
        assert isinstance(reopened, rxdb.Database)
        assert reopened is not db
        assert await reopened.fetch_one(COUNT) == (0,)
    finally:
        await reopened.close()
    async with rxdb.open(":memory:") as memory:
        memory_handle = await memory.serializable_connection()
    with pytest.raises(rxdb.ClosedError, match="in-memory"):
        await memory_handle.connect()


async def test_bridge_used_from_a_third_loop_raises_wrong_loop(any_db: rxdb.Database) -> None:
    handle = await any_db.serializable_connection()

    async def make() -> Any:
        return await handle.connect()

    bridge = await in_other_loop(make)
    with pytest.raises(rxdb.WrongLoopError, match=r"handle\.connect"):
        await bridge.fetch_all("SELECT 1")


async def test_bridged_errors_come_through_unchanged(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    handle = await any_db.serializable_connection()

    async def there() -> Any:
        db = await handle.connect()
        try:
            await db.execute("INSERT INTO missing VALUES (1)")
        except rxdb.OperationalError as error:
            return error
        return None

    error = await in_other_loop(there)
    assert isinstance(error, rxdb.OperationalError)
    assert "missing" in str(error)


async def test_served_database_hands_out_the_server_handle(any_db: rxdb.Database) -> None:
    await make_t(any_db)
    async with await rxdb.serve(any_db) as server:
        handle = await any_db.serializable_connection()
        served: object = server.handle  # a ServerHandle is not (yet) typed as an api.Handle
        assert handle == served
        remote = await handle.connect()
        try:
            await remote.execute("INSERT INTO t(x) VALUES (1)")
        finally:
            await remote.close()
    assert await any_db.fetch_one(COUNT) == (1,)
    assert isinstance(await any_db.serializable_connection(), rxdb.ConnectionHandle)

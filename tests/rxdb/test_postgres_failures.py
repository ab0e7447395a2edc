"""PostgreSQL failing under rxdb: the machine's server restarted mid-stream, the listener's
and the writer's backends terminated, a client killed mid-transaction, a commit made while
the listener is away. Watches converge on the committed state; statements in flight fail
with rxdb errors carrying the server's SQLSTATE; nothing half-written is ever visible; later
calls work again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import rxdb
from rxdb.engines.postgres import listener
from rxdb.engines.postgres.engine import PostgresEngine
from tests.conftest import Recorder, subscribed
from tests.rxdb.postgres_host_worker import WATCHES, Host
from tests.rxdb.postgres_worker import SERVER, scratch_database
from tests.rxdb.test_postgres_listener import Proxy
from tests.rxdb.test_postgres_transactions import running

pytestmark = pytest.mark.postgres

WATCH = WATCHES["t"]  # count and sum of t, as the workers watch it
LONG = "SELECT pg_sleep(30)"
ADMIN_SHUTDOWN = "57P01"  # what the server says as it ends a session: terminate, shutdown
CLUSTER = ("15", "main")
LOCK = 4242  # an advisory lock a transaction holds


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A scratch database with ``t(id serial, x int)`` (empty) and ``other``."""
    async with scratch_database() as name:
        url = f"{SERVER}/{name}"
        await plain(url, "CREATE TABLE t(id serial PRIMARY KEY, x int)")
        await plain(url, "CREATE TABLE other()")
        yield url


@pytest.fixture
def quick_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listeners made from now on in this process retry a refused connection quickly."""
    tuning = dataclasses.replace(listener.TUNING, backoff_initial=0.02, backoff_max=0.1)
    monkeypatch.setattr(listener, "TUNING", tuning)


async def plain(url: str, sql: str, *args: Any) -> Any:
    """Run ``sql`` on a connection of its own (no rxdb); its first value."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def command(*argv: str) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 60)


async def terminate(url: str, sql: str) -> None:
    """Terminate the backend running ``sql``, and wait until it is gone."""
    assert await plain(
        url, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE query = $1", sql
    )


def membership(db: rxdb.Database) -> listener.Membership:
    assert isinstance(db._engine, PostgresEngine)
    joined = db._engine.changes._membership
    assert joined is not None
    return joined


class TestServerRestart:
    async def test_watches_converge_and_calls_work_again_after_a_restart(
        self, url: str, quick_reconnects: None
    ) -> None:
        async with rxdb.open(url) as db:
            host = await Host.start(url)
            seen: Recorder[Any] = Recorder()
            try:
                with subscribed(db.watch(WATCH), seen):
                    await seen.wait_value([(0, 0)])  # t is empty
                    writing = asyncio.create_task(db.execute(LONG))
                    reading = asyncio.create_task(db.fetch_all("SELECT pg_sleep(29)"))
                    await running(url, LONG, writing)
                    await running(url, "SELECT pg_sleep(29)", reading)
                    try:
                        assert await command("pg_ctlcluster", *CLUSTER, "restart") == 0
                    finally:
                        await server_up()
                    # In flight: failed with the server's word for a shutdown.
                    for work in (writing, reading):
                        with pytest.raises(rxdb.OperationalError) as info:
                            await work
                        assert info.value.sqlstate == ADMIN_SHUTDOWN
                    # A commit while the listeners may still be away: seen all the same.
                    await plain(url, "INSERT INTO t(x) VALUES (1)")
                    await asyncio.gather(seen.wait_value([(1, 1)]), host.sees("t", [[1, 1]]))
                    # Later calls work: the writers connect again.
                    await db.execute("INSERT INTO t(x) VALUES (2)")
                    assert await host.execute("INSERT INTO t(x) VALUES (3)") == {"event": "done"}
                    await asyncio.gather(seen.wait_value([(3, 6)]), host.sees("t", [[3, 6]]))
            finally:
                assert await host.stop() == 0


async def server_up() -> None:
    """Make sure the machine's server runs (start it if a restart left it down)."""
    if await command("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432") != 0:
        await command("pg_ctlcluster", *CLUSTER, "start")
    assert await command("pg_isready", "-q", "-t", "30", "-h", "127.0.0.1", "-p", "5432") == 0


class TestTerminatedBackends:
    async def test_a_terminated_listener_is_replaced_and_watches_converge(self, url: str) -> None:
        async with rxdb.open(url) as db:
            seen: Recorder[Any] = Recorder()
            with subscribed(db.watch(WATCH), seen):
                await seen.wait_value([(0, 0)])  # t is empty
                before = membership(db).statistics()
                await plain(url, "SELECT pg_terminate_backend($1, 5000)", before.backend_pid)
                await plain(url, "INSERT INTO t(x) VALUES (5)")
                await seen.wait_value([(1, 5)])
            after = membership(db).statistics()
            assert after.connects == 2
            assert after.backend_pid != before.backend_pid

    async def test_a_terminated_writer_fails_its_statement_with_the_sqlstate(
        self, url: str
    ) -> None:
        async with rxdb.open(url) as db:
            seen: Recorder[Any] = Recorder()
            with subscribed(db.watch(WATCH), seen):
                await seen.wait_value([(0, 0)])  # t is empty
                writing = asyncio.create_task(db.execute(LONG))
                await running(url, LONG, writing)
                await terminate(url, LONG)
                with pytest.raises(rxdb.OperationalError) as info:
                    await writing
                assert info.value.sqlstate == ADMIN_SHUTDOWN
                await db.execute("INSERT INTO t(x) VALUES (1)")  # on a new connection
                await seen.wait_value([(1, 1)])

    async def test_a_terminated_writer_ends_its_transaction_and_nothing_of_it_shows(
        self, url: str
    ) -> None:
        async with rxdb.open(url) as db:
            seen: Recorder[Any] = Recorder()
            with subscribed(db.watch(WATCH), seen):
                await seen.wait_value([(0, 0)])  # t is empty
                with pytest.raises(rxdb.TransactionAbortedError):
                    await terminated_inside_a_transaction(db, url)
                await db.execute("INSERT INTO t(x) VALUES (1)")
                await seen.wait_value([(1, 1)])
            assert await db.fetch_all("SELECT x FROM t") == [(1,)]
            assert all(rows == [(0, 0)] for rows in seen.values[:-1])


async def terminated_inside_a_transaction(db: rxdb.Database, url: str) -> None:
    """Write in a transaction block, lose the writer's backend, then try to go on."""
    async with db.transaction():
        await db.execute("INSERT INTO t(x) VALUES (666)")
        writing = asyncio.create_task(db.execute(LONG))
        await running(url, LONG, writing)
        await terminate(url, LONG)
        with pytest.raises(rxdb.OperationalError) as info:
            await writing
        assert info.value.sqlstate == ADMIN_SHUTDOWN
        await db.execute("INSERT INTO t(x) VALUES (667)")  # the transaction is gone


class TestKilledClient:
    async def test_a_client_killed_mid_transaction_leaves_nothing_behind(self, url: str) -> None:
        async with rxdb.open(url) as db:
            doomed, survivor = await asyncio.gather(Host.start(url), Host.start(url))
            seen: Recorder[Any] = Recorder()
            try:
                with subscribed(db.watch(WATCH), seen):
                    await seen.wait_value([(0, 0)])  # t is empty
                    await doomed.hold(
                        "INSERT INTO t(x) VALUES (666)", f"SELECT pg_advisory_xact_lock({LOCK})"
                    )
                    doomed.kill()
                    assert await doomed.stop() == -signal.SIGKILL
                    # The lock comes free once the server has rolled the transaction back.
                    async with db.transaction():
                        await db.execute(f"SELECT pg_advisory_xact_lock({LOCK})")
                    assert await db.fetch_one("SELECT count(*) FROM t") == (0,)
                    assert await survivor.execute("INSERT INTO t(x) VALUES (1)") == {
                        "event": "done"
                    }
                    await asyncio.gather(seen.wait_value([(1, 1)]), survivor.sees("t", [[1, 1]]))
                assert all(rows in ([(0, 0)], [(1, 1)]) for rows in seen.values)
            finally:
                assert await survivor.stop() == 0


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    proxying = Proxy()
    await proxying.start()
    yield proxying
    await proxying.close()


class TestLostNotification:
    async def test_a_commit_made_while_the_listener_is_away_is_seen_when_it_returns(
        self, url: str, proxy: Proxy, quick_reconnects: None
    ) -> None:
        assert proxy._server is not None
        port = proxy._server.sockets[0].getsockname()[1]
        async with rxdb.open(url.replace(":5432/", f":{port}/")) as db:
            seen: Recorder[Any] = Recorder()
            stream = db.watch(WATCH)
            with subscribed(stream, seen):
                await seen.wait_value([(0, 0)])  # t is empty
                # The listener is terminated and may not come back (its reconnects are
                # refused); the commit's notification reaches none of this process.
                proxy.refusing = True
                pid = membership(db).statistics().backend_pid
                await plain(url, "SELECT pg_terminate_backend($1, 5000)", pid)
                await asyncio.wait_for(proxy.refused_twice.wait(), 10)
                await plain(url, "INSERT INTO t(x) VALUES (4)")
                assert not membership(db).statistics().connected
                assert stream.statistics().runs == 1
                # Back: every watch runs again, and finds the commit.
                proxy.refusing = False
                await seen.wait_value([(1, 4)])
                assert stream.statistics().runs == 2

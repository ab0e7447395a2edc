"""Several app servers on one PostgreSQL database: separate processes (each its own
``rxdb.open("postgresql://...")``, as separate hosts would be) and this one. A commit in any
of them, by a plain asyncpg connection, or by ``psql`` refreshes the watches of every one;
a watch of an unrelated table is not re-run.

Every process reaches the server on 127.0.0.1: what makes them separate hosts for rxdb is
that they share nothing but the server (no hub, no socket between them).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

import rxdb
from tests.conftest import Recorder, subscribed
from tests.rxdb.postgres_host_worker import WATCHES, Host
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres

HOSTS = 3


@dataclass
class Cluster:
    """The scratch database's URL, this process's database and watches, and the workers."""

    url: str
    db: rxdb.Database
    hosts: list[Host]
    t: Recorder[Any]
    other: Recorder[Any]
    streams: dict[str, rxdb.QueryStream]

    async def all_see(self, total: int, n: int) -> None:
        """Wait until every process's watch of ``t`` shows ``n`` rows adding up to ``total``."""
        await asyncio.gather(
            self.t.wait_value([(n, total)]), *(host.sees("t", [[n, total]]) for host in self.hosts)
        )


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with scratch_database() as name:
        url = f"{SERVER}/{name}"
        # Tables before anyone opens: no schema change reaches a watch during a test.
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE t(id serial PRIMARY KEY, x int)")
            await conn.execute("CREATE TABLE other(id serial PRIMARY KEY)")
        finally:
            await conn.close()
        async with rxdb.open(url) as db:
            hosts = list(await asyncio.gather(*(Host.start(url) for _ in range(HOSTS))))
            try:
                t: Recorder[Any] = Recorder()
                other: Recorder[Any] = Recorder()
                streams = {name: db.watch(sql) for name, sql in WATCHES.items()}
                with subscribed(streams["t"], t), subscribed(streams["other"], other):
                    await t.wait_value([(0, 0)])
                    await other.wait_value([(0,)])
                    yield Cluster(url, db, hosts, t, other, streams)
            finally:
                codes = await asyncio.gather(*(host.stop() for host in hosts))
        assert codes == [0] * HOSTS


async def psql(url: str, sql: str) -> None:
    """Commit ``sql`` through the ``psql`` program."""
    process = await asyncio.create_subprocess_exec(
        "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql
    )
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def plain(url: str, sql: str) -> None:
    """Commit ``sql`` through a plain asyncpg connection: no rxdb."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class TestSeveralHosts:
    async def test_a_commit_in_any_process_refreshes_every_other(self, cluster: Cluster) -> None:
        total = 0
        for n, host in enumerate(cluster.hosts, start=1):
            assert await host.execute(f"INSERT INTO t(x) VALUES ({10**n})") == {"event": "done"}
            total += 10**n
            await cluster.all_see(total, n)
        await cluster.db.execute("INSERT INTO t(x) VALUES (1)")
        await cluster.all_see(total + 1, HOSTS + 1)

    async def test_a_transaction_in_one_process_reaches_the_others_whole(
        self, cluster: Cluster
    ) -> None:
        async with cluster.db.transaction():
            await cluster.db.execute("INSERT INTO t(x) VALUES (1)")
            await cluster.db.execute("INSERT INTO t(x) VALUES (2)")
        await cluster.all_see(3, 2)
        # Each emission is a committed state: never one row without the other.
        for host in cluster.hosts:
            assert host.rows["t"] == [[2, 3]]
        assert all(rows in ([(0, 0)], [(2, 3)]) for rows in cluster.t.values)

    async def test_writers_that_are_not_rxdb_refresh_every_process(self, cluster: Cluster) -> None:
        await plain(cluster.url, "INSERT INTO t(x) VALUES (5)")
        await cluster.all_see(5, 1)
        await psql(cluster.url, "INSERT INTO t(x) VALUES (7)")
        await cluster.all_see(12, 2)
        await psql(cluster.url, "DELETE FROM t")
        await cluster.all_see(0, 0)

    async def test_a_watch_of_an_unrelated_table_is_not_run_again(self, cluster: Cluster) -> None:
        await cluster.hosts[0].execute("INSERT INTO t(x) VALUES (1)")
        await plain(cluster.url, "INSERT INTO t(x) VALUES (2)")
        await psql(cluster.url, "UPDATE t SET x = x + 1")
        await cluster.all_see(5, 2)
        # The commits reached every process (its watch of t shows them): a re-run of the
        # watch of other would have been scheduled by then.
        assert cluster.streams["other"].statistics().runs == 1
        for host in cluster.hosts:
            stats = await host.statistics()
            assert (stats["other"]["runs"], stats["other"]["running"]) == (1, False)
        # The count is not blind: a commit to other does re-run it, everywhere.
        await psql(cluster.url, "INSERT INTO other DEFAULT VALUES")
        await asyncio.gather(
            cluster.other.wait_value([(1,)]), *(h.sees("other", [[1]]) for h in cluster.hosts)
        )
        assert cluster.streams["other"].statistics().runs == 2
        for host in cluster.hosts:
            assert (await host.statistics())["other"]["runs"] == 2


class TestHandles:
    async def test_a_handle_and_the_database_show_no_password(self) -> None:
        async with scratch_database() as name:
            # The machine's server trusts local connections: the password is never asked.
            url = f"postgresql://postgres:s3cret@127.0.0.1:5432/{name}"
            async with rxdb.open(url) as db:
                handle = await db.serializable_connection()
                shown = f"'postgresql://postgres@127.0.0.1:5432/{name}'"
                assert repr(handle) == f"<rxdb.ConnectionHandle {shown} pid={os.getpid()}>"
                assert repr(db) == f"<rxdb.Database {shown}>"
                assert db.path == url  # as given: documented to hold it
                blocking = await asyncio.to_thread(handle.connect_sync)
                assert repr(blocking) == f"<rxdb.SyncDatabase of <rxdb.Database {shown}>>"
                await asyncio.to_thread(blocking.close)

                async def bridged() -> str:  # on a loop of its own, in another thread
                    async with await handle.connect() as there:
                        return repr(there)

                assert await asyncio.to_thread(asyncio.run, bridged()) == (
                    f"<rxdb.BridgedDatabase of <rxdb.Database {shown}>>"
                )

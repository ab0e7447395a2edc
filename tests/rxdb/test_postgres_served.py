"""A PostgreSQL database served with ``rxdb.serve``: a remote client runs statements, its
watch refreshes on every writer's commits, and the server's errors reach it with their
SQLSTATE (the wire carries ``DatabaseError.sqlstate``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import rxdb
from rxdb.remote.client import RemoteDatabase
from rxdb.remote.server import serve
from tests.conftest import Recorder, subscribed
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres

COUNT = "SELECT count(*) FROM t"


@pytest.fixture
async def served() -> AsyncIterator[tuple[rxdb.Database, RemoteDatabase, str]]:
    """A database with ``t(id int primary key)``, served; a client connected to it; the URL."""
    async with scratch_database() as name:
        url = f"{SERVER}/{name}"
        async with rxdb.open(url) as db:
            await db.execute("CREATE TABLE t(id int PRIMARY KEY)")
            server = await serve(db)
            try:
                client = await server.handle.connect()
                try:
                    yield db, client, url
                finally:
                    await client.close()
            finally:
                await server.shutdown_all()


class TestServed:
    async def test_a_client_runs_statements(
        self, served: tuple[rxdb.Database, RemoteDatabase, str]
    ) -> None:
        db, client, _ = served
        assert (await client.execute("INSERT INTO t VALUES (?)", (1,))).rowcount == 1
        assert await client.execute_many("INSERT INTO t VALUES (:id)", [{"id": 2}, {"id": 3}]) == 2
        async with client.transaction():
            await client.execute("DELETE FROM t WHERE id = 3")
        assert await client.fetch_all("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
        assert await db.fetch_one(COUNT) == (2,)

    async def test_a_clients_watch_refreshes_on_every_writers_commits(
        self, served: tuple[rxdb.Database, RemoteDatabase, str]
    ) -> None:
        db, client, url = served
        seen: Recorder[Any] = Recorder()
        with subscribed(client.watch(COUNT), seen):
            await seen.wait_value([(0,)])
            await client.execute("INSERT INTO t VALUES (1)")
            await seen.wait_value([(1,)])
            await db.execute("INSERT INTO t VALUES (2)")
            await seen.wait_value([(2,)])
            conn = await asyncpg.connect(url)  # a writer that is not rxdb
            try:
                await conn.execute("INSERT INTO t VALUES (3)")
            finally:
                await conn.close()
            await seen.wait_value([(3,)])
        assert seen.errors == []

    async def test_errors_reach_the_client_with_their_sqlstate(
        self, served: tuple[rxdb.Database, RemoteDatabase, str]
    ) -> None:
        _, client, _ = served
        await client.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(rxdb.IntegrityError) as duplicate:
            await client.execute("INSERT INTO t VALUES (1)")
        assert duplicate.value.sqlstate == "23505"  # unique_violation
        assert duplicate.value.sql == "INSERT INTO t VALUES (1)"
        with pytest.raises(rxdb.OperationalError) as missing:
            await client.fetch_all("SELECT * FROM missing")
        assert missing.value.sqlstate == "42P01"  # undefined_table
        seen: Recorder[Any] = Recorder()
        with subscribed(client.watch("SELECT 1 / (SELECT count(*) FROM t WHERE id < 0)"), seen):
            await seen.wait_for(lambda r: bool(r.errors))
        assert isinstance(seen.errors[0], rxdb.OperationalError)
        assert seen.errors[0].sqlstate == "22012"  # division_by_zero, as a watch's event


async def test_a_client_never_sees_the_servers_password() -> None:
    async with scratch_database() as name:
        url = f"{SERVER}/{name}".replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
        async with rxdb.open(url) as db:  # trust auth: the password is not checked, only carried
            server = await serve(db)
            try:
                client = await server.handle.connect()
                try:
                    assert "s3cret" not in client.path
                    assert client.path == f"{SERVER}/{name}"
                finally:
                    await client.close()
            finally:
                await server.shutdown_all()

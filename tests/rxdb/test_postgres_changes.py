"""What reaches watches and ``table_updates`` from a PostgreSQL database: this engine's
commits and every other writer's, through the capture triggers and the listener; and,
where rxdb may not install them, its own commits announced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import rxdb
from rxdb.bus import Bus
from rxdb.engines.postgres.changes import FOREIGN
from rxdb.engines.postgres.engine import PostgresEngine
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from tests.conftest import Recorder, subscribed
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres

INSERT, UPDATE, DELETE = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE
COUNT = "SELECT count(*) FROM t"


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with scratch_database() as name:
        yield f"{SERVER}/{name}"


@pytest.fixture
async def pg(url: str) -> AsyncIterator[rxdb.Database]:
    """A database with ``t(id serial, x int)`` holding one row, ``x = 1``."""
    async with rxdb.open(url) as db:
        await db.execute("CREATE TABLE t(id serial PRIMARY KEY, x int)")
        await db.execute("INSERT INTO t(x) VALUES (1)")
        yield db


def engine(db: rxdb.Database) -> PostgresEngine:
    assert isinstance(db._engine, PostgresEngine)
    return db._engine


async def drained(db: rxdb.Database, updates: Recorder[NotifyTablesUpdated]) -> None:
    """Wait until every message of earlier commits reached ``updates`` (subscribed to every
    table of ``db``), then forget them: a statement that changes nothing still notifies, and
    notifications keep their commits' order."""
    await db.execute("UPDATE t SET x = x WHERE false")
    await updates.wait_for(
        lambda r: any(TableUpdate("public.t", UPDATE) in m.updates for m in r.values)
    )
    updates.values.clear()


async def foreign(url: str, sql: str) -> None:
    """Commit ``sql`` through a plain asyncpg connection: a writer that is not rxdb."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class TestCapture:
    async def test_open_installs_capture_with_its_event_trigger(self, pg: rxdb.Database) -> None:
        changes = engine(pg).changes
        assert (changes.mode, changes.event_trigger) == ("capture", True)

    async def test_a_foreign_commit_refreshes_a_watch(self, pg: rxdb.Database, url: str) -> None:
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.watch(COUNT), seen):
            await seen.wait_value([(1,)])
            await foreign(url, "INSERT INTO t(x) VALUES (2)")
            await seen.wait_value([(2,)])

    async def test_messages_name_the_table_and_kind_and_who_wrote(
        self, pg: rxdb.Database, url: str
    ) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(pg.table_updates(), updates):
            await drained(pg, updates)
            await pg.execute("UPDATE t SET x = 2")
            await foreign(url, "DELETE FROM t")
            await updates.wait_count(2)
        own, other = updates.values
        assert own.origin == pg.origin
        assert own.updates == {TableUpdate("public.t", UPDATE), TableUpdate("t", UPDATE)}
        assert other.origin == FOREIGN
        assert other.updates == {TableUpdate("public.t", DELETE), TableUpdate("t", DELETE)}

    async def test_one_message_per_transaction_none_for_a_rollback(self, pg: rxdb.Database) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()

        async def rolled_back() -> None:
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (9)")
                raise LookupError

        inserted = {TableUpdate("public.t", INSERT), TableUpdate("t", INSERT)}
        deleted = {TableUpdate("public.t", DELETE), TableUpdate("t", DELETE)}
        with subscribed(pg.table_updates(["t"]), updates):
            await drained(pg, updates)
            async with pg.transaction():
                await pg.execute("INSERT INTO t(x) VALUES (2)")
                await pg.execute("INSERT INTO t(x) VALUES (3)")
            await updates.wait_count(1)
            with pytest.raises(LookupError):
                await rolled_back()
            await pg.execute("DELETE FROM t WHERE x = 3")  # a marker: all came before it
            await updates.wait_for(lambda r: any(deleted <= m.updates for m in r.values))
        # The listener merges notifications that arrive together (a slow thread may find the
        # rollback's, had it leaked, in one read with the marker's): so the rollback is judged
        # by what came after the transaction's own message, merged or not.
        first, *rest = updates.values
        assert first.updates == inserted
        assert set().union(*(m.updates for m in rest)) == deleted

    async def test_a_watch_of_a_new_table_hears_its_writes(
        self, pg: rxdb.Database, url: str
    ) -> None:
        await foreign(url, "CREATE TABLE fresh(v int)")
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.watch("SELECT sum(v) FROM fresh"), seen):
            await seen.wait_value([(None,)])
            await foreign(url, "INSERT INTO fresh VALUES (4)")
            await seen.wait_value([(4,)])

    async def test_a_schema_change_is_everything(self, pg: rxdb.Database, url: str) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(pg.table_updates(), updates):
            await foreign(url, "ALTER TABLE t ADD COLUMN y int")
            await updates.wait_for(lambda r: any(m.everything for m in r.values))

    async def test_notify_updates_of_a_bare_name_reaches_the_qualified_table(
        self, pg: rxdb.Database
    ) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(pg.table_updates(["public.t"]), updates):
            await pg.notify_updates("t")
            await updates.wait_count(1)
        assert updates.values[0].updates == {TableUpdate("t"), TableUpdate("public.t")}


class TestReadSets:
    async def test_a_watch_depends_on_the_tables_it_reads(self, pg: rxdb.Database) -> None:
        await pg.execute("CREATE TABLE u(y int)")
        await pg.execute("CREATE VIEW v AS SELECT x FROM t")
        read_set = engine(pg).read_set
        assert await read_set("SELECT count(*) FROM t") == frozenset({"public.t"})
        assert await read_set("SELECT * FROM v JOIN u ON y = x") == frozenset(
            {"public.t", "public.u"}
        )
        assert await read_set("SELECT * FROM generate_series(1, 3)") == frozenset()
        assert await read_set("SELECT nextval('t_id_seq')") is None  # moves unannounced

    async def test_only_queries_can_be_watched(self, pg: rxdb.Database) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="only queries"):
            await engine(pg).read_set("DELETE FROM t")

    async def test_read_sets_follow_schema_changes(self, pg: rxdb.Database, url: str) -> None:
        await pg.execute("CREATE TABLE u(y int)")
        await pg.execute("CREATE VIEW v AS SELECT x FROM t")
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.watch("SELECT count(*) FROM v"), seen):
            await seen.wait_value([(1,)])
            await foreign(url, "CREATE OR REPLACE VIEW v AS SELECT y AS x FROM u")
            await seen.wait_value([(0,)])
            await foreign(url, "INSERT INTO u VALUES (1), (2)")  # now v reads u
            await seen.wait_value([(2,)])
        assert await engine(pg).read_set("SELECT * FROM v") == frozenset({"public.u"})


class TestWithoutCapture:
    async def test_untracking_removes_capture_and_announces_own_commits(
        self, pg: rxdb.Database
    ) -> None:
        await pg.untrack_foreign_writes()
        assert engine(pg).changes.mode == "announce"
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.watch(COUNT), seen):
            await seen.wait_value([(1,)])
            await pg.execute("INSERT INTO t(x) VALUES (2)")
            await seen.wait_value([(2,)])
        await pg.track_foreign_writes()
        assert engine(pg).changes.mode == "capture"

    async def test_track_foreign_writes_false_installs_nothing(self, url: str) -> None:
        async with rxdb.open(url, track_foreign_writes=False) as db:
            assert engine(db).changes.mode == "announce"
            await db.execute("CREATE TABLE t(x int)")
            assert await db.fetch_one("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == (
                0,
            )
            seen: Recorder[Any] = Recorder()
            with subscribed(db.watch("SELECT count(*) FROM t"), seen):
                await seen.wait_value([(0,)])
                async with db.transaction():  # announced inside the transaction
                    await db.execute("INSERT INTO t VALUES (1)")
                await seen.wait_value([(1,)])

    async def test_a_role_that_may_not_install_capture_announces_to_every_process(
        self, url: str
    ) -> None:
        role = f"rxdb_plain_{url.rsplit('_', 1)[1][:12]}"
        await foreign(url, "CREATE TABLE t(x int)")
        await foreign(url, f"CREATE ROLE {role} LOGIN; GRANT ALL ON t TO {role}")
        plain = url.replace("postgres@", f"{role}@")
        try:
            # The second database has a bus of its own, as another process would.
            async with rxdb.open(plain) as db, rxdb.open(plain, bus=Bus()) as other:
                assert engine(db).changes.mode == "announce"
                mine: Recorder[Any] = Recorder()
                theirs: Recorder[Any] = Recorder()
                with (
                    subscribed(db.watch("SELECT count(*) FROM t"), mine),
                    subscribed(other.watch("SELECT count(*) FROM t"), theirs),
                ):
                    await mine.wait_value([(0,)])
                    await theirs.wait_value([(0,)])
                    await db.execute("INSERT INTO t VALUES (1)")
                    await mine.wait_value([(1,)])
                    await theirs.wait_value([(1,)])
            with pytest.raises(rxdb.OperationalError) as info:
                await rxdb.open(plain, track_foreign_writes=True)
            assert info.value.sqlstate == "42501"  # insufficient_privilege
        finally:
            await foreign(url, f"DROP OWNED BY {role}; DROP ROLE {role}")

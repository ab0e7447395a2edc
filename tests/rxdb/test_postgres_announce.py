"""Announce mode on PostgreSQL (no capture triggers): each commit of an engine announced with
what it may have written, worked out from the statements and the catalog; and one message
per commit per process however many databases of the process open the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import rxdb
from parser.postgres import PgCatalog, PgRelation, RelationKind
from parser.postgres.catalog import PgReference, ReferentialAction
from rxdb.bus import Bus
from rxdb.engines.postgres.capture import SCHEMA as CAPTURE_SCHEMA
from rxdb.engines.postgres.changes import FOREIGN
from rxdb.engines.postgres.engine import PostgresEngine
from rxdb.engines.postgres.write_sets import classify, write_set
from rxdb.streams import QueryStream
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from tests.conftest import Recorder, settle, subscribed
from tests.rxdb.postgres_worker import SERVER, scratch_database

INSERT, UPDATE, DELETE = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE
CASCADE, SET_NULL, NO_ACTION = (
    ReferentialAction.CASCADE,
    ReferentialAction.SET_NULL,
    ReferentialAction.NO_ACTION,
)
Written = set[tuple[str, UpdateKind | None]]


# -- write sets on catalogs written by hand ---------------------------------------------------


def written(sql: str, *relations: PgRelation, functions: tuple[str, ...] = ()) -> Written | None:
    """The write set of ``sql`` as ``{(relation, kind)}``; ``None``: anything."""
    catalog = PgCatalog(("pg_catalog", "app"), relations, functions=[("app", f) for f in functions])
    analysis = classify(sql)
    found = None if analysis is None else write_set(analysis, sql, catalog)
    return None if found is None else {(f"{w.schema}.{w.name}", w.kind) for w in found.writes}


def table(name: str, *references: PgReference, **facts: Any) -> PgRelation:
    """``app.name``, referenced by ``references``."""
    return PgRelation("app", name, RelationKind.TABLE, referenced_by=references, **facts)


def view(name: str, definition: str, **facts: Any) -> PgRelation:
    return PgRelation("app", name, RelationKind.VIEW, definition, **facts)


def fk(
    name: str, on_delete: ReferentialAction, on_update: ReferentialAction = NO_ACTION
) -> PgReference:
    """A foreign key of ``app.name`` referencing the table it is given to."""
    return PgReference("app", name, on_update, on_delete)


class TestWriteSets:
    def test_a_write_names_its_target_with_its_kind(self) -> None:
        assert written("INSERT INTO a VALUES (1)", table("a"), table("b")) == {("app.a", INSERT)}
        assert written("UPDATE a SET x = 1", table("a")) == {("app.a", UPDATE)}
        assert written("DELETE FROM a", table("a")) == {("app.a", DELETE)}

    def test_an_upsert_may_update_and_a_merge_do_anything(self) -> None:
        upsert = "INSERT INTO a VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 2"
        assert written(upsert, table("a")) == {("app.a", INSERT), ("app.a", UPDATE)}
        merge = "MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE"
        assert written(merge, table("a"), table("b")) == {("app.a", None)}

    def test_a_query_writes_nothing(self) -> None:
        assert written("SELECT * FROM a", table("a")) == set()

    def test_cascades_follow_each_action_transitively(self) -> None:
        relations = (
            table("parent", fk("child", CASCADE), fk("nulled", SET_NULL), fk("kept", NO_ACTION)),
            table("child", fk("grandchild", CASCADE)),
            table("grandchild"),
            table("nulled", fk("after_null", CASCADE)),
            table("after_null"),
            table("kept"),
        )
        assert written("DELETE FROM parent", *relations) == {
            ("app.parent", DELETE),
            ("app.child", DELETE),
            ("app.grandchild", DELETE),
            ("app.nulled", UPDATE),  # SET NULL updates; ON DELETE of what it references stays
        }
        assert written("INSERT INTO parent VALUES (1)", *relations) == {("app.parent", INSERT)}

    def test_on_update_actions_follow_updates(self) -> None:
        parent = table("parent", fk("child", NO_ACTION, on_update=CASCADE))
        assert written("UPDATE parent SET id = 2", parent, table("child")) == {
            ("app.parent", UPDATE),
            ("app.child", UPDATE),
        }
        assert written("DELETE FROM parent", parent, table("child")) == {("app.parent", DELETE)}

    def test_truncate_empties_every_referencing_table(self) -> None:
        relations = (table("parent", fk("child", NO_ACTION)), table("child"))
        assert written("TRUNCATE parent CASCADE", *relations) == {
            ("app.parent", DELETE),
            ("app.child", DELETE),
        }

    def test_a_partition_names_its_ancestors(self) -> None:
        relations = (
            PgRelation("app", "p", RelationKind.PARTITIONED_TABLE),
            PgRelation("app", "p1", RelationKind.PARTITIONED_TABLE, parents=(("app", "p"),)),
            table("p1a", parents=(("app", "p1"),)),
        )
        assert written("INSERT INTO p1a VALUES (1)", *relations) == {
            ("app.p1a", INSERT),
            ("app.p1", INSERT),
            ("app.p", INSERT),
        }

    def test_a_view_writes_its_base_tables(self) -> None:
        relations = (table("a"), view("va", "SELECT * FROM app.a"), view("vva", "SELECT * FROM va"))
        assert written("INSERT INTO vva VALUES (1)", *relations) == {("app.a", INSERT)}

    def test_code_the_text_does_not_show_means_anything(self) -> None:
        trigger = table("a", functions=(("app", "audit"),))
        assert written("INSERT INTO a VALUES (1)", trigger) is None
        assert written("INSERT INTO a VALUES (1)", table("a", rules=True)) is None
        instead = view("va", "SELECT * FROM app.a", functions=(("app", "instead"),))
        nested = view("vva", "SELECT * FROM va")
        assert written("DELETE FROM vva", table("a"), instead, nested) is None
        cascading_into_trigger = (table("parent", fk("a", CASCADE)), trigger)
        assert written("DELETE FROM parent", *cascading_into_trigger) is None

    def test_rxdbs_own_capture_triggers_write_nothing(self) -> None:
        captured = table("a", functions=((CAPTURE_SCHEMA, "notify_change"),))
        assert written("INSERT INTO a VALUES (1)", captured) == {("app.a", INSERT)}

    def test_calls_that_may_write_mean_anything(self) -> None:
        assert written("SELECT f()", table("a"), functions=("f",)) is None
        assert written("INSERT INTO a VALUES (app.f())", table("a"), functions=("f",)) is None
        assert written("SELECT g()", table("a"), functions=("f",)) == set()  # IMMUTABLE
        assert written("SELECT query_to_xml('SELECT 1', true, true, '')", table("a")) is None

    @pytest.mark.parametrize(
        "sql",
        [
            "DO $$ BEGIN DELETE FROM a; END $$",
            "CALL p()",
            "EXECUTE prepared(1)",
            "CREATE TABLE b (x int)",
            "DECLARE c CURSOR FOR SELECT f() FROM a",
            "FETCH 10 FROM c",
            "COMMIT PREPARED 'x'",
            "INSERT INTO nowhere VALUES (1)",
        ],
    )
    def test_statements_that_may_write_anything(self, sql: str) -> None:
        assert written(sql, table("a")) is None

    def test_a_script_names_every_write_with_any_kind(self) -> None:
        script = "SET search_path TO app; INSERT INTO a VALUES (1); DELETE FROM b"
        assert written(script, table("a"), table("b")) == {("app.a", None), ("app.b", None)}


# -- against the machine's server ---------------------------------------------------------------


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with scratch_database() as name:
        yield f"{SERVER}/{name}"


SCHEMA = """
CREATE TABLE parent(id int PRIMARY KEY);
CREATE TABLE a(id serial PRIMARY KEY, parent int REFERENCES parent ON DELETE CASCADE);
CREATE TABLE b(x int);
CREATE TABLE marker(x int);
CREATE VIEW va AS SELECT id, parent FROM a;
CREATE TABLE audited(x int);
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO a(parent) VALUES (NULL); RETURN NULL; END $$;
CREATE TRIGGER audit AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION audit();
CREATE PROCEDURE add_a() LANGUAGE sql AS $$ INSERT INTO a(parent) VALUES (NULL) $$;
CREATE TABLE p(id int, x int) PARTITION BY RANGE (id);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
INSERT INTO parent VALUES (1), (2);
INSERT INTO a(parent) VALUES (1);
CREATE SCHEMA postgres;  -- empty, and first on the search path ("$user")
"""


async def foreign(url: str, sql: str) -> None:
    """Commit ``sql`` through a plain asyncpg connection: nobody tells rxdb."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def pg(url: str) -> AsyncIterator[rxdb.Database]:
    """A database in announce mode holding :data:`SCHEMA`: ``a`` has one row, of parent 1.
    The schema is made first: DDL after the listener joined would bring it (within a check
    interval) a message of its own."""
    await foreign(url, SCHEMA)
    async with rxdb.open(url, track_foreign_writes=False) as db:
        assert engine(db).changes.mode == "announce"
        yield db


def engine(db: rxdb.Database) -> PostgresEngine:
    assert isinstance(db._engine, PostgresEngine)
    return db._engine


COUNT_A = "SELECT count(*) FROM a"


def qualified(*updates: tuple[str, UpdateKind | None]) -> set[TableUpdate]:
    """Each ``public`` table as announced: qualified and bare."""
    return {TableUpdate(f"public.{t}", k) for t, k in updates} | {
        TableUpdate(t, k) for t, k in updates
    }


async def message_after(
    db: rxdb.Database, updates: Recorder[NotifyTablesUpdated], sql: str
) -> NotifyTablesUpdated:
    """The one message ``db`` publishes for the commit of ``sql`` to ``updates`` (of every
    table of ``db``): a marker commit after it proves nothing else came. Messages of other
    origins (the listener's periodic check of the schema) are left out."""
    await settle(db)
    updates.values.clear()
    await db.execute(sql)
    await db.execute("INSERT INTO marker VALUES (1)")
    marker = qualified(("marker", INSERT))
    await updates.wait_for(lambda r: any(m.updates == marker for m in r.values))
    *found, last = [m for m in updates.values if m.origin == db.origin]
    assert last.updates == marker
    assert len(found) == 1, found
    return found[0]


async def runs_after(db: rxdb.Database, stream: QueryStream, sql: str) -> int:
    """How many times the watch ``stream`` ran for the commit of ``sql``."""
    await settle(db)
    before = stream.statistics().runs
    await db.execute(sql)
    await settle(db)  # the message is on the loop already: published at the commit
    return stream.statistics().runs - before


@pytest.mark.postgres
class TestAnnouncedWrites:
    async def test_a_watch_is_not_run_again_by_a_write_to_another_table(
        self, pg: rxdb.Database
    ) -> None:
        seen: Recorder[Any] = Recorder()
        stream = pg.watch(COUNT_A)
        with subscribed(stream, seen):
            await seen.wait_value([(1,)])
            assert await runs_after(pg, stream, "INSERT INTO b VALUES (1)") == 0
            assert await runs_after(pg, stream, "INSERT INTO a(parent) VALUES (2)") == 1
            assert seen.values[-1] == [(2,)]

    async def test_a_message_names_the_tables_and_kinds_written(self, pg: rxdb.Database) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(pg.table_updates(), updates):
            message = await message_after(pg, updates, "UPDATE b SET x = 2")
        assert (message.origin, message.everything) == (pg.origin, False)
        assert message.updates == qualified(("b", UPDATE))

    async def test_a_cascade_delete_reaches_a_watch_of_the_child(self, pg: rxdb.Database) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.table_updates(), updates), subscribed(pg.watch(COUNT_A), seen):
            await seen.wait_value([(1,)])
            message = await message_after(pg, updates, "DELETE FROM parent WHERE id = 1")
            await seen.wait_value([(0,)])
        assert message.updates == qualified(("parent", DELETE), ("a", DELETE))

    async def test_a_write_through_a_view_reaches_a_watch_of_its_table(
        self, pg: rxdb.Database
    ) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.table_updates(), updates), subscribed(pg.watch(COUNT_A), seen):
            await seen.wait_value([(1,)])
            message = await message_after(pg, updates, "INSERT INTO va(id, parent) VALUES (9, 2)")
            await seen.wait_value([(2,)])
        assert message.updates == qualified(("a", INSERT))

    @pytest.mark.parametrize(
        "sql",
        [
            "INSERT INTO audited VALUES (1)",  # its trigger writes a
            "DO $$ BEGIN INSERT INTO a(parent) VALUES (NULL); END $$",
            "CALL add_a()",
        ],
    )
    async def test_code_the_text_does_not_show_is_everything(
        self, pg: rxdb.Database, sql: str
    ) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        seen: Recorder[Any] = Recorder()
        with subscribed(pg.table_updates(), updates), subscribed(pg.watch(COUNT_A), seen):
            await seen.wait_value([(1,)])
            message = await message_after(pg, updates, sql)
            await seen.wait_value([(2,)])
        assert message.everything

    async def test_a_partition_write_reaches_a_watch_of_the_parent(self, pg: rxdb.Database) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        seen: Recorder[Any] = Recorder()
        with (
            subscribed(pg.table_updates(), updates),
            subscribed(pg.watch("SELECT count(*) FROM p"), seen),
        ):
            await seen.wait_value([(0,)])
            message = await message_after(pg, updates, "INSERT INTO p1 VALUES (1, 1)")
            await seen.wait_value([(1,)])
        assert message.updates == qualified(("p1", INSERT), ("p", INSERT))

    async def test_a_rollback_announces_nothing(self, pg: rxdb.Database) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()

        async def rolled_back() -> None:
            async with pg.transaction():
                await pg.execute("INSERT INTO a(parent) VALUES (2)")
                raise LookupError

        with subscribed(pg.table_updates(), updates):
            with pytest.raises(LookupError):
                await rolled_back()
            with pytest.raises(rxdb.DatabaseError):
                await pg.execute("INSERT INTO a(parent) VALUES (99)")  # no such parent
            message = await message_after(pg, updates, "INSERT INTO b VALUES (1)")
        assert message.updates == qualified(("b", INSERT))

    async def test_a_transaction_is_one_message_a_savepoint_rolled_back_included(
        self, pg: rxdb.Database
    ) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()

        async def rolled_back() -> None:
            async with pg.transaction():
                await pg.execute("DELETE FROM parent WHERE id = 2")
                raise LookupError

        with subscribed(pg.table_updates(), updates):
            await settle(pg)
            updates.values.clear()
            async with pg.transaction():
                await pg.execute("INSERT INTO b VALUES (1)")
                with pytest.raises(LookupError):
                    await rolled_back()
            await updates.wait_count(1)
            await settle(pg)
        [message] = updates.values
        # Over-announced (the savepoint's writes are gone), never under.
        assert message.updates == qualified(("b", INSERT), ("parent", DELETE), ("a", DELETE))

    @pytest.mark.parametrize(
        "ddl",
        [
            "CREATE TRIGGER audit AFTER INSERT ON b EXECUTE FUNCTION audit()",
            "ALTER TABLE b ADD PRIMARY KEY (x);"
            " CREATE TABLE refers(x int REFERENCES b ON DELETE CASCADE)",
            "CREATE TABLE postgres.b(x int)",  # what b means now
        ],
        ids=["trigger", "foreign-key", "shadowing-name"],
    )
    async def test_a_change_by_another_session_is_not_missed(
        self, pg: rxdb.Database, url: str, ddl: str
    ) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(pg.table_updates(), updates):
            message = await message_after(pg, updates, "INSERT INTO b VALUES (1)")
            assert not message.everything  # the catalog is read, and holds no surprise
            await foreign(url, ddl)  # nobody tells this process (for a check interval)
            message = await message_after(pg, updates, "INSERT INTO b VALUES (2)")
        assert message.everything  # the facts the write set rested on changed

    async def test_reading_the_catalog_in_a_transaction_keeps_no_locks(
        self, pg: rxdb.Database, url: str
    ) -> None:
        async with pg.transaction():
            await pg.execute("INSERT INTO b VALUES (1)")  # the first: the catalog is read
            row = await pg.fetch_one("SELECT pg_backend_pid()")
            assert row is not None
            conn = await asyncpg.connect(url)
            try:
                held = await conn.fetchval(
                    "SELECT array_agg(relation::regclass::text ORDER BY 1) FROM pg_locks"
                    " WHERE pid = $1 AND locktype = 'relation' AND relation >= 16384",
                    row[0],
                )
            finally:
                await conn.close()
        assert held == ["b"]  # not the views of the catalog and what they read

    async def test_a_serializable_transaction_announces_everything(self, pg: rxdb.Database) -> None:
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(pg.table_updates(), updates):
            await settle(pg)
            updates.values.clear()
            async with pg.transaction("exclusive"):  # its snapshot may hold an old catalog
                await pg.execute("INSERT INTO b VALUES (1)")
            await updates.wait_count(1)
        assert updates.values[0].everything

    async def test_another_process_hears_the_same_messages(
        self, pg: rxdb.Database, url: str
    ) -> None:
        # A bus of its own, as another process has.
        async with rxdb.open(url, track_foreign_writes=False, bus=Bus()) as other:
            theirs: Recorder[NotifyTablesUpdated] = Recorder()
            seen: Recorder[Any] = Recorder()
            with (
                subscribed(other.table_updates(), theirs),
                subscribed(other.watch(COUNT_A), seen),
            ):
                await seen.wait_value([(1,)])
                async with pg.transaction():
                    await pg.execute("DELETE FROM parent WHERE id = 1")
                    await pg.execute("UPDATE b SET x = 3")
                await seen.wait_value([(0,)])
                await pg.execute("DO $$ BEGIN NULL; END $$")
                await theirs.wait_for(lambda r: any(m.everything for m in r.values))
        precise, everything = theirs.values
        assert (precise.origin, precise.everything) == (pg.origin, False)
        assert precise.updates == qualified(("parent", DELETE), ("a", DELETE), ("b", UPDATE))
        assert everything.origin == pg.origin


@pytest.mark.postgres
class TestOneMessagePerProcess:
    @pytest.mark.parametrize("track", [None, False], ids=["capture", "announce"])
    async def test_two_databases_one_commit_one_run(self, url: str, track: bool | None) -> None:
        await foreign(url, "CREATE TABLE t(x int)")
        async with (
            rxdb.open(url, track_foreign_writes=track) as first,
            rxdb.open(url, track_foreign_writes=track) as second,
        ):
            updates: Recorder[NotifyTablesUpdated] = Recorder()
            seen: Recorder[Any] = Recorder()
            stream = second.watch("SELECT count(*) FROM t")
            with subscribed(second.table_updates(["t"]), updates), subscribed(stream, seen):
                await seen.wait_value([(0,)])
                runs = stream.statistics().runs
                await first.execute("INSERT INTO t VALUES (1)")
                await seen.wait_value([(1,)])
                await first.execute("INSERT INTO t VALUES (2)")  # a marker
                await seen.wait_value([(2,)])
                await settle(second)
                assert stream.statistics().runs == runs + 2
            assert [m.updates for m in updates.values] == [
                {TableUpdate("public.t", INSERT), TableUpdate("t", INSERT)}
            ] * 2

    async def test_the_next_database_leads_when_the_first_closes(self, url: str) -> None:
        await foreign(url, "CREATE TABLE t(x int)")
        first = await rxdb.open(url)
        try:
            async with rxdb.open(url) as second:
                updates: Recorder[NotifyTablesUpdated] = Recorder()
                with subscribed(second.table_updates(), updates):
                    await first.close()  # what it had not published yet: everything
                    await updates.wait_for(lambda r: any(m.everything for m in r.values))
                    updates.values.clear()
                    # One at a time: the listener merges notifications that arrive together.
                    await foreign(url, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
                    await updates.wait_count(1)
                    await foreign(url, "INSERT INTO t VALUES (3)")
                    await updates.wait_count(2)
                    await settle(second)
        finally:
            await first.close()
        assert [(m.origin, m.everything) for m in updates.values] == [(FOREIGN, False)] * 2

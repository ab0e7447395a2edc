"""The PostgreSQL engine on the machine's server: opening, statements and their results,
placeholders, errors with their SQLSTATE, options, closing. Each test has a database of
its own, dropped after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import rxdb
from rxdb.engines.postgres.engine import PostgresEngine
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with scratch_database() as name:
        yield f"{SERVER}/{name}"


@pytest.fixture
async def pg(url: str) -> AsyncIterator[rxdb.Database]:
    """A database with ``t(id serial, x text)`` holding one row, ``x = 'a'``."""
    async with rxdb.open(url) as db:
        await db.execute("CREATE TABLE t(id serial PRIMARY KEY, x text)")
        await db.execute("INSERT INTO t(x) VALUES ('a')")
        yield db


async def connections(url: str) -> int:
    """How many connections rxdb holds to ``url``'s database now."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = "
            "'rxdb'",
            name,
        )
        return count
    finally:
        await admin.close()


class TestOpen:
    async def test_a_postgresql_url_opens_the_postgres_engine(self, url: str) -> None:
        async with rxdb.open(url) as db:
            assert isinstance(db._engine, PostgresEngine)
            assert db.path == url
            assert db.key == "postgresql://127.0.0.1:5432/" + url.rsplit("/", 1)[1]
            assert await db.fetch_one("SELECT 1 AS one") == (1,)

    async def test_both_schemes_name_one_database(self, url: str) -> None:
        assert rxdb.Database(url).key == rxdb.Database(url.replace("postgresql", "postgres")).key

    async def test_a_refused_connection_names_the_server_without_the_password(self) -> None:
        db = rxdb.Database("postgresql://someone:s3cret@127.0.0.1:1/nowhere")
        with pytest.raises(rxdb.OperationalError) as info:
            await db.connect()
        assert "127.0.0.1:1/nowhere" in str(info.value)
        assert "s3cret" not in str(info.value)
        assert db.closed is False  # never opened: nothing to close

    def test_the_repr_names_the_database_without_the_password(self) -> None:
        db = rxdb.Database("postgresql://someone:s3cret@Example.org:6543/shop")
        assert repr(db) == "<rxdb.Database 'postgresql://someone@example.org:6543/shop'>"

    async def test_a_missing_database_keeps_the_servers_sqlstate(self) -> None:
        with pytest.raises(rxdb.OperationalError) as info:
            await rxdb.open(f"{SERVER}/rxdb_no_such_database")
        assert info.value.sqlstate == "3D000"  # invalid_catalog_name

    @pytest.mark.parametrize(
        ("options", "says"),
        [
            ({"foreign_keys": False}, "always enforces foreign keys"),
            ({"synchronous": "normal"}, "synchronous_commit in the URL"),
            ({"readers": 0}, "readers must be an int"),
            ({"track_foreign_writes": True, "read_only": True}, "installs triggers"),
        ],
    )
    def test_options_postgresql_cannot_honour_are_refused(
        self, options: dict[str, Any], says: str
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError, match=says):
            rxdb.Database(f"{SERVER}/test", **options)

    def test_a_port_that_is_no_number_is_refused_without_the_password(self) -> None:
        with pytest.raises(rxdb.ProgrammingError) as info:
            rxdb.Database("postgresql://u:s3cret@host:port/db")
        assert "s3cret" not in str(info.value)

    async def test_settings_in_the_url_reach_every_connection(self, url: str) -> None:
        async with rxdb.open(url + "?application_name=mine&search_path=elsewhere") as db:
            assert await db.fetch_one("SHOW search_path") == ("elsewhere",)
            async with db.transaction():  # on the writer
                assert await db.fetch_one("SHOW application_name") == ("mine",)

    async def test_busy_timeout_is_the_lock_timeout(self, url: str) -> None:
        async with rxdb.open(url, busy_timeout=0.25) as db:
            assert await db.fetch_one("SHOW lock_timeout") == ("250ms",)


class TestStatements:
    async def test_execute_reports_changed_rows_and_returned_rows(self, pg: rxdb.Database) -> None:
        inserted = await pg.execute("INSERT INTO t(x) VALUES (?) RETURNING id, x", ("b",))
        assert (inserted.rowcount, inserted.last_insert_rowid) == (1, None)
        assert inserted.rows == [(2, "b")]
        assert (await pg.execute("UPDATE t SET x = upper(x)")).rowcount == 2
        assert (await pg.execute("DELETE FROM t WHERE id = 2")).rowcount == 1
        assert (await pg.execute("CREATE TABLE u(y int)")).rowcount == -1
        assert (await pg.execute("SELECT x FROM t")).rows == [("A",)]

    async def test_fetch_all_gives_rows_by_position_and_name(self, pg: rxdb.Database) -> None:
        rows = await pg.fetch_all("SELECT id, x, count(*) OVER () AS n FROM t")
        assert rows == [(1, "a", 1)]
        assert rows[0]["x"] == "a"
        assert rows[0].n == 1
        assert await pg.fetch_all("SELECT x FROM t WHERE false") == []

    @pytest.mark.parametrize(
        ("sql", "params"),
        [
            ("SELECT x FROM t WHERE id = ? AND x = ?", (1, "a")),
            ("SELECT x FROM t WHERE id = :id AND x = :x", {"id": 1, "x": "a"}),
            ("SELECT x FROM t WHERE id = $1 AND x = $2", (1, "a")),
        ],
    )
    async def test_every_placeholder_style_binds(
        self, pg: rxdb.Database, sql: str, params: Any
    ) -> None:
        assert await pg.fetch_all(sql, params) == [("a",)]

    async def test_a_question_mark_in_a_string_is_text(self, pg: rxdb.Database) -> None:
        assert await pg.fetch_one("SELECT '?' || ?::text AS s", ("!",)) == ("?!",)

    async def test_execute_many_counts_every_row_changed(self, pg: rxdb.Database) -> None:
        assert await pg.execute_many("INSERT INTO t(x) VALUES (?)", [("b",), ("c",)]) == 2
        assert await pg.execute_many("UPDATE t SET x = x WHERE id >= :id", iter([{"id": 2}])) == 2

    async def test_execute_many_outside_a_transaction_is_atomic(self, pg: rxdb.Database) -> None:
        with pytest.raises(rxdb.IntegrityError):
            await pg.execute_many("INSERT INTO t(id, x) VALUES (?, ?)", [(5, "b"), (1, "c")])
        assert await pg.fetch_one("SELECT count(*) FROM t") == (1,)

    async def test_execute_script_runs_statements_in_order(self, pg: rxdb.Database) -> None:
        await pg.execute_script(
            "CREATE TABLE a(v int); INSERT INTO a VALUES (1); UPDATE a SET v = v + 1;"
        )
        assert await pg.fetch_all("SELECT v FROM a") == [(2,)]

    async def test_a_failing_script_leaves_nothing(self, pg: rxdb.Database) -> None:
        with pytest.raises(rxdb.IntegrityError):
            await pg.execute_script("INSERT INTO t(x) VALUES ('b'); INSERT INTO t(id) VALUES (1);")
        assert await pg.fetch_one("SELECT count(*) FROM t") == (1,)

    async def test_fetch_all_of_a_write_runs_on_the_writer(self, pg: rxdb.Database) -> None:
        for sql in (
            "INSERT INTO t(x) VALUES ('b') RETURNING x",
            "WITH n AS (INSERT INTO t(x) VALUES ('b') RETURNING x) SELECT x FROM n",
        ):
            assert await pg.fetch_all(sql) == [("b",)]
        assert await pg.fetch_one("SELECT count(*) FROM t") == (3,)


class TestErrors:
    @pytest.mark.parametrize(
        ("sql", "error", "sqlstate"),
        [
            ("INSERT INTO t(id, x) VALUES (1, 'b')", rxdb.IntegrityError, "23505"),
            ("UPDATE t SET x = (1 / (id - 1))::text", rxdb.OperationalError, "22012"),
            ("SELECT * FROM missing", rxdb.OperationalError, "42P01"),
            ("SELEKT 1", rxdb.OperationalError, "42601"),
        ],
    )
    async def test_refusals_keep_the_sqlstate_and_leave_it_usable(
        self, pg: rxdb.Database, sql: str, error: type[rxdb.DatabaseError], sqlstate: str
    ) -> None:
        with pytest.raises(error) as info:
            await pg.execute(sql)
        assert info.value.sqlstate == sqlstate
        assert info.value.sql == sql
        assert await pg.fetch_one("SELECT count(*) FROM t") == (1,)

    async def test_a_value_the_driver_cannot_send_is_a_programming_error(
        self, pg: rxdb.Database
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError) as info:
            await pg.execute("INSERT INTO t(id) VALUES (?)", ("not a number",))
        assert info.value.sqlstate is None  # found before the server saw it

    @pytest.mark.parametrize(
        ("sql", "params"),
        [("SELECT 1; SELECT 2", ()), ("SELECT ?", ()), ("SELECT :a", {"b": 1})],
    )
    async def test_bad_sql_or_parameters_raise_programming_error(
        self, pg: rxdb.Database, sql: str, params: Any
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            await pg.fetch_all(sql, params)
        with pytest.raises(rxdb.ProgrammingError):
            await pg.execute(sql, params)

    async def test_a_lock_held_past_busy_timeout_is_busy(self, url: str) -> None:
        async with rxdb.open(url, busy_timeout=0.05) as db:
            await db.execute("CREATE TABLE k(id int PRIMARY KEY)")
            await db.execute("INSERT INTO k VALUES (1)")
            other = await asyncpg.connect(url)
            try:
                async with other.transaction():
                    await other.execute("SELECT * FROM k FOR UPDATE")
                    with pytest.raises(rxdb.BusyError) as info:
                        await db.execute("UPDATE k SET id = 2")
            finally:
                await other.close()
            assert info.value.sqlstate == "55P03"  # lock_not_available
            assert (await db.execute("UPDATE k SET id = 2")).rowcount == 1

    async def test_a_lost_writer_connection_is_replaced(self, pg: rxdb.Database) -> None:
        async with pg.transaction():
            pid = (await pg.fetch_one("SELECT pg_backend_pid()") or (0,))[0]
        assert await pg.fetch_one("SELECT pg_terminate_backend(?)", (pid,)) == (True,)
        # The next statement fails if it finds the connection gone (else it already has a
        # new one); either way the one after runs.
        [outcome] = await asyncio.gather(
            pg.execute("INSERT INTO t(x) VALUES ('b')"), return_exceptions=True
        )
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, rxdb.OperationalError)
            # The server's farewell (57P01, "terminating connection due to administrator
            # command") arrives first when the socket has not yet been seen closed (08006).
            assert outcome.sqlstate in {"08006", "57P01"}
        await pg.execute("INSERT INTO t(x) VALUES ('c')")
        assert ("c",) in await pg.fetch_all("SELECT x FROM t")


class TestClose:
    async def test_close_closes_every_connection(self, url: str) -> None:
        db = await rxdb.open(url)
        await asyncio.gather(*(db.fetch_all("SELECT pg_sleep(0.05)") for _ in range(3)))
        assert await connections(url) >= 2
        await db.close()
        await db.close()
        assert await connections(url) == 0
        with pytest.raises(rxdb.ClosedError):
            await db.fetch_all("SELECT 1")

    async def test_read_only_refuses_writes_and_reads(self, url: str) -> None:
        async with rxdb.open(url) as writable:
            await writable.execute("CREATE TABLE t(x int)")
        async with rxdb.open(url, read_only=True) as db:
            with pytest.raises(rxdb.ReadOnlyError) as info:
                await db.execute("INSERT INTO t VALUES (1)")
            assert info.value.sqlstate == "25006"
            with pytest.raises(rxdb.ReadOnlyError):
                await db.fetch_all("INSERT INTO t VALUES (1) RETURNING x")
            assert await db.fetch_all("SELECT x FROM t") == []

    async def test_a_handle_gives_a_blocking_database_in_a_thread(self, pg: rxdb.Database) -> None:
        handle = await pg.serializable_connection()

        def in_thread() -> list[rxdb.Row]:
            db = handle.connect_sync()
            with db:
                db.execute("INSERT INTO t(x) VALUES (?)", ("b",))
                return db.fetch_all("SELECT x FROM t ORDER BY id")

        assert await asyncio.to_thread(in_thread) == [("a",), ("b",)]
        assert not pg.closed  # the thread's façade detached; the owner keeps it open

    def test_open_sync_works_on_a_url(self, url: str) -> None:
        with rxdb.open_sync(url) as db:
            db.execute("CREATE TABLE s(v int)")
            db.execute_many("INSERT INTO s VALUES (?)", [(1,), (2,)])
            with db.transaction():
                db.execute("INSERT INTO s VALUES (3)")
            assert db.fetch_all("SELECT sum(v) FROM s") == [(6,)]

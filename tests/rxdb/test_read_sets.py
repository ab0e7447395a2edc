"""A watch's read set never misses a table: views outside main, virtual tables, writes SQLite
makes without telling the authorizer, and the authorizer cross-check of the parser."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

import parser
import rxdb
from tests.conftest import Recorder, settle, sqlite_engine, subscribed


async def watch_refreshes(
    db: rxdb.Database, query: str, change: str, before: Any, after: Any
) -> None:
    """``query`` first emits ``before``, and ``after`` once ``change`` is committed."""
    rec: Recorder[Any] = Recorder()
    with subscribed(db.watch(query), rec):
        await rec.wait_value(before)
        await db.execute(change)
        await rec.wait_value(after)
    assert not rec.errors


class TestViewsOutsideMain:
    async def test_watch_of_temp_view_refreshes_on_base_table_change(
        self, memdb: rxdb.Database
    ) -> None:
        await memdb.execute("CREATE TABLE t(x)")
        await memdb.execute("CREATE TEMP VIEW tv AS SELECT x FROM t")
        await watch_refreshes(memdb, "SELECT * FROM tv", "INSERT INTO t VALUES (1)", [], [(1,)])

    async def test_temp_view_shadows_a_main_table_of_its_name(self, memdb: rxdb.Database) -> None:
        await memdb.execute("CREATE TABLE t(x)")
        await memdb.execute("CREATE TABLE v(x)")
        await memdb.execute("CREATE TEMP VIEW v AS SELECT x FROM t")
        await watch_refreshes(memdb, "SELECT * FROM v", "INSERT INTO t VALUES (1)", [], [(1,)])

    async def test_watch_of_attached_view_refreshes_on_its_schemas_table(
        self, memdb: rxdb.Database, tmp_path: Path
    ) -> None:
        # A view of an attached schema reads that schema's tables, whatever main holds.
        await memdb.execute(f"ATTACH '{tmp_path / 'aux.db'}' AS aux")
        await memdb.execute("CREATE TABLE t(x)")
        await memdb.execute("CREATE TABLE aux.t(x)")
        await memdb.execute("CREATE VIEW aux.v AS SELECT x FROM t")
        await memdb.execute("CREATE VIEW aux.w AS SELECT x FROM v")
        try:
            await watch_refreshes(
                memdb, "SELECT * FROM aux.w", "INSERT INTO aux.t VALUES (2)", [], [(2,)]
            )
        finally:
            await memdb.execute("DETACH aux")

    async def test_watch_of_temp_view_on_file_database_fails_saying_why(
        self, db: rxdb.Database
    ) -> None:
        await db.execute("CREATE TABLE t(x)")
        await db.execute("CREATE TEMP VIEW tv AS SELECT x FROM t")
        rec: Recorder[Any] = Recorder()
        with subscribed(db.watch("SELECT * FROM tv"), rec):
            await rec.wait_for(lambda r: bool(r.errors))
        assert isinstance(rec.errors[0], rxdb.OperationalError)
        assert "TEMP" in str(rec.errors[0])
        assert "writer connection alone" in str(rec.errors[0])

    async def test_watch_of_attached_view_on_file_database_fails_saying_why(
        self, db: rxdb.Database, tmp_path: Path
    ) -> None:
        await db.execute(f"ATTACH '{tmp_path / 'aux.db'}' AS aux")
        await db.execute("CREATE TABLE aux.t(x)")
        await db.execute("CREATE VIEW aux.v AS SELECT x FROM t")
        rec: Recorder[Any] = Recorder()
        with subscribed(db.watch("SELECT * FROM aux.v"), rec):
            await rec.wait_for(lambda r: bool(r.errors))
        assert isinstance(rec.errors[0], rxdb.OperationalError)
        assert "ATTACHed" in str(rec.errors[0])


class TestVirtualTables:
    async def test_fts5_external_content_refreshes_on_content_table_change(
        self, any_db: rxdb.Database
    ) -> None:
        await any_db.execute("CREATE TABLE a(id INTEGER PRIMARY KEY, x)")
        await any_db.execute(
            "CREATE VIRTUAL TABLE d USING fts5(x, content='a', content_rowid='id')"
        )
        await any_db.execute("INSERT INTO a VALUES (1, 'one')")
        await watch_refreshes(
            any_db, "SELECT x FROM d", "UPDATE a SET x = 'two'", [("one",)], [("two",)]
        )

    async def test_fts4_external_content_refreshes_on_content_table_change(
        self, any_db: rxdb.Database
    ) -> None:
        await any_db.execute("CREATE TABLE a(x)")
        await any_db.execute('CREATE VIRTUAL TABLE e USING fts4(x, content="a")')
        await any_db.execute("INSERT INTO a VALUES ('one')")
        await watch_refreshes(
            any_db, "SELECT x FROM e", "UPDATE a SET x = 'two'", [("one",)], [("two",)]
        )

    async def test_fts5vocab_refreshes_when_its_fts_table_is_written(
        self, any_db: rxdb.Database
    ) -> None:
        await any_db.execute("CREATE VIRTUAL TABLE ft USING fts5(x)")
        await any_db.execute("CREATE VIRTUAL TABLE voc USING fts5vocab(ft, 'row')")
        await watch_refreshes(
            any_db, "SELECT term FROM voc", "INSERT INTO ft VALUES ('hello')", [], [("hello",)]
        )


class TestWritesTheAuthorizerDoesNotReport:
    async def test_sqlite_sequence_refreshes_on_insert_into_autoincrement_table(
        self, any_db: rxdb.Database
    ) -> None:
        await any_db.execute("CREATE TABLE s(id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        await watch_refreshes(
            any_db,
            "SELECT name, seq FROM sqlite_sequence",
            "INSERT INTO s(x) VALUES (1)",
            [],
            [("s", 1)],
        )

    @pytest.mark.parametrize(
        "query",
        ["SELECT * FROM pragma_user_version", "SELECT user_version FROM pragma_user_version()"],
    )
    async def test_pragma_function_refreshes_on_pragma_write(
        self, any_db: rxdb.Database, query: str
    ) -> None:
        await watch_refreshes(any_db, query, "PRAGMA user_version = 7", [(0,)], [(7,)])

    async def test_pragma_write_is_announced(self, any_db: rxdb.Database) -> None:
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.table_updates(), rec):
            await any_db.execute("PRAGMA application_id = 42")
            await rec.wait_count(1)
        assert rec.values[0].tables == {"pragma_application_id"}

    async def test_pragma_write_rolled_back_is_not_announced(self, any_db: rxdb.Database) -> None:
        await any_db.execute("CREATE TABLE t(x)")
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.table_updates(), rec):
            await any_db.execute("BEGIN")
            await any_db.execute("PRAGMA user_version = 3")
            await any_db.execute("ROLLBACK")
            await any_db.execute("INSERT INTO t VALUES (1)")
            await rec.wait_count(1)
        assert [message.tables for message in rec.values] == [{"t"}]

    async def test_pragma_whose_value_any_write_moves_reruns_on_every_commit(
        self, any_db: rxdb.Database
    ) -> None:
        await any_db.execute("CREATE TABLE t(x)")
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch("SELECT page_count FROM pragma_page_count()"), rec):
            await rec.wait_count(1)
            pages = rec.values[-1][0][0]
            await any_db.execute("INSERT INTO t VALUES (zeroblob(100000))")
            await rec.wait_for(lambda r: r.values[-1][0][0] > pages)


class TestAuthorizerCrossCheck:
    @staticmethod
    def blind_parser(monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the parser miss table ``t`` wherever it is read."""

        def blind(sql: str, **options: Any) -> parser.Analysis:
            analysis = parser.analyze(sql, **options)
            return dataclasses.replace(analysis, reads=analysis.reads - {"t"})

        monkeypatch.setattr(rxdb.engines.sqlite.read_sets, "analyze", blind)

    async def test_table_the_parser_misses_still_refreshes_the_watch(
        self, any_db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await any_db.execute("CREATE TABLE t(x)")
        self.blind_parser(monkeypatch)
        await watch_refreshes(any_db, "SELECT x FROM t", "INSERT INTO t VALUES (1)", [], [(1,)])

    async def test_table_the_parser_misses_behind_a_join_is_found(
        self, any_db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await any_db.execute("CREATE TABLE t(id, x)")
        await any_db.execute("CREATE TABLE u(id)")
        await any_db.execute("INSERT INTO u VALUES (1)")
        self.blind_parser(monkeypatch)
        await watch_refreshes(
            any_db,
            "SELECT count(*) FROM u JOIN t ON u.id = t.id",
            "INSERT INTO t VALUES (1, 'a')",
            [(0,)],
            [(1,)],
        )

    async def test_reruns_do_not_probe_again(self, any_db: rxdb.Database) -> None:
        await any_db.execute("CREATE TABLE t(x)")
        probed: list[str] = []
        probe = sqlite_engine(any_db).read_sets._probe

        async def counting(sql: str) -> Any:
            probed.append(sql)
            return await probe(sql)

        sqlite_engine(any_db).read_sets._probe = counting
        stream = any_db.watch("SELECT count(*) FROM t")
        rec: Recorder[Any] = Recorder()
        with (
            subscribed(stream, rec),
            subscribed(any_db.watch("SELECT count(*) FROM t", distinct=False), Recorder()),
        ):
            await rec.wait_value([(0,)])
            for count in range(1, 4):
                await any_db.execute("INSERT INTO t VALUES (1)")
                await rec.wait_value([(count,)])
            await settle(any_db)
            assert stream.statistics().runs == 4
        assert probed == ["SELECT count(*) FROM t"]

    async def test_unanalyzable_query_is_not_probed(
        self, any_db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(sql: str, **_: Any) -> parser.Analysis:
            raise parser.Unanalyzable(sql, "pretend sqlglot cannot read it")

        monkeypatch.setattr(rxdb.engines.sqlite.read_sets, "analyze", refuse)
        await any_db.execute("CREATE TABLE t(x)")
        assert await sqlite_engine(any_db).read_sets.read_set("SELECT x FROM t") is None

    async def test_writes_are_still_announced_after_a_probe_on_the_writer(
        self, memdb: rxdb.Database
    ) -> None:
        # On a single connection the probe borrows the writer's authorizer and gives it back.
        await memdb.execute("CREATE TABLE t(x)")
        assert await sqlite_engine(memdb).read_sets.read_set("SELECT x FROM t") == frozenset({"t"})
        rec: Recorder[Any] = Recorder()
        with subscribed(memdb.table_updates(), rec):
            await memdb.execute("INSERT INTO t VALUES (1)")
            await rec.wait_count(1)
        assert rec.values[0].tables == {"t"}


async def test_a_watch_works_on_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    # PRAGMA database_list names each schema's file: text SQLite cannot decode to UTF-8.
    path = os.fsdecode(bytes(tmp_path) + b"/orders-\xff.db")
    async with rxdb.open(path) as db:
        await db.execute("CREATE TABLE t(x)")
        await watch_refreshes(db, "SELECT x FROM t", "INSERT INTO t VALUES (1)", [], [(1,)])

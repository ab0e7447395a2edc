"""Eager re-runs read on the writer connection itself while nothing the user ran there can
make it see something else than the readers (TEMP tables or views, attached databases,
settings: :attr:`WriteCapture.diverged <rxdb.engines.sqlite.capture.WriteCapture.diverged>`),
and on a second connection from then on. A read there goes around the write capture: it
records nothing, and expires none of the writer's prepared statements."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.engines.sqlite import capture
from rxdb.engines.sqlite.capture import StatementEffects, WriteCapture, effects_of
from rxdb.engines.sqlite.connections import ReaderConnection
from rxdb.updates import TableUpdate, UpdateKind
from tests.conftest import Recorder, settle, subscribed
from tests.rxdb.test_eager_reruns import (  # noqa: F401  (a fixture)
    generous,
    reader_runs,
    watching,
    writer_of,
)
from tests.rxdb.test_watch import COUNT, make_t

pytestmark = pytest.mark.usefixtures("generous")  # every cost fits the budget

INSERT = "INSERT INTO t(x) VALUES (1)"


class TestTheWriterReadsItself:
    async def test_a_plain_file_never_opens_the_second_connection(
        self, db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            batches = reader_runs(db, monkeypatch)
            await db.execute(INSERT)
            assert rec.values[-1] == [(1,)]  # read eagerly
            await settle(db)
            assert batches == []
        assert writer_of(db)._reads is None

    async def test_rxdb_own_statements_leave_it_reading_itself(self, db_path: Path) -> None:
        # The trigger journal (triggers in main), a maintained watch (TEMP triggers on the
        # writer), transactions and savepoints: none of them is the user's TEMP object.
        async with rxdb.open(db_path, track_foreign_writes=True) as db:
            await make_t(db)
            maintained = "SELECT * FROM t WHERE x IS NOT NULL ORDER BY id"
            async with watching(db), watching(db, maintained) as (_, rec):
                async with db.transaction(), db.transaction():  # a savepoint inside
                    await db.execute(INSERT)
                await rec.wait_value([(1, 1)])
                await db.execute(INSERT)
                await rec.wait_value([(1, 1), (2, 1)])
            assert not writer_of(db)._capture.diverged

    async def test_memory_reads_on_the_writer_whatever_it_holds(self, memdb: rxdb.Database) -> None:
        # The readers' road is the writer itself there: its TEMP table is what they see.
        await memdb.execute("CREATE TABLE t(x)")
        await memdb.execute("CREATE TEMP TABLE t(x)")
        async with watching(memdb) as (_, rec):
            await memdb.execute("INSERT INTO temp.t VALUES (1)")
            assert rec.values[-1] == [(1,)]
        assert writer_of(memdb)._capture.diverged


class TestWhatMakesItReadElsewhere:
    async def test_a_temp_table_shadowing_the_watched_one(self, db: rxdb.Database) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            await db.execute("CREATE TEMP TABLE t(x)")  # an unqualified t is this one now
            await db.execute("INSERT INTO temp.t(x) VALUES (1), (2)")
            await settle(db)  # the watch's re-analysis and re-run after the new table
            await db.execute("INSERT INTO main.t(x) VALUES (1)")
            assert rec.values[-1] == [(1,)]  # main's, as the readers see it
            assert await db.fetch_all(COUNT) == rec.values[-1]
        assert writer_of(db)._reads is not None

    async def test_a_setting_that_changes_results(self, db: rxdb.Database) -> None:
        await db.execute("CREATE TABLE s(v)")
        await db.execute("PRAGMA case_sensitive_like = ON")
        query = "SELECT count(*) FROM s WHERE v LIKE 'A%'"
        async with watching(db, query) as (_, rec):
            await db.execute("INSERT INTO s VALUES ('abc')")
            assert rec.values[-1] == [(1,)]  # the writer itself would count 0
            assert await db.fetch_all(query) == rec.values[-1]

    @pytest.mark.parametrize(
        "statement",
        [
            "ATTACH ':memory:' AS aux",
            "CREATE TEMP VIEW v AS SELECT 1",
            "CREATE TABLE temp.u(x)",  # no TEMP keyword: reported as CREATE TABLE in temp
            "CREATE VIEW temp.v AS SELECT 1",
            "CREATE VIRTUAL TABLE temp.f USING fts5(a)",
            "PRAGMA reverse_unordered_selects = ON",
        ],
    )
    async def test_an_attachment_a_view_or_a_setting(
        self, db: rxdb.Database, statement: str
    ) -> None:
        await make_t(db)
        await db.execute(statement)
        async with watching(db) as (_, rec):
            await db.execute(INSERT)
            assert rec.values[-1] == [(1,)]
        assert writer_of(db)._reads is not None

    async def test_no_second_connection_means_the_usual_road(
        self, db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def failing(target: str) -> Any:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(ReaderConnection, "open_read_only", failing)
        await make_t(db)
        await db.execute("CREATE TEMP TABLE t(x)")
        async with watching(db) as (_, rec):
            batches = reader_runs(db, monkeypatch)
            await db.execute("INSERT INTO main.t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert batches == [[COUNT]]  # not the writer's own (shadowed) t


class TestTheCaptureIsUndisturbed:
    async def test_the_writers_prepared_write_survives_an_eager_read(
        self, any_db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        prepared: list[bool] = []  # per bracketed statement: did its prepare report events
        real = WriteCapture.finish

        def finish(self: WriteCapture, sql: str) -> StatementEffects:
            if sql == INSERT:
                prepared.append(bool(self._events))
            return real(self, sql)

        monkeypatch.setattr(WriteCapture, "finish", finish)
        await make_t(any_db)
        async with watching(any_db) as (_, rec):
            for count in (1, 2, 3):
                await any_db.execute(INSERT)
                assert rec.values[-1] == [(count,)]  # read eagerly, on the writer
        assert prepared == [True, False, False]

    async def test_a_read_prepared_on_the_writer_records_nothing(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        updates: Recorder[Any] = Recorder()
        # A query that reports a pragma, a function and reads while it is prepared.
        query = "SELECT count(*), max(cid) FROM t, pragma_table_info('other')"
        async with watching(any_db, query) as (_, rec):
            with subscribed(any_db.table_updates(), updates):
                await any_db.execute(INSERT)
                assert rec.values[-1] == [(1, 0)]
                await any_db.execute("INSERT INTO other VALUES (1)")
                await updates.wait_count(2)
        assert [m.tables for m in updates.values] == [{"t"}, {"other"}]
        assert not writer_of(any_db)._capture.diverged


class TestTheCaptureAlone:
    def test_what_is_reported_outside_a_statement_is_dropped(self) -> None:
        events = [
            (sqlite3.SQLITE_INSERT, "t", None, "main"),
            (sqlite3.SQLITE_CREATE_TEMP_TABLE, "t", None, "temp"),
            (sqlite3.SQLITE_PRAGMA, "case_sensitive_like", "1", None),
        ]
        write = WriteCapture()
        write.start("UPDATE u SET a = 1")
        write.authorize(sqlite3.SQLITE_UPDATE, "u", "a", "main", None)
        assert write.finish("UPDATE u SET a = 1").writes == {
            TableUpdate("u", UpdateKind.UPDATE, frozenset({"a"}))
        }
        for event in events:  # rxdb's own read or TEMP trigger, prepared between statements
            write.authorize(*event, None)
        write.start("UPDATE u SET a = 1")  # from the statement cache: nothing reported
        assert write.finish("UPDATE u SET a = 1").writes == {
            TableUpdate("u", UpdateKind.UPDATE, frozenset({"a"}))
        }
        assert not write.diverged
        write.start("SELECT 1")
        for event in events:
            write.authorize(*event, None)
        write.finish("SELECT 1")
        assert write.diverged

    @pytest.mark.parametrize(
        ("event", "diverges"),
        [
            ((sqlite3.SQLITE_CREATE_TEMP_TABLE, "t", None, "temp"), True),
            ((sqlite3.SQLITE_CREATE_TEMP_VIEW, "v", None, "temp"), True),
            ((sqlite3.SQLITE_CREATE_TABLE, "t", None, "temp"), True),
            ((sqlite3.SQLITE_CREATE_VIEW, "v", None, "TEMP"), True),
            ((sqlite3.SQLITE_CREATE_VTABLE, "f", "fts5", "temp"), True),
            ((sqlite3.SQLITE_CREATE_VTABLE, "f", "fts5", "main"), False),
            ((sqlite3.SQLITE_ATTACH, "x.db", None, None), True),
            ((sqlite3.SQLITE_CREATE_TEMP_TRIGGER, "g", "t", "temp"), False),
            ((sqlite3.SQLITE_CREATE_TABLE, "t", None, "main"), False),
            ((sqlite3.SQLITE_PRAGMA, "case_sensitive_like", "1", None), True),
            ((sqlite3.SQLITE_PRAGMA, "temp_store", "memory", None), True),
            ((sqlite3.SQLITE_PRAGMA, "Foreign_Keys", "ON", None), False),
            ((sqlite3.SQLITE_PRAGMA, "journal_mode", "wal", None), False),
            ((sqlite3.SQLITE_PRAGMA, "user_version", "3", None), False),
            ((sqlite3.SQLITE_PRAGMA, "table_info", "t", None), False),
            ((sqlite3.SQLITE_PRAGMA, "case_sensitive_like", None, None), False),  # a question
        ],
    )
    def test_which_statements_make_the_writer_diverge(
        self, event: tuple[int, str | None, str | None, str | None], diverges: bool
    ) -> None:
        assert effects_of([event]).diverges is diverges

    def test_rxdb_own_pragmas_are_neutral(self) -> None:
        assert {"foreign_keys", "synchronous", "journal_mode", "query_only"} <= (
            capture.NEUTRAL_PRAGMAS
        )

"""Statements: what execute, execute_many, execute_script, fetch_all and fetch_one return,
and the errors they raise, on every shape."""

from __future__ import annotations

import pytest

import rxdb
from rxdb.api import AsyncDatabase
from tests.conformance.conftest import make_t
from tests.conformance.dialects import dialect


class TestResults:
    async def test_execute_reports_rowcount_rowid_and_returned_rows(
        self, db: AsyncDatabase
    ) -> None:
        await make_t(db)
        inserted = await db.execute("INSERT INTO t(x) VALUES (?) RETURNING id, x", (5,))
        assert inserted.last_insert_rowid == (2 if dialect(db).has_rowid else None)
        assert inserted.rows == [(2, 5)]
        updated = await db.execute("UPDATE t SET x = :x", {"x": 6})
        assert updated.rowcount == 2
        assert (await db.execute("CREATE TABLE u(y INTEGER)")).rowcount == -1

    async def test_execute_many_counts_every_row_changed(self, db: AsyncDatabase) -> None:
        await make_t(db)
        assert await db.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(5)]) == 5
        assert await db.execute_many("UPDATE t SET x = x WHERE x >= ?", iter([(0,), (3,)])) == 8

    async def test_execute_script_runs_every_statement_in_order(self, db: AsyncDatabase) -> None:
        await db.execute_script(
            "CREATE TABLE a(v INTEGER); INSERT INTO a VALUES (1); UPDATE a SET v = v + 1;"
        )
        assert await db.fetch_all("SELECT v FROM a") == [(2,)]

    async def test_fetch_all_gives_rows_by_position_and_name(self, db: AsyncDatabase) -> None:
        await make_t(db)
        rows = await db.fetch_all("SELECT id, x FROM t WHERE x = ?", (1,))
        assert rows == [(1, 1)]
        assert tuple(rows[0]) == (1, 1)
        assert rows[0]["x"] == 1
        assert await db.fetch_all("SELECT * FROM t WHERE x = :x", {"x": 9}) == []

    async def test_fetch_one_gives_the_first_row_or_none(self, db: AsyncDatabase) -> None:
        await make_t(db)
        await db.execute("INSERT INTO t(x) VALUES (2)")
        assert await db.fetch_one("SELECT x FROM t ORDER BY x DESC") == (2,)
        assert await db.fetch_one("SELECT x FROM t WHERE x > 5") is None


class TestErrors:
    @pytest.mark.parametrize(
        ("sql", "params"),
        [
            ("", ()),  # no statement
            ("SELECT 1; SELECT 2", ()),  # several
            ("SELECT ?", ()),  # too few parameters
            ("SELECT ?", (1, 2)),  # too many
            ("SELECT :a", {"b": 1}),  # a name that is not given
        ],
    )
    async def test_bad_sql_or_parameters_raise_programming_error(
        self, db: AsyncDatabase, sql: str, params: tuple[object, ...] | dict[str, object]
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError) as info:
            await db.fetch_all(sql, params)
        assert isinstance(info.value, rxdb.RxdbError)
        with pytest.raises(rxdb.ProgrammingError):
            await db.execute(sql, params)
        assert await db.fetch_one("SELECT 1") == (1,)  # still usable

    async def test_refused_statements_raise_database_errors_and_leave_it_usable(
        self, db: AsyncDatabase
    ) -> None:
        codes = dialect(db)
        await db.execute("CREATE TABLE k(id INTEGER PRIMARY KEY)")
        await db.execute("INSERT INTO k VALUES (1)")
        with pytest.raises(rxdb.IntegrityError) as duplicate:
            await db.execute("INSERT INTO k VALUES (1)")
        assert codes.code(duplicate.value) == codes.duplicate_key
        with pytest.raises(rxdb.OperationalError) as missing:
            await db.fetch_all("SELECT * FROM missing")
        assert codes.code(missing.value) == codes.missing_table
        with pytest.raises(rxdb.DatabaseError):
            await db.execute_script("INSERT INTO k VALUES (2); INSERT INTO k VALUES (1);")
        with pytest.raises(rxdb.IntegrityError):
            await db.execute_many("INSERT INTO k VALUES (?)", [(3,), (1,)])
        kept = [(1,)] if codes.atomic_batches else [(1,), (2,), (3,)]
        assert await db.fetch_all("SELECT id FROM k ORDER BY id") == kept

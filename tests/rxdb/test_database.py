from __future__ import annotations

import asyncio
import contextvars
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT, Recorder, subscribed


async def make_t(db: rxdb.Database) -> None:
    await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")


class TestOpen:
    async def test_open_awaited_and_closed(self, db_path: Path) -> None:
        db = await rxdb.open(db_path)
        await make_t(db)
        await db.close()
        assert db.closed

    async def test_open_as_context_manager_memory(self) -> None:
        async with rxdb.open(":memory:") as db:
            assert await db.fetch_one("SELECT 1 + 1") == (2,)
        assert db.closed

    async def test_database_constructed_without_loop_connects_on_first_use(
        self, db_path: Path
    ) -> None:
        db = rxdb.Database(db_path)
        try:
            assert await db.fetch_one("SELECT 7") == (7,)
        finally:
            await db.close()

    async def test_close_is_idempotent_and_later_calls_raise(self, db_path: Path) -> None:
        db = await rxdb.open(db_path)
        await db.close()
        await db.close()
        with pytest.raises(rxdb.ClosedError, match=r"closed; open a new one \(rxdb\.open\)"):
            await db.execute("SELECT 1")
        with pytest.raises(rxdb.ClosedError):
            await db.fetch_all("SELECT 1")
        with pytest.raises(rxdb.ClosedError, match="open a new one"):
            await db.connect()
        with pytest.raises(rxdb.ClosedError, match="open a new one"):
            db.watch("SELECT 1").subscribe()
        with pytest.raises(rxdb.ClosedError):
            async with db.transaction():
                pass

    async def test_close_leaves_no_worker_threads(self, db_path: Path) -> None:
        before = set(threading.enumerate())
        async with rxdb.open(db_path) as db:
            await make_t(db)
            await asyncio.gather(*(db.fetch_all("SELECT * FROM t") for _ in range(8)))
            async for _rows in db.watch("SELECT * FROM t"):
                break
            assert len(set(threading.enumerate()) - before) >= 2  # writer + readers
        assert set(threading.enumerate()) - before == set()

    async def test_open_of_unopenable_path_raises_clearly(self, tmp_path: Path) -> None:
        with pytest.raises(rxdb.OperationalError, match="unable to open"):
            await rxdb.open(tmp_path / "no" / "such" / "dir" / "x.db")

    async def test_use_from_another_loop_raises_wrong_loop(self, db: rxdb.Database) -> None:
        await make_t(db)

        def other_thread() -> BaseException | None:
            async def use() -> None:
                await db.fetch_all("SELECT * FROM t")

            try:
                asyncio.run(use())
            except BaseException as error:
                return error
            return None

        error = await asyncio.to_thread(other_thread)
        assert isinstance(error, rxdb.WrongLoopError)
        assert "another event loop" in str(error)


class TestStatements:
    async def test_execute_returns_rowcount_rowid_and_returning_rows(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        result = await any_db.execute("INSERT INTO t(x) VALUES (?)", ("a",))
        assert (result.rowcount, result.last_insert_rowid, result.rows) == (1, 1, [])
        result = await any_db.execute("INSERT INTO t(x) VALUES ('b') RETURNING id, x")
        assert result.rows == [(2, "b")]
        assert result.rows[0]["x"] == "b"
        result = await any_db.execute("UPDATE t SET x = x || '!'")
        assert result.rowcount == 2

    async def test_execute_many_and_script(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        assert (
            await any_db.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(5)]) == 5
        )
        await any_db.execute_script(
            "INSERT INTO t(x) VALUES ('semi;colon'); -- a comment; with a semicolon\n"
            "INSERT INTO t(x) VALUES (99);"
        )
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (7,)

    async def test_rows_are_tuples_with_names(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        await any_db.execute("INSERT INTO t(x) VALUES ('a')")
        rows = await any_db.fetch_all("SELECT id, x AS Label FROM t")
        assert rows == [(1, "a")]
        row = rows[0]
        assert (row["id"], row["Label"], row["label"]) == (1, "a", "a")
        assert (row[1], row[-1], row[:1]) == ("a", "a", (1,))
        assert row.keys() == ("id", "Label")
        assert row.as_dict() == {"id": 1, "Label": "a"}
        assert hash(row) == hash((1, "a"))
        assert pickle.loads(pickle.dumps(row))["Label"] == "a"
        with pytest.raises(KeyError, match="nope"):
            row["nope"]
        assert (row.id, row.Label, row.label) == (1, "a", "a")  # attribute access
        with pytest.raises(AttributeError, match="columns are"):
            _ = row.nope
        counted = (await any_db.fetch_all("SELECT 7 AS count"))[0]
        assert counted["count"] == 7
        assert counted.count(7) == 1  # tuple's own names win

    async def test_fetch_one_returns_none_when_empty(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        assert await any_db.fetch_one("SELECT * FROM t") is None

    async def test_values_round_trip(self, any_db: rxdb.Database) -> None:
        await any_db.execute("CREATE TABLE v(a, b, c, d, e)")
        values = (None, 2**62, 0.1, "ünïcode", b"\x00\xff")
        await any_db.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?)", values)
        assert await any_db.fetch_one("SELECT * FROM v") == values

    async def test_fetch_all_of_a_write_runs_on_the_writer_and_notifies(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.table_updates(), rec):
            rows = await any_db.fetch_all("INSERT INTO t(x) VALUES (5) RETURNING x")
            assert rows == [(5,)]
            await rec.wait_count(1)


class TestErrors:
    async def test_bad_sql_raises_operational_error_and_db_stays_usable(
        self, any_db: rxdb.Database
    ) -> None:
        with pytest.raises(rxdb.OperationalError, match="syntax error") as info:
            await any_db.execute("SELEC 1")
        assert info.value.sql == "SELEC 1"
        assert info.value.sqlite_errorname == "SQLITE_ERROR"
        assert await any_db.fetch_one("SELECT 1") == (1,)

    async def test_missing_table_in_fetch(self, any_db: rxdb.Database) -> None:
        with pytest.raises(rxdb.OperationalError, match="no such table"):
            await any_db.fetch_all("SELECT * FROM nowhere")

    async def test_constraint_violation_keeps_code(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        with pytest.raises(rxdb.IntegrityError) as info:
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
        assert info.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        assert isinstance(info.value, rxdb.DatabaseError)

    @pytest.mark.parametrize(
        ("sql", "params"),
        [
            ("SELECT ?", ()),
            ("SELECT ?", (1, 2)),
            ("SELECT :a", {"b": 1}),
            ("SELECT ?", (object(),)),
        ],
        ids=["too-few", "too-many", "wrong-name", "unsupported-type"],
    )
    async def test_bad_parameters_raise_programming_error(
        self, any_db: rxdb.Database, sql: str, params: Any
    ) -> None:
        with pytest.raises(rxdb.DatabaseError):
            await any_db.fetch_all(sql, params)
        with pytest.raises(rxdb.DatabaseError):
            await any_db.execute(sql, params)
        assert await any_db.fetch_one("SELECT 1") == (1,)

    async def test_several_statements_in_execute_refused(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        with pytest.raises(rxdb.ProgrammingError, match="one statement"):
            await any_db.execute("INSERT INTO t(x) VALUES (1); INSERT INTO t(x) VALUES (2)")
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (0,)

    async def test_unknown_transaction_mode_refused(self, any_db: rxdb.Database) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="mode"):
            async with any_db.transaction("sometimes"):  # type: ignore[arg-type]
                pass


class TestTransactions:
    async def test_transaction_commits_on_success(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        async with any_db.transaction():
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            assert await any_db.fetch_all("SELECT x FROM t") == [(1,)]  # own writes visible
        assert await any_db.fetch_all("SELECT x FROM t") == [(1,)]

    async def test_failed_transaction_leaves_no_trace(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()

        async def insert_twice() -> None:
            async with any_db.transaction():
                await any_db.execute("INSERT INTO t(x) VALUES (1)")
                await any_db.execute("INSERT INTO t(x) VALUES (1)")

        with subscribed(any_db.table_updates(), rec):
            with pytest.raises(rxdb.IntegrityError):
                await insert_twice()
            assert await any_db.fetch_all("SELECT * FROM t") == []
            await any_db.execute("INSERT INTO t(x) VALUES (2)")
            await rec.wait_count(1)
            assert [m.tables for m in rec.values] == [frozenset({"t"})]

    async def test_concurrent_transactions_never_see_each_other(
        self, any_db: rxdb.Database
    ) -> None:
        """The classic shared-aiosqlite-connection bug: B's statement must not land in A's
        transaction (and vanish with A's rollback)."""
        await make_t(any_db)
        a_inside = asyncio.Event()
        b_started = asyncio.Event()

        async def a_fails() -> None:
            async with any_db.transaction():
                await any_db.execute("INSERT INTO t(x) VALUES ('a')")
                a_inside.set()
                await b_started.wait()
                await asyncio.sleep(0)  # give B every chance to interleave
                raise RuntimeError("A fails")

        async def a() -> None:
            with pytest.raises(RuntimeError, match="A fails"):
                await a_fails()

        async def b() -> None:
            await a_inside.wait()
            pending = asyncio.ensure_future(any_db.execute("INSERT INTO t(x) VALUES ('b')"))
            b_started.set()
            await pending

        await asyncio.wait_for(asyncio.gather(a(), b()), WAIT)
        assert await any_db.fetch_all("SELECT x FROM t") == [("b",)]

    async def test_tasks_started_inside_transaction_join_it(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)

        async def three_tasks_then_fail() -> None:
            async with any_db.transaction():
                await asyncio.gather(
                    *(any_db.execute("INSERT INTO t(x) VALUES (?)", (i,)) for i in range(3))
                )
                raise RuntimeError("undo all three")

        with pytest.raises(RuntimeError, match="undo all three"):
            await three_tasks_then_fail()
        assert await any_db.fetch_all("SELECT * FROM t") == []

    async def test_nested_block_failure_rolls_back_only_that_block(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)

        async def failing_inner_block() -> None:
            async with any_db.transaction():
                await any_db.execute("INSERT INTO t(x) VALUES ('inner')")
                raise KeyError("inner fails")

        async with any_db.transaction():
            await any_db.execute("INSERT INTO t(x) VALUES ('outer')")
            with pytest.raises(KeyError, match="inner fails"):
                await failing_inner_block()
            async with any_db.transaction():
                await any_db.execute("INSERT INTO t(x) VALUES ('second inner')")
        assert await any_db.fetch_all("SELECT x FROM t ORDER BY id") == [
            ("outer",),
            ("second inner",),
        ]

    @pytest.mark.parametrize("mode", ["deferred", "immediate", "exclusive"])
    async def test_transaction_modes(self, any_db: rxdb.Database, mode: Any) -> None:
        await make_t(any_db)
        async with any_db.transaction(mode):
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
        assert await any_db.fetch_one("SELECT count(*) FROM t") == (1,)

    async def test_explicit_begin_commit_binds_to_the_calling_task(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        await any_db.execute("BEGIN")
        await any_db.execute("INSERT INTO t(x) VALUES ('mine')")
        # A task started from a fresh context is not part of our transaction (one started from
        # here would be, as with transaction()).
        other = asyncio.get_running_loop().create_task(
            any_db.execute("INSERT INTO t(x) VALUES ('other')"), context=contextvars.Context()
        )
        await asyncio.sleep(0)
        assert not other.done()  # waits for our transaction
        await any_db.execute("ROLLBACK")
        await asyncio.wait_for(other, WAIT)
        assert await any_db.fetch_all("SELECT x FROM t") == [("other",)]

    async def test_task_ending_inside_its_begin_is_rolled_back(
        self, any_db: rxdb.Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        await make_t(any_db)

        async def forgetful() -> None:
            await any_db.execute("BEGIN")
            await any_db.execute("INSERT INTO t(x) VALUES ('lost')")

        async def forget_then_write() -> None:
            await asyncio.ensure_future(forgetful())
            await asyncio.wait_for(any_db.execute("INSERT INTO t(x) VALUES ('next')"), WAIT)

        with pytest.warns(ResourceWarning, match="BEGIN without COMMIT"):
            await forget_then_write()
        assert await any_db.fetch_all("SELECT x FROM t") == [("next",)]
        assert "it was rolled back" in caplog.text

    async def test_watch_reads_never_enter_an_open_write_transaction(
        self, db: rxdb.Database
    ) -> None:
        await make_t(db)
        async with db.transaction():
            await db.execute("INSERT INTO t(x) VALUES (1)")
            # A read outside the transaction's task sees committed data only, at once.
            outside = await asyncio.wait_for(
                asyncio.get_running_loop().create_task(
                    db.fetch_all("SELECT count(*) FROM t"), context=contextvars.Context()
                ),
                WAIT,
            )
            assert outside == [(0,)]


class TestSubscriptionErrors:
    async def test_subscribe_from_thread_without_loop_reports_wrong_loop(
        self, db: rxdb.Database
    ) -> None:
        rec: Recorder[Any] = Recorder()
        await asyncio.to_thread(lambda: db.watch("SELECT 1").subscribe(rec))
        assert isinstance(rec.errors[0], rxdb.WrongLoopError)
        assert "no loop runs in this thread" in str(rec.errors[0])
        assert db.watch("SELECT 1").statistics().subscribers == 0

    async def test_table_updates_from_other_loop_reports_wrong_loop(
        self, db: rxdb.Database
    ) -> None:
        rec: Recorder[Any] = Recorder()

        async def subscribe_there() -> None:
            db.table_updates().subscribe(rec)

        await asyncio.to_thread(asyncio.run, subscribe_there())
        assert isinstance(rec.errors[0], rxdb.WrongLoopError)

    async def test_leaked_database_warns_with_the_fix(self, db_path: Path) -> None:
        db = await rxdb.open(db_path)
        try:
            with pytest.warns(ResourceWarning, match="async with rxdb.open"):
                db.__del__()
        finally:
            await db.close()

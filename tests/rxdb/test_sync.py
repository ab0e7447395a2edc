"""The blocking façade: plain functions, real threads, events with timeouts, no sleeps."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import rxdb
from rxdb import SyncDatabase, open_sync
from tests.conftest import WAIT, sqlite_engine

T = TypeVar("T")


@pytest.fixture
def sdb(db_path: Path) -> Iterator[SyncDatabase]:
    with open_sync(db_path) as database:
        database.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
        yield database


def in_thread(fn: Callable[[], T]) -> Callable[[], T]:
    """Start ``fn`` in a new thread; the returned function joins it and gives its result."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()

    def join() -> T:
        thread.join(WAIT)
        assert not thread.is_alive(), "the thread hung"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    return join


def wait(event: threading.Event) -> None:
    assert event.wait(WAIT), "an event never came"


class Values:
    """Collects an Observable's emissions from the loop thread; waits from another."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.threads: set[str] = set()
        self.completed = False
        self.condition = threading.Condition()

    def on_next(self, value: Any) -> None:
        with self.condition:
            self.values.append(value)
            self.threads.add(threading.current_thread().name)
            self.condition.notify_all()

    def on_completed(self) -> None:
        with self.condition:
            self.completed = True
            self.condition.notify_all()

    def wait_for(self, condition: Callable[[Values], bool]) -> None:
        with self.condition:
            assert self.condition.wait_for(lambda: condition(self), WAIT), self.values


class TestLifecycle:
    def test_open_and_close_leave_no_threads(self, db_path: Path) -> None:
        before = set(threading.enumerate())
        db = open_sync(db_path)
        db.execute("CREATE TABLE t(x)")
        assert db.fetch_all("SELECT * FROM t") == []
        assert any(t.name.startswith("rxdb-sync") for t in threading.enumerate())
        db.close()
        assert db.closed
        assert set(threading.enumerate()) - before == set()

    def test_close_is_idempotent_and_later_calls_raise(self, db_path: Path) -> None:
        db = open_sync(db_path)
        db.close()
        db.close()
        with pytest.raises(rxdb.ClosedError, match="closed"):
            db.execute("SELECT 1")
        with pytest.raises(rxdb.ClosedError):
            db.fetch_all("SELECT 1")
        with pytest.raises(rxdb.ClosedError), db.transaction():
            pass
        with pytest.raises(rxdb.ClosedError):
            db.watch("SELECT 1")

    def test_open_of_unopenable_path_raises_and_leaves_no_thread(self, tmp_path: Path) -> None:
        before = set(threading.enumerate())
        with pytest.raises(rxdb.OperationalError, match="unable to open"):
            open_sync(tmp_path / "no" / "such" / "x.db")
        assert set(threading.enumerate()) - before == set()

    def test_open_database_is_closed_at_interpreter_exit(self, db_path: Path) -> None:
        script = (
            "import rxdb\n"
            f"db = rxdb.open_sync({str(db_path)!r})\n"
            "db.execute('CREATE TABLE t(x)')\n"
            "db.execute('INSERT INTO t VALUES (1)')\n"
            "print('done')\n"  # no close: the exit hook must stop the loop thread
        )
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", script],
            capture_output=True,
            text=True,
            timeout=WAIT * 3,
            check=False,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")
        with open_sync(db_path) as db:
            assert db.fetch_all("SELECT x FROM t") == [(1,)]


class TestStatements:
    def test_statements_and_rows(self, sdb: SyncDatabase) -> None:
        result = sdb.execute("INSERT INTO t(x) VALUES (?)", ("a",))
        assert (result.rowcount, result.last_insert_rowid) == (1, 1)
        assert sdb.execute_many("INSERT INTO t(x) VALUES (?)", [("b",), ("c",)]) == 2
        sdb.execute_script("INSERT INTO t(x) VALUES ('d'); INSERT INTO t(x) VALUES ('e');")
        rows = sdb.fetch_all("SELECT x FROM t ORDER BY id")
        assert rows == [("a",), ("b",), ("c",), ("d",), ("e",)]
        row = sdb.fetch_one("SELECT id, x FROM t WHERE x = :x", {"x": "b"})
        assert row is not None
        assert row["x"] == "b"
        assert sdb.fetch_one("SELECT * FROM t WHERE x = 'zz'") is None

    def test_errors_come_through_unchanged(self, sdb: SyncDatabase) -> None:
        sdb.execute("INSERT INTO t(x) VALUES (1)")
        with pytest.raises(rxdb.IntegrityError) as caught:
            sdb.execute("INSERT INTO t(x) VALUES (1)")
        assert caught.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        with pytest.raises(rxdb.OperationalError, match="no such table"):
            sdb.fetch_all("SELECT * FROM missing")
        assert sdb.fetch_one("SELECT count(*) FROM t") == (1,)

    def test_foreign_write_tracking(self, sdb: SyncDatabase) -> None:
        journal = "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'rxdb_journal%'"
        sdb.track_foreign_writes()
        assert sdb.fetch_one(journal) == (4,)  # the table and t's three triggers
        sdb.untrack_foreign_writes()
        assert sdb.fetch_one(journal) == (0,)

    def test_calls_from_many_threads(self, sdb: SyncDatabase) -> None:
        def insert(i: int) -> Callable[[], object]:
            return lambda: sdb.execute("INSERT INTO t(x) VALUES (?)", (i,))

        joins = [in_thread(insert(i)) for i in range(8)]
        for join in joins:
            join()
        assert sdb.fetch_one("SELECT count(*) FROM t") == (8,)


class TestTransactions:
    def test_commit_and_own_writes_visible(self, sdb: SyncDatabase) -> None:
        with sdb.transaction():
            sdb.execute("INSERT INTO t(x) VALUES (1)")
            assert sdb.fetch_all("SELECT x FROM t") == [(1,)]
            # Another thread reads committed data only.
            assert in_thread(lambda: sdb.fetch_all("SELECT x FROM t"))() == []
        assert sdb.fetch_all("SELECT x FROM t") == [(1,)]

    def test_exception_in_block_rolls_back(self, sdb: SyncDatabase) -> None:
        def block() -> None:
            with sdb.transaction():
                sdb.execute("INSERT INTO t(x) VALUES (1)")
                raise KeyError("undo")

        with pytest.raises(KeyError):
            block()
        assert sdb.fetch_all("SELECT * FROM t") == []

    def test_statement_error_inside_block_keeps_block_usable(self, sdb: SyncDatabase) -> None:
        with sdb.transaction():
            sdb.execute("INSERT INTO t(x) VALUES (1)")
            with pytest.raises(rxdb.IntegrityError):
                sdb.execute("INSERT INTO t(x) VALUES (1)")
            sdb.execute("INSERT INTO t(x) VALUES (2)")
        assert sdb.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (2,)]

    def test_nested_block_failure_rolls_back_only_that_block(self, sdb: SyncDatabase) -> None:
        def inner_block() -> None:
            with sdb.transaction():
                sdb.execute("INSERT INTO t(x) VALUES ('inner')")
                raise KeyError("inner fails")

        with sdb.transaction():
            sdb.execute("INSERT INTO t(x) VALUES ('outer')")
            with pytest.raises(KeyError):
                inner_block()
            with sdb.transaction():
                sdb.execute("INSERT INTO t(x) VALUES ('second inner')")
        assert sdb.fetch_all("SELECT x FROM t ORDER BY id") == [("outer",), ("second inner",)]

    @pytest.mark.parametrize("mode", ["deferred", "immediate", "exclusive"])
    def test_transaction_modes(self, sdb: SyncDatabase, mode: Any) -> None:
        with sdb.transaction(mode):
            sdb.execute("INSERT INTO t(x) VALUES (1)")
        assert sdb.fetch_one("SELECT count(*) FROM t") == (1,)

    def test_unknown_mode_refused(self, sdb: SyncDatabase) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="mode"), sdb.transaction("later"):  # type: ignore[arg-type]
            pass
        sdb.execute("INSERT INTO t(x) VALUES (1)")  # nothing left locked

    def test_concurrent_transactions_never_see_each_other(self, sdb: SyncDatabase) -> None:
        a_inside = threading.Event()
        b_starting = threading.Event()
        seen: dict[str, Any] = {}

        def a_block() -> None:
            with sdb.transaction():
                sdb.execute("INSERT INTO t(x) VALUES ('a')")
                a_inside.set()
                wait(b_starting)
                for _ in range(5):  # round trips on the loop: B has every chance to slip in
                    seen.setdefault("a", []).append(sdb.fetch_all("SELECT x FROM t"))
                raise RuntimeError("A fails")

        def a() -> None:
            with pytest.raises(RuntimeError):
                a_block()

        def b() -> None:
            wait(a_inside)
            b_starting.set()
            with sdb.transaction():
                sdb.execute("INSERT INTO t(x) VALUES ('b')")
                seen["b"] = sdb.fetch_all("SELECT x FROM t")

        join_a, join_b = in_thread(a), in_thread(b)
        join_a()
        join_b()
        assert seen["a"] == [[("a",)]] * 5
        assert seen["b"] == [("b",)]
        assert sdb.fetch_all("SELECT x FROM t") == [("b",)]

    def test_plain_statement_of_other_thread_waits_for_the_block(self, sdb: SyncDatabase) -> None:
        joins = []

        def block() -> None:
            with sdb.transaction():
                sdb.execute("INSERT INTO t(x) VALUES ('a')")
                joins.append(in_thread(lambda: sdb.execute("INSERT INTO t(x) VALUES ('b')")))
                assert sdb.fetch_all("SELECT x FROM t") == [("a",)]
                raise RuntimeError("roll back A only")

        with pytest.raises(RuntimeError):
            block()
        joins[0]()
        assert sdb.fetch_all("SELECT x FROM t") == [("b",)]

    def test_close_inside_block_rolls_back(self, db_path: Path) -> None:
        db = open_sync(db_path)
        db.execute("CREATE TABLE t(x)")

        def block() -> None:
            with db.transaction():
                db.execute("INSERT INTO t VALUES (1)")
                db.close()

        with pytest.raises(rxdb.ClosedError):
            block()
        with open_sync(db_path) as again:
            assert again.fetch_all("SELECT * FROM t") == []


class TestWatch:
    def test_for_loop_yields_first_value_then_update_from_other_thread(
        self, sdb: SyncDatabase
    ) -> None:
        results = []
        for rows in sdb.watch("SELECT x FROM t ORDER BY x"):
            results.append(rows)
            if len(results) == 1:
                in_thread(lambda: sdb.execute("INSERT INTO t(x) VALUES (1)"))()
            else:
                break
        assert results == [[], [(1,)]]

    def test_break_releases_the_subscription(self, sdb: SyncDatabase) -> None:
        sql = "SELECT count(*) FROM t"
        for _rows in sdb.watch(sql):
            assert sdb.database.watch(sql).statistics().subscribers == 1
            break
        # Released on the loop before the loop statement after `break` runs.
        assert sdb.database.watch(sql).statistics().subscribers == 0

    def test_newest_value_only(self, sdb: SyncDatabase) -> None:
        iterator = iter(sdb.watch("SELECT count(*) FROM t"))
        assert next(iterator) == [(0,)]
        for i in range(5):
            sdb.execute("INSERT INTO t(x) VALUES (?)", (i,))
        while (rows := next(iterator)) != [(5,)]:
            assert rows[0][0] < 5  # intermediate values may be skipped, never stale at the end
        iterator.close()

    def test_subscribe_from_non_loop_thread(self, sdb: SyncDatabase) -> None:
        values = Values()
        subscription = sdb.watch("SELECT x FROM t").subscribe(values.on_next)
        values.wait_for(lambda v: v.values == [[]])
        sdb.execute("INSERT INTO t(x) VALUES (1)")
        values.wait_for(lambda v: v.values[-1] == [(1,)])
        assert all(name.startswith("rxdb-sync") for name in values.threads)  # the loop thread
        subscription.dispose()  # returns once released on the loop
        assert sdb.database.watch("SELECT x FROM t").statistics().subscribers == 0

    def test_table_updates_from_non_loop_thread(self, sdb: SyncDatabase) -> None:
        values = Values()
        subscription = sdb.table_updates(["t"]).subscribe(values.on_next)
        # subscribe() returned: subscribed on the loop already, so the write is seen
        sdb.execute("INSERT INTO t(x) VALUES (1)")
        values.wait_for(lambda v: len(v.values) == 1)
        assert values.values[0].tables == frozenset({"t"})
        subscription.dispose()

    def test_query_error_is_raised_from_the_loop(self, sdb: SyncDatabase) -> None:
        with pytest.raises(rxdb.OperationalError, match="no such table"):
            for _rows in sdb.watch("SELECT * FROM missing"):
                pass

    def test_close_ends_a_loop_blocked_in_another_thread(self, db_path: Path) -> None:
        db = open_sync(db_path)
        db.execute("CREATE TABLE t(x)")
        got_first = threading.Event()

        def consume() -> int:
            count = 0
            for _rows in db.watch("SELECT * FROM t"):
                count += 1
                got_first.set()
            return count

        join = in_thread(consume)
        wait(got_first)
        db.close()
        assert join() == 1

    def test_close_completes_subscribers(self, db_path: Path) -> None:
        db = open_sync(db_path)
        values = Values()
        db.watch("SELECT 1").subscribe(values.on_next, on_completed=values.on_completed)
        values.wait_for(lambda v: len(v.values) == 1)
        db.close()
        values.wait_for(lambda v: v.completed)


class TestWrongLoop:
    def test_blocking_call_inside_async_code_raises_wrong_loop(self, sdb: SyncDatabase) -> None:
        async def misuse() -> None:
            sdb.fetch_all("SELECT 1")

        with pytest.raises(rxdb.WrongLoopError, match=r"await rxdb\.open"):
            asyncio.run(misuse())
        assert sdb.fetch_one("SELECT 1") == (1,)  # and nothing is stuck

    def test_open_sync_inside_async_code_raises_wrong_loop(self, db_path: Path) -> None:
        async def misuse() -> None:
            open_sync(db_path)

        before = set(threading.enumerate())
        with pytest.raises(rxdb.WrongLoopError, match="async API"):
            asyncio.run(misuse())
        assert set(threading.enumerate()) - before == set()

    def test_iterating_inside_async_code_raises_wrong_loop(self, sdb: SyncDatabase) -> None:
        async def misuse() -> None:
            for _rows in sdb.watch("SELECT 1"):
                break

        with pytest.raises(rxdb.WrongLoopError):
            asyncio.run(misuse())

    def test_blocking_call_from_a_watch_callback_raises_instead_of_deadlocking(
        self, sdb: SyncDatabase
    ) -> None:
        caught: list[BaseException] = []
        done = threading.Event()

        def on_next(_rows: Any) -> None:
            try:
                sdb.execute("INSERT INTO t(x) VALUES (1)")
            except BaseException as error:
                caught.append(error)
            done.set()

        subscription = sdb.watch("SELECT 1").subscribe(on_next)
        wait(done)
        subscription.dispose()
        assert isinstance(caught[0], rxdb.WrongLoopError)


class TestSyncReads:
    def test_read_block_sees_one_snapshot(self, sdb: SyncDatabase) -> None:
        sdb.execute("INSERT INTO t(x) VALUES (1)")
        with sdb.read() as r:
            assert r.fetch_one("SELECT count(*) FROM t") == (1,)
            in_thread(lambda: sdb.execute("INSERT INTO t(x) VALUES (2)"))()  # commits now
            assert r.fetch_one("SELECT count(*) FROM t") == (1,)
            assert sdb.fetch_one("SELECT count(*) FROM t") == (1,)  # this thread: same snapshot
        assert sdb.fetch_one("SELECT count(*) FROM t") == (2,)

    def test_unsafe_read_sees_latest(self, sdb: SyncDatabase) -> None:
        with sdb.unsafe_read() as r:
            assert r.fetch_all("SELECT x FROM t") == []
            in_thread(lambda: sdb.execute("INSERT INTO t(x) VALUES (2)"))()
            assert r.fetch_all("SELECT x FROM t") == [(2,)]

    def test_write_and_reentrancy_inside_read_raise(self, sdb: SyncDatabase) -> None:
        with sdb.read() as r:
            with pytest.raises(rxdb.ReadOnlyError):
                r.execute("INSERT INTO t(x) VALUES (1)")
            with pytest.raises(rxdb.ReadOnlyError):
                sdb.execute("INSERT INTO t(x) VALUES (1)")
            with pytest.raises(rxdb.ReentrancyError), sdb.read():
                pass
            with pytest.raises(rxdb.ReentrancyError), sdb.transaction():
                pass
            assert r.fetch_one("SELECT count(*) FROM t") == (0,)
        sdb.execute("INSERT INTO t(x) VALUES (1)")

    def test_interrupt_from_another_thread(self, sdb: SyncDatabase) -> None:
        running = threading.Event()

        def started() -> int:
            running.set()
            return 0

        sdb.execute_script("")  # connected
        database = sdb.database
        assert isinstance(database, rxdb.Database)  # the SQLite engine, whose writer we hook
        writer = sqlite_engine(database)._writer
        assert writer is not None  # connected
        worker = writer.worker
        asyncio.run_coroutine_threadsafe(
            worker.call(worker.raw.create_function, "started", 0, started), sdb.loop
        ).result(WAIT)
        query = (
            "WITH RECURSIVE c(n) AS (SELECT started() UNION ALL SELECT n + 1 FROM c) "
            "INSERT INTO t(x) SELECT n FROM c"
        )
        joiner = in_thread(lambda: sdb.execute(query))
        wait(running)
        sdb.interrupt()
        with pytest.raises(rxdb.InterruptError):
            joiner()
        assert sdb.fetch_one("SELECT count(*) FROM t") == (0,)

    def test_backup_to_path_and_into_another_sync_database(
        self, sdb: SyncDatabase, tmp_path: Path
    ) -> None:
        sdb.execute_many("INSERT INTO t(x) VALUES (?)", [(i,) for i in range(10)])
        sdb.backup(tmp_path / "copy.db")
        with open_sync(tmp_path / "copy.db") as copy:
            assert copy.fetch_one("SELECT count(*) FROM t") == (10,)
        with open_sync(tmp_path / "other.db") as other:
            other.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
            iterator = iter(other.watch("SELECT count(*) FROM t"))
            assert next(iterator) == [(0,)]
            sdb.backup(other)
            assert next(iterator) == [(10,)]
            iterator.close()

"""Watches and table updates: first value, refresh, distinct, filters, announcements."""

from __future__ import annotations

from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase
from tests.conformance.conftest import caught_up, make_t
from tests.conformance.dialects import dialect
from tests.conftest import Recorder, subscribed

COUNT = "SELECT count(*) FROM t"


class TestWatch:
    async def test_first_value_then_one_after_each_commit(self, db: AsyncDatabase) -> None:
        await make_t(db)
        seen: Recorder[Any] = Recorder()
        with subscribed(db.watch("SELECT x FROM t WHERE x > ? ORDER BY x", (0,)), seen):
            await seen.wait_value([(1,)])
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await seen.wait_value([(1,), (2,)])
            async with db.transaction():
                await db.execute("INSERT INTO t(x) VALUES (3)")
                await db.execute("DELETE FROM t WHERE x = 1")
            await seen.wait_value([(2,), (3,)])
        assert seen.errors == []
        assert [(1,), (2,), (3,)] not in seen.values  # never half of a transaction

    async def test_async_iteration_gives_the_newest_result(self, db: AsyncDatabase) -> None:
        await make_t(db)
        values = []
        async for rows in db.watch(COUNT):  # leaving the loop releases the watch
            values.append(rows)
            if len(values) == 2:
                break
            await db.execute("INSERT INTO t(x) VALUES (2)")
        assert values == [[(1,)], [(2,)]]

    async def test_equal_results_are_skipped_unless_distinct_is_off(
        self, db: AsyncDatabase
    ) -> None:
        await make_t(db)
        distinct: Recorder[Any] = Recorder()
        every: Recorder[Any] = Recorder()
        # It reads x: an update of x re-runs it (column-level precision skips no run here).
        counted = "SELECT count(*) FROM t WHERE x > 0"
        with (
            subscribed(db.watch(counted), distinct),
            subscribed(db.watch(counted, distinct=False), every),
        ):
            await distinct.wait_count(1)
            await every.wait_count(1)
            await db.execute("UPDATE t SET x = 5")  # t changed, the count did not
            await every.wait_count(2)
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await distinct.wait_count(2)
            await every.wait_value([(2,)])
        assert distinct.values == [[(1,)], [(2,)]]
        assert every.values[:2] == [[(1,)], [(1,)]]

    async def test_a_failing_query_arrives_as_on_error(self, db: AsyncDatabase) -> None:
        seen: Recorder[Any] = Recorder()
        with subscribed(db.watch("SELECT * FROM missing"), seen):
            await seen.wait_for(lambda r: bool(r.errors))
        assert isinstance(seen.errors[0], rxdb.OperationalError)

    @pytest.mark.parametrize(
        ("sql", "params"),
        [(" -- nothing", ()), ("SELECT ?", 5), ("SELECT ?", (2**70,))],
    )
    async def test_a_watch_no_database_could_run_raises_at_once(
        self, db: AsyncDatabase, sql: str, params: Any
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            db.watch(sql, params)

    async def test_notify_updates_re_runs_the_watches_of_a_table(self, db: AsyncDatabase) -> None:
        await make_t(db)
        seen: Recorder[Any] = Recorder()
        with subscribed(db.watch(COUNT, distinct=False), seen):
            await seen.wait_count(1)
            await db.notify_updates("t")
            await seen.wait_count(2)
            await db.notify_updates(rxdb.TableUpdate("t", rxdb.UpdateKind.UPDATE))
            await seen.wait_count(3)
            await db.notify_updates()  # anything may have changed
            await seen.wait_count(4)

    async def test_notify_updates_refuses_what_is_not_a_table(self, db: AsyncDatabase) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            await db.notify_updates(42)  # type: ignore[arg-type]


class TestTableUpdates:
    async def test_messages_are_filtered_by_table_and_kind(self, db: AsyncDatabase) -> None:
        await make_t(db)
        await db.execute("CREATE TABLE u(y INTEGER)")
        await caught_up(db)
        every: Recorder[Any] = Recorder()
        of_u: Recorder[Any] = Recorder()
        deletes: Recorder[Any] = Recorder()
        with (
            subscribed(db.table_updates(), every),
            subscribed(db.table_updates(["U"]), of_u),  # names fold as unquoted SQL names do
            subscribed(db.table_updates(["t"], [rxdb.UpdateKind.DELETE]), deletes),
        ):
            writes = [
                "INSERT INTO t(x) VALUES (2)",
                "INSERT INTO u(y) VALUES (1)",
                "DELETE FROM t WHERE x = 2",
                "INSERT INTO u(y) VALUES (2)",
            ]
            for count, write in enumerate(writes, 1):
                await db.execute(write)
                # Its message before the next commit: PostgreSQL's listener would hand
                # commits it hears together over as one message.
                await every.wait_count(count)
            await of_u.wait_count(2)
            await deletes.wait_count(1)
        t, u = dialect(db).names("t"), dialect(db).names("u")
        assert [m.tables for m in every.values] == [t, u, t, u]
        assert [m.tables for m in of_u.values] == [u, u]
        assert [m.updates for m in deletes.values] == [
            dialect(db).updates("t", rxdb.UpdateKind.DELETE)
        ]

    async def test_announcements_reach_table_updates(self, db: AsyncDatabase) -> None:
        seen: Recorder[Any] = Recorder()
        with subscribed(db.table_updates(["t"]), seen):
            await db.notify_updates("t", "other")
            await seen.wait_count(1)
        assert seen.values[0].updates >= {rxdb.TableUpdate("t")}

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import parser
import rxdb
from rxdb.engines.sqlite import eager
from tests.conftest import WAIT, Recorder, settle, subscribed

COUNT = "SELECT count(*) FROM t"


async def make_t(db: rxdb.Database) -> None:
    await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
    await db.execute("CREATE TABLE other(y)")


class TestWatchEmissions:
    async def test_watch_first_emission_is_current_result(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        await any_db.execute("INSERT INTO t(x) VALUES (1), (2)")
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch("SELECT x FROM t ORDER BY x"), rec):
            assert await rec.wait_count(1) == [[(1,), (2,)]]

    async def test_watch_emits_after_commit_to_read_table(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT), rec):
            await rec.wait_value([(0,)])
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert rec.values == [[(0,)], [(1,)]]

    async def test_watch_does_not_rerun_for_other_tables(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        stream = any_db.watch(COUNT)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            await settle(any_db)
            for _ in range(5):
                await any_db.execute("INSERT INTO other VALUES (1)")
            await settle(any_db)
            assert stream.statistics().runs == 1

    async def test_watch_distinct_skips_equal_results_but_runs(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        counted = "SELECT count(*) FROM t WHERE x > 0"  # reads x: an update of x re-runs it
        stream = any_db.watch(counted)
        every = any_db.watch(counted, distinct=False)
        rec: Recorder[Any] = Recorder()
        rec_every: Recorder[Any] = Recorder()
        subs = [stream.subscribe(rec), every.subscribe(rec_every)]
        try:
            await rec.wait_count(1)
            await rec_every.wait_count(1)
            await any_db.execute("UPDATE t SET x = 2")  # count unchanged
            await rec_every.wait_count(2)
            await settle(any_db)
            assert rec.values == [[(1,)]]
            assert stream.statistics().runs == 2
            assert stream.statistics().emissions == 1
            assert rec_every.values == [[(1,)], [(1,)]]
        finally:
            for sub in subs:
                sub.dispose()

    @pytest.mark.parametrize(
        "query",
        [
            "SELECT n FROM v",
            "WITH c AS (SELECT count(*) AS n FROM t) SELECT n FROM c",
            "SELECT (SELECT count(*) FROM t) AS n",
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM t)",
            "SELECT total FROM counter",
        ],
        ids=["view", "cte", "scalar-subquery", "exists", "trigger-maintained"],
    )
    async def test_watch_follows_indirect_reads(self, any_db: rxdb.Database, query: str) -> None:
        await make_t(any_db)
        await any_db.execute_script(
            """
            CREATE VIEW v AS SELECT count(*) AS n FROM t;
            CREATE TABLE counter(total INTEGER);
            INSERT INTO counter VALUES (0);
            CREATE TRIGGER bump AFTER INSERT ON t BEGIN UPDATE counter SET total = total + 1; END;
            """
        )
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(query), rec):
            await rec.wait_count(1)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_count(2)
            assert rec.values[-1] == await any_db.fetch_all(query)
            assert rec.values[0] != rec.values[-1]

    async def test_watch_with_params(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        await any_db.execute_many("INSERT INTO t(x) VALUES (?)", [(1,), (2,), (2,)])
        ones: Recorder[Any] = Recorder()
        twos: Recorder[Any] = Recorder()
        subs = [
            any_db.watch("SELECT count(*) FROM t WHERE x = ?", (1,)).subscribe(ones),
            any_db.watch("SELECT count(*) FROM t WHERE x = :x", {"x": 2}).subscribe(twos),
        ]
        try:
            await ones.wait_value([(1,)])
            await twos.wait_value([(2,)])
        finally:
            for sub in subs:
                sub.dispose()


class TestWatchScheduling:
    async def test_watch_coalesces_commits_during_a_run_into_one_rerun(
        self, any_db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)
        # The scheduler's coalescing: no re-run may skip it on the writer's thread.
        monkeypatch.setattr(eager, "BUDGET", 0.0)
        gate = asyncio.Event()
        entered = asyncio.Event()
        scheduler = any_db._watches.scheduler
        real_fetch = scheduler._fetch_many

        async def gated_fetch(queries: Any) -> Any:
            entered.set()
            await gate.wait()
            return await real_fetch(queries)

        stream = any_db.watch(COUNT)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            monkeypatch.setattr(scheduler, "_fetch_many", gated_fetch)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await asyncio.wait_for(entered.wait(), WAIT)  # a run is in flight, held
            for _ in range(10):
                await any_db.execute("INSERT INTO t(x) VALUES (1)")
            stats = stream.statistics()
            assert stats.running
            assert stats.pending
            gate.set()
            await rec.wait_value([(11,)])
            await settle(any_db)
            assert stream.statistics().runs == 3  # initial, the held one, one trailing re-run

    async def test_watch_final_emission_equals_final_state_under_concurrent_writers(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT), rec):
            await rec.wait_count(1)

            async def writer(n: int) -> None:
                for _ in range(n):
                    await any_db.execute("INSERT INTO t(x) VALUES (1)")

            await asyncio.gather(*(writer(25) for _ in range(4)))
            await rec.wait_value([(100,)])
            await settle(any_db)
            assert rec.values[-1] == [(100,)]
            counts = [value[0][0] for value in rec.values]
            assert counts == sorted(counts)  # never goes back to an older state

    async def test_watch_identical_queries_share_one_execution(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        recs: list[Recorder[Any]] = [Recorder() for _ in range(20)]
        subs = [any_db.watch(COUNT).subscribe(rec) for rec in recs]
        try:
            for rec in recs:
                await rec.wait_count(1)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            for rec in recs:
                await rec.wait_value([(1,)])
            await settle(any_db)
            stats = any_db.watch(COUNT).statistics()
            assert stats.subscribers == 20
            assert stats.runs == 2
        finally:
            for sub in subs:
                sub.dispose()

    async def test_watch_late_subscriber_gets_latest_at_once(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        first: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT), first):
            await first.wait_count(1)
            late: Recorder[Any] = Recorder()
            late_sub = any_db.watch(COUNT).subscribe(late)
            assert late.values == [[(0,)]]  # synchronously, during subscribe
            late_sub.dispose()
            assert any_db.watch(COUNT).statistics().runs == 1

    async def test_watch_stops_when_last_subscriber_leaves(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        bus_before = rxdb.bus.default_bus.statistics().subscriptions
        recs: list[Recorder[Any]] = [Recorder(), Recorder()]
        subs = [any_db.watch(COUNT).subscribe(rec) for rec in recs]
        await recs[0].wait_count(1)
        assert rxdb.bus.default_bus.statistics().subscriptions == bus_before + 1
        subs[0].dispose()
        assert any_db.watch(COUNT).statistics().subscribers == 1
        subs[1].dispose()
        assert any_db.watch(COUNT).statistics().subscribers == 0
        assert rxdb.bus.default_bus.statistics().subscriptions == bus_before
        assert any_db._watches.queries == {}

    async def test_watch_restarts_fresh_after_all_left(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        any_db.watch(COUNT).subscribe(rec).dispose()
        await any_db.execute("INSERT INTO t(x) VALUES (1)")
        again: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT), again):
            assert await again.wait_count(1) == [[(1,)]]

    async def test_watch_subscribed_inside_transaction_reads_committed_data_only(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        async with any_db.transaction():
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            sub = any_db.watch(COUNT).subscribe(rec)
            await asyncio.sleep(0)
        try:
            await rec.wait_value([(1,)])
            assert all(value in ([(0,)], [(1,)]) for value in rec.values)
        finally:
            sub.dispose()


class TestWatchSchema:
    async def test_watch_schema_change_reruns_and_follows_new_view(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        await any_db.execute("CREATE VIEW v AS SELECT count(*) AS n FROM t")
        stream = any_db.watch("SELECT n FROM v")
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_value([(0,)])
            # In one transaction: between an autocommit DROP and CREATE, the view would be
            # missing from a committed state, and a watch reading then would fail.
            async with any_db.transaction():
                await any_db.execute_script(
                    "DROP VIEW v; CREATE VIEW v AS SELECT count(*) AS n FROM other;"
                    "INSERT INTO other VALUES (1), (2);"
                )
            await rec.wait_value([(2,)])
            await any_db.execute("INSERT INTO other VALUES (3)")  # the view's new base table
            await rec.wait_value([(3,)])
            await settle(any_db)
            runs = stream.statistics().runs
            await any_db.execute("INSERT INTO t(x) VALUES (1)")  # no longer read
            await settle(any_db)
            assert stream.statistics().runs == runs

    async def test_watch_of_unanalyzable_query_reruns_on_every_commit(
        self, any_db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)

        def refuse(sql: str, **_: Any) -> parser.Analysis:
            raise parser.Unanalyzable(sql, "pretend sqlglot cannot read it")

        monkeypatch.setattr(rxdb.engines.sqlite.read_sets, "analyze", refuse)
        stream = any_db.watch(COUNT)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            await settle(any_db)
            await any_db.execute("INSERT INTO other VALUES (1)")
            await settle(any_db)
            assert stream.statistics().runs == 2
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])


class TestWatchErrors:
    async def test_watch_failing_query_reaches_subscriber_and_leaves_db_working(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        bad: Recorder[Any] = Recorder()
        good: Recorder[Any] = Recorder()
        subs = [
            any_db.watch("SELECT * FROM missing").subscribe(bad),
            any_db.watch(COUNT).subscribe(good),
        ]
        try:
            await bad.wait_for(lambda r: bool(r.errors))
            assert isinstance(bad.errors[0], rxdb.OperationalError)
            assert "missing" in str(bad.errors[0])
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await good.wait_value([(1,)])
            assert any_db.watch("SELECT * FROM missing").statistics().subscribers == 0
        finally:
            for sub in subs:
                sub.dispose()

    async def test_watch_error_after_table_dropped(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT), rec):
            await rec.wait_count(1)
            await any_db.execute("DROP TABLE t")
            await rec.wait_for(lambda r: bool(r.errors))
            assert isinstance(rec.errors[0], rxdb.OperationalError)

    async def test_watch_of_a_write_statement_is_refused(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        any_db.watch("DELETE FROM t").subscribe(rec)
        await rec.wait_for(lambda r: bool(r.errors))
        assert isinstance(rec.errors[0], rxdb.ProgrammingError)
        assert await any_db.fetch_all(COUNT) == [(0,)]

    async def test_watch_raising_subscriber_does_not_starve_others(
        self, any_db: rxdb.Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        await make_t(any_db)

        def broken(_: object) -> None:
            raise RuntimeError("boom in on_next")

        rec: Recorder[Any] = Recorder()
        subs = [any_db.watch(COUNT).subscribe(broken), any_db.watch(COUNT).subscribe(rec)]
        try:
            await rec.wait_count(1)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert "boom in on_next" in caplog.text
        finally:
            for sub in subs:
                sub.dispose()

    async def test_watch_completes_when_database_closes(self, db_path: Any) -> None:
        db = await rxdb.open(db_path)
        try:
            await make_t(db)
            rec: Recorder[Any] = Recorder()
            db.watch(COUNT).subscribe(rec)
            await rec.wait_count(1)
        finally:
            await db.close()
        assert rec.completed
        late: Recorder[Any] = Recorder()
        db.watch(COUNT).subscribe(late)
        assert isinstance(late.errors[0], rxdb.ClosedError)


class TestWatchAsyncIteration:
    async def test_async_for_yields_current_then_updates(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        seen = []
        async for rows in any_db.watch(COUNT):
            seen.append(rows)
            if rows == [(2,)]:
                break
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
        assert seen == [[(0,)], [(1,)], [(2,)]]

    async def test_async_for_slow_consumer_gets_newest_not_backlog(
        self, any_db: rxdb.Database
    ) -> None:
        await make_t(any_db)
        stream = any_db.watch(COUNT)
        iterator = aiter(stream)
        try:
            assert await anext(iterator) == [(0,)]
            for _ in range(10):
                await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await settle(any_db)
            assert await anext(iterator) == [(10,)]
            # Nothing queued behind it: the next value only comes with the next commit.
            pending = asyncio.ensure_future(anext(iterator))
            await asyncio.sleep(0)
            assert not pending.done()
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            assert await asyncio.wait_for(pending, WAIT) == [(11,)]
        finally:
            await iterator.aclose()

    async def test_async_for_break_releases_subscription(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        stream = any_db.watch(COUNT)
        async for _rows in stream:
            assert stream.statistics().subscribers == 1
            break
        assert stream.statistics().subscribers == 0
        assert any_db._watches.queries == {}

    async def test_async_for_exception_releases_subscription(self, any_db: rxdb.Database) -> None:
        await make_t(any_db)
        stream = any_db.watch(COUNT)

        async def consume_and_fail() -> None:
            async for _rows in stream:
                raise KeyError("consumer failed")

        with pytest.raises(KeyError, match="consumer failed"):
            await consume_and_fail()
        assert stream.statistics().subscribers == 0

    async def test_async_for_raises_query_error(self, any_db: rxdb.Database) -> None:
        with pytest.raises(rxdb.OperationalError, match="missing"):
            async for _rows in any_db.watch("SELECT * FROM missing"):
                pass

    async def test_async_for_ends_when_database_closes(self, db_path: Any) -> None:
        db = await rxdb.open(db_path)
        seen = []
        first = asyncio.Event()
        try:
            await make_t(db)

            async def consume() -> None:
                async for rows in db.watch(COUNT):
                    seen.append(rows)
                    first.set()

            consumer = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), WAIT)
        finally:
            await db.close()
        await asyncio.wait_for(consumer, WAIT)
        assert seen == [[(0,)]]

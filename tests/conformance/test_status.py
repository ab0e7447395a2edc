"""A watch's states, ``recover=True`` and consistent groups (``watch_many``) on every shape:
the phases in order with the results, a watch that survives its table being dropped, and
groups whose members never disagree."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase, Queries
from tests.conformance.conftest import make_t
from tests.conftest import Recorder, subscribed
from tests.rxdb.watch_shapes import Timeline

ROWS = "SELECT x FROM t ORDER BY x"
GROUP = {
    "orders": "SELECT id, amount FROM orders ORDER BY id",
    "total": "SELECT total FROM totals",
}


def states(timeline: Recorder[tuple[str, Any]]) -> list[rxdb.WatchState[Any]]:
    return [value for kind, value in timeline.values if kind == "state"]


def live_with(rows: Any) -> Any:
    def holds(timeline: Recorder[tuple[str, Any]]) -> bool:
        seen = states(timeline)
        return bool(seen) and seen[-1].phase == "live" and seen[-1].value == rows

    return holds


async def make_orders(db: AsyncDatabase) -> None:
    await db.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, amount INTEGER)")
    await db.execute("CREATE TABLE totals(total INTEGER)")
    await db.execute("INSERT INTO totals(total) VALUES (0)")


async def order(db: AsyncDatabase, id_: int, amount: int) -> None:
    async with db.transaction():
        await db.execute(f"INSERT INTO orders(id, amount) VALUES ({id_}, {amount})")
        await db.execute(f"UPDATE totals SET total = total + {amount}")


class TestStates:
    async def test_states_follow_the_results_they_carry(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream = db.watch(ROWS)
        timeline: Recorder[tuple[str, Any]] = Recorder()
        with (
            subscribed(stream.states(), Timeline("state", timeline)),
            subscribed(stream, Timeline("value", timeline)),
        ):
            await timeline.wait_for(live_with([(1,)]))
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await timeline.wait_for(live_with([(1,), (2,)]))
        phases = [s.phase for s in states(timeline)]
        assert phases[0] == "loading"
        assert phases[-2:] == ["refreshing", "live"]
        latest: Any = None
        for kind, value in timeline.values:
            if kind == "value":
                latest = value
            elif value.phase == "live":
                assert value.value == latest  # never live before its value arrived
                assert value.error is None

    async def test_without_recover_a_failure_ends_both(self, db: AsyncDatabase) -> None:
        stream = db.watch("SELECT * FROM missing")
        values: Recorder[Any] = Recorder()
        seen: Recorder[rxdb.WatchState[Any]] = Recorder()
        with subscribed(stream, values), subscribed(stream.states(), seen):
            await values.wait_for(lambda r: bool(r.errors))
            await seen.wait_for(lambda r: r.completed)
        assert isinstance(values.errors[0], rxdb.DatabaseError)
        assert seen.values[-1].phase == "error"
        assert isinstance(seen.values[-1].error, rxdb.DatabaseError)

    async def test_recover_survives_a_dropped_table(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream = db.watch(ROWS, recover=True)
        timeline: Recorder[tuple[str, Any]] = Recorder()
        with (
            subscribed(stream, Timeline("value", timeline)),
            subscribed(stream.states(), Timeline("state", timeline)),
        ):
            await timeline.wait_for(live_with([(1,)]))
            await db.execute("DROP TABLE t")
            await timeline.wait_for(lambda t: states(t)[-1].phase == "error")
            failed = states(timeline)[-1]
            assert isinstance(failed.error, rxdb.DatabaseError)
            assert failed.value == [(1,)]
            await db.execute("CREATE TABLE t(x INTEGER)")
            await db.execute("INSERT INTO t(x) VALUES (9)")
            await timeline.wait_for(live_with([(9,)]))
        values = [v for k, v in timeline.values if k == "value"]
        assert values[0] == [(1,)]
        assert values[-1] == [(9,)]
        assert all(isinstance(v, list) for v in values)  # no error, no completion
        assert all(v != "completed" for _, v in timeline.values)

    async def test_async_for_over_states(self, db: AsyncDatabase) -> None:
        await make_t(db)
        async with asyncio.timeout(30):
            async for state in db.watch(ROWS).states():
                if state.phase == "live":
                    assert state.value == [(1,)]
                    break


async def test_states_and_groups_release_their_watch(db: AsyncDatabase) -> None:
    await make_t(db)
    stream, group = db.watch(ROWS), db.watch_many({"rows": ROWS})
    seen: Recorder[Any] = Recorder()
    with (
        subscribed(stream, seen),
        subscribed(stream.states(), seen),
        subscribed(group, seen),
        subscribed(group.states(), seen),
    ):
        await seen.wait_for(
            lambda r: r.values.count([(1,)]) + r.values.count({"rows": [(1,)]}) == 2
        )
        assert stream.statistics().subscribers >= 1
        assert group.statistics().subscribers >= 1
    await db.fetch_all("SELECT 1")  # after the disposals, on the database's loop
    assert stream.statistics().subscribers == 0
    assert group.statistics().subscribers == 0


class TestWatchMany:
    async def test_one_dict_per_commit_to_any_member(self, db: AsyncDatabase) -> None:
        await make_orders(db)
        seen: Recorder[Any] = Recorder()
        with subscribed(db.watch_many(GROUP), seen):
            await seen.wait_value({"orders": [], "total": [(0,)]})
            await order(db, 1, 5)
            await seen.wait_value({"orders": [(1, 5)], "total": [(5,)]})
            await db.execute("UPDATE totals SET total = 7")
            await seen.wait_value({"orders": [(1, 5)], "total": [(7,)]})
        assert seen.errors == []

    async def test_members_never_disagree(self, db: AsyncDatabase) -> None:
        await make_orders(db)
        seen: Recorder[Any] = Recorder()
        with subscribed(db.watch_many(GROUP), seen):
            await seen.wait_count(1)
            for id_ in range(1, 31):
                await order(db, id_, 2)
            await seen.wait_for(lambda r: bool(r.values) and r.values[-1]["total"] == [(60,)])
        for emission in seen.values:
            assert 2 * len(emission["orders"]) == emission["total"][0][0]

    async def test_distinct_and_parameters(self, db: AsyncDatabase) -> None:
        await make_t(db)
        group: Queries = {
            "n": "SELECT count(*) FROM t",
            "one": ("SELECT x FROM t WHERE x = ?", (1,)),
        }
        changed: Recorder[Any] = Recorder()
        every: Recorder[Any] = Recorder()
        with (
            subscribed(db.watch_many(group), changed),
            subscribed(db.watch_many(group, distinct=False), every),
        ):
            await changed.wait_count(1)
            await every.wait_count(1)
            await db.execute("UPDATE t SET x = x")
            await every.wait_count(2)
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await changed.wait_value({"n": [(2,)], "one": [(1,)]})
        assert changed.values == [{"n": [(1,)], "one": [(1,)]}, {"n": [(2,)], "one": [(1,)]}]

    async def test_group_states_and_recover(self, db: AsyncDatabase) -> None:
        await make_orders(db)
        stream = db.watch_many(GROUP, recover=True)
        values: Recorder[Any] = Recorder()
        seen: Recorder[rxdb.WatchState[Any]] = Recorder()
        with subscribed(stream, values), subscribed(stream.states(), seen):
            await seen.wait_for(lambda r: bool(r.values) and r.values[-1].phase == "live")
            await db.execute("DROP TABLE totals")
            await seen.wait_for(lambda r: bool(r.values) and r.values[-1].phase == "error")
            await db.execute("CREATE TABLE totals(total INTEGER)")
            await db.execute("INSERT INTO totals(total) VALUES (3)")
            await values.wait_value({"orders": [], "total": [(3,)]})
            await seen.wait_for(lambda r: bool(r.values) and r.values[-1].phase == "live")
        assert values.errors == []
        assert seen.values[-1].value == {"orders": [], "total": [(3,)]}

    @pytest.mark.parametrize("queries", [{}, {"a": 1}, {"a": ("SELECT ?", 5)}, {2: "SELECT 1"}])
    async def test_bad_groups_raise_at_once(self, db: AsyncDatabase, queries: Any) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            db.watch_many(queries)

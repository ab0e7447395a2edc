"""``db.watch_many``: several queries run on one snapshot and emitted together, on SQLite
(file, ``:memory:``) and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb import WatchState
from rxdb._types import Params
from tests.conftest import WAIT, Recorder, subscribed
from tests.rxdb.watch_shapes import KINDS, open_kind

GROUP = {
    "orders": "SELECT id, amount FROM orders ORDER BY id",
    "total": "SELECT total FROM totals",
}


@pytest.fixture(params=KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[rxdb.Database]:
    async for database in open_kind(request.param, tmp_path):
        await database.execute("CREATE TABLE orders(id integer PRIMARY KEY, amount integer)")
        await database.execute("CREATE TABLE totals(total integer)")
        await database.execute("CREATE TABLE other(v integer)")
        await database.execute("INSERT INTO totals(total) VALUES (0)")
        yield database


async def order(db: rxdb.Database, id_: int, amount: int) -> None:
    """Add an order and its amount to the total in one transaction: consistent commits."""
    async with db.transaction():
        await db.execute(f"INSERT INTO orders(id, amount) VALUES ({id_}, {amount})")
        await db.execute(f"UPDATE totals SET total = total + {amount}")


async def test_first_emission_holds_every_member_by_name(db: rxdb.Database) -> None:
    await order(db, 1, 10)
    rec: Recorder[Any] = Recorder()
    with subscribed(db.watch_many(GROUP), rec):
        assert await rec.wait_count(1) == [{"orders": [(1, 10)], "total": [(10,)]}]


async def test_one_emission_per_commit_to_any_member(db: rxdb.Database) -> None:
    stream = db.watch_many(GROUP)
    rec: Recorder[Any] = Recorder()
    with subscribed(stream, rec):
        await rec.wait_count(1)
        await order(db, 1, 5)
        await rec.wait_value({"orders": [(1, 5)], "total": [(5,)]})
        await db.execute("UPDATE totals SET total = 99")  # one member only
        await rec.wait_value({"orders": [(1, 5)], "total": [(99,)]})
        assert len(rec.values) == 3
        runs = stream.statistics().runs
        await db.execute("INSERT INTO other(v) VALUES (1)")  # no member reads it
        await db.execute("UPDATE totals SET total = 100")  # a marker after it
        await rec.wait_value({"orders": [(1, 5)], "total": [(100,)]})
        assert stream.statistics().runs == runs + 1


async def test_distinct_skips_a_run_where_no_member_changed(db: rxdb.Database) -> None:
    group = {"n": "SELECT count(*) FROM orders", "total": "SELECT total FROM totals"}
    every = db.watch_many(group, distinct=False)
    changed = db.watch_many(group)
    rec_every: Recorder[Any] = Recorder()
    rec: Recorder[Any] = Recorder()
    with subscribed(every, rec_every), subscribed(changed, rec):
        await rec.wait_count(1)
        await rec_every.wait_count(1)
        await db.execute("UPDATE totals SET total = total")  # runs, changes nothing
        await rec_every.wait_count(2)
        await db.execute("UPDATE totals SET total = 1")
        await rec.wait_value({"n": [(0,)], "total": [(1,)]})
        assert rec.values == [{"n": [(0,)], "total": [(0,)]}, {"n": [(0,)], "total": [(1,)]}]


async def test_members_never_disagree_across_many_commits(db: rxdb.Database) -> None:
    rec: Recorder[Any] = Recorder()
    with subscribed(db.watch_many(GROUP), rec):
        await rec.wait_count(1)
        expected = 0
        for id_ in range(1, 61):
            await order(db, id_, id_)
            expected += id_
        await rec.wait_value({"orders": [(i, i) for i in range(1, 61)], "total": [(expected,)]})
    assert len(rec.values) >= 2
    for emission in rec.values:
        assert sum(amount for _, amount in emission["orders"]) == emission["total"][0][0]


PAUSE = (  # a member that reads no table and takes a few ms: commits land during a run
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 30000) "
    "SELECT count(*) FROM c"
)


async def test_members_agree_while_a_writer_races_the_runs(db: rxdb.Database) -> None:
    # Commits land while runs are in flight: a member read on a later commit than another
    # would show a total that disagrees with the list.
    rec: Recorder[Any] = Recorder()
    group = {"orders": GROUP["orders"], "pause": PAUSE, "total": GROUP["total"]}

    async def writer() -> None:
        for id_ in range(1, 81):
            await order(db, id_, 1)

    with subscribed(db.watch_many(group), rec):
        await rec.wait_count(1)
        await asyncio.gather(writer(), writer_reads(db))
        await rec.wait_for(lambda r: r.values[-1]["total"] == [(80,)])
    for emission in rec.values:
        assert len(emission["orders"]) == emission["total"][0][0]


async def writer_reads(db: rxdb.Database) -> None:
    """Plain reads beside the writer, so runs and commits interleave on every engine."""
    for _ in range(40):
        await db.fetch_all("SELECT count(*) FROM orders")


async def test_subscribers_share_one_group_and_release_it(db: rxdb.Database) -> None:
    first = db.watch_many(GROUP)
    second = db.watch_many(dict(GROUP))
    a: Recorder[Any] = Recorder()
    b: Recorder[Any] = Recorder()
    with subscribed(first, a):
        await a.wait_count(1)
        with subscribed(second, b):
            assert await b.wait_count(1) == a.values  # the latest, at once: no new run
            assert first.statistics().subscribers == 2
            assert first.statistics().runs == 1
    assert first.statistics().subscribers == 0


async def test_parameters_and_async_for(db: rxdb.Database) -> None:
    await order(db, 1, 7)
    await order(db, 2, 8)
    param = "$1" if db.path.startswith("postgresql:") else "?"
    group: dict[str, str | tuple[str, Params]] = {
        "big": (f"SELECT id FROM orders WHERE amount > {param}", (7,)),
        "total": "SELECT total FROM totals",
    }
    async with asyncio.timeout(WAIT):
        async for results in db.watch_many(group):
            assert results == {"big": [(2,)], "total": [(15,)]}
            break
    assert db.watch_many(group).statistics().subscribers == 0


async def test_a_failing_member_fails_the_group(db: rxdb.Database) -> None:
    rec: Recorder[Any] = Recorder()
    with subscribed(db.watch_many({**GROUP, "bad": "SELECT * FROM missing"}), rec):
        await rec.wait_for(lambda r: bool(r.errors))
    assert isinstance(rec.errors[0], rxdb.DatabaseError)
    assert rec.values == []


async def test_a_recovering_group_comes_back_with_its_states(db: rxdb.Database) -> None:
    stream = db.watch_many(GROUP, recover=True)
    values: Recorder[Any] = Recorder()
    states: Recorder[WatchState[Any]] = Recorder()
    with subscribed(stream, values), subscribed(stream.states(), states):
        await states.wait_for(lambda r: r.values[-1].phase == "live")
        await db.execute("DROP TABLE totals")
        await states.wait_for(lambda r: r.values[-1].phase == "error")
        await db.execute("CREATE TABLE totals(total integer)")
        await db.execute("INSERT INTO totals(total) VALUES (42)")
        await values.wait_value({"orders": [], "total": [(42,)]})
        await states.wait_for(lambda r: r.values[-1].phase == "live")
        assert states.values[-1].value == {"orders": [], "total": [(42,)]}
        assert values.errors == []
    assert stream.statistics().subscribers == 0


async def test_the_group_completes_when_the_database_closes(tmp_path: Path) -> None:
    rec: Recorder[Any] = Recorder()
    async with rxdb.open(tmp_path / "g.db") as database:
        await database.execute("CREATE TABLE a(v)")
        subscription = database.watch_many({"a": "SELECT v FROM a", "n": "SELECT 1"}).subscribe(rec)
        await rec.wait_count(1)
    await rec.wait_for(lambda r: r.completed)
    subscription.dispose()


@pytest.mark.parametrize(
    ("queries", "named"),
    [
        ({}, "non-empty mapping"),
        ([("a", "SELECT 1")], "non-empty mapping"),
        ({1: "SELECT 1"}, "a name in queries must be a str"),
        ({"a": 5}, "queries['a']"),
        ({"a": ("SELECT 1",)}, "queries['a']"),
        ({"a": "  ;"}, "holds no statement"),
        ({"a": ("SELECT ?", 5)}, "parameters must be a sequence"),
    ],
)
async def test_bad_queries_are_refused_at_once(tmp_path: Path, queries: Any, named: str) -> None:
    async with rxdb.open(tmp_path / "bad.db") as database:
        with pytest.raises(rxdb.ProgrammingError, match=named.replace("[", r"\[")):
            database.watch_many(queries)


def test_blocking_for_over_a_group_and_its_states(tmp_path: Path) -> None:
    with rxdb.open_sync(tmp_path / "blocking.db") as db:
        db.execute("CREATE TABLE t(id integer PRIMARY KEY)")
        db.execute("INSERT INTO t(id) VALUES (1)")
        group = db.watch_many({"ids": "SELECT id FROM t", "n": "SELECT count(*) FROM t"})
        for results in group:
            assert results == {"ids": [(1,)], "n": [(1,)]}
            break
        states = db.watch("SELECT id FROM t", recover=True).states()
        for state in states:
            if state.phase == "live":
                assert state.value == [(1,)]
                break
        assert group.statistics().subscribers == 0
        assert states.statistics().subscribers == 0

"""The value side of UI streams on every shape (issue #13): ``row_type=``, ``fetch_value``,
``watch_one``, ``watch_value``, ``diffs``, ``throttle`` and ``pipe``, and that bad input gets
a clear error and leaves no subscriber behind."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from reactivex import operators as ops

import rxdb
from rxdb.api import AsyncDatabase, RowsStream
from tests.conformance.conftest import make_t
from tests.conftest import Recorder, subscribed

ROWS = "SELECT id, x FROM t ORDER BY id"


@dataclasses.dataclass(frozen=True)
class Item:
    id: int
    x: int


@dataclasses.dataclass(frozen=True)
class Other:
    id: int
    name: str


async def released(db: AsyncDatabase, stream: Any) -> None:
    """Assert that nobody subscribes to ``stream`` any more, once whatever a disposal sent to
    another loop or thread has landed there (a call made after it is served after it)."""
    await db.fetch_value("SELECT 1")
    assert stream.statistics().subscribers == 0


class TestRowType:
    async def test_fetches_convert_rows(self, db: AsyncDatabase) -> None:
        await make_t(db)
        assert await db.fetch_all(ROWS, row_type=Item) == [Item(1, 1)]
        assert await db.fetch_one(ROWS, row_type=Item) == Item(1, 1)
        assert await db.fetch_one("SELECT id, x FROM t WHERE x < 0", row_type=Item) is None
        assert await db.fetch_all(ROWS, row_type=dict) == [{"id": 1, "x": 1}]
        assert await db.fetch_all(ROWS) == [(1, 1)]

    async def test_read_sessions_convert_rows(self, db: AsyncDatabase) -> None:
        await make_t(db)
        async with db.read() as session:
            assert await session.fetch_all(ROWS, row_type=Item) == [Item(1, 1)]
            assert await session.fetch_one(ROWS, row_type=dict) == {"id": 1, "x": 1}
            assert await session.fetch_value("SELECT count(*) FROM t") == 1

    async def test_fetch_value(self, db: AsyncDatabase) -> None:
        await make_t(db)
        assert await db.fetch_value("SELECT x FROM t") == 1
        assert await db.fetch_value("SELECT x FROM t WHERE x < 0") is None

    async def test_rows_that_do_not_fit_raise_row_type_error(self, db: AsyncDatabase) -> None:
        await make_t(db)
        with pytest.raises(rxdb.RowTypeError, match=r"\['name'\].*\['x'\]"):
            await db.fetch_all(ROWS, row_type=Other)
        with pytest.raises(rxdb.ProgrammingError, match="row_type"):
            await db.fetch_one(ROWS, row_type=5)  # type: ignore[call-overload]

    async def test_a_watch_emits_converted_rows(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream = db.watch(ROWS, row_type=Item)
        seen: Recorder[list[Item]] = Recorder()
        with subscribed(stream, seen):
            await seen.wait_value([Item(1, 1)])
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await seen.wait_value([Item(1, 1), Item(2, 2)])
        await released(db, stream)

    async def test_rows_that_do_not_fit_end_a_watch(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream = db.watch(ROWS, row_type=Other)
        seen: Recorder[Any] = Recorder()
        with subscribed(stream, seen):
            await seen.wait_for(lambda r: bool(r.errors))
        assert isinstance(seen.errors[0], rxdb.RowTypeError)
        assert seen.values == []
        await released(db, stream)
        with pytest.raises(rxdb.ProgrammingError, match="row_type"):
            db.watch(ROWS, row_type="Item")  # type: ignore[call-overload]


class TestOneRowOneValue:
    async def test_watch_one_and_watch_value(self, db: AsyncDatabase) -> None:
        await make_t(db)
        one: Recorder[Item | None] = Recorder()
        value: Recorder[Any] = Recorder()
        empty: Recorder[Any] = Recorder()
        streams = [
            db.watch_one("SELECT id, x FROM t ORDER BY x DESC", row_type=Item),
            db.watch_value("SELECT sum(x) FROM t"),
            db.watch_one("SELECT x FROM t WHERE x > 5"),
        ]
        with (
            subscribed(streams[0], one),
            subscribed(streams[1], value),
            subscribed(streams[2], empty),
        ):
            await one.wait_value(Item(1, 1))
            await value.wait_value(1)
            await empty.wait_value(None)
            await db.execute("INSERT INTO t(x) VALUES (7)")
            await one.wait_value(Item(2, 7))
            await value.wait_value(8)
            await empty.wait_for(lambda r: bool(r.values[-1]))
        assert empty.values[-1] == (7,)
        assert [v for v in one.values if v == Item(1, 1)] == [Item(1, 1)]  # no repeats
        for stream in streams:
            await released(db, stream)

    async def test_async_iteration_of_a_value(self, db: AsyncDatabase) -> None:
        await make_t(db)
        values = []
        async for count in db.watch_value("SELECT count(*) FROM t"):
            values.append(count)
            if len(values) == 2:
                break
            await db.execute("INSERT INTO t(x) VALUES (2)")
        assert values == [1, 2]


class TestDiffs:
    async def test_inserted_updated_removed_and_the_new_rows(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream = db.watch(ROWS).diffs("id")
        seen: Recorder[rxdb.RowDiff[rxdb.Row]] = Recorder()
        with subscribed(stream, seen):
            await seen.wait_count(1)
            assert seen.values[0].inserted == ((1, 1),)
            await db.execute("INSERT INTO t(x) VALUES (2)")
            await seen.wait_count(2)
            assert seen.values[1].inserted == ((2, 2),)
            await db.execute("UPDATE t SET x = 5 WHERE id = 1")
            await seen.wait_count(3)
            assert seen.values[2].updated == (((1, 1), (1, 5)),)
            await db.execute("DELETE FROM t WHERE id = 2")
            await seen.wait_count(4)
        last = seen.values[3]
        assert (last.removed, last.rows) == (((2, 2),), [(1, 5)])
        await released(db, stream)

    async def test_the_first_diff_of_nothing_arrives(self, db: AsyncDatabase) -> None:
        await make_t(db)
        async for diff in db.watch("SELECT id FROM t WHERE x < 0", row_type=dict).diffs():
            assert diff == rxdb.RowDiff([])
            break

    async def test_a_key_that_is_not_unique_ends_the_stream(self, db: AsyncDatabase) -> None:
        await make_t(db)
        await db.execute("INSERT INTO t(x) VALUES (1)")
        stream = db.watch("SELECT id, x FROM t").diffs(key="x")
        seen: Recorder[Any] = Recorder()
        with subscribed(stream, seen):
            await seen.wait_for(lambda r: bool(r.errors))
        assert isinstance(seen.errors[0], rxdb.DuplicateKeyError)
        assert "'x' is not unique: 1" in str(seen.errors[0])
        await released(db, stream)
        with pytest.raises(rxdb.ProgrammingError, match="diffs key"):
            db.watch(ROWS).diffs(key=3)  # type: ignore[arg-type]


class TestPacing:
    async def test_the_first_result_and_the_last(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream = db.watch("SELECT count(*) FROM t", throttle=0.05)
        seen: Recorder[Any] = Recorder()
        with subscribed(stream, seen):
            await seen.wait_value([(1,)])
            for _ in range(5):
                await db.execute("INSERT INTO t(x) VALUES (2)")
            await seen.wait_value([(6,)])  # the final state always arrives
        await released(db, stream)

    async def test_throttle_on_a_stream_keeps_its_diffs(self, db: AsyncDatabase) -> None:
        await make_t(db)
        paced = db.watch(ROWS, row_type=Item).throttle(0.05)
        async for diff in paced.diffs():
            assert diff.inserted == (Item(1, 1),)
            break

    @pytest.mark.parametrize("seconds", [0, -0.5, math.nan, math.inf, True, "1"], ids=repr)
    async def test_a_bad_throttle_raises_at_the_call(self, db: AsyncDatabase, seconds: Any) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="throttle"):
            db.watch("SELECT 1", throttle=seconds)
        with pytest.raises(rxdb.ProgrammingError, match="throttle"):
            db.watch_value("SELECT 1", throttle=seconds)
        with pytest.raises(rxdb.ProgrammingError, match="throttle"):
            db.watch("SELECT 1").throttle(seconds)


class TestPipe:
    async def test_a_piped_stream_is_still_iterable(self, db: AsyncDatabase) -> None:
        await make_t(db)
        stream: RowsStream = db.watch("SELECT count(*) FROM t")
        values = []
        async for count in stream.pipe(ops.map(lambda rows: rows[0][0] * 10)):
            values.append(count)
            if len(values) == 2:
                break
            await db.execute("INSERT INTO t(x) VALUES (2)")
        assert values == [10, 20]
        await released(db, stream)
